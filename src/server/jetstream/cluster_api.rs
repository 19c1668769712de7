//! The JetStream API in a cluster: which server answers which request, and the meta
//! leader's part. Every server's API thread receives every request of its account (each
//! subscribes `$JS.API.>`, and the routes carry the interest), so each must decide to
//! answer or stay silent, as nats-server's do (docs/jetstream-cluster-facts.md §1.3):
//! - changes to the catalog and questions about the whole account: the meta leader;
//! - anything about one stream or its consumers: the server that runs the stream, or the
//!   meta leader with "not found" when no server does.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};

use super::api::{self, LIST_LIMIT, NAMES_LIMIT};
use super::cluster_local::total_usage;
use super::cluster_placement::{keeping_leader_first, peer_remove, place};
use super::{now_ns, JetStream};
use crate::jetstream::api_types::{from_go_json, StreamListRequest};
use crate::jetstream::assignments::{
    Assignments, MetaCommand, MetaOutcome, StreamAssignment, STREAM_NAME_IN_USE, STREAM_NOT_FOUND,
    STREAM_SUBJECT_OVERLAP,
};
use crate::jetstream::{ApiError, StreamConfig};
use crate::protocol::subject::subjects_overlap;
use crate::server::cluster_js::requests::GatherRequest;
use crate::server::cluster_js::ClusterJs;
use crate::server::raft_link::publish;

