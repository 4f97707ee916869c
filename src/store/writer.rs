//! The group-commit writer: one thread, one write transaction per batch of waiting requests.
//!
//! A batch is made durable by one frame in the write-ahead log ([`super::wal`]) and then
//! committed to redb without an fsync, so readers see it before its requests are answered.
//! Every [`DURABLE_EVERY`] (sooner when much is waiting) one durable redb commit covers all
//! of that, adds the message index rows ([`super::log`]) and lets the log's old segments go.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use redb::{Database, Durability};
use tokio::sync::oneshot;

use super::log::{
    INDEXED_THROUGH, LogState, MessageLog, WAL_APPLIED, decode_chunk, encode_chunk, encode_row,
    merge_chunks,
};
use super::tables::*;
use super::wal::{Entry, Key, Table, Wal, WalError};
use super::{Op, StoreError, channel_key};

/// How many requests at most share one transaction; bounds the latency of the first waiter.
const MAX_BATCH: usize = 4096;

/// Messages not yet in the index that make the next durable commit come early: enough for
/// each conversation's index rows to share leaves, few enough that the commit carrying them
/// stays within a few milliseconds and that an open re-reads little of the log.
const CHECKPOINT_ENTRIES: usize = 4096;

/// Under load, a batch begins at least this long after the one before it, so more requests
/// share its fsync and transaction. Only after a batch of more than one request (at rest,
/// every request still commits at once): at 10,000 messages/s it halved the writer
/// thread's CPU (31% -> 17% of a core), for about a millisecond more latency at 1,000/s
/// (docs/benchmarks.md). PostgreSQL's `commit_delay` with `commit_siblings` is the same
/// idea.
const GATHER_UNDER_LOAD: Duration = Duration::from_millis(2);

