//! Accounts as tenants: each has its own subjects and its own JetStream, and nothing crosses
//! between them except what one exports and another imports. Driven with async-nats against
//! the real server, one user per account.

mod common;

use std::time::Duration;

use async_nats::ConnectOptions;
use bytes::Bytes;
use common::monitor::{get, get_json};
use common::{within, TestServer};
use futures::StreamExt;

/// Two tenants and a shared service: APP exports its events and a service, OTHER imports
/// both; LONER imports nothing; NOJS has no JetStream.
const CONF: &str = r#"
accounts {
  APP: {
    jetstream: enabled
    users: [
      { user: app, password: pw }
      { user: responder, password: pw, permissions: { publish: { deny: ">" }, allow_responses: true } }
    ]
    exports: [
      { stream: "events.>" }
      { service: "svc.>" }
      { service: "feed.>", response_type: stream }
      { stream: "private.>", accounts: [OTHER] }
      { service: "$JS.API.>", accounts: [OTHER] }
    ]
  }
  OTHER: {
    jetstream: enabled
    users: [ { user: other, password: pw } ]
    imports: [
      { stream: { account: APP, subject: "events.>" }, prefix: app }
      { stream: { account: APP, subject: "private.>" } }
      { service: { account: APP, subject: "svc.>" }, to: "app.svc.>" }
      { service: { account: APP, subject: "feed.>" } }
      { service: { account: APP, subject: "$JS.API.>" }, to: "app.js.API.>" }
    ]
  }
  LONER: {
    jetstream: enabled
    users: [ { user: loner, password: pw } ]
  }
  NOJS: {
    users: [ { user: nojs, password: pw } ]
  }
}
"#;

fn start() -> (TestServer, tempfile::TempDir) {
    start_with(&[])
}

fn start_with(extra: &[&str]) -> (TestServer, tempfile::TempDir) {
    TestServer::start_with_config(CONF, extra)
}

async fn connect(server: &TestServer, user: &str) -> async_nats::Client {
    common::connect_as(server, user).await
}

/// Waits until the server has processed everything `client` sent so far (its subscriptions
/// included): async-nats' `flush` only flushes the socket, but a message the client sends
/// itself comes back only after the server has read everything before it.
async fn settle(client: &async_nats::Client) {
    let subject = client.new_inbox();
    let mut echo = client.subscribe(subject.clone()).await.expect("subscribe");
    client.publish(subject, "".into()).await.expect("publish");
    within("round trip", echo.next()).await.expect("echo");
}

/// The `n` messages expected on `sub` (each waited for, bounded), then whatever else
/// arrives within a short while, which a test expects to be nothing.
async fn take(sub: &mut async_nats::Subscriber, n: usize) -> Vec<async_nats::Message> {
    let mut got = Vec::new();
    while got.len() < n {
        match tokio::time::timeout(Duration::from_secs(10), sub.next()).await {
            Ok(Some(msg)) => got.push(msg),
            _ => break,
        }
    }
    got.extend(drain(sub).await);
    got
}

/// What arrives on `sub` within a short while (nothing is expected to be in flight longer).
async fn drain(sub: &mut async_nats::Subscriber) -> Vec<async_nats::Message> {
    let mut got = Vec::new();
    while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_millis(300), sub.next()).await {
        got.push(msg);
    }
    got
}

