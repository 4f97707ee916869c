//! The group-commit writer: one thread, one write transaction per batch of waiting requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use redb::{Database, ReadableTable};
use tokio::sync::oneshot;

use super::log::{
    INDEXED_THROUGH, LogState, MessageLog, decode_chunk, encode_chunk, encode_row, merge_chunks,
};
use super::tables::*;
use super::{Op, StoreError, channel_key};

/// How many requests at most share one transaction; bounds the latency of the first waiter.
const MAX_BATCH: usize = 4096;

/// Messages not yet in the index that make the next commit add their index rows: enough
/// for each conversation's rows to share leaves, few enough that the commit carrying them
/// stays within a few milliseconds and that an open re-reads little of the log.
const CHECKPOINT_ENTRIES: usize = 4096;

/// At rest, messages wait at most this long for their index rows.
const CHECKPOINT_AGE: Duration = Duration::from_secs(1);

struct Request {
    ops: Vec<Op>,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// Counters of the writer, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Write transactions committed.
    pub batches: u64,
    /// Requests acknowledged.
    pub requests: u64,
    /// Ops applied.
    pub ops: u64,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    requests: AtomicU64,
    ops: AtomicU64,
}

/// Sends requests to the writer thread. When the last handle is dropped the thread finishes
/// what is queued and is joined, so the database file is closed once the store is gone.
#[derive(Clone)]
pub struct Writer {
    inner: Arc<Inner>,
    counters: Arc<Counters>,
}

struct Inner {
    tx: Option<mpsc::Sender<Request>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop after the last queued request.
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Writer {
    pub fn start(
        db: Arc<Database>,
        quick_repair: bool,
        log: Arc<MessageLog>,
        state: LogState,
    ) -> Result<Writer, StoreError> {
        let (tx, rx) = mpsc::channel::<Request>();
        let counters = Arc::new(Counters::default());
        let c = counters.clone();
        let log = LogWriter {
            log,
            next_position: state.next_position,
            last_checkpoint: Instant::now(),
        };
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run(db, rx, c, quick_repair, log))
            .map_err(|e| StoreError::Storage(format!("cannot start the writer thread: {e}")))?;
        Ok(Writer {
            inner: Arc::new(Inner {
                tx: Some(tx),
                thread: Some(thread),
            }),
            counters,
        })
    }

    fn submit(
        &self,
        ops: Vec<Op>,
    ) -> Result<oneshot::Receiver<Result<(), StoreError>>, StoreError> {
        let (done, rx) = oneshot::channel();
        self.inner
            .tx
            .as_ref()
            .ok_or(StoreError::Closed)?
            .send(Request { ops, done })
            .map_err(|_| StoreError::Closed)?;
        Ok(rx)
    }

    /// Sends `ops` to the writer thread now; the future resolves once they are durable.
    pub fn submit_ordered(
        &self,
        ops: Vec<Op>,
    ) -> Result<impl std::future::Future<Output = Result<(), StoreError>> + use<>, StoreError> {
        let rx = self.submit(ops)?;
        Ok(async move { rx.await.map_err(|_| StoreError::Closed)? })
    }

    pub async fn commit(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        self.submit(ops)?.await.map_err(|_| StoreError::Closed)?
    }

    pub fn commit_blocking(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        self.submit(ops)?
            .blocking_recv()
            .map_err(|_| StoreError::Closed)?
    }

    pub fn stats(&self) -> WriteStats {
        WriteStats {
            batches: self.counters.batches.load(Ordering::Relaxed),
            requests: self.counters.requests.load(Ordering::Relaxed),
            ops: self.counters.ops.load(Ordering::Relaxed),
        }
    }
}

/// Index rows to write, each conversation's (seq, log position) pairs in index order, and
/// the last log position they cover.
type Checkpoint = (Vec<(String, Vec<(u64, u64)>)>, u64);

/// The writer's side of the message log: the next free position and when the index last
/// caught up.
struct LogWriter {
    log: Arc<MessageLog>,
    next_position: u64,
    last_checkpoint: Instant,
}

