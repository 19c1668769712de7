//! Starts the real `jetlog` binary on a free port for integration tests, and stops it on drop.
#![allow(dead_code)]

pub mod cluster;
pub mod js_cluster;
pub mod js_consumer;
pub mod monitor;
pub mod netns;
pub mod pki;
pub mod process;
pub mod r3;
pub mod raw_js;
pub mod rng;
pub mod snapshot;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a test waits for the server to say it is listening.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running server process with its own store directory.
pub struct TestServer {
    child: Child,
    pub port: u16,
    pub store: tempfile::TempDir,
    /// Every line the server logged so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl TestServer {
    /// Starts `jetlog server` on 127.0.0.1 with a free port and the given extra flags.
    pub fn start(extra: &[&str]) -> Self {
        let store = tempfile::tempdir().expect("temp dir");
        Self::start_in(store, extra)
    }

    pub fn start_in(store: tempfile::TempDir, extra: &[&str]) -> Self {
        Self::spawn(Command::new(env!("CARGO_BIN_EXE_jetlog")), store, extra)
    }

    /// Starts the server under an open-files limit of `limit` (soft and hard, through
    /// `prlimit`), as on a machine that allows a process no more.
    pub fn start_with_open_files_limit(
        limit: u64,
        store: tempfile::TempDir,
        extra: &[&str],
    ) -> Self {
        let mut command = Command::new("prlimit");
        command
            .arg(format!("--nofile={limit}:{limit}"))
            .arg(env!("CARGO_BIN_EXE_jetlog"));
        Self::spawn(command, store, extra)
    }