#[tokio::test]
async fn messages_never_cross_accounts_without_an_import() {
    let (server, _dir) = start();
    let app = connect(&server, "app").await;
    let loner = connect(&server, "loner").await;
    let mut loner_all = loner.subscribe(">").await.unwrap();
    let mut loner_queue = loner.queue_subscribe("work", "q".into()).await.unwrap();
    let mut app_all = app.subscribe("work").await.unwrap();
    settle(&loner).await;
    app.publish("work", "for app".into()).await.unwrap();
    app.publish("events.created", "exported, not imported by LONER".into())
        .await
        .unwrap();
    settle(&app).await;
    assert_eq!(take(&mut app_all, 1).await.len(), 1);
    // LONER's own round trips are all it may see.
    let seen: Vec<String> = drain(&mut loner_all)
        .await
        .into_iter()
        .map(|m| m.subject.to_string())
        .filter(|s| !s.starts_with("_INBOX."))
        .collect();
    assert!(
        seen.is_empty(),
        "a wildcard in LONER saw APP's messages: {seen:?}"
    );
    assert!(drain(&mut loner_queue).await.is_empty());

    // A request whose reply subject names an inbox of another account reaches nobody there.
    let mut app_inbox = app.subscribe("_INBOX.app.1").await.unwrap();
    let mut loner_svc = loner.subscribe("svc.echo").await.unwrap();
    settle(&app).await;
    settle(&loner).await;
    loner
        .publish_with_reply("svc.echo", "_INBOX.app.1", "q".into())
        .await
        .unwrap();
    settle(&loner).await;
    let request = within("request in LONER", loner_svc.next()).await.unwrap();
    loner
        .publish(request.reply.unwrap(), "answer".into())
        .await
        .unwrap();
    settle(&loner).await;
    assert!(
        drain(&mut app_inbox).await.is_empty(),
        "a reply crossed into APP"
    );

    // A request in one account to a service only another account has gets no responders.
    let nojs = connect(&server, "nojs").await;
    common::assert_no_responders(&nojs, "svc.echo").await;
}

#[tokio::test]
async fn stream_imports_carry_exported_messages_under_the_importers_subjects() {
    let (server, _dir) = start();
    let app = connect(&server, "app").await;
    let other = connect(&server, "other").await;
    let mut prefixed = other.subscribe("app.events.>").await.unwrap();
    let mut unprefixed = other.subscribe("events.>").await.unwrap();
    let mut private = other.subscribe("private.>").await.unwrap();
    settle(&other).await;
    app.publish("events.created", "one".into()).await.unwrap();
    app.publish("private.note", "two".into()).await.unwrap();
    app.publish("internal.x", "three".into()).await.unwrap();
    settle(&app).await;
    let got = take(&mut prefixed, 1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].subject.as_str(), "app.events.created");
    assert_eq!(got[0].payload, Bytes::from("one"));
    assert!(drain(&mut unprefixed).await.is_empty());
    let got = take(&mut private, 1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].subject.as_str(), "private.note");

    // The importer publishing on the imported subjects reaches nobody in APP.
    let mut app_events = app.subscribe("events.>").await.unwrap();
    settle(&app).await;
    other.publish("events.created", "x".into()).await.unwrap();
    other
        .publish("app.events.created", "y".into())
        .await
        .unwrap();
    settle(&other).await;
    assert!(
        drain(&mut app_events).await.is_empty(),
        "a stream import goes one way"
    );
}

#[tokio::test]
async fn service_imports_answer_across_accounts_once_or_as_a_stream() {
    let (server, _dir) = start();
    let app = connect(&server, "app").await;
    let other = connect(&server, "other").await;
    let mut svc = app.subscribe("svc.>").await.unwrap();
    let responder = app.clone();
    tokio::spawn(async move {
        while let Some(msg) = svc.next().await {
            let Some(reply) = msg.reply.clone() else {
                continue;
            };
            assert!(reply.as_str().starts_with("_R_."), "{reply}");
            // Two answers to a singleton: only the first goes through.
            let answer = format!("{} answered", msg.subject);
            let _ = responder.publish(reply.clone(), answer.into()).await;
            let _ = responder.publish(reply, "second".into()).await;
            let _ = responder.flush().await;
        }
    });
    let mut feed = app.subscribe("feed.>").await.unwrap();
    let streamer = app.clone();
    tokio::spawn(async move {
        while let Some(msg) = feed.next().await {
            if let Some(reply) = msg.reply {
                for n in 0..3 {
                    let _ = streamer.publish(reply.clone(), format!("{n}").into()).await;
                }
                let _ = streamer.flush().await;
            }
        }
    });
    settle(&app).await;

    let answer = within("service request", other.request("app.svc.time", "".into()))
        .await
        .expect("answered through the import");
    assert_eq!(answer.payload, Bytes::from("svc.time answered"));

    let inbox = other.new_inbox();
    let mut replies = other.subscribe(inbox.clone()).await.unwrap();
    other
        .publish_with_reply("app.svc.once", inbox.clone(), "".into())
        .await
        .unwrap();
    settle(&other).await;
    let got = take(&mut replies, 1).await;
    let payloads: Vec<Bytes> = got.into_iter().map(|m| m.payload).collect();
    assert_eq!(
        payloads,
        vec![Bytes::from("svc.once answered")],
        "singleton"
    );

    let inbox = other.new_inbox();
    let mut replies = other.subscribe(inbox.clone()).await.unwrap();
    other
        .publish_with_reply("feed.prices", inbox, "".into())
        .await
        .unwrap();
    settle(&other).await;
    let payloads: Vec<Bytes> = take(&mut replies, 3)
        .await
        .into_iter()
        .map(|m| m.payload)
        .collect();
    assert_eq!(
        payloads,
        vec![Bytes::from("0"), Bytes::from("1"), Bytes::from("2")]
    );

    // Not imported under its own name, and not imported by LONER.
    let loner = connect(&server, "loner").await;
    for (client, subject) in [
        (&other, "svc.time"),
        (&loner, "app.svc.time"),
        (&loner, "svc.time"),
    ] {
        common::assert_no_responders(client, subject).await;
    }
}

