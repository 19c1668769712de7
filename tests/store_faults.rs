//! Faults injected through `FaultyVfs`: failed writes, ENOSPC, short writes, failed fsyncs.
//! Each must surface as a typed error and leave a log that is consistent and readable, now
//! and after reopening on the real file system.

use std::path::Path;
use std::sync::Arc;

use jetlog::store::fault::{AllocateFault, FaultyVfs, WriteFault};
use jetlog::store::{Log, LogConfig, NewMessage, StoreError, SyncPolicy};

fn m(i: u64) -> NewMessage {
    NewMessage::new(
        format!("s.{}", i % 4),
        format!("payload {i}").into_bytes(),
        i,
    )
}

fn cfg() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        sync: SyncPolicy::Always,
        ..LogConfig::default()
    }
}

fn faulty(dir: &Path) -> (Log, FaultyVfs) {
    let vfs = FaultyVfs::new();
    let log = Log::open_with_vfs(dir, cfg(), Arc::new(vfs.clone())).expect("open");
    (log, vfs)
}

fn batch(from: u64, n: u64) -> Vec<NewMessage> {
    (from..from + n).map(m).collect()
}

/// Reopens on the real file system and checks messages 1..=n are all there and nothing else.
fn reopen_and_check(dir: &Path, n: u64) {
    let log = Log::open(dir, cfg()).expect("reopen");
    let st = log.state(false).expect("state");
    assert_eq!((st.msgs, st.last_seq), (n, n));
    for i in 1..=n {
        assert_eq!(
            log.get(i).expect("get").expect("present").payload,
            m(i).payload
        );
    }
    assert!(
        !log.recovery_report().found_damage(),
        "{:?}",
        log.recovery_report()
    );
}

#[test]
fn write_failure_is_rolled_back_and_the_log_stays_writable() {
    for how in [WriteFault::Eio, WriteFault::NoSpace, WriteFault::Short] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut log, vfs) = faulty(dir.path());
        log.append_batch(&batch(1, 10)).expect("append");
        log.sync().expect("sync");
        vfs.fail_nth_write(1, how);
        let err = log.append_batch(&batch(11, 5)).expect_err("write fails");
        match how {
            WriteFault::Eio => assert!(matches!(err, StoreError::Io { .. }), "{err}"),
            _ => assert!(matches!(err, StoreError::NoSpace { .. }), "{how:?}: {err}"),
        }
        assert_eq!(
            log.state(false).expect("state").last_seq,
            10,
            "nothing of the failed batch stored"
        );
        assert!(log.read_only_cause().is_none());
        let seqs = log.append_batch(&batch(11, 5)).expect("retry");
        assert_eq!(seqs.last().cloned(), Some(Ok(15)));
        log.sync().expect("sync");
        drop(log);
        reopen_and_check(dir.path(), 15);
    }
}

#[test]
fn disk_full_refuses_appends_until_space_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, vfs) = faulty(dir.path());
    log.append_batch(&batch(1, 3)).expect("append");
    vfs.fail_all_writes(WriteFault::NoSpace);
    for _ in 0..3 {
        let err = log.append_batch(&batch(4, 2)).expect_err("full");
        assert!(matches!(err, StoreError::NoSpace { .. }));
        assert!(err.to_string().contains("no space left"), "{err}");
    }
    assert_eq!(
        log.get(2).expect("read").map(|x| x.seq),
        Some(2),
        "reads still work"
    );
    vfs.clear();
    log.append_batch(&batch(4, 2)).expect("space again");
    log.sync().expect("sync");
    drop(log);
    reopen_and_check(dir.path(), 5);
}

#[test]
fn failed_fsync_makes_the_log_read_only_and_is_never_retried_as_success() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, vfs) = faulty(dir.path());
    log.append_batch(&batch(1, 5)).expect("append");
    log.sync().expect("sync");
    log.append_batch(&batch(6, 5)).expect("append");
    vfs.fail_nth_sync(1);
    let err = log.sync().expect_err("fsync fails");
    assert!(matches!(err, StoreError::Io { .. }), "{err}");
    // The next fsync would succeed at the OS level; the log must not pretend it did.
    let again = log.sync().expect_err("still failed");
    assert!(matches!(again, StoreError::ReadOnly { .. }), "{again}");
    assert!(again.to_string().contains("read-only"));
    assert!(matches!(
        log.append(&m(11)),
        Err(StoreError::ReadOnly { .. })
    ));
    assert!(matches!(log.delete(1), Err(StoreError::ReadOnly { .. })));
    assert!(log.read_only_cause().is_some());
    assert_eq!(log.get(7).expect("reads work").map(|x| x.seq), Some(7));
    drop(log);
    // The process did not crash, so the page cache still holds batch 6..=10.
    reopen_and_check(dir.path(), 10);
}

