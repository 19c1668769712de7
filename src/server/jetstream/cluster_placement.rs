//! Where a clustered stream's replicas go (issue 20): a new stream's servers, the servers
//! a stream keeps and gains when its replicas change, and the server that takes a removed
//! peer's place (`STREAM.PEER.REMOVE`). The moves themselves are `cluster_js::stream_moves`.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};

use super::api;
use super::cluster_api::{not_built, refusal, Route};
use super::JetStream;
use crate::jetstream::api_types::from_go_json;
use crate::jetstream::assignments::{
    Assignments, MetaCommand, MetaOutcome, Placement, StreamAssignment,
};
use crate::jetstream::placement::{self, Candidate};
use crate::jetstream::stream_config::Storage;
use crate::jetstream::{ApiError, StreamConfig};
use crate::server::cluster_js::ClusterJs;
use crate::server::raft_link::publish;

/// `STREAM.PEER.REMOVE`: a replicated stream's peer is replaced by a server that holds no
/// replica of it, which catches up from the group (`cluster_js::stream_moves`), and the peer
/// leaves; answered once the meta group has the new placement. With no server to take its
/// place (or for an R1 stream, whose only server cannot go without its messages) the
/// removal is refused as nats-server refuses it: 503/10075 "peer remap failed".
pub(super) fn peer_remove(
    js: &JetStream,
    cluster: &Arc<ClusterJs>,
    name: &str,
    payload: &[u8],
    reply: Option<Bytes>,
) -> Route {
    const KIND: &str = "stream_remove_peer_response";
    match replacing_peer(js, cluster, name, payload) {
        Ok(stream) => proposed_placement(js, cluster, stream, KIND, reply),
        Err(e) => Route::Answered(KIND, Err(e)),
    }
}

/// The stream with the removed peer's place taken by another server.
fn replacing_peer(
    js: &JetStream,
    cluster: &ClusterJs,
    name: &str,
    payload: &[u8],
) -> Result<StreamAssignment, ApiError> {
    #[derive(serde::Deserialize, Default)]
    #[serde(default)]
    struct PeerRemove {
        peer: String,
    }
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(None));
    }
    let request: PeerRemove = api::decode(js, payload)?;
    if request.peer.is_empty() {
        return Err(ApiError::bad_request(None));
    }
    let catalog = cluster.catalog();
    let stream = catalog
        .stream(&js.account_name, name)
        .ok_or_else(ApiError::stream_not_found)?;
    let removed = stream
        .placement
        .peers
        .iter()
        .find(|p| **p == request.peer || crate::raft::types::peer_id(p) == request.peer)
        .ok_or_else(|| ApiError::new(400, 10040, "peer not a member"))?
        .clone();
    let remap_failed = || ApiError::new(503, 10075, "peer remap failed");
    let config: StreamConfig =
        from_go_json(stream.config.as_bytes()).map_err(ApiError::invalid_json)?;
    if stream.placement.peers.len() < 2 || config.storage == Storage::Memory {
        return Err(remap_failed());
    }
    let kept: Vec<String> = stream
        .placement
        .peers
        .iter()
        .filter(|p| **p != removed)
        .cloned()
        .collect();
    let placement = place(
        cluster,
        &catalog,
        &js.account_name,
        &config,
        &kept,
        &[removed],
    )
    .map_err(|_| remap_failed())?;
    let mut replaced = stream.clone();
    replaced.placement = placement;
    Ok(replaced)
}

/// Proposes `stream` with its new placement, and answers success once it is committed.
fn proposed_placement(
    js: &JetStream,
    cluster: &Arc<ClusterJs>,
    stream: StreamAssignment,
    kind: &'static str,
    reply: Option<Bytes>,
) -> Route {
    let proposer = cluster.clone();
    let router = js.router.clone();
    cluster.spawn(async move {
        let command = MetaCommand::AssignStream {
            stream,
            update: true,
            reply: None,
        };
        let answer = match proposer.propose(command).await {
            Ok(MetaOutcome::Done | MetaOutcome::Unchanged) => Ok(json!({ "success": true })),
            Ok(outcome) => Err(refusal(outcome)),
            Err(_) => Err(ApiError::temporarily_unavailable()),
        };
        if let Some(reply) = reply {
            let (body, _) = api::encode(kind, answer);
            publish(&router, reply, None, Bytes::from(body)).await;
        }
    });
    Route::Deferred
}

