//! Runs the built `jetlog` client binary with bounded waits, and checks a server's state
//! through async-nats. Shared by the `cli_*` test files.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use async_nats::jetstream;

use crate::common::TestServer;

/// Longest any one CLI invocation may take in a test before it is killed and the test fails.
pub const RUN_LIMIT: Duration = Duration::from_secs(20);

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    /// Asserts a zero exit and returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "expected success: {self:#?}");
        &self.stdout
    }

    /// Asserts exit code 1 with exactly one line on stderr containing `needle`.
    pub fn fails_with(&self, needle: &str) {
        assert_eq!(self.code, Some(1), "expected failure: {self:#?}");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one error line expected: {self:#?}");
        assert!(
            lines[0].starts_with("jetlog: error: ") && lines[0].contains(needle),
            "expected {needle:?} in {:?}",
            lines[0]
        );
    }

    /// Parses stdout as one JSON document.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {:?}", self.stdout))
    }

    /// Parses stdout as JSON lines.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.ok()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
            .collect()
    }
}

fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jetlog"));
    cmd.args(args);
    // The connection variables natscli reads: none of the developer's may leak into a test.
    for var in [
        "NATS_URL",
        "NATS_USER",
        "NATS_PASSWORD",
        "NATS_CREDS",
        "NATS_NKEY",
        "NATS_CA",
        "NATS_CERT",
        "NATS_KEY",
    ] {
        cmd.env_remove(var);
    }
    // Nor the developer's natscli contexts: a selected one would apply to every command.
    cmd.env_remove("NATS_CONTEXT");
    cmd.env(
        "XDG_CONFIG_HOME",
        "/nonexistent/jetlog-tests-have-no-contexts",
    );
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs `jetlog ARGS` with extra environment variables (those of the connection included).
pub fn jetlog_with_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let started = Instant::now();
    let mut cmd = command(args);
    for (key, value) in env {
        cmd.env(key, value);
    }
    let child = cmd.spawn().expect("spawn jetlog");
    finish(child, started)
}

/// Runs `jetlog ARGS` against no particular server.
pub fn jetlog(args: &[&str]) -> Run {
    let started = Instant::now();
    let child = command(args).spawn().expect("spawn jetlog");
    finish(child, started)
}

/// Runs `jetlog ARGS -s URL`.
pub fn jetlog_at(url: &str, args: &[&str]) -> Run {
    let mut all = args.to_vec();
    all.extend(["-s", url]);
    jetlog(&all)
}

/// Runs `jetlog ARGS -s URL` with `input` on its stdin (written from a thread, so a large
/// input cannot block the test while the child's stdout fills).
pub fn jetlog_with_stdin(url: &str, args: &[&str], input: &[u8]) -> Run {
    let mut all = args.to_vec();
    all.extend(["-s", url]);
    let started = Instant::now();
    let mut child = command(&all)
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn jetlog");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    std::thread::spawn(move || {
        use std::io::Write;
        // A child that exits early closes the pipe; that is its answer, not a test failure.
        let _ = stdin.write_all(&input);
    });
    finish(child, started)
}

/// Waits (bounded) for a child to exit, reading both pipes meanwhile.
fn finish(mut child: Child, started: Instant) -> Run {
    let stdout = drain(child.stdout.take().expect("stdout"));
    let stderr = drain(child.stderr.take().expect("stderr"));
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("jetlog did not exit within {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = started.elapsed();
    Run {
        code: status.code(),
        stdout: stdout.recv_timeout(RUN_LIMIT).unwrap_or_default(),
        stderr: stderr.recv_timeout(RUN_LIMIT).unwrap_or_default(),
        elapsed,
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        let _ = tx.send(text);
    });
    rx
}

/// A command running in the background: `sub` or `reply` once it has said `listening on …`
/// on stderr, or anything started with `Background::start`.
pub struct Listening {
    child: Child,
    started: Instant,
    stderr_rest: mpsc::Receiver<String>,
}

impl Listening {
    /// Starts `jetlog ARGS -s URL` without waiting for anything.
    pub fn start_now(url: &str, args: &[&str]) -> Self {
        let mut all = args.to_vec();
        all.extend(["-s", url]);
        let started = Instant::now();
        let mut child = command(&all).spawn().expect("spawn jetlog");
        let stderr = drain(child.stderr.take().expect("stderr"));
        Self {
            child,
            started,
            stderr_rest: stderr,
        }
    }

