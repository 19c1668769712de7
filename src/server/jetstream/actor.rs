//! A stream's actor: it drains everything queued for the stream (publishes, pull requests,
//! acks, flow-control replies, direct gets, ticks), applies it in order, makes the result
//! durable, and only then sends what depends on it: PubAcks after the log's sync, AckSync
//! replies after the consumer states are written.
//!
//! Rounds run on the pool's worker threads (`pool.rs`), not on the async runtime, because the
//! work is blocking file I/O: an fsync on a runtime worker would stall every connection
//! scheduled on it. Publishers reach the actor through a bounded channel, so a stream that
//! cannot keep up slows its publishers instead of queueing without bound.

use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::direct::direct_get;
use super::StreamEntry;
use crate::jetstream::api_level::{required_level_unmet, REQUIRED_LEVEL_STATUS};
use crate::jetstream::api_types::PubAck;
use crate::jetstream::consumer::{AckKind, Action, Consumer};
use crate::jetstream::stream_republish::Republished;
use crate::protocol::headers::{build_block, extend_block};
use crate::protocol::Publish;
use crate::server::internal::InternalClient;
use crate::server::outbound::{InternalDelivery, InternalQueue};

/// The most deliveries taken in one round; bounds the latency of the first ack in a burst.
pub const MAX_BATCH_MSGS: usize = 4096;
/// How long changed consumer state may wait before it is written. An ack sent with a reply
/// (AckSync) is written before the reply leaves, whatever this says; plain acks of the last
/// interval can be lost on a crash and are then redelivered (at least once), as with
/// nats-server, which also writes consumer state in the background.
pub const CONSUMER_PERSIST_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// Tags telling the actor what a delivery is.
pub const TAG_PUBLISH: u64 = 0;
pub const TAG_DIRECT_GET: u64 = 1;
/// Sent by the timer (and after API changes): upkeep, redeliveries, pull expiry, heartbeats.
pub const TAG_TICK: u64 = 2;
pub const TAG_PULL: u64 = 3;
pub const TAG_ACK: u64 = 4;
pub const TAG_FLOW_CONTROL: u64 = 5;
/// Sent by the registry to make the actor exit (stream deleted or server stopping).
pub const TAG_STOP: u64 = u64::MAX;

/// What one round leaves to do after the stream lock is released.
#[derive(Default)]
struct Round {
    actions: Vec<Action>,
    ack_replies: Vec<Bytes>,
    direct_gets: Vec<InternalDelivery>,
    expired: Vec<String>,
    /// Consumers that received acks this round: acks can free room under max_ack_pending,
    /// so each gets one delivery pump at the end of the round instead of waiting for a tick.
    acked: Vec<String>,
    /// Stored messages to publish again (`republish`), durable by the time they go.
    republished: Vec<Republished>,
}

/// What the actor keeps between rounds. It sits behind a mutex in the `StreamEntry` so that
/// a round run inline on a publisher's task (see `inline.rs`) never overlaps the actor's own.
pub struct ActorState {
    pub client: InternalClient,
    last_persist: Instant,
}

impl ActorState {
    pub fn new(client: InternalClient) -> Self {
        ActorState {
            client,
            last_persist: Instant::now(),
        }
    }
}

/// Applies `batch` (emptying it) and sends everything that follows from it; true if it held
/// a stop. `spill` is set for a round run inline on the async runtime, which must not block:
/// it leaves consumer state for the actor to write and hands messages for internal
/// subscribers to the caller instead of waiting for their channels.
pub(super) fn round(
    entry: &StreamEntry,
    batch: &mut Vec<InternalDelivery>,
    state: &mut ActorState,
    spill: Option<&mut InternalQueue>,
) -> bool {
    let stop = batch.iter().any(|d| d.tag == TAG_STOP);
    let (publishes, others): (Vec<_>, Vec<_>) = batch.drain(..).partition(|d| d.tag == TAG_PUBLISH);
    // A replicated stream's publishes are stored when its group commits them.
    let publishes = entry.replica.take(publishes);
    debug_assert!(
        spill.is_none() || others.is_empty(),
        "inline rounds are publishes only"
    );
    let mut round = Round::default();
    let acks = apply(entry, &publishes, others, &state.client, &mut round);
    entry.applied_publishes(publishes.len());
    let client = &mut state.client;
    let due = state.last_persist.elapsed() >= CONSUMER_PERSIST_INTERVAL;
    if spill.is_none() && (!round.ack_replies.is_empty() || stop || due) {
        persist_consumers(entry);
        entry.propose_consumer_states(&mut round.ack_replies);
        state.last_persist = Instant::now();
    }
    send_pub_acks(entry, publishes, &acks, client);
    for copy in round.republished.drain(..) {
        client.queue_publish(copy.subject, Some(copy.headers), copy.payload);
    }
    for action in round.actions.drain(..) {
        perform(action, client);
    }
    for reply in round.ack_replies.drain(..) {
        client.queue_publish(reply, None, Bytes::new());
    }
    match spill {
        Some(spill) => {
            client.flush_into(spill);
            return stop;
        }
        None => client.flush(),
    }
    for request in round.direct_gets.drain(..) {
        direct_get(entry, &request.msg, client);
    }
    for name in round.expired.drain(..) {
        entry.expire_consumer(&name, client);
    }
    stop
}

