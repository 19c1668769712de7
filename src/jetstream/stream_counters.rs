//! Counter streams (ADR-49, API level 2): each publish carries `Nats-Incr: <integer>` and an
//! empty body; the stream stores `{"val":"<running total>"}` for the subject, the total read
//! from the subject's last message, in arbitrary precision. The PubAck says the new total.
//! Rules and errors as nats-server 2.15.1 has them (docs/stream-counters-facts.md).

use std::collections::BTreeMap;
use std::str::FromStr;

use bytes::{Bytes, BytesMut};
use num_bigint::BigInt;

use super::error::ApiError;
use super::stream::{store_error, Stream};
use crate::protocol::headers::{header_value, replace_in_block};

/// The header that makes a publish an increment.
pub const INCR_HEADER: &[u8] = b"Nats-Incr";
/// The origin totals a counter stream has taken from its sources (ADR-49).
pub const COUNTER_SOURCES_HEADER: &[u8] = b"Nats-Counter-Sources";
const STREAM_SOURCE_HEADER: &[u8] = b"Nats-Stream-Source";

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
}

/// What a counter stream learns from a sourced message (ADR-49): which origin and subject
/// the total is of, and the total there. Its increment here is the difference from the
/// total last seen from the same place, so losing or repeating a sourced message never
/// counts twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SourcedCount {
    origin: String,
    subject: String,
    total: BigInt,
}

