use super::*;
use crate::jetstream::stream_config::StreamConfig;
use crate::jetstream::test_publish::msg;
use crate::store::SyncPolicy;
use std::path::Path;
use std::time::Instant;

const SEC: u64 = 1_000_000_000;
const T0: u64 = 1000 * SEC;
const FAST: &str = r#"{"name":"F","subjects":["f.>"],"allow_batched":true}"#;

fn open(dir: &Path, json: &str) -> Stream {
    let config = serde_json::from_str::<StreamConfig>(json)
        .unwrap()
        .normalized()
        .unwrap();
    Stream::open(dir, config, 0, SyncPolicy::Always, T0).unwrap()
}

/// Message `seq` of fast batch `id` with operation `op`, flow and gap mode in the reply.
fn part(id: &str, flow: i64, gap: &str, seq: u64, op: u8, headers: &[(&str, &str)]) -> Publish {
    let mut m = msg("f.a", headers, "x");
    m.reply = Some(Bytes::from(format!("_R.{id}.{flow}.{gap}.{seq}.{op}.$FI")));
    m
}

/// The replies the publisher hears for `m`, as text.
fn send_at(s: &mut Stream, m: Publish, now_ns: u64) -> Vec<String> {
    let mut acks = s.process(&[m], now_ns);
    s.sync(Instant::now()).unwrap();
    replies(acks.remove(0))
}

fn send(s: &mut Stream, m: Publish) -> Vec<String> {
    send_at(s, m, T0)
}

fn replies(ack: PubAck) -> Vec<String> {
    match ack {
        PubAck::Fast { replies, .. } => replies
            .iter()
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .collect(),
        PubAck::Failed(e) => vec![format!("error {}", e.err_code)],
        other => panic!("not a fast batch reply: {other:?}"),
    }
}

fn flow(seq: u64, msgs: u16) -> String {
    format!(r#"{{"type":"ack","seq":{seq},"msgs":{msgs}}}"#)
}

#[test]
fn reply_subjects_are_read_from_the_right_as_nats_server_does() {
    let op = |r: &str| parse_reply(r.as_bytes());
    assert_eq!(op("_INBOX.abc"), None, "no suffix: a plain publish");
    let parsed = op("a.b.id1.7.ok.3.1.$FI").unwrap().unwrap();
    assert_eq!(
        parsed,
        FastOp {
            id: "id1".into(),
            seq: 3,
            flow: 7,
            gap_ok: true,
            ping: false,
            commit: false,
            eob: false
        }
    );
    assert_eq!(op("_R.x.0.fail.1.0.$FI").unwrap().unwrap().flow, 10);
    assert_eq!(op("_R.x.-5.fail.1.0.$FI").unwrap().unwrap().flow, 10);
    assert_eq!(op("_R.x.99999.fail.1.0.$FI").unwrap().unwrap().flow, 65535);
    for bad in [
        "x.10.ok.1.0.$FI",    // no prefix token
        "_R.x.10.ok.2.0.$FI", // start must be 1
        "_R.x.10.ok.1.1.$FI", // an append must be after 1
        "_R.x.10.ok.1.3.$FI", // end of batch as the first message
        "_R.x.10.ok.1.5.$FI", // no such operation
        "_R.x.10.maybe.1.0.$FI",
        "_R.x.10.ok.0.4.$FI",
        "_R.zz.$FI",
    ] {
        assert_eq!(op(bad), Some(None), "{bad}");
    }
}

#[test]
fn flow_acks_come_every_flow_messages_and_the_commit_gets_the_pubak() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), FAST);
    assert_eq!(send(&mut s, part("a", 3, "fail", 1, 0, &[])), [flow(0, 3)]);
    let mut heard = Vec::new();
    for seq in 2..8 {
        heard.push(send(&mut s, part("a", 3, "fail", seq, 1, &[])));
    }
    assert_eq!(heard[1], [flow(3, 3)]);
    assert_eq!(heard[4], [flow(6, 3)]);
    assert_eq!(heard.iter().filter(|h| h.is_empty()).count(), 4);
    assert_eq!(
        send(&mut s, part("a", 3, "fail", 8, 2, &[])),
        [r#"{"stream":"F","seq":8,"batch":"a","count":8}"#]
    );
    assert_eq!(s.log().msgs(), 8);
    let stored = s.log().get(8).unwrap().unwrap();
    assert!(stored.headers.is_empty(), "no batch headers are stored");
    assert!(s.batches.fast.is_empty());
    assert_eq!(
        send(&mut s, part("a", 3, "fail", 9, 1, &[])),
        ["error 10208"],
        "a committed batch is gone"
    );
}

