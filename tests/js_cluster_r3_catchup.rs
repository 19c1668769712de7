//! A replica that was down while its stream's group compacted its log catches up from the
//! group's snapshot and a peer's store (issue 20): three real jetlog servers whose file
//! streams snapshot every 16 entries (`JETLOG_STREAM_SNAPSHOT_ENTRIES`), a follower killed
//! with kill -9 while 190 more messages are stored and a durable is acknowledged, then
//! restarted. Once it leads, it serves every message and the durable goes on from its
//! committed state: nothing acknowledged comes again, nothing is skipped.
//!
//! And the stepdown that puts it in the lead: `placement.preferred` names the next leader,
//! with nats-server 2.11's errors for what it cannot do.

mod common;

use std::time::{Duration, Instant};

use async_nats::jetstream;
use common::js_cluster::{api, cluster, connect, META_READY};
use common::r3::{
    create_orders, durable_of, info, publish_range, pull_and_ack, restart_member, server_index,
    step_down_to, stored_body, wait_for_health, wait_for_replicas,
};
use serde_json::json;

/// Entries between snapshots of a stream's group in this test's servers (an eighth of
/// them stays in the log after a snapshot).
const SNAPSHOT_EVERY: &str = "16";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_that_missed_a_compacted_log_catches_up_from_the_snapshot_and_a_peer() {
    // Every test of this file's binary wants it; the servers inherit it.
    std::env::set_var("JETLOG_STREAM_SNAPSHOT_ENTRIES", SNAPSHOT_EVERY);
    let (mut servers, clients) = cluster().await;
    create_orders(&clients[0]).await;
    let js = jetstream::new(clients[0].clone());
    assert_eq!(
        publish_range(&js, 0, 10).await,
        (1..=10).collect::<Vec<u64>>()
    );
    let stream = js.get_stream("ORDERS").await.expect("stream");
    stream
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("R".into()),
            ..Default::default()
        })
        .await
        .expect("consumer");
    let consumer = durable_of(&js, "ORDERS", "R").await;
    assert_eq!(pull_and_ack(&consumer, 5).await, vec![1, 2, 3, 4, 5]);
    wait_for_replicas(&servers, 10);

    // A follower goes down; the others store 190 more and acknowledge 20 more, one entry
    // each, while snapshots let their logs go.
    let leader = info(&clients[0]).await["cluster"]["leader"]
        .as_str()
        .expect("leader")
        .to_owned();
    let down = (0..3)
        .find(|i| *i != server_index(&leader))
        .expect("a follower");
    let down_name = format!("S{down}");
    drop((consumer, stream, js, clients));
    let store = servers.remove(down).kill_and_take_store();
    let client = connect(&servers[0]).await;
    let js = jetstream::new(client.clone());
    assert_eq!(
        publish_range(&js, 10, 200).await,
        (11..=200).collect::<Vec<u64>>()
    );
    let consumer = durable_of(&js, "ORDERS", "R").await;
    assert_eq!(
        pull_and_ack(&consumer, 20).await,
        (6..=25).collect::<Vec<u64>>()
    );
    drop(consumer);

    // Back up, it is sent a snapshot and fetches the messages it lacks.
    let seed = servers[0].route_url();
    servers.insert(down, restart_member(&down_name, Some(&seed), store));
    let deadline = Instant::now() + META_READY;
    while !servers[down].log_contains("caught up") {
        assert!(
            Instant::now() < deadline,
            "{down_name} never caught up from a snapshot: {:#?}",
            servers[down].log_lines()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_for_replicas(&servers, 200);
    // Caught up, it is current again: the catching-up flag went with the catch-up.
    wait_for_health(&servers[down], "\"ok\"");

    // It leads: the messages it holds are the group's, and the durable resumes at 26.
    if leader != down_name {
        step_down_to(&client, &down_name).await;
    }
    let client = connect(&servers[down]).await;
    for seq in [1u64, 10, 11, 100, 199, 200] {
        assert_eq!(
            stored_body(&client, "ORDERS", seq).await,
            (seq - 1).to_string().into_bytes(),
            "message {seq}"
        );
    }
    let state = &info(&client).await["state"];
    assert_eq!(
        (state["messages"].as_u64(), state["last_seq"].as_u64()),
        (Some(200), Some(200))
    );
    let js = jetstream::new(client.clone());
    let consumer = durable_of(&js, "ORDERS", "R").await;
    assert_eq!(
        pull_and_ack(&consumer, 175).await,
        (26..=200).collect::<Vec<u64>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_stepdown_hands_over_to_the_preferred_server_and_refuses_what_it_cannot_do() {
    let (_servers, clients) = cluster().await;
    create_orders(&clients[0]).await;
    let leader = info(&clients[0]).await["cluster"]["leader"]
        .as_str()
        .expect("leader")
        .to_owned();
    let subject = "$JS.API.STREAM.LEADER.STEPDOWN.ORDERS";
    let refusals = [
        (
            json!({"placement": {"preferred": leader}}),
            10005,
            format!("preferred server \"{leader}\" is already leader"),
        ),
        (
            json!({"placement": {"preferred": "S9"}}),
            10005,
            "preferred server \"S9\" not known".to_owned(),
        ),
        (
            json!({"placement": {"cluster": "elsewhere"}}),
            10005,
            "no replacement peer connected".to_owned(),
        ),
        (
            json!({"placement": {"tags": ["ssd"]}}),
            10011,
            "tags placement not supported for operation".to_owned(),
        ),
    ];
    for (body, code, description) in refusals {
        let answer = api(&clients[1], subject, body.clone()).await;
        assert_eq!(answer["error"]["err_code"], code, "{body}: {answer}");
        assert_eq!(
            answer["error"]["description"],
            description.as_str(),
            "{body}"
        );
    }
    let bad = clients[1]
        .request(subject, "{not json".into())
        .await
        .expect("answered");
    let bad: serde_json::Value = serde_json::from_slice(&bad.payload).expect("json");
    assert_eq!(bad["error"]["code"], 400, "{bad}");
    assert_eq!(
        info(&clients[0]).await["cluster"]["leader"],
        leader.as_str()
    );
    // Each follower in turn, by name.
    for target in ["S0", "S1", "S2"].into_iter().filter(|s| *s != leader) {
        step_down_to(&clients[2], target).await;
    }
}
