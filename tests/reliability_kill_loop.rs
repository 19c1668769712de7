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

use common::rng::Rng;
use common::TestServer;
use kill_loop_support::server::{
    create_stream_and_consumer, drain_consumer, env_u64, free_port, kill_and_restart, percentile,
    read_back, recovery_time, within_limit,
};
use kill_loop_support::verdict::Verdict;
use kill_loop_support::workload::{ack_until, connect, publish_until};
use tokio::time::sleep;

const ITERATIONS_ENV: &str = "JETLOG_KILL_LOOP_ITERATIONS";
const SEED_ENV: &str = "JETLOG_KILL_LOOP_SEED";
/// Kills per run in CI.
const DEFAULT_ITERATIONS: u64 = 20;
const PUBLISHERS: usize = 4;
/// Each kill comes this long after the previous restart answered, at the least ...
const RUN_MIN: Duration = Duration::from_millis(100);
/// ... and at the most.
const RUN_MAX: Duration = Duration::from_millis(600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loop_loses_no_acknowledged_message() {
    let iterations = env_u64(ITERATIONS_ENV).unwrap_or(DEFAULT_ITERATIONS);
    let seed = env_u64(SEED_ENV).unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let mut rng = Rng(seed | 1);
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