#[test]
fn failed_directory_fsync_after_segment_creation_makes_the_log_read_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, vfs) = faulty(dir.path());
    vfs.fail_nth_dir_sync(1);
    log.append_batch(&batch(1, 3))
        .expect("append creates the first segment");
    assert!(log.sync_if_due(std::time::Instant::now()).is_err());
    assert!(matches!(
        log.append(&m(4)),
        Err(StoreError::ReadOnly { .. })
    ));
    drop(log);
    reopen_and_check(dir.path(), 3);
}

#[test]
fn failed_deletes_write_makes_the_log_read_only_and_keeps_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, vfs) = faulty(dir.path());
    log.append_batch(&batch(1, 6)).expect("append");
    log.sync().expect("sync");
    assert!(log.delete(2).expect("delete"));
    // The deletes file is written through a temp file: fail its fsync.
    vfs.fail_nth_sync(1);
    assert!(log.sync().is_err());
    assert!(matches!(log.sync(), Err(StoreError::ReadOnly { .. })));
    drop(log);
    let log = Log::open(dir.path(), cfg()).expect("reopen");
    // The delete was never acknowledged as durable: either outcome is allowed, nothing else.
    let st = log.state(false).expect("state");
    assert!(st.msgs == 5 || st.msgs == 6, "{st:?}");
    assert_eq!(st.last_seq, 6);
}

/// Messages 1..=n are the only ones stored, in a log still open.
fn assert_holds(log: &Log, n: u64) {
    let st = log.state(false).expect("state");
    assert_eq!((st.msgs, st.last_seq), (n, n));
    assert_eq!(log.get(n).expect("read").map(|x| x.seq), Some(n));
}

#[test]
fn enospc_from_preallocation_is_no_space_and_the_log_stays_writable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, vfs) = faulty(dir.path());
    log.append_batch(&batch(1, 3)).expect("append");
    log.sync().expect("sync");
    // Both the step and the exact size fail: the disk is full.
    vfs.fail_all_allocates(AllocateFault::NoSpace);
    let before = vfs.allocate_count();
    let err = log
        .append_batch(&batch(4, 200))
        .expect_err("a new segment cannot be reserved");
    assert!(matches!(err, StoreError::NoSpace { .. }), "{err}");
    assert!(vfs.allocate_count() > before, "preallocation was attempted");
    assert!(log.read_only_cause().is_none());
    let last = log.state(false).expect("state").last_seq;
    assert!(last >= 3, "parts written before the failure stay");
    vfs.clear();
    let rest = log.append_batch(&batch(last + 1, 5)).expect("space again");
    assert_eq!(rest.last().cloned(), Some(Ok(last + 5)));
    log.sync().expect("sync");
    drop(log);
    reopen_and_check(dir.path(), last + 5);
}

#[test]
fn enospc_for_the_step_alone_falls_back_to_the_exact_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, vfs) = faulty(dir.path());
    vfs.fail_nth_allocate(1, AllocateFault::NoSpace);
    log.append_batch(&batch(1, 3))
        .expect("the write fits though the step does not");
    assert_eq!(vfs.allocate_count(), 2, "step, then exactly the batch");
    log.sync().expect("sync");
    log.append_batch(&batch(4, 3)).expect("append");
    log.sync().expect("sync");
    assert_holds(&log, 6);
    drop(log);
    reopen_and_check(dir.path(), 6);
}

#[test]
fn other_preallocation_errors_fail_the_append_without_writing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, vfs) = faulty(dir.path());
    vfs.fail_nth_allocate(1, AllocateFault::Eio);
    let err = log.append_batch(&batch(1, 3)).expect_err("EIO");
    assert!(matches!(err, StoreError::Io { .. }), "{err}");
    assert!(log.read_only_cause().is_none(), "nothing was written");
    log.append_batch(&batch(1, 3)).expect("retry");
    log.sync().expect("sync");
    drop(log);
    reopen_and_check(dir.path(), 3);
}

#[test]
fn unsupported_preallocation_is_skipped_silently() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, vfs) = faulty(dir.path());
    vfs.fail_all_allocates(AllocateFault::Unsupported);
    for i in 0..40 {
        log.append_batch(&batch(1 + i * 10, 10)).expect("append");
        log.sync().expect("sync");
    }
    let segments = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "seg"))
        })
        .count() as u64;
    assert!(segments > 1);
    assert_eq!(
        vfs.allocate_count(),
        segments,
        "asked once per segment, then no more"
    );
    assert_holds(&log, 400);
    assert!(log.recovery_report().findings.is_empty());
    drop(log);
    reopen_and_check(dir.path(), 400);
}
