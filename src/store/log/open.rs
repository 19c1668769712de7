//! Opening a log: the fast path from a clean-shutdown snapshot, and recovery by scanning.
//!
//! Fast path (after `close`): `snapshot.dat` gives every segment's summary and the subject
//! map; it is trusted only if it was taken with the current `deletes.dat` (CRC match) and every
//! segment file exists with exactly the recorded length. Only the active segment is read, to
//! rebuild its in-memory index, and any surprise in it drops back to the slow path.
//!
//! Slow path (after a crash): every segment is scanned record by record, CRCs verified. A
//! sealed segment's index file is kept when its checksum and recorded segment length are good,
//! else rewritten from the scan. The last segment's torn tail is truncated; interior damage is
//! skipped and reported, never deleted.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::{IndexCache, Log};
use crate::store::config::LogConfig;
use crate::store::error::{Result, StoreError};
use crate::store::index::SegmentIndex;
use crate::store::io::{read_file, read_full_at, tmp_path, write_all_at, write_atomically, Vfs};
use crate::store::meta::{DeletesFile, SegmentSummary, Snapshot, DELETES_FILE, SNAPSHOT_FILE};
use crate::store::ranges::RangeSet;
use crate::store::record::{
    check_segment_header, encode_segment_header, HeaderProblem, SEGMENT_HEADER_BYTES,
};
use crate::store::recovery::{FindingKind, RecoveryReport};
use crate::store::scan::{all_zero, scan_segment};
use crate::store::segment::{
    index_name, parse_name, segment_name, Segment, INDEX_EXT, SEGMENT_EXT,
};
use crate::store::subjects::{SubjectInfo, Subjects};

pub(super) fn open(dir: &Path, config: LogConfig, vfs: Arc<dyn Vfs>) -> Result<Log> {
    vfs.create_dir_all(dir)
        .map_err(|e| StoreError::io(dir, e))?;
    let mut report = RecoveryReport::default();
    let names = vfs.list(dir).map_err(|e| StoreError::io(dir, e))?;
    for name in names.iter().filter(|n| n.ends_with(".tmp")) {
        let path = dir.join(name);
        vfs.remove(&path).map_err(|e| StoreError::io(&path, e))?;
        report.add(&path, 0, FindingKind::TempFileRemoved);
    }
    let mut bases: Vec<u64> = names
        .iter()
        .filter_map(|n| parse_name(n, SEGMENT_EXT))
        .collect();
    bases.sort_unstable();
    let indexed: HashSet<u64> = names
        .iter()
        .filter_map(|n| parse_name(n, INDEX_EXT))
        .collect();

    let deletes_path = dir.join(DELETES_FILE);
    let (deletes, deletes_crc) = match read_file(vfs.as_ref(), &deletes_path)? {
        None => (DeletesFile::default(), 0),
        Some(raw) => match DeletesFile::decode(&raw) {
            Ok(d) => (d, crc32fast::hash(&raw)),
            Err(why) => {
                // Keep the damaged file for inspection instead of overwriting it later.
                let aside = dir.join(format!("{DELETES_FILE}.damaged"));
                vfs.rename(&deletes_path, &aside)
                    .map_err(|e| StoreError::io(&aside, e))?;
                report.add(
                    &deletes_path,
                    0,
                    FindingKind::DeletesFileDamaged { reason: why.into() },
                );
                (DeletesFile::default(), 0)
            }
        },
    };

    // The snapshot is consumed: removed before anything is written, so that it can never
    // describe a later, crashed state.
    let snap_path = dir.join(SNAPSHOT_FILE);
    let snapshot = match read_file(vfs.as_ref(), &snap_path)? {
        None => None,
        Some(raw) => {
            vfs.remove(&snap_path)
                .map_err(|e| StoreError::io(&snap_path, e))?;
            vfs.sync_dir(dir).map_err(|e| StoreError::io(dir, e))?;
            match Snapshot::decode(&raw) {
                Ok(s) => Some(s),
                Err(why) => {
                    report.add(
                        &snap_path,
                        0,
                        FindingKind::SnapshotIgnored { reason: why.into() },
                    );
                    None
                }
            }
        }
    };

    let mut segments = Vec::with_capacity(bases.len());
    for base in bases {
        let path = dir.join(segment_name(base));
        let file = vfs
            .open(&path, false)
            .map_err(|e| StoreError::io(&path, e))?;
        let file_len = file.file_len().map_err(|e| StoreError::io(&path, e))?;
        segments.push(Segment {
            summary: SegmentSummary {
                base_seq: base,
                file_len,
                ..SegmentSummary::default()
            },
            index_path: dir.join(index_name(base)),
            path,
            file,
            sealed: true,
            index: None,
            dirty: false,
            allocated_end: file_len,
            preallocate: true,
        });
    }

    let mut log = Log {
        dir: dir.to_path_buf(),
        vfs,
        config,
        segments,
        subjects: Subjects::default(),
        deleted: RangeSet::from_ranges(&deletes.ranges),
        floor: deletes.floor.max(1),
        last_seq: deletes.last_seq,
        last_ts_ns: deletes.last_ts_ns,
        msgs: 0,
        bytes: 0,
        deletes_dirty: false,
        deletes_crc,
        deletes_written_at: None,
        dir_dirty: false,
        last_sync: Instant::now(),
        failed: None,
        write_buf: Vec::new(),
        encoder: None,
        index_cache: Mutex::new(IndexCache::default()),
        report: Mutex::new(RecoveryReport::default()),
        clock_ns: deletes.last_ts_ns,
        age_exempt: Default::default(),
        applied: deletes.applied,
        defer_unlink: false,
    };
    let used_snapshot = match snapshot {
        Some(snap) => match log.try_snapshot(snap, &indexed)? {
            Ok(()) => true,
            Err(reason) => {
                report.add(&snap_path, 0, FindingKind::SnapshotIgnored { reason });
                false
            }
        },
        None => false,
    };
    if !used_snapshot {
        log.recover_by_scan(&indexed, &mut report)?;
    }
    report.used_snapshot = used_snapshot;
    log.report = Mutex::new(report);
    log.finish_open()?;
    Ok(log)
}

