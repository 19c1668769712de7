//! An R3 stream under faults, checked as a user would count it (issue 20): a publisher with
//! message ids publishes one message after another, retrying each until it is acknowledged,
//! while, in turn, the stream's leader is killed with kill -9 and restarted on its store, a
//! follower is, and the leader is paused with SIGSTOP for longer than an election takes.
//! A replicated durable is consumed meanwhile, each message acknowledged with AckSync.
//! Then every replica must hold the same messages, and the checker counts what the issue
//! names: acknowledged and lost, stored twice, acknowledged out of order, never consumed,
//! and delivered again after its ack was answered. All must be 0.
//!
//! The servers' stream clocks disagree by up to three minutes (`JETLOG_FAULT_CLOCK_SKEW`),
//! so every failover is also a jump of the stream's clock.
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
/// Sets each server's stream clock off the machine's (`server::stream_clock`).
const SKEW_ENV: &str = "JETLOG_FAULT_CLOCK_SKEW";
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

/// The client URLs of the servers running now. A restarted server listens on a new port,
/// and async-nats learns a cluster's URLs only when it connects (it ignores the INFO
/// updates that tell them later), so a client whose every known server has since moved can
/// never reconnect: the publisher and the consumer connect again to these, as an
/// application would be pointed at the new servers. (Found when the killed servers began
/// to stay down longer: both stalled for good, "Disconnected", after a few faults.)
type LiveUrls = Arc<std::sync::Mutex<Vec<String>>>;

/// How long a client may stay disconnected before it connects again to the live URLs.
const RECONNECT_AFTER: Duration = Duration::from_secs(2);

