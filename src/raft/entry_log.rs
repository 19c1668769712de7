//! A group's Raft entries in segment files of CRC-checked records, made durable with one
//! `fdatasync` per append.
//!
//! Until this module a group's entries lived in a sled tree, and each append paid a sled
//! flush (0.31 ms on the leader and 0.35 ms on a follower at p50 on this machine, against
//! 0.15 ms for a plain `fdatasync`), twice on the path of every replicated publish.
//!
//! Layout: the directory holds segments named by the index of their first entry
//! (`00000000000000000001.rlog`). A record is `[len u32][crc32 u32][entry]` (little-endian),
//! the entry in [`super::codec`]'s encoding, which starts with its own index. Only the last
//! segment is appended to; it reserves disk space ahead of its end (as the stream store's
//! segments do), so most `fdatasync`s commit no size change. A zero length word therefore
//! ends the data. A record that is cut short, fails its CRC, or does not hold the next index
//! ends it too: recovery cuts the segment there and drops the segments after it, so a
//! damaged entry is never served (the group's leader sends it again).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::codec;
use crate::store::io::{is_unsupported, read_full_at, write_all_at, StdVfs, Vfs, VfsFile};

/// A segment takes appends until it holds this much; the next append starts a new one.
/// Purging the log deletes whole segments.
pub const SEGMENT_BYTES: u64 = 8 << 20;
/// Disk space reserved ahead of the end of the last segment at a time.
pub const RESERVE_STEP_BYTES: u64 = 256 << 10;
/// Extension of segment files.
pub const SEGMENT_EXT: &str = "rlog";
/// Bytes before each record's entry: its length and its CRC.
const RECORD_HEADER_BYTES: usize = 8;
/// No entry is larger than this; a length word above it is damage, not a record.
const MAX_ENTRY_BYTES: usize = 256 << 20;

/// A file operation of the entry log that failed.
#[derive(Debug, thiserror::Error)]
#[error("raft log {path}: {source}")]
pub struct EntryLogError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

type Result<T> = std::result::Result<T, EntryLogError>;

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> EntryLogError + '_ {
    move |source| EntryLogError {
        path: path.to_owned(),
        source,
    }
}

fn damaged(path: &Path, what: String) -> EntryLogError {
    EntryLogError {
        path: path.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, what),
    }
}

struct Segment {
    first: u64,
    path: PathBuf,
    file: Arc<dyn VfsFile>,
    /// Logical end: where the next record goes.
    end: u64,
    /// End of the disk space the file holds.
    allocated: u64,
    preallocate: bool,
}

/// Where one entry's bytes are.
#[derive(Clone, Copy, Debug)]
struct Location {
    offset: u64,
    len: u32,
}

/// What an append leaves to make durable (outside any lock: it takes a while).
pub struct PendingSync {
    file: Arc<dyn VfsFile>,
    path: PathBuf,
    /// A new segment was created: its directory entry must be durable too.
    dir: Option<PathBuf>,
    vfs: Arc<dyn Vfs>,
}

impl PendingSync {
    /// `fdatasync`s the appended segment (and its directory if the segment is new).
    pub fn sync(self) -> Result<()> {
        self.file.sync_data().map_err(io_error(&self.path))?;
        if let Some(dir) = &self.dir {
            self.vfs.sync_dir(dir).map_err(io_error(dir))?;
        }
        Ok(())
    }
}

/// Entries laid out as the log's records, each encoded once, straight into the bytes that
/// one write puts in the segment.
#[derive(Default)]
pub struct RecordBatch {
    buf: Vec<u8>,
    /// Each entry's index and length.
    entries: Vec<(u64, usize)>,
}

impl RecordBatch {
    /// Adds the record of entry `index`, whose bytes `encode` appends to the buffer it is
    /// given (the record's header is filled in after it).
    pub fn push(&mut self, index: u64, encode: impl FnOnce(&mut Vec<u8>)) {
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0; RECORD_HEADER_BYTES]);
        encode(&mut self.buf);
        let entry = &self.buf[at + RECORD_HEADER_BYTES..];
        let len = entry.len();
        let crc = crc32fast::hash(entry);
        // A length past u32 is refused by `EntryLog::append` before anything is written.
        let len_word = u32::try_from(len).unwrap_or(u32::MAX);
        self.buf[at..at + 4].copy_from_slice(&len_word.to_le_bytes());
        self.buf[at + 4..at + RECORD_HEADER_BYTES].copy_from_slice(&crc.to_le_bytes());
        self.entries.push((index, len));
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

