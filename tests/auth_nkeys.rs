//! nkey users and bcrypt-hashed secrets (issue 16), through async-nats' own options against
//! the real server: INFO carries a fresh nonce when nkey users exist, a signature of it by
//! the user's key lets the user in with its permissions, and a hash in the config file is
//! checked with bcrypt. Raw sockets show that a signature of another connection's nonce (a
//! replay) is refused.

mod common;

use std::time::Duration;

use async_nats::ConnectOptions;
use base64::Engine;
use common::{within, TestServer};
use futures::StreamExt;

fn config(dir: &std::path::Path, users: &str) -> String {
    let path = dir.join("auth.conf");
    std::fs::write(
        &path,
        format!("authorization {{\n  users: [\n{users}\n  ]\n}}\n"),
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

#[tokio::test]
async fn an_nkey_user_signs_the_nonce_and_gets_its_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let key = nkeys::KeyPair::new_user();
    let seed = key.seed().unwrap();
    let users = format!(
        "    {{ nkey: {:?}, permissions: {{ publish: \"ok.>\", subscribe: [\"ok.>\", \"_INBOX.>\"] }} }}\n    {{ user: plain, password: secret }}",
        key.public_key()
    );
    let conf = config(dir.path(), &users);
    let server = TestServer::start(&["-c", &conf]);
    let info = server.raw().read_info();
    let nonce = info["nonce"].as_str().expect("a nonce in INFO").to_string();
    assert_eq!(nonce.len(), 15, "{info}");
    assert_ne!(
        server.raw().read_info()["nonce"],
        nonce,
        "each connection gets its own"
    );

    let client = within(
        "connect",
        ConnectOptions::new()
            .nkey(seed.clone())
            .connect(server.url()),
    )
    .await
    .expect("nkey connect");
    let mut sub = client.subscribe("ok.x").await.unwrap();
    client.publish("ok.x", "signed".into()).await.unwrap();
    client.flush().await.unwrap();
    let msg = within("message", sub.next()).await.unwrap();
    assert_eq!(&msg.payload[..], b"signed");
    // Its permissions hold.
    client.publish("other", "no".into()).await.unwrap();
    client.flush().await.unwrap();

    let stranger = nkeys::KeyPair::new_user().seed().unwrap();
    let refused = tokio::time::timeout(
        Duration::from_secs(10),
        ConnectOptions::new().nkey(stranger).connect(server.url()),
    )
    .await
    .expect("bounded");
    assert!(refused.is_err(), "an unknown nkey was let in");
    // The password user still logs in beside the nkey user.
    let plain = within(
        "connect",
        ConnectOptions::with_user_and_password("plain".into(), "secret".into())
            .connect(server.url()),
    )
    .await;
    assert!(plain.is_ok());
}

#[test]
fn a_signature_of_another_connections_nonce_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = nkeys::KeyPair::new_user();
    let conf = config(
        dir.path(),
        &format!("    {{ nkey: {:?} }}", key.public_key()),
    );
    let server = TestServer::start(&["-c", &conf]);
    let sign = |nonce: &str| {
        let sig = key.sign(nonce.as_bytes()).unwrap();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig)
    };
    let connect = |sig: &str| {
        format!(
            "CONNECT {{\"verbose\":false,\"nkey\":\"{}\",\"sig\":\"{sig}\"}}\r\nPING\r\n",
            key.public_key()
        )
    };
    let mut first = server.raw();
    let nonce = first.read_info()["nonce"].as_str().unwrap().to_string();
    let signature = sign(&nonce);
    first.send(connect(&signature).as_bytes());
    let got = first.read_until_contains(b"PONG\r\n", Duration::from_secs(5));
    assert!(
        got.ends_with(b"PONG\r\n"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    // The same signature on a new connection, whose nonce differs.
    let mut replay = server.raw();
    replay.read_info();
    replay.send(connect(&signature).as_bytes());
    let (got, closed) = replay.read_for(Duration::from_secs(2));
    let text = String::from_utf8_lossy(&got);
    assert!(text.contains("-ERR 'Authorization Violation'"), "{text}");
    assert!(closed);
}

#[tokio::test]
async fn bcrypt_hashed_passwords_and_tokens_are_checked_with_bcrypt() {
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("s3cret", 6).unwrap();
    let conf = config(
        dir.path(),
        &format!("    {{ user: alice, password: {hash:?} }}"),
    );
    let server = TestServer::start(&["-c", &conf]);
    let ok = within(
        "connect",
        ConnectOptions::with_user_and_password("alice".into(), "s3cret".into())
            .connect(server.url()),
    )
    .await;
    assert!(ok.is_ok(), "the right password was refused");
    let wrong = tokio::time::timeout(
        Duration::from_secs(10),
        ConnectOptions::with_user_and_password("alice".into(), hash.clone()).connect(server.url()),
    )
    .await
    .expect("bounded");
    assert!(wrong.is_err(), "the hash itself was taken as the password");

    let token_conf = dir.path().join("token.conf");
    let token_hash = bcrypt::hash("t0ken", 6).unwrap();
    std::fs::write(
        &token_conf,
        format!("authorization {{ token: {token_hash:?} }}\n"),
    )
    .unwrap();
    let server = TestServer::start(&["-c", token_conf.to_str().unwrap()]);
    let ok = within(
        "connect",
        ConnectOptions::with_token("t0ken".into()).connect(server.url()),
    )
    .await;
    assert!(ok.is_ok(), "the right token was refused");
}

#[test]
fn a_malformed_nkey_in_the_config_stops_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let conf = config(dir.path(), "    { nkey: \"UNOTAKEY\" }");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_jetlog"))
        .args(["server", "-t", "-c", &conf])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not a user's public nkey"), "{stderr}");
}
