//! Kill -9 loop with the real server and a real client (issue 8, item 1).
//!
//! `jetlog server` (default `--sync always`) runs on one port; four async-nats publishers
//! publish ids with `Nats-Msg-Id` and record which got a PubAck, and a durable pull consumer
//! acks every delivery with AckSync and records which acks were confirmed. The server is
//! SIGKILLed at a random moment, restarted on the same store and port, and again, while the
//! clients reconnect on their own. At the end the consumer is drained, the stream is read back
//! and judged (`kill_loop_support::verdict`).
//!
//! Knobs: `JETLOG_KILL_LOOP_ITERATIONS` (default 20) and `JETLOG_KILL_LOOP_SEED` (default from
//! the clock; it picks the kill moments, printed so a run's schedule can be repeated, though
//! what is in flight at each kill also depends on timing). Figures are printed as one
//! `kill_loop ...` line; see them with `--nocapture`. The soak:
//! `JETLOG_KILL_LOOP_ITERATIONS=500 cargo test --release --test reliability_kill_loop -- --nocapture`

mod common;
mod kill_loop_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::{self, stream};
use common::{within, TestServer};
use futures::StreamExt;
use kill_loop_support::verdict::{Stored, Verdict};
use kill_loop_support::workload::{
    ack_until, connect, publish_until, AckerRecord, ACK_LIMIT, CONSUMER, PULL_EXPIRES, STREAM,
    SUBJECTS,
};
use tokio::time::{sleep, timeout};

const ITERATIONS_ENV: &str = "JETLOG_KILL_LOOP_ITERATIONS";
const SEED_ENV: &str = "JETLOG_KILL_LOOP_SEED";
/// Kills per run in CI.
const DEFAULT_ITERATIONS: u64 = 20;
const PUBLISHERS: usize = 4;
/// Each kill comes this long after the previous restart answered, at the least ...
const RUN_MIN: Duration = Duration::from_millis(100);
/// ... and at the most.
const RUN_MAX: Duration = Duration::from_millis(600);
/// A restart that has not answered a stream info request within this long has failed.
const RECOVERY_LIMIT: Duration = Duration::from_secs(10);
/// Pause between recovery probes.
const PROBE_PAUSE: Duration = Duration::from_millis(5);
/// Bound on stopping the clients, and on each drain.
const STOP_LIMIT: Duration = Duration::from_secs(10);
const DRAIN_LIMIT: Duration = Duration::from_secs(60);
/// How long the acker may wait for a delivered but unacked message to come back.
const CONSUMER_ACK_WAIT: Duration = Duration::from_secs(1);
/// Messages per pull request of the final read-back.
const DRAIN_BATCH: usize = 1000;

/// A tiny xorshift generator: random enough to spread kill moments, no dependency needed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn between(&mut self, low: Duration, high: Duration) -> Duration {
        let span = (high - low).as_micros() as u64 + 1;
        low + Duration::from_micros(self.next() % span)
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    Some(
        text.parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a number")),
    )
}

/// A port that was free a moment ago. Every restart binds it again, so that the clients'
/// own reconnects find the new server, as they would in production.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Nearest-rank percentile of a sorted slice.
fn percentile(sorted: &[Duration], pct: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (sorted.len() * pct).div_ceil(100).max(1);
    sorted[rank - 1]
}

async fn create_stream_and_consumer(server: &TestServer) {
    let js = jetstream::new(
        within("connect", async_nats::connect(server.url()))
            .await
            .unwrap(),
    );
    let stream = within(
        "create stream",
        js.create_stream(stream::Config {
            name: STREAM.to_string(),
            subjects: vec![SUBJECTS.to_string()],
            ..Default::default()
        }),
    )
    .await
    .unwrap();
    let config = pull::Config {
        durable_name: Some(CONSUMER.to_string()),
        ack_policy: AckPolicy::Explicit,
        ack_wait: CONSUMER_ACK_WAIT,
        ..Default::default()
    };
    within("create consumer", stream.create_consumer(config))
        .await
        .unwrap();
}

