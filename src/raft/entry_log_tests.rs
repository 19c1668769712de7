//! The entry log broken as a crash or a bad disk breaks it (its tail cut at every byte, each
//! byte flipped), and driven by random operations against a model.

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;

use super::entry_log::{EntryLog, RecordBatch, SEGMENT_EXT};

/// An encoded entry as the codec lays it out: a header whose bytes 17..25 are the index, and
/// a body that differs per index.
fn entry(index: u64, body: usize) -> Vec<u8> {
    let mut bytes = vec![1u8; 17];
    bytes.extend_from_slice(&index.to_le_bytes());
    bytes.extend((0..body).map(|i| (index as usize + i) as u8));
    bytes
}

fn append(log: &mut EntryLog, from: u64, count: u64, body: usize) {
    let mut batch = RecordBatch::default();
    for i in from..from + count {
        batch.push(i, |buf| buf.extend_from_slice(&entry(i, body)));
    }
    if let Some(pending) = log.append(&batch).expect("append") {
        pending.sync().expect("sync");
    }
}

fn held(log: &EntryLog) -> Vec<Vec<u8>> {
    log.read(0, u64::MAX).expect("read")
}

fn only_segment(dir: &Path) -> std::path::PathBuf {
    let mut segments: Vec<_> = std::fs::read_dir(dir)
        .expect("list")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == SEGMENT_EXT))
        .collect();
    assert_eq!(segments.len(), 1);
    segments.remove(0)
}

#[test]
fn a_tail_cut_at_any_byte_keeps_exactly_the_whole_records_before_it() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("g");
    let mut log = EntryLog::open(&data, None).expect("open");
    append(&mut log, 1, 6, 20);
    drop(log);
    let segment = only_segment(&data);
    let bytes = std::fs::read(&segment).expect("read");
    let record = 8 + 25 + 20;
    let data_len = 6 * record;
    assert!(
        bytes[data_len..].iter().all(|b| *b == 0),
        "zeros past the data"
    );
    for cut in 0..=data_len {
        std::fs::write(&segment, &bytes[..cut]).expect("cut");
        let mut log = EntryLog::open(&data, None).expect("reopen");
        let whole = (cut / record) as u64;
        let expected: Vec<_> = (1..=whole).map(|i| entry(i, 20)).collect();
        assert_eq!(held(&log), expected, "cut at {cut}");
        // The log goes on from where the damage left it.
        append(&mut log, whole + 1, 1, 20);
        assert_eq!(log.last_index(), Some(whole + 1), "cut at {cut}");
    }
}

#[test]
fn a_flipped_byte_ends_the_log_before_the_damaged_record() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("g");
    let mut log = EntryLog::open(&data, None).expect("open");
    append(&mut log, 1, 4, 10);
    drop(log);
    let segment = only_segment(&data);
    let original = std::fs::read(&segment).expect("read");
    let record = 8 + 25 + 10;
    for at in 0..4 * record {
        let mut bytes = original.clone();
        bytes[at] ^= 0x40;
        std::fs::write(&segment, &bytes).expect("flip");
        let log = EntryLog::open(&data, None).expect("reopen");
        let intact = (at / record) as u64;
        let expected: Vec<_> = (1..=intact).map(|i| entry(i, 10)).collect();
        assert_eq!(held(&log), expected, "flip at {at}");
    }
}

#[test]
fn segments_after_a_damaged_one_are_dropped() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("g");
    let mut log = EntryLog::open(&data, None).expect("open");
    // Each entry is 1 MiB, so the log rolls to a new segment after every eighth.
    for i in 1..=20 {
        append(&mut log, i, 1, 1 << 20);
    }
    drop(log);
    let first = data.join(format!("{:020}.{SEGMENT_EXT}", 1));
    let mut bytes = std::fs::read(&first).expect("read");
    let third_record = 2 * (8 + 25 + (1 << 20));
    bytes[third_record + 100] ^= 1;
    std::fs::write(&first, &bytes).expect("damage");
    let log = EntryLog::open(&data, None).expect("reopen");
    assert_eq!(log.last_index(), Some(2));
    let left = std::fs::read_dir(&data).expect("list").count();
    assert_eq!(left, 1, "later segments removed");
}

#[derive(Debug, Clone)]
enum Op {
    Append {
        count: u64,
        body: usize,
    },
    Truncate {
        back: u64,
    },
    Purge {
        ahead: u64,
    },
    /// Purge past the end, as installing a snapshot does; the next append follows it.
    PurgeAll {
        beyond: u64,
    },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u64..6, 0usize..3000).prop_map(|(count, body)| Op::Append { count, body }),
        1 => (0u64..8).prop_map(|back| Op::Truncate { back }),
        1 => (0u64..8).prop_map(|ahead| Op::Purge { ahead }),
        1 => (0u64..4).prop_map(|beyond| Op::PurgeAll { beyond }),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Random appends, truncations, purges and reopenings agree with a map of index to
    /// entry; the reopening gets the purge point as the log store would pass it.
    #[test]
    fn the_log_agrees_with_a_model(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().expect("dir");
        let data = dir.path().join("g");
        let mut log = EntryLog::open(&data, None).expect("open");
        let mut model: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        let mut purged: Option<u64> = None;
        let next = |model: &BTreeMap<u64, Vec<u8>>, purged: Option<u64>| {
            model.keys().next_back().copied().or(purged).unwrap_or(0) + 1
        };
        for op in ops {
            match op {
                Op::Append { count, body } => {
                    let from = next(&model, purged);
                    append(&mut log, from, count, body);
                    for i in from..from + count {
                        model.insert(i, entry(i, body));
                    }
                }
                Op::Truncate { back } => {
                    let since = next(&model, purged).saturating_sub(back).max(1);
                    let since = since.max(purged.map_or(1, |p| p + 1));
                    log.truncate(since).expect("truncate");
                    model.retain(|i, _| *i < since);
                }
                Op::Purge { ahead } => {
                    let Some(first) = model.keys().next().copied() else { continue };
                    let upto = first + ahead;
                    let upto = upto.min(next(&model, purged) - 1);
                    log.purge(upto).expect("purge");
                    model.retain(|i, _| *i > upto);
                    purged = Some(upto);
                }
                Op::PurgeAll { beyond } => {
                    let upto = next(&model, purged) - 1 + beyond;
                    log.purge(upto).expect("purge");
                    model.clear();
                    purged = Some(upto);
                }
                Op::Reopen => {
                    drop(log);
                    log = EntryLog::open(&data, purged).expect("reopen");
                }
            }
            prop_assert_eq!(log.last_index(), model.keys().next_back().copied());
            let expected: Vec<Vec<u8>> = model.values().cloned().collect();
            prop_assert_eq!(held(&log), expected);
        }
    }
}
