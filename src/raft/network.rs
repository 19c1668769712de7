//! openraft's RPCs as NATS request/reply messages.
//!
//! A group's members talk over the cluster's existing connections: an RPC is a request on
//! `$JLR.<group>.<target node id>.<op>` answered on the sender's inbox, so it crosses the same
//! routes as every other message and needs no port or connection of its own. AppendEntries,
//! which carries the data, goes in [`codec`]'s binary frame; the other requests are
//! openraft's own serde types in JSON. The reply is the `Result` the target's `Raft` returned,
//! in JSON.
//!
//! [`Transport`] is the one thing this module needs from the messaging layer: a request with a
//! deadline. [`answer`] is the receiving side.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RPCTypes, Raft};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::codec;
use super::types::{JetlogRaft, NodeId};

/// The subject prefix of Raft traffic between jetlog servers.
pub const RAFT_SUBJECT_PREFIX: &str = "$JLR";

/// Why a request found no answer.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// Nobody subscribes the target's subject: it is down or not connected.
    #[error("no responders for {0}")]
    NoResponders(String),
    /// Nobody answered before the deadline.
    #[error("no reply within {0:?}")]
    TimedOut(Duration),
    /// The request could not be sent.
    #[error("{0}")]
    Failed(String),
}

/// Sends a request and waits, at most `timeout`, for its one reply.
pub trait Transport: Clone + Send + Sync + 'static {
    fn request(
        &self,
        subject: String,
        body: Bytes,
        timeout: Duration,
    ) -> impl Future<Output = Result<Bytes, TransportError>> + Send;
}

/// One RPC kind, the last token of its subject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    AppendEntries,
    Vote,
    InstallSnapshot,
}

impl Op {
    fn token(self) -> &'static str {
        match self {
            Op::AppendEntries => "AE",
            Op::Vote => "V",
            Op::InstallSnapshot => "IS",
        }
    }

    pub fn from_token(token: &str) -> Option<Op> {
        match token {
            "AE" => Some(Op::AppendEntries),
            "V" => Some(Op::Vote),
            "IS" => Some(Op::InstallSnapshot),
            _ => None,
        }
    }
}

/// Whether `group` can be one token of a subject.
pub fn is_valid_group_name(group: &str) -> bool {
    !group.is_empty()
        && group
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The subject node `target` of `group` answers `op` on.
pub fn rpc_subject(group: &str, target: NodeId, op: Op) -> String {
    debug_assert!(is_valid_group_name(group));
    format!("{RAFT_SUBJECT_PREFIX}.{group}.{target:016x}.{}", op.token())
}

/// The subjects (a wildcard) node `node` of `group` subscribes to.
pub fn node_subjects(group: &str, node: NodeId) -> String {
    debug_assert!(is_valid_group_name(group));
    format!("{RAFT_SUBJECT_PREFIX}.{group}.{node:016x}.*")
}

/// When this member last heard back from each other member: any answer to an RPC counts.
/// openraft 0.9 keeps no such time, and nats-server reports it (`active` in a group's
/// replicas), so the network layer, which sees every answer, keeps it.
#[derive(Debug)]
pub struct PeerSeen {
    started: Instant,
    last: Mutex<HashMap<NodeId, Instant>>,
}

impl Default for PeerSeen {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            last: Mutex::default(),
        }
    }
}

impl PeerSeen {
    fn record(&self, peer: NodeId) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        last.insert(peer, Instant::now());
    }

    /// How long since `peer` last answered; since this member started if it never has.
    pub fn since(&self, peer: NodeId) -> Duration {
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        last.get(&peer).unwrap_or(&self.started).elapsed()
    }
}

/// The leader's commit index as this member last heard it in an AppendEntries (heartbeats
/// included). openraft 0.9 keeps a follower's own commit bounded by its own log, so a
/// follower that is sent no entries would look current; nats-server's `/healthz` compares a
/// follower with the leader's commit, and so can this.
#[derive(Debug, Default)]
pub struct LeaderHeard {
    commit: std::sync::atomic::AtomicU64,
}

impl LeaderHeard {
    fn record(&self, commit: u64) {
        self.commit
            .fetch_max(commit, std::sync::atomic::Ordering::Relaxed);
    }

