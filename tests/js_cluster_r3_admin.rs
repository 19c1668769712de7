//! Purges, message deletes and config updates of a replicated stream (issue 20), on three
//! real jetlog servers through async-nats and the JetStream API: each is an entry of the
//! stream's group, so every replica makes it between the same publishes and ends with the
//! same messages under the same config, whichever server leads afterwards.
//!
//! A replica that was down while the config changed takes it from the group: from the
//! group's snapshot when the log that held the change is gone, and after a kill -9 from
//! its own catalog. And a backup (`STREAM.SNAPSHOT`) of a replicated stream comes from its
//! leader, with its replicated consumer, and restores on a server of its own.

mod common;

use std::time::{Duration, Instant};

use async_nats::jetstream;
use common::js_cluster::{api, cluster, connect, until_answered, META_READY};
use common::monitor::get_json;
use common::r3::{
    create_orders, durable_of, info, kill_a_follower, new_durable, publish_range, pull_and_ack,
    restart_member, step_down_to, until_caught_up, wait_for_health, wait_for_replicas,
};
use common::snapshot::{restore, snapshot};
use common::TestServer;
use serde_json::{json, Value};

/// ORDERS's config with `max_msgs`.
fn orders_with_max_msgs(max_msgs: i64) -> Value {
    json!({"name": "ORDERS", "subjects": ["orders.>"], "num_replicas": 3, "max_msgs": max_msgs})
}

/// A stream info's messages, first and last sequence, and deleted sequences between (a
/// field left out is 0, as nats-server leaves out a zero `num_deleted`).
fn state_of(info: &Value) -> (u64, u64, u64, u64) {
    let state = &info["state"];
    let field = |name: &str| state[name].as_u64().unwrap_or(0);
    (
        field("messages"),
        field("first_seq"),
        field("last_seq"),
        field("num_deleted"),
    )
}

