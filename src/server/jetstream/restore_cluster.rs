//! A stream restored into a cluster (issue 20). The meta leader takes the restore: it builds
//! the stream on its own store with one replica (`restore`), gives it to the catalog on
//! itself, and, for a backup of a replicated stream, then asks for its replicas: the stream
//! moves to them as any stream made replicated does (`cluster_js::stream_moves`), and its
//! durables stay R1 on this server, as a stream's R1 consumers do when it goes up.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::cluster_api::refusal;
use super::cluster_placement::place;
use super::restore::restored_answer;
use super::{now_ns, JetStream};
use crate::jetstream::assignments::{MetaCommand, MetaOutcome, Placement, StreamAssignment};
use crate::jetstream::{ApiError, StreamConfig};
use crate::server::cluster_js::ClusterJs;
use crate::server::raft_link::publish;

/// How long the answer waits for the stream to run replicated here.
const REPLICATED_WAIT: Duration = Duration::from_secs(4);

/// Gives the stream just restored here, with one replica, to the cluster as `wanted`, and
/// then answers `reply`; a stream the catalog refuses is deleted again.
pub(super) fn adopt(js: &JetStream, cluster: &Arc<ClusterJs>, wanted: StreamConfig, reply: Bytes) {
    let Some(me) = js.me.get().and_then(Weak::upgrade) else {
        return;
    };
    let proposer = cluster.clone();
    cluster.spawn(async move {
        let name = wanted.name.clone();
        let placed = assign(&me, &proposer, wanted).await;
        let in_catalog = proposer
            .catalog()
            .stream(me.account_name(), &name)
            .is_some();
        if placed.is_err() && !in_catalog {
            let (js, gone) = (me.clone(), name.clone());
            let _ = tokio::task::spawn_blocking(move || js.unhost_stream(&gone)).await;
        }
        let body = restored_answer(&me, &name, placed, true);
        publish(me.router(), reply, None, body).await;
    });
}

/// The catalog's stream on this server, then (for more than one replica) on its replicas.
async fn assign(
    js: &Arc<JetStream>,
    cluster: &Arc<ClusterJs>,
    wanted: StreamConfig,
) -> Result<(), ApiError> {
    let mut here = wanted.clone();
    here.num_replicas = 1;
    let mut stream = StreamAssignment {
        account: js.account_name().to_owned(),
        name: wanted.name.clone(),
        config: serde_json::to_string(&here).map_err(ApiError::invalid_json)?,
        placement: Placement {
            group: String::new(),
            peers: vec![cluster.server_name().to_owned()],
            preferred: None,
        },
        created_ns: now_ns(),
        consumers: Default::default(),
    };
    propose(cluster, stream.clone(), false).await?;
    if wanted.num_replicas <= 1 {
        return Ok(());
    }
    stream.placement = {
        let catalog = cluster.catalog();
        place(
            cluster,
            &catalog,
            js.account_name(),
            &wanted,
            &stream.placement.peers,
            &[],
        )?
    };
    stream.config = serde_json::to_string(&wanted).map_err(ApiError::invalid_json)?;
    propose(cluster, stream, true).await?;
    let deadline = Instant::now() + REPLICATED_WAIT;
    while Instant::now() < deadline && !js.stream(&wanted.name).is_some_and(|e| e.is_replicated()) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

async fn propose(
    cluster: &ClusterJs,
    stream: StreamAssignment,
    update: bool,
) -> Result<(), ApiError> {
    let command = MetaCommand::AssignStream {
        stream,
        update,
        reply: None,
    };
    match cluster.propose(command).await {
        Ok(MetaOutcome::Done | MetaOutcome::Unchanged) => Ok(()),
        Ok(outcome) => Err(refusal(outcome)),
        Err(_) => Err(ApiError::temporarily_unavailable()),
    }
}
