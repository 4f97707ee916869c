//! The message log: where journaled messages go.
//!
//! Keyed by (conversation id, seq), every group commit copied one B-tree leaf per
//! conversation it touched: with a thousand conversations chatting at once, a commit of
//! seventy turns wrote over a hundred 4 KiB pages for seventy kilobytes of messages. Here
//! every message is appended under the next position of one growing key instead, so a
//! commit dirties only the few pages at the log's end.
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

use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable};

use super::StoreError;
use super::tables::{LOG_META, MESSAGE_INDEX, MESSAGE_LOG, MESSAGES};
use crate::model::MessageRecord;

/// Key in [`LOG_META`]: every log position up to this one has its index row.
pub const INDEXED_THROUGH: &str = "indexed_through";

/// Key in [`LOG_META`]: the last write-ahead log frame a durable commit holds (see
/// [`super::wal`]).
pub const WAL_APPLIED: &str = "wal_applied";

/// First byte of a log row: its layout, so it can change without a migration.
const ROW_VERSION: u8 = 1;

/// One log row, read without decoding the message itself.
#[derive(Debug, PartialEq, Eq)]
pub struct Row<'a> {
    pub conversation_id: &'a str,
    pub seq: u64,
    /// The message, as JSON.
    pub message: &'a [u8],
}

/// A log row: version, conversation id (with its length), seq, then the message as JSON.
/// The header lets the tail be re-indexed at open without parsing any JSON.
pub fn encode_row(conversation_id: &str, message: &MessageRecord) -> Result<Vec<u8>, StoreError> {
    let id = conversation_id.as_bytes();
    let id_len = u16::try_from(id.len())
        .map_err(|_| StoreError::Storage("conversation id longer than 65535 bytes".into()))?;
    let mut out = Vec::with_capacity(1 + 2 + id.len() + 8 + 384);
    out.push(ROW_VERSION);
    out.extend_from_slice(&id_len.to_le_bytes());
    out.extend_from_slice(id);
    out.extend_from_slice(&message.seq.to_le_bytes());
    serde_json::to_writer(&mut out, message)
        .map_err(|e| StoreError::Storage(format!("cannot encode: {e}")))?;
    Ok(out)
}

/// Splits a log row into its header fields and the message's JSON.
pub fn decode_row(bytes: &[u8]) -> Result<Row<'_>, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("message log row: {what}"));
    let (&version, rest) = bytes.split_first().ok_or_else(|| corrupt("empty"))?;
    if version != ROW_VERSION {
        return Err(corrupt(&format!("unknown layout {version}")));
    }
    let (len, rest) = rest
        .split_at_checked(2)
        .ok_or_else(|| corrupt("truncated"))?;
    let len = u16::from_le_bytes([len[0], len[1]]) as usize;
    let (id, rest) = rest
        .split_at_checked(len)
        .ok_or_else(|| corrupt("truncated id"))?;
    let conversation_id = std::str::from_utf8(id).map_err(|_| corrupt("id is not UTF-8"))?;
    let (seq, message) = rest
        .split_first_chunk::<8>()
        .ok_or_else(|| corrupt("truncated seq"))?;
    Ok(Row {
        conversation_id,
        seq: u64::from_le_bytes(*seq),
        message,
    })
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
        let mut last = indexed_through;
        for row in log.range(indexed_through.saturating_add(1)..)? {
            let (k, v) = row?;
            let position = k.value();
            let r = decode_row(v.value())?;
            recent.insert(r.conversation_id, r.seq, position);
            last = last.max(position);
        }
        if let Some((k, _)) = log.last()? {
            last = last.max(k.value());
        }
        let state = LogState {
            next_position: last + 1,
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
        for (seq, source) in found {
            let bytes = match source {
                Source::Legacy(b) => {
                    out.push(super::decode(&b)?);
                    continue;
                }
                Source::Indexed(p) | Source::Recent(p) => match log.get(p)? {
                    Some(v) => v,
                    None if matches!(source, Source::Recent(_)) => continue,
                    None => {
                        return Err(StoreError::Corrupt(format!(
                            "index of {conversation_id} seq {seq} points past the log ({p})"
                        )));
                    }
                },
            };
            let row = decode_row(bytes.value())?;
            if row.conversation_id != conversation_id || row.seq != seq {
                return Err(StoreError::Corrupt(format!(
                    "index of {conversation_id} seq {seq} points at {} seq {}",
                    row.conversation_id, row.seq
                )));
            }
            out.push(super::decode(row.message)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_splits_back_into_what_was_written() {
        let m = crate::model::MessageRecord {
            seq: 42,
            ..serde_json::from_str(r#"{"seq":0,"role":"customer","text":"hé","at_ms":5}"#)
                .expect("message")
        };
        let row = encode_row("c-1", &m).expect("encode");
        let back = decode_row(&row).expect("decode");
        assert_eq!(back.conversation_id, "c-1");
        assert_eq!(back.seq, 42);
        let decoded: MessageRecord = serde_json::from_slice(back.message).expect("json");
        assert_eq!(decoded.text, "hé");
        assert_eq!(decoded.seq, 42);
    }

    #[test]
    fn damaged_rows_are_reported_not_misread() {
        let m: MessageRecord =
            serde_json::from_str(r#"{"seq":3,"role":"customer","text":"x","at_ms":5}"#)
                .expect("message");
        let row = encode_row("conv", &m).expect("encode");
        for cut in [0, 1, 2, 5, 9] {
            assert!(
                matches!(decode_row(&row[..cut]), Err(StoreError::Corrupt(_))),
                "row cut at {cut} bytes"
            );
        }
        let mut other = row.clone();
        other[0] = 9;
        assert!(matches!(decode_row(&other), Err(StoreError::Corrupt(_))));
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
