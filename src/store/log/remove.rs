//! Removing messages: delete, purge, retention limits and `max_age` expiry.
//!
//! Removal is logical: the sequence goes into the deleted set (or below the floor) and the
//! counters drop; the bytes stay in their segment until every message of that segment is gone,
//! when the segment file is removed. Ordering for crash safety: `deletes.dat` (which covers the
//! segment's messages) is written durably *before* the segment file is unlinked, so a crash in
//! between can never bring removed messages back, and the floor survives even when no segment
//! is left.

use std::collections::BTreeSet;
use std::io;

use crate::protocol::subject::subject_matches;

use super::Log;
use crate::store::config::{limit, Discard, NewMessage, PurgeRequest};
use crate::store::error::{Result, StoreError};
use crate::store::record::{Decoded, RecordView};
use crate::store::scan::{RecordReader, POINT_READ_BYTES, SCAN_WINDOW_BYTES};
use crate::store::subjects::Removed;

use super::AppendResult;

/// What a removal scan should do with the record it shows.
pub(super) enum Verdict {
    Remove,
    Keep,
    Stop,
}

/// A message chosen for removal: sequence, record length, subject.
type Victim = (u64, u64, String);

impl Log {
    /// Leaves every sequence below `next` unused, so that the next append gets `next`: a
    /// stream restored from a backup keeps its sequence numbers across the messages removed
    /// before the backup. The skipped sequences count as deleted (or, in a log holding
    /// nothing, fall below the floor), durably before this returns.
    pub fn skip_to(&mut self, next: u64) -> Result<()> {
        self.check_writable()?;
        if next <= self.last_seq + 1 {
            return Ok(());
        }
        if self.msgs == 0 {
            self.floor = next;
            self.deleted.remove_below(next);
        } else {
            self.deleted.push_range(self.last_seq + 1, next - 1);
        }
        self.last_seq = next - 1;
        self.deletes_dirty = true;
        self.write_deletes()
    }