impl Log {
    /// Loads state from a snapshot. The outer error is I/O; the inner one says why the
    /// snapshot does not describe the files (then nothing of it is kept).
    fn try_snapshot(
        &mut self,
        snap: Snapshot,
        indexed: &HashSet<u64>,
    ) -> Result<Result<(), String>> {
        if snap.deletes_crc != self.deletes_crc {
            return Ok(Err("deletes.dat changed since the snapshot".into()));
        }
        if snap.segments.len() != self.segments.len() {
            return Ok(Err("segment files differ from the snapshot".into()));
        }
        for (seg, summary) in self.segments.iter().zip(&snap.segments) {
            if seg.base_seq() != summary.base_seq || seg.summary.file_len != summary.file_len {
                return Ok(Err(format!(
                    "segment {} differs from the snapshot",
                    seg.path.display()
                )));
            }
        }
        if let Some(last) = self.segments.last() {
            let summary = snap.segments[snap.segments.len() - 1];
            if !indexed.contains(&last.base_seq()) {
                let mut index = SegmentIndex::new(last.base_seq());
                let outcome = scan_segment(
                    last.file.as_ref(),
                    summary.file_len,
                    last.base_seq(),
                    u64::MAX,
                    |r, off| index.push(r.seq, off as u32, r.ts_ns),
                )
                .map_err(|e| StoreError::io(&last.path, e))?;
                let clean = outcome.damaged.is_empty()
                    && outcome.torn_tail.is_none()
                    && index.last_seq().unwrap_or(0) == summary.last_rec;
                if !clean {
                    return Ok(Err("active segment differs from the snapshot".into()));
                }
                let last = self.segments.len() - 1;
                self.segments[last].index = Some(index);
                self.segments[last].sealed = false;
            }
        }
        for (seg, summary) in self.segments.iter_mut().zip(snap.segments) {
            seg.summary = summary;
        }
        for e in snap.subjects {
            let info = SubjectInfo {
                first: e.first,
                last: e.last,
                count: e.count,
            };
            self.subjects.insert(e.subject, info);
        }
        Ok(Ok(()))
    }

