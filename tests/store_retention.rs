//! Retention: each limit and discard mode, `max_age` with an injected clock, segment removal,
//! and `first_seq` never going back, across restarts too.

use std::fs;
use std::path::Path;
use std::time::Duration;

use jetlog::store::{
    Discard, Log, LogConfig, NewMessage, PurgeRequest, Rejection, StoreError, SyncPolicy,
};

fn m(subject: &str, ts: u64) -> NewMessage {
    NewMessage::new(subject, vec![7u8; 20], ts)
}

fn open(dir: &Path, cfg: LogConfig) -> Log {
    Log::open(
        dir,
        LogConfig {
            sync: SyncPolicy::Always,
            ..cfg
        },
    )
    .expect("open")
}

fn seqs(log: &Log) -> Vec<u64> {
    log.scan(0, &[], usize::MAX)
        .expect("scan")
        .into_iter()
        .map(|m| m.seq)
        .collect()
}

fn segment_count(dir: &Path) -> usize {
    fs::read_dir(dir)
        .expect("dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "seg"))
        })
        .count()
}

#[test]
fn max_msgs_with_discard_old_drops_oldest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(
        dir.path(),
        LogConfig {
            max_msgs: 3,
            ..LogConfig::default()
        },
    );
    for i in 1..=5 {
        log.append(&m("a", i)).expect("append");
    }
    assert_eq!(seqs(&log), vec![3, 4, 5]);
    assert_eq!(log.state(false).expect("state").first_seq, 3);
}

#[test]
fn max_msgs_with_discard_new_refuses_with_typed_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(
        dir.path(),
        LogConfig {
            max_msgs: 2,
            discard: Discard::New,
            ..LogConfig::default()
        },
    );
    let res = log
        .append_batch(&[m("a", 1), m("a", 2), m("a", 3)])
        .expect("batch");
    assert_eq!(res, vec![Ok(1), Ok(2), Err(Rejection::MaxMsgs)]);
    let err = log.append(&m("a", 4)).expect_err("refused");
    assert!(matches!(err, StoreError::Rejected(Rejection::MaxMsgs)));
    assert_eq!(err.to_string(), "maximum messages exceeded");
    assert_eq!(log.last_seq(), 2, "a refused message consumes no sequence");
}

#[test]
fn max_bytes_with_both_discard_modes() {
    // Each record is 30 + 1 + 20 = 51 bytes.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(
        dir.path(),
        LogConfig {
            max_bytes: 160,
            ..LogConfig::default()
        },
    );
    for i in 1..=5 {
        log.append(&m("a", i)).expect("append");
    }
    assert_eq!(seqs(&log), vec![3, 4, 5]);
    assert_eq!(log.state(false).expect("state").bytes, 153);

    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(
        dir.path(),
        LogConfig {
            max_bytes: 160,
            discard: Discard::New,
            ..LogConfig::default()
        },
    );
    let res = log
        .append_batch(&[m("a", 1), m("a", 2), m("a", 3), m("a", 4)])
        .expect("batch");
    assert_eq!(res[3], Err(Rejection::MaxBytes));
    assert_eq!(Rejection::MaxBytes.to_string(), "maximum bytes exceeded");
}

#[test]
fn max_msgs_per_subject_evicts_that_subjects_oldest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(
        dir.path(),
        LogConfig {
            max_msgs_per_subject: 2,
            ..LogConfig::default()
        },
    );
    for (i, s) in ["a", "b", "a", "a", "b", "a"].iter().enumerate() {
        log.append(&m(s, i as u64)).expect("append");
    }
    assert_eq!(seqs(&log), vec![2, 4, 5, 6]);
    assert_eq!(
        log.subject_counts(">").into_iter().collect::<Vec<_>>(),
        vec![("a".into(), 2), ("b".into(), 2)]
    );
}

#[test]
fn discard_new_per_subject_refuses_and_plain_discard_new_still_evicts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = LogConfig {
        max_msgs_per_subject: 1,
        discard: Discard::New,
        discard_new_per_subject: true,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), cfg);
    log.append(&m("a", 1)).expect("first");
    let err = log.append(&m("a", 2)).expect_err("refused");
    assert_eq!(err.to_string(), "maximum messages per subject exceeded");
    assert!(log.append(&m("b", 3)).is_ok());

    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = LogConfig {
        max_msgs: 2,
        max_msgs_per_subject: 1,
        discard: Discard::New,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), cfg);
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
fn max_msg_size_and_invalid_subjects_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(
        dir.path(),
        LogConfig {
            max_msg_size: 10,
            ..LogConfig::default()
        },
    );
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
}