/// What the API thread does with one request.
pub(super) enum Route {
    /// Answer it here, as a single server would.
    Local,
    /// Another server answers it.
    Ignore,
    /// This answer, now.
    Answered(&'static str, api::Reply),
    /// A task answers it (after a proposal or a gather).
    Deferred,
}

/// Decides who answers `subject`; starts the meta leader's work when that is this server.
pub(super) fn route(js: &JetStream, subject: &str, payload: &[u8], reply: Option<Bytes>) -> Route {
    // Until this JetStream has joined the meta group it knows nothing of the cluster's
    // streams, so any answer could be wrong.
    let Some(cluster) = js.cluster() else {
        return Route::Ignore;
    };
    let tokens: Vec<&str> = subject.split('.').skip(2).collect();
    let leader = cluster.is_leader();
    let for_meta_leader = matches!(
        tokens.as_slice(),
        ["INFO"]
            | ["STREAM", "CREATE" | "UPDATE" | "DELETE" | "RESTORE", _]
            | ["STREAM", "NAMES" | "LIST"]
            | ["STREAM", "PEER" | "CANCEL_MOVE", ..]
            | ["META" | "SERVER" | "ACCOUNT", ..]
    );
    if for_meta_leader && !leader {
        if cluster.leaderless() {
            return Route::Answered("error_response", Err(ApiError::temporarily_unavailable()));
        }
        return Route::Ignore;
    }
    if !for_meta_leader {
        let replicated = stream_named(&tokens)
            .and_then(|name| super::cluster_replicated::route(js, &tokens, name, payload, &reply));
        if let Some(route) = replicated {
            return route;
        }
    }
    match tokens.as_slice() {
        ["INFO"] => account_info(js, cluster, reply),
        ["STREAM", "CREATE", name] => assign(js, cluster, name, payload, false, reply),
        ["STREAM", "UPDATE", name] => assign(js, cluster, name, payload, true, reply),
        ["STREAM", "DELETE", name] => remove(js, cluster, name, reply),
        ["STREAM", "NAMES"] => {
            Route::Answered("stream_names_response", names(js, cluster, payload))
        }
        ["STREAM", "LIST"] => list(js, cluster, payload, reply),
        ["STREAM", "RESTORE", name] => Route::Answered(
            "stream_restore_response",
            super::restore::stream_restore(js, name, payload),
        ),
        // The system account's requests (`server::cluster_js::meta_ops`): from any other
        // account nats-server ignores them, with a warning.
        ["META" | "SERVER" | "ACCOUNT", ..] => {
            tracing::warn!(
                account = %js.account_name,
                "JetStream API request {subject} from a non-system account ignored"
            );
            Route::Ignore
        }
        ["STREAM", "PEER", "REMOVE", name] => peer_remove(js, cluster, name, payload, reply),
        ["STREAM", "PEER" | "CANCEL_MOVE", ..] => Route::Answered(
            "system_response",
            Err(not_built("moving a stream between servers")),
        ),
        // Nor has an R1 consumer (nats-server: success, nothing happens).
        ["CONSUMER", "LEADER", "STEPDOWN", stream, consumer] if js.stream(stream).is_some() => {
            let exists = js
                .stream(stream)
                .is_some_and(|e| e.lock().consumers().contains_key(*consumer));
            Route::Answered(
                "consumer_leader_stepdown_response",
                match exists {
                    true => Ok(json!({ "success": true })),
                    false => Err(ApiError::consumer_not_found()),
                },
            )
        }
        // An R1 stream has no group to hand over: nats-server answers success and does
        // nothing (facts §1.3).
        ["STREAM", "LEADER", "STEPDOWN", name] if js.stream(name).is_some() => Route::Answered(
            "stream_leader_stepdown_response",
            Ok(json!({ "success": true })),
        ),
        // A stepdown of a stream no server runs: the meta leader's 10059 (the local handler
        // would speak of clustering support).
        ["CONSUMER", "LEADER", "STEPDOWN", stream, _]
            if leader && cluster.catalog().stream(&js.account_name, stream).is_none() =>
        {
            Route::Answered(
                "consumer_leader_stepdown_response",
                Err(ApiError::stream_not_found()),
            )
        }
        ["STREAM", "LEADER", "STEPDOWN", name]
            if leader && cluster.catalog().stream(&js.account_name, name).is_none() =>
        {
            Route::Answered(
                "stream_leader_stepdown_response",
                Err(ApiError::stream_not_found()),
            )
        }
        _ => match stream_named(&tokens) {
            Some(name) if js.stream(name).is_some() => Route::Local,
            // No server runs it: the meta leader says so, as the local handler will.
            Some(name) if leader && cluster.catalog().stream(&js.account_name, name).is_none() => {
                Route::Local
            }
            Some(_) => Route::Ignore,
            None if leader => Route::Local,
            None => Route::Ignore,
        },
    }
}

/// The stream a request is about, for those answered by the stream's server.
fn stream_named<'a>(tokens: &[&'a str]) -> Option<&'a str> {
    match tokens {
        ["CONSUMER", "LEADER", "STEPDOWN", stream, _] => Some(stream),
        ["STREAM", "MSG", _, name] | ["STREAM", "LEADER", "STEPDOWN", name] => Some(name),
        ["STREAM", _, name] => Some(name),
        ["CONSUMER", "DURABLE", "CREATE", stream, _] => Some(stream),
        ["CONSUMER", _, stream, ..] => Some(stream),
        _ => None,
    }
}

/// `STREAM.PEER.REMOVE`: an R1 stream's one server cannot be taken away without losing its
/// messages (nats-server 2.9.10 re-created it empty elsewhere; its current source refuses a
/// removal it cannot replace, 10075), so the only member is refused; anyone else is not a
/// member.
/// A request a jetlog cluster cannot serve yet, refused by name.
pub(super) fn not_built(what: &str) -> ApiError {
    ApiError::new(
        503,
        10010,
        format!(
            "JetStream clustering support required: {what} is not built in a jetlog cluster yet"
        ),
    )
}

fn account_info(js: &JetStream, cluster: &Arc<ClusterJs>, reply: Option<Bytes>) -> Route {
    let Some(me) = js.me.get().and_then(std::sync::Weak::upgrade) else {
        return Route::Ignore;
    };
    let gather = cluster.clone();
    cluster.spawn(async move {
        let request = GatherRequest {
            account: me.account_name.clone(),
            subject: None,
        };
        let answers = gather.gather("USAGE", request).await;
        let (body, _) = api::encode(
            "account_info_response",
            api::account_info_of(&me, total_usage(&answers)),
        );
        if let Some(reply) = reply {
            publish(&me.router, reply, None, Bytes::from(body)).await;
        }
    });
    Route::Deferred
}

