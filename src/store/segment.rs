//! One segment file: naming, creation, appends, positional record reads.
//!
//! A segment is named by the first sequence it was created for (`00000000000000000001.seg`,
//! 20 digits so names sort like numbers) and starts with a 20-byte header. Only the last
//! segment is ever appended to; once sealed it is immutable (deletes are recorded elsewhere),
//! which is what makes its index file safe to trust.
//!
//! Preallocation: the active segment reserves disk space ahead of its write position in steps
//! that grow with it up to [`PREALLOCATE_STEP_BYTES`], so that most appends land in space the file already has and
//! their fdatasync need not commit a file-size change (measured on ext4: ~120 µs instead of
//! ~180 µs p50 for a 160-byte append). The file is therefore longer than its data while the
//! segment is active; the segment's logical end is `summary.file_len`, never the file length.
//! The zeros past it are trimmed away when the segment is sealed or the log is closed, and
//! recovery reads a run of zeros after the last valid record as the end of the data.

use std::path::{Path, PathBuf};

use super::config::StoredMessage;
use super::error::{is_no_space, Result, StoreError};
use super::index::SegmentIndex;
use super::io::{is_unsupported, write_all_at, Vfs, VfsFile};
use super::meta::SegmentSummary;
use super::record::{encode_segment_header, Decoded, SEGMENT_HEADER_BYTES};
use super::scan::RecordReader;

/// Disk space reserved ahead of the write position at a time, once a segment holds this
/// much. Each step costs one size change (one journal commit) instead of one per fdatasync;
/// 1 MiB is 8 steps per default 8 MiB segment and bounds the zeros a crash can leave behind.
pub const PREALLOCATE_STEP_BYTES: u64 = 1 << 20;
/// The first step: a small segment (a quiet stream, a KV bucket with a few keys) reserves
/// this much, and the step doubles with the data up to [`PREALLOCATE_STEP_BYTES`]. With a
/// full step from the start, 10,000 quiet streams held 10 GB of zeros; this costs a busy
/// segment four more size changes.
pub const FIRST_PREALLOCATE_STEP_BYTES: u64 = 64 << 10;

/// Extension of segment files.
pub const SEGMENT_EXT: &str = "seg";
/// Extension of index files.
pub const INDEX_EXT: &str = "idx";

/// File name of the segment with base `base_seq`.
pub fn segment_name(base_seq: u64) -> String {
    format!("{base_seq:020}.{SEGMENT_EXT}")
}

/// File name of the index of the segment with base `base_seq`.
pub fn index_name(base_seq: u64) -> String {
    format!("{base_seq:020}.{INDEX_EXT}")
}

