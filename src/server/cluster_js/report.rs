//! The meta group as `/jsz` shows it: nats-server's `meta_cluster` object, with the Raft
//! figures jetlog adds (term, applied index, and each follower's lag on the leader).

use serde::Serialize;

use super::raft_report::{report_of, META_GROUP};
use super::ClusterJs;
use crate::raft::types::{node_id, peer_id};

/// `meta_cluster` in `/jsz`.
#[derive(Debug, Clone, Serialize)]
pub struct MetaClusterReport {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// The leader's peer id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// The other voters, as the leader sees them; left out on the others, as nats-server
    /// does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<Vec<MetaReplica>>,
    pub cluster_size: usize,
    /// jetlog's: the leader's term, and the last entry this server applied.
    pub term: u64,
    pub applied: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct MetaReplica {
    pub name: String,
    pub current: bool,
    /// No route to it now.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub offline: bool,
    /// Nanoseconds since it last answered the leader.
    pub active: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub lag: u64,
    pub peer: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl ClusterJs {
    /// The meta group as this server sees it now.
    pub fn meta_report(&self) -> MetaClusterReport {
        let metrics = self.raft.metrics().borrow().clone();
        let online: Vec<String> = self.routes.jetstream_peer_names().into_iter().collect();
        let mut names = online.clone();
        names.push(self.me.clone());
        let name_of = |id: u64| {
            names
                .iter()
                .find(|n| node_id(n) == id)
                .cloned()
                .unwrap_or_else(|| format!("Server name unknown at this time (node {id:x})"))
        };
        let report = report_of(
            META_GROUP.to_owned(),
            &metrics,
            self.me_id,
            name_of,
            &self.meta_seen,
        );
        let replicas = metrics.replication.is_some().then(|| {
            report
                .peers
                .into_iter()
                .map(|p| MetaReplica {
                    peer: peer_id(&p.name),
                    current: p.current,
                    offline: !online.contains(&p.name),
                    active: p.active,
                    lag: p.lag,
                    name: p.name,
                })
                .collect()
        });
        MetaClusterReport {
            name: self.cluster_name.clone(),
            peer: report.leader.as_deref().map(peer_id),
            leader: report.leader,
            replicas,
            cluster_size: metrics.membership_config.membership().voter_ids().count(),
            term: report.term,
            applied: report.applied,
        }
    }
}
