//! A replicated stream as the state machine of its Raft group: openraft hands each
//! committed entry to [`ReplicaMachine`], which applies it to the replica's stream once and
//! answers with the PubAcks, ready to send, for the leader that proposed it.
//!
//! openraft re-applies the log from its last snapshot every time a member starts; the
//! machine skips every entry at or below the checkpoint its store was brought back to
//! ([`super::replica::rewind_store`]), since those are in the store already. Consumer
//! entries after the checkpoint apply again: each is idempotent (see `replica_consumers`).
//! A snapshot is small ([`super::replica_snapshot`]); a member sent one because it lacks
//! entries the group no longer keeps catches up through its host from a peer's store.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::api_types::PubAck;
use super::replica::{Checkpoint, RoundEntry};
use super::replica_consumers::{ConsumerOp, GroupEntry};
use super::replica_snapshot::StreamSnapshot;
use super::replica_stream_ops::{StreamOp, StreamOpOutcome};
use crate::raft::machine::{InstallFuture, Machine};

/// Where a replica's stream lives and what applying an entry to it involves beyond the
/// stream itself (on a server: the consumers' deliveries, the limits accounting).
pub trait ReplicaHost: Send + Sync + 'static {
    /// Applies the entry at `index` to the stream (see `Stream::apply_round`).
    fn apply_round(&self, index: u64, entry: &RoundEntry) -> Vec<PubAck>;

    /// Applies a change to the stream's replicated consumers (see `replica_consumers`).
    fn apply_consumers(&self, index: u64, op: &ConsumerOp);

    /// Applies a purge, message delete or new config (see `replica_stream_ops`).
    fn apply_stream_op(&self, index: u64, op: &StreamOp) -> StreamOpOutcome;

    /// The stream and its replicated consumers as applied so far.
    fn snapshot(&self) -> Result<StreamSnapshot, String>;

    /// Brings the replica to `snapshot`, taken at log `index`: its store from a peer's,
    /// its consumers from the snapshot.
    fn catch_up(
        &self,
        index: u64,
        snapshot: StreamSnapshot,
    ) -> futures::future::BoxFuture<'static, Result<(), String>>;
}

/// A stream's replica, driven by its group.
pub struct ReplicaMachine<H> {
    host: H,
    /// The last entry in the store.
    applied: u64,
    /// What every PubAck of the stream says before its sequence (see `PubAck::write_json`).
    stream_json: String,
}

impl<H: ReplicaHost> ReplicaMachine<H> {
    /// A machine over a stream whose store `rewind_store` brought back to `checkpoint`.
    pub fn new(host: H, checkpoint: Checkpoint, stream_json: String) -> Self {
        Self {
            host,
            applied: checkpoint.index,
            stream_json,
        }
    }
}

impl<H: ReplicaHost> Machine for ReplicaMachine<H> {
    fn apply(&mut self, command: &[u8]) -> Vec<u8> {
        self.apply_at(self.applied + 1, command)
    }

    fn apply_at(&mut self, index: u64, command: &[u8]) -> Vec<u8> {
        if index <= self.applied {
            return Vec::new();
        }
        self.applied = index;
        match GroupEntry::decode(&Bytes::copy_from_slice(command)) {
            Ok(GroupEntry::Round(entry)) => {
                encode_acks(&self.host.apply_round(index, &entry), &self.stream_json)
            }
            Ok(GroupEntry::Consumers(op)) => {
                self.host.apply_consumers(index, &op);
                Vec::new()
            }
            Ok(GroupEntry::Stream(op)) => self.host.apply_stream_op(index, &op).encode(),
            // Every replica reads the same bytes the same way: none applies it.
            Err(e) => {
                tracing::error!(index, error = %e, "replicated stream entry not applied");
                Vec::new()
            }
        }
    }

