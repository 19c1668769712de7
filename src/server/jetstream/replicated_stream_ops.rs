//! A replicated stream's purges, message deletes and config updates on this server
//! (`jetstream::replica_stream_ops`; issue 20).
//!
//! The stream's leader checks each request as a single server would, proposes it to the
//! stream's group, and answers once its own replica has applied it, with what that apply
//! did. Every replica applies it as the entry comes, between the same rounds.
//!
//! A config update reaches the group through the meta group first, as in nats-server: the
//! catalog takes the new config (so `STREAM.LIST` and a restarted server see it), and the
//! replica that leads the stream then proposes it to the stream's group and answers the
//! client. A replica that begins to lead gives the group the catalog's config if its own
//! differs, so a change whose leader lost office before proposing it is not left undone.

use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use tokio::sync::oneshot;

use super::api;
use super::cluster_api::Route;
use super::cluster_replicated::answer_later;
use super::replicated::Proposal;
use super::{JetStream, StreamEntry};
use crate::jetstream::api_types::from_go_json;
use crate::jetstream::replica_stream_ops::{StreamOp, StreamOpOutcome};
use crate::jetstream::{ApiError, Stream, StreamConfig};

/// How long a request waits for its entry to be applied on the leader before it is
/// answered as unavailable (nats-server's clients wait 5 s by default).
const STREAM_ENTRY_WAIT: Duration = Duration::from_secs(4);

impl JetStream {
    /// Applies a committed stream entry (at log `index`) to this replica.
    pub(super) fn apply_stream_op(
        &self,
        entry: &Arc<StreamEntry>,
        index: u64,
        op: &StreamOp,
    ) -> StreamOpOutcome {
        let applied = match op {
            StreamOp::Purge(request) => entry.remove_as_entry(index, |stream| {
                stream.purge(request).map(StreamOpOutcome::Purged)
            }),
            StreamOp::DeleteMsg { seq } => entry.remove_as_entry(index, |stream| {
                stream.delete_msg(*seq).map(StreamOpOutcome::Deleted)
            }),
            StreamOp::Update { config } => from_go_json::<StreamConfig>(config)
                .map_err(ApiError::invalid_json)
                .and_then(|config| self.apply_stream_update(entry, config, Some(index)))
                .map(|()| StreamOpOutcome::Updated),
        };
        applied.unwrap_or_else(|e| {
            tracing::error!(stream = %entry.name, index, "replicated stream change not applied: {e}");
            StreamOpOutcome::Failed
        })
    }

    /// Proposes `op` to the stream's group and waits (bounded) for this replica, its
    /// leader, to apply it.
    async fn propose_stream_op(
        &self,
        entry: &StreamEntry,
        op: StreamOp,
    ) -> Result<StreamOpOutcome, ApiError> {
        let (done, applied) = oneshot::channel();
        if !entry.replica.propose(Proposal::Stream { op, done }) {
            return Err(ApiError::temporarily_unavailable());
        }
        match tokio::time::timeout(STREAM_ENTRY_WAIT, applied).await {
            Ok(Ok(outcome)) => Ok(outcome),
            _ => Err(ApiError::temporarily_unavailable()),
        }
    }

    /// Gives the stream's group `config` (as the catalog holds it) unless the stream has
    /// it already, and answers as `STREAM.UPDATE` does. On the stream's leader only.
    pub async fn propose_config(&self, entry: &Arc<StreamEntry>, config: &str) -> api::Reply {
        let mut asked: StreamConfig =
            from_go_json(config.as_bytes()).map_err(ApiError::invalid_json)?;
        if *entry.lock().config() != asked {
            self.check_stream_update(entry, &mut asked)?;
            let config = serde_json::to_vec(&asked).map_err(ApiError::invalid_json)?;
            let op = StreamOp::Update {
                config: Bytes::from(config),
            };
            if self.propose_stream_op(entry, op).await? != StreamOpOutcome::Updated {
                return Err(ApiError::store_failed(
                    "the stream's replica could not take the new config",
                ));
            }
        }
        api::changed_stream_info(self, entry)
    }

    /// On a replica that has just begun to lead: the catalog's config for the stream, if
    /// its own differs (see the module's doc).
    pub(super) fn reconcile_config(&self, entry: &Arc<StreamEntry>) {
        let (Some(cluster), Some(me)) = (self.cluster(), self.me.get().and_then(Weak::upgrade))
        else {
            return;
        };
        let assigned = cluster
            .catalog()
            .stream(&self.account_name, &entry.name)
            .map(|s| s.config.clone());
        let Some(assigned) = assigned else {
            return;
        };
        let entry = entry.clone();
        cluster.spawn(async move {
            if let Err(e) = me.propose_config(&entry, &assigned).await {
                tracing::warn!(stream = %entry.name, "the catalog's config for the stream was not applied: {e}");
            }
        });
    }
}

