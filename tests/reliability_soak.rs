//! Soak (issue 8, item 8): many connections and subscriptions, core and JetStream traffic, and
//! a kill -9 and restart of the server every few minutes, for a bounded time.
//!
//! Traffic, all async-nats:
//! - `connections` clients hold `subscriptions` core subscriptions between them, ten on each
//!   subject `soak.core.<k>` (on ten different clients); one publisher sends numbered messages
//!   round the subjects at a steady rate. Each subscription checks that what it receives was
//!   meant for its subject and that the numbers only grow; core NATS is at-most-once, so
//!   messages lost around a restart are counted, not failed.
//! - A churn client connects, subscribes, receives its own message and disconnects, again and
//!   again, so that the descriptors of closed connections must be given back.
//! - The kill loop's JetStream workload (`kill_loop_support`): four publishers at a steady rate
//!   with unique `Nats-Msg-Id`s, retrying unknown outcomes; a durable pull consumer acking one
//!   delivery in ten with AckSync and the others plainly.
//!
//! The server is killed with SIGKILL every `kill_every` seconds and restarted on the same store
//! and port; the clients reconnect by themselves. Between kills the server's resident memory and
//! open descriptors are sampled from `/proc` after a warm-up. At the end the consumer is
//! drained, the stream read back and judged as in the kill loop.
//!
//! Knobs: `JETLOG_SOAK_SECS` (20), `JETLOG_SOAK_CONNECTIONS` (200),
//! `JETLOG_SOAK_SUBSCRIPTIONS` (1,000), `JETLOG_SOAK_KILL_EVERY_SECS` (half the run, at most
//! 150). The recorded run (docs/reliability.md):
//! `JETLOG_SOAK_SECS=600 JETLOG_SOAK_CONNECTIONS=1000 JETLOG_SOAK_SUBSCRIPTIONS=10000
//! cargo test --release --test reliability_soak -- --nocapture`

mod common;
mod kill_loop_support;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::{Client, Subscriber};
use common::process::{fd_counts, rss_bytes, FdCounts};
use common::{within, TestServer};
use futures::StreamExt;
use kill_loop_support::server::{
    create_stream_and_consumer, drain_consumer, env_u64, free_port, kill_and_restart, read_back,
    recovery_time, within_limit,
};
use kill_loop_support::verdict::Verdict;
use kill_loop_support::workload::{
    ack_some_until, connect, connect_client, publish_paced, ACK_LIMIT,
};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout, MissedTickBehavior};

const SECS_ENV: &str = "JETLOG_SOAK_SECS";
const CONNECTIONS_ENV: &str = "JETLOG_SOAK_CONNECTIONS";
const SUBSCRIPTIONS_ENV: &str = "JETLOG_SOAK_SUBSCRIPTIONS";
const KILL_EVERY_ENV: &str = "JETLOG_SOAK_KILL_EVERY_SECS";
const DEFAULT_SECS: u64 = 20;
const DEFAULT_CONNECTIONS: u64 = 200;
const DEFAULT_SUBSCRIPTIONS: u64 = 1000;
/// The longest default interval between kills.
const KILL_EVERY_MAX_SECS: u64 = 150;
/// Subscriptions per core subject, each on another connection.
const FANOUT: usize = 10;
/// Core messages published per tick, and the tick: 1,000 messages a second.
const CORE_BATCH: u64 = 10;
const CORE_TICK: Duration = Duration::from_millis(10);
const JS_PUBLISHERS: usize = 4;
/// Each JetStream publisher sends one message per this: 400 a second in all.
const JS_PAUSE: Duration = Duration::from_millis(10);
/// The acker confirms one delivery in this many with AckSync.
const ACK_SYNC_EVERY: u64 = 10;
/// Pause between two churn connections.
const CHURN_PAUSE: Duration = Duration::from_millis(100);
/// Connections opened at once while setting up.
const CONNECT_CONCURRENCY: usize = 50;
/// How long every client may take to be connected again after a restart.
const SETTLE_LIMIT: Duration = Duration::from_secs(60);
/// How long a sample waits for the sockets of finished churn connections to close.
const QUIET_LIMIT: Duration = Duration::from_secs(2);
/// Reads of /proc/<pid>/fd per sample; each kind's count is the least seen, which filters out
/// a file held open for a moment (a directory being fsynced, an index being written).
const FD_READS: usize = 3;
/// How long the core subscribers may take to receive what is in flight once publishing stops.
const CORE_QUIET_LIMIT: Duration = Duration::from_secs(10);
/// Growth of resident memory within one server's life, after warm-up, that counts as runaway.
const RSS_RUNAWAY_BYTES: u64 = 256 * 1024 * 1024;
const MIB: f64 = 1024.0 * 1024.0;

