//! Lifecycle advisories on `$JS.EVENT.ADVISORY.>`: streams created, updated and deleted,
//! consumers created and deleted (by the API or by their inactivity), in the shapes
//! nats-server 2.15.1 publishes (a consumer update sends none there either).

mod common;

use std::time::Duration;

use common::js_consumer::call;
use common::{within, TestServer};
use futures::StreamExt;
use serde_json::{json, Value};

async fn next_advisory(sub: &mut async_nats::Subscriber) -> (String, Value) {
    let msg = within("advisory", sub.next())
        .await
        .expect("subscription open");
    let body = serde_json::from_slice(&msg.payload).expect("JSON advisory");
    (msg.subject.to_string(), body)
}

#[tokio::test]
async fn stream_and_consumer_lifecycles_are_announced() {
    let server = TestServer::start(&[]);
    let client = within("connect", async_nats::connect(server.url()))
        .await
        .unwrap();
    let mut sub = client
        .subscribe("$JS.EVENT.ADVISORY.>")
        .await
        .expect("subscribed");
    within("flush", client.flush()).await.unwrap();

    let stream = json!({"name":"S","subjects":["s.>"]});
    call(&client, "$JS.API.STREAM.CREATE.S", stream.clone()).await;
    // Creating it again with the same config creates nothing and announces nothing.
    call(&client, "$JS.API.STREAM.CREATE.S", stream).await;
    call(
        &client,
        "$JS.API.STREAM.UPDATE.S",
        json!({"name":"S","subjects":["s.>"],"max_msgs":10}),
    )
    .await;
    let durable = |description: &str| {
        json!({"stream_name":"S","config":{"durable_name":"D","ack_policy":"explicit",
               "description":description}})
    };
    call(&client, "$JS.API.CONSUMER.CREATE.S.D", durable("one")).await;
    call(&client, "$JS.API.CONSUMER.CREATE.S.D", durable("two")).await;
    call(&client, "$JS.API.CONSUMER.DELETE.S.D", json!({})).await;
    // An ephemeral that nobody uses goes after its inactive_threshold, announced the same way.
    call(
        &client,
        "$JS.API.CONSUMER.CREATE.S.E",
        json!({"stream_name":"S","config":{"name":"E","ack_policy":"explicit",
               "inactive_threshold":300_000_000u64}}),
    )
    .await;

    let expected = [
        (
            "$JS.EVENT.ADVISORY.STREAM.CREATED.S",
            "stream_action",
            "create",
        ),
        (
            "$JS.EVENT.ADVISORY.STREAM.UPDATED.S",
            "stream_action",
            "modify",
        ),
        (
            "$JS.EVENT.ADVISORY.CONSUMER.CREATED.S.D",
            "consumer_action",
            "create",
        ),
        (
            "$JS.EVENT.ADVISORY.CONSUMER.DELETED.S.D",
            "consumer_action",
            "delete",
        ),
        (
            "$JS.EVENT.ADVISORY.CONSUMER.CREATED.S.E",
            "consumer_action",
            "create",
        ),
        (
            "$JS.EVENT.ADVISORY.CONSUMER.DELETED.S.E",
            "consumer_action",
            "delete",
        ),
    ];
    for (subject, kind, action) in expected {
        let (got, body) = next_advisory(&mut sub).await;
        assert_eq!(got, subject, "{body}");
        assert_eq!(
            body["type"],
            format!("io.nats.jetstream.advisory.v1.{kind}")
        );
        assert_eq!(
            (&body["stream"], &body["action"]),
            (&json!("S"), &json!(action))
        );
        assert_eq!(body["id"].as_str().map(str::len), Some(22), "{body}");
        assert!(body["timestamp"].as_str().is_some(), "{body}");
        if kind == "consumer_action" {
            assert_eq!(&body["consumer"], subject.rsplit('.').next().unwrap());
        }
    }
    call(&client, "$JS.API.STREAM.DELETE.S", json!({})).await;
    let (got, body) = next_advisory(&mut sub).await;
    assert_eq!(got, "$JS.EVENT.ADVISORY.STREAM.DELETED.S");
    assert_eq!(body["action"], "delete");
    // Nothing else was announced (the repeated create and the consumer update sent nothing).
    let extra = tokio::time::timeout(Duration::from_millis(300), sub.next()).await;
    assert!(extra.is_err(), "unexpected advisory: {extra:?}");
}
