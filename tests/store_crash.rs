//! Crash surgery on real files: torn tails at every byte offset, zero and garbage tails, single
//! bit flips in active and sealed segments, missing and damaged index files.

use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use jetlog::store::{FindingKind, Log, LogConfig, NewMessage, StoreError, SyncPolicy};

fn msg(i: u64) -> NewMessage {
    let len = 10 + (i * 7 % 40) as usize;
    NewMessage {
        subject: format!("orders.{}", i % 3),
        headers: if i.is_multiple_of(2) {
            Bytes::from_static(b"NATS/1.0\r\nk: v\r\n\r\n")
        } else {
            Bytes::new()
        },
        payload: Bytes::from(vec![i as u8; len]),
        ts_ns: 1_000 + i,
    }
}

fn cfg(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        sync: SyncPolicy::Always,
        ..LogConfig::default()
    }
}

/// Writes messages 1..=n and drops the log without a clean close (a crash after the syncs).
fn write_log(dir: &Path, n: u64, segment_bytes: u64) {
    let mut log = Log::open(dir, cfg(segment_bytes)).expect("open");
    for i in 1..=n {
        log.append(&msg(i)).expect("append");
    }
    log.sync().expect("sync");
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    v.sort();
    v
}

fn record_size(i: u64) -> u64 {
    let m = msg(i);
    (30 + m.subject.len() + m.headers.len() + m.payload.len()) as u64
}

fn assert_message(log: &Log, i: u64) {
    let got = log
        .get(i)
        .expect("get")
        .unwrap_or_else(|| panic!("message {i} missing"));
    let want = msg(i);
    assert_eq!(
        (got.subject, got.headers, got.payload, got.ts_ns),
        (want.subject, want.headers, want.payload, want.ts_ns)
    );
}

#[test]
fn torn_tail_is_truncated_at_every_offset_of_the_last_records() {
    let src = tempfile::tempdir().expect("tempdir");
    write_log(src.path(), 6, 1 << 20);
    let seg = segments(src.path()).remove(0);
    let mut original = fs::read(&seg).expect("read");
    let ends: Vec<u64> = (1..=6)
        .scan(20u64, |at, i| {
            *at += record_size(i);
            Some(*at)
        })
        .collect();
    let end = *ends.last().expect("ends") as usize;
    assert!(
        original[end..].iter().all(|b| *b == 0),
        "only preallocated zeros after the data"
    );
    original.truncate(end);
    // Cut the data at every offset, with nothing after the cut (a file that was never
    // preallocated) and with zeros after it (a torn append into preallocated space).
    for (cut, zeros) in (ends[2]..=end as u64).flat_map(|c| [(c, 0), (c, 64 * 1024)]) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(seg.file_name().expect("name"));
        let mut bytes = original[..cut as usize].to_vec();
        bytes.resize(bytes.len() + zeros, 0);
        fs::write(&path, &bytes).expect("write");
        let mut log = Log::open(dir.path(), cfg(1 << 20)).expect("open");
        let complete = ends.iter().filter(|e| **e <= cut).count() as u64;
        let st = log.state(false).expect("state");
        let at = format!("cut at {cut}, {zeros} zeros after");
        assert_eq!((st.msgs, st.last_seq), (complete, complete), "{at}");
        for i in 1..=complete {
            assert_message(&log, i);
        }
        let torn = log
            .recovery_report()
            .findings
            .iter()
            .any(|f| matches!(f.kind, FindingKind::TornTailTruncated { .. }));
        assert_eq!(torn, !ends.contains(&cut), "{at}");
        if ends.contains(&cut) {
            assert!(!log.recovery_report().found_damage(), "{at}");
        }
        assert_eq!(
            log.append(&msg(complete + 1)).expect("append"),
            complete + 1
        );
        log.sync().expect("sync");
        drop(log);
        let log = Log::open(dir.path(), cfg(1 << 20)).expect("reopen");
        assert_message(&log, complete + 1);
        assert!(
            !log.recovery_report().found_damage(),
            "{at}: {:?}",
            log.recovery_report()
        );
    }
}

