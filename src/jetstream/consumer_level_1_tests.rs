//! Pause, priority groups, reset and the pull-request rules of API level 1–4, on the state
//! machine with a fake clock (nats-server's behaviour: `docs/consumer-2.14-facts.md`).

use bytes::Bytes;

use super::*;
use crate::jetstream::consumer_config::{AckPolicy, ConsumerConfig, PriorityPolicy};
use crate::store::{LogConfig, MemLog, NewMessage, StreamStore};

const MS: u64 = 1_000_000;
const SEC: u64 = 1_000 * MS;

fn store_with(subjects: &[&str]) -> StreamStore {
    let mut log = MemLog::new(LogConfig::default()).expect("memory log");
    let msgs: Vec<NewMessage> = subjects
        .iter()
        .enumerate()
        .map(|(i, s)| NewMessage::new(s.to_string(), Bytes::from_static(b"x"), i as u64 + 1))
        .collect();
    log.append_batch(&msgs).expect("append");
    StreamStore::from(log)
}

fn store_of(n: usize) -> StreamStore {
    store_with(&vec!["s.a"; n])
}

fn config(policy: PriorityPolicy) -> ConsumerConfig {
    ConsumerConfig {
        durable_name: Some("c".into()),
        ack_policy: AckPolicy::Explicit,
        ack_wait: (30 * SEC) as i64,
        max_waiting: 512,
        max_ack_pending: 1000,
        priority_groups: if policy == PriorityPolicy::None {
            Vec::new()
        } else {
            vec!["g".into()]
        },
        priority_policy: policy,
        priority_timeout: if policy == PriorityPolicy::PinnedClient {
            (2 * SEC) as i64
        } else {
            0
        },
        ..ConsumerConfig::default()
    }
}

fn consumer(config: ConsumerConfig, store: &StreamStore) -> Consumer {
    Consumer::new("S", "c", config, 0, store, 0)
}

/// Sends a pull request from `reply` and returns what it produced.
fn pull(
    c: &mut Consumer,
    store: &StreamStore,
    reply: &'static str,
    body: &str,
    now: u64,
) -> Vec<Action> {
    let mut out = Vec::new();
    c.on_pull(
        body.as_bytes(),
        Bytes::from_static(reply.as_bytes()),
        store,
        now,
        &mut out,
    );
    out
}

/// (recipient, stream sequence, pin id) of each delivery.
fn deliveries(out: &[Action]) -> Vec<(String, u64, Option<String>)> {
    out.iter()
        .filter_map(|a| match a {
            Action::Deliver {
                to, msg, pin_id, ..
            } => Some((
                String::from_utf8_lossy(to).into_owned(),
                msg.seq,
                pin_id
                    .as_ref()
                    .map(|p| String::from_utf8_lossy(p).into_owned()),
            )),
            _ => None,
        })
        .collect()
}

/// (recipient, code, description) of each status message.
fn statuses(out: &[Action]) -> Vec<(String, u16, String)> {
    out.iter()
        .filter_map(|a| match a {
            Action::Status {
                to,
                code,
                description,
                ..
            } => Some((
                String::from_utf8_lossy(to).into_owned(),
                *code,
                description.clone(),
            )),
            _ => None,
        })
        .collect()
}

