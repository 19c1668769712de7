//! The memory log against the file log: random operation sequences with every limit, both
//! discard modes, headers, refused messages, config changes and timestamps that go backwards
//! must give the same result from both, call by call, and leave the same state and messages.
//! Then the retention rules one by one for the memory log, and `StreamStore` over both kinds.

use std::time::{Duration, Instant};

use bytes::Bytes;
use jetlog::store::{
    Discard, Log, LogConfig, MemLog, NewMessage, PurgeRequest, Rejection, StoreError, StreamStore,
    SyncPolicy,
};
use proptest::prelude::*;

/// Subjects to publish to; the last three are rare: two refused as invalid, and `c.*`,
/// stored literally beside `c.x` and `c.y`.
const SUBJECTS: [&str; 8] = ["a", "b", "c.x", "c.y", "d.e.f", "", "c.*", "a b"];
const FILTERS: [&str; 8] = ["a", "b", "c.x", "c.*", "d.>", ">", "zzz", "*"];

#[derive(Debug, Clone)]
struct Publish {
    subject: usize,
    headers_len: usize,
    payload_len: usize,
    /// Move the clock back by this much instead of forward (timestamps come from the caller).
    back: Option<u64>,
}

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<Publish>),
    Delete(u64),
    Purge(PurgeRequest),
    Expire(u64),
    UpdateConfig(LogConfig),
    /// Skips this many sequences past the last one (a restore's gaps).
    SkipTo(u64),
}

fn publish() -> impl Strategy<Value = Publish> {
    (
        prop_oneof![12 => 0..5usize, 1 => 5..SUBJECTS.len()],
        prop::option::weighted(0.2, 1..40usize),
        0..100usize,
        prop::option::weighted(0.1, 1..20u64),
    )
        .prop_map(|(subject, headers_len, payload_len, back)| Publish {
            subject,
            headers_len: headers_len.unwrap_or(0),
            payload_len,
            back,
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => prop::collection::vec(publish(), 1..12).prop_map(Op::Append),
        2 => (0..80u64).prop_map(Op::Delete),
        2 => (prop::option::of(0..FILTERS.len()), prop::option::weighted(0.3, 0..80u64),
              prop::option::weighted(0.3, 0..6u64))
            .prop_map(|(filter, up_to_seq, keep)| Op::Purge(PurgeRequest {
                filter: filter.map(|i| FILTERS[i].to_owned()),
                up_to_seq,
                keep,
            })),
        1 => (0..40u64).prop_map(Op::Expire),
        1 => config().prop_map(Op::UpdateConfig),
        1 => (0..6u64).prop_map(Op::SkipTo),
    ]
}

fn config() -> impl Strategy<Value = LogConfig> {
    (
        prop::option::weighted(0.3, 5..40i64),
        prop::option::weighted(0.2, 600..4000i64),
        prop::option::weighted(0.3, 1..4i64),
        prop::option::weighted(0.2, 10..60u64),
        prop::option::weighted(0.1, 20..120i64),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(
                max_msgs,
                max_bytes,
                per_subject,
                max_age,
                max_msg_size,
                new,
                new_per_subject,
                compress,
            )| {
                let discard = if new { Discard::New } else { Discard::Old };
                LogConfig {
                    max_msgs: max_msgs.unwrap_or(-1),
                    max_bytes: max_bytes.unwrap_or(-1),
                    max_msgs_per_subject: per_subject.unwrap_or(-1),
                    max_age: Duration::from_nanos(max_age.unwrap_or(0)),
                    max_msg_size: max_msg_size.unwrap_or(-1),
                    discard,
                    discard_new_per_subject: new_per_subject && new && per_subject.is_some(),
                    segment_bytes: 4096,
                    sync: SyncPolicy::Never,
                    // The file log may compress; the memory log never does: both must agree.
                    compress,
                }
            },
        )
}

fn fail(e: impl ToString) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

/// A result with the error reduced to its stable code, so results of both logs compare.
fn coded<T>(r: Result<T, StoreError>) -> Result<T, u16> {
    r.map_err(|e| e.code())
}

/// Every read of the two logs gives the same answer.
fn check_same(file: &Log, mem: &MemLog) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        file.state(true).map_err(fail)?,
        mem.state(true).map_err(fail)?
    );
    prop_assert_eq!(file.msgs(), mem.msgs());
    prop_assert_eq!(file.last_seq(), mem.last_seq());
    prop_assert_eq!(file.config(), mem.config());
    let last = file.last_seq();
    for seq in 0..=last + 1 {
        prop_assert_eq!(file.get(seq).map_err(fail)?, mem.get(seq).map_err(fail)?);
    }
    for (i, f) in FILTERS.iter().enumerate() {
        let start = (i as u64 * 7) % (last + 2);
        prop_assert_eq!(
            file.scan(start, &[f], 3).map_err(fail)?,
            mem.scan(start, &[f], 3).map_err(fail)?,
            "scan({}, {})",
            start,
            f
        );
        prop_assert_eq!(
            file.next_matching(start, &[f, "a"]).map_err(fail)?,
            mem.next_matching(start, &[f, "a"]).map_err(fail)?
        );
        prop_assert_eq!(
            file.last_for_subject(f).map_err(fail)?,
            mem.last_for_subject(f).map_err(fail)?
        );
        prop_assert_eq!(file.subject_counts(f), mem.subject_counts(f));
    }
    prop_assert_eq!(
        file.scan(0, &[], usize::MAX).map_err(fail)?,
        mem.scan(0, &[], usize::MAX).map_err(fail)?
    );
    prop_assert_eq!(
        file.next_expiry_ns().map_err(fail)?,
        mem.next_expiry_ns().map_err(fail)?
    );
    for ts in [0, 3, 10, 25, 60, 200, u64::MAX] {
        prop_assert_eq!(
            file.seq_at_or_after_time(ts).map_err(fail)?,
            mem.seq_at_or_after_time(ts).map_err(fail)?
        );
    }
    Ok(())
}

