use super::*;
use crate::jetstream::consumer::Action;
use crate::jetstream::stream_config::StreamConfig;
use crate::jetstream::test_publish::msg;
use crate::store::SyncPolicy;
use std::path::Path;
use std::time::Instant;

/// A header name and value.
type Header<'a> = (&'a str, &'a str);

const SEC: u64 = 1_000_000_000;
const T0: u64 = 1000 * SEC;
const ATOMIC: &str = r#"{"name":"B","subjects":["b.>"],"allow_atomic":true}"#;

fn open(dir: &Path, json: &str) -> Stream {
    let config = serde_json::from_str::<StreamConfig>(json)
        .unwrap()
        .normalized()
        .unwrap();
    Stream::open(dir, config, 0, SyncPolicy::Always, T0).unwrap()
}

/// Message `seq` of batch `id`, with `extra` headers after the batch's own.
fn part(id: &str, seq: u64, commit: Option<&str>, extra: &[(&str, &str)]) -> Publish {
    let seq = seq.to_string();
    let mut headers = vec![("Nats-Batch-Id", id), ("Nats-Batch-Sequence", seq.as_str())];
    if let Some(c) = commit {
        headers.push(("Nats-Batch-Commit", c));
    }
    headers.extend_from_slice(extra);
    msg(&format!("b.{seq}"), &headers, "x")
}

fn send(s: &mut Stream, m: Publish) -> PubAck {
    let mut acks = s.process(&[m], T0);
    s.sync(Instant::now()).unwrap();
    acks.remove(0)
}

fn code(ack: &PubAck) -> u16 {
    match ack {
        PubAck::Failed(e) => e.err_code,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn reasons(s: &mut Stream) -> Vec<String> {
    s.take_advisories()
        .into_iter()
        .map(|a| match a {
            Action::Advisory { body, .. } => {
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                v["reason"].as_str().unwrap_or_default().to_owned()
            }
            _ => panic!("not an advisory"),
        })
        .collect()
}

#[test]
fn a_batch_is_stored_whole_at_its_commit_after_plain_publishes_that_came_between() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), ATOMIC);
    assert_eq!(send(&mut s, part("a", 1, None, &[])), PubAck::Staged);
    assert_eq!(send(&mut s, part("a", 2, None, &[])), PubAck::Staged);
    assert_eq!(s.log().msgs(), 0, "nothing is stored before the commit");
    assert_eq!(
        send(&mut s, msg("b.plain", &[], "p")),
        PubAck::Stored { seq: 1 }
    );
    let ack = send(&mut s, part("a", 3, Some("1"), &[]));
    assert_eq!(
        ack,
        PubAck::Batch {
            seq: 4,
            batch: "a".into(),
            count: 3
        }
    );
    let stored: Vec<u64> = s.take_batch_stored().iter().map(|(seq, _)| *seq).collect();
    assert_eq!(stored, [2, 3, 4]);
    let last = s.log().get(4).unwrap().unwrap();
    assert_eq!(header_value(&last.headers, BATCH_COMMIT), Some(&b"1"[..]));
    assert!(s.batches.is_empty());
}

#[test]
fn an_end_of_batch_marker_commits_without_being_stored() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), ATOMIC);
    send(&mut s, part("e", 1, None, &[]));
    send(
        &mut s,
        part("e", 2, None, &[("Nats-Required-Api-Level", "1")]),
    );
    let ack = send(&mut s, part("e", 3, Some("eob"), &[]));
    assert_eq!(
        ack,
        PubAck::Batch {
            seq: 2,
            batch: "e".into(),
            count: 2
        }
    );
    let last = s.log().get(2).unwrap().unwrap();
    assert_eq!(
        &last.headers[..],
        b"NATS/1.0\r\nNats-Batch-Id: e\r\nNats-Batch-Sequence: 2\r\nNats-Batch-Commit: 1\r\n\r\n",
        "the required level is dropped and the commit added"
    );
    // An end of batch as the first message is a gap.
    assert_eq!(code(&send(&mut s, part("f", 1, Some("eob"), &[]))), 10176);
}

