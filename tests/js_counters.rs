//! Counter streams (ADR-49): `Nats-Incr` publishes, totals in arbitrary precision, and the
//! errors, against what nats-server 2.15.1 answered (docs/stream-counters-facts.md).

mod common;

use async_nats::jetstream;
use async_nats::HeaderMap;
use common::js_consumer::{call, connect, error};
use common::{within, TestServer};
use serde_json::{json, Value};

async fn raw_publish(
    client: &async_nats::Client,
    subject: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Value {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.append(*k, *v);
    }
    let reply = within(
        "publish",
        client.request_with_headers(subject.to_string(), map, body.to_string().into()),
    )
    .await
    .expect("a PubAck");
    serde_json::from_slice(&reply.payload).expect("json")
}

async fn last_body(client: &async_nats::Client, stream: &str, subject: &str) -> Value {
    let got = call(
        client,
        &format!("$JS.API.STREAM.MSG.GET.{stream}"),
        json!({"last_by_subj": subject}),
    )
    .await;
    let data = got["message"]["data"]
        .as_str()
        .unwrap_or_else(|| panic!("{got}"));
    let bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, data).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn increments_add_up_in_arbitrary_precision_and_survive_a_kill() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    let made = call(
        &client,
        "$JS.API.STREAM.CREATE.C",
        json!({"name": "C", "subjects": ["c.>"], "allow_msg_counter": true, "allow_direct": true}),
    )
    .await;
    assert_eq!(made["config"]["allow_msg_counter"], true, "{made}");
    // async-nats reads the total from the PubAck's `val`.
    let js = jetstream::new(client.clone());
    let mut incr = HeaderMap::new();
    incr.insert("Nats-Incr", "5");
    let ack = within("publish", async {
        js.publish_with_headers("c.a", incr, "".into()).await?.await
    })
    .await
    .expect("stored");
    assert_eq!(ack.value.as_deref(), Some("5"));
    let cases = [
        ("+2", "7"),
        ("-10", "-3"),
        ("007", "4"),
        ("-0", "4"),
        ("18446744073709551616", "18446744073709551620"),
    ];
    for (i, (step, total)) in cases.iter().enumerate() {
        let ack = raw_publish(&client, "c.a", &[("Nats-Incr", step)], "").await;
        assert_eq!(
            ack,
            json!({"stream": "C", "seq": i + 2, "val": total}),
            "{step}"
        );
    }
    assert_eq!(
        last_body(&client, "C", "c.a").await,
        json!({"val": "18446744073709551620"})
    );
    // Another subject counts on its own; a message id makes a retry safe.
    let first = raw_publish(
        &client,
        "c.b",
        &[("Nats-Incr", "1"), ("Nats-Msg-Id", "m1")],
        "",
    )
    .await;
    assert_eq!(first["val"], "1");
    let again = raw_publish(
        &client,
        "c.b",
        &[("Nats-Incr", "100"), ("Nats-Msg-Id", "m1")],
        "",
    )
    .await;
    assert_eq!(
        again,
        json!({"stream": "C", "seq": first["seq"], "duplicate": true})
    );

    drop(client);
    let server = TestServer::start_in(server.kill_and_take_store(), &[]);
    let client = connect(&server).await;
    let after = raw_publish(&client, "c.a", &[("Nats-Incr", "-20")], "").await;
    assert_eq!(after["val"], "18446744073709551600", "{after}");
    // The total is the subject's last message: deleting it rolls back, a purge resets.
    let seq = after["seq"].as_u64().unwrap();
    let deleted = call(&client, "$JS.API.STREAM.MSG.DELETE.C", json!({"seq": seq})).await;
    assert_eq!(deleted["success"], true, "{deleted}");
    assert_eq!(
        raw_publish(&client, "c.a", &[("Nats-Incr", "0")], "").await["val"],
        "18446744073709551620"
    );
    call(&client, "$JS.API.STREAM.PURGE.C", json!({"filter": "c.a"})).await;
    assert_eq!(
        raw_publish(&client, "c.a", &[("Nats-Incr", "7")], "").await["val"],
        "7"
    );
}

