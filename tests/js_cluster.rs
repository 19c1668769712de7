//! JetStream in a cluster of three real jetlog servers (issue 20, R1 streams): the meta
//! group decides what exists and where, and async-nats clients on any server create,
//! publish to, read and delete streams, consumers and KV buckets that run on another.

mod cli_support;
mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use common::js_cluster::{api, cluster, connect, leader_of, META_READY};
use common::{within, TestServer};
use futures::StreamExt;
use serde_json::{json, Value};

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
    // More replicas than servers: nats-server's placement error (R3 itself works, see
    // tests/js_cluster_r3.rs).
    let r5 = api(
        &clients[0],
        "$JS.API.STREAM.CREATE.R5",
        json!({"name": "R5", "subjects": ["r5"], "num_replicas": 5}),
    )
    .await;
    assert_eq!(r5["error"]["err_code"], 10005, "{r5}");
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
    // R1 stepdowns succeed and change nothing, as nats-server's; removing an R1 stream's
    // only server would lose its messages and is refused.
    let stepdown = api(&clients[1], "$JS.API.STREAM.LEADER.STEPDOWN.A", json!({})).await;
    assert_eq!(stepdown["success"], true, "{stepdown}");
    let nowhere = api(
        &clients[1],
        "$JS.API.STREAM.LEADER.STEPDOWN.NOPE",
        json!({}),
    )
    .await;
    assert_eq!(nowhere["error"]["err_code"], 10059, "{nowhere}");
    let consumer = api(
        &clients[0],
        "$JS.API.CONSUMER.CREATE.A.C1",
        json!({"stream_name": "A", "config": {"durable_name": "C1", "ack_policy": "explicit"}}),
    )
    .await;
    assert!(consumer.get("error").is_none(), "{consumer}");
    let stepdown = api(
        &clients[2],
        "$JS.API.CONSUMER.LEADER.STEPDOWN.A.C1",
        json!({}),
    )
    .await;
    assert_eq!(stepdown["success"], true, "{stepdown}");
    let unknown = api(
        &clients[2],
        "$JS.API.CONSUMER.LEADER.STEPDOWN.A.NOPE",
        json!({}),
    )
    .await;
    assert_eq!(unknown["error"]["err_code"], 10014, "{unknown}");
    let a_host = leader_of(&api(&clients[0], "$JS.API.STREAM.INFO.A", json!({})).await);
    let only = api(
        &clients[1],
        "$JS.API.STREAM.PEER.REMOVE.A",
        json!({ "peer": a_host }),
    )
    .await;
    assert_eq!(only["error"]["err_code"], 10075, "{only}");
    let stranger = api(
        &clients[1],
        "$JS.API.STREAM.PEER.REMOVE.A",
        json!({"peer": "X"}),
    )
    .await;
    assert_eq!(stranger["error"]["err_code"], 10040, "{stranger}");
    let info = api(&clients[0], "$JS.API.STREAM.INFO.A", json!({})).await;
    assert_eq!(leader_of(&info), a_host);
    let missing = api(&clients[1], "$JS.API.STREAM.INFO.NOPE", json!({})).await;
    assert_eq!(missing["error"]["err_code"], 10059, "{missing}");
    let names = api(&clients[1], "$JS.API.STREAM.NAMES", json!({})).await;
    assert_eq!(names["streams"], json!(["A", "B", "C"]), "{names}");
    // The CLI passes --replicas on, shows where a stream runs, and shows the refusal.
    let url = servers[2].url();
    let (made, info, refused) = tokio::task::spawn_blocking(move || {
        let made = cli_support::jetlog_at(&url, &["stream", "add", "D", "--replicas", "1"]);
        let info = cli_support::jetlog_at(&url, &["stream", "info", "D"]);
        let refused = cli_support::jetlog_at(&url, &["stream", "add", "E", "--replicas", "5"]);
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
    refused.fails_with("no suitable peers for placement");
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
