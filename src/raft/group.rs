//! One Raft group on this server: openraft's `Raft` wired to jetlog's log store, a
//! [`Machine`], and a [`Transport`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InitializeError, RaftError};
use openraft::{BasicNode, Config, Raft, SnapshotPolicy};

use super::log_store::{LogOpenError, LogStore, RaftDisk};
use super::machine::{Machine, MachineError, MachineStore, StateReader};
use super::network::{is_valid_group_name, LeaderHeard, Network, PeerSeen, Transport};
use super::types::{JetlogRaft, NodeId};

/// How often a leader heartbeats its followers. openraft's 50 ms default costs too much idle
/// traffic once a cluster runs a group per replicated stream; nats-server uses 1 s.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(250);
/// A follower that hears nothing for a random time in this range campaigns: failover takes
/// a few seconds, as with nats-server (4–9 s there).
pub const ELECTION_TIMEOUT_MIN: Duration = Duration::from_millis(1500);
pub const ELECTION_TIMEOUT_MAX: Duration = Duration::from_millis(3000);
/// How long one RPC may take before openraft counts it lost. Above a heartbeat, so a busy
/// route does not make a live follower look dead.
pub const RPC_TIMEOUT: Duration = Duration::from_millis(1000);

/// Why a group could not start.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error("raft group name {0:?} must be letters, digits, '_' or '-'")]
    BadName(String),
    #[error("raft log storage: {0}")]
    Storage(#[from] sled::Error),
    #[error(transparent)]
    Log(#[from] LogOpenError),
    #[error(transparent)]
    Machine(#[from] MachineError),
    #[error("raft configuration: {0}")]
    Config(#[from] openraft::ConfigError),
    #[error("raft: {0}")]
    Fatal(#[from] openraft::error::Fatal<NodeId>),
    #[error("raft initialize: {0}")]
    Initialize(#[from] RaftError<NodeId, InitializeError<NodeId, BasicNode>>),
}

/// How a group keeps its log from growing without end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compaction {
    /// openraft's way: a snapshot of the machine now and then, and the log before it
    /// purged; a member that falls behind is sent the snapshot. For small machines (the
    /// meta group's catalog).
    Snapshots,
    /// A snapshot after every `entries` entries, and the log before it purged but for the
    /// last `keep` entries (a member that falls less behind catches up from the log). For
    /// a stream, whose snapshot is small and whose messages a member fetches from a peer
    /// (`jetstream::replica_snapshot`).
    Every { entries: u64, keep: u64 },
    /// The log keeps every entry, and a member that falls behind catches up from it. For a
    /// machine that starts from nothing whenever its server does (a memory stream's).
    KeepLog,
}

/// A running member of one group.
pub struct RaftGroup<M> {
    pub raft: Raft<JetlogRaft>,
    pub state: StateReader<M>,
    /// When each other member last answered this one.
    pub seen: Arc<PeerSeen>,
    /// The leader's commit index as this member last heard it.
    pub heard: Arc<LeaderHeard>,
    pub name: String,
    pub me: NodeId,
}

impl<M: Machine> RaftGroup<M> {
    /// Starts this server's member of group `name`, resuming from what `disk` holds for it.
    pub async fn start<T: Transport>(
        disk: &RaftDisk,
        name: &str,
        me: NodeId,
        transport: T,
        machine: M,
    ) -> Result<Self, GroupError> {
        Self::start_with(disk, name, me, transport, machine, Compaction::Snapshots).await
    }

    /// [`RaftGroup::start`] with the log kept as `compaction` says.
    pub async fn start_with<T: Transport>(
        disk: &RaftDisk,
        name: &str,
        me: NodeId,
        transport: T,
        machine: M,
        compaction: Compaction,
    ) -> Result<Self, GroupError> {
        if !is_valid_group_name(name) {
            return Err(GroupError::BadName(name.to_owned()));
        }
        let config = Config {
            cluster_name: name.to_owned(),
            heartbeat_interval: millis(HEARTBEAT_INTERVAL),
            election_timeout_min: millis(ELECTION_TIMEOUT_MIN),
            election_timeout_max: millis(ELECTION_TIMEOUT_MAX),
            install_snapshot_timeout: millis(RPC_TIMEOUT),
            snapshot_policy: match compaction {
                Compaction::Snapshots => Config::default().snapshot_policy,
                Compaction::Every { entries, .. } => SnapshotPolicy::LogsSinceLast(entries),
                Compaction::KeepLog => SnapshotPolicy::Never,
            },
            max_in_snapshot_log_to_keep: match compaction {
                Compaction::Every { keep, .. } => keep,
                _ => Config::default().max_in_snapshot_log_to_keep,
            },
            ..Config::default()
        }
        .validate()?;
        let log = LogStore::open(disk, name)?;
        let store = MachineStore::open(&disk.db, name, machine)?;
        let state = store.reader();
        let seen = Arc::new(PeerSeen::default());
        let network = Network {
            transport,
            group: name.to_owned(),
            me,
            seen: seen.clone(),
        };
        let raft = Raft::new(me, Arc::new(config), network, log, store).await?;
        Ok(Self {
            raft,
            state,
            seen,
            heard: Arc::default(),
            name: name.to_owned(),
            me,
        })
    }

    /// Makes `members` the group's first voters. Harmless on a group that already has a
    /// membership (after a restart, or when another member initialized it first).
    pub async fn initialize(&self, members: BTreeMap<NodeId, BasicNode>) -> Result<(), GroupError> {
        match self.raft.initialize(members).await {
            Ok(()) => Ok(()),
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
