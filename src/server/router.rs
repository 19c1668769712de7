//! Delivery of a published message to the subscriptions its subject matches.
//!
//! Routing runs on the publisher's task: it looks the subject up (through the publisher's own
//! match cache), encodes the message straight into each subscribing client's outbound buffer,
//! and collects what must happen after the read: writers to wake (once each, not once per
//! message) and messages for internal subscribers, which the publisher then hands over through
//! bounded channels, waiting when they are full.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use bytes::Bytes;

use super::interest_watch::InterestWatch;
use super::outbound::{
    ClientHandle, Enqueued, InternalDelivery, InternalQueue, InternalSink, Owner, Subscription,
};
use super::protocol_trace;
use super::requester::Requester;
use super::routes::{Cluster, RouteTargets};
use crate::broker::{MatchCache, MatchResult, Sublist};
use crate::protocol::encode::OutMsg;
use crate::protocol::subject::subject_matches;
use crate::protocol::Publish;

/// The sublist plus the generation counter readers check without taking the lock.
#[derive(Default)]
pub struct Router {
    sublist: RwLock<Sublist<Subscription>>,
    generation: AtomicU64,
    /// Who wants to hear of new subscriptions on a subject (push consumers' streams).
    pub interest: InterestWatch,
    /// In a cluster: the account's name, and the routes its local interest is announced to.
    cluster: OnceLock<(Bytes, Arc<Cluster>)>,
}

/// How far a message travels from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach<'a> {
    /// Published on this server: to its subscribers and to every other server with interest.
    Cluster,
    /// To this server's subscribers only: carried across an account boundary by a forwarder
    /// that every server of the cluster runs for its own subscribers.
    Local,
    /// Brought by a route: to this server's plain subscribers, and to one member of each
    /// queue group the sender named (a local one if there is one). Never on to another route
    /// but for such a queue group, as nats-server does.
    Routed(&'a [Bytes]),
}

/// What the publisher brings to a routing decision.
pub struct Publisher<'a> {
    /// The publishing connection; `None` when the server itself publishes (API replies, acks).
    pub client: Option<&'a ClientHandle>,
    /// `echo:false` in CONNECT: the publisher's own subscriptions are skipped.
    pub echo: bool,
    pub reach: Reach<'a>,
}

impl Publisher<'_> {
    fn id(&self) -> u64 {
        self.client.map_or(0, |c| c.id)
    }

    /// Whether `sub` belongs to this publisher and echo is off.
    fn skips(&self, sub: &Subscription) -> bool {
        !self.echo && self.client.is_some() && sub.owner_id() == self.id()
    }
}

/// Work a routing pass leaves for after the read: it is batched so each writer is woken once
/// and internal hand-overs can wait for channel capacity outside the synchronous routing.
#[derive(Default)]
pub struct Deliveries {
    pub wake: Vec<Arc<ClientHandle>>,
    pub internal: InternalQueue,
    /// Kept between messages so that forwarding to routes allocates nothing once warm.
    routes: RouteTargets,
}

impl Deliveries {
    /// Hands internal messages over, waiting for channel capacity: this is how a stream that
    /// cannot keep up slows its publishers down instead of queueing without bound.
    /// Subscribers that can take a message inline ([`super::outbound::InlineTaker`]) are
    /// offered it first.
    pub async fn flush_internal(&mut self) {
        let mut spill = InternalQueue::new();
        let mut run = Run::default();
        for (sink, delivery) in self.internal.drain(..) {
            let delivery = match &sink.inline {
                Some(taker) => match taker.try_take(delivery, &mut spill) {
                    Some(declined) => declined,
                    None => continue,
                },
                None => delivery,
            };
            run.push(sink, delivery).await;
        }
        // What inline work published to internal subscribers takes the ordinary way.
        for (sink, delivery) in spill {
            run.push(sink, delivery).await;
        }
        run.send().await;
    }

    /// Wakes every writer with new bytes.
    pub fn wake_all(&mut self) {
        for client in self.wake.drain(..) {
            client.wake();
        }
    }

    /// Wakes every writer with new bytes, then holds the publisher (the connection `own_id`,
    /// a client or a route) back while a subscriber it fed is past its stall threshold and
    /// still draining: the publisher reads no more until then, so TCP pushes back on whoever
    /// sends to it, instead of the subscriber being cut off as slow. Bounded by `STALL_MAX`
    /// per read; a subscriber that makes no progress is not waited for. `lagging` is the
    /// caller's scratch list, kept to avoid allocating.
    pub async fn wake_and_pace(&mut self, own_id: u64, lagging: &mut Vec<Arc<ClientHandle>>) {
        for client in self.wake.drain(..) {
            client.wake();
            let behind = client.id != own_id
                && client.pending_bytes() > client.stall_threshold()
                && !client.is_stuck()
                && !lagging.iter().any(|c| c.id == client.id);
            if behind {
                lagging.push(client);
            }
        }
        let deadline = tokio::time::Instant::now() + STALL_MAX;
        for client in lagging.drain(..) {
            while client.pending_bytes() > client.stall_threshold()
                && client.close_reason().is_none()
                && tokio::time::Instant::now() < deadline
            {
                if !client.wait_drained(STALL_PROGRESS_WAIT).await {
                    break;
                }
            }
        }
    }
}

