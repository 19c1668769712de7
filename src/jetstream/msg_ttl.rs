//! Per-message TTL (ADR-43): the `Nats-TTL` header, and the index of when each message with
//! one falls due.
//!
//! The index lives in memory and is rebuilt from the stored headers when a stream opens, so
//! a TTL survives restarts without a second file that could disagree with the log.

use std::collections::BTreeSet;

use super::error::ApiError;
use crate::protocol::headers::header_value;

/// The header that gives a message its own time to live.
pub const TTL_HEADER: &[u8] = b"Nats-TTL";
/// The shortest per-message TTL nats-server accepts.
pub const MIN_TTL_NS: u64 = 1_000_000_000;

/// A message's own time to live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsgTtl {
    /// `never`: the message is not removed for its age.
    Never,
    /// Removed this many nanoseconds after it was stored.
    After(u64),
}

/// The TTL `headers` ask for: `None` without the header, an error for a value nats-server
/// refuses (10165).
pub fn msg_ttl(headers: &[u8]) -> Result<Option<MsgTtl>, ApiError> {
    match header_value(headers, TTL_HEADER) {
        // An empty value asks for nothing, as with nats-server.
        None => Ok(None),
        Some(value) if value.trim_ascii().is_empty() => Ok(None),
        Some(value) => parse_ttl(value).map(Some).ok_or_else(invalid_ttl),
    }
}

pub fn invalid_ttl() -> ApiError {
    ApiError::new(400, 10165, "invalid per-message TTL")
}

/// `never` (any case), a Go duration of at least 1 s (truncated to whole seconds), or a whole
/// number of seconds (at least 1): nats-server's reading, in its order.
pub fn parse_ttl(value: &[u8]) -> Option<MsgTtl> {
    let text = std::str::from_utf8(value).ok()?.trim();
    if text.eq_ignore_ascii_case("never") {
        return Some(MsgTtl::Never);
    }
    let ns = match parse_go_duration(text) {
        Some(ns) if ns < MIN_TTL_NS => return None,
        Some(ns) => ns - ns % MIN_TTL_NS,
        None if text.bytes().all(|b| b.is_ascii_digit()) => {
            let secs: u64 = text.parse().ok()?;
            secs.saturating_mul(MIN_TTL_NS)
        }
        None => return None,
    };
    (ns >= MIN_TTL_NS).then_some(MsgTtl::After(ns))
}

/// Go's `time.ParseDuration` for non-negative values: numbers with optional fractions, each
/// followed by one of `ns`, `us`, `µs`, `ms`, `s`, `m`, `h`. Returns nanoseconds.
pub(crate) fn parse_go_duration(text: &str) -> Option<u64> {
    const UNITS: [(&str, f64); 8] = [
        ("ns", 1.0),
        ("us", 1e3),
        ("µs", 1e3),
        ("μs", 1e3),
        ("ms", 1e6),
        ("s", 1e9),
        ("m", 60e9),
        ("h", 3600e9),
    ];
    if text.is_empty() {
        return None;
    }
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let (unit, scale) = UNITS.iter().find(|(unit, _)| rest.starts_with(unit))?;
        rest = &rest[unit.len()..];
        total += number * scale;
    }
    (total < u64::MAX as f64).then_some(total as u64)
}

/// When each message with a TTL falls due, soonest first.
#[derive(Debug, Default)]
pub struct TtlIndex {
    due: BTreeSet<(u64, u64)>,
}

impl TtlIndex {
    /// Remembers that message `seq`, stored at `ts_ns`, goes after `ttl_ns`.
    pub fn insert(&mut self, seq: u64, ts_ns: u64, ttl_ns: u64) {
        self.due.insert((ts_ns.saturating_add(ttl_ns), seq));
    }

    /// The soonest moment a message falls due.
    pub fn next_due_ns(&self) -> Option<u64> {
        self.due.first().map(|(at, _)| *at)
    }

    /// Takes the messages due at `now_ns`, in the order they fell due.
    pub fn take_due(&mut self, now_ns: u64) -> Vec<u64> {
        let later = self.due.split_off(&(now_ns.saturating_add(1), 0));
        let due = std::mem::replace(&mut self.due, later);
        due.into_iter().map(|(_, seq)| seq).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.due.is_empty()
    }

    pub fn clear(&mut self) {
        self.due.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn ttl_values_are_read_as_nats_server_reads_them() {
        let cases: [(&str, Option<MsgTtl>); 19] = [
            ("1", Some(MsgTtl::After(SEC))),
            (" 7", Some(MsgTtl::After(7 * SEC))),
            ("never", Some(MsgTtl::Never)),
            ("NEVER", Some(MsgTtl::Never)),
            ("1h", Some(MsgTtl::After(3600 * SEC))),
            ("1h30m", Some(MsgTtl::After(5400 * SEC))),
            ("1.5s", Some(MsgTtl::After(SEC))),
            ("1.9s", Some(MsgTtl::After(SEC))),
            ("+5", None),
            ("1e3", None),
            ("2m30s", Some(MsgTtl::After(150 * SEC))),
            ("1000ms", Some(MsgTtl::After(SEC))),
            ("0", None),
            ("-1", None),
            ("500ms", None),
            ("5S", None),
            ("1d", None),
            ("x", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_ttl(text.as_bytes()), want, "{text:?}");
        }
    }

    #[test]
    fn the_index_hands_out_what_is_due_in_order() {
        let mut index = TtlIndex::default();
        index.insert(3, 10 * SEC, 5 * SEC);
        index.insert(1, 10 * SEC, 2 * SEC);
        index.insert(2, 10 * SEC, 5 * SEC);
        assert_eq!(index.next_due_ns(), Some(12 * SEC));
        assert_eq!(index.take_due(11 * SEC), Vec::<u64>::new());
        assert_eq!(index.take_due(12 * SEC), vec![1]);
        assert_eq!(index.take_due(20 * SEC), vec![2, 3]);
        assert!(index.is_empty());
    }
}
