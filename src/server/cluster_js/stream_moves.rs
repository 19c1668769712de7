//! A file stream that goes from one replica to several, or back, or between two counts
//! above one (issue 20): its messages move with it. Between two counts above one the group
//! runs on: its leader adds or drops members as below, and the new config is an entry of
//! the group (`server::jetstream::replicated_stream_ops`).
//!
//! **Up** (R1 to R3). The meta leader keeps the stream's server first in the new placement
//! and adds others. That server reopens the stream as the only member of a new group whose
//! store is the group's from its start (`JetStream::reopen_stream`) and answers the update
//! once it leads. Leading, it makes the group's members the placement's
//! ([`change_members`]): it takes a snapshot and drops the log before it, so each new server,
//! added as a learner, is sent the snapshot and fetches the messages from a peer's store as
//! a replica that fell behind does (`server::jetstream::replica_sync`); then it makes them
//! voters. The new servers open an empty replica and wait to be contacted.
//!
//! **Down** (R3 to R1). The meta leader keeps the group's leader (when it knows it) first
//! and drops the others. The leader changes the group's members to that one server, a
//! change that commits only once the server holds every committed entry, then tells each
//! server it dropped to leave: that server stops its member, forgets the group's log and
//! deletes its replica. The server kept waits until it is the group's only member, leads,
//! and has applied every entry; then it leaves the group too, reopens the stream as a stream
//! of its own (its replicated consumers become R1 ones with their committed states) and
//! answers the update.
//!
//! A server that begins to lead a stream's group adds the placement's missing members, so a
//! move up whose leader lost office part-way is finished by the next one. Only a server
//! that has applied the meta change drops members (its catalog is then at least that new;
//! one that merely begins to lead might hold an older catalog than its group): the server
//! kept and the servers dropped each make the change themselves if they come to lead
//! before it is done, and a dropped server leaves once the group no longer counts it.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use openraft::{BasicNode, ServerState};

use super::super::ServerState as Server;
use super::stream_groups::{group_name, Answer};
use super::ClusterJs;
use crate::jetstream::api_types::from_go_json;
use crate::jetstream::assignments::StreamAssignment;
use crate::jetstream::StreamConfig;
use crate::raft::network::Transport;
use crate::raft::types::{node_id, JetlogRaft, NodeId};
use crate::server::jetstream::JetStream;
use crate::server::raft_link;

const LEAVE_PREFIX: &str = "$JLC.LEAVE";
/// How long one step of a membership change may take: the snapshot, a new member's
/// catch-up from it, the change's commit.
const MEMBERSHIP_STEP_WAIT: Duration = Duration::from_secs(120);
/// How long the leader keeps telling a dropped server to leave, and how long a dropped
/// server waits to be told before it leaves anyway.
const LEAVE_WAIT: Duration = Duration::from_secs(30);
/// How often the leader tells it meanwhile.
const LEAVE_EVERY: Duration = Duration::from_millis(500);
/// How long the server a stream goes down to waits to be its group's only member.
const SOLO_WAIT: Duration = Duration::from_secs(60);
/// How often a server whose part in a move waits on its group looks again, and makes the
/// change itself if it has come to lead the group.
const MOVE_CHECK_EVERY: Duration = Duration::from_secs(1);

/// What a committed update of a stream's placement is to this server.
pub(super) enum Role {
    /// Nothing to move here: the update goes on as any other's.
    None,
    /// A server added to the stream: it opens an empty replica, and does not answer.
    Joining,
    /// Handled here (the stream reopened, going solo, or leaving).
    Handled,
}

/// The subject on which a stream group's member `node` is told to leave the group.
pub(super) fn leave_subject(group: &str, node: NodeId) -> String {
    format!("{LEAVE_PREFIX}.{group}.{node:x}")
}

