//! Per-message TTL and subject delete markers (ADR-43, API level 1) through async-nats and raw
//! requests, checked against what nats-server 2.15.1 does (docs/stream-2.11-facts.md).

mod common;

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use async_nats::HeaderMap;
use common::js_consumer::{call, connect, error};
use common::{within, TestServer};
use serde_json::{json, Value};

/// How long a TTL'd message may take to go after its time, as measured here; nats-server
/// took 100–150 ms.
const EXPIRY_SLACK: Duration = Duration::from_secs(3);

async fn msg_get(client: &async_nats::Client, stream: &str, body: Value) -> Value {
    call(client, &format!("$JS.API.STREAM.MSG.GET.{stream}"), body).await
}

/// Waits (bounded) until `seq` of `stream` is gone; returns how long that took.
async fn gone_within(
    client: &async_nats::Client,
    stream: &str,
    seq: u64,
    limit: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let reply = msg_get(client, stream, json!({ "seq": seq })).await;
        if reply["error"]["err_code"] == 10037 {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "seq {seq} still there after {limit:?}: {reply}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ttl(value: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("Nats-TTL", value);
    headers
}

#[tokio::test]
async fn ttl_messages_expire_on_time_and_bad_ttls_get_nats_server_errors() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    let js = jetstream::new(client.clone());
    let created = call(
        &client,
        "$JS.API.STREAM.CREATE.T",
        json!({"name": "T", "subjects": ["t.>"], "allow_msg_ttl": true}),
    )
    .await;
    assert_eq!(created["config"]["allow_msg_ttl"], true, "{created}");
    let publish = |headers: HeaderMap| {
        let js = js.clone();
        async move {
            let ack = js.publish_with_headers("t.a", headers, "x".into()).await?;
            ack.await
        }
    };
    let short = within("publish", publish(ttl("1s"))).await.expect("stored");
    within("publish", publish(ttl("never")))
        .await
        .expect("stored");
    let kept = within("publish", publish(HeaderMap::new()))
        .await
        .expect("stored");
    let took = gone_within(
        &client,
        "T",
        short.sequence,
        Duration::from_secs(1) + EXPIRY_SLACK,
    )
    .await;
    eprintln!("a 1s TTL message went after {took:?} (polling every 50 ms)");
    let stored = msg_get(&client, "T", json!({ "seq": kept.sequence })).await;
    assert!(stored["message"].is_object(), "{stored}");

    for (value, code, text) in [
        ("500ms", 10165, "invalid per-message TTL"),
        ("abc", 10165, "invalid per-message TTL"),
        ("0", 10165, "invalid per-message TTL"),
    ] {
        let err = within("publish", publish(ttl(value)))
            .await
            .expect_err(value);
        let text_seen = err.to_string();
        assert!(text_seen.contains(text), "{value}: {text_seen}");
        let raw = within(
            "raw publish",
            client.request_with_headers("t.a", ttl(value), "x".into()),
        )
        .await
        .unwrap();
        let ack: Value = serde_json::from_slice(&raw.payload).unwrap();
        assert_eq!(ack["error"]["err_code"], code, "{value}: {ack}");
        assert_eq!(ack["seq"], 0, "{ack}");
    }

    // It cannot be turned off, with nats-server's words.
    let off = call(
        &client,
        "$JS.API.STREAM.UPDATE.T",
        json!({"name": "T", "subjects": ["t.>"], "allow_msg_ttl": false}),
    )
    .await;
    assert_eq!(
        off["error"],
        error(500, 10052, "message TTL status can not be disabled")
    );
    let info = call(&client, "$JS.API.INFO", json!({})).await;
    assert_eq!(info["api"]["level"], 3, "{info}");
}

#[tokio::test]
async fn ttls_outlive_a_kill_9_and_count_from_the_publish() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    let js = jetstream::new(client.clone());
    call(
        &client,
        "$JS.API.STREAM.CREATE.T",
        json!({"name": "T", "subjects": ["t.>"], "allow_msg_ttl": true}),
    )
    .await;
    let ack = within("publish", async {
        js.publish_with_headers("t.a", ttl("3"), "x".into())
            .await?
            .await
    })
    .await
    .expect("stored");
    let published = Instant::now();
    drop(client);
    let store = server.kill_and_take_store();
    let server = TestServer::start_in(store, &[]);
    let client = connect(&server).await;
    let before = msg_get(&client, "T", json!({ "seq": ack.sequence })).await;
    assert!(
        before["message"].is_object(),
        "still there right after the restart: {before}"
    );
    gone_within(
        &client,
        "T",
        ack.sequence,
        Duration::from_secs(3) + EXPIRY_SLACK,
    )
    .await;
    assert!(
        published.elapsed() >= Duration::from_secs(3),
        "not before its time"
    );
}

