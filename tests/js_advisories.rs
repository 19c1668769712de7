//! Lifecycle advisories on `$JS.EVENT.ADVISORY.>`: streams created, updated and deleted,
//! consumers created and deleted (by the API or by their inactivity), in the shapes
//! nats-server 2.15.1 publishes (a consumer update sends none there either).

mod common;

use std::future::IntoFuture;
use std::time::Duration;

use common::js_consumer::{call, call_raw};
use common::{within, TestServer};
use futures::StreamExt;
use serde_json::{json, Value};

/// The next lifecycle advisory: API audits, which every request brings, are passed over.
async fn next_advisory(sub: &mut async_nats::Subscriber) -> (String, Value) {
    loop {
        let msg = within("advisory", sub.next())
            .await
            .expect("subscription open");
        if msg.subject.as_str() == AUDIT {
            continue;
        }
        let body = serde_json::from_slice(&msg.payload).expect("JSON advisory");
        return (msg.subject.to_string(), body);
    }
}

const AUDIT: &str = "$JS.EVENT.ADVISORY.API";

/// The next API audit.
async fn next_audit(sub: &mut async_nats::Subscriber) -> Value {
    let msg = within("audit", sub.next())
        .await
        .expect("subscription open");
    assert_eq!(msg.subject.as_str(), AUDIT);
    serde_json::from_slice(&msg.payload).expect("JSON audit")
}

#[tokio::test]
async fn every_api_answer_is_audited_with_who_asked_and_what_they_were_told() {
    let server = TestServer::start(&[]);
    let client = within(
        "connect",
        async_nats::ConnectOptions::new()
            .name("auditor")
            .connect(server.url()),
    )
    .await
    .unwrap();
    let mut audits = client.subscribe(AUDIT).await.expect("subscribed");
    within("flush", client.flush()).await.unwrap();

    let made = call(
        &client,
        "$JS.API.STREAM.CREATE.S",
        json!({"name":"S","subjects":["s.>"]}),
    )
    .await;
    let audit = next_audit(&mut audits).await;
    assert_eq!(audit["type"], "io.nats.jetstream.advisory.v1.api_audit");
    assert_eq!(audit["subject"], "$JS.API.STREAM.CREATE.S");
    let request: Value = serde_json::from_str(audit["request"].as_str().unwrap()).unwrap();
    assert_eq!(request["subjects"], json!(["s.>"]));
    let response: Value = serde_json::from_str(audit["response"].as_str().unwrap()).unwrap();
    assert_eq!(response["config"], made["config"]);
    let who = &audit["client"];
    assert_eq!(who["name"], "auditor");
    assert_eq!(who["lang"], "rust");
    assert_eq!(who["acc"], "$G");
    assert_eq!(who["host"], "127.0.0.1");
    assert_eq!(who["kind"], "Client");
    assert_eq!(who["client_type"], "nats");
    assert!(who["rtt"].as_u64().unwrap_or(0) > 0, "{who}");
    assert_eq!(who["server"], audit["server"]);
    assert_eq!(audit["id"].as_str().map(str::len), Some(22), "{audit}");

    // A failure is audited as well, with the error it got; an empty body is left out.
    call_raw(&client, "$JS.API.STREAM.INFO.NONE", "").await;
    let audit = next_audit(&mut audits).await;
    assert_eq!(audit["subject"], "$JS.API.STREAM.INFO.NONE");
    assert!(audit.get("request").is_none(), "{audit}");
    assert!(
        audit["response"].as_str().unwrap().contains("10059"),
        "{audit}"
    );

    // A message that STREAM.MSG.GET found is not audited (as in nats-server); what follows is.
    let js = async_nats::jetstream::new(client.clone());
    let ack = js.publish("s.1", "x".into()).await.unwrap();
    within("publish", ack.into_future()).await.unwrap();
    call(&client, "$JS.API.STREAM.MSG.GET.S", json!({"seq": 1})).await;
    // A request with no reply subject is carried out and audited all the same.
    client
        .publish("$JS.API.STREAM.DELETE.S", "".into())
        .await
        .unwrap();
    let audit = next_audit(&mut audits).await;
    assert_eq!(audit["subject"], "$JS.API.STREAM.DELETE.S", "{audit}");
    assert!(audit["response"]
        .as_str()
        .unwrap()
        .contains("\"success\":true"));
    let gone = call_raw(&client, "$JS.API.STREAM.INFO.S", "").await;
    assert_eq!(
        gone["error"]["err_code"], 10059,
        "the stream is gone: {gone}"
    );
}

