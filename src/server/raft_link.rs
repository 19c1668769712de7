//! Raft RPCs through the server's own router, in the system account: how the Raft groups this
//! server runs reach their peers on the other servers without a connection of their own.
//!
//! A request goes out as an internal publish on `$JLR.<group>.<node>.<op>` with a reply
//! subject under this server's own inbox prefix; the route carries it to the server whose
//! member subscribes that node's subjects, and the answer comes back to the inbox, where a
//! table of pending requests hands it to the waiting caller. Being in the system account,
//! none of it is visible to, or can be forged by, a client of an ordinary account.

use std::collections::HashMap;
use std::future::poll_fn;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use openraft::Raft;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::internal::{self, InternalClient};
use super::outbound::{InlineTaker, InternalDelivery, InternalQueue, InternalSink, Subscription};
use super::router::Router;
use super::Server;
use crate::raft::network::{answer, node_subjects, LeaderHeard, Transport, TransportError};
use crate::raft::types::{JetlogRaft, NodeId};
use crate::server::jetstream::SYNC_OP;

/// Replies to a transport's requests arrive under `$JLR.R.<random token>.`.
const INBOX_PREFIX: &str = "$JLR.R";

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A [`Transport`] over the server's router. Cheap to clone; the inbox is unsubscribed when
/// the last clone goes.
#[derive(Clone)]
pub struct RouterTransport {
    inner: Arc<Inner>,
}

struct Inner {
    router: Arc<Router>,
    prefix: String,
    pending: Arc<Mutex<HashMap<u64, oneshot::Sender<Bytes>>>>,
    next: AtomicU64,
    inbox: Arc<Subscription>,
    reader: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        InternalClient::new(self.router.clone()).unsubscribe(&self.inbox);
        self.reader.abort();
    }
}

impl Server {
    /// A transport for this server's Raft groups, in its system account. Must be called on
    /// the async runtime (it starts the task that reads the replies).
    pub fn raft_transport(&self) -> Option<RouterTransport> {
        let accounts = &self.state.accounts;
        let system = accounts.get(accounts.system_account())?;
        Some(RouterTransport::start(system.router.clone()))
    }

    /// Answers the RPCs addressed to node `me` of `group` through this server's router until
    /// the returned task is aborted.
    pub fn serve_raft(
        &self,
        group: &str,
        me: NodeId,
        raft: Raft<JetlogRaft>,
    ) -> Option<JoinHandle<()>> {
        let accounts = &self.state.accounts;
        let system = accounts.get(accounts.system_account())?;
        Some(serve(system.router.clone(), group, me, raft, (None, None)))
    }
}

impl RouterTransport {
    fn start(router: Arc<Router>) -> Self {
        // A fresh random token per transport: several may share a server.
        let prefix = format!("{INBOX_PREFIX}.{}", super::new_token());
        let pending: Arc<Mutex<HashMap<u64, oneshot::Sender<Bytes>>>> = Arc::default();
        let taker = Arc::new(ReplyTaker(pending.clone()));
        let (inbox, mut rx) = subscribe_with(&router, &format!("{prefix}.*"), Some(taker.clone()));
        // What the router could not hand over inline (published where there is no runtime).
        let reader = tokio::spawn(async move {
            while let Some(delivery) = rx.recv().await {
                taker.hand_over(delivery);
            }
        });
        RouterTransport {
            inner: Arc::new(Inner {
                router,
                prefix,
                pending,
                next: AtomicU64::new(1),
                inbox,
                reader,
            }),
        }
    }
}

/// Hands each reply to the request waiting for it, on the thread that routed it: an RPC's
/// answer then wakes its caller directly instead of passing through a reading task (two
/// context switches on every AppendEntries round trip).
struct ReplyTaker(Arc<Mutex<HashMap<u64, oneshot::Sender<Bytes>>>>);

impl ReplyTaker {
    fn hand_over(&self, delivery: InternalDelivery) {
        let id = std::str::from_utf8(&delivery.msg.subject)
            .ok()
            .and_then(|s| s.rsplit('.').next())
            .and_then(|token| token.parse::<u64>().ok());
        // A reply nobody waits for any more (the request timed out) is dropped.
        if let Some(caller) = id.and_then(|id| lock(&self.0).remove(&id)) {
            let _ = caller.send(delivery.msg.payload);
        }
    }
}

impl InlineTaker for ReplyTaker {
    fn routed(&self) {}

    fn try_take(
        &self,
        delivery: InternalDelivery,
        _spill: &mut InternalQueue,
    ) -> Option<InternalDelivery> {
        self.hand_over(delivery);
        None
    }
}

/// Starts the task that answers each request of a group's member, on the thread that routed
/// it, saving the hand-over to the serving loop. Declines (the loop gets it) where there is
/// no runtime to start a task on.
struct RequestTaker {
    raft: Raft<JetlogRaft>,
    router: Arc<Router>,
    sync: Option<SyncAnswer>,
    heard: Option<Arc<LeaderHeard>>,
}

impl InlineTaker for RequestTaker {
    fn routed(&self) {}

