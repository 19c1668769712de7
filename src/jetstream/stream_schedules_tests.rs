use super::*;
use crate::jetstream::api_types::PubAck;
use crate::jetstream::stream_config::StreamConfig;
use crate::jetstream::test_publish::msg;
use crate::jetstream::time::parse_rfc3339;
use crate::store::SyncPolicy;
use std::path::Path;
use std::time::Instant;

const SEC: u64 = 1_000_000_000;
const SCHEDULED: &str = r#"{"name":"S","subjects":["s.>"],"allow_msg_schedules":true}"#;

/// 2026-12-04T20:35:02.2Z, as in the facts sheet's probe.
fn t0() -> u64 {
    parse_rfc3339("2026-12-04T20:35:02.2Z").unwrap().unwrap() as u64
}

fn open_at(dir: &Path, json: &str, now: u64) -> Stream {
    let config = serde_json::from_str::<StreamConfig>(json)
        .unwrap()
        .normalized()
        .unwrap();
    Stream::open(dir, config, 0, SyncPolicy::Always, now).unwrap()
}

fn send(s: &mut Stream, m: Publish, now: u64) -> PubAck {
    s.process(&[m], now).remove(0)
}

fn code(ack: &PubAck) -> u16 {
    match ack {
        PubAck::Failed(e) => e.err_code,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn headers_of(s: &Stream, seq: u64) -> String {
    let m = s.log().get(seq).unwrap().unwrap();
    String::from_utf8_lossy(&m.headers).into_owned()
}

#[test]
fn an_every_schedule_fires_each_second_with_nats_servers_headers() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = t0();
    let mut s = open_at(dir.path(), SCHEDULED, t0);
    assert!(s.config().allow_rollup_hdrs, "schedules need rollups");
    let schedule = msg(
        "s.sched.every",
        &[
            ("Nats-Schedule", "@every 1s"),
            ("Nats-Schedule-Target", "s.out.every"),
            ("X-Custom", "v1"),
        ],
        "tick",
    );
    assert_eq!(send(&mut s, schedule, t0), PubAck::Stored { seq: 1 });
    assert_eq!(
        headers_of(&s, 1),
        "NATS/1.0\r\nNats-Schedule: @every 1s\r\nNats-Schedule-Target: s.out.every\r\nX-Custom: v1\r\nNats-Rollup: sub\r\n\r\n"
    );
    let first = t0 - 200_000_000 + SEC; // 20:35:03
    assert_eq!(s.next_wake_ns(), Some(first));
    s.tick(first - 1, Instant::now()).unwrap();
    assert_eq!(s.log().msgs(), 1, "not before its time");
    for (i, at) in [first, first + SEC, first + 2 * SEC]
        .into_iter()
        .enumerate()
    {
        s.tick(at, Instant::now()).unwrap();
        let seq = 2 + i as u64;
        let next = crate::jetstream::time::format_rfc3339(Some((at + SEC) as i64));
        assert_eq!(
            headers_of(&s, seq),
            format!("NATS/1.0\r\nX-Custom: v1\r\nNats-Scheduler: s.sched.every\r\nNats-Schedule-Next: {next}\r\n\r\n")
        );
        assert_eq!(s.log().get(seq).unwrap().unwrap().subject, "s.out.every");
    }
    assert_eq!(
        s.take_upkeep_stored().len(),
        3,
        "the consumers hear of them"
    );
    // Deleting the schedule message cancels it.
    s.log_mut().delete(1).unwrap();
    s.tick(first + 3 * SEC, Instant::now()).unwrap();
    assert_eq!(s.log().last_seq(), 4);
    assert_eq!(s.next_wake_ns(), None);
}

#[test]
fn an_at_schedule_fires_once_and_leaves_only_what_it_produced() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = t0();
    let mut s = open_at(dir.path(), SCHEDULED, t0);
    let schedule = msg(
        "s.sched.at",
        &[
            ("Nats-Schedule", "@at 2026-12-04T20:35:05Z"),
            ("Nats-Schedule-Target", "s.out.at"),
            ("Nats-Msg-Id", "m1"),
            ("Nats-Expected-Last-Subject-Sequence", "0"),
        ],
        "later",
    );
    assert_eq!(send(&mut s, schedule, t0), PubAck::Stored { seq: 1 });
    let at = parse_rfc3339("2026-12-04T20:35:05Z").unwrap().unwrap() as u64;
    s.tick(at, Instant::now()).unwrap();
    assert!(s.log().get(1).unwrap().is_none(), "the schedule is purged");
    assert_eq!(
        headers_of(&s, 2),
        "NATS/1.0\r\nNats-Scheduler: s.sched.at\r\nNats-Schedule-Next: purge\r\n\r\n"
    );
    assert_eq!(s.log().get(2).unwrap().unwrap().payload, "later");
    assert_eq!(s.next_wake_ns(), None);
}

