//! `$JS.API.*` request handling: subject dispatch, JSON in and out, and nats-server's error
//! codes. Every request gets one reply; a subject we do not serve gets a clear error, never
//! silence and never a pretended success.

use serde::Serialize;
use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::api_account::account_info;
pub(super) use super::api_account::{account_info_of, local_usage, Usage};
use super::api_consumer_admin as admin;
use super::api_consumers as consumers;
use super::{now_ns, JetStream, StreamEntry};
use crate::jetstream::api_level::{required_level_error, required_level_unmet};
use crate::jetstream::api_types::{
    base64_encode, first_unhonoured_setting, from_go_json, from_go_json_strict, ApiMessage,
    ClusterInfo, MsgDeleteRequest, MsgGetRequest, PurgeRequestJson, StreamInfo, StreamInfoRequest,
    StreamListRequest, StreamState,
};
use crate::jetstream::stream_config::is_valid_name;
use crate::jetstream::time::{format_rfc3339, parse_rfc3339};
use crate::jetstream::versioning;
use crate::jetstream::{ApiError, Stream, StreamConfig};
use crate::protocol::subject::subjects_overlap;
use crate::store::{PurgeRequest, StoredMessage};

/// Subjects under `$JS.API.>` that are not API calls but plain subscriptions of their owners:
/// with no owner they must produce a no-responders status (facts sheet §2.1).
pub const API_EXCLUDED: &[&str] = &["$JS.API.DIRECT.GET.>", "$JS.API.CONSUMER.MSG.NEXT.>"];

/// `STREAM.NAMES` page size (nats-server `JSApiNamesLimit`).
pub(super) const NAMES_LIMIT: usize = 1024;
/// `STREAM.LIST` page size (nats-server `JSApiListLimit`).
pub(super) const LIST_LIMIT: usize = 256;

pub(super) type Reply = Result<Value, ApiError>;

/// Handles one API request; returns the reply body and whether it was an error.
pub fn handle(
    js: &JetStream,
    subject: &str,
    headers: Option<&[u8]>,
    payload: &[u8],
) -> (Vec<u8>, bool) {
    let tokens: Vec<&str> = subject.split('.').skip(2).collect();
    if required_level_unmet(headers) {
        return respond(subject, || ("error_response", Err(required_level_error())));
    }
    respond(subject, || dispatch(js, &tokens, payload))
}

/// Encodes a reply made outside the API thread (in a cluster, by the meta leader's tasks
/// and by the server that opens a stream).
pub(super) fn encode(kind: &'static str, reply: Reply) -> (Vec<u8>, bool) {
    respond(kind, || (kind, reply))
}

/// Runs a handler and encodes its reply. A handler that panics (a bug: bad input must come
/// back as an error) answers this request with a 500 instead of ending the API thread, which
/// would leave every later request of every client without a reply.
fn respond(subject: &str, handler: impl FnOnce() -> (&'static str, Reply)) -> (Vec<u8>, bool) {
    let (kind, result) = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(handler)) {
        Ok(reply) => reply,
        Err(_) => {
            tracing::error!(
                subject,
                "JetStream API handler panicked; answered with an error"
            );
            ("system_response", Err(internal_error()))
        }
    };
    let failed = result.is_err();
    let mut body = match result {
        Ok(Value::Object(map)) => map,
        Ok(_) => Map::new(),
        Err(err) => {
            let mut map = Map::new();
            map.insert("error".into(), json!(err));
            // The fields these replies always carry, at their zero values (Go encodes the
            // whole response struct).
            match kind {
                "consumer_pause_response" => {
                    map.insert("paused".into(), json!(false));
                    map.insert("pause_until".into(), json!(format_rfc3339(None)));
                }
                "consumer_reset_response" => {
                    map.insert("reset_seq".into(), json!(0));
                }
                _ => {}
            }
            map
        }
    };
    body.insert(
        "type".into(),
        json!(format!("io.nats.jetstream.api.v1.{kind}")),
    );
    (
        serde_json::to_vec(&Value::Object(body)).unwrap_or_default(),
        failed,
    )
}

