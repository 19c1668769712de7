//! The cluster as monitoring sees it: `/routez`, the cluster fields of `/varz`, and the
//! route series of `/metrics`.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use super::Cluster;

/// The cluster at one moment.
#[derive(Debug, Clone)]
pub struct ClusterReport {
    pub name: String,
    /// Where the route port listens.
    pub listen: Option<SocketAddr>,
    /// The configured routes, `host:port`.
    pub configured: Vec<String>,
    /// The client URLs this server's clients are told.
    pub connect_urls: Vec<String>,
    pub routes: Vec<RouteReport>,
}

/// One registered route.
#[derive(Debug, Clone)]
pub struct RouteReport {
    pub rid: u64,
    pub remote_id: String,
    pub remote_name: String,
    pub did_solicit: bool,
    pub is_configured: bool,
    pub peer: SocketAddr,
    pub started: SystemTime,
    pub pending_bytes: usize,
    pub in_msgs: u64,
    pub in_bytes: u64,
    pub out_msgs: u64,
    pub out_bytes: u64,
    /// The peer's interest lines held here.
    pub subscriptions: usize,
    /// Listed only when asked for.
    pub subscriptions_list: Vec<String>,
}

impl Cluster {
    /// A snapshot; `subs` lists each route's interest subjects.
    pub fn report(&self, subs: bool) -> ClusterReport {
        let routes = self
            .links()
            .into_iter()
            .map(|link| {
                let (out_msgs, out_bytes) = link.handle.outbound_totals();
                RouteReport {
                    rid: link.id,
                    remote_id: link.remote_id.clone(),
                    remote_name: link.remote_name.clone(),
                    did_solicit: link.solicited,
                    is_configured: link.configured,
                    peer: link.handle.stats.peer,
                    started: link.started,
                    pending_bytes: link.handle.pending_bytes(),
                    in_msgs: link.in_msgs.load(Ordering::Relaxed),
                    in_bytes: link.in_bytes.load(Ordering::Relaxed),
                    out_msgs,
                    out_bytes,
                    subscriptions: link.interest_count(),
                    subscriptions_list: match subs {
                        true => link.interest_subjects(),
                        false => Vec::new(),
                    },
                }
            })
            .collect();
        ClusterReport {
            name: self.name().name,
            listen: self.listen_addr(),
            configured: self.config.routes.iter().map(|r| r.address()).collect(),
            connect_urls: self.client_connect_urls(),
            routes,
        }
    }
}
