//! Snapshots of a replicated stream, and how a replica that fell behind its group's
//! compacted log catches up from a peer's store (issue 20; `docs/clustering.md`).
//!
//! A stream group's log would otherwise hold every message twice, once in the log and once
//! in the store, for as long as the stream lives. So, as in nats-server, a snapshot of a
//! stream is small: where the store's sequences begin and end, which between them hold no
//! message, and the replicated consumers as the group last committed them. The messages
//! stay in the stores. A member that needs entries the group no longer keeps is sent the
//! snapshot, and brings its own store there: it drops what the snapshot says is gone,
//! then asks a peer for the messages after its own last, page by page, with their
//! sequences and timestamps, up to the snapshot's last sequence. Entries after the
//! snapshot then apply as usual.
//!
//! What a peer no longer holds when asked (a later entry removed it) becomes a gap here
//! too: the later entry that removed it finds nothing to remove. This is nats-server's
//! catch-up as well; `docs/clustering.md` says where it can differ.

use bytes::{Buf, BufMut, Bytes};

use super::dedup::DedupWindow;
use super::replica::{put_field, take_field, EntryError};
use super::replica_consumers::ConsumerOp;
use super::stream::header;
use super::stream::store_error;
use super::{ApiError, Stream};
use crate::protocol::headers::header_value;
use crate::store::ranges::RangeSet;
use crate::store::{NewMessage, PurgeRequest, StoredMessage};

/// The format of an encoded [`SyncPage`], and of a [`StreamSnapshot`] written before
/// snapshots held the stream's config (still read); anything else is refused.
pub const SNAPSHOT_VERSION: u8 = 1;
/// The format of an encoded [`StreamSnapshot`] with its config, as written now.
pub const SNAPSHOT_WITH_CONFIG: u8 = 2;
/// A sync page carries at most this many messages ...
pub const SYNC_PAGE_MSGS: usize = 1024;
/// ... and stops adding them once it holds this many bytes (a single larger message still
/// goes, alone).
pub const SYNC_PAGE_BYTES: usize = 1 << 20;

/// A replicated stream at one index of its group's log.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamSnapshot {
    /// The last entry the store applied (`Log::applied`): at or below the snapshot's own
    /// index, which also counts entries that do not touch the store.
    pub store_index: u64,
    /// The store's first sequence (`last_seq + 1` when it holds nothing).
    pub first_seq: u64,
    /// The last sequence the stream ever assigned.
    pub last_seq: u64,
    /// Sequences between first and last that hold no message, as inclusive ranges.
    pub deleted: Vec<(u64, u64)>,
    /// The duplicate window: each `Nats-Msg-Id` with its sequence and timestamp. An id
    /// outlives its message (a limit may have removed it), so the store alone cannot say.
    pub dedup: Vec<(String, u64, u64)>,
    /// The replicated consumers: a `Put` and then a `States` for all of them.
    pub consumers: Vec<ConsumerOp>,
    /// The stream's config as JSON, as the entries up to the snapshot left it (a member
    /// sent the snapshot may have missed an update); empty if not recorded, as in
    /// snapshots written before it was.
    pub config: Bytes,
}