#[tokio::test]
async fn stream_and_consumer_lifecycles_are_announced() {
    let server = TestServer::start(&[]);
    let client = within("connect", async_nats::connect(server.url()))
        .await
        .unwrap();
    let mut sub = client
        .subscribe("$JS.EVENT.ADVISORY.>")
        .await
        .expect("subscribed");
    within("flush", client.flush()).await.unwrap();

    let stream = json!({"name":"S","subjects":["s.>"]});
    call(&client, "$JS.API.STREAM.CREATE.S", stream.clone()).await;
    // Creating it again with the same config creates nothing and announces nothing.
    call(&client, "$JS.API.STREAM.CREATE.S", stream).await;
    call(
        &client,
        "$JS.API.STREAM.UPDATE.S",
        json!({"name":"S","subjects":["s.>"],"max_msgs":10}),
    )
    .await;
    let durable = |description: &str| {
        json!({"stream_name":"S","config":{"durable_name":"D","ack_policy":"explicit",
               "description":description}})
    };
    call(&client, "$JS.API.CONSUMER.CREATE.S.D", durable("one")).await;
    call(&client, "$JS.API.CONSUMER.CREATE.S.D", durable("two")).await;
    call(&client, "$JS.API.CONSUMER.DELETE.S.D", json!({})).await;
    // An ephemeral that nobody uses goes after its inactive_threshold, announced the same way.
    call(
        &client,
        "$JS.API.CONSUMER.CREATE.S.E",
        json!({"stream_name":"S","config":{"name":"E","ack_policy":"explicit",
               "inactive_threshold":300_000_000u64}}),
    )
    .await;

    let expected = [
        (
            "$JS.EVENT.ADVISORY.STREAM.CREATED.S",
            "stream_action",
            "create",
        ),
        (
            "$JS.EVENT.ADVISORY.STREAM.UPDATED.S",
            "stream_action",
            "modify",
        ),
        (
            "$JS.EVENT.ADVISORY.CONSUMER.CREATED.S.D",
            "consumer_action",
            "create",
        ),
        (
            "$JS.EVENT.ADVISORY.CONSUMER.DELETED.S.D",
            "consumer_action",
            "delete",
        ),
        (
            "$JS.EVENT.ADVISORY.CONSUMER.CREATED.S.E",
            "consumer_action",
            "create",
        ),
        (
            "$JS.EVENT.ADVISORY.CONSUMER.DELETED.S.E",
            "consumer_action",
            "delete",
        ),
    ];
    for (subject, kind, action) in expected {
        let (got, body) = next_advisory(&mut sub).await;
        assert_eq!(got, subject, "{body}");
        assert_eq!(
            body["type"],
            format!("io.nats.jetstream.advisory.v1.{kind}")
        );
        assert_eq!(
            (&body["stream"], &body["action"]),
            (&json!("S"), &json!(action))
        );
        assert_eq!(body["id"].as_str().map(str::len), Some(22), "{body}");
        assert!(body["timestamp"].as_str().is_some(), "{body}");
        if kind == "consumer_action" {
            assert_eq!(&body["consumer"], subject.rsplit('.').next().unwrap());
        }
    }
    call(&client, "$JS.API.STREAM.DELETE.S", json!({})).await;
    let (got, body) = next_advisory(&mut sub).await;
    assert_eq!(got, "$JS.EVENT.ADVISORY.STREAM.DELETED.S");
    assert_eq!(body["action"], "delete");
    // Nothing else was announced (the repeated create and the consumer update sent nothing).
    let extra = tokio::time::timeout(Duration::from_millis(300), next_advisory(&mut sub)).await;
    assert!(extra.is_err(), "unexpected advisory: {extra:?}");
}

