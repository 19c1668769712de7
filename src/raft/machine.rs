//! The state a group agrees on: a [`Machine`] that applies committed commands, and the
//! openraft adapter around it that keeps its snapshots.
//!
//! The machine itself lives in memory. Its durable form is the last snapshot (kept in sled)
//! plus the Raft log after it: on open the snapshot is restored and openraft re-applies the
//! committed entries that follow. A machine therefore must be deterministic: the same commands
//! in the same order give the same state and the same outcomes on every server, so it must not
//! read clocks, randomness or local settings while applying.

use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot};
use openraft::{
    AnyError, Entry, EntryPayload, LogId, RaftLogId, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::types::{Command, JetlogRaft, NodeId, Outcome};

type StoreResult<T> = Result<T, StorageError<NodeId>>;
type Meta = SnapshotMeta<NodeId, openraft::BasicNode>;

const SNAPSHOT_KEY: &[u8] = b"snapshot";

/// A deterministic state machine replicated by a Raft group.
pub trait Machine: Send + Sync + 'static {
    /// Applies one committed command and returns its outcome, which goes back to whoever
    /// proposed it on the leader.
    fn apply(&mut self, command: &[u8]) -> Vec<u8>;
    /// The whole state, for a snapshot.
    fn snapshot(&self) -> Vec<u8>;
    /// Replaces the state with a snapshot's.
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String>;
    /// [`Machine::apply`] for the entry at log `index`, for a machine whose effects outside
    /// itself must happen once per entry even though openraft re-applies entries at start.
    fn apply_at(&mut self, index: u64, command: &[u8]) -> Vec<u8> {
        let _ = index;
        self.apply(command)
    }
    /// [`Machine::restore`] from a snapshot taken at log `index` (0 for an empty log).
    fn restore_at(&mut self, index: u64, snapshot: &[u8]) -> Result<(), String> {
        let _ = index;
        self.restore(snapshot)
    }
    /// Installs a snapshot taken at log `index` that the group's leader sent because this
    /// member lacks entries the group no longer keeps. A machine whose snapshots do not
    /// hold its whole state fetches the rest here; by default, [`Machine::restore_at`].
    fn install_at<'a>(&'a mut self, index: u64, snapshot: &'a [u8]) -> InstallFuture<'a> {
        Box::pin(std::future::ready(self.restore_at(index, snapshot)))
    }
}

/// What [`Machine::install_at`] returns: the install, which may wait on other servers.
pub type InstallFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>>;

/// A snapshot as kept in sled: openraft's metadata and the machine's bytes.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: Meta,
    data: Command,
}

struct Applied<M> {
    machine: M,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, openraft::BasicNode>,
}

/// openraft's view of a [`Machine`]: applies entries, builds, installs and keeps snapshots.
pub struct MachineStore<M> {
    applied: Arc<Mutex<Applied<M>>>,
    snapshots: sled::Tree,
    group: String,
}

impl<M: Machine> MachineStore<M> {
    /// Opens the state of `group`, restoring `machine` from the group's last snapshot if there
    /// is one.
    pub fn open(db: &sled::Db, group: &str, machine: M) -> Result<Self, MachineError> {
        let snapshots = db.open_tree(format!("raft.{group}.snapshot"))?;
        let mut applied = Applied {
            machine,
            last_applied: None,
            membership: StoredMembership::default(),
        };
        if let Some(bytes) = snapshots.get(SNAPSHOT_KEY)? {
            let stored: StoredSnapshot = serde_json::from_slice(&bytes)?;
            let index = stored.meta.last_log_id.map_or(0, |id| id.index);
            applied
                .machine
                .restore_at(index, &stored.data.0)
                .map_err(MachineError::Restore)?;
            applied.last_applied = stored.meta.last_log_id;
            applied.membership = stored.meta.last_membership;
        }
        Ok(Self {
            applied: Arc::new(Mutex::new(applied)),
            snapshots,
            group: group.to_owned(),
        })
    }

    /// A handle for reading the machine's state after openraft has taken the store.
    pub fn reader(&self) -> StateReader<M> {
        StateReader {
            applied: self.applied.clone(),
        }
    }

    fn builder(&self) -> SnapshotBuilder<M> {
        SnapshotBuilder {
            applied: self.applied.clone(),
            snapshots: self.snapshots.clone(),
            group: self.group.clone(),
        }
    }
}

/// Reads a group's applied state (reads that need no consensus: a follower may be behind).
pub struct StateReader<M> {
    applied: Arc<Mutex<Applied<M>>>,
}

impl<M> Clone for StateReader<M> {
    fn clone(&self) -> Self {
        Self {
            applied: self.applied.clone(),
        }
    }
}

