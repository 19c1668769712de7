//! JetStream differences the official clients' own test suites found against nats-server
//! 2.9.10 (issue 15), each driven through the real server: memory streams that could not be
//! deleted, pull requests that timed out late or answered 404 too soon, requests nobody
//! listened to that still took messages, stream info paging, wildcard subjects in stored
//! messages, and config checks nats-server makes.

mod common;

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use common::raw_js::{api, create_pull_consumer, create_stream, publish, raw_client};
use common::{within, TestServer};
use serde_json::json;

async fn connect_js(server: &TestServer) -> jetstream::Context {
    let client = within("connect", async_nats::connect(server.url()))
        .await
        .expect("connect");
    jetstream::new(client)
}

#[tokio::test]
async fn a_memory_stream_can_be_deleted() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    let config = stream::Config {
        name: "MEM".into(),
        subjects: vec!["mem.>".into()],
        storage: stream::StorageType::Memory,
        ..Default::default()
    };
    within("create", js.create_stream(config)).await.unwrap();
    within("publish", async {
        js.publish("mem.a", "x".into()).await?.await
    })
    .await
    .unwrap();
    let deleted = within("delete", js.delete_stream("MEM")).await.unwrap();
    assert!(deleted.success);
    assert!(within("info", js.get_stream("MEM")).await.is_err());
}

#[test]
fn no_wait_with_expires_waits_for_a_message_or_times_out() {
    let server = TestServer::start(&[]);
    let mut raw = raw_client(&server);
    create_stream(&mut raw, json!({"name": "NW", "subjects": ["nw.>"]}));
    create_pull_consumer(&mut raw, "NW", "C");
    // Nothing pending: nats-server keeps the request until its expiry, then answers 408.
    let started = Instant::now();
    publish(
        &mut raw,
        "$JS.API.CONSUMER.MSG.NEXT.NW.C",
        "pull.a",
        r#"{"batch":1,"no_wait":true,"expires":300000000}"#,
    );
    let got = raw.read_until_contains(b"408", Duration::from_secs(5));
    let text = String::from_utf8_lossy(&got);
    assert!(!text.contains("404"), "{text}");
    assert!(text.contains("NATS/1.0 408 Request Timeout"), "{text}");
    assert!(
        started.elapsed() >= Duration::from_millis(290),
        "{:?}",
        started.elapsed()
    );
    // A message that arrives while it waits is delivered to it.
    publish(
        &mut raw,
        "$JS.API.CONSUMER.MSG.NEXT.NW.C",
        "pull.b",
        r#"{"batch":1,"no_wait":true,"expires":5000000000}"#,
    );
    std::thread::sleep(Duration::from_millis(50));
    publish(&mut raw, "nw.x", "", "hello");
    let got = raw.read_until_contains(b"hello", Duration::from_secs(5));
    let text = String::from_utf8_lossy(&got);
    assert!(text.contains("MSG nw.x 2 $JS.ACK.NW.C.1.1.1."), "{text}");
    // Without an expiry, no_wait with nothing pending is still answered 404 at once.
    publish(
        &mut raw,
        "$JS.API.CONSUMER.MSG.NEXT.NW.C",
        "pull.c",
        r#"{"batch":1,"no_wait":true}"#,
    );
    let got = raw.read_until_contains(b"404", Duration::from_secs(2));
    assert!(
        String::from_utf8_lossy(&got).contains("NATS/1.0 404 No Messages"),
        "{got:?}"
    );
}

#[test]
fn a_pull_request_nobody_listens_to_takes_no_message() {
    let server = TestServer::start(&[]);
    let mut raw = raw_client(&server);
    create_stream(&mut raw, json!({"name": "GONE", "subjects": ["gone.>"]}));
    create_pull_consumer(&mut raw, "GONE", "C");
    // A request whose reply subject loses its subscriber (the client gave up).
    raw.send(b"SUB inbox.once 3\r\n");
    publish(
        &mut raw,
        "$JS.API.CONSUMER.MSG.NEXT.GONE.C",
        "inbox.once",
        r#"{"batch":1,"expires":30000000000}"#,
    );
    raw.send(b"UNSUB 3\r\nPING\r\n");
    raw.read_until_contains(b"PONG\r\n", Duration::from_secs(5));
    publish(&mut raw, "gone.x", "", "first");
    raw.send(b"PING\r\n");
    raw.read_until_contains(b"PONG\r\n", Duration::from_secs(5));
    // The message is still there for the next request, as its first delivery.
    publish(
        &mut raw,
        "$JS.API.CONSUMER.MSG.NEXT.GONE.C",
        "pull.next",
        r#"{"batch":1,"expires":2000000000}"#,
    );
    let got = raw.read_until_contains(b"first", Duration::from_secs(5));
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.contains("MSG gone.x 2 $JS.ACK.GONE.C.1.1.1."),
        "{text}"
    );
}

