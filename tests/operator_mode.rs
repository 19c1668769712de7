//! Operator mode: accounts and users issued as JWTs (as `nsc` issues them), checked up the
//! chain of trust. Users connect with `.creds` through async-nats; every JWT that is badly
//! signed, expired, revoked or from an untrusted issuer is refused while the others work.

mod common;

use std::time::Duration;

use async_nats::ConnectOptions;
use common::{within, TestServer};
use futures::StreamExt;
use jetlog::server::jwt::{encode, now_secs};
use nkeys::KeyPair;
use serde_json::{json, Value};

/// An operator and what it issues.
struct Authority {
    operator: KeyPair,
    operator_jwt: String,
}

impl Authority {
    fn new() -> Self {
        let operator = KeyPair::new_operator();
        let operator_jwt = encode(
            json!({"sub": operator.public_key(), "name": "OP", "nats": {"type": "operator", "version": 2}}),
            &operator,
        );
        Self {
            operator,
            operator_jwt,
        }
    }

    /// An account JWT with `nats` fields merged over the defaults.
    fn account(&self, account: &KeyPair, name: &str, nats: Value) -> String {
        let mut body = json!({"type": "account", "version": 2});
        merge(&mut body, nats);
        encode(
            json!({"sub": account.public_key(), "name": name, "nats": body}),
            &self.operator,
        )
    }
}

fn merge(into: &mut Value, more: Value) {
    if let (Some(map), Value::Object(more)) = (into.as_object_mut(), more) {
        map.extend(more);
    }
}

/// A user of `issuer` (an account or one of its signing keys): its JWT and `.creds` text.
fn user(issuer: &KeyPair, name: &str, claims: Value, nats: Value) -> (KeyPair, String) {
    let user = KeyPair::new_user();
    let mut body = json!({"type": "user", "version": 2});
    merge(&mut body, nats);
    let mut all = json!({"sub": user.public_key(), "name": name, "nats": body});
    merge(&mut all, claims);
    let jwt = encode(all, issuer);
    let creds = format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n",
        user.seed().expect("seed")
    );
    (user, creds)
}

fn start(
    authority: &Authority,
    accounts: &[(&KeyPair, String)],
) -> (TestServer, tempfile::TempDir) {
    let preload: Vec<String> = accounts
        .iter()
        .map(|(key, jwt)| format!("  {}: \"{jwt}\"", key.public_key()))
        .collect();
    let conf = format!(
        "operator: \"{}\"\nresolver: MEMORY\nresolver_preload: {{\n{}\n}}\n",
        authority.operator_jwt,
        preload.join("\n")
    );
    TestServer::start_with_config(&conf, &[])
}

async fn connect(server: &TestServer, creds: &str) -> Result<async_nats::Client, String> {
    let options = ConnectOptions::with_credentials(creds).map_err(|e| e.to_string())?;
    tokio::time::timeout(
        Duration::from_secs(5),
        options.max_reconnects(0).connect(server.url()),
    )
    .await
    .map_err(|_| "timed out".to_string())?
    .map_err(|e| e.to_string())
}

/// A raw connection that sent CONNECT with `jwt`, the nonce signed by `signer` (or not),
/// followed by `then`.
fn raw_session(
    server: &TestServer,
    jwt: &str,
    signer: Option<&KeyPair>,
    then: &str,
) -> common::RawClient {
    use base64::Engine;
    let mut raw = server.raw();
    let info = raw.read_info();
    let nonce = info["nonce"]
        .as_str()
        .expect("a nonce in operator mode")
        .to_string();
    let sig = signer.map(|k| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(k.sign(nonce.as_bytes()).expect("sign"))
    });
    let hello = json!({"verbose": false, "jwt": jwt, "sig": sig});
    raw.send(format!("CONNECT {hello}\r\n{then}").as_bytes());
    raw
}

/// What the server answers a raw CONNECT (and a PING) carrying `jwt`.
fn raw_connect(server: &TestServer, jwt: &str, signer: Option<&KeyPair>) -> String {
    let mut raw = raw_session(server, jwt, signer, "PING\r\n");
    let (got, _) = raw.read_for(Duration::from_secs(2));
    String::from_utf8_lossy(&got).into_owned()
}

fn jwt_of(creds: &str) -> String {
    creds.lines().nth(1).expect("jwt line").to_string()
}

