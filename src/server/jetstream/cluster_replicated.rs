//! The JetStream API for replicated (R>1) streams in a cluster: what such a stream may be
//! asked to be, and which of its replicas answers what.
//!
//! Every replica runs the stream, so "the server that runs it" is not one server: requests
//! about the stream go to the replica that leads its group; a request about one consumer
//! goes to the server that runs that consumer: the leader for a replicated consumer (whose
//! creates, updates and deletes are entries of the stream's group), the server it was made
//! on for an R1 one, or, when none does, to the leader, which says it is not found.

use serde_json::json;

use std::sync::{Arc, Weak};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::api;
use super::api_consumer_admin as admin;
use super::api_consumers::{check_create, info_value, parse_create};
use super::cluster_api::{not_built, Route};
use super::replicated::Proposal;
use super::replicated_stream_ops as stream_ops;
use super::{now_ns, JetStream, StreamEntry};
use crate::jetstream::api_types::PeerInfo;
use crate::jetstream::replica_consumers::ConsumerOp;
use crate::jetstream::stream_config::Storage;
use crate::jetstream::{ApiError, StreamConfig};
use crate::server::raft_link::publish;

/// Refuses what a replicated stream cannot honour yet, by name. Each of these would let the
/// replicas' stores differ: messages made by a replica's own timers or pumps (schedules,
/// delete markers, mirrors and sources), state that lives outside the applied entries
/// (staged atomic and fast batches).
pub(super) fn refuse_unbuilt(config: &StreamConfig) -> Result<(), ApiError> {
    if config.num_replicas <= 1 {
        return Ok(());
    }
    let unbuilt = [
        (config.mirror.is_some(), "a replicated mirror"),
        (config.sources.is_some(), "a replicated stream with sources"),
        (
            config.allow_msg_schedules,
            "message schedules on a replicated stream",
        ),
        (
            config.subject_delete_marker_ttl > 0,
            "subject delete markers on a replicated stream",
        ),
        (config.allow_atomic, "atomic batches on a replicated stream"),
        (config.allow_batched, "fast batches on a replicated stream"),
        (
            config.persist_mode != Default::default(),
            "asynchronous persistence on a replicated stream",
        ),
    ];
    match unbuilt.iter().find(|(asked, _)| *asked) {
        Some((_, what)) => Err(not_built(what)),
        None => Ok(()),
    }
}

/// Refuses a change of the number of a memory stream's replicas: its messages would not
/// survive the stream's reopening as, or as no longer, replicated. A file stream's replicas
/// move with `cluster_js::stream_moves`; other changes of a replicated stream are entries of
/// its group (`replicated_stream_ops`).
pub(super) fn refuse_update(running: &StreamConfig, asked: &StreamConfig) -> Result<(), ApiError> {
    let changed = running.num_replicas.max(1) != asked.num_replicas.max(1);
    match (changed, running.storage) {
        (true, Storage::Memory) => Err(not_built(
            "changing the number of a memory stream's replicas",
        )),
        _ => Ok(()),
    }
}

/// Who answers a request about `stream`, when this server holds a replica of it; `None` for
/// a stream that is not replicated here.
pub(super) fn route(
    js: &JetStream,
    tokens: &[&str],
    stream: &str,
    payload: &[u8],
    reply: &Option<Bytes>,
) -> Option<Route> {
    let entry = js.stream(stream)?;
    if !entry.replica.is_replicated() {
        return None;
    }
    let leading = entry.replica.leading();
    let consumer = match tokens {
        ["CONSUMER", "CREATE" | "DURABLE", ..] => None,
        ["CONSUMER", "LEADER", "STEPDOWN", _, consumer] => Some(*consumer),
        ["CONSUMER", "MSG", "NEXT", _, consumer] => Some(*consumer),
        ["CONSUMER", _, _, consumer, ..] => Some(*consumer),
        _ => None,
    };
    if let Some(name) = consumer {
        let replicated = entry
            .lock()
            .consumers()
            .get(name)
            .map(|c| c.config.is_replicated());
        return Some(match (tokens, replicated, leading) {
            (_, Some(true), _) => replicated_consumer(js, &entry, tokens, name, (payload, reply)),
            // An R1 consumer has no group to hand over (nats-server: success, nothing done).
            (["CONSUMER", "LEADER", "STEPDOWN", ..], Some(false), _) => Route::Answered(
                "consumer_leader_stepdown_response",
                Ok(json!({ "success": true })),
            ),
            (_, Some(false), _) => Route::Local,
            (_, None, true) => Route::Local,
            (_, None, false) => Route::Ignore,
        });
    }
    if !leading {
        return Some(Route::Ignore);
    }
    Some(match tokens {
        ["CONSUMER", "CREATE" | "DURABLE", ..] => {
            create_consumer(js, tokens, stream, payload, reply)
        }
        ["STREAM", "PURGE", _] => stream_ops::purge(js, &entry, payload, reply),
        ["STREAM", "MSG", "DELETE", _] => stream_ops::msg_delete(js, &entry, payload, reply),
        ["STREAM", "LEADER", "STEPDOWN", _] => Route::Answered(
            "stream_leader_stepdown_response",
            step_down(js, stream, payload),
        ),
        _ => Route::Local,
    })
}

