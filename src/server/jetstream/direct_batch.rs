//! Batched direct gets (ADR-31): `batch` messages from a sequence or time, and `multi_last`,
//! the last message of each of many subjects, each ending in a `204 EOB` status that says
//! how many are left and where the answer stopped.

use std::collections::BTreeMap;

use super::direct::{message_headers, status_reply, Answer, Status, MALFORMED, NOT_FOUND};
use crate::jetstream::api_types::MsgGetRequest;
use crate::jetstream::time::parse_rfc3339;
use bytes::Bytes;

use crate::store::{StoreError, StoredMessage, StreamStore};

/// What an answer may hold when the request gives no `max_bytes`: nats-server's default
/// `max_pending`.
const DEFAULT_MAX_BYTES: usize = 64 * 1024 * 1024;
/// The most subjects one `multi_last` may match.
const MAX_MULTI_LAST_SUBJECTS: usize = 1024;
const NO_RESULTS: Status = (404, "No Results");
const TOO_MANY_RESULTS: Status = (413, "Too Many Results");
const EOB: Status = (204, "EOB");
/// How many messages one read of a counting or collecting scan takes.
const SCAN_BATCH: usize = 1024;

fn max_bytes(req: &MsgGetRequest) -> usize {
    match req.max_bytes {
        Some(n) if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
        _ => DEFAULT_MAX_BYTES,
    }
}

/// A batched answer's headers: the single get's, then how many are left after this one
/// and the sequence of the message sent before it (0 for the first).
fn batched_headers(stream: &str, msg: &StoredMessage, pending: u64, previous: u64) -> Bytes {
    let (np, prev) = (pending.to_string(), previous.to_string());
    message_headers(
        stream,
        msg,
        &[
            ("Nats-Num-Pending", np.as_bytes()),
            ("Nats-Last-Sequence", prev.as_bytes()),
        ],
    )
}

/// What a message counts against `max_bytes`, as nats-server counts it.
fn size(msg: &StoredMessage) -> usize {
    msg.subject.len() + msg.headers.len() + msg.payload.len()
}

/// Messages at or after `from` matching `filters`.
fn pending_from(log: &StreamStore, from: u64, filters: &[&str]) -> Result<u64, StoreError> {
    if let Some(n) = log.count_from(from, filters) {
        return Ok(n);
    }
    let (mut seq, mut n) = (from, 0u64);
    loop {
        let batch = log.scan(seq, filters, SCAN_BATCH)?;
        let Some(last) = batch.last() else {
            return Ok(n);
        };
        seq = last.seq + 1;
        n += batch.len() as u64;
    }
}

/// `batch` messages from `start_seq` (matching `next_by_subj`), then the EOB.
pub(super) fn batch_get(
    stream: &str,
    log: &StreamStore,
    req: &MsgGetRequest,
    start_seq: u64,
) -> Vec<Answer> {
    let filter = req.next_by_subj.clone().filter(|s| !s.is_empty());
    let filters: Vec<&str> = filter.iter().map(String::as_str).collect();
    let Ok(mut pending) = pending_from(log, start_seq, &filters) else {
        return vec![status_reply(NOT_FOUND, &[])];
    };
    let batch = req.batch.unwrap_or(0);
    let limit = max_bytes(req);
    let (mut out, mut last_seq, mut sent_bytes, mut cursor) = (Vec::new(), 0u64, 0usize, start_seq);
    for i in 0..batch.max(0) {
        let found = log.next_matching(cursor.max(1), &filters);
        let Ok(Some(msg)) = found else {
            if i > 0 {
                break;
            }
            return vec![status_reply(NOT_FOUND, &[])];
        };
        cursor = msg.seq + 1;
        let headers = (!req.no_hdr).then(|| {
            // As in nats-server, only answers with headers count the pending down.
            pending = pending.saturating_sub(1);
            batched_headers(stream, &msg, pending, last_seq)
        });
        last_seq = msg.seq;
        sent_bytes += size(&msg);
        out.push((headers, msg.payload));
        if sent_bytes >= limit {
            break;
        }
    }
    let (np, last) = (pending.to_string(), last_seq.to_string());
    out.push(status_reply(
        EOB,
        &[
            ("Nats-Num-Pending", np.as_bytes()),
            ("Nats-Last-Sequence", last.as_bytes()),
        ],
    ));
    out
}

