//! This server's member of the JetStream meta group (`_meta_`): the group over every server
//! of the cluster that will hold the stream and consumer assignments (issue 20), formed from
//! the route mesh without anyone listing its members.
//!
//! **Forming.** A group that has no membership yet (its log is empty) waits until this server
//! has routes and the set of peers it sees has not changed for [`BOOTSTRAP_SETTLE`]; then the
//! server with the smallest node id among itself and its peers makes them the first voters,
//! and the others wait to hear from its leader. After a restart the membership comes back
//! from the log and nothing is formed again. Two halves of a cluster partitioned while they
//! first start could each form a group, as with nats-server; the settle time only makes a
//! slow route unlikely to split them.
//!
//! **Growing.** The leader adds every server it has a route to and that is not yet a voter:
//! first as a learner (which catches it up), then as a voter. Nothing is removed
//! automatically: a server that is down is still a member (nats-server's `SERVER.REMOVE` is
//! how an operator takes one out).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::{BasicNode, ChangeMembers};
use tokio::task::JoinHandle;

use super::cluster_js::machine::{Catalog, MetaEvent, MetaMachine};
use super::Server;
use crate::raft::group::{GroupError, RaftGroup};
use crate::raft::log_store::RaftDisk;
use crate::raft::types::{node_id, NodeId};

/// The meta group's name, as nats-server's.
pub const META_GROUP: &str = "_meta_";
/// How long the peers seen must stay the same before a new group picks its first voters.
pub const BOOTSTRAP_SETTLE: Duration = Duration::from_secs(2);
/// How often the membership is looked at.
const MEMBERSHIP_CHECK: Duration = Duration::from_millis(500);

/// What a server without a group membership does, given what it sees.
#[derive(Debug, PartialEq, Eq)]
pub enum Bootstrap {
    /// Not yet: no peers, or the mesh is still changing.
    Wait,
    /// Another server (the one with the smallest id) forms the group.
    LeaveToPeer,
    /// This server forms the group with these members.
    Form(BTreeSet<String>),
}

/// The forming rule, on names: `peers` have been the same for `stable_for`.
pub fn bootstrap(me: &str, peers: &BTreeSet<String>, stable_for: Duration) -> Bootstrap {
    if peers.is_empty() || stable_for < BOOTSTRAP_SETTLE {
        return Bootstrap::Wait;
    }
    let mine = node_id(me);
    if peers.iter().any(|p| node_id(p) < mine) {
        return Bootstrap::LeaveToPeer;
    }
    let mut members = peers.clone();
    members.insert(me.to_owned());
    Bootstrap::Form(members)
}

/// This server's running member of the meta group.
pub struct MetaGroup {
    pub group: RaftGroup<MetaMachine>,
    /// The catalog as this member has applied it.
    pub catalog: Catalog,
    /// Every committed change, for whoever acts on them (taken once).
    pub events: Option<tokio::sync::mpsc::UnboundedReceiver<MetaEvent>>,
    serving: JoinHandle<()>,
    membership: JoinHandle<()>,
    leadership: JoinHandle<()>,
    /// Servers removed from the group (`SERVER.REMOVE`) that are still connected: the
    /// leader does not add them back.
    pub held_out: HeldOut,
}

/// The names of servers kept out of the meta group.
pub type HeldOut = Arc<std::sync::Mutex<BTreeSet<String>>>;

impl MetaGroup {
    /// Stops the member (its log and state stay in the database).
    pub async fn stop(self) {
        self.membership.abort();
        self.leadership.abort();
        self.serving.abort();
        let _ = self.group.raft.shutdown().await;
    }
}

/// Why the meta group could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetaGroupError {
    #[error("the meta group needs a cluster and a system account")]
    NoCluster,
    /// Boxed: openraft's errors are large, and this one is rare.
    #[error(transparent)]
    Group(#[from] Box<GroupError>),
}

