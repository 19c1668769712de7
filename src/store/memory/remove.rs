//! Removing messages from the memory log: delete, purge, retention limits and `max_age`
//! expiry, with the file log's rules (`log/remove.rs`) for which messages go and in what order.
//! Removal frees the message at once; `first_seq` follows from the oldest message left.

use std::collections::BTreeSet;

use crate::protocol::subject::subject_matches;
use crate::store::config::{limit, Discard, NewMessage, PurgeRequest};
use crate::store::error::{Result, StoreError};
use crate::store::log::AppendResult;
use crate::store::subjects::Removed;

use super::{MemLog, MemMsg};

impl MemLog {
    /// Removes one stored message and keeps the counters and the subject map exact.
    fn remove_one(&mut self, seq: u64) -> Option<MemMsg> {
        let msg = self.messages.remove(&seq)?;
        self.bytes = self.bytes.saturating_sub(msg.record_len());
        if self.subjects.remove(&msg.subject, seq) == Removed::LastRemoved {
            // The subject still has messages, all below `seq` and at or above its first bound.
            let first = self
                .subjects
                .get(&msg.subject)
                .map_or(0, |i| i.first.min(seq));
            let prev = self
                .messages
                .range(first..seq)
                .rev()
                .find(|(_, m)| m.subject == msg.subject)
                .map(|(s, _)| *s);
            match prev {
                Some(last) => self.subjects.set_last(&msg.subject, last),
                None => tracing::warn!(
                    subject = &*msg.subject,
                    "subject count says more messages but none found"
                ),
            }
        }
        Some(msg)
    }

    /// Removes every message above `last` and makes `last` the highest sequence assigned,
    /// as `Log::truncate_after`: nothing removed comes back.
    pub fn truncate_after(&mut self, last: u64) -> Result<()> {
        if last >= self.last_seq {
            return Ok(());
        }
        let doomed: Vec<u64> = self.messages.range(last + 1..).map(|(s, _)| *s).collect();
        for seq in doomed.into_iter().rev() {
            self.remove_one(seq);
        }
        self.age_exempt.retain(|s| *s <= last);
        self.applied = self.applied.filter(|a| a.last_seq <= last);
        self.last_seq = last;
        self.last_ts_ns = self.messages.last_key_value().map_or(0, |(_, m)| m.ts_ns);
        Ok(())
    }

    /// Removes the oldest messages while `remove` says so; stops at the first it refuses.
    fn remove_oldest_while(&mut self, mut remove: impl FnMut(&MemMsg) -> bool) -> u64 {
        let mut removed = 0;
        while let Some((&seq, msg)) = self.messages.first_key_value() {
            if !remove(msg) {
                break;
            }
            self.remove_one(seq);
            removed += 1;
        }
        removed
    }

    /// Removes the `n` oldest messages (fewer if fewer are stored).
    fn remove_oldest(&mut self, n: u64) -> u64 {
        let mut left = n;
        self.remove_oldest_while(|_| {
            let go = left > 0;
            left = left.saturating_sub(1);
            go
        })
    }

    /// Removes the stored messages with sequences in `[from, to]` whose subject `pick` chooses,
    /// at most `max` of them, oldest first. Returns how many.
    fn remove_in_range(
        &mut self,
        from: u64,
        to: u64,
        max: u64,
        pick: impl Fn(&str) -> bool,
    ) -> u64 {
        if from > to || max == 0 {
            return 0;
        }
        let victims: Vec<u64> = self
            .messages
            .range(from..=to)
            .filter(|(_, m)| pick(&m.subject))
            .map(|(seq, _)| *seq)
            .take(usize::try_from(max).unwrap_or(usize::MAX))
            .collect();
        for &seq in &victims {
            self.remove_one(seq);
        }
        victims.len() as u64
    }

    /// Deletes one message. Returns whether it was stored.
    pub fn delete(&mut self, seq: u64) -> Result<bool> {
        Ok(self.remove_one(seq).is_some())
    }

    /// Purges messages (nats `STREAM.PURGE`): everything, by subject filter, below a sequence,
    /// or all but the newest `keep`. Returns how many were removed.
    pub fn purge(&mut self, req: &PurgeRequest) -> Result<u64> {
        if req.keep.is_some() && req.up_to_seq.is_some() {
            return Err(StoreError::InvalidConfig(
                "purge: keep and up_to_seq cannot be combined".into(),
            ));
        }
        let filter = req.filter.as_deref().filter(|f| !f.is_empty() && *f != ">");
        let to = req.up_to_seq.map_or(self.last_seq, |s| s.saturating_sub(1));
        let removed = match (filter, req.keep) {
            (None, None) if req.up_to_seq.is_none() => self.purge_all(),
            (None, None) => self.remove_in_range(0, to, u64::MAX, |_| true),
            (None, Some(keep)) => self.remove_oldest(self.msgs().saturating_sub(keep)),
            (Some(f), keep) => {
                let (mut start, mut total) = (u64::MAX, 0u64);
                for (_, info) in self.subjects.matching(f) {
                    start = start.min(info.first);
                    total += info.count;
                }
                let matches = |s: &str| subject_matches(f, s);
                match keep {
                    _ if total == 0 => 0,
                    Some(keep) => {
                        let excess = total.saturating_sub(keep);
                        self.remove_in_range(start, self.last_seq, excess, matches)
                    }
                    None => self.remove_in_range(start, to, u64::MAX, matches),
                }
            }
        };
        Ok(removed)
    }