    fn try_take(
        &self,
        delivery: InternalDelivery,
        _spill: &mut InternalQueue,
    ) -> Option<InternalDelivery> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Some(delivery);
        };
        runtime.spawn(answer_request(
            self.raft.clone(),
            self.router.clone(),
            (self.sync.clone(), self.heard.clone()),
            delivery,
        ));
        None
    }
}

/// An internal subscription to `subject` and the channel its messages arrive on.
pub(super) fn subscribe(
    router: &Arc<Router>,
    subject: &str,
) -> (Arc<Subscription>, mpsc::Receiver<InternalDelivery>) {
    subscribe_with(router, subject, None)
}

fn subscribe_with(
    router: &Arc<Router>,
    subject: &str,
    inline: Option<Arc<dyn InlineTaker>>,
) -> (Arc<Subscription>, mpsc::Receiver<InternalDelivery>) {
    let (tx, rx) = internal::channel();
    let sink = InternalSink {
        tag: 0,
        tx,
        exclude: &[],
        inline,
        origin: false,
    };
    let sub = InternalClient::new(router.clone()).subscribe(subject, None, sink);
    (sub, rx)
}

/// Publishes one message from an async task: the client never blocks, and what an internal
/// subscriber's full channel cannot take yet is waited for here. Returns how many took it.
pub(super) async fn publish(
    router: &Arc<Router>,
    subject: Bytes,
    reply: Option<Bytes>,
    body: Bytes,
) -> usize {
    let mut client = InternalClient::deferred(router.clone());
    let taken = client.queue_publish_with_reply(subject, reply, None, body);
    client.flush();
    if client.has_outbox() {
        poll_fn(|cx| client.poll_outbox(cx)).await;
    }
    taken
}

impl Transport for RouterTransport {
    async fn request(
        &self,
        subject: String,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, TransportError> {
        let inner = &self.inner;
        let id = inner.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&inner.pending).insert(id, tx);
        let reply = Bytes::from(format!("{}.{id}", inner.prefix));
        let taken = publish(
            &inner.router,
            Bytes::from(subject.clone()),
            Some(reply),
            body,
        )
        .await;
        if taken == 0 {
            lock(&inner.pending).remove(&id);
            return Err(TransportError::NoResponders(subject));
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(TransportError::Failed("transport closed".into())),
            Err(_) => {
                lock(&inner.pending).remove(&id);
                Err(TransportError::TimedOut(timeout))
            }
        }
    }
}

/// What answers a group's requests that are not openraft's: a stream replica's catch-up
/// pages (`SYNC`, see `jetstream::replica_sync`).
pub type SyncAnswer = Arc<dyn Fn(&[u8]) -> Bytes + Send + Sync>;

/// Subscribes node `me`'s subjects of `group` and answers each request on its own task, so
/// a slow snapshot install does not hold up votes and heartbeats.
pub(super) fn serve(
    router: Arc<Router>,
    group: &str,
    me: NodeId,
    raft: Raft<JetlogRaft>,
    (sync, heard): (Option<SyncAnswer>, Option<Arc<LeaderHeard>>),
) -> JoinHandle<()> {
    let taker = RequestTaker {
        raft: raft.clone(),
        router: router.clone(),
        sync: sync.clone(),
        heard: heard.clone(),
    };
    let (sub, mut rx) = subscribe_with(&router, &node_subjects(group, me), Some(Arc::new(taker)));
    tokio::spawn(async move {
        let _unsubscribe = Unsubscribe(router.clone(), sub);
        while let Some(delivery) = rx.recv().await {
            let (raft, router) = (raft.clone(), router.clone());
            let extra = (sync.clone(), heard.clone());
            tokio::spawn(answer_request(raft, router, extra, delivery));
        }
    })
}

/// Answers one request to a group's member on its reply subject.
async fn answer_request(
    raft: Raft<JetlogRaft>,
    router: Arc<Router>,
    (sync, heard): (Option<SyncAnswer>, Option<Arc<LeaderHeard>>),
    delivery: InternalDelivery,
) {
    let Some(reply) = delivery.msg.reply.clone() else {
        return;
    };
    let subject = String::from_utf8_lossy(&delivery.msg.subject).into_owned();
    let op = subject.rsplit('.').next().unwrap_or_default();
    if let Some(sync) = sync.filter(|_| op == SYNC_OP) {
        publish(&router, reply, None, sync(&delivery.msg.payload)).await;
        return;
    }
    match answer(&raft, op, &delivery.msg.payload, heard.as_deref()).await {
        Ok(body) => {
            publish(&router, reply, None, body).await;
        }
        Err(e) => tracing::warn!("raft rpc {subject}: {e}"),
    }
}

/// Removes a subscription when dropped (the serving task ends or is aborted).
pub(super) struct Unsubscribe(pub Arc<Router>, pub Arc<Subscription>);

impl Drop for Unsubscribe {
    fn drop(&mut self) {
        InternalClient::new(self.0.clone()).unsubscribe(&self.1);
    }
}
