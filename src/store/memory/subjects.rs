//! Per-subject state of the memory log, with each subject's name stored once.
//!
//! The bookkeeping is the same as [`crate::store::subjects::Subjects`] (the file log's map):
//! `first` is a lower bound that only moves forward, `last` and `count` are exact. The
//! difference is the key: an `Arc<str>` that every stored message of the subject shares, so a
//! message costs 16 bytes for its subject instead of its own `String`.

use std::collections::HashMap;
use std::sync::Arc;

use crate::protocol::subject::{is_literal, subject_matches};
use crate::store::subjects::{Removed, SubjectInfo};

/// One subject: its shared name and its counters.
#[derive(Debug, Clone)]
struct Entry {
    /// The name every stored message of this subject points at.
    name: Arc<str>,
    /// First (lower bound), last and count, as in the file log.
    info: SubjectInfo,
}

/// The map of every stored subject.
#[derive(Debug, Default, Clone)]
pub(super) struct MemSubjects {
    /// Keyed by subject; a `HashMap` because lookups by exact subject dominate.
    map: HashMap<Arc<str>, Entry>,
}

impl MemSubjects {
    /// Accounts a newly stored message and returns the shared name to store with it.
    pub(super) fn add(&mut self, subject: &str, seq: u64) -> Arc<str> {
        if let Some(entry) = self.map.get_mut(subject) {
            debug_assert!(seq > entry.info.last, "sequences only grow");
            entry.info.last = seq;
            entry.info.count += 1;
            return entry.name.clone();
        }
        let name: Arc<str> = Arc::from(subject);
        let info = SubjectInfo {
            first: seq,
            last: seq,
            count: 1,
        };
        self.map.insert(
            name.clone(),
            Entry {
                name: name.clone(),
                info,
            },
        );
        name
    }

    /// Accounts a removed message (the same rules as `Subjects::remove`).
    pub(super) fn remove(&mut self, subject: &str, seq: u64) -> Removed {
        let Some(entry) = self.map.get_mut(subject) else {
            return Removed::Unknown;
        };
        let info = &mut entry.info;
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
    pub(super) fn set_last(&mut self, subject: &str, last: u64) {
        if let Some(entry) = self.map.get_mut(subject) {
            entry.info.last = last;
            entry.info.first = entry.info.first.min(last);
        }
    }

    /// State of one literal subject.
    pub(super) fn get(&self, subject: &str) -> Option<&SubjectInfo> {
        self.map.get(subject).map(|e| &e.info)
    }

    /// Every subject matching `filter` (a literal filter is a single lookup).
    pub(super) fn matching<'a>(
        &'a self,
        filter: &'a str,
    ) -> Box<dyn Iterator<Item = (&'a str, &'a SubjectInfo)> + 'a> {
        if is_literal(filter) {
            Box::new(
                self.map
                    .get_key_value(filter)
                    .map(|(k, e)| (&**k, &e.info))
                    .into_iter(),
            )
        } else {
            Box::new(
                self.map
                    .iter()
                    .filter(move |(k, _)| subject_matches(filter, &***k))
                    .map(|(k, e)| (&**k, &e.info)),
            )
        }
    }

    /// All subjects.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&str, &SubjectInfo)> {
        self.map.iter().map(|(k, e)| (&**k, &e.info))
    }

    /// Number of distinct subjects.
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    /// Drops everything.
    pub(super) fn clear(&mut self) {
        self.map.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_of_one_subject_share_its_name() {
        let mut s = MemSubjects::default();
        let a1 = s.add("a", 1);
        let a2 = s.add("a", 3);
        assert!(Arc::ptr_eq(&a1, &a2));
        assert_eq!(
            s.get("a").map(|i| (i.first, i.last, i.count)),
            Some((1, 3, 2))
        );
    }

    #[test]
    fn removals_follow_the_file_log_rules() {
        let mut s = MemSubjects::default();
        for (subj, seq) in [("a", 1), ("b", 2), ("a", 3), ("a", 4)] {
            s.add(subj, seq);
        }
        assert_eq!(s.remove("a", 1), Removed::Done);
        assert_eq!(s.get("a").map(|i| (i.first, i.count)), Some((2, 2)));
        assert_eq!(s.remove("a", 4), Removed::LastRemoved);
        s.set_last("a", 3);
        assert_eq!(s.get("a").map(|i| (i.first, i.last)), Some((2, 3)));
        assert_eq!(s.remove("b", 2), Removed::SubjectGone);
        assert_eq!(s.remove("b", 2), Removed::Unknown);
        assert_eq!(s.matching("*").count(), 1);
        assert_eq!(s.len(), 1);
    }
}