/// Applies one round under the stream lock; returns the PubAcks for `publishes` (none when
/// the stream is `no_ack`).
fn apply(
    entry: &StreamEntry,
    publishes: &[InternalDelivery],
    others: Vec<InternalDelivery>,
    client: &InternalClient,
    round: &mut Round,
) -> Vec<PubAck> {
    let now_ns = super::now_ns();
    let interest = |c: &Consumer| {
        c.config
            .deliver_subject
            .as_deref()
            .is_some_and(|s| client.has_interest(s))
    };
    let mut stream = entry.lock();
    stream.drop_abandoned_requests(&|reply| client.has_interest(reply));
    let mut acks = Vec::new();
    if !publishes.is_empty() {
        let incoming: Vec<&Publish> = publishes.iter().map(|d| &d.msg).collect();
        let (fit, scope) = fitting(entry, &stream, &incoming);
        let before = stream.log().msgs();
        acks = stream.process(&incoming[..fit], now_ns);
        acks.extend(
            incoming[fit..]
                .iter()
                .map(|_| PubAck::Failed(scope.exceeded())),
        );
        if let Err(err) = stream.sync(Instant::now()) {
            // Nor republished.
            drop(stream.take_republished());
            // Nothing in this batch may be acknowledged as stored if it is not durable.
            for ack in &mut acks {
                if ack.stored_seq().is_some() || matches!(ack, PubAck::Batch { .. }) {
                    *ack = PubAck::Failed(err.clone());
                }
            }
        }
        let subjects = publishes.iter().map(|d| &d.msg.subject);
        after_stored(
            &mut stream,
            subjects,
            &acks,
            before,
            now_ns,
            &interest,
            &mut round.actions,
        );
    }
    for delivery in others {
        // Subjects here are ASCII control subjects; one that is not UTF-8 is nobody's.
        let subject = std::str::from_utf8(&delivery.msg.subject).unwrap_or("");
        let mut tokens: [&str; 9] = [""; 9];
        let mut count = 0;
        for token in subject.split('.') {
            if count < tokens.len() {
                tokens[count] = token;
            }
            count += 1;
        }
        let tokens = &tokens[..count.min(9)];
        match delivery.tag {
            TAG_PULL => {
                // $JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>
                // A request whose reply subject already lost its subscriber (the client gave
                // up before the request reached the stream) is dropped like a waiting one.
                let reply = delivery
                    .msg
                    .reply
                    .clone()
                    .filter(|r| client.has_interest(r));
                if let (Some(name), Some(reply)) = (tokens.get(6), reply) {
                    if required_level_unmet(delivery.msg.headers.as_deref()) {
                        let (code, description) = REQUIRED_LEVEL_STATUS;
                        round.actions.push(Action::Status {
                            to: reply,
                            code,
                            description: description.to_string(),
                            headers: Vec::new(),
                            reply: None,
                        });
                        continue;
                    }
                    stream.consumer_pull(
                        name,
                        &delivery.msg.payload,
                        reply,
                        now_ns,
                        &mut round.actions,
                    );
                }
            }
            TAG_ACK if count == 9 => on_ack(&mut stream, tokens, &delivery, now_ns, round),
            TAG_FLOW_CONTROL => {
                // $JS.FC.<stream>.<consumer>.<id>
                if let Some(name) = tokens.get(3) {
                    let has_interest = stream.consumers().get(*name).is_some_and(&interest);
                    stream.consumer_flow_control(
                        name,
                        subject,
                        now_ns,
                        has_interest,
                        &mut round.actions,
                    );
                }
            }
            TAG_TICK => {
                match stream.tick(now_ns, Instant::now()) {
                    // Only a removal can change what consumers have pending; recounting on
                    // every tick would scan the stream twenty times a second.
                    Ok(expired) if expired > 0 => stream.after_removal(),
                    Ok(_) => {}
                    Err(err) => {
                        drop(stream.take_republished());
                        tracing::warn!(stream = %entry.name, error = %err, "stream upkeep failed")
                    }
                }
                // Delete markers and scheduled messages the upkeep stored are new messages
                // for the consumers.
                let markers = stream.take_upkeep_stored();
                if !markers.is_empty() {
                    let appended: Vec<(u64, &str)> =
                        markers.iter().map(|(seq, s)| (*seq, s.as_str())).collect();
                    stream.after_append(&appended, true, now_ns, &interest, &mut round.actions);
                }
                round.expired = stream.tick_consumers(now_ns, &interest, &mut round.actions);
            }
            TAG_DIRECT_GET => round.direct_gets.push(delivery),
            _ => {}
        }
    }
    for name in std::mem::take(&mut round.acked) {
        stream.pump_consumer(&name, now_ns, &interest, &mut round.actions);
    }
    entry.account(&stream);
    round.republished = stream.take_republished();
    round.actions.extend(stream.take_advisories());
    // A pull request or a paced message may have set a deadline sooner than the timer's.
    let deadline = stream.next_wake_ns();
    if let Some(at) = deadline {
        entry.alarm.schedule(at);
    }
    entry.want_ticks_if_needed(&stream, deadline);
    if stream.config().no_ack {
        // Read here, under the lock already held, rather than taken again to send them.
        // A fast batch's flow control still reaches its publisher, as from nats-server.
        if acks.iter().any(|a| matches!(a, PubAck::Fast { .. })) {
            for ack in &mut acks {
                if !matches!(ack, PubAck::Fast { .. }) {
                    let stored = ack.stored_seq();
                    *ack = PubAck::Fast {
                        stored,
                        replies: Vec::new(),
                    };
                }
            }
        } else {
            acks.clear();
        }
    }
    acks
}