#[test]
fn a_round_of_pipelined_messages_is_acknowledged_at_each_step() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), FAST);
    let mut round: Vec<Publish> = (1..=250)
        .map(|seq| part("p", 100, "fail", seq, u8::from(seq > 1), &[]))
        .collect();
    round.push(part("p", 100, "fail", 251, 3, &[]));
    let acks = s.process(&round, T0);
    s.sync(Instant::now()).unwrap();
    let heard: Vec<String> = acks.into_iter().flat_map(replies).collect();
    assert_eq!(
        heard,
        [
            flow(0, 100),
            flow(100, 100),
            flow(200, 100),
            r#"{"stream":"F","seq":250,"batch":"p","count":250}"#.to_string()
        ]
    );
}

#[test]
fn a_gap_ends_a_fail_batch_and_is_reported_to_an_ok_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), FAST);
    send(&mut s, part("b", 2, "fail", 1, 0, &[]));
    assert_eq!(send(&mut s, part("b", 2, "fail", 2, 1, &[])), [flow(2, 2)]);
    assert_eq!(
        send(&mut s, part("b", 2, "fail", 4, 1, &[])),
        [
            r#"{"type":"gap","last_seq":3,"seq":4}"#,
            r#"{"stream":"F","seq":2,"batch":"b","count":2}"#
        ]
    );
    assert_eq!(s.log().msgs(), 2, "the message after the gap is not stored");

    send(&mut s, part("c", 2, "ok", 1, 0, &[]));
    assert_eq!(
        send(&mut s, part("c", 2, "ok", 3, 1, &[])),
        [
            r#"{"type":"gap","last_seq":2,"seq":3}"#.to_string(),
            flow(2, 2)
        ]
    );
    // A ping names the highest sequence sent; one the server never saw is a gap.
    assert_eq!(
        send(&mut s, part("c", 2, "ok", 4, 4, &[])),
        [
            r#"{"type":"gap","last_seq":4,"seq":5}"#.to_string(),
            flow(4, 2)
        ]
    );
    assert_eq!(send(&mut s, part("c", 2, "ok", 4, 4, &[])), [flow(4, 2)]);
    assert_eq!(
        send(&mut s, part("c", 2, "ok", 5, 3, &[])),
        [r#"{"stream":"F","seq":4,"batch":"c","count":4}"#]
    );
}

#[test]
fn a_failed_check_is_reported_and_ends_only_a_fail_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), FAST);
    let wrong = [("Nats-Expected-Last-Sequence", "99")];
    send(&mut s, part("d", 5, "ok", 1, 0, &[]));
    assert_eq!(
        send(&mut s, part("d", 5, "ok", 2, 1, &wrong)),
        [
            r#"{"type":"err","seq":2,"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 1"}}"#
        ]
    );
    assert_eq!(
        send(&mut s, part("d", 5, "ok", 3, 2, &[])),
        [r#"{"stream":"F","seq":2,"batch":"d","count":3}"#]
    );

    send(&mut s, part("e", 5, "fail", 1, 0, &[]));
    assert_eq!(
        send(&mut s, part("e", 5, "fail", 2, 1, &wrong)),
        [
            r#"{"type":"err","seq":2,"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 3"}}"#,
            r#"{"stream":"F","seq":3,"batch":"e","count":1}"#
        ]
    );
    // The first message failing in fail mode is answered as a plain publish.
    assert_eq!(
        send(&mut s, part("f", 5, "fail", 1, 0, &wrong)),
        [
            flow(0, 5),
            r#"{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 3"},"stream":"F","seq":0}"#.to_string()
        ]
    );
    assert!(s.batches.fast.is_empty());
}

