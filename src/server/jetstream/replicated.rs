//! A replicated (R>1) stream on this server: the replica's side of the stream's Raft group
//! (issue 20; `docs/clustering.md`).
//!
//! Every server of the group runs the stream, but only the one whose member leads the group
//! (and has applied everything committed before its term) takes publishes and answers the
//! stream's API. Its actor does not store a round's publishes: it hands them to the
//! proposer, which checks this server's storage limits, proposes them as one
//! [`RoundEntry`], and once the entry is committed and applied sends each publisher the
//! PubAck the apply produced. Every replica, the leader included, applies the entry in
//! [`StreamEntry::apply_replicated`]; a consumer (R1, see `docs/clustering.md`) is delivered
//! to by the apply on the server it was made on, which need not lead any more; only the
//! leader republishes. A follower answers direct gets from its own replica, as
//! nats-server's do.

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::actor::{self, after_stored, fitting, MAX_BATCH_MSGS};
use super::hooks::stream_subscriptions;
use super::replica_sync::SyncLink;
use super::{inline, lock, now_ns, JetStream, StreamEntry};
use crate::jetstream::api_types::PubAck;
use crate::jetstream::consumer::Consumer;
use crate::jetstream::replica::{Checkpoint, RoundEntry};
use crate::jetstream::replica_consumers::ConsumerOp;
use crate::jetstream::replica_machine::{decode_acks, ReplicaHost};
use crate::jetstream::replica_snapshot::StreamSnapshot;
use crate::jetstream::replica_stream_ops::{StreamOp, StreamOpOutcome};
use crate::jetstream::StreamConfig;
use crate::raft::types::{Command, JetlogRaft};
use crate::server::cluster_js::Removal;
use crate::server::internal::InternalClient;
use crate::server::outbound::InternalDelivery;
use crate::server::router::Router;

/// What the leader hands its proposer, waiting to be proposed.
pub type Proposals = mpsc::UnboundedReceiver<Proposal>;

/// One thing for the stream's group to order.
pub enum Proposal {
    /// A round's publishes (consecutive ones go in one entry).
    Publishes(Vec<InternalDelivery>),
    /// A change to the replicated consumers. Once it is committed and applied, `replies`
    /// (AckSync requests) are answered and `done` is told; if it is not, neither is.
    Consumers {
        op: ConsumerOp,
        replies: Vec<Bytes>,
        done: Option<oneshot::Sender<()>>,
    },
    /// A purge, message delete or new config; `done` is told what the apply here did.
    Stream {
        op: StreamOp,
        done: oneshot::Sender<StreamOpOutcome>,
    },
}

/// What a stream group's member needs of the stream it replicates.
pub struct Joined {
    /// The publishes the actor hands over, for `propose_rounds`.
    pub proposals: Proposals,
    /// Where the group's machine applies entries.
    pub host: EntryHost,
    /// Where the store stands (`rewind_store` brought it there at open).
    pub checkpoint: Checkpoint,
    /// What the stream's PubAcks say before their sequence.
    pub ack_prefix: String,
}

/// A stream's place for its group, empty for a stream that is not replicated.
pub struct ReplicaSlot {
    replicated: bool,
    group: OnceLock<Replication>,
}

struct Replication {
    /// Whether this server's member leads the group and has applied every entry before
    /// its term: only then does it take publishes and answer the stream's API.
    leading: AtomicBool,
    proposals: mpsc::UnboundedSender<Proposal>,
    /// How the replica reaches its peers to catch up, once its group has started.
    link: OnceLock<SyncLink>,
}

impl ReplicaSlot {
    pub fn new(replicated: bool) -> Self {
        Self {
            replicated,
            group: OnceLock::new(),
        }
    }

    pub fn is_replicated(&self) -> bool {
        self.replicated
    }

    /// Whether this replica leads its group (false for a stream that is not replicated).
    pub fn leading(&self) -> bool {
        self.group
            .get()
            .is_some_and(|g| g.leading.load(Ordering::Acquire))
    }

    /// What the actor stores itself of a round's publishes: all of them for a stream that
    /// is not replicated; none for a replica, whose leader proposes them instead (a
    /// follower has no subscription for them, so any it gets raced a change of leader and
    /// go unanswered, as nats-server leaves them: the publisher retries).
    pub(super) fn take(&self, publishes: Vec<InternalDelivery>) -> Vec<InternalDelivery> {
        if !self.replicated || publishes.is_empty() {
            return publishes;
        }
        match self.group.get() {
            Some(g) if g.leading.load(Ordering::Acquire) => {
                let _ = g.proposals.send(Proposal::Publishes(publishes));
            }
            _ => tracing::debug!("publishes reached a replica that does not lead its group"),
        }
        Vec::new()
    }