#[test]
fn each_bad_schedule_gets_nats_servers_error() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = t0();
    let mut s = open_at(dir.path(), SCHEDULED, t0);
    let every = ("Nats-Schedule", "@every 1s");
    let target = ("Nats-Schedule-Target", "s.out");
    let cases: Vec<(Vec<(&str, &str)>, u16)> = vec![
        (vec![("Nats-Schedule", "@every 500ms"), target], 10189),
        (vec![("Nats-Schedule", "* * * * *"), target], 10189),
        (vec![every, ("Nats-Schedule-Time-Zone", ""), target], 10223),
        (
            vec![every, ("Nats-Schedule-Time-Zone", "UTC"), target],
            10189,
        ),
        (
            vec![
                ("Nats-Schedule", "@hourly"),
                ("Nats-Schedule-Time-Zone", "Europe/Amsterdam"),
                target,
            ],
            10223,
        ),
        (vec![every], 10190),
        (vec![every, ("Nats-Schedule-Target", "s.*")], 10190),
        (vec![every, ("Nats-Schedule-Target", "s.sched")], 10190),
        (vec![every, ("Nats-Schedule-Target", "other.out")], 10190),
        (vec![every, target, ("Nats-Schedule-TTL", "abc")], 10191),
        (vec![every, target, ("Nats-Schedule-TTL", "5m")], 10166),
        (vec![every, target, ("Nats-Schedule-Rollup", "all")], 10192),
        (vec![every, target, ("Nats-Rollup", "all")], 10192),
        (
            vec![every, target, ("Nats-Schedule-Source", "s.out")],
            10203,
        ),
        (vec![every, target, ("Nats-Schedule-Source", "x.y")], 10203),
        (vec![("Nats-Scheduler", "s.x")], 10212),
        (
            vec![("Nats-Scheduler", "s.x"), ("Nats-Schedule-Next", "soon")],
            10212,
        ),
        (vec![("Nats-Schedule-Next", "purge")], 10212),
    ];
    for (headers, want) in cases {
        let ack = send(&mut s, msg("s.sched", &headers, "x"), t0);
        assert_eq!(code(&ack), want, "{headers:?}");
    }
    // Not schedules at all: stored as they are.
    for value in ["", "@at 0001-01-01T00:00:00Z"] {
        let ack = send(&mut s, msg("s.p", &[("Nats-Schedule", value)], "x"), t0);
        assert!(ack.stored_seq().is_some(), "{value:?}: {ack:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let mut plain = open_at(dir.path(), r#"{"name":"P","subjects":["p.>"]}"#, t0);
    let ack = send(
        &mut plain,
        msg("p.a", &[every, ("Nats-Schedule-Target", "p.b")], ""),
        t0,
    );
    assert_eq!(code(&ack), 10188);
    let ack = send(&mut plain, msg("p.a", &[("Nats-Scheduler", "p.b")], ""), t0);
    assert_eq!(code(&ack), 10212, "even where schedules are off");
}

#[test]
fn a_new_schedule_or_a_plain_message_on_its_subject_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = t0();
    let mut s = open_at(dir.path(), SCHEDULED, t0);
    let schedule = |target: &str| {
        msg(
            "s.sched",
            &[
                ("Nats-Schedule", "@every 1s"),
                ("Nats-Schedule-Target", target),
            ],
            "",
        )
    };
    send(&mut s, schedule("s.a"), t0);
    send(&mut s, schedule("s.b"), t0);
    assert!(
        s.log().get(1).unwrap().is_none(),
        "rolled up by the new one"
    );
    s.tick(t0 + SEC, Instant::now()).unwrap();
    assert_eq!(s.log().get(3).unwrap().unwrap().subject, "s.b");
    send(&mut s, msg("s.sched", &[], "plain"), t0 + SEC);
    s.tick(t0 + 3 * SEC, Instant::now()).unwrap();
    assert_eq!(s.log().last_seq(), 4, "the plain message cancelled it");
    assert!(s.log().get(2).unwrap().is_some(), "and left it stored");
}