impl ClusterJs {
    /// Acts on a committed update of `stream` whose replicas changed (see the module's doc).
    pub(super) async fn on_moved(
        self: &Arc<Self>,
        state: &Server,
        stream: &StreamAssignment,
        reply: &Option<String>,
    ) -> Role {
        let Some(account) = state.accounts.get(&stream.account) else {
            return Role::None;
        };
        let Some(js) = account.jetstream.clone() else {
            return Role::None;
        };
        let Ok(config) = from_go_json::<StreamConfig>(stream.config.as_bytes()) else {
            return Role::None;
        };
        let placed_here = stream.placement.peers.contains(&self.me);
        let answer = reply.as_ref().map(|r| {
            (
                account.router.clone(),
                Bytes::from(r.clone()),
                "stream_update_response",
            )
        });
        let Some(entry) = js.stream(&stream.name) else {
            return match placed_here && config.num_replicas > 1 {
                true => Role::Joining,
                false => Role::None,
            };
        };
        let (account, name) = (stream.account.clone(), stream.name.clone());
        match (placed_here, entry.is_replicated(), config.num_replicas > 1) {
            (true, false, true) => {
                drop(entry);
                self.clone().grow(js, config, answer).await;
                Role::Handled
            }
            (true, true, false) => {
                self.reconcile_membership(&account, &name, Removal::Yes);
                let cluster = self.clone();
                self.spawn(async move { cluster.go_solo(js, config, answer).await });
                Role::Handled
            }
            // Its replicas stay, and may have another server among them (a peer replaced):
            // the update goes on as any other's.
            (true, true, true) => {
                self.reconcile_membership(&account, &name, Removal::Yes);
                Role::None
            }
            (false, true, _) => {
                self.reconcile_membership(&account, &name, Removal::Yes);
                let cluster = Arc::downgrade(self);
                self.spawn(leave_unless_told(cluster, Arc::downgrade(&js), name));
                Role::Handled
            }
            _ => Role::None,
        }
    }

    /// The stream's server, going up from one replica: reopens it as its new group's only
    /// member, which answers `answer` once it leads and then adds the other servers.
    async fn grow(
        self: Arc<Self>,
        js: Arc<JetStream>,
        config: StreamConfig,
        answer: Option<Answer>,
    ) {
        let name = config.name.clone();
        let reopening = js.clone();
        let reopened = tokio::task::spawn_blocking(move || reopening.reopen_stream(config)).await;
        let entry = match reopened {
            Ok(Ok(entry)) => entry,
            Ok(Err(e)) => {
                tracing::error!(stream = %name, "the stream could not be made replicated: {e}");
                return;
            }
            Err(_) => return,
        };
        let me = vec![self.me.clone()];
        self.start_stream_group(&js, &entry, Some(me), answer).await;
    }

    /// The one server a stream goes down to: once it alone is the group, leads it and has
    /// applied every entry, it leaves the group and reopens the stream as its own.
    async fn go_solo(
        self: Arc<Self>,
        js: Arc<JetStream>,
        config: StreamConfig,
        answer: Option<Answer>,
    ) {
        let (account, name) = (js.account_name().to_owned(), config.name.clone());
        let Some(raft) = self.stream_group_raft(&account, &name) else {
            return;
        };
        let me = self.me_id;
        let deadline = Instant::now() + SOLO_WAIT;
        loop {
            let alone = raft
                .wait(Some(MOVE_CHECK_EVERY))
                .metrics(
                    |m| {
                        let voters: BTreeSet<NodeId> =
                            m.membership_config.membership().voter_ids().collect();
                        voters == BTreeSet::from([me])
                            && m.state == ServerState::Leader
                            && m.last_applied.map(|l| l.index) == m.last_log_index
                    },
                    "the only member of the stream's group",
                )
                .await;
            if alone.is_ok() {
                break;
            }
            if Instant::now() >= deadline {
                tracing::error!(stream = %name, "the stream did not go down to one replica within {SOLO_WAIT:?}");
                return;
            }
            // Leading now, this server makes the change (the leader that began it may be gone).
            self.reconcile_membership(&account, &name, Removal::Yes);
        }
        // Its own from now on, even if this server stops before the stream is reopened: the
        // group's log goes next.
        let keeping = (js.clone(), config.clone());
        let kept = tokio::task::spawn_blocking(move || keeping.0.keep_config(&keeping.1)).await;
        if let Ok(Err(e)) = kept {
            tracing::error!(stream = %name, "the stream's new config was not recorded: {e}");
            return;
        }
        self.stop_stream_group(&account, &name, true).await;
        let reopening = js.clone();
        let reopened = tokio::task::spawn_blocking(move || reopening.reopen_stream(config)).await;
        match reopened {
            Ok(Ok(entry)) => {
                tracing::info!(stream = %name, "the stream runs with one replica, here");
                if let Some((router, reply, kind)) = answer {
                    let body = js.created_answer(&entry, kind);
                    raft_link::publish(&router, reply, None, body).await;
                }
            }
            Ok(Err(e)) => tracing::error!(stream = %name, "the stream could not be reopened: {e}"),
            Err(_) => {}
        }
    }

