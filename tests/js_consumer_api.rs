//! The consumer API with raw requests: nats-server's error JSON for bad input, bad pull
//! requests, and ephemeral consumers going away when unused.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{within, TestServer};
use futures::StreamExt;
use serde_json::{json, Value};

async fn call(client: &async_nats::Client, subject: &str, body: Value) -> Value {
    let payload = Bytes::from(body.to_string());
    let reply = within(subject, client.request(subject.to_string(), payload))
        .await
        .unwrap();
    serde_json::from_slice(&reply.payload).expect("JSON reply")
}

fn error(code: u64, err_code: u64, description: &str) -> Value {
    json!({ "code": code, "err_code": err_code, "description": description })
}

async fn setup(server: &TestServer) -> async_nats::Client {
    let client = within("connect", async_nats::connect(server.url()))
        .await
        .unwrap();
    let created = call(
        &client,
        "$JS.API.STREAM.CREATE.S",
        json!({"name":"S","subjects":["s.>"]}),
    )
    .await;
    assert!(created.get("error").is_none(), "{created}");
    let wq = call(
        &client,
        "$JS.API.STREAM.CREATE.WQ",
        json!({"name":"WQ","subjects":["wq.>"],"retention":"workqueue"}),
    )
    .await;
    assert!(wq.get("error").is_none(), "{wq}");
    client
}

#[tokio::test]
async fn invalid_consumer_configs_get_nats_server_errors() {
    let server = TestServer::start(&[]);
    let client = setup(&server).await;
    let create = |stream: &'static str, name: &'static str, config: Value| {
        let client = client.clone();
        async move {
            let subject = format!("$JS.API.CONSUMER.CREATE.{stream}.{name}");
            call(
                &client,
                &subject,
                json!({ "stream_name": stream, "config": config }),
            )
            .await
        }
    };
    let cases = [
        (
            "S",
            "c1",
            json!({"durable_name":"c1","deliver_subject":"push.to","max_waiting":5}),
            error(400, 10080, "consumer in push mode can not set max waiting"),
        ),
        (
            "S",
            "c2",
            json!({"durable_name":"c2","deliver_subject":"push.to","flow_control":true}),
            error(
                400,
                10108,
                "consumer with flow control also needs heartbeats",
            ),
        ),
        (
            "S",
            "c3",
            json!({"durable_name":"c3","idle_heartbeat":1_000_000_000}),
            error(
                400,
                10088,
                "consumer idle heartbeat requires a push based consumer",
            ),
        ),
        (
            "S",
            "c4",
            json!({"durable_name":"c4","filter_subject":"s.a","filter_subjects":["s.b"]}),
            error(
                400,
                10136,
                "consumer cannot have both FilterSubject and FilterSubjects specified",
            ),
        ),
        (
            "S",
            "c5",
            json!({"durable_name":"c5","filter_subject":"other.x"}),
            error(
                400,
                10093,
                "consumer filter subject is not a valid subset of the interest subjects",
            ),
        ),
        (
            "WQ",
            "c6",
            json!({"durable_name":"c6","ack_policy":"none"}),
            error(
                400,
                10084,
                "consumer in pull mode requires explicit ack policy on workqueue stream",
            ),
        ),
    ];
    for (stream, name, config, expected) in cases {
        let reply = create(stream, name, config.clone()).await;
        assert_eq!(reply["error"], expected, "{config}");
        assert_eq!(
            reply["type"],
            "io.nats.jetstream.api.v1.consumer_create_response"
        );
    }
    let reply = call(
        &client,
        "$JS.API.CONSUMER.CREATE.NOPE.c",
        json!({"stream_name":"NOPE","config":{}}),
    )
    .await;
    assert_eq!(reply["error"], error(404, 10059, "stream not found"));
    let reply = call(
        &client,
        "$JS.API.CONSUMER.CREATE.S.c",
        json!({"stream_name":"OTHER","config":{}}),
    )
    .await;
    assert_eq!(reply["error"]["err_code"], 10056);
    let reply = call(&client, "$JS.API.CONSUMER.INFO.S.missing", json!({})).await;
    assert_eq!(reply["error"], error(404, 10014, "consumer not found"));
    let reply = call(&client, "$JS.API.CONSUMER.DELETE.S.missing", json!({})).await;
    assert_eq!(reply["error"], error(404, 10014, "consumer not found"));
    let bad_json = within(
        "bad json",
        client.request("$JS.API.CONSUMER.CREATE.S.x", Bytes::from_static(b"{nope")),
    )
    .await
    .unwrap();
    let reply: Value = serde_json::from_slice(&bad_json.payload).unwrap();
    assert_eq!(reply["error"]["err_code"], 10025, "{reply}");
}

