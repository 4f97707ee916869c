//! The write-ahead log: how a batch becomes durable without a durable B-tree commit.
//!
//! A durable redb commit costs two fsyncs when it saves the allocator state (quick repair,
//! what makes a restart after `kill -9` take milliseconds) and writes that state, a bitmap
//! over every page of the file, each time: the bytes written per commit grew with the
//! journal, from 84 KB to 405 KB within 150 s at 10,000 messages/s. So each batch is
//! instead appended here as one frame of the exact table writes it makes, made durable with
//! one `fdatasync`, and committed to redb without fsync ([`redb::Durability::None`]) so
//! readers see it at once. Every half second or so the writer makes one durable redb commit
//! that covers every frame so far and records the last frame's number (its LSN) in the
//! journal; after a crash redb comes back at that commit, and [`Wal::open`] hands the later
//! frames back to be written again. Writes are replayed, not ops: a frame says which row
//! got which bytes, so replaying it twice or over a commit that already had it changes
//! nothing.
//!
//! Frames go to segment files named by the LSN of their first frame. A segment is deleted
//! once a durable commit covers all of it; the writer starts a new one after a durable
//! commit when the current one has grown past [`SEGMENT_BYTES`].
//!
//! A frame is its body's length and CRC-32 (both little-endian u32), then the body: its LSN
//! (u64) and its entries. An entry is its kind (put or remove), its table, the key (a u64
//! for the message log, a length-prefixed string elsewhere), and for a put the value with
//! its length. The last frame of the last segment may be torn by a crash; it was never
//! acknowledged, and is cut off. Damage anywhere else is reported, never skipped.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::StoreError;

/// Past this size the segment is closed at the next durable commit and a new one begun.
pub const SEGMENT_BYTES: u64 = 32 * 1024 * 1024;

/// A frame longer than this is damage, not data (the writer's batches are far smaller).
const MAX_FRAME: u32 = 1 << 30;

const HEADER: usize = 8;
const PUT: u8 = 1;
const REMOVE: u8 = 2;
const SUFFIX: &str = "wal";

/// The tables a logged write can go to. The numbers are on disk: never reuse one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Conversations = 1,
    ConversationKeys = 2,
    MessageLog = 3,
    Queue = 4,
    Assignments = 5,
    Agents = 6,
    Outbox = 7,
    ChannelState = 8,
    OutboundRefs = 9,
    SlaClocks = 10,
}

impl Table {
    fn from_byte(b: u8) -> Option<Table> {
        Some(match b {
            1 => Table::Conversations,
            2 => Table::ConversationKeys,
            3 => Table::MessageLog,
            4 => Table::Queue,
            5 => Table::Assignments,
            6 => Table::Agents,
            7 => Table::Outbox,
            8 => Table::ChannelState,
            9 => Table::OutboundRefs,
            10 => Table::SlaClocks,
            _ => return None,
        })
    }
}

/// A row's key: a log position in the message log, text everywhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key<'a> {
    Text(&'a str),
    Position(u64),
}

/// One write a batch makes to one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry<'a> {
    Put {
        table: Table,
        key: Key<'a>,
        value: &'a [u8],
    },
    Remove {
        table: Table,
        key: Key<'a>,
    },
}

impl<'a> Entry<'a> {
    /// The table, the key, and the value a put writes (`None` for a removal).
    pub fn parts(&self) -> (Table, Key<'a>, Option<&'a [u8]>) {
        match *self {
            Entry::Put { table, key, value } => (table, key, Some(value)),
            Entry::Remove { table, key } => (table, key, None),
        }
    }
}

/// The log as the writer holds it: the open segment and the frame being built.
pub struct Wal {
    dir: PathBuf,
    file: File,
    /// LSN of the first frame of the open segment.
    segment_first: u64,
    segment_len: u64,
    next_lsn: u64,
    /// The frame being built: room for the header, the LSN, then entries.
    frame: Vec<u8>,
    /// Bytes written since the last durable commit covered the log.
    since_durable: u64,
}

/// What [`Wal::open`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Replayed {
    /// Frames handed back to be written again.
    pub frames: u64,
    /// LSN of the last frame handed back.
    pub last_lsn: Option<u64>,
    /// Bytes of a torn last frame that were cut off.
    pub torn_bytes: u64,
}

