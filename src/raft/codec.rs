//! A binary encoding of the Raft messages that carry data: log entries (as the log files keep
//! them) and AppendEntries requests (as they cross the routes).
//!
//! A stream group's entries are whole actor rounds of publishes. In JSON their bytes went as
//! base64 inside openraft's serde types, encoded on the leader, decoded and re-encoded by each
//! follower for its log; here a normal entry's command is its raw bytes after a fixed header.
//! Membership entries are rare and keep openraft's JSON inside the binary frame. Integers are
//! little-endian.

use openraft::raft::AppendEntriesRequest;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Vote};

use super::types::{Command, JetlogRaft, NodeId};

/// First byte of a binary AppendEntries request. openraft's JSON starts with `{`, so a
/// receiver tells the two apart by it.
pub const APPEND_MAGIC: u8 = 0xAE;
/// Version of the AppendEntries frame after the magic byte.
const APPEND_VERSION: u8 = 1;

const KIND_BLANK: u8 = 0;
const KIND_NORMAL: u8 = 1;
const KIND_MEMBERSHIP: u8 = 2;

/// Bytes of an entry's header: kind, term, leader node, index.
pub const ENTRY_HEADER_BYTES: usize = 1 + 8 + 8 + 8;

/// Why bytes did not decode.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("raft frame ends early: wanted {wanted} more bytes at offset {at}")]
    Short { at: usize, wanted: usize },
    #[error("unknown raft entry kind {0}")]
    Kind(u8),
    #[error("not a binary append-entries frame (magic {magic:#04x}, version {version})")]
    Frame { magic: u8, version: u8 },
    #[error("membership entry: {0}")]
    Membership(#[from] serde_json::Error),
    #[error("{0} trailing bytes after the last entry")]
    Trailing(usize),
}

/// Appends the encoding of `entry` to `out`.
pub fn encode_entry(entry: &Entry<JetlogRaft>, out: &mut Vec<u8>) {
    let kind = match &entry.payload {
        EntryPayload::Blank => KIND_BLANK,
        EntryPayload::Normal(_) => KIND_NORMAL,
        EntryPayload::Membership(_) => KIND_MEMBERSHIP,
    };
    out.push(kind);
    put_log_id(out, &entry.log_id);
    match &entry.payload {
        EntryPayload::Blank => {}
        EntryPayload::Normal(command) => out.extend_from_slice(&command.0),
        EntryPayload::Membership(membership) => {
            // Encoding openraft's own serde type into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, membership);
        }
    }
}

/// The index of the encoded entry in `bytes`, read from its header without decoding the rest.
pub fn entry_index(bytes: &[u8]) -> Result<u64, CodecError> {
    let mut reader = Reader { bytes, at: 17 };
    reader.u64()
}

/// Decodes one entry that fills all of `bytes`.
pub fn decode_entry(bytes: &[u8]) -> Result<Entry<JetlogRaft>, CodecError> {
    let mut reader = Reader { bytes, at: 0 };
    let kind = reader.u8()?;
    let log_id = reader.log_id()?;
    let rest = reader.rest();
    let payload = match kind {
        KIND_BLANK if rest.is_empty() => EntryPayload::Blank,
        KIND_BLANK => return Err(CodecError::Trailing(rest.len())),
        KIND_NORMAL => EntryPayload::Normal(Command(rest.to_vec())),
        KIND_MEMBERSHIP => EntryPayload::Membership(serde_json::from_slice(rest)?),
        other => return Err(CodecError::Kind(other)),
    };
    Ok(Entry { log_id, payload })
}