fn run(cfg: LogConfig, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().map_err(fail)?;
    let mut file = Log::open(dir.path(), cfg.clone()).map_err(fail)?;
    let mut mem = MemLog::new(cfg).map_err(fail)?;
    let mut clock = 10u64;
    for op in ops {
        match op {
            Op::Append(batch) => {
                let msgs: Vec<NewMessage> = batch
                    .iter()
                    .map(|p| {
                        clock = match p.back {
                            Some(back) => clock.saturating_sub(back),
                            None => clock + 1,
                        };
                        NewMessage {
                            subject: SUBJECTS[p.subject].to_owned(),
                            headers: Bytes::from(vec![b'h'; p.headers_len]),
                            payload: Bytes::from(vec![(clock % 251) as u8; p.payload_len]),
                            ts_ns: clock,
                        }
                    })
                    .collect();
                let want = file.append_batch(&msgs).map_err(fail)?;
                prop_assert_eq!(mem.append_batch(&msgs).map_err(fail)?, want);
            }
            Op::Delete(seq) => {
                prop_assert_eq!(coded(mem.delete(seq)), coded(file.delete(seq)));
            }
            Op::Purge(req) => {
                prop_assert_eq!(coded(mem.purge(&req)), coded(file.purge(&req)), "{:?}", req);
            }
            Op::Expire(delta) => {
                let now = clock + delta;
                prop_assert_eq!(coded(mem.expire(now)), coded(file.expire(now)));
            }
            Op::SkipTo(gap) => {
                let next = file.last_seq() + 1 + gap;
                prop_assert_eq!(coded(mem.skip_to(next)), coded(file.skip_to(next)));
            }
            Op::UpdateConfig(cfg) => {
                prop_assert_eq!(
                    coded(mem.update_config(cfg.clone())),
                    coded(file.update_config(cfg))
                );
            }
        }
        check_same(&file, &mem)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 128,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn memory_log_gives_the_file_logs_results(
        cfg in config(),
        ops in prop::collection::vec(op(), 1..50),
    ) {
        run(cfg, ops)?;
    }
}

// Retention of the memory log, rule by rule (the file log's are in `store_retention.rs`).

fn m(subject: &str, ts: u64) -> NewMessage {
    NewMessage::new(subject, vec![7u8; 20], ts)
}

fn mem(cfg: LogConfig) -> MemLog {
    MemLog::new(cfg).expect("valid config")
}

fn seqs(log: &MemLog) -> Vec<u64> {
    log.scan(0, &[], usize::MAX)
        .expect("scan")
        .into_iter()
        .map(|m| m.seq)
        .collect()
}

#[test]
fn memory_max_msgs_with_discard_old_drops_oldest() {
    let mut log = mem(LogConfig {
        max_msgs: 3,
        ..LogConfig::default()
    });
    for i in 1..=5 {
        log.append(&m("a", i)).expect("append");
    }
    assert_eq!(seqs(&log), vec![3, 4, 5]);
    let st = log.state(true).expect("state");
    assert_eq!((st.first_seq, st.first_ts_ns, st.num_deleted), (3, 3, 0));
}

#[test]
fn memory_max_msgs_with_discard_new_refuses_with_typed_error() {
    let mut log = mem(LogConfig {
        max_msgs: 2,
        discard: Discard::New,
        ..LogConfig::default()
    });
    let res = log
        .append_batch(&[m("a", 1), m("a", 2), m("a", 3)])
        .expect("batch");
    assert_eq!(res, vec![Ok(1), Ok(2), Err(Rejection::MaxMsgs)]);
    let err = log.append(&m("a", 4)).expect_err("refused");
    assert!(matches!(err, StoreError::Rejected(Rejection::MaxMsgs)));
    assert_eq!(log.last_seq(), 2, "a refused message consumes no sequence");
}

#[test]
fn memory_max_bytes_counts_file_record_sizes_in_both_discard_modes() {
    // Each message counts as its file record would: 30 + 1 + 20 = 51 bytes.
    let mut log = mem(LogConfig {
        max_bytes: 160,
        ..LogConfig::default()
    });
    for i in 1..=5 {
        log.append(&m("a", i)).expect("append");
    }
    assert_eq!(seqs(&log), vec![3, 4, 5]);
    assert_eq!(log.state(false).expect("state").bytes, 153);

    let mut log = mem(LogConfig {
        max_bytes: 160,
        discard: Discard::New,
        ..LogConfig::default()
    });
    let res = log
        .append_batch(&[m("a", 1), m("a", 2), m("a", 3), m("a", 4)])
        .expect("batch");
    assert_eq!(res, vec![Ok(1), Ok(2), Ok(3), Err(Rejection::MaxBytes)]);
    // Headers count too: 30 + 1 + 5 + 20 = 56 bytes.
    let mut log = mem(LogConfig::default());
    log.append(&NewMessage {
        headers: Bytes::from_static(b"NATS/"),
        ..m("a", 1)
    })
    .expect("append");
    assert_eq!(log.state(false).expect("state").bytes, 56);
}

#[test]
fn memory_max_msgs_per_subject_evicts_that_subjects_oldest() {
    let mut log = mem(LogConfig {
        max_msgs_per_subject: 2,
        ..LogConfig::default()
    });
    for (i, s) in ["a", "b", "a", "a", "b", "a"].iter().enumerate() {
        log.append(&m(s, i as u64)).expect("append");
    }
    assert_eq!(seqs(&log), vec![2, 4, 5, 6]);
    assert_eq!(
        log.subject_counts(">").into_iter().collect::<Vec<_>>(),
        vec![("a".into(), 2), ("b".into(), 2)]
    );
    assert_eq!(log.state(true).expect("state").deleted, vec![3]);
}

#[test]
fn memory_discard_new_per_subject_refuses_and_plain_discard_new_still_evicts() {
    let mut log = mem(LogConfig {
        max_msgs_per_subject: 1,
        discard: Discard::New,
        discard_new_per_subject: true,
        ..LogConfig::default()
    });
    log.append(&m("a", 1)).expect("first");
    let err = log.append(&m("a", 2)).expect_err("refused");
    assert!(matches!(
        err,
        StoreError::Rejected(Rejection::MaxMsgsPerSubject)
    ));
    assert!(log.append(&m("b", 3)).is_ok());

    let mut log = mem(LogConfig {
        max_msgs: 2,
        max_msgs_per_subject: 1,
        discard: Discard::New,
        ..LogConfig::default()
    });
    log.append(&m("a", 1)).expect("a");
    log.append(&m("b", 2)).expect("b");
    // At max_msgs, but replacing a's only message does not grow the stream.
    assert_eq!(log.append(&m("a", 3)).expect("replaces"), 3);
    assert_eq!(seqs(&log), vec![2, 3]);
    assert!(matches!(
        log.append(&m("c", 4)),
        Err(StoreError::Rejected(Rejection::MaxMsgs))
    ));
}

#[test]
fn memory_max_msg_size_and_invalid_subjects_are_refused() {
    let mut log = mem(LogConfig {
        max_msg_size: 10,
        ..LogConfig::default()
    });
    assert!(matches!(
        log.append(&m("a", 1)),
        Err(StoreError::Rejected(Rejection::MsgTooLarge))
    ));
    assert_eq!(
        log.append(&NewMessage::new("a", vec![1u8; 10], 1))
            .expect("fits"),
        1
    );
    // Wildcard characters are stored literally, as nats-server stores them; only subjects
    // no publish could be routed with are refused.
    for good in ["a.*", "a.>", "a.>.b"] {
        assert!(
            log.append(&NewMessage::new(good, vec![], 1)).is_ok(),
            "{good:?}"
        );
    }
    for bad in ["", "a b", "a..b", ".a", "a."] {
        assert!(
            matches!(
                log.append(&NewMessage::new(bad, vec![], 1)),
                Err(StoreError::Rejected(Rejection::InvalidSubject))
            ),
            "{bad:?}"
        );
    }
    assert_eq!(log.last_seq(), 4);
}

#[test]
fn memory_max_age_expires_with_an_injected_clock() {
    let sec = 1_000_000_000u64;
    let mut log = mem(LogConfig {
        max_age: Duration::from_secs(10),
        ..LogConfig::default()
    });
    for i in 0..5 {
        log.append(&m("a", i * sec)).expect("append");
    }
    assert_eq!(log.next_expiry_ns().expect("expiry"), Some(10 * sec));
    assert_eq!(
        log.expire(10 * sec).expect("expire"),
        0,
        "a message exactly max_age old stays"
    );
    assert_eq!(log.expire(12 * sec + 1).expect("expire"), 3);
    assert_eq!(seqs(&log), vec![4, 5]);
    assert_eq!(log.next_expiry_ns().expect("expiry"), Some(13 * sec));
    // An append with a later timestamp expires on its own.
    log.append(&m("a", 30 * sec)).expect("append");
    assert_eq!(seqs(&log), vec![6]);
    // Raising the limit later measures against the newest time seen, not the wall clock.
    log.update_config(LogConfig {
        max_age: Duration::from_secs(1),
        ..LogConfig::default()
    })
    .expect("update");
    assert_eq!(seqs(&log), vec![6]);
    assert_eq!(log.expire(31 * sec + 1).expect("expire"), 1);
    assert_eq!(log.next_expiry_ns().expect("expiry"), None);
}

#[test]
fn memory_first_seq_follows_removals_and_never_goes_back() {
    let mut log = mem(LogConfig::default());
    assert_eq!(log.state(false).expect("state").first_seq, 0);
    for (i, s) in ["a", "b", "a", "b", "a", "c"].iter().enumerate() {
        log.append(&m(s, i as u64)).expect("append");
    }
    assert!(log.delete(1).expect("delete"));
    assert!(!log.delete(1).expect("again"));
    assert!(log.delete(3).expect("delete"));
    let st = log.state(true).expect("state");
    assert_eq!((st.first_seq, st.num_deleted, st.deleted), (2, 1, vec![3]));
    assert_eq!(
        log.purge(&PurgeRequest {
            filter: Some("b".into()),
            ..PurgeRequest::default()
        })
        .expect("purge"),
        2
    );
    assert_eq!(seqs(&log), vec![5, 6]);
    assert_eq!(log.state(false).expect("state").first_seq, 5);
    assert_eq!(log.purge(&PurgeRequest::default()).expect("purge"), 2);
    let st = log.state(true).expect("state");
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (0, 7, 6));
    assert!(st.deleted.is_empty());
    assert_eq!(log.append(&m("a", 7)).expect("append"), 7);
}

