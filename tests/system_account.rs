//! The system account: clients' connect and disconnect events, and the server's requests
//! (`$SYS.REQ.…`) answered with the monitoring JSON, the full set for the system account's
//! users and only their own connections and stats for everyone else.

mod common;

use common::{within, TestServer};
use futures::StreamExt;
use serde_json::Value;

const CONF: &str = r#"
accounts {
  APP: { jetstream: enabled, users: [ { user: app, password: pw } ] }
  OPS: { users: [ { user: admin, password: pw } ] }
}
system_account: OPS
"#;

fn start(conf: &str) -> (TestServer, tempfile::TempDir) {
    TestServer::start_with_config(conf, &[])
}

async fn connect(server: &TestServer, user: &str) -> async_nats::Client {
    common::connect_as(server, user).await
}

async fn ask(client: &async_nats::Client, subject: &str, body: &str) -> Value {
    let reply = within(
        subject,
        client.request(subject.to_string(), body.to_string().into()),
    )
    .await
    .unwrap_or_else(|e| panic!("{subject}: {e}"));
    serde_json::from_slice(&reply.payload).expect("JSON reply")
}

#[tokio::test]
async fn the_system_account_hears_clients_come_and_go() {
    let (server, _dir) = start(CONF);
    let admin = connect(&server, "admin").await;
    let mut connects = admin.subscribe("$SYS.ACCOUNT.*.CONNECT").await.unwrap();
    let mut disconnects = admin.subscribe("$SYS.ACCOUNT.*.DISCONNECT").await.unwrap();
    // The admin's own request answered means its subscriptions are in place.
    ask(&admin, "$SYS.REQ.SERVER.PING", "").await;
    let app = connect(&server, "app").await;
    let event = within("connect event", connects.next())
        .await
        .expect("event");
    assert_eq!(event.subject.as_str(), "$SYS.ACCOUNT.APP.CONNECT");
    let body: Value = serde_json::from_slice(&event.payload).unwrap();
    assert_eq!(
        body["type"], "io.nats.server.advisory.v1.client_connect",
        "{body}"
    );
    assert_eq!(body["client"]["acc"], "APP", "{body}");
    assert_eq!(body["client"]["user"], "app", "{body}");
    assert!(body["server"]["id"]
        .as_str()
        .is_some_and(|id| id.starts_with('N')));
    app.publish("x", "hello".into()).await.unwrap();
    app.flush().await.unwrap();
    drop(app);
    let event = within("disconnect event", disconnects.next())
        .await
        .expect("event");
    let body: Value = serde_json::from_slice(&event.payload).unwrap();
    assert_eq!(
        body["type"], "io.nats.server.advisory.v1.client_disconnect",
        "{body}"
    );
    assert_eq!(body["reason"], "Client Closed", "{body}");
    assert_eq!(body["received"]["msgs"], 1, "{body}");
}

#[tokio::test]
async fn system_users_ask_the_server_about_itself() {
    let (server, _dir) = start(CONF);
    let app = connect(&server, "app").await;
    let admin = connect(&server, "admin").await;
    let ping = ask(&admin, "$SYS.REQ.SERVER.PING", "").await;
    let id = ping["server"]["id"]
        .as_str()
        .expect("server id")
        .to_string();
    assert_eq!(ping["statsz"]["connections"], 2, "{ping}");
    let varz = ask(&admin, &format!("$SYS.REQ.SERVER.{id}.VARZ"), "").await;
    assert_eq!(varz["data"]["server_id"], id.as_str(), "{varz}");
    let jsz = ask(&admin, "$SYS.REQ.SERVER.PING.JSZ", r#"{"accounts": true}"#).await;
    assert_eq!(jsz["data"]["account_details"][0]["name"], "APP", "{jsz}");
    let connz = ask(&admin, "$SYS.REQ.ACCOUNT.APP.CONNZ", "").await;
    assert_eq!(connz["data"]["num_connections"], 1, "{connz}");
    let _sub = app.subscribe("app.things").await.unwrap();
    app.flush().await.unwrap();
    ask(&app, "$SYS.REQ.SERVER.PING.CONNZ", "").await;
    let subsz = ask(
        &admin,
        "$SYS.REQ.ACCOUNT.APP.SUBSZ",
        r#"{"subscriptions": true}"#,
    )
    .await;
    let listed = subsz["data"]["subscriptions_list"]
        .as_array()
        .expect("list");
    assert!(
        listed.iter().any(|s| s["subject"] == "app.things"),
        "{subsz}"
    );
    assert!(listed.iter().all(|s| s["account"] == "APP"), "{subsz}");
    let all = ask(&admin, "$SYS.REQ.SERVER.PING.CONNZ", "").await;
    assert_eq!(all["data"]["num_connections"], 2, "{all}");
    let bad = ask(&admin, "$SYS.REQ.SERVER.PING.CONNZ", "{not json").await;
    assert_eq!(bad["error"]["code"], 400, "{bad}");

    // Other accounts see their own connections and stats, and nothing else.
    let own = ask(&app, "$SYS.REQ.SERVER.PING.CONNZ", "").await;
    assert_eq!(own["data"]["num_connections"], 1, "{own}");
    let statz = ask(&app, "$SYS.REQ.ACCOUNT.PING.STATZ", "").await;
    let accounts = statz["data"]["account_statz"].as_array().expect("list");
    assert_eq!(accounts.len(), 1, "{statz}");
    assert_eq!(accounts[0]["acc"], "APP", "{statz}");
    for subject in ["$SYS.REQ.SERVER.PING", "$SYS.REQ.ACCOUNT.OPS.CONNZ"] {
        common::assert_no_responders(&app, subject).await;
    }
}

#[tokio::test]
async fn without_accounts_the_global_account_sees_its_own_connections() {
    let server = TestServer::start(&[]);
    let client = within("connect", async_nats::connect(server.url()))
        .await
        .expect("connect");
    let own = ask(&client, "$SYS.REQ.SERVER.PING.CONNZ", "").await;
    assert_eq!(own["data"]["num_connections"], 1, "{own}");
    common::assert_no_responders(&client, "$SYS.REQ.SERVER.PING").await;
}