#[tokio::test]
async fn what_a_counter_refuses() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    call(
        &client,
        "$JS.API.STREAM.CREATE.C",
        json!({"name": "C", "subjects": ["c.>"], "allow_msg_counter": true}),
    )
    .await;
    call(
        &client,
        "$JS.API.STREAM.CREATE.P",
        json!({"name": "P", "subjects": ["p.>"]}),
    )
    .await;
    let refused = |code: u64, text: &str, stream: &str| json!({"error": {"code": 400, "err_code": code, "description": text}, "stream": stream, "seq": 0});
    let missing = refused(10169, "message counter increment is missing", "C");
    let invalid = refused(10171, "message counter increment is invalid", "C");
    assert_eq!(raw_publish(&client, "c.a", &[], "plain").await, missing);
    assert_eq!(
        raw_publish(&client, "c.a", &[("X-Other", "1")], "").await,
        missing
    );
    assert_eq!(
        raw_publish(&client, "c.a", &[("Nats-Incr", "1")], "body").await,
        refused(10170, "message counter has payload", "C")
    );
    for bad in ["1.5", "1e3", "0x10", "1_000", "abc", "+", "++1"] {
        assert_eq!(
            raw_publish(&client, "c.a", &[("Nats-Incr", bad)], "").await,
            invalid,
            "{bad}"
        );
    }
    for header in [
        "Nats-Rollup",
        "Nats-Expected-Stream",
        "Nats-Expected-Last-Sequence",
        "Nats-Expected-Last-Msg-Id",
    ] {
        let value = if header == "Nats-Expected-Stream" {
            "C"
        } else {
            "sub"
        };
        assert_eq!(
            raw_publish(&client, "c.a", &[("Nats-Incr", "1"), (header, value)], "").await,
            invalid,
            "{header}"
        );
    }
    assert_eq!(
        raw_publish(&client, "p.a", &[("Nats-Incr", "1")], "").await,
        refused(10168, "message counters is disabled", "P")
    );
    assert_eq!(
        raw_publish(&client, "p.a", &[("Nats-Incr", "x")], "").await,
        refused(10171, "message counter increment is invalid", "P")
    );

    // Settings a counter cannot have, in nats-server's order, and no switching by update.
    for (extra, text) in [
        (
            json!({"discard": "new"}),
            "counter stream cannot use discard new",
        ),
        (
            json!({"allow_msg_ttl": true}),
            "counter stream cannot use message TTLs",
        ),
        (
            json!({"subject_delete_marker_ttl": 2_000_000_000u64}),
            "counter stream cannot use message TTLs",
        ),
        (
            json!({"retention": "workqueue"}),
            "counter stream can only use limits retention",
        ),
    ] {
        let mut config = json!({"name": "X", "subjects": ["x.>"], "allow_msg_counter": true});
        for (k, v) in extra.as_object().unwrap() {
            config[k] = v.clone();
        }
        let reply = call(&client, "$JS.API.STREAM.CREATE.X", config).await;
        assert_eq!(reply["error"], error(500, 10052, text), "{extra}");
    }
    let off = call(
        &client,
        "$JS.API.STREAM.UPDATE.C",
        json!({"name": "C", "subjects": ["c.>"]}),
    )
    .await;
    assert_eq!(
        off["error"],
        error(
            500,
            10052,
            "stream configuration update can not change message counter setting"
        )
    );
    let on = call(
        &client,
        "$JS.API.STREAM.UPDATE.P",
        json!({"name": "P", "subjects": ["p.>"], "allow_msg_counter": true}),
    )
    .await;
    assert_eq!(
        on["error"],
        error(
            500,
            10052,
            "stream configuration update can not change message counter setting"
        )
    );
}

/// The headers of `subject`'s last message in `stream`, as text.
async fn last_headers(client: &async_nats::Client, stream: &str, subject: &str) -> String {
    let got = call(
        client,
        &format!("$JS.API.STREAM.MSG.GET.{stream}"),
        json!({"last_by_subj": subject}),
    )
    .await;
    let hdrs = got["message"]["hdrs"].as_str().unwrap_or_default();
    let bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, hdrs).unwrap();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A counter stream with sources adds up its origins' totals (ADR-49): each sourced total
/// counts as its difference from the one last seen from that origin and subject, recorded in
/// `Nats-Counter-Sources`, which local increments carry forward.
#[tokio::test]
async fn a_counter_stream_sums_its_sources_totals() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    for (name, subject) in [("EU", "eu.>"), ("US", "us.>")] {
        let config = json!({"name": name, "subjects": [subject], "allow_msg_counter": true});
        let made = call(&client, &format!("$JS.API.STREAM.CREATE.{name}"), config).await;
        assert!(made.get("error").is_none(), "{made}");
    }
    let sources = json!([
        {"name": "EU", "subject_transforms": [{"src": "eu.>", "dest": "all.>"}]},
        {"name": "US", "subject_transforms": [{"src": "us.>", "dest": "all.>"}]},
    ]);
    let config = json!({"name": "ALL", "subjects": ["all.>"], "allow_msg_counter": true,
        "sources": sources});
    let made = call(&client, "$JS.API.STREAM.CREATE.ALL", config).await;
    assert!(made.get("error").is_none(), "{made}");
    for (subject, incr) in [("eu.hits", "5"), ("us.hits", "3"), ("eu.hits", "2")] {
        let ack = raw_publish(&client, subject, &[("Nats-Incr", incr)], "").await;
        assert!(ack.get("error").is_none(), "{ack}");
    }
    let total = |want: &'static str| {
        let client = client.clone();
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            loop {
                let request = json!({"last_by_subj": "all.hits"});
                let got = call(&client, "$JS.API.STREAM.MSG.GET.ALL", request).await;
                if got.get("message").is_some()
                    && last_body(&client, "ALL", "all.hits").await["val"] == want
                {
                    return;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the last message is {got}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    };
    within("the sources' totals", total("10")).await;
    let headers = last_headers(&client, "ALL", "all.hits").await;
    assert!(
        headers.contains(r#"Nats-Counter-Sources: {"EU":{"eu.hits":"7"},"US":{"us.hits":"3"}}"#),
        "{headers}"
    );
    // A local increment adds to the total and carries the record forward.
    let ack = raw_publish(&client, "all.hits", &[("Nats-Incr", "100")], "").await;
    assert_eq!(ack["val"], "110", "{ack}");
    let headers = last_headers(&client, "ALL", "all.hits").await;
    assert!(headers.contains(r#""EU":{"eu.hits":"7"}"#), "{headers}");
    // The next sourced total counts as its difference: EU went from 7 to 8.
    raw_publish(&client, "eu.hits", &[("Nats-Incr", "1")], "").await;
    within("the next difference", total("111")).await;
    let headers = last_headers(&client, "ALL", "all.hits").await;
    assert!(headers.contains("Nats-Incr: 1\r\n"), "{headers}");
    assert!(headers.contains(r#""EU":{"eu.hits":"8"}"#), "{headers}");
}