impl StreamEntry {
    /// Removes messages as the entry at `index` says, and records it as the store's
    /// checkpoint, durable before the leader answers (as a single server's purge is).
    fn remove_as_entry(
        &self,
        index: u64,
        remove: impl FnOnce(&mut Stream) -> crate::store::Result<StreamOpOutcome>,
    ) -> Result<StreamOpOutcome, ApiError> {
        let mut stream = self.lock();
        let outcome = remove(&mut stream);
        stream.log_mut().set_applied(index);
        let synced = stream.log_mut().sync();
        self.account(&stream);
        synced.map_err(ApiError::store_failed)?;
        outcome.map_err(ApiError::store_failed)
    }
}

/// `STREAM.PURGE` on a replicated stream's leader.
pub(super) fn purge(
    js: &JetStream,
    entry: &Arc<StreamEntry>,
    payload: &[u8],
    reply: &Option<Bytes>,
) -> Route {
    const KIND: &str = "stream_purge_response";
    let request = api::purge_request(js, &entry.lock(), payload);
    match request {
        Ok(request) => proposed(
            js,
            entry,
            StreamOp::Purge(request),
            reply,
            KIND,
            |o| match o {
                StreamOpOutcome::Purged(purged) => Ok(api::purged_answer(purged)),
                _ => Err(ApiError::purge_failed(
                    "the stream's replica could not purge",
                )),
            },
        ),
        Err(e) => Route::Answered(KIND, Err(e)),
    }
}

/// `STREAM.MSG.DELETE` on a replicated stream's leader.
pub(super) fn msg_delete(
    js: &JetStream,
    entry: &Arc<StreamEntry>,
    payload: &[u8],
    reply: &Option<Bytes>,
) -> Route {
    const KIND: &str = "stream_msg_delete_response";
    let seq = api::msg_delete_request(js, &entry.lock(), payload);
    match seq {
        Ok(seq) => proposed(
            js,
            entry,
            StreamOp::DeleteMsg { seq },
            reply,
            KIND,
            move |o| match o {
                StreamOpOutcome::Deleted(true) => Ok(json!({ "success": true })),
                StreamOpOutcome::Deleted(false) => Err(ApiError::sequence_not_found(seq)),
                _ => Err(ApiError::msg_delete_failed(
                    "the stream's replica could not delete the message",
                )),
            },
        ),
        Err(e) => Route::Answered(KIND, Err(e)),
    }
}

/// Proposes `op` and, once it is applied here, answers with what `answer` makes of it.
fn proposed(
    js: &JetStream,
    entry: &Arc<StreamEntry>,
    op: StreamOp,
    reply: &Option<Bytes>,
    kind: &'static str,
    answer: impl FnOnce(StreamOpOutcome) -> api::Reply + Send + 'static,
) -> Route {
    let entry = entry.clone();
    answer_later(js, reply, kind, move |me| async move {
        me.propose_stream_op(&entry, op).await.and_then(answer)
    })
}

/// What a replica made of the catalog's update of a stream.
pub enum CatalogUpdate {
    /// The stream does not run replicated here: it is updated as any other.
    NotReplicated,
    /// Another replica leads the stream: the change and the answer are its to make.
    NotLeading,
    /// This replica leads: the encoded answer, and, if the change was refused, the
    /// config the stream runs with, for the catalog to be given back.
    Answered { body: Bytes, undo: Option<String> },
}

impl JetStream {
    /// The catalog's update of stream `name` to `config` (see the module's doc).
    pub async fn update_replicated(&self, name: &str, config: &str) -> CatalogUpdate {
        let Some(entry) = self.stream(name).filter(|e| e.replica.is_replicated()) else {
            return CatalogUpdate::NotReplicated;
        };
        if !entry.replica.leading() {
            return CatalogUpdate::NotLeading;
        }
        let answer = self.propose_config(&entry, config).await;
        let undo = match answer {
            Ok(_) => None,
            Err(_) => serde_json::to_string(entry.lock().config())
                .ok()
                .filter(|running| running != config),
        };
        let (body, _) = api::encode("stream_update_response", answer);
        CatalogUpdate::Answered {
            body: Bytes::from(body),
            undo,
        }
    }
}
