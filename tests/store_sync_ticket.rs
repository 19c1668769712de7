//! `Log::begin_sync` / `finish_sync`: the fdatasync the stream actor runs on its syncer
//! thread while it appends the next batch (`src/server/jetstream/pipeline.rs`). What a
//! finished ticket reports durable must survive a simulated power loss; a failed ticket, or a
//! failure elsewhere while it ran, makes the log read-only and acknowledges nothing.

use std::path::Path;
use std::sync::Arc;

use jetlog::store::fault::FaultyVfs;
use jetlog::store::power_loss::PowerLossVfs;
use jetlog::store::{Log, LogConfig, NewMessage, StoreError, SyncPolicy, SyncStart, SyncTicket};

fn cfg() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        sync: SyncPolicy::Always,
        ..LogConfig::default()
    }
}

fn batch(from: u64, n: u64) -> Vec<NewMessage> {
    (from..from + n)
        .map(|i| NewMessage::new("s", format!("payload {i}").into_bytes(), i))
        .collect()
}

fn ticket(log: &mut Log) -> SyncTicket {
    match log.begin_sync().expect("begin_sync") {
        SyncStart::Ticket(t) => t,
        other => panic!("expected a ticket, got {other:?}"),
    }
}

fn seqs(log: &Log) -> Vec<u64> {
    log.scan(1, &[], usize::MAX)
        .expect("scan")
        .iter()
        .map(|m| m.seq)
        .collect()
}

#[test]
fn a_finished_ticket_makes_its_batch_durable_while_the_next_is_appended() {
    let vfs = PowerLossVfs::new();
    let dir = Path::new("/store/T");
    let open = || Log::open_with_vfs(dir, cfg(), Arc::new(vfs.clone())).expect("open");
    let mut log = open();
    // A new segment needs its directory entry synced: no ticket can cover that.
    log.append_batch(&batch(1, 3)).expect("append");
    assert!(matches!(log.begin_sync(), Ok(SyncStart::NeedsFull)));
    log.sync().expect("sync");
    assert_eq!(log.durable_seq(), 3);
    assert!(matches!(log.begin_sync(), Ok(SyncStart::Clean)));

    log.append_batch(&batch(4, 3)).expect("append");
    let t = ticket(&mut log);
    // Appended after the ticket was taken: the next sync's business.
    log.append_batch(&batch(7, 3)).expect("append");
    assert_eq!(
        log.durable_seq(),
        3,
        "nothing new is durable before the ticket ran"
    );
    let result = t.run();
    log.finish_sync(&t, result).expect("finish");
    assert_eq!(
        log.durable_seq(),
        6,
        "the ticket covers what came before it"
    );
    // The segment is dirty again, for the batch appended while the ticket ran.
    let t = ticket(&mut log);
    let result = t.run();
    log.finish_sync(&t, result).expect("finish");
    assert_eq!(log.durable_seq(), 9);

    vfs.crash(None);
    drop(log);
    assert_eq!(seqs(&open()), (1..=9).collect::<Vec<_>>());
}

#[test]
fn a_ticket_not_yet_run_protects_nothing() {
    let vfs = PowerLossVfs::new();
    let dir = Path::new("/store/T");
    let open = || Log::open_with_vfs(dir, cfg(), Arc::new(vfs.clone())).expect("open");
    let mut log = open();
    log.append_batch(&batch(1, 3)).expect("append");
    log.sync().expect("sync");
    log.append_batch(&batch(4, 3)).expect("append");
    let _t = ticket(&mut log);
    vfs.crash(None);
    drop(log);
    assert_eq!(seqs(&open()), vec![1, 2, 3]);
}

#[test]
fn a_failed_ticket_makes_the_log_read_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vfs = FaultyVfs::new();
    let mut log = Log::open_with_vfs(dir.path(), cfg(), Arc::new(vfs.clone())).expect("open");
    log.append_batch(&batch(1, 3)).expect("append");
    log.sync().expect("sync");
    log.append_batch(&batch(4, 3)).expect("append");
    let t = ticket(&mut log);
    vfs.fail_nth_sync(1);
    let result = t.run();
    assert!(result.is_err(), "the injected EIO reaches the ticket");
    let err = log.finish_sync(&t, result).expect_err("finish reports it");
    assert!(matches!(err, StoreError::Io { .. }), "{err}");
    assert_eq!(log.durable_seq(), 3);
    assert!(matches!(log.begin_sync(), Err(StoreError::ReadOnly { .. })));
    assert!(log.read_only_cause().is_some());
}

/// A sync elsewhere (a purge through the API) failed while the ticket ran; the ticket's own
/// fdatasync then returns success because the kernel reports a write-back error only once.
/// The ticket must not count as a success.
#[test]
fn a_ticket_that_succeeds_after_another_sync_failed_is_not_believed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vfs = FaultyVfs::new();
    let mut log = Log::open_with_vfs(dir.path(), cfg(), Arc::new(vfs.clone())).expect("open");
    log.append_batch(&batch(1, 3)).expect("append");
    log.sync().expect("sync");
    log.append_batch(&batch(4, 3)).expect("append");
    let t = ticket(&mut log);
    log.append_batch(&batch(7, 1)).expect("append");
    vfs.fail_nth_sync(1);
    log.sync().expect_err("the other sync fails");
    let result = t.run();
    assert!(result.is_ok(), "the ticket's own fdatasync succeeds");
    let err = log
        .finish_sync(&t, result)
        .expect_err("but the log is read-only");
    assert!(matches!(err, StoreError::ReadOnly { .. }), "{err}");
    assert_eq!(log.durable_seq(), 3);
}
