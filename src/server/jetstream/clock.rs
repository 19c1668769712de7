//! The stream clock: the wall clock, in nanoseconds since the Unix epoch, as message
//! timestamps, duplicate windows, ages and ack deadlines read it.
//!
//! For fault tests it can be set off from the machine's clock by a fixed amount per server
//! ([`FAULT_SKEW_ENV`]), so that servers of one cluster disagree about the time as servers
//! whose clocks drifted or jumped do: when a stream's leadership moves between them, the
//! stream sees its clock jump. A server started with a skew says so in its log.

use std::sync::atomic::{AtomicI64, Ordering};

/// `NAME=MILLIS,...`: the server named NAME runs its stream clock MILLIS (signed) off the
/// machine's. Servers whose name is not listed run on the machine's clock.
pub const FAULT_SKEW_ENV: &str = "JETLOG_FAULT_CLOCK_SKEW";

static SKEW_NS: AtomicI64 = AtomicI64::new(0);

/// Nanoseconds since the Unix epoch, plus this server's skew: the stream clock.
pub fn now_ns() -> u64 {
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    wall.saturating_add_signed(SKEW_NS.load(Ordering::Relaxed))
}

/// The skew [`FAULT_SKEW_ENV`]'s value `spec` gives server `name`, in milliseconds; an
/// error names the entry that does not parse.
pub fn skew_for(spec: &str, name: &str) -> Result<Option<i64>, String> {
    for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let parsed = entry
            .split_once('=')
            .and_then(|(who, ms)| Some((who.trim(), ms.trim().parse::<i64>().ok()?)));
        match parsed {
            Some((who, ms)) if who == name => return Ok(Some(ms)),
            Some(_) => {}
            None => {
                return Err(format!(
                    "{FAULT_SKEW_ENV}: {entry:?} is not NAME=MILLISECONDS"
                ))
            }
        }
    }
    Ok(None)
}

/// Sets this server's stream clock `millis` off the machine's (see the module doc).
pub fn set_skew(millis: i64) {
    SKEW_NS.store(millis.saturating_mul(1_000_000), Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_servers_skew_is_read_by_its_name() {
        let spec = "S0=0, S1=-90000,S2=+90000";
        assert_eq!(skew_for(spec, "S1"), Ok(Some(-90_000)));
        assert_eq!(skew_for(spec, "S2"), Ok(Some(90_000)));
        assert_eq!(skew_for(spec, "S9"), Ok(None));
        assert_eq!(skew_for("", "S0"), Ok(None));
        let bad = skew_for("S0=soon", "S0").expect_err("refused");
        assert!(
            bad.contains("\"S0=soon\" is not NAME=MILLISECONDS"),
            "{bad}"
        );
        assert!(skew_for("S0", "S1").is_err());
    }
}
