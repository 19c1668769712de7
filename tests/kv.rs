//! Key-value buckets through the async-nats `kv` API, unchanged: a bucket is the stream
//! `KV_<bucket>` and every operation below is whatever that client sends (facts sheet §6.1).

mod common;
mod kv_support;

use std::time::Duration;

use async_nats::jetstream::{
    self,
    kv::{self, CreateErrorKind, Operation, UpdateErrorKind},
    stream::DiscardPolicy,
};
use bytes::Bytes;
use common::{within, TestServer};
use futures::{StreamExt, TryStreamExt};
use kv_support::{bucket, connect_js};

#[tokio::test]
async fn bucket_is_a_stream_with_the_kv_conventions() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    let bucket_config = kv::Config {
        bucket: "CONF".into(),
        history: 5,
        max_age: Duration::from_secs(60),
        ..Default::default()
    };
    let store = within("create", js.create_key_value(bucket_config.clone()))
        .await
        .expect("create");
    let mut stream = js.get_stream("KV_CONF").await.expect("stream exists");
    let config = stream.info().await.expect("info").config.clone();
    assert_eq!(config.subjects, vec!["$KV.CONF.>".to_string()]);
    assert_eq!(config.max_messages_per_subject, 5);
    assert_eq!(config.max_age, Duration::from_secs(60));
    assert!(config.allow_rollup && config.deny_delete && config.allow_direct);
    assert_eq!(config.discard, DiscardPolicy::New);
    // The duplicate window follows a TTL shorter than the 2 minute default.
    assert_eq!(config.duplicate_window, Duration::from_secs(60));

    let status = store.status().await.expect("status");
    assert_eq!(
        (status.bucket(), status.history(), status.max_age()),
        ("CONF", 5, Duration::from_secs(60))
    );

    // Creating the same bucket again is idempotent; with another history it is refused.
    within("again", js.create_key_value(bucket_config))
        .await
        .expect("same config");
    let other = within(
        "other",
        js.create_key_value(kv::Config {
            bucket: "CONF".into(),
            history: 2,
            ..Default::default()
        }),
    )
    .await;
    assert!(
        other.is_err(),
        "a bucket cannot be re-created with another config"
    );
    let bound = js.get_key_value("CONF").await.expect("bind");
    assert_eq!(bound.stream_name, "KV_CONF");
    assert!(js.get_key_value("MISSING").await.is_err());
}

#[tokio::test]
async fn put_get_and_entry_through_direct_get() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    let store = bucket(&js, "APP", 1).await;

    assert_eq!(store.put("color", "red".into()).await.expect("put"), 1);
    assert_eq!(store.put("size", "xl".into()).await.expect("put"), 2);
    assert_eq!(store.put("color", "blue".into()).await.expect("put"), 3);

    let got = store.get("color").await.expect("get");
    assert_eq!(got, Some(Bytes::from_static(b"blue")));
    assert_eq!(store.get("absent").await.expect("get"), None);
    let entry = store.entry("size").await.expect("entry").expect("present");
    assert_eq!((entry.revision, entry.value.as_ref()), (2, &b"xl"[..]));
    // A key under another key's name as a prefix is its own subject.
    assert_eq!(store.get("colo").await.expect("get"), None);

    let old = store.entry_for_revision("color", 3).await.expect("rev");
    assert_eq!(old.map(|e| e.value), Some(Bytes::from_static(b"blue")));
    // A revision that belongs to another key is not this key's entry.
    let other = store.entry_for_revision("color", 2).await.expect("rev");
    assert!(other.is_none());

    // Dotted keys are subjects with several tokens.
    store.put("a.b.c", "deep".into()).await.expect("put");
    let deep = store.get("a.b.c").await.expect("get");
    assert_eq!(deep, Some(Bytes::from_static(b"deep")));
}

