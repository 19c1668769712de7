//! JetStream consume benchmarks: read what a stream holds through a durable pull or push
//! consumer, acking each message.
//!
//! The consumers are created for the run and deleted after it (a leftover from an
//! interrupted run is deleted first), so every run reads the stream from its start.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use async_nats::jetstream::consumer::{self, pull};
use async_nats::jetstream::Context;
use async_nats::{Client, Subscriber};
use bytes::Bytes;
use futures::future::try_join_all;
use futures::StreamExt;
use serde_json::json;
use tokio::sync::watch;

use super::report::{ClientStats, Report};
use super::{Plan, QUEUE_GROUP};
use crate::cli::client::api;
use crate::cli::client::connect;
use crate::cli::client::units::format_duration;

/// The durable consumer names the benchmark creates and deletes.
const PULL_CONSUMER: &str = "jetlog-bench-pull";
const PUSH_CONSUMER: &str = "jetlog-bench-push";

/// Slack on a fetch's own expiry, for the server's end-of-batch status to travel back.
const FETCH_SLACK: Duration = Duration::from_secs(1);

/// Checks that the stream exists and holds at least `--msgs` messages, so a consume run
/// fails up front instead of waiting for messages that will never come.
async fn check_stream_holds(js: &Context, plan: &Plan) -> Result<()> {
    let info = api::request(js, &format!("STREAM.INFO.{}", plan.stream), &json!({}))
        .await
        .with_context(|| format!("stream {}", plan.stream))?;
    let held = info["state"]["messages"].as_u64().unwrap_or(0);
    if held < plan.msgs {
        bail!(
            "stream {} holds {held} messages, fewer than --msgs {} (publish some first with --js)",
            plan.stream,
            plan.msgs
        );
    }
    Ok(())
}

/// Creates the run's durable consumer, replacing a leftover one of the same name.
async fn create_consumer(
    js: &Context,
    plan: &Plan,
    name: &str,
    config: serde_json::Value,
) -> Result<()> {
    delete_consumer(js, plan, name).await;
    api::request(
        js,
        &format!("CONSUMER.CREATE.{}.{name}", plan.stream),
        &json!({"stream_name": plan.stream, "config": config}),
    )
    .await
    .with_context(|| format!("creating consumer {name} on stream {}", plan.stream))?;
    Ok(())
}

/// Deletes the run's consumer; a missing one is what we want, so errors are ignored.
async fn delete_consumer(js: &Context, plan: &Plan, name: &str) {
    let _ = api::request(
        js,
        &format!("CONSUMER.DELETE.{}.{name}", plan.stream),
        &json!({}),
    )
    .await;
}

/// `--pull`: the subscribers share one durable pull consumer; each reads its share of
/// `--msgs` in fetches of `--batch`, acking every message.
pub async fn pull(plan: &Plan, control: &Client) -> Result<Report> {
    let js = connect::jetstream(control.clone(), &plan.common);
    check_stream_holds(&js, plan).await?;
    let config = json!({
        "durable_name": PULL_CONSUMER,
        "ack_policy": "explicit",
        "deliver_policy": "all",
    });
    create_consumer(&js, plan, PULL_CONSUMER, config).await?;
    let mut readers = Vec::with_capacity(plan.subs);
    for (index, share) in shares(plan.msgs, plan.subs) {
        let client = plan.connect().await?;
        readers.push(pull_share(plan, index, client, share));
    }
    let started = Instant::now();
    let outcome = try_join_all(readers).await;
    let elapsed = started.elapsed();
    delete_consumer(&js, plan, PULL_CONSUMER).await;
    consume_report(plan, "jspull", "pull", outcome?, elapsed)
}

/// Splits `msgs` over `clients`, 1-based, the first ones taking the remainder.
fn shares(msgs: u64, clients: usize) -> impl Iterator<Item = (usize, u64)> {
    let clients_u64 = clients.max(1) as u64;
    let (each, extra) = (msgs / clients_u64, msgs % clients_u64);
    (1..=clients).map(move |index| (index, each + u64::from((index as u64) <= extra)))
}

