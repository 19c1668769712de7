//! What a server does about the meta group's committed changes: it opens, updates and
//! deletes the streams placed on it, and answers the client that asked for a create or an
//! update once its stream runs.
//!
//! openraft re-applies the log after the last snapshot each time a server starts, so each
//! change is acted on once: the index of the last entry acted on is kept in sled, and what
//! is at or below it is skipped. Re-applying a long-gone `RemoveStream` to the stream that
//! now has that name would delete acknowledged data, and re-applying an old update would
//! impose an old config. A snapshot installed from the leader replaces entries this server
//! never saw, so then the whole catalog is compared with what runs here.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::super::raft_link::publish;
use super::super::ServerState;
use super::machine::MetaEvent;
use super::stream_moves::Role;
use super::ClusterJs;
use crate::jetstream::assignments::{MetaCommand, MetaOutcome, StreamAssignment};
use crate::server::jetstream::CatalogUpdate;

/// Where the index of the last entry acted on is kept.
const ACTED_KEY: &[u8] = b"acted";

/// This server's record of what it has done for the meta group.
pub struct HostRecord {
    acted: sled::Tree,
    /// The streams this server opened for the catalog (`account NUL name`), so that after a
    /// snapshot it deletes only those the catalog no longer has, never a stream it ran
    /// before it joined a cluster.
    hosted: sled::Tree,
}

impl HostRecord {
    pub fn open(db: &sled::Db) -> Result<Self, sled::Error> {
        Ok(Self {
            acted: db.open_tree("meta.acted")?,
            hosted: db.open_tree("meta.hosted")?,
        })
    }

    fn acted(&self) -> u64 {
        self.acted
            .get(ACTED_KEY)
            .ok()
            .flatten()
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map_or(0, u64::from_be_bytes)
    }

    fn set_acted(&self, index: u64) {
        if let Err(e) = self
            .acted
            .insert(ACTED_KEY, &index.to_be_bytes())
            .and_then(|_| self.acted.flush())
        {
            tracing::error!("cannot record the meta group entry acted on: {e}");
        }
    }

    fn key(account: &str, name: &str) -> Vec<u8> {
        format!("{account}\u{0}{name}").into_bytes()
    }

    fn hosted(&self, account: &str, name: &str, yes: bool) {
        let key = Self::key(account, name);
        let result = match yes {
            true => self.hosted.insert(key, &[][..]).map(drop),
            false => self.hosted.remove(key).map(drop),
        };
        if let Err(e) = result {
            tracing::error!("cannot record the streams hosted for the cluster: {e}");
        }
    }

    fn is_hosted(&self, account: &str, name: &str) -> bool {
        matches!(self.hosted.contains_key(Self::key(account, name)), Ok(true))
    }
}

/// Acts on the meta group's changes, in order, until the channel closes.
pub async fn run(
    state: Arc<ServerState>,
    cluster: std::sync::Weak<ClusterJs>,
    record: HostRecord,
    mut events: mpsc::UnboundedReceiver<MetaEvent>,
) {
    while let Some(event) = events.recv().await {
        let index = match &event {
            MetaEvent::Applied { index, .. } | MetaEvent::Restored { index } => *index,
        };
        if index <= record.acted() {
            continue;
        }
        let Some(cluster) = cluster.upgrade() else {
            return;
        };
        match event {
            MetaEvent::Applied {
                command,
                outcome: MetaOutcome::Done | MetaOutcome::Unchanged,
                ..
            } => apply(&state, &cluster, &record, *command).await,
            MetaEvent::Applied { .. } => {}
            MetaEvent::Restored { .. } => reconcile(&state, &cluster, &record).await,
        }
        record.set_acted(index);
    }
}

async fn apply(
    state: &ServerState,
    cluster: &Arc<ClusterJs>,
    record: &HostRecord,
    command: MetaCommand,
) {
    match command {
        MetaCommand::AssignStream {
            stream,
            update,
            mut reply,
        } => {
            if update {
                match cluster.on_moved(state, &stream, &reply).await {
                    Role::Handled => return,
                    // The server the stream ran on answers; this one opens an empty replica.
                    Role::Joining => reply = None,
                    Role::None => {}
                }
            }
            if !stream
                .placement
                .peers
                .iter()
                .any(|p| p == cluster.server_name())
            {
                return;
            }
            if update && update_replicated(state, cluster, &stream, &reply).await {
                return;
            }
            // A replicated stream's create is answered by its group's first leader.
            let replicated = stream.placement.peers.len() > 1 && !update;
            let created = reply.clone().filter(|_| replicated);
            let outcome = host(state, cluster, record, &stream, update, created).await;
            let answered_here = outcome.undo.is_some() || !replicated;
            if let (Some(reply), Some((router, body)), true) =
                (reply, &outcome.answer, answered_here)
            {
                publish(router, Bytes::from(reply), None, body.clone()).await;
            }
            if let Some(undo) = outcome.undo {
                // The catalog must not keep a stream nobody runs, nor a config that does not
                // run: the change is taken back through the leader.
                if let Err(e) = cluster.propose(undo).await {
                    tracing::warn!(stream = %stream.name, "could not take back a refused change: {e}");
                }
            }
        }
        MetaCommand::RemoveStream { account, name } => {
            cluster.stop_stream_group(&account, &name, true).await;
            let Some(js) = state
                .accounts
                .get(&account)
                .and_then(|a| a.jetstream.clone())
            else {
                return;
            };
            let gone = name.clone();
            let deleted = tokio::task::spawn_blocking(move || js.unhost_stream(&gone)).await;
            if let Ok(Err(e)) = deleted {
                tracing::warn!(stream = %name, "cannot delete a stream the cluster removed: {e}");
            }
            record.hosted(&account, &name, false);
        }
        // Consumers live with their stream's server (see docs/clustering.md).
        MetaCommand::AssignConsumer { .. } | MetaCommand::RemoveConsumer { .. } => {}
    }
}

