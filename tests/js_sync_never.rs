//! Under `--sync never` a lone publish is stored on the publisher's own task instead of the
//! stream's thread. These tests hold that path to the actor's rules: every publish stored
//! once and acknowledged with its sequence, each connection's messages in its order, consumers
//! fed, expectation headers checked in order, and odd reply subjects handled without harm.

mod common;

use std::future::IntoFuture;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, PullConsumer};
use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use common::{within, TestServer};
use futures::StreamExt;

const PUBLISHERS: usize = 6;
const PER_PUBLISHER: usize = 300;

async fn js(server: &TestServer) -> jetstream::Context {
    let client = within("connect", async_nats::connect(server.url()))
        .await
        .expect("connect");
    jetstream::new(client)
}

async fn make_stream(js: &jetstream::Context, name: &str, subjects: &[&str]) -> stream::Stream {
    let config = stream::Config {
        name: name.to_string(),
        subjects: subjects.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    within("create stream", js.create_stream(config))
        .await
        .expect("create stream")
}

/// Sync publishes from several connections at once (a mix of lone publishes, taken inline,
/// and contended ones, queued for the actor) keep each connection's order and lose nothing.
#[tokio::test]
async fn concurrent_sync_publishers_keep_order_and_lose_nothing() {
    let server = TestServer::start(&["--sync", "never"]);
    let js0 = js(&server).await;
    let stream = make_stream(&js0, "ORD", &["ord.>"]).await;
    let mut tasks = Vec::new();
    for p in 0..PUBLISHERS {
        let js = js(&server).await;
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::with_capacity(PER_PUBLISHER);
            for i in 0..PER_PUBLISHER {
                let ack = js
                    .publish(format!("ord.{p}"), Bytes::from(format!("{p}:{i}")))
                    .await
                    .expect("publish");
                let ack = within("ack", ack.into_future()).await.expect("ack");
                seqs.push(ack.sequence);
            }
            seqs
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        let seqs = within("publisher", task).await.expect("join");
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "acks out of order");
        all.extend(seqs);
    }
    all.sort_unstable();
    let total = (PUBLISHERS * PER_PUBLISHER) as u64;
    assert_eq!(
        all,
        (1..=total).collect::<Vec<_>>(),
        "each sequence acked once"
    );

    // The stored order agrees with each publisher's order.
    let consumer: PullConsumer = stream
        .create_consumer(pull::Config {
            durable_name: Some("check".into()),
            ack_policy: AckPolicy::None,
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut next = [0usize; PUBLISHERS];
    let mut seen = 0;
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(500)
        .messages()
        .await
        .expect("messages");
    while seen < total {
        let msg = within("message", messages.next())
            .await
            .expect("stream ended")
            .expect("message");
        let text = std::str::from_utf8(&msg.payload).expect("utf-8");
        let (p, i) = text.split_once(':').expect("p:i");
        let (p, i): (usize, usize) = (p.parse().unwrap(), i.parse().unwrap());
        assert_eq!(i, next[p], "publisher {p} stored out of order");
        next[p] += 1;
        seen += 1;
    }
}

/// A consumer waiting on the stream gets what an inline publish stores, at once.
#[tokio::test]
async fn inline_publishes_reach_a_waiting_consumer() {
    let server = TestServer::start(&["--sync", "never"]);
    let js = js(&server).await;
    let stream = make_stream(&js, "FEED", &["feed"]).await;
    let consumer: PullConsumer = stream
        .create_consumer(pull::Config {
            durable_name: Some("c".into()),
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut messages = consumer.messages().await.expect("messages");
    for i in 0..20u64 {
        let ack = js
            .publish("feed", Bytes::from(i.to_string()))
            .await
            .unwrap();
        assert_eq!(
            within("ack", ack.into_future()).await.unwrap().sequence,
            i + 1
        );
        let msg = within("delivery", messages.next())
            .await
            .expect("ended")
            .expect("message");
        assert_eq!(msg.payload, Bytes::from(i.to_string()));
        within("ack", msg.ack()).await.expect("ack");
    }
}

/// Expectation headers are checked against what was stored just before, inline or not.
#[tokio::test]
async fn expected_last_sequence_is_checked_in_order() {
    let server = TestServer::start(&["--sync", "never"]);
    let js = js(&server).await;
    make_stream(&js, "EXP", &["exp"]).await;
    for expected in 0..10u64 {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Expected-Last-Sequence", expected.to_string().as_str());
        let ack = js
            .publish_with_headers("exp", headers, Bytes::from_static(b"x"))
            .await
            .unwrap();
        let ack = within("ack", ack.into_future()).await.expect("stored");
        assert_eq!(ack.sequence, expected + 1);
    }
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Expected-Last-Sequence", "3");
    let ack = js
        .publish_with_headers("exp", headers, Bytes::from_static(b"x"))
        .await
        .unwrap();
    let err = within("ack", ack.into_future()).await.unwrap_err();
    assert!(err.to_string().contains("wrong last sequence: 10"), "{err}");
}

/// A publish whose reply subject belongs to the server itself (the JetStream API) is stored,
/// and its PubAck, sent to the API like any message, neither hangs nor breaks the server.
#[tokio::test]
async fn pub_ack_to_an_internal_subject_is_harmless() {
    let server = TestServer::start(&["--sync", "never"]);
    let js = js(&server).await;
    let stream = make_stream(&js, "ODD", &["odd"]).await;
    let mut raw = server.raw();
    raw.send(b"CONNECT {\"verbose\":false}\r\nPUB odd $JS.API.INFO 2\r\nhi\r\nPING\r\n");
    raw.read_until_contains(b"PONG", Duration::from_secs(5));
    let info = within("info", async {
        let mut stream = stream;
        stream.info().await.map(|i| i.state.messages)
    })
    .await
    .expect("info");
    assert_eq!(info, 1);
    // The server still answers.
    let ack = js
        .publish("odd", Bytes::from_static(b"again"))
        .await
        .unwrap();
    assert_eq!(within("ack", ack.into_future()).await.unwrap().sequence, 2);
}
