//! A replicated consumer's entries in its stream's Raft group (issue 20;
//! `docs/architecture.md`, "Consumers of a replicated stream").
//!
//! A consumer of a replicated stream keeps its state in the stream's own group rather than a
//! group of its own: its deliveries are made from the stream's log, so ordering its changes
//! with the stream's rounds in one log gives every replica the same position for a new
//! consumer (made from the log as it stands at that entry) and costs no second Raft group
//! per consumer. Three kinds of entry exist: a create or update (`Put`; a create that must
//! not replace another config applies only where none holds the name), the states the
//! leader's consumers reached (`States`, carrying the same prost message the catalog keeps,
//! so applying one is a catalog write, and the messages their acks consumed under
//! work-queue or interest retention), and a delete. Every kind is idempotent: openraft may
//! apply an entry again after a crash, and an absolute state written twice is the same state.

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes};

use super::consumer_config::ConsumerConfig;
use super::replica::{put_field, take_field, EntryError, RoundEntry, ENTRY_VERSION};
use super::replica_stream_ops::{StreamOp, STREAM_ENTRY};
use super::Stream;
use crate::protocol::subject::subject_matches;

/// The first byte of a consumer entry (a round's first byte is [`ENTRY_VERSION`]).
pub const CONSUMER_ENTRY: u8 = 2;

const OP_PUT: u8 = 1;
const OP_STATES: u8 = 2;
const OP_DELETE: u8 = 3;
/// A `Put` that only creates: see [`ConsumerOp::Put::only_new`].
const OP_CREATE: u8 = 4;

/// A change to a replicated stream's consumers, as its leader proposes it.
#[derive(Debug, Clone, PartialEq)]
pub enum ConsumerOp {
    /// Create consumer `name`, or give it a new config. `config` is its JSON, normalised
    /// by the leader; `created_ns` is the leader's clock, the creation time every replica
    /// records and the "now" the new consumer takes its start position with.
    Put {
        name: String,
        created_ns: u64,
        config: Bytes,
        /// A create that must not change a consumer of the name (`action: "create"`):
        /// applied only if no consumer of that name exists or it has this very config. Two
        /// such creates racing through the group then leave the first one's config, and the
        /// second is answered 10148, as its check would have answered after the first.
        only_new: bool,
    },
    /// Consumers' states (each a `pb::ConsumerState`'s bytes), as the leader's consumers
    /// reached them, and the messages their acks consumed under work-queue or interest
    /// retention, which every replica removes as it applies the entry.
    States {
        states: Vec<(String, Bytes)>,
        removed: Vec<u64>,
    },
    /// Delete consumer `name`.
    Delete { name: String },
}

/// Any entry of a stream's group.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupEntry {
    Round(RoundEntry),
    Consumers(ConsumerOp),
    Stream(StreamOp),
}

impl GroupEntry {
    /// Reads an entry of either kind by its first byte.
    pub fn decode(bytes: &Bytes) -> Result<GroupEntry, EntryError> {
        match bytes.first() {
            Some(&CONSUMER_ENTRY) => ConsumerOp::decode(bytes).map(GroupEntry::Consumers),
            Some(&STREAM_ENTRY) => StreamOp::decode(bytes).map(GroupEntry::Stream),
            Some(&ENTRY_VERSION) | None => RoundEntry::decode(bytes).map(GroupEntry::Round),
            Some(&other) => Err(EntryError::Version(other)),
        }
    }
}

impl ConsumerOp {
    /// A create or update of consumer `name` with `config`.
    pub fn put(
        name: &str,
        created_ns: u64,
        config: &ConsumerConfig,
        only_new: bool,
    ) -> Result<ConsumerOp, super::ApiError> {
        let config =
            serde_json::to_vec(config).map_err(|e| super::ApiError::store_failed(e.to_string()))?;
        Ok(ConsumerOp::Put {
            name: name.to_string(),
            created_ns,
            config: Bytes::from(config),
            only_new,
        })
    }

