//! Users with permissions from a config file (`authorization { users: [...] }`): refused
//! publishes and subscriptions get nats-server's `-ERR` and the connection stays open; a
//! wildcard subscription never receives a denied subject; default permissions apply to users
//! without their own.

mod common;

use std::time::Duration;

use common::{contains, TestServer};

const CONFIG: &str = r#"
authorization {
  default_permissions: { publish: "public.>", subscribe: "public.>" }
  users: [
    { user: admin, password: a, permissions: { publish: ">", subscribe: ">" } }
    { user: app, password: b, permissions: {
        publish: { allow: ["orders.>", "_INBOX.>"], deny: "orders.secret.>" }
        subscribe: { allow: ["orders.>", "_INBOX.>"], deny: ["orders.secret.>"] }
    } }
    { user: guest, password: c }
  ]
}
"#;

const WAIT: Duration = Duration::from_secs(5);

fn start() -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.conf");
    std::fs::write(&path, CONFIG).unwrap();
    let server = TestServer::start(&["-c", path.to_str().unwrap()]);
    (server, dir)
}

fn login(server: &TestServer, user: &str, pass: &str) -> common::RawClient {
    let mut client = server.raw();
    client.read_info();
    let connect = format!(
        "CONNECT {{\"verbose\":false,\"user\":\"{user}\",\"pass\":\"{pass}\"}}\r\nPING\r\n"
    );
    client.send(connect.as_bytes());
    client.read_until_contains(b"PONG\r\n", WAIT);
    client
}

#[test]
fn refused_publish_and_subscribe_get_nats_server_errors_and_keep_the_connection() {
    let (server, _dir) = start();
    let mut app = login(&server, "app", "b");
    app.send(b"PUB billing.x 2\r\nhi\r\nPING\r\n");
    let got = app.read_until_contains(b"PONG\r\n", WAIT);
    assert!(
        contains(
            &got,
            b"-ERR 'Permissions Violation for Publish to \"billing.x\"'\r\n"
        ),
        "{}",
        String::from_utf8_lossy(&got)
    );
    app.send(b"PUB orders.secret.plan 2\r\nhi\r\nPING\r\n");
    let got = app.read_until_contains(b"PONG\r\n", WAIT);
    assert!(contains(
        &got,
        b"Permissions Violation for Publish to \"orders.secret.plan\""
    ));
    app.send(b"SUB billing.> 1\r\nSUB orders.secret.> q 2\r\nPING\r\n");
    let got = app.read_until_contains(b"PONG\r\n", WAIT);
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.contains("-ERR 'Permissions Violation for Subscription to \"billing.>\"'"),
        "{text}"
    );
    assert!(
        text.contains(
            "-ERR 'Permissions Violation for Subscription to \"orders.secret.>\" using queue \"q\"'"
        ),
        "{text}"
    );
    // Still connected, and what is allowed works.
    app.send(b"SUB orders.new 3\r\nPUB orders.new 2\r\nok\r\nPING\r\n");
    let got = app.read_until_contains(b"PONG\r\n", WAIT);
    assert!(
        contains(&got, b"MSG orders.new 3 2\r\nok\r\n"),
        "{}",
        String::from_utf8_lossy(&got)
    );
}

#[test]
fn a_wildcard_subscription_skips_denied_subjects() {
    let (server, _dir) = start();
    let mut app = login(&server, "app", "b");
    app.send(b"SUB orders.> 1\r\nPING\r\n");
    app.read_until_contains(b"PONG\r\n", WAIT);
    let mut admin = login(&server, "admin", "a");
    admin.send(b"PUB orders.secret.plan 6\r\nsecret\r\nPUB orders.new 4\r\nopen\r\nPING\r\n");
    admin.read_until_contains(b"PONG\r\n", WAIT);
    let got = app.read_until_contains(b"MSG orders.new 1 4\r\nopen\r\n", WAIT);
    assert!(
        !contains(&got, b"secret"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    // Nothing else arrives later either.
    app.send(b"PING\r\n");
    let got = app.read_until_contains(b"PONG\r\n", WAIT);
    assert!(
        !contains(&got, b"secret"),
        "{}",
        String::from_utf8_lossy(&got)
    );
}

#[test]
fn users_without_permissions_get_the_defaults_and_wrong_passwords_fail() {
    let (server, _dir) = start();
    let mut guest = login(&server, "guest", "c");
    guest.send(b"PUB public.news 1\r\nx\r\nPUB orders.new 1\r\nx\r\nPING\r\n");
    let got = guest.read_until_contains(b"PONG\r\n", WAIT);
    let text = String::from_utf8_lossy(&got);
    assert!(!text.contains("\"public.news\""), "{text}");
    assert!(
        text.contains("Permissions Violation for Publish to \"orders.new\""),
        "{text}"
    );

    let mut wrong = server.raw();
    wrong.read_info();
    wrong.send(b"CONNECT {\"verbose\":false,\"user\":\"app\",\"pass\":\"a\"}\r\nPING\r\n");
    let got = wrong.read_until_contains(b"Authorization Violation", WAIT);
    assert!(contains(&got, b"-ERR 'Authorization Violation'"));
}

#[test]
fn async_nats_works_within_its_permissions() {
    let (server, _dir) = start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = common::within(
            "connect",
            async_nats::ConnectOptions::with_user_and_password("app".into(), "b".into())
                .connect(server.url()),
        )
        .await
        .expect("connect as app");
        let admin = common::within(
            "connect",
            async_nats::ConnectOptions::with_user_and_password("admin".into(), "a".into())
                .connect(server.url()),
        )
        .await
        .expect("connect as admin");
        let mut service = admin.subscribe("orders.lookup").await.unwrap();
        // A request nobody answers comes back only after the server has read the SUB before it
        // (async-nats' flush does not wait for the server).
        let probe = common::within("probe", admin.request("nobody.here", "".into())).await;
        assert!(probe.is_err(), "nobody answers the probe");
        let responder = tokio::spawn(async move {
            use futures::StreamExt;
            if let Some(msg) = service.next().await {
                if let Some(reply) = msg.reply {
                    admin.publish(reply, "found".into()).await.unwrap();
                    admin.flush().await.unwrap();
                }
            }
        });
        let answer = common::within("request", client.request("orders.lookup", "42".into()))
            .await
            .expect("request within permissions");
        assert_eq!(answer.payload, "found");
        common::within("responder", responder).await.unwrap();
    });
}

#[test]
fn one_account_with_users_and_jetstream_accepts_its_users() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("accounts.conf");
    std::fs::write(
        &path,
        "accounts { APP: { jetstream: enabled, users: [ {user: svc, password: pw} ] } }\n",
    )
    .unwrap();
    let server = TestServer::start(&["-c", path.to_str().unwrap()]);
    let mut svc = login(&server, "svc", "pw");
    svc.send(b"SUB anything 1\r\nPUB anything 1\r\nx\r\nPING\r\n");
    let got = svc.read_until_contains(b"PONG\r\n", WAIT);
    assert!(
        contains(&got, b"MSG anything 1 1\r\nx\r\n"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    let mut stranger = server.raw();
    stranger.read_info();
    stranger.send(b"CONNECT {\"verbose\":false}\r\nPING\r\n");
    let got = stranger.read_until_contains(b"Authorization Violation", WAIT);
    assert!(contains(&got, b"-ERR 'Authorization Violation'"));
}
