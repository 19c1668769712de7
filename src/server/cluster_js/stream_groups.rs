//! The Raft groups of the replicated streams this server holds a replica of: one group per
//! stream, over the servers the meta leader placed it on, its machine the stream itself
//! (`jetstream::replica_machine`), its RPCs over the routes like the meta group's.
//!
//! A group is started when the stream is created here (the first peer of the placement
//! makes the others its first voters) and, after a restart, when clustered JetStream
//! starts: its membership is in its own log then. A watch on the group's metrics tells the
//! stream when this server begins or ceases to lead it (`JetStream::set_leading`).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use openraft::{BasicNode, ServerState};
use tokio::task::JoinHandle;

use bytes::Bytes;

use super::raft_report::report_of;
use super::raft_report::PeerLag;
use super::{meta_ops, stream_moves, ClusterJs};
use crate::jetstream::replica_machine::ReplicaMachine;
use crate::jetstream::stream_config::Storage;
use crate::jetstream::ApiError;
use crate::raft::group::{Compaction, RaftGroup};
use crate::raft::log_store::LogStore;
use crate::raft::network::PeerSeen;
use crate::raft::types::{node_id, peer_id, JetlogRaft, NodeId};
use crate::server::jetstream::{propose_rounds, EntryHost, JetStream, StreamEntry, SyncLink};
use crate::server::raft_link::{self, SyncAnswer};

/// How long the server that forms a stream's group keeps campaigning for its first leader.
const FIRST_ELECTION_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// How long it waits for an election's outcome before it campaigns again.
const FIRST_ELECTION_RETRY: std::time::Duration = std::time::Duration::from_millis(250);

/// A member holding more entries than this that it has not applied is behind its group
/// (`/healthz`): a leader has at most 8 entries in flight (`MAX_ROUNDS_IN_FLIGHT`)
/// when it keeps up.
pub const HEALTHZ_APPLY_BACKLOG: u64 = 64;

/// A file stream's group takes a snapshot after this many entries ...
const STREAM_SNAPSHOT_ENTRIES: u64 = 8192;
/// ... and keeps this many before it, so a member a little behind catches up from the log.
const STREAM_LOG_KEPT: u64 = 1024;
/// Overrides [`STREAM_SNAPSHOT_ENTRIES`] (and keeps an eighth of it), so tests and users
/// can see compaction and catch-up without writing thousands of entries.
const STREAM_SNAPSHOT_ENTRIES_ENV: &str = "JETLOG_STREAM_SNAPSHOT_ENTRIES";

/// How a file stream's group keeps its log short (see `jetstream::replica_snapshot`).
fn stream_compaction() -> Compaction {
    let set = std::env::var(STREAM_SNAPSHOT_ENTRIES_ENV).ok();
    match set.as_deref().map(str::parse::<u64>) {
        Some(Ok(entries)) if entries > 0 => Compaction::Every {
            entries,
            keep: entries / 8,
        },
        Some(_) => {
            tracing::warn!(
                "{STREAM_SNAPSHOT_ENTRIES_ENV}={set:?} is not a positive number: using {STREAM_SNAPSHOT_ENTRIES}"
            );
            default_compaction()
        }
        None => default_compaction(),
    }
}

fn default_compaction() -> Compaction {
    Compaction::Every {
        entries: STREAM_SNAPSHOT_ENTRIES,
        keep: STREAM_LOG_KEPT,
    }
}

/// Where to answer a client: the account's router, the reply subject and the answer's kind
/// (`stream_create_response`, or `stream_update_response` for a stream made replicated).
pub type Answer = (
    Arc<crate::server::router::Router>,
    bytes::Bytes,
    &'static str,
);

/// One stream group's member on this server.
struct Member {
    group: RaftGroup<ReplicaMachine<EntryHost>>,
    tasks: Vec<JoinHandle<()>>,
    /// Set while the replica catches up from a snapshot (see `replica_sync`).
    catching_up: Arc<AtomicBool>,
    /// Set while this member, leading, changes the group's members (`stream_moves`): one
    /// change at a time, or each would take a new snapshot under the last one's learners.
    changing: Arc<AtomicBool>,
}