    /// Rebuilds all state by scanning every segment.
    fn recover_by_scan(
        &mut self,
        indexed: &HashSet<u64>,
        report: &mut RecoveryReport,
    ) -> Result<()> {
        self.subjects.clear();
        let n = self.segments.len();
        for i in 0..n {
            let seq_limit = self.segments.get(i + 1).map_or(u64::MAX, |s| s.base_seq());
            let is_last = i + 1 == n;
            self.check_header(i, is_last, report)?;
            let (floor, deleted, subjects) = (self.floor, &self.deleted, &mut self.subjects);
            let seg = &mut self.segments[i];
            let base = seg.base_seq();
            let mut index = SegmentIndex::new(base);
            let mut s = SegmentSummary {
                base_seq: base,
                file_len: seg.summary.file_len,
                min_ts_ns: u64::MAX,
                ..SegmentSummary::default()
            };
            let outcome = scan_segment(seg.file.as_ref(), s.file_len, base, seq_limit, |r, off| {
                index.push(r.seq, off as u32, r.ts_ns);
                s.min_ts_ns = s.min_ts_ns.min(r.ts_ns);
                s.max_ts_ns = s.max_ts_ns.max(r.ts_ns);
                if r.seq >= floor && !deleted.contains(r.seq) {
                    if let Some(subject) = r.subject_str() {
                        subjects.add(subject, r.seq);
                    }
                    s.msgs += 1;
                    s.bytes += r.size as u64;
                }
            })
            .map_err(|e| StoreError::io(&seg.path, e))?;
            report.segments_scanned += 1;
            for d in &outcome.damaged {
                report.add(
                    &seg.path,
                    d.offset,
                    FindingKind::Damaged {
                        bytes: d.len,
                        reason: d.reason,
                    },
                );
            }
            if let Some(tail) = outcome.zero_tail {
                // Preallocated space after the last record: the normal state of an active
                // segment after a crash, and of a sealed one whose trim was not yet durable.
                // A sealed segment must then hold every sequence up to the next segment's
                // base; if records are missing, the zeros stand where they were and that is
                // damage.
                let complete = is_last || index.last_seq().is_some_and(|l| l + 1 == seq_limit);
                let bytes = s.file_len - tail;
                if complete {
                    tracing::debug!(path = %seg.path.display(), offset = tail, bytes, "preallocated zero tail trimmed");
                    seg.file
                        .set_len(tail)
                        .map_err(|e| StoreError::io(&seg.path, e))?;
                    // Durable with the next sync; a crash before it leaves the same zeros.
                    seg.dirty = true;
                    s.file_len = tail;
                } else {
                    report.add(
                        &seg.path,
                        tail,
                        FindingKind::DamagedTail {
                            bytes,
                            reason: "zeros where records are missing",
                        },
                    );
                }
            }
            if let Some(tail) = outcome.torn_tail {
                let bytes = s.file_len - tail;
                if is_last {
                    seg.file
                        .set_len(tail)
                        .and_then(|()| seg.file.sync_data())
                        .map_err(|e| StoreError::io(&seg.path, e))?;
                    s.file_len = tail;
                    report.add(&seg.path, tail, FindingKind::TornTailTruncated { bytes });
                } else {
                    report.add(
                        &seg.path,
                        tail,
                        FindingKind::DamagedTail {
                            bytes,
                            reason: "no valid record",
                        },
                    );
                }
            }
            if s.min_ts_ns == u64::MAX {
                s.min_ts_ns = 0;
            }
            s.first_rec = index.first_seq().unwrap_or(0);
            s.last_rec = index.last_seq().unwrap_or(0);
            seg.summary = s;
            seg.allocated_end = s.file_len;
            if is_last && !indexed.contains(&base) {
                seg.sealed = false;
                seg.index = Some(index);
                continue;
            }
            let reason = match read_file(self.vfs.as_ref(), &seg.index_path)? {
                None => Some("index file missing".to_owned()),
                Some(buf) => SegmentIndex::decode(&buf, base, s.file_len)
                    .err()
                    .map(str::to_owned),
            };
            if let Some(reason) = reason {
                let bytes = index.encode(s.file_len);
                write_atomically(self.vfs.as_ref(), &self.dir, &seg.index_path, &bytes)?;
                report.add(&seg.index_path, 0, FindingKind::IndexRebuilt { reason });
            }
        }
        Ok(())
    }