#[tokio::test]
async fn allow_responses_lets_a_user_answer_what_it_received_and_nothing_else() {
    let (server, _dir) = start();
    let responder = connect(&server, "responder").await;
    let app = connect(&server, "app").await;
    let mut requests = responder.subscribe("help").await.unwrap();
    let mut elsewhere = app.subscribe("elsewhere").await.unwrap();
    let inbox = app.new_inbox();
    let mut replies = app.subscribe(format!("{inbox}.*")).await.unwrap();
    settle(&app).await;
    // The responder may publish nothing but responses, so it cannot settle itself: ask until
    // its subscription is in place, each time with a reply subject of its own.
    let mut request = None;
    for attempt in 0..50 {
        let reply = format!("{inbox}.{attempt}");
        app.publish_with_reply("help", reply, "?".into())
            .await
            .unwrap();
        app.flush().await.unwrap();
        if let Ok(Some(msg)) =
            tokio::time::timeout(Duration::from_millis(200), requests.next()).await
        {
            request = Some(msg);
            break;
        }
    }
    let reply = request
        .and_then(|r| r.reply)
        .expect("a request with a reply subject");
    responder
        .publish(reply.clone(), "first".into())
        .await
        .unwrap();
    responder.publish(reply, "second".into()).await.unwrap();
    responder
        .publish("elsewhere", "denied".into())
        .await
        .unwrap();
    responder.flush().await.unwrap();
    // Attempts made before the responder subscribed came back as no-responders statuses.
    let mut payloads = Vec::new();
    while payloads.is_empty() {
        let got = take(&mut replies, 1).await;
        assert!(!got.is_empty(), "no response arrived");
        payloads.extend(
            got.into_iter()
                .filter(|m| m.status.is_none())
                .map(|m| m.payload),
        );
    }
    assert_eq!(
        payloads,
        vec![Bytes::from("first")],
        "one response per request"
    );
    assert!(drain(&mut elsewhere).await.is_empty());
}

#[tokio::test]
async fn each_account_has_its_own_jetstream() {
    let (server, _dir) = start();
    let app = async_nats::jetstream::new(connect(&server, "app").await);
    let loner_client = connect(&server, "loner").await;
    let loner = async_nats::jetstream::new(loner_client.clone());
    let config = |subjects: &str| async_nats::jetstream::stream::Config {
        name: "ORDERS".into(),
        subjects: vec![subjects.into()],
        ..Default::default()
    };
    within("APP creates", app.create_stream(config("orders.>")))
        .await
        .expect("APP's ORDERS");
    // The same name and subjects in another account are another stream.
    within("LONER creates", loner.create_stream(config("orders.>")))
        .await
        .expect("LONER's ORDERS");
    within("APP publishes", async {
        app.publish("orders.1", "a".into()).await.unwrap().await
    })
    .await
    .expect("stored in APP");
    let mut loner_orders = within("LONER's stream", loner.get_stream("ORDERS"))
        .await
        .expect("LONER's ORDERS");
    assert_eq!(loner_orders.info().await.unwrap().state.messages, 0);
    let mut app_orders = app.get_stream("ORDERS").await.unwrap();
    assert_eq!(app_orders.info().await.unwrap().state.messages, 1);
    // A direct get in LONER for APP's stream name answers from LONER's stream.
    assert!(loner_orders
        .get_last_raw_message_by_subject("orders.1")
        .await
        .is_err());

    let info = within("account info", loner.query_account())
        .await
        .expect("LONER's account info");
    assert_eq!(info.streams, 1);

    // An account without JetStream is told so.
    let nojs = connect(&server, "nojs").await;
    let reply = within(
        "INFO without JetStream",
        nojs.request("$JS.API.INFO", "".into()),
    )
    .await
    .expect("answered");
    let body: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(
        body["error"],
        serde_json::json!({"code": 503, "err_code": 10039, "description": "JetStream not enabled for account"})
    );
}