    /// Starts `jetlog ARGS -s URL` and waits (bounded) until it is subscribed.
    pub fn start(url: &str, args: &[&str]) -> Self {
        let mut all = args.to_vec();
        all.extend(["-s", url]);
        let started = Instant::now();
        let mut child = command(&all).spawn().expect("spawn jetlog");
        let stderr = child.stderr.take().expect("stderr");
        let (ready_tx, ready_rx) = mpsc::channel();
        let (rest_tx, rest_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut rest = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.starts_with("listening on ") {
                    let _ = ready_tx.send(());
                } else {
                    rest.push_str(&line);
                    rest.push('\n');
                }
            }
            let _ = rest_tx.send(rest);
        });
        if ready_rx.recv_timeout(Duration::from_secs(10)).is_err() {
            let _ = child.kill();
            panic!("jetlog {all:?} did not start listening");
        }
        Self {
            child,
            started,
            stderr_rest: rest_rx,
        }
    }

    /// Whether the command has exited already.
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Waits (bounded) for the command to exit on its own.
    pub fn finish(mut self) -> Run {
        let stdout = drain(self.child.stdout.take().expect("stdout"));
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if self.started.elapsed() > RUN_LIMIT {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("jetlog did not exit within {RUN_LIMIT:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        Run {
            code: status.code(),
            stdout: stdout.recv_timeout(RUN_LIMIT).unwrap_or_default(),
            stderr: self.stderr_rest.recv_timeout(RUN_LIMIT).unwrap_or_default(),
            elapsed: self.started.elapsed(),
        }
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a future to completion on a fresh runtime, bounded in time.
pub fn block_on<T>(fut: impl std::future::Future<Output = T>) -> T {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), fut)
            .await
            .expect("timed out")
    })
}

/// A JetStream context on the server, for checking state behind the CLI's back.
pub async fn js(url: &str) -> jetstream::Context {
    let client = async_nats::connect(url).await.expect("connect");
    jetstream::new(client)
}

/// The server's view of a stream.
pub fn stream_info(url: &str, name: &str) -> jetstream::stream::Info {
    block_on(async {
        let js = js(url).await;
        let mut stream = js.get_stream(name).await.expect("stream exists");
        stream.info().await.expect("info").clone()
    })
}

/// Whether the server knows the stream.
pub fn stream_exists(url: &str, name: &str) -> bool {
    block_on(async { js(url).await.get_stream(name).await.is_ok() })
}

/// A port with nothing listening on it: bound, noted and released.
/// A server URL nothing listens on, refused at once. It uses 127.0.0.2 (still loopback)
/// because every test server binds 127.0.0.1: a port found free on 127.0.0.1 and released can
/// be taken by another test's server running in parallel, which made "unreachable" tests pass
/// a connection and fail now and then.
pub fn unreachable_url() -> String {
    format!("nats://127.0.0.2:{}", closed_port())
}

pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Whichever server the test runs against: nats-server when `JETLOG_REFERENCE_SERVER` names
/// it, else jetlog; it is held only so dropping it stops the server.
pub struct AnyServer {
    _jetlog: Option<TestServer>,
    _reference: Option<ReferenceServer>,
}

impl AnyServer {
    pub fn start() -> (Self, String) {
        match ReferenceServer::from_env() {
            Some(reference) => {
                let url = reference.url.clone();
                let server = Self {
                    _jetlog: None,
                    _reference: Some(reference),
                };
                (server, url)
            }
            None => {
                let jetlog = TestServer::start(&[]);
                let url = jetlog.url();
                let server = Self {
                    _jetlog: Some(jetlog),
                    _reference: None,
                };
                (server, url)
            }
        }
    }
}

/// nats-server itself, for running the same CLI tests against the reference server when the
/// environment names its binary (`JETLOG_REFERENCE_SERVER=nats-server`).
pub struct ReferenceServer {
    child: Child,
    pub url: String,
    _store: tempfile::TempDir,
}

impl ReferenceServer {
    /// Starts the binary named by `JETLOG_REFERENCE_SERVER` with JetStream on a free port,
    /// or returns `None` when the variable is not set.
    pub fn from_env() -> Option<Self> {
        let binary = std::env::var("JETLOG_REFERENCE_SERVER").ok()?;
        let store = tempfile::tempdir().expect("temp dir");
        let port = closed_port();
        let child = Command::new(&binary)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {binary}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "{binary} did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Self {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            _store: store,
        })
    }
}

impl Drop for ReferenceServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
