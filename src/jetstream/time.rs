//! Timestamps as the JetStream JSON carries them: RFC 3339 in UTC with up to nine fractional
//! digits, trailing zeros trimmed (Go's `time.RFC3339Nano`), and Go's zero time
//! `0001-01-01T00:00:00Z` for "never". Written here rather than pulled in from a date crate
//! because this one format is all the API needs.

/// Go's zero `time.Time`, which nats-server emits instead of omitting a field.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

const NANOS_PER_SEC: i64 = 1_000_000_000;
const SECS_PER_DAY: i64 = 86_400;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Formats nanoseconds since the Unix epoch; `None` is the zero time.
pub fn format_rfc3339(unix_nanos: Option<i64>) -> String {
    let Some(ns) = unix_nanos else {
        return ZERO_TIME.to_string();
    };
    let secs = ns.div_euclid(NANOS_PER_SEC);
    let frac = ns.rem_euclid(NANOS_PER_SEC);
    let (year, month, day) = civil_from_days(secs.div_euclid(SECS_PER_DAY));
    let tod = secs.rem_euclid(SECS_PER_DAY);
    let mut out = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        tod / 3600,
        tod % 3600 / 60,
        tod % 60
    );
    if frac != 0 {
        let digits = format!("{frac:09}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Formats nanoseconds since the Unix epoch as Go's log package does with microseconds
/// (`2006/01/02 15:04:05.000000`), in UTC: the timestamp of nats-server's log lines.
pub fn format_log_time(unix_nanos: i64) -> String {
    let secs = unix_nanos.div_euclid(NANOS_PER_SEC);
    let micros = unix_nanos.rem_euclid(NANOS_PER_SEC) / 1000;
    let (year, month, day) = civil_from_days(secs.div_euclid(SECS_PER_DAY));
    let tod = secs.rem_euclid(SECS_PER_DAY);
    format!(
        "{year:04}/{month:02}/{day:02} {:02}:{:02}:{:02}.{micros:06}",
        tod / 3600,
        tod % 3600 / 60,
        tod % 60
    )
}

/// Parses an RFC 3339 time (any offset) into nanoseconds since the Unix epoch; the zero time
/// (year 1) gives `None`.
pub fn parse_rfc3339(text: &str) -> Result<Option<i64>, String> {
    let bad = || format!("invalid time {text:?}: expected RFC 3339, e.g. 2024-01-02T03:04:05Z");
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return Err(bad());
    }
    let num = |range: std::ops::Range<usize>| -> Result<i64, String> {
        text.get(range)
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(bad)
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(bad());
    }
    let mut rest = &text[19..];
    let mut frac_ns = 0i64;
    if let Some(after_dot) = rest.strip_prefix('.') {
        let digits = after_dot.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return Err(bad());
        }
        frac_ns =
            after_dot[..digits].parse::<i64>().map_err(|_| bad())? * 10i64.pow(9 - digits as u32);
        rest = &after_dot[digits..];
    }
    // Matched as bytes: slicing the text at fixed offsets panicked when a multi-byte
    // character straddled one (found by the `js_api_request` fuzz target, through a consumer's
    // `opt_start_time`; the panic ended the JetStream API thread).
    let two_digits = |a: u8, b: u8| -> Result<i64, String> {
        if a.is_ascii_digit() && b.is_ascii_digit() {
            Ok(i64::from(a - b'0') * 10 + i64::from(b - b'0'))
        } else {
            Err(bad())
        }
    };
    let offset_secs = match rest.as_bytes() {
        b"Z" | b"z" => 0,
        &[sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let secs = two_digits(h1, h2)? * 3600 + two_digits(m1, m2)? * 60;
            if sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        _ => return Err(bad()),
    };
    if year == 1
        && month == 1
        && day == 1
        && hour == 0
        && minute == 0
        && second == 0
        && frac_ns == 0
    {
        return Ok(None);
    }
    let secs =
        days_from_civil(year, month, day) * SECS_PER_DAY + hour * 3600 + minute * 60 + second
            - offset_secs;
    secs.checked_mul(NANOS_PER_SEC)
        .and_then(|ns| ns.checked_add(frac_ns))
        .map(Some)
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go_rfc3339_nano() {
        assert_eq!(format_rfc3339(None), ZERO_TIME);
        assert_eq!(format_rfc3339(Some(0)), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_rfc3339(Some(1_700_000_000_123_000_000)),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(
            format_rfc3339(Some(951_782_400_000_000_001)),
            "2000-02-29T00:00:00.000000001Z"
        );
    }

    #[test]
    fn parses_what_it_formats_and_offsets() {
        for ns in [
            0i64,
            1_700_000_000_123_000_000,
            951_782_400_000_000_001,
            4_102_444_800_000_000_000,
        ] {
            assert_eq!(parse_rfc3339(&format_rfc3339(Some(ns))), Ok(Some(ns)));
        }
        assert_eq!(parse_rfc3339(ZERO_TIME), Ok(None));
        assert_eq!(parse_rfc3339("1970-01-01T01:00:00+01:00"), Ok(Some(0)));
        assert!(parse_rfc3339("yesterday").is_err());
        assert!(parse_rfc3339("2024-13-01T00:00:00Z").is_err());
    }

    #[test]
    fn a_multi_byte_character_in_the_offset_is_refused_not_a_panic() {
        for text in [
            "2024-01-02T03:04:05é0:00",
            "2024-01-02T03:04:05+0é00",
            "2024-01-02T03:04:05+01:é0",
            "2024-01-02T03:04:05+1:000",
            "2024-01-02T03:04:05.5€",
        ] {
            assert!(parse_rfc3339(text).is_err(), "{text}");
        }
        assert_eq!(
            parse_rfc3339("1970-01-01T00:00:00-00:30"),
            Ok(Some(1_800_000_000_000))
        );
    }

    #[test]
    fn log_time_has_go_log_shape() {
        // 2009-11-10 23:00:00.123456789 UTC, Go's playground time.
        let ns = 1_257_894_000_123_456_789;
        assert_eq!(format_log_time(ns), "2009/11/10 23:00:00.123456");
        assert_eq!(format_log_time(0), "1970/01/01 00:00:00.000000");
    }
}
