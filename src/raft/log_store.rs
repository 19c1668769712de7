//! A group's Raft log and vote: the entries in an [`EntryLog`] of their own, the vote, the
//! committed id and the purge point in a sled tree.
//!
//! Every write that openraft must find after a crash (appended entries, the vote, the purge
//! point) is durable before openraft hears it is done: a follower whose log went backwards
//! after a power loss would break Raft's promise (and panic openraft's leader).
//!
//! Logs written before the entries had files of their own are in a sled tree
//! (`raft.<group>.log`); opening the group moves them over once.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    AnyError, Entry, LogId, LogState, RaftLogId, RaftLogReader, StorageError, StorageIOError, Vote,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::codec;
use super::entry_log::{EntryLog, EntryLogError, PendingSync, RecordBatch};
use super::types::{JetlogRaft, NodeId};

const VOTE_KEY: &[u8] = b"vote";
const COMMITTED_KEY: &[u8] = b"committed";
const PURGED_KEY: &[u8] = b"purged";
/// The directory, inside the server's cluster store, that holds one entry log per group.
pub const LOGS_DIR: &str = "raft-logs";

type StoreResult<T> = Result<T, StorageError<NodeId>>;

/// Why a group's log could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum LogOpenError {
    #[error("raft state: {0}")]
    Sled(#[from] sled::Error),
    #[error(transparent)]
    Entries(#[from] EntryLogError),
    #[error("raft log kept in sled: {0}")]
    Legacy(String),
}

/// Where a server's groups keep what they must find after a restart: a sled database (votes,
/// machines, snapshots) and, beside its files, a directory of entry logs.
#[derive(Clone)]
pub struct RaftDisk {
    pub db: sled::Db,
    pub logs: PathBuf,
}

impl RaftDisk {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, sled::Error> {
        Ok(Self {
            db: sled::open(dir)?,
            logs: dir.join(LOGS_DIR),
        })
    }

    fn group_dir(&self, group: &str) -> PathBuf {
        self.logs.join(group)
    }
}

/// The Raft log of one group.
#[derive(Clone)]
pub struct LogStore {
    entries: Arc<Mutex<EntryLog>>,
    state: sled::Tree,
}

fn legacy_tree(group: &str) -> String {
    format!("raft.{group}.log")
}

fn state_tree(group: &str) -> String {
    format!("raft.{group}.state")
}

impl LogStore {
    /// Opens (or creates) the log of group `group` in `disk`.
    pub fn open(disk: &RaftDisk, group: &str) -> Result<Self, LogOpenError> {
        let state = disk.db.open_tree(state_tree(group))?;
        let purged: Option<LogId<NodeId>> = match state.get(PURGED_KEY)? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| LogOpenError::Legacy(format!("purge point: {e}")))?,
            None => None,
        };
        let mut entries = EntryLog::open(&disk.group_dir(group), purged.map(|p| p.index))?;
        migrate_from_sled(&disk.db, group, &mut entries, purged.map(|p| p.index))?;
        Ok(Self {
            entries: Arc::new(Mutex::new(entries)),
            state,
        })
    }

    /// Removes a group's log and vote, for a group this server has left.
    pub fn destroy(disk: &RaftDisk, group: &str) -> Result<(), LogOpenError> {
        if disk
            .db
            .tree_names()
            .iter()
            .any(|n| n == legacy_tree(group).as_bytes())
        {
            disk.db.drop_tree(legacy_tree(group))?;
        }
        disk.db.drop_tree(state_tree(group))?;
        EntryLog::destroy(&disk.group_dir(group))?;
        Ok(())
    }

    fn entries(&self) -> MutexGuard<'_, EntryLog> {
        // A panic while holding the lock leaves the log as consistent as any crash would.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn read_state<T: DeserializeOwned>(&self, key: &[u8]) -> StoreResult<Option<T>> {
        match self.state.get(key) {
            Ok(None) => Ok(None),
            Ok(Some(bytes)) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| StorageIOError::read(AnyError::new(&e)).into()),
            Err(e) => Err(StorageIOError::read(AnyError::new(&e)).into()),
        }
    }

    async fn write_state<T: Serialize>(&self, key: &[u8], value: &T) -> StoreResult<()> {
        let bytes =
            serde_json::to_vec(value).map_err(|e| StorageIOError::write(AnyError::new(&e)))?;
        self.state
            .insert(key, bytes)
            .map_err(|e| StorageIOError::write(AnyError::new(&e)))?;
        self.state
            .flush_async()
            .await
            .map(drop)
            .map_err(|e| StorageIOError::write(AnyError::new(&e)).into())
    }

    fn read_range(&self, from: u64, to: u64) -> StoreResult<Vec<Entry<JetlogRaft>>> {
        let encoded = self
            .entries()
            .read(from, to)
            .map_err(|e| StorageIOError::read_logs(AnyError::new(&e)))?;
        encoded
            .iter()
            .map(|bytes| {
                codec::decode_entry(bytes)
                    .map_err(|e| StorageIOError::read_logs(AnyError::new(&e)).into())
            })
            .collect()
    }
}

