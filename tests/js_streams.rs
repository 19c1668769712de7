//! JetStream streams through the async-nats client: the API, the durable publish path, and
//! restarts.

mod common;

use std::future::IntoFuture;
use std::time::Duration;

use async_nats::jetstream::{self, context::PublishErrorKind, stream};
use bytes::Bytes;
use common::{within, TestServer};
use futures::TryStreamExt;

async fn connect_js(server: &TestServer) -> jetstream::Context {
    let client = within("connect", async_nats::connect(server.url()))
        .await
        .expect("connect");
    jetstream::new(client)
}

fn config(name: &str, subjects: &[&str]) -> stream::Config {
    stream::Config {
        name: name.to_string(),
        subjects: subjects.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

async fn publish(js: &jetstream::Context, subject: &str, payload: &str) -> u64 {
    let ack = within(
        "publish",
        js.publish(
            subject.to_string(),
            Bytes::copy_from_slice(payload.as_bytes()),
        ),
    )
    .await
    .expect("publish sent");
    within("ack", ack.into_future())
        .await
        .expect("acked")
        .sequence
}

#[tokio::test]
async fn create_info_publish_get_and_delete_a_stream() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    let mut s = js
        .create_stream(config("ORDERS", &["orders.>"]))
        .await
        .expect("create");
    let info = s.info().await.unwrap().clone();
    assert_eq!(info.config.name, "ORDERS");
    assert_eq!(info.config.max_messages, -1);
    assert_eq!(info.config.duplicate_window, Duration::from_secs(120));
    assert_eq!(info.state.messages, 0);

    assert_eq!(publish(&js, "orders.eu.1", "first").await, 1);
    assert_eq!(publish(&js, "orders.us.2", "second").await, 2);

    let info = s.info().await.unwrap().clone();
    assert_eq!(
        (
            info.state.messages,
            info.state.first_sequence,
            info.state.last_sequence
        ),
        (2, 1, 2)
    );
    let msg = s.get_raw_message(2).await.unwrap();
    assert_eq!(
        (msg.subject.as_str(), msg.payload.as_ref()),
        ("orders.us.2", &b"second"[..])
    );
    let last = s
        .get_last_raw_message_by_subject("orders.eu.1")
        .await
        .unwrap();
    assert_eq!(last.sequence, 1);
    assert!(
        s.get_raw_message(9).await.is_err(),
        "missing message is an error"
    );

    let names: Vec<String> = js.stream_names().try_collect().await.unwrap();
    assert_eq!(names, ["ORDERS"]);
    assert!(js.delete_stream("ORDERS").await.unwrap().success);
    assert!(js.get_stream("ORDERS").await.is_err());
    // With the stream gone nobody captures the subject: publishing fails fast.
    let err = js
        .publish("orders.eu.3", Bytes::new())
        .await
        .unwrap()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), PublishErrorKind::StreamNotFound, "{err}");
}

#[tokio::test]
async fn create_is_idempotent_and_conflicts_are_refused() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    js.create_stream(config("A", &["a.>"])).await.unwrap();
    js.create_stream(config("A", &["a.>"]))
        .await
        .expect("same config again is fine");
    let err = js.create_stream(config("A", &["other"])).await.unwrap_err();
    assert!(err.to_string().contains("10058"), "{err}");
    let err = js.create_stream(config("B", &["a.b"])).await.unwrap_err();
    assert!(err.to_string().contains("10065"), "{err}");
}

#[tokio::test]
async fn message_ids_deduplicate() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    js.create_stream(config("D", &["d"])).await.unwrap();
    let publish = |id: &'static str| {
        let js = js.clone();
        async move {
            js.send_publish(
                "d",
                jetstream::message::PublishMessage::build()
                    .payload("x".into())
                    .message_id(id),
            )
            .await
            .unwrap()
            .await
            .unwrap()
        }
    };
    let first = publish("id-1").await;
    let again = publish("id-1").await;
    assert_eq!((first.sequence, first.duplicate), (1, false));
    assert_eq!((again.sequence, again.duplicate), (1, true));
    assert_eq!(publish("id-2").await.sequence, 2);
}

