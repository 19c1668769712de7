//! A replicated consumer's entries in its stream's Raft group (issue 20;
//! `docs/architecture.md`, "Consumers of a replicated stream").
//!
//! A consumer of a replicated stream keeps its state in the stream's own group rather than a
//! group of its own: its deliveries are made from the stream's log, so ordering its changes
//! with the stream's rounds in one log gives every replica the same position for a new
//! consumer (made from the log as it stands at that entry) and costs no second Raft group
//! per consumer. Three kinds of entry exist: a create or update (`Put`), the states the
//! leader's consumers reached (`States`, carrying the same prost message the catalog keeps,
//! so applying one is a catalog write), and a delete. Every kind is idempotent: openraft may
//! apply an entry again after a crash, and an absolute state written twice is the same state.

use bytes::{Buf, BufMut, Bytes};

use super::replica::{put_field, take_field, EntryError, RoundEntry, ENTRY_VERSION};

/// The first byte of a consumer entry (a round's first byte is [`ENTRY_VERSION`]).
pub const CONSUMER_ENTRY: u8 = 2;

const OP_PUT: u8 = 1;
const OP_STATES: u8 = 2;
const OP_DELETE: u8 = 3;

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
    },
    /// Consumers' states (each a `pb::ConsumerState`'s bytes), as the leader's consumers
    /// reached them.
    States(Vec<(String, Bytes)>),
    /// Delete consumer `name`.
    Delete { name: String },
}

/// Any entry of a stream's group.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupEntry {
    Round(RoundEntry),
    Consumers(ConsumerOp),
}

impl GroupEntry {
    /// Reads an entry of either kind by its first byte.
    pub fn decode(bytes: &Bytes) -> Result<GroupEntry, EntryError> {
        match bytes.first() {
            Some(&CONSUMER_ENTRY) => ConsumerOp::decode(bytes).map(GroupEntry::Consumers),
            Some(&ENTRY_VERSION) | None => RoundEntry::decode(bytes).map(GroupEntry::Round),
            Some(&other) => Err(EntryError::Version(other)),
        }
    }
}

impl ConsumerOp {
    /// The entry's bytes: [`CONSUMER_ENTRY`], the operation, then its fields.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![CONSUMER_ENTRY];
        match self {
            ConsumerOp::Put {
                name,
                created_ns,
                config,
            } => {
                out.put_u8(OP_PUT);
                put_field(&mut out, name.as_bytes());
                out.put_u64_le(*created_ns);
                put_field(&mut out, config);
            }
            ConsumerOp::States(states) => {
                out.put_u8(OP_STATES);
                out.put_u32_le(u32::try_from(states.len()).unwrap_or(u32::MAX));
                for (name, state) in states {
                    put_field(&mut out, name.as_bytes());
                    put_field(&mut out, state);
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
            OP_PUT => {
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
                ConsumerOp::States(states)
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
            },
            ConsumerOp::States(vec![
                ("A".into(), Bytes::from_static(b"\x0a\x02\x08\x01")),
                ("B".into(), Bytes::new()),
            ]),
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