#[tokio::test]
async fn get_without_direct_uses_message_get() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    bucket(&js, "NODIRECT", 3).await;
    let mut stream = js.get_stream("KV_NODIRECT").await.expect("stream");
    let mut config = stream.info().await.expect("info").config.clone();
    config.allow_direct = false;
    js.update_stream(config).await.expect("turn direct get off");

    let store = js.get_key_value("NODIRECT").await.expect("bind");
    assert!(!store.stream.cached_info().config.allow_direct);
    store.put("k", "one".into()).await.expect("put");
    store.put("k", "two".into()).await.expect("put");
    let entry = store.entry("k").await.expect("entry").expect("present");
    assert_eq!((entry.revision, entry.value.as_ref()), (2, &b"two"[..]));
    let first = store.entry_for_revision("k", 1).await.expect("rev");
    assert_eq!(first.map(|e| e.value), Some(Bytes::from_static(b"one")));
    assert_eq!(store.get("none").await.expect("get"), None);

    store.delete("k").await.expect("delete");
    assert_eq!(store.get("k").await.expect("get"), None);
    let marker = store.entry("k").await.expect("entry").expect("marker");
    assert_eq!(marker.operation, Operation::Delete);
}

#[tokio::test]
async fn create_only_if_absent_and_update_on_revision() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    let store = bucket(&js, "CAS", 5).await;

    let first = store.create("lock", "a".into()).await.expect("create");
    let again = store.create("lock", "b".into()).await.expect_err("exists");
    assert_eq!(again.kind(), CreateErrorKind::AlreadyExists);

    let second = store
        .update("lock", "a2".into(), first)
        .await
        .expect("update on the current revision");
    assert!(second > first);
    let stale = store
        .update("lock", "b2".into(), first)
        .await
        .expect_err("stale revision");
    assert_eq!(stale.kind(), UpdateErrorKind::WrongLastRevision);
    // Revision 0 means "no value yet", which is false now.
    let zero = store
        .update("lock", "c".into(), 0)
        .await
        .expect_err("exists");
    assert_eq!(zero.kind(), UpdateErrorKind::WrongLastRevision);
    assert_eq!(
        store.get("lock").await.expect("get"),
        Some(Bytes::from_static(b"a2"))
    );

    // Deletes and purges can be conditional on the revision too.
    let stale_delete = store.delete_expect_revision("lock", Some(first)).await;
    assert!(
        stale_delete.is_err(),
        "a delete on a stale revision is refused"
    );
    assert_eq!(
        store.get("lock").await.expect("get"),
        Some(Bytes::from_static(b"a2"))
    );

    // A deleted key can be created again, and a purged one too.
    store.delete("lock").await.expect("delete");
    let recreated = store.create("lock", "c".into()).await.expect("re-create");
    assert!(recreated > second);
    store.purge("lock").await.expect("purge");
    store
        .create("lock", "d".into())
        .await
        .expect("create after purge");
    assert_eq!(
        store.get("lock").await.expect("get"),
        Some(Bytes::from_static(b"d"))
    );
}

#[tokio::test]
async fn delete_and_purge_leave_markers() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    let store = bucket(&js, "MARK", 10).await;
    for v in ["1", "2", "3"] {
        store.put("k", Bytes::from(v)).await.expect("put");
    }
    store.delete("k").await.expect("delete");
    let marker = store.entry("k").await.expect("entry").expect("marker");
    assert_eq!((marker.operation, marker.revision), (Operation::Delete, 4));
    assert!(marker.value.is_empty());
    assert_eq!(store.get("k").await.expect("get"), None);
    // A delete keeps history: all four revisions are there.
    let history: Vec<_> = within(
        "history",
        store.history("k").await.expect("history").try_collect(),
    )
    .await
    .expect("entries");
    assert_eq!(history.len(), 4);

    // A purge is a rollup: only the purge marker remains for the key.
    store.put("other", "x".into()).await.expect("put");
    store.purge("k").await.expect("purge");
    let history: Vec<kv::Entry> = within(
        "history",
        store.history("k").await.expect("history").try_collect(),
    )
    .await
    .expect("entries");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].operation, Operation::Purge);
    assert_eq!(
        store.get("other").await.expect("get"),
        Some(Bytes::from_static(b"x"))
    );
    // deny_delete only blocks the message delete API, not KV deletes; the API refuses it.
    let mut stream = js.get_stream("KV_MARK").await.expect("stream");
    assert!(stream.delete_message(1).await.is_err());
    assert_eq!(stream.info().await.expect("info").state.messages, 2);
}

