//! A replicated stream's own changes as entries of its Raft group (issue 20): a purge, a
//! message delete and a new config.
//!
//! Each of them changes the store, so, like a round of publishes, every replica makes it
//! when the entry applies, at the same point of the log: a purge made by the leader alone
//! while a round was still in flight would leave its followers holding messages it does
//! not, and a new `max_msgs` or `discard` applied at a different point on each replica
//! would make the next rounds store different messages. The leader checks the request
//! first (sealed, `deny_purge`, the config's update rules) and answers it with what its
//! own apply did (see [`StreamOpOutcome`]).

use bytes::{Buf, BufMut, Bytes};

use super::replica::{put_field, take_field, EntryError};
use crate::store::PurgeRequest;

/// The first byte of a stream entry (a round's is `ENTRY_VERSION`, a consumer entry's
/// `CONSUMER_ENTRY`).
pub const STREAM_ENTRY: u8 = 3;

const OP_PURGE: u8 = 1;
const OP_DELETE_MSG: u8 = 2;
const OP_UPDATE: u8 = 3;

const HAS_FILTER: u8 = 1;
const HAS_UP_TO: u8 = 2;
const HAS_KEEP: u8 = 4;

/// A change to a replicated stream itself, as its leader proposes it.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamOp {
    /// The stream purge API's request, as the leader checked it.
    Purge(PurgeRequest),
    /// The message delete API's request.
    DeleteMsg { seq: u64 },
    /// A new config: its JSON, as the meta group's catalog holds it.
    Update { config: Bytes },
}

impl StreamOp {
    /// The entry's bytes: [`STREAM_ENTRY`], the operation, then its fields.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![STREAM_ENTRY];
        match self {
            StreamOp::Purge(request) => {
                out.put_u8(OP_PURGE);
                let flags = [
                    (request.filter.is_some(), HAS_FILTER),
                    (request.up_to_seq.is_some(), HAS_UP_TO),
                    (request.keep.is_some(), HAS_KEEP),
                ]
                .iter()
                .filter(|(set, _)| *set)
                .fold(0, |flags, (_, flag)| flags | flag);
                out.put_u8(flags);
                if let Some(filter) = &request.filter {
                    put_field(&mut out, filter.as_bytes());
                }
                if let Some(seq) = request.up_to_seq {
                    out.put_u64_le(seq);
                }
                if let Some(keep) = request.keep {
                    out.put_u64_le(keep);
                }
            }
            StreamOp::DeleteMsg { seq } => {
                out.put_u8(OP_DELETE_MSG);
                out.put_u64_le(*seq);
            }
            StreamOp::Update { config } => {
                out.put_u8(OP_UPDATE);
                put_field(&mut out, config);
            }
        }
        out
    }

    /// Reads an entry [`StreamOp::encode`] wrote; any cut or damage is an error.
    pub fn decode(bytes: &Bytes) -> Result<StreamOp, EntryError> {
        let mut buf = bytes.clone();
        if buf.remaining() < 2 {
            return Err(EntryError::Short);
        }
        let kind = buf.get_u8();
        if kind != STREAM_ENTRY {
            return Err(EntryError::Version(kind));
        }
        let op = match buf.get_u8() {
            OP_PURGE => {
                if !buf.has_remaining() {
                    return Err(EntryError::Short);
                }
                let flags = buf.get_u8();
                let filter = match flags & HAS_FILTER {
                    0 => None,
                    _ => Some(take_text(&mut buf)?),
                };
                let up_to_seq = take_u64_if(&mut buf, flags & HAS_UP_TO != 0)?;
                let keep = take_u64_if(&mut buf, flags & HAS_KEEP != 0)?;
                StreamOp::Purge(PurgeRequest {
                    filter,
                    up_to_seq,
                    keep,
                })
            }
            OP_DELETE_MSG => StreamOp::DeleteMsg {
                seq: take_u64_if(&mut buf, true)?.unwrap_or_default(),
            },
            OP_UPDATE => StreamOp::Update {
                config: take_field(&mut buf)?,
            },
            other => return Err(EntryError::Operation(other)),
        };
        if buf.has_remaining() {
            return Err(EntryError::Trailing(buf.remaining()));
        }
        Ok(op)
    }
}

