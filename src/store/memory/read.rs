//! Reads of the memory log: by sequence, filtered forward scans, last-by-subject,
//! start-by-time, state. Same answers as the file log's `read.rs`; none can fail.

use std::collections::BTreeMap;

use crate::protocol::subject::{is_literal, subject_matches};
use crate::store::config::{LogState, StoredMessage};
use crate::store::error::Result;

use super::MemLog;

impl MemLog {
    /// The message with sequence `seq`; `Ok(None)` if there is none (never stored, deleted,
    /// purged, expired).
    pub fn get(&self, seq: u64) -> Result<Option<StoredMessage>> {
        Ok(self.messages.get(&seq).map(|m| m.to_stored(seq)))
    }

    /// The first stored message at or after `start_seq` whose subject matches any of
    /// `filters` (wildcards allowed; an empty list matches everything).
    pub fn next_matching(&self, start_seq: u64, filters: &[&str]) -> Result<Option<StoredMessage>> {
        Ok(self.scan(start_seq, filters, 1)?.pop())
    }

    /// Up to `max` stored messages at or after `start_seq` matching `filters`, in order.
    pub fn scan(&self, start_seq: u64, filters: &[&str], max: usize) -> Result<Vec<StoredMessage>> {
        let mut out = Vec::new();
        if max == 0 || self.messages.is_empty() {
            return Ok(out);
        }
        let match_all = filters.is_empty() || filters.contains(&">");
        let (mut start, mut end) = (start_seq, self.last_seq);
        if !match_all && filters.iter().all(is_literal) {
            // Literal filters: the subject map bounds where matches can be.
            let (mut lo, mut hi) = (u64::MAX, 0);
            for f in filters {
                if let Some(info) = self.subjects.get(f).filter(|i| i.last >= start) {
                    lo = lo.min(info.first.max(start));
                    hi = hi.max(info.last);
                }
            }
            (start, end) = (lo, hi);
        }
        if start > end {
            return Ok(out);
        }
        for (&seq, m) in self.messages.range(start..=end) {
            if match_all || filters.iter().any(|f| subject_matches(f, &*m.subject)) {
                out.push(m.to_stored(seq));
                if out.len() >= max {
                    break;
                }
            }
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
    /// there is none. Timestamps come from the caller and need not grow with the sequence, so
    /// this walks in sequence order rather than bisecting, as the file log does.
    pub fn seq_at_or_after_time(&self, ts_ns: u64) -> Result<u64> {
        Ok(self
            .messages
            .iter()
            .find(|(_, m)| m.ts_ns >= ts_ns)
            .map_or(self.last_seq + 1, |(seq, _)| *seq))
    }

    /// Counters and bounds; with `include_deleted`, also every sequence between first and last
    /// that holds no message.
    pub fn state(&self, include_deleted: bool) -> Result<LogState> {
        let mut state = LogState {
            msgs: self.msgs(),
            bytes: self.bytes,
            last_seq: self.last_seq,
            last_ts_ns: self.last_ts_ns,
            num_subjects: self.subjects.len() as u64,
            ..LogState::default()
        };
        let Some((&first, first_msg)) = self.messages.first_key_value() else {
            // Empty: `first_seq` is where the next message will go, or 0 if none ever came.
            state.first_seq = if self.last_seq == 0 {
                0
            } else {
                self.last_seq + 1
            };
            return Ok(state);
        };
        state.first_seq = first;
        state.first_ts_ns = first_msg.ts_ns;
        state.num_deleted = (self.last_seq - first + 1).saturating_sub(state.msgs);
        if include_deleted {
            let mut expect = first;
            for &seq in self.messages.keys() {
                state.deleted.extend(expect..seq);
                expect = seq + 1;
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

    /// Stored messages at or after `from` matching `filters`; always known here.
    pub fn count_from(&self, from: u64, filters: &[&str]) -> Option<u64> {
        if filters.is_empty() || filters.contains(&">") {
            return Some(self.messages.range(from..).count() as u64);
        }
        let count = self
            .messages
            .range(from..)
            .filter(|(_, m)| filters.iter().any(|f| subject_matches(f, &*m.subject)))
            .count();
        Some(count as u64)
    }
}
