//! `Log::truncate_after` under power loss: the power is cut before each file-system change
//! the truncation makes, in turn, until one run finishes. After every cut the log must open,
//! the same truncation made again must finish, and then every message at or below the cut
//! is there byte for byte, none above it is, and the next append gets the sequence after the
//! cut, also after one more reopen. (A replicated stream truncates to its applied point each
//! time it opens, so "made again" is what really happens after a crash.)

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use jetlog::store::io::{Vfs, VfsFile};
use jetlog::store::power_loss::PowerLossVfs;
use jetlog::store::{Log, LogConfig, NewMessage, SyncPolicy};

const SUBJECTS: [&str; 3] = ["a", "b.x", "b.y"];

/// A [`PowerLossVfs`] that loses power just before its `budget`-th change.
#[derive(Debug, Clone)]
struct CutPower {
    disk: PowerLossVfs,
    budget: Arc<AtomicI64>,
}

impl CutPower {
    /// Counts one change; false (and the power is gone) when the budget ran out.
    fn change(&self) -> io::Result<()> {
        if self.budget.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.disk.crash(Some(7));
        }
        if self.budget.load(Ordering::SeqCst) < 1 {
            return Err(io::Error::other("power cut"));
        }
        Ok(())
    }
}

#[derive(Debug)]
struct CutFile {
    file: Box<dyn VfsFile>,
    power: CutPower,
}

impl VfsFile for CutFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.file.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.power.change()?;
        self.file.write_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.power.change()?;
        self.file.sync_data()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.power.change()?;
        self.file.set_len(len)
    }
    fn allocate(&self, offset: u64, len: u64) -> io::Result<()> {
        self.power.change()?;
        self.file.allocate(offset, len)
    }
    fn file_len(&self) -> io::Result<u64> {
        self.file.file_len()
    }
}

