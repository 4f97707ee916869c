//! The group-commit writer: one thread, one write transaction per batch of waiting requests.
//!
//! A batch is made durable by one frame in the write-ahead log ([`super::wal`]) and then
//! committed to redb without an fsync, so readers see it before its requests are answered.
//! Every [`DURABLE_EVERY`] (sooner when much is waiting) one durable redb commit covers all
//! of that, adds the message index rows ([`super::log`]) and lets the log's old segments go.
//!
//! The durable commit runs on a thread of its own, since it takes tens of milliseconds on a
//! large journal (quick repair rewrites redb's allocator state, which grows with the file).
//! Meanwhile redb is busy, so batches are made durable in the log and answered, and their
//! writes wait in memory until the commit ends; readers that come meanwhile wait for them
//! ([`Visibility`]), so a read that starts after an answer still sees what was answered.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};

use redb::{Database, Durability};
use tokio::sync::oneshot;

use super::log::{
    INDEXED_THROUGH, LogState, MessageLog, RunBuilder, WAL_APPLIED, decode_chunk, encode_chunk,
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

/// What the writer thread waits for.
enum Msg {
    Request(Request),
    /// The durable commit running on its own thread has ended.
    DurableDone(Result<(), StoreError>),
    /// The last handle is gone: finish and close.
    Close,
}

/// Longest a reader waits for batches answered during a durable commit. Only a stalled
/// disk or a writer thread that died makes it wait that long; the read then goes on without
/// them, with a warning, rather than hang its thread.
const VISIBILITY_WAIT: Duration = Duration::from_secs(5);

/// Batches answered from the log while a durable commit held redb, not yet applied:
/// readers wait until there are none, so nothing answered is missing from what they read.
#[derive(Default)]
pub struct Visibility {
    waiting: AtomicU64,
    lock: Mutex<()>,
    applied: Condvar,
}

impl Visibility {
    /// Returns once every answered batch is in redb (at once, nearly always).
    pub fn wait(&self) {
        if self.waiting.load(Ordering::Acquire) == 0 {
            return;
        }
        let deadline = Instant::now() + VISIBILITY_WAIT;
        let mut guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        while self.waiting.load(Ordering::Acquire) > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!("reading before answered writes reached the journal");
                return;
            }
            guard = self
                .applied
                .wait_timeout(guard, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Called before a deferred batch is answered.
    fn add(&self) {
        self.waiting.fetch_add(1, Ordering::AcqRel);
    }

    /// Every deferred batch is applied (or writes stopped): readers go on.
    fn clear(&self) {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.waiting.store(0, Ordering::Release);
        self.applied.notify_all();
    }
}

/// A write kept for later, owning its bytes.
struct LaterWrite {
    table: Table,
    key: LaterKey,
    value: Option<Vec<u8>>,
}

enum LaterKey {
    Text(String),
    Position(u64),
}

impl LaterWrite {
    fn of(entry: &Entry<'_>) -> LaterWrite {
        let (table, key, value) = entry.parts();
        LaterWrite {
            table,
            key: match key {
                Key::Text(t) => LaterKey::Text(t.to_string()),
                Key::Position(p) => LaterKey::Position(p),
            },
            value: value.map(<[u8]>::to_vec),
        }
    }

    fn entry(&self) -> Entry<'_> {
        let key = match &self.key {
            LaterKey::Text(t) => Key::Text(t),
            LaterKey::Position(p) => Key::Position(*p),
        };
        match &self.value {
            Some(value) => Entry::Put {
                table: self.table,
                key,
                value,
            },
            None => Entry::Remove {
                table: self.table,
                key,
            },
        }
    }
}

/// Where a batch's writes go besides the log's frame.
enum Sink<'t, 'l> {
    /// Into the batch's redb transaction.
    Now(&'l mut Tables<'t>),
    /// Kept until the durable commit holding redb ends.
    Later(&'l mut Vec<LaterWrite>),
}

impl Sink<'_, '_> {
    fn write(&mut self, entry: &Entry<'_>) -> Result<(), StoreError> {
        match self {
            Sink::Now(tables) => tables.write(entry),
            Sink::Later(writes) => {
                writes.push(LaterWrite::of(entry));
                Ok(())
            }
        }
    }

    /// Whether `key` already leads to `conversation_id`; kept writes always write it (an
    /// earlier kept batch may have changed it).
    fn key_leads_to(&self, key: &str, conversation_id: &str) -> Result<bool, StoreError> {
        match self {
            Sink::Now(tables) => tables.key_leads_to(key, conversation_id),
            Sink::Later(_) => Ok(false),
        }
    }
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
    visibility: Arc<Visibility>,
}

struct Inner {
    tx: Option<mpsc::Sender<Msg>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The thread finishes the queued requests first, then closes.
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Msg::Close);
        }
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
        let (tx, rx) = mpsc::channel::<Msg>();
        let counters = Arc::new(Counters::default());
        let visibility = Arc::new(Visibility::default());
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
            durable_running: None,
            later: Vec::new(),
            later_appended: Vec::new(),
            visibility: visibility.clone(),
            tx: tx.clone(),
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
            visibility,
        })
    }

    /// Waits until every answered write is readable (see [`Visibility`]).
    pub fn wait_visible(&self) {
        self.visibility.wait();
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
            .send(Msg::Request(Request { ops, done }))
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
    /// The durable commit running on its own thread, if one is.
    durable_running: Option<RunningDurable>,
    /// Writes of the batches answered while it runs, in order, and their messages' log
    /// positions; applied when it ends.
    later: Vec<LaterWrite>,
    later_appended: Vec<(String, u64, u64)>,
    visibility: Arc<Visibility>,
    /// For the durable commit's thread to say it has ended.
    tx: mpsc::Sender<Msg>,
}

