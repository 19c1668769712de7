//! A store written by jetlog before accounts existed (`tests/fixtures/store-before-accounts`,
//! made by the release at commit 70dee24: stream ORDERS with `order 1..3` on `orders.1..3`,
//! durable pull consumer BILLING that has acknowledged the first) opens as the global account
//! `$G`, data and consumer state intact. With accounts configured, `$G` has no JetStream: the
//! old streams are not served to any account, and the server says where they are.

mod common;

use std::path::Path;

use common::{within, TestServer};
use futures::StreamExt;

/// A copy of the fixture in a temporary store directory (tests never write to the fixture).
fn old_store() -> tempfile::TempDir {
    let store = tempfile::tempdir().expect("temp dir");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-before-accounts"),
        store.path(),
    );
    store
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("fixture") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

#[tokio::test]
async fn an_old_store_opens_as_the_global_account() {
    let server = TestServer::start_in(old_store(), &[]);
    let client = within("connect", async_nats::connect(server.url()))
        .await
        .expect("connect");
    let js = async_nats::jetstream::new(client);
    let mut stream = within("ORDERS", js.get_stream("ORDERS"))
        .await
        .expect("the old stream");
    let info = stream.info().await.expect("info");
    assert_eq!(info.state.messages, 3);
    assert_eq!(info.config.subjects, vec!["orders.>".to_string()]);
    let last = stream
        .get_last_raw_message_by_subject("orders.3")
        .await
        .expect("the last order");
    assert_eq!(last.payload, bytes::Bytes::from("order 3"));
    let consumer: async_nats::jetstream::consumer::PullConsumer = stream
        .get_consumer("BILLING")
        .await
        .expect("the old consumer");
    let mut batch = consumer
        .fetch()
        .max_messages(1)
        .messages()
        .await
        .expect("fetch");
    let next = within("the next order", batch.next())
        .await
        .expect("a message")
        .expect("no error");
    assert_eq!(
        next.payload,
        bytes::Bytes::from("order 2"),
        "the ack floor was kept"
    );
}

#[tokio::test]
async fn with_accounts_the_old_streams_are_named_and_not_served() {
    let store = old_store();
    let conf = store.path().join("accounts.conf");
    std::fs::write(
        &conf,
        "accounts { APP: { jetstream: enabled, users: [ { user: app, password: pw } ] } }\n",
    )
    .unwrap();
    let server = TestServer::start_in(store, &["-c", conf.to_str().unwrap()]);
    assert!(server.log_contains("holds streams of the global account $G"));
    let client = within(
        "connect",
        async_nats::ConnectOptions::with_user_and_password("app".into(), "pw".into())
            .connect(server.url()),
    )
    .await
    .expect("connect");
    let js = async_nats::jetstream::new(client);
    assert!(js.get_stream("ORDERS").await.is_err());
}
