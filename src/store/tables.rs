//! Table layout. Values are JSON so records can grow fields without a migration.

use redb::{Database, ReadableTable, TableDefinition};

use super::StoreError;
use super::wal::{Entry, Key, Table};

/// conversation id -> ConversationRecord
pub const CONVERSATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("conversations");
/// "channel:key" -> conversation id
pub const CONVERSATION_KEYS: TableDefinition<&str, &str> =
    TableDefinition::new("conversation_keys");
/// (conversation id, seq) -> MessageRecord. Where journals written before the message log
/// kept their messages; read, no longer written.
pub const MESSAGES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("messages");
/// log position -> one message with its conversation id (see [`super::log`])
pub const MESSAGE_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("message_log");
/// (conversation id, highest seq in the chunk) -> the (seq, log position) pairs of one
/// conversation's messages indexed by one checkpoint ([`super::log::encode_chunk`])
pub const MESSAGE_INDEX: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("message_chunks");
/// name -> position: how far the message index reaches ([`super::log::INDEXED_THROUGH`])
pub const LOG_META: TableDefinition<&str, u64> = TableDefinition::new("log_meta");
/// (conversation id, platform message id) -> seq. No longer written (duplicates are found
/// from the platform id inside each message row); kept so journals that have rows still open.
pub const PLATFORM_IDS: TableDefinition<(&str, &str), u64> = TableDefinition::new("platform_ids");
/// conversation id -> QueueEntry
pub const QUEUE: TableDefinition<&str, &[u8]> = TableDefinition::new("queue");
/// conversation id -> Assignment
pub const ASSIGNMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("assignments");
/// agent id -> AgentRecord
pub const AGENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("agents");
/// delivery id -> OutboxEntry
pub const OUTBOX: TableDefinition<&str, &[u8]> = TableDefinition::new("outbox");
/// channel-chosen key (e.g. "email:cursor:INBOX") -> opaque bytes a channel keeps for itself
pub const CHANNEL_STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("channel_state");

/// "channel:platform message id" of a message the daemon sent -> OutboundRef
pub const OUTBOUND_REFS: TableDefinition<&str, &[u8]> = TableDefinition::new("outbound_refs");

/// conversation id -> SlaClock: the SLA deadlines of an escalated conversation
pub const SLA_CLOCKS: TableDefinition<&str, &[u8]> = TableDefinition::new("sla_clocks");

/// Creates every table so that readers never meet a missing one.
pub fn create_all(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    txn.open_table(CONVERSATIONS)?;
    txn.open_table(CONVERSATION_KEYS)?;
    txn.open_table(MESSAGES)?;
    txn.open_table(MESSAGE_LOG)?;
    txn.open_table(MESSAGE_INDEX)?;
    txn.open_table(LOG_META)?;
    txn.open_table(PLATFORM_IDS)?;
    txn.open_table(QUEUE)?;
    txn.open_table(ASSIGNMENTS)?;
    txn.open_table(AGENTS)?;
    txn.open_table(OUTBOX)?;
    txn.open_table(CHANNEL_STATE)?;
    txn.open_table(OUTBOUND_REFS)?;
    txn.open_table(SLA_CLOCKS)?;
    txn.commit()?;
    Ok(())
}

/// Every table a batch writes, open in one write transaction: where the writer applies a
/// batch's writes and the opening store replays the write-ahead log's.
pub struct Tables<'t> {
    conversations: redb::Table<'t, &'static str, &'static [u8]>,
    keys: redb::Table<'t, &'static str, &'static str>,
    message_log: redb::Table<'t, u64, &'static [u8]>,
    queue: redb::Table<'t, &'static str, &'static [u8]>,
    assignments: redb::Table<'t, &'static str, &'static [u8]>,
    agents: redb::Table<'t, &'static str, &'static [u8]>,
    outbox: redb::Table<'t, &'static str, &'static [u8]>,
    channel_state: redb::Table<'t, &'static str, &'static [u8]>,
    outbound_refs: redb::Table<'t, &'static str, &'static [u8]>,
    sla_clocks: redb::Table<'t, &'static str, &'static [u8]>,
}

impl<'t> Tables<'t> {
    pub fn open(txn: &'t redb::WriteTransaction) -> Result<Tables<'t>, StoreError> {
        Ok(Tables {
            conversations: txn.open_table(CONVERSATIONS)?,
            keys: txn.open_table(CONVERSATION_KEYS)?,
            message_log: txn.open_table(MESSAGE_LOG)?,
            queue: txn.open_table(QUEUE)?,
            assignments: txn.open_table(ASSIGNMENTS)?,
            agents: txn.open_table(AGENTS)?,
            outbox: txn.open_table(OUTBOX)?,
            channel_state: txn.open_table(CHANNEL_STATE)?,
            outbound_refs: txn.open_table(OUTBOUND_REFS)?,
            sla_clocks: txn.open_table(SLA_CLOCKS)?,
        })
    }

    /// Whether `key` already leads to `conversation_id`.
    pub fn key_leads_to(&self, key: &str, conversation_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .keys
            .get(key)?
            .is_some_and(|v| v.value() == conversation_id))
    }

    /// Makes one write.
    pub fn write(&mut self, entry: &Entry<'_>) -> Result<(), StoreError> {
        let (table, key, value) = entry.parts();
        let mismatch = || {
            StoreError::Corrupt(format!(
                "write-ahead log: a {table:?} write with a key of the wrong kind"
            ))
        };
        if table == Table::MessageLog {
            let Key::Position(p) = key else {
                return Err(mismatch());
            };
            match value {
                Some(v) => self.message_log.insert(p, v).map(drop)?,
                None => self.message_log.remove(p).map(drop)?,
            }
            return Ok(());
        }
        let Key::Text(k) = key else {
            return Err(mismatch());
        };
        if table == Table::ConversationKeys {
            match value {
                Some(v) => {
                    let v = std::str::from_utf8(v).map_err(|_| {
                        StoreError::Corrupt(
                            "write-ahead log: a conversation id is not UTF-8".into(),
                        )
                    })?;
                    self.keys.insert(k, v).map(drop)?
                }
                None => self.keys.remove(k).map(drop)?,
            }
            return Ok(());
        }
        let t = match table {
            Table::Conversations => &mut self.conversations,
            Table::Queue => &mut self.queue,
            Table::Assignments => &mut self.assignments,
            Table::Agents => &mut self.agents,
            Table::Outbox => &mut self.outbox,
            Table::ChannelState => &mut self.channel_state,
            Table::OutboundRefs => &mut self.outbound_refs,
            Table::SlaClocks => &mut self.sla_clocks,
            Table::MessageLog | Table::ConversationKeys => return Err(mismatch()),
        };
        match value {
            Some(v) => t.insert(k, v).map(drop)?,
            None => t.remove(k).map(drop)?,
        }
        Ok(())
    }
}
