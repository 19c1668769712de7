//! A Raft group run by the servers themselves: three jetlog servers in one process, in a
//! route mesh on 127.0.0.1, each running one member whose RPCs go through its own router in
//! the system account (`server::raft_link`), not through a client connection. The group
//! must elect, replicate in order, and fail over when the leader's server stops, with
//! nothing committed lost or repeated.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use jetlog::raft::group::RaftGroup;
use jetlog::raft::log_store::RaftDisk;
use jetlog::raft::types::{node_id, Command, NodeId};
use openraft::{BasicNode, ServerState};
use raft_support::Journal;
use tokio::task::JoinHandle;

mod in_process_support;
mod raft_support;

use in_process_support::{bind_clustered, Running};

const GROUP: &str = "_meta_";
/// Bound on an election, a replication or a failover in this test.
const CONVERGE: Duration = Duration::from_secs(20);

/// One server of the mesh and its member of the group.
struct Node {
    id: NodeId,
    group: RaftGroup<Journal>,
    serving: JoinHandle<()>,
    running: Running,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl Node {
    async fn start(name: &str, seed: Option<std::net::SocketAddr>) -> (Node, std::net::SocketAddr) {
        let (server, store, addr) = bind_clustered(name, "raft", seed).await;
        let raft_dir = tempfile::tempdir().expect("raft dir");
        let disk = RaftDisk::open(raft_dir.path()).expect("sled");
        let id = node_id(name);
        let transport = server.raft_transport().expect("system account");
        let group = RaftGroup::start(&disk, GROUP, id, transport, Journal::default())
            .await
            .expect("group starts");
        let serving = server
            .serve_raft(GROUP, id, group.raft.clone())
            .expect("system account");
        let running = Running::start(server);
        let node = Node {
            id,
            group,
            serving,
            running,
            _dirs: (store, raft_dir),
        };
        (node, addr)
    }

    async fn journal(&self) -> Vec<u64> {
        self.group.state.read(|j| j.0.clone()).await
    }

    async fn stop(self) {
        self.serving.abort();
        let _ = self.group.raft.shutdown().await;
        self.running.stop().await;
    }
}

async fn leader_among(nodes: &[&Node]) -> NodeId {
    let deadline = Instant::now() + CONVERGE;
    loop {
        for n in nodes {
            if n.group.raft.metrics().borrow().state == ServerState::Leader {
                return n.id;
            }
        }
        assert!(Instant::now() < deadline, "no leader within {CONVERGE:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn propose(leader: &Node, from: u64, to: u64) {
    for n in from..to {
        let write = leader
            .group
            .raft
            .client_write(Command(n.to_be_bytes().to_vec()));
        tokio::time::timeout(CONVERGE, write)
            .await
            .expect("committed in time")
            .expect("committed");
    }
}

async fn wait_for(nodes: &[&Node], want: &[u64]) {
    let deadline = Instant::now() + CONVERGE;
    for n in nodes {
        while n.journal().await != want {
            assert!(
                Instant::now() < deadline,
                "node {:x} has {:?}",
                n.id,
                n.journal().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_run_a_group_over_their_own_routes_and_fail_over() {
    let (a, seed) = Node::start("r1", None).await;
    let (b, _) = Node::start("r2", Some(seed)).await;
    let (c, _) = Node::start("r3", Some(seed)).await;
    let members: BTreeMap<NodeId, BasicNode> = [&a, &b, &c]
        .iter()
        .map(|n| (n.id, BasicNode::default()))
        .collect();
    // The routes may take a moment: initialising is retried until the mesh carries it.
    let deadline = Instant::now() + CONVERGE;
    while let Err(e) = a.group.initialize(members.clone()).await {
        assert!(Instant::now() < deadline, "initialize: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut nodes = vec![a, b, c];
    let leader = leader_among(&nodes.iter().collect::<Vec<_>>()).await;
    let at = nodes.iter().position(|n| n.id == leader).expect("leader");
    propose(&nodes[at], 0, 50).await;
    let first: Vec<u64> = (0..50).collect();
    wait_for(&nodes.iter().collect::<Vec<_>>(), &first).await;

    // The leader's server stops: the other two elect a new leader and go on.
    let old = nodes.remove(at);
    old.stop().await;
    let rest: Vec<&Node> = nodes.iter().collect();
    let started = Instant::now();
    let leader = leader_among(&rest).await;
    let failover = started.elapsed();
    let at = nodes.iter().position(|n| n.id == leader).expect("leader");
    propose(&nodes[at], 50, 80).await;
    let all: Vec<u64> = (0..80).collect();
    wait_for(&nodes.iter().collect::<Vec<_>>(), &all).await;
    eprintln!("failover through the servers' own routes took {failover:?}");
    for n in nodes {
        n.stop().await;
    }
}
