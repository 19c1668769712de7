//! natscli's `bench js get sync|batch` and `bench kv put|get`: one message or key at a time,
//! each round trip timed, or (`js get batch`) batched direct gets, timed per batch. Each
//! client works through `--msgs` of its own: gets from the stream's first sequence, keys
//! `<client offset + i>` so that the clients' keys never collide, as natscli numbers them.

use std::time::Instant;

use anyhow::{anyhow, bail, Context as _, Result};
use async_nats::jetstream::kv;
use async_nats::Client;
use futures::future::try_join_all;
use futures::StreamExt;
use serde_json::json;

use super::report::{latency_us, ClientStats, Report};
use super::Plan;
use crate::cli::client::api;
use crate::cli::client::connect;

/// The first sequence of the run's stream, once it is known to hold `--msgs` messages.
async fn first_sequence(client: &Client, plan: &Plan) -> Result<u64> {
    let js = connect::jetstream(client.clone(), &plan.common);
    let info = api::request(&js, &format!("STREAM.INFO.{}", plan.stream), &json!({}))
        .await
        .with_context(|| format!("stream {}", plan.stream))?;
    let held = info["state"]["messages"].as_u64().unwrap_or(0);
    if held < plan.msgs {
        bail!(
            "stream {} holds {held} messages, fewer than --msgs {} (publish some first)",
            plan.stream,
            plan.msgs
        );
    }
    Ok(info["state"]["first_seq"].as_u64().unwrap_or(1))
}

/// `js get sync|batch`.
pub async fn gets(plan: &Plan, batched: bool) -> Result<Report> {
    let mut readers = Vec::with_capacity(plan.subs);
    for index in 1..=plan.subs {
        let client = plan.connect().await?;
        let first = first_sequence(&client, plan).await?;
        readers.push(async move {
            match batched {
                false => get_one_by_one(plan, index, client, first).await,
                true => get_batches(plan, index, client).await,
            }
        });
    }
    let started = Instant::now();
    let clients = try_join_all(readers).await?;
    let kind = if batched { "batched direct" } else { "sync" };
    let title = format!(
        "JetStream {kind} get from stream {}: {} client(s) x {} msgs",
        plan.stream, plan.subs, plan.msgs
    );
    Ok(read_report(plan, "jsget", title, clients, started))
}

async fn get_one_by_one(
    plan: &Plan,
    index: usize,
    client: Client,
    first: u64,
) -> Result<ClientStats> {
    let js = connect::jetstream(client, &plan.common);
    let stream = js
        .get_stream(plan.stream.as_str())
        .await
        .map_err(|err| anyhow!("stream {}: {err}", plan.stream))?;
    let mut stats = ClientStats::new("sub", index);
    let started = Instant::now();
    for seq in first..first + plan.msgs {
        let sent = Instant::now();
        let message = stream
            .get_raw_message(seq)
            .await
            .map_err(|err| anyhow!("getting sequence {seq} of {}: {err}", plan.stream))?;
        stats.answered(sent, message.payload.len());
        plan.progress.add(1);
    }
    stats.elapsed = started.elapsed();
    Ok(stats)
}