/// One pull reader: fetches until it has read and acked `share` messages.
async fn pull_share(plan: &Plan, index: usize, client: Client, share: u64) -> Result<ClientStats> {
    let js = connect::jetstream(client.clone(), &plan.common);
    let consumer: consumer::Consumer<pull::Config> = js
        .get_consumer_from_stream(PULL_CONSUMER, plan.stream.as_str())
        .await
        .map_err(|err| anyhow!("consumer {PULL_CONSUMER} of stream {}: {err}", plan.stream))?;
    let mut stats = ClientStats::new("sub", index);
    let started = Instant::now();
    while stats.msgs < share {
        let want = (share - stats.msgs).min(plan.batch as u64) as usize;
        let mut batch = consumer
            .fetch()
            .max_messages(want)
            .expires(plan.stall_limit())
            .messages()
            .await
            .map_err(|err| anyhow!("pulling from consumer {PULL_CONSUMER}: {err}"))?;
        let deadline = tokio::time::Instant::now() + plan.stall_limit() + FETCH_SLACK;
        let mut got = 0u64;
        while let Ok(Some(message)) = tokio::time::timeout_at(deadline, batch.next()).await {
            let message =
                message.map_err(|err| anyhow!("pulling from consumer {PULL_CONSUMER}: {err}"))?;
            message
                .ack()
                .await
                .map_err(|err| anyhow!("acking a message: {err}"))?;
            got += 1;
            stats.bytes += message.payload.len() as u64;
            plan.progress.add(1);
        }
        if got == 0 {
            bail!(
                "pull reader {index} read {} of {share} messages: none arrived within {}",
                stats.msgs,
                format_duration(plan.stall_limit())
            );
        }
        stats.msgs += got;
    }
    // The acks are fire-and-forget publishes: make sure they reached the server.
    connect::flush(&client, &plan.common).await?;
    stats.elapsed = started.elapsed();
    Ok(stats)
}

/// `--push`: one durable push consumer delivers to an inbox the subscribers share (as a
/// queue group when there are several); they ack every message until `--msgs` are read.
pub async fn push(plan: &Plan, control: &Client) -> Result<Report> {
    let js = connect::jetstream(control.clone(), &plan.common);
    check_stream_holds(&js, plan).await?;
    let inbox = control.new_inbox();
    // Every subscriber is in place before the consumer exists, so the first deliveries are
    // not sent to nobody and left waiting for their ack wait to pass.
    let mut subscribers = Vec::with_capacity(plan.subs);
    for index in 1..=plan.subs {
        let client = plan.connect().await?;
        let subscribed = if plan.subs > 1 {
            client
                .queue_subscribe(inbox.clone(), QUEUE_GROUP.to_string())
                .await
        } else {
            client.subscribe(inbox.clone()).await
        };
        let subscriber = subscribed.map_err(|err| anyhow!("subscribing to {inbox}: {err}"))?;
        connect::flush(&client, &plan.common).await?;
        subscribers.push((index, client, subscriber));
    }
    let mut config = json!({
        "durable_name": PUSH_CONSUMER,
        "deliver_subject": inbox,
        "ack_policy": "explicit",
        "deliver_policy": "all",
    });
    if plan.subs > 1 {
        config["deliver_group"] = json!(QUEUE_GROUP);
    }
    let started = Instant::now();
    create_consumer(&js, plan, PUSH_CONSUMER, config).await?;
    let read = Arc::new(AtomicU64::new(0));
    let (done_tx, done_rx) = watch::channel(false);
    let done_tx = Arc::new(done_tx);
    let readers = subscribers.into_iter().map(|(index, client, subscriber)| {
        let shared = PushShared {
            read: Arc::clone(&read),
            done_tx: Arc::clone(&done_tx),
            done_rx: done_rx.clone(),
        };
        push_reader(plan, index, client, subscriber, shared)
    });
    let outcome = try_join_all(readers).await;
    let elapsed = started.elapsed();
    delete_consumer(&js, plan, PUSH_CONSUMER).await;
    consume_report(plan, "jspush", "push", outcome?, elapsed)
}

/// What the push readers of one run share: the count of messages read, and the signal that
/// the count has reached `--msgs`.
struct PushShared {
    /// Messages claimed by all readers; a reader that claims past `--msgs` stops instead.
    read: Arc<AtomicU64>,
    /// Set by the reader that reads the last message.
    done_tx: Arc<watch::Sender<bool>>,
    /// Wakes the readers that are waiting for a message when the run is complete.
    done_rx: watch::Receiver<bool>,
}