#[test]
fn a_sampling_schedule_takes_the_source_subjects_last_message() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = t0();
    let mut s = open_at(
        dir.path(),
        r#"{"name":"T","subjects":["t.>"],"allow_msg_schedules":true,"allow_msg_ttl":true}"#,
        t0,
    );
    let schedule = msg(
        "t.sched",
        &[
            ("Nats-Schedule", "@every 1s"),
            ("Nats-Schedule-Target", "t.out"),
            ("Nats-Schedule-Source", "t.sensor"),
            ("Nats-Schedule-TTL", "5m"),
            ("Nats-Schedule-Rollup", "sub"),
            ("X-A", "sched"),
        ],
        "own",
    );
    send(&mut s, schedule, t0);
    s.tick(t0 + SEC, Instant::now()).unwrap();
    let own = s.log().get(2).unwrap().unwrap();
    assert_eq!(own.payload, "own", "no sample yet: the schedule's own body");
    send(
        &mut s,
        msg("t.sensor", &[("X-B", "sensor2")], "reading-2"),
        t0 + SEC,
    );
    s.tick(t0 + 2 * SEC, Instant::now()).unwrap();
    let sampled = s.log().get(4).unwrap().unwrap();
    assert_eq!(sampled.payload, "reading-2");
    assert!(
        String::from_utf8_lossy(&sampled.headers).starts_with(
            "NATS/1.0\r\nX-B: sensor2\r\nNats-Scheduler: t.sched\r\nNats-Schedule-Next: "
        ),
        "{:?}",
        sampled.headers
    );
    assert!(String::from_utf8_lossy(&sampled.headers)
        .ends_with("\r\nNats-TTL: 5m\r\nNats-Rollup: sub\r\n\r\n"));
    assert!(
        s.log().get(2).unwrap().is_none(),
        "the rollup replaced the earlier sample"
    );
}

#[test]
fn schedules_come_back_after_a_restart_without_catching_up() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = t0();
    {
        let mut s = open_at(dir.path(), SCHEDULED, t0);
        let every = msg(
            "s.every",
            &[
                ("Nats-Schedule", "@every 5s"),
                ("Nats-Schedule-Target", "s.out"),
            ],
            "",
        );
        let at = msg(
            "s.at",
            &[
                ("Nats-Schedule", "@at 2026-12-04T20:35:07Z"),
                ("Nats-Schedule-Target", "s.out"),
            ],
            "",
        );
        s.process(&[every, at], t0);
        s.sync(Instant::now()).unwrap();
    }
    // Down for a minute: the @at is past, the @every missed twelve firings.
    let later = t0 + 60 * SEC;
    let mut s = open_at(dir.path(), SCHEDULED, later);
    s.tick(later, Instant::now()).unwrap();
    assert_eq!(
        s.log().last_seq(),
        3,
        "the past @at fired once, nothing else"
    );
    let next = s.next_wake_ns().unwrap();
    assert_eq!(
        next,
        later - 200_000_000 + 5 * SEC,
        "the @every counts from now"
    );
}