    fn set_link(&self, link: SyncLink) {
        if let Some(g) = self.group.get() {
            let _ = g.link.set(link);
        }
    }

    pub(super) fn link(&self) -> Option<&SyncLink> {
        self.group.get().and_then(|g| g.link.get())
    }

    /// Hands `proposal` to the proposer while this replica leads its group; false (and
    /// the proposal dropped) when it does not.
    pub(super) fn propose(&self, proposal: Proposal) -> bool {
        match self.group.get() {
            Some(g) if g.leading.load(Ordering::Acquire) => g.proposals.send(proposal).is_ok(),
            _ => false,
        }
    }
}

impl StreamEntry {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Gives the replica its way to its peers, once its group has started.
    pub fn set_sync_link(&self, link: SyncLink) {
        self.replica.set_link(link);
    }
}

impl JetStream {
    pub fn account_name(&self) -> &str {
        &self.account_name
    }

    /// The account's router, which the stream's answers go through.
    pub fn router(&self) -> &Arc<Router> {
        &self.router
    }

    /// The replicated streams this server holds a replica of; at start, once all have
    /// opened (waited for, bounded).
    pub fn replicated_streams(&self) -> Vec<Arc<StreamEntry>> {
        let mut all = self.streams();
        all.retain(|e| e.replica.is_replicated());
        all
    }

    /// Whether a stream with `config` is replicated here: in a cluster, with more than one
    /// replica.
    pub(super) fn replicates(&self, config: &StreamConfig) -> bool {
        self.is_clustered() && config.num_replicas > 1
    }

    /// (Re)creates a stream's subscriptions from its current config; a replica that does not
    /// lead takes no publishes.
    pub(super) fn resubscribe(&self, entry: &Arc<StreamEntry>) {
        let client = InternalClient::new(self.router.clone());
        let mut subs = lock(&entry.subs);
        for sub in subs.drain(..) {
            client.unsubscribe(&sub);
        }
        let config = entry.lock().config().clone();
        let inline = entry
            .inline_publish
            .then(|| inline::InlinePublish::taker(entry));
        let capture = !entry.replica.is_replicated() || entry.replica.leading();
        *subs = stream_subscriptions(&client, &config, &entry.tx, inline, capture);
        entry.mirror_direct_joined.store(false, Ordering::Relaxed);
    }

    /// Joins a replicated stream to its group: what the group's member needs of it. `None`
    /// if the stream is not replicated or already joined.
    pub fn join_group(&self, entry: &Arc<StreamEntry>) -> Option<Joined> {
        if !entry.replica.is_replicated() {
            return None;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let joined = Replication {
            leading: AtomicBool::new(false),
            proposals: tx,
            link: OnceLock::new(),
        };
        entry.replica.group.set(joined).ok()?;
        let checkpoint = entry.lock().log().applied().unwrap_or_default();
        Some(Joined {
            proposals: rx,
            host: EntryHost(
                Arc::downgrade(entry),
                self.me.get().cloned().unwrap_or_default(),
            ),
            checkpoint,
            ack_prefix: entry.pub_ack_prefix.clone(),
        })
    }

    /// The answer to the create of a replicated stream (`kind`: or to the update that made
    /// it replicated), sent by the replica that first leads its group (as nats-server's
    /// stream leader answers it), with the group's state.
    pub fn created_answer(&self, entry: &StreamEntry, kind: &'static str) -> Bytes {
        let info = super::api::changed_stream_info(self, entry);
        Bytes::from(super::api::encode(kind, info).0)
    }

    /// This server's member began or ceased to lead the stream's group.
    pub fn set_leading(&self, entry: &Arc<StreamEntry>, leading: bool) {
        let Some(group) = entry.replica.group.get() else {
            return;
        };
        if group.leading.swap(leading, Ordering::AcqRel) != leading {
            if leading {
                tracing::info!(
                    "JetStream cluster new stream leader for '{} > {}'",
                    self.account_name,
                    entry.name
                );
                self.activate_consumers(entry);
                self.reconcile_config(entry);
                if let Some(cluster) = self.cluster() {
                    cluster.reconcile_membership(&self.account_name, &entry.name, Removal::No);
                }
            } else {
                self.deactivate_consumers(entry);
            }
            self.resubscribe(entry);
        }
    }
}

/// A replica's stream as its group's machine reaches it, and the account's JetStream
/// (a new config changes what the account's streams subscribe to).
pub struct EntryHost(Weak<StreamEntry>, Weak<JetStream>);

impl EntryHost {
    /// Answers a peer's catch-up request (see `replica_sync`).
    pub fn sync_answerer(&self) -> impl Fn(&[u8]) -> Bytes + Send + Sync + 'static {
        let entry = self.0.clone();
        move |body| tokio::task::block_in_place(|| super::replica_sync::answer_sync(&entry, body))
    }
}