#[test]
fn each_bad_message_gets_nats_servers_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut plain = open(dir.path(), r#"{"name":"P","subjects":["b.>"]}"#);
    assert_eq!(code(&send(&mut plain, part("a", 1, None, &[]))), 10174);
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), ATOMIC);
    let long = "i".repeat(MAX_BATCH_ID_BYTES + 1);
    assert_eq!(code(&send(&mut s, part(&long, 1, None, &[]))), 10179);
    let no_seq = msg("b.x", &[("Nats-Batch-Id", "n")], "x");
    assert_eq!(code(&send(&mut s, no_seq)), 10175);
    assert_eq!(code(&send(&mut s, part("g", 2, None, &[]))), 10176);
    assert_eq!(code(&send(&mut s, part("g", 1, Some("yes"), &[]))), 10200);
    assert_eq!(
        code(&send(&mut s, part("h", MAX_BATCH_MSGS + 1, Some("1"), &[]))),
        10199
    );
    let level = send(
        &mut s,
        part("l", 1, None, &[("Nats-Required-Api-Level", "9")]),
    );
    assert_eq!(code(&level), 10185);
    // An empty id is a plain publish.
    let plain = msg("b.p", &[("Nats-Batch-Id", "")], "x");
    assert_eq!(send(&mut s, plain), PubAck::Stored { seq: 1 });
}

#[test]
fn a_gap_abandons_the_batch_with_an_advisory() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), ATOMIC);
    send(&mut s, part("g", 1, None, &[]));
    assert_eq!(code(&send(&mut s, part("g", 3, None, &[]))), 10176);
    assert_eq!(reasons(&mut s), ["incomplete"]);
    assert_eq!(code(&send(&mut s, part("g", 4, Some("1"), &[]))), 10176);
    assert_eq!(s.log().msgs(), 0);
    // The id may start again.
    assert!(matches!(
        send(&mut s, part("g", 1, Some("1"), &[])),
        PubAck::Batch { count: 1, .. }
    ));
}

#[test]
fn a_check_failing_at_commit_refuses_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(
        dir.path(),
        r#"{"name":"B","subjects":["b.>"],"allow_atomic":true,"allow_rollup_hdrs":true}"#,
    );
    send(&mut s, msg("b.0", &[("Nats-Msg-Id", "old")], "x"));
    let cases: [(&[Header], &[Header], u16); 6] = [
        (&[], &[("Nats-Expected-Last-Msg-Id", "old")], 10177),
        (&[("Nats-Msg-Id", "m")], &[("Nats-Msg-Id", "m")], 10201),
        (&[], &[("Nats-Msg-Id", "old")], 10201),
        (&[], &[("Nats-Expected-Last-Sequence", "2")], 10164),
        (&[], &[("Nats-Expected-Last-Sequence", "5")], 10071),
        (&[], &[("Nats-Rollup", "all")], 10111),
    ];
    for (i, (first, second, want)) in cases.into_iter().enumerate() {
        let id = format!("c{i}");
        assert_eq!(send(&mut s, part(&id, 1, None, first)), PubAck::Staged);
        let ack = send(&mut s, part(&id, 2, Some("1"), second));
        assert_eq!(code(&ack), want, "case {i}");
        assert_eq!(
            s.log().msgs(),
            1,
            "case {i}: nothing of the batch is stored"
        );
    }
    // A rollup of a subject the batch already wrote is refused.
    let on_x = |seq: &str, extra: Option<(&str, &str)>| {
        let mut h = vec![("Nats-Batch-Id", "x"), ("Nats-Batch-Sequence", seq)];
        h.extend(extra);
        msg("b.x", &h, "x")
    };
    send(&mut s, on_x("1", None));
    let ack = send(&mut s, on_x("2", Some(("Nats-Rollup", "sub"))));
    assert_eq!(ack, PubAck::Staged);
    let ack = send(&mut s, on_x("3", Some(("Nats-Batch-Commit", "1"))));
    assert_eq!(code(&ack), 10111);
    // On message 1 the expected last sequence is the stream's; a first write may roll up.
    send(&mut s, msg("b.2", &[], "older"));
    send(
        &mut s,
        part("ok", 1, None, &[("Nats-Expected-Last-Sequence", "2")]),
    );
    let ack = send(&mut s, part("ok", 2, Some("1"), &[("Nats-Rollup", "sub")]));
    assert!(
        matches!(
            ack,
            PubAck::Batch {
                seq: 4,
                count: 2,
                ..
            }
        ),
        "{ack:?}"
    );
    assert!(
        s.log().get(2).unwrap().is_none(),
        "the rollup purged b.2's older message"
    );
}