#[tokio::test]
async fn monitoring_shows_each_account_on_its_own() {
    let (server, _dir) = start_with(&["-m", "-1"]);
    let port = server.monitor_port().expect("monitor port");
    let other = connect(&server, "other").await;
    let _sub = other.subscribe("x").await.unwrap();
    settle(&other).await;
    let loner = async_nats::jetstream::new(connect(&server, "loner").await);
    within(
        "LONER creates",
        loner.create_stream(async_nats::jetstream::stream::Config {
            name: "KEEP".into(),
            ..Default::default()
        }),
    )
    .await
    .expect("stream");

    let list = get_json(port, "/accountz");
    assert_eq!(
        list["accounts"],
        serde_json::json!(["$G", "$SYS", "APP", "LONER", "NOJS", "OTHER"]),
        "{list}"
    );
    let app = get_json(port, "/accountz?acc=APP");
    let detail = &app["account_detail"];
    assert_eq!(detail["jetstream_enabled"], true, "{app}");
    assert_eq!(detail["exports"][2]["response_type"], "Streamed", "{app}");
    assert_eq!(
        detail["exports"][3]["approved_accounts"],
        serde_json::json!(["OTHER"])
    );
    let imports = &get_json(port, "/accountz?acc=OTHER")["account_detail"]["imports"];
    assert_eq!(imports[0]["local_subject"], "app.events.>", "{imports}");
    assert_eq!(imports[2]["type"], "service", "{imports}");
    assert_eq!(
        get(port, "/accountz?acc=NOPE").2.trim(),
        "Account NOPE does not exist"
    );

    let connz = get_json(port, "/connz?acc=OTHER&auth=true");
    assert_eq!(connz["num_connections"], 1, "{connz}");
    assert_eq!(connz["connections"][0]["account"], "OTHER", "{connz}");
    let statz = get_json(port, "/accstatz");
    let names: Vec<&str> = statz["account_statz"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|a| a["acc"].as_str())
        .collect();
    assert_eq!(names, vec!["LONER", "OTHER"], "{statz}");

    let jsz = get_json(port, "/jsz?streams=true");
    assert_eq!(jsz["accounts"], 3, "{jsz}");
    let details = jsz["account_details"].as_array().expect("details");
    let loner_detail = details
        .iter()
        .find(|d| d["name"] == "LONER")
        .expect("LONER");
    assert_eq!(loner_detail["stream_detail"][0]["name"], "KEEP");
    let app_detail = details.iter().find(|d| d["name"] == "APP").expect("APP");
    assert!(app_detail.get("stream_detail").is_none(), "{jsz}");
}