    /// Visits stored records with sequences in `[from, to]` in order and removes those the
    /// visitor picks, until it says stop. Returns how many were removed.
    pub(super) fn remove_scan(
        &mut self,
        from: u64,
        to: u64,
        visit: &mut dyn FnMut(&RecordView<'_>, &str) -> Verdict,
    ) -> Result<u64> {
        let mut removed = 0;
        let from = from.max(self.floor);
        let mut pos = self.segment_pos(from).unwrap_or(0);
        let mut stop = false;
        while pos < self.segments.len() && !stop {
            if self.segments[pos].base_seq() > to {
                break;
            }
            let mut victims: Vec<Victim> = Vec::new();
            if self.segments[pos].summary.msgs > 0 {
                let index = self.index_at(pos)?;
                let seg = &self.segments[pos];
                let mut reader = RecordReader::growing(POINT_READ_BYTES, SCAN_WINDOW_BYTES);
                for (seq, offset, _) in index.entries_from(from) {
                    if seq > to {
                        stop = true;
                        break;
                    }
                    if self.deleted.contains(seq) {
                        continue;
                    }
                    let decoded = reader
                        .decode_at(seg.file.as_ref(), u64::from(offset), seg.summary.file_len)
                        .map_err(|e| StoreError::io(&seg.path, e))?;
                    let Decoded::Record(r) = decoded else {
                        // A damaged record cannot be accounted; leave it and go on.
                        tracing::warn!(path = %seg.path.display(), offset, "damaged record skipped by removal");
                        continue;
                    };
                    let Some(subject) = r.subject_str().filter(|_| r.seq == seq) else {
                        continue;
                    };
                    match visit(&r, subject) {
                        Verdict::Remove => victims.push((seq, r.size as u64, subject.to_owned())),
                        Verdict::Keep => {}
                        Verdict::Stop => {
                            stop = true;
                            break;
                        }
                    }
                }
            }
            removed += victims.len() as u64;
            self.apply_removals(pos, victims)?;
            pos += 1;
        }
        self.after_removals()?;
        Ok(removed)
    }

    /// Updates counters, the deleted set and per-subject state for removed messages of the
    /// segment at `pos`.
    fn apply_removals(&mut self, pos: usize, victims: Vec<Victim>) -> Result<()> {
        if victims.is_empty() {
            return Ok(());
        }
        let mut need_last = Vec::new();
        for (seq, len, subject) in victims {
            let summary = &mut self.segments[pos].summary;
            summary.msgs = summary.msgs.saturating_sub(1);
            summary.bytes = summary.bytes.saturating_sub(len);
            self.msgs = self.msgs.saturating_sub(1);
            self.bytes = self.bytes.saturating_sub(len);
            self.deleted.insert(seq);
            if self.subjects.remove(&subject, seq) == Removed::LastRemoved {
                need_last.push((subject, seq));
            }
        }
        self.deletes_dirty = true;
        for (subject, seq) in need_last {
            match self.find_prev(&subject, seq)? {
                Some(last) => self.subjects.set_last(&subject, last),
                None => tracing::warn!(subject, "subject count says more messages but none found"),
            }
        }
        Ok(())
    }

    /// The newest stored message of `subject` below `before` (a backward walk over segments;
    /// needed only when a subject's newest message is deleted).
    fn find_prev(&self, subject: &str, before: u64) -> Result<Option<u64>> {
        let Some(mut pos) = self.segment_pos(before) else {
            return Ok(None);
        };
        loop {
            let start = self.segments[pos].base_seq();
            let mut found = None;
            // A stored subject may hold `*` or `>` (taken literally), which `scan` would read
            // as a wildcard: only the very subject counts here.
            for m in self.scan(start, &[subject], usize::MAX)? {
                if m.seq >= before {
                    break;
                }
                if m.subject == subject {
                    found = Some(m.seq);
                }
            }
            if found.is_some() || pos == 0 {
                return Ok(found);
            }
            pos -= 1;
        }
    }

    /// Restores the floor invariant (floor = first stored sequence) and removes segments whose
    /// messages are all gone.
    pub(super) fn after_removals(&mut self) -> Result<()> {
        let first = self.first_stored()?;
        let new_floor = first.unwrap_or(self.last_seq + 1);
        if new_floor > self.floor {
            self.floor = new_floor;
            self.deleted.remove_below(new_floor);
            self.deletes_dirty = true;
        }
        self.remove_empty_segments()
    }

    /// The first stored sequence at or above the floor.
    fn first_stored(&self) -> Result<Option<u64>> {
        if self.msgs == 0 {
            return Ok(None);
        }
        for pos in 0..self.segments.len() {
            if self.segments[pos].summary.msgs == 0 {
                continue;
            }
            let index = self.index_at(pos)?;
            for (seq, _, _) in index.entries_from(self.floor) {
                if !self.deleted.contains(seq) {
                    return Ok(Some(seq));
                }
            }
        }
        Ok(None)
    }

    /// Removes every segment that held records and has none stored any more. Segments whose
    /// records are all damaged are kept: they are removed only by retention, never because
    /// they are corrupt.
    pub(super) fn remove_empty_segments(&mut self) -> Result<()> {
        if self.defer_unlink {
            return Ok(());
        }
        self.remove_empty_segments_now()
    }

    /// [`Log::remove_empty_segments`], also for a log that defers it to `sync`.
    pub(super) fn remove_empty_segments_now(&mut self) -> Result<()> {
        let empty: Vec<usize> = (0..self.segments.len())
            .filter(|&i| self.segments[i].summary.msgs == 0 && self.segments[i].has_records())
            .collect();
        if empty.is_empty() {
            return Ok(());
        }
        // The deletes must be durable before any file goes.
        self.check_writable()?;
        self.write_deletes()?;
        let mut removed_any = false;
        for &i in empty.iter().rev() {
            let seg = &self.segments[i];
            let gone = [&seg.path, &seg.index_path].into_iter().try_for_each(|p| {
                match self.vfs.remove(p) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StoreError::io(p, e)),
                    _ => Ok(()),
                }
            });
            if let Err(e) = gone {
                tracing::warn!(error = %e, "segment not removed; will retry");
                continue;
            }
            let seg = self.segments.remove(i);
            if let Ok(mut cache) = self.index_cache.lock() {
                cache.forget(seg.base_seq());
            }
            self.deleted
                .remove_range(seg.base_seq(), seg.summary.last_rec);
            removed_any = true;
        }
        if removed_any {
            self.deletes_dirty = true;
            if let Err(e) = self.vfs.sync_dir(&self.dir) {
                return Err(self.fail(StoreError::io(&self.dir, e)));
            }
        }
        Ok(())
    }

    /// Deletes one message. Returns whether it was stored. Durable at the next sync.
    pub fn delete(&mut self, seq: u64) -> Result<bool> {
        self.check_writable()?;
        if self.get(seq)?.is_none() {
            return Ok(false);
        }
        let removed = self.remove_scan(seq, seq, &mut |_, _| Verdict::Remove)?;
        Ok(removed == 1)
    }

    /// Purges messages (nats `STREAM.PURGE`): everything, by subject filter, below a sequence,
    /// or all but the newest `keep`. Returns how many were removed. Durable at the next sync.
    pub fn purge(&mut self, req: &PurgeRequest) -> Result<u64> {
        self.check_writable()?;
        if req.keep.is_some() && req.up_to_seq.is_some() {
            return Err(StoreError::InvalidConfig(
                "purge: keep and up_to_seq cannot be combined".into(),
            ));
        }
        let filter = req.filter.as_deref().filter(|f| !f.is_empty() && *f != ">");
        let to = req.up_to_seq.map_or(self.last_seq, |s| s.saturating_sub(1));
        match (filter, req.keep) {
            (None, None) if req.up_to_seq.is_none() => self.purge_all(),
            (None, None) => self.remove_scan(self.floor, to, &mut |_, _| Verdict::Remove),
            (None, Some(keep)) => {
                let mut excess = self.msgs.saturating_sub(keep);
                self.remove_counted(self.floor, &mut excess, |_| true)
            }
            (Some(f), keep) => {
                let (mut start, mut total) = (u64::MAX, 0u64);
                for (_, info) in self.subjects.matching(f) {
                    start = start.min(info.first);
                    total += info.count;
                }
                if total == 0 {
                    return Ok(0);
                }
                match keep {
                    Some(keep) => {
                        let mut excess = total.saturating_sub(keep);
                        self.remove_counted(start, &mut excess, |s| subject_matches(f, s))
                    }
                    None => self.remove_scan(start, to, &mut |_, s| {
                        if subject_matches(f, s) {
                            Verdict::Remove
                        } else {
                            Verdict::Keep
                        }
                    }),
                }
            }
        }
    }

    /// Removes the oldest `excess` messages whose subject `selects` from `from` on.
    fn remove_counted(
        &mut self,
        from: u64,
        excess: &mut u64,
        selects: impl Fn(&str) -> bool,
    ) -> Result<u64> {
        if *excess == 0 {
            return Ok(0);
        }
        let to = self.last_seq;
        self.remove_scan(from, to, &mut |_, s| {
            if *excess == 0 {
                Verdict::Stop
            } else if selects(s) {
                *excess -= 1;
                Verdict::Remove
            } else {
                Verdict::Keep
            }
        })
    }

    /// Purge without conditions: no record needs reading.
    fn purge_all(&mut self) -> Result<u64> {
        let removed = self.msgs;
        for seg in &mut self.segments {
            seg.summary.msgs = 0;
            seg.summary.bytes = 0;
        }
        self.msgs = 0;
        self.bytes = 0;
        self.subjects.clear();
        self.deleted.clear();
        self.floor = self.last_seq + 1;
        self.deletes_dirty = true;
        self.remove_empty_segments()?;
        Ok(removed)
    }

    /// Removes messages older than `max_age` relative to `now_ns` (oldest first, stopping at
    /// the first one that is young enough, as nats-server does). Returns how many.
    pub fn expire(&mut self, now_ns: u64) -> Result<u64> {
        self.check_writable()?;
        self.clock_ns = self.clock_ns.max(now_ns);
        let max_age = u64::try_from(self.config.max_age.as_nanos()).unwrap_or(u64::MAX);
        if max_age == 0 || self.msgs == 0 {
            return Ok(0);
        }
        let cutoff = now_ns.saturating_sub(max_age);
        let (from, to) = (self.floor, self.last_seq);
        let exempt = std::mem::take(&mut self.age_exempt);
        let removed = self.remove_scan(from, to, &mut |r, _| {
            if r.ts_ns >= cutoff {
                Verdict::Stop
            } else if exempt.contains(&r.seq) {
                Verdict::Keep
            } else {
                Verdict::Remove
            }
        });
        self.age_exempt = exempt;
        let floor = self.floor;
        self.age_exempt.retain(|seq| *seq >= floor);
        removed
    }

    /// Keeps message `seq` from being removed by `max_age` (its TTL is `never`).
    pub fn exempt_from_age(&mut self, seq: u64) {
        self.age_exempt.insert(seq);
    }

    /// When `expire` will next have something to do: the first message's timestamp plus
    /// `max_age`. `None` without `max_age` or messages.
    pub fn next_expiry_ns(&self) -> Result<Option<u64>> {
        let max_age = u64::try_from(self.config.max_age.as_nanos()).unwrap_or(u64::MAX);
        if max_age == 0 || self.msgs == 0 {
            return Ok(None);
        }
        let first_ts = self.state(false)?.first_ts_ns;
        Ok(Some(first_ts.saturating_add(max_age)))
    }

    /// Limits after an append: per-subject eviction for the subjects just written, then
    /// `max_msgs`/`max_bytes` with `discard: old`, then `max_age`.
    pub(super) fn enforce_after_append(
        &mut self,
        msgs: &[NewMessage],
        results: &[AppendResult],
    ) -> Result<()> {
        if let Some(max) = limit(self.config.max_msgs_per_subject) {
            let touched: BTreeSet<&str> = msgs
                .iter()
                .zip(results)
                .filter(|(_, r)| r.is_ok())
                .map(|(m, _)| m.subject.as_str())
                .collect();
            for subject in touched {
                self.evict_subject(subject, max)?;
            }
        }
        self.enforce_limits(false)?;
        if !self.config.max_age.is_zero() {
            self.expire(self.clock_ns)?;
        }
        Ok(())
    }

    /// Removes a subject's oldest messages beyond `max`.
    fn evict_subject(&mut self, subject: &str, max: u64) -> Result<()> {
        let Some(info) = self.subjects.get(subject).copied() else {
            return Ok(());
        };
        let mut excess = info.count.saturating_sub(max);
        if excess > 0 {
            // Compared, not matched: a stored `c.*` is its own subject, not a wildcard over
            // `c.x` (found by the memory-versus-file model test once such subjects were stored).
            self.remove_counted(info.first, &mut excess, |s| s == subject)?;
        }
        Ok(())
    }

    /// `max_msgs` and `max_bytes`: removes the oldest messages while over. With `discard: new`
    /// appends never pass them, so only a config change (`always`) can make this remove.
    pub(super) fn enforce_limits(&mut self, always: bool) -> Result<()> {
        if self.config.discard == Discard::New && !always {
            return Ok(());
        }
        if let Some(max) = limit(self.config.max_msgs_per_subject).filter(|_| always) {
            let over: Vec<String> = self
                .subjects
                .iter()
                .filter(|(_, i)| i.count > max)
                .map(|(s, _)| s.to_owned())
                .collect();
            for subject in over {
                self.evict_subject(&subject, max)?;
            }
        }
        if let Some(max) = limit(self.config.max_msgs) {
            let mut excess = self.msgs.saturating_sub(max);
            self.remove_counted(self.floor, &mut excess, |_| true)?;
        }
        if let Some(max) = limit(self.config.max_bytes) {
            if self.bytes > max {
                let mut over = self.bytes - max;
                let from = self.floor;
                let to = self.last_seq;
                self.remove_scan(from, to, &mut |r, _| {
                    if over == 0 {
                        return Verdict::Stop;
                    }
                    over = over.saturating_sub(r.size as u64);
                    Verdict::Remove
                })?;
            }
        }
        Ok(())
    }
}
