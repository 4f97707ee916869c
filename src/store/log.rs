//! The message log: where journaled messages go.
//!
//! Keyed by (conversation id, seq), every group commit copied one B-tree leaf per
//! conversation it touched: with a thousand conversations chatting at once, a commit of
//! seventy turns wrote over a hundred 4 KiB pages for seventy kilobytes of messages. Here
//! every message is appended under the next position of one growing key instead, so a
//! commit dirties only the few pages at the log's end. A batch's messages share one row (a
//! run, [`RunBuilder`]) keyed by the first one's position.
//!
//! A conversation finds its messages through the index: rows keyed (conversation id,
//! highest seq) whose value lists the (seq, position) pairs of that conversation's messages
//! indexed together. The index is not written with each commit: the writer adds the pairs
//! of a few thousand messages at once (a checkpoint), one row per conversation, so a
//! checkpoint costs one B-tree insert per conversation rather than one per message. A
//! message rewritten later is appended again; its newest version is the one at the highest
//! position, whatever row or memory names it. Until then the positions live in memory ([`Recent`]); the journal records
//! how far the index reaches, and opening it rebuilds [`Recent`] from the log's tail, so a
//! crash loses nothing the log has.
//!
//! Readers and the writer agree through one lock: a reader takes its read transaction and
//! its copy of [`Recent`] under the lock, and the writer changes [`Recent`] only under it
//! and only after the commit that makes the change true. Whatever the reader's snapshot
//! lacks from the index, its copy of [`Recent`] still has.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use redb::{Database, ReadTransaction, ReadableDatabase};

use super::StoreError;
use super::tables::{LOG_META, MESSAGE_INDEX, MESSAGE_LOG, MESSAGES};
use crate::model::MessageRecord;

/// Key in [`LOG_META`]: every log position up to this one has its index row.
pub const INDEXED_THROUGH: &str = "indexed_through";

/// Key in [`LOG_META`]: the last write-ahead log frame a durable commit holds (see
/// [`super::wal`]).
pub const WAL_APPLIED: &str = "wal_applied";

/// First byte of a log row holding one message: the layout of journals written before
/// rows held runs. Still read; no longer written.
const ROW_SINGLE: u8 = 1;

/// First byte of a log row holding a run of messages at consecutive positions.
const ROW_RUN: u8 = 2;

/// A run stops growing past this many messages or bytes, so one row stays a few pages and
/// reading one message out of it walks a bounded number of headers.
pub const RUN_MAX_MESSAGES: u32 = 256;
pub const RUN_MAX_BYTES: usize = 256 * 1024;

/// One message of a log row, read without decoding the message itself.
#[derive(Debug, PartialEq, Eq)]
pub struct Row<'a> {
    pub conversation_id: &'a str,
    pub seq: u64,
    /// The message, as JSON.
    pub message: &'a [u8],
}

/// The messages of one batch, gathered into one log row keyed by the first one's position.
///
/// A row per message cost one B-tree insert per message, about a third of the writer's
/// instructions per customer turn (docs/benchmarks.md); a run costs one per batch. The
/// message at position `p` is entry `p - key` of the row with the greatest key `<= p`.
///
/// Layout: the version byte, the count (u32), then per message the conversation id's
/// length (u16) and bytes, the seq (u64), the message's length (u32) and its JSON, all
/// little-endian. The headers let the log's tail be re-indexed at open without parsing JSON.
#[derive(Debug)]
pub struct RunBuilder {
    first: u64,
    count: u32,
    bytes: Vec<u8>,
}

impl RunBuilder {
    /// An empty run whose first message will live at `first`.
    pub fn new(first: u64) -> RunBuilder {
        let mut bytes = Vec::with_capacity(8 * 1024);
        bytes.push(ROW_RUN);
        bytes.extend_from_slice(&0u32.to_le_bytes());
        RunBuilder {
            first,
            count: 0,
            bytes,
        }
    }

