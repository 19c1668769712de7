//! What a publish's headers ask of a stream (`Nats-Msg-Id`, the `Nats-Expected-*` family,
//! `Nats-Rollup`), read once per publish before any check runs.

use bytes::Bytes;
use num_bigint::BigInt;

use super::error::ApiError;
use super::msg_ttl::MsgTtl;
use crate::protocol::headers::header_value;

/// Header names a publish may carry, exactly as nats-server matches them (case-sensitive).
pub mod header {
    pub const MSG_ID: &[u8] = b"Nats-Msg-Id";
    pub const EXPECTED_STREAM: &[u8] = b"Nats-Expected-Stream";
    pub const EXPECTED_LAST_SEQ: &[u8] = b"Nats-Expected-Last-Sequence";
    pub const EXPECTED_LAST_SUBJECT_SEQ: &[u8] = b"Nats-Expected-Last-Subject-Sequence";
    /// The subject (wildcards allowed) `EXPECTED_LAST_SUBJECT_SEQ` is checked against,
    /// instead of the message's own (2.11).
    pub const EXPECTED_LAST_SUBJECT_SEQ_SUBJECT: &[u8] =
        b"Nats-Expected-Last-Subject-Sequence-Subject";
    pub const EXPECTED_LAST_MSG_ID: &[u8] = b"Nats-Expected-Last-Msg-Id";
    pub const ROLLUP: &[u8] = b"Nats-Rollup";
}

/// nats-server refuses header blocks larger than this (`JSMaxHeaderSize`... 10097).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// What a publish's headers ask of the stream.
#[derive(Debug, Default)]
pub(super) struct Expectations {
    pub(super) msg_id: Option<String>,
    pub(super) stream: Option<String>,
    pub(super) last_seq: Option<u64>,
    pub(super) last_subject_seq: Option<u64>,
    /// The subject `last_subject_seq` is about, when not the message's.
    pub(super) last_subject_seq_subject: Option<String>,
    pub(super) last_msg_id: Option<String>,
    pub(super) rollup: Option<String>,
    /// The message's own TTL (`Nats-TTL`), on a stream that allows them.
    pub(super) ttl: Option<MsgTtl>,
    /// The headers to store instead of the publish's (a TTL raised to the marker TTL).
    pub(super) headers: Option<Bytes>,
    /// The increment of a counter stream's publish (`Nats-Incr`).
    pub(super) incr: Option<BigInt>,
}

impl Expectations {
    pub(super) fn parse(headers: Option<&Bytes>) -> Result<Self, ApiError> {
        let Some(block) = headers.filter(|h| !h.is_empty()) else {
            return Ok(Self::default());
        };
        let text =
            |name| header_value(block, name).map(|v| String::from_utf8_lossy(v).into_owned());
        let number = |name: &[u8]| -> Result<Option<u64>, ApiError> {
            match header_value(block, name) {
                None => Ok(None),
                Some(v) => std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .map(Some)
                    .ok_or_else(|| ApiError::bad_request(Some("invalid expected sequence header"))),
            }
        };
        Ok(Self {
            msg_id: text(header::MSG_ID).filter(|s| !s.is_empty()),
            stream: text(header::EXPECTED_STREAM),
            last_seq: number(header::EXPECTED_LAST_SEQ)?,
            last_subject_seq: number(header::EXPECTED_LAST_SUBJECT_SEQ)?,
            last_subject_seq_subject: text(header::EXPECTED_LAST_SUBJECT_SEQ_SUBJECT)
                .filter(|s| !s.is_empty()),
            last_msg_id: text(header::EXPECTED_LAST_MSG_ID),
            rollup: text(header::ROLLUP),
            ttl: None,
            headers: None,
            incr: None,
        })
    }

    /// Whether checking this publish needs everything before it stored first.
    pub(super) fn needs_settled_state(&self) -> bool {
        self.last_seq.is_some()
            || self.last_subject_seq.is_some()
            || self.last_msg_id.is_some()
            || self.rollup.is_some()
            || self.incr.is_some()
    }
}
