//! Raw-TCP protocol tests: the exact bytes the server sends for good and bad input.

mod common;

use std::time::Duration;

use common::{contains, TestServer};

const QUIET: &[u8] = b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\n";
const SHORT: Duration = Duration::from_millis(500);
const LONG: Duration = Duration::from_secs(5);

/// Sends `input` on a fresh connection and returns everything after INFO, and whether the
/// server closed the connection.
fn exchange(server: &TestServer, input: &[u8]) -> (Vec<u8>, bool) {
    let mut client = server.raw();
    client.read_info();
    client.send(input);
    client.read_for(SHORT)
}

fn assert_reply(server: &TestServer, input: &[u8], expected: &[u8], closes: bool) {
    let (got, closed) = exchange(server, input);
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(expected),
        "reply to {:?}",
        String::from_utf8_lossy(input)
    );
    assert_eq!(
        closed,
        closes,
        "connection closed? input {:?}",
        String::from_utf8_lossy(input)
    );
}

#[test]
fn info_describes_the_server_in_nats_shape() {
    let server = TestServer::start(&["-n", "wire-test"]);
    let mut client = server.raw();
    let info = client.read_info();
    assert_eq!(info["server_name"], "wire-test");
    assert_eq!(info["version"], "2.10.0");
    assert_eq!(info["proto"], 1);
    assert_eq!(info["headers"], true);
    assert_eq!(info["max_payload"], 1048576);
    assert_eq!(info["port"], server.port);
    assert!(info.get("auth_required").is_none());
    assert!(info["jetlog_version"].is_string());
    let id = info["server_id"].as_str().unwrap();
    assert!(id.len() == 56 && id.starts_with('N'), "{id}");
    assert!(info["client_id"].as_u64().unwrap() > 0);
}

#[test]
fn defaults_are_verbose_and_ping_gets_pong() {
    let server = TestServer::start(&[]);
    assert_reply(
        &server,
        b"CONNECT {}\r\nPING\r\n",
        b"+OK\r\nPONG\r\n",
        false,
    );
    // Without auth, ops before CONNECT run with the verbose default.
    assert_reply(
        &server,
        b"SUB foo 1\r\nUNSUB 1\r\nUNSUB 99\r\n",
        b"+OK\r\n+OK\r\n+OK\r\n",
        false,
    );
}

#[test]
fn verbose_ok_comes_before_the_echoed_message() {
    let server = TestServer::start(&[]);
    assert_reply(
        &server,
        b"CONNECT {}\r\nSUB foo 1\r\nPUB foo 5\r\nhello\r\n",
        b"+OK\r\n+OK\r\n+OK\r\nMSG foo 1 5\r\nhello\r\n",
        false,
    );
}

#[test]
fn many_ops_in_one_write_are_all_applied_in_order() {
    let server = TestServer::start(&[]);
    let mut input = QUIET.to_vec();
    input.extend_from_slice(
        b"SUB a.* 1\r\nSUB a.> q 2\r\nsub b 3\r\nPUB a.x 1\r\n1\r\npub a.y r 2\r\n22\r\n",
    );
    input.extend_from_slice(b"PUB b 0\r\n\r\nUNSUB 1\r\nPUB a.z 1\r\n3\r\nPING\r\n");
    let expected =
        b"MSG a.x 1 1\r\n1\r\nMSG a.x 2 1\r\n1\r\nMSG a.y 1 r 2\r\n22\r\nMSG a.y 2 r 2\r\n22\r\n\
MSG b 3 0\r\n\r\nMSG a.z 2 1\r\n3\r\nPONG\r\n";
    assert_reply(&server, &input, expected, false);
}

#[test]
fn a_message_split_at_every_byte_offset_arrives_whole() {
    let server = TestServer::start(&[]);
    let mut sub = server.raw();
    sub.read_info();
    sub.send(b"CONNECT {\"verbose\":false}\r\nSUB split.> 7\r\nPING\r\n");
    sub.read_until_contains(b"PONG\r\n", LONG);
    let mut publisher = server.raw();
    publisher.read_info();
    publisher.send(QUIET);
    let msg = b"HPUB split.it reply.to 24 29\r\nNATS/1.0\r\nA: 1\r\nB: 2\r\n\r\nhello\r\n";
    let expected = b"MSG split.it 7 reply.to 5\r\nhello\r\n";
    for cut in 0..=msg.len() {
        publisher.send(&msg[..cut]);
        std::thread::sleep(Duration::from_millis(2));
        publisher.send(&msg[cut..]);
        let got = sub.read_until_contains(expected, LONG);
        assert_eq!(got, expected, "split at {cut}");
    }
}