#[tokio::test]
async fn history_is_bounded_by_the_bucket_history() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    let store = bucket(&js, "HIST", 3).await;
    for i in 1..=5 {
        store
            .put("k", Bytes::from(format!("v{i}")))
            .await
            .expect("put");
    }
    store.put("j", "only".into()).await.expect("put");
    let history: Vec<kv::Entry> = within(
        "history",
        store.history("k").await.expect("history").try_collect(),
    )
    .await
    .expect("entries");
    let values: Vec<_> = history.iter().map(|e| e.value.clone()).collect();
    assert_eq!(values, vec!["v3", "v4", "v5"]);
    let revisions: Vec<_> = history.iter().map(|e| e.revision).collect();
    assert_eq!(revisions, vec![3, 4, 5]);

    // Discard new does not refuse a put past the history: the oldest revision goes instead.
    let status = js.get_key_value("HIST").await.expect("bind").status().await;
    assert_eq!(status.expect("status").values(), 4);

    let empty = within(
        "history",
        store.history("none").await.expect("history").count(),
    )
    .await;
    assert_eq!(empty, 0);
}

#[tokio::test]
async fn keys_lists_live_keys_only() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    let store = bucket(&js, "KEYS", 5).await;
    let none: Vec<String> = within("keys", store.keys().await.expect("keys").try_collect())
        .await
        .expect("keys");
    assert!(none.is_empty());

    for key in ["b", "a", "c", "a", "d.e"] {
        store.put(key, "v".into()).await.expect("put");
    }
    store.delete("c").await.expect("delete");
    let mut keys: Vec<String> = within("keys", store.keys().await.expect("keys").try_collect())
        .await
        .expect("keys");
    keys.sort();
    assert_eq!(keys, vec!["a", "b", "d.e"]);
}

/// Bucket names the way nats.go lists them: `STREAM.NAMES` filtered by subject on the server,
/// then the `KV_` streams.
async fn bucket_names(js: &jetstream::Context) -> Vec<String> {
    let reply = within(
        "names",
        js.request::<_, _, serde_json::Value>(
            "STREAM.NAMES",
            &serde_json::json!({"subject": "$KV.*.>"}),
        ),
    )
    .await
    .expect("names");
    let mut names: Vec<String> = reply["streams"]
        .as_array()
        .expect("stream names")
        .iter()
        .filter_map(|n| n.as_str()?.strip_prefix("KV_").map(str::to_string))
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn value_and_bucket_size_limits_refuse_puts() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    let store = within(
        "create",
        js.create_key_value(kv::Config {
            bucket: "SMALL".into(),
            max_value_size: 16,
            max_bytes: 1024,
            ..Default::default()
        }),
    )
    .await
    .expect("create");
    store
        .put("ok", Bytes::from(vec![b'x'; 16]))
        .await
        .expect("fits");
    let too_big = store.put("big", Bytes::from(vec![b'x'; 17])).await;
    assert!(too_big.is_err(), "a value over max_value_size is refused");
    assert_eq!(store.get("big").await.expect("get"), None);
    // Discard new: once the bucket is full, new keys are refused rather than old ones lost.
    let mut refused = false;
    for i in 0..64 {
        if store
            .put(format!("k{i}"), Bytes::from(vec![b'y'; 16]))
            .await
            .is_err()
        {
            refused = true;
            break;
        }
    }
    assert!(refused, "a full bucket refuses new values");
    assert!(
        store.get("ok").await.expect("get").is_some(),
        "nothing old was dropped"
    );
}

