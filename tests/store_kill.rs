//! kill -9 test: a child process appends with `SyncPolicy::Always` in a loop and prints each
//! batch's last sequence after its sync; the parent SIGKILLs it at a random moment, reopens the
//! log and checks that every printed sequence is there with the right content.
//!
//! The child is this test binary itself, re-run with `--ignored --exact` on the helper test
//! below and `JETLOG_KILL_CHILD_DIR` set. Iterations: 20, or `JETLOG_KILL_ITERATIONS`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use jetlog::store::{FindingKind, Log, LogConfig, NewMessage, SyncPolicy};

const CHILD_ENV: &str = "JETLOG_KILL_CHILD_DIR";
const IDLE_CHILD_ENV: &str = "JETLOG_KILL_IDLE_CHILD_DIR";
/// Messages the idle child appends before it waits to be killed.
const IDLE_CHILD_MSGS: u64 = 50;
/// Longest the parent waits for anything from or about the child.
const WAIT_LIMIT: Duration = Duration::from_secs(20);

fn cfg() -> LogConfig {
    LogConfig {
        segment_bytes: 64 * 1024,
        sync: SyncPolicy::Always,
        ..LogConfig::default()
    }
}

fn payload(seq: u64) -> Bytes {
    Bytes::from(format!("payload-{seq}-{}", "x".repeat((seq % 97) as usize)))
}

fn message(seq: u64) -> NewMessage {
    NewMessage {
        subject: format!("k.{}", seq % 5),
        headers: Bytes::new(),
        payload: payload(seq),
        ts_ns: seq,
    }
}

/// Child mode: append forever (until killed), printing the last sequence of each synced batch.
#[test]
#[ignore = "helper run as a child process by kill9_loses_no_acknowledged_append"]
fn kill9_child_appender() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut log = Log::open(&dir, cfg()).expect("child open");
    let mut out = std::io::stdout().lock();
    let mut batch_size = 1u64;
    loop {
        let next = log.last_seq() + 1;
        let msgs: Vec<NewMessage> = (next..next + batch_size).map(message).collect();
        let res = log.append_batch(&msgs).expect("append");
        log.sync_if_due(Instant::now()).expect("sync");
        let last = res.last().and_then(|r| r.ok()).expect("stored");
        writeln!(out, "{last}").expect("print");
        out.flush().expect("flush");
        batch_size = batch_size % 40 + 1;
    }
}

fn seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(7, |d| d.as_nanos() as u64)
        | 1
}

#[test]
fn kill9_loses_no_acknowledged_append() {
    let iterations: u64 = std::env::var("JETLOG_KILL_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let exe = std::env::current_exe().expect("current exe");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = seed();
    let mut total_acked = 0;
    for iteration in 0..iterations {
        let mut child = Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "kill9_child_appender",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(seq) = line.trim().parse::<u64>() {
                    if tx.send(seq).is_err() {
                        break;
                    }
                }
            }
        });
        // Wait for the first ack so every iteration kills a running appender, then a random
        // extra 0..150 ms.
        let first = rx
            .recv_timeout(WAIT_LIMIT)
            .expect("child produced no ack in time");
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(rng % 150));
        child.kill().expect("SIGKILL");
        let deadline = Instant::now() + WAIT_LIMIT;
        while child.try_wait().expect("wait").is_none() {
            assert!(Instant::now() < deadline, "child did not die");
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut acked = first;
        while let Ok(seq) = rx.recv_timeout(Duration::from_secs(5)) {
            acked = acked.max(seq);
        }
        reader.join().expect("reader thread");

        let log = Log::open(dir.path(), cfg()).expect("reopen after kill");
        let st = log.state(false).expect("state");
        assert!(
            st.last_seq >= acked,
            "iteration {iteration}: acked {acked} but last_seq {}",
            st.last_seq
        );
        for seq in 1..=acked {
            let m = log
                .get(seq)
                .expect("get")
                .unwrap_or_else(|| panic!("acked {seq} lost"));
            assert_eq!(m.payload, payload(seq));
        }
        assert_eq!(st.msgs, st.last_seq, "no holes");
        // A kill can tear an append (a torn tail), but never damages what lies before it,
        // and the preallocated zeros after the data are not damage either.
        let report = log.recovery_report();
        assert!(
            !report.findings.iter().any(|f| matches!(
                f.kind,
                FindingKind::Damaged { .. } | FindingKind::DamagedTail { .. }
            )),
            "iteration {iteration}: {report:?}"
        );
        total_acked = acked;
    }
    assert!(total_acked > 0);
}

/// Child mode: append and sync one batch, print its last sequence, then wait to be killed, so
/// the kill never tears a write and the file is left as a crash right after an ack leaves it.
#[test]
#[ignore = "helper run as a child process by kill9_after_an_ack_leaves_a_preallocated_tail"]
fn kill9_idle_child() {
    let Ok(dir) = std::env::var(IDLE_CHILD_ENV) else {
        return;
    };
    let mut log = Log::open(&dir, cfg()).expect("child open");
    let msgs: Vec<NewMessage> = (1..=IDLE_CHILD_MSGS).map(message).collect();
    log.append_batch(&msgs).expect("append");
    log.sync_if_due(Instant::now()).expect("sync");
    let mut out = std::io::stdout().lock();
    // On a line of its own: the test harness has already printed "test ... " on this one.
    writeln!(out, "\n{IDLE_CHILD_MSGS}").expect("print");
    out.flush().expect("flush");
    // Bounded: if the parent never kills, exiting without `close` leaves the same files.
    std::thread::sleep(WAIT_LIMIT);
}

#[test]
fn kill9_after_an_ack_leaves_a_preallocated_tail() {
    let exe = std::env::current_exe().expect("current exe");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(&exe)
        .args([
            "--ignored",
            "--exact",
            "kill9_idle_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(IDLE_CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Ok(seq) = line.trim().parse::<u64>() {
                let _ = tx.send(seq);
            }
        }
    });
    let acked = rx.recv_timeout(WAIT_LIMIT).expect("child acked in time");
    assert_eq!(acked, IDLE_CHILD_MSGS);
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");
    reader.join().expect("reader thread");

    let seg = dir.path().join("00000000000000000001.seg");
    let data: u64 = 20
        + (1..=acked)
            .map(|seq| {
                let m = message(seq);
                (30 + m.subject.len() + m.payload.len()) as u64
            })
            .sum::<u64>();
    let file_len = std::fs::metadata(&seg).expect("segment").len();
    assert!(file_len > data, "preallocated: {file_len} > {data}");

    let mut log = Log::open(dir.path(), cfg()).expect("reopen after kill");
    let report = log.recovery_report();
    assert!(report.findings.is_empty(), "{report:?}");
    assert_eq!(log.last_seq(), acked);
    let next = log.append(&message(acked + 1)).expect("append");
    assert_eq!(next, acked + 1, "appends continue after the last record");
    log.sync().expect("sync");
    drop(log);
    let log = Log::open(dir.path(), cfg()).expect("reopen");
    assert!(log.recovery_report().findings.is_empty());
    for seq in 1..=acked + 1 {
        let m = log.get(seq).expect("get").expect("present");
        assert_eq!(m.payload, payload(seq));
    }
}
