//! Stream settings and publish headers of nats-server 2.10–2.14: honoured (`first_seq`), or,
//! for features jetlog has not built, refused with a clear error, never accepted and ignored
//! (errors as nats-server 2.15.1 gives them for a stream without the feature).

mod common;

use std::future::IntoFuture;

use bytes::Bytes;
use common::js_consumer::{call, connect, error, setup};
use common::{within, TestServer};
use serde_json::json;

#[tokio::test]
async fn stream_settings_jetlog_does_not_honour_are_refused_by_name() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    let unknown = error(400, 10025, "invalid JSON: json: unknown field \"colour\"");
    let cases = [(json!({"colour": "blue"}), unknown.clone())];
    for (extra, expected) in cases {
        let mut config = json!({"name": "S", "subjects": ["s.>"]});
        for (k, v) in extra.as_object().expect("object") {
            config[k] = v.clone();
        }
        let reply = call(&client, "$JS.API.STREAM.CREATE.S", config.clone()).await;
        assert_eq!(reply["error"], expected, "{config}");
    }
    // Zero values of the same fields are what newer clients send by default: accepted.
    let created = call(
        &client,
        "$JS.API.STREAM.CREATE.S",
        json!({"name":"S","subjects":["s.>"],"allow_msg_counter":false,"allow_atomic":false,
               "subject_delete_marker_ttl":0,"colour":"","allow_msg_ttl":false,"first_seq":1}),
    )
    .await;
    assert!(created.get("error").is_none(), "{created}");
    // An update is checked the same way, and the stream is left as it was.
    let updated = call(
        &client,
        "$JS.API.STREAM.UPDATE.S",
        json!({"name":"S","subjects":["s.>"],"colour":"red"}),
    )
    .await;
    assert_eq!(updated["error"], unknown);
}

#[tokio::test]
async fn publish_headers_of_features_the_stream_lacks_are_refused() {
    let server = TestServer::start(&[]);
    let client = setup(&server).await;
    let js = async_nats::jetstream::new(client.clone());
    let cases = [
        ("Nats-TTL", "5s", 10166, "per-message TTL is disabled"),
        ("Nats-TTL", "never", 10166, "per-message TTL is disabled"),
        ("Nats-TTL", "500ms", 10165, "invalid per-message TTL"),
        ("Nats-TTL", "1d", 10165, "invalid per-message TTL"),
        ("Nats-Incr", "1", 10168, "message counters is disabled"),
        ("Nats-Batch-Id", "b1", 10174, "atomic publish is disabled"),
        (
            "Nats-Schedule",
            "@every 1s",
            10188,
            "message schedules is disabled",
        ),
    ];
    for (name, value, err_code, text) in cases {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(name, value);
        let ack = within(
            "publish",
            js.publish_with_headers("s.a", headers, Bytes::from_static(b"x")),
        )
        .await
        .expect("published");
        let err = within("ack", ack.into_future()).await.expect_err("refused");
        let shown = err.to_string();
        assert!(
            shown.contains(text) && shown.contains(&err_code.to_string()),
            "{name}: {value}: {shown}"
        );
    }
    // Nothing was stored; a plain message still is, as sequence 1.
    let ack = within("publish", js.publish("s.a", Bytes::from_static(b"ok")))
        .await
        .expect("published");
    assert_eq!(
        within("ack", ack.into_future())
            .await
            .expect("stored")
            .sequence,
        1
    );
}