/// Waits until a fresh client gets the stream's info from the restarted server; returns how
/// long that took from `restarted`, or None if it never did.
async fn recovery_time(url: &str, restarted: Instant) -> Option<Duration> {
    while restarted.elapsed() < RECOVERY_LIMIT {
        let probe = async {
            let client = async_nats::connect(url).await.ok()?;
            jetstream::new(client).get_stream(STREAM).await.ok()
        };
        if let Ok(Some(_)) = timeout(ACK_LIMIT, probe).await {
            return Some(restarted.elapsed());
        }
        sleep(PROBE_PAUSE).await;
    }
    None
}

/// Kills the server with SIGKILL and starts it again on the same store and port. Blocking
/// calls run in place so the clients' tasks keep running on the other worker.
fn kill_and_restart(server: TestServer, args: &[&str]) -> (TestServer, Instant) {
    tokio::task::block_in_place(|| {
        let store = server.kill_and_take_store();
        let restarted = Instant::now();
        (TestServer::start_in(store, args), restarted)
    })
}

/// Pulls from the durable consumer until nothing is pending or waiting for an ack, so every
/// message that was delivered but not confirmed comes back once more. Any confirmed one among
/// them counts as forgotten.
async fn drain_consumer(url: &str, acker: &mut AckerRecord) {
    let js = connect(url).await;
    let client = js.client();
    let stream = within("stream", js.get_stream(STREAM)).await.unwrap();
    let consumer: PullConsumer = within("consumer", stream.get_consumer(CONSUMER))
        .await
        .expect("the durable consumer survived the kills");
    acker.fire_and_forget = true;
    let deadline = Instant::now() + DRAIN_LIMIT;
    loop {
        assert!(Instant::now() < deadline, "consumer drain timed out");
        if acker.pull_once(&client, &consumer).await != Some(0) {
            continue;
        }
        let info = within("consumer info", consumer.get_info()).await.unwrap();
        if info.num_pending == 0 && info.num_ack_pending == 0 {
            return;
        }
    }
}