    /// The entry's bytes: [`CONSUMER_ENTRY`], the operation, then its fields.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![CONSUMER_ENTRY];
        match self {
            ConsumerOp::Put {
                name,
                created_ns,
                config,
                only_new,
            } => {
                out.put_u8(if *only_new { OP_CREATE } else { OP_PUT });
                put_field(&mut out, name.as_bytes());
                out.put_u64_le(*created_ns);
                put_field(&mut out, config);
            }
            ConsumerOp::States { states, removed } => {
                out.put_u8(OP_STATES);
                out.put_u32_le(u32::try_from(states.len()).unwrap_or(u32::MAX));
                for (name, state) in states {
                    put_field(&mut out, name.as_bytes());
                    put_field(&mut out, state);
                }
                out.put_u32_le(u32::try_from(removed.len()).unwrap_or(u32::MAX));
                for seq in removed {
                    out.put_u64_le(*seq);
                }
            }
            ConsumerOp::Delete { name } => {
                out.put_u8(OP_DELETE);
                put_field(&mut out, name.as_bytes());
            }
        }
        out
    }

    /// Reads an entry [`ConsumerOp::encode`] wrote; any cut or damage is an error.
    pub fn decode(bytes: &Bytes) -> Result<ConsumerOp, EntryError> {
        let mut buf = bytes.clone();
        if buf.remaining() < 2 {
            return Err(EntryError::Short);
        }
        let kind = buf.get_u8();
        if kind != CONSUMER_ENTRY {
            return Err(EntryError::Version(kind));
        }
        let op = match buf.get_u8() {
            op @ (OP_PUT | OP_CREATE) => {
                let name = take_name(&mut buf)?;
                if buf.remaining() < 8 {
                    return Err(EntryError::Short);
                }
                let created_ns = buf.get_u64_le();
                let config = take_field(&mut buf)?;
                ConsumerOp::Put {
                    name,
                    created_ns,
                    config,
                    only_new: op == OP_CREATE,
                }
            }
            OP_STATES => {
                if buf.remaining() < 4 {
                    return Err(EntryError::Short);
                }
                let count = buf.get_u32_le() as usize;
                // Each state takes at least 8 bytes: a count the bytes cannot hold is
                // refused before anything is allocated for it.
                if count > buf.remaining() / 8 {
                    return Err(EntryError::Short);
                }
                let mut states = Vec::with_capacity(count);
                for _ in 0..count {
                    let name = take_name(&mut buf)?;
                    states.push((name, take_field(&mut buf)?));
                }
                if buf.remaining() < 4 {
                    return Err(EntryError::Short);
                }
                let count = buf.get_u32_le() as usize;
                if count > buf.remaining() / 8 {
                    return Err(EntryError::Short);
                }
                let removed = (0..count).map(|_| buf.get_u64_le()).collect();
                ConsumerOp::States { states, removed }
            }
            OP_DELETE => ConsumerOp::Delete {
                name: take_name(&mut buf)?,
            },
            other => return Err(EntryError::Operation(other)),
        };
        if buf.has_remaining() {
            return Err(EntryError::Trailing(buf.remaining()));
        }
        Ok(op)
    }
}

/// How a replica of a work-queue or interest stream removes what consumers consumed. The
/// removals are decided by the leader's consumers as acks come, but made by every replica
/// when the entry carrying them applies, so that all stores change at the same point of
/// the log (a leader that removed at once and died before the entry committed would hold
/// fewer messages than its group).
#[derive(Debug, Default)]
pub struct ReplicatedRetention {
    /// Messages the leader's consumers consumed, for its next `States` entry.
    consumed: Vec<u64>,
    /// The subject filters of every replicated consumer, running here or not: a follower
    /// has no consumers running, yet must drop a message no consumer is interested in just
    /// as its leader does.
    interest: BTreeMap<String, Vec<String>>,
}

