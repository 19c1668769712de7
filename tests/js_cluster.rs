//! JetStream in a cluster of three real jetlog servers (issue 20, R1 streams): the meta
//! group decides what exists and where, and async-nats clients on any server create,
//! publish to, read and delete streams, consumers and KV buckets that run on another.

mod cli_support;
mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use common::cluster::start_cluster_with;
use common::{within, TestServer};
use futures::StreamExt;
use serde_json::{json, Value};

/// How long a new cluster may take to elect its meta leader.
const META_READY: Duration = Duration::from_secs(30);

async fn connect(server: &TestServer) -> async_nats::Client {
    within("connect", async_nats::connect(server.url()))
        .await
        .expect("connect")
}

/// A raw API request and its JSON answer.
async fn api(client: &async_nats::Client, subject: &str, body: Value) -> Value {
    let reply = within(
        subject,
        client.request(subject.to_string(), body.to_string().into()),
    )
    .await
    .unwrap_or_else(|e| panic!("{subject}: {e}"));
    serde_json::from_slice(&reply.payload).expect("json")
}

/// Three servers whose meta group has a leader: `$JS.API.INFO` is answered.
async fn cluster() -> (Vec<TestServer>, Vec<async_nats::Client>) {
    let servers = start_cluster_with(3, &["-m", "-1"]);
    let mut clients = Vec::new();
    for server in &servers {
        clients.push(connect(server).await);
    }
    let deadline = Instant::now() + META_READY;
    loop {
        let asked = clients[0].request("$JS.API.INFO", "".into());
        if let Ok(Ok(reply)) = tokio::time::timeout(Duration::from_millis(500), asked).await {
            let info: Value = serde_json::from_slice(&reply.payload).expect("json");
            if info.get("error").is_none() {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no meta leader within {META_READY:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (servers, clients)
}

fn leader_of(info: &Value) -> String {
    info["cluster"]["leader"]
        .as_str()
        .unwrap_or_else(|| panic!("no leader in {info}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_made_on_one_server_is_written_and_read_through_the_others() {
    let (servers, clients) = cluster().await;
    let js: Vec<jetstream::Context> = clients.iter().cloned().map(jetstream::new).collect();
    let created = api(
        &clients[0],
        "$JS.API.STREAM.CREATE.ORD",
        json!({"name": "ORD", "subjects": ["ord.>"]}),
    )
    .await;
    assert!(created.get("error").is_none(), "{created}");
    assert_eq!(created["cluster"]["name"], common::cluster::CLUSTER_NAME);
    let host = leader_of(&created);
    // Publishes through every server are acknowledged by the one that runs the stream.
    for (i, context) in js.iter().enumerate() {
        let ack = within("ack", async {
            context
                .publish(format!("ord.{i}"), format!("m{i}").into())
                .await
                .expect("publish")
                .await
        })
        .await
        .expect("ack");
        assert_eq!((ack.stream.as_str(), ack.sequence), ("ORD", i as u64 + 1));
    }
    // Every server's clients see the same stream, run by the same server.
    for client in &clients {
        let info = api(client, "$JS.API.STREAM.INFO.ORD", json!({})).await;
        assert_eq!(info["state"]["messages"], 3, "{info}");
        assert_eq!(leader_of(&info), host);
    }
    // A consumer made through one server, pulled and acknowledged through another.
    let stream = js[1].get_stream("ORD").await.expect("stream");
    stream
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("C1".into()),
            ..Default::default()
        })
        .await
        .expect("consumer");
    let consumer: jetstream::consumer::PullConsumer = js[2]
        .get_stream("ORD")
        .await
        .expect("stream")
        .get_consumer("C1")
        .await
        .expect("consumer");
    let mut batch = consumer
        .fetch()
        .max_messages(3)
        .messages()
        .await
        .expect("fetch");
    let mut subjects = Vec::new();
    while let Some(message) = within("a message", batch.next()).await {
        let message = message.expect("message");
        subjects.push(message.subject.to_string());
        message.double_ack().await.expect("ack");
    }
    assert_eq!(subjects, ["ord.0", "ord.1", "ord.2"]);
    let info = api(&clients[0], "$JS.API.CONSUMER.INFO.ORD.C1", json!({})).await;
    assert_eq!(info["ack_floor"]["stream_seq"], 3, "{info}");
    // The account's view, from any server, is the whole cluster's.
    let names = api(&clients[2], "$JS.API.STREAM.NAMES", json!({})).await;
    assert_eq!(names["streams"], json!(["ORD"]), "{names}");
    let list = api(&clients[1], "$JS.API.STREAM.LIST", json!({})).await;
    assert_eq!(list["total"], 1, "{list}");
    assert_eq!(list["streams"][0]["state"]["messages"], 3, "{list}");
    let account = api(&clients[2], "$JS.API.INFO", json!({})).await;
    assert_eq!(
        (account["streams"].clone(), account["consumers"].clone()),
        (json!(1), json!(1)),
        "{account}"
    );
    // Every server's /jsz shows the one meta group; its leader lists the two others.
    let mut leaders = BTreeSet::new();
    let mut replica_lists = 0;
    for server in &servers {
        let port = server.monitor_port().expect("monitor");
        let (status, _, body) = common::monitor::get(port, "/jsz");
        assert_eq!(status, 200);
        let jsz: Value = serde_json::from_str(&body).expect("json");
        let meta = &jsz["meta_cluster"];
        assert_eq!(meta["cluster_size"], 3, "{jsz}");
        leaders.insert(meta["leader"].as_str().expect("leader").to_owned());
        if let Some(replicas) = meta["replicas"].as_array() {
            assert_eq!(replicas.len(), 2, "{meta}");
            replica_lists += 1;
        }
        let (status, _, health) = common::monitor::get(port, "/healthz");
        assert_eq!((status, health.contains("ok")), (200, true), "{health}");
    }
    assert_eq!((leaders.len(), replica_lists), (1, 1), "{leaders:?}");
    // Deleted through one server, it is gone for all.
    let deleted = api(&clients[2], "$JS.API.STREAM.DELETE.ORD", json!({})).await;
    assert_eq!(deleted["success"], true, "{deleted}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = api(&clients[0], "$JS.API.STREAM.INFO.ORD", json!({})).await;
        if info["error"]["err_code"] == 10059 {
            break;
        }
        assert!(Instant::now() < deadline, "still there: {info}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_spread_over_the_servers_and_conflicts_get_nats_server_errors() {
    let (servers, clients) = cluster().await;
    let mut hosts = BTreeSet::new();
    for (i, name) in ["A", "B", "C"].iter().enumerate() {
        let created = api(
            &clients[i % 3],
            &format!("$JS.API.STREAM.CREATE.{name}"),
            json!({"name": name, "subjects": [format!("{}.>", name.to_lowercase())]}),
        )
        .await;
        hosts.insert(leader_of(&created));
    }
    assert_eq!(hosts.len(), 3, "one stream per server: {hosts:?}");
    let overlap = api(
        &clients[1],
        "$JS.API.STREAM.CREATE.X",
        json!({"name": "X", "subjects": ["a.b"]}),
    )
    .await;
    assert_eq!(overlap["error"]["err_code"], 10065, "{overlap}");
    let same = api(
        &clients[2],
        "$JS.API.STREAM.CREATE.A",
        json!({"name": "A", "subjects": ["a.>"]}),
    )
    .await;
    assert!(same.get("error").is_none(), "{same}");
    let different = api(
        &clients[2],
        "$JS.API.STREAM.CREATE.A",
        json!({"name": "A", "subjects": ["a.>"], "max_msgs": 5}),
    )
    .await;
    assert_eq!(different["error"]["err_code"], 10058, "{different}");
    let updated = api(
        &clients[0],
        "$JS.API.STREAM.UPDATE.A",
        json!({"name": "A", "subjects": ["a.>"], "max_msgs": 5}),
    )
    .await;
    assert_eq!(updated["config"]["max_msgs"], 5, "{updated}");
    let storage = api(
        &clients[0],
        "$JS.API.STREAM.UPDATE.A",
        json!({"name": "A", "subjects": ["a.>"], "storage": "memory"}),
    )
    .await;
    assert_eq!(storage["error"]["err_code"], 10052, "{storage}");
    // Replicated streams are not built yet: refused by name, never placed as R1.
    let r3 = api(
        &clients[0],
        "$JS.API.STREAM.CREATE.R3",
        json!({"name": "R3", "subjects": ["r3"], "num_replicas": 3}),
    )
    .await;
    assert_eq!(r3["error"]["err_code"], 10010, "{r3}");
    assert!(
        r3["error"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("more than one replica")),
        "{r3}"
    );
    let tags = api(
        &clients[0],
        "$JS.API.STREAM.CREATE.T",
        json!({"name": "T", "subjects": ["t"], "placement": {"tags": ["ssd"]}}),
    )
    .await;
    assert_eq!(tags["error"]["err_code"], 10010, "{tags}");
    let elsewhere = api(
        &clients[0],
        "$JS.API.STREAM.CREATE.E",
        json!({"name": "E", "subjects": ["e"], "placement": {"cluster": "other"}}),
    )
    .await;
    assert_eq!(elsewhere["error"]["err_code"], 10005, "{elsewhere}");
    let missing = api(&clients[1], "$JS.API.STREAM.INFO.NOPE", json!({})).await;
    assert_eq!(missing["error"]["err_code"], 10059, "{missing}");
    let names = api(&clients[1], "$JS.API.STREAM.NAMES", json!({})).await;
    assert_eq!(names["streams"], json!(["A", "B", "C"]), "{names}");
    // The CLI passes --replicas on, shows where a stream runs, and shows the refusal.
    let url = servers[2].url();
    let (made, info, refused) = tokio::task::spawn_blocking(move || {
        let made = cli_support::jetlog_at(&url, &["stream", "add", "D", "--replicas", "1"]);
        let info = cli_support::jetlog_at(&url, &["stream", "info", "D"]);
        let refused = cli_support::jetlog_at(&url, &["stream", "add", "E", "--replicas", "3"]);
        (made.ok().to_string(), info.ok().to_string(), refused)
    })
    .await
    .expect("cli");
    assert!(
        made.contains("Replicas:") && made.contains("Cluster:"),
        "{made}"
    );
    assert!(
        info.contains("Cluster:              tc, leader S"),
        "{info}"
    );
    refused.fails_with("more than one replica");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kv_bucket_is_written_read_and_watched_through_different_servers() {
    let (_servers, clients) = cluster().await;
    let kv = jetstream::new(clients[0].clone())
        .create_key_value(jetstream::kv::Config {
            bucket: "CFG".into(),
            history: 3,
            ..Default::default()
        })
        .await
        .expect("bucket");
    let watcher_kv = jetstream::new(clients[2].clone())
        .get_key_value("CFG")
        .await
        .expect("bucket");
    let mut watch = watcher_kv.watch("app.>").await.expect("watch");
    kv.put("app.color", "blue".into()).await.expect("put");
    let writer = jetstream::new(clients[1].clone())
        .get_key_value("CFG")
        .await
        .expect("bucket");
    writer.put("app.color", "green".into()).await.expect("put");
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let entry = within("a watched entry", watch.next())
            .await
            .expect("watch open")
            .expect("entry");
        assert_eq!(entry.key, "app.color");
        seen.push(String::from_utf8_lossy(&entry.value).into_owned());
    }
    assert_eq!(seen, ["blue", "green"]);
    let got = watcher_kv.get("app.color").await.expect("get");
    assert_eq!(got.as_deref(), Some(&b"green"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_cluster_keeps_its_streams_their_messages_and_no_deleted_one() {
    let (servers, clients) = cluster().await;
    for name in ["KEEP", "GONE"] {
        let created = api(
            &clients[0],
            &format!("$JS.API.STREAM.CREATE.{name}"),
            json!({"name": name, "subjects": [name.to_lowercase()]}),
        )
        .await;
        assert!(created.get("error").is_none(), "{created}");
    }
    let js = jetstream::new(clients[1].clone());
    for i in 0..5 {
        js.publish("keep", format!("{i}").into())
            .await
            .expect("publish")
            .await
            .expect("ack");
    }
    // Deleted, then made again under the same name with other subjects: after a restart the
    // old entries in the meta log must not delete or reconfigure the new one.
    api(&clients[2], "$JS.API.STREAM.DELETE.GONE", json!({})).await;
    let again = api(
        &clients[2],
        "$JS.API.STREAM.CREATE.GONE",
        json!({"name": "GONE", "subjects": ["gone.again"]}),
    )
    .await;
    assert!(again.get("error").is_none(), "{again}");
    js.publish("gone.again", "kept".into())
        .await
        .expect("publish")
        .await
        .expect("ack");
    drop(clients);
    let stores: Vec<tempfile::TempDir> = servers
        .into_iter()
        .map(TestServer::kill_and_take_store)
        .collect();
    let mut stores = stores.into_iter();
    let member = |name: &str, seed: Option<&str>, store| {
        let args = common::cluster::member_args(name, seed);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        TestServer::start_in(store, &args)
    };
    let seed = member("S0", None, stores.next().expect("store"));
    let seed_url = seed.route_url();
    let mut servers = vec![seed];
    for (i, store) in stores.enumerate() {
        servers.push(member(&format!("S{}", i + 1), Some(&seed_url), store));
    }
    common::cluster::wait_for_mesh(&servers);
    let client = connect(&servers[2]).await;
    let deadline = Instant::now() + META_READY;
    let names = loop {
        let asked = client.request("$JS.API.STREAM.NAMES", "".into());
        if let Ok(Ok(reply)) = tokio::time::timeout(Duration::from_millis(500), asked).await {
            let names: Value = serde_json::from_slice(&reply.payload).expect("json");
            if names.get("error").is_none() {
                break names;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no meta leader after the restart"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(names["streams"], json!(["GONE", "KEEP"]), "{names}");
    let keep = api(&client, "$JS.API.STREAM.INFO.KEEP", json!({})).await;
    assert_eq!(keep["state"]["messages"], 5, "{keep}");
    let gone = api(&client, "$JS.API.STREAM.INFO.GONE", json!({})).await;
    assert_eq!(gone["config"]["subjects"], json!(["gone.again"]), "{gone}");
    assert_eq!(gone["state"]["messages"], 1, "{gone}");
}

/// Runs `jetlog server` with `args` and returns what it printed once it has exited (bounded).
fn refused_start(args: &[&str]) -> String {
    let store = tempfile::tempdir().expect("store");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_jetlog"))
        .args(["server", "-a", "127.0.0.1", "-p", "-1", "--store_dir"])
        .arg(store.path())
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server started with {args:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout)
}

#[test]
fn jetstream_in_a_cluster_needs_a_server_name_and_a_cluster_name() {
    let cluster = ["--jetstream", "--cluster", "nats://127.0.0.1:0"];
    let mut unnamed = cluster.to_vec();
    unnamed.extend(["--cluster_name", "c"]);
    let said = refused_start(&unnamed);
    assert!(
        said.contains("jetstream cluster requires `server_name` to be set"),
        "{said}"
    );
    let mut no_cluster_name = cluster.to_vec();
    no_cluster_name.extend(["-n", "s1"]);
    let said = refused_start(&no_cluster_name);
    assert!(
        said.contains("jetstream cluster requires `cluster.name` to be set"),
        "{said}"
    );
}

/// Asks `subject` until an answer without an error comes (bounded by `META_READY`).
async fn until_answered(client: &async_nats::Client, subject: &str, body: Value) -> Value {
    let deadline = Instant::now() + META_READY;
    loop {
        let asked = client.request(subject.to_string(), body.to_string().into());
        if let Ok(Ok(reply)) = tokio::time::timeout(Duration::from_millis(1000), asked).await {
            let answer: Value = serde_json::from_slice(&reply.payload).expect("json");
            if answer.get("error").is_none() {
                return answer;
            }
        }
        assert!(Instant::now() < deadline, "{subject} not answered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_meta_leader_elects_another_and_its_stream_comes_back_with_it() {
    let (mut servers, clients) = cluster().await;
    let mut host_of = std::collections::BTreeMap::new();
    for name in ["A", "B", "C"] {
        let created = api(
            &clients[0],
            &format!("$JS.API.STREAM.CREATE.{name}"),
            json!({"name": name, "subjects": [name.to_lowercase()]}),
        )
        .await;
        host_of.insert(leader_of(&created), name);
    }
    let leader = servers
        .iter()
        .position(|s| s.log_contains("Self is new JetStream cluster metadata leader"))
        .expect("a meta leader logged itself");
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
    let mut host_of = std::collections::BTreeMap::new();
    for name in ["A", "B", "C"] {
        let created = api(
            &clients[0],
            &format!("$JS.API.STREAM.CREATE.{name}"),
            json!({"name": name, "subjects": [name.to_lowercase()]}),
        )
        .await;
        host_of.insert(leader_of(&created), name);
    }
    let paused = servers
        .iter()
        .position(|s| s.log_contains("Self is new JetStream cluster metadata leader"))
        .expect("a meta leader logged itself");
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