#[tokio::test]
async fn first_seq_places_a_new_streams_first_message_and_survives_a_kill() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    for (name, storage) in [("F", "file"), ("M", "memory")] {
        let created = call(
            &client,
            &format!("$JS.API.STREAM.CREATE.{name}"),
            json!({"name":name,"subjects":[format!("{}.>", name.to_lowercase())],
                   "storage":storage,"first_seq":100}),
        )
        .await;
        assert_eq!(created["config"]["first_seq"], 100, "{created}");
        assert_eq!(
            (
                &created["state"]["first_seq"],
                &created["state"]["last_seq"]
            ),
            (&json!(100), &json!(99)),
            "{created}"
        );
    }
    let js = async_nats::jetstream::new(client.clone());
    for subject in ["f.a", "m.a"] {
        let ack = within("publish", js.publish(subject, Bytes::from_static(b"x")))
            .await
            .expect("published");
        assert_eq!(
            within("ack", ack.into_future()).await.unwrap().sequence,
            100
        );
    }
    // An update may change the value, as in nats-server; nothing moves.
    let updated = call(
        &client,
        "$JS.API.STREAM.UPDATE.F",
        json!({"name":"F","subjects":["f.>"],"first_seq":5}),
    )
    .await;
    assert_eq!(updated["state"]["last_seq"], 100, "{updated}");
    // A stream that never got a message keeps its start across a kill too.
    let empty = call(
        &client,
        "$JS.API.STREAM.CREATE.E",
        json!({"name":"E","subjects":["e.>"],"first_seq":50}),
    )
    .await;
    assert_eq!(empty["state"]["last_seq"], 49, "{empty}");
    drop(client);
    let store = server.kill_and_take_store();
    let server = TestServer::start_in(store, &[]);
    let client = connect(&server).await;
    let js = async_nats::jetstream::new(client);
    let ack = within("publish", js.publish("f.a", Bytes::from_static(b"y")))
        .await
        .expect("published");
    assert_eq!(
        within("ack", ack.into_future()).await.unwrap().sequence,
        101
    );
    let ack = within("publish", js.publish("e.a", Bytes::from_static(b"z")))
        .await
        .expect("published");
    assert_eq!(within("ack", ack.into_future()).await.unwrap().sequence, 50);
}

#[tokio::test]
async fn an_async_persist_stream_is_made_and_its_mode_cannot_change() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    let made = call(
        &client,
        "$JS.API.STREAM.CREATE.A",
        json!({"name": "A", "subjects": ["a.>"], "persist_mode": "async"}),
    )
    .await;
    assert_eq!(made["config"]["persist_mode"], "async", "{made}");
    let js = async_nats::jetstream::new(client.clone());
    let ack = within("publish", async {
        js.publish("a.1", Bytes::from_static(b"x")).await?.await
    })
    .await
    .expect("stored");
    assert_eq!(ack.sequence, 1);
    let changed = call(
        &client,
        "$JS.API.STREAM.UPDATE.A",
        json!({"name": "A", "subjects": ["a.>"]}),
    )
    .await;
    assert_eq!(
        changed["error"],
        error(
            500,
            10052,
            "stream configuration update can not change persist mode"
        )
    );
    let memory = call(
        &client,
        "$JS.API.STREAM.CREATE.M",
        json!({"name": "M", "storage": "memory", "persist_mode": "async"}),
    )
    .await;
    assert_eq!(
        memory["error"],
        error(
            500,
            10052,
            "async persist mode is only supported on file storage"
        )
    );
}

#[tokio::test]
async fn responses_carry_the_versioning_metadata_and_a_sent_back_config_is_accepted() {
    let server = TestServer::start(&[]);
    let client = connect(&server).await;
    let made = call(
        &client,
        "$JS.API.STREAM.CREATE.V",
        json!({"name": "V", "subjects": ["v.>"], "allow_msg_ttl": true,
               "metadata": {"team": "a", "_nats.ver": "9.9.9"}}),
    )
    .await;
    let metadata = &made["config"]["metadata"];
    assert_eq!(metadata["team"], "a", "{made}");
    assert_eq!(metadata["_nats.req.level"], "1", "TTLs are level 1: {made}");
    assert_eq!(metadata["_nats.level"], "3", "{made}");
    assert_eq!(
        metadata["_nats.ver"], "2.10.0",
        "the client's value is not kept: {made}"
    );
    // What a client does on an edit: the config from an info, sent back as it came.
    let mut config = made["config"].clone();
    config["description"] = json!("edited");
    let updated = call(&client, "$JS.API.STREAM.UPDATE.V", config).await;
    assert!(updated.get("error").is_none(), "{updated}");
    assert_eq!(updated["config"]["metadata"], *metadata);
    let consumer = call(
        &client,
        "$JS.API.CONSUMER.CREATE.V.C",
        json!({"stream_name": "V", "config": {"durable_name": "C", "ack_policy": "explicit",
               "priority_groups": ["g"], "priority_policy": "overflow"}}),
    )
    .await;
    assert_eq!(
        consumer["config"]["metadata"]["_nats.req.level"], "1",
        "{consumer}"
    );
}
