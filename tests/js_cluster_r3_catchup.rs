//! A replica that was down while its stream's group compacted its log catches up from the
//! group's snapshot and a peer's store (issue 20): three real jetlog servers whose file
//! streams snapshot every 16 entries (`JETLOG_STREAM_SNAPSHOT_ENTRIES`), a follower killed
//! with kill -9 while 190 more messages are stored and a durable is acknowledged, then
//! restarted. Once it leads, it serves every message and the durable goes on from its
//! committed state: nothing acknowledged comes again, nothing is skipped.
//!
//! A work-queue stream's follower catches up the same way to the same gaps (the messages
//! its consumer's acks removed) and the consumer's committed state, and leading, hands out
//! exactly what was never acknowledged.
//!
//! And the stepdown that puts it in the lead: `placement.preferred` names the next leader,
//! with nats-server 2.11's errors for what it cannot do.

mod common;

use std::time::{Duration, Instant};

use async_nats::jetstream;
use common::js_cluster::{api, cluster, connect, META_READY};
use common::r3::{
    create_orders, durable_of, info, kill_a_follower, new_durable, publish_range, pull_and_ack,
    restart_member, step_down_stream_to, step_down_to, stored_body, until_caught_up,
    wait_for_health, wait_for_replicas,
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
    let consumer = new_durable(&js, "ORDERS", "R").await;
    assert_eq!(pull_and_ack(&consumer, 5).await, vec![1, 2, 3, 4, 5]);
    wait_for_replicas(&servers, 10);

    // A follower goes down; the others store 190 more and acknowledge 20 more, one entry
    // each, while snapshots let their logs go.
    drop((consumer, js));
    let (down, down_name, store) = kill_a_follower(&mut servers, &clients[0], "ORDERS").await;
    drop(clients);
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
    until_caught_up(&servers[down]).await;
    wait_for_replicas(&servers, 200);
    // Caught up, it is current again: the catching-up flag went with the catch-up.
    wait_for_health(&servers[down], "\"ok\"");

    // It leads: the messages it holds are the group's, and the durable resumes at 26.
    step_down_to(&client, &down_name).await;
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

/// What `/jsz` says server `server`'s replica of `stream` holds: messages, bytes, first and
/// last sequence, and how many sequences between them hold nothing.
fn replica_state(server: &common::TestServer, stream: &str) -> [u64; 5] {
    let port = server.monitor_port().expect("monitor");
    let jsz = common::monitor::get_json(port, "/jsz?streams=true");
    let found = jsz["account_details"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| a["stream_detail"].as_array().into_iter().flatten())
        .find(|s| s["name"] == stream)
        .map(|s| s["state"].clone())
        .unwrap_or_default();
    ["messages", "bytes", "first_seq", "last_seq", "num_deleted"]
        .map(|k| found[k].as_u64().unwrap_or(0))
}

/// Publishes messages `from..to` to JOBS, each stored at sequence `n + 1`.
async fn publish_jobs(js: &jetstream::Context, from: u64, to: u64) {
    for n in from..to {
        let ack = js.publish(format!("jobs.{}", n % 4), n.to_string().into());
        let ack = ack.await.expect("sent").await.expect("acknowledged");
        assert_eq!(ack.sequence, n + 1);
    }
}

/// Pulls `want` messages of `consumer` (bounded) and acknowledges with AckSync those whose
/// sequence is not a multiple of 10, leaving those pending; returns (acknowledged, left).
async fn take_leaving_every_tenth(
    consumer: &jetstream::consumer::PullConsumer,
    want: usize,
) -> (Vec<u64>, Vec<u64>) {
    use futures::StreamExt;
    let (mut acked, mut left) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + META_READY;
    while acked.len() + left.len() < want {
        assert!(
            Instant::now() < deadline,
            "only {acked:?} and {left:?} came"
        );
        let Ok(mut batch) = consumer
            .batch()
            .max_messages(want - acked.len() - left.len())
            .expires(Duration::from_secs(3))
            .messages()
            .await
        else {
            continue;
        };
        while let Some(Ok(msg)) = batch.next().await {
            let seq = msg.info().expect("a JetStream message").stream_sequence;
            if seq % 10 == 0 {
                left.push(seq);
            } else {
                common::r3::ack_sync(&msg).await.expect("ack answered");
                acked.push(seq);
            }
        }
    }
    (acked, left)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_work_queue_follower_catches_up_to_the_same_gaps_and_consumer_state() {
    std::env::set_var("JETLOG_STREAM_SNAPSHOT_ENTRIES", SNAPSHOT_EVERY);
    let (mut servers, clients) = cluster().await;
    let created = api(
        &clients[0],
        "$JS.API.STREAM.CREATE.JOBS",
        json!({"name": "JOBS", "subjects": ["jobs.>"], "num_replicas": 3, "retention": "workqueue"}),
    )
    .await;
    assert!(created.get("error").is_none(), "{created}");
    let js = jetstream::new(clients[0].clone());
    publish_jobs(&js, 0, 40).await;
    let stream = js.get_stream("JOBS").await.expect("stream");
    stream
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("W".into()),
            ack_wait: Duration::from_secs(2),
            ..Default::default()
        })
        .await
        .expect("consumer");
    let consumer = durable_of(&js, "JOBS", "W").await;
    let (mut acked, mut left) = take_leaving_every_tenth(&consumer, 20).await;

    // A follower goes down while the others store 150 more and the consumer takes 100,
    // its acks removing messages (gaps where every tenth is left), and snapshots come.
    drop((consumer, stream, js));
    let (down, down_name, store) = kill_a_follower(&mut servers, &clients[0], "JOBS").await;
    drop(clients);
    let client = connect(&servers[0]).await;
    let js = jetstream::new(client.clone());
    publish_jobs(&js, 40, 190).await;
    let consumer = durable_of(&js, "JOBS", "W").await;
    let (more_acked, more_left) = take_leaving_every_tenth(&consumer, 100).await;
    acked.extend(more_acked);
    left.extend(more_left);
    drop(consumer);

    let seed = servers[0].route_url();
    servers.insert(down, restart_member(&down_name, Some(&seed), store));
    until_caught_up(&servers[down]).await;
    let deadline = Instant::now() + META_READY;
    // Every replica holds the same: 190 stored, the acknowledged removed.
    let want = 190 - acked.len() as u64;
    loop {
        let states: Vec<[u64; 5]> = servers.iter().map(|s| replica_state(s, "JOBS")).collect();
        if states.iter().all(|s| s == &states[0]) && states[0][0] == want {
            assert_eq!(states[0][3], 190, "{states:?}");
            assert!(
                states[0][4] > 0,
                "gaps where messages were consumed: {states:?}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "replicas differ: {states:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Leading, it hands out exactly what was never acknowledged.
    step_down_stream_to(&client, "JOBS", &down_name).await;
    let client = connect(&servers[down]).await;
    let js = jetstream::new(client);
    let consumer = durable_of(&js, "JOBS", "W").await;
    let mut rest = pull_and_ack(&consumer, want as usize).await;
    rest.sort_unstable();
    let mut expected: Vec<u64> = (1..=190).filter(|s| !acked.contains(s)).collect();
    expected.sort_unstable();
    assert_eq!(rest, expected);
    assert!(left.iter().all(|s| rest.contains(s)));
}
