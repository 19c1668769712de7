//! The `Nats-Schedule` patterns of message schedules (ADR-51) and when each fires next:
//! `@at <RFC 3339>`, `@every <Go duration>`, six-field cron (`sec min hour dom month dow`) and
//! its shortcuts, read as nats-server 2.14+ reads them (`docs/msg-schedules-facts.md` §2).
//! Times are nanoseconds since the Unix epoch, in UTC.

use super::msg_ttl::parse_go_duration;
use super::time::{civil_from_days, days_from_civil, parse_rfc3339};

const NS: i64 = 1_000_000_000;
const DAY_SECS: i64 = 86_400;
/// A cron pattern that matches nothing this far ahead is refused.
const CRON_HORIZON_SECS: i64 = 5 * 366 * DAY_SECS;
/// The shortest `@every`.
const MIN_EVERY_NS: i64 = NS;

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// Once, at this time.
    At(i64),
    /// Repeatedly, this many nanoseconds apart.
    Every(i64),
    Cron(Box<Cron>),
}

/// Why a pattern is refused.
#[derive(Debug, PartialEq, Eq)]
pub struct InvalidPattern;

/// Reads a `Nats-Schedule` value. `Ok(None)` is "not a schedule": an empty value, or `@at`
/// Go's zero time, which nats-server stores as a plain message.
pub fn parse_pattern(text: &str) -> Result<Option<Pattern>, InvalidPattern> {
    let text = text.trim_start();
    if text.is_empty() {
        return Ok(None);
    }
    if let Some(at) = text.strip_prefix("@at ") {
        return match parse_rfc3339(at) {
            Ok(None) => Ok(None),
            Ok(Some(ns)) => Ok(Some(Pattern::At(ns))),
            Err(_) => Err(InvalidPattern),
        };
    }
    if let Some(every) = text.strip_prefix("@every ") {
        let ns = parse_go_duration(every).ok_or(InvalidPattern)?;
        let ns = i64::try_from(ns).map_err(|_| InvalidPattern)?;
        return match ns >= MIN_EVERY_NS {
            true => Ok(Some(Pattern::Every(ns))),
            false => Err(InvalidPattern),
        };
    }
    let expanded = match text {
        "@yearly" | "@annually" => "0 0 0 1 1 *",
        "@monthly" => "0 0 0 1 * *",
        "@weekly" => "0 0 0 * * 0",
        "@daily" | "@midnight" => "0 0 0 * * *",
        "@hourly" => "0 0 * * * *",
        other if other.starts_with('@') => return Err(InvalidPattern),
        other => other,
    };
    let cron = Cron::parse(expanded)?;
    // A pattern that never comes round (the 31st of February) is refused up front.
    cron.next_after(0).ok_or(InvalidPattern)?;
    Ok(Some(Pattern::Cron(Box::new(cron))))
}

/// Go's `time.Round(time.Second)`: halves round up.
fn round_to_second(ns: i64) -> i64 {
    (ns + NS / 2).div_euclid(NS) * NS
}

impl Pattern {
    /// The first firing of a schedule stored at `stored_ns`.
    pub fn first(&self, stored_ns: i64, now_ns: i64) -> Option<i64> {
        match self {
            Pattern::At(at) => Some(*at),
            Pattern::Every(_) | Pattern::Cron(_) => self.after_firing(stored_ns, now_ns),
        }
    }

    /// The firing after one at `fired_ns` (`None` for `@at`, which fires once). A time that
    /// has already passed (the server was down) is not caught up on: the next one counts from
    /// now, as nats-server does after a crash.
    pub fn after_firing(&self, fired_ns: i64, now_ns: i64) -> Option<i64> {
        match self {
            Pattern::At(_) => None,
            Pattern::Every(every) => {
                let next = round_to_second(fired_ns) + every;
                Some(match next < now_ns {
                    true => round_to_second(now_ns) + every,
                    false => next,
                })
            }
            Pattern::Cron(cron) => {
                let base = fired_ns.max(now_ns).div_euclid(NS);
                cron.next_after(base).map(|secs| secs * NS)
            }
        }
    }
}