#[test]
fn zero_and_garbage_tails_are_truncated() {
    for tail in [
        vec![0u8; 4096],
        b"\x55\xaa garbage that is not a record at all \x01\x02".to_vec(),
        vec![0xff; 31],
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        write_log(dir.path(), 5, 1 << 20);
        let seg = segments(dir.path()).remove(0);
        // The data's end; the file itself may be longer, holding preallocated zeros.
        let len = 20 + (1..=5).map(record_size).sum::<u64>();
        let mut bytes = fs::read(&seg).expect("read");
        bytes.extend_from_slice(&tail);
        fs::write(&seg, &bytes).expect("write");
        let mut log = Log::open(dir.path(), cfg(1 << 20)).expect("open");
        assert_eq!(log.state(false).expect("state").last_seq, 5);
        assert_eq!(
            fs::metadata(&seg).expect("meta").len(),
            len,
            "tail must be cut off"
        );
        // Zeros are where the next records would have gone; anything else is a torn tail.
        let findings = log.recovery_report().findings;
        if tail.iter().all(|b| *b == 0) {
            assert!(findings.is_empty(), "{findings:?}");
        } else {
            assert!(
                matches!(findings[..], [ref f] if matches!(f.kind, FindingKind::TornTailTruncated { .. })),
                "{findings:?}"
            );
        }
        assert_eq!(log.append(&msg(6)).expect("append"), 6);
    }
}

/// Flips one bit inside record `victim` of the segment and checks the damage is detected, the
/// record never served, and every other record still readable.
fn flip_and_check(segment_bytes: u64, n: u64, victim: u64, clean_close: bool) {
    for bit_in_record in [0u64, 13, 37, 64, 100, 170, 240, 333] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = Log::open(dir.path(), cfg(segment_bytes)).expect("open");
        for i in 1..=n {
            log.append(&msg(i)).expect("append");
        }
        if clean_close {
            log.close().expect("close");
        } else {
            log.sync().expect("sync");
            drop(log);
        }
        // Locate the victim's record: segments are named by base sequence.
        let segs = segments(dir.path());
        let base_of = |p: &PathBuf| -> u64 {
            p.file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse().ok())
                .expect("base")
        };
        let seg = segs
            .iter()
            .rev()
            .find(|p| base_of(p) <= victim)
            .expect("segment")
            .clone();
        let start = 20 + (base_of(&seg)..victim).map(record_size).sum::<u64>();
        let size = record_size(victim);
        let bit = bit_in_record % (size * 8);
        let mut bytes = fs::read(&seg).expect("read");
        bytes[(start + bit / 8) as usize] ^= 1 << (bit % 8);
        fs::write(&seg, &bytes).expect("write");

        let log = Log::open(dir.path(), cfg(segment_bytes)).expect("open");
        match log.get(victim) {
            Ok(None) | Err(StoreError::Corrupt { .. }) => {}
            Ok(Some(m)) => panic!("damaged record served: {m:?}"),
            Err(e) => panic!("unexpected error {e}"),
        }
        for i in (1..=n).filter(|i| *i != victim) {
            assert_message(&log, i);
        }
        // A scan steps over the damaged record to the next one.
        let next = log
            .next_matching(victim, &[])
            .expect("scan")
            .expect("later record");
        assert_eq!(next.seq, victim + 1);
        assert!(
            log.recovery_report().found_damage(),
            "damage not reported (bit {bit})"
        );
        let report = log.recovery_report();
        let finding = report
            .findings
            .iter()
            .find(|f| !matches!(f.kind, FindingKind::SnapshotIgnored { .. }))
            .expect("damage finding");
        assert_eq!(finding.path, seg, "finding names the file");
        assert!(
            finding.offset >= start && finding.offset < start + size.max(1) + 64,
            "finding offset {}",
            finding.offset
        );
    }
}

#[test]
fn bit_flip_in_active_segment_is_detected_and_later_records_kept() {
    flip_and_check(1 << 20, 8, 4, false);
    flip_and_check(1 << 20, 8, 4, true);
}

