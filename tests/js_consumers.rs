//! JetStream consumers through the async-nats client: pull and push delivery, acks,
//! redelivery, retention policies and restarts.

mod common;

use std::future::IntoFuture;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, push, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::{self, stream, AckKind};
use bytes::Bytes;
use common::{within, TestServer};
use futures::StreamExt;

async fn connect_js(server: &TestServer) -> jetstream::Context {
    let client = within("connect", async_nats::connect(server.url()))
        .await
        .expect("connect");
    jetstream::new(client)
}

async fn make_stream(
    js: &jetstream::Context,
    name: &str,
    subjects: &[&str],
    retention: stream::RetentionPolicy,
) -> stream::Stream {
    let config = stream::Config {
        name: name.to_string(),
        subjects: subjects.iter().map(|s| s.to_string()).collect(),
        retention,
        ..Default::default()
    };
    within("create stream", js.create_stream(config))
        .await
        .expect("create stream")
}

async fn publish_n(js: &jetstream::Context, subject: &str, n: usize) {
    for i in 0..n {
        let ack = js
            .publish(subject.to_string(), Bytes::from(format!("m{i}")))
            .await
            .unwrap();
        within("ack", ack.into_future()).await.unwrap();
    }
}

fn pull_config(name: &str) -> pull::Config {
    pull::Config {
        durable_name: Some(name.to_string()),
        ack_policy: AckPolicy::Explicit,
        ..Default::default()
    }
}

/// Fetches up to `n` messages, waiting at most `expires` for them.
async fn fetch(consumer: &PullConsumer, n: usize, expires: Duration) -> Vec<jetstream::Message> {
    let mut batch = within(
        "batch",
        consumer.batch().max_messages(n).expires(expires).messages(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    while let Some(msg) = within("batch message", batch.next()).await {
        out.push(msg.unwrap());
    }
    out
}

#[tokio::test]
async fn pull_fetch_ack_and_exact_counters() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    let stream = make_stream(&js, "P", &["p.>"], stream::RetentionPolicy::Limits).await;
    publish_n(&js, "p.a", 10).await;
    let mut consumer: PullConsumer = stream.create_consumer(pull_config("c")).await.unwrap();
    assert_eq!(
        consumer.info().await.unwrap().num_pending,
        10,
        "num_pending is right at creation"
    );

    let msgs = fetch(&consumer, 4, Duration::from_secs(1)).await;
    assert_eq!(msgs.len(), 4);
    for (i, msg) in msgs.iter().enumerate() {
        let info = msg.info().unwrap();
        assert_eq!(
            (info.stream_sequence, info.consumer_sequence, info.delivered),
            (i as u64 + 1, i as u64 + 1, 1)
        );
        assert_eq!(info.pending, 10 - i as u64 - 1);
        assert_eq!(msg.subject.as_str(), "p.a");
        assert_eq!(msg.payload, format!("m{i}"));
    }
    let info = consumer.info().await.unwrap().clone();
    assert_eq!(
        (
            info.num_ack_pending,
            info.num_pending,
            info.delivered.stream_sequence
        ),
        (4, 6, 4)
    );
    assert_eq!(info.ack_floor.stream_sequence, 0);
    for msg in &msgs[..2] {
        msg.double_ack().await.unwrap();
    }
    let info = consumer.info().await.unwrap().clone();
    assert_eq!(
        (info.ack_floor.stream_sequence, info.num_ack_pending),
        (2, 2)
    );
    msgs[3].double_ack().await.unwrap();
    let info = consumer.info().await.unwrap().clone();
    assert_eq!(
        info.ack_floor.stream_sequence, 2,
        "the floor waits for seq 3"
    );
    msgs[2].double_ack().await.unwrap();
    let info = consumer.info().await.unwrap().clone();
    assert_eq!(
        (
            info.ack_floor.stream_sequence,
            info.ack_floor.consumer_sequence,
            info.num_ack_pending
        ),
        (4, 4, 0)
    );
}

#[tokio::test]
async fn unacked_messages_are_redelivered_after_ack_wait_up_to_max_deliver() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    let stream = make_stream(&js, "R", &["r"], stream::RetentionPolicy::Limits).await;
    publish_n(&js, "r", 1).await;
    let config = pull::Config {
        ack_wait: Duration::from_millis(300),
        max_deliver: 2,
        ..pull_config("c")
    };
    let mut consumer: PullConsumer = stream.create_consumer(config).await.unwrap();
    let first = fetch(&consumer, 1, Duration::from_millis(500)).await;
    assert_eq!(first.len(), 1);
    let again = fetch(&consumer, 1, Duration::from_secs(2)).await;
    assert_eq!(again.len(), 1, "redelivered after ack_wait");
    let info = again[0].info().unwrap();
    assert_eq!(
        (info.stream_sequence, info.delivered, info.consumer_sequence),
        (1, 2, 2)
    );
    assert_eq!(consumer.info().await.unwrap().num_redelivered, 1);
    let none = fetch(&consumer, 1, Duration::from_millis(800)).await;
    assert!(none.is_empty(), "max_deliver 2 stops redelivery");
    assert_eq!(consumer.info().await.unwrap().num_ack_pending, 0);
}

