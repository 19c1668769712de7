//! A replica's snapshots and catch-up on this server (`jetstream::replica_snapshot`).
//!
//! The snapshot its group takes is the stream's bounds, gaps and duplicate window, plus the
//! replicated consumers as this replica's catalog holds them. A member sent a snapshot
//! fetches the messages it lacks from a peer, over the system account like the group's own
//! RPCs: a request on `$JLR.<group>.<peer>.SYNC` asks for the messages from a sequence up to
//! the snapshot's last; the peer answers a page of them, or an empty body if it has not yet
//! applied the snapshot's entry itself (the next peer is asked). The group's leader is asked
//! first: it has applied every committed entry.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes};
use futures::future::BoxFuture;
use prost::Message;

use super::{JetStream, StreamEntry};
use crate::jetstream::api_types::from_go_json;
use crate::jetstream::replica_consumers::ConsumerOp;
use crate::jetstream::replica_snapshot::{StreamSnapshot, SyncPage};
use crate::jetstream::StreamConfig;
use crate::raft::network::{Transport, RAFT_SUBJECT_PREFIX};
use crate::raft::types::{JetlogRaft, NodeId};
use crate::server::raft_link::RouterTransport;

/// The last token of a catch-up request's subject.
pub const SYNC_OP: &str = "SYNC";
/// How long one peer has to answer one page.
const PAGE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a catch-up may take before it is given up (the member then stops on the error;
/// a restart resumes from its last checkpoint and is sent a snapshot again).
const CATCH_UP_DEADLINE: Duration = Duration::from_secs(120);
/// How long to wait between rounds of asking every peer.
const RETRY_PAUSE: Duration = Duration::from_millis(250);
/// How long a snapshot that arrives while the group is still starting waits for its link.
const LINK_WAIT: Duration = Duration::from_secs(5);

/// How a replica reaches its group's peers, set once its group has started.
pub struct SyncLink {
    pub transport: RouterTransport,
    pub group: String,
    pub me: NodeId,
    pub raft: openraft::Raft<JetlogRaft>,
    /// Set while the replica catches up from a snapshot (`/healthz` says so).
    pub catching_up: Arc<AtomicBool>,
}

/// Clears the catching-up flag however the catch-up ends.
struct CatchingUp<'a>(&'a AtomicBool);

impl Drop for CatchingUp<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl SyncLink {
    /// The peers to ask, the leader first.
    fn peers(&self) -> Vec<NodeId> {
        let metrics = self.raft.metrics().borrow().clone();
        let mut peers: Vec<NodeId> = metrics.current_leader.into_iter().collect();
        for id in metrics.membership_config.voter_ids() {
            if !peers.contains(&id) {
                peers.push(id);
            }
        }
        peers.retain(|id| *id != self.me);
        peers
    }

    fn subject(&self, peer: NodeId) -> String {
        format!("{RAFT_SUBJECT_PREFIX}.{}.{peer:016x}.{SYNC_OP}", self.group)
    }
}

/// A catch-up request: the last entry that changed the store before the snapshot (a peer
/// whose store has not applied it cannot serve), and the sequences wanted.
fn encode_request(index: u64, from: u64, upto: u64) -> Bytes {
    let mut out = Vec::with_capacity(24);
    out.put_u64_le(index);
    out.put_u64_le(from);
    out.put_u64_le(upto);
    Bytes::from(out)
}

/// Answers a peer's catch-up request from this replica's store; an empty body if this
/// replica cannot serve it (it has not applied the snapshot's entry, or the request is bad).
pub fn answer_sync(entry: &Weak<StreamEntry>, mut body: &[u8]) -> Bytes {
    if body.len() != 24 {
        return Bytes::new();
    }
    let (index, from, upto) = (body.get_u64_le(), body.get_u64_le(), body.get_u64_le());
    let Some(entry) = entry.upgrade() else {
        return Bytes::new();
    };
    // The store's checkpoint moves only with the entries that change the store (or to a
    // snapshot's index, after a catch-up): a replica whose group has applied `index` has
    // every change up to it in its store, whatever its checkpoint says.
    let group_applied = entry
        .replica
        .link()
        .and_then(|link| link.raft.metrics().borrow().last_applied)
        .map_or(0, |l| l.index);
    let stream = entry.lock();
    if stream
        .log()
        .applied()
        .map_or(0, |a| a.index)
        .max(group_applied)
        < index
    {
        return Bytes::new();
    }
    match stream.sync_page(from, upto) {
        Ok(page) => Bytes::from(page.encode()),
        Err(e) => {
            tracing::warn!(stream = %entry.name, "catch-up page not read: {e}");
            Bytes::new()
        }
    }
}

/// The snapshot of `entry` as applied so far: the stream's part and its replicated
/// consumers from the catalog.
pub(super) fn snapshot(entry: &Weak<StreamEntry>) -> Result<StreamSnapshot, String> {
    let entry = entry.upgrade().ok_or("the stream is gone")?;
    // The store is made durable first: at open, a snapshot is accepted only if the store's
    // durable checkpoint is at or past the snapshot's `store_index` (the log before the
    // snapshot is gone).
    let mut snapshot = tokio::task::block_in_place(|| {
        let mut stream = entry.lock();
        stream.log_mut().sync().map_err(|e| e.to_string())?;
        stream.snapshot().map_err(|e| e.description)
    })?;
    let consumers = entry
        .catalog
        .list_consumers(&entry.name)
        .map_err(|e| e.to_string())?;
    let mut states = Vec::new();
    for (name, config, created, state) in consumers {
        if !config.is_replicated() {
            continue;
        }
        let put =
            ConsumerOp::put(&name, created as u64, &config, false).map_err(|e| e.description)?;
        snapshot.consumers.push(put);
        if let Some(state) = state {
            states.push((name, Bytes::from(state.encode_to_vec())));
        }
    }
    snapshot.consumers.push(ConsumerOp::States {
        states,
        removed: Vec::new(),
    });
    Ok(snapshot)
}

