//! What an operator does to a running consumer (API level 1 and 2.14): pause and resume,
//! unpin a pinned client, reset the delivery position; and the advisories these send.
//! nats-server's behaviour is in `docs/consumer-2.14-facts.md` §1–§3.

use std::hash::{BuildHasher, Hasher};

use bytes::Bytes;
use serde_json::json;

use super::{Action, Consumer, Pin, SeqPair};
use crate::jetstream::advisories;
use crate::jetstream::consumer_config::{DeliverPolicy, PriorityPolicy};
use crate::jetstream::error::ApiError;
use crate::jetstream::time::format_rfc3339;
use crate::store::StreamStore;

/// Length of the ids jetlog makes for pins and advisories (as a NUID's).
const ID_LEN: usize = 22;
const ID_ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A fresh, unpredictable base-62 id. `RandomState` is seeded from the OS once per thread and
/// advanced on every call, so ids never repeat within a process and cannot be guessed from
/// each other.
pub fn fresh_id() -> String {
    let mut out = String::with_capacity(ID_LEN);
    let mut bits = 0u64;
    for i in 0..ID_LEN {
        if i % 10 == 0 {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_usize(i);
            bits = hasher.finish();
        }
        out.push(char::from(ID_ALPHABET[(bits % 62) as usize]));
        bits /= 62;
    }
    out
}

/// Why a pin was taken away, as the UNPINNED advisory says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnpinReason {
    /// `$JS.API.CONSUMER.UNPIN`.
    Admin,
    /// The pinned client did not pull within `priority_timeout`.
    Timeout,
}

impl Consumer {
    /// Whether deliveries are held at `now_ns` by a pause.
    pub fn is_paused(&self, now_ns: u64) -> bool {
        self.paused_until_ns.is_some_and(|until| until > now_ns)
    }

    /// Time left in the pause, in ns (0 when not paused).
    pub fn pause_remaining_ns(&self, now_ns: u64) -> u64 {
        self.paused_until_ns
            .map_or(0, |until| until.saturating_sub(now_ns))
    }

    /// `$JS.API.CONSUMER.PAUSE`: pauses until `until` (RFC 3339, Unix ns) or, with `None`,
    /// resumes. The time is kept in the config even once it has passed, as nats-server keeps
    /// it; the advisory goes only when the stored value changes.
    pub fn pause(&mut self, until: Option<(String, i64)>, now_ns: u64, out: &mut Vec<Action>) {
        let changed = self.config.pause_until != until.as_ref().map(|(text, _)| text.clone());
        self.config.pause_until = until.as_ref().map(|(text, _)| text.clone());
        self.paused_until_ns = until
            .as_ref()
            .map(|(_, ns)| (*ns).max(0) as u64)
            .filter(|ns| *ns > now_ns);
        self.dirty = true;
        if changed {
            out.push(self.pause_advisory(until.map(|(_, ns)| ns), now_ns));
        }
    }

    /// The pause ran out at `now_ns`: tell the world, once, and deliver again.
    pub(super) fn end_pause_if_due(&mut self, now_ns: u64, out: &mut Vec<Action>) {
        if let Some(until) = self.paused_until_ns.filter(|until| *until <= now_ns) {
            self.paused_until_ns = None;
            out.push(self.pause_advisory(Some(until as i64), now_ns));
        }
    }

    /// `$JS.EVENT.ADVISORY.CONSUMER.PAUSE.<stream>.<consumer>`.
    pub fn pause_advisory(&self, until_ns: Option<i64>, now_ns: u64) -> Action {
        self.event(
            "PAUSE",
            "consumer_pause",
            now_ns,
            json!({
                "paused": self.is_paused(now_ns),
                "pause_until": format_rfc3339(until_ns),
            }),
        )
    }

    /// `$JS.API.CONSUMER.UNPIN` for `group`: the pinned client (if any) loses its pin and the
    /// next request without a pin id gets a new one. Like nats-server, this succeeds (and
    /// sends the advisory) whether or not a client was pinned.
    pub fn unpin(&mut self, group: &str, now_ns: u64, out: &mut Vec<Action>) {
        self.pin = None;
        out.push(self.unpinned_advisory(group, UnpinReason::Admin, now_ns));
    }

