//! A consumer as a snapshot archive carries it (`consumers/<name>`): its config and its
//! state in nats-server's shape (`{"delivered","ack_floor","pending","redelivered"}`), to
//! and from the state jetlog persists.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::consumer_config::ConsumerConfig;
use crate::meta::pb;

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SeqPair {
    #[serde(default)]
    pub consumer_seq: u64,
    #[serde(default)]
    pub stream_seq: u64,
}

/// A message delivered and not acknowledged, keyed by its stream sequence.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct PendingEntry {
    /// The consumer sequence of its latest delivery.
    #[serde(rename = "Sequence")]
    pub sequence: u64,
    /// When it was delivered (Unix ns).
    #[serde(rename = "Timestamp")]
    pub timestamp: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ArchivedState {
    #[serde(default)]
    pub delivered: SeqPair,
    #[serde(default)]
    pub ack_floor: SeqPair,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pending: BTreeMap<u64, PendingEntry>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub redelivered: BTreeMap<u64, u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArchivedConsumer {
    pub config: ConsumerConfig,
    pub state: ArchivedState,
}

fn pair(p: Option<pb::SequenceInfo>, cap: u64) -> SeqPair {
    let p = p.unwrap_or_default();
    SeqPair {
        consumer_seq: p.consumer_seq,
        stream_seq: p.stream_seq.min(cap),
    }
}

/// The archived form of a persisted state; stream sequences are capped at the snapshot's
/// last sequence, as nats-server caps them.
pub fn archived(state: &pb::ConsumerState, last_seq: u64) -> ArchivedState {
    ArchivedState {
        delivered: pair(state.delivered, last_seq),
        ack_floor: pair(state.ack_floor, last_seq),
        pending: state
            .pending
            .iter()
            .filter(|p| p.stream_seq <= last_seq)
            .map(|p| {
                let entry = PendingEntry {
                    sequence: p.consumer_seq,
                    timestamp: p.timestamp_unix_ns,
                };
                (p.stream_seq, entry)
            })
            .collect(),
        redelivered: state
            .redelivered
            .iter()
            .filter(|(seq, _)| **seq <= last_seq)
            .map(|(seq, n)| (*seq, *n))
            .collect(),
    }
}

/// The persisted form of an archived state. Pending entries at or below the ack floor are
/// dropped (the persisted state never holds them); the messages' own timestamps are unknown,
/// which the consumer takes as "not checked".
pub fn persisted(state: &ArchivedState) -> pb::ConsumerState {
    let info = |p: &SeqPair| pb::SequenceInfo {
        consumer_seq: p.consumer_seq,
        stream_seq: p.stream_seq,
        last_active_unix_ns: None,
    };
    pb::ConsumerState {
        delivered: Some(info(&state.delivered)),
        ack_floor: Some(info(&state.ack_floor)),
        pending: state
            .pending
            .iter()
            .filter(|(seq, _)| **seq > state.ack_floor.stream_seq)
            .map(|(seq, p)| pb::PendingAck {
                stream_seq: *seq,
                consumer_seq: p.sequence,
                timestamp_unix_ns: p.timestamp,
                msg_ts_unix_ns: 0,
            })
            .collect(),
        redelivered: state
            .redelivered
            .iter()
            .filter(|(seq, _)| state.pending.contains_key(seq))
            .map(|(seq, n)| (*seq, *n))
            .collect(),
        skip_list: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_survives_the_archive_in_nats_servers_shape() {
        let state = pb::ConsumerState {
            delivered: Some(pb::SequenceInfo {
                consumer_seq: 7,
                stream_seq: 12,
                last_active_unix_ns: Some(5),
            }),
            ack_floor: Some(pb::SequenceInfo {
                consumer_seq: 4,
                stream_seq: 9,
                last_active_unix_ns: None,
            }),
            pending: vec![pb::PendingAck {
                stream_seq: 11,
                consumer_seq: 6,
                timestamp_unix_ns: 1_000,
                msg_ts_unix_ns: 77,
            }],
            redelivered: [(11, 2)].into_iter().collect(),
            skip_list: Vec::new(),
        };
        let archived = archived(&state, 100);
        let json = serde_json::to_value(&archived).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "delivered": {"consumer_seq": 7, "stream_seq": 12},
                "ack_floor": {"consumer_seq": 4, "stream_seq": 9},
                "pending": {"11": {"Sequence": 6, "Timestamp": 1000}},
                "redelivered": {"11": 2}
            })
        );
        let back = persisted(&serde_json::from_value(json).unwrap());
        assert_eq!(back.pending.len(), 1);
        assert_eq!(back.pending[0].consumer_seq, 6);
        assert_eq!(back.redelivered.get(&11), Some(&2));
        assert_eq!(back.ack_floor.map(|a| a.stream_seq), Some(9));
        // Capped at the snapshot's last sequence.
        assert_eq!(self::archived(&state, 10).delivered.stream_seq, 10);
        assert!(self::archived(&state, 10).pending.is_empty());
    }
}
