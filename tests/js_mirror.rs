//! Mirrors of a stream on the same server (docs/mirror-facts.md): the origin's sequences,
//! timestamps and headers, gaps where the origin had deleted or filtered messages, start
//! options, a missing origin that appears later, consumers on the mirror, a kill -9 in the
//! middle of a catch-up, transforms, promotion, and the config errors nats-server gives.

mod common;

use std::future::IntoFuture;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::Client;
use common::js_consumer::{call, call_raw, connect, create_stream as create, error};
use common::{within, TestServer};
use futures::StreamExt;
use serde_json::{json, Value};

/// How long a mirror may take to catch up in these tests (it is fed every 50 ms).
const CATCH_UP: Duration = Duration::from_secs(20);

async fn publish(client: &Client, subject: &str, count: u64, with_headers: bool) {
    let js = jetstream::new(client.clone());
    let mut acks = Vec::new();
    for i in 0..count {
        let mut headers = async_nats::HeaderMap::new();
        if with_headers {
            headers.insert("X-I", i.to_string().as_str());
            headers.insert("Nats-Expected-Stream", "O");
        }
        acks.push(
            js.publish_with_headers(subject.to_string(), headers, format!("m{i}").into())
                .await
                .expect("publish"),
        );
        if acks.len() == 256 || i + 1 == count {
            for ack in acks.drain(..) {
                within("ack", ack.into_future()).await.expect("stored");
            }
        }
    }
}

fn state(info: &Value) -> Value {
    let s = &info["state"];
    let deleted = s["num_deleted"].as_u64().unwrap_or(0);
    json!([s["messages"], s["first_seq"], s["last_seq"], deleted])
}

/// Waits until the mirror's state is `want`; its info.
async fn caught_up(client: &Client, mirror: &str, want: Value) -> Value {
    let deadline = Instant::now() + CATCH_UP;
    loop {
        let info = call_raw(client, &format!("$JS.API.STREAM.INFO.{mirror}"), "").await;
        if state(&info) == want {
            return info;
        }
        assert!(Instant::now() < deadline, "mirror {mirror} stuck at {info}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_mirror_keeps_the_origins_sequences_times_and_headers() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    create(&client, "O", json!({"subjects": ["o.>"]})).await;
    publish(&client, "o.a", 10, true).await;
    publish(&client, "o.b", 10, false).await;
    for seq in [3, 4, 5, 10] {
        call(&client, "$JS.API.STREAM.MSG.DELETE.O", json!({"seq": seq})).await;
    }
    let made = create(&client, "M", json!({"mirror": {"name": "O"}})).await;
    assert_eq!(made["config"]["mirror"], json!({"name": "O"}), "{made}");
    assert!(made["config"].get("subjects").is_none(), "{made}");
    assert!(made["config"].get("duplicate_window").is_none(), "{made}");
    let origin = call_raw(&client, "$JS.API.STREAM.INFO.O", "").await;
    let info = caught_up(&client, "M", state(&origin)).await;
    assert_eq!(info["mirror"]["name"], "O");
    assert_eq!(info["mirror"]["lag"], 0);
    assert!(
        info["mirror"]["active"].as_i64().is_some_and(|a| a >= 0),
        "{info}"
    );
    for seq in [1, 2, 11, 20] {
        let o = call(&client, "$JS.API.STREAM.MSG.GET.O", json!({"seq": seq})).await;
        let m = call(&client, "$JS.API.STREAM.MSG.GET.M", json!({"seq": seq})).await;
        assert_eq!(m["message"]["time"], o["message"]["time"], "{seq}");
        assert_eq!(m["message"]["data"], o["message"]["data"], "{seq}");
        assert_eq!(m["message"]["subject"], o["message"]["subject"], "{seq}");
    }
    // Headers are kept, less the expectations the origin's publisher had.
    let copied = call(&client, "$JS.API.STREAM.MSG.GET.M", json!({"seq": 1})).await;
    let headers = copied["message"]["hdrs"].as_str().expect("headers");
    let headers = String::from_utf8(
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, headers).unwrap(),
    )
    .unwrap();
    assert!(headers.contains("X-I: 0"), "{headers}");
    assert!(!headers.contains("Nats-Expected-Stream"), "{headers}");

    // New messages follow; deletes in the origin do not; a consumer on the mirror sees them.
    call(&client, "$JS.API.STREAM.MSG.DELETE.O", json!({"seq": 1})).await;
    publish(&client, "o.c", 5, false).await;
    caught_up(&client, "M", json!([21, 1, 25, 4])).await;
    let js = jetstream::new(client.clone());
    let consumer = js
        .get_stream("M")
        .await
        .expect("mirror")
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("C".into()),
            filter_subject: "o.c".into(),
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut got = consumer
        .batch()
        .max_messages(5)
        .expires(Duration::from_secs(2))
        .messages()
        .await
        .expect("batch");
    let mut seqs = Vec::new();
    while let Some(m) = within("message", got.next()).await {
        let m = m.expect("message");
        seqs.push(m.info().expect("info").stream_sequence);
        if seqs.len() == 5 {
            break;
        }
    }
    assert_eq!(seqs, [21, 22, 23, 24, 25]);
    // A publish on the origin's subjects is the origin's: the mirror has no subjects.
    let names = call(&client, "$JS.API.STREAM.NAMES", json!({"subject": "o.a"})).await;
    assert_eq!(names["streams"], json!(["O"]));
}

#[tokio::test]
async fn filters_start_options_and_a_late_origin() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    create(
        &client,
        "FB",
        json!({"mirror": {"name": "O", "filter_subject": "o.b"}}),
    )
    .await;
    let waiting = call_raw(&client, "$JS.API.STREAM.INFO.FB", "").await;
    // Before the origin exists, the mirror says so.
    let deadline = Instant::now() + CATCH_UP;
    let mut info = waiting;
    while info["mirror"]["error"].is_null() {
        assert!(Instant::now() < deadline, "{info}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        info = call_raw(&client, "$JS.API.STREAM.INFO.FB", "").await;
    }
    assert_eq!(
        info["mirror"]["error"],
        error(404, 10059, "stream not found")
    );
    assert_eq!(info["mirror"]["active"], -1);
    create(&client, "O", json!({"subjects": ["o.>"]})).await;
    for i in 0..10 {
        let subject = if i % 2 == 0 { "o.a" } else { "o.b" };
        publish(&client, subject, 1, false).await;
    }
    // Odd origin sequences are o.a: the filtered mirror starts at 2, with no leading gap.
    let filtered = caught_up(&client, "FB", json!([5, 2, 10, 4])).await;
    assert!(filtered["mirror"]["error"].is_null(), "{filtered}");
    assert_eq!(filtered["mirror"]["filter_subject"], "o.b");
    // The origin's last message is not the filter's: nothing is owed all the same.
    publish(&client, "o.a", 1, false).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let idle = call_raw(&client, "$JS.API.STREAM.INFO.FB", "").await;
    assert_eq!(idle["mirror"]["lag"], 0, "{idle}");
    create(
        &client,
        "S5",
        json!({"mirror": {"name": "O", "opt_start_seq": 5}}),
    )
    .await;
    caught_up(&client, "S5", json!([7, 5, 11, 0])).await;
    create(
        &client,
        "S20",
        json!({"mirror": {"name": "O", "opt_start_seq": 20}}),
    )
    .await;
    caught_up(&client, "S20", json!([0, 20, 19, 0])).await;
}

#[tokio::test]
async fn a_mirror_killed_during_its_catch_up_loses_and_repeats_nothing() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    create(&client, "O", json!({"subjects": ["o.>"]})).await;
    publish(&client, "o.x", 30_000, false).await;
    create(&client, "M", json!({"mirror": {"name": "O"}})).await;
    tokio::time::sleep(Duration::from_millis(60)).await;
    drop(client);
    let server = TestServer::start_in(server.kill_and_take_store(), &[]);
    let client = connect(&server).await;
    let info = caught_up(&client, "M", json!([30_000, 1, 30_000, 0])).await;
    assert_eq!(info["mirror"]["lag"], 0);
    let last = call(&client, "$JS.API.STREAM.MSG.GET.M", json!({"seq": 30_000})).await;
    assert_eq!(
        last["message"]["data"],
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b"m29999")
    );
}