#[test]
fn duplicates_are_skipped_and_a_single_duplicate_commit_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), FAST);
    let id = [("Nats-Msg-Id", "m1")];
    assert_eq!(send(&mut s, part("g", 5, "fail", 1, 0, &id)), [flow(0, 5)]);
    assert!(send(&mut s, part("g", 5, "fail", 2, 1, &id)).is_empty());
    assert_eq!(
        send(&mut s, part("g", 5, "fail", 3, 2, &[])),
        [r#"{"stream":"F","seq":2,"batch":"g","count":3}"#]
    );
    assert_eq!(
        send(&mut s, part("h", 5, "fail", 1, 2, &id)),
        [r#"{"stream":"F","seq":1,"duplicate": true,"batch":"h","count":1}"#]
    );
}

#[test]
fn refusals_carry_nats_servers_codes() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), FAST);
    assert_eq!(
        send(&mut s, part("i", 5, "fail", 2, 1, &[])),
        ["error 10208"]
    );
    assert_eq!(
        send(&mut s, part("j", 5, "bad", 1, 0, &[])),
        ["error 10206"]
    );
    assert_eq!(
        send(&mut s, part(&"k".repeat(65), 5, "fail", 1, 0, &[])),
        ["error 10207"]
    );
    let level = [("Nats-Required-Api-Level", "9")];
    assert_eq!(
        send(&mut s, part("l", 5, "fail", 1, 0, &level)),
        ["error 10185"]
    );
    assert!(
        s.batches.fast.is_empty(),
        "an unmet level abandons the batch"
    );
    let met = [("Nats-Required-Api-Level", "1"), ("X", "y")];
    send(&mut s, part("m", 5, "fail", 1, 2, &met));
    let stored = s.log().get(1).unwrap().unwrap();
    assert_eq!(&stored.headers[..], b"NATS/1.0\r\nX: y\r\n\r\n");

    let plain = tempfile::tempdir().unwrap();
    let mut p = open(plain.path(), r#"{"name":"P","subjects":["f.>"]}"#);
    assert_eq!(
        send(&mut p, part("n", 5, "fail", 1, 0, &[])),
        ["error 10205"]
    );
}

#[test]
fn a_second_batch_starts_slow_and_both_ramp_to_their_share() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), FAST);
    assert_eq!(
        send(&mut s, part("a", 400, "ok", 1, 0, &[])),
        [flow(0, 400)]
    );
    // Stored at once, the first message already completes b's first step of 1.
    assert_eq!(
        send(&mut s, part("b", 400, "ok", 1, 0, &[])),
        [flow(0, 1), flow(1, 2)]
    );
    // b's flow acks double until they reach 500 / 2 batches = 250.
    let mut steps = Vec::new();
    for seq in 2..600 {
        let heard = send(&mut s, part("b", 400, "ok", seq, 1, &[]));
        steps.extend(heard);
    }
    assert_eq!(steps[0], flow(3, 4));
    assert_eq!(steps[1], flow(7, 8));
    assert!(steps.contains(&flow(255, 250)), "{steps:?}");
}

#[test]
fn a_silent_batch_is_forgotten_and_limits_hold() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), FAST);
    send(&mut s, part("a", 5, "ok", 1, 0, &[]));
    assert_eq!(s.next_wake_ns(), Some(T0 + 10 * SEC));
    s.tick(T0 + 10 * SEC, Instant::now()).unwrap();
    assert!(s.batches.fast.is_empty());
    let late = send_at(&mut s, part("a", 5, "ok", 2, 1, &[]), T0 + 11 * SEC);
    assert_eq!(late, ["error 10208"]);

    for i in 0..MAX_FAST_INFLIGHT_PER_STREAM {
        send(&mut s, part(&format!("b{i}"), 5, "ok", 1, 0, &[]));
    }
    assert_eq!(
        send(&mut s, part("over", 5, "ok", 1, 0, &[])),
        ["error 10211"]
    );

    // Turning the setting off drops the batches in flight.
    let mut config = s.config().clone();
    config.allow_batched = false;
    s.update(config).unwrap();
    assert!(s.batches.fast.is_empty());
    assert_eq!(
        send(&mut s, part("b1", 5, "ok", 2, 1, &[])),
        ["error 10205"]
    );
}