/// The run's shape, from the knobs.
struct Plan {
    duration: Duration,
    connections: usize,
    subscriptions: usize,
    kill_every: Duration,
    /// How long after a server's clients are back its first sample is taken.
    warm_up: Duration,
    sample_every: Duration,
}

impl Plan {
    fn from_env() -> Plan {
        let secs = env_u64(SECS_ENV).unwrap_or(DEFAULT_SECS).max(2);
        let connections = env_u64(CONNECTIONS_ENV).unwrap_or(DEFAULT_CONNECTIONS) as usize;
        let subscriptions = env_u64(SUBSCRIPTIONS_ENV).unwrap_or(DEFAULT_SUBSCRIPTIONS) as usize;
        assert!(
            connections >= FANOUT && subscriptions >= FANOUT,
            "at least {FANOUT} connections and subscriptions"
        );
        let kill_every = env_u64(KILL_EVERY_ENV).unwrap_or((secs / 2).min(KILL_EVERY_MAX_SECS));
        let kill_every = Duration::from_secs(kill_every.max(1));
        Plan {
            duration: Duration::from_secs(secs),
            connections,
            subscriptions,
            kill_every,
            warm_up: (kill_every / 5).clamp(Duration::from_secs(2), Duration::from_secs(30)),
            sample_every: (kill_every / 30).clamp(Duration::from_secs(1), Duration::from_secs(5)),
        }
    }

    /// Core subjects: each has `FANOUT` subscriptions.
    fn subjects(&self) -> u64 {
        self.subscriptions.div_ceil(FANOUT) as u64
    }
}

/// Figures of the core traffic, shared by its tasks.
#[derive(Default)]
struct CoreCounters {
    published: AtomicU64,
    publish_failures: AtomicU64,
    delivered: AtomicU64,
    /// Messages a subscription received that were published to another subject.
    misrouted: AtomicU64,
    /// Messages whose number was not above the last one the subscription received (a
    /// duplicate or a reordering).
    out_of_order: AtomicU64,
    churn_cycles: AtomicU64,
    churn_failures: AtomicU64,
}

/// Subscription `i`'s subject.
fn core_subject(i: usize) -> String {
    format!("soak.core.{}", i / FANOUT)
}

/// Receives the messages of one connection's subscriptions (`i`, subscriber) until aborted,
/// recording in `last[i]` one more than the number of the last message subscription `i` got.
fn spawn_receiver(
    client: Client,
    subs: Vec<(usize, Subscriber)>,
    subjects: u64,
    counters: Arc<CoreCounters>,
    last: Arc<Vec<AtomicU64>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let _client = client;
        let mut merged = futures::stream::select_all(
            subs.into_iter()
                .map(|(i, sub)| sub.map(move |msg| (i, msg))),
        );
        while let Some((i, msg)) = merged.next().await {
            let n = std::str::from_utf8(&msg.payload)
                .ok()
                .and_then(|t| t.parse::<u64>().ok())
                .unwrap_or(u64::MAX);
            counters.delivered.fetch_add(1, Ordering::Relaxed);
            if n % subjects != (i / FANOUT) as u64 {
                counters.misrouted.fetch_add(1, Ordering::Relaxed);
            }
            let before = last[i].swap(n.saturating_add(1), Ordering::Relaxed);
            if n.saturating_add(1) <= before {
                counters.out_of_order.fetch_add(1, Ordering::Relaxed);
            }
        }
    })
}

