//! Core NATS benchmarks: publishers and counting subscribers, and request/reply.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use async_nats::client::RequestErrorKind;
use async_nats::{Client, Subject, Subscriber};
use futures::future::try_join_all;
use futures::StreamExt;
use tokio::sync::watch;

use super::report::{ClientStats, Report};
use super::{Plan, QUEUE_GROUP, YIELD_EVERY_MSGS};
use crate::cli::client::connect;
use crate::cli::client::units::format_duration;

/// How many messages publishers may run ahead of the slowest subscriber. Publishers and
/// subscribers share the command's one runtime thread, and publishing is cheaper than
/// receiving, so without this bound a subscriber falls behind until async-nats' buffer of
/// 65,536 messages per subscription overflows and messages are dropped.
const MAX_LEAD_MSGS: u64 = 16_384;

/// What publishers and subscribers of a core run share to keep the lead bounded.
struct Pace {
    /// Messages published by all publishers together.
    published: AtomicU64,
    /// Messages each subscriber has received, by subscriber.
    received: Vec<AtomicU64>,
}

impl Pace {
    /// How far publishing is ahead of the slowest subscriber.
    fn lead(&self) -> u64 {
        let published = self.published.load(Ordering::Relaxed);
        let slowest = self
            .received
            .iter()
            .map(|r| r.load(Ordering::Relaxed))
            .min()
            .unwrap_or(published);
        published.saturating_sub(slowest)
    }
}

/// Publishers and subscribers on one subject. Every subscriber is subscribed (and the server
/// has confirmed it) before the first publish, and the run ends when each subscriber has
/// received every publisher's messages.
pub async fn pub_sub(plan: &Plan) -> Result<Report> {
    // Without publishers of its own (natscli's `bench sub`) each subscriber waits for --msgs
    // from whoever publishes.
    let expected = match plan.pubs {
        0 => plan.msgs,
        pubs => plan.msgs.saturating_mul(pubs as u64),
    };
    let pace = Pace {
        published: AtomicU64::new(0),
        received: (0..plan.subs).map(|_| AtomicU64::new(0)).collect(),
    };
    let pace = &pace;
    let mut subscribers = Vec::with_capacity(plan.subs);
    for index in 1..=plan.subs {
        let client = plan.connect().await?;
        let subscriber = client
            .subscribe(plan.subject.clone())
            .await
            .map_err(|err| anyhow!("subscribing to {}: {err}", plan.subject))?;
        connect::flush(&client, &plan.common).await?;
        subscribers.push(count_messages(
            plan, pace, index, client, subscriber, expected,
        ));
    }
    if plan.pubs == 0 {
        // As `sub` says it: a script may start its publishers once this line is out.
        eprintln!("listening on {}", plan.subject);
    }
    let mut publishers = Vec::with_capacity(plan.pubs);
    for index in 1..=plan.pubs {
        let client = plan.connect().await?;
        publishers.push(publish(plan, pace, index, client));
    }
    let started = Instant::now();
    let (mut clients, subs) =
        futures::try_join!(try_join_all(publishers), try_join_all(subscribers))?;
    let received = subs.iter().map(|c| c.msgs).sum();
    let (elapsed, msgs) = match plan.pubs {
        // Subscribers alone: from their first message on, not from when they started waiting.
        0 => (busiest(&subs), received),
        _ => (started.elapsed(), expected),
    };
    clients.extend(subs);
    Ok(Report {
        bench: "core",
        sync: false,
        pubs: plan.pubs,
        subs: plan.subs,
        msgs,
        received,
        size: plan.payload.len(),
        elapsed,
        clients,
        title: format!(
            "core pub/sub on {}: {} publisher(s) x {} msgs of {} B, {} subscriber(s)",
            plan.subject,
            plan.pubs,
            plan.msgs,
            plan.payload.len(),
            plan.subs
        ),
    })
}

/// The longest any of `clients` was busy: a run's span when only one side of it ran here.
fn busiest(clients: &[ClientStats]) -> std::time::Duration {
    clients.iter().map(|c| c.elapsed).max().unwrap_or_default()
}

/// One publisher: sends its messages, then flushes so they have all reached the server.
async fn publish(plan: &Plan, pace: &Pace, index: usize, client: Client) -> Result<ClientStats> {
    let subject = Subject::from(plan.subject.as_str());
    let mut stats = ClientStats::new("pub", index);
    let started = Instant::now();
    for sent in 1..=plan.msgs {
        client
            .publish(subject.clone(), plan.payload.clone())
            .await
            .map_err(|err| anyhow!("publisher {index}: publishing to {subject}: {err}"))?;
        if sent % YIELD_EVERY_MSGS == 0 {
            plan.progress.add(YIELD_EVERY_MSGS);
            pace.published
                .fetch_add(YIELD_EVERY_MSGS, Ordering::Relaxed);
            tokio::task::yield_now().await;
            // Bounded: a subscriber that stops receiving fails the run after the stall
            // limit, which drops this publisher.
            while pace.lead() > MAX_LEAD_MSGS {
                tokio::task::yield_now().await;
            }
        }
    }
    plan.progress.add(plan.msgs % YIELD_EVERY_MSGS);
    pace.published
        .fetch_add(plan.msgs % YIELD_EVERY_MSGS, Ordering::Relaxed);
    connect::flush(&client, &plan.common).await?;
    stats.elapsed = started.elapsed();
    stats.msgs = plan.msgs;
    stats.bytes = plan.msgs.saturating_mul(plan.payload.len() as u64);
    Ok(stats)
}