/// The catalog's update of a stream that runs replicated here (false if it does not): the
/// replica that leads it proposes the new config to the stream's group and answers; the
/// others take it from the group. A refused change is taken back, as `host` does.
async fn update_replicated(
    state: &ServerState,
    cluster: &ClusterJs,
    stream: &StreamAssignment,
    reply: &Option<String>,
) -> bool {
    let Some(account) = state.accounts.get(&stream.account) else {
        return false;
    };
    let Some(js) = account.jetstream.clone() else {
        return false;
    };
    let (body, undo) = match js.update_replicated(&stream.name, &stream.config).await {
        CatalogUpdate::NotReplicated => return false,
        CatalogUpdate::NotLeading => return true,
        CatalogUpdate::Answered { body, undo } => (body, undo),
    };
    if let Some(reply) = reply {
        publish(&account.router, Bytes::from(reply.clone()), None, body).await;
    }
    if let Some(running) = undo {
        let mut back = stream.clone();
        back.config = running;
        let command = MetaCommand::AssignStream {
            stream: back,
            update: true,
            reply: None,
        };
        if let Err(e) = cluster.propose(command).await {
            tracing::warn!(stream = %stream.name, "could not take back a refused change: {e}");
        }
    }
    true
}

/// What hosting one assignment came to (nothing, by default).
#[derive(Default)]
struct Hosted {
    /// The account's router and the encoded answer for the client.
    answer: Option<(Arc<super::super::router::Router>, Bytes)>,
    /// A change that takes the assignment back, when this server refused it.
    undo: Option<MetaCommand>,
}

async fn host(
    state: &ServerState,
    cluster: &ClusterJs,
    record: &HostRecord,
    stream: &StreamAssignment,
    update: bool,
    created: Option<String>,
) -> Hosted {
    let Some(account) = state.accounts.get(&stream.account) else {
        return Hosted::default();
    };
    let Some(js) = account.jetstream.clone() else {
        tracing::warn!(account = %stream.account, "a stream is placed here for an account without JetStream");
        return Hosted::default();
    };
    let config = stream.config.clone();
    let hosting = js.clone();
    let done = tokio::task::spawn_blocking(move || hosting.host_stream(&config, update)).await;
    let Ok(done) = done else {
        return Hosted::default();
    };
    // A replicated stream's replica joins its group (once; the first peer forms it).
    if done.running.is_ok() && stream.placement.peers.len() > 1 {
        if let Some(entry) = js.stream(&stream.name) {
            let peers = Some(stream.placement.peers.clone());
            let created = created.map(|reply| {
                let router = account.router.clone();
                (router, Bytes::from(reply), "stream_create_response")
            });
            cluster
                .start_stream_group(&js, &entry, peers, created)
                .await;
        }
    }
    let undo = match (&done.running, update) {
        (Ok(_), _) => {
            record.hosted(&stream.account, &stream.name, true);
            None
        }
        (Err(None), false) => Some(MetaCommand::RemoveStream {
            account: stream.account.clone(),
            name: stream.name.clone(),
        }),
        (Err(Some(running)), true) => {
            let mut back = stream.clone();
            back.config = running.clone();
            Some(MetaCommand::AssignStream {
                stream: back,
                update: true,
                reply: None,
            })
        }
        (Err(_), _) => None,
    };
    Hosted {
        answer: Some((account.router.clone(), Bytes::from(done.body))),
        undo,
    }
}

/// Makes what runs here match the whole catalog (after a snapshot replaced it).
async fn reconcile(state: &ServerState, cluster: &ClusterJs, record: &HostRecord) {
    for (account, js) in state.accounts.jetstreams() {
        let local = {
            let js = js.clone();
            tokio::task::spawn_blocking(move || js.local_stream_names())
                .await
                .unwrap_or_default()
        };
        for name in local {
            let placed_here = cluster
                .catalog()
                .stream(&account, &name)
                .is_some_and(|s| s.placement.peers.iter().any(|p| p == cluster.server_name()));
            if !placed_here && record.is_hosted(&account, &name) {
                let js = js.clone();
                let gone = name.clone();
                let _ = tokio::task::spawn_blocking(move || js.unhost_stream(&gone)).await;
                record.hosted(&account, &name, false);
            }
        }
    }
    let placed: Vec<StreamAssignment> = cluster
        .catalog()
        .streams_on(cluster.server_name())
        .cloned()
        .collect();
    for stream in placed {
        let outcome = host(state, cluster, record, &stream, false, None).await;
        if outcome.undo.is_some() {
            tracing::warn!(stream = %stream.name, "a stream the cluster placed here cannot run here");
        }
    }
}
