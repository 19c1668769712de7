//! The consumer state machine against a reference model, plus targeted cases.

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::jetstream::consumer_config::{AckPolicy, ConsumerConfig};
use crate::store::{LogConfig, MemLog, NewMessage, StreamStore};

const MS: u64 = 1_000_000;
const ACK_WAIT: u64 = 100 * MS;
const MAX_DELIVER: u64 = 3;
const MAX_ACK_PENDING: usize = 5;

fn store_with(n: u64) -> StreamStore {
    let mut log = MemLog::new(LogConfig::default()).expect("memory log");
    let msgs: Vec<NewMessage> = (0..n)
        .map(|i| NewMessage::new(format!("s.{}", i % 3), Bytes::from(vec![1u8; 4]), i + 1))
        .collect();
    log.append_batch(&msgs).expect("append");
    StreamStore::from(log)
}

fn config(ack: AckPolicy) -> ConsumerConfig {
    ConsumerConfig {
        durable_name: Some("c".into()),
        ack_policy: ack,
        ack_wait: ACK_WAIT as i64,
        max_deliver: MAX_DELIVER as i64,
        max_ack_pending: MAX_ACK_PENDING as i64,
        max_waiting: 512,
        ..ConsumerConfig::default()
    }
}

/// Deliveries produced by one pull of `n` (no wait).
fn pull(c: &mut Consumer, store: &StreamStore, n: u64, now: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let body = format!(r#"{{"batch":{n},"no_wait":true}}"#);
    c.on_pull(
        body.as_bytes(),
        Bytes::from_static(b"reply"),
        store,
        now,
        &mut out,
    );
    out.iter()
        .filter_map(|a| match a {
            Action::Deliver {
                msg, ack_subject, ..
            } => {
                let deliveries = ack_subject
                    .split('.')
                    .nth(4)
                    .and_then(|d| d.parse().ok())
                    .unwrap_or(0);
                Some((msg.seq, deliveries))
            }
            _ => None,
        })
        .collect()
}

/// What the model knows about one message.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Slot {
    New,
    Pending {
        deliveries: u64,
        deadline: u64,
        queued: bool,
    },
    Done,
}

/// A plain model of explicit-ack delivery semantics.
struct Model {
    slots: BTreeMap<u64, Slot>,
}

impl Model {
    fn new(n: u64) -> Self {
        Self {
            slots: (1..=n).map(|s| (s, Slot::New)).collect(),
        }
    }

    fn pending(&self) -> usize {
        self.slots
            .values()
            .filter(|s| matches!(s, Slot::Pending { .. }))
            .count()
    }

    fn pull(&mut self, n: u64, now: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let queued: Vec<u64> = self
            .slots
            .iter()
            .filter(|(_, s)| matches!(s, Slot::Pending { queued: true, .. }))
            .map(|(k, _)| *k)
            .collect();
        for seq in queued {
            if out.len() as u64 == n {
                return out;
            }
            if let Some(Slot::Pending { deliveries, .. }) = self.slots.get(&seq).copied() {
                self.slots.insert(
                    seq,
                    Slot::Pending {
                        deliveries: deliveries + 1,
                        deadline: now + ACK_WAIT,
                        queued: false,
                    },
                );
                out.push((seq, deliveries + 1));
            }
        }
        let fresh: Vec<u64> = self
            .slots
            .iter()
            .filter(|(_, s)| **s == Slot::New)
            .map(|(k, _)| *k)
            .collect();
        for seq in fresh {
            if out.len() as u64 == n || self.pending() >= MAX_ACK_PENDING {
                break;
            }
            self.slots.insert(
                seq,
                Slot::Pending {
                    deliveries: 1,
                    deadline: now + ACK_WAIT,
                    queued: false,
                },
            );
            out.push((seq, 1));
        }
        out
    }

    fn ack(&mut self, seq: u64) {
        if matches!(self.slots.get(&seq), Some(Slot::Pending { .. })) {
            self.slots.insert(seq, Slot::Done);
        }
    }

    fn nak(&mut self, seq: u64, delay: Option<u64>, now: u64) {
        if let Some(Slot::Pending {
            deliveries,
            deadline,
            ..
        }) = self.slots.get(&seq).copied()
        {
            let slot = match delay {
                Some(d) => Slot::Pending {
                    deliveries,
                    deadline: now + d,
                    queued: false,
                },
                None => Slot::Pending {
                    deliveries,
                    deadline: deadline.min(now),
                    queued: true,
                },
            };
            self.slots.insert(seq, slot);
        }
    }