fn io(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Storage(format!("write-ahead log: {what} {}: {e}", path.display()))
}

fn segment_name(first_lsn: u64) -> String {
    format!("{first_lsn:020}.{SUFFIX}")
}

/// The segments in `dir`, oldest first, with the LSN each begins at.
fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io("cannot list", dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| io("cannot list", dir, e))?;
        let name = entry.file_name();
        let Some(first) = name
            .to_str()
            .and_then(|n| n.strip_suffix(&format!(".{SUFFIX}")))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        out.push((first, entry.path()));
    }
    out.sort_unstable_by_key(|(first, _)| *first);
    Ok(out)
}

/// Makes a file's creation or removal in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("cannot sync", dir, e))
}

impl Wal {
    /// Opens the log in `dir` (created if missing) and hands every entry of the frames after
    /// `applied` to `apply`, oldest first. New frames go to a fresh segment; the old ones
    /// stay until [`Wal::durable_through`] says a durable commit holds what they held.
    pub fn open(
        dir: &Path,
        applied: u64,
        mut apply: impl FnMut(Entry<'_>) -> Result<(), StoreError>,
    ) -> Result<(Wal, Replayed), StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| io("cannot create", dir, e))?;
        let found = segments(dir)?;
        let mut replayed = Replayed::default();
        let mut expected: Option<u64> = None;
        let count = found.len();
        for (i, (first, path)) in found.iter().enumerate() {
            let last_segment = i + 1 == count;
            if let Some(e) = expected
                && *first != e
            {
                return Err(StoreError::Corrupt(format!(
                    "write-ahead log: {} should begin at frame {e}",
                    path.display()
                )));
            }
            if expected.is_none() && *first > applied.saturating_add(1) {
                return Err(StoreError::Corrupt(format!(
                    "write-ahead log: frames {} to {} are missing (the journal has up to {applied})",
                    applied.saturating_add(1),
                    first - 1
                )));
            }
            let mut bytes = Vec::new();
            File::open(path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .map_err(|e| io("cannot read", path, e))?;
            let mut lsn = *first;
            let mut at = 0usize;
            while at < bytes.len() {
                let Some(body) = frame_at(&bytes, at) else {
                    if !last_segment {
                        return Err(StoreError::Corrupt(format!(
                            "write-ahead log: damaged frame at byte {at} of {}, which is not the last segment",
                            path.display()
                        )));
                    }
                    replayed.torn_bytes = (bytes.len() - at) as u64;
                    break;
                };
                let (frame_lsn, entries) = body
                    .split_first_chunk::<8>()
                    .map(|(l, rest)| (u64::from_le_bytes(*l), rest))
                    .ok_or_else(|| corrupt(path, at, "no frame number"))?;
                if frame_lsn != lsn {
                    return Err(corrupt(
                        path,
                        at,
                        &format!("frame {frame_lsn} where {lsn} was due"),
                    ));
                }
                if lsn > applied {
                    for entry in EntryIter::new(entries) {
                        apply(entry.map_err(|what| corrupt(path, at, what))?)?;
                    }
                    replayed.frames += 1;
                    replayed.last_lsn = Some(lsn);
                }
                lsn = lsn.saturating_add(1);
                at += HEADER + body.len();
            }
            expected = Some(lsn);
        }
        let next_lsn = expected.unwrap_or(0).max(applied.saturating_add(1));
        let (file, path) = create_segment(dir, next_lsn)?;
        tracing::debug!(segment = %path.display(), "write-ahead log opened");
        Ok((
            Wal {
                dir: dir.to_path_buf(),
                file,
                segment_first: next_lsn,
                segment_len: 0,
                next_lsn,
                frame: new_frame(),
                since_durable: 0,
            },
            replayed,
        ))
    }

    /// Adds a write to the frame being built.
    pub fn record(&mut self, entry: &Entry<'_>) {
        let (table, key, value) = entry.parts();
        self.frame.push(if value.is_some() { PUT } else { REMOVE });
        self.frame.push(table as u8);
        match key {
            Key::Position(p) => self.frame.extend_from_slice(&p.to_le_bytes()),
            Key::Text(t) => put_bytes(&mut self.frame, t.as_bytes()),
        }
        if let Some(v) = value {
            put_bytes(&mut self.frame, v);
        }
    }