/// One push subscriber: acks what it receives until the readers together have `--msgs`.
async fn push_reader(
    plan: &Plan,
    index: usize,
    client: Client,
    mut subscriber: Subscriber,
    mut shared: PushShared,
) -> Result<ClientStats> {
    let mut stats = ClientStats::new("sub", index);
    let mut first: Option<Instant> = None;
    let ack = Bytes::from_static(b"+ACK");
    let mut read_at_last_check = 0;
    while !*shared.done_rx.borrow() {
        let next = tokio::select! {
            next = tokio::time::timeout(plan.stall_limit(), subscriber.next()) => next,
            _ = shared.done_rx.changed() => break,
        };
        let message = match next {
            Ok(Some(message)) => message,
            Ok(None) => bail!("push reader {index}: the connection to the server was closed"),
            Err(_) => {
                // Quiet for a while is fine while the other readers of the group progress.
                let read = shared.read.load(Ordering::Relaxed);
                if read == read_at_last_check {
                    bail!(
                        "push consumer {PUSH_CONSUMER} delivered {read} of {} messages: none \
                         arrived for {}",
                        plan.msgs,
                        format_duration(plan.stall_limit())
                    );
                }
                read_at_last_check = read;
                continue;
            }
        };
        // Only stream messages carry an ack subject; anything else (a status) is skipped.
        let Some(reply) = message.reply.filter(|r| r.starts_with("$JS.ACK.")) else {
            continue;
        };
        if shared.read.fetch_add(1, Ordering::Relaxed) >= plan.msgs {
            break;
        }
        first.get_or_insert_with(Instant::now);
        client
            .publish(reply, ack.clone())
            .await
            .map_err(|err| anyhow!("acking a message: {err}"))?;
        stats.msgs += 1;
        stats.bytes += message.payload.len() as u64;
        plan.progress.add(1);
        if shared.read.load(Ordering::Relaxed) >= plan.msgs {
            let _ = shared.done_tx.send(true);
        }
    }
    connect::flush(&client, &plan.common).await?;
    stats.elapsed = first.map(|t| t.elapsed()).unwrap_or_default();
    Ok(stats)
}

/// natscli's `bench js ordered`: each reader reads `--msgs` messages of the stream from its
/// start through an ordered consumer of its own (ephemeral, no acks).
pub async fn ordered(plan: &Plan) -> Result<Report> {
    let mut readers = Vec::with_capacity(plan.subs);
    for index in 1..=plan.subs {
        let client = plan.connect().await?;
        let js = connect::jetstream(client, &plan.common);
        check_stream_holds(&js, plan).await?;
        readers.push(ordered_reader(plan, index, js));
    }
    let started = Instant::now();
    let outcome = try_join_all(readers).await;
    consume_report(plan, "jsordered", "ordered", outcome?, started.elapsed())
}

async fn ordered_reader(plan: &Plan, index: usize, js: Context) -> Result<ClientStats> {
    let config = pull::OrderedConfig::default();
    let consumer = js
        .create_consumer_on_stream(config, plan.stream.as_str())
        .await
        .map_err(|err| anyhow!("ordered consumer on stream {}: {err}", plan.stream))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|err| anyhow!("reading stream {}: {err}", plan.stream))?;
    let mut stats = ClientStats::new("sub", index);
    let started = Instant::now();
    while stats.msgs < plan.msgs {
        let message = match tokio::time::timeout(plan.stall_limit(), messages.next()).await {
            Ok(Some(message)) => message.map_err(|err| anyhow!("reading: {err}"))?,
            Ok(None) => bail!("ordered reader {index}: the connection to the server was closed"),
            Err(_) => bail!(
                "ordered reader {index} read {} of {} messages: none arrived within {}",
                stats.msgs,
                plan.msgs,
                format_duration(plan.stall_limit())
            ),
        };
        stats.msgs += 1;
        stats.bytes += message.payload.len() as u64;
        plan.progress.add(1);
    }
    stats.elapsed = started.elapsed();
    Ok(stats)
}

/// The report of a consume run.
fn consume_report(
    plan: &Plan,
    bench: &'static str,
    kind: &str,
    clients: Vec<ClientStats>,
    elapsed: Duration,
) -> Result<Report> {
    let received: u64 = clients.iter().map(|c| c.msgs).sum();
    let bytes: u64 = clients.iter().map(|c| c.bytes).sum();
    // What was read is whatever the stream held, so the size is measured, not --size.
    let size = usize::try_from(bytes / received.max(1)).unwrap_or(usize::MAX);
    Ok(Report {
        bench,
        sync: false,
        pubs: 0,
        subs: plan.subs,
        msgs: received,
        received,
        size,
        elapsed,
        clients,
        title: format!(
            "JetStream {kind} consume from stream {}: {} subscriber(s), {} msgs{}",
            plan.stream,
            plan.subs,
            plan.msgs,
            if kind == "ordered" {
                " each"
            } else {
                ", acking each"
            }
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::shares;

    #[test]
    fn shares_cover_every_message_once() {
        let split: Vec<(usize, u64)> = shares(10, 3).collect();
        assert_eq!(split, vec![(1, 4), (2, 3), (3, 3)]);
        assert_eq!(shares(7, 1).collect::<Vec<_>>(), vec![(1, 7)]);
    }
}
