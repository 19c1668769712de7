//! Reads: by sequence, filtered forward scans, last-by-subject, start-by-time, state.
//!
//! Every record read is CRC-checked. A record that fails is never returned: `get` of that
//! sequence is an error naming file and offset, and scans skip it (logging it and adding it to
//! the recovery report) so that one bad record cannot stall a consumer forever.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::protocol::subject::{is_literal, subject_matches};

use super::{IndexRef, Log};
use crate::store::config::{LogState, StoredMessage};
use crate::store::error::{Result, StoreError};
use crate::store::index::SegmentIndex;
use crate::store::io::{read_file, write_atomically};
use crate::store::record::{Decoded, RecordView};
use crate::store::recovery::FindingKind;
use crate::store::scan::{scan_segment, RecordReader, POINT_READ_BYTES, SCAN_WINDOW_BYTES};
use crate::store::segment::Segment;

/// Copies a verified record out of the read buffer.
pub(super) fn to_message(
    r: &RecordView<'_>,
    subject: &str,
) -> std::result::Result<StoredMessage, &'static str> {
    Ok(StoredMessage {
        seq: r.seq,
        ts_ns: r.ts_ns,
        subject: subject.to_owned(),
        headers: bytes::Bytes::copy_from_slice(r.headers),
        payload: r.payload_bytes()?,
    })
}

/// Builds a segment's index by scanning it (used when its index file cannot be trusted).
pub(super) fn rebuild_index(seg: &Segment, seq_limit: u64) -> Result<SegmentIndex> {
    let mut index = SegmentIndex::new(seg.base_seq());
    scan_segment(
        seg.file.as_ref(),
        seg.summary.file_len,
        seg.base_seq(),
        seq_limit,
        |r, off| index.push(r.seq, off as u32, r.ts_ns),
    )
    .map_err(|e| StoreError::io(&seg.path, e))?;
    Ok(index)
}

impl Log {
    /// Position of the segment that would hold `seq` (the last one whose base is not above it).
    pub(super) fn segment_pos(&self, seq: u64) -> Option<usize> {
        self.segments
            .partition_point(|s| s.base_seq() <= seq)
            .checked_sub(1)
    }