    fn progress(&mut self, seq: u64, now: u64) {
        if let Some(Slot::Pending { deliveries, .. }) = self.slots.get(&seq).copied() {
            self.slots.insert(
                seq,
                Slot::Pending {
                    deliveries,
                    deadline: now + ACK_WAIT,
                    queued: false,
                },
            );
        }
    }

    fn tick(&mut self, now: u64) {
        for slot in self.slots.values_mut() {
            if let Slot::Pending {
                deliveries,
                deadline,
                queued: false,
            } = *slot
            {
                if deadline <= now {
                    *slot = if deliveries >= MAX_DELIVER {
                        Slot::Done
                    } else {
                        Slot::Pending {
                            deliveries,
                            deadline,
                            queued: true,
                        }
                    };
                }
            }
        }
    }

    fn floor(&self) -> u64 {
        match self
            .slots
            .iter()
            .find(|(_, s)| matches!(s, Slot::Pending { .. }))
        {
            Some((seq, _)) => seq - 1,
            None => self
                .slots
                .iter()
                .rev()
                .find(|(_, s)| **s != Slot::New)
                .map_or(0, |(k, _)| *k),
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Pull(u64),
    Ack(usize),
    Nak(usize),
    NakDelay(usize, u64),
    Progress(usize),
    Term(usize),
    Wait(u64),
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1u64..4).prop_map(Op::Pull),
        3 => (0usize..8).prop_map(Op::Ack),
        1 => (0usize..8).prop_map(Op::Nak),
        1 => ((0usize..8), (1u64..300)).prop_map(|(i, d)| Op::NakDelay(i, d * MS)),
        1 => (0usize..8).prop_map(Op::Progress),
        1 => (0usize..8).prop_map(Op::Term),
        2 => (1u64..250).prop_map(|ms| Op::Wait(ms * MS)),
        1 => Just(Op::Restart),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn explicit_ack_consumer_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        const N: u64 = 12;
        let store = store_with(N);
        let mut now = 1_000 * MS;
        let mut c = Consumer::new("S", "c", config(AckPolicy::Explicit), 0, &store, now);
        let mut model = Model::new(N);
        let mut recent: Vec<u64> = Vec::new();
        for op in ops {
            let mut out = Vec::new();
            match op {
                Op::Pull(n) => {
                    let got = pull(&mut c, &store, n, now);
                    let want = model.pull(n, now);
                    prop_assert_eq!(&got, &want);
                    recent.extend(got.iter().map(|(s, _)| *s));
                }
                Op::Ack(i) | Op::Term(i) | Op::Nak(i) | Op::NakDelay(i, _) | Op::Progress(i) if recent.is_empty() => { let _ = i; }
                Op::Ack(i) => { let seq = recent[i % recent.len()]; c.on_ack(&AckKind::Ack, seq, 0, now, &mut out); model.ack(seq); }
                Op::Term(i) => { let seq = recent[i % recent.len()]; c.on_ack(&AckKind::Term(None), seq, 0, now, &mut out); model.ack(seq); }
                Op::Nak(i) => { let seq = recent[i % recent.len()]; c.on_ack(&AckKind::Nak(None), seq, 0, now, &mut out); model.nak(seq, None, now); }
                Op::NakDelay(i, d) => { let seq = recent[i % recent.len()]; c.on_ack(&AckKind::Nak(Some(d)), seq, 0, now, &mut out); model.nak(seq, Some(d), now); }
                Op::Progress(i) => { let seq = recent[i % recent.len()]; c.on_ack(&AckKind::InProgress, seq, 0, now, &mut out); model.progress(seq, now); }
                Op::Wait(d) => {
                    now += d;
                    c.tick(&store, now, Delivery::Pull, &mut out);
                    model.tick(now);
                }
                Op::Restart => {
                    // Only durable state survives; a queued redelivery becomes due again by time.
                    let state = c.state_pb();
                    c = Consumer::restore("S", "c", c.config.clone(), 0, &state, &store, now);
                    for slot in model.slots.values_mut() {
                        if let Slot::Pending { queued: true, deliveries, .. } = *slot {
                            *slot = Slot::Pending { deliveries, deadline: 0, queued: false };
                        }
                    }
                    c.tick(&store, now, Delivery::Pull, &mut out);
                    model.tick(now);
                }
            }
            let pending: Vec<u64> = c.pending.keys().copied().collect();
            let model_pending: Vec<u64> = model.slots.iter().filter(|(_, s)| matches!(s, Slot::Pending { .. })).map(|(k, _)| *k).collect();
            prop_assert_eq!(pending, model_pending);
            prop_assert_eq!(c.ack_floor.stream_seq, model.floor());
            prop_assert!(c.ack_floor.stream_seq <= c.delivered.stream_seq);
            prop_assert!(c.ack_floor.consumer_seq <= c.delivered.consumer_seq);
            prop_assert!(c.pending.len() <= MAX_ACK_PENDING);
            let undelivered = model.slots.values().filter(|s| **s == Slot::New).count() as u64;
            prop_assert_eq!(c.num_pending(&store), undelivered);
        }
    }
}