/// The last message of each subject matching `multi_last`, at or below the ceiling and at
/// or above `seq`, in stream order, then the EOB.
pub(super) fn multi_last_get(stream: &str, log: &StreamStore, req: &MsgGetRequest) -> Vec<Answer> {
    let state_last = log.last_seq();
    let mut up_to = req.up_to_seq.unwrap_or(0);
    if let Some(time) = &req.up_to_time {
        let Ok(ns) = parse_rfc3339(time) else {
            return vec![status_reply(MALFORMED, &[])];
        };
        let Ok(at) = log.seq_at_or_after_time(ns.unwrap_or(0).max(0) as u64) else {
            return vec![status_reply(NOT_FOUND, &[])];
        };
        let first = log.state(false).map(|s| s.first_seq).unwrap_or(0);
        if at <= first {
            return vec![status_reply(NO_RESULTS, &[])];
        }
        up_to = at - 1;
    }
    if up_to == 0 {
        up_to = state_last;
    }
    let filters: Vec<&str> = req
        .multi_last
        .iter()
        .flatten()
        .map(String::as_str)
        .collect();
    let Ok(lasts) = last_per_subject(log, &filters, up_to) else {
        return vec![status_reply(NOT_FOUND, &[])];
    };
    let from = req.seq.unwrap_or(0);
    let mut seqs: Vec<u64> = lasts.into_values().filter(|s| *s >= from).collect();
    if seqs.is_empty() {
        return vec![status_reply(NO_RESULTS, &[])];
    }
    if seqs.len() > MAX_MULTI_LAST_SUBJECTS {
        return vec![status_reply(TOO_MANY_RESULTS, &[])];
    }
    seqs.sort_unstable();
    let limit = max_bytes(req);
    let batch = req.batch.filter(|b| *b > 0).map(|b| b as usize);
    let (mut out, mut last_seq, mut sent_bytes, mut pending) = (Vec::new(), 0u64, 0usize, 0u64);
    for (i, seq) in seqs.iter().enumerate() {
        let Ok(Some(msg)) = log.get(*seq) else {
            return vec![status_reply(NOT_FOUND, &[])];
        };
        pending = (seqs.len() - i - 1) as u64;
        // `no_hdr` means nothing here, as in nats-server.
        let headers = batched_headers(stream, &msg, pending, last_seq);
        last_seq = msg.seq;
        sent_bytes += size(&msg);
        out.push((Some(headers), msg.payload));
        if sent_bytes >= limit || batch.is_some_and(|b| i + 1 >= b) {
            break;
        }
    }
    let (np, last, ceiling) = (pending.to_string(), last_seq.to_string(), up_to.to_string());
    out.push(status_reply(
        EOB,
        &[
            ("Nats-Num-Pending", np.as_bytes()),
            ("Nats-Last-Sequence", last.as_bytes()),
            ("Nats-UpTo-Sequence", ceiling.as_bytes()),
        ],
    ));
    out
}

/// For each subject matching `filters`, its last sequence at or below `up_to`.
fn last_per_subject(
    log: &StreamStore,
    filters: &[&str],
    up_to: u64,
) -> Result<BTreeMap<String, u64>, StoreError> {
    let mut lasts = BTreeMap::new();
    if up_to >= log.last_seq() {
        // Every subject's last message counts: the subject index knows them.
        for filter in filters {
            for subject in log.subject_counts(filter).into_keys() {
                if let Some(msg) = log.last_for_subject(&subject)? {
                    lasts.insert(subject, msg.seq);
                }
            }
        }
        return Ok(lasts);
    }
    let mut seq = 1;
    'scan: loop {
        let batch = log.scan(seq, filters, SCAN_BATCH)?;
        let Some(last) = batch.last() else { break };
        seq = last.seq + 1;
        for msg in batch {
            if msg.seq > up_to {
                break 'scan;
            }
            lasts.insert(msg.subject, msg.seq);
        }
    }
    Ok(lasts)
}