    /// Checks a segment header; re-initialises a last segment whose creation was cut short.
    /// That is one holding nothing after its header but zeros: a power loss after the space
    /// was preallocated can keep the file's new length while the header never reached the
    /// disk, and since records are synced with their header, such a file holds none.
    fn check_header(&mut self, i: usize, is_last: bool, report: &mut RecoveryReport) -> Result<()> {
        let seg = &mut self.segments[i];
        let mut head = [0u8; SEGMENT_HEADER_BYTES];
        let got = read_full_at(seg.file.as_ref(), &mut head, 0)
            .map_err(|e| StoreError::io(&seg.path, e))?;
        let problem = match check_segment_header(&head[..got], seg.base_seq()) {
            Ok(()) => return Ok(()),
            Err(problem) => problem,
        };
        let empty = is_last
            && matches!(problem, HeaderProblem::Short | HeaderProblem::Damaged)
            && all_zero(
                seg.file.as_ref(),
                SEGMENT_HEADER_BYTES as u64,
                seg.summary.file_len,
            )
            .map_err(|e| StoreError::io(&seg.path, e))?;
        match problem {
            HeaderProblem::Unsupported => Err(StoreError::UnsupportedFormat {
                path: seg.path.clone(),
                reason: "segment format version or checksum algorithm".into(),
            }),
            HeaderProblem::Short | HeaderProblem::Damaged if empty => {
                let header = encode_segment_header(seg.base_seq());
                seg.file
                    .set_len(0)
                    .and_then(|()| write_all_at(seg.file.as_ref(), &header, 0))
                    .and_then(|()| seg.file.sync_data())
                    .map_err(|e| StoreError::io(&seg.path, e))?;
                seg.summary.file_len = SEGMENT_HEADER_BYTES as u64;
                seg.allocated_end = SEGMENT_HEADER_BYTES as u64;
                report.add(&seg.path, 0, FindingKind::SegmentHeaderRewritten);
                Ok(())
            }
            problem => {
                report.add(
                    &seg.path,
                    0,
                    FindingKind::SegmentHeaderDamaged {
                        reason: format!("{problem:?}"),
                    },
                );
                Ok(())
            }
        }
    }

    /// Totals, last sequence, floor; completes removals a crash interrupted.
    fn finish_open(&mut self) -> Result<()> {
        self.msgs = self.segments.iter().map(|s| s.summary.msgs).sum();
        self.bytes = self.segments.iter().map(|s| s.summary.bytes).sum();
        let newest = self
            .segments
            .iter()
            .enumerate()
            .filter(|(_, s)| s.has_records())
            .map(|(i, s)| (s.summary.last_rec, i))
            .max();
        if let Some((last_rec, pos)) = newest {
            if last_rec > self.last_seq {
                self.last_seq = last_rec;
                self.last_ts_ns = self.index_at(pos)?.ts(last_rec).unwrap_or(0);
            }
        }
        self.clock_ns = self.clock_ns.max(self.last_ts_ns);
        if self.floor > self.last_seq + 1 {
            // Only a damaged deletes file could say so; never invent sequences.
            self.floor = self.last_seq + 1;
        }
        self.deleted.remove_below(self.floor);
        // Header-only segments that are not last hold nothing and never will.
        let n = self.segments.len();
        let mut i = 0;
        while i + 1 < self.segments.len().min(n) {
            if !self.segments[i].has_records()
                && self.segments[i].summary.file_len <= SEGMENT_HEADER_BYTES as u64
            {
                let seg = self.segments.remove(i);
                let _ = self.vfs.remove(&seg.path);
                let _ = self.vfs.remove(&seg.index_path);
                let _ = self.vfs.remove(&tmp_path(&seg.index_path));
                self.dir_dirty = true;
            } else {
                i += 1;
            }
        }
        self.after_removals()
    }
}
