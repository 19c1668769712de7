use super::*;
use crate::jetstream::test_publish::msg;

const SEC: u64 = 1_000_000_000;

fn config(json: &str) -> StreamConfig {
    serde_json::from_str::<StreamConfig>(json)
        .unwrap()
        .normalized()
        .unwrap()
}

fn open(dir: &Path, json: &str) -> Stream {
    Stream::open(dir, config(json), 0, SyncPolicy::Always, 1000 * SEC).unwrap()
}

fn err_code(ack: &PubAck) -> u16 {
    match ack {
        PubAck::Failed(e) => e.err_code,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn a_batch_is_stored_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), r#"{"name":"S","subjects":["s.>"]}"#);
    let acks = s.process(&[msg("s.a", &[], "1"), msg("s.b", &[], "2")], 1000 * SEC);
    assert_eq!(acks, [PubAck::Stored { seq: 1 }, PubAck::Stored { seq: 2 }]);
    s.sync(Instant::now()).unwrap();
    assert_eq!(s.log().get(2).unwrap().unwrap().payload, "2");
}

#[test]
fn msg_ids_are_deduplicated_within_the_window_also_inside_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), r#"{"name":"S","duplicate_window":10000000000}"#);
    let acks = s.process(
        &[
            msg("S", &[("Nats-Msg-Id", "a")], "1"),
            msg("S", &[("Nats-Msg-Id", "a")], "again"),
            msg("S", &[("Nats-Msg-Id", "b")], "2"),
        ],
        1000 * SEC,
    );
    assert_eq!(
        acks,
        [
            PubAck::Stored { seq: 1 },
            PubAck::Duplicate { seq: 1 },
            PubAck::Stored { seq: 2 }
        ]
    );
    // After the window the id may be stored again.
    let acks = s.process(&[msg("S", &[("Nats-Msg-Id", "a")], "later")], 1011 * SEC);
    assert_eq!(acks, [PubAck::Stored { seq: 3 }]);
}

#[test]
fn the_duplicate_window_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = open(dir.path(), r#"{"name":"S"}"#);
        s.process(&[msg("S", &[("Nats-Msg-Id", "x")], "1")], 1000 * SEC);
        s.sync(Instant::now()).unwrap();
    }
    let mut s = open(dir.path(), r#"{"name":"S"}"#);
    assert_eq!(
        s.process(&[msg("S", &[("Nats-Msg-Id", "x")], "1")], 1001 * SEC),
        [PubAck::Duplicate { seq: 1 }]
    );
    let acks = s.process(
        &[msg("S", &[("Nats-Expected-Last-Msg-Id", "x")], "2")],
        1001 * SEC,
    );
    assert_eq!(acks, [PubAck::Stored { seq: 2 }]);
}

#[test]
fn expectation_headers_are_checked_against_what_came_before_in_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), r#"{"name":"S","subjects":["k.*"]}"#);
    let acks = s.process(
        &[
            msg("k.a", &[], "1"),
            msg("k.b", &[("Nats-Expected-Last-Sequence", "1")], "2"),
            msg("k.a", &[("Nats-Expected-Last-Sequence", "1")], "wrong"),
            msg("k.a", &[("Nats-Expected-Last-Subject-Sequence", "1")], "3"),
            msg("k.c", &[("Nats-Expected-Last-Subject-Sequence", "0")], "4"),
            msg(
                "k.c",
                &[("Nats-Expected-Last-Subject-Sequence", "0")],
                "dup",
            ),
            msg("k.a", &[("Nats-Expected-Stream", "OTHER")], "x"),
            msg("k.a", &[("Nats-Expected-Stream", "S")], "5"),
        ],
        1000 * SEC,
    );
    assert_eq!(acks[0], PubAck::Stored { seq: 1 });
    assert_eq!(acks[1], PubAck::Stored { seq: 2 });
    assert_eq!(acks[2], PubAck::Failed(ApiError::wrong_last_sequence(2)));
    assert_eq!(acks[3], PubAck::Stored { seq: 3 });
    assert_eq!(acks[4], PubAck::Stored { seq: 4 });
    assert_eq!(acks[5], PubAck::Failed(ApiError::wrong_last_sequence(4)));
    assert_eq!(err_code(&acks[6]), 10060);
    assert_eq!(acks[7], PubAck::Stored { seq: 5 });
}

#[test]
fn expected_last_msg_id() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), r#"{"name":"S"}"#);
    let acks = s.process(
        &[
            msg("S", &[("Nats-Msg-Id", "m1")], "1"),
            msg("S", &[("Nats-Expected-Last-Msg-Id", "m0")], "no"),
            msg(
                "S",
                &[("Nats-Expected-Last-Msg-Id", "m1"), ("Nats-Msg-Id", "m2")],
                "2",
            ),
        ],
        1000 * SEC,
    );
    assert_eq!(acks[1], PubAck::Failed(ApiError::wrong_last_msg_id("m1")));
    assert_eq!(acks[2], PubAck::Stored { seq: 2 });
}

