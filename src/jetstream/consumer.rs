//! A JetStream consumer as a state machine: events (pull requests, acks, new messages, clock
//! ticks) go in with the current time and read access to the stream; actions (deliveries,
//! status messages, advisories, stream removals) come out. Nothing here sleeps or owns a timer,
//! so the stream actor drives it and tests can drive it with a fake clock.
//!
//! Sequences follow nats-server: every delivery, redeliveries included, takes a new consumer
//! sequence; `delivered` holds the last consumer sequence handed out and the highest stream
//! sequence delivered; the ack floor is the point below which everything is acknowledged.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;

use super::consumer_config::{AckPolicy, ConsumerConfig, DeliverPolicy};
use super::consumer_pacing::{is_paced, Pacing};
use super::read_ahead::ReadAhead;
use super::time::parse_rfc3339;
use crate::protocol::subject::subject_matches;
use crate::store::{StoredMessage, StreamStore};

/// A stream sequence with the consumer sequence that delivered it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqPair {
    pub consumer_seq: u64,
    pub stream_seq: u64,
    /// Unix ns of the last change; 0 = never.
    pub last_active_ns: u64,
}

/// A delivered message waiting for its ack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    /// Consumer sequence of the latest delivery.
    pub consumer_seq: u64,
    /// How many times it was delivered.
    pub deliveries: u64,
    /// Unix ns when it is due for redelivery unless acked.
    pub deadline_ns: u64,
    /// The message's own timestamp, as its ack subject carries it; 0 when not known (a
    /// state written before this was kept). See `Consumer::on_client_ack`.
    pub ts_ns: u64,
}

/// What an ack message asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckKind {
    Ack,
    /// Redeliver, now or after a delay in ns.
    Nak(Option<u64>),
    /// Still working: restart the ack timer.
    InProgress,
    /// Never redeliver; the reason the client gave, if any (shown in the advisory).
    Term(Option<String>),
    /// Ack, then treat the ack's reply as a pull request with this body.
    Next(Bytes),
}

impl AckKind {
    /// Parses an ack payload as nats-server does (`+ACK`, empty, `-NAK [{"delay":ns}]`,
    /// `+WPI`, `+TERM [reason]`, `+NXT [request]`). Unknown payloads count as acks, as there.
    pub fn parse(payload: &[u8]) -> AckKind {
        let text = std::str::from_utf8(payload).unwrap_or("").trim();
        if let Some(rest) = text.strip_prefix("-NAK") {
            let delay = serde_json::from_str::<serde_json::Value>(rest.trim())
                .ok()
                .and_then(|v| v.get("delay").and_then(|d| d.as_u64()))
                .filter(|d| *d > 0);
            AckKind::Nak(delay)
        } else if text.starts_with("+WPI") {
            AckKind::InProgress
        } else if let Some(rest) = text.strip_prefix("+TERM") {
            let reason = rest.trim();
            AckKind::Term((!reason.is_empty()).then(|| reason.to_owned()))
        } else if let Some(rest) = text.strip_prefix("+NXT") {
            AckKind::Next(Bytes::copy_from_slice(rest.trim().as_bytes()))
        } else {
            AckKind::Ack
        }
    }
}

/// What the stream actor must do on the consumer's behalf.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send a stored message to `to` with `ack_subject` as its reply; a pinned-client
    /// consumer's messages carry the pin as `Nats-Pin-Id`.
    Deliver {
        to: Bytes,
        msg: StoredMessage,
        ack_subject: String,
        headers_only: bool,
        pin_id: Option<Bytes>,
    },
    /// Send a header-only status message (`NATS/1.0 <code> <description>`).
    Status {
        to: Bytes,
        code: u16,
        description: String,
        headers: Vec<(&'static str, String)>,
        reply: Option<String>,
    },
    /// Publish an advisory event.
    Advisory { subject: String, body: Vec<u8> },
    /// This consumer is done with a stream sequence (acked, terminated or given up on); the
    /// stream may remove it under interest or workqueue retention.
    Consumed(u64),
}

/// A pull request waiting for messages.
#[derive(Debug, Clone)]
pub struct Waiting {
    pub reply: Bytes,
    pub remaining: u64,
    /// Bytes still allowed; `None` = no byte limit.
    pub bytes_left: Option<u64>,
    pub expires_at_ns: Option<u64>,
    pub no_wait: bool,
    pub heartbeat_ns: u64,
    pub last_sent_ns: u64,
    pub delivered: u64,
    /// Priority-group terms of the request (ADR-42); default when the consumer has none.
    pub priority: RequestPriority,
}