#[test]
fn ack_none_consumes_on_delivery() {
    let store = store_with(3);
    let mut c = Consumer::new("S", "c", config(AckPolicy::None), 0, &store, 0);
    let got = pull(&mut c, &store, 5, 0);
    assert_eq!(got, [(1, 1), (2, 1), (3, 1)]);
    assert!(c.pending.is_empty());
    assert_eq!((c.ack_floor.stream_seq, c.ack_floor.consumer_seq), (3, 3));
}

#[test]
fn ack_subject_has_nine_tokens_with_pending_count() {
    let store = store_with(3);
    let mut c = Consumer::new("S", "dur", config(AckPolicy::Explicit), 0, &store, 0);
    let mut out = Vec::new();
    c.on_pull(b"1", Bytes::from_static(b"r"), &store, 0, &mut out);
    let Some(Action::Deliver { ack_subject, .. }) = out.first() else {
        panic!("no delivery: {out:?}")
    };
    let tokens: Vec<&str> = ack_subject.split('.').collect();
    assert_eq!(tokens.len(), 9);
    assert_eq!(&tokens[..7], ["$JS", "ACK", "S", "dur", "1", "1", "1"]);
    assert_eq!(tokens[8], "2", "two more matching messages after this one");
}

#[test]
fn pull_request_expiry_and_no_wait_statuses() {
    let store = store_with(0);
    let mut c = Consumer::new("S", "c", config(AckPolicy::Explicit), 0, &store, 0);
    let mut out = Vec::new();
    c.on_pull(
        br#"{"batch":2,"no_wait":true}"#,
        Bytes::from_static(b"a"),
        &store,
        0,
        &mut out,
    );
    assert!(
        matches!(&out[..], [Action::Status { code: 404, description, .. }] if description == "No Messages")
    );
    out.clear();
    c.on_pull(
        br#"{"batch":2,"expires":50000000}"#,
        Bytes::from_static(b"b"),
        &store,
        0,
        &mut out,
    );
    assert!(out.is_empty());
    c.tick(&store, 60 * MS, Delivery::Pull, &mut out);
    match &out[..] {
        [Action::Status {
            code: 408,
            description,
            headers,
            ..
        }] => {
            assert_eq!(description, "Request Timeout");
            assert!(headers.contains(&("Nats-Pending-Messages", "2".to_string())));
        }
        other => panic!("expected a 408, got {other:?}"),
    }
}

#[test]
fn ack_subject_carries_every_field_in_order() {
    let store = store_with(3);
    let mut c = Consumer::new("ST", "c", config(AckPolicy::Explicit), 0, &store, 0);
    let mut out = Vec::new();
    let body = br#"{"batch":1,"no_wait":true}"#;
    c.on_pull(body, Bytes::from_static(b"reply"), &store, 7, &mut out);
    let subject = out
        .iter()
        .find_map(|a| match a {
            Action::Deliver { ack_subject, .. } => Some(ack_subject.clone()),
            _ => None,
        })
        .expect("one delivery");
    // delivered 1 time, stream seq 1, consumer seq 1, timestamp 1 (as appended), 2 pending.
    assert_eq!(subject, "$JS.ACK.ST.c.1.1.1.1.2");
    assert_eq!(push_decimal_text(0), "0");
    assert_eq!(push_decimal_text(u64::MAX), u64::MAX.to_string());
}

fn push_decimal_text(n: u64) -> String {
    let mut s = String::new();
    push_decimal(&mut s, n);
    s
}

