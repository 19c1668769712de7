//! The two small metadata files of a log directory.
//!
//! `deletes.dat` records what was removed without removing whole segments: the first sequence
//! still kept (everything below was purged or expired), the interior sequences deleted, and
//! the last sequence and timestamp ever assigned (so neither goes back when every segment is
//! gone). It is replaced atomically (temp, fsync, rename, fsync directory) whenever it changed
//! and the log syncs, and always before a segment file is removed, so a crash can never bring
//! removed messages back.
//!
//! `snapshot.dat` is written only by a clean close: per-segment summaries and the per-subject
//! map, so that reopening a large log reads a few kilobytes instead of every record. It is
//! removed as soon as the log is opened, before anything is written, so a later crash can
//! never leave a stale snapshot behind.

use super::record::{read_u16, read_u32, read_u64, CHECKSUM_CRC32, FORMAT_VERSION};

/// File name of the deletes file.
pub const DELETES_FILE: &str = "deletes.dat";
/// File name of the clean-shutdown snapshot.
pub const SNAPSHOT_FILE: &str = "snapshot.dat";
/// Magic of `deletes.dat`.
pub const DELETES_MAGIC: [u8; 4] = *b"JLDL";
/// Magic of `snapshot.dat`.
pub const SNAPSHOT_MAGIC: [u8; 4] = *b"JLSN";

/// Contents of `deletes.dat`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeletesFile {
    /// Every sequence below this one is gone.
    pub floor: u64,
    /// Highest sequence ever assigned.
    pub last_seq: u64,
    /// Timestamp of `last_seq`.
    pub last_ts_ns: u64,
    /// Deleted interior sequences as inclusive ranges, sorted, not overlapping.
    pub ranges: Vec<(u64, u64)>,
    /// For a replicated stream's log: the last Raft entry applied to it and the last
    /// sequence after that entry. Written in the same file as the removals, so a crash can
    /// never keep an entry's removals and lose the record that it was applied.
    pub applied: Option<Applied>,
}

/// A replicated stream's checkpoint as its log keeps it (see [`DeletesFile::applied`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// The Raft log index of the entry.
    pub index: u64,
    /// The log's last sequence once that entry was applied.
    pub last_seq: u64,
}

/// Summary of one segment, as kept in memory and in the snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SegmentSummary {
    /// Sequence the segment is named by.
    pub base_seq: u64,
    /// Lowest sequence with a record (0 if none).
    pub first_rec: u64,
    /// Highest sequence with a record (0 if none).
    pub last_rec: u64,
    /// File length in bytes.
    pub file_len: u64,
    /// Messages still stored (records minus deleted).
    pub msgs: u64,
    /// Bytes of those messages.
    pub bytes: u64,
    /// Smallest record timestamp.
    pub min_ts_ns: u64,
    /// Largest record timestamp.
    pub max_ts_ns: u64,
}

const SEGMENT_SUMMARY_BYTES: usize = 64;

/// One subject's entry in the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectEntry {
    /// Subject.
    pub subject: String,
    /// Lower bound of its first sequence.
    pub first: u64,
    /// Its last sequence.
    pub last: u64,
    /// Messages stored for it.
    pub count: u64,
}

/// Contents of `snapshot.dat`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// CRC32 of the `deletes.dat` bytes this snapshot was taken with (0 if none existed).
    pub deletes_crc: u32,
    /// Every segment, in order.
    pub segments: Vec<SegmentSummary>,
    /// Every subject.
    pub subjects: Vec<SubjectEntry>,
}

fn header(magic: [u8; 4]) -> Vec<u8> {
    let mut b = Vec::with_capacity(64);
    b.extend_from_slice(&magic);
    b.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    b.push(CHECKSUM_CRC32);
    b.push(0);
    b
}

fn seal(mut b: Vec<u8>) -> Vec<u8> {
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

/// Checks magic, version, checksum id and trailing CRC; returns the body after the 8-byte
/// header.
fn open(buf: &[u8], magic: [u8; 4]) -> Result<&[u8], &'static str> {
    if buf.len() < 12 {
        return Err("file too short");
    }
    let body = &buf[..buf.len() - 4];
    if crc32fast::hash(body) != read_u32(buf, buf.len() - 4) {
        return Err("checksum mismatch");
    }
    if body[0..4] != magic || read_u16(body, 4) != FORMAT_VERSION || body[6] != CHECKSUM_CRC32 {
        return Err("magic, version or checksum id not recognised");
    }
    Ok(&body[8..])
}

/// A bounds-checked little-endian reader.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.0.len() < n {
            return Err("truncated field");
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u64(&mut self) -> Result<u64, &'static str> {
        Ok(read_u64(self.take(8)?, 0))
    }
    fn u32(&mut self) -> Result<u32, &'static str> {
        Ok(read_u32(self.take(4)?, 0))
    }
    fn u16(&mut self) -> Result<u16, &'static str> {
        Ok(read_u16(self.take(2)?, 0))
    }
    /// A count of items of at least `item_bytes` each that must fit in what is left.
    fn count(&mut self, item_bytes: usize) -> Result<usize, &'static str> {
        let n = self.u64()?;
        if n > (self.0.len() / item_bytes) as u64 {
            return Err("count larger than the file");
        }
        Ok(n as usize)
    }
}

