//! A stream's per-message TTLs (ADR-43): recording them as messages are stored, removing
//! messages as they fall due, and rebuilding both from the stored headers on open.

use super::error::ApiError;
use super::msg_ttl::{msg_ttl, MsgTtl, TTL_HEADER};
use super::stream::{store_error, Stream};
use crate::protocol::headers::header_value;

impl Stream {
    /// The TTL a publish asks for, checked against the stream's settings: nats-server's 10166
    /// when the stream does not allow TTLs and 10165 for a value it refuses.
    pub(super) fn publish_ttl(&self, headers: &[u8]) -> Result<Option<MsgTtl>, ApiError> {
        let ttl = msg_ttl(headers)?;
        if ttl.is_some() && !self.config().allow_msg_ttl {
            // A sourced message keeps its `Nats-TTL` as a plain header on such a stream.
            if self.sourcing {
                return Ok(None);
            }
            return Err(ApiError::new(400, 10166, "per-message TTL is disabled"));
        }
        Ok(ttl)
    }

    /// Notes the TTL of a message just stored at `seq` and `ts_ns`.
    pub(super) fn record_ttl(&mut self, seq: u64, ts_ns: u64, ttl: MsgTtl) {
        match ttl {
            MsgTtl::After(ns) => self.ttl.insert(seq, ts_ns, ns),
            MsgTtl::Never => self.log.exempt_from_age(seq),
        }
    }

    /// Removes the messages whose TTL has passed; how many were still there.
    pub(super) fn expire_ttls(&mut self, now_ns: u64) -> Result<u64, ApiError> {
        let mut removed = 0;
        for seq in self.ttl.take_due(now_ns) {
            let Some(msg) = self.log.get(seq).map_err(store_error)? else {
                continue;
            };
            if self.log.delete(seq).map_err(store_error)? {
                removed += 1;
                self.note_aged_out(&msg)?;
            }
        }
        Ok(removed)
    }

    /// Reads the TTL of every stored message back after a restart: expiry counts from the
    /// message's own timestamp, so what fell due while the server was down goes at the first
    /// tick.
    pub(super) fn rebuild_ttls(&mut self) -> Result<(), ApiError> {
        self.ttl.clear();
        if !self.config().allow_msg_ttl {
            return Ok(());
        }
        self.each_stored_from(1, |stream, msg| {
            if header_value(&msg.headers, TTL_HEADER).is_none() {
                return;
            }
            // A value that no longer parses (it was checked when stored) is left alone.
            if let Ok(Some(ttl)) = msg_ttl(&msg.headers) {
                stream.record_ttl(msg.seq, msg.ts_ns, ttl);
            }
        })
    }
}

#[cfg(test)]
#[path = "stream_ttl_tests.rs"]
mod tests;
