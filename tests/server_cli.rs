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