#[test]
fn deleting_a_stream_tells_waiting_pull_requests() {
    let server = TestServer::start(&[]);
    let mut raw = raw_client(&server);
    create_stream(&mut raw, json!({"name": "DEL", "subjects": ["del.>"]}));
    create_pull_consumer(&mut raw, "DEL", "C");
    publish(
        &mut raw,
        "$JS.API.CONSUMER.MSG.NEXT.DEL.C",
        "pull.waiting",
        r#"{"batch":5,"expires":30000000000}"#,
    );
    raw.send(b"PING\r\n");
    raw.read_until_contains(b"PONG\r\n", Duration::from_secs(5));
    publish(&mut raw, "$JS.API.STREAM.DELETE.DEL", "r", "");
    let got = raw.read_until_contains(b"stream_delete_response", Duration::from_secs(5));
    let mut text = String::from_utf8_lossy(&got).into_owned();
    if !text.contains("Consumer Deleted") {
        let more = raw.read_until_contains(b"Consumer Deleted", Duration::from_secs(5));
        text.push_str(&String::from_utf8_lossy(&more));
    }
    assert!(text.contains(r#""success":true"#), "{text}");
    assert!(
        text.contains("HMSG pull.waiting 2") && text.contains("NATS/1.0 409 Consumer Deleted"),
        "{text}"
    );
}

#[test]
fn stream_info_pages_subjects_and_omits_what_nats_server_omits() {
    let server = TestServer::start(&[]);
    let mut raw = raw_client(&server);
    let created = create_stream(
        &mut raw,
        json!({"name": "SUBJ", "subjects": ["s.>"], "storage": "memory"}),
    );
    assert!(created.get("cluster").is_none(), "{created}");
    assert!(created.get("total").is_none(), "{created}");
    // More subjects than one reply lists: pipelined, without replies.
    const SUBJECTS: usize = 100_003;
    let mut batch = Vec::with_capacity(SUBJECTS * 24);
    for i in 0..SUBJECTS {
        batch.extend_from_slice(format!("PUB s.{i:06} 1\r\nx\r\n").as_bytes());
    }
    raw.send(&batch);
    raw.send(b"PING\r\n");
    raw.read_until_contains(b"PONG\r\n", Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info = api(&mut raw, "$JS.API.STREAM.INFO.SUBJ", &json!({}));
        if info["state"]["messages"] == SUBJECTS as u64 || Instant::now() > deadline {
            assert_eq!(info["state"]["messages"], SUBJECTS as u64);
            assert!(info["cluster"]["leader"].is_string(), "{info}");
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let first = api(
        &mut raw,
        "$JS.API.STREAM.INFO.SUBJ",
        &json!({"subjects_filter": ">"}),
    );
    assert_eq!(first["total"], SUBJECTS as u64);
    assert_eq!(first["limit"], 100_000);
    assert_eq!(first["offset"], 0);
    let page = first["state"]["subjects"].as_object().expect("subjects");
    assert_eq!(page.len(), 100_000);
    assert!(page.contains_key("s.000000") && page.contains_key("s.099999"));
    let rest = api(
        &mut raw,
        "$JS.API.STREAM.INFO.SUBJ",
        &json!({"subjects_filter": ">", "offset": 100_000}),
    );
    let page = rest["state"]["subjects"].as_object().expect("subjects");
    let names: Vec<&String> = page.keys().collect();
    assert_eq!(names, ["s.100000", "s.100001", "s.100002"]);
    assert_eq!(rest["offset"], 100_000);
    // Past the end: the offset is clamped to the total and no subjects are listed.
    let past = api(
        &mut raw,
        "$JS.API.STREAM.INFO.SUBJ",
        &json!({"subjects_filter": "s.000001", "offset": 5}),
    );
    assert_eq!(
        (past["total"].as_u64(), past["offset"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(past["state"].get("subjects").is_none(), "{past}");
    // A filter that matches nothing: no subjects field, paging fields zero.
    let none = api(
        &mut raw,
        "$JS.API.STREAM.INFO.SUBJ",
        &json!({"subjects_filter": "nope"}),
    );
    assert!(none["state"].get("subjects").is_none(), "{none}");
    assert_eq!(
        (none["total"].as_u64(), none["limit"].as_u64()),
        (Some(0), Some(0))
    );
    let updated = api(
        &mut raw,
        "$JS.API.STREAM.UPDATE.SUBJ",
        &json!({"name": "SUBJ", "subjects": ["s.>"], "storage": "memory", "max_msgs": 1_000_000}),
    );
    assert!(updated.get("cluster").is_none(), "{updated}");
}

#[tokio::test]
async fn subjects_with_wildcard_characters_are_stored_as_nats_server_stores_them() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    let config = stream::Config {
        name: "W".into(),
        subjects: vec!["hello.>".into()],
        ..Default::default()
    };
    let stream = within("create", js.create_stream(config)).await.unwrap();
    for subject in ["hello.*", "hello.>", "hello.a.>.b", "hello.world"] {
        let ack = within("publish", async {
            js.publish(subject, "x".into()).await?.await
        })
        .await
        .unwrap_or_else(|e| panic!("{subject}: {e}"));
        assert!(ack.sequence > 0);
    }
    let stored = within("get", stream.get_last_raw_message_by_subject("hello.*"))
        .await
        .unwrap();
    // As a filter `hello.*` is a wildcard: the newest match is hello.world.
    assert_eq!(stored.subject.as_str(), "hello.world");
    let mut raw = raw_client(&server);
    let info = api(
        &mut raw,
        "$JS.API.STREAM.INFO.W",
        &json!({"subjects_filter": ">"}),
    );
    let subjects = info["state"]["subjects"].as_object().expect("subjects");
    for subject in ["hello.*", "hello.>", "hello.a.>.b", "hello.world"] {
        assert_eq!(subjects.get(subject), Some(&json!(1)), "{info}");
    }
}

#[test]
fn mirror_direct_without_a_mirror_and_tighter_consumer_limits_are_refused() {
    let server = TestServer::start(&[]);
    let mut raw = raw_client(&server);
    let reply = api(
        &mut raw,
        "$JS.API.STREAM.CREATE.MD",
        &json!({"name": "MD", "subjects": ["md.>"], "mirror_direct": true}),
    );
    assert_eq!(
        reply["error"],
        json!({"code": 500, "err_code": 10052,
               "description": "stream has no mirror but does have mirror direct"})
    );
    create_stream(
        &mut raw,
        json!({"name": "CL", "subjects": ["cl.>"],
               "consumer_limits": {"inactive_threshold": 60_000_000_000u64, "max_ack_pending": 100}}),
    );
    for (name, pending) in [("A", 50), ("B", 80)] {
        let body = json!({"stream_name": "CL", "config": {
            "durable_name": name, "ack_policy": "explicit", "max_ack_pending": pending}});
        let reply = api(
            &mut raw,
            &format!("$JS.API.CONSUMER.DURABLE.CREATE.CL.{name}"),
            &body,
        );
        assert!(reply.get("error").is_none(), "{reply}");
    }
    let reply = api(
        &mut raw,
        "$JS.API.STREAM.UPDATE.CL",
        &json!({"name": "CL", "subjects": ["cl.>"],
                "consumer_limits": {"inactive_threshold": 60_000_000_000u64, "max_ack_pending": 60}}),
    );
    assert_eq!(
        reply["error"],
        json!({"code": 500, "err_code": 10069,
               "description": "change to limits violates consumers: B"})
    );
    // A limit every consumer is within is fine.
    let reply = api(
        &mut raw,
        "$JS.API.STREAM.UPDATE.CL",
        &json!({"name": "CL", "subjects": ["cl.>"],
                "consumer_limits": {"inactive_threshold": 60_000_000_000u64, "max_ack_pending": 90}}),
    );
    assert!(reply.get("error").is_none(), "{reply}");
}

/// nats.py's ordered consumer waited forever across a server restart: nats-server tells each
/// waiting pull request `409 Server Shutdown` with what it still wanted, and the client asks
/// again after reconnecting; jetlog closed the connection without a word.
#[test]
fn a_stopping_server_tells_waiting_pull_requests_what_they_still_wanted() {
    let server = TestServer::start(&[]);
    let mut raw = raw_client(&server);
    create_stream(&mut raw, json!({"name": "STOP", "subjects": ["stop.>"]}));
    create_pull_consumer(&mut raw, "STOP", "C");
    publish(&mut raw, "stop.a", "", "one");
    publish(
        &mut raw,
        "$JS.API.CONSUMER.MSG.NEXT.STOP.C",
        "pull.waiting",
        r#"{"batch":5,"max_bytes":4096,"expires":30000000000}"#,
    );
    let got = raw.read_until_contains(b"one", Duration::from_secs(5));
    assert!(String::from_utf8_lossy(&got).contains("MSG stop.a 2"));
    let status = server.terminate().expect("the server stopped");
    assert!(status.success(), "{status}");
    let (got, closed) = raw.read_for(Duration::from_secs(2));
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.contains("HMSG pull.waiting 2")
            && text.contains("NATS/1.0 409 Server Shutdown\r\n")
            && text.contains("Nats-Pending-Messages: 4\r\n"),
        "{text}"
    );
    assert!(closed, "the connection stayed open");
}
