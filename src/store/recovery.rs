//! What recovery found when a log was opened, for the caller to read and report.
//!
//! Every finding is also logged with `tracing::warn!` as it is made. Nothing here ever causes
//! data to be deleted: a torn tail (bytes after the last valid record of the last segment that
//! hold no valid record) is cut off because it was never a whole record, but damaged bytes
//! followed by valid records are left in place, skipped and reported.

use std::path::PathBuf;

/// One thing recovery noticed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The file concerned.
    pub path: PathBuf,
    /// Byte offset in it (0 when the finding concerns the whole file).
    pub offset: u64,
    /// What was found and done.
    pub kind: FindingKind,
}

/// Kinds of findings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FindingKind {
    /// The last segment ended in a partial record, cut off (`bytes` removed).
    TornTailTruncated {
        /// Bytes removed.
        bytes: u64,
    },
    /// A sealed segment ends in bytes that hold no valid record; left in place.
    DamagedTail {
        /// Bytes after the last valid record.
        bytes: u64,
        /// The failed check.
        reason: &'static str,
    },
    /// Damaged bytes followed by valid records: skipped, never served, left in place.
    Damaged {
        /// Bytes skipped.
        bytes: u64,
        /// The failed check.
        reason: &'static str,
    },
    /// A segment header failed its checks; the records after it were still scanned.
    SegmentHeaderDamaged {
        /// The failed check.
        reason: String,
    },
    /// The last segment held only a partial header (a crash while creating it); it was
    /// re-initialised.
    SegmentHeaderRewritten,
    /// An index file was missing, damaged or stale, and was rebuilt from its segment.
    IndexRebuilt {
        /// Why the old one was not trusted.
        reason: String,
    },
    /// `deletes.dat` could not be read; it was kept aside as `deletes.dat.damaged` and the
    /// log opened without its deletes (removed messages may reappear; none are lost).
    DeletesFileDamaged {
        /// Why.
        reason: String,
    },
    /// A clean-shutdown snapshot was present but not used.
    SnapshotIgnored {
        /// Why.
        reason: String,
    },
    /// A temp file left by an interrupted atomic write was removed.
    TempFileRemoved,
    /// A corrupt record was met while reading after open; it was skipped.
    CorruptOnRead {
        /// The failed check.
        reason: String,
    },
}

/// Everything recovery found during `Log::open`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Whether the clean-shutdown snapshot was used (no full scan was needed).
    pub used_snapshot: bool,
    /// Number of segments scanned record by record.
    pub segments_scanned: u64,
    /// Findings, in the order they were made.
    pub findings: Vec<Finding>,
}

impl RecoveryReport {
    /// Records and logs a finding.
    pub fn add(&mut self, path: impl Into<PathBuf>, offset: u64, kind: FindingKind) {
        let path = path.into();
        tracing::warn!(path = %path.display(), offset, ?kind, "store recovery finding");
        self.findings.push(Finding { path, offset, kind });
    }

    /// Whether any damage (not just housekeeping) was found.
    pub fn found_damage(&self) -> bool {
        self.findings.iter().any(|f| {
            !matches!(
                f.kind,
                FindingKind::TempFileRemoved | FindingKind::SnapshotIgnored { .. }
            )
        })
    }
}
