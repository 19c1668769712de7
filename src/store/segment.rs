//! One segment file: naming, creation, appends, positional record reads.
//!
//! A segment is named by the first sequence it was created for (`00000000000000000001.seg`,
//! 20 digits so names sort like numbers) and starts with a 20-byte header. Only the last
//! segment is ever appended to; once sealed it is immutable (deletes are recorded elsewhere),
//! which is what makes its index file safe to trust.

use std::path::{Path, PathBuf};

use super::config::StoredMessage;
use super::error::{Result, StoreError};
use super::index::SegmentIndex;
use super::io::{write_all_at, Vfs, VfsFile};
use super::meta::SegmentSummary;
use super::record::{encode_segment_header, Decoded, SEGMENT_HEADER_BYTES};
use super::scan::RecordReader;

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
    /// Data was written since the last fdatasync.
    pub dirty: bool,
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

    /// Appends `bytes` at the end of the file in one write. On failure the file is cut back to
    /// its previous length; `Err(rollback_error)` in the inner result means even that failed
    /// and the file's tail is unknown.
    pub fn append(&mut self, bytes: &[u8]) -> Result<(), (StoreError, Option<StoreError>)> {
        let at = self.summary.file_len;
        match write_all_at(self.file.as_ref(), bytes, at) {
            Ok(()) => {
                self.summary.file_len += bytes.len() as u64;
                self.dirty = true;
                Ok(())
            }
            Err(e) => {
                let err = StoreError::io(&self.path, e);
                let rollback = self
                    .file
                    .set_len(at)
                    .err()
                    .map(|e| StoreError::io(&self.path, e));
                Err((err, rollback))
            }
        }
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
                    payload: bytes::Bytes::copy_from_slice(r.payload),
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