/// Moves a log kept in sled by an earlier jetlog into `entries`, then drops the tree. A
/// crash half-way is harmless: the tree stays until the entries are durable in the files, and
/// entries the files already hold are not written again.
fn migrate_from_sled(
    db: &sled::Db,
    group: &str,
    entries: &mut EntryLog,
    purged: Option<u64>,
) -> Result<(), LogOpenError> {
    let name = legacy_tree(group);
    if !db.tree_names().iter().any(|n| n == name.as_bytes()) {
        return Ok(());
    }
    let tree = db.open_tree(&name)?;
    let mut batch = RecordBatch::default();
    for item in tree.iter() {
        let (_, bytes) = item?;
        let entry: Entry<JetlogRaft> =
            serde_json::from_slice(&bytes).map_err(|e| LogOpenError::Legacy(e.to_string()))?;
        let index = entry.get_log_id().index;
        let held = entries.last_index().is_some_and(|last| index <= last);
        if held || purged.is_some_and(|p| index <= p) {
            continue;
        }
        batch.push(index, |buf| codec::encode_entry(&entry, buf));
    }
    if !batch.is_empty() {
        tracing::info!(
            group,
            entries = batch.len(),
            "moving the raft log out of sled"
        );
        if let Some(pending) = entries.append(&batch)? {
            pending.sync()?;
        }
    }
    drop(tree);
    db.drop_tree(&name)?;
    Ok(())
}

/// Runs an append's `fdatasync`. On a multi-threaded runtime, in place: the group's core
/// waits for it anyway, and handing it to another thread and back cost two context switches
/// on the path of every replicated publish; `block_in_place` moves this worker's other tasks
/// elsewhere meanwhile. On a single-threaded runtime (tests), on the blocking pool.
async fn make_durable(pending: PendingSync) -> std::io::Result<()> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let multi_threaded = Handle::try_current()
        .is_ok_and(|runtime| runtime.runtime_flavor() == RuntimeFlavor::MultiThread);
    let synced = if multi_threaded {
        tokio::task::block_in_place(|| pending.sync())
    } else {
        match tokio::task::spawn_blocking(move || pending.sync()).await {
            Ok(synced) => synced,
            Err(join) => return Err(std::io::Error::other(join)),
        }
    };
    synced.map_err(std::io::Error::other)
}

fn range_bounds(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let from = match range.start_bound() {
        Bound::Included(i) => *i,
        Bound::Excluded(i) => i.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let to = match range.end_bound() {
        Bound::Included(i) => i.saturating_add(1),
        Bound::Excluded(i) => *i,
        Bound::Unbounded => u64::MAX,
    };
    (from, to)
}

impl RaftLogReader<JetlogRaft> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> StoreResult<Vec<Entry<JetlogRaft>>> {
        let (from, to) = range_bounds(&range);
        self.read_range(from, to)
    }
}

impl RaftLogStorage<JetlogRaft> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> StoreResult<LogState<JetlogRaft>> {
        let last_purged_log_id: Option<LogId<NodeId>> = self.read_state(PURGED_KEY)?;
        let last = self.entries().last_index();
        let last_entry = match last {
            Some(index) => self.read_range(index, index + 1)?.pop(),
            None => None,
        };
        let last_log_id = last_entry.map(|e| *e.get_log_id()).or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> StoreResult<()> {
        self.write_state(VOTE_KEY, vote)
            .await
            .map_err(|e| StorageIOError::write_vote(AnyError::new(&e)).into())
    }

    async fn read_vote(&mut self) -> StoreResult<Option<Vote<NodeId>>> {
        self.read_state(VOTE_KEY)
    }

    /// Kept so that a restarted server re-applies what was committed before the crash at once,
    /// instead of waiting for a leader to tell it again.
    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> StoreResult<()> {
        let bytes =
            serde_json::to_vec(&committed).map_err(|e| StorageIOError::write(AnyError::new(&e)))?;
        // Not flushed on its own: losing the newest committed id only delays re-applying.
        self.state
            .insert(COMMITTED_KEY, bytes)
            .map(drop)
            .map_err(|e| StorageIOError::write(AnyError::new(&e)).into())
    }

    async fn read_committed(&mut self) -> StoreResult<Option<LogId<NodeId>>> {
        Ok(self
            .read_state::<Option<LogId<NodeId>>>(COMMITTED_KEY)?
            .flatten())
    }

    /// Writes the entries at once and makes them durable off the runtime's threads; openraft
    /// hears of it (`callback`) only once the `fdatasync` is done.
    async fn append<I>(&mut self, entries: I, callback: LogFlushed<JetlogRaft>) -> StoreResult<()>
    where
        I: IntoIterator<Item = Entry<JetlogRaft>> + Send,
        I::IntoIter: Send,
    {
        let mut batch = RecordBatch::default();
        for entry in entries {
            batch.push(entry.get_log_id().index, |buf| {
                codec::encode_entry(&entry, buf)
            });
        }
        let written = self.entries().append(&batch);
        let flushed = match written {
            Ok(None) => Ok(()),
            Ok(Some(pending)) => make_durable(pending).await,
            Err(e) => Err(std::io::Error::other(e)),
        };
        let failed = flushed.as_ref().err().map(AnyError::new);
        callback.log_io_completed(flushed);
        match failed {
            Some(e) => Err(StorageIOError::write_logs(e).into()),
            None => Ok(()),
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StoreResult<()> {
        self.entries()
            .truncate(log_id.index)
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)).into())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> StoreResult<()> {
        debug_assert!(self.read_state::<LogId<NodeId>>(PURGED_KEY).ok().flatten() <= Some(log_id));
        // The purge point is durable before the entries go, so a crash in between leaves
        // entries that are already purged, never a hole that nothing accounts for.
        self.write_state(PURGED_KEY, &log_id).await?;
        self.entries()
            .purge(log_id.index)
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)).into())
    }
}