/// Reads every message of the stream back with an ephemeral consumer.
async fn read_back(url: &str) -> (Vec<Stored>, stream::State) {
    let js = jetstream::new(within("connect", async_nats::connect(url)).await.unwrap());
    let stream = within("stream", js.get_stream(STREAM)).await.unwrap();
    let state = within("stream info", stream.get_info())
        .await
        .unwrap()
        .state;
    let consumer: PullConsumer = within(
        "read-back consumer",
        stream.create_consumer(pull::Config {
            ack_policy: AckPolicy::None,
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        }),
    )
    .await
    .unwrap();
    let mut stored = Vec::new();
    let deadline = Instant::now() + DRAIN_LIMIT;
    let mut last_seen = 0;
    while last_seen < state.last_sequence {
        assert!(
            Instant::now() < deadline,
            "read-back timed out at {last_seen}"
        );
        let batch = consumer
            .batch()
            .max_messages(DRAIN_BATCH)
            .expires(PULL_EXPIRES)
            .messages();
        let mut batch = within("read-back batch", batch).await.unwrap();
        while let Some(msg) = within("read-back message", batch.next()).await {
            let msg = msg.unwrap();
            let seq = msg.info().unwrap().stream_sequence;
            let id = msg
                .headers
                .as_ref()
                .and_then(|h| h.get("Nats-Msg-Id"))
                .map(|v| v.as_str().to_string())
                .unwrap_or_default();
            last_seen = last_seen.max(seq);
            stored.push(Stored {
                seq,
                id,
                payload: msg.payload.to_vec(),
            });
        }
    }
    (stored, state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loop_loses_no_acknowledged_message() {
    let iterations = env_u64(ITERATIONS_ENV).unwrap_or(DEFAULT_ITERATIONS);
    let seed = env_u64(SEED_ENV).unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let mut rng = XorShift(seed | 1);
    let began = Instant::now();
    let port = free_port().to_string();
    let args = ["-p", port.as_str()];
    let mut server = TestServer::start(&args);
    let url = server.url();
    create_stream_and_consumer(&server).await;

    let stop = Arc::new(AtomicBool::new(false));
    let mut publishers = Vec::new();
    for p in 0..PUBLISHERS {
        let js = connect(&url).await;
        publishers.push(tokio::spawn(publish_until(js, p, stop.clone())));
    }
    let acker = tokio::spawn(ack_until(connect(&url).await, stop.clone()));

    let mut recoveries = Vec::new();
    let mut failed_restarts = 0u64;
    for _ in 0..iterations {
        sleep(rng.between(RUN_MIN, RUN_MAX)).await;
        let (next, restarted) = kill_and_restart(server, &args);
        server = next;
        match recovery_time(&url, restarted).await {
            Some(took) => recoveries.push(took),
            None => failed_restarts += 1,
        }
    }

    // Stop the clients, then kill once more so the drains see a server that never saw them.
    stop.store(true, Ordering::Relaxed);
    let mut records = Vec::new();
    for task in publishers {
        records.push(within_limit("publisher stop", task).await);
    }
    let mut acker = within_limit("acker stop", acker).await;
    let (server, restarted) = kill_and_restart(server, &args);
    match recovery_time(&url, restarted).await {
        Some(took) => recoveries.push(took),
        None => failed_restarts += 1,
    }
    let received_in_loop = acker.received;
    drain_consumer(&url, &mut acker).await;
    let (stored, state) = read_back(&url).await;
    drop(server);

    let verdict = Verdict::judge(&records, &stored);
    // Every stored message reached the consumer, and each one left unacked came back.
    let never_delivered = stored
        .iter()
        .filter(|m| !acker.delivered_ids.contains(&m.id))
        .count();
    recoveries.sort_unstable();
    println!(
        "kill_loop iterations={iterations} seed={seed} sync=always restarts={} \
         failed_restarts={failed_restarts} recovery_p50_ms={} recovery_p99_ms={} \
         recovery_max_ms={} {verdict} confirmed_acks={} confirmed_redelivered={} \
         never_delivered={never_delivered} left_unacked={} unacked_not_redelivered={} \
         deliveries={} drain_deliveries={} pulls={} pull_failures={} ack_failures={} \
         publish_failures={} duplicate_pub_acks={} elapsed_s={:.1}",
        iterations + 1,
        percentile(&recoveries, 50).as_millis(),
        percentile(&recoveries, 99).as_millis(),
        recoveries.last().copied().unwrap_or_default().as_millis(),
        acker.confirmed.len(),
        acker.confirmed_redelivered,
        acker.left_unacked_total,
        acker.left_unacked.len(),
        acker.received,
        acker.received - received_in_loop,
        acker.pulls,
        acker.pull_failures,
        acker.ack_failures,
        records.iter().map(|r| r.failures).sum::<u64>(),
        records.iter().map(|r| r.acked_as_duplicate).sum::<u64>(),
        began.elapsed().as_secs_f64(),
    );
    assert_eq!(failed_restarts, 0, "restarts that did not come back");
    assert!(verdict.is_clean(), "seed {seed}: {verdict}");
    assert_eq!(
        acker.confirmed_redelivered, 0,
        "seed {seed}: confirmed acks forgotten"
    );
    assert_eq!(
        never_delivered, 0,
        "seed {seed}: stored messages never delivered"
    );
    assert!(
        acker.left_unacked.is_empty(),
        "seed {seed}: unacked messages not delivered again: {:?}",
        acker.left_unacked
    );
    assert_eq!(
        state.messages, verdict.stored,
        "stream state counts what was read"
    );
    // A run in which nothing was acknowledged or confirmed would prove nothing.
    assert!(
        verdict.acked > 0 && !acker.confirmed.is_empty(),
        "{verdict}"
    );
}

/// Joins a client task that was told to stop; its waits are bounded, so this is too.
async fn within_limit<T>(what: &str, task: tokio::task::JoinHandle<T>) -> T {
    timeout(STOP_LIMIT, task)
        .await
        .unwrap_or_else(|_| panic!("{what} timed out"))
        .expect(what)
}