/// The stream a create or update asks for, checked against the catalog and placed.
fn assign(
    js: &JetStream,
    cluster: &Arc<ClusterJs>,
    name: &str,
    payload: &[u8],
    update: bool,
    reply: Option<Bytes>,
) -> Route {
    let kind = match update {
        true => "stream_update_response",
        false => "stream_create_response",
    };
    let stream = match checked(js, cluster, name, payload, update) {
        Ok(stream) => stream,
        Err(e) => return Route::Answered(kind, Err(e)),
    };
    let proposer = cluster.clone();
    let router = js.router.clone();
    cluster.spawn(async move {
        let command = MetaCommand::AssignStream {
            stream,
            update,
            reply: reply
                .as_ref()
                .map(|r| String::from_utf8_lossy(r).into_owned()),
        };
        // Once committed, the server that runs the stream answers.
        let refused = match proposer.propose(command).await {
            Ok(MetaOutcome::Done | MetaOutcome::Unchanged) => return,
            Ok(outcome) => refusal(outcome),
            Err(_) => ApiError::temporarily_unavailable(),
        };
        if let Some(reply) = reply {
            let (body, _) = api::encode(kind, Err(refused));
            publish(&router, reply, None, Bytes::from(body)).await;
        }
    });
    Route::Deferred
}

pub(super) fn refusal(outcome: MetaOutcome) -> ApiError {
    match outcome {
        MetaOutcome::Refused(STREAM_NAME_IN_USE) => ApiError::stream_name_in_use(),
        MetaOutcome::Refused(STREAM_NOT_FOUND) => ApiError::stream_not_found(),
        MetaOutcome::Refused(STREAM_SUBJECT_OVERLAP) => ApiError::stream_subject_overlap(),
        _ => ApiError::new(500, 10051, "the cluster could not apply the change"),
    }
}

fn checked(
    js: &JetStream,
    cluster: &ClusterJs,
    name: &str,
    payload: &[u8],
    update: bool,
) -> Result<StreamAssignment, ApiError> {
    let config = api::requested_config(js, name, payload)?;
    super::cluster_replicated::refuse_unbuilt(&config)?;
    let config_json = serde_json::to_string(&config).map_err(ApiError::invalid_json)?;
    let catalog = cluster.catalog();
    let account = js.account_name.as_str();
    let existing = catalog.stream(account, name);
    let placement = match (existing, update) {
        (None, true) => return Err(ApiError::stream_not_found()),
        (Some(old), true) => {
            let running: StreamConfig =
                from_go_json(old.config.as_bytes()).map_err(ApiError::invalid_json)?;
            super::cluster_replicated::refuse_update(&running, &config)?;
            running.check_update(&config)?;
            match running.num_replicas == config.num_replicas {
                true => old.placement.clone(),
                false => {
                    let existing = keeping_leader_first(cluster, account, name, old);
                    place(cluster, &catalog, account, &config, &existing, &[])?
                }
            }
        }
        (Some(old), false) if old.config == config_json => return Ok(old.clone()),
        (Some(_), false) => return Err(ApiError::stream_name_in_use()),
        (None, false) => {
            if let Some(limit) = js.account_limits().max_streams {
                let count = catalog.streams.get(account).map_or(0, |s| s.len());
                if count as u64 >= limit {
                    return Err(ApiError::max_streams());
                }
            }
            place(cluster, &catalog, account, &config, &[], &[])?
        }
    };
    Ok(StreamAssignment {
        account: account.to_owned(),
        name: name.to_owned(),
        config: config_json,
        placement,
        created_ns: now_ns(),
        consumers: Default::default(),
    })
}

fn configs<'a>(
    catalog: &'a Assignments,
    account: &str,
) -> impl Iterator<Item = (&'a StreamAssignment, StreamConfig)> {
    catalog
        .streams
        .get(account)
        .into_iter()
        .flat_map(|s| s.values())
        .filter_map(|s| {
            from_go_json::<StreamConfig>(s.config.as_bytes())
                .ok()
                .map(|c| (s, c))
        })
}

