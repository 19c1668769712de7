//! The JetStream meta group forming itself from the route mesh (`server::meta_group`): three
//! jetlog servers in one process, none told who the members are, form one group; a fourth
//! that joins later becomes a voter; the group's catalog replicates to all; and when the
//! leader's server stops the others elect a new leader that still has every assignment.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use jetlog::jetstream::assignments::{MetaCommand, Placement, StreamAssignment};
use jetlog::raft::log_store::RaftDisk;
use jetlog::raft::types::{node_id, Command, NodeId};
use jetlog::server::meta_group::MetaGroup;

/// Bound on forming, growing and failing over in this test.
mod in_process_support;

use in_process_support::{bind_clustered, Running};

const CONVERGE: Duration = Duration::from_secs(30);

struct Node {
    name: String,
    meta: MetaGroup,
    running: Running,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl Node {
    async fn start(name: &str, seed: Option<std::net::SocketAddr>) -> (Node, std::net::SocketAddr) {
        let (server, store, addr) = bind_clustered(name, "meta", seed).await;
        let raft_dir = tempfile::tempdir().expect("raft dir");
        let disk = RaftDisk::open(raft_dir.path()).expect("sled");
        let meta = server.start_meta_group(&disk).await.expect("meta group");
        let running = Running::start(server);
        let node = Node {
            name: name.to_owned(),
            meta,
            running,
            _dirs: (store, raft_dir),
        };
        (node, addr)
    }

    fn voters(&self) -> BTreeSet<NodeId> {
        let metrics = self.meta.group.raft.metrics().borrow().clone();
        let voters = metrics.membership_config.membership().voter_ids().collect();
        voters
    }

    fn leader(&self) -> Option<NodeId> {
        self.meta.group.raft.metrics().borrow().current_leader
    }

    async fn has_stream(&self, name: &str) -> bool {
        let name = name.to_owned();
        self.meta
            .group
            .state
            .read(move |m| m.catalog().stream("APP", &name).is_some())
            .await
    }

    async fn stop(self) {
        self.meta.stop().await;
        self.running.stop().await;
    }
}

/// Waits (bounded) until every node sees `voters` and the same leader among them.
async fn converged(nodes: &[Node], voters: &BTreeSet<NodeId>) -> NodeId {
    let deadline = Instant::now() + CONVERGE;
    loop {
        let leaders: BTreeSet<Option<NodeId>> = nodes.iter().map(Node::leader).collect();
        let agreed = nodes.iter().all(|n| n.voters() == *voters);
        if let (true, [Some(leader)]) = (agreed, leaders.iter().collect::<Vec<_>>().as_slice()) {
            if voters.contains(leader) {
                return *leader;
            }
        }
        assert!(
            Instant::now() < deadline,
            "not converged: {:?}",
            nodes
                .iter()
                .map(|n| (n.name.clone(), n.voters().len(), n.leader()))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn assign(name: &str) -> Command {
    let stream = StreamAssignment {
        account: "APP".into(),
        name: name.into(),
        config: format!(r#"{{"name":"{name}"}}"#),
        placement: Placement {
            group: String::new(),
            peers: vec!["m1".into()],
            preferred: None,
        },
        created_ns: 1,
        consumers: Default::default(),
    };
    let command = MetaCommand::AssignStream {
        stream,
        update: false,
        reply: None,
    };
    Command(serde_json::to_vec(&command).expect("encode"))
}

async fn propose(nodes: &[Node], leader: NodeId, command: Command) {
    let node = nodes
        .iter()
        .find(|n| node_id(&n.name) == leader)
        .expect("leader is a node");
    let write = node.meta.group.raft.client_write(command);
    tokio::time::timeout(CONVERGE, write)
        .await
        .expect("committed in time")
        .expect("committed");
}

async fn all_have(nodes: &[Node], stream: &str) {
    let deadline = Instant::now() + CONVERGE;
    for n in nodes {
        while !n.has_stream(stream).await {
            assert!(Instant::now() < deadline, "{} lacks {stream}", n.name);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_meta_group_forms_from_the_mesh_grows_and_fails_over() {
    let (m1, seed) = Node::start("m1", None).await;
    let (m2, _) = Node::start("m2", Some(seed)).await;
    let (m3, _) = Node::start("m3", Some(seed)).await;
    let mut nodes = vec![m1, m2, m3];
    let three: BTreeSet<NodeId> = ["m1", "m2", "m3"].iter().map(|n| node_id(n)).collect();
    let leader = converged(&nodes, &three).await;
    propose(&nodes, leader, assign("ORDERS")).await;
    all_have(&nodes, "ORDERS").await;

    // A server that joins later is caught up and made a voter.
    let (m4, _) = Node::start("m4", Some(seed)).await;
    nodes.push(m4);
    let four: BTreeSet<NodeId> = three.iter().copied().chain([node_id("m4")]).collect();
    let leader = converged(&nodes, &four).await;
    all_have(&nodes, "ORDERS").await;

    // The leader's server stops: three of four are a quorum and go on.
    let at = nodes
        .iter()
        .position(|n| node_id(&n.name) == leader)
        .expect("leader");
    nodes.remove(at).stop().await;
    let deadline = Instant::now() + CONVERGE;
    let leader = loop {
        let leaders: BTreeSet<Option<NodeId>> = nodes.iter().map(Node::leader).collect();
        if let [Some(new)] = leaders.iter().collect::<Vec<_>>().as_slice() {
            if *new != leader {
                break *new;
            }
        }
        assert!(Instant::now() < deadline, "no new leader");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    propose(&nodes, leader, assign("PAYMENTS")).await;
    all_have(&nodes, "PAYMENTS").await;
    all_have(&nodes, "ORDERS").await;
    for n in nodes {
        n.stop().await;
    }
}
