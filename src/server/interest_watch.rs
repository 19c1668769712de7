//! Watches for new interest in subjects. A push consumer delivers only while its deliver
//! subject has a subscriber, and clients usually subscribe to it right after creating the
//! consumer; the consumer's stream must hear of the new subscriber at once, not at its next
//! upkeep tick, or the first message comes tens of milliseconds late (nats-server registers
//! an interest callback on the deliver subject for the same reason).
//!
//! Watched subjects are literal (deliver subjects cannot hold wildcards), so a literal
//! subscription is one hash lookup; a wildcard subscription is checked against each watched
//! subject, which is rare and bounded by the number of push consumers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::protocol::subject::{is_literal, subject_matches};

/// What a watch calls when a subscription matching its subject appears. It runs on the
/// subscriber's task with the watch table locked, so it must not block: a `try_send` of a
/// wake-up, for instance.
pub type Wake = Arc<dyn Fn() + Send + Sync>;

/// A registered watch; give it back to [`InterestWatch::unwatch`].
#[derive(Debug)]
pub struct WatchId {
    subject: Bytes,
    id: u64,
}

/// The table of watched subjects.
#[derive(Default)]
pub struct InterestWatch {
    watches: Mutex<HashMap<Bytes, Vec<(u64, Wake)>>>,
    /// How many watches exist, read without the lock so a server with no push consumers pays
    /// one atomic load per subscription.
    count: AtomicUsize,
    next_id: AtomicU64,
}

impl InterestWatch {
    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<Bytes, Vec<(u64, Wake)>>> {
        self.watches.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Calls `wake` whenever a subscription that matches `subject` is made.
    pub fn watch(&self, subject: &str, wake: Wake) -> WatchId {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let subject = Bytes::copy_from_slice(subject.as_bytes());
        self.table()
            .entry(subject.clone())
            .or_default()
            .push((id, wake));
        self.count.fetch_add(1, Ordering::Release);
        WatchId { subject, id }
    }

    /// Ends a watch.
    pub fn unwatch(&self, watch: WatchId) {
        let mut table = self.table();
        if let Some(list) = table.get_mut(&watch.subject) {
            let before = list.len();
            list.retain(|(id, _)| *id != watch.id);
            if list.len() < before {
                self.count.fetch_sub(1, Ordering::Release);
            }
            if list.is_empty() {
                table.remove(&watch.subject);
            }
        }
    }

    /// A subscription on `pattern` was made: wakes every watch whose subject it matches.
    pub fn subscribed(&self, pattern: &[u8]) {
        if self.count.load(Ordering::Acquire) == 0 {
            return;
        }
        let table = self.table();
        if is_literal(pattern) {
            for (_, wake) in table.get(pattern).into_iter().flatten() {
                wake();
            }
            return;
        }
        for (subject, list) in table.iter() {
            if subject_matches(pattern, subject) {
                for (_, wake) in list {
                    wake();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter() -> (Arc<AtomicUsize>, Wake) {
        let hits = Arc::new(AtomicUsize::new(0));
        let seen = hits.clone();
        (
            hits,
            Arc::new(move || {
                seen.fetch_add(1, Ordering::Relaxed);
            }),
        )
    }

    #[test]
    fn literal_and_wildcard_subscriptions_wake_the_watch_until_it_ends() {
        let table = InterestWatch::default();
        let (hits, wake) = counter();
        let watch = table.watch("deliver.abc", wake);
        table.subscribed(b"deliver.abc");
        table.subscribed(b"deliver.*");
        table.subscribed(b">");
        table.subscribed(b"deliver.other");
        table.subscribed(b"deliver.abc.more");
        assert_eq!(hits.load(Ordering::Relaxed), 3);
        table.unwatch(watch);
        table.subscribed(b"deliver.abc");
        assert_eq!(hits.load(Ordering::Relaxed), 3);
        assert_eq!(table.count.load(Ordering::Relaxed), 0);
        assert!(table.table().is_empty());
    }

    #[test]
    fn two_watches_on_one_subject_end_separately() {
        let table = InterestWatch::default();
        let (first_hits, first) = counter();
        let (second_hits, second) = counter();
        let a = table.watch("d", first);
        let _b = table.watch("d", second);
        table.unwatch(a);
        table.subscribed(b"d");
        assert_eq!(first_hits.load(Ordering::Relaxed), 0);
        assert_eq!(second_hits.load(Ordering::Relaxed), 1);
    }
}