/// Encodes an AppendEntries request.
pub fn encode_append(request: &AppendEntriesRequest<JetlogRaft>) -> Vec<u8> {
    let size: usize = request
        .entries
        .iter()
        .map(|e| match &e.payload {
            EntryPayload::Normal(c) => c.0.len(),
            _ => 64,
        })
        .sum();
    let mut out = Vec::with_capacity(64 + size + request.entries.len() * (ENTRY_HEADER_BYTES + 4));
    out.push(APPEND_MAGIC);
    out.push(APPEND_VERSION);
    out.extend_from_slice(&request.vote.leader_id.term.to_le_bytes());
    out.extend_from_slice(&request.vote.leader_id.node_id.to_le_bytes());
    out.push(u8::from(request.vote.committed));
    put_optional_log_id(&mut out, request.prev_log_id.as_ref());
    put_optional_log_id(&mut out, request.leader_commit.as_ref());
    out.extend_from_slice(&(request.entries.len() as u32).to_le_bytes());
    for e in &request.entries {
        // Encoded in place; its length word is filled in after.
        let at = out.len();
        out.extend_from_slice(&[0; 4]);
        encode_entry(e, &mut out);
        let len = (out.len() - at - 4) as u32;
        out[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }
    out
}

/// Decodes an AppendEntries request made by [`encode_append`].
pub fn decode_append(bytes: &[u8]) -> Result<AppendEntriesRequest<JetlogRaft>, CodecError> {
    let mut reader = Reader { bytes, at: 0 };
    let (magic, version) = (reader.u8()?, reader.u8()?);
    if magic != APPEND_MAGIC || version != APPEND_VERSION {
        return Err(CodecError::Frame { magic, version });
    }
    let term = reader.u64()?;
    let node = reader.u64()?;
    let vote = if reader.u8()? != 0 {
        Vote::new_committed(term, node)
    } else {
        Vote::new(term, node)
    };
    let prev_log_id = reader.optional_log_id()?;
    let leader_commit = reader.optional_log_id()?;
    let count = reader.u32()? as usize;
    // Bounded by the frame's length: every entry takes at least its length word.
    let mut entries = Vec::with_capacity(count.min(bytes.len() / 4));
    for _ in 0..count {
        let len = reader.u32()? as usize;
        entries.push(decode_entry(reader.take(len)?)?);
    }
    if !reader.rest().is_empty() {
        return Err(CodecError::Trailing(reader.rest().len()));
    }
    Ok(AppendEntriesRequest {
        vote,
        prev_log_id,
        entries,
        leader_commit,
    })
}

fn put_log_id(out: &mut Vec<u8>, id: &LogId<NodeId>) {
    out.extend_from_slice(&id.leader_id.term.to_le_bytes());
    out.extend_from_slice(&id.leader_id.node_id.to_le_bytes());
    out.extend_from_slice(&id.index.to_le_bytes());
}

fn put_optional_log_id(out: &mut Vec<u8>, id: Option<&LogId<NodeId>>) {
    match id {
        None => out.push(0),
        Some(id) => {
            out.push(1);
            put_log_id(out, id);
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or(CodecError::Short {
                at: self.at,
                wanted: n,
            })?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn rest(&self) -> &'a [u8] {
        &self.bytes[self.at.min(self.bytes.len())..]
    }

    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, CodecError> {
        let mut word = [0u8; 4];
        word.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(word))
    }

    fn u64(&mut self) -> Result<u64, CodecError> {
        let mut word = [0u8; 8];
        word.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(word))
    }

    fn log_id(&mut self) -> Result<LogId<NodeId>, CodecError> {
        let term = self.u64()?;
        let node = self.u64()?;
        let index = self.u64()?;
        Ok(LogId::new(CommittedLeaderId::new(term, node), index))
    }

    fn optional_log_id(&mut self) -> Result<Option<LogId<NodeId>>, CodecError> {
        match self.u8()? {
            0 => Ok(None),
            _ => self.log_id().map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use openraft::{BasicNode, Membership};

    use super::*;

    fn id(term: u64, node: u64, index: u64) -> LogId<NodeId> {
        LogId::new(CommittedLeaderId::new(term, node), index)
    }

    fn all_kinds() -> Vec<Entry<JetlogRaft>> {
        let nodes: BTreeMap<NodeId, BasicNode> =
            [(1, BasicNode::new("a")), (2, BasicNode::new("b"))].into();
        let membership = Membership::new(vec![BTreeSet::from([1, 2])], nodes);
        vec![
            Entry {
                log_id: id(1, 7, 1),
                payload: EntryPayload::Blank,
            },
            Entry {
                log_id: id(2, 7, 2),
                payload: EntryPayload::Normal(Command(vec![0, 1, 255])),
            },
            Entry {
                log_id: id(2, 7, 3),
                payload: EntryPayload::Normal(Command(Vec::new())),
            },
            Entry {
                log_id: id(3, 9, u64::MAX),
                payload: EntryPayload::Membership(membership),
            },
        ]
    }

    #[test]
    fn every_entry_kind_round_trips() {
        for entry in all_kinds() {
            let mut bytes = Vec::new();
            encode_entry(&entry, &mut bytes);
            assert_eq!(entry_index(&bytes).expect("index"), entry.log_id.index);
            assert_eq!(decode_entry(&bytes).expect("decode"), entry);
        }
    }

    #[test]
    fn append_requests_round_trip() {
        let request = AppendEntriesRequest {
            vote: Vote::new_committed(5, 9),
            prev_log_id: Some(id(4, 9, 10)),
            entries: all_kinds(),
            leader_commit: None,
        };
        let bytes = encode_append(&request);
        assert_eq!(bytes[0], APPEND_MAGIC);
        let back = decode_append(&bytes).expect("decode");
        assert_eq!(back.vote, request.vote);
        assert_eq!(back.prev_log_id, request.prev_log_id);
        assert_eq!(back.leader_commit, request.leader_commit);
        assert_eq!(back.entries, request.entries);
    }

    #[test]
    fn damaged_frames_are_errors_not_panics() {
        let request = AppendEntriesRequest {
            vote: Vote::new(1, 1),
            prev_log_id: None,
            entries: all_kinds(),
            leader_commit: Some(id(1, 1, 1)),
        };
        let bytes = encode_append(&request);
        for cut in 0..bytes.len() {
            assert!(decode_append(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(matches!(
            decode_append(&extra),
            Err(CodecError::Trailing(1))
        ));
        let mut huge_count = bytes;
        let count_at = 2 + 8 + 8 + 1 + 1 + 1 + 24;
        huge_count[count_at..count_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_append(&huge_count).is_err());
        assert!(matches!(decode_entry(&[9; 30]), Err(CodecError::Kind(9))));
    }
}
