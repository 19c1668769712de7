//! A stream's consumers: creation rules that involve the stream, routing of consumer events,
//! and the retention policies (interest, workqueue) that consumers' acks drive.
//!
//! Consumers live inside the `Stream` so that deliveries, acks and message removal happen on
//! the stream's actor in one order, with no lock between a consumer and the log it reads.

use std::collections::BTreeMap;

use super::consumer::{AckKind, Action, Consumer, Delivery};
use super::consumer_config::{AckPolicy, ConsumerConfig, DeliverPolicy};
use super::error::ApiError;
use super::stream::Stream;
use super::stream_config::{Retention, StreamConfig};
use crate::protocol::subject::subjects_overlap;
use crate::store::PurgeRequest;

/// Consumers by name.
pub type Consumers = BTreeMap<String, Consumer>;

impl Stream {
    pub fn consumers(&self) -> &Consumers {
        &self.consumers
    }

    pub fn consumer_mut(&mut self, name: &str) -> Option<&mut Consumer> {
        self.consumers.get_mut(name)
    }

    /// The log and one consumer at once (a consumer reads the log while it changes itself).
    pub fn log_and_consumer(
        &mut self,
        name: &str,
    ) -> (&crate::store::StreamStore, Option<&mut Consumer>) {
        (&self.log, self.consumers.get_mut(name))
    }

    /// Checks the rules a new consumer must meet given the stream and its other consumers.
    pub fn check_new_consumer(&self, name: &str, config: &ConsumerConfig) -> Result<(), ApiError> {
        if self.config().max_consumers > 0
            && self.consumers.len() as i64 >= self.config().max_consumers
            && !self.consumers.contains_key(name)
        {
            return Err(ApiError::new(400, 10026, "maximum consumers limit reached"));
        }
        if self.config().retention != Retention::WorkQueue {
            return Ok(());
        }
        if config.ack_policy != AckPolicy::Explicit {
            return Err(ApiError::new(
                400,
                10098,
                "workqueue stream requires explicit ack",
            ));
        }
        if config.deliver_policy != DeliverPolicy::All {
            return Err(ApiError::new(
                400,
                10101,
                "workqueue stream requires deliver all policy",
            ));
        }
        let mine = config.filters();
        for (other_name, other) in &self.consumers {
            // A mirror's or source's hold shares the messages with anyone (nats-server).
            if other_name == name || config.sourcing || other.config.sourcing {
                continue;
            }
            if mine.is_empty() || other.filters.is_empty() {
                return Err(ApiError::new(
                    400,
                    10099,
                    "multiple non-filtered consumers not allowed on workqueue stream",
                ));
            }
            if mine.iter().any(|a| {
                other
                    .filters
                    .iter()
                    .any(|b| subjects_overlap(a.as_str(), b.as_str()))
            }) {
                return Err(ApiError::new(
                    400,
                    10100,
                    "filtered consumer not unique on workqueue stream",
                ));
            }
        }
        Ok(())
    }

    /// Moves consumer `name` (a mirror's or source's hold, `origin_hold`) past `seqs`, the
    /// messages its copy read (they match its filter) and stored: they count as delivered
    /// and acknowledged, so the stream's retention lets them go (a workqueue at once,
    /// interest once its other consumers are done too).
    pub fn release_held(&mut self, name: &str, seqs: &[u64], now_ns: u64) {
        let (Some(&first), Some(&upto)) = (seqs.first(), seqs.last()) else {
            return;
        };
        let Some(consumer) = self.consumers.get_mut(name) else {
            return;
        };
        if upto < consumer.next_seq {
            return;
        }
        // What the copy read before this batch but the hold never passed (the copy stored
        // it and the server stopped before the hold was persisted) is found in the log.
        let mut out = Vec::new();
        for seq in consumer.next_seq..first {
            let Ok(Some(msg)) = self.log.get(seq) else {
                continue;
            };
            if consumer.matches(&msg.subject) {
                out.push(Action::Consumed(seq));
            }
        }
        let fresh = seqs.iter().filter(|seq| **seq >= consumer.next_seq);
        out.extend(fresh.map(|seq| Action::Consumed(*seq)));
        consumer.release_to(upto, &self.log, now_ns);
        self.apply_retention(&mut out);
    }

