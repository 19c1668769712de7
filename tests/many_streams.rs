//! More streams than the server may keep files open for (issue 18): the store's descriptor
//! cache holds half of the open-files limit, closes what it cannot keep and reopens it on use,
//! so every stream keeps taking and serving messages, before and after a restart, while the
//! process stays within its limit.

mod common;

use async_nats::jetstream::{self, stream};
use common::process::fd_counts;
use common::TestServer;

/// Bound on each phase: creating the streams and a few hundred acknowledged publishes take
/// about two seconds in a debug build.
const PHASE_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PHASE_LIMIT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out {what}"))
}

/// The open-files limit the server runs under here: room for 64 store files.
const OPEN_FILES_LIMIT: u64 = 128;
/// Store files the server may keep open under that limit (half of it).
const STORE_FILE_BUDGET: usize = 64;
/// Streams, each with a segment and its index: several times what the budget allows.
const STREAMS: usize = 150;

async fn publish_round(js: &jetstream::Context, round: usize) {
    for i in 0..STREAMS {
        let ack = js
            .publish(format!("many.{i}"), format!("{i}-{round}").into())
            .await
            .expect("publish")
            .await
            .expect("ack");
        assert_eq!(ack.sequence, round as u64 + 1, "stream M{i}");
    }
}

async fn assert_all_served(js: &jetstream::Context, rounds: usize) {
    for i in 0..STREAMS {
        let stream = js.get_stream(format!("M{i}")).await.expect("stream");
        for round in 0..rounds {
            let msg = stream
                .get_raw_message(round as u64 + 1)
                .await
                .expect("stored message");
            assert_eq!(&msg.payload[..], format!("{i}-{round}").as_bytes());
        }
    }
}