#[tokio::test]
async fn buckets_direct_gets_and_deliveries_stay_in_their_account() {
    let (server, _dir) = start();
    let app_client = connect(&server, "app").await;
    let app = async_nats::jetstream::new(app_client.clone());
    let loner_client = connect(&server, "loner").await;
    let loner = async_nats::jetstream::new(loner_client.clone());
    let bucket = within(
        "APP's bucket",
        app.create_key_value(async_nats::jetstream::kv::Config {
            bucket: "cfg".into(),
            ..Default::default()
        }),
    )
    .await
    .expect("bucket");
    bucket.put("secret", "app-only".into()).await.expect("put");
    assert!(
        loner.get_key_value("cfg").await.is_err(),
        "LONER sees APP's bucket"
    );
    let own = within(
        "LONER's bucket",
        loner.create_key_value(async_nats::jetstream::kv::Config {
            bucket: "cfg".into(),
            ..Default::default()
        }),
    )
    .await
    .expect("LONER's own cfg");
    assert_eq!(own.get("secret").await.expect("get"), None);

    // A direct get in LONER reaches LONER's stream of that name, never APP's.
    let reply = within(
        "direct get",
        loner_client.request("$JS.API.DIRECT.GET.KV_cfg.$KV.cfg.secret", "".into()),
    )
    .await
    .expect("answered");
    assert_ne!(reply.payload, Bytes::from("app-only"));
    assert_eq!(
        reply.status,
        Some(async_nats::StatusCode::NOT_FOUND),
        "{reply:?}"
    );

    // A push consumer delivers only inside its own account.
    let mut app_sub = app_client.subscribe("deliver.here").await.unwrap();
    let mut loner_sub = loner_client.subscribe("deliver.here").await.unwrap();
    settle(&app_client).await;
    settle(&loner_client).await;
    let stream = within(
        "stream",
        app.create_stream(async_nats::jetstream::stream::Config {
            name: "EVENTS".into(),
            subjects: vec!["ev.>".into()],
            ..Default::default()
        }),
    )
    .await
    .expect("stream");
    stream
        .create_consumer(async_nats::jetstream::consumer::push::Config {
            durable_name: Some("PUSH".into()),
            deliver_subject: "deliver.here".into(),
            ..Default::default()
        })
        .await
        .expect("push consumer");
    app.publish("ev.1", "e".into())
        .await
        .unwrap()
        .await
        .expect("stored");
    assert_eq!(take(&mut app_sub, 1).await.len(), 1);
    assert!(
        drain(&mut loner_sub).await.is_empty(),
        "a delivery crossed accounts"
    );
}

#[tokio::test]
async fn another_accounts_jetstream_is_reached_only_through_an_import() {
    let (server, _dir) = start();
    let app = async_nats::jetstream::new(connect(&server, "app").await);
    within(
        "APP's stream",
        app.create_stream(async_nats::jetstream::stream::Config {
            name: "SHARED".into(),
            ..Default::default()
        }),
    )
    .await
    .expect("stream");
    let other = connect(&server, "other").await;
    let through_import = async_nats::jetstream::with_prefix(other.clone(), "app.js.API");
    let info = within("info through the import", through_import.query_account())
        .await
        .expect("APP's account info");
    assert_eq!(info.streams, 1);
    let mut shared = within(
        "stream through the import",
        through_import.get_stream("SHARED"),
    )
    .await
    .expect("APP's SHARED");
    assert_eq!(shared.info().await.unwrap().config.name, "SHARED");
    // OTHER's own JetStream does not have it, and LONER has no way in at all.
    let own = async_nats::jetstream::new(other);
    assert!(own.get_stream("SHARED").await.is_err());
    let loner = connect(&server, "loner").await;
    common::assert_no_responders(&loner, "app.js.API.INFO").await;
}

#[tokio::test]
async fn an_nkey_user_joins_its_account() {
    let key = nkeys::KeyPair::new_user();
    let conf = format!(
        "accounts {{\n  A: {{ jetstream: enabled, users: [ {{ nkey: {:?} }} ] }}\n  B: {{ users: [ {{ user: b, password: pw }} ] }}\n}}\n",
        key.public_key()
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nkey.conf");
    std::fs::write(&path, conf).unwrap();
    let server = TestServer::start(&["-c", path.to_str().unwrap()]);
    let a = within(
        "nkey connect",
        ConnectOptions::new()
            .nkey(key.seed().unwrap())
            .connect(server.url()),
    )
    .await
    .expect("the nkey user connects");
    let b = connect(&server, "b").await;
    let mut b_sub = b.subscribe("x").await.unwrap();
    settle(&b).await;
    a.publish("x", "from A".into()).await.unwrap();
    a.flush().await.unwrap();
    assert!(
        drain(&mut b_sub).await.is_empty(),
        "the nkey user's message reached B"
    );
    let js = async_nats::jetstream::new(a);
    let info = within("A's account info", js.query_account())
        .await
        .expect("A has JetStream");
    assert_eq!(info.streams, 0);
}
