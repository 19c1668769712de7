//! A read-only window on the running server for the monitoring endpoints: snapshots of the
//! settings, the connections, the subscriptions and JetStream, as plain data.
//!
//! Every number here is counted where the event happens (see `conn_stats`) and summed when a
//! report is asked for, so monitoring adds nothing shared to the message path.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use super::conn_stats::{ClientMeta, Traffic};
pub use super::jetstream::{JetStreamReport, StreamReport};
use super::outbound::ClientHandle;
use super::{lock, ServerConfig, ServerState};

/// A handle the monitor keeps; cheap to clone.
#[derive(Clone)]
pub struct ServerView {
    state: Arc<ServerState>,
}

/// The server as a whole, at one moment.
#[derive(Debug, Clone)]
pub struct ServerReport {
    pub server_id: String,
    pub server_name: String,
    /// The nats-server version whose protocol we speak, as INFO advertises it.
    pub version: String,
    pub proto: u8,
    pub host: String,
    pub port: u16,
    pub config: ServerConfig,
    pub started: SystemTime,
    pub connections: usize,
    /// Connections accepted since start, including those turned away at max_connections.
    pub total_connections: u64,
    /// Subscriptions in the sublist, the server's own (JetStream's) included.
    pub subscriptions: usize,
    pub subscription_inserts: u64,
    pub subscription_removes: u64,
    pub traffic: Traffic,
    pub slow_consumers: u64,
}

impl ServerView {
    /// The cluster and its routes, when the server is in one; `subs` lists each route's
    /// interest subjects.
    pub fn cluster(&self, subs: bool) -> Option<super::ClusterReport> {
        self.state.cluster.as_ref().map(|c| c.report(subs))
    }
}

/// One client subscription.
#[derive(Debug, Clone)]
pub struct SubscriptionReport {
    pub subject: String,
    pub queue: Option<String>,
    pub sid: String,
    /// Messages delivered to it.
    pub msgs: u64,
    /// Its UNSUB max; 0 when it has none.
    pub max: u64,
    pub cid: u64,
    /// The account of the connection that made it.
    pub account: String,
}

/// One client connection.
#[derive(Debug, Clone)]
pub struct ConnectionReport {
    pub cid: u64,
    pub peer: std::net::SocketAddr,
    pub started: SystemTime,
    pub last_activity: SystemTime,
    pub pending_bytes: usize,
    pub traffic: Traffic,
    pub meta: ClientMeta,
    pub num_subscriptions: usize,
    /// Listed only when asked for; empty otherwise.
    pub subscriptions: Vec<SubscriptionReport>,
}

/// One account, at one moment.
#[derive(Debug, Clone)]
pub struct AccountReport {
    pub name: String,
    pub is_system: bool,
    pub jetstream: bool,
    /// Subscriptions in the account's index, its internal ones included.
    pub subscriptions: usize,
    pub connections: usize,
    /// Traffic of the account's open connections.
    pub traffic: Traffic,
    /// What the configuration says of it; `None` for the implicit `$G` and `$SYS`.
    pub settings: Option<super::accounts::AccountSettings>,
}