/// One subscriber: counts messages until it has `expected`, or until nothing arrives for
/// the stall limit.
async fn count_messages(
    plan: &Plan,
    pace: &Pace,
    index: usize,
    _client: Client,
    mut subscriber: Subscriber,
    expected: u64,
) -> Result<ClientStats> {
    let mut stats = ClientStats::new("sub", index);
    let mut first: Option<Instant> = None;
    while stats.msgs < expected {
        match tokio::time::timeout(plan.stall_limit(), subscriber.next()).await {
            Ok(Some(message)) => {
                first.get_or_insert_with(Instant::now);
                stats.msgs += 1;
                stats.bytes += message.payload.len() as u64;
                if let Some(received) = pace.received.get(index - 1) {
                    received.store(stats.msgs, Ordering::Relaxed);
                }
                if plan.pubs == 0 {
                    plan.progress.add(1);
                }
            }
            Ok(None) => bail!("subscriber {index}: the connection to the server was closed"),
            Err(_) => bail!(
                "subscriber {index} received {} of {expected} messages: none arrived for {}",
                stats.msgs,
                format_duration(plan.stall_limit())
            ),
        }
    }
    stats.elapsed = first.map(|t| t.elapsed()).unwrap_or_default();
    Ok(stats)
}

/// Requesters (`--pub`), one request at a time each, answered by responders (`--sub`) that
/// share a queue group, so each request is answered once.
pub async fn request_reply(plan: &Plan) -> Result<Report> {
    let (done_tx, done_rx) = watch::channel(false);
    let mut responders = Vec::with_capacity(plan.subs);
    for index in 1..=plan.subs {
        let client = plan.connect().await?;
        let subscriber = client
            .queue_subscribe(plan.subject.clone(), QUEUE_GROUP.to_string())
            .await
            .map_err(|err| anyhow!("subscribing to {}: {err}", plan.subject))?;
        connect::flush(&client, &plan.common).await?;
        responders.push(respond(plan, index, client, subscriber, done_rx.clone()));
    }
    if plan.pubs == 0 {
        eprintln!("listening on {}", plan.subject);
    }
    let mut requesters = Vec::with_capacity(plan.pubs);
    for index in 1..=plan.pubs {
        let client = plan.connect().await?;
        requesters.push(request(plan, index, client));
    }
    let started = Instant::now();
    let requesting = async {
        // Responders alone (natscli's `bench service serve`) answer until interrupted.
        if plan.pubs == 0 {
            let _ = tokio::signal::ctrl_c().await;
        }
        let outcome = try_join_all(requesters).await;
        // Every request has its reply (or the run failed): the responders can stop.
        let _ = done_tx.send(true);
        outcome
    };
    let (mut clients, answered) = futures::try_join!(requesting, try_join_all(responders))?;
    let received = answered.iter().map(|c| c.msgs).sum();
    let (elapsed, msgs) = match plan.pubs {
        // Responders alone: from their first request on, not from when they started.
        0 => (busiest(&answered), received),
        pubs => (started.elapsed(), plan.msgs.saturating_mul(pubs as u64)),
    };
    clients.extend(answered);
    Ok(Report {
        bench: "request",
        sync: true,
        pubs: plan.pubs,
        subs: plan.subs,
        msgs,
        received,
        size: plan.payload.len(),
        elapsed,
        clients,
        title: format!(
            "request/reply on {}: {} requester(s) x {} requests of {} B, {} responder(s)",
            plan.subject,
            plan.pubs,
            plan.msgs,
            plan.payload.len(),
            plan.subs
        ),
    })
}

/// One requester: a request, its reply, then the next, timing each round trip.
async fn request(plan: &Plan, index: usize, client: Client) -> Result<ClientStats> {
    let subject = Subject::from(plan.subject.as_str());
    let limit = plan.stall_limit();
    let no_reply = || {
        anyhow!(
            "no reply on {subject} within {}",
            format_duration(plan.stall_limit())
        )
    };
    let mut stats = ClientStats::new("req", index);
    stats.latencies_us.reserve(plan.msgs.min(1 << 20) as usize);
    let started = Instant::now();
    for _ in 0..plan.msgs {
        let sent = Instant::now();
        tokio::time::timeout(limit, client.request(subject.clone(), plan.payload.clone()))
            .await
            .map_err(|_| no_reply())?
            .map_err(|err| match err.kind() {
                RequestErrorKind::NoResponders => anyhow!("no responders on {subject}"),
                RequestErrorKind::TimedOut => no_reply(),
                _ => anyhow!("request on {subject} failed: {err}"),
            })?;
        stats.answered(sent, plan.payload.len());
        plan.progress.add(1);
    }
    stats.elapsed = started.elapsed();
    Ok(stats)
}

/// One responder: answers every request with a payload of the same size until told the
/// requesters are done.
async fn respond(
    plan: &Plan,
    index: usize,
    client: Client,
    mut subscriber: Subscriber,
    mut done: watch::Receiver<bool>,
) -> Result<ClientStats> {
    let mut stats = ClientStats::new("reply", index);
    let mut first: Option<Instant> = None;
    loop {
        let message = tokio::select! {
            message = subscriber.next() => message,
            _ = done.changed() => break,
        };
        let Some(message) = message else {
            bail!("responder {index}: the connection to the server was closed");
        };
        let Some(reply_to) = message.reply else {
            continue;
        };
        first.get_or_insert_with(Instant::now);
        client
            .publish(reply_to, plan.payload.clone())
            .await
            .map_err(|err| anyhow!("responder {index}: replying: {err}"))?;
        stats.msgs += 1;
        stats.bytes += plan.payload.len() as u64;
        if plan.pubs == 0 {
            plan.progress.add(1);
        }
    }
    stats.elapsed = first.map(|t| t.elapsed()).unwrap_or_default();
    Ok(stats)
}