#[test]
fn memory_purge_keep_and_up_to_follow_the_file_rules() {
    let mut log = mem(LogConfig::default());
    for (i, s) in ["a", "b", "a", "b", "a", "c"].iter().enumerate() {
        log.append(&m(s, i as u64)).expect("append");
    }
    let keep_a = PurgeRequest {
        filter: Some("a".into()),
        keep: Some(1),
        ..PurgeRequest::default()
    };
    assert_eq!(log.purge(&keep_a).expect("purge"), 2);
    assert_eq!(seqs(&log), vec![2, 4, 5, 6]);
    let below = PurgeRequest {
        up_to_seq: Some(5),
        ..PurgeRequest::default()
    };
    assert_eq!(log.purge(&below).expect("purge"), 2);
    assert_eq!(seqs(&log), vec![5, 6]);
    let both = PurgeRequest {
        up_to_seq: Some(5),
        keep: Some(1),
        ..PurgeRequest::default()
    };
    assert!(matches!(
        log.purge(&both),
        Err(StoreError::InvalidConfig(_))
    ));
}

#[test]
fn memory_update_config_applies_retention_at_once_and_refuses_bad_configs() {
    let mut log = mem(LogConfig::default());
    for i in 1..=10u64 {
        log.append(&m(if i.is_multiple_of(2) { "a" } else { "b" }, i))
            .expect("append");
    }
    let tight = LogConfig {
        max_msgs: 6,
        max_msgs_per_subject: 2,
        discard: Discard::New,
        ..LogConfig::default()
    };
    log.update_config(tight.clone()).expect("update");
    assert_eq!(seqs(&log), vec![7, 8, 9, 10]);
    assert!(log
        .update_config(LogConfig {
            segment_bytes: 1,
            ..LogConfig::default()
        })
        .is_err());
    assert_eq!(log.config(), &tight, "a refused config leaves the old one");
    assert!(MemLog::new(LogConfig {
        discard_new_per_subject: true,
        ..LogConfig::default()
    })
    .is_err());
}

