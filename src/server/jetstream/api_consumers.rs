//! `$JS.API.CONSUMER.*`: create (all three subject forms and DURABLE.CREATE), delete, info,
//! names and list.

use std::sync::Arc;

use serde_json::{json, Value};

use super::api::{decode, find, parse_optional, Reply};
use super::{now_ns, JetStream, StreamEntry};
use crate::jetstream::advisories::{consumer_action, Lifecycle};
use crate::jetstream::api_types::{first_unhonoured_setting, StreamListRequest};
use crate::jetstream::consumer::Consumer;
use crate::jetstream::consumer_config::{
    check_create_subject, ConsumerConfig, ConsumerInfo, CreateConsumerRequest,
};
use crate::jetstream::stream::Stream;
use crate::jetstream::ApiError;
use crate::server::internal::InternalClient;

/// `CONSUMER.NAMES` page size (nats-server `JSApiNamesLimit`).
const NAMES_LIMIT: usize = 1024;
/// `CONSUMER.LIST` page size (nats-server `JSApiListLimit`).
const LIST_LIMIT: usize = 256;

/// nats-server consumer config fields for features jetlog has not built (mirrors and sources
/// set them on their internal consumers).
const NOT_BUILT_FIELDS: &[&str] = &["direct", "sourcing"];

fn consumer_not_found() -> ApiError {
    ApiError::new(404, 10014, "consumer not found")
}

/// A create or update request, read and checked against its stream's config.
pub(super) struct CreateRequest {
    pub entry: Arc<StreamEntry>,
    pub name: String,
    pub config: ConsumerConfig,
    /// `create`, `update`, or empty for either.
    pub action: String,
}

/// Reads a create or update request; `tokens` are the subject's tokens after `$JS.API.`.
pub(super) fn parse_create(
    js: &JetStream,
    tokens: &[&str],
    stream_name: &str,
    payload: &[u8],
) -> Result<CreateRequest, ApiError> {
    let entry = find(js, stream_name)?;
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(Some("request body is empty")));
    }
    let mut req: CreateConsumerRequest = decode(js, payload)?;
    // What jetlog does not know it cannot honour: refused as nats-server 2.12+ refuses an
    // unknown field, here only when it is set to something; nats-server's own fields for
    // what jetlog has not built are named as such.
    if let Some(path) = first_unhonoured_setting::<CreateConsumerRequest>(payload) {
        let field = path.rsplit('.').next().unwrap_or(&path);
        return Err(if NOT_BUILT_FIELDS.contains(&field) {
            ApiError::consumer_create(format!(
                "consumer config field {field:?} is not supported by jetlog"
            ))
        } else {
            ApiError::invalid_json(format!("json: unknown field {field:?}"))
        });
    }
    // Only the server makes a mirror's or source's hold.
    if req.config.sourcing {
        return Err(ApiError::consumer_create(
            "consumer config field \"sourcing\" is not supported by jetlog".to_string(),
        ));
    }
    let name = check_create_subject(
        tokens,
        &mut req,
        now_ns().wrapping_mul(0x9E37_79B9_7F4A_7C15),
    )?;
    let stream_config = entry.lock().config().clone();
    let requested_ack_pending = req.config.max_ack_pending;
    let mut config = req.config.normalized(&stream_config)?;
    js.account_limits()
        .fit_max_ack_pending(requested_ack_pending, &mut config)?;
    Ok(CreateRequest {
        entry,
        name,
        config,
        action: req.action,
    })
}

/// Checks a create or update against the stream's consumers; true if it updates one.
/// Only `CONSUMER.PAUSE` changes a pause: an update keeps the one in force, whatever it
/// sends (nats-server, jsConsumerCreateRequest).
pub(super) fn check_create(
    js: &JetStream,
    stream: &Stream,
    req: &mut CreateRequest,
) -> Result<bool, ApiError> {
    match stream.consumers().get(&req.name) {
        Some(existing) => {
            req.config.pause_until = existing.config.pause_until.clone();
            if req.action == "create" && existing.config != req.config {
                return Err(ApiError::new(400, 10148, "consumer already exists"));
            }
            existing.config.check_update(&req.config)?;
            Ok(true)
        }
        None => {
            if req.action == "update" {
                return Err(ApiError::new(400, 10149, "consumer does not exist"));
            }
            js.account_limits()
                .check_new_consumer(stream.config().max_consumers, stream.consumers().len())?;
            stream.check_new_consumer(&req.name, &req.config)?;
            Ok(false)
        }
    }
}