fn assert_within_budget(server: &TestServer) {
    let fds = fd_counts(server.pid());
    // Segments are counted by name; their index files share the same budget.
    assert!(
        fds.segments <= STORE_FILE_BUDGET,
        "{} segment files open with room for {STORE_FILE_BUDGET}: {fds:?}",
        fds.segments
    );
    assert!(fds.total < OPEN_FILES_LIMIT as usize, "{fds:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_streams_than_open_files_all_take_and_serve_messages_across_a_restart() {
    let store = tempfile::tempdir().expect("store");
    let server = TestServer::start_with_open_files_limit(OPEN_FILES_LIMIT, store, &[]);
    let client = async_nats::connect(server.url()).await.expect("connect");
    let js = jetstream::new(client);
    within("creating streams", async {
        for i in 0..STREAMS {
            js.create_stream(stream::Config {
                name: format!("M{i}"),
                subjects: vec![format!("many.{i}")],
                allow_direct: true,
                ..Default::default()
            })
            .await
            .expect("create");
        }
        publish_round(&js, 0).await;
        publish_round(&js, 1).await;
    })
    .await;
    assert_within_budget(&server);
    within("reading back", assert_all_served(&js, 2)).await;
    assert_within_budget(&server);

    let store = server.store_handoff();
    let server = TestServer::start_with_open_files_limit(OPEN_FILES_LIMIT, store, &[]);
    let client = async_nats::connect(server.url()).await.expect("reconnect");
    let js = jetstream::new(client);
    within("after the restart", async {
        assert_all_served(&js, 2).await;
        publish_round(&js, 2).await;
        assert_all_served(&js, 3).await;
    })
    .await;
    assert_within_budget(&server);
}

/// Streams with a message and a consumer each, for the restart test.
const RESTARTED_STREAMS: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_every_stream_serves_from_the_first_request() {
    let server = TestServer::start(&[]);
    let client = async_nats::connect(server.url()).await.expect("connect");
    let js = jetstream::new(client);
    within("creating streams", async {
        for i in 0..RESTARTED_STREAMS {
            let stream = js
                .create_stream(stream::Config {
                    name: format!("R{i}"),
                    subjects: vec![format!("restart.{i}")],
                    ..Default::default()
                })
                .await
                .expect("create");
            js.publish(format!("restart.{i}"), "first".into())
                .await
                .expect("publish")
                .await
                .expect("ack");
            stream
                .create_consumer(jetstream::consumer::pull::Config {
                    durable_name: Some(format!("C{i}")),
                    ..Default::default()
                })
                .await
                .expect("consumer");
        }
    })
    .await;
    let store = server.store_handoff();
    let server = TestServer::start_in(store, &[]);
    // The first requests go to the streams opened last, most likely still opening: each must
    // wait for its stream rather than find none.
    let client = async_nats::connect(server.url()).await.expect("reconnect");
    let js = jetstream::new(client);
    within("the first requests after the restart", async {
        for i in (0..RESTARTED_STREAMS).rev().step_by(37) {
            let ack = js
                .publish(format!("restart.{i}"), "second".into())
                .await
                .expect("publish")
                .await
                .expect("ack");
            assert_eq!(ack.sequence, 2, "R{i}");
            let stream = js.get_stream(format!("R{i}")).await.expect("info");
            let consumer: jetstream::consumer::PullConsumer = stream
                .get_consumer(&format!("C{i}"))
                .await
                .expect("consumer");
            let mut batch = consumer
                .fetch()
                .max_messages(2)
                .expires(std::time::Duration::from_secs(5))
                .messages()
                .await
                .expect("fetch");
            use futures::StreamExt;
            for want in ["first", "second"] {
                let msg = batch.next().await.expect("a message").expect("ok");
                assert_eq!(&msg.payload[..], want.as_bytes(), "R{i}");
            }
        }
        // A create waits for every stream to be open, then checks overlaps against all.
        let err = js
            .create_stream(stream::Config {
                name: "OVERLAP".into(),
                subjects: vec!["restart.>".into()],
                ..Default::default()
            })
            .await
            .expect_err("overlaps every stream");
        assert!(err.to_string().contains("overlap"), "{err}");
    })
    .await;
    let deadline = std::time::Instant::now() + PHASE_LIMIT;
    while !server.log_contains(&format!("{RESTARTED_STREAMS} streams opened in")) {
        assert!(
            std::time::Instant::now() < deadline,
            "no startup time logged"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_cannot_be_opened_is_logged_and_the_others_serve() {
    let server = TestServer::start(&[]);
    let client = async_nats::connect(server.url()).await.expect("connect");
    let js = jetstream::new(client);
    within("creating streams", async {
        for name in ["GOOD", "BROKEN"] {
            js.create_stream(stream::Config {
                name: name.into(),
                subjects: vec![format!("{}.>", name.to_lowercase())],
                ..Default::default()
            })
            .await
            .expect("create");
            js.publish(format!("{}.a", name.to_lowercase()), "kept".into())
                .await
                .expect("publish")
                .await
                .expect("ack");
        }
    })
    .await;
    let store = server.store_handoff();
    // A file where the stream's directory should be: its log cannot be opened.
    let dir = store.path().join("streams").join("BROKEN");
    std::fs::rename(&dir, store.path().join("BROKEN.moved")).expect("move the directory away");
    std::fs::write(&dir, b"not a directory").expect("write a file in its place");
    let server = TestServer::start_in(store, &[]);
    let client = async_nats::connect(server.url()).await.expect("reconnect");
    let js = jetstream::new(client);
    within("the good stream after the restart", async {
        let ack = js
            .publish("good.b", "second".into())
            .await
            .expect("publish")
            .await
            .expect("ack");
        assert_eq!(ack.sequence, 2);
        let err = js.get_stream("BROKEN").await.expect_err("not opened");
        assert!(err.to_string().contains("stream not found"), "{err}");
    })
    .await;
    assert!(
        server.logs_within(
            "cannot open stream BROKEN",
            std::time::Duration::from_secs(5)
        ),
        "the failure is logged"
    );
}

/// Streams published to in the kill test, over a descriptor budget of 64.
const KILLED_STREAMS: usize = 100;
/// Publishes in flight at once in the kill test.
const IN_FLIGHT: usize = 64;

/// kill -9 while publishes to more streams than the cache keeps open are in flight: every
/// acknowledged message is there after the restart. The cache closes files with unsynced
/// writes in them; the acknowledgement still comes only after an fdatasync that covers them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_kill_9_while_the_cache_evicts() {
    let store = tempfile::tempdir().expect("store");
    let server = TestServer::start_with_open_files_limit(OPEN_FILES_LIMIT, store, &[]);
    let client = async_nats::connect(server.url()).await.expect("connect");
    let js = jetstream::new(client);
    let mut acked: Vec<(usize, u64, String)> = Vec::new();
    within("creating and publishing", async {
        for i in 0..KILLED_STREAMS {
            js.create_stream(stream::Config {
                name: format!("K{i}"),
                subjects: vec![format!("kill.{i}")],
                ..Default::default()
            })
            .await
            .expect("create");
        }
        // Batches across all streams, each fully acknowledged, until enough are on record;
        // then one more batch in flight when the server dies.
        let mut n = 0usize;
        for round in 0..12 {
            let mut pending = Vec::new();
            for _ in 0..IN_FLIGHT {
                let stream = n % KILLED_STREAMS;
                let payload = format!("m{n}");
                n += 1;
                let ack = js
                    .publish(format!("kill.{stream}"), payload.clone().into())
                    .await
                    .expect("publish");
                pending.push((stream, payload, ack));
            }
            if round == 11 {
                break;
            }
            for (stream, payload, ack) in pending {
                let ack = ack.await.expect("ack");
                acked.push((stream, ack.sequence, payload));
            }
        }
    })
    .await;
    let store = server.kill_and_take_store();
    let server = TestServer::start_with_open_files_limit(OPEN_FILES_LIMIT, store, &[]);
    let client = async_nats::connect(server.url()).await.expect("reconnect");
    let js = jetstream::new(client);
    within("checking after the restart", async {
        for (stream, seq, payload) in &acked {
            let msg = js
                .get_stream(format!("K{stream}"))
                .await
                .expect("stream")
                .get_raw_message(*seq)
                .await
                .unwrap_or_else(|e| panic!("K{stream} seq {seq} acknowledged and lost: {e}"));
            assert_eq!(&msg.payload[..], payload.as_bytes(), "K{stream} seq {seq}");
        }
    })
    .await;
    assert!(acked.len() >= 11 * IN_FLIGHT);
    assert_within_budget(&server);
}