#[test]
fn a_client_purge_request_cancels_a_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = t0();
    let mut s = open_at(dir.path(), SCHEDULED, t0);
    let schedule = msg(
        "s.sched",
        &[
            ("Nats-Schedule", "@every 1s"),
            ("Nats-Schedule-Target", "s.out"),
        ],
        "",
    );
    send(&mut s, schedule, t0);
    let purge = msg(
        "s.cmd",
        &[
            ("Nats-Scheduler", "s.sched"),
            ("Nats-Schedule-Next", "purge"),
        ],
        "",
    );
    assert_eq!(send(&mut s, purge, t0), PubAck::Stored { seq: 2 });
    assert!(s.log().get(1).unwrap().is_none());
    assert_eq!(s.next_wake_ns(), None);
    let not_a_schedule = msg(
        "s.cmd",
        &[("Nats-Scheduler", "s.cmd"), ("Nats-Schedule-Next", "purge")],
        "",
    );
    assert_eq!(code(&send(&mut s, not_a_schedule, t0)), 10212);
}

#[test]
fn the_setting_is_checked_and_cannot_be_switched_off() {
    let config = |json: &str| {
        serde_json::from_str::<StreamConfig>(json)
            .unwrap()
            .normalized()
    };
    let made = config(r#"{"name":"S","allow_msg_schedules":true,"deny_purge":true}"#).unwrap();
    assert!(made.allow_rollup_hdrs && !made.deny_purge);
    let refused = config(r#"{"name":"S","allow_msg_schedules":true,"discard":"new"}"#);
    assert_eq!(
        refused.unwrap_err().description,
        "message scheduling cannot use discard new"
    );
    let refused = config(r#"{"name":"S","allow_msg_schedules":true,"allow_msg_counter":true}"#);
    assert_eq!(
        refused.unwrap_err().description,
        "counter stream cannot use message schedules"
    );
    let mut off = made.clone();
    off.allow_msg_schedules = false;
    let err = made.check_update(&off).unwrap_err();
    assert_eq!(err.description, "message schedules can not be disabled");
}

/// A schedule published as part of an atomic batch produces plain messages: its batch
/// headers are not copied (a produced message with a batch id and no commit, stored last,
/// would be taken for a torn batch and removed when the stream opens).
#[test]
fn a_schedule_from_an_atomic_batch_produces_messages_without_batch_headers() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = t0();
    let json = r#"{"name":"S","subjects":["s.>"],"allow_msg_schedules":true,"allow_atomic":true}"#;
    let mut s = open_at(dir.path(), json, t0);
    let first = msg(
        "s.sched",
        &[
            ("Nats-Batch-Id", "b"),
            ("Nats-Batch-Sequence", "1"),
            ("Nats-Schedule", "@every 1s"),
            ("Nats-Schedule-Target", "s.out"),
        ],
        "",
    );
    let commit = msg(
        "s.other",
        &[
            ("Nats-Batch-Id", "b"),
            ("Nats-Batch-Sequence", "2"),
            ("Nats-Batch-Commit", "1"),
        ],
        "",
    );
    assert_eq!(send(&mut s, first, t0), PubAck::Staged);
    assert!(matches!(
        send(&mut s, commit, t0),
        PubAck::Batch { count: 2, .. }
    ));
    s.tick(t0 + SEC, Instant::now()).unwrap();
    assert_eq!(
        headers_of(&s, 3),
        "NATS/1.0\r\nNats-Scheduler: s.sched\r\nNats-Schedule-Next: 2026-12-04T20:35:04Z\r\n\r\n"
    );
    drop(s);
    let s = open_at(dir.path(), json, t0 + SEC);
    assert!(
        s.log().get(3).unwrap().is_some(),
        "kept when the stream opens again"
    );
}
