//! A stream's `subject_transform` and `republish`, against what nats-server 2.15.1 did with
//! the same requests (docs/stream-transform-facts.md).

mod common;

use std::time::Duration;

use common::js_consumer::{call, connect, error};
use common::raw_js::{api, create_stream, raw_client};
use common::{within, RawClient, TestServer};
use futures::StreamExt;
use serde_json::{json, Value};

fn stored_subject(raw: &mut RawClient, stream: &str, seq: u64) -> Value {
    let reply = api(
        raw,
        &format!("$JS.API.STREAM.MSG.GET.{stream}"),
        &json!({ "seq": seq }),
    );
    reply["message"]["subject"].clone()
}

/// Publishes and returns everything read up to and including the PubAck.
fn send(raw: &mut RawClient, subject: &str, headers: &str, payload: &str) -> Vec<u8> {
    let line = match headers.is_empty() {
        true => format!("PUB {subject} r {}\r\n{payload}\r\n", payload.len()),
        false => {
            let block = format!("NATS/1.0\r\n{headers}\r\n");
            format!(
                "HPUB {subject} r {} {}\r\n{block}{payload}\r\n",
                block.len(),
                block.len() + payload.len()
            )
        }
    };
    raw.send(line.as_bytes());
    raw.read_until_contains(b"}\r\n", Duration::from_secs(5))
}

fn publish_ack(raw: &mut RawClient, subject: &str, headers: &str, payload: &str) -> Value {
    let bytes = send(raw, subject, headers, payload);
    let text = String::from_utf8_lossy(&bytes);
    let json = text.lines().find(|l| l.starts_with('{')).expect("a PubAck");
    serde_json::from_str(json).expect("json")
}

#[test]
fn messages_are_stored_under_the_transformed_subject() {
    let server = TestServer::start(&[]);
    let mut raw = raw_client(&server);
    let made = create_stream(
        &mut raw,
        json!({"name": "T", "subjects": ["a.>"], "subject_transform": {"src": "a.*", "dest": "b.$1"}}),
    );
    assert_eq!(
        made["config"]["subject_transform"],
        json!({"src": "a.*", "dest": "b.$1"})
    );
    assert_eq!(publish_ack(&mut raw, "a.x", "", "hello")["seq"], 1);
    assert_eq!(publish_ack(&mut raw, "a.x.y", "", "no match")["seq"], 2);
    assert_eq!(stored_subject(&mut raw, "T", 1), "b.x");
    assert_eq!(
        stored_subject(&mut raw, "T", 2),
        "a.x.y",
        "a subject the source does not match is kept"
    );
    // Expectations look at the stored subject.
    let ok = publish_ack(
        &mut raw,
        "a.x",
        "Nats-Expected-Last-Subject-Sequence: 1\r\n",
        "2",
    );
    assert_eq!(ok["seq"], 3, "{ok}");
    let stale = publish_ack(
        &mut raw,
        "a.x",
        "Nats-Expected-Last-Subject-Sequence: 0\r\n",
        "3",
    );
    assert_eq!(stale["error"], error(400, 10071, "wrong last sequence: 3"));
    // An update changes the transform for what comes next; stored messages stay.
    let updated = api(
        &mut raw,
        "$JS.API.STREAM.UPDATE.T",
        &json!({"name": "T", "subjects": ["a.>"], "subject_transform": {"src": "a.*", "dest": "c.{{split(1,-)}}"}}),
    );
    assert!(updated.get("error").is_none(), "{updated}");
    assert_eq!(publish_ack(&mut raw, "a.p-q", "", "s")["seq"], 4);
    assert_eq!(stored_subject(&mut raw, "T", 4), "c.p.q");
    assert_eq!(stored_subject(&mut raw, "T", 1), "b.x");
    // And the transform outlives a restart.
    drop(raw);
    let server = TestServer::start_in(server.kill_and_take_store(), &[]);
    let mut raw = raw_client(&server);
    assert_eq!(publish_ack(&mut raw, "a.m-n", "", "t")["seq"], 5);
    assert_eq!(stored_subject(&mut raw, "T", 5), "c.m.n");
}

#[tokio::test]
async fn consumers_filter_on_the_stored_subject() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    call(
        &client,
        "$JS.API.STREAM.CREATE.T",
        json!({"name": "T", "subjects": ["in.>"], "subject_transform": {"src": "in.*.*", "dest": "out.{{partition(3,1,2)}}.$1.$2"}}),
    )
    .await;
    let made = call(
        &client,
        "$JS.API.CONSUMER.CREATE.T.P0",
        json!({"stream_name": "T", "config": {"durable_name": "P0", "filter_subject": "out.0.>", "ack_policy": "none", "deliver_subject": "deliver.p0"}}),
    )
    .await;
    assert!(made.get("error").is_none(), "{made}");
    let mut deliveries = client.subscribe("deliver.p0").await.unwrap();
    let js = async_nats::jetstream::new(client.clone());
    for (a, b) in [("a", "b"), ("ab", "c"), ("foo", "bar")] {
        let ack = js.publish(format!("in.{a}.{b}"), "x".into()).await.unwrap();
        within("ack", std::future::IntoFuture::into_future(ack))
            .await
            .unwrap();
    }
    // fnv1a32("ab") % 3 == 0: only in.a.b lands in partition 0.
    let msg = within("delivery", deliveries.next())
        .await
        .expect("a message");
    assert_eq!(msg.subject.as_str(), "out.0.a.b");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), deliveries.next())
            .await
            .is_err(),
        "only partition 0"
    );
}