/// After a crash the consumer's state may predate its last deliveries; an ack for one of
/// them adopts everything up to it as delivered, so the acked message is never delivered
/// again and the rest are redelivered after ack_wait.
#[test]
fn an_ack_past_the_known_deliveries_adopts_them() {
    let store = store_with(10);
    let mut c = Consumer::new("S", "c", config(AckPolicy::Explicit), 0, &store, 0);
    let mut out = Vec::new();
    // Messages 1..=5 went out from a process whose state never recorded them; 5 is acked.
    c.adopt_deliveries_up_to(5, 5, 5, &store, 0);
    c.on_ack(&AckKind::Ack, 5, 5, 0, &mut out);
    assert_eq!(
        c.pending.keys().copied().collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert_eq!(c.next_seq, 6);
    assert_eq!(c.delivered.stream_seq, 5);
    // New deliveries continue after the acked one (max_ack_pending 5 leaves room for one).
    assert_eq!(pull(&mut c, &store, 10, 1), vec![(6, 1)]);
    // Past ack_wait the adopted ones come back, the acked one never does.
    let later = ACK_WAIT + 10;
    out.clear();
    c.tick(&store, later, Delivery::Pull, &mut out);
    let redelivered = pull(&mut c, &store, 10, later);
    assert!(
        redelivered.iter().all(|(seq, _)| *seq != 5),
        "{redelivered:?}"
    );
    assert!(
        redelivered.iter().any(|(seq, n)| *seq == 1 && *n == 2),
        "{redelivered:?}"
    );
    // Acks at or below what is known, past the stream's end, or by a consumer without
    // explicit acks change nothing.
    let before = c.pending.clone();
    c.adopt_deliveries_up_to(3, 3, 3, &store, later);
    c.adopt_deliveries_up_to(99, 99, 99, &store, later);
    assert_eq!(c.pending, before);
}

/// After a crash under an interval sync mode the log can give a lost message's sequence to
/// a new one; an ack for the lost message (its timestamp differs) adopts nothing.
#[test]
fn an_ack_for_a_message_that_is_no_longer_there_adopts_nothing() {
    let store = store_with(10);
    let mut c = Consumer::new("S", "c", config(AckPolicy::Explicit), 0, &store, 0);
    let mut out = Vec::new();
    // Message 5 here has timestamp 5; the client's ack names timestamp 4242.
    c.adopt_deliveries_up_to(5, 5, 4242, &store, 0);
    c.on_ack(&AckKind::Ack, 5, 5, 0, &mut out);
    assert!(c.pending.is_empty());
    assert_eq!(c.next_seq, 1);
    // So message 5 is still delivered.
    let delivered: Vec<u64> = pull(&mut c, &store, 10, 1)
        .iter()
        .map(|(s, _)| *s)
        .collect();
    assert_eq!(delivered, vec![1, 2, 3, 4, 5]);
}

#[test]
fn a_state_from_a_clock_ahead_redelivers_after_the_ack_wait_not_the_clocks_difference() {
    let store = store_with(3);
    let ahead = 240_000 * MS;
    let then = 1_000_000 * MS;
    let mut c = Consumer::new("S", "c", config(AckPolicy::Explicit), 0, &store, then);
    assert_eq!(pull(&mut c, &store, 1, then), vec![(1, 1)]);
    let state = c.state_pb();
    // Taken over by a server whose clock reads four minutes earlier, 10 ms later.
    let here = then - ahead + 10 * MS;
    let mut back = Consumer::restore("S", "c", c.config.clone(), 0, &state, &store, here);
    let mut out = Vec::new();
    back.tick(&store, here + ACK_WAIT - 20 * MS, Delivery::Pull, &mut out);
    assert_eq!(
        pull(&mut back, &store, 1, here + ACK_WAIT - 20 * MS),
        vec![(2, 1)]
    );
    back.tick(&store, here + ACK_WAIT, Delivery::Pull, &mut out);
    assert_eq!(pull(&mut back, &store, 1, here + ACK_WAIT), vec![(1, 2)]);
    // The same state restored on a clock that agrees keeps the deadline it had.
    let mut same = Consumer::restore("S", "c", c.config.clone(), 0, &state, &store, then);
    same.tick(&store, then + ACK_WAIT - MS, Delivery::Pull, &mut out);
    assert_eq!(
        pull(&mut same, &store, 1, then + ACK_WAIT - MS),
        vec![(2, 1)]
    );
    same.tick(&store, then + ACK_WAIT, Delivery::Pull, &mut out);
    assert_eq!(pull(&mut same, &store, 1, then + ACK_WAIT), vec![(1, 2)]);
}