impl Server {
    /// Starts this server's member of the meta group on `db`, and the task that forms and
    /// grows the group from the route mesh.
    pub async fn start_meta_group(&self, disk: &RaftDisk) -> Result<MetaGroup, MetaGroupError> {
        let cluster = self
            .state
            .cluster
            .clone()
            .ok_or(MetaGroupError::NoCluster)?;
        // A member of the meta group is a JetStream server to its peers (its route INFO
        // says so), which is how they count it in.
        cluster.set_jetstream(true);
        let transport = self.raft_transport().ok_or(MetaGroupError::NoCluster)?;
        let me = cluster.server_name().to_owned();
        let id = node_id(&me);
        let (events_tx, events) = tokio::sync::mpsc::unbounded_channel();
        let (machine, catalog) = MetaMachine::new(events_tx);
        let group = RaftGroup::start(disk, META_GROUP, id, transport, machine)
            .await
            .map_err(Box::new)?;
        let serving = self
            .serve_raft(META_GROUP, id, group.raft.clone())
            .ok_or(MetaGroupError::NoCluster)?;
        let leadership = tokio::spawn(log_leaders(group.raft.clone(), cluster.clone(), id));
        let raft = group.raft.clone();
        let held_out: HeldOut = Arc::default();
        let held = held_out.clone();
        let membership = tokio::spawn(async move {
            let mut seen = BTreeSet::new();
            let mut since = Instant::now();
            loop {
                tokio::time::sleep(MEMBERSHIP_CHECK).await;
                let peers = cluster.jetstream_peer_names();
                if peers != seen {
                    seen = peers.clone();
                    since = Instant::now();
                }
                let metrics = raft.metrics().borrow().clone();
                let voters: BTreeSet<NodeId> =
                    metrics.membership_config.membership().voter_ids().collect();
                if voters.is_empty() {
                    if let Bootstrap::Form(members) = bootstrap(&me, &peers, since.elapsed()) {
                        let members: BTreeMap<NodeId, BasicNode> = members
                            .iter()
                            .map(|name| (node_id(name), BasicNode::default()))
                            .collect();
                        match raft.initialize(members).await {
                            Ok(()) => tracing::info!("JetStream meta group formed"),
                            Err(e) => tracing::debug!("meta group not formed yet: {e}"),
                        }
                    }
                    continue;
                }
                // A server taken out stays out while its route stays up; once it has gone,
                // it may join again when it comes back.
                let joinable: BTreeSet<String> = {
                    let mut held = held.lock().unwrap_or_else(|p| p.into_inner());
                    held.retain(|name| peers.contains(name));
                    peers.difference(&held).cloned().collect()
                };
                if metrics.current_leader == Some(id) {
                    grow(&raft, &voters, &joinable).await;
                }
            }
        });
        Ok(MetaGroup {
            group,
            catalog,
            events: Some(events),
            serving,
            membership,
            leadership,
            held_out,
        })
    }
}

/// Logs nats-server's lines for each new meta leader, which operators look for.
async fn log_leaders(
    raft: openraft::Raft<crate::raft::types::JetlogRaft>,
    cluster: std::sync::Arc<super::routes::Cluster>,
    me: NodeId,
) {
    let mut metrics = raft.metrics();
    let mut leader = None;
    loop {
        let now = metrics.borrow_and_update().current_leader;
        if now != leader {
            leader = now;
            let peers = cluster.jetstream_peer_names();
            log_leader(leader, me, &peers, &cluster.name().name);
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

fn log_leader(leader: Option<NodeId>, me: NodeId, peers: &BTreeSet<String>, cluster: &str) {
    match leader {
        Some(l) if l == me => tracing::info!("Self is new JetStream cluster metadata leader"),
        Some(l) => match peers.iter().find(|p| node_id(p) == l) {
            Some(name) => tracing::info!("JetStream cluster new metadata leader: {name}/{cluster}"),
            None => tracing::info!("JetStream cluster new metadata leader: {l:x}/{cluster}"),
        },
        None => tracing::warn!("JetStream cluster no metadata leader"),
    }
}

/// Adds the peers that are not voters yet, one at a time, as learners then voters.
async fn grow(
    raft: &openraft::Raft<crate::raft::types::JetlogRaft>,
    voters: &BTreeSet<NodeId>,
    peers: &BTreeSet<String>,
) {
    for peer in peers {
        let id = node_id(peer);
        if voters.contains(&id) {
            continue;
        }
        if let Err(e) = raft.add_learner(id, BasicNode::default(), true).await {
            tracing::debug!("meta group: {peer} not added as a learner yet: {e}");
            return;
        }
        let add = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
        match raft.change_membership(add, false).await {
            Ok(_) => tracing::info!("JetStream meta group: {peer} joined"),
            Err(e) => tracing::debug!("meta group: {peer} not a voter yet: {e}"),
        }
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_smallest_id_forms_the_group_once_the_mesh_settles() {
        let settled = BOOTSTRAP_SETTLE;
        assert_eq!(bootstrap("n1", &names(&[]), settled), Bootstrap::Wait);
        assert_eq!(
            bootstrap("n1", &names(&["n2", "n3"]), Duration::from_millis(10)),
            Bootstrap::Wait
        );
        // Whoever has the smallest id forms, and the others agree it is not them.
        let all = ["n1", "n2", "n3"];
        let smallest = *all.iter().min_by_key(|n| node_id(n)).expect("three");
        for me in all {
            let peers: BTreeSet<String> = all
                .iter()
                .filter(|p| **p != me)
                .map(|p| p.to_string())
                .collect();
            let decided = bootstrap(me, &peers, settled);
            match me == smallest {
                true => assert_eq!(decided, Bootstrap::Form(names(&all))),
                false => assert_eq!(decided, Bootstrap::LeaveToPeer),
            }
        }
    }
}
