//! The durable journal and state, in one redb file. The only code that touches the disk.
//!
//! Writes go through one writer thread that groups whatever is waiting into a single write
//! transaction, commits it with fsync, and only then answers every waiter: many
//! conversations share the cost of one fsync (group commit), and nothing is acknowledged
//! before it is durable. Reads open their own read transaction and never wait for writes.

mod log;
mod tables;
mod wal;
mod writer;

use std::path::Path;
use std::sync::Arc;

use handoffd_channels::ChannelKind;
use redb::{Database, ReadableDatabase, ReadableTable};
use serde::de::DeserializeOwned;

use crate::model::{
    AgentRecord, Assignment, ConversationRecord, MessageRecord, OutboundRef, OutboxEntry,
    QueueEntry, SlaClock,
};
use tables::*;
pub use writer::WriteStats;

/// One change to the store. A batch of ops from one caller is applied atomically.
#[derive(Debug, Clone)]
pub enum Op {
    PutConversation(Box<ConversationRecord>),
    /// The message is shared with the conversation's in-memory transcript: the writer
    /// only reads it, so handing it over costs a reference count, not a copy.
    AppendMessage {
        conversation_id: String,
        message: Arc<MessageRecord>,
    },
    PutQueueEntry(QueueEntry),
    DeleteQueueEntry(String),
    PutAssignment(Box<Assignment>),
    DeleteAssignment(String),
    PutAgent(Box<AgentRecord>),
    PutOutbox(Box<OutboxEntry>),
    DeleteOutbox(String),
    /// A value a channel keeps for itself (see [`handoffd_channels::state`]).
    PutChannelState {
        key: String,
        value: Vec<u8>,
    },
    /// Rewrites a journaled message in place (its delivery report changed).
    ReplaceMessage {
        conversation_id: String,
        message: Arc<MessageRecord>,
    },
    /// Remembers the platform's id of a delivered message.
    PutOutboundRef {
        channel: ChannelKind,
        platform_message_id: String,
        target: OutboundRef,
    },
    /// Another way to reach a conversation: `(channel, key)` leads to it too (an email
    /// follow-up thread of a chat).
    PutConversationKey {
        channel: ChannelKind,
        key: String,
        conversation_id: String,
    },
    /// The SLA deadlines of an escalated conversation (written by the router alone).
    PutSlaClock(Box<SlaClock>),
    DeleteSlaClock(String),
}

/// Why the store could not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Storage(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("the store is closed")]
    Closed,
}

impl From<redb::Error> for StoreError {
    fn from(e: redb::Error) -> Self {
        StoreError::Storage(e.to_string())
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError::Storage(e.to_string()) }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// Filters for listing conversations.
#[derive(Debug, Clone, Default)]
pub struct ConversationFilter {
    pub owner: Option<String>,
    pub team: Option<String>,
    pub channel: Option<ChannelKind>,
    pub limit: usize,
}

/// Handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    // Field order matters: `db` is released before the writer thread is joined, so the
    // database closes with the last handle.
    db: Arc<Database>,
    log: Arc<log::MessageLog>,
    writer: writer::Writer,
}

/// The journal's page cache unless configured otherwise (`storage.cache_mib`).
pub const DEFAULT_CACHE_BYTES: usize = 64 * 1024 * 1024;

impl Store {
    /// Opens (or creates) the journal file with the default page cache
    /// ([`DEFAULT_CACHE_BYTES`]) and starts the writer thread.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// Opens the journal with a page cache of `cache_bytes`. redb's own default is 1 GiB,
    /// which a daemon meant for small machines cannot afford: the cache fills as the file is
    /// read (after a crash redb reads it all to repair it) and is never given back.
    pub fn open_with_cache(path: &Path, cache_bytes: usize) -> Result<Store, StoreError> {
        Store::open_with_options(path, cache_bytes, true)
    }

    /// Opens the journal with a page cache of `cache_bytes`, saving redb's allocator state
    /// with every commit when `quick_repair` (so a restart after a crash is quick whatever
    /// the journal's size).
    pub fn open_with_options(
        path: &Path,
        cache_bytes: usize,
        quick_repair: bool,
    ) -> Result<Store, StoreError> {
        Store::open_inner(path, cache_bytes, quick_repair, writer::DURABLE_EVERY)
    }