/// Hands the stream's group (and so its replicated consumers) to another replica.
fn step_down(js: &JetStream, stream: &str, payload: &[u8]) -> api::Reply {
    match js
        .cluster()
        .map(|c| c.stepdown_stream_group(js.account_name(), stream, payload))
    {
        Some(Ok(())) => Ok(json!({ "success": true })),
        Some(Err(e)) => Err(e),
        None => Err(ApiError::temporarily_unavailable()),
    }
}

/// A request about a replicated consumer, on the leader that runs it (a follower does not
/// hold it, and ignores the request). Its changes are entries of the stream's group.
fn replicated_consumer(
    js: &JetStream,
    entry: &Arc<StreamEntry>,
    tokens: &[&str],
    name: &str,
    (payload, reply): (&[u8], &Option<Bytes>),
) -> Route {
    let stream = entry.name();
    match tokens {
        // Its leader is the stream's: a stepdown hands over both.
        ["CONSUMER", "LEADER", "STEPDOWN", ..] => Route::Answered(
            "consumer_leader_stepdown_response",
            step_down(js, stream, payload),
        ),
        ["CONSUMER", "DELETE", ..] => {
            let op = ConsumerOp::Delete {
                name: name.to_string(),
            };
            proposed(js, entry, op, reply, "consumer_delete_response", |_, _| {
                Ok(json!({ "success": true }))
            })
        }
        // A pause is part of the config, a reset of the state: each is made on the
        // leader's running consumer as on a single server, and answered once the group
        // has the consumer's new config or state. A pin is not kept across restarts
        // anywhere, so an unpin is the leader's alone.
        ["CONSUMER", "PAUSE", ..] => {
            let kind = "consumer_pause_response";
            let answer = match admin::pause(js, stream, name, payload) {
                Ok(answer) => answer,
                Err(e) => return Route::Answered(kind, Err(e)),
            };
            let put = entry
                .lock()
                .consumers()
                .get(name)
                .map(|c| ConsumerOp::put(name, c.created_ns.max(0) as u64, &c.config, false));
            match put {
                Some(Ok(op)) => proposed(js, entry, op, reply, kind, move |_, _| Ok(answer)),
                Some(Err(e)) => Route::Answered(kind, Err(e)),
                None => Route::Answered(kind, Err(ApiError::consumer_not_found())),
            }
        }
        ["CONSUMER", "RESET", ..] => {
            let kind = "consumer_reset_response";
            let answer = match admin::reset(js, stream, name, payload) {
                Ok(answer) => answer,
                Err(e) => return Route::Answered(kind, Err(e)),
            };
            let state = entry.lock().consumer_mut(name).map(|c| {
                c.dirty = false;
                Bytes::from(prost::Message::encode_to_vec(&c.state_pb()))
            });
            match state {
                Some(state) => {
                    let op = ConsumerOp::States {
                        states: vec![(name.to_string(), state)],
                        removed: Vec::new(),
                    };
                    proposed(js, entry, op, reply, kind, move |_, _| Ok(answer))
                }
                None => Route::Answered(kind, Err(ApiError::consumer_not_found())),
            }
        }
        _ => Route::Local,
    }
}