    /// Adds a message at the next position, which it returns.
    pub fn push(
        &mut self,
        conversation_id: &str,
        message: &MessageRecord,
    ) -> Result<u64, StoreError> {
        let id = conversation_id.as_bytes();
        let id_len = u16::try_from(id.len())
            .map_err(|_| StoreError::Storage("conversation id longer than 65535 bytes".into()))?;
        let start = self.bytes.len();
        self.bytes.extend_from_slice(&id_len.to_le_bytes());
        self.bytes.extend_from_slice(id);
        self.bytes.extend_from_slice(&message.seq.to_le_bytes());
        let len_at = self.bytes.len();
        self.bytes.extend_from_slice(&0u32.to_le_bytes());
        let encoded = serde_json::to_writer(&mut self.bytes, message)
            .map_err(|e| StoreError::Storage(format!("cannot encode: {e}")))
            .and_then(|()| {
                u32::try_from(self.bytes.len() - len_at - 4)
                    .map_err(|_| StoreError::Storage("message longer than 4 GiB".into()))
            });
        let len = match encoded {
            Ok(len) => len,
            Err(e) => {
                self.bytes.truncate(start);
                return Err(e);
            }
        };
        self.bytes[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
        let position = self.first + u64::from(self.count);
        self.count += 1;
        Ok(position)
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether the run should be written and a new one begun.
    pub fn is_full(&self) -> bool {
        self.count >= RUN_MAX_MESSAGES || self.bytes.len() >= RUN_MAX_BYTES
    }

    /// The position the next run begins at.
    pub fn next_position(&self) -> u64 {
        self.first + u64::from(self.count)
    }

    /// The row's key and bytes.
    pub fn finish(mut self) -> (u64, Vec<u8>) {
        self.bytes[1..5].copy_from_slice(&self.count.to_le_bytes());
        (self.first, self.bytes)
    }
}

/// A row of the single-message layout (journals written before runs): version, the
/// conversation id with its length, seq, then the message as JSON.
#[cfg(test)]
pub fn encode_row(conversation_id: &str, message: &MessageRecord) -> Result<Vec<u8>, StoreError> {
    let id = conversation_id.as_bytes();
    let id_len = u16::try_from(id.len())
        .map_err(|_| StoreError::Storage("conversation id longer than 65535 bytes".into()))?;
    let mut out = Vec::with_capacity(1 + 2 + id.len() + 8 + 384);
    out.push(ROW_SINGLE);
    out.extend_from_slice(&id_len.to_le_bytes());
    out.extend_from_slice(id);
    out.extend_from_slice(&message.seq.to_le_bytes());
    serde_json::to_writer(&mut out, message)
        .map_err(|e| StoreError::Storage(format!("cannot encode: {e}")))?;
    Ok(out)
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("message log row: {what}"))
}

/// Takes `n` bytes off the front of `rest`.
fn take<'a>(rest: &mut &'a [u8], n: usize, what: &str) -> Result<&'a [u8], StoreError> {
    let (head, tail) = rest
        .split_at_checked(n)
        .ok_or_else(|| corrupt(&format!("truncated {what}")))?;
    *rest = tail;
    Ok(head)
}

fn take_u16(rest: &mut &[u8], what: &str) -> Result<u16, StoreError> {
    let b = take(rest, 2, what)?;
    Ok(u16::from_le_bytes([b[0], b[1]]))
}

fn take_u32(rest: &mut &[u8], what: &str) -> Result<u32, StoreError> {
    let b = take(rest, 4, what)?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn take_u64(rest: &mut &[u8], what: &str) -> Result<u64, StoreError> {
    let b = take(rest, 8, what)?;
    let mut word = [0u8; 8];
    word.copy_from_slice(b);
    Ok(u64::from_le_bytes(word))
}

fn take_id<'a>(rest: &mut &'a [u8]) -> Result<&'a str, StoreError> {
    let len = take_u16(rest, "id length")? as usize;
    std::str::from_utf8(take(rest, len, "id")?).map_err(|_| corrupt("id is not UTF-8"))
}

/// One message of a run: its conversation id, seq and JSON, taken off the front of `rest`.
fn take_entry<'a>(rest: &mut &'a [u8]) -> Result<Row<'a>, StoreError> {
    let conversation_id = take_id(rest)?;
    let seq = take_u64(rest, "seq")?;
    let len = take_u32(rest, "message length")? as usize;
    let message = take(rest, len, "message")?;
    Ok(Row {
        conversation_id,
        seq,
        message,
    })
}

