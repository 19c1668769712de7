//! The operator's requests on the meta group, made in the system account and answered by
//! the meta leader alone, as nats-server does: `$JS.API.META.LEADER.STEPDOWN` hands the
//! leadership to another server, `$JS.API.SERVER.REMOVE` takes a server out of the group.
//!
//! openraft 0.9 has no "step down": followers refuse to vote while their leader's lease
//! lasts. So the leader stops sending heartbeats and stops campaigning itself, and asks the
//! chosen server to campaign (`$JLC.ELECT.<node>`) until it has won; then the old leader
//! heartbeats again, as it must whenever it leads later.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use openraft::ChangeMembers;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use super::super::raft_link::{publish, subscribe, Unsubscribe};
use super::ClusterJs;
use crate::jetstream::ApiError;
use crate::raft::types::{node_id, peer_id, NodeId};

pub const STEPDOWN_SUBJECT: &str = "$JS.API.META.LEADER.STEPDOWN";
pub const SERVER_REMOVE_SUBJECT: &str = "$JS.API.SERVER.REMOVE";
const ELECT_PREFIX: &str = "$JLC.ELECT";
/// How long a stepdown waits for another server to win before the leader leads on.
const STEPDOWN_LIMIT: Duration = Duration::from_secs(15);
/// How often the chosen server is asked to campaign meanwhile.
const ELECT_EVERY: Duration = Duration::from_millis(300);
/// How many times a stepdown asks one member to campaign before it asks the next (a member
/// that cannot win, as one whose log is behind, would otherwise hold the handover up).
const ASKS_PER_CANDIDATE: usize = 5;