#[test]
fn headers_are_stripped_for_clients_that_did_not_ask_for_them() {
    let server = TestServer::start(&[]);
    let mut plain = server.raw();
    plain.read_info();
    plain.send(b"CONNECT {\"verbose\":false}\r\nSUB h 1\r\nPING\r\n");
    plain.read_until_contains(b"PONG\r\n", LONG);
    let mut with_headers = server.raw();
    with_headers.read_info();
    with_headers.send(b"CONNECT {\"verbose\":false,\"headers\":true}\r\nSUB h 2\r\nPING\r\n");
    with_headers.read_until_contains(b"PONG\r\n", LONG);
    let mut publisher = server.raw();
    publisher.read_info();
    publisher.send(b"CONNECT {\"verbose\":false,\"headers\":true}\r\nHPUB h 18 20\r\nNATS/1.0\r\nK: v\r\n\r\nok\r\n");
    assert_eq!(
        plain.read_until_contains(b"ok\r\n", LONG),
        b"MSG h 1 2\r\nok\r\n"
    );
    assert_eq!(
        with_headers.read_until_contains(b"ok\r\n", LONG),
        b"HMSG h 2 18 20\r\nNATS/1.0\r\nK: v\r\n\r\nok\r\n"
    );
}

#[test]
fn no_responders_status_goes_to_the_requesters_reply_subscription() {
    let server = TestServer::start(&[]);
    let mut input =
        b"CONNECT {\"verbose\":false,\"headers\":true,\"no_responders\":true}\r\n".to_vec();
    input.extend_from_slice(b"SUB _INBOX.abc.* 9\r\nPUB svc.none _INBOX.abc.1 2\r\nhi\r\nPING\r\n");
    let expected =
        b"HMSG _INBOX.abc.1 9 40 40\r\nNATS/1.0 503\r\nNats-Subject: svc.none\r\n\r\n\r\nPONG\r\n";
    assert_reply(&server, &input, expected, false);
    // Without no_responders in CONNECT the request is simply dropped.
    let mut input = QUIET.to_vec();
    input.extend_from_slice(b"SUB _INBOX.abc.* 9\r\nPUB svc.none _INBOX.abc.1 2\r\nhi\r\nPING\r\n");
    assert_reply(&server, &input, b"PONG\r\n", false);
}

#[test]
fn unsub_with_max_stops_after_max_deliveries() {
    let server = TestServer::start(&[]);
    let mut input = QUIET.to_vec();
    input.extend_from_slice(
        b"SUB m 1\r\nUNSUB 1 2\r\nPUB m 1\r\na\r\nPUB m 1\r\nb\r\nPUB m 1\r\nc\r\nPING\r\n",
    );
    assert_reply(
        &server,
        &input,
        b"MSG m 1 1\r\na\r\nMSG m 1 1\r\nb\r\nPONG\r\n",
        false,
    );
}

#[test]
fn fatal_protocol_errors_are_reported_and_close_the_connection() {
    let server = TestServer::start(&[]);
    let unknown = b"-ERR 'Unknown Protocol Operation'\r\n";
    for input in [
        &b"FOO\r\n"[..],
        b"\r\n",
        b"PUB foo\r\n",
        b"PUB foo bar\r\n",
        b"PUB foo -1\r\n",
        b"PUB a b c 5\r\n",
        b"PUB foo 2\r\nabc\r\n",
        b"HPUB foo 10 5\r\n",
        b"SUB foo\r\n",
        b"UNSUB\r\n",
        b"CONNECT {not json\r\n",
    ] {
        assert_reply(&server, input, unknown, true);
    }
    assert_reply(
        &server,
        b"PUB foo 1048577\r\n",
        b"-ERR 'Maximum Payload Violation'\r\n",
        true,
    );
    assert_reply(
        &server,
        b"HPUB foo 12 1048577\r\n",
        b"-ERR 'Maximum Payload Violation'\r\n",
        true,
    );
    let mut long = b"SUB ".to_vec();
    long.extend(vec![b'a'; 4097]);
    long.extend_from_slice(b" 1\r\n");
    assert_reply(
        &server,
        &long,
        b"-ERR 'maximum control line exceeded'\r\n",
        true,
    );
    assert_reply(
        &server,
        b"CONNECT {\"protocol\":2}\r\n",
        b"-ERR 'invalid client protocol'\r\n",
        true,
    );
    assert_reply(
        &server,
        b"CONNECT {\"no_responders\":true}\r\n",
        b"-ERR 'no responders requires headers support'\r\n",
        true,
    );
}

#[test]
fn payload_at_max_payload_is_accepted() {
    let server = TestServer::start(&["--max_payload", "8"]);
    let mut input = QUIET.to_vec();
    input.extend_from_slice(b"SUB p 1\r\nPUB p 8\r\n12345678\r\nPING\r\n");
    assert_reply(&server, &input, b"MSG p 1 8\r\n12345678\r\nPONG\r\n", false);
    assert_reply(
        &server,
        b"PUB p 9\r\n",
        b"-ERR 'Maximum Payload Violation'\r\n",
        true,
    );
}