    /// Forgets the frame being built (its batch failed before it was written).
    pub fn discard(&mut self) {
        self.frame.truncate(HEADER + 8);
    }

    /// Writes the frame built so far and waits until it is on disk; returns its LSN, or
    /// `None` when the batch wrote nothing. A failed write is cut off again so the next
    /// frame follows the last good one; a failed fsync leaves the log in doubt, and the
    /// caller must stop writing.
    pub fn sync(&mut self) -> Result<Option<u64>, WalError> {
        if self.frame.len() == HEADER + 8 {
            return Ok(None);
        }
        let lsn = self.next_lsn;
        let body_len = self.frame.len() - HEADER;
        let len = u32::try_from(body_len)
            .ok()
            .filter(|l| *l <= MAX_FRAME)
            .ok_or_else(|| {
                WalError::Write(StoreError::Storage(format!(
                    "write-ahead log: a batch of {body_len} bytes is too large"
                )))
            });
        let len = match len {
            Ok(l) => l,
            Err(e) => {
                self.discard();
                return Err(e);
            }
        };
        self.frame[HEADER..HEADER + 8].copy_from_slice(&lsn.to_le_bytes());
        let crc = crc32fast::hash(&self.frame[HEADER..]);
        self.frame[0..4].copy_from_slice(&len.to_le_bytes());
        self.frame[4..8].copy_from_slice(&crc.to_le_bytes());
        let path = self.dir.join(segment_name(self.segment_first));
        if let Err(e) = self.file.write_all(&self.frame) {
            self.discard();
            // Cut a partly written frame off, or it would hide every later one.
            return match self.file.set_len(self.segment_len) {
                Ok(()) => Err(WalError::Write(io("cannot write", &path, e))),
                Err(e2) => Err(WalError::InDoubt(io("cannot cut back", &path, e2))),
            };
        }
        let written = self.frame.len() as u64;
        self.discard();
        self.segment_len += written;
        self.since_durable += written;
        self.next_lsn += 1;
        #[cfg(test)]
        if faults::take(&self.dir) {
            let e = std::io::Error::other("injected by a test");
            return Err(WalError::InDoubt(io("cannot sync", &path, e)));
        }
        self.file
            .sync_data()
            .map_err(|e| WalError::InDoubt(io("cannot sync", &path, e)))?;
        Ok(Some(lsn))
    }

    /// The log's directory: what test faults are keyed by.
    #[cfg(test)]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// LSN of the last frame written, if any ever was.
    pub fn last_lsn(&self) -> u64 {
        self.next_lsn - 1
    }

    /// Bytes written since the last durable commit covered the log.
    pub fn since_durable(&self) -> u64 {
        self.since_durable
    }