/// A connection's traffic in both directions.
pub(super) fn traffic_of(handle: &ClientHandle) -> Traffic {
    let (in_msgs, in_bytes) = handle.stats.inbound();
    let (out_msgs, out_bytes) = handle.outbound_totals();
    Traffic {
        in_msgs,
        in_bytes,
        out_msgs,
        out_bytes,
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn subscriptions_of(handle: &ClientHandle) -> Vec<SubscriptionReport> {
    let account = handle.stats.meta().account;
    lock(&handle.subs)
        .values()
        .map(|sub| SubscriptionReport {
            subject: text(&sub.subject),
            queue: sub.queue.as_deref().map(text),
            sid: text(&sub.sid),
            msgs: sub.delivered.load(Ordering::Relaxed),
            max: sub.max_msgs.load(Ordering::Relaxed),
            cid: handle.id,
            account: account.clone(),
        })
        .collect()
}

impl ServerView {
    pub(super) fn new(state: Arc<ServerState>) -> Self {
        Self { state }
    }

    pub fn server(&self) -> ServerReport {
        let state = &self.state;
        let (connections, traffic) = {
            let closed = lock(&state.closed_traffic);
            let clients = lock(&state.clients);
            let mut traffic = *closed;
            for handle in clients.values() {
                traffic.add(traffic_of(handle));
            }
            (clients.len(), traffic)
        };
        let (mut subscriptions, mut inserts, mut removes) = (0, 0, 0);
        for account in state.accounts.all() {
            let (n, i, r) = account.router.sublist_stats();
            subscriptions += n;
            inserts += i;
            removes += r;
        }
        ServerReport {
            server_id: state.info.server_id.clone(),
            server_name: state.info.server_name.clone(),
            version: state.info.version.clone(),
            proto: state.info.proto,
            host: state.info.host.clone(),
            port: state.info.port,
            config: state.config.clone(),
            started: state.started,
            connections,
            // Ids start at 1 and every accepted socket takes one.
            total_connections: state.next_client_id.load(Ordering::Relaxed) - 1,
            subscriptions,
            subscription_inserts: inserts,
            subscription_removes: removes,
            traffic,
            slow_consumers: state.slow_consumers.load(Ordering::Relaxed),
        }
    }

    /// Every open client connection, by id, with its subscriptions listed when `with_subs`.
    pub fn connections(&self, with_subs: bool) -> Vec<ConnectionReport> {
        let handles: Vec<Arc<ClientHandle>> = lock(&self.state.clients).values().cloned().collect();
        let mut reports: Vec<ConnectionReport> = handles
            .iter()
            .map(|handle| {
                // Each lock of `subs` is its own statement: a guard inside the struct literal
                // would live to its end and deadlock against the next one.
                let num_subscriptions = lock(&handle.subs).len();
                let subscriptions = if with_subs {
                    subscriptions_of(handle)
                } else {
                    Vec::new()
                };
                ConnectionReport {
                    cid: handle.id,
                    peer: handle.stats.peer,
                    started: handle.stats.started,
                    last_activity: handle.stats.last_activity(),
                    pending_bytes: handle.pending_bytes(),
                    traffic: traffic_of(handle),
                    meta: handle.stats.meta(),
                    num_subscriptions,
                    subscriptions,
                }
            })
            .collect();
        reports.sort_by_key(|r| r.cid);
        reports
    }

    /// Every client subscription (the server's own are not listed, as in nats-server, where
    /// they belong to the system account).
    pub fn client_subscriptions(&self) -> Vec<SubscriptionReport> {
        let handles: Vec<Arc<ClientHandle>> = lock(&self.state.clients).values().cloned().collect();
        let mut subs: Vec<SubscriptionReport> =
            handles.iter().flat_map(|h| subscriptions_of(h)).collect();
        subs.sort_by(|a, b| (a.cid, &a.sid).cmp(&(b.cid, &b.sid)));
        subs
    }

    /// Whether JetStream has begun shutting down (health checks fail from then on).
    pub fn jetstream_stopping(&self) -> bool {
        let jetstreams = self.state.accounts.jetstreams();
        jetstreams.iter().any(|(_, js)| js.is_stopping())
    }

    /// The JetStream meta group as this server sees it, in a cluster.
    pub fn meta_cluster(&self) -> Option<super::cluster_js::report::MetaClusterReport> {
        self.state.clustered_js.get().map(|c| c.meta_report())
    }

    /// What a system request's event filter is matched against.
    pub fn event_identity(&self) -> EventIdentity {
        EventIdentity {
            name: self.state.info.server_name.clone(),
            host: self.state.info.host.clone(),
            cluster: self
                .state
                .cluster
                .as_ref()
                .map(|c| c.name().name)
                .unwrap_or_default(),
            domain: self.state.config.js_domain.clone(),
        }
    }

    /// Whether this server answers for JetStream as a whole: it leads the meta group, or
    /// runs JetStream on its own (no cluster).
    pub fn is_meta_leader(&self) -> bool {
        match self.state.clustered_js.get() {
            Some(cluster) => cluster.is_leader(),
            None => self.state.cluster.is_none(),
        }
    }

    /// Every Raft group this server is a member of; none outside a cluster.
    pub fn raft_groups(&self) -> Vec<super::cluster_js::raft_report::RaftGroupReport> {
        self.state
            .clustered_js
            .get()
            .map(|c| c.raft_report())
            .unwrap_or_default()
    }

    /// Why this server's JetStream cannot serve its part of the cluster, if it cannot: no
    /// meta leader for longer than a new election takes, or a replica of a replicated
    /// stream whose group has no leader.
    pub fn clustered_js_unhealthy(&self) -> Option<String> {
        let cluster = self.state.clustered_js.get()?;
        if cluster.leaderless() {
            return Some("JetStream has not established contact with a meta leader".into());
        }
        cluster.unhealthy_stream()
    }

    /// Streams and API counters of every account, together; consumer infos only
    /// `with_consumers`, since each costs a pending count. `None` when JetStream is off.
    pub fn jetstream(&self, with_consumers: bool) -> Option<JetStreamReport> {
        if !self.state.config.jetstream {
            return None;
        }
        let mut total = JetStreamReport {
            store_dir: self.state.config.store_dir.clone(),
            max_memory: self.state.config.max_memory_store,
            max_storage: self.state.config.max_file_store,
            domain: self.state.config.js_domain.clone(),
            ..JetStreamReport::default()
        };
        for (_, report) in self.jetstream_accounts(with_consumers) {
            total.api_total += report.api_total;
            total.api_errors += report.api_errors;
            total.streams.extend(report.streams);
        }
        Some(total)
    }

    /// Each account with JetStream and its report, by account name.
    pub fn jetstream_accounts(&self, with_consumers: bool) -> Vec<(String, JetStreamReport)> {
        let jetstreams = self.state.accounts.jetstreams();
        jetstreams
            .into_iter()
            .map(|(name, js)| (name, js.report(with_consumers)))
            .collect()
    }

    /// Answers the system account's requests (`$SYS.REQ.>`) with `handler`, on a thread.
    pub fn serve_system_requests(
        &self,
        subjects: Vec<String>,
        handler: super::system::SystemHandler,
    ) -> std::io::Result<()> {
        super::system::serve(&self.state, subjects, handler)
    }

    /// The `server` block of a system reply (nats-server's `ServerInfo`), numbered.
    pub fn system_server_block(&self) -> serde_json::Value {
        serde_json::to_value(self.state.server_block()).unwrap_or_default()
    }

    /// The name of the system account.
    pub fn system_account(&self) -> String {
        self.state.accounts.system_account().to_string()
    }

    /// Every account, by name, with its connections counted and their traffic summed.
    pub fn accounts(&self) -> Vec<AccountReport> {
        let accounts = &self.state.accounts;
        let connections = self.connections(false);
        accounts
            .all()
            .into_iter()
            .map(|account| {
                let mine = connections
                    .iter()
                    .filter(|c| c.meta.account == account.name);
                let mut traffic = Traffic::default();
                let mut count = 0;
                for c in mine {
                    traffic.add(c.traffic);
                    count += 1;
                }
                AccountReport {
                    name: account.name.clone(),
                    is_system: account.name == accounts.system_account(),
                    jetstream: account.jetstream.is_some(),
                    subscriptions: account.router.sublist_stats().0,
                    connections: count,
                    traffic,
                    settings: accounts.settings(&account.name),
                }
            })
            .collect()
    }
}

/// A server as a system request's event filter names it (`name`, `host`, `cluster`,
/// `domain`).
pub struct EventIdentity {
    pub name: String,
    pub host: String,
    pub cluster: String,
    pub domain: Option<String>,
}