impl Vfs for CutPower {
    fn open(&self, path: &Path, create: bool) -> io::Result<Box<dyn VfsFile>> {
        if create {
            self.change()?;
        }
        Ok(Box::new(CutFile {
            file: self.disk.open(path, create)?,
            power: self.clone(),
        }))
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.change()?;
        self.disk.remove(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.change()?;
        self.disk.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.change()?;
        self.disk.sync_dir(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.disk.list(dir)
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.disk.create_dir_all(dir)
    }
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        sync: SyncPolicy::Always,
        ..LogConfig::default()
    }
}

fn open(vfs: Arc<dyn Vfs>) -> Log {
    Log::open_with_vfs("/s", config(), vfs).expect("the log opens")
}

/// A log of 40 messages over several segments, with a few deleted; returns what it holds.
fn filled(disk: &PowerLossVfs) -> BTreeMap<u64, (String, Bytes)> {
    let mut log = open(Arc::new(disk.clone()));
    let mut held = BTreeMap::new();
    for round in 0..8u64 {
        let batch: Vec<NewMessage> = (0..5u64)
            .map(|i| {
                let n = round * 5 + i;
                NewMessage {
                    subject: SUBJECTS[(n % 3) as usize].to_owned(),
                    headers: Bytes::new(),
                    payload: Bytes::from(vec![
                        b'a' + (n % 26) as u8;
                        200 + (n as usize * 37) % 300
                    ]),
                    ts_ns: 1_000 + n,
                }
            })
            .collect();
        for (res, msg) in log.append_batch(&batch).expect("append").iter().zip(&batch) {
            let seq = *res.as_ref().expect("stored");
            held.insert(seq, (msg.subject.clone(), msg.payload.clone()));
        }
        log.sync().expect("sync");
    }
    for seq in [3, 17, 18, 33] {
        assert!(log.delete(seq).expect("delete"));
        held.remove(&seq);
    }
    log.sync().expect("sync");
    held
}

fn check(log: &Log, held: &BTreeMap<u64, (String, Bytes)>, last: u64, what: &str) {
    for (seq, (subject, payload)) in held.range(..=last) {
        let msg = log
            .get(*seq)
            .unwrap_or_else(|e| panic!("{what}: get({seq}): {e}"))
            .unwrap_or_else(|| panic!("{what}: message {seq} at or below the cut is gone"));
        assert_eq!(
            (&msg.subject, &msg.payload),
            (subject, payload),
            "{what}: {seq}"
        );
    }
    let all = log.scan(0, &[], usize::MAX).expect("scan");
    assert!(
        all.iter().all(|m| m.seq <= last),
        "{what}: a message above {last} is still served"
    );
    assert_eq!(all.len(), held.range(..=last).count(), "{what}: count");
    let state = log.state(false).expect("state");
    assert_eq!(state.last_seq, last, "{what}: last_seq");
    assert_eq!(state.msgs, all.len() as u64, "{what}: msgs");
}

fn next_append(log: &mut Log) -> u64 {
    let seq = log
        .append(&NewMessage {
            subject: "a".into(),
            headers: Bytes::new(),
            payload: Bytes::from_static(b"after"),
            ts_ns: 9_000,
        })
        .expect("append after the cut");
    log.sync().expect("sync");
    seq
}

fn truncate_with_a_power_cut_at_every_step(last: u64) {
    let mut budget = 1;
    loop {
        let disk = PowerLossVfs::new();
        let held = filled(&disk);
        let power = CutPower {
            disk: disk.clone(),
            budget: Arc::new(AtomicI64::new(i64::MAX)),
        };
        let what = format!("cut after {last}, power lost at change {budget}");
        let mut log = open(Arc::new(power.clone()));
        // Only the truncation's own changes count.
        power.budget.store(budget, Ordering::SeqCst);
        let finished = log.truncate_after(last).is_ok() && power.budget.load(Ordering::SeqCst) > 0;
        drop(log);
        if !finished {
            disk.crash(Some(budget as u64));
            let mut log = open(Arc::new(disk.clone()));
            log.truncate_after(last)
                .unwrap_or_else(|e| panic!("{what}: truncating again: {e}"));
            check(&log, &held, last, &what);
        }
        let mut log = open(Arc::new(disk.clone()));
        check(&log, &held, last, &what);
        assert_eq!(next_append(&mut log), last + 1, "{what}: next sequence");
        drop(log);
        disk.crash(None);
        let log = open(Arc::new(disk.clone()));
        assert_eq!(
            log.state(false).expect("state").last_seq,
            last + 1,
            "{what}"
        );
        if finished {
            // The power was cut at each of the truncation's changes before this run.
            assert!(budget > 5, "{what}: only {budget} changes");
            return;
        }
        budget += 1;
        assert!(budget < 200, "the truncation never finished");
    }
}

#[test]
fn a_cut_inside_the_last_segment_survives_power_loss_at_every_step() {
    truncate_with_a_power_cut_at_every_step(38);
}

#[test]
fn a_cut_that_removes_whole_segments_survives_power_loss_at_every_step() {
    truncate_with_a_power_cut_at_every_step(12);
}

#[test]
fn a_cut_at_a_deleted_sequence_and_a_cut_of_everything_survive_power_loss() {
    truncate_with_a_power_cut_at_every_step(17);
    truncate_with_a_power_cut_at_every_step(0);
}

#[test]
fn a_cut_below_what_a_purge_removed_leaves_an_empty_log_that_goes_on_after_the_cut() {
    let disk = PowerLossVfs::new();
    filled(&disk);
    let mut log = open(Arc::new(disk.clone()));
    let purged = log
        .purge(&jetlog::store::PurgeRequest {
            filter: None,
            up_to_seq: Some(10),
            keep: None,
        })
        .expect("purge");
    assert_eq!(purged, 8, "1..=9 less the deleted 3");
    log.truncate_after(5).expect("truncate");
    check(&log, &BTreeMap::new(), 5, "after the cut");
    assert_eq!(next_append(&mut log), 6);
    drop(log);
    disk.crash(None);
    let log = open(Arc::new(disk.clone()));
    let state = log.state(false).expect("state");
    assert_eq!((state.first_seq, state.last_seq, state.msgs), (6, 6, 1));
}

/// A replicated stream's log: each batch is an entry, checkpointed with `set_applied` and
/// synced. Power is lost in the middle of the next entry, after its appends made the limits
/// empty whole segments. Cut back to the checkpoint, the log must hold exactly what it held
/// after the last checkpointed entry: the interrupted entry's removals must not have been
/// made durable under the earlier checkpoint (they would be, if the emptied segments were
/// unlinked before the entry's own `sync`).
#[test]
fn an_entry_interrupted_by_power_loss_is_cut_back_to_the_last_checkpoint() {
    for interrupted in 1..12u64 {
        let disk = PowerLossVfs::new();
        let cfg = LogConfig {
            max_msgs: 12,
            ..config()
        };
        let mut log = Log::open_with_vfs("/r", cfg.clone(), Arc::new(disk.clone())).expect("open");
        let mut at_checkpoint = Vec::new();
        for entry in 0..=interrupted {
            let batch: Vec<NewMessage> = (0..9u64)
                .map(|i| NewMessage {
                    subject: SUBJECTS[(i % 3) as usize].to_owned(),
                    headers: Bytes::new(),
                    payload: Bytes::from(vec![b'a' + (entry % 26) as u8; 400]),
                    ts_ns: 1_000 + entry * 10 + i,
                })
                .collect();
            log.append_batch(&batch).expect("append");
            if entry == interrupted {
                break;
            }
            log.set_applied(entry + 1);
            log.sync().expect("sync");
            at_checkpoint = log.scan(0, &[], usize::MAX).expect("scan");
        }
        drop(log);
        disk.crash(Some(interrupted));
        let mut log = Log::open_with_vfs("/r", cfg, Arc::new(disk.clone())).expect("reopen");
        let applied = log.applied().expect("a checkpoint");
        assert_eq!(applied.index, interrupted, "entry {interrupted}");
        log.truncate_after(applied.last_seq).expect("truncate");
        let now = log.scan(0, &[], usize::MAX).expect("scan");
        let seqs =
            |msgs: &[jetlog::store::StoredMessage]| msgs.iter().map(|m| m.seq).collect::<Vec<_>>();
        assert_eq!(seqs(&now), seqs(&at_checkpoint), "entry {interrupted}");
        for (a, b) in now.iter().zip(&at_checkpoint) {
            assert_eq!(a.payload, b.payload, "entry {interrupted}, seq {}", a.seq);
        }
    }
}
