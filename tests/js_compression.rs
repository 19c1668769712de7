//! `compression: s2` through a real client: the stream's files shrink, INFO and limits count
//! the messages as they are (as nats-server's `state.bytes` does), every message comes back
//! whole after kill -9, the setting can be changed by update, and what cannot be honoured is
//! refused (docs/stream-compression-facts.md).

mod common;

use std::path::Path;

use async_nats::jetstream;
use common::js_consumer::{call, connect, error};
use common::{within, TestServer};
use serde_json::json;

const MESSAGES: usize = 1000;

fn payload(i: usize) -> String {
    format!("reading {i:05}: temperature=21.5 humidity=40 station=north; ").repeat(20)[..1000]
        .to_string()
}

/// Bytes of data in a stream's segment files: up to each file's last non-zero byte, as the
/// active segment is preallocated beyond its data.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .map(|p| {
            let data = std::fs::read(p).expect("read");
            data.iter()
                .rposition(|b| *b != 0)
                .map_or(0, |i| i as u64 + 1)
        })
        .sum()
}

#[tokio::test]
async fn a_compressed_stream_is_smaller_on_disk_and_the_same_to_its_readers() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    for (name, compression) in [("C", "s2"), ("N", "none")] {
        let made = call(
            &client,
            &format!("$JS.API.STREAM.CREATE.{name}"),
            json!({"name": name, "subjects": [format!("{}.>", name.to_lowercase())],
                   "compression": compression}),
        )
        .await;
        assert_eq!(made["config"]["compression"], compression, "{made}");
    }
    let js = jetstream::new(client.clone());
    for i in 0..MESSAGES {
        for prefix in ["c", "n"] {
            let ack = js
                .publish(format!("{prefix}.{}", i % 4), payload(i).into())
                .await
                .expect("publish");
            within("ack", std::future::IntoFuture::into_future(ack))
                .await
                .expect("ack");
        }
    }
    let c = call(&client, "$JS.API.STREAM.INFO.C", json!({})).await;
    let n = call(&client, "$JS.API.STREAM.INFO.N", json!({})).await;
    assert_eq!(c["state"]["bytes"], n["state"]["bytes"], "{c}");
    assert_eq!(c["state"]["messages"], MESSAGES);

    drop(client);
    let store = server.kill_and_take_store();
    let streams = store.path().join("streams");
    let (packed, plain) = (dir_bytes(&streams.join("C")), dir_bytes(&streams.join("N")));
    assert!(packed * 4 < plain, "{packed} bytes against {plain}");

    let server = TestServer::start_in(store, &[]);
    let client = connect(&server).await;
    let js = jetstream::new(client.clone());
    let stream = js.get_stream("C").await.expect("stream");
    for seq in [1, 500, MESSAGES as u64] {
        let got = stream.get_raw_message(seq).await.expect("message");
        assert_eq!(got.payload, payload(seq as usize - 1).as_bytes(), "{seq}");
    }
    let again = call(&client, "$JS.API.STREAM.INFO.C", json!({})).await;
    assert_eq!(again["state"]["bytes"], c["state"]["bytes"]);

    // Switched off by update: later messages are stored as they are, earlier ones still read.
    let updated = call(
        &client,
        "$JS.API.STREAM.UPDATE.C",
        json!({"name": "C", "subjects": ["c.>"], "compression": "none"}),
    )
    .await;
    assert_eq!(updated["config"]["compression"], "none", "{updated}");
    let ack = js.publish("c.x", "after".into()).await.expect("publish");
    within("ack", std::future::IntoFuture::into_future(ack))
        .await
        .expect("ack");
    let first = stream.get_raw_message(1).await.expect("message");
    assert_eq!(first.payload, payload(0).as_bytes());
}

#[tokio::test]
async fn compression_jetlog_cannot_honour_is_refused() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    let bad = call(
        &client,
        "$JS.API.STREAM.CREATE.B",
        json!({"name": "B", "subjects": ["b.>"], "compression": "lz4"}),
    )
    .await;
    assert_eq!(
        bad["error"],
        error(400, 10025, "invalid JSON: unknown compression algorithm")
    );
    let memory = call(
        &client,
        "$JS.API.STREAM.CREATE.M",
        json!({"name": "M", "subjects": ["m.>"], "storage": "memory", "compression": "s2"}),
    )
    .await;
    assert_eq!(
        memory["error"],
        error(500, 10052, "compression is only supported on file storage")
    );
}

#[tokio::test]
async fn the_clients_own_compression_options_are_honoured() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    let js = jetstream::new(client.clone());
    let stream = js
        .create_stream(jetstream::stream::Config {
            name: "T".into(),
            subjects: vec!["t.>".into()],
            compression: Some(jetstream::stream::Compression::S2),
            ..Default::default()
        })
        .await
        .expect("create");
    assert_eq!(
        stream.cached_info().config.compression,
        Some(jetstream::stream::Compression::S2)
    );
    let kv = js
        .create_key_value(jetstream::kv::Config {
            bucket: "settings".into(),
            compression: true,
            ..Default::default()
        })
        .await
        .expect("bucket");
    kv.put("colour", payload(7).into()).await.expect("put");
    let got = kv.get("colour").await.expect("get").expect("value");
    assert_eq!(got, payload(7).as_bytes());
    let info = call(&client, "$JS.API.STREAM.INFO.KV_settings", json!({})).await;
    assert_eq!(info["config"]["compression"], "s2", "{info}");
}
