//! Atomic batch publish (ADR-50): a stream with `allow_atomic` takes publishes carrying
//! `Nats-Batch-Id` and `Nats-Batch-Sequence` into staging, and stores them all together when
//! one carries `Nats-Batch-Commit`, or none of them. Facts: `docs/atomic-batch-facts.md`.
//!
//! Staging is in memory: a batch not committed when the server stops is gone, as in
//! nats-server. The commit checks every staged message against the stream as it was before
//! the batch, then appends them with one write, and the actor acknowledges only after the
//! sync, so the publisher never hears of a batch that is not durable whole. A process killed
//! in the middle of that write can leave the batch's first records on disk without its last;
//! `roll_back_torn_batch` finds such a tail when the stream opens (the last stored message
//! has a batch id and no commit header) and deletes it. nats-server rolls such a tail forward
//! from its staging files instead; both leave the batch all or nothing.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde_json::json;

use super::advisories::event;
use super::api_level::{required_level_unmet, REQUIRED_API_LEVEL_HEADER};
use super::api_types::PubAck;
use super::error::ApiError;
use super::stream::{store_error, Stream};
use super::stream_counters::{CounterBase, CounterChange};
use super::stream_expectations::Expectations;
use crate::protocol::headers::{extend_block, header_value, without_header};
use crate::protocol::subject::subject_matches;
use crate::protocol::Publish;
use crate::store::NewMessage;

pub const BATCH_ID: &[u8] = b"Nats-Batch-Id";
pub const BATCH_SEQUENCE: &[u8] = b"Nats-Batch-Sequence";
pub const BATCH_COMMIT: &[u8] = b"Nats-Batch-Commit";

/// The longest batch id, in bytes.
pub const MAX_BATCH_ID_BYTES: usize = 64;
/// The most messages one batch may store (an end-of-batch marker is not one of them).
pub const MAX_BATCH_MSGS: u64 = 1000;
/// Batches open at once on one stream, and on the whole server.
pub const MAX_INFLIGHT_PER_STREAM: usize = 50;
pub const MAX_INFLIGHT_TOTAL: usize = 1000;
/// A batch that hears nothing for this long is abandoned.
pub const BATCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Batches open on every stream of this process, for `MAX_INFLIGHT_TOTAL`.
static INFLIGHT_TOTAL: AtomicUsize = AtomicUsize::new(0);

/// The batch id of a publish, when it is a batch message: an empty id is a plain publish.
pub fn batch_id(headers: Option<&[u8]>) -> Option<String> {
    let value = header_value(headers?, BATCH_ID)?;
    (!value.is_empty()).then(|| String::from_utf8_lossy(value).into_owned())
}

/// One batch being staged.
struct OpenBatch {
    msgs: Vec<Publish>,
    /// When it is abandoned unless another message comes (stream clock, ns).
    deadline_ns: u64,
}

/// The batches a stream is staging.
#[derive(Default)]
pub struct Batches {
    open: HashMap<String, OpenBatch>,
    /// Fast-ingest batches (see `stream_fast_batch`).
    pub(super) fast: super::stream_fast_batch::FastBatches,
    /// Messages the commits of this round stored, for the consumers.
    stored: Vec<(u64, String)>,
}

impl Batches {
    pub fn is_empty(&self) -> bool {
        self.open.is_empty() && self.fast.is_empty()
    }

    pub fn next_deadline_ns(&self) -> Option<u64> {
        let atomic = self.open.values().map(|b| b.deadline_ns).min();
        atomic.into_iter().chain(self.fast.next_deadline_ns()).min()
    }

    /// As nats-server: a stream that stops allowing a kind of batch drops those in flight,
    /// and refuses a later message of one.
    pub fn on_update(&mut self, config: &super::stream_config::StreamConfig) {
        if !config.allow_atomic {
            self.clear();
        }
        if !config.allow_batched {
            self.fast.clear();
        }
    }