fn advisories(out: &[Action]) -> Vec<(String, serde_json::Value)> {
    out.iter()
        .filter_map(|a| match a {
            Action::Advisory { subject, body } => Some((
                subject.clone(),
                serde_json::from_slice(body).expect("JSON advisory"),
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn a_paused_consumer_holds_deliveries_until_the_deadline_then_announces_the_resume() {
    let store = store_of(3);
    let mut cfg = config(PriorityPolicy::None);
    cfg.pause_until = Some(crate::jetstream::time::format_rfc3339(Some(
        (5 * SEC) as i64,
    )));
    let mut c = consumer(cfg, &store);
    assert!(c.is_paused(SEC) && c.pause_remaining_ns(SEC) == 4 * SEC);
    let out = pull(
        &mut c,
        &store,
        "r1",
        r#"{"batch":2,"expires":10000000000}"#,
        SEC,
    );
    assert!(deliveries(&out).is_empty(), "{out:?}");
    let out = pull(&mut c, &store, "r2", r#"{"batch":1,"no_wait":true}"#, SEC);
    assert_eq!(
        statuses(&out),
        vec![("r2".into(), 404, "No Messages".into())]
    );
    assert_eq!(c.next_deadline_ns(), Some(5 * SEC));
    let mut out = Vec::new();
    c.tick(&store, 5 * SEC, Delivery::Pull, &mut out);
    assert_eq!(deliveries(&out).len(), 2, "served at the deadline: {out:?}");
    let adv = advisories(&out);
    assert_eq!(adv.len(), 1);
    assert_eq!(adv[0].0, "$JS.EVENT.ADVISORY.CONSUMER.PAUSE.S.c");
    assert_eq!(adv[0].1["paused"], false);
    assert_eq!(
        adv[0].1["type"],
        "io.nats.jetstream.advisory.v1.consumer_pause"
    );
    assert!(!c.is_paused(5 * SEC));
    assert!(
        c.config.pause_until.is_some(),
        "the time stays in the config"
    );
}

#[test]
fn pause_and_resume_announce_only_changes() {
    let store = store_of(1);
    let mut c = consumer(config(PriorityPolicy::None), &store);
    let mut out = Vec::new();
    c.pause(None, SEC, &mut out);
    assert!(
        out.is_empty(),
        "resuming a running consumer changes nothing"
    );
    let until = ("1970-01-01T00:00:09Z".to_string(), (9 * SEC) as i64);
    c.pause(Some(until.clone()), SEC, &mut out);
    c.pause(Some(until), SEC, &mut out);
    assert_eq!(advisories(&out).len(), 1);
    assert_eq!(advisories(&out)[0].1["paused"], true);
    c.pause(None, 2 * SEC, &mut out);
    assert_eq!(advisories(&out).len(), 2);
    assert!(!c.is_paused(2 * SEC) && c.config.pause_until.is_none());
}

#[test]
fn a_pinned_consumer_delivers_only_to_its_pinned_client() {
    let store = store_of(4);
    let mut c = consumer(config(PriorityPolicy::PinnedClient), &store);
    let out = pull(
        &mut c,
        &store,
        "a",
        r#"{"batch":1,"group":"g","expires":5000000000}"#,
        0,
    );
    let got = deliveries(&out);
    assert_eq!(got.len(), 1);
    let pin = got[0].2.clone().expect("a pin id");
    assert_eq!(pin.len(), 22);
    let adv = advisories(&out);
    assert_eq!(adv[0].0, "$JS.EVENT.ADVISORY.CONSUMER.PINNED.S.c");
    assert_eq!(adv[0].1["pinned_id"], pin.as_str());
    // Another client without the pin waits; one with a wrong pin is refused.
    let out = pull(
        &mut c,
        &store,
        "b",
        r#"{"batch":1,"group":"g","expires":5000000000}"#,
        MS,
    );
    assert!(
        deliveries(&out).is_empty() && statuses(&out).is_empty(),
        "{out:?}"
    );
    let out = pull(
        &mut c,
        &store,
        "x",
        r#"{"batch":1,"group":"g","id":"nope","expires":5000000000}"#,
        MS,
    );
    assert_eq!(
        statuses(&out),
        vec![("x".into(), 423, "Nats-Pin-Id mismatch".into())]
    );
    // The pinned client keeps getting messages, with its pin.
    let body = format!(r#"{{"batch":2,"group":"g","id":"{pin}","expires":5000000000}}"#);
    let out = pull(&mut c, &store, "a2", &body, 2 * MS);
    let got = deliveries(&out);
    assert_eq!(
        got.iter().map(|d| (d.0.as_str(), d.1)).collect::<Vec<_>>(),
        vec![("a2", 2), ("a2", 3)]
    );
    assert!(got.iter().all(|d| d.2.as_deref() == Some(pin.as_str())));
    let info = c.info(&store, "srv", 3 * MS, false);
    assert_eq!(
        info.priority_groups[0].pinned_client_id.as_deref(),
        Some(pin.as_str())
    );
}

#[test]
fn an_unpin_moves_the_pin_and_a_stale_pin_is_told() {
    let store = store_of(4);
    let mut c = consumer(config(PriorityPolicy::PinnedClient), &store);
    let out = pull(
        &mut c,
        &store,
        "a",
        r#"{"batch":1,"group":"g","expires":5000000000}"#,
        0,
    );
    let old = deliveries(&out)[0].2.clone().expect("pin");
    // The old holder waits with its pin; then the pin is taken away.
    let body = format!(r#"{{"batch":1,"group":"g","id":"{old}","expires":5000000000}}"#);
    let _ = pull(&mut c, &store, "a2", &body, MS);
    let _ = pull(
        &mut c,
        &store,
        "b",
        r#"{"batch":1,"group":"g","expires":5000000000}"#,
        MS,
    );
    // a2 was served (it holds the pin); take it away and ask again.
    let mut out = Vec::new();
    c.unpin("g", 2 * MS, &mut out);
    assert_eq!(advisories(&out)[0].1["reason"], "admin");
    // b (no id, waiting longest) is pinned afresh as soon as a message is ready.
    let mut out = Vec::new();
    c.pump(&store, 3 * MS, Delivery::Pull, &mut out);
    let got = deliveries(&out);
    assert_eq!(got.len(), 1, "{out:?}");
    assert_eq!(got[0].0, "b");
    assert_ne!(got[0].2.as_deref(), Some(old.as_str()));
    let out = pull(&mut c, &store, "a4", &body, 4 * MS);
    assert_eq!(
        statuses(&out),
        vec![("a4".into(), 423, "Nats-Pin-Id mismatch".into())]
    );
    // With no pin held, a request naming a stale one is told when a message is ready.
    let mut out = Vec::new();
    c.unpin("g", 5 * MS, &mut out);
    let out = pull(&mut c, &store, "a5", &body, 6 * MS);
    assert_eq!(
        statuses(&out),
        vec![("a5".into(), 423, "Nats-Wrong-Pin-Id".into())]
    );
}

#[test]
fn a_pin_times_out_when_its_client_stops_pulling() {
    let store = store_of(3);
    let mut c = consumer(config(PriorityPolicy::PinnedClient), &store);
    let out = pull(
        &mut c,
        &store,
        "a",
        r#"{"batch":1,"group":"g","expires":9000000000}"#,
        0,
    );
    assert_eq!(deliveries(&out).len(), 1);
    let _ = pull(
        &mut c,
        &store,
        "b",
        r#"{"batch":1,"group":"g","expires":9000000000}"#,
        MS,
    );
    assert_eq!(
        c.next_deadline_ns(),
        Some(2 * SEC),
        "the pin's timeout is a deadline"
    );
    let mut out = Vec::new();
    c.tick(&store, 2 * SEC, Delivery::Pull, &mut out);
    assert_eq!(advisories(&out)[0].1["reason"], "timeout");
    assert_eq!(
        advisories(&out)[1].0,
        "$JS.EVENT.ADVISORY.CONSUMER.PINNED.S.c"
    );
    assert_eq!(
        deliveries(&out)[0].0,
        "b",
        "the waiting client is pinned next"
    );
}

#[test]
fn overflow_serves_a_request_only_while_the_consumer_is_behind() {
    let store = store_of(20);
    let mut c = consumer(config(PriorityPolicy::Overflow), &store);
    let out = pull(
        &mut c,
        &store,
        "o",
        r#"{"batch":5,"group":"g","min_pending":18,"expires":5000000000}"#,
        0,
    );
    assert_eq!(
        deliveries(&out).iter().map(|d| d.1).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    let out = pull(
        &mut c,
        &store,
        "any",
        r#"{"batch":1,"group":"g","expires":5000000000}"#,
        MS,
    );
    assert_eq!(
        deliveries(&out)
            .iter()
            .map(|d| (d.0.as_str(), d.1))
            .collect::<Vec<_>>(),
        vec![("any", 4)]
    );
    // Four unacknowledged: a min_ack_pending of 4 is met (either threshold is enough).
    let out = pull(
        &mut c,
        &store,
        "ack",
        r#"{"batch":1,"group":"g","min_pending":99,"min_ack_pending":4,"expires":5000000000}"#,
        2 * MS,
    );
    assert_eq!(
        deliveries(&out)
            .iter()
            .map(|d| (d.0.as_str(), d.1))
            .collect::<Vec<_>>(),
        vec![("ack", 5)]
    );
}

#[test]
fn prioritized_requests_are_served_lowest_priority_first_taking_turns_within_a_level() {
    let store = store_of(0);
    let mut c = consumer(config(PriorityPolicy::Prioritized), &store);
    for (reply, body) in [
        (
            "p5",
            r#"{"batch":1,"group":"g","priority":5,"expires":5000000000}"#,
        ),
        (
            "p1",
            r#"{"batch":2,"group":"g","priority":1,"expires":5000000000}"#,
        ),
        (
            "q1",
            r#"{"batch":2,"group":"g","priority":1,"expires":5000000000}"#,
        ),
        (
            "p0",
            r#"{"batch":1,"group":"g","priority":0,"expires":5000000000}"#,
        ),
    ] {
        assert!(pull(&mut c, &store, reply, body, 0).is_empty());
    }
    let mut log = MemLog::new(LogConfig::default()).expect("memory log");
    let msgs: Vec<NewMessage> = (1..=6)
        .map(|i| NewMessage::new("s.a".to_string(), Bytes::from_static(b"x"), i))
        .collect();
    log.append_batch(&msgs).expect("append");
    let store = StreamStore::from(log);
    c.on_appended(&[], true);
    let mut out = Vec::new();
    c.pump(&store, MS, Delivery::Pull, &mut out);
    let order: Vec<(String, u64)> = deliveries(&out).into_iter().map(|d| (d.0, d.1)).collect();
    let expected = [
        ("p0", 1),
        ("p1", 2),
        ("q1", 3),
        ("p1", 4),
        ("q1", 5),
        ("p5", 6),
    ];
    assert_eq!(order, expected.map(|(r, s)| (r.to_string(), s)).to_vec());
}

#[test]
fn priority_terms_are_checked_in_nats_server_order() {
    let store = store_of(1);
    let cases = [
        (
            PriorityPolicy::None,
            r#"{"min_pending":1}"#,
            "Bad Request - Not a Overflow Priority consumer",
        ),
        (
            PriorityPolicy::Overflow,
            r#"{"group":"g","id":"x"}"#,
            "Bad Request - Not a Pinned Client Priority consumer",
        ),
        (
            PriorityPolicy::Prioritized,
            r#"{"group":"g","priority":10}"#,
            "Bad Request - Priority must be between 0 and 9",
        ),
        (
            PriorityPolicy::PinnedClient,
            r#"{"batch":1}"#,
            "Bad Request - Priority Group missing",
        ),
        (
            PriorityPolicy::PinnedClient,
            "",
            "Bad Request - Priority Group missing",
        ),
        (
            PriorityPolicy::Overflow,
            r#"{"group":"a.b"}"#,
            "Bad Request - Invalid Priority Group",
        ),
    ];
    for (policy, body, expected) in cases {
        let mut c = consumer(config(policy), &store);
        let out = pull(&mut c, &store, "r", body, 0);
        assert_eq!(
            statuses(&out),
            vec![("r".into(), 400, expected.into())],
            "{body}"
        );
    }
    // Without a policy, a group is ignored and the request served.
    let mut c = consumer(config(PriorityPolicy::None), &store);
    assert_eq!(
        deliveries(&pull(&mut c, &store, "r", r#"{"group":"zz"}"#, 0)).len(),
        1
    );
}

#[test]
fn a_no_wait_request_behind_requests_that_claim_every_message_is_told_so() {
    let store = store_of(2);
    let mut cfg = config(PriorityPolicy::None);
    cfg.max_ack_pending = 1;
    let mut c = consumer(cfg, &store);
    let out = pull(
        &mut c,
        &store,
        "big",
        r#"{"batch":5,"expires":5000000000}"#,
        0,
    );
    assert_eq!(deliveries(&out).len(), 1, "held at max_ack_pending");
    let out = pull(&mut c, &store, "nw", r#"{"batch":1,"no_wait":true}"#, MS);
    assert_eq!(
        statuses(&out),
        vec![("nw".into(), 408, "Requests Pending".into())]
    );
}

#[test]
fn a_full_wait_queue_drops_a_request_with_heartbeats_silently() {
    let store = store_of(0);
    let mut cfg = config(PriorityPolicy::None);
    cfg.max_waiting = 1;
    let mut c = consumer(cfg, &store);
    assert!(pull(&mut c, &store, "a", r#"{"expires":5000000000}"#, 0).is_empty());
    let out = pull(&mut c, &store, "b", r#"{"expires":5000000000}"#, 0);
    assert_eq!(
        statuses(&out),
        vec![("b".into(), 409, "Exceeded MaxWaiting".into())]
    );
    let out = pull(
        &mut c,
        &store,
        "c",
        r#"{"expires":5000000000,"idle_heartbeat":1000000000}"#,
        0,
    );
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn reset_restarts_delivery_and_the_consumer_sequence() {
    let store = store_of(6);
    let mut c = consumer(config(PriorityPolicy::None), &store);
    let out = pull(&mut c, &store, "r", r#"{"batch":4,"no_wait":true}"#, 0);
    assert_eq!(deliveries(&out).len(), 4);
    let mut out = Vec::new();
    c.on_ack(&AckKind::Ack, 1, 1, MS, &mut out);
    c.on_ack(&AckKind::Ack, 2, 2, MS, &mut out);
    c.on_ack(&AckKind::Ack, 4, 4, MS, &mut out);
    // Back to the ack floor: 3 and 4 again (the ack of 4 is forgotten), as consumer seqs 1, 2.
    assert_eq!(c.reset(0, &store).expect("reset"), 3);
    assert_eq!((c.delivered.consumer_seq, c.delivered.stream_seq), (0, 2));
    assert!(c.pending.is_empty());
    let out = pull(&mut c, &store, "r", r#"{"batch":2,"no_wait":true}"#, 2 * MS);
    let subjects: Vec<String> = out
        .iter()
        .filter_map(|a| match a {
            Action::Deliver { ack_subject, .. } => Some(ack_subject.clone()),
            _ => None,
        })
        .collect();
    assert!(
        subjects[0].starts_with("$JS.ACK.S.c.1.3.1."),
        "{subjects:?}"
    );
    assert!(
        subjects[1].starts_with("$JS.ACK.S.c.1.4.2."),
        "{subjects:?}"
    );
    // Past the end is allowed: the consumer waits for the stream to get there.
    assert_eq!(c.reset(100, &store).expect("reset"), 100);
    assert_eq!(c.num_pending(&store), 0);
}

#[test]
fn reset_to_a_sequence_follows_the_deliver_policy() {
    let store = store_of(5);
    let mut cfg = config(PriorityPolicy::None);
    cfg.deliver_policy = crate::jetstream::consumer_config::DeliverPolicy::ByStartSequence;
    cfg.opt_start_seq = Some(3);
    let mut c = consumer(cfg, &store);
    let err = c.reset(2, &store).expect_err("below the start");
    assert_eq!(
        (err.err_code, err.description.as_str()),
        (10204, "invalid reset: below start seq")
    );
    assert_eq!(c.reset(3, &store).expect("at the start"), 3);
    let mut cfg = config(PriorityPolicy::None);
    cfg.deliver_policy = crate::jetstream::consumer_config::DeliverPolicy::New;
    let mut c = consumer(cfg, &store);
    let err = c.reset(1, &store).expect_err("not for deliver new");
    assert_eq!(err.description, "invalid reset: not allowed");
    assert!(
        c.reset(0, &store).is_ok(),
        "back to the ack floor is always allowed"
    );
}

#[test]
fn the_last_per_subject_start_list_survives_a_restore() {
    let store = store_with(&["l.a", "l.a", "l.a", "l.b", "l.b", "l.c"]);
    let mut cfg = config(PriorityPolicy::None);
    cfg.deliver_policy = crate::jetstream::consumer_config::DeliverPolicy::LastPerSubject;
    let mut c = consumer(cfg.clone(), &store);
    let out = pull(&mut c, &store, "r", r#"{"batch":1,"no_wait":true}"#, 0);
    assert_eq!(deliveries(&out)[0].1, 3);
    let state = c.state_pb();
    let mut back = Consumer::restore("S", "c", cfg, 0, &state, &store, MS);
    let out = pull(
        &mut back,
        &store,
        "r",
        r#"{"batch":5,"no_wait":true}"#,
        2 * MS,
    );
    assert_eq!(
        deliveries(&out).iter().map(|d| d.1).collect::<Vec<_>>(),
        vec![5, 6]
    );
}

#[test]
fn sampled_acks_are_reported_with_the_time_the_client_took() {
    let store = store_of(2);
    let mut cfg = config(PriorityPolicy::None);
    cfg.sample_freq = Some("100%".into());
    let mut c = consumer(cfg, &store);
    let _ = pull(&mut c, &store, "r", r#"{"batch":2,"no_wait":true}"#, SEC);
    let mut out = Vec::new();
    c.on_ack(&AckKind::Ack, 1, 1, SEC + 250 * MS, &mut out);
    c.on_ack(&AckKind::Term(None), 2, 2, SEC + 300 * MS, &mut out);
    let metrics: Vec<_> = advisories(&out)
        .into_iter()
        .filter(|(subject, _)| subject.starts_with("$JS.EVENT.METRIC."))
        .collect();
    assert_eq!(
        metrics.len(),
        1,
        "a terminated message is no sampled ack: {out:?}"
    );
    assert_eq!(metrics[0].0, "$JS.EVENT.METRIC.CONSUMER.ACK.S.c");
    let body = &metrics[0].1;
    assert_eq!(body["type"], "io.nats.jetstream.metric.v1.consumer_ack");
    assert_eq!(
        (body["stream_seq"].as_u64(), body["consumer_seq"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(body["ack_time"].as_u64(), Some(250 * MS));
    assert_eq!(body["deliveries"].as_u64(), Some(1));
    let mut cfg = config(PriorityPolicy::None);
    cfg.sample_freq = Some("0".into());
    let mut c = consumer(cfg, &store);
    let _ = pull(&mut c, &store, "r", r#"{"batch":1,"no_wait":true}"#, SEC);
    let mut out = Vec::new();
    c.on_ack(&AckKind::Ack, 1, 1, 2 * SEC, &mut out);
    assert!(advisories(&out).is_empty());
}