/// This server's members of stream groups, by `(account, stream)`.
#[derive(Default)]
pub struct StreamGroups(std::sync::Mutex<HashMap<(String, String), Member>>);

impl StreamGroups {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Member>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Each group's handle, by `(account, stream)`.
    pub(super) fn rafts(&self) -> Vec<((String, String), MemberView)> {
        self.lock()
            .iter()
            .map(|(key, member)| {
                let view = (member.group.raft.clone(), member.group.seen.clone());
                (key.clone(), view)
            })
            .collect()
    }
}

/// A member's Raft handle and when its peers last answered it.
pub(super) type MemberView = (openraft::Raft<JetlogRaft>, Arc<PeerSeen>);

/// A stream's group name: nats-server's `S-` prefix and eight characters that are the same
/// on every server, so no server needs to be told it.
pub fn group_name(account: &str, stream: &str) -> String {
    format!("S-{}", peer_id(&format!("{account}\u{0}{stream}")))
}

/// How a stream group stands, for `STREAM.INFO`'s `cluster`.
#[derive(Debug, Clone, Default)]
pub struct GroupState {
    pub leader: Option<String>,
    /// The other peers as the leader sees them.
    pub replicas: Vec<PeerLag>,
}

impl ClusterJs {
    /// Starts this server's member of `entry`'s group. `form` is the placement when the
    /// stream was just created: its first peer makes all of them the group's first voters
    /// (harmless when they already are). After a restart the membership is in the group's
    /// log, and `form` is `None`. `created`: where this replica answers the stream's create
    /// if it is the first to lead the group.
    pub async fn start_stream_group(
        &self,
        js: &Arc<JetStream>,
        entry: &Arc<StreamEntry>,
        form: Option<Vec<String>>,
        created: Option<Answer>,
    ) {
        let Some(joined) = js.join_group(entry) else {
            return;
        };
        let name = group_name(js.account_name(), entry.name());
        let answer_sync: SyncAnswer = Arc::new(joined.host.sync_answerer());
        let compaction = match entry.lock().config().storage {
            Storage::File => stream_compaction(),
            Storage::Memory => Compaction::KeepLog,
        };
        let machine = ReplicaMachine::new(joined.host, joined.checkpoint, joined.ack_prefix);
        let started = RaftGroup::start_with(
            &self.disk,
            &name,
            self.me_id,
            self.proposer.clone(),
            machine,
            compaction,
        )
        .await;
        let group = match started {
            Ok(group) => group,
            Err(e) => {
                tracing::error!(
                    stream = entry.name(),
                    "the stream's group did not start: {e}"
                );
                return;
            }
        };
        let catching_up = Arc::new(AtomicBool::new(false));
        entry.set_sync_link(SyncLink {
            transport: self.proposer.clone(),
            group: name.clone(),
            me: self.me_id,
            raft: group.raft.clone(),
            catching_up: catching_up.clone(),
        });
        let serving = raft_link::serve(
            self.system.clone(),
            &name,
            self.me_id,
            group.raft.clone(),
            (Some(answer_sync), Some(group.heard.clone())),
        );
        let peers = form.unwrap_or_default();
        if peers.first().map(String::as_str) == Some(self.me.as_str()) {
            let members: BTreeMap<NodeId, BasicNode> = peers
                .iter()
                .map(|p| (node_id(p), BasicNode::default()))
                .collect();
            if let Err(e) = group.initialize(members).await {
                tracing::error!(
                    stream = entry.name(),
                    "the stream's group did not form: {e}"
                );
            }
            // A new group would wait out an election timeout (or two, when the others were
            // not serving yet) before anyone campaigns; the creating client waits for the
            // leader, so the former campaigns at once, and again until a leader is seen.
            let raft = group.raft.clone();
            tokio::spawn(async move {
                let deadline = tokio::time::Instant::now() + FIRST_ELECTION_WAIT;
                while raft.metrics().borrow().current_leader.is_none()
                    && tokio::time::Instant::now() < deadline
                {
                    let _ = raft.trigger().elect().await;
                    tokio::time::sleep(FIRST_ELECTION_RETRY).await;
                }
            });
        }
        let campaigns = serve_campaigns(
            self.system.clone(),
            &meta_ops::stream_elect_subject(&name, self.me_id),
            group.raft.clone(),
        );
        let leaving = serve_leave(
            self.system.clone(),
            &stream_moves::leave_subject(&name, self.me_id),
            js,
            entry.name(),
        );
        let tasks = vec![
            serving,
            campaigns,
            leaving,
            tokio::spawn(propose_rounds(
                Arc::downgrade(entry),
                group.raft.clone(),
                joined.proposals,
                js.router().clone(),
            )),
            tokio::spawn(watch_leadership(
                Arc::downgrade(js),
                Arc::downgrade(entry),
                group.raft.clone(),
                self.me_id,
                created,
            )),
        ];
        let key = (js.account_name().to_owned(), entry.name().to_owned());
        let member = Member {
            group,
            tasks,
            catching_up,
            changing: Arc::default(),
        };
        self.stream_groups.lock().insert(key, member);
    }