    /// Drops every open batch (the stream stops allowing them).
    pub fn clear(&mut self) {
        INFLIGHT_TOTAL.fetch_sub(self.open.len(), Ordering::Relaxed);
        self.open.clear();
    }

    fn remove(&mut self, id: &str) -> Option<OpenBatch> {
        let batch = self.open.remove(id);
        if batch.is_some() {
            INFLIGHT_TOTAL.fetch_sub(1, Ordering::Relaxed);
        }
        batch
    }

    fn insert(&mut self, id: String, batch: OpenBatch) {
        if self.open.insert(id, batch).is_none() {
            INFLIGHT_TOTAL.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Batches {
    fn drop(&mut self) {
        self.clear();
    }
}

/// What a batch message's `Nats-Batch-Commit` asks for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Commit {
    No,
    /// `1`: store this message, then commit.
    Store,
    /// `eob`: commit without storing this message.
    EndOfBatch,
}

fn err(code: u16, err_code: u16, text: &str) -> ApiError {
    ApiError::new(code, err_code, text)
}

fn incomplete() -> ApiError {
    err(400, 10176, "atomic publish batch is incomplete")
}

/// Why a batch was abandoned, as the advisory names it.
#[derive(Clone, Copy)]
enum Abandoned {
    Timeout,
    Large,
    Incomplete,
    Unsupported,
}

impl Abandoned {
    fn reason(self) -> &'static str {
        match self {
            Abandoned::Timeout => "timeout",
            Abandoned::Large => "large",
            Abandoned::Incomplete => "incomplete",
            Abandoned::Unsupported => "unsupported",
        }
    }
}

impl Stream {
    /// Takes one batch message: stages it, or commits the batch, or refuses it.
    pub(super) fn batch_publish(&mut self, msg: &Publish, id: &str, now_ns: u64) -> PubAck {
        match self.stage(msg, id, now_ns) {
            Ok(Some((msgs, eob))) => self.commit(id, msgs, eob, now_ns),
            Ok(None) => PubAck::Staged,
            Err(e) => PubAck::Failed(e),
        }
    }

    /// Stages `msg`; when it ends the batch, returns the batch's messages to store and
    /// whether it ended with an end-of-batch marker. The checks run in nats-server's order.
    fn stage(
        &mut self,
        msg: &Publish,
        id: &str,
        now_ns: u64,
    ) -> Result<Option<(Vec<Publish>, bool)>, ApiError> {
        if !self.config().allow_atomic {
            return Err(err(400, 10174, "atomic publish is disabled"));
        }
        let headers = msg.headers.as_deref().unwrap_or_default();
        if required_level_unmet(Some(headers)) {
            self.abandon(id, Abandoned::Unsupported, now_ns);
            return Err(super::api_level::required_level_error());
        }
        if id.len() > MAX_BATCH_ID_BYTES {
            return Err(err(400, 10179, "atomic publish batch ID is invalid"));
        }
        let seq = header_value(headers, BATCH_SEQUENCE)
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| err(400, 10175, "atomic publish sequence is missing"))?;
        let commit = match header_value(headers, BATCH_COMMIT) {
            None => Commit::No,
            Some(b"1") => Commit::Store,
            Some(b"eob") => Commit::EndOfBatch,
            Some(_) => {
                self.batches.remove(id);
                return Err(err(400, 10200, "atomic publish batch commit is invalid"));
            }
        };
        let stored_count = if commit == Commit::EndOfBatch {
            seq.saturating_sub(1)
        } else {
            seq
        };
        if stored_count > MAX_BATCH_MSGS {
            self.abandon(id, Abandoned::Large, now_ns);
            return Err(err(
                400,
                10199,
                &format!("atomic publish batch is too large: {MAX_BATCH_MSGS}"),
            ));
        }
        let staged = self.batches.open.get(id).map_or(0, |b| b.msgs.len() as u64);
        if seq != staged + 1 || (commit == Commit::EndOfBatch && seq < 2) {
            if staged > 0 {
                self.abandon(id, Abandoned::Incomplete, now_ns);
            }
            return Err(incomplete());
        }
        if staged == 0 && commit == Commit::No {
            let here = self.batches.open.len();
            if here >= MAX_INFLIGHT_PER_STREAM
                || INFLIGHT_TOTAL.load(Ordering::Relaxed) >= MAX_INFLIGHT_TOTAL
            {
                return Err(err(429, 10210, "atomic publish too many inflight"));
            }
        }
        self.check_stageable(msg)?;
        let kept = Publish {
            subject: msg.subject.clone(),
            reply: None,
            headers: Some(without_header(headers, REQUIRED_API_LEVEL_HEADER)),
            payload: msg.payload.clone(),
        };
        let mut batch = self.batches.remove(id).unwrap_or(OpenBatch {
            msgs: Vec::new(),
            deadline_ns: 0,
        });
        match commit {
            Commit::No => {
                batch.msgs.push(kept);
                batch.deadline_ns = now_ns.saturating_add(BATCH_TIMEOUT.as_nanos() as u64);
                self.batches.insert(id.to_owned(), batch);
                Ok(None)
            }
            Commit::Store => {
                batch.msgs.push(kept);
                Ok(Some((batch.msgs, false)))
            }
            Commit::EndOfBatch => Ok(Some((batch.msgs, true))),
        }
    }

