//! `jetlog pub/sub/req/reply` and the connection flags, run as processes against a real
//! jetlog server.

mod cli_support;
mod common;

use std::time::Duration;

use cli_support::{block_on, jetlog, jetlog_at, js, stream_info, Listening};
use common::TestServer;
use futures::StreamExt;

fn add_stream(url: &str, name: &str, subjects: &str) {
    jetlog_at(url, &["stream", "add", name, "--subjects", subjects]).ok();
}

#[test]
fn pub_delivers_to_a_subscriber_with_headers() {
    let server = TestServer::start(&[]);
    let url = server.url();
    let received = block_on(async {
        let client = async_nats::connect(url.as_str()).await.expect("connect");
        let mut sub = client.subscribe("greet.>").await.expect("sub");
        client.flush().await.expect("flush");
        let out = jetlog_at(
            &url,
            &[
                "pub",
                "greet.world",
                "hello",
                "--count",
                "3",
                "-H",
                "Lang:en",
            ],
        );
        assert_eq!(
            out.ok(),
            "published 3 messages (5 bytes each) to greet.world\n"
        );
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(sub.next().await.expect("message"));
        }
        got
    });
    for message in received {
        assert_eq!(&message.payload[..], b"hello");
        let lang = message.headers.as_ref().and_then(|h| h.get("Lang"));
        assert_eq!(lang.map(|v| v.as_str()), Some("en"));
    }
}

#[test]
fn pub_js_prints_each_sequence_and_stores_the_messages() {
    let server = TestServer::start(&[]);
    let url = server.url();
    add_stream(&url, "ORDERS", "orders.>");
    let out = jetlog_at(
        &url,
        &["pub", "orders.1", "{\"id\":1}", "--js", "--count", "3"],
    );
    assert_eq!(
        out.ok(),
        "stored in ORDERS as seq 1\nstored in ORDERS as seq 2\nstored in ORDERS as seq 3\n"
    );
    let json = jetlog_at(&url, &["pub", "orders.2", "x", "--js", "--json"]).json_lines();
    assert_eq!(json[0]["stream"], "ORDERS");
    assert_eq!(json[0]["seq"], 4);
    let state = stream_info(&url, "ORDERS").state;
    assert_eq!((state.messages, state.last_sequence), (4, 4));
}

#[test]
fn pub_js_dedup_is_reported() {
    let server = TestServer::start(&[]);
    let url = server.url();
    add_stream(&url, "ORDERS", "orders.>");
    let args = ["pub", "orders.1", "x", "--js", "-H", "Nats-Msg-Id:a1"];
    assert_eq!(jetlog_at(&url, &args).ok(), "stored in ORDERS as seq 1\n");
    assert_eq!(
        jetlog_at(&url, &args).ok(),
        "stored in ORDERS as seq 1 (duplicate)\n"
    );
}

#[test]
fn pub_js_errors_are_one_clear_line() {
    let server = TestServer::start(&[]);
    let url = server.url();
    jetlog_at(&url, &["pub", "nowhere", "x", "--js"])
        .fails_with("no stream captures subject nowhere");
    jetlog_at(
        &url,
        &[
            "stream",
            "add",
            "SMALL",
            "--subjects",
            "small",
            "--max-msg-size",
            "4",
        ],
    )
    .ok();
    jetlog_at(&url, &["pub", "small", "too long", "--js"]).fails_with("err_code 10054");
}

#[test]
fn pub_refuses_invalid_subjects_and_headers() {
    let server = TestServer::start(&[]);
    let url = server.url();
    jetlog_at(&url, &["pub", "a..b", "x"]).fails_with("invalid subject \"a..b\"");
    jetlog_at(&url, &["pub", "a.*", "x"]).fails_with("invalid subject \"a.*\"");
    jetlog_at(&url, &["pub", "a", "x", "-H", "novalue"]).fails_with("invalid header \"novalue\"");
    jetlog_at(&url, &["sub", "a.>.b"]).fails_with("invalid subject \"a.>.b\"");
}

#[test]
fn sub_prints_messages_and_stops_after_count() {
    let server = TestServer::start(&[]);
    let url = server.url();
    let sub = Listening::start(&url, &["sub", "orders.*", "--count", "2", "--json"]);
    block_on(async {
        let client = async_nats::connect(url.as_str()).await.expect("connect");
        client.publish("orders.a", "one".into()).await.expect("pub");
        client.publish("other", "skip".into()).await.expect("pub");
        client.publish("orders.b", "two".into()).await.expect("pub");
        client.flush().await.expect("flush");
    });
    let lines = sub.finish().json_lines();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["subject"], "orders.a");
    assert_eq!(lines[0]["data"], "one");
    assert_eq!(lines[1]["subject"], "orders.b");
}

