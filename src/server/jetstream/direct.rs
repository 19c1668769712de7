//! `$JS.API.DIRECT.GET`: stored messages returned as themselves (headers and payload, no
//! JSON), answered by the stream's actor on a `_sys_` queue subscription when `allow_direct`
//! is set. One message, a batch ending in an EOB status, or the last message of many
//! subjects (ADR-31). Statuses, header names and their order follow nats-server 2.15.1
//! (docs/stream-2.11-facts.md §3).

use bytes::{Bytes, BytesMut};

use super::direct_batch::{batch_get, multi_last_get};
use super::StreamEntry;
use crate::jetstream::api_level::{required_level_unmet, REQUIRED_LEVEL_STATUS};
use crate::jetstream::api_types::{from_go_json, MsgGetRequest};
use crate::jetstream::time::{format_rfc3339, parse_rfc3339};
use crate::protocol::headers::{build_block, replace_in_block};
use crate::protocol::Publish;
use crate::server::internal::InternalClient;
use crate::store::StoredMessage;

/// The subject prefix; what follows is the stream name and, optionally, a subject.
pub const DIRECT_GET_PREFIX: &str = "$JS.API.DIRECT.GET.";

/// A status reply: code and text.
pub(super) type Status = (u16, &'static str);
pub(super) const NOT_FOUND: Status = (404, "Message Not Found");
const EMPTY_REQUEST: Status = (408, "Empty Request");
pub(super) const MALFORMED: Status = (408, "Malformed Request");
const BAD_REQUEST: Status = (408, "Bad Request");

/// One message of an answer: headers (none for `no_hdr`) and payload.
pub(super) type Answer = (Option<Bytes>, Bytes);

/// Answers one direct get request with one or more messages.
pub fn direct_get(entry: &StreamEntry, request: &Publish, client: &mut InternalClient) {
    let Some(reply) = request.reply.clone() else {
        return;
    };
    let answers = match parse(request) {
        Ok(req) => answer(entry, &req),
        Err(status) => vec![status_reply(status, &[])],
    };
    for (headers, payload) in answers {
        client.queue_publish(reply.clone(), headers, payload);
    }
    client.flush();
}

pub(super) fn status_reply(status: Status, pairs: &[(&str, &[u8])]) -> Answer {
    let mut block = BytesMut::new();
    build_block(&mut block, Some(status), pairs);
    (Some(block.freeze()), Bytes::new())
}

/// The request, checked in nats-server's order.
fn parse(request: &Publish) -> Result<MsgGetRequest, Status> {
    if required_level_unmet(request.headers.as_deref()) {
        return Err(REQUIRED_LEVEL_STATUS);
    }
    let subject = String::from_utf8_lossy(&request.subject);
    let rest = subject.strip_prefix(DIRECT_GET_PREFIX).unwrap_or("");
    if let Some((_, last_by_subject)) = rest.split_once('.') {
        // `DIRECT.GET.<stream>.<subject>`: the last message on the subject; the body may
        // only say `no_hdr`.
        let mut req = match request.payload.is_empty() {
            true => MsgGetRequest::default(),
            false => from_go_json::<MsgGetRequest>(&request.payload).map_err(|_| MALFORMED)?,
        };
        if req.seq.is_some()
            || req.batch.is_some()
            || req.last_by_subj.is_some()
            || req.next_by_subj.is_some()
            || req.multi_last.is_some()
            || req.start_time.is_some()
            || req.up_to_seq.is_some()
            || req.up_to_time.is_some()
        {
            return Err(BAD_REQUEST);
        }
        req.last_by_subj = Some(last_by_subject.to_owned());
        return Ok(req);
    }
    if request.payload.is_empty() {
        return Err(EMPTY_REQUEST);
    }
    let req: MsgGetRequest = from_go_json(&request.payload).map_err(|_| MALFORMED)?;
    let seq = req.seq.is_some_and(|s| s > 0);
    let last = req.last_by_subj.as_ref().is_some_and(|s| !s.is_empty());
    let next = req.next_by_subj.as_ref().is_some_and(|s| !s.is_empty());
    let multi = req.multi_last.as_ref().is_some_and(|m| !m.is_empty());
    let start = req.start_time.is_some();
    if !(seq || last || next || multi || start) {
        return Err(EMPTY_REQUEST);
    }
    let batch = req.batch.is_some_and(|b| b > 0);
    let up_to_both = req.up_to_seq.is_some_and(|s| s > 0) && req.up_to_time.is_some();
    // The pairs nats-server refuses together.
    let pairs = [
        (seq, last),
        (seq, start),
        (start, last),
        (last, next),
        (last, batch),
        (last, multi),
        (next, multi),
    ];
    let conflicts = up_to_both || pairs.iter().any(|(a, b)| *a && *b);
    if conflicts {
        return Err(BAD_REQUEST);
    }
    Ok(req)
}

fn answer(entry: &StreamEntry, req: &MsgGetRequest) -> Vec<Answer> {
    let stream = entry.lock();
    let log = stream.log();
    let start_seq = match &req.start_time {
        Some(time) => match parse_rfc3339(time) {
            Ok(ns) => log.seq_at_or_after_time(ns.unwrap_or(0).max(0) as u64),
            Err(_) => return vec![status_reply(MALFORMED, &[])],
        },
        None => Ok(req.seq.unwrap_or(0)),
    };
    let Ok(start_seq) = start_seq else {
        return vec![status_reply(NOT_FOUND, &[])];
    };
    if req.multi_last.as_ref().is_some_and(|m| !m.is_empty()) {
        return multi_last_get(&entry.name, log, req);
    }
    if req.batch.is_some_and(|b| b != 0) {
        return batch_get(&entry.name, log, req, start_seq);
    }
    let found = if let Some(subject) = &req.last_by_subj {
        log.last_for_subject(subject)
    } else if let Some(subject) = &req.next_by_subj {
        log.next_matching(start_seq.max(1), &[subject.as_str()])
    } else {
        log.get(start_seq)
    };
    match found {
        Ok(Some(msg)) => {
            let headers = (!req.no_hdr).then(|| message_headers(&entry.name, &msg, &[]));
            vec![(headers, msg.payload)]
        }
        Ok(None) | Err(_) => vec![status_reply(NOT_FOUND, &[])],
    }
}

/// The stored headers plus the `Nats-*` headers clients read the message's place from (and,
/// in batches, `extra`). Copies a publisher put in the stored headers are dropped, so a
/// client cannot pass its message off as another stream's or sequence's to readers that take
/// the first value.
pub(super) fn message_headers(stream: &str, msg: &StoredMessage, extra: &[(&str, &[u8])]) -> Bytes {
    let mut out = BytesMut::with_capacity(msg.headers.len() + 160);
    let ts = format_rfc3339(i64::try_from(msg.ts_ns).ok());
    let seq = msg.seq.to_string();
    let mut pairs: Vec<(&str, &[u8])> = vec![
        ("Nats-Stream", stream.as_bytes()),
        ("Nats-Subject", msg.subject.as_bytes()),
        ("Nats-Sequence", seq.as_bytes()),
        ("Nats-Time-Stamp", ts.as_bytes()),
    ];
    pairs.extend_from_slice(extra);
    replace_in_block(&mut out, &msg.headers, &pairs);
    out.freeze()
}
