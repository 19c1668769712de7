//! Stream snapshots and restores through a real client: the archive a snapshot sends,
//! chunk by chunk with acks, and a restore that sends it back in pieces.

use std::time::Duration;

use async_nats::Client;
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{json, Value};

use super::js_consumer::{call, call_raw};
use super::within;

/// Takes a snapshot of `stream`, acknowledging every chunk; the archive and the reply.
pub async fn snapshot(client: &Client, stream: &str, request: Value) -> (Vec<u8>, Value) {
    let deliver = client.new_inbox();
    let mut chunks = client.subscribe(deliver.clone()).await.expect("subscribe");
    let mut request = request;
    request["deliver_subject"] = json!(deliver);
    let reply = call(
        client,
        &format!("$JS.API.STREAM.SNAPSHOT.{stream}"),
        request,
    )
    .await;
    assert!(reply.get("error").is_none(), "{reply}");
    let mut archive = Vec::new();
    loop {
        let chunk = tokio::time::timeout(Duration::from_secs(30), chunks.next())
            .await
            .expect("a chunk in time")
            .expect("subscription open");
        if chunk.payload.is_empty() {
            assert!(
                chunk.status.is_none_or(|s| s.as_u16() == 204),
                "ended with {:?} {:?}",
                chunk.status,
                chunk.description
            );
            return (archive, reply);
        }
        archive.extend_from_slice(&chunk.payload);
        if let Some(ack) = chunk.reply {
            client.publish(ack, Bytes::new()).await.expect("ack");
        }
    }
}

/// Restores `archive` as `stream` in pieces of 64 KiB; the final reply.
pub async fn restore(client: &Client, config: &Value, archive: &[u8]) -> Value {
    let name = config["name"].as_str().expect("name");
    let reply = call(
        client,
        &format!("$JS.API.STREAM.RESTORE.{name}"),
        json!({"config": config, "state": {}}),
    )
    .await;
    let deliver = reply["deliver_subject"]
        .as_str()
        .expect("a deliver subject")
        .to_string();
    for piece in archive.chunks(64 * 1024) {
        let ack = within(
            "chunk ack",
            client.request(deliver.clone(), Bytes::copy_from_slice(piece)),
        )
        .await
        .expect("chunk taken");
        assert!(ack.payload.is_empty(), "{:?}", ack.payload);
    }
    call_raw(client, &deliver, "").await
}