/// A leader stepdown's body (nats-server 2.11's `JSApiLeaderStepdownRequest`).
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct StepdownRequest {
    pub placement: Option<StepdownPlacement>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct StepdownPlacement {
    pub cluster: String,
    pub tags: Vec<String>,
    pub preferred: String,
}

impl StepdownRequest {
    /// Reads a stepdown's body (empty: no placement); tags are refused by name, as
    /// jetlog does not pick a leader by them.
    pub(super) fn parse(payload: &[u8]) -> Result<StepdownPlacement, ApiError> {
        let request: StepdownRequest = match payload.iter().all(u8::is_ascii_whitespace) {
            true => StepdownRequest::default(),
            false => serde_json::from_slice(payload).map_err(ApiError::invalid_json)?,
        };
        let placement = request.placement.unwrap_or_default();
        if !placement.tags.is_empty() {
            return Err(ApiError::new(
                400,
                10011,
                "tags placement not supported for operation",
            ));
        }
        Ok(placement)
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RemoveRequest {
    peer: String,
    peer_id: String,
}

/// Subscribes the two requests and this server's campaign subject in the system account.
pub fn serve(cluster: Arc<ClusterJs>) -> JoinHandle<()> {
    let router = cluster.system.clone();
    let (stepdown_sub, mut stepdowns) = subscribe(&router, STEPDOWN_SUBJECT);
    let (remove_sub, mut removes) = subscribe(&router, SERVER_REMOVE_SUBJECT);
    let elect_subject = format!("{ELECT_PREFIX}.{:x}", cluster.me_id);
    let (elect_sub, mut elects) = subscribe(&router, &elect_subject);
    tokio::spawn(async move {
        let _unsubscribe = (
            Unsubscribe(router.clone(), stepdown_sub),
            Unsubscribe(router.clone(), remove_sub),
            Unsubscribe(router.clone(), elect_sub),
        );
        loop {
            tokio::select! {
                Some(request) = stepdowns.recv() => {
                    if !cluster.is_leader() { continue; }
                    let answer = stepdown(&cluster, &request.msg.payload);
                    reply(&cluster, request.msg.reply, "meta_leader_stepdown_response", answer).await;
                }
                Some(request) = removes.recv() => {
                    if !cluster.is_leader() { continue; }
                    let answer = remove(&cluster, &request.msg.payload).await;
                    reply(&cluster, request.msg.reply, "meta_server_remove_response", answer).await;
                }
                Some(_) = elects.recv() => {
                    if let Err(e) = cluster.raft.trigger().elect().await {
                        tracing::warn!("JetStream meta group: cannot campaign: {e}");
                    }
                }
                else => break,
            }
        }
    })
}

async fn reply(cluster: &ClusterJs, to: Option<Bytes>, kind: &str, answer: Result<(), ApiError>) {
    let Some(to) = to else {
        return;
    };
    let mut body = match answer {
        Ok(()) => json!({ "success": true }),
        Err(e) => json!({ "error": e, "success": false }),
    };
    body["type"] = Value::String(format!("io.nats.jetstream.api.v1.{kind}"));
    let body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
    publish(&cluster.system, to, None, body).await;
}

/// Picks the next leader and starts handing over; answers at once, as nats-server does.
fn stepdown(cluster: &Arc<ClusterJs>, payload: &[u8]) -> Result<(), ApiError> {
    let placement = StepdownRequest::parse(payload)?;
    if !placement.cluster.is_empty() && placement.cluster != cluster.cluster_name {
        return Err(no_replacement());
    }
    // The online voters (`hosts_online` counts only those), less this server.
    let mut candidates: Vec<String> = cluster
        .hosts_online()
        .into_iter()
        .filter(|name| *name != cluster.me)
        .collect();
    if !placement.preferred.is_empty() {
        candidates.retain(|name| *name == placement.preferred);
    }
    // A different one each time, so repeated stepdowns go round the servers.
    let pick = usize::try_from(crate::server::jetstream::now_ns() % 997).unwrap_or(0);
    let Some(next) = candidates.get(pick % candidates.len().max(1)).cloned() else {
        return Err(no_replacement());
    };
    let cluster = cluster.clone();
    tokio::spawn(async move { hand_over(&cluster, &next).await });
    Ok(())
}

async fn hand_over(cluster: &ClusterJs, next: &str) {
    let subject = Bytes::from(format!("{ELECT_PREFIX}.{:x}", node_id(next)));
    let handed = hand_over_group(&cluster.raft, &cluster.system, cluster.me_id, &[subject]).await;
    match handed {
        false => tracing::warn!("JetStream meta leader stepdown: {next} did not take over"),
        true => tracing::info!("JetStream meta leader stepped down for {next}"),
    }
}

/// Hands a group's leadership to a member that campaigns on one of `elect_subjects`: this
/// leader stops heartbeating and campaigning and asks the first to campaign until another
/// member leads, the next after [`ASKS_PER_CANDIDATE`] asks, and so on (or until
/// [`STEPDOWN_LIMIT`] has passed), then heartbeats and campaigns again. Whether another
/// member took over.
pub(super) async fn hand_over_group(
    raft: &openraft::Raft<crate::raft::types::JetlogRaft>,
    system: &Arc<crate::server::router::Router>,
    me: NodeId,
    elect_subjects: &[Bytes],
) -> bool {
    // Done only once another member leads: this one ceasing to lead is not enough, since a
    // candidate whose log lacks the last entries makes it step down yet cannot win, and this
    // member would then win the next election itself (seen when a stepdown came right
    // after a consumer's entry).
    let another_leads = || {
        raft.metrics()
            .borrow()
            .current_leader
            .is_some_and(|leader| leader != me)
    };
    let config = raft.runtime_config();
    config.heartbeat(false);
    config.elect(false);
    let deadline = Instant::now() + STEPDOWN_LIMIT;
    let mut asks = 0usize;
    while !another_leads() && Instant::now() < deadline && !elect_subjects.is_empty() {
        let subject = &elect_subjects[(asks / ASKS_PER_CANDIDATE) % elect_subjects.len()];
        publish(system, subject.clone(), None, Bytes::new()).await;
        asks += 1;
        tokio::time::sleep(ELECT_EVERY).await;
    }
    let config = raft.runtime_config();
    config.heartbeat(true);
    config.elect(true);
    another_leads()
}

/// The subject a stream group's member campaigns on when its leader hands over to it.
pub(super) fn stream_elect_subject(group: &str, node: NodeId) -> String {
    format!("{ELECT_PREFIX}.{group}.{node:x}")
}

/// `400/10005`: no other server to hand a leadership to.
pub(super) fn no_replacement() -> ApiError {
    ApiError::new(400, 10005, "no replacement peer connected")
}

/// Takes a server out of the meta group (by name, or by nats-server's peer id).
async fn remove(cluster: &ClusterJs, payload: &[u8]) -> Result<(), ApiError> {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(None));
    }
    let request: RemoveRequest = serde_json::from_slice(payload).map_err(ApiError::invalid_json)?;
    let metrics = cluster.raft.metrics().borrow().clone();
    let mut names: Vec<String> = cluster.routes.jetstream_peer_names().into_iter().collect();
    names.extend(cluster.held_out_names());
    names.push(cluster.me.clone());
    let voters: BTreeSet<NodeId> = metrics.membership_config.membership().voter_ids().collect();
    let found = names.into_iter().find(|name| {
        voters.contains(&node_id(name))
            && match request.peer_id.is_empty() {
                true => *name == request.peer,
                false => peer_id(name) == request.peer_id,
            }
    });
    let Some(name) = found else {
        return Err(ApiError::new(
            400,
            10044,
            "server is not a member of the cluster",
        ));
    };
    cluster.hold_out(&name);
    let remove = ChangeMembers::RemoveVoters(BTreeSet::from([node_id(&name)]));
    cluster
        .raft
        .change_membership(remove, false)
        .await
        .map(drop)
        .map_err(|e| ApiError::new(500, 10041, e.to_string()))
}