/// The message `at` places after the row's key, if the row reaches that far. Walks the
/// headers before it without collecting them.
pub fn row_at(bytes: &[u8], at: u64) -> Result<Option<Row<'_>>, StoreError> {
    let mut rest = bytes;
    let version = take(&mut rest, 1, "version")?[0];
    if version != ROW_RUN {
        let at = usize::try_from(at).unwrap_or(usize::MAX);
        return Ok(decode_rows(bytes)?.into_iter().nth(at));
    }
    let count = take_u32(&mut rest, "count")?;
    if at >= u64::from(count) {
        return Ok(None);
    }
    for _ in 0..at {
        take_entry(&mut rest)?;
    }
    take_entry(&mut rest).map(Some)
}

/// The messages of a log row, in position order from its key.
pub fn decode_rows(bytes: &[u8]) -> Result<Vec<Row<'_>>, StoreError> {
    let mut rest = bytes;
    let version = take(&mut rest, 1, "version")?[0];
    match version {
        ROW_SINGLE => {
            let conversation_id = take_id(&mut rest)?;
            let seq = take_u64(&mut rest, "seq")?;
            Ok(vec![Row {
                conversation_id,
                seq,
                message: rest,
            }])
        }
        ROW_RUN => {
            let count = take_u32(&mut rest, "count")?;
            // Every entry takes at least 14 bytes: no count can ask for more than that.
            let mut out = Vec::with_capacity((count as usize).min(rest.len() / 14));
            for _ in 0..count {
                out.push(take_entry(&mut rest)?);
            }
            if !rest.is_empty() {
                return Err(corrupt("bytes after the last message"));
            }
            Ok(out)
        }
        other => Err(corrupt(&format!("unknown layout {other}"))),
    }
}

/// First byte of an index chunk: its layout.
const CHUNK_VERSION: u8 = 1;

/// An index row's value: version, then (seq, position) pairs, little-endian.
pub fn encode_chunk(pairs: &[(u64, u64)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + pairs.len() * 16);
    out.push(CHUNK_VERSION);
    for (seq, position) in pairs {
        out.extend_from_slice(&seq.to_le_bytes());
        out.extend_from_slice(&position.to_le_bytes());
    }
    out
}

/// The (seq, position) pairs of an index row.
pub fn decode_chunk(bytes: &[u8]) -> Result<Vec<(u64, u64)>, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("message index row: {what}"));
    let (&version, rest) = bytes.split_first().ok_or_else(|| corrupt("empty"))?;
    if version != CHUNK_VERSION {
        return Err(corrupt(&format!("unknown layout {version}")));
    }
    if rest.len() % 16 != 0 {
        return Err(corrupt("truncated"));
    }
    Ok(rest
        .chunks_exact(16)
        .map(|c| {
            let (seq, position) = c.split_at(8);
            let word = |b: &[u8]| b.try_into().map(u64::from_le_bytes).unwrap_or(0);
            (word(seq), word(position))
        })
        .collect())
}

/// Two chunks under the same key (a rewrite indexed later): every seq once, at its
/// highest position.
pub fn merge_chunks(older: &[(u64, u64)], newer: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut all: BTreeMap<u64, u64> = BTreeMap::new();
    for &(seq, position) in older.iter().chain(newer) {
        let p = all.entry(seq).or_insert(position);
        *p = (*p).max(position);
    }
    all.into_iter().collect()
}

/// Log positions of the messages the index does not have yet, per conversation and seq.
#[derive(Debug, Default, Clone)]
pub struct Recent {
    by_conversation: HashMap<String, BTreeMap<u64, u64>>,
    len: usize,
}

impl Recent {
    /// A message now lives at `position` (a rewrite of the same seq replaces the older one).
    pub fn insert(&mut self, conversation_id: &str, seq: u64, position: u64) {
        let seqs = match self.by_conversation.get_mut(conversation_id) {
            Some(s) => s,
            None => self
                .by_conversation
                .entry(conversation_id.to_string())
                .or_default(),
        };
        if seqs.insert(seq, position).is_none() {
            self.len += 1;
        }
    }

    /// Positions not yet indexed.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// One conversation's positions from `from_seq` on.
    fn of(&self, conversation_id: &str, from_seq: u64) -> BTreeMap<u64, u64> {
        self.by_conversation
            .get(conversation_id)
            .map(|s| s.range(from_seq..).map(|(k, v)| (*k, *v)).collect())
            .unwrap_or_default()
    }