/// How long batches wait at most for a durable redb commit to cover them: what a restart
/// after a crash replays from the write-ahead log, and how often redb writes its allocator
/// state.
pub const DURABLE_EVERY: Duration = Duration::from_millis(500);

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
    /// Durable redb commits (each covers every batch before it).
    pub durable: u64,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    requests: AtomicU64,
    ops: AtomicU64,
    durable: AtomicU64,
    /// Why the writer stopped taking writes, once it has.
    stopped: std::sync::Mutex<Option<String>>,
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
        wal: Wal,
        durable_every: Duration,
    ) -> Result<Writer, StoreError> {
        let (tx, rx) = mpsc::channel::<Request>();
        let counters = Arc::new(Counters::default());
        let journal = Journal {
            db,
            quick_repair,
            wal,
            log,
            next_position: state.next_position,
            last_durable: Instant::now(),
            durable_every,
            dirty: false,
            counters: counters.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run(rx, journal))
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

    /// Why the journal stopped taking writes, if it has (a restart replays the log).
    pub fn stopped(&self) -> Option<String> {
        self.counters
            .stopped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn stats(&self) -> WriteStats {
        WriteStats {
            batches: self.counters.batches.load(Ordering::Relaxed),
            requests: self.counters.requests.load(Ordering::Relaxed),
            ops: self.counters.ops.load(Ordering::Relaxed),
            durable: self.counters.durable.load(Ordering::Relaxed),
        }
    }
}

/// The writer thread's state.
struct Journal {
    db: Arc<Database>,
    quick_repair: bool,
    wal: Wal,
    log: Arc<MessageLog>,
    /// The message log's next free position.
    next_position: u64,
    last_durable: Instant,
    durable_every: Duration,
    /// Batches committed since the last durable commit.
    dirty: bool,
    /// Also holds why writes stopped, if they have (see [`Journal::stop`]).
    counters: Arc<Counters>,
}

fn run(rx: mpsc::Receiver<Request>, mut journal: Journal) {
    let mut last_start = Instant::now();
    let mut last_size = 0usize;
    loop {
        // Block for the first request, then take whatever else is already waiting: under
        // load the batch grows by itself (and waits a little, see GATHER_UNDER_LOAD), at
        // rest every request commits alone without delay.
        let first = if journal.dirty {
            let wait = journal
                .durable_every
                .saturating_sub(journal.last_durable.elapsed());
            match rx.recv_timeout(wait) {
                Ok(r) => r,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    journal.make_durable_or_log();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match rx.recv() {
                Ok(r) => r,
                Err(_) => break,
            }
        };
        if last_size > 1 {
            let since = last_start.elapsed();
            if since < GATHER_UNDER_LOAD {
                std::thread::sleep(GATHER_UNDER_LOAD - since);
            }
        }
        last_start = Instant::now();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        last_size = batch.len();
        let ops: u64 = batch.iter().map(|r| r.ops.len() as u64).sum();
        let result = journal.apply(&batch);
        if result.is_ok() {
            let c = &journal.counters;
            c.batches.fetch_add(1, Ordering::Relaxed);
            c.requests.fetch_add(batch.len() as u64, Ordering::Relaxed);
            c.ops.fetch_add(ops, Ordering::Relaxed);
        } else {
            tracing::error!(error = ?result, "journal write failed; nothing in the batch is acknowledged");
        }
        for r in batch {
            let _ = r.done.send(result.clone());
        }
        if journal.durable_due() {
            journal.make_durable_or_log();
        }
    }
    // Closing: one last durable commit, so the next open has no log to replay and no
    // message log tail to index.
    if journal.dirty || !journal.log.recent().is_empty() {
        journal.make_durable_or_log();
    }
}

impl Journal {
    /// Whether the batches since the last durable commit should be covered now.
    fn durable_due(&self) -> bool {
        self.dirty
            && (self.last_durable.elapsed() >= self.durable_every
                || self.log.recent().len() >= CHECKPOINT_ENTRIES
                || self.wal.since_durable() >= super::wal::SEGMENT_BYTES)
    }

    fn make_durable_or_log(&mut self) {
        if let Err(e) = self.make_durable() {
            tracing::error!(error = %e, "durable journal commit failed; the write-ahead log keeps what it would have covered");
        }
    }

    /// One durable redb commit: everything committed before it, the index rows of the
    /// messages waiting for them, and the last frame of the write-ahead log it covers.
    fn make_durable(&mut self) -> Result<(), StoreError> {
        if let Some(e) = self.stopped() {
            return Err(e);
        }
        let lsn = self.wal.last_lsn();
        let (rows, through) = {
            let recent = self.log.recent();
            (recent.chunks(), self.next_position.saturating_sub(1))
        };
        let result = (|| {
            let mut txn = self.db.begin_write()?;
            // With the allocator state in every durable commit, opening after a crash reads
            // it back instead of walking the whole file.
            txn.set_quick_repair(self.quick_repair);
            if !rows.is_empty() {
                write_index(&txn, &rows, through)?;
            }
            txn.open_table(LOG_META)?.insert(WAL_APPLIED, lsn)?;
            txn.commit()?;
            Ok::<_, StoreError>(())
        })();
        if let Err(e) = result {
            self.stop(&e);
            return Err(e);
        }
        if !rows.is_empty() {
            self.log.recent().prune(through);
        }
        self.dirty = false;
        self.last_durable = Instant::now();
        self.counters.durable.fetch_add(1, Ordering::Relaxed);
        self.wal.durable_through(lsn)
    }

    fn apply(&mut self, batch: &[Request]) -> Result<(), StoreError> {
        if let Some(e) = self.stopped() {
            return Err(e);
        }
        let mut txn = self.db.begin_write()?;
        // Durable through the write-ahead log; redb's own fsync waits for a durable commit.
        txn.set_durability(Durability::None)
            .map_err(|e| StoreError::Storage(e.to_string()))?;
        txn.set_quick_repair(false);
        // Positions are taken for good only once the commit succeeds.
        let mut next_position = self.next_position;
        let mut appended: Vec<(&str, u64, u64)> = Vec::new();
        if let Err(e) = write_ops(
            &txn,
            &mut self.wal,
            batch,
            &mut next_position,
            &mut appended,
        ) {
            // Dropping the transaction aborts it: nothing of the batch is anywhere.
            self.wal.discard();
            return Err(e);
        }
        match self.wal.sync() {
            Ok(_) => {}
            Err(WalError::Write(e)) => return Err(e),
            Err(WalError::InDoubt(e)) => {
                self.stop(&e);
                return Err(e);
            }
        }
        if let Err(e) = txn.commit() {
            // The frame is durable, redb does not have it: only a replay can reconcile them.
            let e = StoreError::from(e);
            self.stop(&e);
            return Err(e);
        }
        self.dirty = true;
        self.next_position = next_position;
        let mut recent = self.log.recent();
        for (id, seq, position) in appended {
            recent.insert(id, seq, position);
        }
        Ok(())
    }

    /// No more writes after a failure that leaves the log or redb in doubt; says why from
    /// then on, to every request and to `/readyz`.
    fn stop(&mut self, cause: &StoreError) {
        let reason = format!(
            "the journal stopped taking writes after a failure ({cause}); restart the daemon to recover what was acknowledged"
        );
        tracing::error!(%reason, "journal writes stopped");
        *self
            .counters
            .stopped
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(reason);
    }

    /// The error every write gets once writes stopped.
    fn stopped(&self) -> Option<StoreError> {
        self.counters
            .stopped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .map(StoreError::Storage)
    }
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

/// Makes one write in redb and records it in the frame being built.
fn put(
    tables: &mut Tables<'_>,
    wal: &mut Wal,
    table: Table,
    key: Key<'_>,
    value: &[u8],
) -> Result<(), StoreError> {
    let entry = Entry::Put { table, key, value };
    tables.write(&entry)?;
    wal.record(&entry);
    Ok(())
}

fn remove(
    tables: &mut Tables<'_>,
    wal: &mut Wal,
    table: Table,
    key: &str,
) -> Result<(), StoreError> {
    let entry = Entry::Remove {
        table,
        key: Key::Text(key),
    };
    tables.write(&entry)?;
    wal.record(&entry);
    Ok(())
}

/// Turns a batch's ops into table writes, made in `txn` and recorded in the log's frame.
fn write_ops<'b>(
    txn: &redb::WriteTransaction,
    wal: &mut Wal,
    batch: &'b [Request],
    next_position: &mut u64,
    appended: &mut Vec<(&'b str, u64, u64)>,
) -> Result<(), StoreError> {
    let mut tables = Tables::open(txn)?;
    let t = &mut tables;
    for op in batch.iter().flat_map(|r| r.ops.iter()) {
        match op {
            Op::PutConversation(c) => {
                put(t, wal, Table::Conversations, Key::Text(&c.id), &encode(c)?)?;
                // The key of a conversation never changes: writing it on every update
                // would copy the key table's pages into every commit for nothing.
                let key = channel_key(c.channel, &c.key);
                if !t.key_leads_to(&key, &c.id)? {
                    put(
                        t,
                        wal,
                        Table::ConversationKeys,
                        Key::Text(&key),
                        c.id.as_bytes(),
                    )?;
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
                let position = *next_position;
                *next_position += 1;
                let row = encode_row(conversation_id, message)?;
                put(t, wal, Table::MessageLog, Key::Position(position), &row)?;
                appended.push((conversation_id.as_str(), message.seq, position));
            }
            Op::PutQueueEntry(q) => {
                put(
                    t,
                    wal,
                    Table::Queue,
                    Key::Text(&q.conversation_id),
                    &encode(q)?,
                )?;
            }
            Op::DeleteQueueEntry(id) => remove(t, wal, Table::Queue, id)?,
            Op::PutAssignment(a) => {
                let key = Key::Text(&a.conversation_id);
                put(t, wal, Table::Assignments, key, &encode(a)?)?;
            }
            Op::DeleteAssignment(id) => remove(t, wal, Table::Assignments, id)?,
            Op::PutAgent(a) => put(t, wal, Table::Agents, Key::Text(&a.id), &encode(a)?)?,
            Op::PutOutbox(o) => {
                put(
                    t,
                    wal,
                    Table::Outbox,
                    Key::Text(&o.delivery_id),
                    &encode(o)?,
                )?;
            }
            Op::DeleteOutbox(id) => remove(t, wal, Table::Outbox, id)?,
            Op::PutChannelState { key, value } => {
                put(t, wal, Table::ChannelState, Key::Text(key), value)?;
            }
            Op::PutOutboundRef {
                channel,
                platform_message_id,
                target,
            } => {
                let key = channel_key(*channel, platform_message_id);
                put(
                    t,
                    wal,
                    Table::OutboundRefs,
                    Key::Text(&key),
                    &encode(target)?,
                )?;
            }
            Op::PutConversationKey {
                channel,
                key,
                conversation_id,
            } => {
                let key = channel_key(*channel, key);
                let id = conversation_id.as_bytes();
                put(t, wal, Table::ConversationKeys, Key::Text(&key), id)?;
            }
            Op::PutSlaClock(c) => {
                put(
                    t,
                    wal,
                    Table::SlaClocks,
                    Key::Text(&c.conversation_id),
                    &encode(c)?,
                )?;
            }
            Op::DeleteSlaClock(id) => remove(t, wal, Table::SlaClocks, id)?,
        }
    }
    Ok(())
}

fn encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Storage(format!("cannot encode: {e}")))
}
