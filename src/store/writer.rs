//! The group-commit writer: one thread, one write transaction per batch of waiting requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use redb::{Database, ReadableTable};
use tokio::sync::oneshot;

use super::tables::*;
use super::{Op, StoreError, channel_key};

/// How many requests at most share one transaction; bounds the latency of the first waiter.
const MAX_BATCH: usize = 4096;

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
    pub fn start(db: Arc<Database>, quick_repair: bool) -> Result<Writer, StoreError> {
        let (tx, rx) = mpsc::channel::<Request>();
        let counters = Arc::new(Counters::default());
        let c = counters.clone();
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run(db, rx, c, quick_repair))
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

fn run(
    db: Arc<Database>,
    rx: mpsc::Receiver<Request>,
    counters: Arc<Counters>,
    quick_repair: bool,
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
        let result = apply(&db, &batch, quick_repair);
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
}

fn apply(db: &Database, batch: &[Request], quick_repair: bool) -> Result<(), StoreError> {
    let mut txn = db.begin_write()?;
    // With the allocator state in every commit, opening after a crash reads it back
    // instead of walking the whole file.
    txn.set_quick_repair(quick_repair);
    {
        let mut conversations = txn.open_table(CONVERSATIONS)?;
        let mut keys = txn.open_table(CONVERSATION_KEYS)?;
        let mut messages = txn.open_table(MESSAGES)?;
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
                Op::AppendMessage {
                    conversation_id,
                    message,
                } => {
                    // The platform id travels inside the message row, and the conversation
                    // actor rebuilds its duplicate filter from the transcript: a separate
                    // platform-id index row would be one more B-tree leaf copied into every
                    // commit that nothing reads.
                    messages.insert(
                        (conversation_id.as_str(), message.seq),
                        encode(message)?.as_slice(),
                    )?;
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
                Op::ReplaceMessage {
                    conversation_id,
                    message,
                } => {
                    messages.insert(
                        (conversation_id.as_str(), message.seq),
                        encode(message)?.as_slice(),
                    )?;
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
    Ok(())
}

fn encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Storage(format!("cannot encode: {e}")))
}