/// A six-field cron pattern as bit sets of the values each field allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    seconds: u64,
    minutes: u64,
    hours: u64,
    /// Days of the month, bit 1 to 31.
    days: u64,
    /// Months, bit 1 to 12.
    months: u64,
    /// Days of the week, bit 0 (Sunday) to 6.
    weekdays: u64,
    /// Whether the day-of-month and day-of-week fields were `*` (or `?`): when both are
    /// restricted, a day matches if either does.
    any_day: bool,
    any_weekday: bool,
}

const MONTH_NAMES: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAY_NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

impl Cron {
    fn parse(text: &str) -> Result<Self, InvalidPattern> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [sec, min, hour, dom, month, dow] = fields[..] else {
            return Err(InvalidPattern);
        };
        Ok(Cron {
            seconds: field(sec, 0, 59, &[])?,
            minutes: field(min, 0, 59, &[])?,
            hours: field(hour, 0, 23, &[])?,
            days: field(dom, 1, 31, &[])?,
            months: field(month, 1, 12, &MONTH_NAMES)?,
            weekdays: field(dow, 0, 6, &DAY_NAMES)?,
            any_day: dom == "*" || dom == "?",
            any_weekday: dow == "*" || dow == "?",
        })
    }

    fn day_matches(&self, day: i64, weekday: i64) -> bool {
        let by_day = self.days & (1 << day) != 0;
        let by_weekday = self.weekdays & (1 << weekday) != 0;
        match (self.any_day, self.any_weekday) {
            (false, false) => by_day || by_weekday,
            _ => by_day && by_weekday,
        }
    }

    /// The first matching second strictly after `base_secs` (Unix seconds, UTC), if one
    /// comes within the horizon.
    pub fn next_after(&self, base_secs: i64) -> Option<i64> {
        let limit = base_secs + CRON_HORIZON_SECS;
        let mut t = base_secs + 1;
        while t <= limit {
            let days = t.div_euclid(DAY_SECS);
            let tod = t.rem_euclid(DAY_SECS);
            let (year, month, day) = civil_from_days(days);
            // 1970-01-01 was a Thursday.
            let weekday = (days + 4).rem_euclid(7);
            if self.months & (1 << month) == 0 {
                let (year, month) = if month == 12 {
                    (year + 1, 1)
                } else {
                    (year, month + 1)
                };
                t = days_from_civil(year, month, 1) * DAY_SECS;
                continue;
            }
            if !self.day_matches(day, weekday) {
                t = (days + 1) * DAY_SECS;
                continue;
            }
            let (hour, minute, second) = (tod / 3600, tod % 3600 / 60, tod % 60);
            if self.hours & (1 << hour) == 0 {
                t = days * DAY_SECS + (hour + 1) * 3600;
                continue;
            }
            if self.minutes & (1 << minute) == 0 {
                t = days * DAY_SECS + hour * 3600 + (minute + 1) * 60;
                continue;
            }
            if self.seconds & (1 << second) == 0 {
                t += 1;
                continue;
            }
            return Some(t);
        }
        None
    }
}

