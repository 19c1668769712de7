//! A replicated stream's Raft group, run by three jetlog servers in one process over their
//! own routes: each member applies the committed entries to its own replica of the stream
//! (`jetstream::replica_machine`). The leader's proposals come back as PubAcks; when the
//! leader's server stops, the others elect and go on; when it starts again on the same
//! directories, its store is brought back to its checkpoint and it catches up from the
//! group's log. At the end every replica holds the same messages, byte for byte, every
//! acknowledged sequence is stored once, and no sequence was acknowledged twice.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use jetlog::jetstream::api_types::PubAck;
use jetlog::jetstream::replica::{rewind_store, RoundEntry};
use jetlog::jetstream::replica_consumers::ConsumerOp;
use jetlog::jetstream::replica_machine::{decode_acks, ReplicaHost, ReplicaMachine};
use jetlog::jetstream::replica_snapshot::StreamSnapshot;
use jetlog::jetstream::replica_stream_ops::{StreamOp, StreamOpOutcome};
use jetlog::jetstream::{Stream, StreamConfig};
use jetlog::protocol::Publish;
use jetlog::raft::group::{Compaction, RaftGroup};
use jetlog::raft::log_store::RaftDisk;
use jetlog::raft::types::{node_id, Command, NodeId};
use jetlog::store::SyncPolicy;
use openraft::{BasicNode, ServerState};
use tokio::task::JoinHandle;

mod in_process_support;

use in_process_support::{bind_clustered, Running};

const GROUP: &str = "S-orders";
/// Bound on an election, a replication or a catch-up in this test.
const CONVERGE: Duration = Duration::from_secs(20);

fn config() -> StreamConfig {
    serde_json::from_str::<StreamConfig>(
        r#"{"name":"ORDERS","subjects":["orders.>"],"duplicate_window":60000000000}"#,
    )
    .expect("parses")
    .normalized()
    .expect("valid")
}

struct Host(Arc<Mutex<Stream>>);

impl ReplicaHost for Host {
    fn apply_round(&self, index: u64, entry: &RoundEntry) -> Vec<PubAck> {
        let mut stream = self.0.lock().unwrap_or_else(|p| p.into_inner());
        stream.apply_round(index, entry).0
    }

    fn apply_consumers(&self, index: u64, op: &ConsumerOp) {
        panic!("this test proposes no consumer entries, yet entry {index} is {op:?}");
    }

    fn apply_stream_op(&self, index: u64, op: &StreamOp) -> StreamOpOutcome {
        panic!("this test proposes no stream entries, yet entry {index} is {op:?}");
    }

    fn snapshot(&self) -> Result<StreamSnapshot, String> {
        let stream = self.0.lock().unwrap_or_else(|p| p.into_inner());
        stream.snapshot().map_err(|e| e.description)
    }

    /// The groups here keep their whole log (`Compaction::KeepLog`): none is sent a snapshot.
    fn catch_up(&self, index: u64, _: StreamSnapshot) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(std::future::ready(Err(format!(
            "this test's groups keep their log, yet a snapshot at {index} was sent"
        ))))
    }
}

/// A member's directories, kept across its restarts.
struct Dirs {
    stream: PathBuf,
    raft: PathBuf,
    _root: tempfile::TempDir,
}

impl Dirs {
    fn new() -> Dirs {
        let root = tempfile::tempdir().expect("dir");
        Dirs {
            stream: root.path().join("stream"),
            raft: root.path().join("raft"),
            _root: root,
        }
    }
}

struct Node {
    name: &'static str,
    id: NodeId,
    stream: Arc<Mutex<Stream>>,
    group: RaftGroup<ReplicaMachine<Host>>,
    serving: JoinHandle<()>,
    running: Running,
    addr: std::net::SocketAddr,
    _store: tempfile::TempDir,
}

impl Node {
    async fn start(name: &'static str, dirs: &Dirs, seed: Option<std::net::SocketAddr>) -> Node {
        let (server, store, addr) = bind_clustered(name, "sg", seed).await;
        let checkpoint = rewind_store(&dirs.stream, &config()).expect("rewind");
        let stream = Stream::open(&dirs.stream, config(), 0, SyncPolicy::Always, 0).expect("open");
        let stream = Arc::new(Mutex::new(stream));
        let disk = RaftDisk::open(&dirs.raft).expect("sled");
        let id = node_id(name);
        let machine =
            ReplicaMachine::new(Host(stream.clone()), checkpoint, "\"ORDERS\"".to_owned());
        let transport = server.raft_transport().expect("system account");
        let group =
            RaftGroup::start_with(&disk, GROUP, id, transport, machine, Compaction::KeepLog)
                .await
                .expect("group starts");
        let serving = server
            .serve_raft(GROUP, id, group.raft.clone())
            .expect("system account");
        Node {
            name,
            id,
            stream,
            group,
            serving,
            running: Running::start(server),
            addr,
            _store: store,
        }
    }

    async fn stop(self) {
        self.serving.abort();
        let _ = self.group.raft.shutdown().await;
        self.running.stop().await;
    }

    fn contents(&self) -> Vec<(u64, String, Bytes, Bytes)> {
        let stream = self.stream.lock().unwrap_or_else(|p| p.into_inner());
        stream
            .log()
            .scan(0, &[], usize::MAX)
            .expect("scan")
            .into_iter()
            .map(|m| (m.seq, m.subject, m.headers, m.payload))
            .collect()
    }

    fn last_seq(&self) -> u64 {
        self.stream
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .log()
            .last_seq()
    }
}

