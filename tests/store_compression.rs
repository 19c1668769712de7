//! A log that compresses payloads (a stream's `compression: s2`): what it serves is exactly
//! what was appended, limits and state count the uncompressed sizes (as nats-server's do),
//! the files are smaller, compression can be switched either way on an open log, and damage
//! to a compressed record is found by its CRC at any byte and never served.

use std::fs;
use std::path::Path;

use bytes::Bytes;
use jetlog::store::{Discard, Log, LogConfig, NewMessage, SyncPolicy};

const MESSAGES: u64 = 1000;

/// 1000 bytes that compress well but differ per message.
fn msg(i: u64) -> NewMessage {
    let text = format!("order {i:06} status=shipped carrier=post; ").repeat(30);
    NewMessage {
        subject: format!("orders.{}", i % 5),
        headers: if i.is_multiple_of(3) {
            Bytes::from_static(b"NATS/1.0\r\nk: v\r\n\r\n")
        } else {
            Bytes::new()
        },
        payload: Bytes::from(text.into_bytes()[..1000].to_vec()),
        ts_ns: 1_000 + i,
    }
}

fn cfg(compress: bool) -> LogConfig {
    LogConfig {
        compress,
        segment_bytes: 256 * 1024,
        sync: SyncPolicy::Always,
        ..LogConfig::default()
    }
}

fn disk_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .map(|p| fs::metadata(p).expect("metadata").len())
        .sum()
}

fn fill(dir: &Path, compress: bool) -> Log {
    let mut log = Log::open(dir, cfg(compress)).expect("open");
    let batch: Vec<NewMessage> = (1..=MESSAGES).map(msg).collect();
    for chunk in batch.chunks(64) {
        log.append_batch(chunk).expect("append");
    }
    log.sync().expect("sync");
    log
}

fn assert_all(log: &Log) {
    for i in 1..=MESSAGES {
        let got = log.get(i).expect("get").expect("present");
        let want = msg(i);
        assert_eq!(
            (got.subject, got.headers, got.payload, got.ts_ns),
            (want.subject, want.headers, want.payload, want.ts_ns),
            "message {i}"
        );
    }
}

#[test]
fn compressed_payloads_read_back_and_count_as_uncompressed_across_restarts() {
    let plain_dir = tempfile::tempdir().expect("tempdir");
    let packed_dir = tempfile::tempdir().expect("tempdir");
    let plain = fill(plain_dir.path(), false);
    let packed = fill(packed_dir.path(), true);
    assert_all(&packed);
    let plain_state = plain.state(false).expect("state");
    let packed_state = packed.state(false).expect("state");
    assert_eq!(packed_state.bytes, plain_state.bytes, "logical sizes");
    assert_eq!(packed_state.msgs, MESSAGES);
    let (on_disk, uncompressed) = (disk_bytes(packed_dir.path()), disk_bytes(plain_dir.path()));
    plain.close().expect("close");
    assert!(
        on_disk * 4 < uncompressed,
        "{on_disk} bytes on disk against {uncompressed}"
    );
    // After a clean close (snapshot) and after a crash (full scan), the same.
    packed.close().expect("close");
    let reopened = Log::open(packed_dir.path(), cfg(true)).expect("reopen");
    assert_eq!(
        reopened.state(false).expect("state").bytes,
        plain_state.bytes
    );
    assert_all(&reopened);
    drop(reopened);
    let scanned = Log::open(packed_dir.path(), cfg(false)).expect("reopen without snapshot");
    assert_eq!(
        scanned.state(false).expect("state").bytes,
        plain_state.bytes
    );
    assert_all(&scanned);
}

#[test]
fn limits_see_uncompressed_sizes_and_the_setting_can_change_on_an_open_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let size = (30 + msg(1).subject.len() + msg(1).payload.len()) as i64;
    let mut config = cfg(true);
    config.max_bytes = size * 10;
    config.discard = Discard::New;
    let mut log = Log::open(dir.path(), config.clone()).expect("open");
    let mut stored = 0;
    for i in (1..=30u64).filter(|i| !i.is_multiple_of(3)) {
        if log.append(&msg(i)).is_ok() {
            stored += 1;
        }
    }
    assert_eq!(
        stored, 10,
        "max_bytes counts what the messages are, not their disk size"
    );
    config.compress = false;
    config.max_bytes = -1;
    log.update_config(config.clone()).expect("update");
    log.append(&msg(31)).expect("append plain");
    config.compress = true;
    log.update_config(config).expect("update");
    log.append(&msg(32)).expect("append compressed");
    log.sync().expect("sync");
    drop(log);
    let log = Log::open(dir.path(), cfg(false)).expect("reopen");
    for (seq, i) in [(11, 31), (12, 32)] {
        assert_eq!(
            log.get(seq).expect("get").expect("present").payload,
            msg(i).payload
        );
    }
}

#[test]
fn a_flipped_bit_in_a_compressed_record_is_never_served() {
    let src = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(src.path(), cfg(true)).expect("open");
    for i in 1..=3 {
        log.append(&msg(i)).expect("append");
    }
    log.sync().expect("sync");
    drop(log);
    let seg = fs::read_dir(src.path())
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .find(|p| p.extension().is_some_and(|x| x == "seg"))
        .expect("a segment");
    let original = fs::read(&seg).expect("read");
    let end = original.iter().rposition(|b| *b != 0).expect("data") + 1;
    // Every byte of the second record (after the 20-byte header and the first record).
    let first_len = u32::from_le_bytes(original[20..24].try_into().expect("4 bytes")) as usize;
    let second = 20 + first_len;
    let second_len =
        u32::from_le_bytes(original[second..second + 4].try_into().expect("4 bytes")) as usize;
    assert!(second + second_len <= end);
    for at in (second..second + second_len).step_by(7) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut bad = original.clone();
        bad[at] ^= 0x10;
        fs::write(dir.path().join(seg.file_name().expect("name")), &bad).expect("write");
        let log = Log::open(dir.path(), cfg(true)).expect("open damaged");
        assert_eq!(
            log.get(1).expect("get").expect("first").payload,
            msg(1).payload
        );
        if let Ok(Some(got)) = log.get(2) {
            panic!(
                "damaged record served at byte {at}: {} bytes",
                got.payload.len()
            );
        }
        assert_eq!(
            log.get(3).expect("get").expect("third").payload,
            msg(3).payload
        );
    }
}