#[tokio::test]
async fn kv_keys_with_a_ttl_leave_a_delete_marker_through_async_nats() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    let js = jetstream::new(client.clone());
    let bucket = within(
        "create bucket",
        js.create_key_value(kv::Config {
            bucket: "sessions".into(),
            limit_markers: Some(Duration::from_secs(1)),
            ..Default::default()
        }),
    )
    .await
    .expect("a bucket with limit markers: needs api level 1");
    let info = call(&client, "$JS.API.STREAM.INFO.KV_sessions", json!({})).await;
    assert_eq!(
        info["config"]["subject_delete_marker_ttl"], 1_000_000_000u64,
        "{info}"
    );
    assert_eq!(info["config"]["allow_msg_ttl"], true);
    let rev = within(
        "create",
        bucket.create_with_ttl("alice", "on".into(), Duration::from_secs(1)),
    )
    .await
    .expect("created");
    let again = within(
        "create",
        bucket.create_with_ttl("alice", "x".into(), Duration::from_secs(1)),
    )
    .await;
    assert!(again.is_err(), "the key exists");
    let mut watch = within("watch", bucket.watch("alice")).await.expect("watch");
    // The key expires; a MaxAge marker takes its place and readers see it deleted.
    let started = Instant::now();
    loop {
        let entry = within("get", bucket.entry("alice")).await.expect("entry");
        match entry {
            Some(e) if e.revision == rev => {}
            Some(e) => {
                assert_eq!(e.operation, kv::Operation::Purge, "{e:?}");
                break;
            }
            None => break,
        }
        assert!(
            started.elapsed() < Duration::from_secs(1) + EXPIRY_SLACK,
            "key still live"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    use futures::StreamExt;
    let seen = within("watch event", watch.next())
        .await
        .expect("event")
        .expect("entry");
    assert_eq!(seen.operation, kv::Operation::Purge, "{seen:?}");
    let marker = msg_get(
        &client,
        "KV_sessions",
        json!({"last_by_subj": "$KV.sessions.alice"}),
    )
    .await;
    let hdrs = marker["message"]["hdrs"].as_str().expect("marker headers");
    let hdrs = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, hdrs).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&hdrs),
        "NATS/1.0\r\nNats-Marker-Reason: MaxAge\r\nNats-TTL: 1s\r\nNats-Rollup: sub\r\n\r\n"
    );
    // The key can be created again once it is gone.
    within("create", bucket.create("alice", "back".into()))
        .await
        .expect("re-created");
}

#[tokio::test]
async fn marker_settings_are_checked_and_fill_in_what_they_need() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    let create = |extra: Value| {
        let client = client.clone();
        async move {
            let mut config = json!({"name": "M", "subjects": ["m.>"]});
            for (k, v) in extra.as_object().expect("object") {
                config[k] = v.clone();
            }
            call(&client, "$JS.API.STREAM.CREATE.M", config).await
        }
    };
    let short = create(json!({"subject_delete_marker_ttl": 500_000_000})).await;
    assert_eq!(
        short["error"],
        error(
            500,
            10052,
            "subject delete marker TTL must be at least 1 second"
        )
    );
    let negative = create(json!({"subject_delete_marker_ttl": -1})).await;
    assert_eq!(
        negative["error"],
        error(500, 10052, "subject delete marker TTL must not be negative")
    );
    let made =
        create(json!({"subject_delete_marker_ttl": 2_000_000_000u64, "deny_purge": true})).await;
    let config = &made["config"];
    assert_eq!(config["allow_msg_ttl"], true, "{made}");
    assert_eq!(config["allow_rollup_hdrs"], true);
    assert_eq!(config["deny_purge"], false);
}

#[tokio::test]
async fn info_advertises_api_level_3() {
    let server = TestServer::start(&[]);
    let info = server.raw().read_info();
    assert_eq!(info["api_lvl"], 3, "{info}");
    // A request may require a level: 3 is served, 4 is refused as nats-server refuses it.
    let client = connect(&server).await;
    for (level, refused) in [("3", false), ("4", true)] {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Required-Api-Level", level);
        let reply = within(
            "info",
            client.request_with_headers("$JS.API.INFO", headers, "".into()),
        )
        .await
        .expect("a reply");
        let body: Value = serde_json::from_slice(&reply.payload).expect("json");
        match refused {
            true => assert_eq!(
                body["error"],
                error(412, 10185, "JetStream minimum api level required"),
                "{body}"
            ),
            false => assert_eq!(body["api"]["level"], 3, "{body}"),
        }
    }
}