    /// A durable commit now holds every frame through `lsn`, `covered_bytes` of the log
    /// since the one before (frames written while it ran are past it): segments wholly
    /// behind it go, and a full open segment is closed for a new one.
    pub fn durable_through(&mut self, lsn: u64, covered_bytes: u64) -> Result<(), StoreError> {
        self.since_durable = if lsn + 1 >= self.next_lsn {
            0
        } else {
            self.since_durable.saturating_sub(covered_bytes)
        };
        // Frames past `lsn` may be in it: the closed segment then goes with a later commit.
        if self.segment_len >= SEGMENT_BYTES {
            let (file, _) = create_segment(&self.dir, self.next_lsn)?;
            self.file = file;
            self.segment_first = self.next_lsn;
            self.segment_len = 0;
        }
        let mut removed = false;
        for (first, path) in segments(&self.dir)? {
            // Every frame of a segment before the open one is older than the open one's.
            if first < self.segment_first && self.segment_first <= lsn + 1 {
                std::fs::remove_file(&path).map_err(|e| io("cannot remove", &path, e))?;
                removed = true;
            }
        }
        if removed {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

/// Why a frame was not made durable.
#[derive(Debug)]
pub enum WalError {
    /// Nothing of the frame is in the log; later frames may follow.
    Write(StoreError),
    /// The frame may or may not be on disk: the log cannot take more.
    InDoubt(StoreError),
}

fn new_frame() -> Vec<u8> {
    let mut f = Vec::with_capacity(64 * 1024);
    f.resize(HEADER + 8, 0);
    f
}

fn create_segment(dir: &Path, first_lsn: u64) -> Result<(File, PathBuf), StoreError> {
    let path = dir.join(segment_name(first_lsn));
    // Appending: after a failed write is cut off, the next frame lands where it began.
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| io("cannot create", &path, e))?;
    // A segment of the same name holds nothing that was ever acknowledged (see `open`).
    file.set_len(0).map_err(|e| io("cannot empty", &path, e))?;
    sync_dir(dir)?;
    Ok((file, path))
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // Values come from the writer's own encoders; a row of 4 GiB cannot be built in memory
    // by a daemon of this kind, and the frame length check refuses the batch before that.
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn corrupt(path: &Path, at: usize, what: &str) -> StoreError {
    StoreError::Corrupt(format!(
        "write-ahead log: frame at byte {at} of {}: {what}",
        path.display()
    ))
}

/// The body of the whole, undamaged frame at `at`, or `None` if it is torn or damaged.
fn frame_at(bytes: &[u8], at: usize) -> Option<&[u8]> {
    let header = bytes.get(at..at + HEADER)?;
    let len = u32::from_le_bytes(header[0..4].try_into().ok()?);
    let crc = u32::from_le_bytes(header[4..8].try_into().ok()?);
    if !(8..=MAX_FRAME).contains(&len) {
        return None;
    }
    let body = bytes.get(at + HEADER..at + HEADER + len as usize)?;
    (crc32fast::hash(body) == crc).then_some(body)
}

/// The entries of a frame's body, in the order they were recorded.
struct EntryIter<'a> {
    rest: &'a [u8],
}

impl<'a> EntryIter<'a> {
    fn new(rest: &'a [u8]) -> Self {
        EntryIter { rest }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        let (head, tail) = self.rest.split_at_checked(n).ok_or("entry cut short")?;
        self.rest = tail;
        Ok(head)
    }

    fn take_bytes(&mut self) -> Result<&'a [u8], &'static str> {
        let len = self.take(4)?;
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        self.take(len)
    }

    fn entry(&mut self) -> Result<Entry<'a>, &'static str> {
        let head = self.take(2)?;
        let table = Table::from_byte(head[1]).ok_or("unknown table")?;
        let key = if table == Table::MessageLog {
            let b = self.take(8)?;
            Key::Position(u64::from_le_bytes(b.try_into().map_err(|_| "bad key")?))
        } else {
            Key::Text(std::str::from_utf8(self.take_bytes()?).map_err(|_| "key is not UTF-8")?)
        };
        match head[0] {
            PUT => Ok(Entry::Put {
                table,
                key,
                value: self.take_bytes()?,
            }),
            REMOVE => Ok(Entry::Remove { table, key }),
            _ => Err("unknown entry kind"),
        }
    }
}

impl<'a> Iterator for EntryIter<'a> {
    type Item = Result<Entry<'a>, &'static str>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let item = self.entry();
        if item.is_err() {
            self.rest = &[];
        }
        Some(item)
    }
}

/// Failed fsyncs on demand, for the tests of what the store does after one. Keyed by the
/// log's directory, so tests running at once do not see each other's.
#[cfg(test)]
pub mod faults {
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    static FAIL_NEXT_SYNC: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

    /// The next fsync of the log in `dir` fails (after its frame was written).
    pub fn fail_next_sync(dir: &Path) {
        FAIL_NEXT_SYNC
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(dir.to_path_buf());
    }

