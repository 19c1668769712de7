//! Object stores through the async-nats `object_store` API, unchanged: a bucket is the stream
//! `OBJ_<bucket>` with chunk subjects `$O.<b>.C.<nuid>` and meta subjects `$O.<b>.M.<name>`
//! (facts sheet §6.2). The client reads chunks with an ordered push consumer, so a large
//! object exercises flow control and heartbeats as well as the publish path.

mod common;

use std::time::Duration;

use async_nats::jetstream::{
    self,
    object_store::{self, GetErrorKind, ObjectInfo, ObjectMetadata},
    stream::DiscardPolicy,
};
use base64::Engine;
use common::{within, TestServer};
use futures::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

/// The object the issue asks for: big enough to need many chunks and several flow-control
/// windows on the way back.
const LARGE_OBJECT_BYTES: usize = 10 * 1024 * 1024;
/// A 10 MiB put is 80 chunk publishes, each acknowledged after an fsync.
const LARGE_TRANSFER_WAIT: Duration = Duration::from_secs(60);
/// How long a watch may take to show a change.
const WATCH_WAIT: Duration = Duration::from_secs(5);

async fn connect_js(server: &TestServer) -> jetstream::Context {
    let client = within("connect", async_nats::connect(server.url()))
        .await
        .expect("connect");
    jetstream::new(client)
}

async fn bucket(js: &jetstream::Context, name: &str) -> object_store::ObjectStore {
    within(
        "create bucket",
        js.create_object_store(object_store::Config {
            bucket: name.to_string(),
            ..Default::default()
        }),
    )
    .await
    .expect("create bucket")
}

/// Bytes that differ at every offset, so a chunk out of place changes the digest.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 13)) as u8)
        .collect()
}

/// The digest the way clients write it: `SHA-256=` and unpadded-or-padded base64url.
fn digest_of(data: &[u8]) -> String {
    let sum = Sha256::digest(data);
    format!(
        "SHA-256={}",
        base64::engine::general_purpose::URL_SAFE.encode(sum)
    )
}

async fn read_all(store: &object_store::ObjectStore, name: &str) -> Vec<u8> {
    let mut object = within("get", store.get(name)).await.expect("get");
    let mut data = Vec::new();
    tokio::time::timeout(LARGE_TRANSFER_WAIT, object.read_to_end(&mut data))
        .await
        .expect("read in time")
        .expect("read with a matching digest");
    data
}

async fn object_names(store: &object_store::ObjectStore) -> Vec<String> {
    let listed: Vec<ObjectInfo> = within("list", store.list().await.expect("list").try_collect())
        .await
        .expect("list");
    listed.into_iter().map(|info| info.name).collect()
}

async fn next_info(watch: &mut object_store::Watch) -> ObjectInfo {
    tokio::time::timeout(WATCH_WAIT, watch.next())
        .await
        .expect("watch entry in time")
        .expect("watch open")
        .expect("watch entry")
}

#[tokio::test]
async fn bucket_is_a_stream_with_chunk_and_meta_subjects() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    bucket(&js, "FILES").await;
    let mut stream = js.get_stream("OBJ_FILES").await.expect("stream");
    let config = stream.info().await.expect("info").config.clone();
    assert_eq!(
        config.subjects,
        vec!["$O.FILES.C.>".to_string(), "$O.FILES.M.>".to_string()]
    );
    assert!(config.allow_rollup && config.allow_direct);
    assert_eq!(config.discard, DiscardPolicy::New);

    js.get_object_store("FILES").await.expect("bind");
    js.delete_object_store("FILES")
        .await
        .expect("delete bucket");
    assert!(js.get_object_store("FILES").await.is_err());
    assert!(js.get_stream("OBJ_FILES").await.is_err());
}

#[tokio::test]
async fn ten_mib_object_round_trips_with_its_digest() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    let store = bucket(&js, "BLOBS").await;
    let data = pattern(LARGE_OBJECT_BYTES);

    let mut reader = data.as_slice();
    let info = tokio::time::timeout(LARGE_TRANSFER_WAIT, store.put("disk.img", &mut reader))
        .await
        .expect("put in time")
        .expect("put");
    assert_eq!(info.size, LARGE_OBJECT_BYTES);
    assert_eq!(info.chunks, LARGE_OBJECT_BYTES / (128 * 1024));
    assert_eq!(info.digest.as_deref(), Some(digest_of(&data).as_str()));

    let back = read_all(&store, "disk.img").await;
    assert_eq!(back.len(), data.len());
    assert!(back == data, "the object came back changed");

    // The stored info is what the put returned, read back through the meta subject.
    let stored = store.info("disk.img").await.expect("info");
    assert_eq!(
        (stored.size, stored.chunks, stored.nuid.as_str()),
        (info.size, info.chunks, info.nuid.as_str())
    );
    assert_eq!(stored.digest, info.digest);
}

