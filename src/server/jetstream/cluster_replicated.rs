//! The JetStream API for replicated (R>1) streams in a cluster: what such a stream may be
//! asked to be, and which of its replicas answers what.
//!
//! Every replica runs the stream, so "the server that runs it" is not one server: requests
//! about the stream go to the replica that leads its group; a request about one consumer
//! goes to the server that holds that consumer (consumers are R1, kept where they were made,
//! see `docs/clustering.md`), or, when none does, to the leader, which says it is not found.

use serde_json::json;

use super::cluster_api::{not_built, Route};
use super::JetStream;
use crate::jetstream::api_types::PeerInfo;
use crate::jetstream::stream_config::Retention;
use crate::jetstream::{ApiError, StreamConfig};

/// Refuses what a replicated stream cannot honour yet, by name. Each of these would let the
/// replicas' stores differ: messages made by a replica's own timers or pumps (schedules,
/// delete markers, mirrors and sources), state that lives outside the applied entries
/// (staged atomic and fast batches), or removals made by one replica's consumers (interest
/// and work-queue retention).
pub(super) fn refuse_unbuilt(config: &StreamConfig) -> Result<(), ApiError> {
    if config.num_replicas <= 1 {
        return Ok(());
    }
    let unbuilt = [
        (config.mirror.is_some(), "a replicated mirror"),
        (config.sources.is_some(), "a replicated stream with sources"),
        (
            config.retention != Retention::Limits,
            "a replicated stream with interest or work-queue retention",
        ),
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

/// Refuses a change of a replicated stream, or into one: moving data between a stream's
/// replicas, and a config change applied in step with the stream's entries, are not built.
pub(super) fn refuse_update(running: &StreamConfig, asked: &StreamConfig) -> Result<(), ApiError> {
    if running.num_replicas == asked.num_replicas && running.num_replicas <= 1 {
        return Ok(());
    }
    if running.num_replicas != asked.num_replicas {
        return Err(not_built("changing the number of a stream's replicas"));
    }
    match running == asked {
        true => Ok(()),
        false => Err(not_built("updating a replicated stream")),
    }
}

/// Who answers a request about `stream`, when this server holds a replica of it; `None` for
/// a stream that is not replicated here.
pub(super) fn route(js: &JetStream, tokens: &[&str], stream: &str) -> Option<Route> {
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
        let here = entry.lock().consumers().contains_key(name);
        return Some(match (tokens, here, leading) {
            // An R1 consumer has no group to hand over (nats-server: success, nothing done).
            (["CONSUMER", "LEADER", "STEPDOWN", ..], true, _) => Route::Answered(
                "consumer_leader_stepdown_response",
                Ok(json!({ "success": true })),
            ),
            (_, true, _) => Route::Local,
            (_, false, true) => Route::Local,
            (_, false, false) => Route::Ignore,
        });
    }
    if !leading {
        return Some(Route::Ignore);
    }
    let refused = |kind: &'static str, what: &str| Route::Answered(kind, Err(not_built(what)));
    Some(match tokens {
        ["STREAM", "PURGE", _] => refused("stream_purge_response", "purging a replicated stream"),
        ["STREAM", "MSG", "DELETE", _] => refused(
            "stream_msg_delete_response",
            "deleting a message of a replicated stream",
        ),
        ["STREAM", "LEADER", "STEPDOWN", _] => {
            let handed = js
                .cluster()
                .map(|c| c.stepdown_stream_group(js.account_name(), stream));
            Route::Answered(
                "stream_leader_stepdown_response",
                match handed {
                    Some(Ok(())) => Ok(json!({ "success": true })),
                    Some(Err(e)) => Err(e),
                    None => Err(ApiError::temporarily_unavailable()),
                },
            )
        }
        ["STREAM", "SNAPSHOT", _] => refused(
            "stream_snapshot_response",
            "a snapshot of a replicated stream",
        ),
        _ => Route::Local,
    })
}

/// `cluster.replicas` of a replicated stream's info, as its leader sees its group.
pub(super) fn replicas_info(js: &JetStream, stream: &str) -> Option<(String, Vec<PeerInfo>)> {
    let state = js
        .cluster()?
        .stream_group_state(js.account_name(), stream)?;
    let replicas = state
        .replicas
        .into_iter()
        .map(|(name, current, lag)| PeerInfo {
            peer: crate::raft::types::peer_id(&name),
            name,
            current,
            active: 0,
            lag,
        })
        .collect();
    Some((state.leader.unwrap_or_default(), replicas))
}