#[tokio::test]
async fn mirror_configs_get_nats_servers_errors() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    create(&client, "O", json!({"subjects": ["o.>"]})).await;
    let cases = [
        (
            json!({"mirror": {"name": "O"}, "first_seq": 5}),
            error(
                400,
                10143,
                "stream mirrors can not have first sequence configured",
            ),
        ),
        (
            json!({"mirror": {"name": "O"}, "subjects": ["m"]}),
            error(400, 10034, "stream mirrors can not contain subjects"),
        ),
        (
            json!({"mirror": {"name": "O"}, "allow_msg_counter": true}),
            error(400, 10173, "stream mirrors can not also calculate counters"),
        ),
        (
            json!({"mirror": {"name": "O", "filter_subject": "o.a",
                   "subject_transforms": [{"src": "o.a", "dest": "t.a"}]}}),
            error(
                400,
                10150,
                "mirror with multiple subject transforms cannot also have a single subject filter",
            ),
        ),
        (
            json!({"mirror": {"name": "a.b"}}),
            error(400, 10142, "mirrored stream name is invalid"),
        ),
        (
            json!({"mirror": {"name": "M"}}),
            error(500, 10052, "detected cycle"),
        ),
    ];
    for (config, want) in cases {
        let made = create(&client, "M", config.clone()).await;
        assert_eq!(made["error"], want, "{config}");
    }
    // What jetlog has not built is refused by name, never ignored (an origin in another
    // account is built: tests/js_sources_external.rs).
    let consumer = create(
        &client,
        "M",
        json!({"mirror": {"name": "O", "consumer": {"name": "C", "deliver_subject": "d"}}}),
    )
    .await;
    assert!(
        consumer["error"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("not supported by jetlog")),
        "{consumer}"
    );
    let bad_transforms = [
        (
            json!([{"src": "o..b", "dest": "x"}]),
            error(400, 10151, "mirror transform source: invalid subject o..b"),
        ),
        (
            json!([{"src": "o.*", "dest": "t.a"}, {"src": "o.a", "dest": "t.b"}]),
            error(400, 10152, "mirror subject filters can not overlap"),
        ),
    ];
    for (transforms, want) in bad_transforms {
        let config = json!({"mirror": {"name": "O", "subject_transforms": transforms}});
        let made = create(&client, "M", config.clone()).await;
        assert_eq!(made["error"], want, "{config}");
    }
    let dest = create(
        &client,
        "M",
        json!({"mirror": {"name": "O", "subject_transforms": [{"src": "o.*", "dest": "t.$3"}]}}),
    )
    .await;
    assert_eq!(dest["error"]["err_code"], 10154, "{dest}");
    create(&client, "M", json!({"mirror": {"name": "O"}})).await;
    let changed = call(
        &client,
        "$JS.API.STREAM.UPDATE.M",
        json!({"name": "M", "mirror": {"name": "O", "opt_start_seq": 3}}),
    )
    .await;
    assert_eq!(
        changed["error"],
        error(400, 10055, "stream mirror configuration can not be updated")
    );
}

