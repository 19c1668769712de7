//! Reading records from a segment file: a windowed positional reader, and the forward scan
//! that recovery uses to rebuild indexes and find damage.
//!
//! A scan ends in one of three ways (see [`ScanOutcome`]): clean at end of file; with a torn
//! tail (bytes after the last valid record that hold no valid record at all, which is what a
//! crash in the middle of an append leaves); or with interior damage (a bad stretch followed by
//! valid records). Damage never stops the scan: records carry their own length and CRC, so the
//! scan hunts byte by byte for the next position where a plausible, checksum-valid record with
//! a higher sequence starts, and goes on from there.
//!
//! Zeros are special: the active segment is preallocated ahead of its data, so after a crash
//! it normally ends in a run of zero bytes. When everything after the last valid record is
//! zero, the scan ends cleanly with [`ScanOutcome::zero_tail`] set instead of a torn tail. A
//! zero run *followed* by a valid record is still interior damage.

use std::io;

use super::io::{read_full_at, VfsFile};
use super::record::{
    decode_record, plausible_at, read_u32, Decoded, RecordView, MAX_RECORD_BYTES,
    RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES,
};

/// Default read window for sequential scans: large enough that a scan costs one `pread` per
/// few thousand small records, small enough to keep per-reader memory modest.
pub const SCAN_WINDOW_BYTES: usize = 256 * 1024;
/// Read window for single-record lookups; a larger record costs a second read.
pub const POINT_READ_BYTES: usize = 4 * 1024;
/// Largest sequence jump accepted between two records when hunting for the next valid record
/// after damage. It bounds the chance that garbage passes the pre-check before the CRC.
const MAX_RESYNC_SEQ_GAP: u64 = 1 << 32;

/// A positional reader that keeps one window of the file in memory.
#[derive(Debug)]
pub struct RecordReader {
    /// The buffered bytes.
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    start: u64,
    /// How many bytes to read when the window must move.
    window: usize,
    /// The window doubles on every refill up to this size, so a lookup that needs one small
    /// record reads little while a long scan soon reads in large blocks.
    max_window: usize,
}

impl RecordReader {
    /// A reader that reads `window` bytes at a time.
    pub fn new(window: usize) -> Self {
        Self::growing(window, window)
    }

    /// A reader whose window starts at `initial` bytes and doubles per refill up to `max`.
    pub fn growing(initial: usize, max: usize) -> Self {
        RecordReader {
            buf: Vec::new(),
            start: 0,
            window: initial,
            max_window: max.max(initial),
        }
    }

    /// Makes the window cover `[offset, offset + want)`, or as much of it as the file holds.
    fn ensure(
        &mut self,
        file: &dyn VfsFile,
        offset: u64,
        want: usize,
        file_len: u64,
    ) -> io::Result<()> {
        let end = offset + want as u64;
        if offset >= self.start && end <= self.start + self.buf.len() as u64 {
            return Ok(());
        }
        let available = file_len.saturating_sub(offset);
        let len = (want.max(self.window) as u64).min(available) as usize;
        self.buf.resize(len, 0);
        let n = read_full_at(file, &mut self.buf, offset)?;
        self.buf.truncate(n);
        self.start = offset;
        self.window = (self.window * 2).min(self.max_window);
        Ok(())
    }

    fn slice(&self, offset: u64) -> &[u8] {
        let at = (offset - self.start) as usize;
        self.buf.get(at..).unwrap_or(&[])
    }

    /// Decodes the record at `offset` (reads more if the record is larger than the window).
    pub fn decode_at(
        &mut self,
        file: &dyn VfsFile,
        offset: u64,
        file_len: u64,
    ) -> io::Result<Decoded<'_>> {
        self.ensure(file, offset, RECORD_HEADER_BYTES, file_len)?;
        let head = self.slice(offset);
        if head.len() >= 4 {
            let len = read_u32(head, 0) as usize;
            if len > head.len() && len <= MAX_RECORD_BYTES {
                self.ensure(file, offset, len, file_len)?;
            }
        }
        Ok(decode_record(self.slice(offset)))
    }

    /// Whether a plausible record header starts at `offset` (used while hunting after damage).
    fn plausible(
        &mut self,
        file: &dyn VfsFile,
        offset: u64,
        file_len: u64,
        min_seq: u64,
    ) -> io::Result<bool> {
        self.ensure(file, offset, RECORD_HEADER_BYTES, file_len)?;
        Ok(plausible_at(
            self.slice(offset),
            min_seq,
            min_seq.saturating_add(MAX_RESYNC_SEQ_GAP),
        ))
    }
}

/// A stretch of a segment that holds no valid record, followed by valid ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DamagedRange {
    /// Offset where the damage starts.
    pub offset: u64,
    /// Bytes skipped.
    pub len: u64,
    /// What check failed at `offset`.
    pub reason: &'static str,
}

