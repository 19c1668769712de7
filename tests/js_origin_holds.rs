//! Mirrors and sources of workqueue and interest streams (docs/sources-facts.md,
//! docs/mirror-facts.md): the copy holds its origin through a durable `JS_SRC_…` or
//! `JS_MIRROR_…` consumer there, so a workqueue origin is drained as the copy stores its
//! messages, an interest origin once its own consumers are done too; the hold survives a
//! kill -9, and it goes when the source is removed or the copying stream deleted.

mod common;

use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::Client;
use common::js_consumer::{call, connect};
use common::TestServer;
use futures::StreamExt;
use serde_json::{json, Value};

/// How long a copy may take to catch up (the pumps run every 50 ms).
const CATCH_UP: Duration = Duration::from_secs(20);

async fn create(client: &Client, config: Value) {
    let name = config["name"].as_str().expect("name").to_owned();
    let made = call(client, &format!("$JS.API.STREAM.CREATE.{name}"), config).await;
    assert!(made.get("error").is_none(), "{made}");
}

async fn messages(client: &Client, stream: &str) -> u64 {
    let info = call(client, &format!("$JS.API.STREAM.INFO.{stream}"), json!({})).await;
    info["state"]["messages"]
        .as_u64()
        .unwrap_or_else(|| panic!("{info}"))
}

/// Waits (bounded) until each stream holds its count.
async fn wait_for(client: &Client, want: &[(&str, u64)]) {
    let deadline = Instant::now() + CATCH_UP;
    loop {
        let mut now = Vec::new();
        for (stream, _) in want {
            now.push(messages(client, stream).await);
        }
        if want.iter().zip(&now).all(|((_, w), n)| w == n) {
            return;
        }
        assert!(Instant::now() < deadline, "{want:?} hold {now:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn consumer_names(client: &Client, stream: &str) -> Vec<String> {
    let names = call(
        client,
        &format!("$JS.API.CONSUMER.NAMES.{stream}"),
        json!({}),
    )
    .await;
    let list = names["consumers"].as_array().cloned().unwrap_or_default();
    list.iter()
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect()
}

async fn publish(client: &Client, subject: &str, count: usize) {
    for i in 0..count {
        let reply = client
            .request(subject.to_owned(), format!("{i}").into())
            .await
            .expect("a PubAck");
        let ack: Value = serde_json::from_slice(&reply.payload).expect("json");
        assert!(ack.get("error").is_none(), "{ack}");
    }
}

#[tokio::test]
async fn a_source_drains_a_workqueue_origin_and_lets_go_of_it_when_removed() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    let wq = json!({"name": "WQ", "subjects": ["wq.>"], "retention": "workqueue"});
    create(&client, wq).await;
    publish(&client, "wq.a", 3).await;
    create(&client, json!({"name": "AGG", "sources": [{"name": "WQ"}]})).await;
    wait_for(&client, &[("AGG", 3), ("WQ", 0)]).await;
    let holds = consumer_names(&client, "WQ").await;
    assert!(
        holds.len() == 1 && holds[0].starts_with("JS_SRC_"),
        "{holds:?}"
    );
    // The hold shares the work queue: an unfiltered consumer of one's own is still allowed.
    let own =
        json!({"stream_name": "WQ", "config": {"durable_name": "W", "ack_policy": "explicit"}});
    let made = call(&client, "$JS.API.CONSUMER.CREATE.WQ.W", own).await;
    assert!(made.get("error").is_none(), "{made}");
    let deleted = call(&client, "$JS.API.CONSUMER.DELETE.WQ.W", json!({})).await;
    assert_eq!(deleted["success"], true, "{deleted}");

    // The hold and its floor survive a kill -9.
    let store = server.kill_and_take_store();
    let server = TestServer::start_in(store, &[]);
    let client = connect(&server).await;
    publish(&client, "wq.b", 2).await;
    wait_for(&client, &[("AGG", 5), ("WQ", 0)]).await;

    // Removed, the source no longer holds the origin.
    let update = json!({"name": "AGG", "sources": []});
    let updated = call(&client, "$JS.API.STREAM.UPDATE.AGG", update).await;
    assert!(updated.get("error").is_none(), "{updated}");
    assert!(consumer_names(&client, "WQ").await.is_empty());
    publish(&client, "wq.c", 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(messages(&client, "WQ").await, 1);
    assert_eq!(messages(&client, "AGG").await, 5);
}

#[tokio::test]
async fn an_interest_origin_keeps_what_its_own_consumers_still_need() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    let interest = json!({"name": "INT", "subjects": ["int.>"], "retention": "interest"});
    create(&client, interest).await;
    let own =
        json!({"stream_name": "INT", "config": {"durable_name": "D", "ack_policy": "explicit"}});
    let made = call(&client, "$JS.API.CONSUMER.CREATE.INT.D", own).await;
    assert!(made.get("error").is_none(), "{made}");
    create(
        &client,
        json!({"name": "COPY", "sources": [{"name": "INT"}]}),
    )
    .await;
    // The hold is made on the source's first round: wait for it before publishing.
    let deadline = Instant::now() + CATCH_UP;
    while consumer_names(&client, "INT").await.len() < 2 {
        assert!(Instant::now() < deadline, "no hold on INT");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    publish(&client, "int.a", 3).await;
    wait_for(&client, &[("COPY", 3)]).await;
    // Copied, but D has not acknowledged them: they stay.
    assert_eq!(messages(&client, "INT").await, 3);
    let js = async_nats::jetstream::new(client.clone());
    let consumer: PullConsumer = js
        .get_consumer_from_stream("D", "INT")
        .await
        .expect("consumer D");
    let mut batch = consumer
        .batch()
        .max_messages(3)
        .expires(Duration::from_secs(5))
        .messages()
        .await
        .expect("a batch");
    for _ in 0..3 {
        let message = tokio::time::timeout(CATCH_UP, batch.next())
            .await
            .expect("in time")
            .expect("a message")
            .expect("no error");
        message.double_ack().await.expect("acked");
    }
    wait_for(&client, &[("INT", 0), ("COPY", 3)]).await;
}

#[tokio::test]
async fn a_mirror_drains_a_workqueue_origin_until_it_is_deleted() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    let wq = json!({"name": "JOBS", "subjects": ["jobs.>"], "retention": "workqueue"});
    create(&client, wq).await;
    publish(&client, "jobs.x", 4).await;
    create(&client, json!({"name": "M", "mirror": {"name": "JOBS"}})).await;
    wait_for(&client, &[("M", 4), ("JOBS", 0)]).await;
    let holds = consumer_names(&client, "JOBS").await;
    assert!(
        holds.len() == 1 && holds[0].starts_with("JS_MIRROR_"),
        "{holds:?}"
    );
    let deleted = call(&client, "$JS.API.STREAM.DELETE.M", json!({})).await;
    assert_eq!(deleted["success"], true, "{deleted}");
    assert!(consumer_names(&client, "JOBS").await.is_empty());
}

#[tokio::test]
async fn an_origin_made_after_its_source_is_held_once_it_appears() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    create(&client, json!({"name": "LATE", "sources": [{"name": "L"}]})).await;
    let wq = json!({"name": "L", "subjects": ["l.>"], "retention": "workqueue"});
    create(&client, wq).await;
    publish(&client, "l.a", 2).await;
    wait_for(&client, &[("LATE", 2), ("L", 0)]).await;
}
