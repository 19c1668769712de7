//! The async-nats client's own calls for API level 1 consumers against jetlog: fetch with a
//! priority group and `min_pending`, `reset`, a pinned consumer's stream of messages, `unpin_consumer`,
//! a consumer created paused, and `resume_consumer` (nats-server's behaviour:
//! docs/consumer-2.14-facts.md).

mod common;

use std::time::Duration;

use common::js_consumer::{in_ms, publish, rfc3339, setup};
use common::{within, TestServer};
use futures::StreamExt;
use serde_json::json;

#[tokio::test]
async fn async_nats_priority_pause_and_unpin_apis_work() {
    use async_nats::jetstream::consumer::{pull, AckPolicy, PriorityPolicy};
    let server = TestServer::start(&[]);
    let client = setup(&server).await;
    let js = async_nats::jetstream::new(client.clone());
    let stream = within("get stream", js.get_stream("S")).await.unwrap();
    for i in 1..=20 {
        publish(&client, "s.n", &format!("n{i}")).await;
    }

    let overflow = within(
        "create overflow",
        stream.create_consumer(pull::Config {
            durable_name: Some("ov".into()),
            ack_policy: AckPolicy::Explicit,
            priority_policy: PriorityPolicy::Overflow,
            priority_groups: vec!["g".into()],
            ..Default::default()
        }),
    )
    .await
    .unwrap();
    let mut batch = within(
        "fetch",
        overflow
            .fetch()
            .max_messages(5)
            .group("g")
            .min_pending(18)
            .expires(Duration::from_secs(1))
            .messages(),
    )
    .await
    .unwrap();
    let mut seqs = Vec::new();
    while let Some(m) = within("fetch batch", batch.next()).await {
        let m = m.expect("fetched message");
        seqs.push(m.info().expect("ack info").stream_sequence);
    }
    assert_eq!(seqs, vec![1, 2, 3]);

    // CONSUMER.RESET through the client (2.14): back to sequence 2, nothing pending, and the
    // consumer sequence starting again.
    let mut overflow = overflow;
    let reset = within("reset", overflow.reset(Some(2))).await.unwrap();
    assert_eq!(reset.reset_seq, 2);
    assert_eq!(reset.info.num_ack_pending, 0);
    assert_eq!(
        (
            reset.info.delivered.consumer_sequence,
            reset.info.delivered.stream_sequence
        ),
        (0, 1)
    );
    let mut batch = within(
        "fetch after reset",
        overflow.fetch().max_messages(1).group("g").messages(),
    )
    .await
    .unwrap();
    let m = within("message after reset", batch.next())
        .await
        .expect("a message")
        .expect("fetched message");
    let info = m.info().expect("ack info");
    assert_eq!((info.stream_sequence, info.consumer_sequence), (2, 1));

    let pinned = within(
        "create pinned",
        stream.create_consumer(pull::Config {
            durable_name: Some("pn".into()),
            ack_policy: AckPolicy::Explicit,
            priority_policy: PriorityPolicy::PinnedClient,
            priority_groups: vec!["g".into()],
            ..Default::default()
        }),
    )
    .await
    .unwrap();
    assert_eq!(
        pinned.cached_info().config.priority_timeout,
        Duration::from_secs(120)
    );
    let mut messages = within("pinned stream", pinned.stream().group("g").messages())
        .await
        .unwrap();
    let m = within("pinned message", messages.next())
        .await
        .expect("stream open")
        .expect("message");
    let pin = m
        .headers
        .as_ref()
        .and_then(|h| h.get("Nats-Pin-Id"))
        .map(|v| v.as_str().to_string())
        .unwrap_or_default();
    assert!(!pin.is_empty(), "{:?}", m.headers);
    drop(messages);
    let info = within("consumer info", stream.consumer_info("pn"))
        .await
        .unwrap();
    assert_eq!(
        info.priority_groups[0].pinned_client_id.as_deref(),
        Some(pin.as_str())
    );
    within("unpin", stream.unpin_consumer("pn", "g"))
        .await
        .unwrap();
    let info = within("consumer info", stream.consumer_info("pn"))
        .await
        .unwrap();
    assert_eq!(info.priority_groups[0].pinned_client_id, None);
    assert!(within("unpin h", stream.unpin_consumer("pn", "h"))
        .await
        .is_err());

    // A config with pause_until (built from JSON: `time` is not reachable from tests).
    let mut config = serde_json::to_value(pull::Config {
        durable_name: Some("pz".into()),
        ack_policy: AckPolicy::Explicit,
        ..Default::default()
    })
    .unwrap();
    config["pause_until"] = json!(rfc3339(in_ms(60_000)));
    let config: pull::Config = serde_json::from_value(config).unwrap();
    let paused = within("create paused", stream.create_consumer(config))
        .await
        .unwrap();
    assert!(paused.cached_info().paused);
    let resumed = within("resume", stream.resume_consumer("pz"))
        .await
        .unwrap();
    assert!(!resumed.paused);
    let info = within("consumer info", stream.consumer_info("pz"))
        .await
        .unwrap();
    assert!(!info.paused);
}
