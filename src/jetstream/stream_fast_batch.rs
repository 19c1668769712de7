//! Fast-ingest batch publish (nats-server 2.14, API level 4): a stream with `allow_batched`
//! stores each message of a batch as it arrives (nothing is atomic) and talks to the publisher
//! on the batch's reply subject, `<prefix>.<id>.<flow>.<gap>.<seq>.<op>.$FI`, so the
//! publisher can keep many messages in flight without waiting for an ack per message.
//! Facts: `docs/atomic-batch-facts.md` §7.
//!
//! The publisher hears, on that reply subject: a flow ack `{"type":"ack","seq","msgs"}` when
//! the stored part of the batch reaches the next multiple of `msgs` (the first message gets
//! one with `seq` 0 at once); `{"type":"gap"}` when a batch sequence was skipped;
//! `{"type":"err"}` when a message failed its checks; and at the end the PubAck naming the
//! last stored sequence and how many batch sequences were persisted. In `fail` mode a gap or
//! an error ends the batch; in `ok` mode it goes on. `msgs` starts at the client's `flow`
//! (at most 500) when the batch is the stream's only one, else at 1, and moves by doubling or
//! halving towards `min(flow, 500 / batches on the stream)`.
//!
//! Everything a round stores is synced before the actor sends these replies, so a flow ack
//! or a PubAck never names a message that is not durable.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;

use super::api_level::{required_level_error, required_level_unmet, REQUIRED_API_LEVEL_HEADER};
use super::api_types::{json_string, PubAck};
use super::error::ApiError;
use super::stream::Stream;
use super::stream_batch::{BATCH_TIMEOUT, MAX_BATCH_ID_BYTES};
use crate::protocol::headers::without_header;
use crate::protocol::Publish;

/// What ends a fast batch's reply subject.
pub const FAST_BATCH_SUFFIX: &[u8] = b".$FI";
/// Fast batches open at once on one stream, and on the whole server (nats-server's defaults).
pub const MAX_FAST_INFLIGHT_PER_STREAM: usize = 1000;
pub const MAX_FAST_INFLIGHT_TOTAL: usize = 50_000;
/// The flow a publisher gets when it asks for none (`flow` ≤ 0).
const DEFAULT_FLOW: u16 = 10;
/// The most messages between two flow acks, shared by a stream's batches.
const MAX_ACK_MESSAGES: u16 = 500;

/// Fast batches open on every stream of this process, for `MAX_FAST_INFLIGHT_TOTAL`.
static INFLIGHT_TOTAL: AtomicUsize = AtomicUsize::new(0);

/// What the reply subject of a fast batch message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FastOp {
    pub id: String,
    /// Batch sequence, from 1.
    pub seq: u64,
    /// The most messages the publisher lets go between flow acks.
    pub flow: u16,
    pub gap_ok: bool,
    pub ping: bool,
    /// Op 2 (store, then commit) or 3 (end of batch: commit without storing).
    pub commit: bool,
    pub eob: bool,
}

/// Reads a fast batch reply subject: `None` when `reply` is not one (no `.$FI` suffix),
/// `Some(None)` when it has the suffix but not the pattern (10206).
pub fn parse_reply(reply: &[u8]) -> Option<Option<FastOp>> {
    let body = reply.strip_suffix(FAST_BATCH_SUFFIX)?;
    Some(parse_tokens(body))
}

fn parse_tokens(body: &[u8]) -> Option<FastOp> {
    let text = std::str::from_utf8(body).ok()?;
    // Read from the right: the prefix may have any number of tokens, but at least one.
    let mut tokens = text.rsplitn(6, '.');
    let op: u8 = tokens.next()?.parse().ok()?;
    let seq: u64 = tokens.next()?.parse().ok()?;
    let gap = tokens.next()?;
    let flow = tokens.next()?;
    let id = tokens.next()?;
    tokens.next()?;
    if op > 4 || seq == 0 || seq == u64::MAX {
        return None;
    }
    let eob = op == 3;
    if (op == 0 && seq != 1) || (op == 1 && seq <= 1) || (eob && seq == 1) {
        return None;
    }
    let gap_ok = match gap {
        "ok" => true,
        "fail" => false,
        _ => return None,
    };
    // nats-server reads a flow that is not a number as 0, and 0 as its default.
    let flow = match flow.parse::<i64>().unwrap_or(0) {
        f if f <= 0 => DEFAULT_FLOW,
        f => f.min(i64::from(u16::MAX)) as u16,
    };
    Some(FastOp {
        id: id.to_owned(),
        seq,
        flow,
        gap_ok,
        ping: op == 4,
        commit: op == 2 || eob,
        eob,
    })
}

