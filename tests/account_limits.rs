//! The one account's JetStream limits (`accounts { A: { jetstream { … } } }`): each is enforced
//! with nats-server's error, and `$JS.API.INFO` reports it. Once these were accepted and
//! ignored (a third stream was created past `max_streams: 2`).

mod common;

use std::time::Duration;

use common::raw_js::{api, publish};
use common::TestServer;
use serde_json::json;

const CONF: &str = "accounts {\n  APP: {\n    users: [{ user: app }]\n    jetstream: {\n      max_streams: 2\n      max_consumers: 1\n      max_bytes_required: true\n      store_max_stream_bytes: 1000\n    }\n  }\n}\n";

#[test]
fn account_jetstream_limits_are_enforced_with_nats_servers_errors() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("limits.conf");
    std::fs::write(&conf, CONF).unwrap();
    let server = TestServer::start(&["-c", conf.to_str().unwrap()]);
    let mut raw = server.raw();
    raw.read_info();
    raw.send(
        b"CONNECT {\"verbose\":false,\"headers\":true,\"user\":\"app\"}\r\nSUB r 1\r\nPING\r\n",
    );
    raw.read_until_contains(b"PONG\r\n", Duration::from_secs(5));
    let create = |raw: &mut common::RawClient, name: &str, max_bytes: i64| {
        api(
            raw,
            &format!("$JS.API.STREAM.CREATE.{name}"),
            &json!({"name": name, "subjects": [format!("{name}.>")], "max_bytes": max_bytes}),
        )
    };
    let error = |reply: &serde_json::Value| reply["error"]["err_code"].as_u64();
    assert_eq!(error(&create(&mut raw, "A", -1)), Some(10113));
    assert_eq!(error(&create(&mut raw, "A", 5000)), Some(10122));
    assert_eq!(error(&create(&mut raw, "A", 500)), None);
    assert_eq!(error(&create(&mut raw, "B", 500)), None);
    let third = create(&mut raw, "C", 500);
    assert_eq!(
        third["error"],
        json!({"code": 400, "err_code": 10027, "description": "maximum number of streams reached"})
    );
    let consumer = |raw: &mut common::RawClient, name: &str| {
        api(
            raw,
            &format!("$JS.API.CONSUMER.DURABLE.CREATE.A.{name}"),
            &json!({"stream_name": "A", "config": {"durable_name": name, "ack_policy": "explicit"}}),
        )
    };
    assert_eq!(error(&consumer(&mut raw, "ONE")), None);
    let second = consumer(&mut raw, "TWO");
    assert_eq!(
        second["error"],
        json!({"code": 400, "err_code": 10026, "description": "maximum consumers limit reached"})
    );
    // Updating a stream past the per-stream byte limit is refused too.
    let update = api(
        &mut raw,
        "$JS.API.STREAM.UPDATE.A",
        &json!({"name": "A", "subjects": ["A.>"], "max_bytes": 2000}),
    );
    assert_eq!(error(&update), Some(10122));
    publish(&mut raw, "$JS.API.INFO", "r", "");
    let got = raw.read_until_contains(b"account_info_response", Duration::from_secs(5));
    let text = String::from_utf8_lossy(&got);
    let body = text.split("\r\n").nth(1).unwrap_or_default();
    let info: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(info["limits"]["max_streams"], 2, "{info}");
    assert_eq!(info["limits"]["max_consumers"], 1, "{info}");
    assert_eq!(info["limits"]["max_bytes_required"], true, "{info}");
    assert_eq!(info["limits"]["storage_max_stream_bytes"], 1000, "{info}");
}

