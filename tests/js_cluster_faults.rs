//! JetStream in a cluster of three real jetlog servers as they fail and as an operator
//! handles them (issue 20, R1 streams): the meta leader killed with kill -9 or paused with
//! SIGSTOP, and the system account stepping the meta leader down and removing a server.

mod cli_support;
mod common;

use std::time::{Duration, Instant};

use async_nats::jetstream;
use common::js_cluster::{
    api, cluster, connect, leader_of, meta_leader, three_streams, until_answered, META_READY,
};
use common::{within, TestServer};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_meta_leader_elects_another_and_its_stream_comes_back_with_it() {
    let (mut servers, clients) = cluster().await;
    let host_of = three_streams(&clients[0]).await;
    let leader = meta_leader(&servers);
    let lost_name = format!("S{leader}");
    let lost_stream = host_of[&lost_name];
    let js = jetstream::new(clients[(leader + 1) % 3].clone());
    js.publish(lost_stream.to_lowercase(), "before".into())
        .await
        .expect("publish")
        .await
        .expect("ack");
    drop(clients);
    let store = servers.remove(leader).kill_and_take_store();
    let survivor = connect(&servers[0]).await;
    // Another leader takes over: creates work again, placed on a live server.
    let created = until_answered(
        &survivor,
        "$JS.API.STREAM.CREATE.NEW",
        json!({"name": "NEW", "subjects": ["new"]}),
    )
    .await;
    assert_ne!(leader_of(&created), lost_name);
    // The survivors' streams never stopped.
    for (host, stream) in &host_of {
        if *host != lost_name {
            let info = api(
                &survivor,
                &format!("$JS.API.STREAM.INFO.{stream}"),
                json!({}),
            )
            .await;
            assert_eq!(leader_of(&info), *host, "{info}");
        }
    }
    // The lost server comes back with its stream and the message acknowledged before.
    let args = common::cluster::member_args(&lost_name, Some(&servers[0].route_url()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    servers.push(TestServer::start_in(store, &args));
    let info = until_answered(
        &survivor,
        &format!("$JS.API.STREAM.INFO.{lost_stream}"),
        json!({}),
    )
    .await;
    assert_eq!(info["state"]["messages"], 1, "{info}");
    let names = api(&survivor, "$JS.API.STREAM.NAMES", json!({})).await;
    assert_eq!(names["streams"], json!(["A", "B", "C", "NEW"]), "{names}");
}

/// Accounts for the operator's tests: APP runs JetStream, OPS is the system account.
const ACCOUNTS: &str = r#"
accounts {
  APP: { jetstream: enabled, users: [ { user: app, password: pw } ] }
  OPS: { users: [ { user: admin, password: pw } ] }
}
system_account: OPS
"#;

fn jsz_meta(server: &TestServer) -> Value {
    let port = server.monitor_port().expect("monitor");
    let (_, _, body) = common::monitor::get(port, "/jsz");
    let jsz: Value = serde_json::from_str(&body).expect("json");
    jsz["meta_cluster"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_system_account_steps_the_meta_leader_down_and_removes_a_server() {
    let mut servers: Vec<TestServer> = Vec::new();
    let mut dirs = Vec::new();
    for i in 0..3 {
        let seed = servers.first().map(TestServer::route_url);
        let mut args = common::cluster::member_args(&format!("S{i}"), seed.as_deref());
        args.extend(["-m".to_string(), "-1".to_string()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (server, dir) = TestServer::start_with_config(ACCOUNTS, &args);
        servers.push(server);
        dirs.push(dir);
    }
    common::cluster::wait_for_mesh(&servers);
    let app = common::connect_as(&servers[1], "app").await;
    let admin = common::connect_as(&servers[2], "admin").await;
    until_answered(&app, "$JS.API.INFO", json!({})).await;
    let leader_now = || {
        servers
            .iter()
            .map(jsz_meta)
            .find_map(|m| m["replicas"].is_array().then(|| m["leader"].clone()))
    };
    let before = leader_now().expect("a leader");
    // `jetlog server report jetstream` shows the meta group as its leader sees it.
    let admin_url = format!("nats://admin:pw@127.0.0.1:{}", servers[0].port);
    let report = tokio::task::spawn_blocking(move || {
        cli_support::jetlog_at(&admin_url, &["server", "report", "jetstream"])
            .ok()
            .to_string()
    })
    .await
    .expect("report");
    assert!(
        report.contains("Meta group of cluster tc: 3 servers"),
        "{report}"
    );
    let leader_row = report
        .lines()
        .find(|l| l.contains(" yes "))
        .unwrap_or_else(|| panic!("no leader row: {report}"));
    assert!(
        leader_row.contains(before.as_str().expect("name")),
        "{report}"
    );
    // natscli's `server check meta`: only the meta leader answers its JSZ request.
    let leader_name = before.as_str().expect("name").to_owned();
    let admin_url = format!("nats://admin:pw@127.0.0.1:{}", servers[0].port);
    let checks = tokio::task::spawn_blocking(move || {
        let check = |expect: &str| {
            let args = [
                "server",
                "check",
                "meta",
                "--expect",
                expect,
                "--lag-critical",
                "50",
                "--seen-critical",
                "5s",
            ];
            cli_support::jetlog_at(&admin_url, &args)
        };
        (check("3"), check("4"))
    })
    .await
    .expect("checks");
    assert_eq!(checks.0.code, Some(0), "{:#?}", checks.0);
    assert!(
        checks.0.stdout.starts_with(&format!(
            "OK JetStream Meta Cluster OK:3 peers led by {leader_name} | peers=3;3;3"
        )),
        "{:#?}",
        checks.0
    );
    assert_eq!(checks.1.code, Some(2), "{:#?}", checks.1);
    assert!(
        checks.1.stdout.contains("Crit:3 peers of expected 4"),
        "{:#?}",
        checks.1
    );
    // Refusals in nats-server's words.
    let tags = api(
        &admin,
        "$JS.API.META.LEADER.STEPDOWN",
        json!({"placement": {"tags": ["ssd"]}}),
    )
    .await;
    assert_eq!(tags["error"]["err_code"], 10011, "{tags}");
    let elsewhere = api(
        &admin,
        "$JS.API.META.LEADER.STEPDOWN",
        json!({"placement": {"cluster": "other"}}),
    )
    .await;
    assert_eq!(elsewhere["error"]["err_code"], 10005, "{elsewhere}");
    // A stepdown hands the leadership to another server within seconds.
    let done = api(&admin, "$JS.API.META.LEADER.STEPDOWN", json!({})).await;
    assert_eq!(done["success"], true, "{done}");
    assert_eq!(
        done["type"],
        "io.nats.jetstream.api.v1.meta_leader_stepdown_response"
    );
    let deadline = Instant::now() + META_READY;
    let after = loop {
        if let Some(now) = leader_now().filter(|l| *l != before) {
            break now;
        }
        assert!(Instant::now() < deadline, "{before} still leads");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let created = until_answered(
        &app,
        "$JS.API.STREAM.CREATE.AFTER",
        json!({"name": "AFTER", "subjects": ["after"]}),
    )
    .await;
    assert!(created.get("error").is_none(), "{created}");
    // SERVER.REMOVE: a bad request, an unknown server, then a follower taken out.
    let empty = within("remove", admin.request("$JS.API.SERVER.REMOVE", "".into()))
        .await
        .expect("answer");
    let empty: Value = serde_json::from_slice(&empty.payload).expect("json");
    assert_eq!(empty["error"]["err_code"], 10003, "{empty}");
    let unknown = api(&admin, "$JS.API.SERVER.REMOVE", json!({"peer": "nope"})).await;
    assert_eq!(unknown["error"]["err_code"], 10044, "{unknown}");
    let follower = ["S0", "S1", "S2"]
        .into_iter()
        .find(|n| json!(n) != after)
        .expect("a follower");
    let removed = api(&admin, "$JS.API.SERVER.REMOVE", json!({"peer": follower})).await;
    assert_eq!(removed["success"], true, "{removed}");
    let deadline = Instant::now() + META_READY;
    loop {
        let sizes: Vec<Value> = servers
            .iter()
            .map(|s| jsz_meta(s)["cluster_size"].clone())
            .collect();
        let leader_size = servers
            .iter()
            .map(jsz_meta)
            .find(|m| m["replicas"].is_array())
            .map(|m| m["cluster_size"].clone());
        if leader_size == Some(json!(2)) {
            break;
        }
        assert!(Instant::now() < deadline, "still {sizes:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // It is not added back while it stays connected.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let leader_size = servers
        .iter()
        .map(jsz_meta)
        .find(|m| m["replicas"].is_array())
        .map(|m| m["cluster_size"].clone());
    assert_eq!(leader_size, Some(json!(2)));
}

/// Sends `signal` (STOP or CONT) to a server process.
fn signal(server: &TestServer, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &server.pid().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// Resumes a paused server however the test ends, so it never lingers stopped.
struct Resume<'a>(&'a TestServer);

impl Drop for Resume<'_> {
    fn drop(&mut self) {
        signal(self.0, "CONT");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_meta_leader_stalls_only_its_own_stream_and_the_others_carry_on() {
    let (servers, clients) = cluster().await;
    let host_of = three_streams(&clients[0]).await;
    let paused = meta_leader(&servers);
    let paused_name = format!("S{paused}");
    let live = clients[(paused + 1) % 3].clone();
    let js = jetstream::new(live.clone());
    signal(&servers[paused], "STOP");
    let resume = Resume(&servers[paused]);
    // The streams of the running servers keep acknowledging.
    for (host, stream) in &host_of {
        if *host != paused_name {
            let ack = within("ack", async {
                js.publish(stream.to_lowercase(), "while paused".into())
                    .await
                    .expect("publish")
                    .await
            })
            .await;
            assert!(ack.is_ok(), "{stream}: {ack:?}");
        }
    }
    // The paused server's stream has nobody else to store it: no acknowledgement.
    let stalled = tokio::time::timeout(Duration::from_secs(2), async {
        js.publish(host_of[&paused_name].to_lowercase(), "lost?".into())
            .await
            .expect("publish")
            .await
    })
    .await;
    assert!(!matches!(stalled, Ok(Ok(_))), "{stalled:?}");
    // The two others elect a meta leader between them: creates work again.
    let created = until_answered(
        &live,
        "$JS.API.STREAM.CREATE.NEW",
        json!({"name": "NEW", "subjects": ["new"]}),
    )
    .await;
    assert_ne!(leader_of(&created), paused_name);
    drop(resume);
    // Resumed, the old leader follows the new one: every server's clients see one catalog.
    for client in &clients {
        let deadline = Instant::now() + META_READY;
        loop {
            let names = until_answered(client, "$JS.API.STREAM.NAMES", json!({})).await;
            if names["streams"] == json!(["A", "B", "C", "NEW"]) {
                break;
            }
            assert!(Instant::now() < deadline, "{names}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let info = until_answered(
        &live,
        &format!("$JS.API.STREAM.INFO.{}", host_of[&paused_name]),
        json!({}),
    )
    .await;
    assert_eq!(leader_of(&info), paused_name);
}