#[test]
fn bit_flip_in_sealed_segment_is_detected_and_later_records_kept() {
    // 4 KiB segments: ~60 records each, so the victim sits in a sealed segment.
    flip_and_check(4096, 200, 30, false);
    flip_and_check(4096, 200, 30, true);
}

#[test]
fn missing_or_damaged_index_is_rebuilt() {
    for clean in [false, true] {
        for damage in ["delete", "flip", "truncate"] {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut log = Log::open(dir.path(), cfg(4096)).expect("open");
            for i in 1..=300 {
                log.append(&msg(i)).expect("append");
            }
            if clean {
                log.close().expect("close")
            } else {
                log.sync().expect("sync")
            }
            let idx = dir.path().join("00000000000000000001.idx");
            let good = fs::read(&idx).expect("index written at seal");
            match damage {
                "delete" => fs::remove_file(&idx).expect("rm"),
                "flip" => {
                    let mut b = good.clone();
                    b[40] ^= 0x04;
                    fs::write(&idx, b).expect("write");
                }
                _ => fs::write(&idx, &good[..good.len() / 2]).expect("write"),
            }
            let log = Log::open(dir.path(), cfg(4096)).expect("open");
            for i in 1..=300 {
                assert_message(&log, i);
            }
            let rebuilt = log
                .recovery_report()
                .findings
                .iter()
                .any(|f| matches!(f.kind, FindingKind::IndexRebuilt { .. }));
            assert!(
                rebuilt,
                "{damage} clean={clean}: {:?}",
                log.recovery_report()
            );
            assert_eq!(
                fs::read(&idx).expect("index rewritten"),
                good,
                "{damage} clean={clean}"
            );
        }
    }
}

#[test]
fn interior_garbage_between_records_is_skipped_and_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_log(dir.path(), 6, 1 << 20);
    let seg = segments(dir.path()).remove(0);
    let mut bytes = fs::read(&seg).expect("read");
    let start3 = 20 + (1..3).map(record_size).sum::<u64>() as usize;
    for b in &mut bytes[start3..start3 + 10] {
        *b = 0xee;
    }
    fs::write(&seg, &bytes).expect("write");
    let mut log = Log::open(dir.path(), cfg(1 << 20)).expect("open");
    assert!(log.get(3).expect("get").is_none());
    for i in [1, 2, 4, 5, 6] {
        assert_message(&log, i);
    }
    let st = log.state(true).expect("state");
    assert_eq!((st.msgs, st.last_seq, st.deleted.clone()), (5, 6, vec![3]));
    let f = &log.recovery_report().findings[0];
    assert_eq!((f.path.clone(), f.offset), (seg.clone(), start3 as u64));
    // The damaged bytes stay on disk, and appends go on after the last record.
    assert_eq!(log.append(&msg(7)).expect("append"), 7);
    assert_eq!(fs::read(&seg).expect("read")[start3], 0xee);
}

/// Base sequence of a segment file, from its name.
fn base_of(p: &Path) -> u64 {
    p.file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .expect("base")
}

#[test]
fn sealed_segments_are_exactly_as_long_as_their_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), cfg(4096)).expect("open");
    for i in 1..=300 {
        log.append(&msg(i)).expect("append");
        log.sync().expect("sync");
    }
    let segs = segments(dir.path());
    assert!(segs.len() > 2);
    let logical = |from: u64, to: u64| 20 + (from..to).map(record_size).sum::<u64>();
    for pair in segs.windows(2) {
        let len = fs::metadata(&pair[0]).expect("meta").len();
        assert_eq!(
            len,
            logical(base_of(&pair[0]), base_of(&pair[1])),
            "{}",
            pair[0].display()
        );
    }
    let active = segs.last().expect("active");
    let data = logical(base_of(active), 301);
    assert!(
        fs::metadata(active).expect("meta").len() > data,
        "the active segment holds preallocated space"
    );
    log.close().expect("close");
    assert_eq!(
        fs::metadata(active).expect("meta").len(),
        data,
        "close trims the active segment"
    );
    let log = Log::open(dir.path(), cfg(4096)).expect("reopen");
    let report = log.recovery_report();
    assert!(
        report.used_snapshot && report.findings.is_empty(),
        "{report:?}"
    );
}

