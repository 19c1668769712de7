//! Subject delete markers (ADR-43): when age (`max_age` or a message's own TTL) removes the
//! last message of a subject, a stream with `subject_delete_marker_ttl` stores an empty
//! message on that subject saying so, which itself lives for the marker TTL. KV clients read
//! it as the key's deletion.
//!
//! As in nats-server, only removal by age leaves a marker (purges and deletes do not), a
//! marker never leaves a marker, and the reason is always `MaxAge`. With markers on, the
//! stream removes old messages itself instead of its store, so it can see which subjects
//! emptied.

use bytes::{Bytes, BytesMut};

use super::error::ApiError;
use super::msg_ttl::{msg_ttl, MsgTtl, MIN_TTL_NS, TTL_HEADER};
use super::stream::{store_error, Stream};
use crate::protocol::headers::{header_value, replace_in_block};
use crate::protocol::Publish;
use crate::store::StoredMessage;

/// The header that makes a message a marker, and the one reason nats-server writes.
pub const MARKER_REASON_HEADER: &[u8] = b"Nats-Marker-Reason";
const MARKER_REASON_MAX_AGE: &str = "MaxAge";
/// How many messages one pass of the age scan reads at a time.
const AGE_SCAN_BATCH: usize = 1024;

/// Whether a stored message is itself a deletion: a marker, or a KV purge.
fn is_deletion(msg: &StoredMessage) -> bool {
    header_value(&msg.headers, MARKER_REASON_HEADER).is_some_and(|v| !v.is_empty())
        || header_value(&msg.headers, b"KV-Operation").is_some_and(|v| v == b"PURGE")
}

/// Whole seconds as Go prints a duration: `2s`, `1m0s`, `1h0m0s`.
fn go_duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

impl Stream {
    /// The marker TTL in whole seconds (nats-server truncates it), 0 without markers.
    pub(super) fn marker_ttl_secs(&self) -> u64 {
        u64::try_from(self.config().subject_delete_marker_ttl).unwrap_or(0) / MIN_TTL_NS
    }

    pub(super) fn has_markers(&self) -> bool {
        self.config().subject_delete_marker_ttl > 0
    }

    /// A TTL below the marker TTL is raised to it (unless each subject keeps one message),
    /// so a key's value never outlives the marker that reports its deletion; the stored
    /// header then says the new value in seconds. Returns the TTL and the rewritten headers.
    pub(super) fn apply_ttl_floor(
        &self,
        ttl: Option<MsgTtl>,
        headers: &[u8],
    ) -> (Option<MsgTtl>, Option<Bytes>) {
        let floor = self.marker_ttl_secs().saturating_mul(MIN_TTL_NS);
        match ttl {
            Some(MsgTtl::After(ns))
                if floor > 0 && ns < floor && self.config().max_msgs_per_subject != 1 =>
            {
                let mut out = BytesMut::with_capacity(headers.len() + 16);
                let secs = (floor / MIN_TTL_NS).to_string();
                replace_in_block(&mut out, headers, &[("Nats-TTL", secs.as_bytes())]);
                (Some(MsgTtl::After(floor)), Some(out.freeze()))
            }
            other => (other, None),
        }
    }

    /// Notes that `removed` left the stream by age; if its subject is now empty, a marker
    /// is owed.
    pub(super) fn note_aged_out(&mut self, removed: &StoredMessage) -> Result<(), ApiError> {
        if !self.has_markers() || is_deletion(removed) {
            return Ok(());
        }
        if self
            .log
            .last_for_subject(&removed.subject)
            .map_err(store_error)?
            .is_none()
        {
            self.markers_owed.push(removed.subject.clone());
        }
        Ok(())
    }

    /// `max_age` for a stream with markers: oldest first up to the first young message,
    /// sparing messages whose TTL is `never`.
    pub(super) fn expire_by_age(&mut self, now_ns: u64) -> Result<u64, ApiError> {
        let max_age = u64::try_from(self.config().max_age).unwrap_or(0);
        if max_age == 0 {
            return Ok(0);
        }
        let cutoff = now_ns.saturating_sub(max_age);
        // The usual tick: the oldest message is young enough, and nothing need be read.
        let first_ts = self.log.state(false).map_err(store_error)?.first_ts_ns;
        if self.log.msgs() == 0 || first_ts >= cutoff {
            return Ok(0);
        }
        let mut removed = 0;
        let mut seq = 1;
        loop {
            let batch = self
                .log
                .scan(seq, &[], AGE_SCAN_BATCH)
                .map_err(store_error)?;
            let Some(last) = batch.last() else { break };
            seq = last.seq + 1;
            for msg in &batch {
                if msg.ts_ns >= cutoff {
                    return Ok(removed);
                }
                if header_value(&msg.headers, TTL_HEADER).is_some()
                    && matches!(msg_ttl(&msg.headers), Ok(Some(MsgTtl::Never)))
                {
                    continue;
                }
                if self.log.delete(msg.seq).map_err(store_error)? {
                    removed += 1;
                    self.note_aged_out(msg)?;
                }
            }
        }
        Ok(removed)
    }

    /// Stores the markers owed, at `now_ns`; they are then new messages for the consumers
    /// (see [`Stream::take_upkeep_stored`]).
    pub(super) fn write_markers(&mut self, now_ns: u64) {
        if self.markers_owed.is_empty() {
            return;
        }
        let headers = Bytes::from(format!(
            "NATS/1.0\r\n{}: {MARKER_REASON_MAX_AGE}\r\nNats-TTL: {}\r\nNats-Rollup: sub\r\n\r\n",
            String::from_utf8_lossy(MARKER_REASON_HEADER),
            go_duration(self.marker_ttl_secs())
        ));
        let owed = std::mem::take(&mut self.markers_owed);
        let publishes: Vec<Publish> = owed
            .iter()
            .map(|subject| Publish {
                subject: Bytes::copy_from_slice(subject.as_bytes()),
                reply: None,
                headers: Some(headers.clone()),
                payload: Bytes::new(),
            })
            .collect();
        let acks = self.process(&publishes, now_ns);
        for (ack, subject) in acks.iter().zip(owed) {
            match ack.stored_seq() {
                Some(seq) => self.upkeep_stored.push((seq, subject)),
                None => tracing::warn!(subject, "subject delete marker not stored: {ack:?}"),
            }
        }
    }

    /// The messages the upkeep stored since the last call (markers, scheduled messages), for
    /// the consumers to hear of.
    pub fn take_upkeep_stored(&mut self) -> Vec<(u64, String)> {
        std::mem::take(&mut self.upkeep_stored)
    }
}

#[cfg(test)]
mod tests {
    use super::go_duration;

    #[test]
    fn marker_ttls_print_as_go_durations() {
        assert_eq!(go_duration(2), "2s");
        assert_eq!(go_duration(60), "1m0s");
        assert_eq!(go_duration(3600), "1h0m0s");
        assert_eq!(go_duration(3725), "1h2m5s");
    }
}