/// Publishes message 0, 1, 2, ... to subject `n % subjects`, `CORE_BATCH` per tick, until
/// `stop`; `next` is the number of the next message.
async fn publish_core(
    client: Client,
    subjects: u64,
    counters: Arc<CoreCounters>,
    next: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    let mut tick = tokio::time::interval(CORE_TICK);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        for _ in 0..CORE_BATCH {
            let n = next.load(Ordering::Relaxed);
            let subject = format!("soak.core.{}", n % subjects);
            // While the server is down the client's buffer fills and a publish waits; the
            // message is then not counted and its number is used again.
            match timeout(ACK_LIMIT, client.publish(subject, n.to_string().into())).await {
                Ok(Ok(())) => {
                    counters.published.fetch_add(1, Ordering::Relaxed);
                    next.store(n + 1, Ordering::Relaxed);
                }
                _ => {
                    counters.publish_failures.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
    }
}

/// Opens a connection, subscribes, receives its own message and closes, every `CHURN_PAUSE`
/// until `stop`. Holds `gate` for each cycle, so a sampler holding it sees no churn connection
/// but closing ones.
async fn churn(
    url: String,
    counters: Arc<CoreCounters>,
    gate: Arc<Mutex<()>>,
    stop: Arc<AtomicBool>,
) {
    let mut cycle = 0u64;
    while !stop.load(Ordering::Relaxed) {
        sleep(CHURN_PAUSE).await;
        let _cycle = gate.lock().await;
        cycle += 1;
        let subject = format!("soak.churn.{cycle}");
        let once = async {
            let client = async_nats::ConnectOptions::new()
                .connection_timeout(ACK_LIMIT)
                .connect(url.as_str())
                .await
                .ok()?;
            let mut sub = client.subscribe(subject.clone()).await.ok()?;
            client.publish(subject, "churn".into()).await.ok()?;
            client.flush().await.ok()?;
            sub.next().await
        };
        let counter = match timeout(ACK_LIMIT, once).await {
            Ok(Some(_)) => &counters.churn_cycles,
            _ => &counters.churn_failures,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// One reading of the server's resources.
#[derive(Debug, Clone, Copy)]
struct Sample {
    rss_bytes: u64,
    fds: FdCounts,
    /// Segment files in the store when the descriptors were counted.
    segment_files: usize,
}

impl Sample {
    /// Descriptors other than segment files: sockets, the catalog's files, pipes, epoll.
    fn fds_but_segments(&self) -> usize {
        self.fds.sockets + self.fds.other
    }
}

/// Segment files under `dir`, at any depth.
fn segment_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .map_while(Result::ok)
        .map(|e| {
            let path = e.path();
            if path.is_dir() {
                segment_files(&path)
            } else {
                usize::from(path.extension().is_some_and(|x| x == "seg"))
            }
        })
        .sum()
}

/// The least count of each kind over `FD_READS` reads.
fn steady_fd_counts(pid: u32) -> FdCounts {
    let mut least = fd_counts(pid);
    for _ in 1..FD_READS {
        std::thread::sleep(Duration::from_millis(10));
        let c = fd_counts(pid);
        least.sockets = least.sockets.min(c.sockets);
        least.other = least.other.min(c.other);
        least.segments = c.segments;
    }
    least.total = least.sockets + least.segments + least.other;
    least
}

/// Samples the server with the churn paused, once the sockets of churn connections that just
/// ended are closed and no segment rolled while counting, or `QUIET_LIMIT` passed.
async fn quiet_sample(server: &TestServer, expected_sockets: usize, gate: &Mutex<()>) -> Sample {
    let _paused = gate.lock().await;
    let deadline = Instant::now() + QUIET_LIMIT;
    loop {
        let (sample, rolled) = tokio::task::block_in_place(|| {
            let before = segment_files(server.store.path());
            let fds = steady_fd_counts(server.pid());
            let after = segment_files(server.store.path());
            let sample = Sample {
                rss_bytes: rss_bytes(server.pid()),
                fds,
                segment_files: after,
            };
            (sample, before != after)
        });
        // Past the deadline the sample is taken as it is, and a mismatch shows in the figures.
        if Instant::now() >= deadline || (!rolled && sample.fds.sockets == expected_sockets) {
            return sample;
        }
        sleep(Duration::from_millis(20)).await;
    }
}

/// Waits, with the churn paused, until the server holds `expected_sockets` sockets: every
/// client is connected again. How long that took since `since` (the restart), or None if not
/// within `SETTLE_LIMIT`.
async fn settle(
    server: &TestServer,
    expected_sockets: usize,
    gate: &Mutex<()>,
    since: Instant,
) -> Option<Duration> {
    let _paused = gate.lock().await;
    while since.elapsed() < SETTLE_LIMIT {
        if fd_counts(server.pid()).sockets == expected_sockets {
            return Some(since.elapsed());
        }
        sleep(Duration::from_millis(10)).await;
    }
    None
}

/// What was seen during one server process's life.
struct Lifetime {
    /// From the restart (or from the end of the set-up) until every client was connected.
    settle: Option<Duration>,
    /// Samples after warm-up, with when they were taken.
    samples: Vec<(Instant, Sample)>,
}

impl Lifetime {
    /// Descriptors (segment files aside) at the last sample minus at the first.
    fn fd_drift(&self) -> i64 {
        match (self.samples.first(), self.samples.last()) {
            (Some((_, a)), Some((_, b))) => {
                b.fds_but_segments() as i64 - a.fds_but_segments() as i64
            }
            _ => 0,
        }
    }

    /// Least-squares slope of resident memory over the samples, in MiB per minute.
    fn rss_slope_mib_per_min(&self) -> f64 {
        slope_mib_per_min(&self.samples)
    }

    /// The same over the second half of the samples: what is left of the growth once the
    /// first minutes' (the duplicate window refilling, buffers reaching their working size)
    /// are over.
    fn late_rss_slope_mib_per_min(&self) -> f64 {
        slope_mib_per_min(&self.samples[self.samples.len() / 2..])
    }

    /// Resident memory's highest sample minus its first.
    fn rss_growth_bytes(&self) -> u64 {
        let first = self.samples.first().map_or(0, |(_, s)| s.rss_bytes);
        let max = self
            .samples
            .iter()
            .map(|(_, s)| s.rss_bytes)
            .max()
            .unwrap_or(0);
        max.saturating_sub(first)
    }
}

/// Least-squares slope of resident memory over `samples`, in MiB per minute.
fn slope_mib_per_min(samples: &[(Instant, Sample)]) -> f64 {
    let Some((t0, _)) = samples.first() else {
        return 0.0;
    };
    let points: Vec<(f64, f64)> = samples
        .iter()
        .map(|(t, s)| {
            (
                t.duration_since(*t0).as_secs_f64() / 60.0,
                s.rss_bytes as f64 / MIB,
            )
        })
        .collect();
    let n = points.len() as f64;
    let (mx, my) = (
        points.iter().map(|p| p.0).sum::<f64>() / n,
        points.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx == 0.0 {
        0.0
    } else {
        sxy / sxx
    }
}

/// Joins figures as `a/b/c`.
fn joined<T: std::fmt::Display>(values: impl IntoIterator<Item = T>) -> String {
    values
        .into_iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_with_kills_keeps_resources_flat_and_loses_no_acknowledged_message() {
    let plan = Plan::from_env();
    let began = Instant::now();
    let port = free_port().to_string();
    let args = ["-p", port.as_str()];
    let mut server = TestServer::start(&args);
    let url = server.url();
    // The listener and whatever the runtime holds (its signal pipe), before any client.
    let base_sockets = fd_counts(server.pid()).sockets;
    create_stream_and_consumer(&server).await;

    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(CoreCounters::default());
    let subjects = plan.subjects();
    let last: Arc<Vec<AtomicU64>> =
        Arc::new((0..plan.subscriptions).map(|_| AtomicU64::new(0)).collect());

    // The subscribers: subscription i on connection i % connections.
    let clients: Vec<Client> = futures::stream::iter(0..plan.connections)
        .map(|_| connect_client(&url))
        .buffered(CONNECT_CONCURRENCY)
        .collect()
        .await;
    let mut receivers = Vec::new();
    for (c, client) in clients.iter().enumerate() {
        let mut subs = Vec::new();
        for i in (c..plan.subscriptions).step_by(plan.connections) {
            let sub = within("subscribe", client.subscribe(core_subject(i)))
                .await
                .unwrap();
            subs.push((i, sub));
        }
        receivers.push(spawn_receiver(
            client.clone(),
            subs,
            subjects,
            counters.clone(),
            last.clone(),
        ));
    }
    futures::stream::iter(&clients)
        .map(|c| within("flush", c.flush()))
        .buffer_unordered(CONNECT_CONCURRENCY)
        .for_each(|r| async move { r.unwrap() })
        .await;
    drop(clients);

    let next_core = Arc::new(AtomicU64::new(0));
    let core_publisher = tokio::spawn(publish_core(
        connect_client(&url).await,
        subjects,
        counters.clone(),
        next_core.clone(),
        stop.clone(),
    ));
    let mut publishers = Vec::new();
    for p in 0..JS_PUBLISHERS {
        let js = connect(&url).await;
        publishers.push(tokio::spawn(publish_paced(js, p, stop.clone(), JS_PAUSE)));
    }
    let acker = tokio::spawn(ack_some_until(
        connect(&url).await,
        ACK_SYNC_EVERY,
        stop.clone(),
    ));
    let gate = Arc::new(Mutex::new(()));
    let churner = tokio::spawn(churn(
        url.clone(),
        counters.clone(),
        gate.clone(),
        stop.clone(),
    ));
    // Subscribers, the core publisher, the JetStream publishers and the acker.
    let expected_sockets = base_sockets + plan.connections + 1 + JS_PUBLISHERS + 1;

    let end = began + plan.duration;
    let mut next_kill = began + plan.kill_every;
    let mut lifetimes = Vec::new();
    let mut recoveries = Vec::new();
    let mut failed_restarts = 0u64;
    // The number of the first core message published after the last server's clients were
    // all back: every subscription must receive a message at least this high.
    let mut core_after_settle;
    let mut life_began = Instant::now();
    loop {
        let settled = settle(&server, expected_sockets, &gate, life_began).await;
        core_after_settle = next_core.load(Ordering::Relaxed);
        let life_end = next_kill.min(end);
        let mut lifetime = Lifetime {
            settle: settled,
            samples: Vec::new(),
        };
        sleep(
            plan.warm_up
                .min(life_end.saturating_duration_since(Instant::now())),
        )
        .await;
        while Instant::now() < life_end {
            let sample = quiet_sample(&server, expected_sockets, &gate).await;
            lifetime.samples.push((Instant::now(), sample));
            sleep(
                plan.sample_every
                    .min(life_end.saturating_duration_since(Instant::now())),
            )
            .await;
        }
        lifetimes.push(lifetime);
        if life_end >= end {
            break;
        }
        let (next, restarted) = kill_and_restart(server, &args);
        server = next;
        life_began = restarted;
        match recovery_time(&url, restarted).await {
            Some(took) => recoveries.push(took),
            None => failed_restarts += 1,
        }
        next_kill += plan.kill_every;
    }

    stop.store(true, Ordering::Relaxed);
    let mut records = Vec::new();
    for task in publishers {
        records.push(within_limit("publisher stop", task).await);
    }
    let mut acker = within_limit("acker stop", acker).await;
    within_limit("core publisher stop", core_publisher).await;
    within_limit("churn stop", churner).await;
    let core_end = next_core.load(Ordering::Relaxed);
    // Let what is in flight arrive: wait until deliveries stop moving, bounded.
    let quiet_by = Instant::now() + CORE_QUIET_LIMIT;
    loop {
        let before = counters.delivered.load(Ordering::Relaxed);
        sleep(Duration::from_millis(500)).await;
        if counters.delivered.load(Ordering::Relaxed) == before || Instant::now() > quiet_by {
            break;
        }
    }
    for task in &receivers {
        task.abort();
    }
    let silent = last
        .iter()
        .filter(|l| l.load(Ordering::Relaxed) <= core_after_settle)
        .count();
    drain_consumer(&url, &mut acker).await;
    let (stored, state) = read_back(&url).await;
    let final_sample = quiet_sample(&server, base_sockets, &gate).await;
    drop(server);

    let verdict = Verdict::judge(&records, &stored);
    let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let published = c(&counters.published);
    let delivered = c(&counters.delivered);
    let fd_drift = lifetimes
        .iter()
        .map(|l| l.fd_drift().abs())
        .max()
        .unwrap_or(0);
    let unmatched_segment_fds = lifetimes
        .iter()
        .flat_map(|l| &l.samples)
        .filter(|(_, s)| s.fds.segments != s.segment_files)
        .count();
    let slopes: Vec<f64> = lifetimes
        .iter()
        .map(Lifetime::rss_slope_mib_per_min)
        .collect();
    for (i, l) in lifetimes.iter().enumerate() {
        let (first, last) = match (l.samples.first(), l.samples.last()) {
            (Some((_, a)), Some((_, b))) => (*a, *b),
            _ => continue,
        };
        println!(
            "soak_lifetime n={i} settle_ms={} samples={} fds_first={} fds_last={} \
             sockets={} segment_fds_first={} segment_fds_last={} rss_first_mib={:.1} \
             rss_last_mib={:.1} rss_slope_mib_per_min={:.2} late_rss_slope_mib_per_min={:.2}",
            l.settle.map_or(-1, |d| d.as_millis() as i64),
            l.samples.len(),
            first.fds_but_segments(),
            last.fds_but_segments(),
            last.fds.sockets,
            first.fds.segments,
            last.fds.segments,
            first.rss_bytes as f64 / MIB,
            last.rss_bytes as f64 / MIB,
            l.rss_slope_mib_per_min(),
            l.late_rss_slope_mib_per_min(),
        );
    }
    println!(
        "soak secs={} connections={} subscriptions={} kill_every_s={} restarts={} \
         failed_restarts={failed_restarts} recovery_max_ms={} settle_max_ms={} \
         core_published={published} core_delivered={delivered} core_delivered_pct={:.2} \
         core_out_of_order={} core_misrouted={} subscriptions_silent_after_restart={silent} \
         churn_cycles={} churn_failures={} {verdict} confirmed_acks={} confirmed_redelivered={} \
         ack_failures={} publish_failures={} fd_drift={fd_drift} fds={} \
         segment_fds_unmatched={unmatched_segment_fds} segment_fds_end={} rss_mib={} \
         rss_slope_mib_per_min={} late_rss_slope_mib_per_min={} idle_fds_end={} idle_rss_mib_end={:.1} elapsed_s={:.1}",
        plan.duration.as_secs(),
        plan.connections,
        plan.subscriptions,
        plan.kill_every.as_secs(),
        recoveries.len() as u64 + failed_restarts,
        recoveries
            .iter()
            .max()
            .copied()
            .unwrap_or_default()
            .as_millis(),
        lifetimes
            .iter()
            .filter_map(|l| l.settle)
            .max()
            .unwrap_or_default()
            .as_millis(),
        delivered as f64 * 100.0 / (published as f64 * FANOUT as f64).max(1.0),
        c(&counters.out_of_order),
        c(&counters.misrouted),
        c(&counters.churn_cycles),
        c(&counters.churn_failures),
        acker.confirmed.len(),
        acker.confirmed_redelivered,
        acker.ack_failures,
        records.iter().map(|r| r.failures).sum::<u64>(),
        joined(
            lifetimes
                .iter()
                .filter_map(|l| l.samples.first().map(|(_, s)| s.fds_but_segments()))
        ),
        final_sample.fds.segments,
        joined(lifetimes.iter().filter_map(|l| {
            l.samples
                .first()
                .map(|(_, s)| format!("{:.0}", s.rss_bytes as f64 / MIB))
        })),
        joined(slopes.iter().map(|s| format!("{s:.2}"))),
        joined(
            lifetimes
                .iter()
                .map(|l| format!("{:.2}", l.late_rss_slope_mib_per_min()))
        ),
        final_sample.fds_but_segments(),
        final_sample.rss_bytes as f64 / MIB,
        began.elapsed().as_secs_f64(),
    );

    assert_eq!(failed_restarts, 0, "restarts that did not come back");
    assert!(
        lifetimes.iter().all(|l| l.settle.is_some()),
        "clients that did not reconnect within {SETTLE_LIMIT:?}"
    );
    assert!(verdict.is_clean(), "{verdict}");
    assert_eq!(acker.confirmed_redelivered, 0, "confirmed acks forgotten");
    assert_eq!(
        state.messages, verdict.stored,
        "stream state counts what was read"
    );
    assert!(
        verdict.acked > 0 && !acker.confirmed.is_empty(),
        "{verdict}"
    );
    assert_eq!(c(&counters.out_of_order), 0, "core messages out of order");
    assert_eq!(
        c(&counters.misrouted),
        0,
        "core messages on the wrong subject"
    );
    assert!(
        core_end >= core_after_settle + subjects,
        "the run ended before one round of the subjects after the last restart"
    );
    assert_eq!(
        silent, 0,
        "subscriptions that received nothing after the last restart"
    );
    assert!(
        c(&counters.churn_cycles) > 0,
        "no churn connection ever worked"
    );
    assert!(
        lifetimes.iter().all(|l| l.samples.len() >= 2),
        "a server life too short to compare two samples"
    );
    assert_eq!(fd_drift, 0, "descriptors drifted within a server's life");
    assert_eq!(
        unmatched_segment_fds, 0,
        "segment descriptors without a segment file"
    );
    for (i, l) in lifetimes.iter().enumerate() {
        assert!(
            l.rss_growth_bytes() < RSS_RUNAWAY_BYTES,
            "life {i}: resident memory grew {:.0} MiB after warm-up",
            l.rss_growth_bytes() as f64 / MIB
        );
    }
}