fn remove(js: &JetStream, cluster: &Arc<ClusterJs>, name: &str, reply: Option<Bytes>) -> Route {
    if cluster.catalog().stream(&js.account_name, name).is_none() {
        return Route::Answered("stream_delete_response", Err(ApiError::stream_not_found()));
    }
    let command = MetaCommand::RemoveStream {
        account: js.account_name.clone(),
        name: name.to_owned(),
    };
    let proposer = cluster.clone();
    let router = js.router.clone();
    cluster.spawn(async move {
        let answer = match proposer.propose(command).await {
            Ok(MetaOutcome::Done) => Ok(json!({ "success": true })),
            Ok(outcome) => Err(refusal(outcome)),
            Err(_) => Err(ApiError::temporarily_unavailable()),
        };
        if let Some(reply) = reply {
            let (body, _) = api::encode("stream_delete_response", answer);
            publish(&router, reply, None, Bytes::from(body)).await;
        }
    });
    Route::Deferred
}

/// The catalog's streams of this account whose subjects overlap `filter`, by name.
fn matching(catalog: &Assignments, account: &str, filter: Option<&str>) -> Vec<String> {
    let mut names: Vec<String> = configs(catalog, account)
        .filter(|(_, c)| match filter.filter(|f| !f.is_empty()) {
            None => true,
            Some(f) => c.subjects.iter().any(|s| subjects_overlap(s, f)),
        })
        .map(|(s, _)| s.name.clone())
        .collect();
    names.sort();
    names
}

fn names(js: &JetStream, cluster: &ClusterJs, payload: &[u8]) -> api::Reply {
    let req: StreamListRequest = api::parse_optional(js, payload)?;
    let all = matching(&cluster.catalog(), &js.account_name, req.subject.as_deref());
    let page: Vec<&String> = all.iter().skip(req.offset).take(NAMES_LIMIT).collect();
    Ok(json!({ "total": all.len(), "offset": req.offset, "limit": NAMES_LIMIT, "streams": page }))
}

/// `STREAM.LIST`: every server's infos of its streams, in name order; the catalog's
/// streams whose server did not answer are listed as `missing`, as nats-server does.
fn list(js: &JetStream, cluster: &Arc<ClusterJs>, payload: &[u8], reply: Option<Bytes>) -> Route {
    let req: StreamListRequest = match api::parse_optional(js, payload) {
        Ok(req) => req,
        Err(e) => return Route::Answered("stream_list_response", Err(e)),
    };
    let all = matching(&cluster.catalog(), &js.account_name, req.subject.as_deref());
    let gather = cluster.clone();
    let request = GatherRequest {
        account: js.account_name.clone(),
        subject: req.subject.clone(),
    };
    let router = js.router.clone();
    cluster.spawn(async move {
        let mut infos: Vec<Value> = gather
            .gather("STREAMS", request)
            .await
            .iter()
            .filter_map(|answer| serde_json::from_slice::<Vec<Value>>(answer).ok())
            .flatten()
            .collect();
        let name_of = |info: &Value| {
            info.pointer("/config/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        infos.retain(|info| all.contains(&name_of(info)));
        infos.sort_by_key(name_of);
        infos.dedup_by_key(|info| name_of(info));
        let missing: Vec<&String> = all
            .iter()
            .filter(|name| !infos.iter().any(|i| name_of(i) == **name))
            .collect();
        let page: Vec<&Value> = infos.iter().skip(req.offset).take(LIST_LIMIT).collect();
        let body = json!({
            "total": all.len(),
            "offset": req.offset,
            "limit": LIST_LIMIT,
            "streams": page,
            "missing": match missing.is_empty() { true => Value::Null, false => json!(missing) },
        });
        let (body, _) = api::encode("stream_list_response", Ok(body));
        if let Some(reply) = reply {
            publish(&router, reply, None, Bytes::from(body)).await;
        }
    });
    Route::Deferred
}