    pub(super) fn take(dir: &Path) -> bool {
        let mut dirs = FAIL_NEXT_SYNC.lock().unwrap_or_else(|e| e.into_inner());
        let before = dirs.len();
        dirs.retain(|d| d != dir);
        dirs.len() != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An owned copy of an entry, to compare what was replayed.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Owned {
        Put(Table, String, Vec<u8>),
        PutAt(u64, Vec<u8>),
        Remove(Table, String),
    }

    fn owned(e: Entry<'_>) -> Owned {
        match e {
            Entry::Put {
                key: Key::Position(p),
                value,
                ..
            } => Owned::PutAt(p, value.to_vec()),
            Entry::Put {
                table,
                key: Key::Text(k),
                value,
            } => Owned::Put(table, k.to_string(), value.to_vec()),
            Entry::Remove {
                table,
                key: Key::Text(k),
            } => Owned::Remove(table, k.to_string()),
            Entry::Remove {
                key: Key::Position(p),
                ..
            } => Owned::Remove(Table::MessageLog, p.to_string()),
        }
    }

    fn open(dir: &Path, applied: u64) -> (Wal, Vec<Owned>, Replayed) {
        let mut seen = Vec::new();
        let (wal, r) = Wal::open(dir, applied, |e| {
            seen.push(owned(e));
            Ok(())
        })
        .expect("open");
        (wal, seen, r)
    }

    fn write_frame(wal: &mut Wal, n: u64) -> u64 {
        wal.record(&Entry::Put {
            table: Table::Conversations,
            key: Key::Text(&format!("c-{n}")),
            value: format!("v{n}").as_bytes(),
        });
        wal.record(&Entry::Put {
            table: Table::MessageLog,
            key: Key::Position(n),
            value: b"row",
        });
        wal.record(&Entry::Remove {
            table: Table::Queue,
            key: Key::Text("q"),
        });
        wal.sync().expect("sync").expect("a frame")
    }

    fn expected(n: u64) -> Vec<Owned> {
        vec![
            Owned::Put(
                Table::Conversations,
                format!("c-{n}"),
                format!("v{n}").into(),
            ),
            Owned::PutAt(n, b"row".to_vec()),
            Owned::Remove(Table::Queue, "q".into()),
        ]
    }

    #[test]
    fn frames_after_the_durable_mark_come_back_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut wal, seen, _) = open(dir.path(), 0);
        assert!(seen.is_empty());
        assert_eq!(
            wal.sync().expect("empty"),
            None,
            "an empty batch writes nothing"
        );
        let lsns: Vec<u64> = (0..5).map(|n| write_frame(&mut wal, n)).collect();
        assert_eq!(lsns, [1, 2, 3, 4, 5]);
        drop(wal);
        let (_, seen, r) = open(dir.path(), 3);
        assert_eq!(seen, [expected(3), expected(4)].concat());
        assert_eq!(r.frames, 2);
        assert_eq!(r.last_lsn, Some(5));
    }