#[test]
fn rollups_purge_what_came_before() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(
        dir.path(),
        r#"{"name":"S","subjects":["r.*"],"allow_rollup_hdrs":true}"#,
    );
    s.process(
        &[
            msg("r.a", &[], "1"),
            msg("r.b", &[], "2"),
            msg("r.a", &[], "3"),
        ],
        1000 * SEC,
    );
    let acks = s.process(&[msg("r.a", &[("Nats-Rollup", "sub")], "4")], 1000 * SEC);
    assert_eq!(acks, [PubAck::Stored { seq: 4 }]);
    assert_eq!(s.log().msgs(), 2, "r.b and the rollup remain");
    let acks = s.process(&[msg("r.b", &[("Nats-Rollup", "all")], "5")], 1000 * SEC);
    assert_eq!(acks, [PubAck::Stored { seq: 5 }]);
    assert_eq!(s.log().msgs(), 1);
    assert_eq!(
        err_code(&s.process(&[msg("r.b", &[("Nats-Rollup", "nope")], "")], 1000 * SEC)[0]),
        10111
    );
    let dir = tempfile::tempdir().unwrap();
    let mut plain = open(dir.path(), r#"{"name":"P"}"#);
    let ack = &plain.process(&[msg("P", &[("Nats-Rollup", "all")], "")], 1000 * SEC)[0];
    assert_eq!(
        ack,
        &PubAck::Failed(ApiError::rollup_failed("rollup not permitted"))
    );
}

#[test]
fn limits_surface_with_nats_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(
        dir.path(),
        r#"{"name":"S","max_msgs":2,"discard":"new","max_msg_size":4}"#,
    );
    let acks = s.process(
        &[
            msg("S", &[], "1"),
            msg("S", &[], "2"),
            msg("S", &[], "3"),
            msg("S", &[], "12345"),
        ],
        1000 * SEC,
    );
    assert_eq!(
        acks[2],
        PubAck::Failed(ApiError::store_failed("maximum messages exceeded"))
    );
    assert_eq!(err_code(&acks[2]), 10077);
    assert_eq!(err_code(&acks[3]), 10054);
}

#[test]
fn a_sealed_stream_refuses_publishes() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), r#"{"name":"S"}"#);
    let mut sealed = s.config().clone();
    sealed.sealed = true;
    s.update(sealed).unwrap();
    assert_eq!(
        err_code(&s.process(&[msg("S", &[], "x")], 1000 * SEC)[0]),
        10109
    );
}

#[test]
fn memory_streams_behave_alike_and_write_no_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("M");
    let mut s = Stream::open(
        &path,
        config(r#"{"name":"M","storage":"memory","max_msgs":2}"#),
        0,
        SyncPolicy::Always,
        0,
    )
    .unwrap();
    let acks = s.process(
        &[
            msg("M", &[("Nats-Msg-Id", "a")], "1"),
            msg("M", &[("Nats-Msg-Id", "a")], "1"),
            msg("M", &[], "2"),
            msg("M", &[], "3"),
        ],
        1000 * SEC,
    );
    assert_eq!(
        acks,
        [
            PubAck::Stored { seq: 1 },
            PubAck::Duplicate { seq: 1 },
            PubAck::Stored { seq: 2 },
            PubAck::Stored { seq: 3 }
        ]
    );
    s.sync(Instant::now()).unwrap();
    assert_eq!(s.log().msgs(), 2);
    assert!(s.log().is_memory());
    assert!(!path.exists(), "a memory stream creates no directory");
}

#[test]
fn the_last_subject_sequence_may_be_checked_against_another_subject() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), r#"{"name":"S","subjects":["s.>"]}"#);
    s.process(&[msg("s.a", &[], "1"), msg("s.b", &[], "2")], 1000 * SEC);
    let expect = |seq: &str, on: &str| {
        msg(
            "s.c",
            &[
                ("Nats-Expected-Last-Subject-Sequence", seq),
                ("Nats-Expected-Last-Subject-Sequence-Subject", on),
            ],
            "x",
        )
    };
    // The newest message under s.* is seq 2; under s.a, seq 1.
    let acks = s.process(
        &[expect("2", "s.*"), expect("1", "s.a"), expect("2", "s.a")],
        1000 * SEC,
    );
    assert_eq!(acks[0], PubAck::Stored { seq: 3 });
    assert_eq!(acks[1], PubAck::Stored { seq: 4 });
    assert_eq!(err_code(&acks[2]), 10071);
    let alone = s.process(
        &[msg(
            "s.c",
            &[("Nats-Expected-Last-Subject-Sequence-Subject", "s.a")],
            "x",
        )],
        1000 * SEC,
    );
    assert_eq!(err_code(&alone[0]), 10193);
}

/// `persist_mode: async` turns the server's `always` into an interval sync for this stream:
/// publishes are acknowledged before their fsync, and the ticks sync what they wrote.
#[test]
fn an_async_persist_stream_syncs_on_an_interval() {
    let dir = tempfile::tempdir().unwrap();
    let plain = open(dir.path(), r#"{"name":"S"}"#);
    assert!(!plain.needs_ticks());
    drop(plain);
    let dir = tempfile::tempdir().unwrap();
    let async_mode = open(dir.path(), r#"{"name":"S","persist_mode":"async"}"#);
    assert!(async_mode.needs_ticks(), "ticks sync what was acknowledged");
}