    /// Gives the pin to a fresh id and announces it.
    pub(super) fn pin_new_client(&mut self, now_ns: u64, out: &mut Vec<Action>) -> Bytes {
        let id = Bytes::from(fresh_id());
        self.pin = Some(Pin {
            id: id.clone(),
            since_ns: now_ns,
            renewed_ns: now_ns,
        });
        let group = self.first_group();
        out.push(self.event(
            "PINNED",
            "consumer_group_pinned",
            now_ns,
            json!({ "group": group, "pinned_id": String::from_utf8_lossy(&id) }),
        ));
        id
    }

    /// Takes the pin away when its client has not pulled for `priority_timeout`.
    pub(super) fn expire_pin(&mut self, now_ns: u64, out: &mut Vec<Action>) {
        let timeout = self.config.priority_timeout.max(0) as u64;
        if timeout == 0 || self.config.priority_policy != PriorityPolicy::PinnedClient {
            return;
        }
        if self
            .pin
            .as_ref()
            .is_some_and(|pin| now_ns.saturating_sub(pin.renewed_ns) >= timeout)
        {
            self.pin = None;
            let group = self.first_group();
            out.push(self.unpinned_advisory(&group, UnpinReason::Timeout, now_ns));
        }
    }

    /// The group a pin belongs to: nats-server keeps one pin per consumer, under its first
    /// configured group.
    fn first_group(&self) -> String {
        self.config
            .priority_groups
            .first()
            .cloned()
            .unwrap_or_default()
    }

    /// When the pin runs out unless renewed.
    pub(super) fn pin_deadline_ns(&self) -> Option<u64> {
        let timeout = self.config.priority_timeout.max(0) as u64;
        (timeout > 0)
            .then(|| self.pin.as_ref().map(|pin| pin.renewed_ns + timeout))
            .flatten()
    }

    fn unpinned_advisory(&self, group: &str, reason: UnpinReason, now_ns: u64) -> Action {
        let reason = match reason {
            UnpinReason::Admin => "admin",
            UnpinReason::Timeout => "timeout",
        };
        self.event(
            "UNPINNED",
            "consumer_group_unpinned",
            now_ns,
            json!({ "group": group, "reason": reason }),
        )
    }

    /// A consumer advisory on `$JS.EVENT.ADVISORY.CONSUMER.<kind>.<stream>.<consumer>`:
    /// `stream` and `consumer`, then the fields of `extra`.
    fn event(&self, kind: &str, type_name: &str, now_ns: u64, extra: serde_json::Value) -> Action {
        let mut fields = json!({ "stream": self.stream, "consumer": self.name });
        if let (Some(fields), serde_json::Value::Object(extra)) = (fields.as_object_mut(), extra) {
            fields.extend(extra);
        }
        advisories::event(
            format!(
                "$JS.EVENT.ADVISORY.CONSUMER.{kind}.{}.{}",
                self.stream, self.name
            ),
            &format!("io.nats.jetstream.advisory.v1.{type_name}"),
            now_ns,
            fields,
        )
    }

    /// `$JS.API.CONSUMER.RESET` (2.14): delivery starts again at stream sequence `seq` (0 =
    /// just above the ack floor). Everything pending is forgotten and the consumer sequence
    /// starts again at 1; waiting pull requests stay. Returns the sequence delivery restarts
    /// from. As in nats-server, a sequence past the stream's end is allowed: the consumer
    /// waits for the stream to reach it.
    pub fn reset(&mut self, seq: u64, store: &StreamStore) -> Result<u64, ApiError> {
        let reset_seq = if seq == 0 {
            self.ack_floor.stream_seq + 1
        } else {
            self.check_reset_seq(seq, store)?;
            seq
        };
        let floor = SeqPair {
            consumer_seq: 0,
            stream_seq: reset_seq - 1,
            last_active_ns: self.ack_floor.last_active_ns,
        };
        self.ack_floor = floor;
        self.delivered = SeqPair {
            last_active_ns: self.delivered.last_active_ns,
            ..floor
        };
        self.pending.clear();
        self.redeliver.clear();
        self.skip_list.retain(|s| *s >= reset_seq);
        self.next_seq = reset_seq;
        self.num_pending = None;
        self.read_ahead.clear();
        self.dirty = true;
        Ok(reset_seq)
    }