/// The longest a publisher is held back, per read, by a subscriber that is behind.
const STALL_MAX: std::time::Duration = std::time::Duration::from_millis(250);
/// A subscriber that flushes nothing for this long is stuck, not slow: stalling the publisher
/// for it would only spread the damage, so the publisher goes on and the cap cuts it off.
const STALL_PROGRESS_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

/// Whether an internal subscription declines this subject.
fn excludes(sub: &Subscription, subject: &[u8]) -> bool {
    match &sub.owner {
        Owner::Internal(sink) => sink.exclude.iter().any(|p| subject_matches(*p, subject)),
        Owner::Client(_) | Owner::Forward(_) | Owner::Route(_) => false,
    }
}

/// Whether a plain subscription is out of the message's reach: another server's interest
/// for a message that came from a route or must stay here, and a forwarder that only the
/// server where the message was published runs.
fn out_of_reach(sub: &Subscription, reach: Reach<'_>) -> bool {
    match (&sub.owner, reach) {
        (Owner::Route(_), Reach::Local | Reach::Routed(_)) => true,
        (Owner::Forward(forward), Reach::Routed(_)) => !forward.cluster_wide(),
        _ => false,
    }
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
    /// Joins the account to the cluster: from now on its local subscriptions are announced to
    /// the routes. Called once, when the account is made and before anything subscribes.
    pub fn join_cluster(&self, account: &str, cluster: Arc<Cluster>) {
        debug_assert!(
            self.sublist_stats().0 == 0,
            "joined before any subscription"
        );
        let _ = self
            .cluster
            .set((Bytes::copy_from_slice(account.as_bytes()), cluster));
    }

    pub fn subscribe(&self, sub: Arc<Subscription>) {
        let mut list = self.sublist.write().unwrap_or_else(|p| p.into_inner());
        list.insert(&sub.subject, sub.queue.as_deref(), sub.clone());
        self.generation.store(list.generation(), Ordering::Release);
        drop(list);
        self.interest.subscribed(&sub.subject);
        self.announce(&sub, true);
    }

    pub fn unsubscribe(&self, sub: &Arc<Subscription>) -> bool {
        let mut list = self.sublist.write().unwrap_or_else(|p| p.into_inner());
        let removed = list.remove(&sub.subject, sub.queue.as_deref(), sub);
        self.generation.store(list.generation(), Ordering::Release);
        drop(list);
        if removed {
            self.announce(sub, false);
        }
        removed
    }

    /// Tells the cluster of a local subscription added or removed. Another server's interest
    /// is never passed on (each server announces only its own), nor is a forwarder that only
    /// the publishing server runs.
    fn announce(&self, sub: &Subscription, added: bool) {
        let Some((account, cluster)) = self.cluster.get() else {
            return;
        };
        let announced = match &sub.owner {
            Owner::Route(_) => false,
            Owner::Forward(forward) => forward.cluster_wide(),
            Owner::Client(_) | Owner::Internal(_) => true,
        };
        if announced {
            cluster.local_interest(account, &sub.subject, sub.queue.as_ref(), added);
        }
    }

    /// Removes a subscription from the sublist and from its connection's sid map.
    pub fn remove_subscription(&self, sub: &Arc<Subscription>) {
        self.unsubscribe(sub);
        if let Some(client) = sub.client() {
            let mut subs = client.subs.lock().unwrap_or_else(|p| p.into_inner());
            if subs.get(&sub.sid).is_some_and(|s| Arc::ptr_eq(s, sub)) {
                subs.remove(&sub.sid);
            }
        }
    }

    /// (subscriptions held, inserts, removes), read under the lock so they agree.
    pub fn sublist_stats(&self) -> (usize, u64, u64) {
        let list = self.sublist.read().unwrap_or_else(|p| p.into_inner());
        let (inserts, removes) = list.churn();
        (list.len(), inserts, removes)
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
        cache.fill(&list, subject)
    }

    /// Whether anything subscribes to `subject` (a push consumer delivers only while its
    /// deliver subject has interest). Not cached: deliver subjects are per consumer.
    pub fn has_interest(&self, subject: &[u8]) -> bool {
        let matches = {
            let list = self.sublist.read().unwrap_or_else(|p| p.into_inner());
            list.matches(subject)
        };
        let interested = |sub: &Arc<Subscription>| match &sub.owner {
            Owner::Forward(forward) => forward.has_interest(subject),
            Owner::Client(_) | Owner::Internal(_) | Owner::Route(_) => !excludes(sub, subject),
        };
        matches.plain.iter().any(interested)
            || matches
                .queues
                .iter()
                .any(|group| group.members.iter().any(interested))
    }

    /// Delivers `msg` to every matching subscription (one member per queue group). Returns
    /// how many subscriptions took it.
    pub fn route(
        &self,
        from: &Publisher<'_>,
        msg: &Publish,
        cache: &mut MatchCache<Subscription>,
        out: &mut Deliveries,
        rng: &mut u64,
    ) -> usize {
        self.route_as(from, &msg.subject, msg, cache, out, rng)
    }

    /// Routes by `route_subject` while delivering `msg` under its own subject: a JetStream
    /// delivery goes to the consumer's inbox or deliver subject but shows the stream subject.
    pub fn route_as(
        &self,
        from: &Publisher<'_>,
        route_subject: &[u8],
        msg: &Publish,
        cache: &mut MatchCache<Subscription>,
        out: &mut Deliveries,
        rng: &mut u64,
    ) -> usize {
        let matches = self.lookup(route_subject, cache);
        let mut delivered = 0;
        // Taken out for this message (a forwarder routing on inside it gets a fresh one).
        let mut routes = std::mem::take(&mut out.routes);
        for sub in &matches.plain {
            if from.skips(sub) || excludes(sub, route_subject) || out_of_reach(sub, from.reach) {
                continue;
            }
            match &sub.owner {
                Owner::Route(remote) => routes.plain(&remote.link),
                _ => delivered += usize::from(self.deliver(sub, route_subject, msg, from, out)),
            }
        }
        for group in &matches.queues {
            if let Reach::Routed(named) = from.reach {
                if !named.iter().any(|q| q[..] == group.name[..]) {
                    continue;
                }
            }
            delivered +=
                self.deliver_to_group(from, group, route_subject, msg, out, &mut routes, rng);
        }
        if !routes.is_empty() {
            if let Some((account, _)) = self.cluster.get() {
                delivered += routes.send(account, route_subject, msg, &mut out.wake);
            }
            routes.clear();
        }
        out.routes = routes;
        delivered
    }

    /// Gives `msg` to one member of a queue group, picked at random: among this server's
    /// members and the other servers' (weighted by their member counts) for a message
    /// published here, as nats-server spreads it; a local member first for one that came from
    /// a route, another server's only when no local one can take it. Returns 1 if delivered
    /// here or to a route.
    #[allow(clippy::too_many_arguments)]
    fn deliver_to_group(
        &self,
        from: &Publisher<'_>,
        group: &crate::broker::QueueGroup<Subscription>,
        route_subject: &[u8],
        msg: &Publish,
        out: &mut Deliveries,
        routes: &mut RouteTargets,
        rng: &mut u64,
    ) -> usize {
        let n = group.members.len();
        // Only a router in a cluster can hold other servers' members, whose weights count.
        let start = match from.reach {
            Reach::Cluster if self.cluster.get().is_some() => {
                super::routes::weighted_start(&group.members, rng)
            }
            _ => (next_random(rng) % n as u64) as usize,
        };
        let mut fallback = None;
        for i in 0..n {
            let sub = &group.members[(start + i) % n];
            if let Owner::Route(remote) = &sub.owner {
                match from.reach {
                    Reach::Cluster => {
                        routes.queue(&remote.link, sub.queue.as_ref());
                        return 1;
                    }
                    Reach::Local => {}
                    Reach::Routed(_) => {
                        fallback.get_or_insert((remote, sub));
                    }
                }
                continue;
            }
            let closed = sub.client().is_some_and(|c| c.close_reason().is_some());
            if from.skips(sub) || closed {
                continue;
            }
            if self.deliver(sub, route_subject, msg, from, out) {
                return 1;
            }
        }
        match fallback {
            Some((remote, sub)) => {
                routes.queue(&remote.link, sub.queue.as_ref());
                1
            }
            None => 0,
        }
    }

    /// Queues `msg` for one subscription; false if it could not take it.
    fn deliver(
        &self,
        sub: &Arc<Subscription>,
        route_subject: &[u8],
        msg: &Publish,
        from: &Publisher<'_>,
        out: &mut Deliveries,
    ) -> bool {
        let last = match claim(sub) {
            Claim::Skip => return false,
            Claim::Deliver => false,
            Claim::DeliverLast => true,
        };
        let taken = match &sub.owner {
            Owner::Client(client) => deliver_to_client(client, sub, msg, out),
            Owner::Forward(forward) => forward.forward(route_subject, msg, from.reach, out),
            // Routes are collected by the caller and sent once per server.
            Owner::Route(_) => false,
            Owner::Internal(sink) => {
                let origin = match (sink.origin, from.client) {
                    (true, Some(client)) => Some(Box::new(Requester::of(client))),
                    _ => None,
                };
                let delivery = InternalDelivery {
                    tag: sink.tag,
                    msg: msg.clone(),
                    origin,
                };
                if let Some(taker) = &sink.inline {
                    taker.routed();
                }
                out.internal.push((sink.clone(), delivery));
                true
            }
        };
        if last {
            self.remove_subscription(sub);
        }
        taken
    }
}