    /// Purge without conditions.
    fn purge_all(&mut self) -> u64 {
        let removed = self.msgs();
        self.messages.clear();
        self.subjects.clear();
        self.bytes = 0;
        removed
    }

    /// Removes messages older than `max_age` relative to `now_ns` (oldest first, stopping at
    /// the first one that is young enough, as nats-server and the file log do). Returns how
    /// many.
    pub fn expire(&mut self, now_ns: u64) -> Result<u64> {
        Ok(self.expire_at(now_ns))
    }

    /// [`MemLog::expire`] without the `Result` it cannot fail with.
    pub(super) fn expire_at(&mut self, now_ns: u64) -> u64 {
        self.clock_ns = self.clock_ns.max(now_ns);
        let max_age = u64::try_from(self.config.max_age.as_nanos()).unwrap_or(u64::MAX);
        if max_age == 0 {
            return 0;
        }
        let cutoff = now_ns.saturating_sub(max_age);
        if self.age_exempt.is_empty() {
            return self.remove_oldest_while(|m| m.ts_ns < cutoff);
        }
        let victims: Vec<u64> = self
            .messages
            .iter()
            .take_while(|(_, m)| m.ts_ns < cutoff)
            .map(|(seq, _)| *seq)
            .filter(|seq| !self.age_exempt.contains(seq))
            .collect();
        for seq in &victims {
            self.remove_one(*seq);
        }
        let first = self
            .messages
            .first_key_value()
            .map_or(u64::MAX, |(s, _)| *s);
        self.age_exempt.retain(|seq| *seq >= first);
        victims.len() as u64
    }

    /// Keeps message `seq` from being removed by `max_age` (its TTL is `never`).
    pub fn exempt_from_age(&mut self, seq: u64) {
        self.age_exempt.insert(seq);
    }

    /// When `expire` will next have something to do: the first message's timestamp plus
    /// `max_age`. `None` without `max_age` or messages.
    pub fn next_expiry_ns(&self) -> Result<Option<u64>> {
        let max_age = u64::try_from(self.config.max_age.as_nanos()).unwrap_or(u64::MAX);
        if max_age == 0 {
            return Ok(None);
        }
        Ok(self
            .messages
            .first_key_value()
            .map(|(_, m)| m.ts_ns.saturating_add(max_age)))
    }

    /// Limits after an append: per-subject eviction for the subjects just written, then
    /// `max_msgs`/`max_bytes` with `discard: old`, then `max_age`.
    pub(super) fn enforce_after_append(&mut self, msgs: &[NewMessage], results: &[AppendResult]) {
        if let Some(max) = limit(self.config.max_msgs_per_subject) {
            let touched: BTreeSet<&str> = msgs
                .iter()
                .zip(results)
                .filter(|(_, r)| r.is_ok())
                .map(|(m, _)| m.subject.as_str())
                .collect();
            for subject in touched {
                self.evict_subject(subject, max);
            }
        }
        self.enforce_limits(false);
        self.expire_at(self.clock_ns);
    }

    /// Removes a subject's oldest messages beyond `max`.
    fn evict_subject(&mut self, subject: &str, max: u64) {
        let Some(info) = self.subjects.get(subject).copied() else {
            return;
        };
        let excess = info.count.saturating_sub(max);
        self.remove_in_range(info.first, info.last, excess, |s| s == subject);
    }

    /// `max_msgs` and `max_bytes`: removes the oldest messages while over. With `discard: new`
    /// appends never pass them, so only a config change (`always`) can make this remove.
    pub(super) fn enforce_limits(&mut self, always: bool) {
        if self.config.discard == Discard::New && !always {
            return;
        }
        if let Some(max) = limit(self.config.max_msgs_per_subject).filter(|_| always) {
            let over: Vec<String> = self
                .subjects
                .iter()
                .filter(|(_, i)| i.count > max)
                .map(|(s, _)| s.to_owned())
                .collect();
            for subject in over {
                self.evict_subject(&subject, max);
            }
        }
        if let Some(max) = limit(self.config.max_msgs) {
            self.remove_oldest(self.msgs().saturating_sub(max));
        }
        if let Some(max) = limit(self.config.max_bytes) {
            let mut over = self.bytes.saturating_sub(max);
            self.remove_oldest_while(|m| {
                let go = over > 0;
                over = over.saturating_sub(m.record_len());
                go
            });
        }
    }
}