/// The base sequence named by a file name with extension `ext`, if it is one of ours.
pub fn parse_name(name: &str, ext: &str) -> Option<u64> {
    let stem = name.strip_suffix(ext)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// An open segment and what the log knows about it.
#[derive(Debug)]
pub struct Segment {
    /// Counters and bounds; also what the snapshot stores.
    pub summary: SegmentSummary,
    /// Path of the segment file.
    pub path: PathBuf,
    /// Path of its index file.
    pub index_path: PathBuf,
    /// The open file. Kept open for the life of the log: reads are `pread`s on it.
    pub file: Box<dyn VfsFile>,
    /// Sealed segments are never appended to again.
    pub sealed: bool,
    /// The in-memory index; always present for the active segment, `None` for a sealed one
    /// (whose index is loaded on demand through the log's cache).
    pub index: Option<SegmentIndex>,
    /// Data was written (or the length changed) since the last fdatasync.
    pub dirty: bool,
    /// End of the space the file holds on disk, as far as this process knows: the file
    /// length, at least `summary.file_len`. The bytes between the two are preallocated zeros.
    pub allocated_end: u64,
    /// Whether to preallocate; cleared for good (for this segment) once the file system says
    /// it cannot, so that an unsupported call is made once rather than once per append.
    pub preallocate: bool,
}

impl Segment {
    /// Creates a new, empty segment file with its header. The caller must fsync the directory
    /// before acknowledging anything written to it.
    pub fn create(vfs: &dyn Vfs, dir: &Path, base_seq: u64) -> Result<Segment> {
        let path = dir.join(segment_name(base_seq));
        let file = vfs
            .open(&path, true)
            .map_err(|e| StoreError::io(&path, e))?;
        let header = encode_segment_header(base_seq);
        let written = file
            .set_len(0)
            .and_then(|()| write_all_at(file.as_ref(), &header, 0));
        if let Err(e) = written {
            // Leave no half-made segment behind; if even that fails, recovery re-initialises
            // a header-only last segment.
            let _ = vfs.remove(&path);
            return Err(StoreError::io(&path, e));
        }
        Ok(Segment {
            summary: SegmentSummary {
                base_seq,
                file_len: SEGMENT_HEADER_BYTES as u64,
                ..SegmentSummary::default()
            },
            index_path: dir.join(index_name(base_seq)),
            path,
            file,
            sealed: false,
            index: Some(SegmentIndex::new(base_seq)),
            dirty: true,
            allocated_end: SEGMENT_HEADER_BYTES as u64,
            preallocate: true,
        })
    }

    /// Base sequence.
    pub fn base_seq(&self) -> u64 {
        self.summary.base_seq
    }

    /// Whether the segment holds at least one record.
    pub fn has_records(&self) -> bool {
        self.summary.last_rec != 0
    }

    /// Appends `bytes` at the logical end in one write, first reserving space ahead of it (see
    /// [`Segment::reserve`]; the reservation stops at `reserve_limit`, the segment size). On
    /// failure nothing is appended: a failed reservation writes nothing, and a failed write is
    /// cut back to the previous logical end. `Err(rollback_error)` in the inner result means
    /// even that cut failed and the file's tail is unknown.
    pub fn append(
        &mut self,
        bytes: &[u8],
        reserve_limit: u64,
    ) -> Result<(), (StoreError, Option<StoreError>)> {
        let at = self.summary.file_len;
        let end = at + bytes.len() as u64;
        self.reserve(end, reserve_limit).map_err(|e| (e, None))?;
        match write_all_at(self.file.as_ref(), bytes, at) {
            Ok(()) => {
                self.summary.file_len = end;
                self.allocated_end = self.allocated_end.max(end);
                self.dirty = true;
                Ok(())
            }
            Err(e) => {
                let err = StoreError::io(&self.path, e);
                // Cutting at the logical end also drops the preallocated space; the next
                // append reserves it again.
                let rollback = match self.file.set_len(at) {
                    Ok(()) => {
                        self.allocated_end = at;
                        None
                    }
                    Err(e) => Some(StoreError::io(&self.path, e)),
                };
                Err((err, rollback))
            }
        }
    }

    /// Makes sure the file holds allocated space up to `end`, reserving up to the next
    /// multiple of the step (from [`FIRST_PREALLOCATE_STEP_BYTES`], doubling with the data, up
    /// to [`PREALLOCATE_STEP_BYTES`]) but never past `limit` (nor below `end`). A file
    /// system that cannot preallocate turns this off for the segment, silently. If the step
    /// does not fit on the disk, exactly `end` is tried, so preallocation never refuses a
    /// write the disk could take; ENOSPC for that too is [`StoreError::NoSpace`].
    pub fn reserve(&mut self, end: u64, limit: u64) -> Result<()> {
        if !self.preallocate || end <= self.allocated_end {
            return Ok(());
        }
        let step = end
            .next_power_of_two()
            .clamp(FIRST_PREALLOCATE_STEP_BYTES, PREALLOCATE_STEP_BYTES);
        let step_end = end.div_ceil(step) * step;
        let target = step_end.min(limit).max(end);
        let from = self.allocated_end;
        let mut outcome = self.file.allocate(from, target - from);
        let mut reserved = target;
        if target > end && outcome.as_ref().is_err_and(is_no_space) {
            outcome = self.file.allocate(from, end - from);
            reserved = end;
        }
        match outcome {
            Ok(()) => {
                self.allocated_end = reserved;
                Ok(())
            }
            Err(e) if is_unsupported(&e) => {
                tracing::debug!(path = %self.path.display(), error = %e, "preallocation not supported; appending without it");
                self.preallocate = false;
                Ok(())
            }
            // The call may have reserved part of the range before failing; that is only more
            // zeros past the logical end, which every reader already ignores.
            Err(e) => Err(StoreError::io(&self.path, e)),
        }
    }

    /// Cuts the file back to its logical end, dropping preallocated space (when sealing and on
    /// close). It asks the file for its length rather than trusting `allocated_end`, since a
    /// failed reservation may have grown the file part of the way. Not durable until the next
    /// [`Segment::sync`], which it arranges for; until then a crash leaves zeros after the last
    /// record, which recovery reads as the end of the data.
    pub fn trim(&mut self) -> Result<()> {
        let logical = self.summary.file_len;
        let physical = self
            .file
            .file_len()
            .map_err(|e| StoreError::io(&self.path, e))?;
        if physical > logical {
            self.file
                .set_len(logical)
                .map_err(|e| StoreError::io(&self.path, e))?;
            self.dirty = true;
        }
        self.allocated_end = logical;
        Ok(())
    }

    /// fdatasync if anything was written since the last one.
    pub fn sync(&mut self) -> Result<()> {
        if self.dirty {
            self.file
                .sync_data()
                .map_err(|e| StoreError::io(&self.path, e))?;
            self.dirty = false;
        }
        Ok(())
    }

    /// Reads and verifies the record at `offset`, which must hold `seq`.
    pub fn read_message(
        &self,
        reader: &mut RecordReader,
        seq: u64,
        offset: u64,
    ) -> Result<StoredMessage> {
        let file_len = self.summary.file_len;
        let decoded = reader
            .decode_at(self.file.as_ref(), offset, file_len)
            .map_err(|e| StoreError::io(&self.path, e))?;
        match decoded {
            Decoded::Record(r) if r.seq == seq => {
                let subject = r
                    .subject_str()
                    .ok_or_else(|| StoreError::corrupt(&self.path, offset, "subject not UTF-8"))?;
                Ok(StoredMessage {
                    seq,
                    ts_ns: r.ts_ns,
                    subject: subject.to_owned(),
                    headers: bytes::Bytes::copy_from_slice(r.headers),
                    payload: r
                        .payload_bytes()
                        .map_err(|why| StoreError::corrupt(&self.path, offset, why))?,
                })
            }
            Decoded::Record(r) => Err(StoreError::corrupt(
                &self.path,
                offset,
                format!("index points at sequence {} instead of {seq}", r.seq),
            )),
            Decoded::Incomplete { .. } => Err(StoreError::corrupt(
                &self.path,
                offset,
                "record runs past end of file",
            )),
            Decoded::Invalid(why) => Err(StoreError::corrupt(&self.path, offset, why)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_numerically_and_parse_back() {
        assert_eq!(segment_name(1), "00000000000000000001.seg");
        assert_eq!(parse_name(&segment_name(123), SEGMENT_EXT), Some(123));
        assert_eq!(parse_name(&index_name(9), INDEX_EXT), Some(9));
        assert_eq!(parse_name("1.seg", SEGMENT_EXT), None);
        assert_eq!(parse_name("0000000000000000000x.seg", SEGMENT_EXT), None);
        assert!(segment_name(9) < segment_name(10));
    }
}
