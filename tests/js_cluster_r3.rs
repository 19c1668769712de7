//! Replicated (R3) streams on three real jetlog servers, driven by async-nats (issue 20):
//! publishes through any server are acknowledged once the group has them, every replica
//! holds them, the stream keeps taking publishes when its leader is killed with kill -9,
//! and the killed server catches up when it comes back. What is not built yet for a
//! replicated stream is refused by name.

mod cli_support;
mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use common::js_cluster::{api, cluster, connect, META_READY};
use common::r3::{
    create_orders, info, jsz_count, publish_range, restart_member, server_index, step_down,
    wait_for_health, wait_for_replicas,
};
use common::TestServer;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_r3_stream_is_acknowledged_by_its_group_and_survives_its_leaders_kill() {
    let (mut servers, clients) = cluster().await;
    let created = api(
        &clients[0],
        "$JS.API.STREAM.CREATE.ORDERS",
        json!({"name": "ORDERS", "subjects": ["orders.>"], "num_replicas": 3,
               "duplicate_window": 120_000_000_000u64}),
    )
    .await;
    assert!(created.get("error").is_none(), "{created}");
    assert_eq!(created["config"]["num_replicas"], 3);

    let js = jetstream::new(clients[1].clone());
    let first = publish_range(&js, 0, 60).await;
    assert_eq!(first, (1..=60).collect::<Vec<u64>>());
    wait_for_replicas(&servers, 60);

    let before = info(&clients[2]).await;
    assert_eq!(before["state"]["messages"], 60, "{before}");
    assert_eq!(before["config"]["num_replicas"], 3);
    let leader = before["cluster"]["leader"]
        .as_str()
        .expect("leader")
        .to_owned();
    let replicas: BTreeSet<&str> = before["cluster"]["replicas"]
        .as_array()
        .expect("replicas")
        .iter()
        .map(|r| r["name"].as_str().expect("name"))
        .collect();
    let all: BTreeSet<String> = (0..3).map(|i| format!("S{i}")).collect();
    assert_eq!(replicas.len(), 2, "{before}");
    assert!(
        before["cluster"]["raft_group"]
            .as_str()
            .is_some_and(|g| g.starts_with("S-")),
        "{before}"
    );
    assert!(!replicas.contains(leader.as_str()));
    assert!(replicas.iter().all(|r| all.contains(*r)));

    // A stepdown hands the group to another replica, which takes the publishes.
    let leader = step_down(&clients[2], &leader).await;
    let js = jetstream::new(clients[0].clone());
    assert_eq!(publish_range(&js, 60, 61).await, [61]);

    // kill -9 the stream's leader; the other two elect and go on.
    // The cluster's servers are S0, S1 and S2, in that order.
    let lost = server_index(&leader);
    drop(js);
    drop(clients);
    let store = servers.remove(lost).kill_and_take_store();
    let survivor = connect(&servers[0]).await;
    let after = info(&survivor).await;
    assert_ne!(after["cluster"]["leader"], leader.as_str(), "{after}");
    let js = jetstream::new(connect(&servers[1]).await);
    let second = publish_range(&js, 60, 120).await;
    assert_eq!(
        second,
        (61..=120).collect::<Vec<u64>>(),
        "nothing acknowledged twice"
    );
    wait_for_replicas(&servers, 120);

    // Back on its store, the killed server catches up from the group's log.
    servers.push(restart_member(
        &leader,
        Some(&servers[0].route_url()),
        store,
    ));
    wait_for_replicas(&servers, 120);
    let last = info(&survivor).await;
    assert_eq!(last["state"]["messages"], 120, "{last}");
    assert_eq!(last["state"]["last_seq"], 120, "{last}");
    // The CLI shows where the stream runs and its two other replicas.
    let url = servers[0].url();
    let shown = tokio::task::spawn_blocking(move || {
        cli_support::jetlog_at(&url, &["stream", "info", "ORDERS"])
            .ok()
            .to_string()
    })
    .await
    .expect("cli");
    assert!(shown.contains("Replicas:             3"), "{shown}");
    assert_eq!(shown.matches("Replica:").count(), 2, "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kv_bucket_with_three_replicas_works_through_the_clients_unchanged() {
    let (_servers, clients) = cluster().await;
    let made = jetstream::new(clients[0].clone())
        .create_key_value(jetstream::kv::Config {
            bucket: "CFG".into(),
            history: 3,
            num_replicas: 3,
            ..Default::default()
        })
        .await
        .expect("bucket");
    drop(made);
    let writer = jetstream::new(clients[1].clone())
        .get_key_value("CFG")
        .await
        .expect("bucket through another server");
    let reader = jetstream::new(clients[2].clone())
        .get_key_value("CFG")
        .await
        .expect("bucket through the third server");
    let watcher = jetstream::new(clients[0].clone())
        .get_key_value("CFG")
        .await
        .expect("bucket");
    let mut watch = watcher.watch("color").await.expect("watch");
    let deadline = Instant::now() + META_READY;
    let first = loop {
        match writer.put("color", "red".into()).await {
            Ok(revision) => break revision,
            Err(e) => assert!(Instant::now() < deadline, "put never acknowledged: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(first, 1);
    assert_eq!(writer.put("color", "blue".into()).await.expect("put"), 2);
    // A direct get may be answered by any replica: a follower a moment behind is waited for.
    loop {
        let got = reader.get("color").await.expect("get");
        if got.as_deref() == Some(&b"blue"[..]) {
            break;
        }
        assert!(Instant::now() < deadline, "blue never read: {got:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let entry = tokio::time::timeout(
            Duration::from_secs(10),
            futures::StreamExt::next(&mut watch),
        )
        .await
        .expect("watched in time")
        .expect("an entry")
        .expect("entry");
        seen.push(String::from_utf8_lossy(&entry.value).into_owned());
    }
    assert_eq!(seen, ["red", "blue"]);
    let history = writer.history("color").await.expect("history");
    let history: Vec<_> = futures::StreamExt::collect::<Vec<_>>(history).await;
    assert_eq!(history.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_replicated_stream_cannot_do_yet_is_refused_by_name() {
    let (servers, clients) = cluster().await;
    let refused = [
        (
            json!({"name": "R5", "subjects": ["r5"], "num_replicas": 5}),
            10005,
            "no suitable peers for placement",
        ),
        (
            json!({"name": "SC", "subjects": ["sc.>"], "num_replicas": 3,
                   "allow_msg_schedules": true}),
            10010,
            "message schedules on a replicated stream",
        ),
        (
            json!({"name": "M", "num_replicas": 3, "mirror": {"name": "X"}}),
            10010,
            "a replicated mirror",
        ),
    ];
    for (config, code, words) in refused {
        let name = config["name"].as_str().expect("name").to_owned();
        let answer = api(
            &clients[0],
            &format!("$JS.API.STREAM.CREATE.{name}"),
            config,
        )
        .await;
        assert_eq!(answer["error"]["err_code"], code, "{answer}");
        let description = answer["error"]["description"].as_str().expect("text");
        assert!(description.contains(words), "{description}");
    }
    create_orders(&clients[0]).await;
    info(&clients[1]).await;
    // A consumer's replicas are its stream's or one.
    for (config, what) in [
        (
            json!({"durable_name": "D", "num_replicas": 2}),
            "a consumer with fewer replicas than its stream, but more than one",
        ),
        (
            json!({"durable_name": "D", "num_replicas": 3, "mem_storage": true}),
            "a replicated consumer with memory storage",
        ),
    ] {
        let refused = api(
            &clients[0],
            "$JS.API.CONSUMER.CREATE.ORDERS.D",
            json!({"stream_name": "ORDERS", "config": config}),
        )
        .await;
        assert_eq!(refused["error"]["err_code"], 10010, "{refused}");
        let description = refused["error"]["description"].as_str().unwrap_or_default();
        assert!(description.contains(what), "{refused}");
    }
    // A durable gets the stream's replicas, an ephemeral one; an R1 durable can be asked for.
    for (subject, config, replicas) in [
        (".C3", json!({"durable_name": "C3"}), 3),
        ("", json!({}), 1),
        (".C1", json!({"durable_name": "C1", "num_replicas": 1}), 1),
    ] {
        let made = api(
            &clients[0],
            &format!("$JS.API.CONSUMER.CREATE.ORDERS{subject}"),
            json!({"stream_name": "ORDERS", "config": config}),
        )
        .await;
        assert_eq!(made["config"]["num_replicas"], replicas, "{made}");
    }
    let moved = api(
        &clients[1],
        "$JS.API.CONSUMER.CREATE.ORDERS.C1",
        json!({"stream_name": "ORDERS", "config": {"durable_name": "C1", "num_replicas": 3}}),
    )
    .await;
    assert_eq!(moved["error"]["err_code"], 10010, "{moved}");
    // Deleting it removes every replica and its group.
    let deleted = api(&clients[1], "$JS.API.STREAM.DELETE.ORDERS", json!({})).await;
    assert_eq!(deleted["success"], true, "{deleted}");
    let deadline = Instant::now() + META_READY;
    for server in &servers {
        while jsz_count(server, "streams") != 0 {
            assert!(Instant::now() < deadline, "a replica outlived its stream");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_r3_stream_comes_back_when_the_whole_cluster_is_killed_and_restarted() {
    let (servers, clients) = cluster().await;
    create_orders(&clients[0]).await;
    let js = jetstream::new(clients[1].clone());
    assert_eq!(
        publish_range(&js, 0, 10).await,
        (1..=10).collect::<Vec<u64>>()
    );
    wait_for_replicas(&servers, 10);
    drop((js, clients));
    // Healthy while its group has a leader; the last replica standing says otherwise, in
    // nats-server's words, once its group has none (before the meta group's 10 s rule).
    for server in &servers {
        wait_for_health(server, "\"status\": \"ok\"");
    }
    let mut stores: Vec<tempfile::TempDir> = Vec::new();
    let mut servers = servers.into_iter();
    for server in servers.by_ref().take(2) {
        stores.push(server.kill_and_take_store());
    }
    let last = servers.next().expect("the third server");
    wait_for_health(
        &last,
        "JetStream stream '$G > ORDERS' is not current: group node unhealthy",
    );
    stores.push(last.kill_and_take_store());
    let mut servers: Vec<TestServer> = Vec::new();
    for (i, store) in stores.into_iter().enumerate() {
        let seed = servers.first().map(TestServer::route_url);
        servers.push(restart_member(&format!("S{i}"), seed.as_deref(), store));
    }
    common::cluster::wait_for_mesh(&servers);
    // Every member rejoins its group from its own log; a leader takes the stream on.
    let client = connect(&servers[2]).await;
    let back = info(&client).await;
    assert_eq!(back["state"]["messages"], 10, "{back}");
    let js = jetstream::new(client);
    assert_eq!(
        publish_range(&js, 10, 15).await,
        (11..=15).collect::<Vec<u64>>()
    );
    wait_for_replicas(&servers, 15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_r1_consumer_made_on_the_leader_still_delivers_after_the_leadership_moves() {
    let (_servers, clients) = cluster().await;
    create_orders(&clients[0]).await;
    let first = info(&clients[0]).await;
    let js = jetstream::new(clients[1].clone());
    let stream = js.get_stream("ORDERS").await.expect("stream");
    let consumer: jetstream::consumer::PullConsumer = stream
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("C".into()),
            num_replicas: 1,
            ..Default::default()
        })
        .await
        .expect("consumer");
    // The group moves to another replica; the consumer stays where it was made.
    let from = first["cluster"]["leader"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    step_down(&clients[2], &from).await;
    // A pull waiting before the messages exist is answered as they are applied there.
    let waiting = tokio::spawn(async move {
        let mut batch = consumer
            .batch()
            .max_messages(5)
            .expires(Duration::from_secs(15))
            .messages()
            .await
            .expect("fetch");
        let mut got = Vec::new();
        while let Some(msg) = futures::StreamExt::next(&mut batch).await {
            let msg = msg.expect("message");
            got.push(String::from_utf8_lossy(&msg.payload).into_owned());
            msg.ack().await.expect("ack");
        }
        got
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let publisher = jetstream::new(clients[0].clone());
    assert_eq!(publish_range(&publisher, 0, 5).await, [1, 2, 3, 4, 5]);
    let got = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .expect("delivered in time")
        .expect("fetch task");
    assert_eq!(got, ["0", "1", "2", "3", "4"]);
}