fn deliver_to_client(
    client: &Arc<ClientHandle>,
    sub: &Subscription,
    msg: &Publish,
    out: &mut Deliveries,
) -> bool {
    if let Some(perms) = client.deny_deliveries.get() {
        if perms.subscribe.denies_delivery(&msg.subject) {
            return false;
        }
    }
    if let (Some(grants), Some(reply)) = (client.reply_grants.get(), &msg.reply) {
        grants.grant(reply);
    }
    let headers = if client.headers.load(Ordering::Relaxed) {
        msg.headers.as_deref()
    } else {
        None
    };
    let encoded = OutMsg {
        subject: &msg.subject,
        sid: &sub.sid,
        reply: msg.reply.as_deref(),
        headers,
        payload: &msg.payload,
    };
    if protocol_trace::enabled() {
        protocol_trace::delivered(client.stats.peer, client.id, &encoded);
    }
    match client.enqueue_msg(&encoded) {
        Enqueued::NeedsWake | Enqueued::Lagging => {
            out.wake.push(client.clone());
            true
        }
        Enqueued::Queued => true,
        Enqueued::Dropped => false,
    }
}

/// Consecutive internal deliveries for one channel, sent with one reservation of capacity
/// (and taken by the receiver with one release) instead of a semaphore round per message.
#[derive(Default)]
struct Run {
    sink: Option<InternalSink>,
    deliveries: Vec<InternalDelivery>,
}

