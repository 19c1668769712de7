//! Times as nats-server's monitoring JSON shows them: RFC 3339 instants and its compact
//! uptime strings (`1d2h3m4s`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::jetstream::time::format_rfc3339;

/// An instant as RFC 3339 with nanoseconds, as Go marshals `time.Time`.
pub fn rfc3339(at: SystemTime) -> String {
    let ns = at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    format_rfc3339(Some(ns))
}

/// nats-server's `myUptime`: whole seconds, with the larger units only once they are reached.
pub fn uptime(elapsed: Duration) -> String {
    let secs = elapsed.as_secs();
    let (mins, hours, days) = (secs / 60, secs / 3600, secs / 86_400);
    let years = days / 365;
    if years > 0 {
        format!(
            "{years}y{}d{}h{}m{}s",
            days % 365,
            hours % 24,
            mins % 60,
            secs % 60
        )
    } else if days > 0 {
        format!("{days}d{}h{}m{}s", hours % 24, mins % 60, secs % 60)
    } else if hours > 0 {
        format!("{hours}h{}m{}s", mins % 60, secs % 60)
    } else if mins > 0 {
        format!("{mins}m{}s", secs % 60)
    } else {
        format!("{secs}s")
    }
}

/// Time from `from` to `to`, zero if the clock stepped back.
pub fn since(from: SystemTime, to: SystemTime) -> Duration {
    to.duration_since(from).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_shows_units_from_the_largest_reached() {
        assert_eq!(uptime(Duration::from_secs(0)), "0s");
        assert_eq!(uptime(Duration::from_secs(61)), "1m1s");
        assert_eq!(uptime(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(uptime(Duration::from_secs(90_061)), "1d1h1m1s");
        assert_eq!(uptime(Duration::from_secs(366 * 86_400)), "1y1d0h0m0s");
    }

    #[test]
    fn rfc3339_keeps_nanoseconds() {
        let at = UNIX_EPOCH + Duration::new(1_700_000_000, 5);
        assert_eq!(rfc3339(at), "2023-11-14T22:13:20.000000005Z");
    }
}