    fn open_inner(
        path: &Path,
        cache_bytes: usize,
        quick_repair: bool,
        durable_every: std::time::Duration,
    ) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Storage(format!("{}: {e}", dir.display())))?;
        }
        let db = match Database::builder().set_cache_size(cache_bytes).create(path) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(StoreError::Storage(format!(
                    "{} is in use by another process (is the daemon running?)",
                    path.display()
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let db = Arc::new(db);
        tables::create_all(&db)?;
        let wal = replay_wal(&db, &wal_dir(path), quick_repair)?;
        let (log, state) = log::MessageLog::recover(&db)?;
        let log = Arc::new(log);
        let writer = writer::Writer::start(
            db.clone(),
            quick_repair,
            log.clone(),
            state,
            wal,
            durable_every,
        )?;
        Ok(Store { db, log, writer })
    }

    /// Applies `ops` atomically and durably; returns once they are on disk.
    pub async fn commit(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        self.writer.commit(ops).await
    }

    /// Blocking variant for the CLI (outside any async runtime: inside one it would stall
    /// the runtime's thread, and tokio refuses that).
    pub fn commit_blocking(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        self.writer.commit_blocking(ops)
    }

    /// Why the journal stopped taking writes, if it has: after a failed fsync of the
    /// write-ahead log nothing more is written until a restart replays it.
    pub fn write_failure(&self) -> Option<String> {
        self.writer.stopped()
    }

    /// Counters of the group-commit writer (batches, ops), for metrics and benchmarks.
    pub fn write_stats(&self) -> WriteStats {
        self.writer.stats()
    }

    /// The conversation as it stands: its stored record brought up to date with the
    /// messages journaled after it (see [`ConversationRecord::fold_message`]).
    /// The database, once every write already answered can be read from it (a batch
    /// answered during a durable commit reaches redb when the commit ends).
    fn visible(&self) -> &Database {
        self.writer.wait_visible();
        &self.db
    }

    pub fn conversation(&self, id: &str) -> Result<Option<ConversationRecord>, StoreError> {
        let view = self.log.view_of(self.visible(), id, 0)?;
        let table = view.txn.open_table(CONVERSATIONS)?;
        match get_json(&table, id)? {
            Some(c) => Ok(Some(caught_up(&view, c)?)),
            None => Ok(None),
        }
    }

    /// The conversation id for a channel's conversation key, if one exists.
    pub fn conversation_by_key(
        &self,
        channel: ChannelKind,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        let txn = self.visible().begin_read()?;
        let table = txn.open_table(CONVERSATION_KEYS)?;
        let k = channel_key(channel, key);
        Ok(table.get(k.as_str())?.map(|v| v.value().to_string()))
    }

    /// Messages of a conversation with `seq > after`, oldest first.
    pub fn messages_after(
        &self,
        conversation_id: &str,
        after: u64,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        let start = after.saturating_add(1);
        self.log
            .view_of(self.visible(), conversation_id, start)?
            .messages(conversation_id, start)
    }

    pub fn conversations(
        &self,
        filter: &ConversationFilter,
    ) -> Result<Vec<ConversationRecord>, StoreError> {
        let view = self.log.view(self.visible())?;
        let table = view.txn.open_table(CONVERSATIONS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (_, v) = row?;
            let c = caught_up(&view, decode(v.value())?)?;
            if filter.owner.as_deref().is_some_and(|o| o != c.owner.name()) {
                continue;
            }
            if filter
                .team
                .as_deref()
                .is_some_and(|t| Some(t) != c.owner.team())
            {
                continue;
            }
            if filter.channel.is_some_and(|ch| ch != c.channel) {
                continue;
            }
            out.push(c);
        }
        // Most recently active first.
        out.sort_by_key(|c| std::cmp::Reverse(c.updated_at_ms));
        if filter.limit > 0 {
            out.truncate(filter.limit);
        }
        Ok(out)
    }

    pub fn queue_entries(&self) -> Result<Vec<QueueEntry>, StoreError> {
        self.all(QUEUE)
    }

    /// Every running SLA clock, for the router's restore.
    pub fn sla_clocks(&self) -> Result<Vec<SlaClock>, StoreError> {
        self.all(SLA_CLOCKS)
    }

    /// Queues `ops` for the writer now, in call order, and returns the wait for them to be
    /// durable: for actors that must keep their writes in order without blocking on each.
    pub fn submit(
        &self,
        ops: Vec<Op>,
    ) -> Result<impl std::future::Future<Output = Result<(), StoreError>> + use<>, StoreError> {
        self.writer.submit_ordered(ops)
    }

    pub fn assignments(&self) -> Result<Vec<Assignment>, StoreError> {
        self.all(ASSIGNMENTS)
    }

    pub fn agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        self.all(AGENTS)
    }

    pub fn agent(&self, id: &str) -> Result<Option<AgentRecord>, StoreError> {
        let txn = self.visible().begin_read()?;
        let table = txn.open_table(AGENTS)?;
        get_json(&table, id)
    }

    /// The agent whose token hashes to `token_hash`.
    pub fn agent_by_token_hash(&self, token_hash: &str) -> Result<Option<AgentRecord>, StoreError> {
        Ok(self
            .agents()?
            .into_iter()
            .find(|a| crate::agents::auth::constant_time_eq(&a.token_hash, token_hash)))
    }

    pub fn outbox(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        self.all(OUTBOX)
    }

    /// A value a channel stored for itself.
    pub fn channel_state(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.visible().begin_read()?;
        let table = txn.open_table(CHANNEL_STATE)?;
        Ok(table.get(key)?.map(|v| v.value().to_vec()))
    }

    /// The message the daemon sent that the platform knows as `platform_message_id`.
    pub fn outbound_ref(
        &self,
        channel: ChannelKind,
        platform_message_id: &str,
    ) -> Result<Option<OutboundRef>, StoreError> {
        let txn = self.visible().begin_read()?;
        let table = txn.open_table(OUTBOUND_REFS)?;
        get_json(&table, &channel_key(channel, platform_message_id))
    }

    fn all<T: DeserializeOwned>(
        &self,
        def: redb::TableDefinition<&str, &[u8]>,
    ) -> Result<Vec<T>, StoreError> {
        let txn = self.visible().begin_read()?;
        let table = txn.open_table(def)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (_, v) = row?;
            out.push(decode(v.value())?);
        }
        Ok(out)
    }
}

/// Channels keep their own state (an IMAP cursor, thread mappings) in the journal, through
/// the key/value contract of the channels crate; writes go through the group-commit writer.
impl handoffd_channels::state::ChannelState for Store {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, handoffd_channels::state::StateError> {
        self.channel_state(key)
            .map_err(|e| handoffd_channels::state::StateError(e.to_string()))
    }