#[test]
fn invalid_transforms_are_refused_with_nats_server_errors() {
    let server = TestServer::start(&[]);
    let mut raw = raw_client(&server);
    let cases = [
        (
            "a.*",
            "b.$2",
            10156,
            "stream transform: invalid mapping destination: wildcard index out of range in $2: [2]",
        ),
        ("a.>", "b.$1", 10156, "stream transform: invalid subject"),
        (
            "a.*",
            "b.{{foo(1)}}",
            10156,
            "stream transform: invalid mapping destination: unknown function in {{foo(1)}}",
        ),
        (
            "a..b",
            "c",
            10155,
            "stream transform source: invalid subject a..b",
        ),
    ];
    for (src, dest, code, text) in cases {
        let reply = api(
            &mut raw,
            "$JS.API.STREAM.CREATE.T",
            &json!({"name": "T", "subjects": ["a.>", "a"], "subject_transform": {"src": src, "dest": dest}}),
        );
        assert_eq!(reply["error"], error(400, code, text), "{src} -> {dest}");
    }
    let republish = |raw: &mut RawClient, r: Value| {
        api(
            raw,
            "$JS.API.STREAM.CREATE.R",
            &json!({"name": "R", "subjects": ["r.>"], "republish": r}),
        )
    };
    let cycle = republish(&mut raw, json!({"src": "r.>", "dest": "r.x.>"}));
    assert_eq!(
        cycle["error"],
        error(
            500,
            10052,
            "stream configuration for republish destination forms a cycle"
        )
    );
    let bad = republish(&mut raw, json!({"src": "r.*", "dest": "rp.$2"}));
    assert_eq!(
        bad["error"],
        error(
            500,
            10052,
            "stream configuration for republish with transform from 'r.*' to 'rp.$2' not valid"
        )
    );
    // An empty src means every subject.
    let made = republish(&mut raw, json!({"dest": "hp.>", "headers_only": true}));
    assert_eq!(
        made["config"]["republish"],
        json!({"src": ">", "dest": "hp.>", "headers_only": true})
    );
}

#[test]
fn stored_messages_are_republished_with_their_place_in_the_stream() {
    let server = TestServer::start(&[]);
    let mut raw = raw_client(&server);
    raw.send(b"SUB rp.> 7\r\nSUB hp.> 8\r\n");
    create_stream(
        &mut raw,
        json!({"name": "R1", "subjects": ["r.>"], "republish": {"src": "r.>", "dest": "rp.>"}}),
    );
    create_stream(
        &mut raw,
        json!({"name": "R2", "subjects": ["h.>"], "republish": {"dest": "hp.>", "headers_only": true}}),
    );
    let mut bytes = Vec::new();
    for (subject, headers, payload) in [
        ("r.a", "", "one"),
        ("r.a", "X-Foo: bar\r\nNats-Msg-Id: id1\r\n", "two"),
        // A duplicate is not stored, so it is not republished either.
        ("r.a", "Nats-Msg-Id: id1\r\n", "dup"),
        ("h.a", "", "12345"),
    ] {
        bytes.extend(send(&mut raw, subject, headers, payload));
    }
    bytes.extend(raw.read_until_contains(b"Nats-Msg-Size: 5", Duration::from_secs(5)));
    bytes.extend(raw.read_for(Duration::from_millis(200)).0);
    let text = String::from_utf8_lossy(&bytes);
    let without_time: String = text
        .split_inclusive("\r\n")
        .filter(|l| !l.starts_with("Nats-Time-Stamp: "))
        .collect();
    assert!(
        without_time.contains("rp.a 7 ")
            && without_time.contains(
                "NATS/1.0\r\nNats-Stream: R1\r\nNats-Subject: r.a\r\nNats-Sequence: 1\r\nNats-Last-Sequence: 0\r\n\r\none\r\n"
            ),
        "{without_time}"
    );
    assert!(
        without_time.contains(
            "NATS/1.0\r\nX-Foo: bar\r\nNats-Msg-Id: id1\r\nNats-Stream: R1\r\nNats-Subject: r.a\r\nNats-Sequence: 2\r\nNats-Last-Sequence: 1\r\n\r\ntwo\r\n"
        ),
        "{without_time}"
    );
    assert!(!without_time.contains("\r\ndup\r\n"), "{without_time}");
    assert!(
        without_time.contains(
            "NATS/1.0\r\nNats-Stream: R2\r\nNats-Subject: h.a\r\nNats-Sequence: 1\r\nNats-Last-Sequence: 0\r\nNats-Msg-Size: 5\r\n\r\n\r\n"
        ),
        "{without_time}"
    );
}