fn dispatch(js: &JetStream, tokens: &[&str], payload: &[u8]) -> (&'static str, Reply) {
    match tokens {
        ["INFO"] => ("account_info_response", account_info(js)),
        ["STREAM", "CREATE", name] => ("stream_create_response", stream_create(js, name, payload)),
        ["STREAM", "UPDATE", name] => ("stream_update_response", stream_update(js, name, payload)),
        ["STREAM", "DELETE", name] => ("stream_delete_response", stream_delete(js, name)),
        ["STREAM", "INFO", name] => ("stream_info_response", stream_info(js, name, payload)),
        ["STREAM", "NAMES"] => ("stream_names_response", stream_names(js, payload)),
        ["STREAM", "LIST"] => ("stream_list_response", stream_list(js, payload)),
        ["STREAM", "PURGE", name] => ("stream_purge_response", stream_purge(js, name, payload)),
        ["STREAM", "MSG", "GET", name] => ("stream_msg_get_response", msg_get(js, name, payload)),
        ["STREAM", "MSG", "DELETE", name] => {
            ("stream_msg_delete_response", msg_delete(js, name, payload))
        }
        ["STREAM", "SNAPSHOT", name] => (
            "stream_snapshot_response",
            super::snapshot::stream_snapshot(js, name, payload),
        ),
        ["STREAM", "RESTORE", name] => (
            "stream_restore_response",
            super::restore::stream_restore(js, name, payload),
        ),
        ["STREAM", "PEER" | "LEADER" | "CANCEL_MOVE", ..]
        | ["CONSUMER", "LEADER", ..]
        | ["META" | "SERVER", ..] => (
            "system_response",
            Err(ApiError::new(
                503,
                10010,
                "JetStream clustering support required",
            )),
        ),
        ["CONSUMER", "CREATE", stream, ..] => (
            "consumer_create_response",
            consumers::create(js, tokens, stream, payload),
        ),
        ["CONSUMER", "DURABLE", "CREATE", stream, _] => (
            "consumer_create_response",
            consumers::create(js, tokens, stream, payload),
        ),
        ["CONSUMER", "DELETE", stream, name] => (
            "consumer_delete_response",
            consumers::delete(js, stream, name),
        ),
        ["CONSUMER", "INFO", stream, name] => {
            ("consumer_info_response", consumers::info(js, stream, name))
        }
        ["CONSUMER", "NAMES", stream] => (
            "consumer_names_response",
            consumers::names(js, stream, payload),
        ),
        ["CONSUMER", "LIST", stream] => (
            "consumer_list_response",
            consumers::list(js, stream, payload),
        ),
        ["CONSUMER", "PAUSE", stream, name] => (
            "consumer_pause_response",
            admin::pause(js, stream, name, payload),
        ),
        ["CONSUMER", "UNPIN", stream, name] => (
            "consumer_unpin_response",
            admin::unpin(js, stream, name, payload),
        ),
        ["CONSUMER", "RESET", stream, name] => (
            "consumer_reset_response",
            admin::reset(js, stream, name, payload),
        ),
        _ => ("system_response", Err(ApiError::bad_request(None))),
    }
}

/// nats-server's general stream failure (10051), for a request whose handler failed.
fn internal_error() -> ApiError {
    ApiError::new(500, 10051, "internal error while handling the request")
}

pub(super) fn to_value(v: &impl Serialize) -> Reply {
    serde_json::to_value(v).map_err(|e| ApiError::store_failed(format!("encoding the reply: {e}")))
}

/// Parses an optional JSON body; an empty one gives the type's default.
pub(super) fn parse_optional<T: serde::de::DeserializeOwned + Default>(
    js: &JetStream,
    payload: &[u8],
) -> Result<T, ApiError> {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    decode(js, payload)
}

/// Decodes an API request body as nats-server does: fields it does not know are ignored,
/// unless `jetstream { strict: true }` asks for them to be refused.
pub(super) fn decode<T: serde::de::DeserializeOwned>(
    js: &JetStream,
    payload: &[u8],
) -> Result<T, ApiError> {
    match js.strict {
        true => from_go_json_strict(payload),
        false => from_go_json(payload),
    }
    .map_err(ApiError::invalid_json)
}

pub(super) fn find(js: &JetStream, name: &str) -> Result<std::sync::Arc<StreamEntry>, ApiError> {
    js.stream(name).ok_or_else(ApiError::stream_not_found)
}