/// How a counter message changes its subject's total.
pub(super) enum CounterChange<'a> {
    /// A publish's `Nats-Incr`.
    Local(&'a BigInt),
    /// A sourced origin's total.
    Sourced(&'a SourcedCount),
}

/// The origin totals a subject's last message recorded, by origin stream and subject.
type SeenTotals = BTreeMap<String, BTreeMap<String, String>>;

fn seen_totals(headers: &[u8]) -> SeenTotals {
    header_value(headers, COUNTER_SOURCES_HEADER)
        .and_then(|v| serde_json::from_slice(v).ok())
        .unwrap_or_default()
}

/// A counter message as stored: its total, body and headers.
pub(super) struct CounterMessage {
    pub total: BigInt,
    pub body: Bytes,
    /// The headers to store instead of the publish's, when they change.
    pub headers: Option<Bytes>,
}

impl Stream {
    /// The origin, original subject and total of a message sourced into a counter stream,
    /// from its `Nats-Stream-Source` header (`<stream> <seq> <filters> <dests> <subject>`)
    /// and its `{"val"}` body: an origin that is no counter gives no increment (10169), a
    /// body without a total a broken counter (10172).
    pub(super) fn sourced_count(
        &self,
        headers: Option<&Bytes>,
        payload: &[u8],
    ) -> Result<SourcedCount, ApiError> {
        let missing = || ApiError::new(400, 10169, "message counter increment is missing");
        let block = headers.ok_or_else(missing)?;
        header_value(block, INCR_HEADER).ok_or_else(missing)?;
        let source = header_value(block, STREAM_SOURCE_HEADER)
            .and_then(|v| std::str::from_utf8(v).ok())
            .ok_or_else(missing)?;
        let fields: Vec<&str> = source.split(' ').collect();
        let (Some(origin), Some(subject)) = (fields.first(), fields.get(4)) else {
            return Err(missing());
        };
        let total = stored_total(payload)
            .ok_or_else(|| ApiError::new(400, 10172, "message counter is broken"))?;
        Ok(SourcedCount {
            origin: (*origin).to_string(),
            subject: (*subject).to_string(),
            total,
        })
    }

    /// The total of `subject` and the origin totals its last message recorded: where a
    /// counter message on it starts from.
    pub(super) fn counter_base(&self, subject: &str) -> Result<CounterBase, ApiError> {
        let last = self.log.last_for_subject(subject).map_err(store_error)?;
        let total = match &last {
            None => BigInt::default(),
            Some(msg) => stored_total(&msg.payload)
                .ok_or_else(|| ApiError::new(400, 10172, "message counter is broken"))?,
        };
        let seen = last.map(|m| seen_totals(&m.headers)).unwrap_or_default();
        Ok(CounterBase { total, seen })
    }
}

/// Where a subject's counter stands: its total, and the origin totals taken from sources.
#[derive(Debug, Clone, Default)]
pub(super) struct CounterBase {
    total: BigInt,
    seen: SeenTotals,
}

impl CounterBase {
    /// The message stored for `change` after this base, and the base it leaves: a local
    /// increment adds to the total and carries `Nats-Counter-Sources` forward; a sourced
    /// total adds its difference from the one last seen from its origin, says so in
    /// `Nats-Incr`, and records it in `Nats-Counter-Sources`.
    pub(super) fn apply(
        &mut self,
        change: CounterChange<'_>,
        headers: Option<&Bytes>,
    ) -> CounterMessage {
        let block = headers.map_or(&[][..], |h| h.as_ref());
        let (increment, pairs_incr) = match change {
            CounterChange::Local(incr) => (incr.clone(), None),
            CounterChange::Sourced(count) => {
                let totals = self.seen.entry(count.origin.clone()).or_default();
                let before = totals
                    .get(&count.subject)
                    .and_then(|t| parse_increment(t.as_bytes()))
                    .unwrap_or_default();
                totals.insert(count.subject.clone(), count.total.to_string());
                let diff = &count.total - before;
                let text = diff.to_string();
                (diff, Some(text))
            }
        };
        // Only a counter that has been sourced has a record to carry.
        let record =
            (!self.seen.is_empty()).then(|| serde_json::to_vec(&self.seen).unwrap_or_default());
        let mut pairs: Vec<(&str, &[u8])> = Vec::new();
        if let Some(text) = &pairs_incr {
            pairs.push(("Nats-Incr", text.as_bytes()));
        }
        if let Some(record) = &record {
            pairs.push(("Nats-Counter-Sources", record.as_slice()));
        }
        let headers = (!pairs.is_empty()).then(|| {
            let mut out = BytesMut::new();
            replace_in_block(&mut out, block, &pairs);
            out.freeze()
        });
        self.total += increment;
        CounterMessage {
            total: self.total.clone(),
            body: counter_body(&self.total),
            headers,
        }
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

    #[test]
    fn a_sourced_total_counts_as_its_difference_and_is_recorded() {
        let count = |origin: &str, subject: &str, total: i64| SourcedCount {
            origin: origin.into(),
            subject: subject.into(),
            total: BigInt::from(total),
        };
        let text =
            |b: &Option<Bytes>| String::from_utf8_lossy(b.as_deref().unwrap_or(b"")).into_owned();
        let sourced = Bytes::from_static(
            b"NATS/1.0\r\nNats-Incr: 7\r\nNats-Stream-Source: EU 3 > > eu.a x\r\n\r\n",
        );
        let mut base = CounterBase::default();
        let first = base.apply(
            CounterChange::Sourced(&count("EU", "eu.a", 7)),
            Some(&sourced),
        );
        assert_eq!(first.total, BigInt::from(7));
        let headers = text(&first.headers);
        assert!(headers.contains("Nats-Incr: 7\r\n"), "{headers}");
        assert!(
            headers.contains(r#"Nats-Counter-Sources: {"EU":{"eu.a":"7"}}"#),
            "{headers}"
        );
        assert!(headers.contains("Nats-Stream-Source: EU 3"), "{headers}");
        // The same total again adds nothing; a higher one adds the difference.
        let again = base.apply(
            CounterChange::Sourced(&count("EU", "eu.a", 7)),
            Some(&sourced),
        );
        assert_eq!(again.total, BigInt::from(7));
        assert!(text(&again.headers).contains("Nats-Incr: 0\r\n"));
        let other = base.apply(
            CounterChange::Sourced(&count("US", "us.a", -2)),
            Some(&sourced),
        );
        assert_eq!(other.total, BigInt::from(5));
        // A local increment keeps the record.
        let local = Bytes::from_static(b"NATS/1.0\r\nNats-Incr: 10\r\n\r\n");
        let ten = BigInt::from(10);
        let mine = base.apply(CounterChange::Local(&ten), Some(&local));
        assert_eq!(mine.body, counter_body(&BigInt::from(15)));
        let headers = text(&mine.headers);
        assert!(headers.contains("Nats-Incr: 10\r\n"), "{headers}");
        assert!(
            headers.contains(r#"{"EU":{"eu.a":"7"},"US":{"us.a":"-2"}}"#),
            "{headers}"
        );
        // A counter never sourced keeps its publisher's headers.
        let mut plain = CounterBase::default();
        assert!(plain
            .apply(CounterChange::Local(&ten), Some(&local))
            .headers
            .is_none());
    }
}