/// One open fast batch. Batch sequences: `lseq` is the highest taken in, `pseq` the highest
/// persisted, `fseq` the one the last flow ack named (`fseq <= pseq <= lseq`).
struct FastBatch {
    lseq: u64,
    pseq: u64,
    fseq: u64,
    /// The stream sequence of the batch's last stored message.
    sseq: u64,
    /// Messages taken in and not yet stored.
    pending: u32,
    ack_messages: u16,
    max_ack_messages: u16,
    gap_ok: bool,
    /// Ending: the PubAck goes out once `pseq` reaches `lseq`.
    commit: bool,
    deadline_ns: u64,
}

/// The fast batches a stream has open.
#[derive(Default)]
pub struct FastBatches {
    open: HashMap<String, FastBatch>,
}

impl FastBatches {
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    pub fn next_deadline_ns(&self) -> Option<u64> {
        self.open.values().map(|b| b.deadline_ns).min()
    }

    /// Forgets the batches that heard nothing for `BATCH_TIMEOUT` (nats-server sends nothing).
    pub fn expire(&mut self, now_ns: u64) {
        let before = self.open.len();
        self.open.retain(|_, b| b.deadline_ns > now_ns);
        INFLIGHT_TOTAL.fetch_sub(before - self.open.len(), Ordering::Relaxed);
    }

    pub fn clear(&mut self) {
        INFLIGHT_TOTAL.fetch_sub(self.open.len(), Ordering::Relaxed);
        self.open.clear();
    }