    /// An empty snapshot if the store cannot be read: a member sent it refuses it, and
    /// the leader tries again with the next one.
    fn snapshot(&self) -> Vec<u8> {
        match self.host.snapshot() {
            Ok(snapshot) => snapshot.encode(),
            Err(e) => {
                tracing::error!(error = %e, "replicated stream snapshot not taken");
                Vec::new()
            }
        }
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        self.restore_at(0, snapshot)
    }

    /// At open: every snapshot the group keeps was taken of entries this store had made
    /// durable, so the store is at or past the snapshot's own checkpoint (the entries
    /// after that one, up to the snapshot's index, did not touch the store); a store
    /// behind it lost what it had.
    fn restore_at(&mut self, index: u64, snapshot: &[u8]) -> Result<(), String> {
        let snapshot = StreamSnapshot::decode(snapshot).map_err(|e| e.to_string())?;
        match snapshot.store_index <= self.applied {
            true => {
                self.applied = self.applied.max(index);
                Ok(())
            }
            false => Err(format!(
                "the stream's store is at entry {} of its group, behind the group's snapshot at {}",
                self.applied, snapshot.store_index
            )),
        }
    }

    fn install_at<'a>(&'a mut self, index: u64, snapshot: &'a [u8]) -> InstallFuture<'a> {
        Box::pin(async move {
            if index <= self.applied {
                return Ok(());
            }
            let snapshot = StreamSnapshot::decode(snapshot).map_err(|e| e.to_string())?;
            self.host.catch_up(index, snapshot).await?;
            self.applied = index;
            Ok(())
        })
    }
}

/// The PubAcks of one entry as the machine's outcome: a count, then each ack's JSON body,
/// length-prefixed (an ack that has nothing to say, as a staged batch message, is empty).
pub fn encode_acks(acks: &[PubAck], stream_json: &str) -> Vec<u8> {
    let mut out = BytesMut::with_capacity(4 + acks.len() * (44 + stream_json.len()));
    out.put_u32_le(u32::try_from(acks.len()).unwrap_or(u32::MAX));
    let mut body = BytesMut::new();
    for ack in acks {
        body.clear();
        if !matches!(ack, PubAck::Staged | PubAck::Fast { .. }) {
            ack.write_json(&mut body, stream_json);
        }
        out.put_u32_le(u32::try_from(body.len()).unwrap_or(u32::MAX));
        out.put_slice(&body);
    }
    out.to_vec()
}

/// Reads [`encode_acks`]'s bytes back; `None` if they are damaged.
pub fn decode_acks(bytes: &[u8]) -> Option<Vec<Bytes>> {
    let mut buf = Bytes::copy_from_slice(bytes);
    if buf.remaining() < 4 {
        return None;
    }
    let count = buf.get_u32_le() as usize;
    if count > buf.remaining() / 4 {
        return None;
    }
    let mut acks = Vec::with_capacity(count);
    for _ in 0..count {
        if buf.remaining() < 4 {
            return None;
        }
        let len = buf.get_u32_le() as usize;
        if buf.remaining() < len {
            return None;
        }
        acks.push(buf.split_to(len));
    }
    buf.is_empty().then_some(acks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jetstream::ApiError;

    #[test]
    fn acks_read_back_and_damaged_bytes_are_refused() {
        let acks = [
            PubAck::Stored { seq: 7 },
            PubAck::Duplicate { seq: 3 },
            PubAck::Staged,
            PubAck::Failed(ApiError::new(400, 10071, "wrong last sequence: 5")),
        ];
        let bytes = encode_acks(&acks, "\"S\"");
        let back = decode_acks(&bytes).expect("decodes");
        assert_eq!(back[0], r#"{"stream":"S","seq":7}"#);
        assert_eq!(back[1], r#"{"stream":"S","seq":3,"duplicate":true}"#);
        assert!(back[2].is_empty());
        assert_eq!(
            back[3],
            r#"{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 5"},"stream":"S","seq":0}"#
        );
        for cut in 0..bytes.len() {
            assert_eq!(decode_acks(&bytes[..cut]), None, "cut at {cut}");
        }
    }
}