impl Run {
    /// Adds a delivery, first sending the run it does not belong to.
    async fn push(&mut self, sink: InternalSink, delivery: InternalDelivery) {
        if self
            .sink
            .as_ref()
            .is_some_and(|current| !current.tx.same_channel(&sink.tx))
        {
            self.send().await;
        }
        if self.sink.is_none() {
            self.sink = Some(sink);
        }
        self.deliveries.push(delivery);
    }

    /// Sends the run in order, waiting for capacity. A closed channel means the subscriber
    /// is going away; its messages have no taker.
    async fn send(&mut self) {
        let Some(sink) = self.sink.take() else {
            return;
        };
        let most = sink.tx.max_capacity().max(1);
        while !self.deliveries.is_empty() {
            let n = self.deliveries.len().min(most);
            let Ok(permits) = sink.tx.reserve_many(n).await else {
                self.deliveries.clear();
                return;
            };
            for (permit, delivery) in permits.zip(self.deliveries.drain(..n)) {
                permit.send(delivery);
            }
        }
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

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn delivery(n: u64) -> InternalDelivery {
        InternalDelivery {
            tag: n,
            msg: Publish {
                subject: Bytes::from_static(b"s"),
                reply: None,
                headers: None,
                payload: Bytes::new(),
            },
            origin: None,
        }
    }

    fn sink(tx: &tokio::sync::mpsc::Sender<InternalDelivery>) -> InternalSink {
        InternalSink {
            tag: 0,
            tx: tx.clone(),
            exclude: &[],
            inline: None,
            origin: false,
        }
    }

    /// Runs longer than a channel's capacity go through in pieces, in order, and deliveries
    /// for two channels keep their order within each.
    #[tokio::test]
    async fn runs_keep_order_and_wait_for_capacity_in_pieces() {
        let (small_tx, mut small_rx) = tokio::sync::mpsc::channel::<InternalDelivery>(4);
        let (other_tx, mut other_rx) = tokio::sync::mpsc::channel(64);
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(d) = small_rx.recv().await {
                got.push(d.tag);
            }
            got
        });
        let mut out = Deliveries::default();
        for n in 0..10 {
            out.internal.push((sink(&small_tx), delivery(n)));
        }
        out.internal.push((sink(&other_tx), delivery(100)));
        for n in 10..13 {
            out.internal.push((sink(&small_tx), delivery(n)));
        }
        let flushed =
            tokio::time::timeout(std::time::Duration::from_secs(5), out.flush_internal()).await;
        assert!(
            flushed.is_ok(),
            "flush must not wait once the reader drains"
        );
        drop(small_tx);
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), reader)
            .await
            .expect("reader finishes")
            .expect("reader task");
        assert_eq!(got, (0..13).collect::<Vec<u64>>());
        assert_eq!(other_rx.try_recv().map(|d| d.tag).ok(), Some(100));
        assert!(out.internal.is_empty());
    }
}
