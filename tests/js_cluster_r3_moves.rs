//! A file stream updated from one replica to three and back moves its messages (issue 20),
//! on three real jetlog servers through async-nats: up, the new servers fetch every message
//! from the stream's server and any of them can lead; a durable made before goes along with
//! its state, and one made meanwhile is replicated; down, the stream stays on the server that led it, with every message, the
//! durable goes on there from its committed state as an R1 consumer, and the other servers
//! delete their replicas. On five servers a stream goes from three to five replicas and
//! back the same way. A memory stream's move is refused by name. And on four servers,
//! `STREAM.PEER.REMOVE` gives a removed peer's place to the server without a replica,
//! which fetches the stream and can lead it; `jetlog stream cluster` asks for both.

mod cli_support;
mod common;

use std::time::{Duration, Instant};

use async_nats::jetstream;
use common::js_cluster::{api, cluster, cluster_of, connect, until_answered, META_READY};
use common::r3::{
    create_orders, durable_of, info, jsz_count, new_durable, publish_range, pull_and_ack,
    restart_member, server_index, step_down_to, stored_body, wait_for_replicas,
};
use common::TestServer;
use serde_json::{json, Value};

fn orders(replicas: u64) -> Value {
    json!({"name": "ORDERS", "subjects": ["orders.>"], "num_replicas": replicas})
}