    /// The index of the segment at `pos`: the active one's from memory, a sealed one's from the
    /// cache or its file.
    pub(super) fn index_at(&self, pos: usize) -> Result<IndexRef<'_>> {
        let seg = &self.segments[pos];
        if let Some(index) = &seg.index {
            return Ok(IndexRef::Active(index));
        }
        let seq_limit = self
            .segments
            .get(pos + 1)
            .map_or(u64::MAX, |s| s.base_seq());
        Ok(IndexRef::Cached(self.load_sealed_index(seg, seq_limit)?))
    }

    /// Loads a sealed segment's index file, trusting it only if its checksum, base and
    /// segment length check out; otherwise rebuilds it by scanning and rewrites the file.
    fn load_sealed_index(&self, seg: &Segment, seq_limit: u64) -> Result<Arc<SegmentIndex>> {
        let base = seg.base_seq();
        if let Some(index) = self.index_cache.lock().ok().and_then(|mut c| c.get(base)) {
            return Ok(index);
        }
        let reason = match read_file(self.vfs.as_ref(), &seg.index_path)? {
            None => "index file missing".to_owned(),
            Some(buf) => match SegmentIndex::decode(&buf, base, seg.summary.file_len) {
                Ok(index) => {
                    let index = Arc::new(index);
                    if let Ok(mut cache) = self.index_cache.lock() {
                        cache.put(base, index.clone());
                    }
                    return Ok(index);
                }
                Err(why) => why.to_owned(),
            },
        };
        let index = rebuild_index(seg, seq_limit)?;
        if let Ok(mut report) = self.report.lock() {
            report.add(&seg.index_path, 0, FindingKind::IndexRebuilt { reason });
        }
        if self.failed.is_none() {
            let bytes = index.encode(seg.summary.file_len);
            if let Err(e) = write_atomically(self.vfs.as_ref(), &self.dir, &seg.index_path, &bytes)
            {
                tracing::warn!(error = %e, "rebuilt index not written");
            }
        }
        let index = Arc::new(index);
        if let Ok(mut cache) = self.index_cache.lock() {
            cache.put(base, index.clone());
        }
        Ok(index)
    }

    /// Notes a record that failed its checks during a scan.
    fn note_corrupt_read(&self, seg: &Segment, offset: u64, reason: String) {
        if let Ok(mut report) = self.report.lock() {
            let known = report
                .findings
                .iter()
                .any(|f| f.path == seg.path && f.offset == offset);
            if !known {
                report.add(&seg.path, offset, FindingKind::CorruptOnRead { reason });
            }
        }
    }

    /// Whether `seq` may hold a stored message (not below the floor, not deleted, assigned).
    pub(super) fn maybe_stored(&self, seq: u64) -> bool {
        seq >= self.floor && seq <= self.last_seq && !self.deleted.contains(seq)
    }

    /// The message with sequence `seq`; `Ok(None)` if there is none (never stored, deleted,
    /// purged, expired). A damaged record is `Err(StoreError::Corrupt)`, never data.
    pub fn get(&self, seq: u64) -> Result<Option<StoredMessage>> {
        if !self.maybe_stored(seq) {
            return Ok(None);
        }
        let Some(pos) = self.segment_pos(seq) else {
            return Ok(None);
        };
        let index = self.index_at(pos)?;
        let Some(offset) = index.offset(seq) else {
            return Ok(None);
        };
        let mut reader = RecordReader::new(POINT_READ_BYTES);
        self.segments[pos]
            .read_message(&mut reader, seq, u64::from(offset))
            .map(Some)
    }

    /// The first stored message at or after `start_seq` whose subject matches any of
    /// `filters` (wildcards allowed; an empty list matches everything).
    pub fn next_matching(&self, start_seq: u64, filters: &[&str]) -> Result<Option<StoredMessage>> {
        Ok(self.scan(start_seq, filters, 1)?.pop())
    }

    /// Up to `max` stored messages at or after `start_seq` matching `filters`, in order. One
    /// read buffer serves the whole call, so fetching a batch costs a few large reads.
    pub fn scan(&self, start_seq: u64, filters: &[&str], max: usize) -> Result<Vec<StoredMessage>> {
        let mut out = Vec::new();
        if max == 0 || self.msgs == 0 {
            return Ok(out);
        }
        let match_all = filters.is_empty() || filters.contains(&">");
        let mut start = start_seq.max(self.floor);
        let mut end = self.last_seq;
        if !match_all && filters.iter().all(is_literal) {
            // Literal filters: the subject map bounds where matches can be.
            let (mut lo, mut hi) = (u64::MAX, 0);
            for f in filters {
                if let Some(info) = self.subjects.get(f).filter(|i| i.last >= start) {
                    lo = lo.min(info.first.max(start));
                    hi = hi.max(info.last);
                }
            }
            if lo == u64::MAX {
                return Ok(out);
            }
            (start, end) = (lo, hi);
        }
        let mut pos = self.segment_pos(start).unwrap_or(0);
        while pos < self.segments.len() {
            let seg = &self.segments[pos];
            if seg.base_seq() > end {
                break;
            }
            if seg.summary.msgs == 0 {
                pos += 1;
                continue;
            }
            let index = self.index_at(pos)?;
            let mut reader = RecordReader::growing(POINT_READ_BYTES, SCAN_WINDOW_BYTES);
            for (seq, offset, _) in index.entries_from(start) {
                if seq > end {
                    return Ok(out);
                }
                if self.deleted.contains(seq) {
                    continue;
                }
                let offset = u64::from(offset);
                let decoded = reader
                    .decode_at(seg.file.as_ref(), offset, seg.summary.file_len)
                    .map_err(|e| StoreError::io(&seg.path, e))?;
                match decoded {
                    Decoded::Record(r) if r.seq == seq => {
                        let Some(subject) = r.subject_str() else {
                            self.note_corrupt_read(seg, offset, "subject not UTF-8".into());
                            continue;
                        };
                        if match_all || filters.iter().any(|f| subject_matches(f, subject)) {
                            match to_message(&r, subject) {
                                Ok(msg) => out.push(msg),
                                Err(why) => {
                                    self.note_corrupt_read(seg, offset, why.into());
                                    continue;
                                }
                            }
                            if out.len() >= max {
                                return Ok(out);
                            }
                        }
                    }
                    Decoded::Record(r) => self.note_corrupt_read(
                        seg,
                        offset,
                        format!("found sequence {} instead of {seq}", r.seq),
                    ),
                    Decoded::Incomplete { .. } => {
                        self.note_corrupt_read(seg, offset, "record runs past end of file".into())
                    }
                    Decoded::Invalid(why) => self.note_corrupt_read(seg, offset, why.into()),
                }
            }
            pos += 1;
        }
        Ok(out)
    }

    /// The newest message whose subject matches `subject` (a literal or a pattern).
    pub fn last_for_subject(&self, subject: &str) -> Result<Option<StoredMessage>> {
        let last = if is_literal(subject) {
            self.subjects.get(subject).map(|i| i.last)
        } else {
            self.subjects.matching(subject).map(|(_, i)| i.last).max()
        };
        match last {
            Some(seq) => self.get(seq),
            None => Ok(None),
        }
    }

    /// The first stored sequence whose timestamp is at or after `ts_ns`; `last_seq + 1` if
    /// there is none (where a consumer starting by time would wait).
    pub fn seq_at_or_after_time(&self, ts_ns: u64) -> Result<u64> {
        for pos in 0..self.segments.len() {
            let seg = &self.segments[pos];
            if seg.summary.msgs == 0 || seg.summary.max_ts_ns < ts_ns {
                continue;
            }
            let index = self.index_at(pos)?;
            for (seq, _, ts) in index.entries_from(self.floor) {
                if ts >= ts_ns && !self.deleted.contains(seq) {
                    return Ok(seq);
                }
            }
        }
        Ok(self.last_seq + 1)
    }

    /// Counters and bounds; with `include_deleted`, also every sequence between first and last
    /// that holds no message (costs a walk over the indexes).
    pub fn state(&self, include_deleted: bool) -> Result<LogState> {
        let mut state = LogState {
            msgs: self.msgs,
            bytes: self.bytes,
            last_seq: self.last_seq,
            last_ts_ns: self.last_ts_ns,
            num_subjects: self.subjects.len() as u64,
            ..LogState::default()
        };
        if self.msgs == 0 {
            state.first_seq = if self.last_seq == 0 {
                0
            } else {
                self.last_seq + 1
            };
            return Ok(state);
        }
        state.first_seq = self.floor;
        state.num_deleted = (self.last_seq - self.floor + 1).saturating_sub(self.msgs);
        if let Some(pos) = self.segment_pos(self.floor) {
            state.first_ts_ns = self.index_at(pos)?.ts(self.floor).unwrap_or(0);
        }
        if include_deleted {
            let mut expect = self.floor;
            for pos in 0..self.segments.len() {
                if self.segments[pos].summary.msgs == 0 {
                    continue;
                }
                let index = self.index_at(pos)?;
                for (seq, _, _) in index.entries_from(self.floor) {
                    if !self.deleted.contains(seq) {
                        state.deleted.extend(expect..seq);
                        expect = seq + 1;
                    }
                }
            }
            state.deleted.extend(expect..=self.last_seq);
        }
        Ok(state)
    }

    /// Messages per subject for the subjects matching `filter` (`>` for all).
    pub fn subject_counts(&self, filter: &str) -> BTreeMap<String, u64> {
        self.subjects
            .matching(filter)
            .map(|(s, i)| (s.to_owned(), i.count))
            .collect()
    }

    /// Stored messages at or after `from` matching `filters`, when the in-memory maps can
    /// tell without reading a record; `None` when only a scan can (a filtered subject with
    /// messages on both sides of `from`). Consumers need this count on every start.
    pub fn count_from(&self, from: u64, filters: &[&str]) -> Option<u64> {
        let from = from.max(self.floor);
        if from > self.last_seq {
            return Some(0);
        }
        if filters.is_empty() || filters.contains(&">") {
            // The deleted set is exact only if it accounts for every gap; check, don't assume.
            let span = self.last_seq + 1 - self.floor;
            if self.msgs + self.deleted.len() != span {
                return None;
            }
            return Some(self.last_seq + 1 - from - self.deleted.count_in(from, self.last_seq));
        }
        let mut seen = std::collections::HashSet::new();
        let mut total = 0;
        for filter in filters {
            for (subject, info) in self.subjects.matching(filter) {
                if !seen.insert(subject) {
                    continue;
                }
                if info.first >= from {
                    total += info.count;
                } else if info.last >= from {
                    return None;
                }
            }
        }
        Some(total)
    }

    /// Messages stored.
    pub fn msgs(&self) -> u64 {
        self.msgs
    }

    /// Highest sequence ever assigned.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }
}