    #[test]
    fn a_torn_last_frame_is_cut_off_and_numbering_goes_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut wal, _, _) = open(dir.path(), 0);
        write_frame(&mut wal, 0);
        write_frame(&mut wal, 1);
        drop(wal);
        let (_, path) = segments(dir.path()).expect("list").remove(0);
        let len = std::fs::metadata(&path).expect("meta").len();
        // A crash in the middle of the second frame's write.
        let f = OpenOptions::new().write(true).open(&path).expect("open");
        f.set_len(len - 3).expect("cut");
        drop(f);
        let (mut wal, seen, r) = open(dir.path(), 0);
        assert_eq!(seen, expected(0));
        assert!(r.torn_bytes > 0);
        assert_eq!(
            write_frame(&mut wal, 7),
            2,
            "the torn frame's number is reused"
        );
        wal.durable_through(1, wal.since_durable())
            .expect("durable");
        drop(wal);
        let (_, seen, _) = open(dir.path(), 1);
        assert_eq!(seen, expected(7));
    }

    #[test]
    fn damage_before_the_last_frame_is_an_error_not_a_gap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut wal, _, _) = open(dir.path(), 0);
        write_frame(&mut wal, 0);
        drop(wal);
        // A second segment makes the first one's damage unmistakable.
        let (mut wal, _, _) = open(dir.path(), 0);
        write_frame(&mut wal, 1);
        drop(wal);
        let (_, first) = segments(dir.path()).expect("list").remove(0);
        let mut bytes = std::fs::read(&first).expect("read");
        bytes[HEADER + 9] ^= 0xff;
        std::fs::write(&first, bytes).expect("write");
        let err = Wal::open(dir.path(), 0, |_| Ok(()))
            .err()
            .expect("damage is reported");
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    }

    #[test]
    fn missing_frames_are_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut wal, _, _) = open(dir.path(), 0);
        write_frame(&mut wal, 0);
        drop(wal);
        // The journal says frame 0 is its last; the log begins at frame 1: fine.
        assert!(Wal::open(dir.path(), 0, |_| Ok(())).is_ok());
        let only = segments(dir.path()).expect("list");
        for (_, p) in &only {
            std::fs::remove_file(p).expect("rm");
        }
        std::fs::write(dir.path().join(segment_name(9)), b"").expect("write");
        let err = Wal::open(dir.path(), 2, |_| Ok(())).err().expect("a gap");
        assert!(err.to_string().contains("missing"), "{err}");
    }

    #[test]
    fn covered_segments_are_removed_and_full_ones_rotated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut wal, _, _) = open(dir.path(), 0);
        write_frame(&mut wal, 0);
        drop(wal);
        let (mut wal, seen, _) = open(dir.path(), 0);
        assert_eq!(seen, expected(0));
        assert_eq!(segments(dir.path()).expect("list").len(), 2);
        // A durable commit covering frame 1 lets the old segment go.
        wal.durable_through(1, wal.since_durable())
            .expect("durable");
        assert_eq!(segments(dir.path()).expect("list").len(), 1);
        // Grow the open segment past its size; the next durable commit rotates it.
        wal.segment_len = SEGMENT_BYTES;
        let lsn = write_frame(&mut wal, 1);
        assert!(wal.since_durable() > 0);
        wal.durable_through(lsn, wal.since_durable())
            .expect("durable");
        assert_eq!(wal.since_durable(), 0);
        let left = segments(dir.path()).expect("list");
        assert_eq!(left.len(), 1);
        assert_eq!(
            left[0].0,
            lsn + 1,
            "a new segment begins after the covered frame"
        );
        drop(wal);
        let (_, seen, r) = open(dir.path(), lsn);
        assert!(seen.is_empty());
        assert_eq!(r, Replayed::default());
    }

    /// Frames written while a durable commit ran are past its mark: the full segment holding
    /// them is closed all the same, kept until a later commit covers them, and the bytes
    /// still to cover are theirs alone.
    #[test]
    fn frames_past_a_durable_mark_keep_their_segment_until_covered() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut wal, _, _) = open(dir.path(), 0);
        let covered_lsn = write_frame(&mut wal, 0);
        let covered = wal.since_durable();
        wal.segment_len = SEGMENT_BYTES;
        let past = write_frame(&mut wal, 1);
        let past_bytes = wal.since_durable() - covered;
        wal.durable_through(covered_lsn, covered).expect("durable");
        assert_eq!(wal.since_durable(), past_bytes);
        let left = segments(dir.path()).expect("list");
        assert_eq!(left.len(), 2, "the full segment was closed but not removed");
        assert_eq!(left[1].0, past + 1);
        // A crash now replays the frame past the mark.
        drop(wal);
        let (mut wal, seen, _) = open(dir.path(), covered_lsn);
        assert_eq!(seen, expected(1));
        let later = write_frame(&mut wal, 2);
        wal.durable_through(later, wal.since_durable())
            .expect("durable");
        assert_eq!(wal.since_durable(), 0);
        assert_eq!(
            segments(dir.path()).expect("list").len(),
            1,
            "covered at last"
        );
    }

    #[test]
    fn entries_that_do_not_parse_are_reported() {
        let mut it = EntryIter::new(&[PUT, 99, 0, 0, 0, 0]);
        assert_eq!(it.next(), Some(Err("unknown table")));
        assert_eq!(it.next(), None);
        let mut it = EntryIter::new(&[PUT, Table::Queue as u8, 9, 0, 0, 0, b'a']);
        assert_eq!(it.next(), Some(Err("entry cut short")));
        let mut it = EntryIter::new(&[7, Table::MessageLog as u8, 1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(it.next(), Some(Err("unknown entry kind")));
    }
}