/// `no_auth_user`: a client without credentials is taken for that user, with its
/// permissions; INFO stops asking for credentials; a name no user has is refused at start.
#[test]
fn clients_without_credentials_become_the_no_auth_user() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("guest.conf");
    std::fs::write(
        &conf,
        "no_auth_user: guest\nauthorization { users: [\n  { user: guest, permissions: { publish: \"public.>\", subscribe: \"public.>\" } }\n  { user: admin, password: s3cret }\n] }\n",
    )
    .unwrap();
    let server = TestServer::start(&["-c", conf.to_str().unwrap()]);
    let mut guest = server.raw();
    let info = guest.read_info();
    assert!(info.get("auth_required").is_none(), "{info}");
    guest.send(b"CONNECT {\"verbose\":false}\r\nSUB public.x 1\r\nPUB public.x 2\r\nhi\r\nPUB secret 2\r\nno\r\nPING\r\n");
    let got = guest.read_until_contains(b"PONG\r\n", Duration::from_secs(5));
    let text = String::from_utf8_lossy(&got);
    assert!(text.contains("MSG public.x 1 2\r\nhi"), "{text}");
    assert!(
        text.contains("-ERR 'Permissions Violation for Publish to \"secret\"'"),
        "{text}"
    );
    // Credentials still mean what they say.
    let mut admin = server.raw();
    admin.read_info();
    admin.send(b"CONNECT {\"verbose\":false,\"user\":\"admin\",\"pass\":\"s3cret\"}\r\nPUB secret 2\r\nok\r\nPING\r\n");
    let got = admin.read_until_contains(b"PONG\r\n", Duration::from_secs(5));
    assert!(!String::from_utf8_lossy(&got).contains("-ERR"), "{got:?}");
    let mut wrong = server.raw();
    wrong.read_info();
    wrong.send(b"CONNECT {\"verbose\":false,\"user\":\"admin\",\"pass\":\"guess\"}\r\n");
    let (got, closed) = wrong.read_for(Duration::from_secs(2));
    assert!(String::from_utf8_lossy(&got).contains("Authorization Violation") && closed);
    for (text, expected) in [
        (
            "no_auth_user: guest\n",
            "no_auth_user: \"guest\" present, but users/nkeys are not defined",
        ),
        (
            "no_auth_user: nobody\nauthorization { users: [{ user: a, password: b }] }\n",
            "no_auth_user: \"nobody\" not present as user or nkey",
        ),
    ] {
        let bad = dir.path().join("bad.conf");
        std::fs::write(&bad, text).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_jetlog"))
            .args(["server", "-t", "-c", bad.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }
}

/// An account's `max_file`: a stream reserving more than it leaves is refused at create
/// (10047), and publishes past what the account's streams may hold get 10002 while another
/// account, held only to the server's limit, keeps storing.
#[tokio::test]
async fn an_accounts_storage_limit_binds_its_streams_and_no_one_elses() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("storage.conf");
    std::fs::write(
        &conf,
        "accounts {\n  SMALL: { users: [{ user: small }], jetstream: { max_file: 2KB } }\n  BIG: { users: [{ user: big }], jetstream: enabled }\n}\n",
    )
    .unwrap();
    let server = TestServer::start(&["-c", conf.to_str().unwrap()]);
    let js = |user: &'static str| {
        let url = server.url();
        async move {
            let client = common::within(
                "connect",
                async_nats::ConnectOptions::with_user_and_password(user.into(), "".into())
                    .connect(url),
            )
            .await
            .expect("connect");
            async_nats::jetstream::new(client)
        }
    };
    let (small, big) = (js("small").await, js("big").await);
    let config = |max_bytes: i64| async_nats::jetstream::stream::Config {
        name: "S".into(),
        subjects: vec!["s.>".into()],
        max_bytes,
        ..Default::default()
    };
    let err = small.create_stream(config(4096)).await.unwrap_err();
    assert!(err.to_string().contains("10047"), "{err}");
    small
        .create_stream(config(-1))
        .await
        .expect("an unlimited stream");
    big.create_stream(config(-1)).await.expect("BIG's stream");
    let payload = bytes::Bytes::from(vec![b'x'; 600]);
    let mut refused = None;
    for n in 0..10 {
        match small
            .publish(format!("s.{n}"), payload.clone())
            .await
            .unwrap()
            .await
        {
            Ok(_) => continue,
            Err(e) => {
                refused = Some((n, e.to_string()));
                break;
            }
        }
    }
    let (n, text) = refused.expect("SMALL's publishes stop at 2KB");
    assert!((2..=4).contains(&n), "stopped after {n} messages");
    assert!(text.contains("10002"), "{text}");
    for n in 0..10 {
        big.publish(format!("s.{n}"), payload.clone())
            .await
            .unwrap()
            .await
            .expect("BIG is not held to SMALL's limit");
    }
}

