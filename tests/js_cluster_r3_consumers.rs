//! Replicated consumers of an R3 stream on three real jetlog servers, driven by async-nats
//! (issue 20): a durable's state is kept by the stream's group, so after its leader is
//! killed with kill -9 the new leader delivers from the committed state. No message whose
//! AckSync was answered comes again, and every message delivered but not acknowledged does.
//! Under work-queue and interest retention every replica removes what was consumed.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use common::js_cluster::{api, cluster, connect, META_READY};
use common::r3::{
    create_durable, create_durable_with, create_orders, durable_of, info, publish_range,
    pull_and_ack, restart_member, server_index, step_down, wait_for_replicas,
};
use futures::StreamExt;
use serde_json::{json, Value};

/// How long a delivered message waits for its ack before it is delivered again.
const ACK_WAIT: Duration = Duration::from_secs(2);

async fn consumer_info(client: &async_nats::Client) -> Value {
    common::js_cluster::until_answered(client, "$JS.API.CONSUMER.INFO.ORDERS.R", json!({})).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_of_an_r3_stream_resumes_from_its_committed_state_after_its_leader_dies() {
    let (mut servers, clients) = cluster().await;
    create_orders(&clients[0]).await;
    let js = jetstream::new(clients[1].clone());
    assert_eq!(
        publish_range(&js, 0, 20).await,
        (1..=20).collect::<Vec<u64>>()
    );
    wait_for_replicas(&servers, 20);
    let config = jetstream::consumer::pull::Config {
        ack_wait: ACK_WAIT,
        ..Default::default()
    };
    let consumer = create_durable_with(&js, "ORDERS", "R", config).await;
    let made = consumer_info(&clients[2]).await;
    assert_eq!(made["config"]["num_replicas"], 3, "{made}");
    let leader = info(&clients[0]).await["cluster"]["leader"]
        .as_str()
        .expect("leader")
        .to_owned();
    assert_eq!(made["cluster"]["leader"], leader.as_str(), "{made}");
    assert_eq!(
        made["cluster"]["replicas"].as_array().map(Vec::len),
        Some(2)
    );

    // Ten delivered; the first six acknowledged with AckSync, four left pending.
    let mut batch = consumer
        .fetch()
        .max_messages(10)
        .expires(Duration::from_secs(3))
        .messages()
        .await
        .expect("fetch");
    let mut delivered = Vec::new();
    while let Some(msg) = batch.next().await {
        delivered.push(msg.expect("message"));
    }
    assert_eq!(delivered.len(), 10);
    for msg in &delivered[..6] {
        msg.double_ack().await.expect("ack committed");
    }
    drop(delivered);

    // The stream's leader (and so the consumer's) is killed with kill -9.
    let lost = server_index(&leader);
    drop((consumer, js, clients));
    let _store = servers.remove(lost).kill_and_take_store();
    let survivor = connect(&servers[0]).await;
    let deadline = Instant::now() + META_READY;
    let after = loop {
        let now = consumer_info(&survivor).await;
        if now["cluster"]["leader"]
            .as_str()
            .is_some_and(|l| l != leader)
        {
            break now;
        }
        assert!(Instant::now() < deadline, "no new leader: {now}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(after["ack_floor"]["stream_seq"], 6, "{after}");
    assert_eq!(after["delivered"]["stream_seq"], 10, "{after}");
    assert_eq!(after["num_ack_pending"], 4, "{after}");

    // The new leader redelivers the four pending ones after their ack wait, then the rest;
    // none of the six acknowledged comes again.
    let js = jetstream::new(survivor.clone());
    let consumer = durable_of(&js, "ORDERS", "R").await;
    let got = pull_and_ack(&consumer, 14).await;
    let unique: BTreeSet<u64> = got.iter().copied().collect();
    assert_eq!(unique, (7..=20).collect(), "delivered {got:?}");
    assert_eq!(got.len(), 14, "none twice: {got:?}");
    let end = consumer_info(&survivor).await;
    assert_eq!(end["ack_floor"]["stream_seq"], 20, "{end}");
    assert_eq!(end["num_ack_pending"], 0, "{end}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicated_consumer_moves_with_a_stepdown_and_is_deleted_by_its_group() {
    let (servers, clients) = cluster().await;
    create_orders(&clients[0]).await;
    let js = jetstream::new(clients[1].clone());
    assert_eq!(publish_range(&js, 0, 6).await, [1, 2, 3, 4, 5, 6]);
    wait_for_replicas(&servers, 6);
    let made = api(
        &clients[2],
        "$JS.API.CONSUMER.CREATE.ORDERS.R",
        json!({"stream_name": "ORDERS", "config": {"durable_name": "R", "ack_policy": "explicit",
               "deliver_policy": "new"}}),
    )
    .await;
    assert_eq!(made["config"]["num_replicas"], 3, "{made}");
    assert_eq!(made["num_pending"], 0, "{made}");
    let leader = made["cluster"]["leader"]
        .as_str()
        .expect("leader")
        .to_owned();

    // A consumer stepdown hands the stream's group, and the consumer with it.
    let stepped = api(
        &clients[0],
        "$JS.API.CONSUMER.LEADER.STEPDOWN.ORDERS.R",
        json!({}),
    )
    .await;
    assert_eq!(stepped["success"], true, "{stepped}");
    let deadline = Instant::now() + META_READY;
    let moved = loop {
        let now = consumer_info(&clients[0]).await;
        if now["cluster"]["leader"]
            .as_str()
            .is_some_and(|l| l != leader)
        {
            break now;
        }
        if Instant::now() >= deadline {
            // What the servers said of leaders, for whoever reads the failure.
            for (i, server) in servers.iter().enumerate() {
                for line in server.log_lines() {
                    if line.contains("leader") || line.contains("WARN") {
                        eprintln!("S{i}: {line}");
                    }
                }
            }
            panic!("the consumer did not move: {now}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Made with deliver policy new on every replica from the same point of the log.
    assert_eq!(moved["delivered"]["stream_seq"], 6, "{moved}");
    assert_eq!(publish_range(&js, 6, 8).await, [7, 8]);
    let consumer = durable_of(&js, "ORDERS", "R").await;
    assert_eq!(pull_and_ack(&consumer, 2).await, [7, 8]);
    let current = moved["cluster"]["leader"]
        .as_str()
        .expect("leader")
        .to_owned();
    step_down(&clients[1], &current).await;
    assert_eq!(publish_range(&js, 8, 9).await, [9]);
    assert_eq!(pull_and_ack(&consumer, 1).await, [9]);

    // A pause is kept by the group: the next leader's consumer is paused too; then resumed.
    let paused = api(
        &clients[1],
        "$JS.API.CONSUMER.PAUSE.ORDERS.R",
        json!({"pause_until": "2099-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(paused["paused"], true, "{paused}");
    let current = consumer_info(&clients[0]).await["cluster"]["leader"]
        .as_str()
        .expect("leader")
        .to_owned();
    let next = step_down(&clients[1], &current).await;
    let deadline = Instant::now() + META_READY;
    loop {
        let now = consumer_info(&clients[2]).await;
        if now["cluster"]["leader"] == next.as_str() {
            assert_eq!(now["paused"], true, "{now}");
            assert_eq!(
                now["config"]["pause_until"], "2099-01-01T00:00:00Z",
                "{now}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the consumer did not move: {now}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let resumed = api(&clients[0], "$JS.API.CONSUMER.PAUSE.ORDERS.R", json!({})).await;
    assert_eq!(resumed["paused"], false, "{resumed}");
    // A reset is committed before it is answered, and delivery starts again there: two
    // messages delivered and left unacknowledged come again at once.
    assert_eq!(publish_range(&js, 9, 11).await, [10, 11]);
    let mut unacked = consumer
        .fetch()
        .max_messages(2)
        .expires(Duration::from_secs(3))
        .messages()
        .await
        .expect("fetch");
    let mut left = 0;
    while let Some(msg) = unacked.next().await {
        msg.expect("message");
        left += 1;
    }
    assert_eq!(left, 2);
    let reset = api(&clients[2], "$JS.API.CONSUMER.RESET.ORDERS.R", json!({})).await;
    assert_eq!(reset["reset_seq"], 10, "{reset}");
    assert_eq!(pull_and_ack(&consumer, 2).await, [10, 11]);

    // Deleting it removes it everywhere.
    let deleted = api(&clients[2], "$JS.API.CONSUMER.DELETE.ORDERS.R", json!({})).await;
    assert_eq!(deleted["success"], true, "{deleted}");
    let gone = api(&clients[0], "$JS.API.CONSUMER.INFO.ORDERS.R", json!({})).await;
    assert_eq!(gone["error"]["err_code"], 10014, "{gone}");
    drop(servers);
}

/// Publishes `count` messages to `subject`, each acknowledged (no leader change happens).
async fn publish_acked(js: &jetstream::Context, subject: &str, count: u64) {
    for n in 0..count {
        let ack = js
            .publish(subject.to_string(), n.to_string().into())
            .await
            .expect("publish");
        tokio::time::timeout(
            Duration::from_secs(5),
            std::future::IntoFuture::into_future(ack),
        )
        .await
        .expect("acknowledged in time")
        .expect("acknowledged");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_queue_and_interest_r3_streams_remove_what_is_consumed_on_every_replica() {
    let (mut servers, clients) = cluster().await;
    let created = api(
        &clients[0],
        "$JS.API.STREAM.CREATE.WQ",
        json!({"name": "WQ", "subjects": ["wq.>"], "num_replicas": 3, "retention": "workqueue"}),
    )
    .await;
    assert!(created.get("error").is_none(), "{created}");
    let created = api(
        &clients[0],
        "$JS.API.STREAM.CREATE.IN",
        json!({"name": "IN", "subjects": ["in.>"], "num_replicas": 3, "retention": "interest"}),
    )
    .await;
    assert!(created.get("error").is_none(), "{created}");
    let js = jetstream::new(clients[1].clone());
    publish_acked(&js, "wq.a", 10).await;
    let worker = create_durable(&js, "WQ", "W").await;
    // An ephemeral of a work-queue stream has its replicas too; a second unfiltered
    // consumer is refused by the leader, as on a single server.
    let second = api(
        &clients[2],
        "$JS.API.CONSUMER.CREATE.WQ",
        json!({"stream_name": "WQ", "config": {"ack_policy": "explicit"}}),
    )
    .await;
    assert_eq!(second["error"]["err_code"], 10099, "{second}");
    assert_eq!(pull_and_ack(&worker, 4).await, [1, 2, 3, 4]);
    // Every replica removed the four, when the entry with their acks applied.
    wait_for_replicas(&servers, 6);

    // The leader is killed: the new one hands out the rest, and removes them everywhere.
    let leader = until_leader(&clients[0], "WQ").await;
    let lost = server_index(&leader);
    drop((worker, js, clients));
    let store = servers.remove(lost).kill_and_take_store();
    let survivor = connect(&servers[0]).await;
    assert_ne!(until_leader(&survivor, "WQ").await, leader);
    let js = jetstream::new(survivor.clone());
    let worker = durable_of(&js, "WQ", "W").await;
    assert_eq!(pull_and_ack(&worker, 6).await, [5, 6, 7, 8, 9, 10]);
    wait_for_replicas(&servers, 0);
    // Back on its store, the killed server applies the removals it missed.
    servers.push(restart_member(
        &leader,
        Some(&servers[0].route_url()),
        store,
    ));
    wait_for_replicas(&servers, 0);

    // Interest retention: with no consumer nothing is kept; with one, what it acknowledged
    // goes from every replica.
    until_leader(&survivor, "IN").await;
    publish_acked(&js, "in.a", 3).await;
    wait_for_replicas(&servers, 0);
    let reader = create_durable(&js, "IN", "I").await;
    publish_acked(&js, "in.a", 4).await;
    wait_for_replicas(&servers, 4);
    assert_eq!(pull_and_ack(&reader, 2).await, [4, 5]);
    wait_for_replicas(&servers, 2);
}

/// The leader of `stream`, once it has one (bounded).
async fn until_leader(client: &async_nats::Client, stream: &str) -> String {
    let subject = format!("$JS.API.STREAM.INFO.{stream}");
    let info = common::js_cluster::until_answered(client, &subject, json!({})).await;
    info["cluster"]["leader"]
        .as_str()
        .expect("a leader")
        .to_owned()
}

/// Creates of one replicated durable with different configs, sent at once: nats-server's
/// meta leader takes them one at a time, so one is made and the others are told 10148. In
/// jetlog each passes the leader's check before any is applied, and the group decides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_creates_of_one_replicated_durable_make_it_once_and_refuse_the_rest() {
    let (_servers, clients) = cluster().await;
    create_orders(&clients[0]).await;
    let creates = (0..6).map(|i| {
        let body = json!({"stream_name": "ORDERS", "action": "create",
            "config": {"durable_name": "RACE", "ack_policy": "explicit",
                       "description": format!("create {i}")}});
        let client = clients[0].clone();
        async move { api(&client, "$JS.API.CONSUMER.CREATE.ORDERS.RACE", body).await }
    });
    let answers = futures::future::join_all(creates).await;
    let made: Vec<&Value> = answers
        .iter()
        .filter(|a| a.get("error").is_none())
        .collect();
    assert_eq!(made.len(), 1, "{answers:?}");
    for refused in answers.iter().filter(|a| a.get("error").is_some()) {
        assert_eq!(refused["error"]["err_code"], 10148, "{refused}");
        assert_eq!(refused["error"]["description"], "consumer already exists");
    }
    let info = common::js_cluster::until_answered(
        &clients[1],
        "$JS.API.CONSUMER.INFO.ORDERS.RACE",
        json!({}),
    )
    .await;
    assert_eq!(
        info["config"]["description"], made[0]["config"]["description"],
        "{info}"
    );
}