/// One field: a comma list of `*`, `?`, `N`, `N-M`, each optionally `/step`; a bare `N/step`
/// runs to the field's maximum. `names` are three-letter aliases for `min..`, in any case.
fn field(text: &str, min: u32, max: u32, names: &[&str]) -> Result<u64, InvalidPattern> {
    let value = |v: &str| -> Result<u32, InvalidPattern> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(v)) {
            return Ok(min + i as u32);
        }
        let n: u32 = v.parse().map_err(|_| InvalidPattern)?;
        match (min..=max).contains(&n) {
            true => Ok(n),
            false => Err(InvalidPattern),
        }
    };
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step.parse().map_err(|_| InvalidPattern)?;
                if step == 0 {
                    return Err(InvalidPattern);
                }
                (range, Some(step))
            }
            None => (part, None),
        };
        let (low, high) = match range {
            "*" | "?" => (min, max),
            _ => match range.split_once('-') {
                Some((a, b)) => (value(a)?, value(b)?),
                None if step.is_some() => (value(range)?, max),
                None => {
                    let n = value(range)?;
                    (n, n)
                }
            },
        };
        if low > high {
            return Err(InvalidPattern);
        }
        let mut n = low;
        while n <= high {
            bits |= 1 << n;
            n += step.unwrap_or(1);
        }
    }
    Ok(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(text: &str) -> i64 {
        parse_rfc3339(text).unwrap().unwrap() / NS
    }

    fn cron(text: &str) -> Cron {
        match parse_pattern(text) {
            Ok(Some(Pattern::Cron(c))) => *c,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn patterns_read_as_nats_server_reads_them() {
        assert_eq!(parse_pattern(""), Ok(None));
        assert_eq!(parse_pattern("@at 0001-01-01T00:00:00Z"), Ok(None));
        assert_eq!(
            parse_pattern("@at 2026-12-04T20:35:15Z"),
            Ok(Some(Pattern::At(secs("2026-12-04T20:35:15Z") * NS)))
        );
        assert_eq!(parse_pattern("@every 1s"), Ok(Some(Pattern::Every(NS))));
        for bad in [
            "@at 2026-12-04T20:35:15",
            "@every 500ms",
            "@every 0s",
            "@every -5s",
            "@HOURLY",
            "@hourly ",
            "@reboot",
            "* * * * *",
            "* * * * * * *",
            "0 0 0 31 2 *",
            "60 * * * * *",
            "* * * * * 7",
            "*/0 * * * * *",
        ] {
            assert_eq!(parse_pattern(bad), Err(InvalidPattern), "{bad:?}");
        }
        assert_eq!(cron("@weekly"), cron("0 0 0 * * sun"));
        assert_eq!(cron("0 0 0 1 JAN *"), cron("@yearly"));
    }

    #[test]
    fn every_rounds_to_whole_seconds_and_skips_what_was_missed() {
        let every = Pattern::Every(1_500_000_000);
        let t0 = secs("2026-12-04T20:35:59Z") * NS + 500_000_000;
        // 59.5 → 01.5 → 03.5: each next time counts from the last one rounded.
        let first = every.first(t0, t0).unwrap();
        assert_eq!(first, secs("2026-12-04T20:36:01Z") * NS + 500_000_000);
        let second = every.after_firing(first, first).unwrap();
        assert_eq!(second, secs("2026-12-04T20:36:03Z") * NS + 500_000_000);
        let late = secs("2026-12-04T21:00:00Z") * NS;
        assert_eq!(every.after_firing(first, late), Some(late + 1_500_000_000));
        assert_eq!(Pattern::At(5).after_firing(5, 5), None);
    }

    #[test]
    fn cron_finds_the_next_matching_second() {
        let base = secs("2026-12-04T20:35:25Z");
        assert_eq!(
            cron("*/2 * * * * *").next_after(base),
            Some(secs("2026-12-04T20:35:26Z"))
        );
        assert_eq!(
            cron("@hourly").next_after(base),
            Some(secs("2026-12-04T21:00:00Z"))
        );
        assert_eq!(
            cron("@monthly").next_after(base),
            Some(secs("2027-01-01T00:00:00Z"))
        );
        // 2026-12-04 is a Friday: Mondays at 09:30, and the 1st or 15th, or any Monday.
        assert_eq!(
            cron("0 30 9 * * mon").next_after(base),
            Some(secs("2026-12-07T09:30:00Z"))
        );
        assert_eq!(
            cron("0 0 12 15 * 1").next_after(base),
            Some(secs("2026-12-07T12:00:00Z"))
        );
        assert_eq!(
            cron("0 0 0 29 2 *").next_after(base),
            Some(secs("2028-02-29T00:00:00Z"))
        );
        assert_eq!(
            cron("5-10/5,30 0 0 1 1 *").next_after(base),
            Some(secs("2027-01-01T00:00:05Z"))
        );
    }
}