#[test]
fn invalid_subjects_are_reported_and_the_connection_stays_open() {
    let server = TestServer::start(&[]);
    for bad in ["foo.", ".foo", "foo..bar", "foo.>.bar"] {
        let mut input = QUIET.to_vec();
        input.extend_from_slice(format!("SUB {bad} 1\r\nPING\r\n").as_bytes());
        assert_reply(
            &server,
            &input,
            b"-ERR 'Invalid Subject'\r\nPONG\r\n",
            false,
        );
    }
    // Publish subjects: only pedantic clients hear about them, and wildcard tokens are routed
    // literally (to wildcard subscriptions), as nats-server does.
    let mut input = b"CONNECT {\"verbose\":false,\"pedantic\":true}\r\n".to_vec();
    input.extend_from_slice(b"SUB > 1\r\nPUB foo.* 1\r\nx\r\nPING\r\n");
    assert_reply(
        &server,
        &input,
        b"-ERR 'Invalid Publish Subject'\r\nMSG foo.* 1 1\r\nx\r\nPONG\r\n",
        false,
    );
    let mut input = QUIET.to_vec();
    input.extend_from_slice(
        b"SUB foo.bar 1\r\nSUB foo.* 2\r\nPUB foo.* 1\r\nx\r\nPUB foo..bar 1\r\ny\r\nPING\r\n",
    );
    assert_reply(&server, &input, b"MSG foo.* 2 1\r\nx\r\nPONG\r\n", false);
}

#[test]
fn user_and_password_are_enforced() {
    let server = TestServer::start(&[
        "--user",
        "alice",
        "--pass",
        "s3cret",
        "--auth_timeout",
        "300ms",
    ]);
    let mut client = server.raw();
    assert_eq!(client.read_info()["auth_required"], true);
    let violation = b"-ERR 'Authorization Violation'\r\n";
    assert_reply(&server, b"PING\r\n", violation, true);
    assert_reply(&server, b"CONNECT {\"verbose\":false}\r\n", violation, true);
    assert_reply(
        &server,
        b"CONNECT {\"user\":\"alice\",\"pass\":\"wrong\"}\r\n",
        violation,
        true,
    );
    assert_reply(
        &server,
        b"CONNECT {\"verbose\":false,\"user\":\"alice\",\"pass\":\"s3cret\"}\r\nPING\r\n",
        b"PONG\r\n",
        false,
    );
    // Saying nothing past the auth timeout.
    let mut silent = server.raw();
    silent.read_info();
    let (got, closed) = silent.read_for(Duration::from_secs(2));
    assert_eq!(got, b"-ERR 'Authentication Timeout'\r\n");
    assert!(closed);
}

#[test]
fn token_is_enforced() {
    let server = TestServer::start(&["--auth", "tok3n"]);
    assert_reply(
        &server,
        b"CONNECT {\"auth_token\":\"nope\"}\r\n",
        b"-ERR 'Authorization Violation'\r\n",
        true,
    );
    assert_reply(
        &server,
        b"CONNECT {\"auth_token\":\"tok3n\"}\r\nPING\r\n",
        b"+OK\r\nPONG\r\n",
        false,
    );
}

#[test]
fn unanswered_pings_make_the_connection_stale() {
    let server = TestServer::start(&["--ping_interval", "200ms", "--ping_max", "2"]);
    let mut client = server.raw();
    client.read_info();
    client.send(QUIET);
    let (got, closed) = client.read_for(Duration::from_secs(3));
    assert_eq!(
        String::from_utf8_lossy(&got),
        "PING\r\nPING\r\n-ERR 'Stale Connection'\r\n"
    );
    assert!(closed);
}

#[test]
fn answered_pings_keep_the_connection() {
    let server = TestServer::start(&["--ping_interval", "150ms"]);
    let mut client = server.raw();
    client.read_info();
    client.send(QUIET);
    for _ in 0..4 {
        let got = client.read_until_contains(b"PING\r\n", LONG);
        assert_eq!(got, b"PING\r\n");
        client.send(b"PONG\r\n");
    }
    client.send(b"PING\r\n");
    assert!(contains(
        &client.read_until_contains(b"PONG\r\n", LONG),
        b"PONG\r\n"
    ));
}

#[test]
fn connections_past_max_connections_are_refused_after_info() {
    let server = TestServer::start(&["--max_connections", "1"]);
    let mut first = server.raw();
    first.read_info();
    first.send(b"CONNECT {\"verbose\":false}\r\nPING\r\n");
    first.read_until_contains(b"PONG\r\n", LONG);
    let mut second = server.raw();
    second.read_info();
    let (got, closed) = second.read_for(SHORT);
    assert_eq!(got, b"-ERR 'maximum connections exceeded'\r\n");
    assert!(closed);
    // The first one is unaffected.
    first.send(b"PING\r\n");
    assert_eq!(first.read_until_contains(b"PONG\r\n", LONG), b"PONG\r\n");
}