impl ReplicaHost for EntryHost {
    fn apply_round(&self, index: u64, round: &RoundEntry) -> Vec<PubAck> {
        let Some(entry) = self.0.upgrade() else {
            return Vec::new();
        };
        // The apply writes and fsyncs: not on a runtime worker's own time.
        tokio::task::block_in_place(|| entry.apply_replicated(index, round))
    }

    fn apply_consumers(&self, index: u64, op: &ConsumerOp) {
        if let Some(entry) = self.0.upgrade() {
            tokio::task::block_in_place(|| entry.apply_consumer_op(index, op));
        }
    }

    fn apply_stream_op(&self, index: u64, op: &StreamOp) -> StreamOpOutcome {
        match (self.0.upgrade(), self.1.upgrade()) {
            (Some(entry), Some(js)) => {
                tokio::task::block_in_place(|| js.apply_stream_op(&entry, index, op))
            }
            _ => StreamOpOutcome::Failed,
        }
    }

    fn snapshot(&self) -> Result<StreamSnapshot, String> {
        super::replica_sync::snapshot(&self.0)
    }

    fn catch_up(
        &self,
        index: u64,
        snapshot: StreamSnapshot,
    ) -> futures::future::BoxFuture<'static, Result<(), String>> {
        super::replica_sync::catch_up(self.0.clone(), self.1.clone(), index, snapshot)
    }
}

impl StreamEntry {
    /// Applies one committed entry to this replica (see `Stream::apply_round`); the
    /// consumers that live here then deliver what it stored.
    fn apply_replicated(&self, index: u64, round: &RoundEntry) -> Vec<PubAck> {
        let leading = self.replica.leading();
        let mut state = self.actor_state();
        let client = &mut state.client;
        let interest = |c: &Consumer| {
            c.config
                .deliver_subject
                .as_deref()
                .is_some_and(|s| client.has_interest(s))
        };
        let mut actions = Vec::new();
        let (acks, republished) = {
            let mut stream = self.lock();
            let before = stream.log().msgs();
            let (acks, _) = stream.apply_round(index, round);
            let subjects = round.publishes.iter().map(|p| &p.subject);
            after_stored(
                &mut stream,
                subjects,
                &acks,
                before,
                round.now_ns,
                &interest,
                &mut actions,
            );
            self.account(&stream);
            actions.extend(stream.take_advisories());
            (acks, stream.take_republished())
        };
        // Republished copies go out once, from the leader; consumers' deliveries from the
        // server each consumer lives on, which may have stopped leading since it was made.
        if leading {
            for copy in republished {
                client.queue_publish(copy.subject, Some(copy.headers), copy.payload);
            }
        }
        for action in actions {
            actor::perform(action, client);
        }
        client.flush();
        acks
    }
}

/// Entries a stream's leader has proposed and not yet heard back about: enough to keep the
/// group busy while one entry is flushed and replicated, few enough that a stalled group
/// pushes back on the actor (and so on the publishers) soon.
pub const MAX_ROUNDS_IN_FLIGHT: usize = 8;

/// Where openraft tells how a proposed entry came out.
type Applied =
    <<JetlogRaft as openraft::RaftTypeConfig>::Responder as openraft::raft::responder::Responder<
        JetlogRaft,
    >>::Receiver;

/// A proposed entry waiting to be applied.
struct InFlight {
    applied: Applied,
    waiter: Waiter,
}

/// Who waits for a proposed entry.
enum Waiter {
    /// A round's publishers: each publish's reply subject, in the entry's order.
    Publishers {
        replies: Vec<Option<Bytes>>,
        no_ack: bool,
    },
    /// AckSync requests and the API request that proposed a consumer change.
    Consumers {
        replies: Vec<Bytes>,
        done: Option<oneshot::Sender<()>>,
    },
    /// The API request that proposed a stream change.
    Stream(oneshot::Sender<StreamOpOutcome>),
}

