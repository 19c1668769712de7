//! The consumer's event handlers: pull requests, the delivery pump, acks and clock ticks.

use bytes::Bytes;

use super::{AckKind, Action, Consumer, Pending, Waiting};
use crate::jetstream::consumer_config::AckPolicy;
use crate::store::StreamStore;

/// Most deliveries an ack for an unknown message may adopt (see `adopt_deliveries_up_to`):
/// more than that is no lost tail of deliveries but a client acking at random.
const MAX_ADOPTED_DELIVERIES: u64 = 100_000;

/// Where a pump may send messages.
#[derive(Debug, Clone, Copy)]
pub enum Delivery {
    /// Pull: only to waiting requests.
    Pull,
    /// Push: to the deliver subject, if it has interest right now.
    Push { interest: bool },
}

/// A status message with no reply.
pub(super) fn status(
    to: &Bytes,
    code: u16,
    description: &str,
    headers: Vec<(&'static str, String)>,
) -> Action {
    Action::Status {
        to: to.clone(),
        code,
        description: description.to_string(),
        headers,
        reply: None,
    }
}

impl Consumer {
    /// Hands out as many messages as requests (pull) or interest and flow control (push) allow.
    pub fn pump(
        &mut self,
        store: &StreamStore,
        now_ns: u64,
        mode: Delivery,
        out: &mut Vec<Action>,
    ) {
        self.wake_at_ns = None;
        match mode {
            Delivery::Pull => self.pump_pull(store, now_ns, out),
            Delivery::Push { interest } => {
                if interest && !self.is_paused(now_ns) {
                    self.pump_push(store, now_ns, out);
                }
            }
        }
    }

    /// Puts `msg` back if pacing says it may not go yet, noting when it may.
    pub(super) fn held(
        &mut self,
        msg: &crate::store::StoredMessage,
        deliveries: u64,
        now_ns: u64,
    ) -> bool {
        if !super::is_paced(&self.config) {
            return false;
        }
        match self.pacing.hold_until(&self.config, msg.ts_ns, now_ns) {
            Some(at) => {
                self.unread(msg, deliveries);
                self.wake_at_ns = Some(at);
                true
            }
            None => false,
        }
    }

    /// Tells pacing that `msg` was sent.
    pub(super) fn paced_send(&mut self, msg: &crate::store::StoredMessage, now_ns: u64) {
        if super::is_paced(&self.config) {
            let bytes = msg.subject.len() + msg.headers.len() + msg.payload.len();
            self.pacing.sent(&self.config, msg.ts_ns, bytes, now_ns);
        }
    }

    /// Undoes `next_message` for a message that was not sent after all.
    pub(super) fn unread(&mut self, msg: &crate::store::StoredMessage, deliveries: u64) {
        if deliveries > 1 {
            self.redeliver.insert(msg.seq);
        } else if msg.seq + 1 == self.next_seq {
            self.next_seq = msg.seq;
            self.num_pending = self.num_pending.map(|n| n + 1);
        } else {
            self.skip_list.push_front(msg.seq);
        }
    }

    fn pump_push(&mut self, store: &StreamStore, now_ns: u64, out: &mut Vec<Action>) {
        let Some(to) = self.config.deliver_subject.clone().map(Bytes::from) else {
            return;
        };
        loop {
            if self.config.flow_control && self.push.bytes_since_fc > self.push.window {
                return;
            }
            let Some((msg, deliveries)) = self.next_message(store) else {
                return;
            };
            if self.held(&msg, deliveries, now_ns) {
                return;
            }
            let size = (msg.subject.len() + msg.headers.len() + msg.payload.len()) as u64;
            let ack_subject = self.record_delivery(&msg, deliveries, now_ns, store, out);
            self.paced_send(&msg, now_ns);
            out.push(Action::Deliver {
                to: to.clone(),
                msg,
                ack_subject,
                headers_only: self.config.headers_only,
                pin_id: None,
            });
            self.push.last_sent_ns = now_ns;
            if self.config.flow_control {
                self.push.bytes_since_fc += size;
                if self.push.fc_reply.is_none() && self.push.bytes_since_fc > self.push.window / 2 {
                    self.push.fc_counter += 1;
                    let reply = format!(
                        "$JS.FC.{}.{}.{}",
                        self.stream, self.name, self.push.fc_counter
                    );
                    self.push.fc_reply = Some(reply.clone());
                    out.push(Action::Status {
                        to: to.clone(),
                        code: 100,
                        description: "FlowControl Request".into(),
                        headers: Vec::new(),
                        reply: Some(reply),
                    });
                }
            }
        }
    }

    /// The client answered a flow-control request on `subject`.
    pub fn on_flow_control(
        &mut self,
        subject: &str,
        store: &StreamStore,
        now_ns: u64,
        interest: bool,
        out: &mut Vec<Action>,
    ) {
        if self.push.fc_reply.as_deref() != Some(subject) {
            return;
        }
        self.push.fc_reply = None;
        self.push.bytes_since_fc = 0;
        self.push.window = (self.push.window * 2).min(super::FC_WINDOW_MAX_BYTES);
        self.pump(store, now_ns, Delivery::Push { interest }, out);
    }

    /// An ack for stream sequence `seq` (delivered as consumer sequence `cseq`).
    pub fn on_ack(
        &mut self,
        kind: &AckKind,
        seq: u64,
        cseq: u64,
        now_ns: u64,
        out: &mut Vec<Action>,
    ) {
        self.last_activity_ns = now_ns;
        self.ack_floor.last_active_ns = now_ns;
        match self.config.ack_policy {
            AckPolicy::None => {}
            AckPolicy::Explicit => match kind {
                AckKind::Ack | AckKind::Term(_) | AckKind::Next(_) => {
                    self.acknowledge(seq, kind, now_ns, out)
                }
                AckKind::Nak(delay) => self.nak(seq, *delay, now_ns, out),
                AckKind::InProgress => self.in_progress(seq, now_ns),
            },
            AckPolicy::All => match kind {
                AckKind::Ack | AckKind::Term(_) | AckKind::Next(_) => {
                    if cseq > self.ack_floor.consumer_seq {
                        let upto: Vec<u64> = self.pending.range(..=seq).map(|(s, _)| *s).collect();
                        for s in upto {
                            self.acknowledge(s, kind, now_ns, out);
                        }
                    }
                }
                AckKind::Nak(delay) => self.nak(seq, *delay, now_ns, out),
                AckKind::InProgress => self.in_progress(seq, now_ns),
            },
        }
    }

    /// An ack from a client, for the message its ack subject names by stream sequence `seq`,
    /// consumer sequence `cseq` and timestamp `ts_ns`. Deliveries a restored state forgot are
    /// adopted first (`adopt_deliveries_up_to`). An ack whose timestamp is not that of the
    /// pending message at `seq` is for a message that is no longer there: under `--sync`
    /// interval or `never` a crash can lose a delivered message with the log's unsynced tail,
    /// and the log gives its sequence to a new message, which this ack must not acknowledge
    /// (found by `tests/consumer_power_loss.rs`).
    #[allow(clippy::too_many_arguments)]
    pub fn on_client_ack(
        &mut self,
        kind: &AckKind,
        seq: u64,
        cseq: u64,
        ts_ns: u64,
        store: &StreamStore,
        now_ns: u64,
        out: &mut Vec<Action>,
    ) {
        self.adopt_deliveries_up_to(seq, cseq, ts_ns, store, now_ns);
        if let Some(p) = self.pending.get(&seq) {
            if p.ts_ns != 0 && p.ts_ns != ts_ns {
                return;
            }
        }
        self.on_ack(kind, seq, cseq, now_ns, out);
    }

    /// An ack names stream sequence `seq`, which this consumer's state says it never
    /// delivered: the state was restored from before a crash, and the deliveries made after
    /// its last write were lost with the process that made them. The client holds those
    /// messages, so they count as delivered now: pending, and redelivered after `ack_wait`
    /// unless acked. The ack then applies as to any pending message and, for an AckSync, is
    /// written before it is confirmed; without this the ack was dropped, confirmed anyway,
    /// and the message delivered again.
    ///
    /// `ts_ns` is the timestamp the ack subject carries. Under `--sync` interval or `never`, a
    /// crash can lose the acked message with the log's unsynced tail, and the log then gives
    /// its sequence to a new message; the client's ack is for the old one. Only a message
    /// with the same timestamp is the one the client holds: any other would be acknowledged
    /// without ever being delivered (found by `tests/consumer_power_loss.rs`).
    pub fn adopt_deliveries_up_to(
        &mut self,
        seq: u64,
        cseq: u64,
        ts_ns: u64,
        store: &StreamStore,
        now_ns: u64,
    ) {
        if !self.is_explicit()
            || seq < self.next_seq
            || seq > store.last_seq()
            || seq - self.next_seq >= MAX_ADOPTED_DELIVERIES
        {
            return;
        }
        let refs: Vec<&str> = self.filters.iter().map(String::as_str).collect();
        let span = (seq - self.next_seq + 1) as usize;
        let Ok(found) = store.scan(self.next_seq, &refs, span) else {
            return;
        };
        if !found.iter().any(|m| m.seq == seq && m.ts_ns == ts_ns) {
            return;
        }
        let deadline_ns = now_ns + self.wait_for(1);
        for msg in found.iter().filter(|m| m.seq <= seq) {
            let consumer_seq = cseq.saturating_sub(seq - msg.seq);
            self.pending.insert(
                msg.seq,
                Pending {
                    consumer_seq,
                    deliveries: 1,
                    deadline_ns,
                    ts_ns: msg.ts_ns,
                },
            );
        }
        self.skip_list.retain(|s| *s > seq);
        self.next_seq = seq + 1;
        self.delivered.stream_seq = self.delivered.stream_seq.max(seq);
        self.delivered.consumer_seq = self.delivered.consumer_seq.max(cseq);
        self.num_pending = None;
        self.dirty = true;
    }

    fn acknowledge(&mut self, seq: u64, kind: &AckKind, now_ns: u64, out: &mut Vec<Action>) {
        let Some(acked) = self.pending.remove(&seq) else {
            return;
        };
        if !matches!(kind, AckKind::Term(_)) {
            self.sample_ack(seq, &acked, now_ns, out);
        }
        self.redeliver.remove(&seq);
        self.dirty = true;
        if let AckKind::Term(reason) = kind {
            let advisory = DeliveryAdvisory {
                kind: "MSG_TERMINATED",
                type_name: "terminated",
                with_consumer_seq: true,
                reason: reason.as_deref(),
            };
            out.push(self.delivery_advisory(&advisory, seq, &acked, now_ns));
        }
        out.push(Action::Consumed(seq));
        self.update_floor();
    }

    fn nak(&mut self, seq: u64, delay_ns: Option<u64>, now_ns: u64, out: &mut Vec<Action>) {
        let Some(pending) = self.pending.get(&seq).copied() else {
            return;
        };
        out.push(self.delivery_advisory(&NAKED, seq, &pending, now_ns));
        let Some(p) = self.pending.get_mut(&seq) else {
            return;
        };
        self.dirty = true;
        match delay_ns {
            Some(delay) => {
                // The client asked for a delay: that wins over an earlier "due now".
                p.deadline_ns = now_ns + delay;
                self.redeliver.remove(&seq);
            }
            None => {
                // Due now, also in the persisted state, so a restart does not forget the nak.
                p.deadline_ns = now_ns;
                self.redeliver.insert(seq);
            }
        }
    }

    fn in_progress(&mut self, seq: u64, now_ns: u64) {
        let wait = self.pending.get(&seq).map(|p| self.wait_for(p.deliveries));
        if let (Some(p), Some(wait)) = (self.pending.get_mut(&seq), wait) {
            // The client still holds the message: it is no longer due for redelivery.
            p.deadline_ns = now_ns + wait;
            self.redeliver.remove(&seq);
            self.dirty = true;
        }
    }

    /// An advisory about one message's delivery, in nats-server's shape.
    fn delivery_advisory(
        &self,
        which: &DeliveryAdvisory<'_>,
        seq: u64,
        pending: &Pending,
        now_ns: u64,
    ) -> Action {
        let mut fields = serde_json::json!({
            "stream": self.stream,
            "consumer": self.name,
            "stream_seq": seq,
            "deliveries": pending.deliveries,
        });
        if which.with_consumer_seq {
            fields["consumer_seq"] = pending.consumer_seq.into();
        }
        if let Some(reason) = which.reason {
            fields["reason"] = reason.into();
        }
        crate::jetstream::advisories::event(
            format!(
                "$JS.EVENT.ADVISORY.CONSUMER.{}.{}.{}",
                which.kind, self.stream, self.name
            ),
            &format!("io.nats.jetstream.advisory.v1.{}", which.type_name),
            now_ns,
            fields,
        )
    }

    /// Whether the clock has anything to do for this consumer: acknowledgements outstanding
    /// (redeliveries), waiting pull requests (expiry, heartbeats), state not yet written, an
    /// inactivity threshold to watch, a held-back message, or push delivery (heartbeats, flow
    /// control, interest coming and going). A pull consumer with none of these is left alone.
    pub fn needs_ticks(&self) -> bool {
        !self.pending.is_empty()
            || !self.redeliver.is_empty()
            || !self.waiting.is_empty()
            || self.dirty
            || self.config.inactive_threshold > 0
            || self.wake_at_ns.is_some()
            || self.config.deliver_subject.is_some()
            || self.paused_until_ns.is_some()
            || self.pin.is_some()
    }

    /// Clock tick: due redeliveries, expired and idle pull requests, push heartbeats. Returns
    /// whether an ephemeral consumer has been inactive past its threshold and should go.
    pub fn tick(
        &mut self,
        store: &StreamStore,
        now_ns: u64,
        mode: Delivery,
        out: &mut Vec<Action>,
    ) -> bool {
        let due: Vec<(u64, Pending)> = self
            .pending
            .iter()
            .filter(|(s, p)| p.deadline_ns <= now_ns && !self.redeliver.contains(s))
            .map(|(s, p)| (*s, *p))
            .collect();
        for (seq, p) in due {
            if self.config.max_deliver > 0 && p.deliveries as i64 >= self.config.max_deliver {
                self.pending.remove(&seq);
                self.dirty = true;
                out.push(self.delivery_advisory(&MAX_DELIVERIES, seq, &p, now_ns));
                out.push(Action::Consumed(seq));
                self.update_floor();
            } else {
                self.redeliver.insert(seq);
            }
        }
        self.end_pause_if_due(now_ns, out);
        self.expire_pin(now_ns, out);
        let heartbeat = self.heartbeat_headers();
        let mut kept = std::collections::VecDeque::with_capacity(self.waiting.len());
        for mut w in self.waiting.drain(..) {
            if w.expires_at_ns.is_some_and(|at| at <= now_ns) {
                out.push(status(
                    &w.reply,
                    408,
                    "Request Timeout",
                    pending_headers(&w),
                ));
                continue;
            }
            if w.heartbeat_ns > 0 && now_ns.saturating_sub(w.last_sent_ns) >= w.heartbeat_ns {
                w.last_sent_ns = now_ns;
                out.push(status(&w.reply, 100, "Idle Heartbeat", heartbeat.clone()));
            }
            kept.push_back(w);
        }
        self.waiting = kept;
        if let Delivery::Push { interest } = mode {
            let hb = self.config.idle_heartbeat.max(0) as u64;
            if interest && hb > 0 && now_ns.saturating_sub(self.push.last_sent_ns) >= hb {
                self.push.last_sent_ns = now_ns;
                if let Some(to) = self.config.deliver_subject.clone() {
                    let mut headers = self.heartbeat_headers();
                    if let Some(fc) = &self.push.fc_reply {
                        headers.push(("Nats-Consumer-Stalled", fc.clone()));
                    }
                    out.push(status(&Bytes::from(to), 100, "Idle Heartbeat", headers));
                }
            }
            if interest {
                self.last_activity_ns = now_ns;
            }
        }
        self.pump(store, now_ns, mode, out);
        let threshold = self.config.inactive_threshold.max(0) as u64;
        threshold > 0
            && self.waiting.is_empty()
            && now_ns.saturating_sub(self.last_activity_ns) >= threshold
    }

    pub(super) fn heartbeat_headers(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "Nats-Last-Consumer",
                self.delivered.consumer_seq.to_string(),
            ),
            ("Nats-Last-Stream", self.delivered.stream_seq.to_string()),
        ]
    }

    /// When this consumer next has to act on time, whatever else happens: a paced message may
    /// go, or a waiting pull request expires or is due a heartbeat. Redeliveries are left to
    /// the regular tick (their `ack_wait` is seconds, the tick tens of milliseconds).
    pub fn next_deadline_ns(&self) -> Option<u64> {
        let requests = self.waiting.iter().filter_map(|w| {
            let heartbeat = (w.heartbeat_ns > 0).then(|| w.last_sent_ns + w.heartbeat_ns);
            match (w.expires_at_ns, heartbeat) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        });
        requests
            .chain(self.wake_at_ns)
            .chain(self.paused_until_ns)
            .chain(self.pin_deadline_ns())
            .min()
    }

    /// Forgets pull requests whose reply subject nobody listens to any more (the client gave
    /// up or went away), so no message is sent into the void to wait out its ack timer.
    /// nats-server drops them silently in the same way (consumer.go, processWaiting).
    pub fn drop_abandoned_requests(&mut self, has_interest: &dyn Fn(&[u8]) -> bool) {
        self.waiting.retain(|w| has_interest(&w.reply));
    }

    /// The consumer is going away: tell waiting pull requests.
    pub fn on_delete(&mut self, out: &mut Vec<Action>) {
        for w in self.waiting.drain(..) {
            out.push(status(&w.reply, 409, "Consumer Deleted", Vec::new()));
        }
    }

    /// This server no longer leads the consumer's replicated stream: its waiting pull
    /// requests end with nats-server's 409, and the client asks the new leader.
    pub fn on_leadership_lost(&mut self, out: &mut Vec<Action>) {
        for w in self.waiting.drain(..) {
            out.push(status(&w.reply, 409, "Leadership Change", Vec::new()));
        }
    }

    /// The server is stopping: tell waiting pull requests what they still wanted, as
    /// nats-server does, so a client asks again after it reconnects instead of waiting for
    /// messages counted to a request that no longer exists.
    pub fn on_shutdown(&mut self, out: &mut Vec<Action>) {
        for w in self.waiting.drain(..) {
            out.push(status(
                &w.reply,
                409,
                "Server Shutdown",
                pending_headers(&w),
            ));
        }
    }
}

/// `Nats-Pending-Messages`/`Nats-Pending-Bytes` of an unfinished request.
pub(super) fn pending_headers(w: &Waiting) -> Vec<(&'static str, String)> {
    vec![
        ("Nats-Pending-Messages", w.remaining.to_string()),
        ("Nats-Pending-Bytes", w.bytes_left.unwrap_or(0).to_string()),
    ]
}

/// Which delivery advisory: its subject word, its type, and what it carries.
struct DeliveryAdvisory<'a> {
    kind: &'static str,
    type_name: &'static str,
    with_consumer_seq: bool,
    /// The client's `+TERM` reason (nats-server 2.11+).
    reason: Option<&'a str>,
}

const NAKED: DeliveryAdvisory<'static> = DeliveryAdvisory {
    kind: "MSG_NAKED",
    type_name: "nak",
    with_consumer_seq: true,
    reason: None,
};

const MAX_DELIVERIES: DeliveryAdvisory<'static> = DeliveryAdvisory {
    kind: "MAX_DELIVERIES",
    type_name: "max_deliver",
    with_consumer_seq: false,
    reason: None,
};
