//! Server-wide storage limits from the config file (`jetstream { max_file_store }`): a stream
//! whose max_bytes does not fit is refused (10047), a publish past the limit is refused
//! (10023) and the stream keeps serving, and freeing space lets publishing resume.

mod common;

use std::future::IntoFuture;

use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use common::{within, TestServer};

const LIMIT: i64 = 8192;

fn start() -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("limits.conf");
    std::fs::write(&path, format!("jetstream {{ max_file_store: {LIMIT} }}\n")).unwrap();
    let server = TestServer::start(&["-c", path.to_str().unwrap()]);
    (server, dir)
}

async fn js(server: &TestServer) -> jetstream::Context {
    let client = within("connect", async_nats::connect(server.url()))
        .await
        .expect("connect");
    jetstream::new(client)
}

fn config(name: &str, max_bytes: i64) -> stream::Config {
    stream::Config {
        name: name.into(),
        subjects: vec![format!("{}.>", name.to_lowercase())],
        max_bytes,
        ..Default::default()
    }
}

#[tokio::test]
async fn reservations_past_the_limit_are_refused() {
    let (server, _dir) = start();
    let js = js(&server).await;
    within("create A", js.create_stream(config("A", LIMIT / 2)))
        .await
        .expect("fits");
    let err = within("create B", js.create_stream(config("B", LIMIT / 2 + 1)))
        .await
        .expect_err("does not fit");
    assert!(
        err.to_string()
            .contains("insufficient storage resources available"),
        "{err}"
    );
    within("create C", js.create_stream(config("C", LIMIT / 2)))
        .await
        .expect("exactly fits");
    let info: serde_json::Value = within("info", js.request("INFO", &serde_json::json!({})))
        .await
        .expect("account info");
    assert_eq!(info["limits"]["max_storage"], LIMIT);
    assert_eq!(info["limits"]["max_memory"], -1);
}

#[tokio::test]
async fn publishes_past_the_limit_fail_until_space_is_freed() {
    let (server, _dir) = start();
    let js = js(&server).await;
    let mut s = within("create", js.create_stream(config("D", -1)))
        .await
        .expect("create");
    let payload = Bytes::from(vec![b'x'; 200]);
    let mut stored = 0u64;
    let refusal = loop {
        let ack = js.publish("d.x", payload.clone()).await.expect("publish");
        match within("ack", ack.into_future()).await {
            Ok(_) => stored += 1,
            Err(err) => break err,
        }
        assert!(stored < 1000, "the limit never applied");
    };
    assert!(
        refusal.to_string().contains("insufficient resources"),
        "{refusal}"
    );
    let state = within("info", s.info()).await.expect("info").state.clone();
    assert_eq!(state.messages, stored);
    assert!(state.bytes <= LIMIT as u64, "{} bytes stored", state.bytes);
    assert!(
        state.bytes + 250 > LIMIT as u64,
        "stopped early at {} bytes",
        state.bytes
    );
    // Reads keep working; a purge frees the space and publishing resumes.
    assert!(within("get", s.get_raw_message(1)).await.is_ok());
    within("purge", s.purge().into_future())
        .await
        .expect("purge");
    let ack = js.publish("d.x", payload).await.expect("publish");
    within("ack after purge", ack.into_future())
        .await
        .expect("stored again");
}
