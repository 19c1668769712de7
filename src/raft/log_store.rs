//! A group's Raft log and vote, kept in sled.
//!
//! Entries live in one tree keyed by their big-endian index, so sled's order is the log's
//! order; the vote, the committed id and the last purged id live in a second tree. Every write
//! that openraft must find after a crash (appended entries, the vote, the purge point) is
//! flushed to disk before openraft hears it is done: a follower whose log went backwards after
//! a power loss would break Raft's promise (and panic openraft's leader).

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    AnyError, Entry, LogId, LogState, RaftLogId, RaftLogReader, StorageError, StorageIOError, Vote,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::types::{JetlogRaft, NodeId};

const VOTE_KEY: &[u8] = b"vote";
const COMMITTED_KEY: &[u8] = b"committed";
const PURGED_KEY: &[u8] = b"purged";

type StoreResult<T> = Result<T, StorageError<NodeId>>;

/// The Raft log of one group.
#[derive(Clone)]
pub struct LogStore {
    entries: sled::Tree,
    state: sled::Tree,
}

impl LogStore {
    /// Opens (or creates) the log of group `group` in `db`.
    pub fn open(db: &sled::Db, group: &str) -> Result<Self, sled::Error> {
        Ok(Self {
            entries: db.open_tree(format!("raft.{group}.log"))?,
            state: db.open_tree(format!("raft.{group}.state"))?,
        })
    }

    /// Removes a group's log and vote, for a group this server has left.
    pub fn destroy(db: &sled::Db, group: &str) -> Result<(), sled::Error> {
        db.drop_tree(format!("raft.{group}.log"))?;
        db.drop_tree(format!("raft.{group}.state"))?;
        Ok(())
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
        self.flush().await
    }

    async fn flush(&self) -> StoreResult<()> {
        self.state
            .flush_async()
            .await
            .map(drop)
            .map_err(|e| StorageIOError::write(AnyError::new(&e)).into())
    }

    fn decode(bytes: &[u8]) -> StoreResult<Entry<JetlogRaft>> {
        serde_json::from_slice(bytes)
            .map_err(|e| StorageIOError::read_logs(AnyError::new(&e)).into())
    }

    fn last_entry_id(&self) -> StoreResult<Option<LogId<NodeId>>> {
        match self.entries.last() {
            Ok(None) => Ok(None),
            Ok(Some((_, bytes))) => Ok(Some(*Self::decode(&bytes)?.get_log_id())),
            Err(e) => Err(StorageIOError::read_logs(AnyError::new(&e)).into()),
        }
    }

    /// Removes every entry whose index is in `range`.
    fn remove_range(&self, range: (Bound<[u8; 8]>, Bound<[u8; 8]>)) -> StoreResult<()> {
        let mut batch = sled::Batch::default();
        for key in self.entries.range(range) {
            let (key, _) = key.map_err(|e| StorageIOError::write_logs(AnyError::new(&e)))?;
            batch.remove(key);
        }
        self.entries
            .apply_batch(batch)
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)).into())
    }
}

fn key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn key_bound(bound: Bound<&u64>) -> Bound<[u8; 8]> {
    match bound {
        Bound::Included(i) => Bound::Included(key(*i)),
        Bound::Excluded(i) => Bound::Excluded(key(*i)),
        Bound::Unbounded => Bound::Unbounded,
    }
}

impl RaftLogReader<JetlogRaft> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> StoreResult<Vec<Entry<JetlogRaft>>> {
        let bounds = (key_bound(range.start_bound()), key_bound(range.end_bound()));
        let mut out = Vec::new();
        for item in self.entries.range(bounds) {
            let (_, bytes) = item.map_err(|e| StorageIOError::read_logs(AnyError::new(&e)))?;
            out.push(Self::decode(&bytes)?);
        }
        Ok(out)
    }
}

impl RaftLogStorage<JetlogRaft> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> StoreResult<LogState<JetlogRaft>> {
        let last_purged_log_id: Option<LogId<NodeId>> = self.read_state(PURGED_KEY)?;
        let last_log_id = self.last_entry_id()?.or(last_purged_log_id);
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

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<JetlogRaft>) -> StoreResult<()>
    where
        I: IntoIterator<Item = Entry<JetlogRaft>> + Send,
        I::IntoIter: Send,
    {
        let mut batch = sled::Batch::default();
        for entry in entries {
            let bytes = serde_json::to_vec(&entry)
                .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)))?;
            batch.insert(&key(entry.get_log_id().index), bytes);
        }
        self.entries
            .apply_batch(batch)
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)))?;
        let flushed = self
            .entries
            .flush_async()
            .await
            .map(drop)
            .map_err(std::io::Error::other);
        let failed = flushed.as_ref().err().map(AnyError::new);
        callback.log_io_completed(flushed);
        match failed {
            Some(e) => Err(StorageIOError::write_logs(e).into()),
            None => Ok(()),
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StoreResult<()> {
        self.remove_range((Bound::Included(key(log_id.index)), Bound::Unbounded))?;
        self.flush().await
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> StoreResult<()> {
        debug_assert!(self.read_state::<LogId<NodeId>>(PURGED_KEY).ok().flatten() <= Some(log_id));
        // The purge point is durable before the entries go, so a crash in between leaves
        // entries that are already purged, never a hole that nothing accounts for.
        self.write_state(PURGED_KEY, &log_id).await?;
        self.remove_range((Bound::Unbounded, Bound::Included(key(log_id.index))))
    }
}
