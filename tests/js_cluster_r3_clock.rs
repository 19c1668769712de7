//! An R3 stream whose servers' clocks disagree (issue 20's clock jumps): each server's
//! stream clock is set off the machine's (`JETLOG_FAULT_CLOCK_SKEW`), S2's four minutes ahead
//! of S1's, so a leadership moving from S2 to S1 is a jump of the stream's clock four minutes
//! back, the kind that matters: deliveries stamped by the old leader lie in the new leader's
//! future, and so do the duplicate window's message ids.
//!
//! A message delivered and not acknowledged before the jump is delivered again one ack wait
//! after the new leader took over, not four minutes later; a publish repeated with its
//! message id after the jump is still a duplicate; every replica holds the same messages.

mod common;

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::PullConsumer};
use common::js_cluster::{cluster, META_READY};
use common::r3::{create_durable_with, create_orders, info, step_down_to, wait_for_replicas};
use futures::StreamExt;

const SKEW_ENV: &str = "JETLOG_FAULT_CLOCK_SKEW";
const ACK_WAIT: Duration = Duration::from_secs(2);

async fn publish_with_id(js: &jetstream::Context, id: &str) -> (u64, bool) {
    let deadline = Instant::now() + META_READY;
    loop {
        let headers = {
            let mut h = async_nats::HeaderMap::new();
            h.insert("Nats-Msg-Id", id);
            h
        };
        let sent = js
            .publish_with_headers("orders.new", headers, id.to_owned().into())
            .await;
        let acked = match sent {
            Ok(pending) => tokio::time::timeout(Duration::from_secs(3), pending)
                .await
                .ok()
                .and_then(Result::ok),
            Err(_) => None,
        };
        if let Some(ack) = acked {
            return (ack.sequence, ack.duplicate);
        }
        assert!(
            Instant::now() < deadline,
            "publish of {id} never acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Pulls until the message at `seq` comes (bounded by `within`); its delivery count.
async fn until_delivered(consumer: &PullConsumer, seq: u64, within: Duration) -> Option<i64> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let batch = consumer
            .batch()
            .max_messages(1)
            .expires(Duration::from_secs(1))
            .messages()
            .await;
        let Ok(mut batch) = batch else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        while let Some(Ok(msg)) = batch.next().await {
            let Ok(meta) = msg.info() else { continue };
            if meta.stream_sequence == seq {
                return Some(meta.delivered);
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jump_of_the_stream_clock_back_neither_delays_redelivery_nor_lets_a_duplicate_in() {
    std::env::set_var(SKEW_ENV, "S0=0,S1=-120000,S2=120000");
    let (servers, clients) = cluster().await;
    let client = clients[0].clone();
    create_orders(&client).await;
    step_down_to(&client, "S2").await;
    let js = jetstream::new(client.clone());
    assert_eq!(publish_with_id(&js, "a").await, (1, false));
    assert_eq!(publish_with_id(&js, "b").await, (2, false));
    let config = jetstream::consumer::pull::Config {
        ack_wait: ACK_WAIT,
        ..Default::default()
    };
    let consumer = create_durable_with(&js, "ORDERS", "R", config).await;
    // Delivered by S2 and left unacknowledged; its state reaches the group (proposed at
    // most every 100 ms) before the leadership moves.
    assert_eq!(
        until_delivered(&consumer, 1, Duration::from_secs(5)).await,
        Some(1)
    );
    tokio::time::sleep(Duration::from_millis(500)).await;

    step_down_to(&client, "S1").await;
    let moved = Instant::now();
    let consumer = loop {
        let found = async {
            js.get_stream("ORDERS")
                .await
                .ok()?
                .get_consumer("R")
                .await
                .ok()
        };
        if let Ok(Some(c)) = tokio::time::timeout(Duration::from_secs(3), found).await {
            break c;
        }
        assert!(
            moved.elapsed() < META_READY,
            "the durable never answered on S1"
        );
    };
    // Four minutes behind the old leader's clock, S1 still sees "a" as a duplicate...
    assert_eq!(publish_with_id(&js, "a").await, (1, true));
    // ... and delivers message 1 again within its ack wait (and the time to take over),
    // not once its own clock reaches the old leader's.
    let again = until_delivered(&consumer, 1, ACK_WAIT * 5).await;
    assert_eq!(
        again,
        Some(2),
        "message 1 not delivered again {:?} after the jump",
        moved.elapsed()
    );
    assert_eq!(info(&client).await["state"]["messages"], 2);
    wait_for_replicas(&servers, 2);
}