#[tokio::test]
async fn expectation_headers_are_enforced() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    js.create_stream(config("E", &["e.*"])).await.unwrap();
    let send = |subject: &'static str, publish: jetstream::message::PublishMessage| {
        let js = js.clone();
        async move { js.send_publish(subject, publish).await.unwrap().await }
    };
    let build = || jetstream::message::PublishMessage::build().payload("v".into());
    assert_eq!(send("e.a", build()).await.unwrap().sequence, 1);
    assert_eq!(
        send("e.b", build().expected_last_sequence(1))
            .await
            .unwrap()
            .sequence,
        2
    );
    let err = send("e.b", build().expected_last_sequence(1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), PublishErrorKind::WrongLastSequence);
    assert!(send("e.a", build().expected_last_subject_sequence(1))
        .await
        .is_ok());
    let err = send("e.a", build().expected_last_subject_sequence(1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), PublishErrorKind::WrongLastSequence);
    assert!(send("e.a", build().expected_stream("E")).await.is_ok());
    assert!(send("e.a", build().expected_stream("X")).await.is_err());
    assert!(send("e.a", build().message_id("m1")).await.is_ok());
    assert!(send("e.a", build().expected_last_message_id("m1"))
        .await
        .is_ok());
    let err = send("e.a", build().expected_last_message_id("m1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), PublishErrorKind::WrongLastMessageId);
}

#[tokio::test]
async fn limits_apply_through_the_api() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    let mut cfg = config("L", &["l.*"]);
    cfg.max_messages = 3;
    let mut s = js.create_stream(cfg).await.unwrap();
    for i in 0..5 {
        publish(&js, "l.x", &i.to_string()).await;
    }
    let info = s.info().await.unwrap().clone();
    assert_eq!(
        (
            info.state.messages,
            info.state.first_sequence,
            info.state.last_sequence
        ),
        (3, 3, 5)
    );

    let mut cfg = config("N", &["n.*"]);
    cfg.max_messages = 1;
    cfg.discard = stream::DiscardPolicy::New;
    js.create_stream(cfg).await.unwrap();
    publish(&js, "n.x", "1").await;
    let err = js
        .publish("n.x", "2".into())
        .await
        .unwrap()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("maximum messages exceeded"),
        "{err}"
    );

    let mut cfg = config("P", &["p.*"]);
    cfg.max_messages_per_subject = 1;
    let mut s = js.create_stream(cfg).await.unwrap();
    for subject in ["p.a", "p.a", "p.b"] {
        publish(&js, subject, "v").await;
    }
    assert_eq!(s.info().await.unwrap().state.messages, 2);
}

#[tokio::test]
async fn purge_and_delete_message() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    let mut s = js.create_stream(config("PG", &["pg.*"])).await.unwrap();
    for subject in ["pg.a", "pg.b", "pg.a", "pg.b", "pg.a"] {
        publish(&js, subject, "v").await;
    }
    assert!(s.delete_message(2).await.unwrap());
    assert!(
        s.delete_message(2).await.is_err(),
        "deleting twice reports not found"
    );
    assert_eq!(s.purge().filter("pg.a").keep(1).await.unwrap().purged, 2);
    assert_eq!(s.info().await.unwrap().state.messages, 2);
    assert_eq!(s.purge().await.unwrap().purged, 2);
    let info = s.info().await.unwrap().clone();
    assert_eq!(
        (
            info.state.messages,
            info.state.first_sequence,
            info.state.last_sequence
        ),
        (0, 6, 5)
    );
}

#[tokio::test]
async fn direct_get_when_allowed() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    let mut cfg = config("DG", &["dg.*"]);
    cfg.allow_direct = true;
    let s = js.create_stream(cfg).await.unwrap();
    publish(&js, "dg.a", "one").await;
    publish(&js, "dg.a", "two").await;
    let msg = s.direct_get(1).await.unwrap();
    assert_eq!((msg.sequence, msg.payload.as_ref()), (1, &b"one"[..]));
    let last = s.direct_get_last_for_subject("dg.a").await.unwrap();
    assert_eq!(last.payload, "two");
    assert!(s.direct_get(99).await.is_err());
}