/// Direct gets of `--batch` messages (on `--filter`) at a time, each ending in a `204 EOB`.
async fn get_batches(plan: &Plan, index: usize, client: Client) -> Result<ClientStats> {
    let inbox = client.new_inbox();
    let mut replies = client
        .subscribe(inbox.clone())
        .await
        .map_err(|err| anyhow!("subscribing for direct gets: {err}"))?;
    connect::flush(&client, &plan.common).await?;
    let subject = format!("$JS.API.DIRECT.GET.{}", plan.stream);
    let mut stats = ClientStats::new("sub", index);
    let (mut next_seq, started) = (1u64, Instant::now());
    while stats.msgs < plan.msgs {
        let batch = (plan.msgs - stats.msgs).min(plan.batch as u64);
        let request = json!({"seq": next_seq, "batch": batch, "next_by_subj": plan.subject});
        let sent = Instant::now();
        client
            .publish_with_reply(subject.clone(), inbox.clone(), request.to_string().into())
            .await
            .map_err(|err| anyhow!("direct get: {err}"))?;
        loop {
            let reply = tokio::time::timeout(plan.stall_limit(), replies.next())
                .await
                .map_err(|_| anyhow!("no direct get reply within {:?}", plan.stall_limit()))?
                .ok_or_else(|| anyhow!("the connection to the server was closed"))?;
            match reply.status.map(|s| s.as_u16()) {
                None => {}
                Some(204) => break,
                Some(404) => bail!(
                    "stream {} has only {} messages on {} from sequence 1, fewer than --msgs {}",
                    plan.stream,
                    stats.msgs,
                    plan.subject,
                    plan.msgs
                ),
                Some(code) => bail!(
                    "direct get from {} refused: {code} {} (is allow_direct set?)",
                    plan.stream,
                    reply.description.unwrap_or_default()
                ),
            }
            let seq = reply.headers.as_ref().and_then(|h| h.get("Nats-Sequence"));
            next_seq = seq
                .and_then(|s| s.as_str().parse::<u64>().ok())
                .unwrap_or(next_seq)
                + 1;
            stats.msgs += 1;
            stats.bytes += reply.payload.len() as u64;
            plan.progress.add(1);
        }
        stats.latencies_us.push(latency_us(sent.elapsed()));
    }
    stats.elapsed = started.elapsed();
    Ok(stats)
}

/// `kv put|get` on the bucket `--bucket` (put creates it when missing).
pub async fn kv(plan: &Plan, put: bool) -> Result<Report> {
    let control = plan.connect().await?;
    let js = connect::jetstream(control, &plan.common);
    let bucket = plan.stream.as_str();
    if put && js.get_key_value(bucket).await.is_err() {
        let config = kv::Config {
            bucket: bucket.to_string(),
            history: 1,
            ..Default::default()
        };
        js.create_key_value(config)
            .await
            .map_err(|err| anyhow!("creating bucket {bucket}: {err}"))?;
    }
    let mut clients = Vec::with_capacity(plan.subs.max(plan.pubs));
    for index in 1..=plan.subs.max(plan.pubs) {
        let js = connect::jetstream(plan.connect().await?, &plan.common);
        let store = js
            .get_key_value(bucket)
            .await
            .map_err(|err| anyhow!("bucket {bucket}: {err}"))?;
        let offset = (index as u64 - 1) * plan.msgs;
        clients.push(kv_client(plan, index, store, offset, put));
    }
    let started = Instant::now();
    let clients = try_join_all(clients).await?;
    let op = if put { "put" } else { "get" };
    let title = format!(
        "KV {op} on bucket {bucket}: {} client(s) x {} keys",
        clients.len(),
        plan.msgs
    );
    Ok(read_report(plan, "kv", title, clients, started))
}

async fn kv_client(
    plan: &Plan,
    index: usize,
    store: kv::Store,
    offset: u64,
    put: bool,
) -> Result<ClientStats> {
    let mut stats = ClientStats::new(if put { "pub" } else { "sub" }, index);
    let started = Instant::now();
    for key in offset..offset + plan.msgs {
        let sent = Instant::now();
        let bytes = match put {
            true => {
                store
                    .put(key.to_string(), plan.payload.clone())
                    .await
                    .map_err(|err| anyhow!("putting key {key}: {err}"))?;
                plan.payload.len()
            }
            false => store
                .get(key.to_string())
                .await
                .map_err(|err| anyhow!("getting key {key}: {err}"))?
                .ok_or_else(|| anyhow!("key {key} has no value (put the keys first)"))?
                .len(),
        };
        stats.answered(sent, bytes);
        plan.progress.add(1);
    }
    stats.elapsed = started.elapsed();
    Ok(stats)
}

fn read_report(
    plan: &Plan,
    bench: &'static str,
    title: String,
    clients: Vec<ClientStats>,
    started: Instant,
) -> Report {
    let done: u64 = clients.iter().map(|c| c.msgs).sum();
    let bytes: u64 = clients.iter().map(|c| c.bytes).sum();
    let writers = clients.iter().filter(|c| c.role == "pub").count();
    Report {
        bench,
        sync: true,
        pubs: writers,
        subs: clients.len() - writers,
        msgs: done,
        received: if writers > 0 { 0 } else { done },
        size: usize::try_from(bytes / done.max(1)).unwrap_or(plan.payload.len()),
        elapsed: started.elapsed(),
        clients,
        title,
    }
}