/// The config in a create/update request, checked against the subject's stream name.
pub(super) fn requested_config(
    js: &JetStream,
    name: &str,
    payload: &[u8],
) -> Result<StreamConfig, ApiError> {
    // nats-server's own check for names that could become paths (jetstream_api.go,
    // jsStreamCreateRequest), with its error code; the general name check would catch them too.
    if name.contains(['\\', '/']) {
        return Err(ApiError::new(
            400,
            10128,
            "Stream name can not contain path separators",
        ));
    }
    if !is_valid_name(name) {
        return Err(ApiError::stream_invalid_config(
            "stream name is required and can not contain '.', '*', '>'",
        ));
    }
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(Some("request body is empty")));
    }
    let mut config: StreamConfig = decode(js, payload)?;
    if let Some(path) = first_unhonoured_setting::<StreamConfig>(payload) {
        let field = path.rsplit('.').next().unwrap_or(&path);
        return Err(ApiError::invalid_json(format!(
            "json: unknown field {field:?}"
        )));
    }
    if config.name.is_empty() {
        config.name = name.to_string();
    }
    if config.name != name {
        return Err(ApiError::stream_name_mismatch());
    }
    match js.is_clustered() {
        true => config.normalized_for_cluster(),
        false => config.normalized(),
    }
}

fn stream_create(js: &JetStream, name: &str, payload: &[u8]) -> Reply {
    let config = requested_config(js, name, payload)?;
    let entry = js.create_stream(config)?;
    changed_stream_info(js, &entry)
}

fn stream_update(js: &JetStream, name: &str, payload: &[u8]) -> Reply {
    let config = requested_config(js, name, payload)?;
    let entry = js.update_stream(config)?;
    changed_stream_info(js, &entry)
}

/// The info a create or update answers with: a single nats-server builds it without the
/// cluster and paging fields that `STREAM.INFO` has (jsStreamCreateRequest).
pub(super) fn changed_stream_info(js: &JetStream, entry: &StreamEntry) -> Reply {
    let mut info = stream_info_of(js, entry, &StreamInfoRequest::default())?;
    // A clustered nats-server's answer comes from the stream's leader, with its cluster.
    if !js.is_clustered() {
        info.cluster = None;
    }
    to_value(&info)
}

fn stream_delete(js: &JetStream, name: &str) -> Reply {
    js.delete_stream(name)?;
    Ok(json!({ "success": true }))
}

fn stream_info(js: &JetStream, name: &str, payload: &[u8]) -> Reply {
    let entry = find(js, name)?;
    let req: StreamInfoRequest = parse_optional(js, payload)?;
    info_value(js, &entry, &req)
}

/// Most subjects one `STREAM.INFO` reply lists (nats-server `JSMaxSubjectDetails`); a client
/// pages through more with `offset`.
const MAX_SUBJECT_DETAILS: usize = 100_000;

/// StreamInfo with paging fields describing `state.subjects`. As in nats-server, the paging
/// fields are zero unless the filter matched something, the offset is clamped to the total,
/// and `subjects` is left out when the page is empty.
fn info_value(js: &JetStream, entry: &StreamEntry, req: &StreamInfoRequest) -> Reply {
    let (info, total) = stream_info_page(js, entry, req)?;
    let mut value = to_value(&info)?;
    if let Value::Object(map) = &mut value {
        let (offset, limit) = match total {
            0 => (0, 0),
            _ => (req.offset.min(total), MAX_SUBJECT_DETAILS),
        };
        map.insert("total".into(), json!(total));
        map.insert("offset".into(), json!(offset));
        map.insert("limit".into(), json!(limit));
    }
    Ok(value)
}

/// The stream's info without subject details, as listings and reports show it.
pub(super) fn stream_info_of(
    js: &JetStream,
    entry: &StreamEntry,
    req: &StreamInfoRequest,
) -> Result<StreamInfo, ApiError> {
    stream_info_page(js, entry, req).map(|(info, _)| info)
}

