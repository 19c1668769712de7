//! Per-subject state: subject → (first, last, count), kept in memory for every stored subject.
//!
//! It serves `max_msgs_per_subject`, "last message for subject" (KV gets), `num_subjects` and
//! per-subject counts without touching the disk. Memory is per subject, not per message.
//!
//! `first` is a lower bound, not always exact: when a subject's first message is removed we do
//! not search for the next one right away (that could mean reading far ahead); we only raise
//! the bound, and a reader that needs the exact first scans forward from it. The bound only
//! moves forward, so repeated per-subject evictions cost amortised O(records scanned once).
//! `last` and `count` are always exact.

use std::collections::HashMap;

use crate::protocol::subject::{is_literal, subject_matches};

/// State of one subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubjectInfo {
    /// No message of this subject has a lower sequence (may be lower than the real first).
    pub first: u64,
    /// Sequence of its newest message.
    pub last: u64,
    /// Messages stored.
    pub count: u64,
}

/// What removing one message did to its subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removed {
    /// Counts updated; nothing else to do.
    Done,
    /// The subject has no message left and was dropped.
    SubjectGone,
    /// The subject's newest message was removed; the caller must find the new last one
    /// (a sequence below the removed one) and call [`Subjects::set_last`].
    LastRemoved,
    /// The subject was not known (the removed record's subject was already gone).
    Unknown,
}

/// The map of every stored subject.
#[derive(Debug, Default, Clone)]
pub struct Subjects {
    /// Keyed by subject; a `HashMap` because lookups by exact subject dominate.
    map: HashMap<String, SubjectInfo>,
}

impl Subjects {
    /// Accounts a newly stored message.
    pub fn add(&mut self, subject: &str, seq: u64) {
        match self.map.get_mut(subject) {
            Some(info) => {
                debug_assert!(seq > info.last, "sequences only grow");
                info.last = seq;
                info.count += 1;
            }
            None => {
                self.map.insert(
                    subject.to_owned(),
                    SubjectInfo {
                        first: seq,
                        last: seq,
                        count: 1,
                    },
                );
            }
        }
    }

    /// Inserts a subject's state as loaded from a snapshot.
    pub fn insert(&mut self, subject: String, info: SubjectInfo) {
        self.map.insert(subject, info);
    }

    /// Accounts a removed message.
    pub fn remove(&mut self, subject: &str, seq: u64) -> Removed {
        let Some(info) = self.map.get_mut(subject) else {
            return Removed::Unknown;
        };
        info.count = info.count.saturating_sub(1);
        if info.count == 0 {
            self.map.remove(subject);
            return Removed::SubjectGone;
        }
        if seq == info.first {
            info.first = (seq + 1).min(info.last);
        }
        if seq == info.last {
            return Removed::LastRemoved;
        }
        Removed::Done
    }

    /// Sets the exact last sequence after [`Removed::LastRemoved`].
    pub fn set_last(&mut self, subject: &str, last: u64) {
        if let Some(info) = self.map.get_mut(subject) {
            info.last = last;
            info.first = info.first.min(last);
        }
    }

    /// Raises a subject's first bound once the exact first is known.
    pub fn set_first(&mut self, subject: &str, first: u64) {
        if let Some(info) = self.map.get_mut(subject) {
            info.first = first.min(info.last);
        }
    }

    /// State of one literal subject.
    pub fn get(&self, subject: &str) -> Option<&SubjectInfo> {
        self.map.get(subject)
    }

    /// Every subject matching `filter` (a literal filter is a single lookup).
    pub fn matching<'a>(
        &'a self,
        filter: &'a str,
    ) -> Box<dyn Iterator<Item = (&'a str, &'a SubjectInfo)> + 'a> {
        if is_literal(filter) {
            Box::new(
                self.map
                    .get_key_value(filter)
                    .map(|(k, v)| (k.as_str(), v))
                    .into_iter(),
            )
        } else {
            Box::new(
                self.map
                    .iter()
                    .filter(move |(k, _)| subject_matches(filter, k))
                    .map(|(k, v)| (k.as_str(), v)),
            )
        }
    }

    /// All subjects.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &SubjectInfo)> {
        self.map.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of distinct subjects.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no subject is stored.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Drops everything.
    pub fn clear(&mut self) {
        self.map.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_bounds_follow_adds_and_removals() {
        let mut s = Subjects::default();
        for (subj, seq) in [("a", 1), ("b", 2), ("a", 3), ("a", 4)] {
            s.add(subj, seq);
        }
        assert_eq!(
            s.get("a"),
            Some(&SubjectInfo {
                first: 1,
                last: 4,
                count: 3
            })
        );
        assert_eq!(s.remove("a", 1), Removed::Done);
        assert_eq!(s.get("a").map(|i| (i.first, i.count)), Some((2, 2)));
        assert_eq!(s.remove("a", 4), Removed::LastRemoved);
        s.set_last("a", 3);
        assert_eq!(
            s.get("a"),
            Some(&SubjectInfo {
                first: 2,
                last: 3,
                count: 1
            })
        );
        assert_eq!(s.remove("b", 2), Removed::SubjectGone);
        assert_eq!(s.remove("b", 2), Removed::Unknown);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn wildcard_filters_match_subjects() {
        let mut s = Subjects::default();
        s.add("kv.a", 1);
        s.add("kv.b", 2);
        s.add("other", 3);
        let mut names: Vec<_> = s.matching("kv.*").map(|(k, _)| k).collect();
        names.sort();
        assert_eq!(names, vec!["kv.a", "kv.b"]);
        assert_eq!(s.matching("other").count(), 1);
        assert_eq!(s.matching("none").count(), 0);
    }
}