impl StreamSnapshot {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![SNAPSHOT_WITH_CONFIG];
        out.put_u64_le(self.store_index);
        out.put_u64_le(self.first_seq);
        out.put_u64_le(self.last_seq);
        out.put_u32_le(u32::try_from(self.deleted.len()).unwrap_or(u32::MAX));
        for (lo, hi) in &self.deleted {
            out.put_u64_le(*lo);
            out.put_u64_le(*hi);
        }
        out.put_u32_le(u32::try_from(self.dedup.len()).unwrap_or(u32::MAX));
        for (id, seq, ts_ns) in &self.dedup {
            put_field(&mut out, id.as_bytes());
            out.put_u64_le(*seq);
            out.put_u64_le(*ts_ns);
        }
        out.put_u32_le(u32::try_from(self.consumers.len()).unwrap_or(u32::MAX));
        for op in &self.consumers {
            put_field(&mut out, &op.encode());
        }
        put_field(&mut out, &self.config);
        out
    }

    /// Reads a snapshot back; any cut or damage is an error.
    pub fn decode(bytes: &[u8]) -> Result<StreamSnapshot, EntryError> {
        let mut buf = Bytes::copy_from_slice(bytes);
        if buf.remaining() < 29 {
            return Err(EntryError::Short);
        }
        let version = buf.get_u8();
        if version != SNAPSHOT_VERSION && version != SNAPSHOT_WITH_CONFIG {
            return Err(EntryError::Version(version));
        }
        let store_index = buf.get_u64_le();
        let (first_seq, last_seq) = (buf.get_u64_le(), buf.get_u64_le());
        let count = buf.get_u32_le() as usize;
        if count > buf.remaining() / 16 {
            return Err(EntryError::Short);
        }
        let deleted = (0..count)
            .map(|_| (buf.get_u64_le(), buf.get_u64_le()))
            .collect();
        if buf.remaining() < 4 {
            return Err(EntryError::Short);
        }
        let count = buf.get_u32_le() as usize;
        if count > buf.remaining() / 20 {
            return Err(EntryError::Short);
        }
        let mut dedup = Vec::with_capacity(count);
        for _ in 0..count {
            let id = take_field(&mut buf)?;
            let id = String::from_utf8(id.to_vec()).map_err(|_| EntryError::Name)?;
            if buf.remaining() < 16 {
                return Err(EntryError::Short);
            }
            dedup.push((id, buf.get_u64_le(), buf.get_u64_le()));
        }
        if buf.remaining() < 4 {
            return Err(EntryError::Short);
        }
        let count = buf.get_u32_le() as usize;
        if count > buf.remaining() / 4 {
            return Err(EntryError::Short);
        }
        let mut consumers = Vec::with_capacity(count);
        for _ in 0..count {
            consumers.push(ConsumerOp::decode(&take_field(&mut buf)?)?);
        }
        let config = match version {
            SNAPSHOT_WITH_CONFIG => take_field(&mut buf)?,
            _ => Bytes::new(),
        };
        if buf.has_remaining() {
            return Err(EntryError::Trailing(buf.remaining()));
        }
        Ok(StreamSnapshot {
            store_index,
            first_seq,
            last_seq,
            deleted,
            dedup,
            consumers,
            config,
        })
    }
}

/// One answer to a catch-up request: the messages a peer holds from the asked sequence on,
/// and where the next request starts (`None`: nothing more up to the asked end).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SyncPage {
    pub messages: Vec<StoredMessage>,
    pub next: Option<u64>,
}

impl SyncPage {
    pub fn encode(&self) -> Vec<u8> {
        let body: usize = self
            .messages
            .iter()
            .map(|m| 28 + m.subject.len() + m.headers.len() + m.payload.len())
            .sum();
        let mut out = Vec::with_capacity(14 + body);
        out.put_u8(SNAPSHOT_VERSION);
        out.put_u8(u8::from(self.next.is_some()));
        out.put_u64_le(self.next.unwrap_or(0));
        out.put_u32_le(u32::try_from(self.messages.len()).unwrap_or(u32::MAX));
        for m in &self.messages {
            out.put_u64_le(m.seq);
            out.put_u64_le(m.ts_ns);
            put_field(&mut out, m.subject.as_bytes());
            put_field(&mut out, &m.headers);
            put_field(&mut out, &m.payload);
        }
        out
    }

    /// Reads a page back; the messages share `bytes`. Any cut or damage is an error.
    pub fn decode(bytes: &Bytes) -> Result<SyncPage, EntryError> {
        let mut buf = bytes.clone();
        if buf.remaining() < 14 {
            return Err(EntryError::Short);
        }
        let version = buf.get_u8();
        if version != SNAPSHOT_VERSION {
            return Err(EntryError::Version(version));
        }
        let more = buf.get_u8() != 0;
        let next = buf.get_u64_le();
        let count = buf.get_u32_le() as usize;
        if count > buf.remaining() / 28 {
            return Err(EntryError::Short);
        }
        let mut messages = Vec::with_capacity(count);
        for _ in 0..count {
            if buf.remaining() < 16 {
                return Err(EntryError::Short);
            }
            let (seq, ts_ns) = (buf.get_u64_le(), buf.get_u64_le());
            let subject = take_field(&mut buf)?;
            let subject = String::from_utf8(subject.to_vec()).map_err(|_| EntryError::Name)?;
            let headers = take_field(&mut buf)?;
            let payload = take_field(&mut buf)?;
            messages.push(StoredMessage {
                seq,
                ts_ns,
                subject,
                headers,
                payload,
            });
        }
        if buf.has_remaining() {
            return Err(EntryError::Trailing(buf.remaining()));
        }
        Ok(SyncPage {
            messages,
            next: more.then_some(next),
        })
    }
}

impl Stream {
    /// The stream's part of a snapshot: the store's bounds, the sequences between them that
    /// hold no message (a walk over the store's indexes), and the duplicate window.
    pub fn snapshot(&self) -> Result<StreamSnapshot, ApiError> {
        let state = self.log.state(true).map_err(store_error)?;
        Ok(StreamSnapshot {
            store_index: self.log.applied().map_or(0, |a| a.index),
            first_seq: state.first_seq,
            last_seq: state.last_seq,
            deleted: {
                let mut gaps = RangeSet::default();
                for seq in state.deleted {
                    gaps.insert(seq);
                }
                gaps.ranges().collect()
            },
            dedup: self
                .dedup
                .entries()
                .map(|(id, seq, ts)| (id.to_owned(), seq, ts))
                .collect(),
            consumers: Vec::new(),
            config: Bytes::from(serde_json::to_vec(self.config()).map_err(ApiError::invalid_json)?),
        })
    }