/// The stream's info with the page of subject counts the request asks for, and how many
/// subjects matched its filter in all.
fn stream_info_page(
    js: &JetStream,
    entry: &StreamEntry,
    req: &StreamInfoRequest,
) -> Result<(StreamInfo, usize), ApiError> {
    let stream = entry.lock();
    let log = stream.log();
    let s = log
        .state(req.deleted_details)
        .map_err(ApiError::store_failed)?;
    let time = |ns: u64| format_rfc3339((ns > 0).then_some(ns as i64));
    let counts = req
        .subjects_filter
        .as_deref()
        .filter(|f| !f.is_empty())
        .map(|filter| log.subject_counts(filter))
        .unwrap_or_default();
    let total = counts.len();
    // Sorted by subject, as nats-server sorts the names before it cuts a page.
    let page: BTreeMap<String, u64> = counts
        .into_iter()
        .skip(req.offset)
        .take(MAX_SUBJECT_DETAILS)
        .collect();
    let mut config = stream.config().clone();
    config.metadata = versioning::shown(&config.metadata, versioning::stream_level(&config));
    let info = StreamInfo {
        config,
        created: format_rfc3339(Some(stream.created_ns())),
        state: StreamState {
            messages: s.msgs,
            bytes: s.bytes,
            first_seq: s.first_seq,
            first_ts: time(if s.msgs > 0 { s.first_ts_ns } else { 0 }),
            last_seq: s.last_seq,
            last_ts: time(s.last_ts_ns),
            num_subjects: s.num_subjects,
            subjects: (!page.is_empty()).then_some(page),
            num_deleted: s.num_deleted,
            deleted: req.deleted_details.then_some(s.deleted),
            consumer_count: stream.consumers().len() as u64,
        },
        cluster: Some(cluster_info(js, entry)),
        mirror: stream.mirror_info(now_ns()),
        sources: stream.sources_info(now_ns()),
        ts: format_rfc3339(Some(now_ns() as i64)),
    };
    Ok((info, total))
}

/// Who leads the stream: this server, or for a replicated stream its group's leader, with
/// the other peers.
fn cluster_info(js: &JetStream, entry: &StreamEntry) -> ClusterInfo {
    let name = js.cluster().map(|c| c.cluster_name().to_owned());
    if entry.replica.is_replicated() {
        // Before its group has a leader, nats-server shows none.
        let (leader, replicas) = super::cluster_replicated::replicas_info(js, &entry.name)
            .map_or((String::new(), None), |(leader, replicas)| {
                (leader, Some(replicas))
            });
        return ClusterInfo {
            name,
            leader,
            raft_group: Some(crate::server::cluster_js::stream_groups::group_name(
                &js.account_name,
                &entry.name,
            )),
            replicas,
        };
    }
    ClusterInfo {
        name,
        leader: js.server_name.clone(),
        raft_group: None,
        replicas: None,
    }
}

/// Streams whose subjects overlap `filter` (all when there is none), sorted by name.
pub(super) fn filtered_streams(
    js: &JetStream,
    filter: Option<&str>,
) -> Vec<std::sync::Arc<StreamEntry>> {
    js.streams()
        .into_iter()
        .filter(|entry| match filter.filter(|f| !f.is_empty()) {
            None => true,
            Some(f) => entry
                .lock()
                .config()
                .subjects
                .iter()
                .any(|s| subjects_overlap(s.as_str(), f)),
        })
        .collect()
}

fn stream_names(js: &JetStream, payload: &[u8]) -> Reply {
    let req: StreamListRequest = parse_optional(js, payload)?;
    let all = filtered_streams(js, req.subject.as_deref());
    let page: Vec<&str> = all
        .iter()
        .skip(req.offset)
        .take(NAMES_LIMIT)
        .map(|e| e.name.as_str())
        .collect();
    Ok(json!({ "total": all.len(), "offset": req.offset, "limit": NAMES_LIMIT, "streams": page }))
}

fn stream_list(js: &JetStream, payload: &[u8]) -> Reply {
    let req: StreamListRequest = parse_optional(js, payload)?;
    let all = filtered_streams(js, req.subject.as_deref());
    let mut infos = Vec::new();
    for entry in all.iter().skip(req.offset).take(LIST_LIMIT) {
        infos.push(to_value(&stream_info_of(
            js,
            entry,
            &StreamInfoRequest::default(),
        )?)?);
    }
    Ok(
        json!({ "total": all.len(), "offset": req.offset, "limit": LIST_LIMIT, "streams": infos, "missing": Value::Null }),
    )
}

fn stream_purge(js: &JetStream, name: &str, payload: &[u8]) -> Reply {
    let entry = find(js, name)?;
    let mut stream = entry.lock();
    let request = purge_request(js, &stream, payload)?;
    let purged = stream.purge(&request).map_err(ApiError::purge_failed)?;
    stream.log_mut().sync().map_err(ApiError::purge_failed)?;
    entry.account(&stream);
    Ok(purged_answer(purged))
}

