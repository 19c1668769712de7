//! What a publish's headers ask of a stream (`Nats-Msg-Id`, the `Nats-Expected-*` family,
//! `Nats-Rollup`), read once per publish before any check runs, and the stream's checks of a
//! publish against its configuration and what it holds.

use bytes::Bytes;
use num_bigint::BigInt;

use super::stream_counters::SourcedCount;

use super::error::ApiError;
use super::feature_headers::check_feature_headers;
use super::msg_ttl::MsgTtl;
use super::stream::{store_error, Stream};
use super::stream_schedules::ScheduleHeaders;
use crate::protocol::headers::{extend_block, header_value};
use crate::protocol::Publish;

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
    /// The origin total a counter stream's sourced message brings (ADR-49).
    pub(super) sourced: Option<SourcedCount>,
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
            sourced: None,
        })
    }

    /// Whether checking this publish needs everything before it stored first.
    pub(super) fn needs_settled_state(&self) -> bool {
        self.last_seq.is_some()
            || self.last_subject_seq.is_some()
            || self.last_msg_id.is_some()
            || self.rollup.is_some()
            || self.incr.is_some()
            || self.sourced.is_some()
    }
}

impl Stream {
    /// Checks that need nothing but the message and the configuration, in nats-server's order.
    pub(super) fn check_stateless(&self, msg: &Publish) -> Result<Expectations, ApiError> {
        if self.config().sealed {
            return Err(ApiError::sealed());
        }
        // A sourced message is stored as its origin had it: an increment is kept as a plain
        // header, and a roll-up the target does not allow is not applied (see `stream_sources`).
        let incr = match self.sourcing {
            true => None,
            false => self.publish_increment(msg.headers.as_ref(), &msg.payload)?,
        };
        let mut expect = Expectations::parse(msg.headers.as_ref())?;
        if self.sourcing && (!self.config().allow_rollup_hdrs || self.config().deny_purge) {
            expect.rollup = None;
        }
        if expect.last_subject_seq_subject.is_some() && expect.last_subject_seq.is_none() {
            return Err(ApiError::new(
                400,
                10193,
                "missing sequence for expected last sequence per subject",
            ));
        }
        if expect
            .stream
            .as_ref()
            .is_some_and(|s| *s != self.config().name)
        {
            return Err(ApiError::expected_stream_mismatch());
        }
        if let Some(rollup) = &expect.rollup {
            if !self.config().allow_rollup_hdrs || self.config().deny_purge {
                return Err(ApiError::rollup_failed("rollup not permitted"));
            }
            if rollup != "sub" && rollup != "all" {
                return Err(ApiError::rollup_failed(format!(
                    "rollup value invalid: {rollup:?}"
                )));
            }
        }
        if let Some(headers) = &msg.headers {
            let (ttl, rewritten) = self.apply_ttl_floor(self.publish_ttl(headers)?, headers);
            expect.ttl = ttl;
            expect.headers = rewritten;
            // A scheduled message is stored as produced: its headers are the server's.
            if !self.producing {
                check_feature_headers(headers, self.config().allow_atomic)?;
                let schedule = self.check_schedule_headers(&msg.subject, headers)?;
                if schedule == (ScheduleHeaders::Schedule { add_rollup: true }) {
                    // One schedule per subject: it replaces whatever the subject held.
                    let mut block = bytes::BytesMut::new();
                    let base = expect.headers.clone().unwrap_or_else(|| headers.clone());
                    extend_block(&mut block, &base, &[("Nats-Rollup", b"sub")]);
                    expect.headers = Some(block.freeze());
                    expect.rollup = Some("sub".to_string());
                }
            }
        }
        // A counter stream's sourced message brings its origin's total instead of an
        // increment (ADR-49).
        let sourced = match self.sourcing && self.config().allow_msg_counter {
            true => Some(self.sourced_count(msg.headers.as_ref(), &msg.payload)?),
            false => None,
        };
        if sourced.is_none() {
            self.check_increment_present(&incr)?;
        }
        expect.incr = incr;
        expect.sourced = sourced;
        let size = msg.headers.as_ref().map_or(0, Bytes::len) + msg.payload.len();
        if self.config().max_msg_size > 0 && size as i64 > self.config().max_msg_size {
            return Err(ApiError::message_too_large());
        }
        if msg
            .headers
            .as_ref()
            .is_some_and(|h| h.len() > MAX_HEADER_BYTES)
        {
            return Err(ApiError::header_too_large());
        }
        Ok(expect)
    }

    /// Checks against what the stream holds; everything before this message is stored.
    pub(super) fn check_stateful(
        &self,
        subject: &[u8],
        expect: &Expectations,
    ) -> Result<(), ApiError> {
        if let Some(want) = expect.last_subject_seq {
            let subject = match &expect.last_subject_seq_subject {
                Some(other) => std::borrow::Cow::Borrowed(other.as_str()),
                None => String::from_utf8_lossy(subject),
            };
            let last = self
                .log
                .last_for_subject(&subject)
                .map_err(store_error)?
                .map_or(0, |m| m.seq);
            if last != want {
                return Err(ApiError::wrong_last_sequence(last));
            }
        }
        if let Some(want) = expect.last_seq {
            let last = self.log.last_seq();
            if last != want {
                return Err(ApiError::wrong_last_sequence(last));
            }
        }
        if let Some(want) = &expect.last_msg_id {
            let last = self.last_msg_id.as_deref().unwrap_or("");
            if last != want {
                return Err(ApiError::wrong_last_msg_id(last));
            }
        }
        Ok(())
    }
}