    /// The messages this replica holds from `from` up to `upto`, at most a page of them.
    pub fn sync_page(&self, from: u64, upto: u64) -> Result<SyncPage, ApiError> {
        if from > upto {
            return Ok(SyncPage::default());
        }
        let scanned = self
            .log
            .scan(from, &[], SYNC_PAGE_MSGS)
            .map_err(store_error)?;
        let full = scanned.len() == SYNC_PAGE_MSGS;
        let mut page = SyncPage::default();
        let mut bytes = 0;
        for msg in scanned {
            if msg.seq > upto {
                return Ok(page);
            }
            if bytes >= SYNC_PAGE_BYTES {
                page.next = Some(msg.seq);
                return Ok(page);
            }
            bytes += msg.subject.len() + msg.headers.len() + msg.payload.len();
            page.messages.push(msg);
        }
        // A full scan may have stopped short of `upto`; a short one reached the store's end.
        page.next = match page.messages.last() {
            Some(last) if full && last.seq < upto => Some(last.seq + 1),
            _ => None,
        };
        Ok(page)
    }

    /// Brings this replica's store to `snapshot`'s shape for what it already holds: what
    /// the snapshot says is gone goes here too. Returns the first sequence to ask a peer
    /// for. A store ahead of the snapshot (which no committed entry can cause) is cut back.
    pub fn begin_catch_up(&mut self, snapshot: &StreamSnapshot) -> Result<u64, ApiError> {
        if self.log.last_seq() > snapshot.last_seq {
            self.log
                .truncate_after(snapshot.last_seq)
                .map_err(store_error)?;
        }
        let last = self.log.last_seq();
        if snapshot.first_seq > 1 {
            let below = PurgeRequest {
                up_to_seq: Some(snapshot.first_seq),
                ..PurgeRequest::default()
            };
            self.log.purge(&below).map_err(store_error)?;
        }
        for &(lo, hi) in &snapshot.deleted {
            for seq in lo.max(snapshot.first_seq)..=hi.min(last) {
                self.log.delete(seq).map_err(store_error)?;
            }
        }
        Ok(last + 1)
    }

    /// Stores a page of a peer's messages with their own sequences and timestamps; a
    /// sequence the peer did not send stays a gap.
    pub fn store_sync_page(&mut self, page: &SyncPage) -> Result<(), ApiError> {
        for msg in &page.messages {
            if msg.seq <= self.log.last_seq() {
                continue;
            }
            self.log.skip_to(msg.seq).map_err(store_error)?;
            let stored = self
                .log
                .append(&NewMessage {
                    subject: msg.subject.clone(),
                    headers: msg.headers.clone(),
                    payload: msg.payload.clone(),
                    ts_ns: msg.ts_ns,
                })
                .map_err(store_error)?;
            debug_assert_eq!(stored, msg.seq, "a synced message keeps its sequence");
        }
        Ok(())
    }

    /// Ends a catch-up at log `index`: the store reaches the snapshot's last sequence and is
    /// made durable with its new checkpoint; the duplicate window becomes the snapshot's,
    /// and the TTLs and schedules are read back from the store as at an open.
    pub fn finish_catch_up(
        &mut self,
        index: u64,
        snapshot: &StreamSnapshot,
    ) -> Result<(), ApiError> {
        self.log
            .skip_to(snapshot.last_seq + 1)
            .map_err(store_error)?;
        self.log.set_applied(index);
        self.log.sync().map_err(store_error)?;
        self.dedup = DedupWindow::new(self.config().duplicate_window.max(0) as u64);
        for (id, seq, ts_ns) in &snapshot.dedup {
            self.dedup.insert(id.clone(), *seq, *ts_ns);
        }
        self.last_msg_id = match self.log.get(snapshot.last_seq).map_err(store_error)? {
            Some(msg) => header_value(&msg.headers, header::MSG_ID)
                .map(|v| String::from_utf8_lossy(v).into_owned()),
            None => None,
        };
        // The store's clock: no message after the snapshot's last can be older.
        let now_ns = self.log.state(false).map_err(store_error)?.last_ts_ns;
        self.rebuild_ttls()?;
        self.rebuild_schedules(now_ns)
    }
}

#[cfg(test)]
#[path = "replica_snapshot_tests.rs"]
mod tests;