/// A stream's peers, the one that leads its group first when this server knows it: a
/// stream that goes down to fewer replicas keeps the first ones, and its leader is the one
/// sure to hold all it committed (the others are brought there by the membership change).
pub(super) fn keeping_leader_first(
    cluster: &ClusterJs,
    account: &str,
    name: &str,
    old: &StreamAssignment,
) -> Vec<String> {
    let mut peers = old.placement.peers.clone();
    let leader = cluster.stream_group_leader(account, name);
    let leads = |p: &String| Some(crate::raft::types::node_id(p)) == leader;
    if let Some(at) = peers.iter().position(leads) {
        let leader = peers.remove(at);
        peers.insert(0, leader);
    }
    peers
}

/// Where a new stream runs: with the streams it copies from (a mirror or source reads
/// them on its own server), else on the online server with the fewest streams. A stream
/// whose replicas change keeps its `existing` peers, as many as it still has; one whose
/// peer is replaced never gets the servers it `ignore`s.
pub(super) fn place(
    cluster: &ClusterJs,
    catalog: &Assignments,
    account: &str,
    config: &StreamConfig,
    existing: &[String],
    ignore: &[String],
) -> Result<Placement, ApiError> {
    let wanted = config.placement.clone().unwrap_or_default();
    if !wanted.tags.is_empty() {
        return Err(not_built("placement by tags"));
    }
    let origins = origin_names(config)?;
    let mut with_origins: Vec<&String> = origins
        .iter()
        .filter_map(|o| catalog.stream(account, o))
        .flat_map(|s| s.placement.peers.iter())
        .collect();
    with_origins.sort();
    with_origins.dedup();
    let peers = match with_origins.as_slice() {
        [] => {
            let load = |host: &str| catalog.streams_on(host).count();
            let candidates: Vec<Candidate> = cluster
                .hosts_online()
                .into_iter()
                .map(|name| Candidate {
                    name,
                    cluster: cluster.cluster_name().to_owned(),
                    tags: Vec::new(),
                    online: true,
                    free_file: u64::MAX,
                    free_memory: u64::MAX,
                    ha_assets: 0,
                })
                .collect();
            let request = placement::Request {
                replicas: usize::try_from(config.num_replicas.max(1)).unwrap_or(1),
                cluster: match wanted.cluster.is_empty() {
                    true => cluster.cluster_name(),
                    false => &wanted.cluster,
                },
                tags: &[],
                storage: match config.storage {
                    Storage::File => placement::Storage::File,
                    Storage::Memory => placement::Storage::Memory,
                },
                max_bytes: u64::try_from(config.max_bytes).unwrap_or(0),
                existing,
                ignore,
                max_ha_assets: 0,
            };
            placement::select_peers(&request, &candidates, |order| {
                order.sort_by_key(|c| (load(&c.name), c.name.clone()))
            })
            .map_err(|e| ApiError::new(400, 10005, e.to_string()))?
        }
        [host] => vec![(*host).clone()],
        _ => {
            return Err(not_built(
                "copying from streams that run on different servers",
            ))
        }
    };
    Ok(Placement {
        group: String::new(),
        peers,
        preferred: None,
    })
}

/// The streams a mirror or source copies from; one in another account or domain is not
/// built in a cluster.
fn origin_names(config: &StreamConfig) -> Result<Vec<String>, ApiError> {
    let mut origins: Vec<&Value> = config.mirror.iter().collect();
    if let Some(Value::Array(sources)) = &config.sources {
        origins.extend(sources.iter());
    }
    let mut names = Vec::new();
    for origin in origins {
        if origin.get("external").is_some_and(|e| !e.is_null()) {
            return Err(not_built("a mirror or source in another account or domain"));
        }
        if let Some(name) = origin.get("name").and_then(Value::as_str) {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}