/// Tells the consumers (and interest retention) of the messages a round stored: `subjects`
/// are the round's publishes' subjects, `acks` their outcomes, `before` the message count
/// before the round.
pub(super) fn after_stored<'a>(
    stream: &mut crate::jetstream::Stream,
    subjects: impl Iterator<Item = &'a Bytes>,
    acks: &[PubAck],
    before: u64,
    now_ns: u64,
    interest: &dyn Fn(&Consumer) -> bool,
    actions: &mut Vec<Action>,
) {
    // Messages stored by atomic batch commits: a commit's ack names only the last.
    let batch_stored = stream.take_batch_stored();
    let interest_retention =
        stream.config().retention == crate::jetstream::stream_config::Retention::Interest;
    if stream.consumers().is_empty() && !interest_retention {
        return;
    }
    // Subjects as text only when someone looks at them: not on the plain publish path.
    let subjects: Vec<String> = subjects
        .map(|s| String::from_utf8_lossy(&stream.stored_subject(s)).into_owned())
        .collect();
    let mut appended: Vec<(u64, &str)> = acks
        .iter()
        .zip(&subjects)
        .filter_map(|(ack, subject)| ack.stored_seq().map(|seq| (seq, subject.as_str())))
        .collect();
    if !batch_stored.is_empty() {
        appended.extend(batch_stored.iter().map(|(seq, s)| (*seq, s.as_str())));
        appended.sort_unstable_by_key(|(seq, _)| *seq);
    }
    let removed_any = before + appended.len() as u64 > stream.log().msgs();
    stream.after_append(&appended, removed_any, now_ns, interest, actions);
}

/// How many of `incoming`, from the front, fit in what the storage limits (the account's and
/// the server's) leave, and whose limit stops the rest. A message's size is counted as the
/// store counts it (the record's length).
pub(super) fn fitting(
    entry: &StreamEntry,
    stream: &crate::jetstream::Stream,
    incoming: &[&Publish],
) -> (usize, super::limits::LimitScope) {
    let Some((mut room, scope)) = entry.limits.room(stream.config().storage) else {
        return (incoming.len(), super::limits::LimitScope::Server);
    };
    for (i, msg) in incoming.iter().enumerate() {
        let size = crate::store::record::record_len(
            msg.subject.len(),
            msg.headers.as_ref().map_or(0, |h| h.len()),
            msg.payload.len(),
        ) as u64;
        if size > room {
            return (i, scope);
        }
        room -= size;
    }
    (incoming.len(), scope)
}

