//! The routes one published message goes to, gathered while its subject is matched: each
//! server gets it once, however many of its subscriptions matched, with the queue groups it
//! is to serve named in the one `RMSG`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;

use super::link::RouteLink;
use crate::protocol::Publish;
use crate::server::outbound::{ClientHandle, Enqueued, Owner, Subscription};
use crate::server::router::next_random;

/// Servers to forward one message to, and the queue groups each is to serve. Reused from
/// message to message: entries are cleared, their queue lists keep their capacity.
#[derive(Default)]
pub struct RouteTargets {
    list: Vec<(Arc<RouteLink>, Vec<Bytes>)>,
    /// Entries in use; those past it are spare.
    used: usize,
}

impl RouteTargets {
    pub fn is_empty(&self) -> bool {
        self.used == 0
    }

    /// Forgets the targets, keeping the memory (a spare entry still holds its link until it
    /// is reused: a closed route's link lives on at most until the next routed message).
    pub fn clear(&mut self) {
        for (_, queues) in &mut self.list[..self.used] {
            queues.clear();
        }
        self.used = 0;
    }

    fn entry(&mut self, link: &Arc<RouteLink>) -> &mut Vec<Bytes> {
        let found = self.list[..self.used]
            .iter()
            .position(|(l, _)| Arc::ptr_eq(l, link));
        let at = match found {
            Some(at) => at,
            None if self.used < self.list.len() => {
                self.list[self.used].0 = link.clone();
                self.used += 1;
                self.used - 1
            }
            None => {
                self.list.push((link.clone(), Vec::new()));
                self.used = self.list.len();
                self.used - 1
            }
        };
        &mut self.list[at].1
    }

    /// The server has a plain subscription that matches.
    pub fn plain(&mut self, link: &Arc<RouteLink>) {
        self.entry(link);
    }

    /// The server is to give the message to one member of `queue`.
    pub fn queue(&mut self, link: &Arc<RouteLink>, queue: Option<&Bytes>) {
        debug_assert!(queue.is_some(), "a queue member names its group");
        let queues = self.entry(link);
        if let Some(queue) = queue {
            if !queues.contains(queue) {
                queues.push(queue.clone());
            }
        }
    }

    /// Encodes the message into each route's buffer; returns how many servers took it and
    /// adds the routes whose writers need waking to `wake`.
    pub fn send(
        &self,
        account: &[u8],
        subject: &[u8],
        msg: &Publish,
        wake: &mut Vec<Arc<ClientHandle>>,
    ) -> usize {
        let mut sent = 0;
        for (link, queues) in &self.list[..self.used] {
            match link.send(account, subject, msg, queues) {
                Enqueued::NeedsWake | Enqueued::Lagging => {
                    wake.push(link.handle.clone());
                    sent += 1;
                }
                Enqueued::Queued => sent += 1,
                Enqueued::Dropped => {}
            }
        }
        sent
    }
}

/// A member's weight in its group's draw: another server's entry counts as many members as
/// it has there.
fn weight(sub: &Subscription) -> u64 {
    match &sub.owner {
        Owner::Route(remote) => u64::from(remote.weight.load(Ordering::Relaxed).max(1)),
        Owner::Client(_) | Owner::Internal(_) | Owner::Forward(_) => 1,
    }
}

/// Where to start looking for a member of a queue group, drawn with each member's weight.
/// Without other servers' members every weight is 1 and this is a uniform draw.
pub fn weighted_start(members: &[Arc<Subscription>], rng: &mut u64) -> usize {
    debug_assert!(!members.is_empty(), "a matched group has members");
    let total: u64 = members.iter().map(|m| weight(m)).sum();
    let mut draw = next_random(rng) % total.max(1);
    for (i, member) in members.iter().enumerate() {
        let w = weight(member);
        if draw < w {
            return i;
        }
        draw -= w;
    }
    0
}
