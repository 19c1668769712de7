//! A replicated stream's state machine: what an entry of the stream's Raft group holds, how
//! every replica applies it, and how a replica's store is brought back to what its group
//! says it applied.
//!
//! **Inputs, not outputs** (`docs/jetstream-cluster-facts.md` §9, points 2 and 7). An entry
//! holds one actor round's publishes as they came off the wire and the leader's clock at the
//! round. Every replica, the leader included, runs the same [`Stream::process`] on them with
//! that clock, so duplicate windows, expectations, rollups and limits come out the same
//! everywhere, and the PubAcks the leader sends are the ones its own apply produced. Nothing
//! in the apply may read the local clock or anything else that differs between servers.
//!
//! **Crash replay.** Raft re-applies the entries after the last one a replica says it
//! applied, so that must be exactly what its store reflects. Each apply records its
//! [`Checkpoint`] in the store (`Log::set_applied`), and a store sync (at most every
//! [`REPLICA_SYNC_EVERY`], and before every snapshot) writes it in the same atomic file as
//! the removals the entries up to it caused, after the segments are durable. When a replica
//! opens, [`rewind_store`] reads the durable checkpoint and cuts off what entries after it
//! appended, so they apply again to exactly the state they first met. The caller reports
//! the checkpoint's index to Raft as the last applied.

use std::path::Path;

use bytes::{Buf, BufMut, Bytes};

use super::api_types::PubAck;
use super::stream::{log_config, store_error};
use super::stream_config::{Storage, StreamConfig};
use super::{ApiError, Stream};
use crate::protocol::Publish;
use crate::store::{Log, SyncPolicy};

/// How stale a replica's store may get before an apply makes it durable (see
/// [`Stream::apply_round`]).
pub const REPLICA_SYNC_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The format of an encoded [`RoundEntry`]; a replica refuses any other.
pub const ENTRY_VERSION: u8 = 1;

const HAS_REPLY: u8 = 1;
const HAS_HEADERS: u8 = 2;

/// Why an entry's bytes could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("replicated stream entry is cut short")]
    Short,
    #[error("replicated stream entry has format {0}, this server reads format {ENTRY_VERSION}")]
    Version(u8),
    #[error("replicated stream entry has {0} bytes after its end")]
    Trailing(usize),
    #[error("replicated consumer entry has unknown operation {0}")]
    Operation(u8),
    #[error("replicated consumer entry names a consumer in bytes that are not UTF-8")]
    Name,
}

/// One actor round of a replicated stream, as its leader proposes it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RoundEntry {
    /// The leader's clock when it took the round: the only "now" any replica's apply uses.
    pub now_ns: u64,
    /// The round's publishes, in the order the leader received them.
    pub publishes: Vec<Publish>,
}

impl RoundEntry {
    /// The entry's bytes: a version, the clock, then each publish's subject, reply, headers
    /// and payload, length-prefixed.
    pub fn encode(&self) -> Vec<u8> {
        let body: usize = self
            .publishes
            .iter()
            .map(|p| {
                17 + p.subject.len()
                    + p.reply.as_ref().map_or(0, Bytes::len)
                    + p.headers.as_ref().map_or(0, Bytes::len)
                    + p.payload.len()
            })
            .sum();
        let mut out = Vec::with_capacity(13 + body);
        out.put_u8(ENTRY_VERSION);
        out.put_u64_le(self.now_ns);
        out.put_u32_le(u32::try_from(self.publishes.len()).unwrap_or(u32::MAX));
        for p in &self.publishes {
            let flags = if p.reply.is_some() { HAS_REPLY } else { 0 }
                | if p.headers.is_some() { HAS_HEADERS } else { 0 };
            out.put_u8(flags);
            put_field(&mut out, &p.subject);
            if let Some(reply) = &p.reply {
                put_field(&mut out, reply);
            }
            if let Some(headers) = &p.headers {
                put_field(&mut out, headers);
            }
            put_field(&mut out, &p.payload);
        }
        out
    }