impl Stream {
    /// Makes this a replica whose retention removals wait for its group's entries.
    pub fn replicate_retention(&mut self) {
        self.replicated_retention
            .get_or_insert_with(Default::default);
    }

    /// Holds `seqs` for the group instead of removing them; false (and nothing held) for a
    /// stream that is not replicated.
    pub(super) fn defer_removals(&mut self, seqs: &[u64]) -> bool {
        match &mut self.replicated_retention {
            Some(r) => {
                r.consumed.extend_from_slice(seqs);
                true
            }
            None => false,
        }
    }

    /// The consumed messages held since the last call, in order and each once (two
    /// consumers' acks may consume one message in a round), for the leader's next entry.
    pub fn take_consumed(&mut self) -> Vec<u64> {
        let mut consumed = self
            .replicated_retention
            .as_mut()
            .map(|r| std::mem::take(&mut r.consumed))
            .unwrap_or_default();
        consumed.sort_unstable();
        consumed.dedup();
        consumed
    }

    /// Removes what a committed entry at log `index` says the consumers consumed, and
    /// records the entry as the store's checkpoint (made durable with the removals by the
    /// next sync, as a round's are).
    pub fn remove_consumed(&mut self, index: u64, seqs: &[u64]) -> crate::store::Result<()> {
        let mut removed = false;
        for seq in seqs {
            removed |= self.log.delete(*seq)?;
        }
        if removed {
            self.after_removal();
        }
        if !seqs.is_empty() {
            self.log.set_applied(index);
        }
        Ok(())
    }

    /// Records replicated consumer `name`'s filters (empty: every subject), or forgets
    /// them for `None`.
    pub fn set_consumer_interest(&mut self, name: &str, filters: Option<Vec<String>>) {
        let Some(r) = &mut self.replicated_retention else {
            return;
        };
        match filters {
            Some(filters) => r.interest.insert(name.to_string(), filters),
            None => r.interest.remove(name),
        };
    }

    /// Whether a replicated consumer, running here or not, wants messages on `subject`.
    pub(super) fn replicated_interest_in(&self, subject: &str) -> bool {
        self.replicated_retention.as_ref().is_some_and(|r| {
            r.interest.values().any(|filters| {
                filters.is_empty() || filters.iter().any(|f| subject_matches(f, subject))
            })
        })
    }
}

