//! JetStream in a cluster: the meta group decides which streams exist and where each one
//! runs; every server opens the streams placed on it and answers the API requests about
//! them (issue 20; `docs/clustering.md`).
//!
//! Streams are R1: one server holds each, and clients reach it from any server through the
//! routes, which carry its subjects' interest like any subscription's. Requests that change
//! the catalog (stream create, update, delete) and those about the whole account (account
//! info, stream names and lists) are answered by the meta leader; requests about one
//! stream or its consumers by the server that runs it.

mod host;
pub mod machine;
mod meta_ops;
pub mod raft_report;
pub mod report;
pub(crate) mod requests;
pub mod stream_groups;
mod stream_moves;

pub use stream_moves::Removal;

use std::collections::BTreeSet;
use std::sync::{Arc, RwLockReadGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::task::JoinHandle;

use super::meta_group::{MetaGroup, MetaGroupError};
use super::raft_link::RouterTransport;
use super::router::Router;
use super::Server;
use crate::jetstream::assignments::{Assignments, MetaCommand, MetaOutcome};
use crate::raft::log_store::RaftDisk;
use crate::raft::network::Transport;
use crate::raft::types::node_id;
use machine::Catalog;
use requests::{GatherRequest, ProposeError};

/// How long a proposal waits for the meta leader's answer.
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the meta leader waits for the other servers' share of an account.
const GATHER_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the meta group may be without a leader before every server answers the
/// requests only a leader could with 503/10008, as nats-server does.
pub const LEADERLESS_GRACE: Duration = Duration::from_secs(10);

/// This server's part of a clustered JetStream.
pub struct ClusterJs {
    meta: tokio::sync::Mutex<Option<MetaGroup>>,
    raft: openraft::Raft<crate::raft::types::JetlogRaft>,
    /// When each other member of the meta group last answered this one.
    meta_seen: Arc<crate::raft::network::PeerSeen>,
    me_id: crate::raft::types::NodeId,
    catalog: Catalog,
    me: String,
    cluster_name: String,
    routes: Arc<super::routes::Cluster>,
    system: Arc<Router>,
    proposer: RouterTransport,
    runtime: tokio::runtime::Handle,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
    /// Servers taken out of the meta group while still connected.
    held_out: super::meta_group::HeldOut,
    /// Since when no meta leader has been seen (`None` while there is one).
    leaderless_since: std::sync::Mutex<Option<std::time::Instant>>,
    /// Where every group's log lives (the meta group's and the stream groups').
    disk: RaftDisk,
    /// This server's members of replicated streams' groups.
    stream_groups: stream_groups::StreamGroups,
}

impl ClusterJs {
    /// Whether this server's member leads the meta group now.
    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().current_leader == Some(self.me_id)
    }

    /// Whether the meta group has been without a leader for longer than
    /// [`LEADERLESS_GRACE`].
    pub fn leaderless(&self) -> bool {
        let has_leader = self.raft.metrics().borrow().current_leader.is_some();
        let mut since = self
            .leaderless_since
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if has_leader {
            *since = None;
            return false;
        }
        since.get_or_insert_with(std::time::Instant::now).elapsed() > LEADERLESS_GRACE
    }

    /// The catalog as this server has applied it.
    pub fn catalog(&self) -> RwLockReadGuard<'_, Assignments> {
        self.catalog.read()
    }

    pub fn server_name(&self) -> &str {
        &self.me
    }

    pub fn cluster_name(&self) -> &str {
        &self.cluster_name
    }

    /// The JetStream servers that can take a stream now: this one and the meta group's
    /// voters it has a route to.
    pub fn hosts_online(&self) -> Vec<String> {
        let voters: BTreeSet<_> = {
            let metrics = self.raft.metrics().borrow().clone();
            let voters = metrics.membership_config.membership().voter_ids().collect();
            voters
        };
        let mut hosts: Vec<String> = self
            .routes
            .jetstream_peer_names()
            .into_iter()
            .filter(|p| voters.contains(&node_id(p)))
            .collect();
        hosts.push(self.me.clone());
        hosts.sort();
        hosts
    }

    /// Runs `task` on the server's runtime (the API thread is not on it).
    pub fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.runtime.spawn(task);
    }

    /// Commits `command` through the meta leader, wherever it is.
    pub async fn propose(&self, command: MetaCommand) -> Result<MetaOutcome, ProposeError> {
        let body = Bytes::from(serde_json::to_vec(&command).unwrap_or_default());
        let answer = self
            .proposer
            .request(requests::PROPOSE_SUBJECT.to_owned(), body, PROPOSE_TIMEOUT)
            .await
            .map_err(|e| ProposeError::NoLeader(e.to_string()))?;
        requests::decode_outcome(&answer)
    }

    /// Every online server's answer to `GATHER.<what>` about `account`.
    pub async fn gather(&self, what: &str, request: GatherRequest) -> Vec<Bytes> {
        let expect = self.hosts_online().len();
        requests::gather(&self.system, what, &request, expect, GATHER_TIMEOUT).await
    }

    /// Keeps `name` out of the meta group while it stays connected.
    fn hold_out(&self, name: &str) {
        let mut held = self.held_out.lock().unwrap_or_else(|p| p.into_inner());
        held.insert(name.to_owned());
    }

    fn held_out_names(&self) -> Vec<String> {
        let held = self.held_out.lock().unwrap_or_else(|p| p.into_inner());
        held.iter().cloned().collect()
    }

    /// Stops the meta group's member and the tasks around it.
    pub async fn stop(&self) {
        for task in std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner())) {
            task.abort();
        }
        self.stop_stream_groups().await;
        if let Some(meta) = self.meta.lock().await.take() {
            meta.stop().await;
        }
    }
}