#[tokio::test]
async fn account_info_counts_streams() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    js.create_stream(config("AI", &["ai"])).await.unwrap();
    publish(&js, "ai", "payload").await;
    let account = js.query_account().await.unwrap();
    assert_eq!(account.streams, 1);
    assert!(account.storage > 0);
}

#[tokio::test]
async fn streams_and_messages_survive_a_restart() {
    let store = tempfile::tempdir().unwrap();
    let store_path = store.path().to_path_buf();
    let server = TestServer::start_in(store, &[]);
    let js = connect_js(&server).await;
    let mut cfg = config("R", &["r.>"]);
    cfg.max_messages_per_subject = 10;
    js.create_stream(cfg).await.unwrap();
    for i in 1..=20u64 {
        assert_eq!(publish(&js, "r.x", &i.to_string()).await, i);
    }
    let store = server.store_handoff();
    drop(js);
    let server = TestServer::start_in(store, &[]);
    assert!(store_path.exists());
    let js = connect_js(&server).await;
    let mut s = js.get_stream("R").await.expect("stream is back");
    let info = s.info().await.unwrap().clone();
    assert_eq!(info.config.max_messages_per_subject, 10);
    assert_eq!(
        (
            info.state.messages,
            info.state.first_sequence,
            info.state.last_sequence
        ),
        (10, 11, 20)
    );
    assert_eq!(publish(&js, "r.x", "21").await, 21);
}

#[tokio::test]
async fn acknowledged_publishes_survive_kill_9() {
    let iterations: usize = std::env::var("JETLOG_JS_KILL_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let mut store = tempfile::tempdir().unwrap();
    let mut acked = 0u64;
    for round in 0..iterations {
        let server = TestServer::start_in(store, &[]);
        let js = connect_js(&server).await;
        if round == 0 {
            js.create_stream(config("K", &["k"])).await.unwrap();
        }
        let mut s = js.get_stream("K").await.expect("stream survives");
        let info = s.info().await.unwrap().clone();
        assert!(
            info.state.last_sequence >= acked,
            "round {round}: acknowledged messages lost ({} < {acked})",
            info.state.last_sequence
        );
        assert_eq!(info.state.messages, info.state.last_sequence, "no gaps");
        // Publish asynchronously, count what was acknowledged, then kill without warning.
        let mut pending = Vec::new();
        for i in 0..200 {
            pending.push(
                js.publish("k", Bytes::from(format!("{round}-{i}")))
                    .await
                    .unwrap(),
            );
        }
        for ack in pending {
            acked = acked.max(within("ack", ack.into_future()).await.unwrap().sequence);
        }
        store = server.kill_and_take_store();
    }
    let server = TestServer::start_in(store, &[]);
    let js = connect_js(&server).await;
    let mut s = js.get_stream("K").await.unwrap();
    assert_eq!(s.info().await.unwrap().state.last_sequence, acked);
}

#[tokio::test]
async fn memory_streams_work_and_start_empty_after_restart() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    let mut cfg = config("MEM", &["mem.>"]);
    cfg.storage = stream::StorageType::Memory;
    let mut s = js.create_stream(cfg).await.unwrap();
    assert_eq!(publish(&js, "mem.a", "x").await, 1);
    assert_eq!(
        s.info().await.unwrap().config.storage,
        stream::StorageType::Memory
    );
    assert!(js.query_account().await.unwrap().memory > 0);
    let store = server.store_handoff();
    let server = TestServer::start_in(store, &[]);
    let js = connect_js(&server).await;
    let mut s = js.get_stream("MEM").await.expect("the config survives");
    assert_eq!(
        s.info().await.unwrap().state.messages,
        0,
        "memory data does not"
    );
}

#[tokio::test]
async fn max_age_expires_messages_without_new_publishes() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    let mut cfg = config("AGE", &["age"]);
    cfg.max_age = Duration::from_millis(300);
    let mut s = js.create_stream(cfg).await.unwrap();
    publish(&js, "age", "old").await;
    assert_eq!(s.info().await.unwrap().state.messages, 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let info = s.info().await.unwrap().clone();
        if info.state.messages == 0 {
            assert_eq!(info.state.first_sequence, 2);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "message did not expire"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