#[test]
fn sub_in_a_queue_group_shares_messages() {
    let server = TestServer::start(&[]);
    let url = server.url();
    let mut first = Listening::start(&url, &["sub", "work", "--queue", "q", "--count", "1"]);
    let mut second = Listening::start(&url, &["sub", "work", "--queue", "q", "--count", "1"]);
    block_on(async {
        let client = async_nats::connect(url.as_str()).await.expect("connect");
        // job1 reaches one member only, which exits; job2 is repeated (bounded) until the
        // other member has taken one too. Without queue semantics both would print job1.
        client.publish("work", "job1".into()).await.expect("pub");
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(25)).await;
            if first.has_exited() && second.has_exited() {
                break;
            }
            client.publish("work", "job2".into()).await.expect("pub");
        }
    });
    let mut bodies: Vec<String> = [first.finish(), second.finish()]
        .iter()
        .map(|out| out.ok().lines().nth(1).unwrap_or_default().to_string())
        .collect();
    bodies.sort();
    assert_eq!(bodies, ["job1", "job2"]);
}

#[test]
fn req_and_reply_answer_each_other() {
    let server = TestServer::start(&[]);
    let url = server.url();
    let replier = Listening::start(&url, &["reply", "svc.time", "noon", "--count", "1"]);
    let out = jetlog_at(&url, &["req", "svc.time", "what time?"]);
    assert_eq!(out.ok(), "noon\n");
    let served = replier.finish();
    assert!(served.ok().contains("what time?"), "{served:#?}");
}

#[test]
fn req_without_responders_fails_fast() {
    let server = TestServer::start(&[]);
    let url = server.url();
    let out = jetlog_at(&url, &["req", "nobody.home", "hi"]);
    out.fails_with("no responders on nobody.home");
    assert!(out.elapsed < Duration::from_secs(3));
}

#[test]
fn an_unreachable_server_is_one_line_and_exit_1_within_3s() {
    let url = cli_support::unreachable_url();
    for args in [
        vec!["pub", "a", "b"],
        vec!["sub", "a"],
        vec!["req", "a", "b"],
        vec!["stream", "info", "X"],
        vec!["replay", "X"],
    ] {
        let mut all = args.clone();
        all.extend(["--timeout", "2s", "-s", &url]);
        let out = jetlog(&all);
        out.fails_with(&format!("cannot connect to {url}"));
        assert!(
            out.elapsed < Duration::from_secs(3),
            "{args:?}: {:?}",
            out.elapsed
        );
    }
}

#[test]
fn nats_url_is_the_default_server() {
    let server = TestServer::start(&[]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_jetlog"))
        .args(["stream", "ls", "--names"])
        .env("NATS_URL", server.url())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn credentials_are_sent_and_wrong_ones_are_named() {
    let server = TestServer::start(&["--user", "app", "--pass", "s3cret"]);
    let url = server.url();
    jetlog_at(&url, &["pub", "a", "b"]).fails_with("authorization violation");
    jetlog_at(
        &url,
        &["pub", "a", "b", "--user", "app", "--password", "wrong"],
    )
    .fails_with("authorization violation");
    jetlog_at(
        &url,
        &["pub", "a", "b", "--user", "app", "--password", "s3cret"],
    )
    .ok();
    jetlog_at(&url, &["pub", "a", "b", "--user", "app"])
        .fails_with("--user and --password must be given together");

    let server = TestServer::start(&["--auth", "tok"]);
    let url = server.url();
    jetlog_at(&url, &["pub", "a", "b", "--token", "tok"]).ok();
    jetlog_at(&url, &["pub", "a", "b", "--token", "bad"]).fails_with("authorization violation");
}

#[test]
fn bad_flags_are_refused() {
    let out = jetlog(&["pub", "a", "b", "--timeout", "soon"]);
    assert_eq!(out.code, Some(1), "usage error: {out:#?}");
    assert!(out.stderr.contains("invalid duration"), "{}", out.stderr);
    jetlog(&["pub", "a", "b", "-s", "nats://[bad"]).fails_with("invalid server URL");
}

#[test]
fn a_body_can_come_from_stdin() {
    use std::io::Write;
    let server = TestServer::start(&[]);
    let url = server.url();
    add_stream(&url, "IN", "in");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_jetlog"))
        .args(["pub", "in", "--js", "-s", &url])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"from stdin")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "stored in IN as seq 1\n"
    );
    let got = block_on(async {
        let js = js(&url).await;
        let stream = js.get_stream("IN").await.expect("stream");
        stream.get_raw_message(1).await.expect("message").payload
    });
    assert_eq!(&got[..], b"from stdin");
}