#[tokio::test]
async fn replacing_an_object_purges_its_old_chunks() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    let store = bucket(&js, "REPL").await;
    let first = pattern(300 * 1024);
    store
        .put("report", &mut first.as_slice())
        .await
        .expect("put");
    let second = b"short replacement".to_vec();
    store
        .put("report", &mut second.as_slice())
        .await
        .expect("put");

    assert_eq!(read_all(&store, "report").await, second);
    // One chunk and one meta message remain: the old chunks and the old meta are gone.
    let mut stream = js.get_stream("OBJ_REPL").await.expect("stream");
    assert_eq!(stream.info().await.expect("info").state.messages, 2);
}

#[tokio::test]
async fn info_list_and_delete() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    let store = bucket(&js, "DOCS").await;
    let empty: Vec<ObjectInfo> = within("list", store.list().await.expect("list").try_collect())
        .await
        .expect("list");
    assert!(empty.is_empty());

    for (name, body) in [("a.txt", "alpha"), ("b/c.txt", "beta"), ("empty", "")] {
        let meta = ObjectMetadata {
            name: name.to_string(),
            description: Some(format!("the {name} file")),
            ..Default::default()
        };
        store.put(meta, &mut body.as_bytes()).await.expect("put");
    }
    let info = store.info("b/c.txt").await.expect("info");
    assert_eq!(
        (info.size, info.chunks, info.description.as_deref()),
        (4, 1, Some("the b/c.txt file"))
    );
    assert_eq!(store.info("empty").await.expect("info").chunks, 0);
    assert!(read_all(&store, "empty").await.is_empty());
    assert!(store.info("nothing").await.is_err());

    let mut names = object_names(&store).await;
    names.sort();
    assert_eq!(names, vec!["a.txt", "b/c.txt", "empty"]);

    store.delete("a.txt").await.expect("delete");
    let gone = store.get("a.txt").await.expect_err("deleted");
    assert_eq!(gone.kind(), GetErrorKind::NotFound);
    assert!(store.info("a.txt").await.expect("info").deleted);
    let names = object_names(&store).await;
    assert_eq!(names.len(), 2);
    assert!(!names.contains(&"a.txt".to_string()));
    // The deleted object's chunk was purged; what is left is its deletion marker.
    let mut stream = js.get_stream("OBJ_DOCS").await.expect("stream");
    let messages = stream.info().await.expect("info").state.messages;
    assert_eq!(
        messages, 4,
        "two live objects' chunk+meta, empty's meta, a marker"
    );
}

#[tokio::test]
async fn links_to_objects_and_buckets() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    let store = bucket(&js, "SRC").await;
    let other = bucket(&js, "OTHER").await;
    store
        .put("target", &mut &b"linked body"[..])
        .await
        .expect("put");
    other
        .put("remote", &mut &b"remote body"[..])
        .await
        .expect("put");

    let target = store.info("target").await.expect("info");
    store.add_link("alias", &target).await.expect("link");
    assert_eq!(read_all(&store, "alias").await, b"linked body");
    let alias = store.info("alias").await.expect("info");
    let link = alias.options.and_then(|o| o.link).expect("a link");
    assert_eq!(
        (link.bucket.as_str(), link.name.as_deref()),
        ("SRC", Some("target"))
    );

    // A link to an object in another bucket is followed there.
    let remote = other.info("remote").await.expect("info");
    store
        .add_link("far", &remote)
        .await
        .expect("cross-bucket link");
    assert_eq!(read_all(&store, "far").await, b"remote body");

    // A bucket link carries no object name; getting it is an error, not data.
    store
        .add_bucket_link("all-of-other", "OTHER")
        .await
        .expect("bucket link");
    let err = store.get("all-of-other").await.expect_err("bucket link");
    assert_eq!(err.kind(), GetErrorKind::BucketLink);
}

#[tokio::test]
async fn watch_reports_puts_and_deletes_in_order() {
    let server = TestServer::start(&[]);
    let js = connect_js(&server).await;
    let store = bucket(&js, "WATCHED").await;
    store.put("old", &mut &b"1"[..]).await.expect("put");

    let mut with_history = store.watch_with_history().await.expect("watch");
    let first = next_info(&mut with_history).await;
    assert_eq!(first.name, "old");

    let mut updates = store.watch().await.expect("watch");
    store.put("new", &mut &b"2"[..]).await.expect("put");
    store.put("old", &mut &b"3"[..]).await.expect("put");
    store.delete("new").await.expect("delete");
    for watch in [&mut updates, &mut with_history] {
        let seen = [
            next_info(watch).await,
            next_info(watch).await,
            next_info(watch).await,
        ];
        let names: Vec<(&str, bool)> = seen.iter().map(|i| (i.name.as_str(), i.deleted)).collect();
        assert_eq!(names, vec![("new", false), ("old", false), ("new", true)]);
    }
    // An updates-only watch never showed the object stored before it started.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), updates.next())
            .await
            .is_err(),
        "nothing more to report"
    );
}