    /// What nats-server refuses before staging: the message is not staged, so the batch's
    /// next message finds a gap.
    fn check_stageable(&self, msg: &Publish) -> Result<(), ApiError> {
        if self.config().sealed {
            return Err(ApiError::sealed());
        }
        let max = self.config().max_msg_size;
        if max > 0 && msg.size() as i64 > max {
            return Err(ApiError::message_too_large());
        }
        if msg
            .headers
            .as_ref()
            .is_some_and(|h| h.len() > super::stream::MAX_HEADER_BYTES)
        {
            return Err(ApiError::header_too_large());
        }
        Ok(())
    }

    /// Drops batch `id` if it is open and raises the advisory saying why.
    fn abandon(&mut self, id: &str, why: Abandoned, now_ns: u64) {
        if self.batches.remove(id).is_some() {
            self.raise_abandoned(id, why, now_ns);
        }
    }

    fn raise_abandoned(&mut self, id: &str, why: Abandoned, now_ns: u64) {
        let stream = self.config().name.clone();
        self.advisories.push(event(
            format!("$JS.EVENT.ADVISORY.STREAM.BATCH_ABANDONED.{stream}"),
            "io.nats.jetstream.advisory.v1.stream_batch_abandoned",
            now_ns,
            json!({"stream": stream, "batch": id, "reason": why.reason()}),
        ));
    }