/// Brings `entry` to `snapshot`, taken at log `index`: first its config, if the snapshot's
/// differs (the messages fetched are stored under the limits they were stored under on
/// the peer), then its store, then its consumers.
pub(super) fn catch_up(
    entry: Weak<StreamEntry>,
    js: Weak<JetStream>,
    index: u64,
    snapshot: StreamSnapshot,
) -> BoxFuture<'static, Result<(), String>> {
    Box::pin(async move {
        let entry = entry.upgrade().ok_or("the stream is gone")?;
        let js = js.upgrade().ok_or("the account's JetStream is gone")?;
        tokio::task::block_in_place(|| adopt_config(&js, &entry, &snapshot.config))?;
        let link = wait_for_link(&entry).await?;
        link.catching_up.store(true, Ordering::Release);
        let _catching_up = CatchingUp(&link.catching_up);
        tracing::info!(
            stream = %entry.name,
            index,
            last_seq = snapshot.last_seq,
            "catching up from the group's snapshot"
        );
        let deadline = Instant::now() + CATCH_UP_DEADLINE;
        let mut from = tokio::task::block_in_place(|| entry.lock().begin_catch_up(&snapshot))
            .map_err(|e| e.description.to_string())?;
        let mut fetched = 0usize;
        while from <= snapshot.last_seq {
            let page = fetch_page(
                link,
                snapshot.store_index,
                from,
                snapshot.last_seq,
                deadline,
            )
            .await?;
            fetched += page.messages.len();
            tokio::task::block_in_place(|| entry.lock().store_sync_page(&page))
                .map_err(|e| e.description.to_string())?;
            match page.next {
                Some(next) => from = next,
                None => break,
            }
        }
        tokio::task::block_in_place(|| {
            let mut stream = entry.lock();
            stream
                .finish_catch_up(index, &snapshot)
                .map_err(|e| e.description.to_string())?;
            entry.account(&stream);
            Ok::<_, String>(())
        })?;
        tokio::task::block_in_place(|| install_consumers(&entry, index, &snapshot.consumers));
        tracing::info!(stream = %entry.name, index, fetched, "caught up");
        Ok(())
    })
}

/// Gives the replica the snapshot's config (JSON; empty: not recorded) if its own differs.
/// Not as an entry: a crash before the catch-up ends brings the store back to its last
/// checkpoint, and the group sends the snapshot again.
fn adopt_config(js: &JetStream, entry: &Arc<StreamEntry>, config: &[u8]) -> Result<(), String> {
    if config.is_empty() {
        return Ok(());
    }
    let config: StreamConfig = from_go_json(config).map_err(|e| e.to_string())?;
    if *entry.lock().config() == config {
        return Ok(());
    }
    tracing::info!(stream = %entry.name, "taking the stream's config from the group's snapshot");
    js.apply_stream_update(entry, config, None)
        .map_err(|e| e.description.to_string())
}

async fn wait_for_link(entry: &Arc<StreamEntry>) -> Result<&SyncLink, String> {
    let until = Instant::now() + LINK_WAIT;
    loop {
        if let Some(link) = entry.replica.link() {
            // The entry outlives this borrow: the caller holds its Arc.
            return Ok(link);
        }
        if Instant::now() >= until {
            return Err("the stream's group has not started".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One page from the first peer that can give it, asking them in turn until `deadline`;
/// `index` is the snapshot's `store_index`.
async fn fetch_page(
    link: &SyncLink,
    index: u64,
    from: u64,
    upto: u64,
    deadline: Instant,
) -> Result<SyncPage, String> {
    let request = encode_request(index, from, upto);
    loop {
        for peer in link.peers() {
            let asked = link
                .transport
                .request(link.subject(peer), request.clone(), PAGE_TIMEOUT)
                .await;
            match asked.map(|body| (body.is_empty(), SyncPage::decode(&body))) {
                Ok((false, Ok(page))) => return Ok(page),
                Ok((false, Err(e))) => tracing::warn!(peer, "catch-up page unreadable: {e}"),
                Ok((true, _)) => tracing::debug!(peer, "peer cannot serve the catch-up yet"),
                Err(e) => tracing::debug!(peer, "catch-up page not fetched: {e}"),
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "no peer gave the messages from {from} to {upto} within {CATCH_UP_DEADLINE:?}"
            ));
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

/// Makes the catalog's replicated consumers the snapshot's: each one in it is put with its
/// state, and any other replicated one is deleted.
fn install_consumers(entry: &Arc<StreamEntry>, index: u64, ops: &[ConsumerOp]) {
    let keep: Vec<&str> = ops
        .iter()
        .filter_map(|op| match op {
            ConsumerOp::Put { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    match entry.catalog.list_consumers(&entry.name) {
        Ok(saved) => {
            for (name, config, _, _) in saved {
                if config.is_replicated() && !keep.contains(&name.as_str()) {
                    entry.apply_consumer_op(index, &ConsumerOp::Delete { name });
                }
            }
        }
        Err(e) => tracing::error!(stream = %entry.name, "consumers not listed: {e}"),
    }
    for op in ops {
        entry.apply_consumer_op(index, op);
    }
}
