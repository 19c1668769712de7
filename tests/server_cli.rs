//! `jetlog server` as a process: nats-server's flags, exit codes, logs and signals.

mod common;

use std::process::Command;
use std::time::Duration;

use common::TestServer;

fn jetlog(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_jetlog"))
        .args(args)
        .output()
        .expect("run jetlog")
}

#[test]
fn unknown_flags_fail_with_exit_code_1() {
    let out = jetlog(&["server", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unexpected argument '--no-such-flag'"),
        "{stderr}"
    );
}

#[test]
fn impossible_configurations_are_refused() {
    for (args, message) in [
        (
            &["server", "--user", "a"][..],
            "--user and --pass must be given together",
        ),
        (
            &["server", "--auth", "t", "--user", "a", "--pass", "b"],
            "cannot be combined",
        ),
        (&["server", "-p", "70000"], "invalid port 70000"),
        (&["server", "--sync", "sometimes"], "invalid sync mode"),
        (&["server", "--max_payload", "0"], "max_payload"),
    ] {
        let out = jetlog(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

#[test]
fn nats_server_flags_are_accepted_and_the_start_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let store_arg = store.to_str().unwrap().to_string();
    let server = TestServer::start(&["-js", "-sd", &store_arg, "-DV", "-m", "-1", "-n", "named"]);
    assert!(store.is_dir(), "the store directory is created");
    assert!(server.log_contains("Server is ready"));
    assert!(server.log_contains("Sync:            always"));
    assert!(server.log_contains("Starting http monitor on 127.0.0.1:"));
    let mut client = server.raw();
    assert_eq!(client.read_info()["server_name"], "named");
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let server = TestServer::start(&[]);
    let mut client = server.raw();
    client.read_info();
    client.send(b"CONNECT {\"verbose\":false}\r\nPING\r\n");
    client.read_until_contains(b"PONG\r\n", Duration::from_secs(5));
    let log = server.log.clone();
    let status = server.terminate().expect("server exited in time");
    assert!(status.success(), "exit status {status:?}");
    let (_, closed) = client.read_for(Duration::from_secs(2));
    assert!(closed, "clients are disconnected");
    let log = log.lock().unwrap();
    assert!(
        log.iter().any(|l| l.contains("Initiating Shutdown...")),
        "{log:?}"
    );
}

/// `[<pid>] <yyyy/mm/dd hh:mm:ss.micros> [INF] <message>`, as nats-server's log package
/// writes it; `-T=false` leaves the time out.
#[test]
fn log_lines_have_nats_server_shape() {
    let server = TestServer::start(&["-n", "shape"]);
    let pid = server.pid();
    let lines = server.log.lock().unwrap().clone();
    for wanted in [
        "Starting nats-server",
        "  Version:  ",
        "Starting JetStream",
        "    Store Directory: \"",
        "Listening for client connections on 127.0.0.1:",
        "Server is ready",
    ] {
        assert!(
            lines.iter().any(|l| l.contains(wanted)),
            "{wanted:?} missing from {lines:?}"
        );
    }
    for line in &lines {
        let rest = line
            .strip_prefix(&format!("[{pid}] "))
            .unwrap_or_else(|| panic!("no pid prefix: {line:?}"));
        let (stamp, rest) = rest.split_at(26);
        let shape: String = stamp
            .chars()
            .map(|c| if c.is_ascii_digit() { '9' } else { c })
            .collect();
        assert_eq!(shape, "9999/99/99 99:99:99.999999", "{line:?}");
        assert!(rest.starts_with(" [INF] "), "{line:?}");
    }
    drop(server);

    let server = TestServer::start(&["-T=false"]);
    let prefix = format!("[{}] [INF] ", server.pid());
    let lines = server.log.lock().unwrap().clone();
    assert!(lines.iter().all(|l| l.starts_with(&prefix)), "{lines:?}");
}

/// nats-server flags jetlog cannot honour (or not in that combination) are refused with the
/// reason; `-v` prints the version; `--signal term=<pid file>` stops a running server; SIGHUP
/// does not kill it.
#[test]
fn refused_flags_version_and_signals() {
    for (args, expected) in [
        (&["server", "--help_tls"][..], "--help_tls is not supported"),
        (
            &["server", "--routes", "nats://127.0.0.1:6222"][..],
            "a cluster needs a route port: set cluster.listen (or cluster.port), or --cluster",
        ),
        (
            &["server", "-ms", "8443"][..],
            "TLS cert and key required for HTTPS",
        ),
        (&["server", "-s"][..], "syslog output is not implemented"),
        (
            &["server", "--signal", "reopen=1"][..],
            "signal reopen is not supported",
        ),
    ] {
        let out = jetlog(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let out = jetlog(&["server", "-v"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("nats-server: v2."));

    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("s.pid");
    let server = TestServer::start(&["-P", pid_file.to_str().unwrap()]);
    let pid = server.pid() as i32;
    // SIGHUP reloads what jetlog reloads (TLS certificates; here nothing) and says so.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid).unwrap(),
        rustix::process::Signal::HUP,
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !server.log_contains("Reloaded: nothing") {
        assert!(std::time::Instant::now() < deadline, "SIGHUP not logged");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut client = server.raw();
    client.read_info();
    let out = jetlog(&[
        "server",
        "--signal",
        &format!("term={}", pid_file.display()),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !server.log_contains("Server Exiting..") {
        assert!(
            std::time::Instant::now() < deadline,
            "--signal term did not stop the server"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = server
        .terminate()
        .expect("server exited after --signal term");
    assert!(status.success(), "{status:?}");
}

/// A server stopped with SIGTERM closes every stream's log cleanly: the clean-shutdown
/// summary is there for the next start (which then reads no sealed segment), and the active
/// segment is cut back to its data.
#[test]
fn sigterm_closes_the_streams_cleanly() {
    let server = TestServer::start(&[]);
    let mut raw = server.raw();
    raw.send(b"CONNECT {}\r\nSUB _INBOX.> 1\r\n");
    raw.send(
        b"PUB $JS.API.STREAM.CREATE.Q _INBOX.c 29\r\n{\"name\":\"Q\",\"subjects\":[\"q\"]}\r\n",
    );
    raw.read_until_contains(b"stream_create_response", Duration::from_secs(5));
    raw.send(b"PUB q _INBOX.p 2\r\nhi\r\n");
    raw.read_until_contains(b"\"seq\":1", Duration::from_secs(5));
    let store = server.store_handoff();
    let dir = store.path().join("streams").join("Q");
    assert!(
        dir.join("snapshot.dat").exists(),
        "no clean-shutdown summary"
    );
    let segment = std::fs::read_dir(&dir)
        .expect("stream dir")
        .map(|e| e.expect("entry").path())
        .find(|p| p.extension().is_some_and(|x| x == "seg"))
        .expect("a segment");
    let len = std::fs::metadata(&segment).expect("metadata").len();
    assert!(
        len < 1024,
        "the segment keeps {len} bytes of preallocated space"
    );
}
