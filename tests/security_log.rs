//! What the default log says about refused clients (issue 16): failed authentication with
//! the client's address, connection id and user; publish and subscribe violations with the
//! user and subject; protocol errors; and no storage-library chatter under `-V`. Worded as
//! nats-server words them, so operators' searches keep finding them.

mod common;

use std::time::{Duration, Instant};

use common::TestServer;

const USERS: &str = "authorization {\n  users: [\n    { user: alice, password: right }\n    { user: bob, password: pw, permissions: { publish: \"ok.>\", subscribe: \"ok.>\" } }\n  ]\n}\n";

fn wait_for_log(server: &TestServer, needle: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if server.log_contains(needle) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn start_with_users() -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("users.conf");
    std::fs::write(&conf, USERS).unwrap();
    (TestServer::start(&["-c", conf.to_str().unwrap()]), dir)
}

#[test]
fn refused_credentials_and_permissions_are_logged_with_who_and_what() {
    let (server, _dir) = start_with_users();
    let mut wrong = server.raw();
    let cid = wrong.read_info()["client_id"].as_u64().unwrap();
    wrong.send(b"CONNECT {\"verbose\":false,\"user\":\"alice\",\"pass\":\"guess\"}\r\n");
    let _ = wrong.read_for(Duration::from_millis(300));
    let line = format!(" - cid:{cid} - authentication error - User \"alice\"");
    assert!(
        wait_for_log(&server, &line),
        "{:?}",
        server.log.lock().unwrap()
    );
    assert!(!server.log_contains("guess"), "a password reached the log");

    let mut bob = server.raw();
    let cid = bob.read_info()["client_id"].as_u64().unwrap();
    bob.send(b"CONNECT {\"verbose\":false,\"user\":\"bob\",\"pass\":\"pw\"}\r\n");
    bob.send(b"PUB secret.plans 1\r\nx\r\nSUB secret.> 7\r\nSUB secret.q workers 8\r\nPING\r\n");
    let got = bob.read_until_contains(b"PONG\r\n", Duration::from_secs(5));
    assert!(String::from_utf8_lossy(&got).contains("Permissions Violation"));
    for line in [
        format!(" - cid:{cid} - Publish Violation - User \"bob\", Subject \"secret.plans\""),
        format!(" - cid:{cid} - Subscription Violation - User \"bob\", Subject \"secret.>\", SID 7"),
        format!(
            " - cid:{cid} - Subscription Violation - User \"bob\", Subject \"secret.q\", Queue: \"workers\", SID 8"
        ),
    ] {
        assert!(wait_for_log(&server, &line), "{line}: {:?}", server.log.lock().unwrap());
    }
    // Every such line is an error, visible at the default level.
    assert!(server
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("Violation - ") || l.contains("authentication error"))
        .all(|l| l.contains("[ERR]")));
}

#[test]
fn protocol_errors_are_logged_and_trace_has_no_storage_chatter() {
    let server = TestServer::start(&["-V"]);
    let mut raw = server.raw();
    let cid = raw.read_info()["client_id"].as_u64().unwrap();
    raw.send(b"CONNECT {\"verbose\":false}\r\nNOT A THING\r\n");
    let (got, closed) = raw.read_for(Duration::from_secs(2));
    assert!(String::from_utf8_lossy(&got).contains("Unknown Protocol Operation"));
    assert!(closed);
    let line = format!(" - cid:{cid} - Client protocol error: Unknown Protocol Operation");
    assert!(
        wait_for_log(&server, &line),
        "{:?}",
        server.log.lock().unwrap()
    );
    let sled_lines = server
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("sled"))
        .count();
    assert_eq!(sled_lines, 0, "{:?}", server.log.lock().unwrap());
}

#[test]
fn trace_shows_the_protocol_in_nats_servers_shape_without_secrets() {
    let server = TestServer::start(&["-V", "--user", "u", "--pass", "p4ssw0rd"]);
    let mut raw = server.raw();
    let cid = raw.read_info()["client_id"].as_u64().unwrap();
    raw.send(b"CONNECT {\"verbose\":false,\"user\":\"u\",\"pass\":\"p4ssw0rd\"}\r\n");
    raw.send(b"SUB foo 1\r\nPUB foo r.1 5\r\nhello\r\nPING\r\n");
    raw.read_until_contains(b"PONG\r\n", Duration::from_secs(5));
    for op in [
        "<<- [SUB foo 1]",
        "<<- [PUB foo r.1 5]",
        "<<- [PING]",
        "->> [MSG foo 1 r.1 5]",
        "\"pass\":\"[REDACTED]\"",
    ] {
        let line = format!(" - cid:{cid} - ");
        assert!(
            wait_for_log(&server, op),
            "{op}: {:?}",
            server.log.lock().unwrap()
        );
        assert!(server
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(op) && l.contains(&line) && l.contains("[TRC]")));
    }
    assert!(
        !server.log_contains("p4ssw0rd"),
        "a password reached the trace"
    );
}
