//! One registered route: the peer's identity, the outbound buffer its messages are encoded
//! into, and the subscriptions that stand in its accounts' routers for the peer's interest.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};

use crate::protocol::route::encode_message_parts;
use crate::protocol::Publish;
use crate::server::outbound::{ClientHandle, Enqueued, Owner, Subscription};
use crate::server::router::Router;

/// (account, subject, queue group): one line of a peer's interest.
pub type InterestKey = (Bytes, Bytes, Option<Bytes>);

/// A peer's interest line as it stands in a router: the router, and the subscription in it.
type Placed = (Arc<Router>, Arc<Subscription>);

/// A peer's interest in one subject of one account, as it stands in that account's router.
pub struct RemoteInterest {
    pub link: Arc<RouteLink>,
    /// For a queue group: how many members the peer has, which weighs how often the group's
    /// messages go there.
    pub weight: AtomicU32,
}

/// A route once both sides' INFO has been read.
pub struct RouteLink {
    /// The connection id (shared with clients' ids, as nats-server's `rid`).
    pub id: u64,
    pub remote_id: String,
    pub remote_name: String,
    pub handle: Arc<ClientHandle>,
    /// Whether the peer takes `HMSG`; headers are dropped towards one that does not.
    pub headers: bool,
    /// Whether this server dialled the route, and whether from its configuration.
    pub solicited: bool,
    pub configured: bool,
    /// The peer's client URLs, told to this server's clients.
    pub connect_urls: Vec<String>,
    /// The peer's `INFO` as received, passed on to the other routes so they dial the peer.
    pub gossip: Mutex<Option<Bytes>>,
    pub started: std::time::SystemTime,
    /// The peer said it is in lame duck mode (its URLs are no longer advertised).
    pub lame_duck: std::sync::atomic::AtomicBool,
    pub in_msgs: AtomicU64,
    pub in_bytes: AtomicU64,
    /// The peer's interest, by line, with the router each subscription is in.
    remote: Mutex<HashMap<InterestKey, Placed>>,
}

impl RouteLink {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: u64,
        remote_id: String,
        remote_name: String,
        handle: Arc<ClientHandle>,
        headers: bool,
        solicited: bool,
        configured: bool,
        connect_urls: Vec<String>,
    ) -> Self {
        Self {
            id,
            remote_id,
            remote_name,
            handle,
            headers,
            solicited,
            configured,
            connect_urls,
            gossip: Mutex::new(None),
            started: std::time::SystemTime::now(),
            lame_duck: std::sync::atomic::AtomicBool::new(false),
            in_msgs: AtomicU64::new(0),
            in_bytes: AtomicU64::new(0),
            remote: Mutex::new(HashMap::new()),
        }
    }

    /// Encodes `msg` for the peer as `RMSG`/`HMSG` under `subject`, naming the queue groups
    /// it is to serve.
    pub fn send(
        &self,
        account: &[u8],
        subject: &[u8],
        msg: &Publish,
        queues: &[Bytes],
    ) -> Enqueued {
        let headers = msg.headers.as_deref().filter(|_| self.headers);
        let len = 64
            + account.len()
            + subject.len()
            + msg.reply.as_ref().map_or(0, Bytes::len)
            + queues.iter().map(|q| q.len() + 1).sum::<usize>()
            + headers.map_or(0, <[u8]>::len)
            + msg.payload.len();
        let size = headers.map_or(0, <[u8]>::len) + msg.payload.len();
        self.handle
            .enqueue_with(len, Some(size), |out: &mut BytesMut| {
                encode_message_parts(
                    out,
                    Some(account),
                    subject,
                    msg.reply.as_deref(),
                    queues,
                    headers,
                    &msg.payload,
                )
            })
    }

    /// The peer announced interest (`RS+`): adds it to `router`, or updates a queue group's
    /// weight.
    pub fn add_interest(self: &Arc<Self>, router: &Arc<Router>, key: InterestKey, weight: u32) {
        let mut remote = lock(&self.remote);
        if let Some((_, sub)) = remote.get(&key) {
            if let Owner::Route(interest) = &sub.owner {
                interest.weight.store(weight.max(1), Ordering::Relaxed);
            }
            return;
        }
        let sub = Arc::new(Subscription {
            owner: Owner::Route(Arc::new(RemoteInterest {
                link: self.clone(),
                weight: AtomicU32::new(weight.max(1)),
            })),
            subject: key.1.clone(),
            queue: key.2.clone(),
            sid: Bytes::new(),
            max_msgs: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
        });
        router.subscribe(sub.clone());
        remote.insert(key, (router.clone(), sub));
    }

    /// The peer withdrew interest (`RS-`).
    pub fn remove_interest(&self, key: &InterestKey) {
        let removed = lock(&self.remote).remove(key);
        if let Some((router, sub)) = removed {
            router.unsubscribe(&sub);
        }
    }

    /// Removes every subscription the peer's interest put in the routers; called when the
    /// route closes (it also ends the cycle between the link and its subscriptions).
    pub fn remove_all_interest(&self) {
        let all: Vec<_> = lock(&self.remote).drain().map(|(_, v)| v).collect();
        for (router, sub) in all {
            router.unsubscribe(&sub);
        }
    }

    /// How many interest lines the peer holds here.
    pub fn interest_count(&self) -> usize {
        lock(&self.remote).len()
    }

    /// The peer's interest subjects, for `/routez?subs=1`.
    pub fn interest_subjects(&self) -> Vec<String> {
        let mut subjects: Vec<String> = lock(&self.remote)
            .keys()
            .map(|(_, subject, queue)| match queue {
                Some(q) => format!(
                    "{} {}",
                    String::from_utf8_lossy(subject),
                    String::from_utf8_lossy(q)
                ),
                None => String::from_utf8_lossy(subject).into_owned(),
            })
            .collect();
        subjects.sort();
        subjects
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
