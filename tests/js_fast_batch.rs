//! Fast-ingest batch publish (nats-server 2.14) through a real client: a publisher keeps
//! many messages in flight, paced by the flow acks on its `.$FI` reply subject, ends the
//! batch with an end-of-batch marker, and everything the PubAck names survives kill -9.
//! The exchanges were checked byte for byte against nats-server 2.15.1
//! (docs/atomic-batch-facts.md §7).

mod common;

use std::time::Duration;

use async_nats::jetstream;
use common::js_consumer::{call, connect};
use common::{within, TestServer};
use futures::StreamExt;
use serde_json::{json, Value};

const MESSAGES: u64 = 2_000;
const FLOW: u64 = 100;

fn reply(id: &str, gap: &str, seq: u64, op: u8) -> String {
    format!("_FAST.{id}.{FLOW}.{gap}.{seq}.{op}.$FI")
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(body)))
}

/// Publishes `MESSAGES` messages with at most two flow steps unacknowledged, then the
/// end-of-batch marker; returns the final PubAck.
async fn fast_publish(client: &async_nats::Client, id: &str) -> Value {
    let mut replies = client
        .subscribe(format!("_FAST.{id}.>"))
        .await
        .expect("subscribe");
    client.flush().await.expect("flush");
    let mut acked = 0;
    let mut step = FLOW;
    for seq in 1..=MESSAGES {
        while seq > acked + 2 * step {
            let msg = within("flow ack", replies.next()).await.expect("reply");
            let ack = json_of(&msg.payload);
            assert_eq!(ack["type"], "ack", "{ack}");
            acked = ack["seq"].as_u64().expect("seq");
            step = ack["msgs"].as_u64().expect("msgs");
        }
        let op = u8::from(seq > 1);
        client
            .publish_with_reply(
                format!("f.{}", seq % 7),
                reply(id, "fail", seq, op),
                format!("m{seq}").into(),
            )
            .await
            .expect("publish");
    }
    client
        .publish_with_reply("f.end", reply(id, "fail", MESSAGES + 1, 3), "".into())
        .await
        .expect("end of batch");
    loop {
        let msg = within("final ack", replies.next()).await.expect("reply");
        let body = json_of(&msg.payload);
        if body["type"] == "ack" {
            assert!(body["seq"].as_u64() <= Some(MESSAGES), "{body}");
            continue;
        }
        return body;
    }
}

#[tokio::test]
async fn a_paced_batch_is_stored_in_order_and_survives_kill_9() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    // The client's own setting (async-nats `server_2_14`).
    let js = jetstream::new(client.clone());
    let made = js
        .create_stream(jetstream::stream::Config {
            name: "F".into(),
            subjects: vec!["f.>".into()],
            allow_batch_publish: true,
            ..Default::default()
        })
        .await
        .expect("create");
    assert!(made.cached_info().config.allow_batch_publish);
    let info = call(&client, "$JS.API.STREAM.INFO.F", json!({})).await;
    assert_eq!(info["config"]["metadata"]["_nats.req.level"], "4", "{info}");

    let ack = fast_publish(&client, "b1").await;
    assert_eq!(
        ack,
        json!({"stream": "F", "seq": MESSAGES, "batch": "b1", "count": MESSAGES})
    );
    drop(client);
    let store = server.kill_and_take_store();
    let server = TestServer::start_in(store, &[]);
    let client = connect(&server).await;
    let js = jetstream::new(client.clone());
    let stream = js.get_stream("F").await.expect("stream");
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("d".into()),
            ack_policy: jetstream::consumer::AckPolicy::None,
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut messages = consumer
        .batch()
        .max_messages(MESSAGES as usize)
        .expires(Duration::from_secs(5))
        .messages()
        .await
        .expect("batch");
    let mut seen = 0;
    while let Some(m) = within("message", messages.next()).await {
        let m = m.expect("message");
        seen += 1;
        assert_eq!(&m.payload[..], format!("m{seen}").as_bytes());
        assert!(m.headers.is_none(), "a fast batch stores no batch headers");
        if seen == MESSAGES {
            break;
        }
    }
    assert_eq!(seen, MESSAGES);
}

#[tokio::test]
async fn a_publish_to_a_stream_without_the_setting_is_refused() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    call(
        &client,
        "$JS.API.STREAM.CREATE.P",
        json!({"name": "P", "subjects": ["p.>"]}),
    )
    .await;
    let mut replies = client.subscribe("_FAST.z.>").await.expect("subscribe");
    client
        .publish_with_reply("p.1", reply("z", "ok", 1, 0), "x".into())
        .await
        .expect("publish");
    let answer = within("refusal", replies.next()).await.expect("reply");
    assert_eq!(
        json_of(&answer.payload),
        json!({"error": {"code": 400, "err_code": 10205,
            "description": "batch publish is disabled"}, "stream": "P", "seq": 0})
    );
}
