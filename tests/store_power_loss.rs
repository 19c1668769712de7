//! Simulated power loss (issue 8, item 2): the log on `PowerLossVfs`, which keeps written and
//! durable bytes and directory entries apart and loses the difference at a crash. A seeded
//! random workload (appends, syncs, segment rolls, retention, deletes, purges, crashes with
//! and without torn tails, reopens) checks after every reopen that every message whose append
//! a `sync` covered is there, byte for byte, unless it was removed; that nothing is there that
//! was never appended; and that the log keeps working.
//!
//! `JETLOG_POWER_LOSS_SEEDS` sets how many seeds run (default 1000); a failure names its
//! seed, and `JETLOG_POWER_LOSS_SEED=<seed>` reruns just that one.

#[path = "common/rng.rs"]
mod rng;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use jetlog::store::power_loss::PowerLossVfs;
use jetlog::store::{Log, LogConfig, NewMessage, PurgeRequest, SyncPolicy};
use rng::Rng;

const DEFAULT_SEEDS: u64 = 1000;
const OPS_PER_SEED: usize = 60;
const SUBJECTS: [&str; 4] = ["a", "b", "c.x", "c.y"];

fn config(max_msgs: i64) -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        max_msgs,
        sync: SyncPolicy::Always,
        ..LogConfig::default()
    }
}

fn payload(seq_hint: u64, rng: &mut Rng) -> Bytes {
    let len = 1 + rng.below(300) as usize;
    Bytes::from(vec![b'a' + (seq_hint % 26) as u8; len])
}

/// What the workload knows: every message appended (seq → subject, payload), which of them a
/// sync covered, and which were removed since (they may or may not come back after a crash).
#[derive(Default)]
struct Model {
    appended: BTreeMap<u64, (String, Bytes)>,
    durable: BTreeSet<u64>,
    removed: BTreeSet<u64>,
}

fn open(vfs: &PowerLossVfs, dir: &Path, cfg: &LogConfig, seed: u64) -> Log {
    Log::open_with_vfs(dir, cfg.clone(), Arc::new(vfs.clone()))
        .unwrap_or_else(|e| panic!("seed {seed}: reopen failed: {e}"))
}

fn check(log: &Log, model: &Model, seed: u64) {
    for seq in model.durable.difference(&model.removed) {
        let got = log
            .get(*seq)
            .unwrap_or_else(|e| panic!("seed {seed}: get({seq}) failed: {e}"));
        let Some(msg) = got else {
            panic!("seed {seed}: synced message {seq} lost");
        };
        let (subject, payload) = &model.appended[seq];
        assert_eq!(&msg.subject, subject, "seed {seed}: subject of {seq}");
        assert_eq!(&msg.payload, payload, "seed {seed}: payload of {seq}");
    }
    let all = log
        .scan(0, &[], usize::MAX)
        .unwrap_or_else(|e| panic!("seed {seed}: scan failed: {e}"));
    for msg in &all {
        let Some((subject, payload)) = model.appended.get(&msg.seq) else {
            panic!("seed {seed}: message {} was never appended", msg.seq);
        };
        assert_eq!(&msg.subject, subject, "seed {seed}: subject of {}", msg.seq);
        assert_eq!(&msg.payload, payload, "seed {seed}: payload of {}", msg.seq);
    }
}

fn run_seed(seed: u64) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let vfs = PowerLossVfs::new();
    let dir = Path::new("/store/S");
    let cfg = config(if rng.below(2) == 0 { 0 } else { 40 });
    let mut log = open(&vfs, dir, &cfg, seed);
    let mut model = Model::default();
    for _ in 0..OPS_PER_SEED {
        match rng.below(10) {
            0..=4 => {
                let n = 1 + rng.below(12);
                let ts = model.appended.len() as u64 + 1;
                let msgs: Vec<NewMessage> = (0..n)
                    .map(|i| {
                        let subject = SUBJECTS[rng.below(4) as usize];
                        NewMessage::new(subject, payload(ts + i, &mut rng), ts + i)
                    })
                    .collect();
                let before = log.state(false).map(|s| s.first_seq).unwrap_or(0);
                let results = log
                    .append_batch(&msgs)
                    .unwrap_or_else(|e| panic!("seed {seed}: append failed: {e}"));
                for (msg, result) in msgs.iter().zip(results) {
                    if let Ok(seq) = result {
                        model
                            .appended
                            .insert(seq, (msg.subject.to_string(), msg.payload.clone()));
                    }
                }
                // Retention (max_msgs) may have removed older messages.
                let after = log.state(false).map(|s| s.first_seq).unwrap_or(0);
                for seq in before..after {
                    model.removed.insert(seq);
                }
            }
            5 | 6 => {
                log.sync()
                    .unwrap_or_else(|e| panic!("seed {seed}: sync failed: {e}"));
                model.durable.extend(model.appended.keys().copied());
            }
            7 => {
                if let Some(&seq) = model.appended.keys().nth(rng.below(8) as usize) {
                    if log.delete(seq).unwrap_or(false) {
                        model.removed.insert(seq);
                    }
                }
            }
            8 => {
                let up_to = model.appended.keys().next_back().copied().unwrap_or(0) / 2;
                let req = PurgeRequest {
                    up_to_seq: Some(up_to.max(1)),
                    ..PurgeRequest::default()
                };
                if log.purge(&req).is_ok() {
                    model
                        .removed
                        .extend(model.appended.range(..up_to.max(1)).map(|(s, _)| *s));
                }
            }
            _ => {
                let tear = (rng.below(2) == 0).then(|| rng.next());
                vfs.crash(tear);
                drop(log);
                log = open(&vfs, dir, &cfg, seed);
                check(&log, &model, seed);
                // What did not survive is gone for good; forget it.
                let present: BTreeSet<u64> = log
                    .scan(0, &[], usize::MAX)
                    .map(|all| all.iter().map(|m| m.seq).collect())
                    .unwrap_or_default();
                model.appended.retain(|seq, _| present.contains(seq));
                model.durable.retain(|seq| present.contains(seq));
                model.removed.retain(|seq| present.contains(seq));
            }
        }
    }
    vfs.crash(Some(seed));
    drop(log);
    let log = open(&vfs, dir, &cfg, seed);
    check(&log, &model, seed);
}