#[test]
fn counters_keep_a_running_total_through_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(
        dir.path(),
        r#"{"name":"C","subjects":["c"],"allow_atomic":true,"allow_msg_counter":true}"#,
    );
    let m = |seq: &str, commit: Option<&str>, incr: &str| {
        let mut h = vec![
            ("Nats-Batch-Id", "k"),
            ("Nats-Batch-Sequence", seq),
            ("Nats-Incr", incr),
        ];
        if let Some(c) = commit {
            h.push(("Nats-Batch-Commit", c));
        }
        let mut p = msg("c", &h, "");
        p.payload = Bytes::new();
        p
    };
    send(&mut s, m("1", None, "+5"));
    let ack = send(&mut s, m("2", Some("1"), "+2"));
    assert!(
        matches!(
            ack,
            PubAck::Batch {
                seq: 2,
                count: 2,
                ..
            }
        ),
        "{ack:?}"
    );
    assert_eq!(s.log().get(1).unwrap().unwrap().payload, r#"{"val":"5"}"#);
    assert_eq!(s.log().get(2).unwrap().unwrap().payload, r#"{"val":"7"}"#);
}

#[test]
fn a_quiet_batch_times_out_and_open_batches_are_limited() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), ATOMIC);
    for i in 0..MAX_INFLIGHT_PER_STREAM {
        assert_eq!(
            send(&mut s, part(&format!("i{i}"), 1, None, &[])),
            PubAck::Staged
        );
    }
    assert_eq!(code(&send(&mut s, part("over", 1, None, &[]))), 10210);
    assert!(s.needs_ticks());
    assert_eq!(s.next_wake_ns(), Some(T0 + BATCH_TIMEOUT.as_nanos() as u64));
    s.tick(T0 + BATCH_TIMEOUT.as_nanos() as u64, Instant::now())
        .unwrap();
    assert!(s.batches.is_empty());
    assert_eq!(reasons(&mut s).len(), MAX_INFLIGHT_PER_STREAM);
    assert_eq!(code(&send(&mut s, part("i0", 2, Some("1"), &[]))), 10176);
}

#[test]
fn a_discard_new_limit_refuses_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(
        dir.path(),
        r#"{"name":"B","subjects":["b.>"],"allow_atomic":true,"max_msgs":2,"discard":"new"}"#,
    );
    send(&mut s, part("d", 1, None, &[]));
    send(&mut s, part("d", 2, None, &[]));
    assert_eq!(code(&send(&mut s, part("d", 3, Some("1"), &[]))), 10077);
    assert_eq!(s.log().msgs(), 0);
    assert!(s.take_batch_stored().is_empty());
}

#[test]
fn a_batch_cut_short_on_disk_is_removed_when_the_stream_opens() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = open(dir.path(), ATOMIC);
        send(&mut s, part("whole", 1, Some("1"), &[]));
        // What a write cut short by kill -9 leaves: the first records of a batch.
        let torn: Vec<NewMessage> = (1..=2)
            .map(|i| {
                let p = part("torn", i, None, &[]);
                NewMessage {
                    subject: String::from_utf8_lossy(&p.subject).into_owned(),
                    headers: p.headers.unwrap_or_default(),
                    payload: p.payload,
                    ts_ns: T0,
                }
            })
            .collect();
        s.log_mut().append_batch(&torn).unwrap();
        s.log_mut().sync().unwrap();
        assert_eq!(s.log().msgs(), 3);
    }
    let s = open(dir.path(), ATOMIC);
    assert_eq!(s.log().msgs(), 1, "only the committed batch is left");
    assert!(s.log().get(1).unwrap().is_some());
    assert!(s.log().get(2).unwrap().is_none());
}

#[test]
fn turning_atomic_publish_off_drops_open_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), ATOMIC);
    send(&mut s, part("o", 1, None, &[]));
    let mut config = s.config().clone();
    config.allow_atomic = false;
    s.update(config.clone()).unwrap();
    assert_eq!(code(&send(&mut s, part("o", 2, Some("1"), &[]))), 10174);
    config.allow_atomic = true;
    s.update(config).unwrap();
    assert_eq!(code(&send(&mut s, part("o", 2, Some("1"), &[]))), 10176);
}