impl DeletesFile {
    /// Serialises the file.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = header(DELETES_MAGIC);
        for v in [
            self.floor,
            self.last_seq,
            self.last_ts_ns,
            self.ranges.len() as u64,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for (lo, hi) in &self.ranges {
            b.extend_from_slice(&lo.to_le_bytes());
            b.extend_from_slice(&hi.to_le_bytes());
        }
        if let Some(applied) = self.applied {
            b.extend_from_slice(&applied.index.to_le_bytes());
            b.extend_from_slice(&applied.last_seq.to_le_bytes());
        }
        seal(b)
    }

    /// Parses and validates the file.
    pub fn decode(buf: &[u8]) -> Result<Self, &'static str> {
        let mut c = Cursor(open(buf, DELETES_MAGIC)?);
        let mut d = DeletesFile {
            floor: c.u64()?,
            last_seq: c.u64()?,
            last_ts_ns: c.u64()?,
            ranges: Vec::new(),
            applied: None,
        };
        let n = c.count(16)?;
        let mut prev_hi = 0u64;
        for _ in 0..n {
            let (lo, hi) = (c.u64()?, c.u64()?);
            if lo > hi || (lo <= prev_hi && !d.ranges.is_empty()) {
                return Err("delete ranges out of order");
            }
            prev_hi = hi;
            d.ranges.push((lo, hi));
        }
        // Only a replicated stream's log has the checkpoint after the ranges.
        if c.0.len() == 16 {
            d.applied = Some(Applied {
                index: c.u64()?,
                last_seq: c.u64()?,
            });
        }
        if !c.0.is_empty() {
            return Err("trailing bytes");
        }
        Ok(d)
    }
}

impl Snapshot {
    /// Serialises the snapshot.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = header(SNAPSHOT_MAGIC);
        b.extend_from_slice(&self.deletes_crc.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&(self.segments.len() as u64).to_le_bytes());
        for s in &self.segments {
            for v in [
                s.base_seq,
                s.first_rec,
                s.last_rec,
                s.file_len,
                s.msgs,
                s.bytes,
                s.min_ts_ns,
                s.max_ts_ns,
            ] {
                b.extend_from_slice(&v.to_le_bytes());
            }
        }
        b.extend_from_slice(&(self.subjects.len() as u64).to_le_bytes());
        for e in &self.subjects {
            b.extend_from_slice(&(e.subject.len() as u16).to_le_bytes());
            b.extend_from_slice(e.subject.as_bytes());
            for v in [e.first, e.last, e.count] {
                b.extend_from_slice(&v.to_le_bytes());
            }
        }
        seal(b)
    }

    /// Parses and validates the snapshot.
    pub fn decode(buf: &[u8]) -> Result<Self, &'static str> {
        let mut c = Cursor(open(buf, SNAPSHOT_MAGIC)?);
        let deletes_crc = c.u32()?;
        c.u32()?;
        let mut snap = Snapshot {
            deletes_crc,
            ..Snapshot::default()
        };
        let n = c.count(SEGMENT_SUMMARY_BYTES)?;
        for _ in 0..n {
            snap.segments.push(SegmentSummary {
                base_seq: c.u64()?,
                first_rec: c.u64()?,
                last_rec: c.u64()?,
                file_len: c.u64()?,
                msgs: c.u64()?,
                bytes: c.u64()?,
                min_ts_ns: c.u64()?,
                max_ts_ns: c.u64()?,
            });
        }
        let n = c.count(27)?;
        for _ in 0..n {
            let len = c.u16()? as usize;
            let subject = std::str::from_utf8(c.take(len)?).map_err(|_| "subject not UTF-8")?;
            snap.subjects.push(SubjectEntry {
                subject: subject.to_owned(),
                first: c.u64()?,
                last: c.u64()?,
                count: c.u64()?,
            });
        }
        if !c.0.is_empty() {
            return Err("trailing bytes");
        }
        Ok(snap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletes_file_round_trips_and_detects_damage() {
        let d = DeletesFile {
            floor: 5,
            last_seq: 99,
            last_ts_ns: 7,
            ranges: vec![(7, 9), (20, 20)],
            applied: None,
        };
        let replicated = DeletesFile {
            applied: Some(Applied {
                index: 12,
                last_seq: 99,
            }),
            ..d.clone()
        };
        for d in [d, replicated] {
            let buf = d.encode();
            assert_eq!(DeletesFile::decode(&buf), Ok(d));
            for i in 0..buf.len() {
                let mut bad = buf.clone();
                bad[i] ^= 1;
                assert!(DeletesFile::decode(&bad).is_err(), "byte {i}");
            }
        }
    }

    #[test]
    fn snapshot_round_trips() {
        let s = Snapshot {
            deletes_crc: 3,
            segments: vec![SegmentSummary {
                base_seq: 1,
                first_rec: 1,
                last_rec: 4,
                file_len: 300,
                msgs: 4,
                bytes: 280,
                min_ts_ns: 1,
                max_ts_ns: 9,
            }],
            subjects: vec![SubjectEntry {
                subject: "a.b".into(),
                first: 1,
                last: 4,
                count: 4,
            }],
        };
        assert_eq!(Snapshot::decode(&s.encode()), Ok(s));
    }
}
