//! Crash test: a write that `MetaStore` acknowledged survives a SIGKILL of the process.
//!
//! The test binary re-executes itself as the writer: with `JETLOG_META_KILL_CHILD_DIR` set,
//! the one test in this file becomes a child that opens the store there and, in a bounded
//! loop, puts a stream and a consumer state, printing a line only after each put returned.
//! The parent kills it with SIGKILL at a random moment, reopens the store, and checks that
//! everything the child printed is there. The same directory is reused across iterations,
//! so every child also starts from a store recovered after a kill.

#[path = "common/rng.rs"]
mod rng;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use jetlog::meta::{pb, MetaStore};
use rng::Rng;
use tempfile::TempDir;

const TEST_NAME: &str = "acknowledged_writes_survive_kill_9";
/// Set in the child: the store directory. Its presence selects child mode.
const CHILD_DIR_ENV: &str = "JETLOG_META_KILL_CHILD_DIR";
/// Set in the child: a prefix that makes each iteration's stream names unique.
const CHILD_PREFIX_ENV: &str = "JETLOG_META_KILL_CHILD_PREFIX";
const ITERATIONS_ENV: &str = "JETLOG_META_KILL_ITERATIONS";
const DEFAULT_ITERATIONS: u32 = 10;
/// The child's loop bound, so an orphaned child stops by itself.
const CHILD_MAX_PUTS: u32 = 50_000;
/// How long the parent waits for the child's first acknowledged write.
const FIRST_ACK_TIMEOUT: Duration = Duration::from_secs(60);
/// The kill lands uniformly within this long after the first acknowledged write.
const MAX_KILL_DELAY_MS: u64 = 300;
/// How long the parent waits for the child's output to end after the kill.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
const STATE_STREAM: &str = "kill-state";
const STATE_CONSUMER: &str = "c";

#[test]
fn acknowledged_writes_survive_kill_9() {
    if let Some(dir) = std::env::var_os(CHILD_DIR_ENV) {
        let prefix = std::env::var(CHILD_PREFIX_ENV).unwrap_or_default();
        run_child(Path::new(&dir), &prefix);
        return;
    }
    let iterations = match std::env::var(ITERATIONS_ENV) {
        Ok(text) => text
            .parse()
            .expect("JETLOG_META_KILL_ITERATIONS must be a number"),
        Err(_) => DEFAULT_ITERATIONS,
    };
    let mut rng = Rng::from_clock();
    eprintln!("kill test: {iterations} iterations, seed {}", rng.0);
    let dir = TempDir::new().unwrap();
    let mut acknowledged = BTreeSet::new();
    let mut last_state = 0;
    for iteration in 0..iterations {
        let delay = Duration::from_millis(rng.next() % (MAX_KILL_DELAY_MS + 1));
        let lines = run_and_kill(dir.path(), &format!("i{iteration:03}-"), delay);
        let mut puts = 0;
        for line in lines {
            if let Some(name) = line.strip_prefix("PUT ") {
                acknowledged.insert(name.to_owned());
                puts += 1;
            } else if let Some(n) = line.strip_prefix("STATE ") {
                last_state = n.parse().unwrap();
            }
        }
        let store = MetaStore::open(dir.path()).expect("reopen after kill");
        let stored: BTreeSet<String> = store
            .list_streams()
            .expect("list after kill")
            .into_iter()
            .map(|s| s.name)
            .filter(|name| name != STATE_STREAM)
            .collect();
        let missing: Vec<_> = acknowledged.difference(&stored).collect();
        assert!(
            missing.is_empty(),
            "iteration {iteration}: lost {missing:?}"
        );
        let state = store
            .get_consumer_state(STATE_STREAM, STATE_CONSUMER)
            .expect("read state after kill")
            .and_then(|s| s.delivered)
            .map_or(0, |d| d.consumer_seq);
        // The child may be killed after a put returned but before it printed, so the store
        // can be one write ahead of what was printed, never behind.
        assert!(
            state == last_state || state == last_state + 1,
            "iteration {iteration}: stored state {state}, last acknowledged {last_state}"
        );
        last_state = state;
        eprintln!(
            "iteration {iteration}: killed after {delay:?}, {puts} acknowledged puts, state {state}"
        );
    }
}

/// Runs one child until `delay` after its first acknowledged write, kills it with SIGKILL,
/// and returns every complete line it printed.
fn run_and_kill(dir: &Path, prefix: &str, delay: Duration) -> Vec<String> {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_ENV, dir)
        .env(CHILD_PREFIX_ENV, prefix)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            match stdout.read_line(&mut line) {
                // A line cut by the kill has no newline: it was never fully acknowledged.
                Ok(n) if n > 0 && line.ends_with('\n') => {
                    if tx.send(line.trim_end().to_owned()).is_err() {
                        return;
                    }
                }
                _ => return,
            }
        }
    });
    let mut lines = Vec::new();
    loop {
        match rx.recv_timeout(FIRST_ACK_TIMEOUT) {
            Ok(line) => {
                let first_ack = line.starts_with("PUT ");
                lines.push(line);
                if first_ack {
                    break;
                }
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("child produced no acknowledged write: {e:?}");
            }
        }
    }
    thread::sleep(delay);
    child.kill().unwrap(); // SIGKILL on Unix.
    child.wait().unwrap();
    while let Ok(line) = rx.recv_timeout(DRAIN_TIMEOUT) {
        lines.push(line);
    }
    reader.join().unwrap();
    lines
}

/// The child: writes until killed (or `CHILD_MAX_PUTS`), announcing each durable write.
fn run_child(dir: &Path, prefix: &str) {
    let store = MetaStore::open(dir).expect("child open");
    let stream = pb::StreamConfig {
        name: STATE_STREAM.into(),
        ..Default::default()
    };
    store.put_stream(&stream).unwrap();
    let consumer = pb::ConsumerConfig {
        name: STATE_CONSUMER.into(),
        ..Default::default()
    };
    if store
        .get_consumer(STATE_STREAM, STATE_CONSUMER)
        .unwrap()
        .is_none()
    {
        store.put_consumer(STATE_STREAM, &consumer).unwrap();
    }
    let mut n = store
        .get_consumer_state(STATE_STREAM, STATE_CONSUMER)
        .unwrap()
        .and_then(|s| s.delivered)
        .map_or(0, |d| d.consumer_seq);
    let mut out = std::io::stdout().lock();
    for i in 0..CHILD_MAX_PUTS {
        let name = format!("{prefix}{i:06}");
        let config = pb::StreamConfig {
            name: name.clone(),
            subjects: vec![format!("{name}.>")],
            ..Default::default()
        };
        store.put_stream(&config).unwrap();
        writeln!(out, "PUT {name}").unwrap();
        out.flush().unwrap();

        n += 1;
        let state = pb::ConsumerState {
            delivered: Some(pb::SequenceInfo {
                consumer_seq: n,
                stream_seq: n,
                last_active_unix_ns: Some(1),
            }),
            ..Default::default()
        };
        store
            .put_consumer_state(STATE_STREAM, STATE_CONSUMER, &state)
            .unwrap();
        writeln!(out, "STATE {n}").unwrap();
        out.flush().unwrap();
    }
}