/// Waits (bounded) until every server's replica of ORDERS has stored up to `last_seq`.
fn wait_for_last_seq(servers: &[TestServer], last_seq: u64) {
    let deadline = Instant::now() + META_READY;
    for server in servers {
        let port = server.monitor_port().expect("monitor");
        loop {
            let jsz = get_json(port, "/jsz?streams=true");
            let state = &jsz["account_details"][0]["stream_detail"][0]["state"];
            if state["last_seq"].as_u64() == Some(last_seq) {
                break;
            }
            assert!(Instant::now() < deadline, "a replica is at {state}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_a_delete_and_an_update_apply_alike_on_every_replica() {
    let (servers, clients) = cluster().await;
    create_orders(&clients[0]).await;
    let js = jetstream::new(clients[0].clone());
    // Message n is on orders.<n % 3>, at sequence n + 1.
    assert_eq!(
        publish_range(&js, 0, 30).await,
        (1..=30).collect::<Vec<u64>>()
    );

    // Through servers that need not lead: the API reaches the leader.
    let purged = api(
        &clients[1],
        "$JS.API.STREAM.PURGE.ORDERS",
        json!({"filter": "orders.0"}),
    )
    .await;
    assert_eq!(
        (&purged["success"], &purged["purged"]),
        (&json!(true), &json!(10)),
        "{purged}"
    );
    let refused = api(
        &clients[1],
        "$JS.API.STREAM.PURGE.ORDERS",
        json!({"seq": 5, "keep": 1}),
    )
    .await;
    let description = refused["error"]["description"].as_str().unwrap_or_default();
    assert!(
        description.contains("sequence and keep cannot both be set"),
        "{refused}"
    );
    let deleted = api(
        &clients[2],
        "$JS.API.STREAM.MSG.DELETE.ORDERS",
        json!({"seq": 2}),
    )
    .await;
    assert_eq!(deleted["success"], true, "{deleted}");
    let again = api(
        &clients[2],
        "$JS.API.STREAM.MSG.DELETE.ORDERS",
        json!({"seq": 2}),
    )
    .await;
    assert_eq!(
        (&again["error"]["err_code"], &again["error"]["description"]),
        (&json!(10043), &json!("sequence 2 not found")),
        "{again}"
    );
    wait_for_replicas(&servers, 19);

    // Sequences 3, 5, 6, 8, 9, 11, ... 30 are left: max_msgs 15 keeps 9 onwards.
    let updated = api(
        &clients[1],
        "$JS.API.STREAM.UPDATE.ORDERS",
        orders_with_max_msgs(15),
    )
    .await;
    assert_eq!(updated["config"]["max_msgs"], 15, "{updated}");
    assert_eq!(updated["state"]["first_seq"], 9, "{updated}");
    wait_for_replicas(&servers, 15);
    // The next publishes are held to it on every replica.
    assert_eq!(
        publish_range(&js, 30, 35).await,
        (31..=35).collect::<Vec<u64>>()
    );
    wait_for_replicas(&servers, 15);
    let listed = until_answered(&clients[2], "$JS.API.STREAM.LIST", json!({})).await;
    assert_eq!(listed["streams"][0]["config"]["max_msgs"], 15, "{listed}");

    // Whichever replica leads says the same.
    for leader in ["S0", "S1", "S2"] {
        step_down_to(&clients[0], leader).await;
        let now = info(&clients[0]).await;
        assert_eq!(now["cluster"]["leader"], leader, "{now}");
        assert_eq!(now["config"]["max_msgs"], 15, "{leader}: {now}");
        // 17 to 35, less 19, 22, 25 and 28 (orders.0, purged).
        assert_eq!(state_of(&now), (15, 17, 35, 4), "{leader}: {now}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_down_during_an_update_takes_the_config_from_the_snapshot_and_keeps_it() {
    // Every test of this file's binary may have it; the servers inherit it.
    std::env::set_var("JETLOG_STREAM_SNAPSHOT_ENTRIES", "16");
    let (mut servers, clients) = cluster().await;
    create_orders(&clients[0]).await;
    let js = jetstream::new(clients[0].clone());
    assert_eq!(
        publish_range(&js, 0, 10).await,
        (1..=10).collect::<Vec<u64>>()
    );
    wait_for_replicas(&servers, 10);

    // A follower is down while the config changes and 90 more are stored: the group's
    // snapshots let the entry with the change go.
    drop(js);
    let (down, down_name, store) = kill_a_follower(&mut servers, &clients[0], "ORDERS").await;
    drop(clients);
    let client = connect(&servers[0]).await;
    // The killed server may have led the meta group: asked again until a leader answers.
    let updated = until_answered(
        &client,
        "$JS.API.STREAM.UPDATE.ORDERS",
        orders_with_max_msgs(50),
    )
    .await;
    assert_eq!(updated["config"]["max_msgs"], 50, "{updated}");
    let js = jetstream::new(client.clone());
    assert_eq!(
        publish_range(&js, 10, 100).await,
        (11..=100).collect::<Vec<u64>>()
    );

    // Back, it catches up from the snapshot, and as a follower it holds the next
    // publishes to the snapshot's config: 50 messages.
    let seed = servers[0].route_url();
    servers.insert(down, restart_member(&down_name, Some(&seed), store));
    until_caught_up(&servers[down]).await;
    wait_for_health(&servers[down], "\"ok\"");
    assert_eq!(
        publish_range(&js, 100, 110).await,
        (101..=110).collect::<Vec<u64>>()
    );
    wait_for_last_seq(&servers, 110);
    wait_for_replicas(&servers, 50);

    // Killed again and back, still a follower, it still does: its catalog has the config,
    // not only its memory.
    let store = servers.remove(down).kill_and_take_store();
    let seed = servers[0].route_url();
    servers.insert(down, restart_member(&down_name, Some(&seed), store));
    assert_eq!(
        publish_range(&js, 110, 120).await,
        (111..=120).collect::<Vec<u64>>()
    );
    wait_for_replicas(&servers, 50);
    // Current again before it is asked to lead (a member behind cannot win the vote).
    wait_for_last_seq(&servers, 120);
    step_down_to(&client, &down_name).await;
    let now = info(&client).await;
    assert_eq!(now["config"]["max_msgs"], 50, "{now}");
    assert_eq!(state_of(&now), (50, 71, 120, 0), "{now}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicated_stream_backs_up_from_its_leader_and_restores_on_one_server() {
    let (_servers, clients) = cluster().await;
    create_orders(&clients[0]).await;
    let js = jetstream::new(clients[0].clone());
    assert_eq!(
        publish_range(&js, 0, 20).await,
        (1..=20).collect::<Vec<u64>>()
    );
    let consumer = new_durable(&js, "ORDERS", "R").await;
    assert_eq!(pull_and_ack(&consumer, 5).await, vec![1, 2, 3, 4, 5]);
    let deleted = api(
        &clients[1],
        "$JS.API.STREAM.MSG.DELETE.ORDERS",
        json!({"seq": 7}),
    )
    .await;
    assert_eq!(deleted["success"], true, "{deleted}");

    // Asked through any server, the leader sends the backup.
    let (archive, reply) = snapshot(&clients[2], "ORDERS", json!({})).await;
    assert_eq!(state_of(&reply), (19, 1, 20, 1), "{reply}");

    // On a server of its own, as R1, it is the same stream, and the durable goes on at 6.
    let single = TestServer::start(&[]);
    let client = connect(&single).await;
    let mut config = reply["config"].clone();
    config["num_replicas"] = json!(1);
    let restored = restore(&client, &config, &archive).await;
    assert_eq!(state_of(&restored), (19, 1, 20, 1), "{restored}");
    let js = jetstream::new(client);
    let consumer = durable_of(&js, "ORDERS", "R").await;
    let rest: Vec<u64> = (6..=20).filter(|seq| *seq != 7).collect();
    assert_eq!(pull_and_ack(&consumer, rest.len()).await, rest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restores_into_the_cluster_on_three_replicas() {
    let (servers, clients) = cluster().await;
    create_orders(&clients[0]).await;
    let js = jetstream::new(clients[0].clone());
    assert_eq!(
        publish_range(&js, 0, 40).await,
        (1..=40).collect::<Vec<u64>>()
    );
    let (archive, reply) = snapshot(&clients[1], "ORDERS", json!({})).await;
    let deleted = api(&clients[2], "$JS.API.STREAM.DELETE.ORDERS", json!({})).await;
    assert_eq!(deleted["success"], true, "{deleted}");
    wait_for_replicas(&servers, 0);

    // Through any server: the meta leader takes it, and the replicas fetch it.
    let restored = restore(&clients[2], &reply["config"], &archive).await;
    assert_eq!(restored["config"]["num_replicas"], 3, "{restored}");
    assert_eq!(state_of(&restored), (40, 1, 40, 0), "{restored}");
    wait_for_replicas(&servers, 40);
    assert_eq!(
        publish_range(&js, 40, 45).await,
        (41..=45).collect::<Vec<u64>>()
    );
    wait_for_replicas(&servers, 45);
    // A second restore of the same name is refused.
    let again = api(
        &clients[0],
        "$JS.API.STREAM.RESTORE.ORDERS",
        json!({"config": reply["config"], "state": {}}),
    )
    .await;
    assert_eq!(again["error"]["err_code"], 10130, "{again}");
}
