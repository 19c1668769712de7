//! Every Raft group this server is a member of (the meta group and each replicated stream's),
//! as `/jsz?raft=true` and `/metrics` show them (issue 20): who leads, the term, how far
//! this member's log and its machine have got, and on the leader how far behind each other
//! member is.

use serde::Serialize;

use super::stream_groups::group_name;
use super::ClusterJs;
use crate::raft::network::PeerSeen;
use crate::raft::types::{node_id, NodeId};

/// The meta group's name, as nats-server calls it.
pub const META_GROUP: &str = "_meta_";

/// One group as this member sees it.
#[derive(Debug, Clone, Serialize)]
pub struct RaftGroupReport {
    /// [`META_GROUP`], or a stream's `S-…`.
    pub group: String,
    /// The stream a stream group replicates, and its account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// This member's part: `leader`, `follower`, `candidate`, `learner` or `shutdown`.
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    pub term: u64,
    /// The last entry in this member's log, and the last its machine applied.
    pub last_index: u64,
    pub applied: u64,
    /// On the leader, each other voter: whether it has every entry, and how many it lacks.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<PeerLag>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PeerLag {
    pub name: String,
    pub current: bool,
    pub lag: u64,
    /// Nanoseconds since it last answered this member (nats-server's `active`).
    pub active: u64,
}

pub(super) type Metrics = openraft::RaftMetrics<NodeId, openraft::BasicNode>;

fn state_name(state: openraft::ServerState) -> &'static str {
    match state {
        openraft::ServerState::Leader => "leader",
        openraft::ServerState::Follower => "follower",
        openraft::ServerState::Candidate => "candidate",
        openraft::ServerState::Learner => "learner",
        openraft::ServerState::Shutdown => "shutdown",
    }
}

/// A group's report from its metrics, the one computation of who leads and how far each
/// other voter lags (also behind `meta_cluster` and `STREAM.INFO`'s `cluster`); `name_of`
/// names a member by its node id.
pub(super) fn report_of(
    group: String,
    metrics: &Metrics,
    me: NodeId,
    name_of: impl Fn(NodeId) -> String,
    seen: &PeerSeen,
) -> RaftGroupReport {
    let last = metrics.last_log_index.unwrap_or(0);
    let mut peers: Vec<PeerLag> = match &metrics.replication {
        Some(matched) => metrics
            .membership_config
            .membership()
            .voter_ids()
            .filter(|id| *id != me)
            .map(|id| {
                let at = matched.get(&id).copied().flatten().map_or(0, |l| l.index);
                PeerLag {
                    name: name_of(id),
                    current: at >= last,
                    lag: last.saturating_sub(at),
                    active: u64::try_from(seen.since(id).as_nanos()).unwrap_or(u64::MAX),
                }
            })
            .collect(),
        None => Vec::new(),
    };
    peers.sort_by(|a, b| a.name.cmp(&b.name));
    RaftGroupReport {
        group,
        account: None,
        stream: None,
        state: state_name(metrics.state),
        leader: metrics.current_leader.map(&name_of),
        term: metrics.current_term,
        last_index: last,
        applied: metrics.last_applied.map_or(0, |l| l.index),
        peers,
    }
}

/// Names a member among `names`, or by its node id when none is it.
fn named_among(names: &[String]) -> impl Fn(NodeId) -> String + '_ {
    |id| {
        names
            .iter()
            .find(|n| node_id(n) == id)
            .cloned()
            .unwrap_or_else(|| format!("node {id:x}"))
    }
}

impl ClusterJs {
    /// The meta group first, then each stream group by account and stream.
    pub fn raft_report(&self) -> Vec<RaftGroupReport> {
        let mut names: Vec<String> = self.routes.jetstream_peer_names().into_iter().collect();
        names.push(self.me.clone());
        let meta = self.raft.metrics().borrow().clone();
        let mut out = vec![report_of(
            META_GROUP.to_owned(),
            &meta,
            self.me_id,
            named_among(&names),
            &self.meta_seen,
        )];
        let groups = self.stream_groups.rafts();
        let mut streams: Vec<RaftGroupReport> = groups
            .into_iter()
            .map(|((account, stream), (raft, seen))| {
                let metrics = raft.metrics().borrow().clone();
                let mut peers = self
                    .catalog()
                    .stream(&account, &stream)
                    .map(|s| s.placement.peers.clone())
                    .unwrap_or_default();
                peers.extend(names.iter().cloned());
                let mut report = report_of(
                    group_name(&account, &stream),
                    &metrics,
                    self.me_id,
                    named_among(&peers),
                    &seen,
                );
                report.account = Some(account);
                report.stream = Some(stream);
                report
            })
            .collect();
        streams.sort_by(|a, b| (&a.account, &a.stream).cmp(&(&b.account, &b.stream)));
        out.extend(streams);
        out
    }
}