/// What a pull request asks of a consumer with priority groups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestPriority {
    /// Overflow: served only while `num_pending` is at least this (0 = no threshold).
    pub min_pending: u64,
    /// Overflow: served only while `num_ack_pending` is at least this (0 = no threshold).
    pub min_ack_pending: u64,
    /// Pinned client: the pin the client holds, or the one it was given by this request.
    pub pin_id: Option<Bytes>,
    /// Prioritized: 0 (first) to 9.
    pub priority: u8,
}

/// Push-consumer flow control and heartbeat state.
#[derive(Debug, Clone, Default)]
pub struct PushState {
    pub bytes_since_fc: u64,
    pub window: u64,
    /// The reply subject of the outstanding flow-control request.
    pub fc_reply: Option<String>,
    pub last_sent_ns: u64,
    pub fc_counter: u64,
}

/// The flow-control window nats-server starts with and its ceiling.
pub const FC_WINDOW_START_BYTES: u64 = 2 * 1024 * 1024;
pub const FC_WINDOW_MAX_BYTES: u64 = 32 * 1024 * 1024;

/// One consumer.
#[derive(Debug)]
pub struct Consumer {
    pub stream: String,
    pub name: String,
    pub config: ConsumerConfig,
    pub created_ns: i64,
    pub filters: Vec<String>,
    pub delivered: SeqPair,
    pub ack_floor: SeqPair,
    /// The next stream sequence to look at for first deliveries.
    pub next_seq: u64,
    pub pending: BTreeMap<u64, Pending>,
    /// Stream sequences due for redelivery, delivered before new messages.
    pub redeliver: BTreeSet<u64>,
    /// Stream sequences to deliver first for `last_per_subject`.
    pub skip_list: VecDeque<u64>,
    pub waiting: VecDeque<Waiting>,
    /// Cached count of matching messages at or after `next_seq` not yet delivered.
    pub(super) num_pending: Option<u64>,
    pub last_activity_ns: u64,
    pub push: PushState,
    /// State changed since it was last persisted.
    pub dirty: bool,
    /// The next matching messages from `next_seq` on, read ahead in one scan.
    pub(super) read_ahead: ReadAhead,
    /// Replay-original and rate-limit bookkeeping (`consumer_pacing.rs`).
    pub(super) pacing: Pacing,
    /// When a message held back by pacing may go: the stream's timer ticks the stream then.
    pub wake_at_ns: Option<u64>,
    /// Unix ns until which nothing is delivered (`pause_until`); `None` once it has passed.
    pub(super) paused_until_ns: Option<u64>,
    /// The client a `pinned_client` consumer delivers to, while one is pinned.
    pub(super) pin: Option<Pin>,
}

/// The pinned client of a `pinned_client` consumer. Not persisted, as in nats-server: after a
/// restart the next request is pinned afresh.
#[derive(Debug, Clone)]
pub struct Pin {
    pub id: Bytes,
    /// Unix ns when it was pinned (`pinned_ts`).
    pub since_ns: u64,
    /// Unix ns of the pin's last use: `priority_timeout` runs from here.
    pub renewed_ns: u64,
}

/// The start of every ack subject; the rest is
/// `<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<timestamp>.<pending>`.
const ACK_PREFIX: &str = "$JS.ACK.";

/// Appends `n` in decimal.
fn push_decimal(out: &mut String, n: u64) {
    let mut digits = [0u8; 20];
    for &d in crate::protocol::encode::decimal_digits(n, &mut digits) {
        out.push(char::from(d));
    }
}

/// Counts the matching messages from `from` on: from the store's maps when they can tell,
/// else by reading them (paid only when the cached count is unknown).
fn count_matching(store: &StreamStore, from: u64, filters: &[String]) -> u64 {
    let refs: Vec<&str> = filters.iter().map(String::as_str).collect();
    if let Some(count) = store.count_from(from, &refs) {
        return count;
    }
    let mut seq = from;
    let mut count = 0;
    while let Ok(batch) = store.scan(seq, &refs, 4096) {
        let Some(last) = batch.last() else { break };
        count += batch.len() as u64;
        seq = last.seq + 1;
    }
    count
}

impl Consumer {
    /// A new consumer positioned per its deliver policy.
    pub fn new(
        stream: &str,
        name: &str,
        config: ConsumerConfig,
        created_ns: i64,
        store: &StreamStore,
        now_ns: u64,
    ) -> Self {
        let filters = config.filters();
        let mut consumer = Self {
            stream: stream.to_string(),
            name: name.to_string(),
            config,
            created_ns,
            filters,
            delivered: SeqPair::default(),
            ack_floor: SeqPair::default(),
            next_seq: 1,
            pending: BTreeMap::new(),
            redeliver: BTreeSet::new(),
            skip_list: VecDeque::new(),
            waiting: VecDeque::new(),
            num_pending: None,
            last_activity_ns: now_ns,
            push: PushState {
                window: FC_WINDOW_START_BYTES,
                ..PushState::default()
            },
            dirty: true,
            read_ahead: ReadAhead::default(),
            pacing: Pacing::default(),
            wake_at_ns: None,
            paused_until_ns: None,
            pin: None,
        };
        consumer.paused_until_ns = consumer.config.pause_until_ns().filter(|t| *t > now_ns);
        consumer.position(store);
        consumer
    }

