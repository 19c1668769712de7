//! An R3 stream across a real network partition (issue 20): three jetlog servers, each in its
//! own network namespace, their routes on a bridge the test can cut. The stream's leader is
//! cut off from the other two while its clients stay connected to it. The majority elects a
//! new leader and goes on taking publishes; the cut-off server acknowledges nothing. After
//! the heal it catches up, and the stream holds every acknowledged message once, in order,
//! and a replicated durable has lost none of its acknowledged progress.
//!
//! Needs root (`ip netns`); elsewhere it says it is skipped and passes, as the route
//! partition tests do. CI runs as root.

mod common;

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::PullConsumer};
use common::js_cluster::{api, until_answered, META_READY};
use common::netns::{Net, NsServer};
use common::r3::{create_orders, durable_of, info, publish_range, pull_and_ack, stored_body};
use serde_json::{json, Value};

const PING_FLAGS: [&str; 4] = ["--ping_interval", "1s", "--ping_max", "2"];

/// Three servers in their namespaces; killed before their namespaces are removed.
struct Cluster {
    servers: Vec<NsServer>,
    net: Net,
}

fn start() -> Option<Cluster> {
    let net = match Net::create(3) {
        Ok(net) => net,
        Err(why) => {
            eprintln!("skipping: network namespaces unavailable: {why}");
            return None;
        }
    };
    let seed = net.route_url(0);
    let servers = (0..3)
        .map(|i| {
            let name = format!("S{i}");
            let mut args = vec!["-n", name.as_str(), "--cluster_name", "tr3"];
            args.extend(PING_FLAGS);
            if i > 0 {
                args.extend(["--routes", seed.as_str()]);
            }
            net.spawn(i, &args)
        })
        .collect();
    Some(Cluster { servers, net })
}

fn leader_index(info: &Value) -> usize {
    info["cluster"]["leader"]
        .as_str()
        .and_then(|l| l.strip_prefix('S'))
        .and_then(|i| i.parse().ok())
        .unwrap_or_else(|| panic!("no leader in {info}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_leader_acknowledges_nothing_and_the_majority_goes_on_without_loss() {
    let Some(cluster) = start() else {
        return;
    };
    let mut clients = Vec::new();
    for server in &cluster.servers {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .connect(server.url.as_str())
            .await
            .expect("connect through the client bridge");
        clients.push(client);
    }
    until_answered(&clients[0], "$JS.API.INFO", json!({})).await;
    create_orders(&clients[0]).await;
    let js = jetstream::new(clients[1].clone());
    assert_eq!(
        publish_range(&js, 0, 20).await,
        (1..=20).collect::<Vec<u64>>()
    );
    let consumer: PullConsumer = js
        .get_stream("ORDERS")
        .await
        .expect("stream")
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("R".into()),
            ..Default::default()
        })
        .await
        .expect("consumer");
    assert_eq!(
        pull_and_ack(&consumer, 10).await,
        (1..=10).collect::<Vec<u64>>()
    );
    drop(consumer);

    // The leader's routes are cut; its clients still reach it.
    let lost = leader_index(&info(&clients[0]).await);
    cluster.net.cut(lost);
    let majority = (lost + 1) % 3;

    // A publish through the cut-off server is not acknowledged: it cannot reach a quorum.
    let isolated = jetstream::new(clients[lost].clone());
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", "cut-off");
    let attempt = async {
        isolated
            .publish_with_headers("orders.x", headers, "cut-off".into())
            .await
            .ok()?
            .await
            .ok()
    };
    let acked = tokio::time::timeout(Duration::from_secs(4), attempt).await;
    assert!(
        !matches!(acked, Ok(Some(_))),
        "the cut-off server acknowledged a publish: {acked:?}"
    );

    // The majority elects a leader and takes the next twenty.
    let js = jetstream::new(clients[majority].clone());
    assert_eq!(
        publish_range(&js, 20, 40).await,
        (21..=40).collect::<Vec<u64>>()
    );
    let during = info(&clients[majority]).await;
    assert_ne!(leader_index(&during), lost, "{during}");

    // Healed, the old leader catches up: every replica current, 40 messages.
    cluster.net.heal(lost);
    let deadline = Instant::now() + META_READY;
    let healed = loop {
        let now = info(&clients[majority]).await;
        let replicas = now["cluster"]["replicas"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let caught_up = replicas.len() == 2
            && replicas.iter().all(|r| r["current"] == true)
            && now["state"]["messages"] == 40;
        if caught_up {
            break now;
        }
        assert!(Instant::now() < deadline, "never caught up: {now}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(healed["state"]["last_seq"], 40, "{healed}");

    // Every acknowledged message once and in order; the cut-off publish nowhere.
    for seq in 1..=40u64 {
        let body = stored_body(&clients[majority], "ORDERS", seq).await;
        assert_eq!(body, (seq - 1).to_string().as_bytes(), "seq {seq}");
    }

    // The durable's acknowledged progress survived: it goes on at 11, the old leader's
    // server included, with none of the first ten again.
    let js = jetstream::new(clients[lost].clone());
    let consumer = durable_of(&js, "ORDERS", "R").await;
    assert_eq!(
        pull_and_ack(&consumer, 30).await,
        (11..=40).collect::<Vec<u64>>()
    );
    let state = api(&clients[0], "$JS.API.CONSUMER.INFO.ORDERS.R", json!({})).await;
    assert_eq!(state["ack_floor"]["stream_seq"], 40, "{state}");
    drop(cluster);
}
