//! Read and open figures: sequential `get`, batched `scan`, filtered scan, `next_matching`,
//! open time after a clean close and after a crash, and RSS after opening. One `key=value`
//! line per case. `JETLOG_BENCH_MSGS` sets the log size (default 1,000,000); run with
//! 10,000,000 for the 10M figures. Run: `cargo bench --bench store_read`.

use std::process::Command;
use std::time::Instant;

use bytes::Bytes;
use jetlog::store::{Log, LogConfig, NewMessage, SyncPolicy};

const CHILD_ENV: &str = "JETLOG_BENCH_OPEN_CHILD";

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn cfg() -> LogConfig {
    LogConfig {
        sync: SyncPolicy::Never,
        ..LogConfig::default()
    }
}

/// Child mode: open the log, report time and RSS, close again.
fn open_child(dir: &str) {
    let before = rss_kib();
    let start = Instant::now();
    let log = Log::open(dir, cfg()).expect("open");
    let open_ms = start.elapsed().as_secs_f64() * 1e3;
    let st = log.state(false).expect("state");
    println!(
        "open_ms={open_ms:.1} msgs={} rss_kib={} rss_delta_kib={} snapshot={}",
        st.msgs,
        rss_kib(),
        rss_kib().saturating_sub(before),
        log.recovery_report().used_snapshot
    );
    log.close().expect("close");
}

fn main() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        open_child(&dir);
        return;
    }
    let n: u64 = std::env::var("JETLOG_BENCH_MSGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let base = std::env::var("JETLOG_BENCH_DIR").unwrap_or_else(|_| "/tmp".into());
    let dir = tempfile::tempdir_in(base).expect("tempdir");
    let mut log = Log::open(dir.path(), cfg()).expect("open");
    let payload = Bytes::from(vec![b'x'; 128]);
    let mut msgs: Vec<NewMessage> = (0..1000)
        .map(|i| NewMessage {
            subject: format!("bench.{}", i % 10),
            headers: Bytes::new(),
            payload: payload.clone(),
            ts_ns: 0,
        })
        .collect();
    let start = Instant::now();
    let mut written = 0u64;
    while written < n {
        for m in &mut msgs {
            written += 1;
            m.ts_ns = written;
        }
        log.append_batch(&msgs).expect("append");
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "bench=fill msgs={written} size=128 batch=1000 sync=never msgs_per_s={:.0}",
        written as f64 / secs
    );

    let probe = written.min(1_000_000);
    let start = Instant::now();
    for seq in 1..=probe {
        log.get(seq).expect("get").expect("present");
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "bench=get_sequential msgs={probe} size=128 msgs_per_s={:.0}",
        probe as f64 / secs
    );

    let start = Instant::now();
    let (mut seq, mut read) = (1u64, 0u64);
    while read < probe {
        let batch = log.scan(seq, &[], 1000).expect("scan");
        let Some(last) = batch.last() else { break };
        seq = last.seq + 1;
        read += batch.len() as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "bench=scan_batch1000 msgs={read} size=128 msgs_per_s={:.0}",
        read as f64 / secs
    );

    let start = Instant::now();
    let (mut seq, mut found) = (1u64, 0u64);
    while seq <= probe {
        let batch = log.scan(seq, &["bench.3"], 100).expect("scan");
        let Some(last) = batch.last() else { break };
        seq = last.seq + 1;
        found += batch.len() as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "bench=filtered_scan filter=bench.3 matched={found} scanned={} scanned_per_s={:.0}",
        seq - 1,
        (seq - 1) as f64 / secs
    );

    let start = Instant::now();
    let (mut seq, mut got) = (1u64, 0u64);
    while got < 100_000 {
        let Some(m) = log.next_matching(seq, &["bench.*"]).expect("next") else {
            break;
        };
        seq = m.seq + 1;
        got += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "bench=next_matching msgs={got} msgs_per_s={:.0}",
        got as f64 / secs
    );

    log.close().expect("close");
    let exe = std::env::current_exe().expect("exe");
    let run_child = |label: &str| {
        let out = Command::new(&exe)
            .env(CHILD_ENV, dir.path())
            .output()
            .expect("child");
        print!(
            "bench=open kind={label} {}",
            String::from_utf8_lossy(&out.stdout)
        );
    };
    run_child("clean");
    // Simulate a crash: drop the snapshot that close wrote.
    let _ = std::fs::remove_file(dir.path().join("snapshot.dat"));
    run_child("after_crash");
}