#[tokio::test]
async fn a_transformed_mirror_renames_and_a_promoted_one_takes_publishes() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    create(&client, "O", json!({"subjects": ["o.>"]})).await;
    publish(&client, "o.a", 2, false).await;
    publish(&client, "o.b", 2, false).await;
    create(
        &client,
        "M",
        json!({"mirror": {"name": "O", "subject_transforms": [{"src": "o.a", "dest": "t.a"}]}}),
    )
    .await;
    // The only transform is a filter and a rename: o.a (1, 2) as t.a, at the origin's sequences.
    let info = caught_up(&client, "M", json!([2, 1, 2, 0])).await;
    assert_eq!(
        info["mirror"]["subject_transforms"],
        json!([{"src": "o.a", "dest": "t.a"}])
    );
    let copied = call(&client, "$JS.API.STREAM.MSG.GET.M", json!({"seq": 2})).await;
    assert_eq!(copied["message"]["subject"], "t.a");
    // Removing the mirror promotes M: it takes its own name as subject and publishes on it.
    let promoted = call(&client, "$JS.API.STREAM.UPDATE.M", json!({"name": "M"})).await;
    assert!(promoted["error"].is_null(), "{promoted}");
    assert!(promoted.get("mirror").is_none(), "{promoted}");
    assert_eq!(promoted["config"]["subjects"], json!(["M"]));
    let js = jetstream::new(client.clone());
    let ack = js.publish("M", "own".into()).await.expect("publish");
    let ack = within("ack", ack.into_future()).await.expect("stored");
    assert_eq!(ack.sequence, 3);
    publish(&client, "o.a", 1, false).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = call_raw(&client, "$JS.API.STREAM.INFO.M", "").await;
    assert_eq!(
        state(&after),
        json!([3, 1, 3, 0]),
        "the origin is no longer followed"
    );
}

#[tokio::test]
async fn a_kv_mirror_answers_its_origins_direct_gets_even_after_the_origin_is_gone() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    let js = jetstream::new(client.clone());
    let origin = js
        .create_key_value(jetstream::kv::Config {
            bucket: "CFG".into(),
            history: 3,
            ..Default::default()
        })
        .await
        .expect("bucket");
    for i in 0..5 {
        origin
            .put(format!("k{i}"), format!("v{i}").into())
            .await
            .expect("put");
    }
    js.create_key_value(jetstream::kv::Config {
        bucket: "CFG_READ".into(),
        mirror: Some(jetstream::stream::Source {
            name: "CFG".into(),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .expect("mirror bucket");
    // mirror_direct follows the origin's allow_direct, as in nats-server.
    let info = caught_up(&client, "KV_CFG_READ", json!([5, 1, 5, 0])).await;
    assert_eq!(info["config"]["mirror_direct"], true, "{info}");
    assert_eq!(info["config"]["mirror"], json!({"name": "KV_CFG"}));
    // With the origin deleted, its bucket's reads are answered by the mirror.
    let seen = std::time::Instant::now();
    js.delete_stream("KV_CFG").await.expect("delete origin");
    let deadline = seen + CATCH_UP;
    let answered = loop {
        let reply = client
            .request("$JS.API.DIRECT.GET.KV_CFG.$KV.CFG.k3", "".into())
            .await
            .expect("reply");
        let headers = reply.headers.clone().unwrap_or_default();
        if headers.get("Nats-Stream").is_some() {
            break reply;
        }
        assert!(Instant::now() < deadline, "no mirror answered: {reply:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let headers = answered.headers.expect("headers");
    assert_eq!(
        headers.get("Nats-Stream").map(|v| v.as_str()),
        Some("KV_CFG_READ")
    );
    assert_eq!(answered.payload.as_ref(), b"v3");
    let value = origin.get("k4").await.expect("get").expect("value");
    assert_eq!(value.as_ref(), b"v4");
}
