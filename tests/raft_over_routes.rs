//! A Raft group whose members talk through a real jetlog cluster: three server processes in
//! a route mesh, one group member on a client connection to each. The group must elect a
//! leader, replicate in order, fail over when the leader's server is killed with nothing
//! committed lost or duplicated, refuse to commit on the side without a quorum, and let a
//! restarted member catch up from its own disk.

mod common;
mod raft_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::cluster::start_cluster;
use jetlog::raft::group::RaftGroup;
use jetlog::raft::log_store::RaftDisk;
use jetlog::raft::nats_transport::{serve, NatsTransport};
use jetlog::raft::types::{node_id, Command, NodeId};
use openraft::{BasicNode, ServerState};
use raft_support::Journal;
use tokio::task::JoinHandle;

const GROUP: &str = "journal";
/// Bound on an election, a replication or a failover in this test.
const CONVERGE: Duration = Duration::from_secs(20);

struct Member {
    name: String,
    id: NodeId,
    client: async_nats::Client,
    group: RaftGroup<Journal>,
    serving: JoinHandle<()>,
    dir: tempfile::TempDir,
}

impl Member {
    /// Connects to `url` only (a member runs with its server and goes down with it) and
    /// starts, or resumes from `dir`, the member named `name`.
    async fn start(name: &str, url: &str, dir: tempfile::TempDir) -> Member {
        let client = async_nats::ConnectOptions::new()
            .ignore_discovered_servers()
            .connect(url)
            .await
            .expect("connect");
        let disk = open_disk(dir.path()).await;
        let id = node_id(name);
        let group = RaftGroup::start(
            &disk,
            GROUP,
            id,
            NatsTransport(client.clone()),
            Journal::default(),
        )
        .await
        .expect("group starts");
        let serving = serve(client.clone(), GROUP, id, group.raft.clone())
            .await
            .expect("serve");
        client.flush().await.expect("flush");
        Member {
            name: name.to_owned(),
            id,
            client,
            group,
            serving,
            dir,
        }
    }

    async fn journal(&self) -> Vec<u64> {
        self.group.state.read(|j| j.0.clone()).await
    }

    async fn stop(self) -> tempfile::TempDir {
        self.serving.abort();
        let _ = self.group.raft.shutdown().await;
        drop(self.client);
        self.dir
    }
}

/// Opens a member's store; a stopped member's tasks may hold its sled lock a moment longer.
async fn open_disk(path: &std::path::Path) -> RaftDisk {
    let deadline = Instant::now() + CONVERGE;
    loop {
        match RaftDisk::open(path) {
            Ok(disk) => return disk,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("sled open: {e}"),
        }
    }
}

