//! Helpers the async-nats key-value test files share: a JetStream connection, a bucket, and
//! a bounded wait for a watch's next entry.
#![allow(dead_code)]

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures::StreamExt;

use crate::common::{within, TestServer};

/// How long a watch may take to show an entry that is already stored or just written.
pub const WATCH_WAIT: Duration = Duration::from_secs(5);

pub async fn connect_js(server: &TestServer) -> jetstream::Context {
    let client = within("connect", async_nats::connect(server.url()))
        .await
        .expect("connect");
    jetstream::new(client)
}

/// Creates bucket `name` keeping `history` revisions per key.
pub async fn bucket(js: &jetstream::Context, name: &str, history: i64) -> kv::Store {
    within(
        "create bucket",
        js.create_key_value(kv::Config {
            bucket: name.to_string(),
            history,
            ..Default::default()
        }),
    )
    .await
    .expect("create bucket")
}

/// The next entry of a watch, bounded.
pub async fn next_entry(watch: &mut kv::Watch) -> kv::Entry {
    tokio::time::timeout(WATCH_WAIT, watch.next())
        .await
        .expect("watch entry in time")
        .expect("watch open")
        .expect("watch entry")
}

/// An entry's key, value and operation, for comparing in one assertion.
pub fn value(entry: &kv::Entry) -> (&str, &[u8], kv::Operation) {
    (entry.key.as_str(), entry.value.as_ref(), entry.operation)
}