#[tokio::test]
async fn nak_term_and_in_progress() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    let stream = make_stream(&js, "N", &["n"], stream::RetentionPolicy::Limits).await;
    publish_n(&js, "n", 2).await;
    let config = pull::Config {
        ack_wait: Duration::from_millis(400),
        ..pull_config("c")
    };
    let consumer: PullConsumer = stream.create_consumer(config).await.unwrap();
    let msgs = fetch(&consumer, 2, Duration::from_millis(500)).await;
    msgs[0].ack_with(AckKind::Nak(None)).await.unwrap();
    msgs[1].ack_with(AckKind::Term).await.unwrap();
    let redelivered = fetch(&consumer, 2, Duration::from_millis(300)).await;
    assert_eq!(
        redelivered.len(),
        1,
        "the nak'd one comes back at once, the terminated one never"
    );
    assert_eq!(redelivered[0].info().unwrap().stream_sequence, 1);
    // In progress keeps pushing the deadline out.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        redelivered[0].ack_with(AckKind::Progress).await.unwrap();
    }
    assert!(fetch(&consumer, 1, Duration::from_millis(250))
        .await
        .is_empty());
    redelivered[0].double_ack().await.unwrap();
}

#[tokio::test]
async fn ack_all_and_max_ack_pending() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    let stream = make_stream(&js, "A", &["a"], stream::RetentionPolicy::Limits).await;
    publish_n(&js, "a", 6).await;
    let config = pull::Config {
        ack_policy: AckPolicy::All,
        max_ack_pending: 3,
        ..pull_config("c")
    };
    let mut consumer: PullConsumer = stream.create_consumer(config).await.unwrap();
    let msgs = fetch(&consumer, 6, Duration::from_millis(300)).await;
    assert_eq!(msgs.len(), 3, "max_ack_pending holds the rest back");
    msgs[2].double_ack().await.unwrap();
    let info = consumer.info().await.unwrap().clone();
    assert_eq!(
        (info.ack_floor.stream_sequence, info.num_ack_pending),
        (3, 0),
        "ack all covers earlier ones"
    );
    assert_eq!(
        fetch(&consumer, 6, Duration::from_millis(300)).await.len(),
        3
    );
}

#[tokio::test]
async fn deliver_policies_choose_the_start() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    let stream = make_stream(&js, "D", &["d.*"], stream::RetentionPolicy::Limits).await;
    for subject in ["d.a", "d.b", "d.a", "d.c", "d.b"] {
        publish_n(&js, subject, 1).await;
    }
    let cases: Vec<(DeliverPolicy, Vec<u64>)> = vec![
        (DeliverPolicy::All, vec![1, 2, 3, 4, 5]),
        (DeliverPolicy::Last, vec![5]),
        (DeliverPolicy::New, vec![]),
        (
            DeliverPolicy::ByStartSequence { start_sequence: 4 },
            vec![4, 5],
        ),
        (DeliverPolicy::LastPerSubject, vec![3, 4, 5]),
    ];
    for (i, (policy, want)) in cases.into_iter().enumerate() {
        let config = pull::Config {
            deliver_policy: policy,
            filter_subject: "d.*".into(),
            ..pull_config(&format!("c{i}"))
        };
        let consumer: PullConsumer = stream.create_consumer(config).await.unwrap();
        let got: Vec<u64> = fetch(&consumer, 10, Duration::from_millis(200))
            .await
            .iter()
            .map(|m| m.info().unwrap().stream_sequence)
            .collect();
        assert_eq!(got, want, "{policy:?}");
    }
}