    /// Stops this server's member of a stream's group; with `forget`, also removes its log
    /// (the stream was deleted).
    pub async fn stop_stream_group(&self, account: &str, stream: &str, forget: bool) {
        let key = (account.to_owned(), stream.to_owned());
        let removed = self.stream_groups.lock().remove(&key);
        let Some(member) = removed else {
            return;
        };
        for task in &member.tasks {
            task.abort();
        }
        let _ = member.group.raft.shutdown().await;
        drop(member);
        if forget {
            let name = group_name(account, stream);
            let removed = LogStore::destroy(&self.disk, &name).and_then(|()| {
                let snapshot = self.disk.db.drop_tree(format!("raft.{name}.snapshot"));
                Ok(snapshot.map(drop)?)
            });
            if let Err(e) = removed {
                tracing::warn!(
                    stream,
                    "cannot remove the log of a deleted stream's group: {e}"
                );
            }
        }
    }

    /// `STREAM.LEADER.STEPDOWN` on the stream's leader: hands the group to another online
    /// peer, or to the one `placement.preferred` names (answered at once, as nats-server
    /// does; the handover takes a few seconds). nats-server 2.11's errors: 10005 for a
    /// preferred server that is not a peer or already leads, or no peer to take over.
    pub fn stepdown_stream_group(
        &self,
        account: &str,
        stream: &str,
        payload: &[u8],
    ) -> Result<(), ApiError> {
        let placement = meta_ops::StepdownRequest::parse(payload)?;
        let raft = {
            let groups = self.stream_groups.lock();
            let member = groups
                .get(&(account.to_owned(), stream.to_owned()))
                .ok_or_else(ApiError::stream_not_found)?;
            member.group.raft.clone()
        };
        let voters: Vec<NodeId> = raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .collect();
        let no_peers = |why: String| ApiError::new(400, 10005, why);
        let candidates: Vec<NodeId> = if !placement.preferred.is_empty() {
            let preferred = node_id(&placement.preferred);
            if preferred == self.me_id {
                return Err(no_peers(format!(
                    "preferred server {:?} is already leader",
                    placement.preferred
                )));
            }
            if !voters.contains(&preferred) {
                return Err(no_peers(format!(
                    "preferred server {:?} not known",
                    placement.preferred
                )));
            }
            vec![preferred]
        } else {
            self.hosts_online()
                .iter()
                .map(|name| node_id(name))
                .filter(|id| *id != self.me_id && voters.contains(id))
                .collect()
        };
        let other_cluster = !placement.cluster.is_empty() && placement.cluster != self.cluster_name;
        if candidates.is_empty() || other_cluster {
            return Err(meta_ops::no_replacement());
        }
        // A different one first each time, so repeated stepdowns go round the peers.
        let pick = usize::try_from(crate::server::jetstream::now_ns() % 997).unwrap_or(0);
        let group = group_name(account, stream);
        let subjects: Vec<Bytes> = (0..candidates.len())
            .map(|i| candidates[(pick + i) % candidates.len()])
            .map(|next| Bytes::from(meta_ops::stream_elect_subject(&group, next)))
            .collect();
        let (system, me, stream) = (self.system.clone(), self.me_id, stream.to_owned());
        self.spawn(async move {
            if !meta_ops::hand_over_group(&raft, &system, me, &subjects).await {
                tracing::warn!(
                    stream,
                    "JetStream stream leader stepdown: no other peer took over"
                );
            }
        });
        Ok(())
    }

