//! Human sizes and durations: parsing what users type, formatting what the server reports.
//!
//! Sizes use binary multiples whatever the spelling (`1KB`, `1K` and `1KiB` are all 1024
//! bytes), as the `nats` CLI does for stream limits, so a limit typed for one tool means the
//! same in the other. `-1` means unlimited where the server allows it.

use std::time::Duration;

use crate::cli::parse_duration;
use crate::jetstream::time::parse_rfc3339;

/// Multipliers for the size suffixes, longest spellings first so `KiB` is not read as `K`.
const SIZE_UNITS: &[(&str, u64)] = &[
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
    ("kb", 1 << 10),
    ("mb", 1 << 20),
    ("gb", 1 << 30),
    ("tb", 1 << 40),
    ("k", 1 << 10),
    ("m", 1 << 20),
    ("g", 1 << 30),
    ("t", 1 << 40),
    ("b", 1),
    ("", 1),
];

/// Parses a byte size such as `512`, `64KB`, `1.5GiB` or `-1` (unlimited).
pub fn parse_size(text: &str) -> Result<i64, String> {
    let trimmed = text.trim();
    if trimmed == "-1" {
        return Ok(-1);
    }
    let bad =
        || format!("invalid size {text:?}: expected a number and a unit such as 512KB or 1GB");
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let unit = unit.trim().to_ascii_lowercase();
    let multiplier = SIZE_UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|(_, m)| *m)
        .ok_or_else(bad)?;
    if let Ok(whole) = number.parse::<u64>() {
        return whole
            .checked_mul(multiplier)
            .and_then(|bytes| i64::try_from(bytes).ok())
            .ok_or_else(|| format!("invalid size {text:?}: too large"));
    }
    let value: f64 = number.parse().map_err(|_| bad())?;
    let bytes = (value * multiplier as f64).round();
    if !bytes.is_finite() || bytes >= i64::MAX as f64 {
        return Err(format!("invalid size {text:?}: too large"));
    }
    Ok(bytes as i64)
}

/// Parses a size that must fit the server's 32-bit fields (`max_msg_size`).
pub fn parse_size_i32(text: &str) -> Result<i32, String> {
    let bytes = parse_size(text)?;
    i32::try_from(bytes).map_err(|_| format!("invalid size {text:?}: at most 2GiB - 1 here"))
}

/// Parses a duration limit: `0` or `-1` mean none, otherwise as `parse_duration`.
pub fn parse_limit_duration(text: &str) -> Result<Duration, String> {
    match text.trim() {
        "-1" | "unlimited" => Ok(Duration::ZERO),
        other => parse_duration(other),
    }
}

/// A start time given as a duration back from `now_unix_nanos` (`1h`) or as RFC 3339.
pub fn parse_since(text: &str, now_unix_nanos: i64) -> Result<i64, String> {
    if let Ok(ago) = parse_duration(text) {
        let ago_nanos = i64::try_from(ago.as_nanos())
            .map_err(|_| format!("invalid start {text:?}: too far back"))?;
        return Ok(now_unix_nanos.saturating_sub(ago_nanos));
    }
    match parse_rfc3339(text) {
        Ok(Some(nanos)) => Ok(nanos),
        Ok(None) => Ok(0),
        Err(_) => Err(format!(
            "invalid start {text:?}: use a duration such as 1h or an RFC 3339 time such as \
             2024-01-02T03:04:05Z"
        )),
    }
}

/// Formats a byte count with binary units: `512 B`, `1.5 KiB`, `1.0 GiB`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Formats a configured size limit, where -1 (or 0 for some fields) means none.
pub fn format_limit_size(bytes: i64) -> String {
    match u64::try_from(bytes) {
        Ok(b) if b > 0 => format_size(b),
        _ => "unlimited".to_string(),
    }
}

/// Formats a configured count limit, where -1 (or 0) means none.
pub fn format_limit_count(count: i64) -> String {
    if count > 0 {
        count.to_string()
    } else {
        "unlimited".to_string()
    }
}

/// A duration as NATS JSON carries it: integer nanoseconds.
pub fn nanos(duration: Duration) -> anyhow::Result<i64> {
    i64::try_from(duration.as_nanos())
        .map_err(|_| anyhow::anyhow!("duration {duration:?} is too long"))
}

/// Formats a duration the way Go prints one, which is what NATS users read everywhere:
/// `1h0m0s`, `2m30s`, `1.5s`, `250ms`.
pub fn format_duration(duration: Duration) -> String {
    let total_ms = duration.as_millis();
    if total_ms == 0 {
        return if duration.is_zero() {
            "0s".to_string()
        } else {
            format!("{}µs", duration.as_micros())
        };
    }
    if total_ms < 1000 {
        return format!("{total_ms}ms");
    }
    let secs = duration.as_secs();
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let frac_ms = duration.subsec_millis();
    let seconds = if frac_ms == 0 {
        format!("{s}s")
    } else {
        let digits = format!("{frac_ms:03}");
        format!("{s}.{}s", digits.trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => seconds,
        (0, m) => format!("{m}m{seconds}"),
        (h, m) => format!("{h}h{m}m{seconds}"),
    }
}

/// Formats a duration limit, where zero means none.
pub fn format_limit_duration(duration: Duration) -> String {
    if duration.is_zero() {
        "unlimited".to_string()
    } else {
        format_duration(duration)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_binary_multiples_in_any_spelling() {
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("1KB"), Ok(1024));
        assert_eq!(parse_size("1k"), Ok(1024));
        assert_eq!(parse_size("1KiB"), Ok(1024));
        assert_eq!(parse_size("1MB"), Ok(1 << 20));
        assert_eq!(parse_size("1GB"), Ok(1 << 30));
        assert_eq!(parse_size("1.5 GiB"), Ok(3 << 29));
        assert_eq!(parse_size("2TB"), Ok(2 << 40));
        assert_eq!(parse_size("-1"), Ok(-1));
    }

    #[test]
    fn bad_sizes_are_refused_with_the_input_named() {
        for bad in ["", "GB", "1XB", "1.2.3MB", "-5", "ten"] {
            let err = parse_size(bad).expect_err(bad);
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
        assert!(parse_size("99999999999TB").is_err());
        assert!(parse_size_i32("2GB").is_err());
        assert_eq!(parse_size_i32("1MB"), Ok(1 << 20));
    }

    #[test]
    fn since_takes_a_duration_back_or_a_time() {
        let now = 10_000_000_000_000;
        assert_eq!(parse_since("1h", now), Ok(now - 3_600_000_000_000));
        assert_eq!(parse_since("1970-01-01T00:00:01Z", now), Ok(1_000_000_000));
        assert!(parse_since("yesterday", now).is_err());
    }

    #[test]
    fn durations_print_like_go() {
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_secs(150)), "2m30s");
        assert_eq!(format_duration(Duration::from_secs(86_400)), "24h0m0s");
        assert_eq!(format_limit_duration(Duration::ZERO), "unlimited");
    }

    #[test]
    fn sizes_print_with_binary_units() {
        assert_eq!(format_size(10), "10 B");
        assert_eq!(format_size(1536), "1.5 KiB");
        assert_eq!(format_size(1 << 30), "1.0 GiB");
        assert_eq!(format_limit_size(-1), "unlimited");
        assert_eq!(format_limit_count(0), "unlimited");
    }
}
