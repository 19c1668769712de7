//! The JetStream publish benchmark: publishers publish into a stream, either async with a
//! window of publishes awaiting their acks, or sync, one ack at a time with its latency.

use std::collections::VecDeque;
use std::time::Instant;

use anyhow::{anyhow, Context as _, Result};
use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::{self, Context};
use async_nats::{Client, Subject};
use futures::future::try_join_all;
use serde_json::json;

use super::batch_pub;
use super::report::{latency_us, ClientStats, Report};
use super::Plan;
use crate::cli::client::api::{self, describe};
use crate::cli::client::connect;
use crate::cli::client::units::format_duration;

/// How a JetStream publisher publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PubKind {
    /// One PubAck awaited at a time, each timed.
    Sync,
    /// Up to `--async-window` publishes awaiting their PubAcks.
    Async,
    /// Atomic batches of `--batch` (natscli's `js pub atomic`).
    Atomic,
    /// One fast-ingest batch (natscli's `js pub fast`).
    Fast,
}

/// Creates the run's stream when it does not exist, allowing the batches `kind` publishes.
async fn ensure_stream(js: &Context, plan: &Plan, kind: PubKind) -> Result<()> {
    let info = format!("STREAM.INFO.{}", plan.stream);
    if api::request(js, &info, &json!({})).await.is_ok() {
        return Ok(());
    }
    let config = json!({
        "name": plan.stream,
        "subjects": [plan.subject],
        "allow_atomic": kind == PubKind::Atomic,
        "allow_batched": kind == PubKind::Fast,
    });
    api::request(js, &format!("STREAM.CREATE.{}", plan.stream), &config)
        .await
        .with_context(|| format!("creating stream {}", plan.stream))?;
    Ok(())
}

/// `--js`: every publisher publishes `--msgs` messages into the stream, creating the stream
/// first when it does not exist.
pub async fn publish(plan: &Plan, control: &Client, kind: PubKind) -> Result<Report> {
    let js = connect::jetstream(control.clone(), &plan.common);
    ensure_stream(&js, plan, kind).await?;
    let mut publishers = Vec::with_capacity(plan.pubs);
    for index in 1..=plan.pubs {
        let client = plan.connect().await?;
        publishers.push(async move {
            match kind {
                PubKind::Sync | PubKind::Async => {
                    let js = connect::jetstream(client, &plan.common);
                    publish_js(plan, index, js, kind == PubKind::Sync).await
                }
                PubKind::Atomic => batch_pub::atomic(plan, index, client).await,
                PubKind::Fast => batch_pub::fast(plan, index, client).await,
            }
        });
    }
    let started = Instant::now();
    let clients = try_join_all(publishers).await?;
    let elapsed = started.elapsed();
    let mode = match kind {
        PubKind::Sync => "sync".to_string(),
        PubKind::Async => format!("async, window {}", plan.async_window),
        PubKind::Atomic => format!("atomic batches of {}", plan.async_window),
        PubKind::Fast => "fast batch".to_string(),
    };
    Ok(Report {
        bench: "jspub",
        sync: kind != PubKind::Async,
        pubs: plan.pubs,
        subs: 0,
        msgs: plan.msgs.saturating_mul(plan.pubs as u64),
        received: 0,
        size: plan.payload.len(),
        elapsed,
        clients,
        title: format!(
            "JetStream {mode} publish to {} in stream {}: {} publisher(s) x {} msgs of {} B",
            plan.subject,
            plan.stream,
            plan.pubs,
            plan.msgs,
            plan.payload.len()
        ),
    })
}

/// One JetStream publisher; the run's last ack ends its clock.
async fn publish_js(plan: &Plan, index: usize, js: Context, sync: bool) -> Result<ClientStats> {
    let subject = Subject::from(plan.subject.as_str());
    let window = if sync { 1 } else { plan.async_window };
    let mut stats = ClientStats::new("pub", index);
    if sync {
        stats.latencies_us.reserve(plan.msgs.min(1 << 20) as usize);
    }
    let mut in_flight = VecDeque::with_capacity(window);
    let started = Instant::now();
    for _ in 0..plan.msgs {
        let sent = Instant::now();
        let ack = js
            .publish(subject.clone(), plan.payload.clone())
            .await
            .map_err(|err| ack_error(err, plan))?;
        in_flight.push_back(ack);
        if in_flight.len() >= window {
            if let Some(oldest) = in_flight.pop_front() {
                oldest.await.map_err(|err| ack_error(err, plan))?;
                plan.progress.add(1);
            }
            if sync {
                stats.latencies_us.push(latency_us(sent.elapsed()));
            }
        }
    }
    while let Some(oldest) = in_flight.pop_front() {
        oldest.await.map_err(|err| ack_error(err, plan))?;
        plan.progress.add(1);
    }
    stats.elapsed = started.elapsed();
    stats.msgs = plan.msgs;
    stats.bytes = plan.msgs.saturating_mul(plan.payload.len() as u64);
    Ok(stats)
}

/// A failed publish or ack as one line, with the server's description where it gave one.
fn ack_error(err: PublishError, plan: &Plan) -> anyhow::Error {
    let subject = &plan.subject;
    match err.kind() {
        PublishErrorKind::StreamNotFound => anyhow!("no stream captures subject {subject}"),
        PublishErrorKind::TimedOut => anyhow!(
            "no PubAck for {subject} within {}",
            format_duration(plan.common.timeout)
        ),
        _ => match std::error::Error::source(&err)
            .and_then(|s| s.downcast_ref::<jetstream::Error>())
        {
            Some(api) => anyhow!("publish to {subject} refused: {}", describe(api)),
            None => anyhow!("publish to {subject} failed: {err}"),
        },
    }
}
