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
    /// The peer runs JetStream (its INFO said so).
    pub jetstream: std::sync::atomic::AtomicBool,
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
            jetstream: std::sync::atomic::AtomicBool::new(false),
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
        let reply = deliver_reply(subject, msg);
        let len = 64
            + account.len()
            + subject.len()
            + reply.as_ref().map_or(0, |r| r.len())
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
                    reply.as_deref(),
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

/// The reply to send on a route for `msg` routed on `subject`. A JetStream delivery is
/// routed on its consumer's deliver subject but shown with its stream subject; as
/// nats-server does, the shown subject travels after an `@` at the end of the `$JS.ACK`
/// reply, and the receiving server takes it back off ([`split_deliver_reply`]).
fn deliver_reply<'a>(subject: &[u8], msg: &'a Publish) -> Option<std::borrow::Cow<'a, [u8]>> {
    let reply = msg.reply.as_deref()?;
    if subject == &msg.subject[..]
        || !reply.starts_with(JS_ACK_PREFIX)
        || js_ack_deliver_at(reply).is_some()
    {
        return Some(std::borrow::Cow::Borrowed(reply));
    }
    let mut encoded = Vec::with_capacity(reply.len() + 1 + msg.subject.len());
    encoded.extend_from_slice(reply);
    encoded.push(b'@');
    encoded.extend_from_slice(&msg.subject);
    Some(std::borrow::Cow::Owned(encoded))
}

const JS_ACK_PREFIX: &[u8] = b"$JS.ACK.";

/// Where the `@` of a `$JS.ACK.<8 tokens>@<subject>` reply is: the first `@` after the
/// eighth dot, as stream, consumer and subject tokens may hold `@` themselves.
fn js_ack_deliver_at(reply: &[u8]) -> Option<usize> {
    if !reply.starts_with(JS_ACK_PREFIX) {
        return None;
    }
    let mut dots = 0;
    for (i, b) in reply.iter().enumerate() {
        match b {
            b'.' => dots += 1,
            b'@' if dots >= 8 => return Some(i),
            _ => {}
        }
    }
    None
}

/// A routed message's reply and the subject to show it with, when the sender put the
/// shown subject after the reply (see [`deliver_reply`]).
pub fn split_deliver_reply(reply: &Bytes) -> Option<(Bytes, Bytes)> {
    let at = js_ack_deliver_at(reply).filter(|at| at + 1 < reply.len())?;
    Some((reply.slice(..at), reply.slice(at + 1..)))
}

#[cfg(test)]
mod deliver_reply_tests {
    use super::*;

    #[test]
    fn a_delivery_carries_its_subject_after_the_ack_reply_and_gets_it_back() {
        let ack = "$JS.ACK.ORD.C1.1.5.2.1733000000000000000.0";
        let msg = Publish {
            subject: Bytes::from_static(b"ord.new"),
            reply: Some(Bytes::from(ack)),
            headers: None,
            payload: Bytes::new(),
        };
        let sent = deliver_reply(b"_INBOX.x", &msg).expect("reply");
        assert_eq!(&sent[..], format!("{ack}@ord.new").as_bytes());
        let (reply, shown) = split_deliver_reply(&Bytes::from(sent.to_vec())).expect("split");
        assert_eq!((&reply[..], &shown[..]), (ack.as_bytes(), &b"ord.new"[..]));
        // Routed on its own subject, or with another reply, nothing is added.
        assert_eq!(
            &deliver_reply(b"ord.new", &msg).expect("reply")[..],
            ack.as_bytes()
        );
        let inbox = Publish {
            reply: Some(Bytes::from_static(b"_INBOX.r")),
            ..msg.clone()
        };
        assert_eq!(
            &deliver_reply(b"_INBOX.x", &inbox).expect("reply")[..],
            b"_INBOX.r"
        );
        // An `@` before the eighth dot belongs to a token, not to the encoding.
        assert_eq!(
            split_deliver_reply(&Bytes::from_static(b"$JS.ACK.S@x.C.1.1.1.1.0")),
            None
        );
    }
}