impl LogWriter {
    /// The index rows the next commit should add, with the last position they cover; none
    /// while few messages wait and not for long.
    fn due(&self, now: Instant) -> Option<Checkpoint> {
        let waiting = self.log.recent().len();
        let waited = now.duration_since(self.last_checkpoint) >= CHECKPOINT_AGE;
        if waiting < CHECKPOINT_ENTRIES && !(waited && waiting > 0) {
            return None;
        }
        Some(self.unindexed())
    }

    /// Every index row not yet written, with the last position they cover.
    fn unindexed(&self) -> Checkpoint {
        let rows = self.log.recent().chunks();
        // Everything in `recent` was committed before the next commit begins.
        (rows, self.next_position - 1)
    }
}

fn run(
    db: Arc<Database>,
    rx: mpsc::Receiver<Request>,
    counters: Arc<Counters>,
    quick_repair: bool,
    mut log: LogWriter,
) {
    // Block for the first request, then take whatever else is already waiting: under load
    // the batch grows by itself, at rest every request commits alone without delay.
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let ops: u64 = batch.iter().map(|r| r.ops.len() as u64).sum();
        let result = apply(&db, &batch, quick_repair, &mut log);
        if result.is_ok() {
            counters.batches.fetch_add(1, Ordering::Relaxed);
            counters
                .requests
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            counters.ops.fetch_add(ops, Ordering::Relaxed);
        } else {
            tracing::error!(error = ?result, "journal write failed; nothing in the batch is acknowledged");
        }
        for r in batch {
            let _ = r.done.send(result.clone());
        }
    }
    // Closing: index what is left, so the next open has no log tail to read.
    let pending = !log.log.recent().is_empty();
    if pending && let Err(e) = checkpoint_alone(&db, quick_repair, &log) {
        tracing::warn!(error = %e, "final message index checkpoint failed; the next open re-reads the log's tail");
    }
}

/// A commit with nothing but index rows.
fn checkpoint_alone(db: &Database, quick_repair: bool, log: &LogWriter) -> Result<(), StoreError> {
    let (rows, through) = log.unindexed();
    let mut txn = db.begin_write()?;
    txn.set_quick_repair(quick_repair);
    write_index(&txn, &rows, through)?;
    txn.commit()?;
    log.log.recent().prune(through);
    Ok(())
}

/// Adds index rows (sorted as the index is) and moves the mark of how far it reaches.
fn write_index(
    txn: &redb::WriteTransaction,
    rows: &[(String, Vec<(u64, u64)>)],
    through: u64,
) -> Result<(), StoreError> {
    let mut index = txn.open_table(MESSAGE_INDEX)?;
    for (id, pairs) in rows {
        let Some(&(last, _)) = pairs.last() else {
            continue;
        };
        let key = (id.as_str(), last);
        let earlier = index
            .insert(key, encode_chunk(pairs).as_slice())?
            .map(|old| decode_chunk(old.value()))
            .transpose()?;
        // A rewrite of a message whose seq ended an earlier chunk: keep both.
        if let Some(earlier) = earlier {
            index.insert(key, encode_chunk(&merge_chunks(&earlier, pairs)).as_slice())?;
        }
    }
    let mut meta = txn.open_table(LOG_META)?;
    meta.insert(INDEXED_THROUGH, through)?;
    Ok(())
}