/// Creates or updates a consumer; `tokens` are the subject's tokens after `$JS.API.`.
pub fn create(js: &JetStream, tokens: &[&str], stream_name: &str, payload: &[u8]) -> Reply {
    let mut req = parse_create(js, tokens, stream_name, payload)?;
    let (entry, name) = (req.entry.clone(), req.name.clone());
    let now = now_ns();
    let mut actions = Vec::new();
    let created_ns = {
        let mut stream = entry.lock();
        let updates = check_create(js, &stream, &mut req)?;
        let config = req.config.clone();
        match stream.consumer_mut(&name) {
            Some(existing) if updates => {
                existing.update_config(config);
                existing.created_ns
            }
            _ => {
                let created = now as i64;
                let consumer = Consumer::new(
                    stream_name,
                    &name,
                    config.clone(),
                    created,
                    stream.log(),
                    now,
                );
                actions.push(consumer_action(stream_name, &name, Lifecycle::Created, now));
                if consumer.is_paused(now) {
                    actions.push(
                        consumer.pause_advisory(config.pause_until_ns().map(|ns| ns as i64), now),
                    );
                }
                stream.insert_consumer(consumer);
                created
            }
        }
    };
    if req.config.is_kept_across_restarts() {
        js.catalog
            .put_consumer(stream_name, &name, &req.config, created_ns)
            .map_err(ApiError::store_failed)?;
    }
    entry.subscribe_consumer(&name, &InternalClient::new(js.router.clone()));
    entry.kick();
    let reply = info_value(js, &entry, &name);
    // The created advisory (and the pause advisory of a consumer created paused) follow the
    // reply, as in nats-server.
    let mut client = InternalClient::new(js.router.clone());
    for action in actions {
        super::actor::perform(action, &mut client);
    }
    client.flush();
    reply
}

pub fn delete(js: &JetStream, stream_name: &str, name: &str) -> Reply {
    let entry = find(js, stream_name)?;
    if !entry.lock().consumers().contains_key(name) {
        return Err(consumer_not_found());
    }
    entry.delete_consumer(name, &mut InternalClient::new(js.router.clone()));
    Ok(json!({ "success": true }))
}

pub fn info(js: &JetStream, stream_name: &str, name: &str) -> Reply {
    let entry = find(js, stream_name)?;
    info_value(js, &entry, name)
}

pub(super) fn consumer_info(
    js: &JetStream,
    entry: &StreamEntry,
    name: &str,
) -> Result<ConsumerInfo, ApiError> {
    let mut stream = entry.lock();
    let deliver_subject = stream
        .consumers()
        .get(name)
        .ok_or_else(consumer_not_found)?
        .config
        .deliver_subject
        .clone();
    let push_bound = deliver_subject.is_some_and(|s| js.router.has_interest(s.as_bytes()));
    let (log, consumer) = stream.log_and_consumer(name);
    let consumer = consumer.ok_or_else(consumer_not_found)?;
    let mut info = consumer.info(log, &js.server_name, now_ns(), push_bound);
    info.cluster.name = js.cluster().map(|c| c.cluster_name().to_owned());
    // A replicated consumer's replicas are its stream's, led by the stream's leader.
    if info.config.is_replicated() {
        if let Some((leader, replicas)) = super::cluster_replicated::replicas_info(js, &entry.name)
        {
            info.cluster.leader = leader;
            info.cluster.replicas = Some(replicas);
        }
    }
    Ok(info)
}

pub(super) fn info_value(js: &JetStream, entry: &StreamEntry, name: &str) -> Reply {
    serde_json::to_value(consumer_info(js, entry, name)?)
        .map_err(|e| ApiError::store_failed(e.to_string()))
}

pub fn names(js: &JetStream, stream_name: &str, payload: &[u8]) -> Reply {
    let entry = find(js, stream_name)?;
    let req: StreamListRequest = parse_optional(js, payload)?;
    let all: Vec<String> = entry.lock().consumers().keys().cloned().collect();
    let page: Vec<&String> = all.iter().skip(req.offset).take(NAMES_LIMIT).collect();
    Ok(json!({ "total": all.len(), "offset": req.offset, "limit": NAMES_LIMIT, "consumers": page }))
}

pub fn list(js: &JetStream, stream_name: &str, payload: &[u8]) -> Reply {
    let entry = find(js, stream_name)?;
    let req: StreamListRequest = parse_optional(js, payload)?;
    let all: Vec<String> = entry.lock().consumers().keys().cloned().collect();
    let mut infos: Vec<Value> = Vec::new();
    for name in all.iter().skip(req.offset).take(LIST_LIMIT) {
        let info = consumer_info(js, &entry, name)?;
        infos.push(serde_json::to_value(info).map_err(|e| ApiError::store_failed(e.to_string()))?);
    }
    Ok(json!({ "total": all.len(), "offset": req.offset, "limit": LIST_LIMIT, "consumers": infos }))
}