    /// The highest leader commit index heard (0 before any).
    pub fn commit(&self) -> u64 {
        self.commit.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Makes one [`Peer`] per target for openraft.
#[derive(Clone)]
pub struct Network<T> {
    pub transport: T,
    pub group: String,
    pub me: NodeId,
    pub seen: Arc<PeerSeen>,
}

impl<T: Transport> RaftNetworkFactory<JetlogRaft> for Network<T> {
    type Network = Peer<T>;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> Self::Network {
        Peer {
            transport: self.transport.clone(),
            group: self.group.clone(),
            me: self.me,
            target,
            seen: self.seen.clone(),
        }
    }
}

/// openraft's connection to one member of the group.
pub struct Peer<T> {
    transport: T,
    group: String,
    me: NodeId,
    target: NodeId,
    seen: Arc<PeerSeen>,
}

impl<T: Transport> Peer<T> {
    async fn call<Q, A, E>(
        &self,
        op: Op,
        action: RPCTypes,
        request: &Q,
        option: &RPCOption,
    ) -> Result<A, RPCError<NodeId, BasicNode, E>>
    where
        Q: Serialize,
        A: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let body =
            serde_json::to_vec(request).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        self.send(op, action, body, option).await
    }

    async fn send<A, E>(
        &self,
        op: Op,
        action: RPCTypes,
        body: Vec<u8>,
        option: &RPCOption,
    ) -> Result<A, RPCError<NodeId, BasicNode, E>>
    where
        A: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let timeout = option.hard_ttl();
        let reply = self
            .transport
            .request(
                rpc_subject(&self.group, self.target, op),
                body.into(),
                timeout,
            )
            .await
            .map_err(|e| match e {
                TransportError::NoResponders(_) => RPCError::Unreachable(Unreachable::new(&e)),
                TransportError::TimedOut(_) => RPCError::Timeout(Timeout {
                    action,
                    id: self.me,
                    target: self.target,
                    timeout,
                }),
                TransportError::Failed(_) => RPCError::Network(NetworkError::new(&e)),
            })?;
        self.seen.record(self.target);
        let answer: Result<A, E> =
            serde_json::from_slice(&reply).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl<T: Transport> RaftNetwork<JetlogRaft> for Peer<T> {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<JetlogRaft>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let body = codec::encode_append(&rpc);
        self.send(Op::AppendEntries, RPCTypes::AppendEntries, body, &option)
            .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<JetlogRaft>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call(
            Op::InstallSnapshot,
            RPCTypes::InstallSnapshot,
            &rpc,
            &option,
        )
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(Op::Vote, RPCTypes::Vote, &rpc, &option).await
    }
}

/// Why an incoming RPC got no answer at all.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    #[error("unknown raft operation {0:?}")]
    UnknownOp(String),
    #[error("undecodable raft request: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("undecodable raft request: {0}")]
    Binary(#[from] codec::CodecError),
}

/// Answers one RPC addressed to this node: decodes it, hands it to `raft`, and returns the
/// reply body. A request that cannot be decoded gets no reply: the sender times out and
/// retries, as it would for a lost message.
pub async fn answer(
    raft: &Raft<JetlogRaft>,
    op: &str,
    body: &[u8],
    heard: Option<&LeaderHeard>,
) -> Result<Bytes, AnswerError> {
    fn encode<R: Serialize>(reply: &R) -> Bytes {
        // Encoding openraft's own serde types into a Vec cannot fail.
        serde_json::to_vec(reply)
            .map(Bytes::from)
            .unwrap_or_default()
    }
    match Op::from_token(op) {
        Some(Op::AppendEntries) => {
            // Binary since the entries have a log format of their own; JSON from a server
            // that predates it.
            let request: openraft::raft::AppendEntriesRequest<JetlogRaft> =
                if body.first() == Some(&codec::APPEND_MAGIC) {
                    codec::decode_append(body)?
                } else {
                    serde_json::from_slice(body)?
                };
            if let (Some(heard), Some(commit)) = (heard, &request.leader_commit) {
                heard.record(commit.index);
            }
            Ok(encode(&raft.append_entries(request).await))
        }
        Some(Op::Vote) => Ok(encode(&raft.vote(serde_json::from_slice(body)?).await)),
        Some(Op::InstallSnapshot) => Ok(encode(
            &raft.install_snapshot(serde_json::from_slice(body)?).await,
        )),
        None => Err(AnswerError::UnknownOp(op.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::LeaderHeard;

    #[test]
    fn the_leaders_commit_is_kept_at_its_highest() {
        let heard = LeaderHeard::default();
        assert_eq!(heard.commit(), 0);
        heard.record(7);
        heard.record(5);
        assert_eq!(heard.commit(), 7);
    }
}