    /// Abandons the batches that heard nothing for `BATCH_TIMEOUT`.
    pub(super) fn expire_batches(&mut self, now_ns: u64) {
        self.batches.fast.expire(now_ns);
        let due: Vec<String> = self
            .batches
            .open
            .iter()
            .filter(|(_, b)| b.deadline_ns <= now_ns)
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            self.abandon(&id, Abandoned::Timeout, now_ns);
        }
    }

    /// What the commits of the last round stored: `(seq, subject)` for the consumers.
    pub fn take_batch_stored(&mut self) -> Vec<(u64, String)> {
        std::mem::take(&mut self.batches.stored)
    }

    /// The advisories raised since the last call.
    pub fn take_advisories(&mut self) -> Vec<super::consumer::Action> {
        std::mem::take(&mut self.advisories)
    }

    /// Checks the whole batch, then stores it with one append; the ack names the last
    /// message and how many were stored. Any refusal refuses the whole batch.
    fn commit(&mut self, id: &str, mut msgs: Vec<Publish>, eob: bool, now_ns: u64) -> PubAck {
        if eob {
            // The last stored message carries the commit the marker made.
            if let Some(last) = msgs.last_mut() {
                let mut block = BytesMut::new();
                let stored = last.headers.clone().unwrap_or_default();
                extend_block(&mut block, &stored, &[("Nats-Batch-Commit", b"1")]);
                last.headers = Some(block.freeze());
            }
        }
        let plan = match self.plan_commit(&msgs) {
            Ok(plan) => plan,
            Err(e) => return PubAck::Failed(e),
        };
        let messages: Vec<NewMessage> = msgs
            .iter()
            .zip(&plan)
            .map(|(msg, p)| NewMessage {
                subject: p.subject.clone(),
                headers: p
                    .expect
                    .headers
                    .clone()
                    .or_else(|| msg.headers.clone())
                    .unwrap_or_default(),
                payload: p.payload.clone().unwrap_or_else(|| msg.payload.clone()),
                ts_ns: now_ns,
            })
            .collect();
        match self.store_batch(&messages, &plan, now_ns) {
            Ok(last) => PubAck::Batch {
                seq: last,
                batch: id.to_owned(),
                count: messages.len() as u64,
            },
            Err(e) => PubAck::Failed(e),
        }
    }

    /// Checks every message against the stream as it was before the batch and against the
    /// batch's earlier messages, as nats-server does at commit.
    fn plan_commit(&self, msgs: &[Publish]) -> Result<Vec<Planned>, ApiError> {
        let last_seq = self.log.last_seq();
        let mut ids: HashSet<String> = HashSet::new();
        let mut written: Vec<String> = Vec::new();
        let mut totals: HashMap<String, CounterBase> = HashMap::new();
        let mut plan = Vec::with_capacity(msgs.len());
        for (k, msg) in (1u64..).zip(msgs) {
            let mut expect = self.check_stateless(msg)?;
            let subject = String::from_utf8_lossy(&self.stored_subject(&msg.subject)).into_owned();
            if expect.last_msg_id.is_some() {
                return Err(err(
                    400,
                    10177,
                    "atomic publish unsupported header used: Nats-Expected-Last-Msg-Id",
                ));
            }
            if let Some(id) = &expect.msg_id {
                if !ids.insert(id.clone()) || self.dedup.get(id).is_some() {
                    return Err(err(
                        400,
                        10201,
                        "atomic publish batch contains duplicate message id",
                    ));
                }
            }
            if let Some(want) = expect.last_seq {
                let at = last_seq + k - 1;
                if want != at {
                    return Err(ApiError::wrong_last_sequence(at));
                }
                if k > 1 {
                    return Err(err(400, 10164, "wrong last sequence"));
                }
            }
            if let Some(want) = expect.last_subject_seq {
                let about = expect
                    .last_subject_seq_subject
                    .as_deref()
                    .unwrap_or(&subject);
                if written.iter().any(|s| subject_matches(about, s)) {
                    return Err(err(400, 10164, "wrong last sequence"));
                }
                let last = self
                    .log
                    .last_for_subject(about)
                    .map_err(store_error)?
                    .map_or(0, |m| m.seq);
                if last != want {
                    return Err(ApiError::wrong_last_sequence(last));
                }
            }
            match expect.rollup.as_deref() {
                Some("all") if k > 1 => {
                    return Err(ApiError::rollup_failed("batch rollup all invalid"))
                }
                Some("sub") if written.contains(&subject) => {
                    return Err(ApiError::rollup_failed("batch rollup sub invalid"))
                }
                _ => {}
            }
            let payload = match &expect.incr {
                None => None,
                Some(incr) => {
                    let base = match totals.get_mut(&subject) {
                        Some(base) => base,
                        None => totals
                            .entry(subject.clone())
                            .or_insert(self.counter_base(&subject)?),
                    };
                    let given = expect.headers.as_ref().or(msg.headers.as_ref());
                    let counted = base.apply(CounterChange::Local(incr), given);
                    if counted.headers.is_some() {
                        expect.headers = counted.headers;
                    }
                    Some(counted.body)
                }
            };
            written.push(subject.clone());
            plan.push(Planned {
                subject,
                expect,
                payload,
            });
        }
        Ok(plan)
    }

    /// Appends the checked batch and does each stored message's bookkeeping; the last
    /// sequence. Should the log refuse part of it (a `discard: new` limit), the part it
    /// stored is deleted again and the batch refused with the log's reason.
    fn store_batch(
        &mut self,
        messages: &[NewMessage],
        plan: &[Planned],
        now_ns: u64,
    ) -> Result<u64, ApiError> {
        let mut lasts = self.republish_lasts(messages)?;
        let results = self.log.append_batch(messages).map_err(store_error)?;
        let seqs: Vec<u64> = results
            .iter()
            .filter_map(|r| r.as_ref().ok().copied())
            .collect();
        if let Some(Err(rejection)) = results.iter().find(|r| r.is_err()) {
            let refusal = super::stream::rejection_error(*rejection);
            for seq in seqs {
                self.log.delete(seq).map_err(store_error)?;
            }
            return Err(refusal);
        }
        debug_assert_eq!(seqs.len(), messages.len());
        for ((seq, msg), p) in seqs.iter().zip(messages).zip(plan) {
            if let Some(lasts) = &mut lasts {
                self.republish_stored(*seq, msg, lasts);
            }
            if let Some(ttl) = p.expect.ttl {
                self.record_ttl(*seq, now_ns, ttl);
            }
            if let Some(id) = &p.expect.msg_id {
                self.dedup.insert(id.clone(), *seq, now_ns);
            }
            self.last_msg_id = p.expect.msg_id.clone();
            self.schedule_stored(*seq, &msg.subject, &msg.headers, now_ns, now_ns);
            self.batches.stored.push((*seq, msg.subject.clone()));
        }
        for (seq, p) in seqs.iter().zip(plan) {
            if let Some(rollup) = &p.expect.rollup {
                self.roll_up(rollup, p.subject.as_bytes(), *seq)?;
            }
        }
        Ok(seqs.last().copied().unwrap_or(0))
    }

    /// Deletes a batch whose write was cut short: when the last stored message has a batch
    /// id and no commit header, it and the batch's earlier messages before it are removed.
    /// The publisher was never acknowledged (acks follow the sync of the whole batch).
    pub(super) fn roll_back_torn_batch(&mut self) -> Result<(), ApiError> {
        if !self.config().allow_atomic {
            return Ok(());
        }
        let mut seq = self.log.last_seq();
        let Some(last) = self.log.get(seq).map_err(store_error)? else {
            return Ok(());
        };
        let Some(id) = header_value(&last.headers, BATCH_ID).filter(|v| !v.is_empty()) else {
            return Ok(());
        };
        if header_value(&last.headers, BATCH_COMMIT).is_some() {
            return Ok(());
        }
        let id = Bytes::copy_from_slice(id);
        let mut removed = 0u64;
        while let Some(msg) = self.log.get(seq).map_err(store_error)? {
            if header_value(&msg.headers, BATCH_ID) != Some(&id[..]) {
                break;
            }
            self.log.delete(seq).map_err(store_error)?;
            removed += 1;
            let first =
                header_value(&msg.headers, BATCH_SEQUENCE).is_some_and(|v| v.trim_ascii() == b"1");
            if first || seq <= 1 {
                break;
            }
            seq -= 1;
        }
        self.log.sync().map_err(store_error)?;
        tracing::warn!(
            stream = %self.config().name,
            batch = %String::from_utf8_lossy(&id),
            removed,
            "removed the messages of an atomic batch whose write was cut short"
        );
        Ok(())
    }
}

/// One checked message of a batch about to be stored.
struct Planned {
    subject: String,
    expect: Expectations,
    /// A counter's new body, instead of the publish's.
    payload: Option<Bytes>,
}

#[cfg(test)]
#[path = "stream_batch_tests.rs"]
mod tests;