/// The entries of one group, in order, from `first` on.
pub struct EntryLog {
    dir: PathBuf,
    vfs: Arc<dyn Vfs>,
    segments: Vec<Segment>,
    /// The location of entry `first + i`.
    locations: VecDeque<Location>,
    first: u64,
}

impl EntryLog {
    /// Opens (or creates) the log in `dir`, recovering from a crash or damage as the module
    /// doc says. `purged`: the group's durable purge point; entries up to it are dropped (a
    /// crash may have come between making it durable and deleting their segments).
    pub fn open(dir: &Path, purged: Option<u64>) -> Result<Self> {
        Self::open_on(Arc::new(StdVfs), dir, purged)
    }

    /// [`EntryLog::open`] on a given file system layer.
    pub fn open_on(vfs: Arc<dyn Vfs>, dir: &Path, purged: Option<u64>) -> Result<Self> {
        vfs.create_dir_all(dir).map_err(io_error(dir))?;
        let mut firsts: Vec<u64> = vfs
            .list(dir)
            .map_err(io_error(dir))?
            .iter()
            .filter_map(|name| parse_name(name))
            .collect();
        firsts.sort_unstable();
        let mut log = EntryLog {
            dir: dir.to_owned(),
            vfs,
            segments: Vec::new(),
            locations: VecDeque::new(),
            first: 0,
        };
        let mut damaged_from = None;
        for (i, first) in firsts.iter().enumerate() {
            let path = dir.join(segment_name(*first));
            if damaged_from.is_some() {
                continue;
            }
            if let Some(last) = log.last_index().filter(|last| last + 1 != *first) {
                if purged.is_some_and(|p| p >= last && p + 1 >= *first) {
                    // Only purged entries before the gap: a purge that crashed half-way.
                    log.locations.clear();
                    log.remove_dead_segments()?;
                } else {
                    damaged_from = Some(i);
                    continue;
                }
            }
            let file: Arc<dyn VfsFile> =
                Arc::from(log.vfs.open(&path, false).map_err(io_error(&path))?);
            let (end, clean) = log.scan(&file, &path, *first)?;
            let allocated = file.file_len().map_err(io_error(&path))?;
            if !clean {
                tracing::error!(path = %path.display(), offset = end, "raft log damaged: cutting it here; the group's leader sends the rest again");
                file.set_len(end).map_err(io_error(&path))?;
                file.sync_data().map_err(io_error(&path))?;
                damaged_from = Some(i + 1);
            }
            log.segments.push(Segment {
                first: *first,
                path,
                file,
                end,
                allocated: if clean { allocated.max(end) } else { end },
                preallocate: true,
            });
        }
        if let Some(from) = damaged_from {
            for first in &firsts[from..] {
                let path = dir.join(segment_name(*first));
                tracing::error!(path = %path.display(), "raft log segment after damage: removed");
                log.vfs.remove(&path).map_err(io_error(&path))?;
            }
            log.vfs.sync_dir(dir).map_err(io_error(dir))?;
        }
        // A segment whose records were all cut away holds nothing to find entries by.
        while log.segments.last().is_some_and(|s| s.end == 0) {
            if let Some(empty) = log.segments.pop() {
                log.vfs.remove(&empty.path).map_err(io_error(&empty.path))?;
            }
        }
        if let Some(upto) = purged {
            log.purge(upto)?;
        }
        Ok(log)
    }

    /// Reads the records of one segment into `locations`; returns the logical end and
    /// whether the data ended cleanly (zeros or the end of the file) rather than at damage.
    fn scan(&mut self, file: &Arc<dyn VfsFile>, path: &Path, first: u64) -> Result<(u64, bool)> {
        let len = file.file_len().map_err(io_error(path))?;
        let mut data = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
        let read = read_full_at(file.as_ref(), &mut data, 0).map_err(io_error(path))?;
        data.truncate(read);
        if self.locations.is_empty() {
            self.first = first;
        }
        let mut at = 0usize;
        loop {
            let Some(header) = data.get(at..at + RECORD_HEADER_BYTES) else {
                return Ok((at as u64, at == data.len()));
            };
            let entry_len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
            let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
            if entry_len == 0 && crc == 0 {
                let rest_is_zero = data[at..].iter().all(|b| *b == 0);
                return Ok((at as u64, rest_is_zero));
            }
            let start = at + RECORD_HEADER_BYTES;
            let Some(entry) = data.get(start..start + entry_len as usize) else {
                return Ok((at as u64, false));
            };
            let expected = self.next_index_or(first);
            if crc32fast::hash(entry) != crc || codec::entry_index(entry).ok() != Some(expected) {
                return Ok((at as u64, false));
            }
            self.locations.push_back(Location {
                offset: start as u64,
                len: entry_len,
            });
            at = start + entry_len as usize;
        }
    }