    /// Refuses a stream update whose changed consumer limits are below what an existing
    /// consumer already has, naming those consumers (nats-server, stream.go, `update`: a
    /// limit left unchanged or unset is not checked).
    pub fn check_consumer_limits(
        &self,
        old: &StreamConfig,
        new: &StreamConfig,
    ) -> Result<(), ApiError> {
        let changed = |old: Option<i64>, new: Option<i64>| {
            new.filter(|n| *n > 0 && Some(*n) != old.filter(|o| *o > 0))
        };
        let (old_limits, new_limits) = (&old.consumer_limits, &new.consumer_limits);
        let threshold = changed(old_limits.inactive_threshold, new_limits.inactive_threshold);
        let ack_pending = changed(old_limits.max_ack_pending, new_limits.max_ack_pending);
        if threshold.is_none() && ack_pending.is_none() {
            return Ok(());
        }
        let violating: Vec<&str> = self
            .consumers
            .iter()
            .filter(|(_, c)| {
                threshold.is_some_and(|t| c.config.inactive_threshold > t)
                    || ack_pending.is_some_and(|m| c.config.max_ack_pending > m)
            })
            .map(|(name, _)| name.as_str())
            .collect();
        if violating.is_empty() {
            return Ok(());
        }
        Err(ApiError::new(
            500,
            10069,
            format!(
                "change to limits violates consumers: {}",
                violating.join(", ")
            ),
        ))
    }

    /// Adds (or replaces, for an update) a consumer.
    pub fn insert_consumer(&mut self, consumer: Consumer) {
        self.consumers.insert(consumer.name.clone(), consumer);
    }

    /// Removes a consumer; its waiting pull requests are told.
    pub fn remove_consumer(&mut self, name: &str, out: &mut Vec<Action>) -> Option<Consumer> {
        let mut consumer = self.consumers.remove(name)?;
        consumer.on_delete(out);
        Some(consumer)
    }

    /// Marks each changed consumer that `mine` picks as written, and returns the states of
    /// those kept across restarts (a replicated consumer always is), for the caller to
    /// write or propose.
    pub fn take_changed_states(
        &mut self,
        mine: impl Fn(&ConsumerConfig) -> bool,
    ) -> Vec<(String, crate::meta::pb::ConsumerState)> {
        let mut states = Vec::new();
        for (name, c) in self.consumers.iter_mut() {
            if !c.dirty || !mine(&c.config) {
                continue;
            }
            c.dirty = false;
            if c.config.is_kept_across_restarts() {
                states.push((name.clone(), c.state_pb()));
            }
        }
        states
    }

    /// Takes a consumer out of the stream without ending it (its state lives on elsewhere:
    /// a replicated consumer when this server stops leading its stream).
    pub fn take_consumer(&mut self, name: &str) -> Option<Consumer> {
        self.consumers.remove(name)
    }

    /// The server is stopping: every consumer's waiting pull requests are told.
    pub fn shutdown_consumers(&mut self, out: &mut Vec<Action>) {
        for c in self.consumers.values_mut() {
            c.on_shutdown(out);
        }
    }

    /// Drops every consumer's pull requests whose reply subject has lost its interest; run
    /// before a round can deliver to them.
    pub fn drop_abandoned_requests(&mut self, has_interest: &dyn Fn(&[u8]) -> bool) {
        for c in self
            .consumers
            .values_mut()
            .filter(|c| !c.waiting.is_empty())
        {
            c.drop_abandoned_requests(has_interest);
        }
    }

    /// A pull request for consumer `name`.
    pub fn consumer_pull(
        &mut self,
        name: &str,
        payload: &[u8],
        reply: bytes::Bytes,
        now_ns: u64,
        out: &mut Vec<Action>,
    ) {
        if let Some(c) = self.consumers.get_mut(name) {
            c.on_pull(payload, reply, &self.log, now_ns, out);
        }
        self.apply_retention(out);
    }

    /// An ack for consumer `name`, for the message its ack subject names by stream sequence
    /// `seq`, consumer sequence `cseq` and timestamp `ts_ns`.
    #[allow(clippy::too_many_arguments)]
    pub fn consumer_ack(
        &mut self,
        name: &str,
        kind: &AckKind,
        seq: u64,
        cseq: u64,
        ts_ns: u64,
        now_ns: u64,
        out: &mut Vec<Action>,
    ) {
        if let Some(c) = self.consumers.get_mut(name) {
            c.on_client_ack(kind, seq, cseq, ts_ns, &self.log, now_ns, out);
        }
        self.apply_retention(out);
    }

    /// Delivers whatever consumer `name` may send now (after acks freed room under
    /// max_ack_pending, or nak'd messages became due).
    pub fn pump_consumer(
        &mut self,
        name: &str,
        now_ns: u64,
        interest: &dyn Fn(&Consumer) -> bool,
        out: &mut Vec<Action>,
    ) {
        if let Some(c) = self.consumers.get_mut(name) {
            let mode = delivery_mode(c, interest);
            c.pump(&self.log, now_ns, mode, out);
        }
        self.apply_retention(out);
    }