/// What a running durable commit covers.
struct RunningDurable {
    /// The last log frame it holds, and the log's bytes through it since the last one.
    lsn: u64,
    covered_bytes: u64,
    /// The last log position its index rows cover, when it carries any.
    indexed_through: Option<u64>,
    started: Instant,
}

fn run(rx: mpsc::Receiver<Msg>, mut journal: Journal) {
    let mut last_start = Instant::now();
    let mut last_size = 0usize;
    let mut closing = false;
    loop {
        if closing && journal.durable_running.is_none() {
            break;
        }
        // Block for the first request, then take whatever else is already waiting: under
        // load the batch grows by itself (and waits a little, see GATHER_UNDER_LOAD), at
        // rest every request commits alone without delay.
        let first = if journal.dirty && journal.durable_running.is_none() && !closing {
            let wait = journal
                .durable_every
                .saturating_sub(journal.last_durable.elapsed());
            match rx.recv_timeout(wait) {
                Ok(m) => m,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    journal.start_durable();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match rx.recv() {
                Ok(m) => m,
                Err(_) => break,
            }
        };
        let first = match first {
            Msg::Request(r) => r,
            Msg::DurableDone(result) => {
                journal.end_durable(result);
                continue;
            }
            Msg::Close => {
                closing = true;
                continue;
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
        let mut after = Vec::new();
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(Msg::Request(r)) => batch.push(r),
                // Handled once this batch is answered.
                Ok(other) => {
                    after.push(other);
                    break;
                }
                Err(_) => break,
            }
        }
        last_size = batch.len();
        let ops: u64 = batch.iter().map(|r| r.ops.len() as u64).sum();
        let result = if journal.durable_running.is_some() {
            journal.keep(&batch)
        } else {
            journal.apply(&batch)
        };
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
        for m in after {
            match m {
                Msg::DurableDone(result) => journal.end_durable(result),
                Msg::Close => closing = true,
                Msg::Request(_) => {}
            }
        }
        if journal.durable_due() {
            journal.start_durable();
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
            && self.durable_running.is_none()
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
        let (lsn, covered) = (self.wal.last_lsn(), self.wal.since_durable());
        let (rows, through) = {
            let recent = self.log.recent();
            (recent.chunks(), self.next_position.saturating_sub(1))
        };
        let result = durable_commit(&self.db, self.quick_repair, &rows, through, lsn);
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
        self.wal.durable_through(lsn, covered)
    }

    /// Starts a durable commit on a thread of its own; batches are kept in memory until it
    /// ends ([`Journal::end_durable`]). Falls back to committing here if no thread starts.
    fn start_durable(&mut self) {
        if self.durable_running.is_some() {
            return;
        }
        if self.stopped().is_some() {
            // Nothing can be made durable any more (the log keeps it for the restart); do
            // not come back every time the timer would.
            self.dirty = false;
            return;
        }
        let (lsn, covered_bytes) = (self.wal.last_lsn(), self.wal.since_durable());
        let (rows, through) = {
            let recent = self.log.recent();
            (recent.chunks(), self.next_position.saturating_sub(1))
        };
        let indexed_through = (!rows.is_empty()).then_some(through);
        let db = self.db.clone();
        let quick_repair = self.quick_repair;
        let tx = self.tx.clone();
        #[cfg(test)]
        let delay = faults::durable_delay(self.wal.dir());
        let spawned = std::thread::Builder::new()
            .name("store-durable".into())
            .spawn(move || {
                #[cfg(test)]
                std::thread::sleep(delay);
                let result = durable_commit(&db, quick_repair, &rows, through, lsn);
                let _ = tx.send(Msg::DurableDone(result));
            });
        match spawned {
            Ok(_) => {
                self.durable_running = Some(RunningDurable {
                    lsn,
                    covered_bytes,
                    indexed_through,
                    started: Instant::now(),
                })
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot start a thread for the durable commit; making it here");
                self.make_durable_or_log();
            }
        }
    }

    /// The durable commit has ended: the log behind it goes, and the batches kept meanwhile
    /// are applied in one transaction and become readable.
    fn end_durable(&mut self, result: Result<(), StoreError>) {
        let Some(running) = self.durable_running.take() else {
            return;
        };
        match result {
            Ok(()) => {
                if let Some(through) = running.indexed_through {
                    self.log.recent().prune(through);
                }
                self.dirty = false;
                self.last_durable = running.started;
                self.counters.durable.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = self.wal.durable_through(running.lsn, running.covered_bytes) {
                    tracing::error!(error = %e, "cannot remove covered write-ahead log segments");
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "durable journal commit failed; the write-ahead log keeps what it would have covered");
                self.stop(&e);
            }
        }
        if let Err(e) = self.apply_kept() {
            // Their frames are durable and redb does not have them: only a replay can
            // reconcile the two.
            self.stop(&e);
        }
        self.visibility.clear();
    }

    fn apply_kept(&mut self) -> Result<(), StoreError> {
        if self.later.is_empty() {
            return Ok(());
        }
        let writes = std::mem::take(&mut self.later);
        let appended = std::mem::take(&mut self.later_appended);
        if let Some(e) = self.stopped() {
            return Err(e);
        }
        let txn = self.begin_logged()?;
        {
            let mut tables = Tables::open(&txn)?;
            for w in &writes {
                tables.write(&w.entry())?;
            }
        }
        txn.commit()?;
        self.dirty = true;
        let mut recent = self.log.recent();
        for (id, seq, position) in &appended {
            recent.insert(id, *seq, *position);
        }
        Ok(())
    }

    /// A batch while a durable commit holds redb: made durable in the log and kept, to be
    /// applied when the commit ends. Readers wait for it meanwhile.
    fn keep(&mut self, batch: &[Request]) -> Result<(), StoreError> {
        if let Some(e) = self.stopped() {
            return Err(e);
        }
        let mut next_position = self.next_position;
        let mut appended: Vec<(&str, u64, u64)> = Vec::new();
        let kept_before = self.later.len();
        let framed = frame_batch(
            &mut Sink::Later(&mut self.later),
            &mut self.wal,
            batch,
            &mut next_position,
            &mut appended,
        );
        if let Err(e) = framed {
            self.later.truncate(kept_before);
            return Err(self.failed(e));
        }
        self.next_position = next_position;
        self.later_appended.extend(
            appended
                .into_iter()
                .map(|(id, seq, position)| (id.to_string(), seq, position)),
        );
        self.visibility.add();
        Ok(())
    }

    /// A write transaction for writes the write-ahead log already made durable: redb's own
    /// fsync waits for a durable commit.
    fn begin_logged(&self) -> Result<redb::WriteTransaction, StoreError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::None)
            .map_err(|e| StoreError::Storage(e.to_string()))?;
        txn.set_quick_repair(false);
        Ok(txn)
    }

    fn apply(&mut self, batch: &[Request]) -> Result<(), StoreError> {
        if let Some(e) = self.stopped() {
            return Err(e);
        }
        let txn = self.begin_logged()?;
        // Positions are taken for good only once the commit succeeds.
        let mut next_position = self.next_position;
        let mut appended: Vec<(&str, u64, u64)> = Vec::new();
        let framed = Tables::open(&txn)
            .map_err(WalError::Write)
            .and_then(|mut tables| {
                frame_batch(
                    &mut Sink::Now(&mut tables),
                    &mut self.wal,
                    batch,
                    &mut next_position,
                    &mut appended,
                )
            });
        if let Err(e) = framed {
            // Dropping the transaction aborts it: nothing of the batch is anywhere.
            return Err(self.failed(e));
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

    /// The error a batch that failed in the log gets; a log left in doubt stops all writes.
    fn failed(&mut self, e: WalError) -> StoreError {
        match e {
            WalError::Write(e) => e,
            WalError::InDoubt(e) => {
                self.stop(&e);
                e
            }
        }
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

/// One durable redb commit: the index rows, the mark of the last log frame it holds, and
/// (with quick repair) redb's allocator state.
fn durable_commit(
    db: &Database,
    quick_repair: bool,
    rows: &[(String, Vec<(u64, u64)>)],
    through: u64,
    lsn: u64,
) -> Result<(), StoreError> {
    let mut txn = db.begin_write()?;
    // With the allocator state in every durable commit, opening after a crash reads it back
    // instead of walking the whole file.
    txn.set_quick_repair(quick_repair);
    if !rows.is_empty() {
        write_index(&txn, rows, through)?;
    }
    txn.open_table(LOG_META)?.insert(WAL_APPLIED, lsn)?;
    txn.commit()?;
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

/// Makes one write in redb and records it in the frame being built.
fn put(
    tables: &mut Sink<'_, '_>,
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
    tables: &mut Sink<'_, '_>,
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

/// Turns a batch's ops into writes in `sink` and one frame of the log, made durable; a
/// batch that fails before its frame is written leaves nothing in the log.
fn frame_batch<'b>(
    sink: &mut Sink<'_, '_>,
    wal: &mut Wal,
    batch: &'b [Request],
    next_position: &mut u64,
    appended: &mut Vec<(&'b str, u64, u64)>,
) -> Result<(), WalError> {
    if let Err(e) = write_ops(sink, wal, batch, next_position, appended) {
        wal.discard();
        return Err(WalError::Write(e));
    }
    wal.sync().map(drop)
}

/// Turns a batch's ops into table writes, made in `sink` and recorded in the log's frame.
fn write_ops<'b>(
    t: &mut Sink<'_, '_>,
    wal: &mut Wal,
    batch: &'b [Request],
    next_position: &mut u64,
    appended: &mut Vec<(&'b str, u64, u64)>,
) -> Result<(), StoreError> {
    // The batch's messages go to the log as one run (or a few, if it is very large).
    let mut run = RunBuilder::new(*next_position);
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
                let position = run.push(conversation_id, message)?;
                appended.push((conversation_id.as_str(), message.seq, position));
                if run.is_full() {
                    let next = RunBuilder::new(run.next_position());
                    write_run(t, wal, std::mem::replace(&mut run, next))?;
                }
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
    *next_position = run.next_position();
    write_run(t, wal, run)
}

/// Writes a run of messages as one log row, unless it is empty.
fn write_run(t: &mut Sink<'_, '_>, wal: &mut Wal, run: RunBuilder) -> Result<(), StoreError> {
    if run.is_empty() {
        return Ok(());
    }
    let (first, row) = run.finish();
    put(t, wal, Table::MessageLog, Key::Position(first), &row)
}

fn encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Storage(format!("cannot encode: {e}")))
}

/// Test-only faults of the durable commit, keyed by the log's directory.
#[cfg(test)]
pub mod faults {
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;
    use std::time::Duration;

    static SLOW: Mutex<Option<HashMap<PathBuf, Duration>>> = Mutex::new(None);

    /// Every durable commit of the journal whose log is in `dir` first waits `delay`.
    pub fn slow_durable_commits(dir: &Path, delay: Duration) {
        SLOW.lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_with(HashMap::new)
            .insert(dir.to_path_buf(), delay);
    }

    pub(super) fn durable_delay(dir: &Path) -> Duration {
        SLOW.lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .and_then(|m| m.get(dir).copied())
            .unwrap_or_default()
    }
}