async fn leader_among<'a>(nodes: &[&'a Node]) -> &'a Node {
    let deadline = Instant::now() + CONVERGE;
    loop {
        for n in nodes {
            if n.group.raft.metrics().borrow().state == ServerState::Leader {
                return n;
            }
        }
        assert!(Instant::now() < deadline, "no leader within {CONVERGE:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn publish(subject: &str, msg_id: &str, payload: &str) -> Publish {
    Publish {
        subject: Bytes::copy_from_slice(subject.as_bytes()),
        reply: None,
        headers: Some(Bytes::from(format!(
            "NATS/1.0\r\nNats-Msg-Id: {msg_id}\r\n\r\n"
        ))),
        payload: Bytes::copy_from_slice(payload.as_bytes()),
    }
}

/// Proposes `rounds` entries of three publishes each, the third repeating the first's
/// message id; records every acknowledged sequence.
async fn propose(leader: &Node, first_round: u64, rounds: u64, acked: &mut BTreeMap<u64, String>) {
    for round in first_round..first_round + rounds {
        let entry = RoundEntry {
            now_ns: 1_700_000_000_000_000_000 + round * 1_000_000,
            publishes: vec![
                publish(
                    "orders.new",
                    &format!("a{round}"),
                    &format!("first of {round}"),
                ),
                publish(
                    "orders.paid",
                    &format!("b{round}"),
                    &format!("second of {round}"),
                ),
                publish("orders.new", &format!("a{round}"), "a duplicate"),
            ],
        };
        let write = leader.group.raft.client_write(Command(entry.encode()));
        let response = tokio::time::timeout(CONVERGE, write)
            .await
            .expect("committed in time")
            .expect("committed");
        let acks = decode_acks(&response.data.0).expect("acks");
        assert_eq!(acks.len(), 3, "round {round}");
        let seq = |ack: &Bytes| -> u64 {
            let v: serde_json::Value = serde_json::from_slice(ack).expect("ack JSON");
            assert_eq!(v["stream"], "ORDERS", "{v}");
            v["seq"].as_u64().expect("seq")
        };
        let duplicate: serde_json::Value = serde_json::from_slice(&acks[2]).expect("JSON");
        assert_eq!(duplicate["duplicate"], true, "round {round}: {duplicate}");
        assert_eq!(seq(&acks[2]), seq(&acks[0]), "round {round}");
        for (ack, payload) in acks[..2].iter().zip(["first", "second"]) {
            let previous = acked.insert(seq(ack), format!("{payload} of {round}"));
            assert_eq!(previous, None, "sequence {} acknowledged twice", seq(ack));
        }
    }
}

async fn wait_until_caught_up(nodes: &[&Node], last: u64) {
    let deadline = Instant::now() + CONVERGE;
    for n in nodes {
        while n.last_seq() < last {
            assert!(
                Instant::now() < deadline,
                "node {:x} stopped at {} of {last}",
                n.id,
                n.last_seq()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn check_acked(node: &Node, acked: &BTreeMap<u64, String>) {
    let contents = node.contents();
    let stored: BTreeSet<u64> = contents.iter().map(|m| m.0).collect();
    assert_eq!(
        stored,
        acked.keys().copied().collect::<BTreeSet<_>>(),
        "node {:x}: stored and acknowledged differ",
        node.id
    );
    for (seq, _, _, payload) in &contents {
        assert_eq!(
            payload,
            acked[seq].as_bytes(),
            "node {:x}, seq {seq}",
            node.id
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_group_replicates_fails_over_and_a_restarted_replica_catches_up() {
    let dirs: Vec<Dirs> = (0..3).map(|_| Dirs::new()).collect();
    let n0 = Node::start("sg0", &dirs[0], None).await;
    let n1 = Node::start("sg1", &dirs[1], Some(n0.addr)).await;
    let n2 = Node::start("sg2", &dirs[2], Some(n0.addr)).await;
    let members: BTreeMap<NodeId, BasicNode> = [n0.id, n1.id, n2.id]
        .into_iter()
        .map(|id| (id, BasicNode::default()))
        .collect();
    n0.group.initialize(members).await.expect("initialize");

    let mut acked = BTreeMap::new();
    let leader = leader_among(&[&n0, &n1, &n2]).await;
    propose(leader, 0, 20, &mut acked).await;
    assert_eq!(acked.len(), 40);
    wait_until_caught_up(&[&n0, &n1, &n2], 40).await;

    // The leader's server stops; the other two elect and go on.
    let leader_id = leader.id;
    let mut nodes = vec![n0, n1, n2];
    let pos = nodes
        .iter()
        .position(|n| n.id == leader_id)
        .expect("leader");
    let stopped = nodes.remove(pos);
    let (stopped_name, stopped_dirs) = (stopped.name, &dirs[pos]);
    stopped.stop().await;
    let survivors: Vec<&Node> = nodes.iter().collect();
    let leader = leader_among(&survivors).await;
    propose(leader, 20, 20, &mut acked).await;
    assert_eq!(acked.len(), 80);
    wait_until_caught_up(&survivors, 80).await;

    // Back on the same directories: it catches up from the group's log.
    let back = Node::start(stopped_name, stopped_dirs, Some(nodes[0].addr)).await;
    wait_until_caught_up(&[&back], 80).await;
    for node in nodes.iter().chain([&back]) {
        check_acked(node, &acked);
    }
    assert_eq!(nodes[0].contents(), back.contents());
    assert_eq!(nodes[1].contents(), back.contents());
    for node in nodes {
        node.stop().await;
    }
    back.stop().await;
}