/// Runs `run` for `JETLOG_POWER_LOSS_SEED` alone if set, else for seeds 1 to
/// `JETLOG_POWER_LOSS_SEEDS` (at most `max`), or 1 to `default`.
fn for_each_seed(default: u64, max: u64, run: fn(u64)) {
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    if let Some(seed) = env("JETLOG_POWER_LOSS_SEED") {
        run(seed);
        return;
    }
    let seeds = env("JETLOG_POWER_LOSS_SEEDS").map_or(default, |n| n.min(max));
    for seed in 1..=seeds {
        run(seed);
    }
}

#[test]
fn synced_messages_survive_simulated_power_loss() {
    for_each_seed(DEFAULT_SEEDS, u64::MAX, run_seed);
}

/// The interval policy's bound (`--sync <interval>`): the stream calls `sync_if_due` after
/// every batch and the server's timer on every tick, so a message appended at time `a` is
/// durable by `a + interval + tick`. A seeded workload on a simulated clock appends, ticks and
/// crashes; after each crash every message older than that bound, and every one a sync covered,
/// must be there.
const INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);
const TICK_MS: u64 = 50;
const INTERVAL_SEEDS: u64 = 300;

fn run_interval_seed(seed: u64) {
    let mut rng = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1);
    let vfs = PowerLossVfs::new();
    let dir = Path::new("/store/I");
    let cfg = LogConfig {
        segment_bytes: 4096,
        sync: SyncPolicy::Interval(INTERVAL),
        ..LogConfig::default()
    };
    let base = std::time::Instant::now();
    let mut now_ms = 0u64;
    let mut last_tick_ms = 0u64;
    let mut log = open(&vfs, dir, &cfg, seed);
    // seq -> (appended at, payload); and what a sync covered.
    let mut appended: BTreeMap<u64, (u64, Bytes)> = BTreeMap::new();
    let mut durable: BTreeSet<u64> = BTreeSet::new();
    let sync_if_due = |log: &mut Log,
                       now_ms: u64,
                       appended: &BTreeMap<u64, (u64, Bytes)>,
                       durable: &mut BTreeSet<u64>| {
        let at = base + std::time::Duration::from_millis(now_ms);
        if log
            .sync_if_due(at)
            .unwrap_or_else(|e| panic!("seed {seed}: sync failed: {e}"))
        {
            durable.extend(appended.keys().copied());
        }
    };
    for _ in 0..OPS_PER_SEED {
        now_ms += rng.below(40);
        // The server's timer: a tick at least every TICK_MS.
        while now_ms - last_tick_ms >= TICK_MS {
            last_tick_ms += TICK_MS;
            sync_if_due(&mut log, last_tick_ms, &appended, &mut durable);
        }
        if rng.below(8) == 0 {
            let tear = (rng.below(2) == 0).then(|| rng.next());
            vfs.crash(tear);
            drop(log);
            log = open(&vfs, dir, &cfg, seed);
            let present: BTreeMap<u64, Bytes> = log
                .scan(0, &[], usize::MAX)
                .unwrap_or_else(|e| panic!("seed {seed}: scan failed: {e}"))
                .into_iter()
                .map(|m| (m.seq, m.payload))
                .collect();
            let bound = now_ms.saturating_sub(INTERVAL.as_millis() as u64 + TICK_MS);
            for (seq, (at, payload)) in &appended {
                let must = durable.contains(seq) || *at < bound;
                match present.get(seq) {
                    Some(got) => assert_eq!(got, payload, "seed {seed}: payload of {seq}"),
                    None => assert!(
                        !must,
                        "seed {seed}: message {seq} appended at {at} ms lost by a crash at \
                         {now_ms} ms (synced: {})",
                        durable.contains(seq)
                    ),
                }
            }
            appended.retain(|seq, _| present.contains_key(seq));
            durable.retain(|seq| present.contains_key(seq));
            continue;
        }
        let n = 1 + rng.below(8);
        let msgs: Vec<NewMessage> = (0..n)
            .map(|i| NewMessage::new("a", payload(now_ms + i, &mut rng), now_ms + 1))
            .collect();
        let results = log
            .append_batch(&msgs)
            .unwrap_or_else(|e| panic!("seed {seed}: append failed: {e}"));
        for (msg, result) in msgs.iter().zip(results) {
            if let Ok(seq) = result {
                appended.insert(seq, (now_ms, msg.payload.clone()));
            }
        }
        // The actor applies the policy after every batch.
        sync_if_due(&mut log, now_ms, &appended, &mut durable);
    }
}

#[test]
fn interval_sync_loses_at_most_the_last_interval() {
    for_each_seed(INTERVAL_SEEDS, INTERVAL_SEEDS * 10, run_interval_seed);
}