    /// Sets `next_seq` (and the skip list) from the deliver policy.
    fn position(&mut self, store: &StreamStore) {
        let last = store.last_seq();
        let refs: Vec<&str> = self.filters.iter().map(String::as_str).collect();
        self.next_seq = match self.config.deliver_policy {
            DeliverPolicy::All => 1,
            DeliverPolicy::New => last + 1,
            DeliverPolicy::ByStartSequence => self.config.opt_start_seq.unwrap_or(1).max(1),
            DeliverPolicy::ByStartTime => {
                let ns = self
                    .config
                    .opt_start_time
                    .as_deref()
                    .and_then(|t| parse_rfc3339(t).ok().flatten())
                    .unwrap_or(0);
                store
                    .seq_at_or_after_time(ns.max(0) as u64)
                    .unwrap_or(last + 1)
            }
            DeliverPolicy::Last => {
                let newest = if refs.is_empty() {
                    Some(last).filter(|l| *l > 0)
                } else {
                    self.last_matching(store)
                };
                newest.unwrap_or(last + 1)
            }
            DeliverPolicy::LastPerSubject => {
                let mut seqs = Vec::new();
                for filter in if refs.is_empty() {
                    vec![">"]
                } else {
                    refs.clone()
                } {
                    for subject in store.subject_counts(filter).keys() {
                        if let Ok(Some(msg)) = store.last_for_subject(subject) {
                            seqs.push(msg.seq);
                        }
                    }
                }
                seqs.sort_unstable();
                seqs.dedup();
                self.skip_list = seqs.into();
                last + 1
            }
        };
        // Everything before the start position counts as acknowledged.
        self.ack_floor.stream_seq = self
            .skip_list
            .front()
            .copied()
            .unwrap_or(self.next_seq)
            .saturating_sub(1);
        self.delivered.stream_seq = self.ack_floor.stream_seq;
        self.num_pending = None;
    }

    fn last_matching(&self, store: &StreamStore) -> Option<u64> {
        self.filters
            .iter()
            .filter_map(|f| store.last_for_subject(f).ok().flatten().map(|m| m.seq))
            .max()
    }

    pub(crate) fn matches(&self, subject: &str) -> bool {
        self.filters.is_empty()
            || self
                .filters
                .iter()
                .any(|f| subject_matches(f.as_str(), subject))
    }

    /// Applies an allowed config update, keeping the delivery state.
    pub fn update_config(&mut self, config: ConsumerConfig) {
        // The pause is not part of an update (the caller keeps the one in force), so its
        // state stays as it is.
        self.filters = config.filters();
        if config.priority_policy != super::consumer_config::PriorityPolicy::PinnedClient {
            self.pin = None;
        }
        self.config = config;
        self.num_pending = None;
        self.read_ahead.clear();
        self.dirty = true;
    }

    pub fn is_explicit(&self) -> bool {
        self.config.ack_policy != AckPolicy::None
    }

    /// Matching messages not yet delivered.
    pub fn num_pending(&mut self, store: &StreamStore) -> u64 {
        if let Some(n) = self.num_pending {
            return n;
        }
        let n = self.skip_list.len() as u64
            + count_matching(store, self.next_seq.max(1), &self.filters);
        self.num_pending = Some(n);
        n
    }

    /// The stream appended messages: keep the cached pending count exact without a scan.
    pub fn on_appended(&mut self, appended: &[(u64, &str)], removed_any: bool) {
        if removed_any {
            self.num_pending = None;
            self.read_ahead.clear();
            return;
        }
        if self.num_pending.is_some() {
            let new = appended
                .iter()
                .filter(|(seq, subject)| *seq >= self.next_seq && self.matches(subject))
                .count();
            self.num_pending = self.num_pending.map(|n| n + new as u64);
        }
    }

    /// Messages were removed from the stream (purge, delete, expiry): forget the cached count
    /// and drop pending entries that no longer exist.
    pub fn on_removed(&mut self, store: &StreamStore) {
        self.num_pending = None;
        self.read_ahead.clear();
        let first = store.state(false).map(|s| s.first_seq).unwrap_or(0);
        if self.next_seq < first {
            self.next_seq = first;
        }
        self.skip_list.retain(|s| *s >= first);
    }