#[tokio::test]
async fn jwt_users_connect_and_accounts_stay_apart() {
    let authority = Authority::new();
    let (a, b) = (KeyPair::new_account(), KeyPair::new_account());
    let a_signer = KeyPair::new_account();
    let a_jwt = authority.account(&a, "A", json!({"signing_keys": [a_signer.public_key()]}));
    let b_jwt = authority.account(&b, "B", json!({}));
    let (server, _dir) = start(&authority, &[(&a, a_jwt), (&b, b_jwt)]);
    let (_, alice) = user(&a, "alice", json!({}), json!({}));
    let (_, bob) = user(&b, "bob", json!({}), json!({}));
    // Issued by the account's signing key, naming the account.
    let (_, carol) = user(
        &a_signer,
        "carol",
        json!({}),
        json!({"issuer_account": a.public_key()}),
    );
    let alice = connect(&server, &alice).await.expect("alice connects");
    let bob = connect(&server, &bob).await.expect("bob connects");
    let carol = connect(&server, &carol).await.expect("carol connects");
    let mut alice_sub = alice.subscribe("news").await.unwrap();
    let mut bob_sub = bob.subscribe("news").await.unwrap();
    alice.flush().await.unwrap();
    bob.flush().await.unwrap();
    // A round trip in A settles alice's subscription.
    within(
        "alice's round trip",
        alice.request("nobody.home", "".into()),
    )
    .await
    .unwrap_err();
    carol.publish("news", "for A".into()).await.unwrap();
    carol.flush().await.unwrap();
    let got = within("A's news", alice_sub.next()).await.expect("message");
    assert_eq!(got.payload, bytes::Bytes::from("for A"));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), bob_sub.next())
            .await
            .is_err(),
        "B heard A's news"
    );
}

#[tokio::test]
async fn bad_expired_revoked_and_untrusted_jwts_are_refused() {
    let authority = Authority::new();
    let a = KeyPair::new_account();
    let (revoked_key, revoked) = user(&a, "revoked", json!({"iat": now_secs() - 60}), json!({}));
    let a_jwt = authority.account(
        &a,
        "A",
        json!({"revocations": {revoked_key.public_key(): now_secs()}}),
    );
    let rogue_operator = Authority::new();
    let rogue = KeyPair::new_account();
    let rogue_jwt = rogue_operator.account(&rogue, "ROGUE", json!({}));
    let (server, _dir) = start(&authority, &[(&a, a_jwt), (&rogue, rogue_jwt)]);

    let (good_key, good) = user(&a, "good", json!({}), json!({}));
    let reply = raw_connect(&server, &jwt_of(&good), Some(&good_key));
    assert!(reply.contains("PONG"), "{reply}");
    let refused = |reply: &str| reply.contains("-ERR 'Authorization Violation'");
    // The nonce unsigned, or signed by another key.
    assert!(refused(&raw_connect(&server, &jwt_of(&good), None)));
    assert!(refused(&raw_connect(
        &server,
        &jwt_of(&good),
        Some(&KeyPair::new_user())
    )));
    // Issued by a key that is neither the account nor one of its signing keys.
    let stranger = KeyPair::new_account();
    let (key, forged) = user(
        &stranger,
        "forged",
        json!({}),
        json!({"issuer_account": a.public_key()}),
    );
    assert!(refused(&raw_connect(&server, &jwt_of(&forged), Some(&key))));
    let (key, expired) = user(&a, "expired", json!({"exp": now_secs() - 1}), json!({}));
    assert!(refused(&raw_connect(
        &server,
        &jwt_of(&expired),
        Some(&key)
    )));
    assert!(refused(&raw_connect(
        &server,
        &jwt_of(&revoked),
        Some(&revoked_key)
    )));
    // An account issued by an operator the server does not trust was never loaded.
    let (key, rogue_user) = user(&rogue, "rogue", json!({}), json!({}));
    assert!(refused(&raw_connect(
        &server,
        &jwt_of(&rogue_user),
        Some(&key)
    )));
    // A claim asking for what jetlog does not enforce is refused rather than half-honoured.
    let times = json!({"times": [{"start": "08:00:00", "end": "17:00:00"}]});
    let (key, timed) = user(&a, "timed", json!({}), times);
    assert!(refused(&raw_connect(&server, &jwt_of(&timed), Some(&key))));
    // Sources and connection types are checked.
    let (key, away) = user(&a, "away", json!({}), json!({"src": ["10.0.0.0/8"]}));
    assert!(refused(&raw_connect(&server, &jwt_of(&away), Some(&key))));
    let (key, local) = user(&a, "local", json!({}), json!({"src": "127.0.0.0/8, ::1"}));
    assert!(raw_connect(&server, &jwt_of(&local), Some(&key)).contains("PONG"));
    let types = json!({"allowed_connection_types": ["WEBSOCKET"]});
    let (key, websocket) = user(&a, "ws", json!({}), types);
    assert!(refused(&raw_connect(
        &server,
        &jwt_of(&websocket),
        Some(&key)
    )));
    // The server kept serving the good user's account throughout.
    assert!(connect(&server, &good).await.is_ok());
}