    /// On the leader of `stream`'s group: makes the group's voters the catalog's placement,
    /// in a task of its own (nothing happens on another member, or when they match, or
    /// while a change is under way, or while this server's catalog may be stale: its meta
    /// group has no leader it knows of).
    pub fn reconcile_membership(&self, account: &str, stream: &str, removal: Removal) {
        let Some((raft, changing)) = self.stream_group_change(account, stream) else {
            return;
        };
        if self.raft.metrics().borrow().current_leader.is_none() {
            return;
        }
        let peers = self
            .catalog()
            .stream(account, stream)
            .map(|s| s.placement.peers.clone())
            .unwrap_or_default();
        let want: BTreeSet<NodeId> = peers.iter().map(|p| node_id(p)).collect();
        let (transport, group, stream) = (
            self.proposer.clone(),
            group_name(account, stream),
            stream.to_owned(),
        );
        if changing.swap(true, Ordering::AcqRel) {
            return;
        }
        self.spawn(async move {
            let changed = {
                let _done = Changing(changing);
                change_members(&raft, &want, removal).await
            };
            match changed {
                Ok(dropped) => {
                    for node in dropped {
                        tell_to_leave(&transport, &group, node).await;
                    }
                }
                Err(e) => tracing::warn!(
                    stream,
                    "the stream's group did not take its placement's members: {e}"
                ),
            }
        });
    }

    /// This server's member of a stream's group is told to leave it: it does when the
    /// catalog no longer places the stream here (`true`: it leaves).
    pub(super) fn may_leave(&self, account: &str, stream: &str) -> bool {
        !self
            .catalog()
            .stream(account, stream)
            .is_some_and(|s| s.placement.peers.contains(&self.me))
    }
}

/// Clears a group's change-under-way flag however the change ends.
struct Changing(Arc<AtomicBool>);

impl Drop for Changing {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Whether a membership change may drop voters: only when the meta group's change that
/// placed the stream elsewhere is applied here, never when a server merely begins to lead
/// (its catalog could be older than its group's membership).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    Yes,
    No,
}