/// A consumer create or update on a replicated stream's leader: a replicated consumer is
/// made by its group (answered once the entry is applied here); an R1 one as on a single
/// server.
fn create_consumer(
    js: &JetStream,
    tokens: &[&str],
    stream: &str,
    payload: &[u8],
    reply: &Option<Bytes>,
) -> Route {
    const KIND: &str = "consumer_create_response";
    let checked = parse_create(js, tokens, stream, payload).and_then(|mut req| {
        let entry = req.entry.clone();
        let stream = entry.lock();
        check_create(js, &stream, &mut req)?;
        let was = stream
            .consumers()
            .get(&req.name)
            .map(|c| c.config.is_replicated());
        drop(stream);
        Ok((req, was))
    });
    let (req, was) = match checked {
        Ok(checked) => checked,
        Err(e) => return Route::Answered(KIND, Err(e)),
    };
    let replicated = req.config.is_replicated();
    if was.is_some_and(|was| was != replicated) {
        return Route::Answered(
            KIND,
            Err(not_built("changing the number of a consumer's replicas")),
        );
    }
    if !replicated {
        return Route::Local;
    }
    let only_new = req.action == "create";
    let op = match ConsumerOp::put(&req.name, now_ns(), &req.config, only_new) {
        Ok(op) => op,
        Err(e) => return Route::Answered(KIND, Err(e)),
    };
    proposed(js, &req.entry, op, reply, KIND, move |js, entry| {
        // A create that raced another create of the name through the group was not
        // applied (`ConsumerOp::Put::only_new`): the consumer has the other one's config.
        let running = entry
            .lock()
            .consumers()
            .get(&req.name)
            .map(|c| c.config == req.config);
        if only_new && running == Some(false) {
            return Err(ApiError::new(400, 10148, "consumer already exists"));
        }
        info_value(js, entry, &req.name)
    })
}

/// How long an API request waits for its consumer entry to be applied before it is
/// answered as unavailable (nats-server's clients wait 5 s by default).
const CONSUMER_ENTRY_WAIT: std::time::Duration = std::time::Duration::from_secs(4);

/// Proposes `op` and, once it is applied here, answers with `answer`.
fn proposed(
    js: &JetStream,
    entry: &Arc<StreamEntry>,
    op: ConsumerOp,
    reply: &Option<Bytes>,
    kind: &'static str,
    answer: impl FnOnce(&JetStream, &StreamEntry) -> api::Reply + Send + 'static,
) -> Route {
    let (done, applied) = oneshot::channel();
    let proposal = Proposal::Consumers {
        op,
        replies: Vec::new(),
        done: Some(done),
    };
    if !entry.replica.propose(proposal) {
        return Route::Answered(kind, Err(ApiError::temporarily_unavailable()));
    }
    let entry = entry.clone();
    answer_later(js, reply, kind, move |me| async move {
        match tokio::time::timeout(CONSUMER_ENTRY_WAIT, applied).await {
            Ok(Ok(())) => answer(&me, &entry),
            _ => Err(ApiError::temporarily_unavailable()),
        }
    })
}

/// Answers `reply` with what `work` comes to, from a task on the cluster's runtime (a
/// request about a replicated stream whose answer waits for its group).
pub(super) fn answer_later<F, Fut>(
    js: &JetStream,
    reply: &Option<Bytes>,
    kind: &'static str,
    work: F,
) -> Route
where
    F: FnOnce(Arc<JetStream>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = api::Reply> + Send + 'static,
{
    let (Some(cluster), Some(me)) = (js.cluster(), js.me.get().and_then(Weak::upgrade)) else {
        return Route::Answered(kind, Err(ApiError::temporarily_unavailable()));
    };
    let reply = reply.clone();
    cluster.spawn(async move {
        let answer = work(me.clone()).await;
        if let Some(reply) = reply {
            let (body, _) = api::encode(kind, answer);
            publish(me.router(), reply, None, Bytes::from(body)).await;
        }
    });
    Route::Deferred
}

/// `cluster.replicas` of a replicated stream's info, as its leader sees its group.
pub(super) fn replicas_info(js: &JetStream, stream: &str) -> Option<(String, Vec<PeerInfo>)> {
    let cluster = js.cluster()?;
    let state = cluster.stream_group_state(js.account_name(), stream)?;
    let online = cluster.hosts_online();
    let replicas = state
        .replicas
        .into_iter()
        .map(|p| PeerInfo {
            peer: crate::raft::types::peer_id(&p.name),
            offline: !online.contains(&p.name),
            name: p.name,
            current: p.current,
            active: p.active,
            lag: p.lag,
        })
        .collect();
    Some((state.leader.unwrap_or_default(), replicas))
}