    /// Reads an entry; the publishes share `bytes` rather than copying out of it.
    pub fn decode(bytes: &Bytes) -> Result<RoundEntry, EntryError> {
        let mut buf = bytes.clone();
        if buf.remaining() < 13 {
            return Err(EntryError::Short);
        }
        let version = buf.get_u8();
        if version != ENTRY_VERSION {
            return Err(EntryError::Version(version));
        }
        let now_ns = buf.get_u64_le();
        let count = buf.get_u32_le() as usize;
        // Each publish takes at least 9 bytes, so a count the bytes cannot hold is refused
        // before anything is allocated for it.
        if count > buf.remaining() / 9 {
            return Err(EntryError::Short);
        }
        let mut publishes = Vec::with_capacity(count);
        for _ in 0..count {
            if !buf.has_remaining() {
                return Err(EntryError::Short);
            }
            let flags = buf.get_u8();
            let subject = take_field(&mut buf)?;
            let reply = (flags & HAS_REPLY != 0)
                .then(|| take_field(&mut buf))
                .transpose()?;
            let headers = (flags & HAS_HEADERS != 0)
                .then(|| take_field(&mut buf))
                .transpose()?;
            let payload = take_field(&mut buf)?;
            publishes.push(Publish {
                subject,
                reply,
                headers,
                payload,
            });
        }
        if buf.has_remaining() {
            return Err(EntryError::Trailing(buf.remaining()));
        }
        Ok(RoundEntry { now_ns, publishes })
    }
}

pub(super) fn put_field(out: &mut Vec<u8>, field: &[u8]) {
    out.put_u32_le(u32::try_from(field.len()).unwrap_or(u32::MAX));
    out.put_slice(field);
}

pub(super) fn take_field(buf: &mut Bytes) -> Result<Bytes, EntryError> {
    if buf.remaining() < 4 {
        return Err(EntryError::Short);
    }
    let len = buf.get_u32_le() as usize;
    if buf.remaining() < len {
        return Err(EntryError::Short);
    }
    Ok(buf.split_to(len))
}

/// Where a replica's store stands in its group's log: the last entry applied and the
/// stream's last sequence after it (as the store keeps it).
pub type Checkpoint = crate::store::meta::Applied;

impl Stream {
    /// Applies one committed entry at log `index`: the round's publishes with the entry's
    /// clock, and the checkpoint recorded. Returns the PubAcks (meaningful on the leader,
    /// which sends them) and the checkpoint.
    ///
    /// The store is made durable at most every [`REPLICA_SYNC_EVERY`], not per entry: a
    /// quorum's Raft logs hold the entry on disk before it commits, which is what a PubAck
    /// promises, and a replica that crashes replays from its store's last durable
    /// checkpoint (the log keeps every entry after it: a snapshot syncs the store first).
    /// If a sync fails, every ack that named a stored message becomes that error.
    pub fn apply_round(&mut self, index: u64, entry: &RoundEntry) -> (Vec<PubAck>, Checkpoint) {
        let mut acks = self.process(&entry.publishes, entry.now_ns);
        self.log_mut().set_applied(index);
        let synced = self
            .log_mut()
            .sync_if_older(REPLICA_SYNC_EVERY, std::time::Instant::now());
        if let Err(err) = synced.map_err(store_error) {
            for ack in &mut acks {
                if ack.stored_seq().is_some() || matches!(ack, PubAck::Batch { .. }) {
                    *ack = PubAck::Failed(err.clone());
                }
            }
        }
        let checkpoint = Checkpoint {
            index,
            last_seq: self.log().last_seq(),
        };
        (acks, checkpoint)
    }
}

/// Brings a file stream's store in `dir` back to its checkpoint before the stream opens,
/// and returns the checkpoint: what an entry appended after it (and was interrupted before
/// its checkpoint was durable) is cut off. A memory stream starts from nothing; a new store
/// is given the empty checkpoint at once, so that a crash inside its first entry is cut
/// back like any other; a store holding messages that no entry accounts for is refused
/// rather than served as the group's.
pub fn rewind_store(dir: &Path, config: &StreamConfig) -> Result<Checkpoint, ApiError> {
    if config.storage == Storage::Memory {
        return Ok(Checkpoint::default());
    }
    let mut log = Log::open(dir, log_config(config, SyncPolicy::Always)).map_err(store_error)?;
    let checkpoint = match log.applied() {
        Some(checkpoint) => checkpoint,
        None if log.last_seq() == 0 => {
            log.set_applied(0);
            Checkpoint::default()
        }
        None => {
            return Err(ApiError::store_failed(format!(
                "stream store holds sequences up to {} that no replicated entry accounts for",
                log.last_seq()
            )))
        }
    };
    log.truncate_after(checkpoint.last_seq)
        .map_err(store_error)?;
    log.close().map_err(store_error)?;
    Ok(checkpoint)
}

#[cfg(test)]
#[path = "replica_tests.rs"]
pub(crate) mod tests;
