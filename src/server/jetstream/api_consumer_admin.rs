//! `$JS.API.CONSUMER.PAUSE`, `UNPIN` (API level 1) and `RESET` (2.14): operations on a running
//! consumer, with nats-server's request shapes and errors (`docs/consumer-2.14-facts.md`).

use serde::Deserialize;
use serde_json::{json, Value};

use super::api::{find, Reply};
use super::api_consumers::consumer_info;
use super::{actor, now_ns, JetStream, StreamEntry};
use crate::jetstream::api_types::{from_go_json, from_go_json_strict};
use crate::jetstream::consumer::Action;
use crate::jetstream::consumer_config::{invalid_group_name, is_valid_group_name};
use crate::jetstream::time::{format_rfc3339, parse_rfc3339};
use crate::jetstream::ApiError;
use crate::server::internal::InternalClient;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PauseRequest {
    pause_until: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct UnpinRequest {
    group: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ResetRequest {
    seq: u64,
}

fn consumer_not_found() -> ApiError {
    ApiError::consumer_not_found()
}

/// Publishes what an operation produced (advisories) through the router.
fn send(js: &JetStream, actions: Vec<Action>) {
    if actions.is_empty() {
        return;
    }
    let mut client = InternalClient::new(js.router.clone());
    for action in actions {
        actor::perform(action, &mut client);
    }
    client.flush();
}

/// Writes a changed config of a consumer kept across restarts.
fn save_config(js: &JetStream, entry: &StreamEntry, name: &str) -> Result<(), ApiError> {
    let saved = {
        let stream = entry.lock();
        let consumer = stream
            .consumers()
            .get(name)
            .ok_or_else(consumer_not_found)?;
        // A replicated consumer's config is written by its group's entry (the caller's).
        (consumer.config.is_kept_across_restarts() && !consumer.config.is_replicated())
            .then(|| (consumer.config.clone(), consumer.created_ns))
    };
    if let Some((config, created_ns)) = saved {
        js.catalog
            .put_consumer(&entry.name, name, &config, created_ns)
            .map_err(ApiError::store_failed)?;
    }
    Ok(())
}

/// `CONSUMER.PAUSE.<stream>.<consumer>`: `{"pause_until": time}` pauses, anything else (an
/// empty body, `{}`, the zero time, a body that is not JSON) resumes. Decoded strictly, as
/// nats-server 2.12+ does.
pub fn pause(js: &JetStream, stream_name: &str, name: &str, payload: &[u8]) -> Reply {
    let entry = find(js, stream_name)?;
    if !entry.lock().consumers().contains_key(name) {
        return Err(consumer_not_found());
    }
    let body = payload.trim_ascii();
    let req: PauseRequest = if body.starts_with(b"{") || body.starts_with(b"[") {
        from_go_json_strict(body).map_err(ApiError::invalid_json)?
    } else {
        PauseRequest::default()
    };
    let until = match req.pause_until.as_deref() {
        Some(text) => parse_rfc3339(text)
            .map_err(ApiError::invalid_json)?
            .map(|ns| (format_rfc3339(Some(ns)), ns)),
        None => None,
    };
    let now = now_ns();
    let mut actions = Vec::new();
    let (paused, remaining) = {
        let mut stream = entry.lock();
        let consumer = stream.consumer_mut(name).ok_or_else(consumer_not_found)?;
        consumer.pause(until.clone(), now, &mut actions);
        (consumer.is_paused(now), consumer.pause_remaining_ns(now))
    };
    save_config(js, &entry, name)?;
    send(js, actions);
    // A resume (or a pause already over) may let messages go at once.
    entry.kick();
    let mut reply = json!({
        "paused": paused,
        "pause_until": format_rfc3339(until.map(|(_, ns)| ns)),
    });
    if remaining > 0 {
        reply["pause_remaining"] = json!(remaining);
    }
    Ok(reply)
}

/// `CONSUMER.UNPIN.<stream>.<consumer>`, `{"group": name}`: the pinned client loses its pin.
pub fn unpin(js: &JetStream, stream_name: &str, name: &str, payload: &[u8]) -> Reply {
    let entry = find(js, stream_name)?;
    if !entry.lock().consumers().contains_key(name) {
        return Err(consumer_not_found());
    }
    let req: UnpinRequest = from_go_json(payload).map_err(ApiError::invalid_json)?;
    if req.group.is_empty() {
        return Err(ApiError::invalid_json("consumer group not specified"));
    }
    if !is_valid_group_name(&req.group) {
        return Err(invalid_group_name());
    }
    let mut actions = Vec::new();
    {
        let mut stream = entry.lock();
        let consumer = stream.consumer_mut(name).ok_or_else(consumer_not_found)?;
        if !consumer.config.priority_groups.contains(&req.group) {
            return Err(ApiError::new(
                400,
                10160,
                "Provided priority group does not exist for this consumer",
            ));
        }
        consumer.unpin(&req.group, now_ns(), &mut actions);
    }
    send(js, actions);
    // A request waiting without a pin id becomes the new pinned client.
    entry.kick();
    Ok(json!({}))
}

/// `CONSUMER.RESET.<stream>.<consumer>`, empty or `{"seq": n}`: delivery starts again at `n`
/// (or just above the ack floor). The reply is the consumer's info with `reset_seq`, sent once
/// the new state is on disk. nats-server does not answer a reset of a missing consumer at all
/// (the consumer itself listens on the subject); jetlog answers 404, so a client is told
/// instead of left to time out.
pub fn reset(js: &JetStream, stream_name: &str, name: &str, payload: &[u8]) -> Reply {
    let entry = find(js, stream_name)?;
    if !entry.lock().consumers().contains_key(name) {
        return Err(consumer_not_found());
    }
    let req: ResetRequest = if payload.trim_ascii().is_empty() {
        ResetRequest::default()
    } else {
        from_go_json(payload).map_err(ApiError::invalid_json)?
    };
    let reset_seq = {
        let mut stream = entry.lock();
        let (log, consumer) = stream.log_and_consumer(name);
        consumer
            .ok_or_else(consumer_not_found)?
            .reset(req.seq, log)?
    };
    actor::write_consumer_states(&entry).map_err(ApiError::store_failed)?;
    entry.kick();
    let info = consumer_info(js, &entry, name)?;
    let mut reply: Value =
        serde_json::to_value(info).map_err(|e| ApiError::store_failed(e.to_string()))?;
    reply["reset_seq"] = json!(reset_seq);
    Ok(reply)
}