/// A fresh context on the live servers if `js`'s client has been disconnected for
/// [`RECONNECT_AFTER`] (`since` tracks when it was first seen disconnected).
async fn reconnected(
    js: jetstream::Context,
    live: &LiveUrls,
    since: &mut Option<Instant>,
) -> jetstream::Context {
    if js.client().connection_state() != async_nats::connection::State::Disconnected {
        *since = None;
        return js;
    }
    let first = *since.get_or_insert_with(Instant::now);
    if first.elapsed() < RECONNECT_AFTER {
        return js;
    }
    *since = None;
    let urls = live.lock().unwrap_or_else(|p| p.into_inner()).clone();
    jetstream_of(urls).await
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
async fn publisher(live: LiveUrls, count: u64, published: Arc<AtomicU64>) -> Vec<u64> {
    let urls = live.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut js = jetstream_of(urls).await;
    let mut disconnected = None;
    let mut acked = Vec::new();
    for n in 0..count {
        let deadline = Instant::now() + ACK_WITHIN;
        // Why tries failed, and how often (for a failure's report).
        let mut failures: BTreeMap<String, u64> = BTreeMap::new();
        loop {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", format!("m{n}").as_str());
            let sent = js
                .publish_with_headers("faults.x", headers, n.to_string().into())
                .await;
            let why = match sent {
                Ok(ack) => {
                    let ack = tokio::time::timeout(
                        Duration::from_secs(3),
                        std::future::IntoFuture::into_future(ack),
                    )
                    .await;
                    match ack {
                        Ok(Ok(ack)) => {
                            acked.push(ack.sequence);
                            break;
                        }
                        Ok(Err(e)) => format!("ack: {e}"),
                        Err(_) => "no ack within 3 s".to_owned(),
                    }
                }
                Err(e) => format!("publish: {e}"),
            };
            *failures.entry(why).or_default() += 1;
            js = reconnected(js, &live, &mut disconnected).await;
            assert!(
                Instant::now() < deadline,
                "message {n} never acknowledged: {failures:?}, connection {:?}",
                js.client().connection_state()
            );
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
    /// Why pulls failed, and how often (for a failure's report).
    stalls: BTreeMap<String, u64>,
}

/// Pulls from the replicated durable CHECK until every message has come and been
/// acknowledged (answered or not), or until `ACK_WITHIN` after the publisher finished; each
/// message is acknowledged with AckSync, and counts as acknowledged only once the server
/// answered (`ack_sync`: a "no responders" status is no answer).
async fn consumer(live: LiveUrls, count: u64, finished: Arc<AtomicU64>) -> Consumed {
    let urls = live.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut js = jetstream_of(urls).await;
    let mut disconnected = None;
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
            let stream = js
                .get_stream("FAULTS")
                .await
                .map_err(|e| format!("stream info: {e}"))?;
            let consumer: jetstream::consumer::PullConsumer = stream
                .get_consumer("CHECK")
                .await
                .map_err(|e| format!("consumer info: {e}"))?;
            consumer
                .batch()
                .max_messages(50)
                .expires(Duration::from_secs(2))
                .messages()
                .await
                .map_err(|e| format!("pull: {e}"))
        };
        let mut batch = match tokio::time::timeout(Duration::from_secs(3), pulled).await {
            Ok(Ok(batch)) => batch,
            failed => {
                let why = match failed {
                    Ok(Err(e)) => e,
                    _ => "no answer within 3 s".to_owned(),
                };
                *seen.stalls.entry(why).or_default() += 1;
                js = reconnected(js, &live, &mut disconnected).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        loop {
            let next = tokio::time::timeout(Duration::from_secs(3), batch.next()).await;
            let msg = match next {
                Ok(Some(Ok(msg))) => msg,
                Ok(Some(Err(e))) => {
                    *seen.stalls.entry(format!("batch: {e}")).or_default() += 1;
                    break;
                }
                _ => break,
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

/// Writes every server's log, the killed ones' too, into a directory that outlives the
/// test, for a failure's report; returns its path.
fn keep_logs(servers: &[TestServer], killed: &[(String, Vec<String>)]) -> String {
    let dir = std::env::temp_dir().join(format!("jetlog-r3-faults-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let live = servers
        .iter()
        .map(|s| (format!("live-{}", s.pid()), s.log_lines()));
    for (name, lines) in killed.iter().cloned().chain(live) {
        let _ = std::fs::write(dir.join(format!("{name}.log")), lines.join("\n"));
    }
    dir.display().to_string()
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
    // The servers' clocks disagree by up to three minutes, so every failover is a jump of
    // the stream's clock, forward or back.
    if std::env::var_os(SKEW_ENV).is_none() {
        std::env::set_var(SKEW_ENV, "S0=0,S1=-90000,S2=90000");
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
    let live: LiveUrls = Arc::new(std::sync::Mutex::new(
        servers.iter().map(TestServer::url).collect(),
    ));
    let published = Arc::new(AtomicU64::new(0));
    let publishing = tokio::spawn(publisher(live.clone(), count, published.clone()));
    let finished = Arc::new(AtomicU64::new(0));
    let consuming = tokio::spawn(consumer(live.clone(), count, finished.clone()));

    // The logs of the servers killed so far, kept for a failure's report.
    let mut logs: Vec<(String, Vec<String>)> = Vec::new();
    for fault in 1..=faults {
        let deadline = Instant::now() + ACK_WITHIN;
        while published.load(Ordering::Acquire) < fault * BETWEEN_FAULTS {
            if Instant::now() >= deadline {
                let at = keep_logs(&servers, &logs);
                panic!("publishing stalled before fault {fault}; the servers' logs are in {at}");
            }
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
                let (store, log) = servers.remove(victim).kill_and_take_store_and_log();
                logs.push((format!("{name}-until-fault-{fault}"), log));
                // Down while a third of the messages between faults are stored: more
                // entries than its group keeps after a snapshot.
                let until = published.load(Ordering::Acquire) + BETWEEN_FAULTS / 3;
                let deadline = Instant::now() + ACK_WITHIN;
                while published.load(Ordering::Acquire) < until && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                let seed = servers[0].route_url();
                servers.insert(victim, restart_member(&name, Some(&seed), store));
                *live.lock().unwrap_or_else(|p| p.into_inner()) =
                    servers.iter().map(TestServer::url).collect();
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
    if (consumed.acked.len() + consumed.unsure.len()) < count as usize {
        let info = until_answered(&client, "$JS.API.CONSUMER.INFO.FAULTS.CHECK", json!({})).await;
        let at = keep_logs(&servers, &logs);
        println!("CHECK at the end: {info}; the servers' logs are in {at}; the consumer's failed pulls: {:?}", consumed.stalls);
    }
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
