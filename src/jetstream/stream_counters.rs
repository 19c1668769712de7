//! Counter streams (ADR-49, API level 2): each publish carries `Nats-Incr: <integer>` and an
//! empty body; the stream stores `{"val":"<running total>"}` for the subject, the total read
//! from the subject's last message, in arbitrary precision. The PubAck says the new total.
//! Rules and errors as nats-server 2.15.1 has them (docs/stream-counters-facts.md).

use std::str::FromStr;

use bytes::Bytes;
use num_bigint::BigInt;

use super::error::ApiError;
use super::stream::{store_error, Stream};
use crate::protocol::headers::header_value;

/// The header that makes a publish an increment.
pub const INCR_HEADER: &[u8] = b"Nats-Incr";

/// Headers nats-server refuses together with `Nats-Incr`: a total has no expectations or
/// rollups to honour.
const REFUSED_WITH_INCR: [&[u8]; 6] = [
    b"Nats-Rollup",
    b"Nats-Expected-Stream",
    b"Nats-Expected-Last-Sequence",
    b"Nats-Expected-Last-Subject-Sequence",
    b"Nats-Expected-Last-Subject-Sequence-Subject",
    b"Nats-Expected-Last-Msg-Id",
];

fn invalid() -> ApiError {
    ApiError::new(400, 10171, "message counter increment is invalid")
}

/// `[+-]?[0-9]+`, read as Go's `big.Int.SetString(v, 10)` reads it.
fn parse_increment(value: &[u8]) -> Option<BigInt> {
    let digits = value
        .strip_prefix(b"+")
        .or_else(|| value.strip_prefix(b"-"))
        .unwrap_or(value);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    BigInt::from_str(std::str::from_utf8(value).ok()?.trim_start_matches('+')).ok()
}

/// A stored counter value: the body `{"val":"<integer>"}`.
fn stored_total(payload: &[u8]) -> Option<BigInt> {
    #[derive(serde::Deserialize)]
    struct Value {
        val: String,
    }
    let value: Value = serde_json::from_slice(payload).ok()?;
    parse_increment(value.val.as_bytes())
}

impl Stream {
    /// The increment a publish asks for, checked in nats-server's order: a value that does
    /// not parse (10171, on any stream), a stream without counters (10168), a body (10170),
    /// a header a counter cannot honour (10171).
    pub(super) fn publish_increment(
        &self,
        headers: Option<&Bytes>,
        payload: &[u8],
    ) -> Result<Option<BigInt>, ApiError> {
        let Some(block) = headers else {
            return Ok(None);
        };
        let Some(value) = header_value(block, INCR_HEADER).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        let increment = parse_increment(value).ok_or_else(invalid)?;
        if !self.config().allow_msg_counter {
            return Err(ApiError::new(400, 10168, "message counters is disabled"));
        }
        if !payload.is_empty() {
            return Err(ApiError::new(400, 10170, "message counter has payload"));
        }
        if REFUSED_WITH_INCR
            .iter()
            .any(|h| header_value(block, h).is_some())
        {
            return Err(invalid());
        }
        Ok(Some(increment))
    }

    /// A counter stream takes nothing but increments.
    pub(super) fn check_increment_present(
        &self,
        increment: &Option<BigInt>,
    ) -> Result<(), ApiError> {
        match self.config().allow_msg_counter && increment.is_none() {
            true => Err(ApiError::new(
                400,
                10169,
                "message counter increment is missing",
            )),
            false => Ok(()),
        }
    }

    /// The new total of `subject` after `increment`, from its last stored message (all
    /// earlier publishes are stored: increments settle the batch first).
    pub(super) fn counter_total(
        &self,
        subject: &str,
        increment: &BigInt,
    ) -> Result<BigInt, ApiError> {
        let last = self.log.last_for_subject(subject).map_err(store_error)?;
        let current = match last {
            None => BigInt::default(),
            Some(msg) => stored_total(&msg.payload)
                .ok_or_else(|| ApiError::new(400, 10172, "message counter is broken"))?,
        };
        Ok(current + increment)
    }
}

/// The body stored for a total.
pub fn counter_body(total: &BigInt) -> Bytes {
    Bytes::from(format!("{{\"val\":\"{total}\"}}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn increments_read_as_go_big_ints() {
        for (text, want) in [
            ("1", "1"),
            ("+2", "2"),
            ("-1", "-1"),
            ("007", "7"),
            ("-0", "0"),
            ("18446744073709551616", "18446744073709551616"),
        ] {
            assert_eq!(
                parse_increment(text.as_bytes())
                    .map(|n| n.to_string())
                    .as_deref(),
                Some(want),
                "{text}"
            );
        }
        for text in [
            "1.5", "1e3", "0x10", "1_000", "abc", "+", "-", "++1", "5 ", "",
        ] {
            assert_eq!(parse_increment(text.as_bytes()), None, "{text}");
        }
        assert_eq!(
            stored_total(br#"{"val":"-12"}"#),
            BigInt::from_str("-12").ok()
        );
        assert_eq!(
            counter_body(&BigInt::from(12)),
            Bytes::from_static(br#"{"val":"12"}"#)
        );
        assert_eq!(stored_total(b"12"), None);
    }
}