async fn leader_among(members: &[&Member]) -> NodeId {
    let deadline = Instant::now() + CONVERGE;
    loop {
        for m in members {
            let metrics = m.group.raft.metrics().borrow().clone();
            if metrics.state == ServerState::Leader {
                return m.id;
            }
        }
        assert!(Instant::now() < deadline, "no leader within {CONVERGE:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn write(member: &Member, values: std::ops::Range<u64>) -> u64 {
    let mut last = 0;
    for v in values {
        let written = tokio::time::timeout(
            CONVERGE,
            member
                .group
                .raft
                .client_write(Command(v.to_be_bytes().to_vec())),
        )
        .await
        .expect("write within bound")
        .expect("write committed");
        last = written.log_id.index;
    }
    last
}

async fn wait_applied(member: &Member, index: u64) {
    member
        .group
        .raft
        .wait(Some(CONVERGE))
        .applied_index_at_least(Some(index), "applied")
        .await
        .unwrap_or_else(|e| panic!("{} did not apply {index}: {e}", member.name));
}

/// Three servers in a mesh, a member on each, the group initialized.
async fn start_group() -> (Vec<common::TestServer>, Vec<Member>) {
    let servers = start_cluster(3);
    let mut members = Vec::new();
    for (i, server) in servers.iter().enumerate() {
        let dir = tempfile::tempdir().expect("dir");
        members.push(Member::start(&format!("S{i}"), &server.url(), dir).await);
    }
    // Each member's subscription must be known on every server before the first vote.
    for a in &members {
        for b in &members {
            common::cluster::interest_reached(&a.client, &b.client).await;
        }
    }
    let voters: BTreeMap<NodeId, BasicNode> = members
        .iter()
        .map(|m| (m.id, BasicNode::new(&m.name)))
        .collect();
    members[0]
        .group
        .initialize(voters)
        .await
        .expect("initialize");
    (servers, members)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_over_routes_fails_over_without_losing_or_repeating_a_commit() {
    let (mut servers, mut members) = start_group().await;
    let all: Vec<&Member> = members.iter().collect();
    let first_leader = leader_among(&all).await;
    let leader = members
        .iter()
        .position(|m| m.id == first_leader)
        .expect("leader is a member");
    let last = write(&members[leader], 0..50).await;
    for m in &members {
        wait_applied(m, last).await;
        assert_eq!(
            m.journal().await,
            (0..50).collect::<Vec<_>>(),
            "{} journal",
            m.name
        );
    }

    // Kill -9 the leader's server: its member is cut off from the others.
    let killed_at = Instant::now();
    drop(servers.remove(leader).kill_and_take_store());
    let cut_off = members.remove(leader);
    let survivors: Vec<&Member> = members.iter().collect();
    let second_leader = leader_among(&survivors).await;
    let failover = killed_at.elapsed();
    eprintln!("failover over routes took {failover:?}");
    assert_ne!(second_leader, first_leader);

    // The cut-off member cannot commit anything on its own.
    let alone = tokio::time::timeout(
        Duration::from_secs(3),
        cut_off
            .group
            .raft
            .client_write(Command(999u64.to_be_bytes().to_vec())),
    )
    .await;
    assert!(
        !matches!(alone, Ok(Ok(_))),
        "a member without a quorum committed a write"
    );

    let new_leader = members
        .iter()
        .find(|m| m.id == second_leader)
        .expect("leader");
    let last = write(new_leader, 50..100).await;
    for m in &members {
        wait_applied(m, last).await;
        assert_eq!(
            m.journal().await,
            (0..100).collect::<Vec<_>>(),
            "{} journal",
            m.name
        );
    }

    // Restart the follower from its own disk: it resumes, and catches up on what it missed.
    let follower = members
        .iter()
        .position(|m| m.id != second_leader)
        .expect("follower");
    let restarted = members.remove(follower);
    let (name, url) = (restarted.name.clone(), servers[follower].url());
    let dir = restarted.stop().await;
    let leader = &members[0];
    // With one of three down and one stopped the leader has no quorum: nothing commits until
    // the follower is back.
    let resumed = Member::start(&name, &url, dir).await;
    common::cluster::interest_reached(&leader.client, &resumed.client).await;
    let last = write(leader, 100..120).await;
    wait_applied(&resumed, last).await;
    assert_eq!(resumed.journal().await, (0..120).collect::<Vec<_>>());
    assert_eq!(leader.journal().await, (0..120).collect::<Vec<_>>());
    let _ = cut_off.stop().await;
}

/// Not a test: how many 128-byte commands a group over routes commits per second, one at a
/// a time and with many in flight. Run with `--ignored --nocapture`; figures go to
/// docs/benchmarks.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn commit_rate_over_routes() {
    const PAYLOAD: usize = 128;
    const RUN: Duration = Duration::from_secs(5);
    let (_servers, members) = start_group().await;
    let all: Vec<&Member> = members.iter().collect();
    let leader_id = leader_among(&all).await;
    let leader = members.iter().find(|m| m.id == leader_id).expect("leader");
    let command = |n: u64| {
        let mut bytes = n.to_be_bytes().to_vec();
        bytes.resize(PAYLOAD, b'x');
        Command(bytes)
    };
    let mut latencies = Vec::new();
    let started = Instant::now();
    while started.elapsed() < RUN {
        let t = Instant::now();
        leader
            .group
            .raft
            .client_write(command(0))
            .await
            .expect("write");
        latencies.push(t.elapsed());
    }
    latencies.sort();
    eprintln!(
        "one at a time: {} commits in {RUN:?}, p50 {:?}, p99 {:?}",
        latencies.len(),
        latencies[latencies.len() / 2],
        latencies[latencies.len() * 99 / 100]
    );
    for in_flight in [16u64, 256] {
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..in_flight {
            let raft = leader.group.raft.clone();
            tasks.push(tokio::spawn(async move {
                let mut done = 0u64;
                while started.elapsed() < RUN {
                    raft.client_write(command(done)).await.expect("write");
                    done += 1;
                }
                done
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.expect("task");
        }
        eprintln!(
            "{in_flight} in flight: {:.0} commits/s",
            total as f64 / started.elapsed().as_secs_f64()
        );
    }
}
