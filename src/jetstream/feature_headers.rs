//! Publish headers of features from nats-server 2.11–2.14 that jetlog's streams do not have
//! yet: per-message TTL (`Nats-TTL`), counters (`Nats-Incr`), atomic batches
//! (`Nats-Batch-Id`) and schedules (`Nats-Schedule`). A stream that does not enable a feature
//! refuses a message asking for it, with nats-server's error (probed on 2.15.1); jetlog refuses
//! the settings that would enable them, so every stream refuses these headers, instead of
//! storing the message as if the header meant nothing.

use super::error::ApiError;
use crate::protocol::headers::header_value;

/// The shortest per-message TTL nats-server accepts.
const MIN_TTL_NS: u128 = 1_000_000_000;

/// The refusal for the first feature header in `headers`, if any.
pub fn check_feature_headers(headers: &[u8]) -> Result<(), ApiError> {
    if let Some(ttl) = header_value(headers, b"Nats-TTL") {
        let valid = std::str::from_utf8(ttl).ok().is_some_and(is_valid_ttl);
        return Err(if valid {
            ApiError::new(400, 10166, "per-message TTL is disabled")
        } else {
            ApiError::new(400, 10165, "invalid per-message TTL")
        });
    }
    if header_value(headers, b"Nats-Incr").is_some() {
        return Err(ApiError::new(400, 10168, "message counters is disabled"));
    }
    if header_value(headers, b"Nats-Batch-Id").is_some() {
        return Err(ApiError::new(400, 10174, "atomic publish is disabled"));
    }
    if header_value(headers, b"Nats-Schedule").is_some() {
        return Err(ApiError::new(400, 10188, "message schedules is disabled"));
    }
    Ok(())
}

/// `never`, a whole number of seconds (at least 1), or a Go duration of at least 1 s.
fn is_valid_ttl(text: &str) -> bool {
    let text = text.trim();
    if text == "never" {
        return true;
    }
    if let Ok(secs) = text.parse::<i64>() {
        return secs >= 1;
    }
    parse_go_duration(text).is_some_and(|ns| ns >= MIN_TTL_NS)
}

/// Go's `time.ParseDuration` for non-negative values: numbers with optional fractions, each
/// followed by one of `ns`, `us`, `µs`, `ms`, `s`, `m`, `h`. Returns nanoseconds.
fn parse_go_duration(text: &str) -> Option<u128> {
    const UNITS: [(&str, u128); 8] = [
        ("ns", 1),
        ("us", 1_000),
        ("µs", 1_000),
        ("μs", 1_000),
        ("ms", 1_000_000),
        ("s", 1_000_000_000),
        ("m", 60_000_000_000),
        ("h", 3_600_000_000_000),
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
        total += number * *scale as f64;
    }
    Some(total as u128)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(header: &str) -> Option<(u16, String)> {
        let block = format!("NATS/1.0\r\n{header}\r\n\r\n");
        check_feature_headers(block.as_bytes())
            .err()
            .map(|e| (e.err_code, e.description))
    }

    #[test]
    fn ttl_values_are_told_apart_as_nats_server_does() {
        for valid in ["1", "never", "1h", "1.5s", "2m30s", "1000ms"] {
            assert_eq!(
                refusal(&format!("Nats-TTL: {valid}")).map(|r| r.0),
                Some(10166),
                "{valid}"
            );
        }
        for invalid in ["0", "-1", "500ms", "5S", "1d", "x", ""] {
            assert_eq!(
                refusal(&format!("Nats-TTL: {invalid}")).map(|r| r.0),
                Some(10165),
                "{invalid}"
            );
        }
    }

    #[test]
    fn each_feature_header_gets_its_error_and_others_pass() {
        assert_eq!(refusal("Nats-Incr: 1").map(|r| r.0), Some(10168));
        assert_eq!(refusal("Nats-Batch-Id: b").map(|r| r.0), Some(10174));
        assert_eq!(
            refusal("Nats-Schedule: @every 1s"),
            Some((10188, "message schedules is disabled".into()))
        );
        assert_eq!(refusal("Nats-Schedule-Target: a.b"), None);
        assert_eq!(refusal("Nats-Msg-Id: 1"), None);
    }
}
