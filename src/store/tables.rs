//! Table layout. Values are JSON so records can grow fields without a migration.

use redb::{Database, TableDefinition};

use super::StoreError;

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