    fn next_index_or(&self, first: u64) -> u64 {
        if self.locations.is_empty() {
            first
        } else {
            self.next_index()
        }
    }

    /// The index the next entry must have (when the log holds any).
    fn next_index(&self) -> u64 {
        self.first + self.locations.len() as u64
    }

    /// Index of the last entry held, if any.
    pub fn last_index(&self) -> Option<u64> {
        (!self.locations.is_empty()).then(|| self.next_index() - 1)
    }

    /// Appends `batch`'s entries, which must follow the last entry held (or be anything
    /// when the log is empty). Written but not yet durable: the caller runs the returned
    /// [`PendingSync`] before anyone may count on them.
    pub fn append(&mut self, batch: &RecordBatch) -> Result<Option<PendingSync>> {
        let Some((first_index, _)) = batch.entries.first() else {
            return Ok(None);
        };
        debug_assert!(self.locations.is_empty() || *first_index == self.next_index());
        debug_assert!(batch.entries.windows(2).all(|w| w[1].0 == w[0].0 + 1));
        if let Some((_, len)) = batch.entries.iter().find(|(_, len)| *len > MAX_ENTRY_BYTES) {
            return Err(damaged(
                &self.dir,
                format!("entry of {len} bytes is too large"),
            ));
        }
        let mut new_dir = None;
        if self.locations.is_empty() {
            self.first = *first_index;
        }
        let needs_segment = match self.segments.last() {
            None => true,
            Some(last) => last.end >= SEGMENT_BYTES || self.locations.is_empty(),
        };
        if needs_segment {
            self.seal_last()?;
            self.segments.push(self.create_segment(*first_index)?);
            new_dir = Some(self.dir.clone());
        }
        let Some(segment) = self.segments.last_mut() else {
            return Err(damaged(&self.dir, "no segment to append to".into()));
        };
        let at = segment.end;
        reserve(segment, at + batch.buf.len() as u64)?;
        write_all_at(segment.file.as_ref(), &batch.buf, at).map_err(io_error(&segment.path))?;
        let mut offset = at;
        for (_, len) in &batch.entries {
            offset += RECORD_HEADER_BYTES as u64;
            self.locations.push_back(Location {
                offset,
                len: *len as u32,
            });
            offset += *len as u64;
        }
        segment.end = offset;
        Ok(Some(PendingSync {
            file: segment.file.clone(),
            path: segment.path.clone(),
            dir: new_dir,
            vfs: self.vfs.clone(),
        }))
    }

    fn create_segment(&self, first: u64) -> Result<Segment> {
        let path = self.dir.join(segment_name(first));
        let file: Arc<dyn VfsFile> =
            Arc::from(self.vfs.open(&path, true).map_err(io_error(&path))?);
        file.set_len(0).map_err(io_error(&path))?;
        Ok(Segment {
            first,
            path,
            file,
            end: 0,
            allocated: 0,
            preallocate: true,
        })
    }

    /// Gives back the reserved space past the last segment's data before it stops taking
    /// appends.
    fn seal_last(&mut self) -> Result<()> {
        if let Some(last) = self.segments.last_mut() {
            if last.allocated > last.end {
                last.file.set_len(last.end).map_err(io_error(&last.path))?;
                last.file.sync_data().map_err(io_error(&last.path))?;
                last.allocated = last.end;
            }
        }
        Ok(())
    }