#[tokio::test]
async fn permissions_jetstream_limits_and_expiry_come_from_the_jwts() {
    let authority = Authority::new();
    let a = KeyPair::new_account();
    let a_jwt = authority.account(
        &a,
        "A",
        json!({"limits": {"disk_storage": -1, "mem_storage": -1, "streams": 1}}),
    );
    let b = KeyPair::new_account();
    let b_jwt = authority.account(&b, "B", json!({}));
    let (server, _dir) = start(&authority, &[(&a, a_jwt), (&b, b_jwt)]);

    let (key, narrow) = user(&a, "narrow", json!({}), json!({"pub": {"allow": ["ok.>"]}}));
    let reply = raw_connect(&server, &jwt_of(&narrow), Some(&key));
    assert!(reply.contains("PONG"), "{reply}");
    let mut raw = raw_session(
        &server,
        &jwt_of(&narrow),
        Some(&key),
        "PUB ok.1 0\r\n\r\nPUB no 0\r\n\r\nPING\r\n",
    );
    let got = raw.read_until_contains(b"PONG", Duration::from_secs(5));
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.contains("Permissions Violation for Publish to \"no\""),
        "{text}"
    );
    assert!(!text.contains("\"ok.1\""), "{text}");

    // A's JWT enables JetStream with at most one stream; B's does not enable it.
    let (_, app) = user(&a, "app", json!({}), json!({}));
    let js = async_nats::jetstream::new(connect(&server, &app).await.expect("connect"));
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "ONE".into(),
        ..Default::default()
    })
    .await
    .expect("the first stream");
    let err = js
        .create_stream(async_nats::jetstream::stream::Config {
            name: "TWO".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("10027"), "{err}");
    let (_, other) = user(&b, "other", json!({}), json!({}));
    let b_client = connect(&server, &other).await.expect("connect");
    let reply = within("INFO in B", b_client.request("$JS.API.INFO", "".into()))
        .await
        .expect("answered");
    assert!(String::from_utf8_lossy(&reply.payload).contains("10039"));

    // A user whose JWT expires in a moment is cut off then.
    let (key, brief) = user(&a, "brief", json!({"exp": now_secs() + 2}), json!({}));
    let mut raw = raw_session(&server, &jwt_of(&brief), Some(&key), "PING\r\n");
    raw.read_until_contains(b"PONG", Duration::from_secs(5));
    let got = raw.read_until_contains(b"User Authentication Expired", Duration::from_secs(6));
    assert!(
        String::from_utf8_lossy(&got).contains("-ERR 'User Authentication Expired'"),
        "{got:?}"
    );
}

/// A server on the directory resolver, with the system account `sys` and account JWTs in
/// `dir`; returns it and the config path (for a restart on the same directory).
fn start_on_dir(
    authority: &Authority,
    sys: &KeyPair,
    dir: &std::path::Path,
    store: tempfile::TempDir,
) -> TestServer {
    let conf = format!(
        "operator: \"{}\"\nsystem_account: {}\nresolver {{ type: full, dir: \"{}\" }}\n",
        authority.operator_jwt,
        sys.public_key(),
        dir.join("jwt").display()
    );
    let path = dir.join("dir.conf");
    std::fs::write(&path, conf).expect("write config");
    TestServer::start_in(store, &["-c", path.to_str().expect("utf-8 path")])
}

