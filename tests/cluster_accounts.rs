//! Accounts across a cluster: interest and messages keep their account over routes, and the
//! system account's requests reach every server, each answering for itself as nats-server's
//! do.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::cluster::{interest_reached, member_args, wait_for_mesh};
use common::{connect_as, within, TestServer};
use futures::StreamExt;

const CONF: &str = r#"
accounts {
  APP: { users: [ { user: app, password: pw } ] }
  OTHER: { users: [ { user: other, password: pw } ] }
  OPS: { users: [ { user: admin, password: pw } ] }
}
system_account: OPS
"#;

fn member(name: &str, seed: Option<&str>) -> (TestServer, tempfile::TempDir) {
    let args = member_args(name, seed);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    TestServer::start_with_config(CONF, &args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_stay_apart_across_routes_and_every_server_answers_the_system_account() {
    let (s0, _d0) = member("S0", None);
    let (s1, _d1) = member("S1", Some(&s0.route_url()));
    let servers = [s0, s1];
    wait_for_mesh(&servers);

    // The same subject in two accounts: each subscriber hears only its own account.
    let app_sub = connect_as(&servers[1], "app").await;
    let other_sub = connect_as(&servers[1], "other").await;
    let mut app_msgs = app_sub.subscribe("shared.subject").await.unwrap();
    let mut other_msgs = other_sub.subscribe("shared.subject").await.unwrap();
    let app_pub = connect_as(&servers[0], "app").await;
    let other_pub = connect_as(&servers[0], "other").await;
    interest_reached(&app_pub, &app_sub).await;
    interest_reached(&other_pub, &other_sub).await;
    app_pub
        .publish("shared.subject", "for app".into())
        .await
        .unwrap();
    app_pub.flush().await.unwrap();
    let got = within("APP's message", app_msgs.next()).await.unwrap();
    assert_eq!(got.payload, "for app");
    if let Ok(Some(leak)) =
        tokio::time::timeout(Duration::from_millis(300), other_msgs.next()).await
    {
        panic!("OTHER heard APP's message: {leak:?}");
    }

    // One ping, one answer from each server.
    let admin = connect_as(&servers[0], "admin").await;
    let admin_s1 = connect_as(&servers[1], "admin").await;
    interest_reached(&admin, &admin_s1).await;
    let inbox = admin.new_inbox();
    let mut replies = admin.subscribe(inbox.clone()).await.unwrap();
    admin
        .publish_with_reply("$SYS.REQ.SERVER.PING", inbox, "".into())
        .await
        .unwrap();
    admin.flush().await.unwrap();
    let mut names = BTreeSet::new();
    while let Ok(Some(reply)) = tokio::time::timeout(Duration::from_secs(2), replies.next()).await {
        let body: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
        let name = body["server"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(names.insert(name.clone()), "{name} answered twice");
        if names.len() == 2 {
            break;
        }
    }
    assert_eq!(
        names,
        BTreeSet::from(["S0".to_string(), "S1".to_string()]),
        "every server answers once"
    );
}