    /// A flow-control response for a push consumer.
    pub fn consumer_flow_control(
        &mut self,
        name: &str,
        subject: &str,
        now_ns: u64,
        interest: bool,
        out: &mut Vec<Action>,
    ) {
        if let Some(c) = self.consumers.get_mut(name) {
            c.on_flow_control(subject, &self.log, now_ns, interest, out);
        }
        self.apply_retention(out);
    }

    /// After appends: keep counts exact, and deliver to whoever is waiting. `interest` says
    /// whether a push consumer's deliver subject has a subscriber.
    pub fn after_append(
        &mut self,
        appended: &[(u64, &str)],
        removed_any: bool,
        now_ns: u64,
        interest: &dyn Fn(&Consumer) -> bool,
        out: &mut Vec<Action>,
    ) {
        if self.config().retention == Retention::Interest {
            // With no consumer interested in a subject, nats-server keeps nothing but the sequence.
            for (seq, subject) in appended {
                let wanted = self.consumers.values().any(|c| {
                    c.filters.is_empty()
                        || c.filters.iter().any(|f| {
                            crate::protocol::subject::subject_matches(f.as_str(), *subject)
                        })
                });
                if !wanted && !self.replicated_interest_in(subject) {
                    let _ = self.log.delete(*seq);
                }
            }
        }
        for c in self.consumers.values_mut() {
            c.on_appended(appended, removed_any);
            let mode = delivery_mode(c, interest);
            c.pump(&self.log, now_ns, mode, out);
        }
        self.apply_retention(out);
    }

    /// Purges per `request` (the stream purge API) and tells the consumers.
    pub fn purge(&mut self, request: &PurgeRequest) -> crate::store::Result<u64> {
        let purged = self.log.purge(request)?;
        if purged > 0 {
            self.after_removal();
        }
        Ok(purged)
    }

    /// Deletes message `seq` (the message delete API) and tells the consumers.
    pub fn delete_msg(&mut self, seq: u64) -> crate::store::Result<bool> {
        let removed = self.log.delete(seq)?;
        if removed {
            self.after_removal();
        }
        Ok(removed)
    }

    /// Messages left the stream by other means (purge, delete, expiry).
    pub fn after_removal(&mut self) {
        for c in self.consumers.values_mut() {
            c.on_removed(&self.log);
        }
    }

    /// Clock tick for every consumer; returns the names of consumers inactive past their
    /// threshold (the caller deletes them).
    pub fn tick_consumers(
        &mut self,
        now_ns: u64,
        interest: &dyn Fn(&Consumer) -> bool,
        out: &mut Vec<Action>,
    ) -> Vec<String> {
        let mut expired = Vec::new();
        for (name, c) in self.consumers.iter_mut() {
            let mode = delivery_mode(c, interest);
            if c.tick(&self.log, now_ns, mode, out) {
                expired.push(name.clone());
            }
        }
        self.apply_retention(out);
        expired
    }

    /// Removes consumed messages under workqueue and interest retention.
    fn apply_retention(&mut self, out: &mut Vec<Action>) {
        let retention = self.config().retention;
        if retention == Retention::Limits {
            out.retain(|a| !matches!(a, Action::Consumed(_)));
            return;
        }
        let consumed: Vec<u64> = out
            .iter()
            .filter_map(|a| {
                if let Action::Consumed(s) = a {
                    Some(*s)
                } else {
                    None
                }
            })
            .collect();
        out.retain(|a| !matches!(a, Action::Consumed(_)));
        let consumed: Vec<u64> = consumed
            .into_iter()
            .filter(|seq| match retention {
                Retention::WorkQueue => true,
                Retention::Interest => self.all_interested_done(*seq),
                Retention::Limits => false,
            })
            .collect();
        // A replica removes them when its group's entry says so (`replica_consumers`).
        if self.defer_removals(&consumed) {
            return;
        }
        let mut removed = false;
        for seq in consumed {
            removed |= self.log.delete(seq).unwrap_or(false);
        }
        if removed {
            for c in self.consumers.values_mut() {
                c.on_removed(&self.log);
            }
        }
    }

    /// Whether every consumer whose filter matches message `seq` is done with it.
    fn all_interested_done(&self, seq: u64) -> bool {
        let Ok(Some(msg)) = self.log.get(seq) else {
            return false;
        };
        self.consumers.values().all(|c| {
            !c.matches(&msg.subject)
                || (seq < c.next_seq
                    && !c.pending.contains_key(&seq)
                    && !c.skip_list.contains(&seq))
        })
    }
}

fn delivery_mode(c: &Consumer, interest: &dyn Fn(&Consumer) -> bool) -> Delivery {
    if c.config.is_pull() {
        Delivery::Pull
    } else {
        Delivery::Push {
            interest: interest(c),
        }
    }
}