#[tokio::test]
async fn account_jwts_pushed_while_running_take_effect_and_survive_a_restart() {
    let authority = Authority::new();
    let sys = KeyPair::new_account();
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("jwt")).unwrap();
    std::fs::write(
        dir.path()
            .join("jwt")
            .join(format!("{}.jwt", sys.public_key())),
        authority.account(&sys, "SYS", json!({})),
    )
    .unwrap();
    let server = start_on_dir(&authority, &sys, dir.path(), tempfile::tempdir().unwrap());
    let (_, admin) = user(&sys, "admin", json!({}), json!({}));
    let admin = connect(&server, &admin).await.expect("admin connects");

    // A new account, pushed: its users get in.
    let b = KeyPair::new_account();
    let (old_key, old_user) = user(&b, "old", json!({"iat": now_secs() - 60}), json!({}));
    let (_, new_user) = user(&b, "new", json!({}), json!({}));
    assert!(
        connect(&server, &new_user).await.is_err(),
        "B is not known yet"
    );
    let push = |jwt: String| {
        let admin = admin.clone();
        async move {
            let reply = within("push", admin.request("$SYS.REQ.CLAIMS.UPDATE", jwt.into()))
                .await
                .expect("answered");
            serde_json::from_slice::<Value>(&reply.payload).expect("JSON")
        }
    };
    let reply = push(authority.account(&b, "B", json!({}))).await;
    assert_eq!(reply["data"]["code"], 200, "{reply}");
    assert_eq!(reply["data"]["account"], b.public_key().as_str(), "{reply}");
    assert!(raw_connect(&server, &jwt_of(&old_user), Some(&old_key)).contains("PONG"));

    // An update revokes the old user and switches JetStream on.
    let updated = authority.account(
        &b,
        "B",
        json!({"revocations": {old_key.public_key(): now_secs() - 30}, "limits": {"disk_storage": -1}}),
    );
    let reply = push(updated.clone()).await;
    assert_eq!(reply["data"]["code"], 200, "{reply}");
    assert!(raw_connect(&server, &jwt_of(&old_user), Some(&old_key))
        .contains("Authorization Violation"));
    let client = connect(&server, &new_user).await.expect("new user");
    let js = async_nats::jetstream::new(client);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "KEPT".into(),
        ..Default::default()
    })
    .await
    .expect("JetStream is on for B now");
    let lookup = within(
        "lookup",
        admin.request(
            format!("$SYS.REQ.ACCOUNT.{}.CLAIMS.LOOKUP", b.public_key()),
            "".into(),
        ),
    )
    .await
    .expect("answered");
    assert_eq!(String::from_utf8_lossy(&lookup.payload), updated);

    // A JWT from an operator the server does not trust is refused, and changes nothing.
    let rogue = Authority::new().account(&b, "B", json!({}));
    let reply = push(rogue).await;
    assert_eq!(reply["error"]["code"], 400, "{reply}");
    // Switching JetStream off under its streams is refused.
    let reply = push(authority.account(&b, "B", json!({}))).await;
    assert_eq!(reply["error"]["code"], 500, "{reply}");

    // The pushed JWT is what a restart reads.
    let store = server.store_handoff();
    let server = start_on_dir(&authority, &sys, dir.path(), store);
    let client = connect(&server, &new_user)
        .await
        .expect("B is known after a restart");
    let js = async_nats::jetstream::new(client);
    js.get_stream("KEPT")
        .await
        .expect("B's stream is still there");
}

#[tokio::test]
async fn subscription_payload_and_connection_limits_come_from_the_jwts() {
    let authority = Authority::new();
    let a = KeyPair::new_account();
    let a_jwt = authority.account(&a, "A", json!({"limits": {"conn": 1, "payload": 1000}}));
    let (server, _dir) = start(&authority, &[(&a, a_jwt)]);
    let (key, small) = user(&a, "small", json!({}), json!({"subs": 1, "payload": 8}));
    let then = "SUB a 1\r\nSUB b 2\r\nPING\r\n";
    let mut raw = raw_session(&server, &jwt_of(&small), Some(&key), then);
    let got = raw.read_until_contains(b"PONG", Duration::from_secs(5));
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.contains("-ERR 'maximum subscriptions exceeded'"),
        "{text}"
    );
    // The account allows one connection: a second is refused while the first is open.
    let (key2, other) = user(&a, "other", json!({}), json!({}));
    let second = raw_connect(&server, &jwt_of(&other), Some(&key2));
    assert!(
        second.contains("-ERR 'maximum account active connections exceeded'"),
        "{second}"
    );
    // The user's payload limit (8) is below the account's and the server's.
    raw.send(b"PUB a 20\r\n01234567890123456789\r\n");
    let (got, closed) = raw.read_for(Duration::from_secs(2));
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.contains("-ERR 'Maximum Payload Violation'") && closed,
        "{text}"
    );
    // Once it is gone, the account has room again.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let again = raw_connect(&server, &jwt_of(&other), Some(&key2));
        if again.contains("PONG") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{again}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