/// How a segment scan ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScanOutcome {
    /// End offset of the last valid record (the header size if there is none).
    pub valid_end: u64,
    /// Offset of a torn tail (bytes after `valid_end` holding no valid record and not all
    /// zero), if any.
    pub torn_tail: Option<u64>,
    /// Offset of a zero tail (every byte after `valid_end` is zero: preallocated space, the
    /// end of the data), if any. Never set together with `torn_tail`.
    pub zero_tail: Option<u64>,
    /// Interior damage that was stepped over.
    pub damaged: Vec<DamagedRange>,
    /// Number of valid records.
    pub records: u64,
}

/// Scans every record of a segment after its header, calling `on_record` with each valid one
/// and its offset. Sequences must grow, be at least `base_seq` and below `seq_limit` (the next
/// segment's base); a CRC-valid record that breaks that rule is treated as damage (a stale or
/// misdirected write).
pub fn scan_segment(
    file: &dyn VfsFile,
    file_len: u64,
    base_seq: u64,
    seq_limit: u64,
    mut on_record: impl FnMut(&RecordView<'_>, u64),
) -> io::Result<ScanOutcome> {
    let mut reader = RecordReader::new(SCAN_WINDOW_BYTES);
    let mut out = ScanOutcome {
        valid_end: SEGMENT_HEADER_BYTES as u64,
        ..ScanOutcome::default()
    };
    let mut next_seq = base_seq;
    let mut pos = SEGMENT_HEADER_BYTES as u64;
    while pos < file_len {
        let reason = match reader.decode_at(file, pos, file_len)? {
            Decoded::Record(r)
                if r.seq >= next_seq && r.seq < seq_limit && r.subject_str().is_some() =>
            {
                on_record(&r, pos);
                next_seq = r.seq + 1;
                pos += r.len as u64;
                out.valid_end = pos;
                out.records += 1;
                continue;
            }
            Decoded::Record(r) if r.seq < next_seq => "sequence does not grow",
            Decoded::Record(r) if r.seq >= seq_limit => "sequence belongs to a later segment",
            Decoded::Record(_) => "subject is not UTF-8",
            Decoded::Incomplete { .. } => "record runs past end of file",
            Decoded::Invalid(why) => why,
        };
        if all_zero(file, pos, file_len)? {
            out.zero_tail = Some(pos);
            break;
        }
        match find_next_valid(&mut reader, file, pos + 1, file_len, next_seq, seq_limit)? {
            Some(found) => {
                out.damaged.push(DamagedRange {
                    offset: pos,
                    len: found - pos,
                    reason,
                });
                pos = found;
            }
            None => {
                out.torn_tail = Some(pos);
                break;
            }
        }
    }
    Ok(out)
}

/// Read size of [`all_zero`].
const ZERO_CHECK_BYTES: usize = 64 * 1024;

/// Whether every byte of `[from, to)` is zero (true for an empty range). Reads in bounded
/// chunks and stops at the first non-zero byte, so interior damage costs little to rule out.
pub fn all_zero(file: &dyn VfsFile, from: u64, to: u64) -> io::Result<bool> {
    let mut buf = vec![0u8; ZERO_CHECK_BYTES.min(to.saturating_sub(from) as usize)];
    let mut at = from;
    while at < to {
        let want = buf.len().min((to - at) as usize);
        let n = read_full_at(file, &mut buf[..want], at)?;
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        if n < want {
            // The file is shorter than `to`: what is missing holds nothing either.
            break;
        }
        at += n as u64;
    }
    Ok(true)
}

/// First offset at or after `from` where a checksum-valid record with sequence at least
/// `min_seq` starts.
fn find_next_valid(
    reader: &mut RecordReader,
    file: &dyn VfsFile,
    from: u64,
    file_len: u64,
    min_seq: u64,
    seq_limit: u64,
) -> io::Result<Option<u64>> {
    let mut p = from;
    while p + RECORD_HEADER_BYTES as u64 <= file_len {
        if reader.plausible(file, p, file_len, min_seq)? {
            if let Decoded::Record(r) = reader.decode_at(file, p, file_len)? {
                if r.seq >= min_seq && r.seq < seq_limit && r.subject_str().is_some() {
                    return Ok(Some(p));
                }
            }
        }
        p += 1;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::config::NewMessage;
    use crate::store::io::{StdVfs, Vfs};
    use crate::store::record::{encode_record, encode_segment_header};

    fn segment_with(records: u64, tail: &[u8]) -> (tempfile::TempDir, Box<dyn VfsFile>, Vec<u64>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut buf = encode_segment_header(1).to_vec();
        let mut starts = Vec::new();
        for seq in 1..=records {
            starts.push(buf.len() as u64);
            encode_record(
                &mut buf,
                seq,
                &NewMessage::new("a.b", vec![seq as u8; 50], seq),
            );
        }
        buf.extend_from_slice(tail);
        let path = dir.path().join("s");
        std::fs::write(&path, &buf).expect("write");
        let file = StdVfs.open(&path, false).expect("open");
        (dir, file, starts)
    }

    #[test]
    fn clean_segment_scans_every_record() {
        let (_dir, file, _) = segment_with(5, b"");
        let len = file.file_len().expect("len");
        let mut seen = Vec::new();
        let out =
            scan_segment(file.as_ref(), len, 1, u64::MAX, |r, _| seen.push(r.seq)).expect("scan");
        assert_eq!(seen, vec![1, 2, 3, 4, 5]);
        assert_eq!(
            (out.torn_tail, out.damaged.len(), out.valid_end),
            (None, 0, len)
        );
    }

    #[test]
    fn torn_tail_is_reported_at_the_end_of_the_last_valid_record() {
        let (_dir, file, starts) = segment_with(3, &[0x40, 0, 0, 0, 9, 9]);
        let len = file.file_len().expect("len");
        let out = scan_segment(file.as_ref(), len, 1, u64::MAX, |_, _| {}).expect("scan");
        assert_eq!(out.records, 3);
        assert_eq!(out.torn_tail, Some(out.valid_end));
        assert!(out.valid_end > starts[2]);
    }

    #[test]
    fn interior_damage_is_stepped_over_to_the_next_valid_record() {
        let (_dir, file, starts) = segment_with(4, b"");
        file.write_at(&[0xAB; 3], starts[1] + 9).expect("damage");
        let len = file.file_len().expect("len");
        let mut seen = Vec::new();
        let out =
            scan_segment(file.as_ref(), len, 1, u64::MAX, |r, _| seen.push(r.seq)).expect("scan");
        assert_eq!(seen, vec![1, 3, 4]);
        assert_eq!(out.damaged.len(), 1);
        assert_eq!(
            (out.damaged[0].offset, out.damaged[0].len),
            (starts[1], starts[2] - starts[1])
        );
        assert_eq!(out.torn_tail, None);
    }

    #[test]
    fn zero_tail_ends_the_data_without_damage() {
        let (_dir, file, _) = segment_with(3, &[0u8; 5000]);
        let len = file.file_len().expect("len");
        let out = scan_segment(file.as_ref(), len, 1, u64::MAX, |_, _| {}).expect("scan");
        assert_eq!(out.records, 3);
        assert_eq!(out.zero_tail, Some(out.valid_end));
        assert_eq!((out.torn_tail, out.damaged.len()), (None, 0));
        assert_eq!(out.valid_end, len - 5000);
    }

    #[test]
    fn partial_record_before_zeros_is_a_torn_tail() {
        let mut tail = vec![0x40, 0, 0, 0, 9, 9];
        tail.resize(4096, 0);
        let (_dir, file, _) = segment_with(3, &tail);
        let len = file.file_len().expect("len");
        let out = scan_segment(file.as_ref(), len, 1, u64::MAX, |_, _| {}).expect("scan");
        assert_eq!((out.records, out.zero_tail), (3, None));
        assert_eq!(out.torn_tail, Some(out.valid_end));
    }

    #[test]
    fn zeroed_record_between_valid_ones_is_interior_damage() {
        let (_dir, file, starts) = segment_with(4, &[0u8; 300]);
        let zeros = vec![0u8; (starts[2] - starts[1]) as usize];
        file.write_at(&zeros, starts[1]).expect("zero record 2");
        let len = file.file_len().expect("len");
        let mut seen = Vec::new();
        let out =
            scan_segment(file.as_ref(), len, 1, u64::MAX, |r, _| seen.push(r.seq)).expect("scan");
        assert_eq!(seen, vec![1, 3, 4]);
        assert_eq!(out.damaged.len(), 1);
        assert_eq!(out.damaged[0].offset, starts[1]);
        assert_eq!(
            out.zero_tail,
            Some(out.valid_end),
            "the tail after record 4"
        );
    }

    #[test]
    fn all_zero_checks_the_whole_range_in_chunks() {
        let mut tail = vec![0u8; 3 * ZERO_CHECK_BYTES];
        let (_dir, file, _) = segment_with(0, &tail);
        let len = file.file_len().expect("len");
        assert!(all_zero(file.as_ref(), 20, len).expect("zeros"));
        assert!(all_zero(file.as_ref(), len, len).expect("empty range"));
        tail[2 * ZERO_CHECK_BYTES + 7] = 1;
        let (_dir2, file2, _) = segment_with(0, &tail);
        assert!(!all_zero(file2.as_ref(), 20, len).expect("one byte set"));
        assert!(all_zero(file2.as_ref(), 20, 20 + 2 * ZERO_CHECK_BYTES as u64).expect("before it"));
    }

    #[test]
    fn records_from_a_later_segment_count_as_damage() {
        let (_dir, file, _) = segment_with(4, b"");
        let len = file.file_len().expect("len");
        let out = scan_segment(file.as_ref(), len, 1, 3, |_, _| {}).expect("scan");
        assert_eq!(out.records, 2);
        assert!(out.torn_tail.is_some());
    }
}