    /// Why one of this server's replicas cannot serve, in nats-server's `/healthz` words
    /// where it has them: its member stopped on an error, its group has no leader this
    /// member knows of, it is catching up from a snapshot, or it holds more entries than
    /// [`HEALTHZ_APPLY_BACKLOG`] it has not yet applied, or (a follower) has applied that
    /// many fewer than the leader said it committed.
    pub fn unhealthy_stream(&self) -> Option<String> {
        let groups = self.stream_groups.lock();
        groups.iter().find_map(|((account, stream), member)| {
            let metrics = member.group.raft.metrics().borrow().clone();
            let applied = metrics.last_applied.map_or(0, |l| l.index);
            let backlog = metrics.last_log_index.unwrap_or(0).saturating_sub(applied);
            // A follower also against the leader's commit: one sent no entries has no
            // backlog of its own.
            let behind = match metrics.current_leader == Some(self.me_id) {
                true => 0,
                false => member.group.heard.commit().saturating_sub(applied),
            };
            let why = match (&metrics.running_state, metrics.current_leader) {
                (Err(e), _) => format!("node write error: {e}"),
                (Ok(()), None) => "group node unhealthy".to_owned(),
                _ if member.catching_up.load(Ordering::Acquire) => "catching up".to_owned(),
                _ if backlog > HEALTHZ_APPLY_BACKLOG => {
                    format!("{backlog} entries not yet applied")
                }
                _ if behind > HEALTHZ_APPLY_BACKLOG => {
                    format!("{behind} entries behind the leader")
                }
                (Ok(()), Some(_)) => return None,
            };
            Some(format!(
                "JetStream stream '{account} > {stream}' is not current: {why}"
            ))
        })
    }

    /// Stops every stream group's member (the server is stopping).
    pub(super) async fn stop_stream_groups(&self) {
        let members: Vec<Member> = self.stream_groups.lock().drain().map(|(_, m)| m).collect();
        for member in members {
            for task in &member.tasks {
                task.abort();
            }
            let _ = member.group.raft.shutdown().await;
        }
    }

    /// This server's member of `stream`'s group.
    pub(super) fn stream_group_raft(
        &self,
        account: &str,
        stream: &str,
    ) -> Option<openraft::Raft<JetlogRaft>> {
        self.stream_group_change(account, stream)
            .map(|(raft, _)| raft)
    }

    /// This server's member of `stream`'s group, and its flag for a membership change
    /// under way.
    pub(super) fn stream_group_change(
        &self,
        account: &str,
        stream: &str,
    ) -> Option<(openraft::Raft<JetlogRaft>, Arc<AtomicBool>)> {
        let groups = self.stream_groups.lock();
        let member = groups.get(&(account.to_owned(), stream.to_owned()))?;
        Some((member.group.raft.clone(), member.changing.clone()))
    }

    /// The node that leads `stream`'s group, as this server's member sees it.
    pub fn stream_group_leader(&self, account: &str, stream: &str) -> Option<NodeId> {
        let raft = self.stream_group_raft(account, stream)?;
        let leader = raft.metrics().borrow().current_leader;
        leader
    }