/// Pulls one message from consumer `D` and returns its reply (ack) subject.
async fn pull_one(
    client: &async_nats::Client,
    inbox: &mut async_nats::Subscriber,
    reply: &str,
) -> String {
    client
        .publish_with_reply(
            "$JS.API.CONSUMER.MSG.NEXT.S.D",
            reply.to_string(),
            r#"{"batch":1,"expires":2000000000}"#.into(),
        )
        .await
        .unwrap();
    let msg = within("delivery", inbox.next()).await.expect("a message");
    msg.reply.expect("an ack subject").to_string()
}

#[tokio::test]
async fn naks_terminations_and_exhausted_deliveries_are_announced() {
    let server = TestServer::start(&[]);
    let client = within("connect", async_nats::connect(server.url()))
        .await
        .unwrap();
    let mut sub = client
        .subscribe("$JS.EVENT.ADVISORY.CONSUMER.*.S.D")
        .await
        .unwrap();
    call(
        &client,
        "$JS.API.STREAM.CREATE.S",
        json!({"name":"S","subjects":["s.>"]}),
    )
    .await;
    call(
        &client,
        "$JS.API.CONSUMER.CREATE.S.D",
        json!({"stream_name":"S","config":{"durable_name":"D","ack_policy":"explicit",
               "max_deliver":2,"ack_wait":200_000_000u64}}),
    )
    .await;
    for i in 0..2 {
        client.request(format!("s.{i}"), "x".into()).await.unwrap();
    }
    let (_, created) = next_advisory(&mut sub).await;
    assert_eq!(
        created["type"],
        "io.nats.jetstream.advisory.v1.consumer_action"
    );
    let inbox = client.new_inbox();
    let mut deliveries = client.subscribe(inbox.clone()).await.unwrap();

    // Seq 1: nak'd (an advisory), then terminated (another).
    let ack = pull_one(&client, &mut deliveries, &inbox).await;
    client.publish(ack, "-NAK".into()).await.unwrap();
    let (subject, nak) = next_advisory(&mut sub).await;
    assert_eq!(subject, "$JS.EVENT.ADVISORY.CONSUMER.MSG_NAKED.S.D");
    assert_eq!(nak["type"], "io.nats.jetstream.advisory.v1.nak");
    assert_eq!(
        (
            nak["stream_seq"].as_u64(),
            nak["consumer_seq"].as_u64(),
            nak["deliveries"].as_u64()
        ),
        (Some(1), Some(1), Some(1)),
        "{nak}"
    );
    assert!(
        nak["id"].is_string() && nak["timestamp"].is_string(),
        "{nak}"
    );
    let ack = pull_one(&client, &mut deliveries, &inbox).await;
    client
        .publish(ack, "+TERM poison message".into())
        .await
        .unwrap();
    let (subject, term) = next_advisory(&mut sub).await;
    assert_eq!(subject, "$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.S.D");
    assert_eq!(term["type"], "io.nats.jetstream.advisory.v1.terminated");
    assert_eq!(term["reason"], "poison message");
    assert_eq!(
        (
            term["stream_seq"].as_u64(),
            term["consumer_seq"].as_u64(),
            term["deliveries"].as_u64()
        ),
        (Some(1), Some(2), Some(2)),
        "{term}"
    );

    // Seq 2: delivered twice without an ack; then it has had its deliveries.
    pull_one(&client, &mut deliveries, &inbox).await;
    pull_one(&client, &mut deliveries, &inbox).await;
    let (subject, exceeded) = next_advisory(&mut sub).await;
    assert_eq!(subject, "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.S.D");
    assert_eq!(
        exceeded["type"],
        "io.nats.jetstream.advisory.v1.max_deliver"
    );
    assert_eq!(
        (
            exceeded["stream_seq"].as_u64(),
            exceeded["deliveries"].as_u64()
        ),
        (Some(2), Some(2)),
        "{exceeded}"
    );
    assert!(exceeded.get("consumer_seq").is_none(), "{exceeded}");
    let quiet = tokio::time::timeout(Duration::from_millis(400), sub.next()).await;
    assert!(quiet.is_err(), "nothing else: {quiet:?}");
}