impl<M: Machine> StateReader<M> {
    /// Runs `f` on the machine as it is now.
    pub async fn read<T>(&self, f: impl FnOnce(&M) -> T) -> T {
        f(&self.applied.lock().await.machine)
    }

    /// The id of the last entry applied.
    pub async fn last_applied(&self) -> Option<LogId<NodeId>> {
        self.applied.lock().await.last_applied
    }
}

/// Why a group's state could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    #[error("raft state storage: {0}")]
    Storage(#[from] sled::Error),
    #[error("raft snapshot is damaged: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("raft snapshot could not be restored: {0}")]
    Restore(String),
}

/// Builds a snapshot of the machine as it is now and keeps it in sled.
pub struct SnapshotBuilder<M> {
    applied: Arc<Mutex<Applied<M>>>,
    snapshots: sled::Tree,
    group: String,
}

async fn keep(snapshots: &sled::Tree, stored: &StoredSnapshot) -> StoreResult<()> {
    let signature = Some(stored.meta.signature());
    let bytes = serde_json::to_vec(stored)
        .map_err(|e| StorageIOError::write_snapshot(signature.clone(), AnyError::new(&e)))?;
    snapshots
        .insert(SNAPSHOT_KEY, bytes)
        .map_err(|e| StorageIOError::write_snapshot(signature.clone(), AnyError::new(&e)))?;
    snapshots
        .flush_async()
        .await
        .map(drop)
        .map_err(|e| StorageIOError::write_snapshot(signature, AnyError::new(&e)).into())
}

impl<M: Machine> RaftSnapshotBuilder<JetlogRaft> for SnapshotBuilder<M> {
    async fn build_snapshot(&mut self) -> StoreResult<Snapshot<JetlogRaft>> {
        let (meta, data) = {
            let applied = self.applied.lock().await;
            let meta = Meta {
                last_log_id: applied.last_applied,
                last_membership: applied.membership.clone(),
                snapshot_id: match applied.last_applied {
                    Some(id) => format!("{}-{}-{}", self.group, id.leader_id, id.index),
                    None => format!("{}-empty", self.group),
                },
            };
            (meta, applied.machine.snapshot())
        };
        let stored = StoredSnapshot {
            meta,
            data: Command(data),
        };
        keep(&self.snapshots, &stored).await?;
        Ok(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data.0)),
        })
    }
}

impl<M: Machine> RaftStateMachine<JetlogRaft> for MachineStore<M> {
    type SnapshotBuilder = SnapshotBuilder<M>;

    async fn applied_state(
        &mut self,
    ) -> StoreResult<(
        Option<LogId<NodeId>>,
        StoredMembership<NodeId, openraft::BasicNode>,
    )> {
        let applied = self.applied.lock().await;
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> StoreResult<Vec<Outcome>>
    where
        I: IntoIterator<Item = Entry<JetlogRaft>> + Send,
        I::IntoIter: Send,
    {
        let mut applied = self.applied.lock().await;
        let mut outcomes = Vec::new();
        for entry in entries {
            let log_id = *entry.get_log_id();
            debug_assert!(
                Some(log_id) > applied.last_applied,
                "entries apply in log order"
            );
            applied.last_applied = Some(log_id);
            match entry.payload {
                EntryPayload::Blank => outcomes.push(Outcome::default()),
                EntryPayload::Normal(Command(bytes)) => {
                    outcomes.push(Outcome(applied.machine.apply_at(log_id.index, &bytes)))
                }
                EntryPayload::Membership(membership) => {
                    applied.membership = StoredMembership::new(Some(log_id), membership);
                    outcomes.push(Outcome::default());
                }
            }
        }
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.builder()
    }

    async fn begin_receiving_snapshot(&mut self) -> StoreResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StoreResult<()> {
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: Command(snapshot.into_inner()),
        };
        let mut applied = self.applied.lock().await;
        let index = meta.last_log_id.map_or(0, |id| id.index);
        applied
            .machine
            .install_at(index, &stored.data.0)
            .await
            .map_err(|e| {
                StorageIOError::read_snapshot(Some(meta.signature()), AnyError::error(e))
            })?;
        applied.last_applied = meta.last_log_id;
        applied.membership = meta.last_membership.clone();
        keep(&self.snapshots, &stored).await
    }

    async fn get_current_snapshot(&mut self) -> StoreResult<Option<Snapshot<JetlogRaft>>> {
        let bytes = self
            .snapshots
            .get(SNAPSHOT_KEY)
            .map_err(|e| StorageIOError::read_snapshot(None, AnyError::new(&e)))?;
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        let stored: StoredSnapshot = serde_json::from_slice(&bytes)
            .map_err(|e| StorageIOError::read_snapshot(None, AnyError::new(&e)))?;
        Ok(Some(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data.0)),
        }))
    }
}