/// Why clustered JetStream could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterJsError {
    #[error("cannot open the cluster's metadata in {path}: {error}")]
    Store { path: String, error: sled::Error },
    #[error(transparent)]
    Meta(#[from] MetaGroupError),
}

/// The directory, under the store directory, that holds this server's meta group member.
pub const META_DIR: &str = "cluster-meta";

impl Server {
    /// Starts clustered JetStream when the server runs JetStream in a cluster; a failure is
    /// logged, and leaves JetStream answering nothing rather than answering alone.
    pub(super) async fn start_clustered_jetstream_if_asked(&self) -> Option<Arc<ClusterJs>> {
        if self.state.cluster.is_none() || !self.state.config.jetstream {
            return None;
        }
        match self.start_clustered_jetstream().await {
            Ok(cluster) => {
                tracing::info!("Starting JetStream cluster");
                Some(cluster)
            }
            Err(e) => {
                tracing::error!("JetStream cluster did not start, no request is answered: {e}");
                None
            }
        }
    }

    /// Starts the meta group's member and hands every account's JetStream to it. Called once
    /// routes are accepted, on the runtime.
    pub async fn start_clustered_jetstream(&self) -> Result<Arc<ClusterJs>, ClusterJsError> {
        let path = self.state.config.store_dir.join(META_DIR);
        let disk = RaftDisk::open(&path).map_err(|error| ClusterJsError::Store {
            path: path.display().to_string(),
            error,
        })?;
        let record = host::HostRecord::open(&disk.db).map_err(|error| ClusterJsError::Store {
            path: path.display().to_string(),
            error,
        })?;
        let mut meta = self.start_meta_group(&disk).await?;
        let events = meta.events.take();
        let routes = self
            .state
            .cluster
            .clone()
            .ok_or(MetaGroupError::NoCluster)?;
        let system = {
            let accounts = &self.state.accounts;
            accounts
                .get(accounts.system_account())
                .ok_or(MetaGroupError::NoCluster)?
                .router
                .clone()
        };
        let proposer = self.raft_transport().ok_or(MetaGroupError::NoCluster)?;
        let cluster = Arc::new(ClusterJs {
            raft: meta.group.raft.clone(),
            meta_seen: meta.group.seen.clone(),
            me_id: meta.group.me,
            catalog: meta.catalog.clone(),
            me: routes.server_name().to_owned(),
            cluster_name: routes.name().name,
            routes,
            system: system.clone(),
            proposer,
            runtime: tokio::runtime::Handle::current(),
            tasks: Default::default(),
            leaderless_since: std::sync::Mutex::new(Some(std::time::Instant::now())),
            held_out: meta.held_out.clone(),
            meta: tokio::sync::Mutex::new(Some(meta)),
            disk: disk.clone(),
            stream_groups: Default::default(),
        });
        let accounts = self.state.clone();
        let answer: requests::Answerer = Arc::new(move |what, request| {
            let js = accounts.accounts.get(&request.account)?.jetstream.clone()?;
            js.gather_answer(what, request.subject.as_deref())
        });
        let mut tasks = vec![
            requests::serve(system, cluster.raft.clone(), answer),
            meta_ops::serve(cluster.clone()),
        ];
        if let Some(events) = events {
            tasks.push(tokio::spawn(host::run(
                self.state.clone(),
                Arc::downgrade(&cluster),
                record,
                events,
            )));
        }
        let mut joined = Vec::new();
        for (_, js) in self.state.accounts.jetstreams() {
            js.join_cluster(cluster.clone());
            joined.push(js);
        }
        // The replicated streams this server held before it stopped rejoin their groups.
        let rejoining = cluster.clone();
        tasks.push(tokio::spawn(async move {
            for js in joined {
                let streams = {
                    let js = js.clone();
                    tokio::task::spawn_blocking(move || js.replicated_streams()).await
                };
                for entry in streams.unwrap_or_default() {
                    rejoining.start_stream_group(&js, &entry, None, None).await;
                }
            }
        }));
        *cluster.tasks.lock().unwrap_or_else(|p| p.into_inner()) = tasks;
        let _ = self.state.clustered_js.set(cluster.clone());
        Ok(cluster)
    }
}
