//! A JetStream domain (`jetstream { domain: hub }`): clients that address the API as
//! `$JS.hub.API` (async-nats `with_domain`) manage streams, publish, fetch and direct-get, and
//! PubAcks name the domain as nats-server's do.

mod common;

use std::future::IntoFuture;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, PullConsumer};
use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use common::{within, TestServer};
use futures::StreamExt;

#[tokio::test]
async fn a_client_of_the_domain_uses_the_whole_api() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("domain.conf");
    std::fs::write(&path, "jetstream { domain: hub }\n").unwrap();
    let server = TestServer::start(&["-c", path.to_str().unwrap()]);
    let client = within("connect", async_nats::connect(server.url()))
        .await
        .expect("connect");
    let js = jetstream::with_domain(client.clone(), "hub");
    let stream = within(
        "create",
        js.create_stream(stream::Config {
            name: "DOM".into(),
            subjects: vec!["dom.>".into()],
            allow_direct: true,
            ..Default::default()
        }),
    )
    .await
    .expect("create through the domain");
    let ack = js
        .publish("dom.a", Bytes::from_static(b"one"))
        .await
        .unwrap();
    let ack = within("ack", ack.into_future()).await.expect("stored");
    assert_eq!((ack.sequence, ack.domain.as_str()), (1, "hub"));

    let raw = within("direct get", stream.direct_get_last_for_subject("dom.a"))
        .await
        .expect("direct get through the domain");
    assert_eq!(raw.payload, Bytes::from_static(b"one"));

    let consumer: PullConsumer = within(
        "consumer",
        stream.create_consumer(pull::Config {
            durable_name: Some("c".into()),
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        }),
    )
    .await
    .expect("consumer through the domain");
    let mut batch = within(
        "fetch",
        consumer
            .batch()
            .max_messages(1)
            .expires(Duration::from_secs(2))
            .messages(),
    )
    .await
    .expect("fetch through the domain");
    let msg = within("message", batch.next())
        .await
        .expect("one message")
        .expect("message");
    assert_eq!(msg.payload, Bytes::from_static(b"one"));

    // The plain prefix still works, and account info names the domain.
    let info: serde_json::Value = within(
        "info",
        jetstream::new(client).request("INFO", &serde_json::json!({})),
    )
    .await
    .expect("account info");
    assert_eq!(info["domain"], "hub");
    assert_eq!(info["streams"], 1);
}
