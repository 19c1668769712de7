//! An R3 stream under faults, checked as a user would count it (issue 20): a publisher with
//! message ids publishes one message after another, retrying each until it is acknowledged,
//! while, in turn, the stream's leader is killed with kill -9 and restarted on its store, a
//! follower is, and the leader is paused with SIGSTOP for longer than an election takes.
//! A replicated durable is consumed meanwhile, each message acknowledged with AckSync.
//! Then every replica must hold the same messages, and the checker counts what the issue
//! names: acknowledged and lost, stored twice, acknowledged out of order, never consumed,
//! and delivered again after its ack was answered. All must be 0.
//!
//! The stream's group snapshots every 64 entries, so a restarted member has missed entries
//! its group no longer keeps and catches up from a snapshot and a peer's store.
//!
//! The short variant runs in CI; `JETLOG_R3_FAULTS=<n>` runs `n` kills, with 150 messages
//! between them (docs/reliability.md records long runs).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use common::js_cluster::{api, cluster, connect, until_answered};
use common::monitor::get_json;
use common::r3::{ack_sync, restart_member, server_index, stored_body};
use common::TestServer;
use futures::StreamExt;
use serde_json::{json, Value};

const BETWEEN_FAULTS: u64 = 150;
/// How often the servers' stream groups take a snapshot (see `stream_groups.rs`).
const SNAPSHOT_ENV: &str = "JETLOG_STREAM_SNAPSHOT_ENTRIES";
/// How long a paused leader stays stopped: longer than an election takes.
const PAUSE: Duration = Duration::from_secs(4);
/// How long one message may take to be acknowledged, retries included (a failover).
const ACK_WITHIN: Duration = Duration::from_secs(60);