#[tokio::test]
async fn bucket_list_and_delete() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    bucket(&js, "ONE", 1).await;
    bucket(&js, "TWO", 1).await;
    // A plain stream is not a bucket.
    js.create_stream(jetstream::stream::Config {
        name: "PLAIN".into(),
        subjects: vec!["plain.>".into()],
        ..Default::default()
    })
    .await
    .expect("stream");
    assert_eq!(bucket_names(&js).await, vec!["ONE", "TWO"]);

    js.delete_key_value("ONE").await.expect("delete bucket");
    assert!(js.get_key_value("ONE").await.is_err());
    assert!(js.get_stream("KV_ONE").await.is_err());
    assert_eq!(bucket_names(&js).await, vec!["TWO"]);
}

#[tokio::test]
async fn values_expire_after_the_bucket_ttl() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    let ttl = Duration::from_millis(500);
    let store = within(
        "create",
        js.create_key_value(kv::Config {
            bucket: "TTL".into(),
            max_age: ttl,
            ..Default::default()
        }),
    )
    .await
    .expect("create");
    store.put("session", "alive".into()).await.expect("put");
    assert!(store.get("session").await.expect("get").is_some());

    // Expiry runs on the 50 ms upkeep tick; allow several ticks past the TTL.
    let deadline = tokio::time::Instant::now() + ttl * 6;
    loop {
        if store.get("session").await.expect("get").is_none() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the value outlived its TTL"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Once expired the key is absent, so create succeeds again.
    store.create("session", "new".into()).await.expect("create");
}

#[tokio::test]
async fn concurrent_creates_have_exactly_one_winner() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    let store = bucket(&js, "RACE", 1).await;
    const CONTENDERS: usize = 16;
    // Separate connections, so the creates arrive interleaved and in one group commit.
    let mut tasks = Vec::new();
    for i in 0..CONTENDERS {
        let client = within("connect", async_nats::connect(server.url()))
            .await
            .expect("connect");
        let store = jetstream::new(client)
            .get_key_value("RACE")
            .await
            .expect("bind");
        tasks.push(tokio::spawn(async move {
            store.create("leader", Bytes::from(format!("c{i}"))).await
        }));
    }
    let mut winners = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        match within("create", task).await.expect("task") {
            Ok(revision) => winners.push((i, revision)),
            Err(err) => assert_eq!(err.kind(), CreateErrorKind::AlreadyExists),
        }
    }
    assert_eq!(winners.len(), 1, "one create wins: {winners:?}");
    let (winner, revision) = winners[0];
    let entry = store.entry("leader").await.expect("entry").expect("set");
    assert_eq!(entry.revision, revision);
    assert_eq!(entry.value, Bytes::from(format!("c{winner}")));
}

#[tokio::test]
async fn buckets_survive_a_restart() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    let store = bucket(&js, "DURABLE", 3).await;
    store.put("a", "1".into()).await.expect("put");
    store.put("a", "2".into()).await.expect("put");
    store.put("b", "3".into()).await.expect("put");
    store.delete("b").await.expect("delete");
    drop(js);

    let server = TestServer::start_in(server.store_handoff(), &[]);
    let js = connect_js(&server).await;
    let store = js
        .get_key_value("DURABLE")
        .await
        .expect("bind after restart");
    assert_eq!(
        store.get("a").await.expect("get"),
        Some(Bytes::from_static(b"2"))
    );
    assert_eq!(store.get("b").await.expect("get"), None);
    let history: Vec<kv::Entry> = within(
        "history",
        store.history("a").await.expect("history").try_collect(),
    )
    .await
    .expect("entries");
    assert_eq!(history.len(), 2);
    // Compare-and-set state is rebuilt from the log: the next revision is 5.
    let next = store.update("a", "3".into(), 2).await.expect("update");
    assert_eq!(next, 5);
}