/// Waits (bounded) until the servers hold `want` streams each, in order.
fn wait_for_streams(servers: &[TestServer], want: &[u64]) {
    let deadline = Instant::now() + META_READY;
    loop {
        let now: Vec<u64> = servers.iter().map(|s| jsz_count(s, "streams")).collect();
        if now == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the servers hold {now:?} streams"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_goes_from_one_replica_to_three_and_back_with_its_messages() {
    let (mut servers, clients) = cluster().await;
    let created = api(&clients[0], "$JS.API.STREAM.CREATE.ORDERS", orders(1)).await;
    assert!(created.get("error").is_none(), "{created}");
    let home = info(&clients[0]).await["cluster"]["leader"]
        .as_str()
        .expect("the stream's server")
        .to_owned();
    let js = jetstream::new(clients[0].clone());
    assert_eq!(
        publish_range(&js, 0, 50).await,
        (1..=50).collect::<Vec<u64>>()
    );

    // Up: answered by the stream's server once it leads the new group; the others fetch
    // the 50 messages.
    let up = api(&clients[1], "$JS.API.STREAM.UPDATE.ORDERS", orders(3)).await;
    assert_eq!(up["config"]["num_replicas"], 3, "{up}");
    assert_eq!(up["cluster"]["leader"], home.as_str(), "{up}");
    wait_for_replicas(&servers, 50);
    let consumer = new_durable(&js, "ORDERS", "P").await;
    assert_eq!(
        pull_and_ack(&consumer, 20).await,
        (1..=20).collect::<Vec<u64>>()
    );
    assert_eq!(
        publish_range(&js, 50, 60).await,
        (51..=60).collect::<Vec<u64>>()
    );
    wait_for_replicas(&servers, 60);

    // A server that only fetched them leads and serves them.
    let other = ["S0", "S1", "S2"]
        .into_iter()
        .find(|s| *s != home)
        .expect("another server");
    step_down_to(&clients[0], other).await;
    for seq in [1u64, 25, 50, 60] {
        assert_eq!(
            stored_body(&clients[0], "ORDERS", seq).await,
            (seq - 1).to_string().into_bytes(),
            "message {seq}"
        );
    }

    // Down: it stays on the server that leads, the others delete their replicas.
    let down = until_answered(&clients[2], "$JS.API.STREAM.UPDATE.ORDERS", orders(1)).await;
    assert_eq!(down["config"]["num_replicas"], 1, "{down}");
    let kept = server_index(other);
    let want: Vec<u64> = (0..3).map(|i| u64::from(i == kept)).collect();
    wait_for_streams(&servers, &want);
    let now = info(&clients[0]).await;
    assert_eq!(now["cluster"]["leader"], other, "{now}");
    assert_eq!(now["state"]["messages"], 60, "{now}");
    assert!(now["cluster"]["replicas"].is_null(), "{now}");
    assert_eq!(
        publish_range(&js, 60, 70).await,
        (61..=70).collect::<Vec<u64>>()
    );
    // The durable is R1 there now, and goes on from what its group committed.
    let consumer = durable_of(&js, "ORDERS", "P").await;
    assert_eq!(consumer.cached_info().config.num_replicas, 1);
    assert_eq!(
        pull_and_ack(&consumer, 50).await,
        (21..=70).collect::<Vec<u64>>()
    );

    // Killed and back, it is an R1 stream over the same store.
    drop((consumer, js));
    let store = servers.remove(kept).kill_and_take_store();
    let seed = servers[0].route_url();
    servers.insert(kept, restart_member(other, Some(&seed), store));
    let client = connect(&servers[(kept + 1) % 3]).await;
    let now = info(&client).await;
    assert_eq!(
        (&now["state"]["messages"], &now["state"]["last_seq"]),
        (&json!(70), &json!(70)),
        "{now}"
    );
    assert_eq!(now["config"]["num_replicas"], 1, "{now}");
}

/// A durable made on an R1 stream follows it to three replicas, as nats-server moves it:
/// its state goes along, so after a failover it neither repeats nor skips a message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durables_of_an_r1_stream_follow_it_to_three_replicas() {
    let (servers, clients) = cluster().await;
    let created = api(&clients[0], "$JS.API.STREAM.CREATE.ORDERS", orders(1)).await;
    assert!(created.get("error").is_none(), "{created}");
    let home = info(&clients[0]).await["cluster"]["leader"]
        .as_str()
        .expect("the stream's server")
        .to_owned();
    let js = jetstream::new(clients[0].clone());
    assert_eq!(
        publish_range(&js, 0, 30).await,
        (1..=30).collect::<Vec<u64>>()
    );
    let consumer = new_durable(&js, "ORDERS", "D").await;
    assert_eq!(consumer.cached_info().config.num_replicas, 1);
    assert_eq!(
        pull_and_ack(&consumer, 10).await,
        (1..=10).collect::<Vec<u64>>()
    );
    drop(consumer);

    let up = api(&clients[1], "$JS.API.STREAM.UPDATE.ORDERS", orders(3)).await;
    assert_eq!(up["config"]["num_replicas"], 3, "{up}");
    wait_for_replicas(&servers, 30);
    let consumer = durable_of(&js, "ORDERS", "D").await;
    assert_eq!(consumer.cached_info().config.num_replicas, 3);
    let other = ["S0", "S1", "S2"]
        .into_iter()
        .find(|s| *s != home)
        .expect("another server");
    step_down_to(&clients[0], other).await;
    let consumer = durable_of(&js, "ORDERS", "D").await;
    assert_eq!(
        pull_and_ack(&consumer, 20).await,
        (11..=30).collect::<Vec<u64>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_streams_replicas_cannot_change() {
    let (_servers, clients) = cluster().await;
    let config = json!({"name": "M", "subjects": ["m.>"], "storage": "memory"});
    let created = api(&clients[0], "$JS.API.STREAM.CREATE.M", config.clone()).await;
    assert!(created.get("error").is_none(), "{created}");
    let mut up = config;
    up["num_replicas"] = json!(3);
    let refused = api(&clients[1], "$JS.API.STREAM.UPDATE.M", up).await;
    assert_eq!(refused["error"]["err_code"], 10010, "{refused}");
    let description = refused["error"]["description"].as_str().unwrap_or_default();
    assert!(
        description.contains("changing the number of a memory stream's replicas"),
        "{refused}"
    );
}

/// The servers of `cluster_of(4)` that hold a replica of ORDERS, by its info: the leader first.
fn replica_servers(info: &Value) -> Vec<String> {
    let cluster = &info["cluster"];
    let mut names = vec![cluster["leader"].as_str().expect("leader").to_owned()];
    for replica in cluster["replicas"].as_array().expect("replicas") {
        names.push(replica["name"].as_str().expect("name").to_owned());
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_peer_is_replaced_by_a_server_that_fetches_the_stream() {
    let (servers, clients) = cluster_of(4).await;
    create_orders(&clients[0]).await;
    let js = jetstream::new(clients[0].clone());
    assert_eq!(
        publish_range(&js, 0, 30).await,
        (1..=30).collect::<Vec<u64>>()
    );
    let consumer = new_durable(&js, "ORDERS", "P").await;
    assert_eq!(
        pull_and_ack(&consumer, 10).await,
        (1..=10).collect::<Vec<u64>>()
    );

    // A follower goes, and the server that held nothing takes its place; then the leader.
    for which in [1usize, 0] {
        let holding = replica_servers(&info(&clients[0]).await);
        let gone = holding[which].clone();
        let spare = ["S0", "S1", "S2", "S3"]
            .into_iter()
            .find(|s| !holding.iter().any(|h| h == s))
            .expect("a server without a replica");
        let removed = api(
            &clients[3],
            "$JS.API.STREAM.PEER.REMOVE.ORDERS",
            json!({ "peer": gone }),
        )
        .await;
        assert_eq!(removed["success"], true, "{removed}");
        let mut want = [1u64; 4];
        want[server_index(&gone)] = 0;
        wait_for_streams(&servers, &want);
        let live: Vec<&TestServer> = servers
            .iter()
            .filter(|s| jsz_count(s, "streams") == 1)
            .collect();
        for server in live {
            let deadline = Instant::now() + META_READY;
            while jsz_count(server, "messages") != 30 {
                assert!(
                    Instant::now() < deadline,
                    "a replica holds {} messages: {:#?}",
                    jsz_count(server, "messages"),
                    server.log_lines()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let now = info(&clients[0]).await;
        let holding = replica_servers(&now);
        assert!(holding.iter().any(|h| h == spare), "{now}");
        assert!(!holding.contains(&gone), "{now}");
        // The new replica leads, and serves every message.
        step_down_to(&clients[0], spare).await;
        for seq in [1u64, 15, 30] {
            assert_eq!(
                stored_body(&clients[0], "ORDERS", seq).await,
                (seq - 1).to_string().into_bytes(),
                "message {seq}"
            );
        }
    }
    // The durable goes on where its group left it.
    let consumer = durable_of(&js, "ORDERS", "P").await;
    assert_eq!(
        pull_and_ack(&consumer, 20).await,
        (11..=30).collect::<Vec<u64>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_goes_from_three_replicas_to_five_and_back() {
    let (servers, clients) = cluster_of(5).await;
    create_orders(&clients[0]).await;
    let js = jetstream::new(clients[0].clone());
    assert_eq!(
        publish_range(&js, 0, 20).await,
        (1..=20).collect::<Vec<u64>>()
    );

    // Five: the two servers without a replica fetch the stream, and the group counts them.
    let up = until_answered(&clients[1], "$JS.API.STREAM.UPDATE.ORDERS", orders(5)).await;
    assert_eq!(up["config"]["num_replicas"], 5, "{up}");
    wait_for_streams(&servers, &[1; 5]);
    wait_for_replicas(&servers, 20);
    let deadline = Instant::now() + META_READY;
    while replica_servers(&info(&clients[0]).await).len() != 5 {
        assert!(Instant::now() < deadline, "the group never counted five");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        publish_range(&js, 20, 30).await,
        (21..=30).collect::<Vec<u64>>()
    );
    wait_for_replicas(&servers, 30);

    // Three again: the leader stays, two servers delete their replicas.
    let leader = info(&clients[0]).await["cluster"]["leader"]
        .as_str()
        .expect("leader")
        .to_owned();
    let down = until_answered(&clients[2], "$JS.API.STREAM.UPDATE.ORDERS", orders(3)).await;
    assert_eq!(down["config"]["num_replicas"], 3, "{down}");
    let deadline = Instant::now() + META_READY;
    let holding = loop {
        let now: Vec<u64> = servers.iter().map(|s| jsz_count(s, "streams")).collect();
        if now.iter().sum::<u64>() == 3 {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "the servers hold {now:?} streams"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        holding[server_index(&leader)],
        1,
        "the leader kept its replica"
    );
    let now = info(&clients[0]).await;
    assert_eq!(replica_servers(&now).len(), 3, "{now}");
    assert_eq!(now["state"]["messages"], 30, "{now}");
    assert_eq!(
        publish_range(&js, 30, 35).await,
        (31..=35).collect::<Vec<u64>>()
    );
    let kept: Vec<TestServer> = servers
        .into_iter()
        .zip(holding)
        .filter(|(_, held)| *held == 1)
        .map(|(server, _)| server)
        .collect();
    wait_for_replicas(&kept, 35);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_steps_a_streams_leader_down_and_asks_to_replace_a_server() {
    let (servers, clients) = cluster().await;
    create_orders(&clients[0]).await;
    let url = servers[0].url();
    let leader = info(&clients[0]).await["cluster"]["leader"]
        .as_str()
        .expect("leader")
        .to_owned();
    let next = ["S0", "S1", "S2"]
        .into_iter()
        .find(|s| *s != leader)
        .expect("another server");
    let stepped = cli_support::jetlog_at(
        &url,
        &[
            "stream",
            "cluster",
            "step-down",
            "ORDERS",
            "--preferred",
            next,
        ],
    );
    assert!(
        stepped
            .ok()
            .contains(&format!("leader {leader} stepped down, {next} leads")),
        "{stepped:#?}"
    );
    // A durable's group is its stream's: stepping the consumer down moves both.
    let js = jetstream::new(clients[0].clone());
    new_durable(&js, "ORDERS", "D").await;
    let stepped =
        cli_support::jetlog_at(&url, &["consumer", "cluster", "step-down", "ORDERS", "D"]);
    assert!(
        stepped.ok().contains(&format!(
            "consumer D of stream ORDERS: leader {next} stepped down"
        )),
        "{stepped:#?}"
    );
    // Three servers, three replicas: nobody can take a server's place.
    cli_support::jetlog_at(
        &url,
        &["stream", "cluster", "peer-remove", "ORDERS", next, "-f"],
    )
    .fails_with("peer remap failed");
    cli_support::jetlog_at(
        &url,
        &["stream", "cluster", "peer-remove", "ORDERS", "S9", "-f"],
    )
    .fails_with("peer not a member");
}