fn apply(
    db: &Database,
    batch: &[Request],
    quick_repair: bool,
    log: &mut LogWriter,
) -> Result<(), StoreError> {
    let mut txn = db.begin_write()?;
    // With the allocator state in every commit, opening after a crash reads it back
    // instead of walking the whole file.
    txn.set_quick_repair(quick_repair);
    let now = Instant::now();
    let checkpoint = log.due(now);
    if let Some((rows, through)) = &checkpoint {
        write_index(&txn, rows, *through)?;
    }
    // Positions are taken for good only once the commit succeeds.
    let mut next_position = log.next_position;
    let mut appended: Vec<(&str, u64, u64)> = Vec::new();
    {
        let mut conversations = txn.open_table(CONVERSATIONS)?;
        let mut keys = txn.open_table(CONVERSATION_KEYS)?;
        let mut message_log = txn.open_table(MESSAGE_LOG)?;
        let mut queue = txn.open_table(QUEUE)?;
        let mut assignments = txn.open_table(ASSIGNMENTS)?;
        let mut agents = txn.open_table(AGENTS)?;
        let mut outbox = txn.open_table(OUTBOX)?;
        let mut channel_state = txn.open_table(CHANNEL_STATE)?;
        let mut outbound_refs = txn.open_table(OUTBOUND_REFS)?;
        let mut sla_clocks = txn.open_table(SLA_CLOCKS)?;
        for op in batch.iter().flat_map(|r| r.ops.iter()) {
            match op {
                Op::PutConversation(c) => {
                    conversations.insert(c.id.as_str(), encode(c)?.as_slice())?;
                    // The key of a conversation never changes: writing it on every update
                    // would copy the key table's pages into every commit for nothing.
                    let key = channel_key(c.channel, &c.key);
                    let known = keys.get(key.as_str())?.is_some_and(|v| v.value() == c.id);
                    if !known {
                        keys.insert(key.as_str(), c.id.as_str())?;
                    }
                }
                // A rewrite is appended like a new message; the index then leads to the
                // newer row. The platform id travels inside the row, and the conversation
                // actor rebuilds its duplicate filter from the transcript.
                Op::AppendMessage {
                    conversation_id,
                    message,
                }
                | Op::ReplaceMessage {
                    conversation_id,
                    message,
                } => {
                    let position = next_position;
                    next_position += 1;
                    message_log
                        .insert(position, encode_row(conversation_id, message)?.as_slice())?;
                    appended.push((conversation_id.as_str(), message.seq, position));
                }
                Op::PutQueueEntry(q) => {
                    queue.insert(q.conversation_id.as_str(), encode(q)?.as_slice())?;
                }
                Op::DeleteQueueEntry(id) => {
                    queue.remove(id.as_str())?;
                }
                Op::PutAssignment(a) => {
                    assignments.insert(a.conversation_id.as_str(), encode(a)?.as_slice())?;
                }
                Op::DeleteAssignment(id) => {
                    assignments.remove(id.as_str())?;
                }
                Op::PutAgent(a) => {
                    agents.insert(a.id.as_str(), encode(a)?.as_slice())?;
                }
                Op::PutOutbox(o) => {
                    outbox.insert(o.delivery_id.as_str(), encode(o)?.as_slice())?;
                }
                Op::DeleteOutbox(id) => {
                    outbox.remove(id.as_str())?;
                }
                Op::PutChannelState { key, value } => {
                    channel_state.insert(key.as_str(), value.as_slice())?;
                }
                Op::PutOutboundRef {
                    channel,
                    platform_message_id,
                    target,
                } => {
                    outbound_refs.insert(
                        channel_key(*channel, platform_message_id).as_str(),
                        encode(target)?.as_slice(),
                    )?;
                }
                Op::PutConversationKey {
                    channel,
                    key,
                    conversation_id,
                } => {
                    keys.insert(
                        channel_key(*channel, key).as_str(),
                        conversation_id.as_str(),
                    )?;
                }
                Op::PutSlaClock(c) => {
                    sla_clocks.insert(c.conversation_id.as_str(), encode(c)?.as_slice())?;
                }
                Op::DeleteSlaClock(id) => {
                    sla_clocks.remove(id.as_str())?;
                }
            }
        }
    }
    txn.commit()?;
    log.next_position = next_position;
    let mut recent = log.log.recent();
    if let Some((_, through)) = checkpoint {
        recent.prune(through);
        log.last_checkpoint = now;
    }
    for (id, seq, position) in appended {
        recent.insert(id, seq, position);
    }
    Ok(())
}

fn encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Storage(format!("cannot encode: {e}")))
}
