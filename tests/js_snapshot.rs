//! Stream snapshots and restores through a real client, as nats-server 2.15 serves them
//! (docs/snapshot-facts.md): a stream with deleted messages and a consumer part-way through
//! it comes back the same, survives kill -9 after the restore, and takes new messages after
//! its old ones; a damaged or truncated backup is refused and leaves nothing; the requests
//! are checked with nats-server's errors; a client that stops acknowledging is cut off.
//! `JETLOG_SNAPSHOT_MESSAGES` raises the message count (1,000,000 was run by hand; see
//! docs/benchmarks.md).

mod common;

use std::future::IntoFuture;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::Client;
use bytes::Bytes;
use common::js_consumer::{call, call_raw, connect, error};
use common::snapshot::{restore, snapshot};
use common::{within, TestServer};
use futures::StreamExt;
use serde_json::{json, Value};

fn message_count() -> u64 {
    std::env::var("JETLOG_SNAPSHOT_MESSAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000)
}

fn state_of(info: &Value) -> Value {
    let s = &info["state"];
    json!([
        s["messages"],
        s["bytes"],
        s["first_seq"],
        s["last_seq"],
        s["num_deleted"],
        s["consumer_count"]
    ])
}

async fn fill(client: &Client, stream: &str, count: u64) {
    let js = jetstream::new(client.clone());
    let mut acks = Vec::with_capacity(512);
    for i in 1..=count {
        let mut headers = async_nats::HeaderMap::new();
        if i.is_multiple_of(100) {
            headers.insert("X-Nth", i.to_string().as_str());
        }
        let payload = Bytes::from(format!("reading {i} of the restore test"));
        acks.push(
            js.publish_with_headers(format!("{stream}.{}", i % 7), headers, payload)
                .await
                .expect("publish"),
        );
        if acks.len() == 512 || i == count {
            for ack in acks.drain(..) {
                within("ack", ack.into_future()).await.expect("stored");
            }
        }
    }
}

#[tokio::test]
async fn a_stream_and_its_consumer_come_back_from_a_backup_and_survive_kill_9() {
    let count = message_count();
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    let made = call(
        &client,
        "$JS.API.STREAM.CREATE.S",
        json!({"name": "S", "subjects": ["S.>"], "allow_msg_ttl": true}),
    )
    .await;
    assert!(made.get("error").is_none(), "{made}");
    fill(&client, "S", count).await;
    for seq in [5, 6, count] {
        call(&client, "$JS.API.STREAM.MSG.DELETE.S", json!({"seq": seq})).await;
    }
    // A consumer that has had 10 messages and acknowledged the first 4.
    let js = jetstream::new(client.clone());
    let stream = js.get_stream("S").await.expect("stream");
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("C".into()),
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut batch = consumer
        .batch()
        .max_messages(10)
        .expires(Duration::from_secs(2))
        .messages()
        .await
        .expect("batch");
    let mut taken = 0;
    while let Some(msg) = within("message", batch.next()).await {
        let msg = msg.expect("message");
        taken += 1;
        if taken <= 4 {
            msg.double_ack().await.expect("ack");
        }
        if taken == 10 {
            break;
        }
    }
    let before = call_raw(&client, "$JS.API.STREAM.INFO.S", "").await;
    let consumer_before = call_raw(&client, "$JS.API.CONSUMER.INFO.S.C", "").await;

    let started = Instant::now();
    let (archive, reply) = snapshot(&client, "S", json!({})).await;
    let took = started.elapsed();
    assert_eq!(state_of(&reply), state_of(&before));
    call_raw(&client, "$JS.API.STREAM.DELETE.S", "").await;
    let started = Instant::now();
    let restored = restore(&client, &reply["config"], &archive).await;
    eprintln!(
        "{count} messages: snapshot {took:?} ({} bytes), restore {:?}",
        archive.len(),
        started.elapsed()
    );
    assert_eq!(
        restored["type"],
        "io.nats.jetstream.api.v1.stream_create_response"
    );
    assert_eq!(state_of(&restored), state_of(&before), "{restored}");
    let consumer_after = call_raw(&client, "$JS.API.CONSUMER.INFO.S.C", "").await;
    for field in ["delivered", "ack_floor", "num_ack_pending", "num_pending"] {
        let strip = |v: &Value| {
            let mut v = v.clone();
            if let Some(map) = v.as_object_mut() {
                map.remove("last_active");
            }
            v
        };
        assert_eq!(
            strip(&consumer_after[field]),
            strip(&consumer_before[field]),
            "{field}"
        );
    }
    let got = call(&client, "$JS.API.STREAM.MSG.GET.S", json!({"seq": 100})).await;
    assert_eq!(got["message"]["subject"], "S.2");
    assert!(got["message"]["hdrs"].is_string(), "{got}");
    assert_eq!(
        call(&client, "$JS.API.STREAM.MSG.GET.S", json!({"seq": 5})).await["error"]["err_code"],
        10037,
        "a deleted message stays deleted"
    );

    drop(client);
    let server = TestServer::start_in(server.kill_and_take_store(), &[]);
    let client = connect(&server).await;
    let after_kill = call_raw(&client, "$JS.API.STREAM.INFO.S", "").await;
    assert_eq!(state_of(&after_kill), state_of(&before));
    let js = jetstream::new(client.clone());
    let ack = js.publish("S.new", "after".into()).await.expect("publish");
    let ack = within("ack", ack.into_future()).await.expect("stored");
    assert_eq!(
        ack.sequence,
        count + 1,
        "new messages follow the restored ones"
    );
}

#[tokio::test]
async fn a_damaged_or_truncated_backup_is_refused_and_leaves_nothing() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    call(
        &client,
        "$JS.API.STREAM.CREATE.D",
        json!({"name": "D", "subjects": ["D.>"]}),
    )
    .await;
    fill(&client, "D", 2_000).await;
    let (archive, reply) = snapshot(&client, "D", json!({"chunk_size": 4096})).await;
    let in_use = call(
        &client,
        "$JS.API.STREAM.RESTORE.D",
        json!({"config": reply["config"], "state": reply["state"]}),
    )
    .await;
    assert_eq!(
        in_use["error"],
        error(400, 10130, "stream name already in use, cannot restore")
    );
    call_raw(&client, "$JS.API.STREAM.DELETE.D", "").await;
    let mut flipped = archive.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x20;
    for (what, bad) in [
        ("truncated", archive[..archive.len() - 7].to_vec()),
        ("flipped", flipped),
    ] {
        let answer = restore(&client, &reply["config"], &bad).await;
        assert_eq!(answer["error"]["err_code"], 10062, "{what}: {answer}");
        assert!(
            answer["error"]["description"]
                .as_str()
                .is_some_and(|d| d.starts_with("restore failed: archive is")),
            "{what}: {answer}"
        );
        let info = call_raw(&client, "$JS.API.STREAM.INFO.D", "").await;
        assert_eq!(
            info["error"]["err_code"], 10059,
            "{what}: nothing was created"
        );
    }
    let leftovers = std::fs::read_dir(server.store.path().join("restores"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(leftovers, 0, "staging is cleaned up");
    // The good one still restores.
    let answer = restore(&client, &reply["config"], &archive).await;
    assert_eq!(answer["state"]["messages"], 2_000, "{answer}");
}

#[tokio::test]
async fn requests_are_checked_as_nats_server_checks_them() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    call(
        &client,
        "$JS.API.STREAM.CREATE.R",
        json!({"name": "R", "subjects": ["R.>"]}),
    )
    .await;
    let snap = |body: Value| call(&client, "$JS.API.STREAM.SNAPSHOT.R", body);
    assert_eq!(
        snap(json!({})).await["error"],
        error(400, 10003, "bad request")
    );
    assert_eq!(
        call(
            &client,
            "$JS.API.STREAM.SNAPSHOT.NONE",
            json!({"deliver_subject": "x"})
        )
        .await["error"],
        error(404, 10059, "stream not found")
    );
    assert_eq!(
        snap(json!({"deliver_subject": "a.*"})).await["error"],
        error(400, 10015, "deliver subject not valid")
    );
    assert_eq!(
        snap(json!({"deliver_subject": "a", "bogus": 1})).await["error"],
        error(400, 10025, "invalid JSON: json: unknown field \"bogus\"")
    );
    assert_eq!(
        call(&client, "$JS.API.STREAM.RESTORE.X", json!({})).await["error"],
        error(400, 10003, "bad request")
    );
    assert_eq!(
        call(
            &client,
            "$JS.API.STREAM.RESTORE.X",
            json!({"config": {"name": "Y", "subjects": ["y"]}})
        )
        .await["error"],
        error(400, 10056, "stream name in subject does not match request")
    );
}

#[tokio::test]
async fn a_client_that_stops_acknowledging_is_cut_off() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    call(
        &client,
        "$JS.API.STREAM.CREATE.F",
        json!({"name": "F", "subjects": ["F.>"]}),
    )
    .await;
    fill(&client, "F", 500).await;
    let mut chunks = client.subscribe("snap.in").await.expect("subscribe");
    call(
        &client,
        "$JS.API.STREAM.SNAPSHOT.F",
        json!({"deliver_subject": "snap.in", "chunk_size": 1024, "window_size": 1024}),
    )
    .await;
    let first = within("first chunk", chunks.next()).await.expect("chunk");
    assert!(first
        .reply
        .is_some_and(|r| r.starts_with("$JS.SNAPSHOT.ACK.F.")));
    let started = Instant::now();
    let end = tokio::time::timeout(Duration::from_secs(10), chunks.next())
        .await
        .expect("an end in time")
        .expect("subscription open");
    assert!(end.payload.is_empty());
    assert_eq!(end.status.map(|s| s.as_u16()), Some(408));
    assert_eq!(end.description.as_deref(), Some("No Flow Response"));
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}
