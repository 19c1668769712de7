//! `$JS.API.DIRECT.GET`: a stored message returned as itself (headers and payload, no JSON),
//! answered by the stream's actor on a `_sys_` queue subscription when `allow_direct` is set.
//! Statuses and header names follow nats-server (server/stream.go processDirectGetRequest).

use bytes::{Bytes, BytesMut};

use super::StreamEntry;
use crate::jetstream::api_level::{required_level_unmet, REQUIRED_LEVEL_STATUS};
use crate::jetstream::api_types::{from_go_json, MsgGetRequest};
use crate::jetstream::time::format_rfc3339;
use crate::protocol::headers::{build_block, replace_in_block};
use crate::protocol::Publish;
use crate::server::internal::InternalClient;
use crate::store::StoredMessage;

/// The subject prefix; what follows is the stream name and, optionally, a subject.
pub const DIRECT_GET_PREFIX: &str = "$JS.API.DIRECT.GET.";

/// Answers one direct get request.
pub fn direct_get(entry: &StreamEntry, request: &Publish, client: &mut InternalClient) {
    let Some(reply) = request.reply.clone() else {
        return;
    };
    let (headers, payload) = match lookup(entry, request) {
        Ok(msg) => (message_headers(&entry.name, &msg), msg.payload),
        Err((code, text)) => {
            let mut block = BytesMut::new();
            build_block(&mut block, Some((code, text)), &[]);
            (block.freeze(), Bytes::new())
        }
    };
    client.publish(reply, Some(headers), payload);
}

fn lookup(entry: &StreamEntry, request: &Publish) -> Result<StoredMessage, (u16, &'static str)> {
    if required_level_unmet(request.headers.as_deref()) {
        return Err(REQUIRED_LEVEL_STATUS);
    }
    let subject = String::from_utf8_lossy(&request.subject);
    let rest = subject.strip_prefix(DIRECT_GET_PREFIX).unwrap_or("");
    let last_by_subject = rest.split_once('.').map(|(_, s)| s.to_string());
    let req: MsgGetRequest = if request.payload.is_empty() {
        if last_by_subject.is_none() {
            return Err((408, "Empty Request"));
        }
        MsgGetRequest::default()
    } else {
        from_go_json(&request.payload).map_err(|_| (408, "Malformed Request"))?
    };
    let stream = entry.lock();
    let log = stream.log();
    let found = if let Some(subject) = last_by_subject {
        if req.seq.is_some() || req.last_by_subj.is_some() || req.next_by_subj.is_some() {
            return Err((408, "Bad Request"));
        }
        log.last_for_subject(&subject)
    } else {
        match (req.seq, req.last_by_subj, req.next_by_subj) {
            (_, Some(_), Some(_)) | (Some(_), Some(_), None) => return Err((408, "Bad Request")),
            (_, Some(last), None) => log.last_for_subject(&last),
            (seq, None, Some(next)) => log.next_matching(seq.unwrap_or(1).max(1), &[next.as_str()]),
            (Some(seq), None, None) => log.get(seq),
            (None, None, None) => return Err((408, "Bad Request")),
        }
    };
    match found {
        Ok(Some(msg)) => Ok(msg),
        Ok(None) | Err(_) => Err((404, "Message Not Found")),
    }
}

/// The stored headers plus the four `Nats-*` headers clients read the message's place from.
/// Copies a publisher put in the stored headers are dropped, so a client cannot pass its
/// message off as another stream's or sequence's to readers that take the first value.
fn message_headers(stream: &str, msg: &StoredMessage) -> Bytes {
    let mut out = BytesMut::with_capacity(msg.headers.len() + 128);
    let ts = format_rfc3339(i64::try_from(msg.ts_ns).ok());
    let seq = msg.seq.to_string();
    let pairs: [(&str, &[u8]); 4] = [
        ("Nats-Stream", stream.as_bytes()),
        ("Nats-Subject", msg.subject.as_bytes()),
        ("Nats-Sequence", seq.as_bytes()),
        ("Nats-Time-Stamp", ts.as_bytes()),
    ];
    replace_in_block(&mut out, &msg.headers, &pairs);
    out.freeze()
}