fn faults() -> u64 {
    std::env::var("JETLOG_R3_FAULTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

/// A JetStream context on a client that follows the cluster's servers as they come and go.
async fn jetstream_of(urls: Vec<String>) -> jetstream::Context {
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(urls)
        .await
        .expect("connect");
    jetstream::new(client)
}

/// Publishes `count` messages in order, each retried until acknowledged; returns each
/// message's acknowledged sequence, in publishing order.
async fn publisher(urls: Vec<String>, count: u64, published: Arc<AtomicU64>) -> Vec<u64> {
    let js = jetstream_of(urls).await;
    let mut acked = Vec::new();
    for n in 0..count {
        let deadline = Instant::now() + ACK_WITHIN;
        loop {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", format!("m{n}").as_str());
            let sent = js
                .publish_with_headers("faults.x", headers, n.to_string().into())
                .await;
            if let Ok(ack) = sent {
                let ack = tokio::time::timeout(
                    Duration::from_secs(3),
                    std::future::IntoFuture::into_future(ack),
                )
                .await;
                if let Ok(Ok(ack)) = ack {
                    acked.push(ack.sequence);
                    break;
                }
            }
            assert!(Instant::now() < deadline, "message {n} never acknowledged");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        published.store(n + 1, Ordering::Release);
    }
    acked
}

/// What the checking consumer saw: messages whose AckSync was answered, those whose AckSync
/// went unanswered (a failover: the ack may or may not have been committed), and how many
/// times a message came again after its AckSync was answered.
#[derive(Default)]
struct Consumed {
    acked: BTreeSet<u64>,
    unsure: BTreeSet<u64>,
    acked_then_redelivered: u64,
}

/// Pulls from the replicated durable CHECK until every message has come and been
/// acknowledged (answered or not), or until `ACK_WITHIN` after the publisher finished; each
/// message is acknowledged with AckSync, and counts as acknowledged only once the server
/// answered (`ack_sync`: a "no responders" status is no answer).
async fn consumer(urls: Vec<String>, count: u64, finished: Arc<AtomicU64>) -> Consumed {
    let js = jetstream_of(urls).await;
    let mut seen = Consumed::default();
    let mut done_at: Option<Instant> = None;
    while ((seen.acked.len() + seen.unsure.len()) as u64) < count {
        if finished.load(Ordering::Acquire) == 1 {
            let at = *done_at.get_or_insert_with(Instant::now);
            if at.elapsed() > ACK_WITHIN {
                break;
            }
        }
        let pulled = async {
            let stream = js.get_stream("FAULTS").await.ok()?;
            let consumer: jetstream::consumer::PullConsumer =
                stream.get_consumer("CHECK").await.ok()?;
            consumer
                .batch()
                .max_messages(50)
                .expires(Duration::from_secs(2))
                .messages()
                .await
                .ok()
        };
        let Ok(Some(mut batch)) = tokio::time::timeout(Duration::from_secs(3), pulled).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        loop {
            let next = tokio::time::timeout(Duration::from_secs(3), batch.next()).await;
            let Ok(Some(Ok(msg))) = next else {
                break;
            };
            let n: u64 = String::from_utf8_lossy(&msg.payload)
                .parse()
                .expect("a message number");
            if seen.acked.contains(&n) {
                seen.acked_then_redelivered += 1;
                let info = msg.info().map(|i| (i.stream_sequence, i.delivered)).ok();
                println!(
                    "message {n} came again after its ack was answered: (seq, delivered) {info:?}"
                );
                continue;
            }
            match ack_sync(&msg).await {
                Ok(()) => {
                    seen.unsure.remove(&n);
                    seen.acked.insert(n);
                }
                _ => {
                    seen.unsure.insert(n);
                }
            }
        }
    }
    seen
}

fn signal(which: &str, pid: &str) {
    let status = std::process::Command::new("kill")
        .args([which, pid])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {which} {pid}");
}

async fn info_via(server: &TestServer) -> Value {
    let client = connect(server).await;
    until_answered(&client, "$JS.API.STREAM.INFO.FAULTS", json!({})).await
}

fn replica_messages(server: &TestServer) -> u64 {
    let port = server.monitor_port().expect("monitor");
    get_json(port, "/jsz")["messages"].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_r3_stream_loses_repeats_and_reorders_nothing_while_its_servers_are_killed_and_paused() {
    // The group snapshots every 64 entries and keeps 8 before the snapshot: a restarted
    // member has missed more than that, so it catches up from a snapshot and a peer's store.
    if std::env::var_os(SNAPSHOT_ENV).is_none() {
        std::env::set_var(SNAPSHOT_ENV, "64");
    }
    let (mut servers, clients) = cluster().await;
    let created = api(
        &clients[0],
        "$JS.API.STREAM.CREATE.FAULTS",
        json!({"name": "FAULTS", "subjects": ["faults.>"], "num_replicas": 3,
               "duplicate_window": 600_000_000_000u64}),
    )
    .await;
    assert!(created.get("error").is_none(), "{created}");
    // A durable with the stream's replicas; its ack wait is well beyond the 3 s an AckSync
    // is given, so a message is not delivered again while its answered ack is on its way.
    let check = api(
        &clients[0],
        "$JS.API.CONSUMER.CREATE.FAULTS.CHECK",
        json!({"stream_name": "FAULTS", "config": {"durable_name": "CHECK",
               "ack_policy": "explicit", "ack_wait": 10_000_000_000u64}}),
    )
    .await;
    assert_eq!(check["config"]["num_replicas"], 3, "{check}");
    drop(clients);

    let faults = faults();
    let count = (faults + 1) * BETWEEN_FAULTS;
    let urls: Vec<String> = servers.iter().map(TestServer::url).collect();
    let published = Arc::new(AtomicU64::new(0));
    let publishing = tokio::spawn(publisher(urls.clone(), count, published.clone()));
    let finished = Arc::new(AtomicU64::new(0));
    let consuming = tokio::spawn(consumer(urls, count, finished.clone()));

    for fault in 1..=faults {
        let deadline = Instant::now() + ACK_WITHIN;
        while published.load(Ordering::Acquire) < fault * BETWEEN_FAULTS {
            assert!(
                Instant::now() < deadline,
                "publishing stalled before fault {fault}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let leader = info_via(&servers[(fault as usize) % 3]).await["cluster"]["leader"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(!leader.is_empty(), "no leader to kill at fault {fault}");
        let lost = server_index(&leader);
        // In turn: the leader killed, a follower killed, the leader paused.
        match fault % 3 {
            0 => {
                let pid = servers[lost].pid().to_string();
                signal("-STOP", &pid);
                tokio::time::sleep(PAUSE).await;
                signal("-CONT", &pid);
            }
            kind => {
                let victim = match kind {
                    1 => lost,
                    _ => (lost + 1) % 3,
                };
                let name = format!("S{victim}");
                let store = servers.remove(victim).kill_and_take_store();
                // Down while a third of the messages between faults are stored: more
                // entries than its group keeps after a snapshot.
                let until = published.load(Ordering::Acquire) + BETWEEN_FAULTS / 3;
                let deadline = Instant::now() + ACK_WITHIN;
                while published.load(Ordering::Acquire) < until && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                let seed = servers[0].route_url();
                servers.insert(victim, restart_member(&name, Some(&seed), store));
            }
        }
    }
    let acked = tokio::time::timeout(ACK_WITHIN * 2, publishing)
        .await
        .expect("the publisher finished in time")
        .expect("the publisher");
    finished.store(1, Ordering::Release);

    // Every replica comes to hold the same number of messages.
    let deadline = Instant::now() + ACK_WITHIN;
    for server in &servers {
        while replica_messages(server) != count {
            assert!(
                Instant::now() < deadline,
                "a replica holds {} of {count}",
                replica_messages(server)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // Read the stream back through its leader.
    let client = connect(&servers[0]).await;
    let info = until_answered(&client, "$JS.API.STREAM.INFO.FAULTS", json!({})).await;
    let last = info["state"]["last_seq"].as_u64().expect("last_seq");
    let mut stored: BTreeMap<u64, String> = BTreeMap::new();
    for seq in 1..=last {
        let body = stored_body(&client, "FAULTS", seq).await;
        stored.insert(seq, String::from_utf8_lossy(&body).into_owned());
    }

    let mut lost = 0;
    let mut reordered = 0;
    for (n, seq) in acked.iter().enumerate() {
        if stored.get(seq).map(String::as_str) != Some(n.to_string().as_str()) {
            lost += 1;
        }
        if n > 0 && *seq <= acked[n - 1] {
            reordered += 1;
        }
    }
    let bodies: Vec<&String> = stored.values().collect();
    let distinct: BTreeSet<&String> = bodies.iter().copied().collect();
    let duplicated = bodies.len() - distinct.len();
    // The consumer: every message consumed (acknowledged, or its ack unanswered and never
    // delivered again), none delivered again after its ack was answered.
    let consumed = tokio::time::timeout(ACK_WITHIN * 2, consuming)
        .await
        .expect("the consumer finished in time")
        .expect("the consumer");
    let skipped = (0..count)
        .filter(|n| !consumed.acked.contains(n) && !consumed.unsure.contains(n))
        .count();
    let caught_up: usize = servers
        .iter()
        .map(|s| {
            s.log_lines()
                .iter()
                .filter(|l| l.contains("caught up"))
                .count()
        })
        .sum();
    println!(
        "faults {faults}, acknowledged {}, stored {}: lost {lost}, duplicated {duplicated}, reordered {reordered}; consumed {} (ack unanswered {}): skipped {skipped}, acked-then-redelivered {}; catch-ups from a snapshot {caught_up}",
        acked.len(),
        stored.len(),
        consumed.acked.len(),
        consumed.unsure.len(),
        consumed.acked_then_redelivered,
    );
    assert_eq!(acked.len() as u64, count);
    assert_eq!((lost, duplicated, reordered), (0, 0, 0));
    assert_eq!((skipped, consumed.acked_then_redelivered), (0, 0));
    assert_eq!(
        stored.len() as u64,
        count,
        "nothing stored that was not published"
    );
}