    /// Each conversation's (seq, position) pairs, by conversation id then seq: the index
    /// rows a checkpoint writes.
    pub fn chunks(&self) -> Vec<(String, Vec<(u64, u64)>)> {
        let mut out: Vec<(String, Vec<(u64, u64)>)> = self
            .by_conversation
            .iter()
            .map(|(id, seqs)| (id.clone(), seqs.iter().map(|(s, p)| (*s, *p)).collect()))
            .collect();
        out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Forgets what the index now has: every position up to `through`.
    pub fn prune(&mut self, through: u64) {
        let mut len = 0;
        self.by_conversation.retain(|_, seqs| {
            seqs.retain(|_, p| *p > through);
            len += seqs.len();
            !seqs.is_empty()
        });
        self.len = len;
    }
}

/// The part of the message log shared by the writer and the readers.
#[derive(Debug, Default)]
pub struct MessageLog {
    recent: Mutex<Recent>,
}

/// Where the log stands at open: the next free position and how far the index reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogState {
    pub next_position: u64,
    pub indexed_through: u64,
}

impl MessageLog {
    /// Reads where the log stands and rebuilds [`Recent`] from the rows past the index.
    pub fn recover(db: &Database) -> Result<(MessageLog, LogState), StoreError> {
        let txn = db.begin_read()?;
        let meta = txn.open_table(LOG_META)?;
        let indexed_through = meta.get(INDEXED_THROUGH)?.map_or(0, |v| v.value());
        let log = txn.open_table(MESSAGE_LOG)?;
        let mut recent = Recent::default();
        // Index marks fall between runs, but start from the run holding the first position
        // past the mark all the same, so a mark inside one loses nothing.
        let first_unindexed = indexed_through.saturating_add(1);
        let start = match log.range(..=first_unindexed)?.next_back() {
            Some(row) => row?.0.value(),
            None => first_unindexed,
        };
        let mut next_position = 1;
        for row in log.range(start..)? {
            let (k, v) = row?;
            let mut position = k.value();
            for r in decode_rows(v.value())? {
                if position > indexed_through {
                    recent.insert(r.conversation_id, r.seq, position);
                }
                position += 1;
            }
            next_position = next_position.max(position);
        }
        let state = LogState {
            next_position: next_position.max(first_unindexed),
            indexed_through,
        };
        Ok((
            MessageLog {
                recent: Mutex::new(recent),
            },
            state,
        ))
    }

    /// The writer's access to [`Recent`]. A poisoned lock only means another thread
    /// panicked while holding it; the map itself is always left whole.
    pub fn recent(&self) -> MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A read transaction with the positions the index may lack for one conversation.
    pub fn view_of(
        &self,
        db: &Database,
        conversation_id: &str,
        from_seq: u64,
    ) -> Result<LogView, StoreError> {
        let recent = self.recent();
        let txn = db.begin_read()?;
        let mut only = Recent::default();
        for (seq, position) in recent.of(conversation_id, from_seq) {
            only.insert(conversation_id, seq, position);
        }
        Ok(LogView { txn, recent: only })
    }

    /// A read transaction with every position the index may lack.
    pub fn view(&self, db: &Database) -> Result<LogView, StoreError> {
        let recent = self.recent();
        let txn = db.begin_read()?;
        Ok(LogView {
            txn,
            recent: recent.clone(),
        })
    }
}

/// A consistent read of the journal, messages included.
pub struct LogView {
    pub txn: ReadTransaction,
    recent: Recent,
}

/// Where one message's bytes are.
enum Source {
    /// A row of the table messages were kept in before the log (journals written then).
    Legacy(Vec<u8>),
    /// A log position from the index: the row must exist.
    Indexed(u64),
    /// A log position from memory: its commit may be newer than this view.
    Recent(u64),
}

/// Keeps the newest version of a message: any log row over an old table's row, the higher
/// of two log positions.
fn newest(found: &mut BTreeMap<u64, Source>, seq: u64, source: Source) {
    let position = |s: &Source| match s {
        Source::Legacy(_) => None,
        Source::Indexed(p) | Source::Recent(p) => Some(*p),
    };
    match found.get(&seq) {
        Some(old) if position(old) >= position(&source) => {}
        _ => {
            found.insert(seq, source);
        }
    }
}