#[test]
fn max_age_expires_with_an_injected_clock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sec = 1_000_000_000u64;
    let mut log = open(
        dir.path(),
        LogConfig {
            max_age: Duration::from_secs(10),
            ..LogConfig::default()
        },
    );
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
    // An append with a later timestamp expires on its own.
    log.append(&m("a", 30 * sec)).expect("append");
    assert_eq!(seqs(&log), vec![6]);
}

#[test]
fn segments_whose_messages_are_all_gone_are_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(
        dir.path(),
        LogConfig {
            segment_bytes: 4096,
            ..LogConfig::default()
        },
    );
    for i in 0..400 {
        log.append(&m("a", i)).expect("append");
    }
    let before = segment_count(dir.path());
    assert!(before >= 5, "{before}");
    log.purge(&PurgeRequest {
        up_to_seq: Some(300),
        ..PurgeRequest::default()
    })
    .expect("purge");
    let after = segment_count(dir.path());
    let names: Vec<_> = fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("e").file_name())
        .collect();
    // 79 records per segment: the three segments entirely below 300 are gone.
    assert_eq!((before, after), (6, 3), "{names:?}");
    assert!(!dir.path().join("00000000000000000001.seg").exists());
    assert_eq!(log.state(false).expect("state").first_seq, 300);
    for seq in (300..400).step_by(50) {
        assert!(log.delete(seq).expect("delete"));
    }
    log.sync().expect("sync");
    drop(log);
    let log = open(
        dir.path(),
        LogConfig {
            segment_bytes: 4096,
            ..LogConfig::default()
        },
    );
    let st = log.state(false).expect("state");
    assert_eq!((st.msgs, st.first_seq), (99, 301));
}

#[test]
fn first_seq_never_goes_back_across_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), LogConfig::default());
    for i in 1..=10 {
        log.append(&m("a", i)).expect("append");
    }
    assert_eq!(log.purge(&PurgeRequest::default()).expect("purge"), 10);
    assert_eq!(segment_count(dir.path()), 0, "no segment left");
    drop(log); // no sync: the purge was made durable before the segment went
    let mut log = open(dir.path(), LogConfig::default());
    let st = log.state(false).expect("state");
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (0, 11, 10));
    assert_eq!(log.append(&m("a", 11)).expect("append"), 11);
    log.close().expect("close");
    let log = open(dir.path(), LogConfig::default());
    assert_eq!(log.state(false).expect("state").first_seq, 11);
}

#[test]
fn deletes_and_purges_survive_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), LogConfig::default());
    for (i, s) in ["a", "b", "a", "b", "a", "c"].iter().enumerate() {
        log.append(&m(s, i as u64)).expect("append");
    }
    assert!(log.delete(3).expect("delete"));
    assert!(!log.delete(3).expect("again"));
    assert_eq!(
        log.purge(&PurgeRequest {
            filter: Some("b".into()),
            ..PurgeRequest::default()
        })
        .expect("purge"),
        2
    );
    log.sync().expect("sync");
    drop(log);
    let log = open(dir.path(), LogConfig::default());
    assert_eq!(seqs(&log), vec![1, 5, 6]);
    assert_eq!(log.state(true).expect("state").deleted, vec![2, 3, 4]);
    assert_eq!(
        log.last_for_subject("a").expect("last").map(|m| m.seq),
        Some(5)
    );
}

#[test]
fn update_config_applies_retention_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), LogConfig::default());
    for i in 1..=10u64 {
        log.append(&m(if i.is_multiple_of(2) { "a" } else { "b" }, i))
            .expect("append");
    }
    log.update_config(LogConfig {
        max_msgs: 6,
        max_msgs_per_subject: 2,
        ..LogConfig::default()
    })
    .expect("update");
    assert_eq!(seqs(&log), vec![7, 8, 9, 10]);
    assert!(log
        .update_config(LogConfig {
            segment_bytes: 1,
            ..LogConfig::default()
        })
        .is_err());
}

/// A batch larger than a segment is written in parts; the per-subject limit must count each
/// message once, not again after its part reached the subject map.
#[test]
fn per_subject_limit_counts_a_multi_segment_batch_once() {
    use jetlog::store::config::MIN_SEGMENT_BYTES;
    use jetlog::store::{Discard, Log, LogConfig, NewMessage};
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        max_msgs_per_subject: 3,
        discard: Discard::New,
        discard_new_per_subject: true,
        segment_bytes: MIN_SEGMENT_BYTES,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config).unwrap();
    let big = NewMessage::new("s", vec![0u8; 4100], 1);
    let small = NewMessage::new("s", vec![1u8; 10], 2);
    let results = log.append_batch(&[big, small.clone(), small]).unwrap();
    assert_eq!(results, vec![Ok(1), Ok(2), Ok(3)]);
    assert_eq!(log.msgs(), 3);
}
