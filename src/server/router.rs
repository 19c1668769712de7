//! Delivery of a published message to the subscriptions its subject matches.
//!
//! Routing runs on the publisher's task: it looks the subject up (through the publisher's own
//! match cache), encodes the message straight into each subscriber's outbound buffer, and
//! collects the connections whose writers need waking so the caller can wake each once per
//! read instead of once per message.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use super::outbound::{ClientHandle, Enqueued, Subscription};
use crate::broker::{MatchCache, MatchResult, Sublist};
use crate::protocol::encode::OutMsg;
use crate::protocol::Publish;

/// The sublist plus the generation counter readers check without taking the lock.
#[derive(Default)]
pub struct Router {
    sublist: RwLock<Sublist<Subscription>>,
    generation: AtomicU64,
}

/// What the publishing connection brings to a routing decision.
pub struct Publisher<'a> {
    pub client: &'a ClientHandle,
    /// `echo:false` in CONNECT: the publisher's own subscriptions are skipped.
    pub echo: bool,
}

/// Whether a subscription may take one more message, given its UNSUB max.
enum Claim {
    Deliver,
    /// This delivery reaches the max: deliver, then remove the subscription.
    DeliverLast,
    Skip,
}

fn claim(sub: &Subscription) -> Claim {
    let max = sub.max_msgs.load(Ordering::Acquire);
    let n = sub.delivered.fetch_add(1, Ordering::AcqRel) + 1;
    match max {
        0 => Claim::Deliver,
        m if n < m => Claim::Deliver,
        m if n == m => Claim::DeliverLast,
        _ => Claim::Skip,
    }
}

impl Router {
    pub fn subscribe(&self, sub: Arc<Subscription>) {
        let mut list = self.sublist.write().unwrap_or_else(|p| p.into_inner());
        list.insert(&sub.subject, sub.queue.as_deref(), sub.clone());
        self.generation.store(list.generation(), Ordering::Release);
    }

    pub fn unsubscribe(&self, sub: &Arc<Subscription>) -> bool {
        let mut list = self.sublist.write().unwrap_or_else(|p| p.into_inner());
        let removed = list.remove(&sub.subject, sub.queue.as_deref(), sub);
        self.generation.store(list.generation(), Ordering::Release);
        removed
    }

    /// Removes a subscription from the sublist and from its connection's sid map.
    pub fn remove_subscription(&self, sub: &Arc<Subscription>) {
        self.unsubscribe(sub);
        let mut subs = sub.client.subs.lock().unwrap_or_else(|p| p.into_inner());
        if subs.get(&sub.sid).is_some_and(|s| Arc::ptr_eq(s, sub)) {
            subs.remove(&sub.sid);
        }
    }

    /// The subscriptions matching `subject`, from the cache when it is current.
    pub fn lookup(
        &self,
        subject: &[u8],
        cache: &mut MatchCache<Subscription>,
    ) -> Arc<MatchResult<Subscription>> {
        let generation = self.generation.load(Ordering::Acquire);
        if let Some(hit) = cache.get(subject, generation) {
            return hit;
        }
        let list = self.sublist.read().unwrap_or_else(|p| p.into_inner());
        let result = Arc::new(list.matches(subject));
        cache.insert(subject, list.generation(), result.clone());
        result
    }

    /// Delivers `msg` to every matching subscription (one member per queue group). Returns
    /// how many subscriptions it was queued for.
    pub fn route(
        &self,
        from: &Publisher<'_>,
        msg: &Publish,
        cache: &mut MatchCache<Subscription>,
        wake: &mut Vec<Arc<ClientHandle>>,
        rng: &mut u64,
    ) -> usize {
        let matches = self.lookup(&msg.subject, cache);
        let mut delivered = 0;
        for sub in &matches.plain {
            if !from.echo && sub.client.id == from.client.id {
                continue;
            }
            delivered += usize::from(self.deliver(sub, msg, wake));
        }
        for group in &matches.queues {
            let n = group.members.len();
            let start = (next_random(rng) % n as u64) as usize;
            for i in 0..n {
                let sub = &group.members[(start + i) % n];
                if (!from.echo && sub.client.id == from.client.id)
                    || sub.client.close_reason().is_some()
                {
                    continue;
                }
                if self.deliver(sub, msg, wake) {
                    delivered += 1;
                    break;
                }
            }
        }
        delivered
    }

    /// Queues `msg` for one subscription; false if it could not take it.
    fn deliver(
        &self,
        sub: &Arc<Subscription>,
        msg: &Publish,
        wake: &mut Vec<Arc<ClientHandle>>,
    ) -> bool {
        let last = match claim(sub) {
            Claim::Skip => return false,
            Claim::Deliver => false,
            Claim::DeliverLast => true,
        };
        let headers = if sub.client.headers.load(Ordering::Relaxed) {
            msg.headers.as_deref()
        } else {
            None
        };
        let out = OutMsg {
            subject: &msg.subject,
            sid: &sub.sid,
            reply: msg.reply.as_deref(),
            headers,
            payload: &msg.payload,
        };
        let queued = match sub.client.enqueue_msg(&out) {
            Enqueued::NeedsWake | Enqueued::Lagging => {
                wake.push(sub.client.clone());
                true
            }
            Enqueued::Queued => true,
            Enqueued::Dropped => false,
        };
        if last {
            self.remove_subscription(sub);
        }
        queued
    }
}

/// xorshift64: a fast, allocation-free source for picking queue members. Not cryptographic;
/// it only spreads load.
pub fn next_random(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}
