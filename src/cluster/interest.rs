//! What this server announces to its routes about its own subscriptions.
//!
//! A route carries interest, not subscriptions: the peer needs to know that some client here
//! wants `orders.>` in account `A`, not how many do. So a plain subscription is announced
//! (`RS+`) when the first one on an (account, subject) appears and withdrawn (`RS-`) when the
//! last one goes. A queue group is different: the peer weighs its choice of server by the
//! group's members here, so every change re-announces the group with its absolute member
//! count (nats-server sends `RS+ <acc> <subj> <queue> <weight>` again rather than a delta),
//! and the last member's departure withdraws it. A new route is sent the whole table at once.

use std::collections::HashMap;

use bytes::Bytes;

use crate::protocol::route::RouteOp;

/// (account, subject, queue group) — the unit a route announces.
type Key = (Bytes, Bytes, Option<Bytes>);

/// Local subscriptions counted per announced unit.
#[derive(Debug, Default)]
pub struct LocalInterest {
    counts: HashMap<Key, u32>,
}

impl LocalInterest {
    /// A local subscription was added: the announcement it calls for, if any.
    pub fn add(&mut self, account: Bytes, subject: Bytes, queue: Option<Bytes>) -> Option<RouteOp> {
        let key = (account, subject, queue);
        let count = self.counts.entry(key.clone()).or_insert(0);
        *count = count.saturating_add(1);
        let count = *count;
        match (&key.2, count) {
            (None, 1) => Some(announce(key, count)),
            (None, _) => None,
            (Some(_), _) => Some(announce(key, count)),
        }
    }

    /// A local subscription was removed: the announcement it calls for, if any. Removing what
    /// was never added announces nothing.
    pub fn remove(
        &mut self,
        account: Bytes,
        subject: Bytes,
        queue: Option<Bytes>,
    ) -> Option<RouteOp> {
        let key = (account, subject, queue);
        let count = self.counts.get_mut(&key)?;
        debug_assert!(*count > 0, "a zero count is never kept");
        *count -= 1;
        let count = *count;
        if count == 0 {
            self.counts.remove(&key);
            let (account, subject, queue) = key;
            return Some(RouteOp::NoInterest {
                account,
                subject,
                queue,
            });
        }
        key.2.is_some().then(|| announce(key, count))
    }

    /// Everything to announce to a route that just connected, in a stable order.
    pub fn snapshot(&self) -> Vec<RouteOp> {
        let mut keys: Vec<(&Key, u32)> = self.counts.iter().map(|(k, c)| (k, *c)).collect();
        keys.sort_unstable_by(|a, b| a.0.cmp(b.0));
        keys.into_iter()
            .map(|(key, count)| announce(key.clone(), count))
            .collect()
    }
}

/// `RS+` for a unit with `count` local subscriptions (the weight, for a queue group).
fn announce((account, subject, queue): Key, count: u32) -> RouteOp {
    RouteOp::Interest {
        account,
        subject,
        queue: queue.map(|q| (q, count)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// What a peer knows after applying announcements: plain interest as weight 0.
    type View = BTreeMap<(Bytes, Bytes, Option<Bytes>), u32>;

    fn apply(view: &mut View, op: RouteOp) {
        match op {
            RouteOp::Interest {
                account,
                subject,
                queue,
            } => {
                let (queue, weight) = match queue {
                    Some((q, w)) => (Some(q), w),
                    None => (None, 0),
                };
                view.insert((account, subject, queue), weight);
            }
            RouteOp::NoInterest {
                account,
                subject,
                queue,
            } => {
                view.remove(&(account, subject, queue));
            }
            other => panic!("not an announcement: {other:?}"),
        }
    }

    fn unit() -> impl Strategy<Value = Key> {
        (
            prop::sample::select(vec!["A", "B"]),
            prop::sample::select(vec!["foo", "bar.>"]),
            prop::option::of(prop::sample::select(vec!["q1", "q2"])),
        )
            .prop_map(|(a, s, q)| {
                (
                    Bytes::from_static(a.as_bytes()),
                    Bytes::from_static(s.as_bytes()),
                    q.map(|q| Bytes::from_static(q.as_bytes())),
                )
            })
    }

    proptest! {
        /// A peer that applies every announcement ends up knowing exactly the local interest
        /// (queue groups with their member counts), and so does one that gets the snapshot.
        #[test]
        fn a_peer_following_the_announcements_knows_the_interest(
            ops in prop::collection::vec((any::<bool>(), unit()), 1..80),
        ) {
            let mut local = LocalInterest::default();
            let mut counts: BTreeMap<Key, u32> = BTreeMap::new();
            let mut peer = View::new();
            for (add, (account, subject, queue)) in ops {
                let key = (account.clone(), subject.clone(), queue.clone());
                let announced = if add {
                    *counts.entry(key).or_insert(0) += 1;
                    local.add(account, subject, queue)
                } else {
                    if let Some(n) = counts.get_mut(&key) {
                        *n -= 1;
                        if *n == 0 {
                            counts.remove(&key);
                        }
                    }
                    local.remove(account, subject, queue)
                };
                if let Some(op) = announced {
                    apply(&mut peer, op);
                }
            }
            let want: View = counts
                .into_iter()
                .map(|(k, n)| {
                    let weight = if k.2.is_some() { n } else { 0 };
                    (k, weight)
                })
                .collect();
            prop_assert_eq!(&peer, &want);
            let mut fresh = View::new();
            for op in local.snapshot() {
                apply(&mut fresh, op);
            }
            prop_assert_eq!(fresh, want);
        }
    }

    #[test]
    fn plain_interest_is_announced_once_and_queue_weights_every_time() {
        let mut local = LocalInterest::default();
        let b = Bytes::from_static;
        assert!(local.add(b(b"A"), b(b"foo"), None).is_some());
        assert_eq!(local.add(b(b"A"), b(b"foo"), None), None);
        assert_eq!(local.remove(b(b"A"), b(b"foo"), None), None);
        assert!(matches!(
            local.remove(b(b"A"), b(b"foo"), None),
            Some(RouteOp::NoInterest { .. })
        ));
        assert_eq!(local.remove(b(b"A"), b(b"foo"), None), None);
        for weight in 1..=3 {
            assert_eq!(
                local.add(b(b"A"), b(b"bar"), Some(b(b"q"))),
                Some(RouteOp::Interest {
                    account: b(b"A"),
                    subject: b(b"bar"),
                    queue: Some((b(b"q"), weight)),
                })
            );
        }
        assert_eq!(
            local.remove(b(b"A"), b(b"bar"), Some(b(b"q"))),
            Some(RouteOp::Interest {
                account: b(b"A"),
                subject: b(b"bar"),
                queue: Some((b(b"q"), 2)),
            })
        );
    }
}