    fn put(
        &self,
        entries: Vec<(String, Vec<u8>)>,
    ) -> futures_util::future::BoxFuture<'static, Result<(), handoffd_channels::state::StateError>>
    {
        let store = self.clone();
        let ops = entries
            .into_iter()
            .map(|(key, value)| Op::PutChannelState { key, value })
            .collect();
        Box::pin(async move {
            store
                .commit(ops)
                .await
                .map_err(|e| handoffd_channels::state::StateError(e.to_string()))
        })
    }
}

fn get_json<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<T>, StoreError> {
    match table.get(key)? {
        Some(v) => Ok(Some(decode(v.value())?)),
        None => Ok(None),
    }
}

/// `record` with the messages journaled after it folded in: the conversation actor leaves
/// the record out of commits that only add what its messages say.
fn caught_up(
    view: &log::LogView,
    mut record: ConversationRecord,
) -> Result<ConversationRecord, StoreError> {
    let start = record.last_seq.saturating_add(1);
    for m in view.messages(&record.id.clone(), start)? {
        record.fold_message(&m);
    }
    Ok(record)
}

/// Where the write-ahead log of the journal at `path` lives: beside it, `handoffd.wal/` for
/// `handoffd.redb`.
pub fn wal_dir(path: &Path) -> std::path::PathBuf {
    path.with_extension("wal")
}

