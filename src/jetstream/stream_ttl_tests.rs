use std::path::Path;
use std::time::Instant;

use bytes::Bytes;

use super::super::api_types::PubAck;
use super::super::stream::Stream;
use super::super::stream_config::StreamConfig;
use crate::protocol::Publish;
use crate::store::SyncPolicy;

const SEC: u64 = 1_000_000_000;
const T0: u64 = 1000 * SEC;

fn open(dir: &Path, json: &str) -> Stream {
    let config = serde_json::from_str::<StreamConfig>(json)
        .expect("config")
        .normalized()
        .expect("valid");
    Stream::open(dir, config, 0, SyncPolicy::Always, T0).expect("open")
}

fn with_ttl(ttl: Option<&str>) -> Publish {
    Publish {
        subject: Bytes::from_static(b"s.a"),
        reply: None,
        headers: ttl.map(|t| Bytes::from(format!("NATS/1.0\r\nNats-TTL: {t}\r\n\r\n"))),
        payload: Bytes::from_static(b"x"),
    }
}

fn present(s: &Stream, seq: u64) -> bool {
    s.log().get(seq).expect("read").is_some()
}

fn err(ack: &PubAck) -> (u16, String) {
    match ack {
        PubAck::Failed(e) => (e.err_code, e.description.clone()),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn messages_go_when_their_ttl_passes_and_the_wake_is_on_time() {
    let dir = tempfile::tempdir().expect("dir");
    let mut s = open(
        dir.path(),
        r#"{"name":"S","subjects":["s.>"],"allow_msg_ttl":true}"#,
    );
    let acks = s.process(
        &[
            with_ttl(Some("2s")),
            with_ttl(Some("1")),
            with_ttl(None),
            with_ttl(Some("")),
        ],
        T0,
    );
    assert!(
        acks.iter().all(|a| matches!(a, PubAck::Stored { .. })),
        "{acks:?}"
    );
    assert_eq!(s.next_wake_ns(), Some(T0 + SEC));
    assert_eq!(s.tick(T0 + SEC - 1, Instant::now()).expect("tick"), 0);
    assert_eq!(s.tick(T0 + SEC, Instant::now()).expect("tick"), 1);
    assert!(present(&s, 1) && !present(&s, 2));
    assert_eq!(s.next_wake_ns(), Some(T0 + 2 * SEC));
    assert_eq!(s.tick(T0 + 2 * SEC, Instant::now()).expect("tick"), 1);
    assert!(!present(&s, 1) && present(&s, 3) && present(&s, 4));
    assert_eq!(s.next_wake_ns(), None);
}

#[test]
fn bad_and_disabled_ttls_get_nats_server_errors() {
    let dir = tempfile::tempdir().expect("dir");
    let mut on = open(dir.path(), r#"{"name":"S","allow_msg_ttl":true}"#);
    let acks = on.process(&[with_ttl(Some("500ms")), with_ttl(Some("abc"))], T0);
    for ack in &acks {
        assert_eq!(err(ack), (10165, "invalid per-message TTL".into()));
    }
    let dir = tempfile::tempdir().expect("dir");
    let mut off = open(dir.path(), r#"{"name":"S"}"#);
    let acks = off.process(
        &[
            with_ttl(Some("1s")),
            with_ttl(Some("never")),
            with_ttl(Some("0")),
        ],
        T0,
    );
    assert_eq!(err(&acks[0]), (10166, "per-message TTL is disabled".into()));
    assert_eq!(err(&acks[1]).0, 10166);
    assert_eq!(err(&acks[2]).0, 10165);
}

#[test]
fn never_outlives_max_age_and_a_long_ttl_does_not() {
    let dir = tempfile::tempdir().expect("dir");
    let mut s = open(
        dir.path(),
        r#"{"name":"S","subjects":["s.>"],"allow_msg_ttl":true,"max_age":2000000000}"#,
    );
    s.process(
        &[
            with_ttl(Some("never")),
            with_ttl(Some("10s")),
            with_ttl(None),
        ],
        T0,
    );
    s.tick(T0 + 3 * SEC, Instant::now()).expect("tick");
    assert!(
        present(&s, 1),
        "a never-TTL message is not removed by max_age"
    );
    assert!(!present(&s, 2) && !present(&s, 3));
    s.tick(T0 + 60 * SEC, Instant::now()).expect("tick");
    assert!(present(&s, 1));
}

#[test]
fn ttls_are_read_back_after_a_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let json = r#"{"name":"S","subjects":["s.>"],"allow_msg_ttl":true,"max_age":5000000000}"#;
    {
        let mut s = open(dir.path(), json);
        s.process(
            &[
                with_ttl(Some("3s")),
                with_ttl(Some("never")),
                with_ttl(Some("8s")),
            ],
            T0,
        );
        s.sync(Instant::now()).expect("sync");
    }
    let mut s = open(dir.path(), json);
    assert_eq!(
        s.next_wake_ns(),
        Some(T0 + 3 * SEC),
        "expiry counts from the message's time"
    );
    s.tick(T0 + 6 * SEC, Instant::now()).expect("tick");
    assert!(!present(&s, 1) && present(&s, 2) && !present(&s, 3));
}

fn plain(subject: &'static str) -> Publish {
    Publish {
        subject: Bytes::from_static(subject.as_bytes()),
        reply: None,
        headers: None,
        payload: Bytes::from_static(b"x"),
    }
}

fn headers_of(s: &Stream, seq: u64) -> String {
    let msg = s.log().get(seq).expect("read").expect("stored");
    String::from_utf8_lossy(&msg.headers).into_owned()
}

#[test]
fn age_leaves_one_marker_per_emptied_subject_and_markers_leave_none() {
    let dir = tempfile::tempdir().expect("dir");
    let mut s = open(
        dir.path(),
        r#"{"name":"S","subjects":["s.>"],"max_age":2000000000,"subject_delete_marker_ttl":1000000000}"#,
    );
    assert!(s.config().allow_msg_ttl && s.config().allow_rollup_hdrs);
    s.process(&[plain("s.a"), plain("s.b"), plain("s.b")], T0);
    s.process(&[plain("s.c")], T0 + 2 * SEC);
    assert_eq!(s.tick(T0 + 2 * SEC + 1, Instant::now()).expect("tick"), 3);
    let markers = s.take_upkeep_stored();
    let subjects: Vec<&str> = markers.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(subjects, ["s.a", "s.b"]);
    assert_eq!(markers[0].0, 5, "markers take new sequences");
    assert_eq!(
        headers_of(&s, 5),
        "NATS/1.0\r\nNats-Marker-Reason: MaxAge\r\nNats-TTL: 1s\r\nNats-Rollup: sub\r\n\r\n"
    );
    assert!(s
        .log()
        .get(5)
        .expect("read")
        .expect("marker")
        .payload
        .is_empty());
    assert!(present(&s, 4), "s.c is young");
    // The markers go after their own TTL and leave nothing behind.
    s.tick(T0 + 3 * SEC + 1, Instant::now()).expect("tick");
    assert!(!present(&s, 5) && !present(&s, 6));
    assert!(s.take_upkeep_stored().is_empty());
    assert_eq!(s.log().last_seq(), 6);
}

#[test]
fn a_ttl_expiry_leaves_a_marker_and_short_ttls_are_raised_to_the_marker_ttl() {
    let dir = tempfile::tempdir().expect("dir");
    let mut s = open(
        dir.path(),
        r#"{"name":"S","subjects":["s.>"],"subject_delete_marker_ttl":2000000000}"#,
    );
    s.process(&[with_ttl(Some("1")), with_ttl(Some("3s"))], T0);
    assert_eq!(headers_of(&s, 1), "NATS/1.0\r\nNats-TTL: 2\r\n\r\n");
    assert_eq!(headers_of(&s, 2), "NATS/1.0\r\nNats-TTL: 3s\r\n\r\n");
    s.tick(T0 + 2 * SEC, Instant::now()).expect("tick");
    assert!(
        !present(&s, 1) && s.take_upkeep_stored().is_empty(),
        "s.a still has seq 2"
    );
    s.tick(T0 + 3 * SEC, Instant::now()).expect("tick");
    assert_eq!(s.take_upkeep_stored(), vec![(3, "s.a".to_string())]);
    // One message per subject (a KV bucket's history of 1): no floor.
    let dir = tempfile::tempdir().expect("dir");
    let mut kv = open(
        dir.path(),
        r#"{"name":"S","subjects":["s.>"],"subject_delete_marker_ttl":2000000000,"max_msgs_per_subject":1}"#,
    );
    kv.process(&[with_ttl(Some("1"))], T0);
    assert_eq!(headers_of(&kv, 1), "NATS/1.0\r\nNats-TTL: 1\r\n\r\n");
}