    fn spawn(mut command: Command, store: tempfile::TempDir, extra: &[&str]) -> Self {
        let mut child = command
            .args(["server", "-a", "127.0.0.1", "-p", "-1", "--store_dir"])
            .arg(store.path())
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn jetlog");
        let (log, port) = follow_log(&mut child);
        Self {
            child,
            port,
            store,
            log,
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Connects a raw TCP socket with a read timeout, so no test can hang on a read.
    pub fn raw(&self) -> RawClient {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        RawClient {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(mut self) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Kills the server with SIGKILL (no chance to flush or sync) and hands over its store
    /// directory for a restart.
    pub fn kill_and_take_store(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::replace(&mut self.store, tempfile::tempdir().expect("temp dir"))
    }

    /// [`TestServer::kill_and_take_store`], also handing over what the server logged.
    pub fn kill_and_take_store_and_log(mut self) -> (tempfile::TempDir, Vec<String>) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The reader thread takes the last lines the pipe held.
        std::thread::sleep(Duration::from_millis(50));
        let log = self.log_lines();
        let store = std::mem::replace(&mut self.store, tempfile::tempdir().expect("temp dir"));
        (store, log)
    }

    /// Stops the server with SIGTERM (bounded wait) and hands over its store directory.
    pub fn store_handoff(mut self) -> tempfile::TempDir {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::mem::replace(&mut self.store, tempfile::tempdir().expect("temp dir"))
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub fn log_contains(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    /// Whether the server logs a line containing `needle` within `limit`: the log is read
    /// from the server's stderr by a thread of its own, so a line the server wrote just
    /// now may not be in it yet.
    pub fn logs_within(&self, needle: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if self.log_contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Drains a starting server's stderr into a shared log for the server's whole life (so it can
/// never block on a full pipe) and waits, bounded, until it says it is ready; returns the log
/// and the client port it logged. A server that does not start is killed and the test fails
/// with its log.
pub fn follow_log(child: &mut Child) -> (Arc<Mutex<Vec<String>>>, u16) {
    let stderr = child.stderr.take().expect("stderr");
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    let log_writer = log.clone();
    std::thread::spawn(move || {
        let mut port = None;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(p) = line
                .split("Listening for client connections on ")
                .nth(1)
                .and_then(|addr| addr.rsplit(':').next())
                .and_then(|p| p.trim().parse::<u16>().ok())
            {
                port = Some(p);
            }
            let ready = line.contains("Server is ready");
            log_writer.lock().unwrap().push(line);
            if let (true, Some(p)) = (ready, port) {
                let _ = tx.send(p);
            }
        }
    });
    match rx.recv_timeout(START_TIMEOUT) {
        Ok(port) => (log, port),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("server did not start; log: {:?}", log.lock().unwrap());
        }
    }
}

/// A raw protocol connection for byte-exact tests.
pub struct RawClient {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl RawClient {
    /// Wraps a connected socket (with a read timeout set, so no read can hang).
    pub fn from_stream(stream: TcpStream) -> Self {
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    /// Puts bytes back in front of whatever the next read returns.
    pub fn unread(&mut self, mut bytes: Vec<u8>) {
        bytes.append(&mut self.buf);
        self.buf = bytes;
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Reads until `expected` bytes have arrived or `limit` passes; returns what arrived.
    pub fn read_until_contains(&mut self, expected: &[u8], limit: Duration) -> Vec<u8> {
        let deadline = Instant::now() + limit;
        let mut chunk = [0u8; 65536];
        while Instant::now() < deadline && !contains(&self.buf, expected) {
            match self.stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break,
            }
        }
        std::mem::take(&mut self.buf)
    }

    /// Reads everything that arrives within `limit`, and whether the server closed the socket.
    pub fn read_for(&mut self, limit: Duration) -> (Vec<u8>, bool) {
        let deadline = Instant::now() + limit;
        let mut chunk = [0u8; 65536];
        let mut closed = false;
        while Instant::now() < deadline {
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        (std::mem::take(&mut self.buf), closed)
    }

    /// Reads the INFO line the server sends first and returns its JSON.
    pub fn read_info(&mut self) -> serde_json::Value {
        let mut bytes = self.read_until_contains(b"\r\n", Duration::from_secs(5));
        let end = bytes
            .windows(2)
            .position(|w| w == b"\r\n")
            .map_or(bytes.len(), |p| p + 2);
        // Whatever came after the INFO line stays buffered for the next read.
        self.buf = bytes.split_off(end);
        let line = String::from_utf8(bytes).expect("utf8");
        let json = line
            .strip_prefix("INFO ")
            .and_then(|l| l.strip_suffix(" \r\n"))
            .unwrap_or_else(|| panic!("not an INFO line: {line:?}"));
        serde_json::from_str(json).expect("INFO json")
    }
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// Bounds an async wait in a test.
pub async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Asserts that a request on `subject` finds nobody to answer it: the server's no-responders
/// status, not a timeout.
pub async fn assert_no_responders(client: &async_nats::Client, subject: &str) {
    let result = within(subject, client.request(subject.to_string(), "".into())).await;
    match result {
        Err(err) => assert_eq!(
            err.kind(),
            async_nats::RequestErrorKind::NoResponders,
            "{subject}"
        ),
        Ok(reply) => panic!("{subject} was answered: {reply:?}"),
    }
}

impl TestServer {
    /// Starts a server on the config file `conf` (written to a temporary directory, returned
    /// so it outlives the server), with `extra` flags.
    pub fn start_with_config(conf: &str, extra: &[&str]) -> (Self, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("server.conf");
        std::fs::write(&path, conf).expect("write config");
        let mut args = vec!["-c", path.to_str().expect("utf-8 path")];
        args.extend_from_slice(extra);
        (Self::start(&args), dir)
    }
}

/// Connects as `user` with the password `pw`, as the account tests' users are configured.
pub async fn connect_as(server: &TestServer, user: &str) -> async_nats::Client {
    within(
        "connect",
        async_nats::ConnectOptions::with_user_and_password(user.into(), "pw".into())
            .connect(server.url()),
    )
    .await
    .unwrap_or_else(|e| panic!("{user} connects: {e}"))
}