    fn remove(&mut self, id: &str) {
        if self.open.remove(id).is_some() {
            INFLIGHT_TOTAL.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Marks batch `id` as ending; returns its PubAck when everything taken in is stored.
    fn commit(&mut self, id: &str, stream: &str) -> Option<Bytes> {
        let b = self.open.get_mut(id)?;
        b.commit = true;
        if b.lseq != b.pseq {
            return None;
        }
        let ack = final_ack(stream, b.sseq, id, b.lseq);
        self.remove(id);
        Some(ack)
    }

    /// The flow ack owed once the persisted part passed the next step, with `msgs` moved
    /// towards this batch's share of the stream.
    fn flow_control(&mut self, id: &str) -> Option<Bytes> {
        let share = (MAX_ACK_MESSAGES as usize / self.open.len().max(1)).max(1) as u16;
        let b = self.open.get_mut(id)?;
        let step = u64::from(b.ack_messages.max(1));
        if b.pseq < b.fseq + step {
            return None;
        }
        b.fseq += (b.pseq - b.fseq) / step * step;
        let target = share.min(b.max_ack_messages);
        if b.ack_messages < target {
            b.ack_messages = b.ack_messages.saturating_mul(2).min(target);
        } else if b.ack_messages > target {
            b.ack_messages = (b.ack_messages / 2).max(target);
        }
        Some(flow_ack(b.fseq, b.ack_messages))
    }
}

impl Drop for FastBatches {
    fn drop(&mut self) {
        self.clear();
    }
}

/// A fast batch message that passed the batch's own checks and goes on to be stored.
#[derive(Debug, Clone)]
pub struct FastRef {
    pub id: String,
    pub seq: u64,
    pub commit: bool,
}

/// What the batch logic decided about a message before the stream's checks.
pub enum FastGate {
    /// Answered (or skipped) without storing.
    Done(PubAck),
    /// To be checked and stored like any publish; `replies` go out first, and `headers`
    /// replace the message's when the server removed one of its own.
    Store {
        fast: FastRef,
        replies: Vec<Bytes>,
        headers: Option<Bytes>,
    },
}

fn flow_ack(seq: u64, msgs: u16) -> Bytes {
    Bytes::from(format!(r#"{{"type":"ack","seq":{seq},"msgs":{msgs}}}"#))
}

fn gap(expected: u64, got: u64) -> Bytes {
    Bytes::from(format!(
        r#"{{"type":"gap","last_seq":{expected},"seq":{got}}}"#
    ))
}

fn final_ack(stream: &str, seq: u64, id: &str, count: u64) -> Bytes {
    let ack = PubAck::Batch {
        seq,
        batch: id.to_owned(),
        count,
    };
    Bytes::from(ack.to_json(stream))
}

fn fast(replies: Vec<Bytes>) -> PubAck {
    PubAck::Fast {
        stored: None,
        replies,
    }
}

fn err(code: u16, err_code: u16, text: &str) -> PubAck {
    PubAck::Failed(ApiError::new(code, err_code, text))
}

impl Stream {
    /// The batch's own checks and bookkeeping for one fast batch message, in nats-server's
    /// order. `op` is `None` when the reply subject has the suffix but not the pattern.
    pub(super) fn fast_gate(&mut self, msg: &Publish, op: Option<FastOp>, now_ns: u64) -> FastGate {
        let config = self.config();
        if config.sealed {
            return FastGate::Done(PubAck::Failed(ApiError::sealed()));
        }
        if config.max_msg_size > 0 && msg.size() as i64 > config.max_msg_size {
            return FastGate::Done(PubAck::Failed(ApiError::message_too_large()));
        }
        if !config.allow_batched {
            return FastGate::Done(err(400, 10205, "batch publish is disabled"));
        }
        let Some(op) = op else {
            return FastGate::Done(err(400, 10206, "batch publish pattern is invalid"));
        };
        if op.id.len() > MAX_BATCH_ID_BYTES {
            return FastGate::Done(err(400, 10207, "batch publish ID is invalid"));
        }
        let stream = config.name.clone();
        let fast_batches = &mut self.batches.fast;
        fast_batches.expire(now_ns);
        if !fast_batches.open.contains_key(&op.id) {
            if op.seq != 1 {
                return FastGate::Done(err(400, 10208, "batch publish ID unknown"));
            }
            if fast_batches.open.len() >= MAX_FAST_INFLIGHT_PER_STREAM
                || INFLIGHT_TOTAL.load(Ordering::Relaxed) >= MAX_FAST_INFLIGHT_TOTAL
            {
                return FastGate::Done(err(429, 10211, "batch publish too many inflight"));
            }
            let alone = fast_batches.open.is_empty();
            INFLIGHT_TOTAL.fetch_add(1, Ordering::Relaxed);
            fast_batches.open.insert(
                op.id.clone(),
                FastBatch {
                    lseq: 0,
                    pseq: 0,
                    fseq: 0,
                    sseq: 0,
                    pending: 0,
                    ack_messages: if alone {
                        op.flow.min(MAX_ACK_MESSAGES)
                    } else {
                        1
                    },
                    max_ack_messages: op.flow,
                    gap_ok: op.gap_ok,
                    commit: false,
                    deadline_ns: 0,
                },
            );
        }
        let mut headers = None;
        if let Some(block) = &msg.headers {
            if required_level_unmet(Some(block)) {
                fast_batches.remove(&op.id);
                return FastGate::Done(PubAck::Failed(required_level_error()));
            }
            if crate::protocol::headers::header_value(block, REQUIRED_API_LEVEL_HEADER).is_some() {
                headers = Some(without_header(block, REQUIRED_API_LEVEL_HEADER));
            }
        }
        let Some(b) = fast_batches.open.get_mut(&op.id) else {
            return FastGate::Done(fast(Vec::new()));
        };
        b.deadline_ns = now_ns.saturating_add(BATCH_TIMEOUT.as_nanos() as u64);
        let mut replies = Vec::new();
        if op.ping {
            let mut resend = true;
            if op.seq > b.lseq {
                replies.push(gap(b.lseq + 1, op.seq + 1));
                if b.gap_ok {
                    b.lseq = op.seq;
                    if b.pending == 0 {
                        b.pseq = b.lseq;
                    }
                    if let Some(ack) = fast_batches.flow_control(&op.id) {
                        replies.push(ack);
                        resend = false;
                    }
                } else {
                    replies.extend(fast_batches.commit(&op.id, &stream));
                    resend = !replies.iter().any(|r| r.starts_with(b"{\"stream\""));
                }
            }
            if resend {
                if let Some(b) = fast_batches.open.get(&op.id) {
                    replies.push(flow_ack(b.fseq, b.ack_messages));
                }
            }
            return FastGate::Done(fast(replies));
        }
        if b.commit {
            // Ending after an error or gap: the publisher waits for the PubAck.
            return FastGate::Done(fast(replies));
        }
        b.lseq += 1;
        if b.lseq != op.seq {
            if op.seq > b.lseq {
                replies.push(gap(b.lseq, op.seq));
            }
            if b.gap_ok && op.seq > b.lseq {
                b.lseq = op.seq;
            } else {
                b.lseq -= 1;
                replies.extend(fast_batches.commit(&op.id, &stream));
                return FastGate::Done(fast(replies));
            }
        }
        if op.commit {
            if op.eob {
                b.lseq -= 1;
                if b.pending == 0 {
                    b.pseq = b.lseq;
                }
            }
            let ack = fast_batches.commit(&op.id, &stream);
            if op.eob {
                replies.extend(ack);
                return FastGate::Done(fast(replies));
            }
        }
        if op.seq == 1 && !op.commit {
            if let Some(b) = fast_batches.open.get(&op.id) {
                replies.push(flow_ack(0, b.ack_messages));
            }
        }
        if let Some(b) = fast_batches.open.get_mut(&op.id) {
            b.pending += 1;
        }
        FastGate::Store {
            fast: FastRef {
                id: op.id,
                seq: op.seq,
                commit: op.commit,
            },
            replies,
            headers,
        }
    }

    /// A fast batch message stored at `seq`: the flow ack or PubAck it brings about.
    pub(super) fn fast_stored(&mut self, f: &FastRef, seq: u64, prior: Option<PubAck>) -> PubAck {
        let mut replies = prior_replies(prior);
        let stream = self.config().name.clone();
        let fast_batches = &mut self.batches.fast;
        if let Some(b) = fast_batches.open.get_mut(&f.id) {
            b.pending = b.pending.saturating_sub(1);
            b.sseq = seq;
            b.pseq = if b.pending == 0 { b.lseq } else { f.seq };
            if b.commit && b.lseq == b.pseq {
                let count = b.lseq;
                fast_batches.remove(&f.id);
                replies.push(final_ack(&stream, seq, &f.id, count));
            } else {
                replies.extend(fast_batches.flow_control(&f.id));
            }
        }
        PubAck::Fast {
            stored: Some(seq),
            replies,
        }
    }

    /// A fast batch message that failed the stream's checks (`outcome` is the `Failed` or
    /// `Duplicate` a plain publish would get): what the publisher hears instead.
    pub(super) fn fast_refused(
        &mut self,
        f: &FastRef,
        outcome: PubAck,
        prior: Option<PubAck>,
    ) -> PubAck {
        let mut replies = prior_replies(prior);
        let stream = self.config().name.clone();
        let fast_batches = &mut self.batches.fast;
        let Some(b) = fast_batches.open.get_mut(&f.id) else {
            return fast(replies);
        };
        b.pending = b.pending.saturating_sub(1);
        let duplicate = match &outcome {
            PubAck::Duplicate { seq } => Some(*seq),
            _ => None,
        };
        if duplicate.is_some() {
            if b.pending == 0 {
                b.pseq = f.seq;
                replies.extend(fast_batches.flow_control(&f.id));
            }
            if !f.commit {
                return fast(replies);
            }
        }
        let Some(b) = fast_batches.open.get_mut(&f.id) else {
            return fast(replies);
        };
        if !b.gap_ok && b.lseq == 1 {
            // A batch whose first message fails is answered as a plain publish would be.
            fast_batches.remove(&f.id);
            replies.push(match (duplicate, outcome) {
                (Some(seq), _) => Bytes::from(format!(
                    r#"{{"stream":{},"seq":{seq},"duplicate": true,"batch":{},"count":{}}}"#,
                    json_string(&stream),
                    json_string(&f.id),
                    f.seq
                )),
                (None, outcome) => Bytes::from(outcome.to_json(&stream)),
            });
            return fast(replies);
        }
        if let (None, PubAck::Failed(error)) = (duplicate, &outcome) {
            let error = serde_json::to_string(error).unwrap_or_default();
            replies.push(Bytes::from(format!(
                r#"{{"type":"err","seq":{},"error":{error}}}"#,
                f.seq
            )));
        }
        if b.gap_ok && !f.commit {
            return fast(replies);
        }
        if duplicate.is_none() {
            b.lseq -= 1;
            if b.pending == 0 {
                b.pseq = b.lseq;
            }
        }
        replies.extend(fast_batches.commit(&f.id, &stream));
        fast(replies)
    }
}

impl Stream {
    /// The outcome of a refused (or duplicate) publish: as is, or as its fast batch reports
    /// it when it is part of one.
    pub(super) fn refused(
        &mut self,
        fast: &Option<FastRef>,
        outcome: PubAck,
        prior: &mut Option<PubAck>,
    ) -> PubAck {
        match fast {
            Some(f) => self.fast_refused(f, outcome, prior.take()),
            None => outcome,
        }
    }
}

fn prior_replies(prior: Option<PubAck>) -> Vec<Bytes> {
    match prior {
        Some(PubAck::Fast { replies, .. }) => replies,
        _ => Vec::new(),
    }
}

#[cfg(test)]
#[path = "stream_fast_batch_tests.rs"]
mod tests;