#[tokio::test]
async fn push_and_ordered_consumers_deliver_in_order() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    let stream = make_stream(&js, "PU", &["pu.>"], stream::RetentionPolicy::Limits).await;
    publish_n(&js, "pu.x", 20).await;
    let ordered = stream
        .create_consumer(push::OrderedConfig {
            deliver_subject: js.client().new_inbox(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = ordered.messages().await.unwrap();
    for i in 1..=20u64 {
        let msg = within("ordered message", messages.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(msg.info().unwrap().stream_sequence, i);
    }
    publish_n(&js, "pu.y", 1).await;
    let live = within("live message", messages.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        live.subject.as_str(),
        "pu.y",
        "ordered consumers follow new messages"
    );

    let inbox = js.client().new_inbox();
    let config = push::Config {
        durable_name: Some("pushy".into()),
        deliver_subject: inbox,
        ack_policy: AckPolicy::Explicit,
        ..Default::default()
    };
    let push_consumer = stream.create_consumer(config).await.unwrap();
    let mut msgs = push_consumer.messages().await.unwrap();
    for _ in 0..21 {
        let msg = within("push message", msgs.next()).await.unwrap().unwrap();
        msg.ack().await.unwrap();
    }
}

#[tokio::test]
async fn workqueue_removes_acked_messages_and_refuses_overlapping_consumers() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    let mut stream = make_stream(&js, "WQ", &["wq.*"], stream::RetentionPolicy::WorkQueue).await;
    publish_n(&js, "wq.a", 3).await;
    let consumer: PullConsumer = stream
        .create_consumer(pull::Config {
            filter_subject: "wq.a".into(),
            ..pull_config("w")
        })
        .await
        .unwrap();
    for msg in fetch(&consumer, 3, Duration::from_millis(300)).await {
        msg.double_ack().await.unwrap();
    }
    assert_eq!(
        stream.info().await.unwrap().state.messages,
        0,
        "acked work is gone"
    );
    let err = stream
        .create_consumer(pull::Config {
            filter_subject: "wq.*".into(),
            ..pull_config("w2")
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("10100"), "{err}");
}

#[tokio::test]
async fn interest_retention_keeps_messages_only_while_someone_needs_them() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    let mut stream = make_stream(&js, "IN", &["in"], stream::RetentionPolicy::Interest).await;
    publish_n(&js, "in", 2).await;
    let info = stream.info().await.unwrap().clone();
    assert_eq!(
        (info.state.messages, info.state.last_sequence),
        (0, 2),
        "no interest: sequences used, nothing kept"
    );
    let a: PullConsumer = stream.create_consumer(pull_config("a")).await.unwrap();
    let b: PullConsumer = stream.create_consumer(pull_config("b")).await.unwrap();
    publish_n(&js, "in", 1).await;
    for msg in fetch(&a, 1, Duration::from_millis(300)).await {
        msg.double_ack().await.unwrap();
    }
    assert_eq!(
        stream.info().await.unwrap().state.messages,
        1,
        "b still needs it"
    );
    for msg in fetch(&b, 1, Duration::from_millis(300)).await {
        msg.double_ack().await.unwrap();
    }
    assert_eq!(stream.info().await.unwrap().state.messages, 0);
}

#[tokio::test]
async fn consumer_api_lists_and_deletes() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    let mut stream = make_stream(&js, "L", &["l"], stream::RetentionPolicy::Limits).await;
    for name in ["x", "y"] {
        let _: PullConsumer = stream.create_consumer(pull_config(name)).await.unwrap();
    }
    let mut names: Vec<String> = stream.consumer_names().map(|n| n.unwrap()).collect().await;
    names.sort();
    assert_eq!(names, ["x", "y"]);
    assert_eq!(stream.info().await.unwrap().state.consumer_count, 2);
    assert!(stream.delete_consumer("x").await.unwrap().success);
    assert!(stream.consumer_info("x").await.is_err());
    let err = js
        .publish("$JS.API.CONSUMER.MSG.NEXT.L.x", Bytes::new())
        .await;
    assert!(
        err.is_ok(),
        "a plain publish to a deleted consumer's pull subject is just dropped"
    );
}

#[tokio::test]
async fn acked_state_survives_restart_and_kill_9() {
    let store = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(store, &[]);
    let js = connect_js(&server).await;
    let stream = make_stream(&js, "K", &["k"], stream::RetentionPolicy::Limits).await;
    publish_n(&js, "k", 10).await;
    let consumer: PullConsumer = stream.create_consumer(pull_config("dur")).await.unwrap();
    for msg in fetch(&consumer, 4, Duration::from_millis(300)).await {
        msg.double_ack().await.unwrap();
    }
    drop(js);
    let store = server.kill_and_take_store();
    let server = TestServer::start_in(store, &[]);
    let js = connect_js(&server).await;
    let stream = js.get_stream("K").await.unwrap();
    let mut consumer: PullConsumer = stream.get_consumer("dur").await.expect("consumer is back");
    let info = consumer.info().await.unwrap().clone();
    assert_eq!(
        (
            info.ack_floor.stream_sequence,
            info.delivered.stream_sequence
        ),
        (4, 4),
        "AckSync-confirmed acks survived kill -9"
    );
    assert_eq!(info.num_pending, 6);
    let rest: Vec<u64> = fetch(&consumer, 10, Duration::from_millis(300))
        .await
        .iter()
        .map(|m| m.info().unwrap().stream_sequence)
        .collect();
    assert_eq!(
        rest,
        [5, 6, 7, 8, 9, 10],
        "delivery resumes where it stopped"
    );
}

/// The event-sourcing pattern of docs/event-sourcing.md: rebuild state from the stream with
/// an ordered consumer up to the last sequence at start, then follow new events.
#[tokio::test]
async fn event_sourcing_rebuild_then_follow() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    let stream = make_stream(
        &js,
        "LEDGER",
        &["ledger.>"],
        stream::RetentionPolicy::Limits,
    )
    .await;
    for (subject, amount) in [
        ("ledger.alice.deposited", 100),
        ("ledger.bob.deposited", 50),
        ("ledger.alice.withdrawn", 30),
    ] {
        js.publish(subject, amount.to_string().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let caught_up_at = stream.get_info().await.unwrap().state.last_sequence;
    let replay = stream
        .create_consumer(push::OrderedConfig {
            deliver_subject: js.client().new_inbox(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut events = replay.messages().await.unwrap();
    let mut balances = std::collections::BTreeMap::<String, i64>::new();
    let mut fold = |subject: &str, payload: &[u8]| {
        let parts: Vec<&str> = subject.split('.').collect();
        let amount: i64 = std::str::from_utf8(payload).unwrap().parse().unwrap();
        *balances.entry(parts[1].to_string()).or_default() += if parts[2] == "deposited" {
            amount
        } else {
            -amount
        };
        balances.clone()
    };
    let mut state;
    loop {
        let event = within("replayed event", events.next())
            .await
            .unwrap()
            .unwrap();
        state = fold(event.subject.as_str(), &event.payload);
        if event.info().unwrap().stream_sequence == caught_up_at {
            break;
        }
    }
    assert_eq!(
        state,
        std::collections::BTreeMap::from([("alice".to_string(), 70), ("bob".to_string(), 50)])
    );
    js.publish("ledger.bob.withdrawn", "20".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let event = within("followed event", events.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fold(event.subject.as_str(), &event.payload)["bob"], 30);
}

/// A consumer reads ahead of what it delivers; a purge or a message delete in between must
/// still keep removed messages from being delivered and keep the pending count exact.
#[tokio::test]
async fn purge_and_delete_between_fetches_are_seen() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    let stream = make_stream(&js, "RA", &["ra.>"], stream::RetentionPolicy::Limits).await;
    for i in 0..40 {
        let subject = if i % 2 == 0 { "ra.even" } else { "ra.odd" };
        let ack = js
            .publish(subject, Bytes::from(format!("m{i}")))
            .await
            .unwrap();
        within("ack", ack.into_future()).await.unwrap();
    }
    let mut consumer: PullConsumer = stream.create_consumer(pull_config("c")).await.unwrap();
    let first = fetch(&consumer, 2, Duration::from_millis(500)).await;
    let seqs: Vec<u64> = first
        .iter()
        .map(|m| m.info().unwrap().stream_sequence)
        .collect();
    assert_eq!(seqs, vec![1, 2]);
    // Remove every odd message, and message 5 by sequence.
    within("purge", stream.purge().filter("ra.odd").into_future())
        .await
        .unwrap();
    assert!(within("delete", stream.delete_message(5)).await.unwrap());
    assert_eq!(consumer.info().await.unwrap().num_pending, 18);
    let rest = fetch(&consumer, 40, Duration::from_millis(500)).await;
    let seqs: Vec<u64> = rest
        .iter()
        .map(|m| m.info().unwrap().stream_sequence)
        .collect();
    let want: Vec<u64> = (3..=39).step_by(2).filter(|s| *s != 5).collect();
    assert_eq!(seqs, want);
    assert_eq!(consumer.info().await.unwrap().num_pending, 0);
}

/// `replay_policy: original` spaces deliveries as the messages were stored, and
/// `rate_limit_bps` spaces them by size; both through a push consumer.
#[tokio::test]
async fn replay_original_and_rate_limit_pace_deliveries() {
    use async_nats::jetstream::consumer::ReplayPolicy;
    use std::time::Instant;

    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    let stream = make_stream(&js, "PACE", &["pace.>"], stream::RetentionPolicy::Limits).await;
    const GAP: Duration = Duration::from_millis(150);
    for i in 0..3 {
        if i > 0 {
            tokio::time::sleep(GAP).await;
        }
        let ack = js
            .publish("pace.a", Bytes::from(vec![b'x'; 100]))
            .await
            .unwrap();
        within("ack", ack.into_future()).await.unwrap();
    }

    async fn arrival_times(
        stream: &stream::Stream,
        config: push::Config,
        n: usize,
    ) -> Vec<Instant> {
        let consumer = stream.create_consumer(config).await.unwrap();
        let mut messages = consumer.messages().await.unwrap();
        let mut times = Vec::new();
        while times.len() < n {
            let msg = within("paced delivery", messages.next())
                .await
                .expect("ended")
                .expect("message");
            msg.ack().await.unwrap();
            times.push(Instant::now());
        }
        times
    }

    let original = arrival_times(
        &stream,
        push::Config {
            deliver_subject: "paced.original".into(),
            replay_policy: ReplayPolicy::Original,
            ..Default::default()
        },
        3,
    )
    .await;
    for pair in original.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= GAP - Duration::from_millis(30),
            "replayed gap {gap:?}"
        );
        assert!(gap < GAP * 4, "replayed gap {gap:?}");
    }

    // 8,000 bits per second and ~106-byte messages: about 106 ms each after the first.
    let started = Instant::now();
    let limited = arrival_times(
        &stream,
        push::Config {
            deliver_subject: "paced.limited".into(),
            rate_limit: 8000,
            ..Default::default()
        },
        3,
    )
    .await;
    let spent = limited[2] - started;
    assert!(
        spent >= Duration::from_millis(180),
        "rate-limited delivery took {spent:?}"
    );
    assert!(
        spent < Duration::from_secs(3),
        "rate-limited delivery took {spent:?}"
    );
}