/// Proposes what the leader hands over, one entry per batch of publishes and one per
/// consumer change, in the order handed over, while this server leads, with up to
/// [`MAX_ROUNDS_IN_FLIGHT`] entries in flight (openraft keeps them in order); a second task
/// answers each waiter once its entry is applied. Ends when the stream stops.
pub async fn propose_rounds(
    entry: Weak<StreamEntry>,
    raft: openraft::Raft<JetlogRaft>,
    mut proposals: Proposals,
    router: Arc<Router>,
) {
    let (in_flight, waiting) = mpsc::channel(MAX_ROUNDS_IN_FLIGHT);
    tokio::spawn(answer_rounds(waiting, router.clone()));
    // A consumer change met while gathering publishes: proposed after them.
    let mut next: Option<Proposal> = None;
    loop {
        let proposal = match next.take() {
            Some(p) => p,
            None => match proposals.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        let (command, waiter) = match proposal {
            Proposal::Consumers { op, replies, done } => {
                (op.encode(), Waiter::Consumers { replies, done })
            }
            Proposal::Stream { op, done } => (op.encode(), Waiter::Stream(done)),
            Proposal::Publishes(mut batch) => {
                while batch.len() < MAX_BATCH_MSGS {
                    match proposals.try_recv() {
                        Ok(Proposal::Publishes(more)) => batch.extend(more),
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                match round_of(&entry, batch, &router).await {
                    Some(round) => round,
                    None => continue,
                }
            }
        };
        match raft.client_write_ff(Command(command)).await {
            Ok(applied) => {
                if in_flight.send(InFlight { applied, waiter }).await.is_err() {
                    return;
                }
            }
            Err(e) => tracing::debug!("replicated stream entry not proposed: {e}"),
        }
    }
}

/// The entry for a batch of publishes, after refusing those this server's storage limits
/// have no room for (checked here, never by the apply); `None` if none is left, or the
/// stream has stopped.
async fn round_of(
    entry: &Weak<StreamEntry>,
    mut batch: Vec<InternalDelivery>,
    router: &Arc<Router>,
) -> Option<(Vec<u8>, Waiter)> {
    let stream_entry = entry.upgrade()?;
    let (fit, scope, no_ack) = {
        let stream = stream_entry.lock();
        let incoming: Vec<_> = batch.iter().map(|d| &d.msg).collect();
        let (fit, scope) = fitting(&stream_entry, &stream, &incoming);
        (fit, scope, stream.config().no_ack)
    };
    let prefix = stream_entry.pub_ack_prefix.clone();
    drop(stream_entry);
    let refused = batch.split_off(fit);
    if !no_ack {
        let mut replies: Vec<(Bytes, Bytes)> = Vec::new();
        for delivery in refused {
            if let Some(reply) = delivery.msg.reply {
                let mut body = bytes::BytesMut::new();
                PubAck::Failed(scope.exceeded()).write_json(&mut body, &prefix);
                replies.push((reply, body.freeze()));
            }
        }
        send_all(router, replies).await;
    }
    if batch.is_empty() {
        return None;
    }
    let round = RoundEntry {
        now_ns: now_ns(),
        publishes: batch.iter().map(|d| d.msg.clone()).collect(),
    };
    let replies = batch.into_iter().map(|d| d.msg.reply).collect();
    Some((round.encode(), Waiter::Publishers { replies, no_ack }))
}

/// Answers the waiters of each proposed entry, in order, once it is applied.
async fn answer_rounds(mut waiting: mpsc::Receiver<InFlight>, router: Arc<Router>) {
    while let Some(round) = waiting.recv().await {
        let response = match round.applied.await {
            Ok(Ok(response)) => response,
            // No longer the leader, or shutting down: the publishers time out and retry
            // (a message id keeps a retry from being stored twice), as do AckSyncs.
            Ok(Err(e)) => {
                tracing::debug!("replicated stream entry not committed: {e}");
                continue;
            }
            Err(_) => {
                tracing::debug!("replicated stream entry: the group stopped");
                continue;
            }
        };
        match round.waiter {
            Waiter::Publishers { no_ack: true, .. } => {}
            Waiter::Publishers { replies, .. } => {
                let acks = decode_acks(&response.data.0).unwrap_or_default();
                let replies = replies
                    .into_iter()
                    .zip(acks)
                    .filter_map(|(reply, ack)| reply.filter(|_| !ack.is_empty()).map(|r| (r, ack)))
                    .collect();
                send_all(&router, replies).await;
            }
            Waiter::Consumers { replies, done } => {
                let replies = replies.into_iter().map(|r| (r, Bytes::new())).collect();
                send_all(&router, replies).await;
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
            Waiter::Stream(done) => {
                let _ = done.send(StreamOpOutcome::decode(&response.data.0));
            }
        }
    }
}

async fn send_all(router: &Arc<Router>, replies: Vec<(Bytes, Bytes)>) {
    if replies.is_empty() {
        return;
    }
    let mut client = InternalClient::deferred(router.clone());
    for (reply, body) in replies {
        client.queue_publish(reply, None, body);
    }
    client.flush();
    if client.has_outbox() {
        poll_fn(|cx| client.poll_outbox(cx)).await;
    }
}
