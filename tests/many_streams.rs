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