    /// The encoded entries with indexes in `[from, to)` that the log holds.
    pub fn read(&self, from: u64, to: u64) -> Result<Vec<Vec<u8>>> {
        let from = from.max(self.first);
        let to = to.min(self.next_index());
        let mut out = Vec::with_capacity(to.saturating_sub(from) as usize);
        for index in from..to {
            let Some(location) = self.locations.get((index - self.first) as usize) else {
                break;
            };
            let segment = self.segment_of(index)?;
            let mut bytes = vec![0u8; location.len as usize];
            let read = read_full_at(segment.file.as_ref(), &mut bytes, location.offset)
                .map_err(io_error(&segment.path))?;
            if read != bytes.len() {
                return Err(damaged(&segment.path, format!("entry {index} cut short")));
            }
            out.push(bytes);
        }
        Ok(out)
    }

    fn segment_of(&self, index: u64) -> Result<&Segment> {
        let at = self.segments.partition_point(|s| s.first <= index);
        at.checked_sub(1)
            .and_then(|i| self.segments.get(i))
            .ok_or_else(|| damaged(&self.dir, format!("no segment holds entry {index}")))
    }

    /// Removes entry `since` and every later one, durably.
    pub fn truncate(&mut self, since: u64) -> Result<()> {
        if since >= self.next_index() || self.locations.is_empty() {
            return Ok(());
        }
        let keep = since.saturating_sub(self.first) as usize;
        let cut_at = self.locations.get(keep).map(|l| l.offset);
        self.locations.truncate(keep);
        let mut removed = false;
        while self.segments.last().is_some_and(|s| s.first >= since) {
            if let Some(gone) = self.segments.pop() {
                self.vfs.remove(&gone.path).map_err(io_error(&gone.path))?;
                removed = true;
            }
        }
        if let (Some(last), Some(offset)) = (self.segments.last_mut(), cut_at) {
            if last.first < since && offset >= RECORD_HEADER_BYTES as u64 {
                let end = offset - RECORD_HEADER_BYTES as u64;
                last.file.set_len(end).map_err(io_error(&last.path))?;
                last.file.sync_data().map_err(io_error(&last.path))?;
                last.end = end;
                last.allocated = end;
            }
        }
        if removed {
            self.vfs.sync_dir(&self.dir).map_err(io_error(&self.dir))?;
        }
        self.remove_dead_segments()
    }

    /// Forgets every entry up to and including `upto`, deleting the segments that hold
    /// nothing else. The caller has made the purge point durable first.
    pub fn purge(&mut self, upto: u64) -> Result<()> {
        if !self.locations.is_empty() && upto >= self.first {
            let drop = (upto - self.first + 1).min(self.locations.len() as u64);
            self.locations.drain(..drop as usize);
            self.first += drop;
        }
        self.remove_dead_segments()
    }

    /// Deletes the segments that hold no entry the log still has: those before the segment
    /// of the first entry, or all of them when the log is empty (so that a later append,
    /// whatever its index, never leaves a gap between segments).
    fn remove_dead_segments(&mut self) -> Result<()> {
        let mut removed = false;
        loop {
            let dead = match (self.segments.first(), self.segments.get(1)) {
                _ if self.locations.is_empty() => !self.segments.is_empty(),
                (Some(_), Some(next)) => next.first <= self.first,
                _ => false,
            };
            if !dead {
                break;
            }
            let gone = self.segments.remove(0);
            self.vfs.remove(&gone.path).map_err(io_error(&gone.path))?;
            removed = true;
        }
        if removed {
            self.vfs.sync_dir(&self.dir).map_err(io_error(&self.dir))?;
        }
        Ok(())
    }

    /// Deletes the log's directory and everything in it.
    pub fn destroy(dir: &Path) -> Result<()> {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(dir)(e)),
        }
    }
}

/// Reserves disk space ahead of `end` in steps (see the module doc); a file system that
/// cannot turns it off for the segment.
fn reserve(segment: &mut Segment, end: u64) -> Result<()> {
    if !segment.preallocate || end <= segment.allocated {
        return Ok(());
    }
    let target = end.div_ceil(RESERVE_STEP_BYTES) * RESERVE_STEP_BYTES;
    match segment
        .file
        .allocate(segment.allocated, target - segment.allocated)
    {
        Ok(()) => segment.allocated = target,
        Err(e) if is_unsupported(&e) => segment.preallocate = false,
        // Out of space for the step: append without it; the write says if even that fails.
        Err(_) => segment.preallocate = false,
    }
    Ok(())
}

fn segment_name(first: u64) -> String {
    format!("{first:020}.{SEGMENT_EXT}")
}

fn parse_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(SEGMENT_EXT)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}