fn take_name(buf: &mut Bytes) -> Result<String, EntryError> {
    let field = take_field(buf)?;
    String::from_utf8(field.to_vec()).map_err(|_| EntryError::Name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops() -> Vec<ConsumerOp> {
        vec![
            ConsumerOp::Put {
                name: "C".into(),
                created_ns: 42,
                config: Bytes::from_static(br#"{"durable_name":"C"}"#),
                only_new: false,
            },
            ConsumerOp::Put {
                name: "D".into(),
                created_ns: 43,
                config: Bytes::from_static(br#"{"durable_name":"D"}"#),
                only_new: true,
            },
            ConsumerOp::States {
                states: vec![
                    ("A".into(), Bytes::from_static(b"\x0a\x02\x08\x01")),
                    ("B".into(), Bytes::new()),
                ],
                removed: vec![3, 9],
            },
            ConsumerOp::Delete { name: "C".into() },
        ]
    }

    #[test]
    fn every_op_reads_back_and_every_cut_is_refused() {
        for op in ops() {
            let bytes = Bytes::from(op.encode());
            assert_eq!(ConsumerOp::decode(&bytes), Ok(op.clone()));
            assert_eq!(
                GroupEntry::decode(&bytes),
                Ok(GroupEntry::Consumers(op.clone()))
            );
            for cut in 0..bytes.len() {
                assert!(
                    ConsumerOp::decode(&bytes.slice(..cut)).is_err(),
                    "{op:?} cut at {cut}"
                );
            }
            let mut longer = bytes.to_vec();
            longer.push(0);
            assert_eq!(
                ConsumerOp::decode(&Bytes::from(longer)),
                Err(EntryError::Trailing(1))
            );
        }
    }

    #[test]
    fn a_follower_keeps_what_its_leader_keeps_and_removes_consumed_messages_when_told() {
        use crate::jetstream::consumer::Consumer;
        use crate::jetstream::consumer_config::ConsumerConfig;
        use crate::jetstream::test_publish::msg;
        use crate::jetstream::StreamConfig;
        use crate::store::SyncPolicy;

        let config = serde_json::from_str::<StreamConfig>(
            r#"{"name":"I","subjects":["i.>"],"retention":"interest"}"#,
        )
        .expect("parses")
        .normalized()
        .expect("valid");
        let dirs = [
            tempfile::tempdir().expect("dir"),
            tempfile::tempdir().expect("dir"),
        ];
        let open = |dir: &tempfile::TempDir| {
            let mut stream =
                Stream::open(dir.path(), config.clone(), 0, SyncPolicy::Always, 0).expect("opens");
            stream.replicate_retention();
            stream.set_consumer_interest("C", Some(vec!["i.a".into()]));
            stream
        };
        let (mut leader, mut follower) = (open(&dirs[0]), open(&dirs[1]));
        // Only the leader runs the consumer; the follower knows its filter.
        let consumer_config = serde_json::from_str::<ConsumerConfig>(
            r#"{"durable_name":"C","filter_subject":"i.a","ack_policy":"explicit"}"#,
        )
        .expect("parses");
        let consumer = Consumer::new("I", "C", consumer_config, 0, leader.log(), 0);
        leader.insert_consumer(consumer);
        let round = RoundEntry {
            now_ns: 1,
            publishes: vec![
                msg("i.a", &[], "1"),
                msg("i.b", &[], "2"),
                msg("i.a", &[], "3"),
            ],
        };
        for stream in [&mut leader, &mut follower] {
            let mut out = Vec::new();
            let (acks, _) = stream.apply_round(1, &round);
            let appended: Vec<(u64, &str)> = acks
                .iter()
                .zip(["i.a", "i.b", "i.a"])
                .filter_map(|(ack, subject)| ack.stored_seq().map(|seq| (seq, subject)))
                .collect();
            stream.after_append(&appended, false, 1, &|_| false, &mut out);
            assert_eq!(
                stream.log().msgs(),
                2,
                "the message nobody wants is dropped"
            );
        }
        // The leader holds what its consumers consumed until its group's entry says so.
        assert!(leader.defer_removals(&[1]));
        assert_eq!(leader.log().msgs(), 2);
        let consumed = leader.take_consumed();
        assert_eq!(consumed, [1]);
        assert!(leader.take_consumed().is_empty());
        for stream in [&mut leader, &mut follower] {
            stream.remove_consumed(7, &consumed).expect("removed");
            stream
                .remove_consumed(8, &consumed)
                .expect("again: nothing");
            assert_eq!(stream.log().msgs(), 1);
        }
        // Forgotten interest: nothing new is kept, on either.
        follower.set_consumer_interest("C", None);
        assert!(!follower.replicated_interest_in("i.a"));
    }

    #[test]
    fn rounds_and_unknown_kinds_are_told_apart() {
        let round = RoundEntry {
            now_ns: 7,
            publishes: Vec::new(),
        };
        let bytes = Bytes::from(round.encode());
        assert_eq!(GroupEntry::decode(&bytes), Ok(GroupEntry::Round(round)));
        assert_eq!(
            GroupEntry::decode(&Bytes::from_static(&[9, 0, 0])),
            Err(EntryError::Version(9))
        );
        assert_eq!(
            ConsumerOp::decode(&Bytes::from_static(&[CONSUMER_ENTRY, 7])),
            Err(EntryError::Operation(7))
        );
        let bad_name = [CONSUMER_ENTRY, OP_DELETE, 1, 0, 0, 0, 0xff];
        assert_eq!(
            ConsumerOp::decode(&Bytes::copy_from_slice(&bad_name)),
            Err(EntryError::Name)
        );
    }
}
