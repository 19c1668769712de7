//! Atomic batch publish (ADR-50) through a real client: staged messages get empty replies,
//! the commit stores the batch whole and answers as nats-server 2.15.1 does
//! (docs/atomic-batch-facts.md), a refused batch stores nothing, and a batch left open when
//! the server is killed is gone after the restart while a committed one is all there.

mod common;

use std::time::Duration;

use async_nats::jetstream;
use async_nats::HeaderMap;
use common::js_consumer::{call, connect};
use common::{within, TestServer};
use futures::StreamExt;
use serde_json::{json, Value};

/// Publishes message `seq` of batch `id` as a request and returns the reply's body.
async fn part(
    client: &async_nats::Client,
    subject: &str,
    id: &str,
    seq: u64,
    extra: &[(&str, &str)],
) -> Vec<u8> {
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Batch-Id", id);
    headers.insert("Nats-Batch-Sequence", seq.to_string().as_str());
    for (k, v) in extra {
        headers.insert(*k, *v);
    }
    let reply = within(
        "batch publish",
        client.request_with_headers(subject.to_string(), headers, format!("m{seq}").into()),
    )
    .await
    .expect("a reply");
    reply.payload.to_vec()
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(body)))
}

async fn create(client: &async_nats::Client) {
    let made = call(
        client,
        "$JS.API.STREAM.CREATE.B",
        json!({"name": "B", "subjects": ["b.>"], "allow_atomic": true}),
    )
    .await;
    assert_eq!(made["config"]["allow_atomic"], true, "{made}");
}

#[tokio::test]
async fn a_batch_is_stored_whole_at_its_commit_and_seen_by_a_consumer_in_order() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    create(&client).await;
    assert!(part(&client, "b.1", "ok1", 1, &[]).await.is_empty());
    assert!(part(&client, "b.2", "ok1", 2, &[]).await.is_empty());
    let info = call(&client, "$JS.API.STREAM.INFO.B", json!({})).await;
    assert_eq!(info["state"]["messages"], 0, "staged is not stored: {info}");
    let ack = part(&client, "b.3", "ok1", 3, &[("Nats-Batch-Commit", "1")]).await;
    assert_eq!(
        String::from_utf8_lossy(&ack),
        r#"{"stream":"B","seq":3,"batch":"ok1","count":3}"#
    );

    let js = jetstream::new(client.clone());
    let stream = js.get_stream("B").await.expect("stream");
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("d".into()),
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut messages = consumer
        .fetch()
        .max_messages(3)
        .expires(Duration::from_secs(2))
        .messages()
        .await
        .expect("fetch");
    let mut got = Vec::new();
    while let Some(m) = within("fetch", messages.next()).await {
        let m = m.expect("message");
        let headers = m.headers.clone().unwrap_or_default();
        got.push((
            m.subject.to_string(),
            headers.get("Nats-Batch-Sequence").map(|v| v.to_string()),
        ));
    }
    assert_eq!(
        got,
        [
            ("b.1".to_string(), Some("1".to_string())),
            ("b.2".to_string(), Some("2".to_string())),
            ("b.3".to_string(), Some("3".to_string())),
        ]
    );
}

#[tokio::test]
async fn a_refused_batch_stores_nothing_and_a_gap_is_advised() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    create(&client).await;
    let mut advisories = client
        .subscribe("$JS.EVENT.ADVISORY.STREAM.BATCH_ABANDONED.B")
        .await
        .expect("subscribe");
    client.flush().await.expect("flush");

    // A check that only the commit runs refuses the batch as a whole.
    part(&client, "b.1", "elm", 1, &[]).await;
    part(
        &client,
        "b.2",
        "elm",
        2,
        &[("Nats-Expected-Last-Msg-Id", "x")],
    )
    .await;
    let refused = json_of(&part(&client, "b.3", "elm", 3, &[("Nats-Batch-Commit", "1")]).await);
    assert_eq!(
        refused,
        json!({"error": {"code": 400, "err_code": 10177,
            "description": "atomic publish unsupported header used: Nats-Expected-Last-Msg-Id"},
            "stream": "B", "seq": 0})
    );
    let info = call(&client, "$JS.API.STREAM.INFO.B", json!({})).await;
    assert_eq!(info["state"]["messages"], 0, "{info}");

    part(&client, "b.1", "gap", 1, &[]).await;
    let gap = json_of(&part(&client, "b.3", "gap", 3, &[]).await);
    assert_eq!(gap["error"]["err_code"], 10176, "{gap}");
    let advisory = within("advisory", advisories.next())
        .await
        .expect("advisory");
    let advisory = json_of(&advisory.payload);
    assert_eq!(
        advisory["type"],
        "io.nats.jetstream.advisory.v1.stream_batch_abandoned"
    );
    assert_eq!(
        (&advisory["stream"], &advisory["batch"], &advisory["reason"]),
        (&json!("B"), &json!("gap"), &json!("incomplete"))
    );

    // A stream without the setting refuses the header.
    call(
        &client,
        "$JS.API.STREAM.CREATE.P",
        json!({"name": "P", "subjects": ["p.>"]}),
    )
    .await;
    let off = json_of(&part(&client, "p.1", "x", 1, &[]).await);
    assert_eq!(off["error"]["err_code"], 10174, "{off}");
}

#[tokio::test]
async fn after_a_kill_a_committed_batch_is_whole_and_an_open_one_is_gone() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    create(&client).await;
    part(&client, "b.1", "done", 1, &[]).await;
    part(&client, "b.2", "done", 2, &[("Nats-Batch-Commit", "1")]).await;
    part(&client, "b.1", "open", 1, &[]).await;
    part(&client, "b.2", "open", 2, &[]).await;
    drop(client);

    let server = TestServer::start_in(server.kill_and_take_store(), &[]);
    let client = connect(&server).await;
    let info = call(&client, "$JS.API.STREAM.INFO.B", json!({})).await;
    assert_eq!(info["state"]["messages"], 2, "{info}");
    assert_eq!(info["config"]["allow_atomic"], true, "{info}");
    let late = json_of(&part(&client, "b.3", "open", 3, &[("Nats-Batch-Commit", "1")]).await);
    assert_eq!(late["error"]["err_code"], 10176, "{late}");
    // The id is free again, from 1.
    let again = json_of(&part(&client, "b.1", "open", 1, &[("Nats-Batch-Commit", "1")]).await);
    assert_eq!(
        again,
        json!({"stream": "B", "seq": 3, "batch": "open", "count": 1})
    );
}