    /// How `stream`'s group stands, as this server sees it; `None` if it has no member here.
    pub fn stream_group_state(&self, account: &str, stream: &str) -> Option<GroupState> {
        let (metrics, seen) = {
            let groups = self.stream_groups.lock();
            let member = groups.get(&(account.to_owned(), stream.to_owned()))?;
            let metrics = member.group.raft.metrics().borrow().clone();
            (metrics, member.group.seen.clone())
        };
        let peers: Vec<String> = self
            .catalog()
            .stream(account, stream)
            .map(|s| s.placement.peers.clone())
            .unwrap_or_default();
        let name_of = |id: NodeId| {
            peers
                .iter()
                .find(|p| node_id(p) == id)
                .cloned()
                .unwrap_or_default()
        };
        let report = report_of(
            group_name(account, stream),
            &metrics,
            self.me_id,
            name_of,
            &seen,
        );
        Some(GroupState {
            leader: report.leader.filter(|l| !l.is_empty()),
            replicas: report.peers,
        })
    }
}

/// Campaigns whenever the group's leader hands its office to this member.
fn serve_campaigns(
    system: Arc<crate::server::router::Router>,
    subject: &str,
    raft: openraft::Raft<JetlogRaft>,
) -> JoinHandle<()> {
    let (sub, mut asks) = raft_link::subscribe(&system, subject);
    tokio::spawn(async move {
        let _unsubscribe = raft_link::Unsubscribe(system.clone(), sub);
        while asks.recv().await.is_some() {
            if let Err(e) = raft.trigger().elect().await {
                tracing::warn!("JetStream stream group: cannot campaign: {e}");
            }
        }
    })
}

/// Leaves the group when its leader says so and the catalog agrees (`stream_moves`).
fn serve_leave(
    system: Arc<crate::server::router::Router>,
    subject: &str,
    js: &Arc<JetStream>,
    stream: &str,
) -> JoinHandle<()> {
    let (sub, mut asks) = raft_link::subscribe(&system, subject);
    let (js, stream) = (Arc::downgrade(js), stream.to_owned());
    tokio::spawn(async move {
        let _unsubscribe = raft_link::Unsubscribe(system.clone(), sub);
        while let Some(ask) = asks.recv().await {
            let Some(js) = js.upgrade() else {
                return;
            };
            let Some(cluster) = js.cluster().cloned() else {
                return;
            };
            if !cluster.may_leave(js.account_name(), &stream) {
                continue;
            }
            if let Some(reply) = ask.msg.reply {
                raft_link::publish(&system, reply, None, Bytes::from_static(b"+OK")).await;
            }
            // Not on this task: leaving stops the member's tasks, this one among them.
            let stream = stream.clone();
            cluster.clone().spawn(async move {
                stream_moves::leave(&cluster, &js, &stream).await;
            });
            return;
        }
    })
}

/// Tells the stream whenever this server begins or ceases to lead its group. It leads only
/// once it has applied every entry up to the start of its term, so that its store holds all
/// that was committed before it took office.
async fn watch_leadership(
    js: Weak<JetStream>,
    entry: Weak<StreamEntry>,
    raft: openraft::Raft<JetlogRaft>,
    me: NodeId,
    mut created: Option<Answer>,
) {
    let mut metrics = raft.metrics();
    // (term, last log index when this server was first seen leading in it)
    let mut office: Option<(u64, u64)> = None;
    loop {
        let leading = {
            let m = metrics.borrow_and_update();
            if m.state == ServerState::Leader && m.current_leader == Some(me) {
                let term = m.current_term;
                if office.is_none_or(|(t, _)| t != term) {
                    office = Some((term, m.last_log_index.unwrap_or(0)));
                }
                let start = office.map_or(0, |(_, start)| start);
                m.last_applied.map_or(0, |l| l.index) >= start
            } else {
                office = None;
                false
            }
        };
        let (Some(js), Some(entry)) = (js.upgrade(), entry.upgrade()) else {
            return;
        };
        js.set_leading(&entry, leading);
        if leading {
            if let Some((router, reply, kind)) = created.take() {
                let body = js.created_answer(&entry, kind);
                raft_link::publish(&router, reply, None, body).await;
            }
        } else if raft
            .metrics()
            .borrow()
            .current_leader
            .is_some_and(|l| l != me)
        {
            // Another replica leads: the answer is its to give.
            created = None;
        }
        drop((js, entry));
        if metrics.changed().await.is_err() {
            return;
        }
    }
}