#[test]
fn preallocated_tail_after_a_crash_is_the_end_of_data_not_damage() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_log(dir.path(), 5, 1 << 20);
    let seg = segments(dir.path()).remove(0);
    let data = 20 + (1..=5).map(record_size).sum::<u64>();
    assert!(fs::metadata(&seg).expect("meta").len() > data);
    let mut log = Log::open(dir.path(), cfg(1 << 20)).expect("open");
    let report = log.recovery_report();
    assert!(report.findings.is_empty(), "{report:?}");
    assert_eq!(log.append(&msg(6)).expect("append"), 6);
    log.sync().expect("sync");
    drop(log);
    let log = Log::open(dir.path(), cfg(1 << 20)).expect("reopen");
    assert!(log.recovery_report().findings.is_empty());
    for i in 1..=6 {
        assert_message(&log, i);
    }
}

#[test]
fn sealed_segment_with_zeros_where_its_last_records_were_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_log(dir.path(), 300, 4096);
    let segs = segments(dir.path());
    let first = &segs[0];
    let next_base = base_of(&segs[1]);
    // Zero the last two records of the first (sealed) segment.
    let mut bytes = fs::read(first).expect("read");
    let cut = bytes.len() - (record_size(next_base - 1) + record_size(next_base - 2)) as usize;
    bytes[cut..].fill(0);
    fs::write(first, &bytes).expect("write");
    let log = Log::open(dir.path(), cfg(4096)).expect("open");
    let report = log.recovery_report();
    let f = report
        .findings
        .iter()
        .find(|f| matches!(f.kind, FindingKind::DamagedTail { .. }))
        .unwrap_or_else(|| panic!("missing records not reported: {report:?}"));
    assert_eq!((&f.path, f.offset), (first, cut as u64));
    match log.get(next_base - 1) {
        Ok(None) | Err(StoreError::Corrupt { .. }) => {}
        other => panic!("zeroed record served: {other:?}"),
    }
    assert_message(&log, next_base);
}

#[test]
fn sealed_segment_whose_trim_was_lost_is_trimmed_without_a_finding() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_log(dir.path(), 300, 4096);
    let first = segments(dir.path()).remove(0);
    let len = fs::metadata(&first).expect("meta").len();
    let mut bytes = fs::read(&first).expect("read");
    bytes.resize(4096, 0);
    fs::write(&first, &bytes).expect("write");
    let log = Log::open(dir.path(), cfg(4096)).expect("open");
    let report = log.recovery_report();
    assert!(report.findings.is_empty(), "{report:?}");
    assert_eq!(fs::metadata(&first).expect("meta").len(), len);
    for i in 1..=300 {
        assert_message(&log, i);
    }
}

#[test]
fn zero_filled_last_segment_from_an_interrupted_creation_is_reinitialised() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_log(dir.path(), 5, 1 << 20);
    // A power loss after the new segment was preallocated but before its header was written.
    let path = dir.path().join("00000000000000000006.seg");
    fs::write(&path, vec![0u8; 64 * 1024]).expect("write");
    let mut log = Log::open(dir.path(), cfg(1 << 20)).expect("open");
    let report = log.recovery_report();
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.path == path && f.kind == FindingKind::SegmentHeaderRewritten),
        "{report:?}"
    );
    assert!(
        !report.findings.iter().any(|f| matches!(
            f.kind,
            FindingKind::Damaged { .. }
                | FindingKind::DamagedTail { .. }
                | FindingKind::TornTailTruncated { .. }
        )),
        "{report:?}"
    );
    assert_eq!(log.append(&msg(6)).expect("append"), 6);
    log.sync().expect("sync");
    drop(log);
    let log = Log::open(dir.path(), cfg(1 << 20)).expect("reopen");
    for i in 1..=6 {
        assert_message(&log, i);
    }
}