/// `$JS.ACK.<stream>.<consumer>.<delivered>.<stream_seq>.<consumer_seq>.<ts>.<pending>`
fn on_ack(
    stream: &mut crate::jetstream::Stream,
    tokens: &[&str],
    delivery: &InternalDelivery,
    now_ns: u64,
    round: &mut Round,
) {
    if tokens.len() != 9 {
        return;
    }
    let (Ok(seq), Ok(cseq), Ok(ts_ns)) = (
        tokens[5].parse::<u64>(),
        tokens[6].parse::<u64>(),
        tokens[7].parse::<u64>(),
    ) else {
        return;
    };
    let name = tokens[3];
    let kind = AckKind::parse(&delivery.msg.payload);
    stream.consumer_ack(name, &kind, seq, cseq, ts_ns, now_ns, &mut round.actions);
    if !round.acked.iter().any(|n| n == name) {
        round.acked.push(name.to_string());
    }
    match (&kind, delivery.msg.reply.clone()) {
        (AckKind::Next(body), Some(reply)) => {
            stream.consumer_pull(name, body, reply, now_ns, &mut round.actions)
        }
        // AckSync: answered once the consumer state is durable (after this round's persist).
        (_, Some(reply)) => round.ack_replies.push(reply),
        _ => {}
    }
}

/// Writes the state of every durable consumer that changed, with one sync; a failure is
/// logged, and the states are written again after the next change.
pub(super) fn persist_consumers(entry: &StreamEntry) {
    if let Err(err) = write_consumer_states(entry) {
        tracing::error!(stream = %entry.name, error = %err, "cannot persist consumer state");
    }
}

/// Writes the state of every durable consumer that changed, with one sync.
pub(super) fn write_consumer_states(entry: &StreamEntry) -> Result<(), crate::meta::MetaError> {
    // A replicated consumer's state is written by applying its group's entries.
    let states = entry
        .lock()
        .take_changed_states(|config| !config.is_replicated());
    if states.is_empty() {
        return Ok(());
    }
    let refs: Vec<(&str, &str, &crate::meta::pb::ConsumerState)> = states
        .iter()
        .map(|(n, s)| (entry.name.as_str(), n.as_str(), s))
        .collect();
    entry.catalog.put_consumer_states(&refs).map(|_| ())
}

/// Takes the publishes: each reply subject moves into its PubAck, so no reference to the
/// publisher's read buffer is taken and given back per message.
fn send_pub_acks(
    entry: &StreamEntry,
    publishes: Vec<InternalDelivery>,
    acks: &[PubAck],
    client: &mut InternalClient,
) {
    let stream_json = &entry.pub_ack_prefix;
    // One buffer for the whole batch; each ack's body is a view of its part.
    let mut bodies = BytesMut::with_capacity(acks.len() * (40 + stream_json.len()));
    for (delivery, ack) in publishes.into_iter().zip(acks) {
        let Some(reply) = delivery.msg.reply else {
            continue;
        };
        if let PubAck::Fast { replies, .. } = ack {
            for body in replies {
                client.queue_publish(reply.clone(), None, body.clone());
            }
            continue;
        }
        ack.write_json(&mut bodies, stream_json);
        client.queue_publish(reply, None, bodies.split().freeze());
    }
}

/// Sends one consumer action through the router.
pub(super) fn perform(action: Action, client: &mut InternalClient) {
    match action {
        Action::Deliver {
            to,
            msg,
            ack_subject,
            headers_only,
            pin_id,
        } => {
            let (headers, payload) = if headers_only || pin_id.is_some() {
                let mut block = BytesMut::new();
                let size = msg.payload.len().to_string();
                let mut added: Vec<(&str, &[u8])> = Vec::with_capacity(2);
                if headers_only {
                    added.push(("Nats-Msg-Size", size.as_bytes()));
                }
                if let Some(pin) = &pin_id {
                    added.push(("Nats-Pin-Id", pin));
                }
                extend_block(&mut block, &msg.headers, &added);
                let payload = if headers_only {
                    Bytes::new()
                } else {
                    msg.payload
                };
                (Some(block.freeze()), payload)
            } else {
                (
                    (!msg.headers.is_empty()).then_some(msg.headers),
                    msg.payload,
                )
            };
            client.queue_delivery(
                &to,
                Bytes::from(msg.subject),
                Bytes::from(ack_subject),
                headers,
                payload,
            );
        }
        Action::Status {
            to,
            code,
            description,
            headers,
            reply,
        } => {
            let mut block = BytesMut::new();
            let pairs: Vec<(&str, &[u8])> =
                headers.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
            build_block(&mut block, Some((code, &description)), &pairs);
            client.queue_publish_with_reply(
                to,
                reply.map(Bytes::from),
                Some(block.freeze()),
                Bytes::new(),
            );
        }
        Action::Advisory { subject, body } => {
            client.queue_publish(Bytes::from(subject), None, Bytes::from(body));
        }
        Action::Consumed(_) => {}
    }
}