/// Makes the group's voters `want` when this member leads: new ones join as learners from
/// a snapshot taken now (a group made from a stream of one replica has no entries for
/// what its store held before), then the voters are replaced. The voters dropped.
async fn change_members(
    raft: &openraft::Raft<JetlogRaft>,
    want: &BTreeSet<NodeId>,
    removal: Removal,
) -> Result<Vec<NodeId>, String> {
    let metrics = raft.metrics().borrow().clone();
    let membership = metrics.membership_config.membership();
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    let joint = membership.get_joint_config().len() > 1;
    let drops = !voters.is_subset(want);
    if metrics.state != ServerState::Leader
        || want.is_empty()
        || *want == voters
        || joint
        || (drops && removal == Removal::No)
    {
        return Ok(Vec::new());
    }
    let added: Vec<NodeId> = want.difference(&voters).copied().collect();
    if !added.is_empty() {
        let applied = metrics.last_applied.map_or(0, |l| l.index);
        raft.trigger().snapshot().await.map_err(|e| e.to_string())?;
        let taken = raft
            .wait(Some(MEMBERSHIP_STEP_WAIT))
            .metrics(
                |m| m.snapshot.is_some_and(|s| s.index >= applied),
                "a snapshot for the new members",
            )
            .await
            .map_err(|e| e.to_string())?;
        let upto = taken.snapshot.map_or(0, |s| s.index);
        raft.trigger()
            .purge_log(upto)
            .await
            .map_err(|e| e.to_string())?;
        for node in added {
            let joined = raft.add_learner(node, BasicNode::default(), true);
            tokio::time::timeout(MEMBERSHIP_STEP_WAIT, joined)
                .await
                .map_err(|_| format!("member {node:x} did not catch up"))?
                .map_err(|e| e.to_string())?;
        }
    }
    let changed = raft.change_membership(want.clone(), false);
    tokio::time::timeout(MEMBERSHIP_STEP_WAIT, changed)
        .await
        .map_err(|_| "the change did not commit".to_string())?
        .map_err(|e| e.to_string())?;
    Ok(voters.difference(want).copied().collect())
}

/// Tells member `node` to leave `group`, until it says it does or [`LEAVE_WAIT`] passes
/// (it leaves then on its own).
async fn tell_to_leave(transport: &raft_link::RouterTransport, group: &str, node: NodeId) {
    let deadline = Instant::now() + LEAVE_WAIT;
    while Instant::now() < deadline {
        let told = transport
            .request(leave_subject(group, node), Bytes::new(), LEAVE_EVERY)
            .await;
        if told.is_ok_and(|answer| !answer.is_empty()) {
            return;
        }
        tokio::time::sleep(LEAVE_EVERY).await;
    }
}

/// A server the stream was dropped from, until it leaves: while it leads the group it
/// makes the change itself (the leader that began it may be gone); it leaves once the group
/// no longer counts it, or, when [`LEAVE_WAIT`] has passed, if it knows of no leader (it was
/// down while the stream moved, and nobody is left to tell it).
async fn leave_unless_told(cluster: Weak<ClusterJs>, js: Weak<JetStream>, stream: String) {
    let deadline = Instant::now() + LEAVE_WAIT;
    loop {
        tokio::time::sleep(MOVE_CHECK_EVERY).await;
        let (Some(cluster), Some(js)) = (cluster.upgrade(), js.upgrade()) else {
            return;
        };
        let account = js.account_name();
        let Some(raft) = cluster.stream_group_raft(account, &stream) else {
            return;
        };
        if !cluster.may_leave(account, &stream) {
            return;
        }
        let metrics = raft.metrics().borrow().clone();
        let mut voters = metrics.membership_config.membership().voter_ids();
        if !voters.any(|v| v == cluster.me_id) {
            return leave(&cluster, &js, &stream).await;
        }
        if metrics.state == ServerState::Leader {
            cluster.reconcile_membership(account, &stream, Removal::Yes);
        }
        if Instant::now() >= deadline {
            match metrics.current_leader {
                None => return leave(&cluster, &js, &stream).await,
                Some(_) => {
                    tracing::warn!(
                        stream,
                        "the stream's group still counts this server, which the stream left"
                    );
                    return;
                }
            }
        }
    }
}

/// Stops this server's member of the stream's group, forgets its log, deletes its replica.
pub(super) async fn leave(cluster: &ClusterJs, js: &Arc<JetStream>, stream: &str) {
    tracing::info!(
        stream,
        "leaving the stream's group: the stream was placed elsewhere"
    );
    cluster
        .stop_stream_group(js.account_name(), stream, true)
        .await;
    let (js, name) = (js.clone(), stream.to_owned());
    let deleted = tokio::task::spawn_blocking(move || js.unhost_stream(&name)).await;
    if let Ok(Err(e)) = deleted {
        tracing::warn!(
            stream,
            "cannot delete the replica of a stream placed elsewhere: {e}"
        );
    }
}
