//! Append throughput: 128 B and 1 KiB payloads, batches of 1, 100, 500 and 1000, under each
//! sync policy. One `key=value` line per case. Run: `cargo bench --bench store_append`.
//! `JETLOG_BENCH_SECONDS` bounds each case (default 1).

use std::time::{Duration, Instant};

use bytes::Bytes;
use jetlog::store::{Log, LogConfig, NewMessage, SyncPolicy};

fn main() {
    let seconds: f64 = std::env::var("JETLOG_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    let budget = Duration::from_secs_f64(seconds);
    let policies = [
        ("never", SyncPolicy::Never),
        (
            "interval_10ms",
            SyncPolicy::Interval(Duration::from_millis(10)),
        ),
        ("always", SyncPolicy::Always),
    ];
    for (name, sync) in policies {
        for size in [128usize, 1024] {
            for batch in [1usize, 100, 500, 1000] {
                let dir = tempfile::tempdir_in(
                    std::env::var("JETLOG_BENCH_DIR").unwrap_or_else(|_| "/tmp".into()),
                )
                .expect("tempdir");
                let mut log = Log::open(
                    dir.path(),
                    LogConfig {
                        sync,
                        ..LogConfig::default()
                    },
                )
                .expect("open");
                let payload = Bytes::from(vec![b'x'; size]);
                let mut msgs: Vec<NewMessage> = (0..batch)
                    .map(|i| NewMessage {
                        subject: format!("bench.{}", i % 16),
                        headers: Bytes::new(),
                        payload: payload.clone(),
                        ts_ns: 0,
                    })
                    .collect();
                let start = Instant::now();
                let mut total = 0u64;
                let mut ts = 0u64;
                while start.elapsed() < budget {
                    for m in &mut msgs {
                        ts += 1;
                        m.ts_ns = ts;
                    }
                    log.append_batch(&msgs).expect("append");
                    log.sync_if_due(Instant::now()).expect("sync");
                    total += batch as u64;
                }
                let elapsed = start.elapsed().as_secs_f64();
                println!(
                    "bench=append sync={name} size={size} batch={batch} msgs={total} msgs_per_s={:.0} mb_per_s={:.1}",
                    total as f64 / elapsed,
                    total as f64 * size as f64 / elapsed / 1e6
                );
                log.close().expect("close");
            }
        }
    }
}
