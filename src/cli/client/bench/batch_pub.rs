//! natscli's `bench js pub atomic` and `js pub fast`: batch publishes (ADR-50). An atomic batch
//! stages `--batch` messages under `Nats-Batch-Id` and stores them together at the commit,
//! whose PubAck each batch waits for. A fast batch stores each message as it arrives and
//! paces the publisher with flow acks on the batch's reply subject
//! (`<prefix>.<id>.<flow>.<gap>.<seq>.<op>.$FI`), the one batch running to `--msgs`.
//! Latencies are per batch (atomic) or per flow ack (fast), as natscli measures them.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use async_nats::{Client, HeaderMap, Subscriber};
use futures::StreamExt;
use serde_json::Value;

use super::report::{latency_us, ClientStats};
use super::Plan;
use crate::cli::client::connect;

/// Most messages between two flow acks the publisher asks for (the server caps it at 500).
const FAST_FLOW: u64 = 500;
/// Fast batch ops, as the reply subject carries them.
const OP_START: u8 = 0;
const OP_APPEND: u8 = 1;
const OP_COMMIT: u8 = 2;

/// One atomic-batch publisher: batches of `--batch` messages, each committed by its last.
pub async fn atomic(plan: &Plan, index: usize, client: Client) -> Result<ClientStats> {
    let js = connect::jetstream(client.clone(), &plan.common);
    let id_base = client.new_inbox().replace("_INBOX.", "");
    let mut stats = ClientStats::new("pub", index);
    let started = Instant::now();
    let mut batch = 0u64;
    while stats.msgs < plan.msgs {
        batch += 1;
        let size = (plan.msgs - stats.msgs).min(plan.async_window as u64);
        let id = format!("{id_base}-{batch}");
        let sent = Instant::now();
        for seq in 1..=size {
            let mut headers = HeaderMap::new();
            headers.insert("Nats-Batch-Id", id.as_str());
            headers.insert("Nats-Batch-Sequence", seq.to_string().as_str());
            if seq < size {
                client
                    .publish_with_headers(plan.subject.clone(), headers, plan.payload.clone())
                    .await
                    .map_err(|err| anyhow!("publishing batch {id}: {err}"))?;
                continue;
            }
            headers.insert("Nats-Batch-Commit", "1");
            let ack = js
                .publish_with_headers(plan.subject.clone(), headers, plan.payload.clone())
                .await
                .map_err(|err| anyhow!("committing batch {id}: {err}"))?;
            ack.await
                .map_err(|err| anyhow!("committing batch {id}: {err}"))?;
        }
        stats.latencies_us.push(latency_us(sent.elapsed()));
        stats.msgs += size;
        plan.progress.add(size);
    }
    stats.elapsed = started.elapsed();
    stats.bytes = stats.msgs.saturating_mul(plan.payload.len() as u64);
    Ok(stats)
}

/// What came back on a fast batch's reply subject.
enum FastReply {
    /// The server has stored up to `seq` and lets `msgs` more go before the next ack.
    Ack { seq: u64, msgs: u64 },
    /// The batch's end: the PubAck, with how many batch messages were stored.
    Done { count: u64 },
}

fn fast_reply(payload: &[u8]) -> Result<FastReply> {
    let reply: Value = serde_json::from_slice(payload).context("a fast batch reply")?;
    if let Some(error) = reply.get("error") {
        bail!("the server ended the batch: {error}");
    }
    let number = |key: &str| reply[key].as_u64().unwrap_or(0);
    match reply["type"].as_str() {
        Some("ack") => Ok(FastReply::Ack {
            seq: number("seq"),
            msgs: number("msgs").max(1),
        }),
        Some(other) => bail!("the server reported {other} in the batch: {reply}"),
        None if reply.get("stream").is_some() => Ok(FastReply::Done {
            count: number("count"),
        }),
        None => bail!("unexpected fast batch reply: {reply}"),
    }
}

async fn next_reply(replies: &mut Subscriber, limit: Duration) -> Result<FastReply> {
    match tokio::time::timeout(limit, replies.next()).await {
        Ok(Some(message)) => fast_reply(&message.payload),
        Ok(None) => bail!("the connection to the server was closed"),
        Err(_) => bail!("no flow ack from the server within {limit:?}"),
    }
}

/// One fast-batch publisher: a single batch of `--msgs` messages, at most one flow window
/// beyond the last ack in flight.
pub async fn fast(plan: &Plan, index: usize, client: Client) -> Result<ClientStats> {
    let prefix = client.new_inbox();
    let mut replies = client
        .subscribe(format!("{prefix}.>"))
        .await
        .map_err(|err| anyhow!("subscribing for flow acks: {err}"))?;
    connect::flush(&client, &plan.common).await?;
    let id = format!("b{index}");
    let flow = FAST_FLOW.min(plan.async_window as u64).max(1);
    let limit = plan.stall_limit();
    let mut stats = ClientStats::new("pub", index);
    let (mut acked, mut window) = (0u64, 1u64);
    let started = Instant::now();
    let mut since_ack = Instant::now();
    for seq in 1..=plan.msgs {
        let op = match seq {
            s if s == plan.msgs => OP_COMMIT,
            1 => OP_START,
            _ => OP_APPEND,
        };
        let reply = format!("{prefix}.{id}.{flow}.fail.{seq}.{op}.$FI");
        client
            .publish_with_reply(plan.subject.clone(), reply, plan.payload.clone())
            .await
            .map_err(|err| anyhow!("publishing batch {id}: {err}"))?;
        if op == OP_START {
            // The start is answered at once, with the first window.
            if let FastReply::Ack { msgs, .. } = next_reply(&mut replies, limit).await? {
                window = msgs;
            }
        }
        while op != OP_COMMIT && seq >= acked + window {
            match next_reply(&mut replies, limit).await? {
                FastReply::Ack { seq: upto, msgs } => {
                    plan.progress.add(upto.saturating_sub(acked));
                    (acked, window) = (acked.max(upto), msgs);
                    stats.latencies_us.push(latency_us(since_ack.elapsed()));
                    since_ack = Instant::now();
                }
                FastReply::Done { count } => bail!("the batch ended early at {count}"),
            }
        }
    }
    let stored = loop {
        match next_reply(&mut replies, limit).await? {
            FastReply::Ack { .. } => continue,
            FastReply::Done { count } => break count,
        }
    };
    if stored != plan.msgs {
        bail!(
            "the server stored {stored} of the batch's {} messages",
            plan.msgs
        );
    }
    stats.latencies_us.push(latency_us(since_ack.elapsed()));
    plan.progress.add(plan.msgs.saturating_sub(acked));
    stats.elapsed = started.elapsed();
    stats.msgs = plan.msgs;
    stats.bytes = plan.msgs.saturating_mul(plan.payload.len() as u64);
    Ok(stats)
}