/// Writes again what the write-ahead log has and the journal's last durable commit lacks
/// (everything after a crash), in one durable commit; returns the log, ready for new frames.
fn replay_wal(db: &Database, dir: &Path, quick_repair: bool) -> Result<wal::Wal, StoreError> {
    let applied = db
        .begin_read()?
        .open_table(LOG_META)?
        .get(log::WAL_APPLIED)?
        .map_or(0, |v| v.value());
    let mut txn = db.begin_write()?;
    txn.set_quick_repair(quick_repair);
    let (mut wal, replayed) = {
        let mut tables = Tables::open(&txn)?;
        wal::Wal::open(dir, applied, |entry| tables.write(&entry))?
    };
    if let Some(last) = replayed.last_lsn {
        txn.open_table(LOG_META)?.insert(log::WAL_APPLIED, last)?;
        txn.commit()?;
        tracing::info!(
            frames = replayed.frames,
            through = last,
            "replayed the write-ahead log into the journal"
        );
    } else {
        txn.abort()?;
    }
    if replayed.torn_bytes > 0 {
        tracing::warn!(
            bytes = replayed.torn_bytes,
            "the write-ahead log ended in a torn frame (a batch cut off by a crash before it was acknowledged); it was dropped"
        );
    }
    let (last, covered) = (wal.last_lsn(), wal.since_durable());
    wal.durable_through(last, covered)?;
    Ok(wal)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn channel_key(channel: ChannelKind, key: &str) -> String {
    format!("{}:{key}", channel.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Owner, Role};
    use handoffd_channels::Contact;

    fn conv(id: &str) -> ConversationRecord {
        ConversationRecord {
            id: id.into(),
            channel: ChannelKind::Widget,
            key: format!("k-{id}"),
            contact: Contact {
                channel_user_id: format!("k-{id}"),
                ..Default::default()
            },
            owner: Owner::Bot,
            created_at_ms: 1,
            updated_at_ms: 1,
            last_seq: 0,
            handoffs: 0,
            sentiment: Default::default(),
            entities: vec![],
            escalation: None,
            last_agent: None,
            bot_resuming: false,
            language: None,
            last_customer_message_ms: None,
            follow_up_email: None,
            follow_up_pending: false,
        }
    }

    fn msg(seq: u64, text: &str) -> MessageRecord {
        MessageRecord {
            seq,
            role: Role::Customer,
            author: None,
            author_name: None,
            text: text.into(),
            at_ms: seq,
            platform_message_id: Some(format!("p{seq}")),
            attachments: vec![],
            sentiment: None,
            language: None,
            intents: vec![],
            handoff: None,
            bot: None,
            automated: false,
            delivery_mode: Default::default(),
            delivery: None,
            quick_replies: Vec::new(),
            platform_at_ms: None,
        }
    }

    #[tokio::test]
    async fn concurrent_commits_are_grouped_and_all_durable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.redb");
        let store = Store::open(&path).expect("open");
        let mut tasks = Vec::new();
        for c in 0..20 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let id = format!("c{c}");
                store
                    .commit(vec![Op::PutConversation(Box::new(conv(&id)))])
                    .await?;
                for s in 1..=10 {
                    store
                        .commit(vec![Op::AppendMessage {
                            conversation_id: id.clone(),
                            message: Arc::new(msg(s, "hello")),
                        }])
                        .await?;
                }
                Ok::<_, StoreError>(())
            }));
        }
        for t in tasks {
            t.await.expect("join").expect("commit");
        }
        let stats = store.write_stats();
        assert_eq!(stats.ops, 220);
        assert!(stats.batches <= 220);
        drop(store);
        // Reopen: everything acknowledged is there, in order.
        let store = Store::open(&path).expect("reopen");
        for c in 0..20 {
            let id = format!("c{c}");
            let msgs = store.messages_after(&id, 0).expect("read");
            assert_eq!(
                msgs.iter().map(|m| m.seq).collect::<Vec<_>>(),
                (1..=10).collect::<Vec<_>>()
            );
            assert_eq!(store.messages_after(&id, 7).expect("read").len(), 3);
            assert_eq!(
                store
                    .conversation_by_key(ChannelKind::Widget, &format!("k-{id}"))
                    .expect("key"),
                Some(id.clone())
            );
        }
        let mut f = ConversationFilter {
            owner: Some("bot".into()),
            ..Default::default()
        };
        assert_eq!(store.conversations(&f).expect("list").len(), 20);
        f.owner = Some("agent".into());
        assert!(store.conversations(&f).expect("list").is_empty());
    }

    #[tokio::test]
    async fn channel_state_is_durable_across_reopen() {
        use handoffd_channels::state::ChannelState;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.redb");
        let store = Store::open(&path).expect("open");
        ChannelState::put(
            &store,
            vec![
                ("email:cursor:INBOX".into(), b"{\"last_uid\":7}".to_vec()),
                ("email:msgid:a@b".into(), b"mkey".to_vec()),
            ],
        )
        .await
        .expect("put");
        drop(store);
        let store = Store::open(&path).expect("reopen");
        assert_eq!(
            ChannelState::get(&store, "email:msgid:a@b").expect("get"),
            Some(b"mkey".to_vec())
        );
        assert_eq!(ChannelState::get(&store, "email:nope").expect("get"), None);
    }

    #[tokio::test]
    async fn outbound_refs_find_a_sent_message_and_replace_rewrites_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("j.redb")).expect("open");
        let mut m = msg(1, "sent to WhatsApp");
        store
            .commit(vec![
                Op::PutConversation(Box::new(conv("c1"))),
                Op::AppendMessage {
                    conversation_id: "c1".into(),
                    message: Arc::new(m.clone()),
                },
                Op::PutOutboundRef {
                    channel: ChannelKind::Whatsapp,
                    platform_message_id: "wamid.X".into(),
                    target: OutboundRef {
                        conversation_id: "c1".into(),
                        seq: 1,
                    },
                },
            ])
            .await
            .expect("commit");
        let found = store
            .outbound_ref(ChannelKind::Whatsapp, "wamid.X")
            .expect("read");
        assert_eq!(
            found,
            Some(OutboundRef {
                conversation_id: "c1".into(),
                seq: 1
            })
        );
        // Ids are per channel.
        assert_eq!(
            store
                .outbound_ref(ChannelKind::Messenger, "wamid.X")
                .expect("read"),
            None
        );
        m.delivery = Some(Box::new(crate::model::DeliveryReport {
            status: handoffd_channels::DeliveryStatus::Read,
            at_ms: 5,
            error: None,
        }));
        store
            .commit(vec![Op::ReplaceMessage {
                conversation_id: "c1".into(),
                message: Arc::new(m.clone()),
            }])
            .await
            .expect("replace");
        assert_eq!(store.messages_after("c1", 0).expect("read"), vec![m]);
    }

    #[tokio::test]
    async fn channel_cursors_survive_a_reopen_and_are_kept_per_channel() {
        use handoffd_channels::cursor::CursorStore;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.redb");
        {
            let store = Store::open(&path).expect("open");
            assert_eq!(
                CursorStore::load(&store, ChannelKind::Telegram, "n"),
                Ok(None)
            );
            for v in ["41", "42"] {
                CursorStore::save(&store, ChannelKind::Telegram, "n", v.into())
                    .await
                    .expect("save");
            }
        }
        let store = Store::open(&path).expect("reopen");
        assert_eq!(
            CursorStore::load(&store, ChannelKind::Telegram, "n"),
            Ok(Some("42".into()))
        );
        assert_eq!(
            CursorStore::load(&store, ChannelKind::Discord, "n"),
            Ok(None)
        );
    }

    #[test]
    fn a_second_open_of_the_same_file_is_refused_clearly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.redb");
        let _first = Store::open(&path).expect("open");
        let Err(e) = Store::open(&path) else {
            panic!("second open must fail")
        };
        assert!(e.to_string().contains("in use"), "{e}");
    }

    /// The conversation actor writes the record only when its messages cannot rebuild it:
    /// a read (also after a reopen, as after `kill -9`) folds the later messages in.
    #[tokio::test]
    async fn a_record_left_out_of_later_commits_reads_back_up_to_date() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.redb");
        let store = Store::open_with_cache(&path, 1 << 20).expect("open");
        let mut first = msg(1, "hola");
        first.at_ms = 1_000;
        first.sentiment = Some(0.5);
        first.language = Some("es".into());
        let mut record = conv("c1");
        record.last_seq = 1;
        record.updated_at_ms = 1_000;
        record.sentiment.update(0.5);
        record.language = Some("es".into());
        record.last_customer_message_ms = Some(1_000);
        store
            .commit(vec![
                Op::AppendMessage {
                    conversation_id: "c1".into(),
                    message: Arc::new(first),
                },
                Op::PutConversation(Box::new(record.clone())),
            ])
            .await
            .expect("commit");
        // Three more messages, the record left out: a bot reply, a customer message whose
        // platform time is older than its journal time, and an auto-reply.
        let mut bot = msg(2, "answer");
        bot.role = Role::Bot;
        bot.at_ms = 1_010;
        bot.platform_message_id = None;
        let mut angry = msg(3, "this is bad");
        angry.at_ms = 2_000;
        angry.platform_at_ms = Some(1_900);
        angry.sentiment = Some(-0.8);
        angry.language = Some("en".into());
        let mut auto = msg(4, "out of office");
        auto.at_ms = 3_000;
        auto.sentiment = Some(0.9);
        auto.automated = true;
        let mut ops: Vec<Op> = [bot, angry, auto]
            .into_iter()
            .map(|m| Op::AppendMessage {
                conversation_id: "c1".into(),
                message: Arc::new(m),
            })
            .collect();
        // A rewrite of an older message in place changes nothing in the record.
        let mut again = msg(1, "hola");
        again.at_ms = 9_999;
        ops.push(Op::ReplaceMessage {
            conversation_id: "c1".into(),
            message: Arc::new(again),
        });
        store.commit(ops).await.expect("commit");

        let mut expected = record;
        expected.last_seq = 4;
        expected.updated_at_ms = 3_000;
        expected.sentiment.update(-0.8);
        expected.language = Some("en".into());
        expected.last_customer_message_ms = Some(3_000);
        let check = |store: &Store| {
            assert_eq!(
                store.conversation("c1").expect("read"),
                Some(expected.clone())
            );
            let all = store
                .conversations(&ConversationFilter::default())
                .expect("list");
            assert_eq!(all, vec![expected.clone()]);
        };
        check(&store);
        drop(store);
        let store = Store::open_with_cache(&path, 1 << 20).expect("reopen");
        check(&store);
    }

    #[tokio::test]
    async fn the_key_index_follows_updates_and_a_new_owner_of_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open_with_cache(&dir.path().join("j.redb"), 1 << 20).expect("open");
        let mut c = conv("c1");
        for n in 0..3 {
            c.updated_at_ms = n;
            store
                .commit(vec![Op::PutConversation(Box::new(c.clone()))])
                .await
                .expect("commit");
        }
        let found = store.conversation_by_key(ChannelKind::Widget, "k-c1");
        assert_eq!(found.expect("read").as_deref(), Some("c1"));
        // A later conversation that takes over the same key (a new thread for the same
        // visitor) must move the index, not be skipped as already known.
        let mut later = conv("c2");
        later.key = "k-c1".into();
        store
            .commit(vec![Op::PutConversation(Box::new(later))])
            .await
            .expect("commit");
        let found = store.conversation_by_key(ChannelKind::Widget, "k-c1");
        assert_eq!(found.expect("read").as_deref(), Some("c2"));
    }

    fn indexed_through(store: &Store) -> u64 {
        let txn = store.db.begin_read().expect("read");
        let meta = txn.open_table(LOG_META).expect("meta");
        meta.get(log::INDEXED_THROUGH)
            .expect("get")
            .map_or(0, |v| v.value())
    }

    /// Writes a journal's tables directly, as an older build or a crash left them.
    fn write_raw(path: &Path, write: impl FnOnce(&redb::WriteTransaction)) {
        let db = Database::create(path).expect("create");
        tables::create_all(&db).expect("tables");
        let txn = db.begin_write().expect("write");
        write(&txn);
        txn.commit().expect("commit");
    }

    /// The texts of a conversation's messages, oldest first.
    fn texts(store: &Store, id: &str) -> Vec<String> {
        store
            .messages_after(id, 0)
            .expect("read")
            .into_iter()
            .map(|m| m.text)
            .collect()
    }

    fn appends(id: &str, seqs: std::ops::RangeInclusive<u64>) -> Vec<Op> {
        seqs.map(|s| Op::AppendMessage {
            conversation_id: id.into(),
            message: Arc::new(msg(s, &format!("{id} says {s}"))),
        })
        .collect()
    }

    /// Enough messages for the writer to index them in a checkpoint; the ones after it
    /// are found from memory, and after a reopen from the log's tail.
    #[tokio::test]
    async fn messages_read_back_across_checkpoints_and_reopens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.redb");
        let store = Store::open_with_cache(&path, 1 << 20).expect("open");
        let ids: Vec<String> = (0..50).map(|c| format!("c{c:02}")).collect();
        // 50 conversations x 100 messages, a commit per 10 messages of one conversation,
        // conversations interleaved as they are live.
        for round in 0..10u64 {
            for id in &ids {
                let first = round * 10 + 1;
                store
                    .commit(appends(id, first..=first + 9))
                    .await
                    .expect("commit");
            }
        }
        let through = indexed_through(&store);
        assert!(
            through >= 4096,
            "a checkpoint ran: indexed through {through}"
        );
        assert!(
            through < 5000,
            "the last messages wait in memory: {through}"
        );
        let check = |store: &Store| {
            for id in &ids {
                let all = store.messages_after(id, 0).expect("read");
                assert_eq!(
                    all.iter().map(|m| m.seq).collect::<Vec<_>>(),
                    (1..=100).collect::<Vec<_>>(),
                    "{id}"
                );
                assert!(all.iter().all(|m| m.text.starts_with(id.as_str())));
                let tail = store.messages_after(id, 95).expect("read");
                assert_eq!(
                    tail.iter().map(|m| m.seq).collect::<Vec<_>>(),
                    [96, 97, 98, 99, 100]
                );
            }
        };
        check(&store);
        drop(store);
        // A clean close indexes the rest.
        let store = Store::open_with_cache(&path, 1 << 20).expect("reopen");
        assert_eq!(indexed_through(&store), 5000);
        check(&store);
    }

    /// As after `kill -9`: log rows past the index mark, which only the log has.
    #[test]
    fn an_open_finds_messages_the_index_never_got() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.redb");
        write_raw(&path, |txn| {
            let mut log = txn.open_table(MESSAGE_LOG).expect("log");
            let mut index = txn.open_table(MESSAGE_INDEX).expect("index");
            let mut meta = txn.open_table(LOG_META).expect("meta");
            for (position, (id, seq)) in [("a", 1), ("b", 1), ("a", 2), ("a", 3), ("a", 2)]
                .into_iter()
                .enumerate()
            {
                let position = position as u64 + 1;
                let mut m = msg(seq, &format!("{id}{seq} at {position}"));
                m.at_ms = position;
                let row = log::encode_row(id, &m).expect("row");
                log.insert(position, row.as_slice()).expect("insert");
                if position <= 2 {
                    let chunk = log::encode_chunk(&[(seq, position)]);
                    index.insert((id, seq), chunk.as_slice()).expect("index");
                }
            }
            meta.insert(log::INDEXED_THROUGH, 2).expect("meta");
        });
        let store = Store::open_with_cache(&path, 1 << 20).expect("open");
        // The rewrite of a2 (position 5) wins over its first version (position 3).
        assert_eq!(texts(&store, "a"), ["a1 at 1", "a2 at 5", "a3 at 4"]);
        assert_eq!(texts(&store, "b"), ["b1 at 2"]);
        // New messages go after the last position, not over it.
        store.commit_blocking(appends("b", 2..=2)).expect("commit");
        assert_eq!(texts(&store, "b"), ["b1 at 2", "b says 2"]);
        assert_eq!(texts(&store, "a").len(), 3);
    }

    /// Runs beside single-message rows of older journals, with the index mark inside a run
    /// (which the writer never leaves, but a reader must not lose messages over).
    #[test]
    fn runs_and_older_rows_are_read_together_from_the_index_and_the_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.redb");
        write_raw(&path, |txn| {
            let mut log = txn.open_table(MESSAGE_LOG).expect("log");
            for (position, (id, seq, text)) in [(1, ("a", 1, "a1")), (2, ("b", 1, "b1"))] {
                let row = log::encode_row(id, &msg(seq, text)).expect("row");
                log.insert(position, row.as_slice()).expect("insert");
            }
            let mut run = log::RunBuilder::new(3);
            for (id, seq, text) in [
                ("a", 2, "a2"),
                ("a", 3, "a3"),
                ("b", 2, "b2"),
                ("a", 2, "a2 rewritten"),
            ] {
                run.push(id, &msg(seq, text)).expect("push");
            }
            let (key, row) = run.finish();
            log.insert(key, row.as_slice()).expect("insert");
            let mut index = txn.open_table(MESSAGE_INDEX).expect("index");
            let a = log::encode_chunk(&[(1, 1), (2, 3), (3, 4)]);
            index.insert(("a", 3), a.as_slice()).expect("index");
            let b = log::encode_chunk(&[(1, 2)]);
            index.insert(("b", 1), b.as_slice()).expect("index");
            let mut meta = txn.open_table(LOG_META).expect("meta");
            meta.insert(log::INDEXED_THROUGH, 4).expect("meta");
        });
        {
            let store = Store::open_with_cache(&path, 1 << 20).expect("open");
            assert_eq!(texts(&store, "a"), ["a1", "a2 rewritten", "a3"]);
            assert_eq!(texts(&store, "b"), ["b1", "b2"]);
            // The next run begins after the last one's last message, not over it.
            store.commit_blocking(appends("b", 3..=4)).expect("commit");
            assert_eq!(texts(&store, "b"), ["b1", "b2", "b says 3", "b says 4"]);
            assert_eq!(texts(&store, "a"), ["a1", "a2 rewritten", "a3"]);
        }
        let store = Store::open_with_cache(&path, 1 << 20).expect("reopen");
        assert_eq!(indexed_through(&store), 8, "the close indexed the new run");
        assert_eq!(texts(&store, "b"), ["b1", "b2", "b says 3", "b says 4"]);
        assert_eq!(texts(&store, "a"), ["a1", "a2 rewritten", "a3"]);
    }

    /// A batch's messages, whatever their conversations, take one log row.
    #[tokio::test]
    async fn a_batch_of_messages_is_one_log_row() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.redb");
        {
            let store = Store::open_with_cache(&path, 1 << 20).expect("open");
            let mut ops = appends("x", 1..=40);
            ops.extend(appends("y", 1..=30));
            ops.push(Op::PutConversation(Box::new(conv("x"))));
            store.commit(ops).await.expect("commit");
            assert_eq!(seqs(&store, "x"), (1..=40).collect::<Vec<_>>());
            assert_eq!(seqs(&store, "y"), (1..=30).collect::<Vec<_>>());
        }
        let db = Database::create(&path).expect("reopen");
        let txn = db.begin_read().expect("read");
        let log = txn.open_table(MESSAGE_LOG).expect("log");
        let rows: Vec<(u64, usize)> = log
            .iter()
            .expect("iter")
            .map(|r| {
                let (k, v) = r.expect("row");
                let n = log::decode_rows(v.value()).expect("decode").len();
                (k.value(), n)
            })
            .collect();
        assert_eq!(rows, [(1, 70)]);
    }

    /// A rewrite of the message that ended an earlier index row lands under the same key:
    /// both rows' messages stay reachable, the rewrite winning.
    #[tokio::test]
    async fn a_rewrite_indexed_under_an_existing_key_keeps_the_other_messages() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.redb");
        {
            let store = Store::open_with_cache(&path, 1 << 20).expect("open");
            store.commit(appends("c", 1..=3)).await.expect("commit");
        }
        {
            // Reopened: the close indexed 1..=3 in one row keyed (c, 3).
            let store = Store::open_with_cache(&path, 1 << 20).expect("reopen");
            assert_eq!(indexed_through(&store), 3);
            store
                .commit(vec![Op::ReplaceMessage {
                    conversation_id: "c".into(),
                    message: Arc::new(msg(3, "three, rewritten")),
                }])
                .await
                .expect("replace");
        }
        let store = Store::open_with_cache(&path, 1 << 20).expect("reopen");
        assert_eq!(indexed_through(&store), 4);
        let texts: Vec<String> = store
            .messages_after("c", 0)
            .expect("read")
            .into_iter()
            .map(|m| m.text)
            .collect();
        assert_eq!(texts, ["c says 1", "c says 2", "three, rewritten"]);
    }

    /// Journals written before the message log keep their messages where they were.
    #[tokio::test]
    async fn messages_of_older_journals_are_read_with_the_new_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.redb");
        {
            let db = Database::create(&path).expect("create");
            let txn = db.begin_write().expect("write");
            {
                let mut old = txn.open_table(MESSAGES).expect("messages");
                for seq in 1..=3 {
                    let m = msg(seq, &format!("old {seq}"));
                    let bytes = serde_json::to_vec(&m).expect("json");
                    old.insert(("c1", seq), bytes.as_slice()).expect("insert");
                }
            }
            txn.commit().expect("commit");
        }
        let store = Store::open_with_cache(&path, 1 << 20).expect("open");
        let mut rewritten = msg(3, "old 3, delivered");
        rewritten.delivery = Some(Box::new(crate::model::DeliveryReport {
            status: handoffd_channels::DeliveryStatus::Delivered,
            at_ms: 7,
            error: None,
        }));
        let mut ops = appends("c1", 4..=5);
        ops.push(Op::ReplaceMessage {
            conversation_id: "c1".into(),
            message: Arc::new(rewritten),
        });
        store.commit(ops).await.expect("commit");
        let texts: Vec<String> = store
            .messages_after("c1", 1)
            .expect("read")
            .into_iter()
            .map(|m| m.text)
            .collect();
        assert_eq!(
            texts,
            ["old 2", "old 3, delivered", "c1 says 4", "c1 says 5"]
        );
    }

    /// Readers racing the writer's checkpoints never miss an acknowledged message.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn readers_see_every_acknowledged_message_while_checkpoints_run() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open_with_cache(&dir.path().join("j.redb"), 1 << 20).expect("open");
        let acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let reader = {
            let store = store.clone();
            let acked = acked.clone();
            std::thread::spawn(move || {
                let mut reads = 0u64;
                loop {
                    let before = acked.load(std::sync::atomic::Ordering::Acquire);
                    let seen = store.messages_after("watched", 0).expect("read").len() as u64;
                    assert!(seen >= before, "{seen} read, {before} acknowledged");
                    reads += 1;
                    if before >= 400 {
                        return reads;
                    }
                }
            })
        };
        // Other conversations fill the log so that checkpoints come often.
        for n in 1..=400u64 {
            let mut ops = appends(&format!("noise{}", n % 7), n * 20..=n * 20 + 19);
            ops.extend(appends("watched", n..=n));
            store.commit(ops).await.expect("commit");
            acked.store(n, std::sync::atomic::Ordering::Release);
        }
        let reads = reader.join().expect("reader");
        assert!(reads > 0);
        assert!(indexed_through(&store) > 4096);
    }

    /// The seqs of a conversation's messages, as read back.
    fn seqs(store: &Store, id: &str) -> Vec<u64> {
        store
            .messages_after(id, 0)
            .expect("read")
            .iter()
            .map(|m| m.seq)
            .collect()
    }

    /// A copy of the journal and its log, as a `kill -9` would leave them.
    fn crash_copy(path: &Path) -> (tempfile::TempDir, std::path::PathBuf) {
        let crashed = tempfile::tempdir().expect("tempdir");
        let copy = crashed.path().join("j.redb");
        std::fs::copy(path, &copy).expect("copy journal");
        let wal_copy = wal_dir(&copy);
        std::fs::create_dir(&wal_copy).expect("mkdir");
        for f in std::fs::read_dir(wal_dir(path)).expect("wal dir") {
            let f = f.expect("entry");
            std::fs::copy(f.path(), wal_copy.join(f.file_name())).expect("copy segment");
        }
        (crashed, copy)
    }

    /// What a `kill -9` leaves: the journal file at its last durable commit (with pages of
    /// later commits that no header names) and the write-ahead log. A copy of both taken
    /// while the store is open and idle is exactly that.
    #[tokio::test]
    async fn acknowledged_writes_survive_a_crash_through_the_write_ahead_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.redb");
        // No durable commit comes by time while the test runs.
        let hour = std::time::Duration::from_secs(3600);
        let store = Store::open_inner(&path, 1 << 20, true, hour).expect("open");
        store
            .commit(vec![Op::PutConversation(Box::new(conv("c1")))])
            .await
            .expect("commit");
        for first in [1, 6, 11, 16] {
            store
                .commit(appends("c1", first..=first + 4))
                .await
                .expect("commit");
        }
        let entry = |id: &str| QueueEntry {
            conversation_id: id.into(),
            team: "support".into(),
            priority: 1,
            enqueued_at_ms: 5,
            ticket: 1,
            only_agent: None,
            preferred_agent: None,
            skills: vec![],
            language: None,
            channel: None,
        };
        store
            .commit(vec![
                Op::PutQueueEntry(entry("q1")),
                Op::PutQueueEntry(entry("q2")),
                Op::PutChannelState {
                    key: "email:cursor".into(),
                    value: b"41".to_vec(),
                },
            ])
            .await
            .expect("commit");
        store
            .commit(vec![Op::DeleteQueueEntry("q1".into())])
            .await
            .expect("commit");

        let (_crashed, copy) = crash_copy(&path);
        // The journal file alone lacks every message: the log is what kept them.
        {
            let db = Database::create(&copy).expect("open the copy");
            let txn = db.begin_read().expect("read");
            let rows = txn
                .open_table(MESSAGE_LOG)
                .expect("log")
                .iter()
                .expect("iter")
                .count();
            assert_eq!(rows, 0, "no durable commit had the messages");
        }

        let check = |s: &Store, last: u64| {
            assert!(s.conversation("c1").expect("read").is_some());
            assert_eq!(seqs(s, "c1"), (1..=last).collect::<Vec<_>>());
            let queue: Vec<String> = s
                .queue_entries()
                .expect("queue")
                .into_iter()
                .map(|q| q.conversation_id)
                .collect();
            assert_eq!(queue, ["q2"], "the removal was replayed too");
            assert_eq!(
                s.channel_state("email:cursor").expect("state").as_deref(),
                Some(&b"41"[..])
            );
        };
        let reopened = Store::open(&copy).expect("reopen after the crash");
        check(&reopened, 20);
        // New writes go on from where the replay left off.
        reopened
            .commit(appends("c1", 21..=21))
            .await
            .expect("commit after the replay");
        drop(reopened);
        let again = Store::open(&copy).expect("reopen");
        check(&again, 21);
        drop(store);
    }

    /// A durable commit holds redb for a long time (here it first sleeps two seconds):
    /// batches go on being answered from the log meanwhile, a read that starts after an
    /// answer sees it (it waits for the commit to end and the kept batches to be applied),
    /// and a crash meanwhile loses nothing answered.
    #[tokio::test]
    async fn batches_are_answered_during_a_slow_durable_commit_and_read_after_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.redb");
        let every = std::time::Duration::from_millis(50);
        let store = Store::open_inner(&path, 1 << 20, true, every).expect("open");
        writer::faults::slow_durable_commits(&wal_dir(&path), std::time::Duration::from_secs(2));
        store
            .commit(vec![Op::PutConversation(Box::new(conv("c1")))])
            .await
            .expect("commit");
        store.commit(appends("c1", 1..=3)).await.expect("commit");
        // Bounded wait for the writer to start the durable commit (50 ms after the writes).
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        store.commit(appends("c1", 4..=6)).await.expect("commit");
        store
            .commit(vec![Op::PutChannelState {
                key: "cursor".into(),
                value: b"7".to_vec(),
            }])
            .await
            .expect("commit");
        assert_eq!(
            store.write_stats().durable,
            0,
            "answered while the durable commit still ran"
        );
        let (_crashed, copy) = crash_copy(&path);

        assert_eq!(
            seqs(&store, "c1"),
            [1, 2, 3, 4, 5, 6],
            "the read saw every answered write"
        );
        assert!(
            store.write_stats().durable >= 1,
            "the read waited for the commit"
        );
        assert_eq!(
            store.channel_state("cursor").expect("state").as_deref(),
            Some(&b"7"[..])
        );
        store.commit(appends("c1", 7..=7)).await.expect("commit");
        drop(store);
        let reopened = Store::open(&path).expect("reopen");
        assert_eq!(reopened.messages_after("c1", 0).expect("read").len(), 7);
        drop(reopened);

        let recovered = Store::open(&copy).expect("open the crash copy");
        assert_eq!(
            seqs(&recovered, "c1"),
            [1, 2, 3, 4, 5, 6],
            "replayed from the log"
        );
    }

    /// A failed fsync of the write-ahead log leaves the batch in doubt: it fails, every
    /// later write fails with the reason, reads go on, and a restart recovers everything
    /// acknowledged before (and the batch in doubt, whose frame did reach the file).
    #[tokio::test]
    async fn a_failed_log_sync_stops_writes_until_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.redb");
        let store = Store::open(&path).expect("open");
        store
            .commit(vec![Op::PutConversation(Box::new(conv("c1")))])
            .await
            .expect("commit");
        store.commit(appends("c1", 1..=3)).await.expect("commit");
        assert_eq!(store.write_failure(), None);

        wal::faults::fail_next_sync(&wal_dir(&path));
        let failed = store.commit(appends("c1", 4..=4)).await;
        assert!(failed.is_err(), "the batch in doubt is not acknowledged");
        let later = store.commit(appends("c1", 5..=5)).await;
        let Err(StoreError::Storage(reason)) = later else {
            panic!("a later write must fail: {later:?}");
        };
        assert!(reason.contains("stopped taking writes"), "{reason}");
        assert!(reason.contains("injected by a test"), "{reason}");
        assert_eq!(store.write_failure().as_deref(), Some(reason.as_str()));
        // Reads still work, and see what was acknowledged.
        assert_eq!(seqs(&store, "c1"), [1, 2, 3]);
        drop(store);

        let reopened = Store::open(&path).expect("reopen");
        assert_eq!(reopened.write_failure(), None);
        assert_eq!(
            seqs(&reopened, "c1"),
            [1, 2, 3, 4],
            "the frame in doubt was on disk after all"
        );
        reopened
            .commit(appends("c1", 5..=5))
            .await
            .expect("writes again after the restart");
    }
}