/// A purge request, checked against the stream (a replicated one's leader checks it so).
pub(super) fn purge_request(
    js: &JetStream,
    stream: &Stream,
    payload: &[u8],
) -> Result<PurgeRequest, ApiError> {
    let req: PurgeRequestJson = parse_optional(js, payload)?;
    if req.seq.is_some() && req.keep.is_some() {
        return Err(ApiError::bad_request(Some(
            "sequence and keep cannot both be set",
        )));
    }
    if stream.config().sealed {
        return Err(ApiError::sealed());
    }
    if stream.config().deny_purge {
        return Err(ApiError::purge_failed("stream purge not permitted"));
    }
    Ok(PurgeRequest {
        filter: req.filter.filter(|f| !f.is_empty()),
        up_to_seq: req.seq,
        keep: req.keep,
    })
}

pub(super) fn purged_answer(purged: u64) -> Value {
    json!({ "success": true, "purged": purged })
}

fn msg_get(js: &JetStream, name: &str, payload: &[u8]) -> Reply {
    let entry = find(js, name)?;
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(Some("empty request")));
    }
    let req: MsgGetRequest = decode(js, payload)?;
    if req.batch.is_some() || req.max_bytes.is_some() || req.multi_last.is_some() {
        return Err(ApiError::bad_request(Some(
            "batch requests are for direct get",
        )));
    }
    let stream = entry.lock();
    let log = stream.log();
    let found = match (
        req.seq,
        &req.last_by_subj,
        &req.next_by_subj,
        &req.start_time,
    ) {
        (Some(seq), None, None, None) => log.get(seq),
        (None, Some(subject), None, None) => log.last_for_subject(subject),
        (seq, None, Some(subject), None) => {
            log.next_matching(seq.unwrap_or(1).max(1), &[subject.as_str()])
        }
        (None, None, None, Some(time)) => {
            let ns = parse_rfc3339(time)
                .map_err(|e| ApiError::bad_request(Some(&e)))?
                .unwrap_or(0)
                .max(0) as u64;
            log.seq_at_or_after_time(ns)
                .and_then(|seq| log.next_matching(seq, &[]))
        }
        _ => return Err(ApiError::bad_request(None)),
    };
    let msg = found
        .map_err(ApiError::store_failed)?
        .ok_or_else(ApiError::no_message_found)?;
    to_value(&json!({ "message": api_message(&msg, req.no_hdr) }))
}

fn api_message(msg: &StoredMessage, no_hdr: bool) -> ApiMessage {
    ApiMessage {
        subject: msg.subject.clone(),
        seq: msg.seq,
        hdrs: (!no_hdr && !msg.headers.is_empty()).then(|| base64_encode(&msg.headers)),
        data: (!msg.payload.is_empty()).then(|| base64_encode(&msg.payload)),
        time: format_rfc3339(Some(msg.ts_ns as i64)),
    }
}

fn msg_delete(js: &JetStream, name: &str, payload: &[u8]) -> Reply {
    let entry = find(js, name)?;
    let mut stream = entry.lock();
    let seq = msg_delete_request(js, &stream, payload)?;
    let removed = stream
        .delete_msg(seq)
        .map_err(ApiError::msg_delete_failed)?;
    if !removed {
        return Err(ApiError::sequence_not_found(seq));
    }
    stream
        .log_mut()
        .sync()
        .map_err(ApiError::msg_delete_failed)?;
    entry.account(&stream);
    Ok(json!({ "success": true }))
}

/// The sequence a message delete asks for, checked against the stream.
pub(super) fn msg_delete_request(
    js: &JetStream,
    stream: &Stream,
    payload: &[u8],
) -> Result<u64, ApiError> {
    let req: MsgDeleteRequest = decode(js, payload)?;
    if stream.config().sealed {
        return Err(ApiError::sealed());
    }
    if stream.config().deny_delete {
        return Err(ApiError::msg_delete_failed("message delete not permitted"));
    }
    Ok(req.seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_handler_gets_an_error_reply_and_the_next_request_is_served() {
        let (body, failed) = respond("$JS.API.STREAM.INFO.S", || panic!("a bug"));
        assert!(failed);
        let reply: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(reply["error"]["code"], 500);
        assert_eq!(reply["error"]["err_code"], 10051);
        assert_eq!(reply["type"], "io.nats.jetstream.api.v1.system_response");
        let (body, failed) = respond("$JS.API.INFO", || {
            ("account_info_response", Ok(json!({"streams": 0})))
        });
        assert!(!failed);
        let reply: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(reply["streams"], 0);
    }
}
