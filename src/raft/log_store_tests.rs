//! openraft's own test suite for storage implementations, run on jetlog's log store and
//! machine store, plus the crash cases the suite does not cover and the move of a log kept
//! in sled by an earlier jetlog.

use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;

use super::log_store::{LogStore, RaftDisk};
use super::machine::{Machine, MachineStore};
use super::types::NodeId;

/// A machine that keeps every command it applied, in order.
#[derive(Default)]
pub(super) struct Journal(pub Vec<Vec<u8>>);

impl Machine for Journal {
    fn apply(&mut self, command: &[u8]) -> Vec<u8> {
        self.0.push(command.to_vec());
        (self.0.len() as u64).to_be_bytes().to_vec()
    }

    fn snapshot(&self) -> Vec<u8> {
        serde_json::to_vec(&self.0).unwrap_or_default()
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        self.0 = serde_json::from_slice(snapshot).map_err(|e| e.to_string())?;
        Ok(())
    }
}

struct Fresh;

impl StoreBuilder<super::types::JetlogRaft, LogStore, MachineStore<Journal>, tempfile::TempDir>
    for Fresh
{
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, MachineStore<Journal>), StorageError<NodeId>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let disk = RaftDisk::open(dir.path()).expect("sled");
        let log = LogStore::open(&disk, "g").expect("log");
        let sm = MachineStore::open(&disk.db, "g", Journal::default()).expect("machine");
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite_passes() {
    Suite::test_all(Fresh).expect("openraft's storage suite");
}

#[tokio::test]
async fn log_vote_and_snapshot_survive_reopening() {
    use openraft::storage::RaftSnapshotBuilder;
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Vote};

    use super::types::Command;

    let dir = tempfile::tempdir().expect("temp dir");
    let log_id = |term: u64, index: u64| LogId::new(CommittedLeaderId::new(term, 1), index);
    let entry = |term, index, data: &[u8]| Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(Command(data.to_vec())),
    };
    {
        let disk = RaftDisk::open(dir.path()).expect("sled");
        let mut log = LogStore::open(&disk, "g").expect("log");
        let mut sm = MachineStore::open(&disk.db, "g", Journal::default()).expect("machine");
        log.save_vote(&Vote::new(3, 1)).await.expect("vote");
        let entries = vec![entry(3, 1, b"a"), entry(3, 2, b"b"), entry(3, 3, b"c")];
        log.blocking_append(entries.clone()).await.expect("append");
        sm.apply(entries[..2].to_vec()).await.expect("apply");
        sm.get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .expect("snapshot");
        sm.apply(entries[2..].to_vec()).await.expect("apply");
        log.purge(log_id(3, 1)).await.expect("purge");
    }
    // sled's flusher thread may hold the first handle's file lock for a moment after the
    // drop (the open failed now and then under a loaded test run): retry, bounded.
    let mut tries = 0;
    let disk = loop {
        match RaftDisk::open(dir.path()) {
            Ok(disk) => break disk,
            Err(_) if tries < 200 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => panic!("sled reopen: {e}"),
        }
    };
    let mut log = LogStore::open(&disk, "g").expect("log");
    let mut sm = MachineStore::open(&disk.db, "g", Journal::default()).expect("machine");
    assert_eq!(log.read_vote().await.expect("vote"), Some(Vote::new(3, 1)));
    let state = log.get_log_state().await.expect("state");
    assert_eq!(state.last_purged_log_id, Some(log_id(3, 1)));
    assert_eq!(state.last_log_id, Some(log_id(3, 3)));
    // The machine comes back as of its snapshot; openraft re-applies the rest from the log.
    let (applied, _) = sm.applied_state().await.expect("applied");
    assert_eq!(applied, Some(log_id(3, 2)));
    let reader = sm.reader();
    assert_eq!(
        reader.read(|j| j.0.clone()).await,
        vec![b"a".to_vec(), b"b".to_vec()]
    );
}

#[tokio::test]
async fn a_log_kept_in_sled_moves_to_the_entry_files_once() {
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftLogReader};

    use super::types::{Command, JetlogRaft};

    let dir = tempfile::tempdir().expect("temp dir");
    let entry = |index: u64| Entry::<JetlogRaft> {
        log_id: LogId::new(CommittedLeaderId::new(2, 1), index),
        payload: EntryPayload::Normal(Command(vec![index as u8; 3])),
    };
    {
        // What an earlier jetlog wrote: JSON entries keyed by big-endian index, entries up
        // to 2 purged.
        let db = sled::open(dir.path()).expect("sled");
        let tree = db.open_tree("raft.g.log").expect("tree");
        for index in 2..=5 {
            let json = serde_json::to_vec(&entry(index)).expect("json");
            tree.insert(index.to_be_bytes(), json).expect("insert");
        }
        let state = db.open_tree("raft.g.state").expect("state");
        let purged = serde_json::to_vec(&entry(2).log_id).expect("json");
        state.insert("purged", purged).expect("insert");
        db.flush().expect("flush");
    }
    for _ in 0..2 {
        let disk = loop {
            match RaftDisk::open(dir.path()) {
                Ok(disk) => break disk,
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        };
        let mut log = LogStore::open(&disk, "g").expect("log");
        assert!(!disk
            .db
            .tree_names()
            .iter()
            .any(|n| n == b"raft.g.log".as_slice()));
        let state = log.get_log_state().await.expect("state");
        assert_eq!(state.last_purged_log_id, Some(entry(2).log_id));
        assert_eq!(state.last_log_id, Some(entry(5).log_id));
        let held = log.try_get_log_entries(3..6).await.expect("read");
        assert_eq!(held, (3..=5).map(entry).collect::<Vec<_>>());
    }
}
