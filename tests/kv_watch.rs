//! Watching key-value buckets through async-nats, unchanged: every watch is an ordered push
//! consumer (flow control, heartbeats, no acks) on `$KV.<bucket>.<key>`, starting with the
//! latest value per key, with changes only, or from a revision (facts sheet §5.7, §6.1).
//! Order, catch-up marking and filters are what the server must get exactly right.

mod common;
mod kv_support;

use async_nats::jetstream::kv::Operation;
use bytes::Bytes;
use common::TestServer;
use kv_support::{bucket, connect_js, next_entry, value};

#[tokio::test]
async fn watch_all_sees_updates_in_order() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    let store = bucket(&js, "WATCH", 5).await;
    store.put("before", "old".into()).await.expect("put");

    // `watch_all` is updates-only: the value stored before it started is not delivered.
    let mut watch = store.watch_all().await.expect("watch");
    let writes = [("a", "1"), ("b", "2"), ("a", "3"), ("c.d", "4")];
    for (key, v) in writes {
        store.put(key, Bytes::from(v)).await.expect("put");
    }
    store.delete("b").await.expect("delete");
    store.purge("a").await.expect("purge");

    let mut seen = Vec::new();
    for _ in 0..6 {
        let entry = next_entry(&mut watch).await;
        seen.push((entry.revision, entry.key.clone(), entry.operation));
    }
    let expected = vec![
        (2, "a".to_string(), Operation::Put),
        (3, "b".to_string(), Operation::Put),
        (4, "a".to_string(), Operation::Put),
        (5, "c.d".to_string(), Operation::Put),
        (6, "b".to_string(), Operation::Delete),
        (7, "a".to_string(), Operation::Purge),
    ];
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn watch_one_key_and_with_history() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    let store = bucket(&js, "WKEY", 5).await;
    store.put("x", "x1".into()).await.expect("put");
    store.put("x", "x2".into()).await.expect("put");
    store.put("y", "y1".into()).await.expect("put");

    // With history, the watch starts with the last value of each matching key.
    let mut with_history = store.watch_with_history("x").await.expect("watch");
    let first = next_entry(&mut with_history).await;
    assert_eq!(value(&first), ("x", &b"x2"[..], Operation::Put));
    assert!(
        first.seen_current,
        "the last initial value marks the catch-up"
    );

    let mut all = store.watch_with_history(">").await.expect("watch all");
    let a = next_entry(&mut all).await;
    let b = next_entry(&mut all).await;
    assert_eq!((a.key.as_str(), a.revision), ("x", 2));
    assert_eq!((b.key.as_str(), b.revision), ("y", 3));
    assert!(!a.seen_current && b.seen_current);

    let mut updates = store.watch("x").await.expect("watch");
    store.put("y", "y2".into()).await.expect("put");
    store.put("x", "x3".into()).await.expect("put");
    let update = next_entry(&mut updates).await;
    assert_eq!(value(&update), ("x", &b"x3"[..], Operation::Put));
    let next = next_entry(&mut with_history).await;
    assert_eq!(next.revision, 5);
    let c = next_entry(&mut all).await;
    assert_eq!((c.key.as_str(), c.revision), ("y", 4));

    // An empty bucket's watch with history is current at once and then sees new writes.
    let empty = bucket(&js, "WEMPTY", 1).await;
    let mut watch = empty.watch_with_history(">").await.expect("watch");
    empty.put("k", "v".into()).await.expect("put");
    let entry = next_entry(&mut watch).await;
    assert!(entry.seen_current);
    assert_eq!(value(&entry), ("k", &b"v"[..], Operation::Put));
}

#[tokio::test]
async fn watch_many_keys_and_from_a_revision() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    let store = bucket(&js, "MANY", 5).await;
    for (key, v) in [("a", "1"), ("b", "2"), ("c", "3"), ("a", "4")] {
        store.put(key, Bytes::from(v)).await.expect("put");
    }
    // Several keys at once travel as `filter_subjects` (a 2.10 consumer feature).
    let mut many = store
        .watch_many_with_history(["a", "c"])
        .await
        .expect("watch many");
    let first = next_entry(&mut many).await;
    let second = next_entry(&mut many).await;
    assert_eq!(
        [
            (first.key.as_str(), first.revision),
            (second.key.as_str(), second.revision)
        ],
        [("c", 3), ("a", 4)]
    );
    store.put("b", "5".into()).await.expect("put");
    store.put("c", "6".into()).await.expect("put");
    let third = next_entry(&mut many).await;
    assert_eq!(
        (third.key.as_str(), third.revision),
        ("c", 6),
        "b is not watched"
    );

    // From a revision: every kept revision from there on, in order.
    let mut from = store.watch_all_from_revision(2).await.expect("watch from");
    let mut revisions = Vec::new();
    for _ in 0..5 {
        revisions.push(next_entry(&mut from).await.revision);
    }
    assert_eq!(revisions, vec![2, 3, 4, 5, 6]);
}