fn take_text(buf: &mut Bytes) -> Result<String, EntryError> {
    let field = take_field(buf)?;
    String::from_utf8(field.to_vec()).map_err(|_| EntryError::Name)
}

fn take_u64_if(buf: &mut Bytes, present: bool) -> Result<Option<u64>, EntryError> {
    match (present, buf.remaining() >= 8) {
        (false, _) => Ok(None),
        (true, true) => Ok(Some(buf.get_u64_le())),
        (true, false) => Err(EntryError::Short),
    }
}

/// What a replica's apply of a [`StreamOp`] did, as the machine hands it to the leader
/// that proposed it (the same on every replica).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamOpOutcome {
    /// A purge removed this many messages.
    Purged(u64),
    /// A delete found its message (false: there was none at that sequence).
    Deleted(bool),
    /// A config was applied.
    Updated,
    /// The store or the catalog refused the change; the replica logged why.
    Failed,
}

impl StreamOpOutcome {
    pub fn encode(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(9);
        match self {
            StreamOpOutcome::Purged(n) => {
                out.put_u8(1);
                out.put_u64_le(n);
            }
            StreamOpOutcome::Deleted(found) => {
                out.put_u8(2);
                out.put_u8(u8::from(found));
            }
            StreamOpOutcome::Updated => out.put_u8(3),
            StreamOpOutcome::Failed => out.put_u8(4),
        }
        out
    }

    /// Reads an outcome back; anything unreadable is [`StreamOpOutcome::Failed`].
    pub fn decode(mut bytes: &[u8]) -> StreamOpOutcome {
        match (bytes.first().copied(), bytes.len()) {
            (Some(1), 9) => {
                bytes.advance(1);
                StreamOpOutcome::Purged(bytes.get_u64_le())
            }
            (Some(2), 2) => StreamOpOutcome::Deleted(bytes[1] != 0),
            (Some(3), 1) => StreamOpOutcome::Updated,
            _ => StreamOpOutcome::Failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops() -> Vec<StreamOp> {
        vec![
            StreamOp::Purge(PurgeRequest::default()),
            StreamOp::Purge(PurgeRequest {
                filter: Some("orders.>".into()),
                up_to_seq: Some(7),
                keep: None,
            }),
            StreamOp::Purge(PurgeRequest {
                filter: None,
                up_to_seq: None,
                keep: Some(3),
            }),
            StreamOp::DeleteMsg { seq: 42 },
            StreamOp::Update {
                config: Bytes::from_static(br#"{"name":"S","max_msgs":5}"#),
            },
        ]
    }

    #[test]
    fn every_op_reads_back_as_written() {
        for op in ops() {
            let bytes = Bytes::from(op.encode());
            assert_eq!(StreamOp::decode(&bytes), Ok(op));
        }
    }

    #[test]
    fn a_cut_or_lengthened_entry_is_refused() {
        for op in ops() {
            let bytes = op.encode();
            for cut in 0..bytes.len() {
                let short = Bytes::copy_from_slice(&bytes[..cut]);
                assert!(StreamOp::decode(&short).is_err(), "{op:?} cut at {cut}");
            }
            let mut long = bytes.clone();
            long.push(0);
            assert_eq!(
                StreamOp::decode(&Bytes::from(long)),
                Err(EntryError::Trailing(1))
            );
        }
        let unknown = Bytes::from_static(&[STREAM_ENTRY, 9]);
        assert_eq!(StreamOp::decode(&unknown), Err(EntryError::Operation(9)));
    }

    #[test]
    fn outcomes_read_back_and_garbage_is_a_failure() {
        for outcome in [
            StreamOpOutcome::Purged(0),
            StreamOpOutcome::Purged(u64::MAX),
            StreamOpOutcome::Deleted(true),
            StreamOpOutcome::Deleted(false),
            StreamOpOutcome::Updated,
            StreamOpOutcome::Failed,
        ] {
            assert_eq!(StreamOpOutcome::decode(&outcome.encode()), outcome);
        }
        assert_eq!(StreamOpOutcome::decode(&[]), StreamOpOutcome::Failed);
        assert_eq!(StreamOpOutcome::decode(&[1, 2]), StreamOpOutcome::Failed);
    }
}