#[test]
fn memory_reads_return_headers_payload_and_subject_as_stored() {
    let mut log = mem(LogConfig::default());
    let msg = NewMessage {
        subject: "kv.x".into(),
        headers: Bytes::from_static(b"NATS/1.0\r\nA: b\r\n\r\n"),
        payload: Bytes::from_static(b"value"),
        ts_ns: 42,
    };
    log.append(&msg).expect("append");
    log.append(&m("kv.y", 43)).expect("append");
    let got = log.get(1).expect("get").expect("stored");
    assert_eq!(
        (got.subject.as_str(), &got.headers, &got.payload, got.ts_ns),
        ("kv.x", &msg.headers, &msg.payload, 42)
    );
    assert!(log.get(2).expect("get").expect("stored").headers.is_empty());
    assert_eq!(
        log.last_for_subject("kv.*").expect("last").map(|m| m.seq),
        Some(2)
    );
    assert_eq!(log.seq_at_or_after_time(43).expect("by time"), 2);
    assert_eq!(log.seq_at_or_after_time(44).expect("by time"), 3);
    assert_eq!(log.scan(0, &["kv.x", "kv.y"], 10).expect("scan").len(), 2);
}

// `StreamStore` forwards to either kind.

fn exercise(store: &mut StreamStore) -> Vec<u64> {
    let res = store
        .append_batch(&[m("a", 1), m("b", 2), m("a", 3)])
        .expect("batch");
    assert_eq!(res, vec![Ok(1), Ok(2), Ok(3)]);
    store.sync_if_due(Instant::now()).expect("sync");
    store.sync().expect("sync");
    assert!(store.delete(2).expect("delete"));
    assert_eq!(store.append(&m("c", 4)).expect("append"), 4);
    assert_eq!(
        store
            .purge(&PurgeRequest {
                filter: Some("a".into()),
                keep: Some(1),
                ..PurgeRequest::default()
            })
            .expect("purge"),
        1
    );
    assert_eq!(
        store.next_matching(0, &["a"]).expect("next").map(|m| m.seq),
        Some(3)
    );
    assert_eq!(
        store.last_for_subject(">").expect("last").map(|m| m.seq),
        Some(4)
    );
    assert_eq!(
        store.get(4).expect("get").map(|m| m.subject),
        Some("c".into())
    );
    assert_eq!(store.seq_at_or_after_time(4).expect("time"), 4);
    assert_eq!(store.subject_counts(">").len(), 2);
    assert_eq!(store.expire(100).expect("expire"), 0);
    assert_eq!(store.next_expiry_ns().expect("expiry"), None);
    store
        .update_config(LogConfig {
            max_msgs: 1,
            ..store.config().clone()
        })
        .expect("update");
    assert_eq!((store.msgs(), store.last_seq()), (1, 4));
    assert_eq!(store.read_only_cause(), None);
    let st = store.state(true).expect("state");
    vec![
        st.msgs,
        st.bytes,
        st.first_seq,
        st.last_seq,
        st.num_subjects,
    ]
}

#[test]
fn stream_store_forwards_to_both_kinds_with_the_same_results() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut file = StreamStore::from(Log::open(dir.path(), LogConfig::default()).expect("open"));
    let mut memory = StreamStore::from(MemLog::new(LogConfig::default()).expect("new"));
    assert!(!file.is_memory() && memory.is_memory());
    assert_eq!(exercise(&mut file), exercise(&mut memory));
    assert!(
        !memory.sync_if_due(Instant::now()).expect("sync"),
        "no sync runs in memory"
    );
    file.close().expect("close file");
    memory.close().expect("close memory");
}
