//! The `Nats-Msg-Id` duplicate window of one stream.
//!
//! An id is remembered with the sequence it was stored at until `duplicate_window` has passed
//! since that message's timestamp. Entries expire in timestamp order, so expiry is a pop from
//! the front of a queue rather than a scan of the map.

use std::collections::{HashMap, VecDeque};

/// Remembered message ids and when each expires.
#[derive(Debug, Default)]
pub struct DedupWindow {
    window_ns: u64,
    ids: HashMap<String, u64>,
    /// (timestamp, id) in arrival order; timestamps never decrease within one stream.
    order: VecDeque<(u64, String)>,
}

impl DedupWindow {
    pub fn new(window_ns: u64) -> Self {
        Self {
            window_ns,
            ..Self::default()
        }
    }

    pub fn set_window(&mut self, window_ns: u64) {
        self.window_ns = window_ns;
    }

    /// Forgets ids older than the window as of `now_ns`.
    pub fn expire(&mut self, now_ns: u64) {
        while let Some((ts, _)) = self.order.front() {
            if ts.saturating_add(self.window_ns) > now_ns {
                break;
            }
            if let Some((_, id)) = self.order.pop_front() {
                self.ids.remove(&id);
            }
        }
    }

    /// The sequence an id was stored at, if it is still within the window.
    pub fn get(&self, id: &str) -> Option<u64> {
        self.ids.get(id).copied()
    }

    /// Remembers that `id` was stored at `seq` at time `ts_ns`; with no window (a mirror's,
    /// or a stream with sources that sets none) nothing is remembered.
    pub fn insert(&mut self, id: String, seq: u64, ts_ns: u64) {
        if self.window_ns == 0 {
            return;
        }
        if self.ids.insert(id.clone(), seq).is_none() {
            self.order.push_back((ts_ns, id));
        }
    }

    /// Every remembered id with its sequence and timestamp, oldest first: what a snapshot
    /// of a replicated stream carries, so a replica that catches up from one refuses the
    /// same duplicates as its group.
    pub fn entries(&self) -> impl Iterator<Item = (&str, u64, u64)> + '_ {
        self.order
            .iter()
            .filter_map(|(ts, id)| Some((id.as_str(), *self.ids.get(id)?, *ts)))
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_forgotten_after_the_window() {
        let mut window = DedupWindow::new(100);
        window.insert("a".into(), 1, 10);
        window.insert("b".into(), 2, 50);
        window.expire(109);
        assert_eq!(window.get("a"), Some(1));
        window.expire(110);
        assert_eq!(window.get("a"), None);
        assert_eq!(window.get("b"), Some(2));
        window.expire(1000);
        assert!(window.is_empty());
    }
}