#[tokio::test]
async fn create_and_update_actions_are_checked() {
    let server = TestServer::start(&[]);
    let client = setup(&server).await;
    let body = |action: &str, ack_wait: i64| json!({"stream_name":"S","action":action,"config":{"durable_name":"d","ack_policy":"explicit","ack_wait":ack_wait}});
    let missing = call(
        &client,
        "$JS.API.CONSUMER.CREATE.S.d",
        body("update", 5_000_000_000),
    )
    .await;
    assert_eq!(
        missing["error"],
        error(400, 10149, "consumer does not exist")
    );
    let created = call(
        &client,
        "$JS.API.CONSUMER.CREATE.S.d",
        body("create", 5_000_000_000),
    )
    .await;
    assert_eq!(created["config"]["ack_wait"], 5_000_000_000u64, "{created}");
    let again = call(
        &client,
        "$JS.API.CONSUMER.CREATE.S.d",
        body("create", 6_000_000_000),
    )
    .await;
    assert_eq!(again["error"], error(400, 10148, "consumer already exists"));
    let updated = call(
        &client,
        "$JS.API.CONSUMER.CREATE.S.d",
        body("update", 6_000_000_000),
    )
    .await;
    assert_eq!(updated["config"]["ack_wait"], 6_000_000_000u64, "{updated}");
    let names = call(&client, "$JS.API.CONSUMER.NAMES.S", json!({})).await;
    assert_eq!(names["consumers"], json!(["d"]));
}

/// A start time with a multi-byte character where the offset goes used to panic in the
/// RFC 3339 parser, which ended the JetStream API thread: this request went unanswered, and
/// so did every API request after it, from any client (found by fuzzing).
#[tokio::test]
async fn a_start_time_that_is_not_ascii_is_refused_and_the_api_keeps_answering() {
    let server = TestServer::start(&[]);
    let client = setup(&server).await;
    for time in ["2024-01-02T03:04:05é0:00", "2024-01-02T03:04:05+0é00"] {
        let reply = call(
            &client,
            "$JS.API.CONSUMER.CREATE.S.t",
            json!({"stream_name":"S","config":{"name":"t","deliver_policy":"by_start_time",
                "opt_start_time":time}}),
        )
        .await;
        assert_eq!(reply["error"]["err_code"], 10025, "{reply}");
    }
    let info = call(&client, "$JS.API.STREAM.INFO.S", json!({})).await;
    assert_eq!(info["config"]["name"], "S", "{info}");
}

#[tokio::test]
async fn bad_pull_requests_get_status_replies() {
    let server = TestServer::start(&[]);
    let client = setup(&server).await;
    let created = call(&client, "$JS.API.CONSUMER.CREATE.S.p", json!({"stream_name":"S","config":{"durable_name":"p","ack_policy":"explicit","max_batch":2}})).await;
    assert!(created.get("error").is_none(), "{created}");
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(inbox.clone()).await.unwrap();
    client.flush().await.unwrap();
    let cases: [(&[u8], u16, &str); 3] = [
        (b"{bad", 400, "Bad Request"),
        (br#"{"batch":5}"#, 409, "Exceeded MaxRequestBatch of 2"),
        (br#"{"batch":1,"no_wait":true}"#, 404, "No Messages"),
    ];
    for (body, code, text) in cases {
        client
            .publish_with_reply(
                "$JS.API.CONSUMER.MSG.NEXT.S.p",
                inbox.clone(),
                Bytes::copy_from_slice(body),
            )
            .await
            .unwrap();
        let reply = within("status", replies.next()).await.unwrap();
        let status = reply.status.map(|s| s.as_u16());
        assert_eq!(status, Some(code), "{:?}", String::from_utf8_lossy(body));
        let description = reply.description.unwrap_or_default();
        assert!(
            description.starts_with(text),
            "{description:?} for {:?}",
            String::from_utf8_lossy(body)
        );
    }
}

#[tokio::test]
async fn unused_ephemeral_consumers_go_away_after_their_inactive_threshold() {
    let server = TestServer::start(&[]);
    let client = setup(&server).await;
    let created = call(
        &client,
        "$JS.API.CONSUMER.CREATE.S.eph",
        json!({"stream_name":"S","config":{"name":"eph","ack_policy":"explicit","inactive_threshold":300_000_000}}),
    )
    .await;
    assert!(created.get("error").is_none(), "{created}");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let info = call(&client, "$JS.API.CONSUMER.INFO.S.eph", json!({})).await;
        if info["error"]["err_code"] == 10014 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "ephemeral consumer was not removed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