    /// Counts everything up to stream sequence `upto` as delivered and acknowledged, for a
    /// mirror's or source's hold on its origin, which reads the log itself.
    pub fn release_to(&mut self, upto: u64, store: &StreamStore, now_ns: u64) {
        debug_assert!(
            self.config.sourcing,
            "only a sourcing hold is released by hand"
        );
        let floor = SeqPair {
            consumer_seq: self.delivered.consumer_seq,
            stream_seq: upto,
            last_active_ns: now_ns,
        };
        self.ack_floor = floor;
        self.delivered = floor;
        self.pending.retain(|seq, _| *seq > upto);
        self.redeliver.retain(|seq| *seq > upto);
        self.skip_list.retain(|s| *s > upto);
        self.next_seq = self.next_seq.max(upto + 1);
        self.last_activity_ns = now_ns;
        self.num_pending = None;
        self.read_ahead.clear();
        self.on_removed(store);
        self.dirty = true;
    }

    /// Which sequences a deliver policy lets a reset name (nats-server, `resetConsumer`).
    fn check_reset_seq(&self, seq: u64, store: &StreamStore) -> Result<(), ApiError> {
        let invalid = |why: &str| ApiError::new(400, 10204, format!("invalid reset: {why}"));
        match self.config.deliver_policy {
            DeliverPolicy::All => Ok(()),
            DeliverPolicy::ByStartSequence => {
                if seq < self.config.opt_start_seq.unwrap_or(1) {
                    return Err(invalid("below start seq"));
                }
                Ok(())
            }
            DeliverPolicy::ByStartTime => {
                let start = self
                    .config
                    .opt_start_time
                    .as_deref()
                    .and_then(|t| crate::jetstream::time::parse_rfc3339(t).ok().flatten())
                    .and_then(|ns| store.seq_at_or_after_time(ns.max(0) as u64).ok())
                    .unwrap_or(store.last_seq() + 1);
                if seq < start {
                    return Err(invalid("below start time"));
                }
                Ok(())
            }
            DeliverPolicy::New | DeliverPolicy::Last | DeliverPolicy::LastPerSubject => {
                Err(invalid("not allowed"))
            }
        }
    }
}

impl Consumer {
    /// Ack sampling (`sample_freq`, "N" or "N%"): a share of acks is reported on
    /// `$JS.EVENT.METRIC.CONSUMER.ACK.<stream>.<consumer>` with the time the client took.
    pub(super) fn sample_ack(
        &self,
        seq: u64,
        acked: &super::Pending,
        now_ns: u64,
        out: &mut Vec<Action>,
    ) {
        let Some(percent) = self
            .config
            .sample_freq
            .as_deref()
            .and_then(|f| f.strip_suffix('%').unwrap_or(f).parse::<u64>().ok())
        else {
            return;
        };
        // nats-server draws 0..100 and samples when the draw is at most the frequency.
        let draw = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
            % 100;
        if percent == 0 || (percent < 100 && draw > percent) {
            return;
        }
        let delivered_at = acked
            .deadline_ns
            .saturating_sub(self.wait_for(acked.deliveries));
        out.push(advisories::event(
            format!(
                "$JS.EVENT.METRIC.CONSUMER.ACK.{}.{}",
                self.stream, self.name
            ),
            "io.nats.jetstream.metric.v1.consumer_ack",
            now_ns,
            json!({
                "stream": self.stream,
                "consumer": self.name,
                "consumer_seq": acked.consumer_seq,
                "stream_seq": seq,
                "ack_time": now_ns.saturating_sub(delivered_at),
                "deliveries": acked.deliveries,
            }),
        ));
    }
}
