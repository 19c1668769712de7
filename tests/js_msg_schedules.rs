//! Message schedules (ADR-51) through a real server: a schedule stored with a client's
//! headers makes the stream store messages on its target on time, with nats-server 2.15.1's
//! headers (docs/msg-schedules-facts.md); deleting it stops it; it survives a kill -9.

mod common;

use std::time::Duration;

use async_nats::jetstream;
use async_nats::HeaderMap;
use common::js_consumer::{call, connect};
use common::{within, TestServer};
use futures::StreamExt;
use serde_json::{json, Value};

async fn publish(client: &async_nats::Client, subject: &str, headers: &[(&str, &str)]) -> Value {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.insert(*k, *v);
    }
    let reply = within(
        "publish",
        client.request_with_headers(subject.to_string(), map, "tick".into()),
    )
    .await
    .expect("a PubAck");
    serde_json::from_slice(&reply.payload).expect("json")
}

async fn info(client: &async_nats::Client) -> Value {
    call(client, "$JS.API.STREAM.INFO.S", json!({})).await
}

/// The messages stored on `subject`, read by an ephemeral consumer (bounded).
async fn produced(js: &jetstream::Context, subject: &str, want: usize) -> Vec<jetstream::Message> {
    let stream = js.get_stream("S").await.expect("stream");
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::Config {
            filter_subject: subject.to_string(),
            ..Default::default()
        })
        .await
        .expect("consumer");
    // `batch` waits for messages to come, where `fetch` takes only those already there.
    let mut messages = consumer
        .batch()
        .max_messages(want)
        .expires(Duration::from_secs(5))
        .messages()
        .await
        .expect("fetch");
    let mut got = Vec::new();
    while let Some(m) = within("fetch", messages.next()).await {
        got.push(m.expect("message"));
    }
    got
}

#[tokio::test]
async fn an_every_schedule_stores_on_time_until_it_is_deleted_and_survives_a_kill() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    let made = call(
        &client,
        "$JS.API.STREAM.CREATE.S",
        json!({"name": "S", "subjects": ["s.>"], "allow_msg_schedules": true}),
    )
    .await;
    assert_eq!(made["config"]["allow_msg_schedules"], true, "{made}");
    assert_eq!(made["config"]["allow_rollup_hdrs"], true, "{made}");
    let ack = publish(
        &client,
        "s.sched",
        &[
            ("Nats-Schedule", "@every 1s"),
            ("Nats-Schedule-Target", "s.out"),
            ("X-Custom", "v1"),
        ],
    )
    .await;
    assert_eq!(ack, json!({"stream": "S", "seq": 1}));

    let js = jetstream::new(client.clone());
    let got = produced(&js, "s.out", 2).await;
    assert_eq!(got.len(), 2, "two firings within the fetch");
    for m in &got {
        let headers = m.headers.clone().unwrap_or_default();
        assert_eq!(headers.get("X-Custom").map(|v| v.as_str()), Some("v1"));
        assert_eq!(
            headers.get("Nats-Scheduler").map(|v| v.as_str()),
            Some("s.sched")
        );
        let next = headers.get("Nats-Schedule-Next").expect("next").to_string();
        assert!(next.ends_with('Z') && next.len() == 20, "{next}");
        assert!(headers.get("Nats-Schedule").is_none());
        assert_eq!(m.payload, "tick");
    }

    drop(client);
    let server = TestServer::start_in(server.kill_and_take_store(), &[]);
    let client = connect(&server).await;
    let before = info(&client).await["state"]["last_seq"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let after = info(&client).await["state"]["last_seq"].as_u64().unwrap();
    assert!(
        after > before,
        "still firing after the restart: {before} → {after}"
    );

    let deleted = call(&client, "$JS.API.STREAM.MSG.DELETE.S", json!({"seq": 1})).await;
    assert_eq!(deleted["success"], true, "{deleted}");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let stopped = info(&client).await["state"]["last_seq"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let later = info(&client).await["state"]["last_seq"].as_u64().unwrap();
    assert_eq!(stopped, later, "deleting the schedule stopped it");
}

#[tokio::test]
async fn an_at_schedule_in_the_past_fires_at_once_and_bad_ones_are_refused() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    call(
        &client,
        "$JS.API.STREAM.CREATE.S",
        json!({"name": "S", "subjects": ["s.>"], "allow_msg_schedules": true}),
    )
    .await;
    let js = jetstream::new(client.clone());
    publish(
        &client,
        "s.once",
        &[
            ("Nats-Schedule", "@at 2020-01-01T00:00:00Z"),
            ("Nats-Schedule-Target", "s.fired"),
        ],
    )
    .await;
    let got = produced(&js, "s.fired", 1).await;
    let headers = got[0].headers.clone().unwrap_or_default();
    assert_eq!(
        headers.get("Nats-Schedule-Next").map(|v| v.as_str()),
        Some("purge")
    );
    let gone = call(
        &client,
        "$JS.API.STREAM.MSG.GET.S",
        json!({"last_by_subj": "s.once"}),
    )
    .await;
    assert_eq!(gone["error"]["err_code"], 10037, "{gone}");

    let refused = publish(
        &client,
        "s.bad",
        &[
            ("Nats-Schedule", "@every 500ms"),
            ("Nats-Schedule-Target", "s.fired"),
        ],
    )
    .await;
    assert_eq!(
        refused,
        json!({"error": {"code": 400, "err_code": 10189,
            "description": "message schedules pattern is invalid"}, "stream": "S", "seq": 0})
    );
}