impl LogView {
    /// The messages of a conversation with `seq >= from_seq`, oldest first.
    pub fn messages(
        &self,
        conversation_id: &str,
        from_seq: u64,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        let mut found: BTreeMap<u64, Source> = BTreeMap::new();
        let legacy = self.txn.open_table(MESSAGES)?;
        for row in legacy.range((conversation_id, from_seq)..=(conversation_id, u64::MAX))? {
            let (k, v) = row?;
            found.insert(k.value().1, Source::Legacy(v.value().to_vec()));
        }
        // A chunk keyed by its highest seq holds nothing below `from_seq` if that key is.
        let index = self.txn.open_table(MESSAGE_INDEX)?;
        for row in index.range((conversation_id, from_seq)..=(conversation_id, u64::MAX))? {
            let (_, v) = row?;
            for (seq, position) in decode_chunk(v.value())? {
                if seq >= from_seq {
                    newest(&mut found, seq, Source::Indexed(position));
                }
            }
        }
        if let Some(seqs) = self.recent.by_conversation.get(conversation_id) {
            for (seq, position) in seqs.range(from_seq..) {
                newest(&mut found, *seq, Source::Recent(*position));
            }
        }
        let log = self.txn.open_table(MESSAGE_LOG)?;
        let mut out = Vec::with_capacity(found.len());
        // Consecutive messages of a conversation often share a run: keep the last one read.
        let mut run: Option<(u64, redb::AccessGuard<'_, &[u8]>)> = None;
        for (seq, source) in found {
            let p = match source {
                Source::Legacy(b) => {
                    out.push(super::decode(&b)?);
                    continue;
                }
                Source::Indexed(p) | Source::Recent(p) => p,
            };
            let cached = match &run {
                Some((key, bytes)) if p >= *key => row_at(bytes.value(), p - key)?,
                _ => None,
            };
            let message = match cached {
                Some(r) if r.conversation_id == conversation_id && r.seq == seq => {
                    super::decode(r.message)?
                }
                _ => {
                    let Some(found_run) = log.range(..=p)?.next_back() else {
                        if matches!(source, Source::Recent(_)) {
                            continue;
                        }
                        return Err(StoreError::Corrupt(format!(
                            "index of {conversation_id} seq {seq} points before the log ({p})"
                        )));
                    };
                    let (key, bytes) = found_run?;
                    let key = key.value();
                    let Some(row) = row_at(bytes.value(), p - key)? else {
                        // Past the end of the log: a commit newer than this view.
                        if matches!(source, Source::Recent(_)) {
                            continue;
                        }
                        return Err(StoreError::Corrupt(format!(
                            "index of {conversation_id} seq {seq} points past the log ({p})"
                        )));
                    };
                    if row.conversation_id != conversation_id || row.seq != seq {
                        return Err(StoreError::Corrupt(format!(
                            "index of {conversation_id} seq {seq} points at {} seq {}",
                            row.conversation_id, row.seq
                        )));
                    }
                    let message = super::decode(row.message)?;
                    run = Some((key, bytes));
                    message
                }
            };
            out.push(message);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(seq: u64, text: &str) -> MessageRecord {
        MessageRecord {
            seq,
            text: text.to_string(),
            ..serde_json::from_str(r#"{"seq":0,"role":"customer","text":"","at_ms":5}"#)
                .expect("message")
        }
    }

    fn text_of(row: &Row<'_>) -> String {
        serde_json::from_slice::<MessageRecord>(row.message)
            .expect("json")
            .text
    }

    #[test]
    fn a_single_message_row_of_older_journals_still_reads() {
        let row = encode_row("c-1", &message(42, "hé")).expect("encode");
        let back = decode_rows(&row).expect("decode");
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].conversation_id, "c-1");
        assert_eq!(back[0].seq, 42);
        assert_eq!(text_of(&back[0]), "hé");
        let at = row_at(&row, 0).expect("read").expect("the message");
        assert_eq!((at.conversation_id, at.seq), ("c-1", 42));
        assert!(row_at(&row, 1).expect("read").is_none());
    }

    #[test]
    fn a_run_splits_back_into_its_messages_at_consecutive_positions() {
        let mut run = RunBuilder::new(100);
        assert!(run.is_empty());
        assert_eq!(run.push("a", &message(1, "one")).expect("push"), 100);
        assert_eq!(run.push("bé", &message(7, "two")).expect("push"), 101);
        assert_eq!(run.push("a", &message(2, "")).expect("push"), 102);
        assert_eq!(run.next_position(), 103);
        let (key, row) = run.finish();
        assert_eq!(key, 100);
        let rows = decode_rows(&row).expect("decode");
        let seen: Vec<(&str, u64, String)> = rows
            .iter()
            .map(|r| (r.conversation_id, r.seq, text_of(r)))
            .collect();
        assert_eq!(
            seen,
            [
                ("a", 1, "one".to_string()),
                ("bé", 7, "two".to_string()),
                ("a", 2, String::new())
            ]
        );
        for (at, expected) in rows.iter().enumerate() {
            assert_eq!(
                row_at(&row, at as u64).expect("read").as_ref(),
                Some(expected)
            );
        }
        assert!(row_at(&row, 3).expect("read").is_none());
    }

    #[test]
    fn a_run_stops_growing_at_its_bounds() {
        let mut run = RunBuilder::new(1);
        for seq in 0..RUN_MAX_MESSAGES as u64 - 1 {
            run.push("c", &message(seq, "x")).expect("push");
            assert!(!run.is_full());
        }
        run.push("c", &message(999, "x")).expect("push");
        assert!(run.is_full(), "full by count");
        let mut run = RunBuilder::new(1);
        run.push("c", &message(1, &"y".repeat(RUN_MAX_BYTES)))
            .expect("push");
        assert!(run.is_full(), "full by size");
    }

    #[test]
    fn damaged_rows_are_reported_not_misread() {
        let row = encode_row("conv", &message(3, "x")).expect("encode");
        for cut in [0, 1, 2, 5, 9] {
            assert!(
                matches!(decode_rows(&row[..cut]), Err(StoreError::Corrupt(_))),
                "single row cut at {cut} bytes"
            );
        }
        let mut other = row.clone();
        other[0] = 9;
        assert!(matches!(decode_rows(&other), Err(StoreError::Corrupt(_))));

        let mut run = RunBuilder::new(1);
        run.push("conv", &message(1, "first")).expect("push");
        run.push("conv", &message(2, "second")).expect("push");
        let (_, row) = run.finish();
        for cut in [0, 1, 4, 6, 12, row.len() - 1] {
            assert!(
                matches!(decode_rows(&row[..cut]), Err(StoreError::Corrupt(_))),
                "run cut at {cut} bytes"
            );
            assert!(
                matches!(row_at(&row[..cut], 1), Err(StoreError::Corrupt(_))),
                "run cut at {cut} bytes, second message"
            );
        }
        let mut longer = row.clone();
        longer.push(0);
        assert!(matches!(decode_rows(&longer), Err(StoreError::Corrupt(_))));
        let mut miscounted = row.clone();
        miscounted[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode_rows(&miscounted),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn index_chunks_round_trip_and_merge_to_the_newest_positions() {
        let pairs = [(1, 10), (2, 11), (3, u64::MAX)];
        assert_eq!(decode_chunk(&encode_chunk(&pairs)).expect("decode"), pairs);
        assert_eq!(decode_chunk(&encode_chunk(&[])).expect("decode"), []);
        let bytes = encode_chunk(&pairs);
        assert!(matches!(
            decode_chunk(&bytes[..bytes.len() - 1]),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(decode_chunk(&[]), Err(StoreError::Corrupt(_))));
        assert_eq!(
            merge_chunks(&[(1, 10), (3, 12)], &[(3, 20), (4, 21)]),
            [(1, 10), (3, 20), (4, 21)]
        );
        assert_eq!(merge_chunks(&[(3, 30)], &[(3, 20)]), [(3, 30)]);
    }

    #[test]
    fn recent_keeps_the_newest_position_and_prunes_what_is_indexed() {
        let mut r = Recent::default();
        r.insert("b", 1, 10);
        r.insert("a", 1, 11);
        r.insert("a", 2, 12);
        r.insert("a", 1, 13);
        assert_eq!(r.len(), 3);
        assert_eq!(
            r.chunks(),
            vec![
                ("a".to_string(), vec![(1, 13), (2, 12)]),
                ("b".to_string(), vec![(1, 10)])
            ]
        );
        r.prune(12);
        assert_eq!(r.chunks(), vec![("a".to_string(), vec![(1, 13)])]);
        assert_eq!(r.len(), 1);
        r.prune(13);
        assert!(r.is_empty());
        assert!(r.by_conversation.is_empty());
    }
}
