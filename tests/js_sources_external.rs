//! A source in another account, through imports (issue 23): account B imports account A's
//! JetStream API under `$JS.A.API` and A's deliveries under `deliver.b`, and its stream
//! sources A's stream with `external: {api, deliver}`, as nats-server users set it up.
//! Without both imports nothing is copied; with them every message arrives once, with its
//! `Nats-Stream-Source` header naming the origin and the API prefix, and the position
//! survives a kill -9.

mod common;

use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::Client;
use common::js_consumer::{call, call_raw};
use common::{connect_as, TestServer};
use serde_json::{json, Value};

/// How long a source may take to catch up (it is fed every 50 ms).
const CATCH_UP: Duration = Duration::from_secs(20);

const ACCOUNTS: &str = r#"
accounts {
  A: {
    jetstream: enabled
    users: [ { user: a, password: pw } ]
    exports: [ { service: "$JS.API.>" }, { stream: "deliver.b.>" } ]
  }
  B: {
    jetstream: enabled
    users: [ { user: b, password: pw } ]
    imports: [
      { service: { account: A, subject: "$JS.API.>" }, to: "$JS.A.API.>" }
      { stream: { account: A, subject: "deliver.b.>" } }
    ]
  }
  C: {
    jetstream: enabled
    users: [ { user: c, password: pw } ]
    imports: [ { service: { account: A, subject: "$JS.API.>" }, to: "$JS.A.API.>" } ]
  }
}
"#;

async fn publish(client: &Client, subject: &str, count: u64) {
    let js = jetstream::new(client.clone());
    for i in 0..count {
        js.publish(subject.to_string(), format!("{i}").into())
            .await
            .expect("publish")
            .await
            .expect("ack");
    }
}

async fn messages(client: &Client, name: &str) -> Value {
    call_raw(client, &format!("$JS.API.STREAM.INFO.{name}"), "").await["state"]["messages"].clone()
}

async fn holds(client: &Client, name: &str, count: u64) {
    let deadline = Instant::now() + CATCH_UP;
    while messages(client, name).await != count {
        assert!(
            Instant::now() < deadline,
            "{name} holds {}",
            messages(client, name).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn external_source() -> Value {
    json!({"name": "ORD", "external": {"api": "$JS.A.API", "deliver": "deliver.b"}})
}

#[tokio::test]
async fn a_stream_sources_another_accounts_stream_through_its_imports() {
    let (server, conf_dir) = TestServer::start_with_config(ACCOUNTS, &[]);
    let a = connect_as(&server, "a").await;
    let b = connect_as(&server, "b").await;
    let c = connect_as(&server, "c").await;
    let made = call(
        &a,
        "$JS.API.STREAM.CREATE.ORD",
        json!({"name": "ORD", "subjects": ["ord.>"]}),
    )
    .await;
    assert!(made.get("error").is_none(), "{made}");
    publish(&a, "ord.new", 5).await;
    for (client, name) in [(&b, "AGG"), (&c, "AGG")] {
        let made = call(
            client,
            "$JS.API.STREAM.CREATE.AGG",
            json!({"name": name, "subjects": ["agg"], "sources": [external_source()]}),
        )
        .await;
        assert!(made.get("error").is_none(), "{made}");
    }
    holds(&b, "AGG", 5).await;
    let info = call_raw(&b, "$JS.API.STREAM.INFO.AGG", "").await;
    assert_eq!(
        info["sources"][0]["external"],
        json!({"api": "$JS.A.API", "deliver": "deliver.b"}),
        "{info}"
    );
    // C imports the API but not the deliveries: as with nats-server, nothing reaches it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(messages(&c, "AGG").await, 0);
    // The copy names its origin with the API prefix's hash, as nats-server's index name does.
    let first = call(&b, "$JS.API.STREAM.MSG.GET.AGG", json!({"seq": 1})).await;
    let headers = String::from_utf8(base64_decode(
        first["message"]["hdrs"].as_str().expect("headers"),
    ))
    .expect("utf8");
    let source = headers
        .lines()
        .find_map(|l| l.strip_prefix("Nats-Stream-Source: "))
        .unwrap_or_else(|| panic!("no source header in {headers}"));
    assert!(source.starts_with("ORD:"), "{source}");
    assert_eq!(first["message"]["subject"], "ord.new");
    // Killed and restarted, B's source goes on from where it was: nothing twice.
    let store = server.kill_and_take_store();
    drop((a, b, c));
    let conf = conf_dir.path().join("server.conf");
    let server = TestServer::start_in(store, &["-c", conf.to_str().expect("utf-8 path")]);
    let a = connect_as(&server, "a").await;
    let b = connect_as(&server, "b").await;
    publish(&a, "ord.more", 3).await;
    holds(&b, "AGG", 8).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(messages(&b, "AGG").await, 8);
}

/// Standard base64, as the API encodes headers.
fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|c| *c != b'=') {
        let value = ALPHABET.iter().position(|a| *a == c).expect("base64") as u32;
        buffer = (buffer << 6) | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}

#[tokio::test]
async fn a_mirror_of_another_accounts_stream_keeps_its_sequences() {
    let (server, _conf) = TestServer::start_with_config(ACCOUNTS, &[]);
    let a = connect_as(&server, "a").await;
    let b = connect_as(&server, "b").await;
    let c = connect_as(&server, "c").await;
    call(
        &a,
        "$JS.API.STREAM.CREATE.ORD",
        json!({"name": "ORD", "subjects": ["ord.>"]}),
    )
    .await;
    publish(&a, "ord.new", 4).await;
    call(&a, "$JS.API.STREAM.MSG.DELETE.ORD", json!({"seq": 2})).await;
    let mirror = json!({"name": "ORD", "external": {"api": "$JS.A.API", "deliver": "deliver.b"}});
    for client in [&b, &c] {
        let made = call(
            client,
            "$JS.API.STREAM.CREATE.BACKUP",
            json!({"name": "BACKUP", "mirror": mirror}),
        )
        .await;
        assert!(made.get("error").is_none(), "{made}");
    }
    holds(&b, "BACKUP", 3).await;
    let info = call_raw(&b, "$JS.API.STREAM.INFO.BACKUP", "").await;
    assert_eq!(info["state"]["last_seq"], 4, "{info}");
    assert_eq!(info["mirror"]["external"]["api"], "$JS.A.API", "{info}");
    assert_eq!(info["config"]["mirror"], mirror, "{info}");
    // Without the deliveries' import, C's mirror has no origin.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(messages(&c, "BACKUP").await, 0);
    // Bad prefixes are refused before anything is made.
    let bad = call(
        &b,
        "$JS.API.STREAM.CREATE.BAD",
        json!({"name": "BAD", "mirror": {"name": "ORD", "external": {"api": "$JS.API"}}}),
    )
    .await;
    assert_eq!(bad["error"]["err_code"], 10021, "{bad}");
}
