//! A stream's actor: one thread that drains everything queued for the stream, stores it as one
//! batch, fsyncs once, and only then sends the acknowledgements (group commit).
//!
//! A thread rather than a task because the work is blocking file I/O: an fsync on a runtime
//! worker would stall every connection scheduled on it. Publishers reach the actor through a
//! bounded channel, so a stream that cannot keep up slows its publishers instead of queueing
//! without bound.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::direct::direct_get;
use super::StreamEntry;
use crate::jetstream::api_types::{json_string, PubAck};
use crate::jetstream::stream::Incoming;
use crate::server::internal::InternalClient;
use crate::server::outbound::InternalDelivery;

/// The most publishes stored in one batch; bounds the latency of the first ack in a burst.
pub const MAX_BATCH_MSGS: usize = 4096;

/// Tags telling the actor what a delivery is.
pub const TAG_PUBLISH: u64 = 0;
pub const TAG_DIRECT_GET: u64 = 1;
/// Sent by the timer: expire old messages and sync if an interval sync is due.
pub const TAG_TICK: u64 = 2;
/// Sent by the registry to make the actor exit (stream deleted or server stopping).
pub const TAG_STOP: u64 = u64::MAX;

/// Runs until a stop delivery arrives or every sender is gone.
pub fn run(
    entry: Arc<StreamEntry>,
    mut rx: mpsc::Receiver<InternalDelivery>,
    mut client: InternalClient,
) {
    let mut batch: Vec<InternalDelivery> = Vec::with_capacity(256);
    let mut incoming: Vec<Incoming> = Vec::with_capacity(256);
    loop {
        let Some(first) = rx.blocking_recv() else {
            return;
        };
        batch.push(first);
        while batch.len() < MAX_BATCH_MSGS {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let stop = batch.iter().any(|d| d.tag == TAG_STOP);
        let mut publishes = Vec::with_capacity(batch.len());
        for delivery in batch.drain(..) {
            match delivery.tag {
                TAG_PUBLISH => publishes.push(delivery),
                TAG_DIRECT_GET => direct_get(&entry, &delivery.msg, &mut client),
                TAG_TICK => {
                    if let Err(err) = entry.lock().tick(super::now_ns(), Instant::now()) {
                        tracing::warn!(stream = %entry.name, error = %err, "stream upkeep failed");
                    }
                }
                _ => {}
            }
        }
        if !publishes.is_empty() {
            store_batch(&entry, &publishes, &mut incoming, &mut client);
        }
        if stop {
            return;
        }
    }
}

/// Stores one batch and acknowledges it after the sync that covers it.
fn store_batch(
    entry: &StreamEntry,
    publishes: &[InternalDelivery],
    incoming: &mut Vec<Incoming>,
    client: &mut InternalClient,
) {
    incoming.clear();
    incoming.extend(publishes.iter().map(|d| Incoming {
        subject: d.msg.subject.clone(),
        headers: d.msg.headers.clone(),
        payload: d.msg.payload.clone(),
    }));
    let now_ns = super::now_ns();
    let (acks, no_ack, name) = {
        let mut stream = entry.lock();
        let mut acks = stream.process(incoming, now_ns);
        if let Err(err) = stream.sync(Instant::now()) {
            // Nothing in this batch may be acknowledged as stored if it is not durable.
            for ack in &mut acks {
                if matches!(ack, PubAck::Stored { .. }) {
                    *ack = PubAck::Failed(err.clone());
                }
            }
        }
        (acks, stream.config().no_ack, stream.config().name.clone())
    };
    if no_ack {
        return;
    }
    let stream_json = json_string(&name);
    for (delivery, ack) in publishes.iter().zip(&acks) {
        let Some(reply) = &delivery.msg.reply else {
            continue;
        };
        let mut body = Vec::with_capacity(48 + stream_json.len());
        ack.write_json(&mut body, &stream_json);
        client.queue_publish(reply.clone(), None, Bytes::from(body));
    }
    client.flush();
}