    /// The ack wait for a message about to be delivered for the `deliveries`th time.
    fn wait_for(&self, deliveries: u64) -> u64 {
        let backoff = &self.config.backoff;
        if !backoff.is_empty() {
            let i = (deliveries.saturating_sub(1) as usize).min(backoff.len() - 1);
            return backoff[i].max(0) as u64;
        }
        self.config.ack_wait.max(0) as u64
    }

    fn max_ack_pending_reached(&self) -> bool {
        self.config.max_ack_pending > 0 && self.pending.len() as i64 >= self.config.max_ack_pending
    }

    /// The next message to hand out: a due redelivery first, then the skip list, then new ones.
    /// Returns the message and how many times it will have been delivered.
    fn next_message(&mut self, store: &StreamStore) -> Option<(StoredMessage, u64)> {
        while let Some(seq) = self.redeliver.pop_first() {
            let Some(p) = self.pending.get(&seq).copied() else {
                continue;
            };
            match store.get(seq) {
                Ok(Some(msg)) => return Some((msg, p.deliveries + 1)),
                _ => {
                    self.pending.remove(&seq);
                    self.update_floor();
                }
            }
        }
        if self.max_ack_pending_reached() {
            return None;
        }
        while let Some(seq) = self.skip_list.pop_front() {
            if let Ok(Some(msg)) = store.get(seq) {
                self.num_pending = self.num_pending.map(|n| n.saturating_sub(1));
                return Some((msg, 1));
            }
        }
        let refs: Vec<&str> = self.filters.iter().map(String::as_str).collect();
        let msg = self.read_ahead.next(store, self.next_seq, &refs)?;
        self.next_seq = msg.seq + 1;
        self.num_pending = self.num_pending.map(|n| n.saturating_sub(1));
        Some((msg, 1))
    }

    /// Records a delivery and returns its ack subject.
    fn record_delivery(
        &mut self,
        msg: &StoredMessage,
        deliveries: u64,
        now_ns: u64,
        store: &StreamStore,
        out: &mut Vec<Action>,
    ) -> String {
        self.delivered.consumer_seq += 1;
        self.delivered.stream_seq = self.delivered.stream_seq.max(msg.seq);
        self.delivered.last_active_ns = now_ns;
        self.last_activity_ns = now_ns;
        self.dirty = true;
        let cseq = self.delivered.consumer_seq;
        if self.is_explicit() {
            let deadline_ns = now_ns + self.wait_for(deliveries);
            self.pending.insert(
                msg.seq,
                Pending {
                    consumer_seq: cseq,
                    deliveries,
                    deadline_ns,
                    ts_ns: msg.ts_ns,
                },
            );
        } else {
            self.ack_floor = SeqPair {
                consumer_seq: cseq,
                stream_seq: self.delivered.stream_seq,
                last_active_ns: now_ns,
            };
            out.push(Action::Consumed(msg.seq));
        }
        let pending = self.num_pending(store);
        // Built by hand: `format!` here was a visible share of each delivery's cost.
        let mut subject =
            String::with_capacity(ACK_PREFIX.len() + self.stream.len() + self.name.len() + 5 * 21);
        subject.push_str(ACK_PREFIX);
        subject.push_str(&self.stream);
        subject.push('.');
        subject.push_str(&self.name);
        for n in [deliveries, msg.seq, cseq, msg.ts_ns, pending] {
            subject.push('.');
            push_decimal(&mut subject, n);
        }
        subject
    }

    /// Moves the ack floor up to just below the oldest unacknowledged delivery.
    fn update_floor(&mut self) {
        match self.pending.first_key_value() {
            Some((seq, p)) => {
                // The floor never moves back: a redelivered message can carry a newer consumer
                // sequence than messages acked after its first delivery.
                self.ack_floor.stream_seq = self.ack_floor.stream_seq.max(seq - 1);
                self.ack_floor.consumer_seq = self
                    .ack_floor
                    .consumer_seq
                    .max(p.consumer_seq.saturating_sub(1));
            }
            None => {
                self.ack_floor.stream_seq = self.delivered.stream_seq;
                self.ack_floor.consumer_seq = self.delivered.consumer_seq;
            }
        }
        debug_assert!(self.ack_floor.stream_seq <= self.delivered.stream_seq);
        debug_assert!(self.ack_floor.consumer_seq <= self.delivered.consumer_seq);
    }
}

#[path = "consumer_admin.rs"]
mod admin;
#[path = "consumer_flow.rs"]
mod flow;
#[path = "consumer_pull.rs"]
mod pull;

#[cfg(test)]
#[path = "consumer_tests.rs"]
mod tests;

pub use admin::fresh_id;
pub use flow::Delivery;

#[cfg(test)]
#[path = "consumer_level_1_tests.rs"]
mod level_1_tests;
