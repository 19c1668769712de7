//! Size suffixes and durations as nats-server reads them.
//!
//! Sizes follow `conf/parse.go`: a bare letter is a power of 1000 (`k`, `m`, `g`, `t`, `p`,
//! `e`), the letter with `b`, `i` or `ib` a power of 1024 (`kb`, `ki`, `kib`), case-insensitive.
//! Durations follow Go's `time.ParseDuration`, which nats-server applies to duration options:
//! decimal numbers with units `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`, concatenated (`1h30m`).

use std::time::Duration;

/// The factor of a size suffix, or `None` when the suffix is not one.
pub(super) fn size_multiplier(suffix: &str) -> Option<i64> {
    let suffix = suffix.to_ascii_lowercase();
    let mut letters = suffix.chars();
    let power = match letters.next()? {
        'k' => 1,
        'm' => 2,
        'g' => 3,
        't' => 4,
        'p' => 5,
        'e' => 6,
        _ => return None,
    };
    let base: i64 = match letters.as_str() {
        "" => 1000,
        "b" | "i" | "ib" => 1024,
        _ => return None,
    };
    Some(base.pow(power))
}

/// Nanoseconds per unit of a Go duration.
fn unit_nanos(unit: &str) -> Option<f64> {
    Some(match unit {
        "ns" => 1.0,
        "us" | "µs" | "μs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        _ => return None,
    })
}

/// Parses a Go duration such as `2m`, `1.5s` or `1h30m`. `0` alone is zero; negative
/// durations are refused, since no option takes one.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || {
        format!("invalid duration {text:?}: expected a number and a unit (ns, us, ms, s, m, h), such as 2m or 1h30m")
    };
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text;
    let mut total_nanos = 0f64;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let value: f64 = number.parse().map_err(|_| invalid())?;
        let nanos = unit_nanos(unit).ok_or_else(invalid)?;
        total_nanos += value * nanos;
        rest = after;
    }
    if !total_nanos.is_finite() || total_nanos > u64::MAX as f64 {
        return Err(format!("duration {text:?} is out of range"));
    }
    Ok(Duration::from_nanos(total_nanos.round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn size_suffixes_follow_nats_server() {
        for (suffix, factor) in [
            ("k", 1000),
            ("K", 1000),
            ("kb", 1024),
            ("KB", 1024),
            ("ki", 1024),
            ("KiB", 1024),
            ("m", 1_000_000),
            ("mb", 1 << 20),
            ("MB", 1 << 20),
            ("g", 1_000_000_000),
            ("GB", 1 << 30),
            ("gib", 1 << 30),
            ("t", 1_000_000_000_000),
            ("tb", 1 << 40),
            ("e", 1_000_000_000_000_000_000),
        ] {
            assert_eq!(size_multiplier(suffix), Some(factor), "{suffix}");
        }
        for not_a_suffix in ["", "s", "kbb", "bk", "x", "mbi"] {
            assert_eq!(size_multiplier(not_a_suffix), None, "{not_a_suffix}");
        }
    }

    #[test]
    fn durations_follow_go() {
        for (text, expected) in [
            ("0", Duration::ZERO),
            ("2m", Duration::from_secs(120)),
            ("30s", Duration::from_secs(30)),
            ("1h", Duration::from_secs(3600)),
            ("1h30m", Duration::from_secs(5400)),
            ("500ms", Duration::from_millis(500)),
            ("1.5s", Duration::from_millis(1500)),
            ("250us", Duration::from_micros(250)),
            ("10ns", Duration::from_nanos(10)),
        ] {
            assert_eq!(parse_duration(text), Ok(expected), "{text}");
        }
        for bad in ["", "5", "2d", "fast", "m", "1..5s", "-1s", "1h 30m"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn whole_units_round_trip(n in 0u64..1_000_000, unit in 0usize..4) {
            let (suffix, seconds) = [("s", 1), ("m", 60), ("h", 3600), ("ms", 0)][unit];
            let expected = if suffix == "ms" {
                Duration::from_millis(n)
            } else {
                Duration::from_secs(n * seconds)
            };
            prop_assert_eq!(parse_duration(&format!("{n}{suffix}")), Ok(expected));
        }

        #[test]
        fn binary_sizes_are_powers_of_1024(n in 0i64..1_000_000, power in 1u32..4) {
            let suffix = ["", "KB", "MB", "GB"][power as usize];
            let factor = size_multiplier(suffix).unwrap();
            prop_assert_eq!(n * factor, n * 1024i64.pow(power));
        }
    }
}