/// A limit lowered below what the account already stores (the config changed across a
/// restart): the data stays readable, and publishes are refused with 10002 until the account
/// is back under its limit.
#[tokio::test]
async fn a_limit_below_current_usage_keeps_the_data_and_refuses_more() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("storage.conf");
    let write_conf = |max_file: &str| {
        std::fs::write(
            &conf,
            format!("accounts {{ A: {{ users: [{{ user: a }}], jetstream: {{ max_file: {max_file} }} }} }}\n"),
        )
        .unwrap();
    };
    write_conf("64KB");
    let server = TestServer::start(&["-c", conf.to_str().unwrap()]);
    let connect = |url: String| async move {
        let client = common::within(
            "connect",
            async_nats::ConnectOptions::with_user_and_password("a".into(), "".into()).connect(url),
        )
        .await
        .expect("connect");
        async_nats::jetstream::new(client)
    };
    let js = connect(server.url()).await;
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "S".into(),
        subjects: vec!["s.>".into()],
        ..Default::default()
    })
    .await
    .expect("stream");
    let payload = bytes::Bytes::from(vec![b'x'; 1000]);
    for n in 0..8 {
        js.publish(format!("s.{n}"), payload.clone())
            .await
            .unwrap()
            .await
            .expect("under the limit");
    }
    let store = server.store_handoff();
    write_conf("2KB");
    let server = TestServer::start_in(store, &["-c", conf.to_str().unwrap()]);
    let js = connect(server.url()).await;
    let mut stream = js
        .get_stream("S")
        .await
        .expect("the stream is still served");
    assert_eq!(stream.info().await.unwrap().state.messages, 8);
    let err = js
        .publish("s.more", payload.clone())
        .await
        .unwrap()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("10002"), "{err}");
}

/// The account's `max_ack_pending`: a consumer asking for more is refused with 10121, one
/// asking for nothing gets the limit instead of the default 1000; `$JS.API.INFO` reports it.
#[test]
fn an_accounts_max_ack_pending_caps_its_consumers() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("ack.conf");
    std::fs::write(
        &conf,
        "accounts { A: { users: [{ user: a }], jetstream: { max_ack_pending: 10 } } }\n",
    )
    .unwrap();
    let server = TestServer::start(&["-c", conf.to_str().unwrap()]);
    let mut raw = server.raw();
    raw.read_info();
    raw.send(b"CONNECT {\"verbose\":false,\"headers\":true,\"user\":\"a\"}\r\nSUB r 1\r\nPING\r\n");
    raw.read_until_contains(b"PONG\r\n", Duration::from_secs(5));
    let created = api(
        &mut raw,
        "$JS.API.STREAM.CREATE.S",
        &json!({"name": "S", "subjects": ["s.>"]}),
    );
    assert!(created.get("error").is_none(), "{created}");
    let consumer = |raw: &mut common::RawClient, name: &str, config: serde_json::Value| {
        api(
            raw,
            &format!("$JS.API.CONSUMER.DURABLE.CREATE.S.{name}"),
            &json!({"stream_name": "S", "config": config}),
        )
    };
    let too_many = consumer(
        &mut raw,
        "BIG",
        json!({"durable_name": "BIG", "ack_policy": "explicit", "max_ack_pending": 50}),
    );
    assert_eq!(
        too_many["error"],
        json!({"code": 400, "err_code": 10121, "description": "consumer max ack pending exceeds system limit of 10"})
    );
    let defaulted = consumer(
        &mut raw,
        "DEF",
        json!({"durable_name": "DEF", "ack_policy": "explicit"}),
    );
    assert_eq!(defaulted["config"]["max_ack_pending"], 10, "{defaulted}");
    let info = api(&mut raw, "$JS.API.INFO", &json!({}));
    assert_eq!(info["limits"]["max_ack_pending"], 10, "{info}");
}
