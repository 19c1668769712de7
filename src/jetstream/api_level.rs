//! The JetStream API level (nats-server 2.11+): a number a client may require of the server
//! with the `Nats-Required-Api-Level` request header, shown as `api_lvl` in INFO and
//! `api.level` in `$JS.API.INFO`. Level 1 is 2.11's feature set (per-message TTL, subject
//! delete markers, consumer pause and priority groups), level 2 is 2.12's (counters, atomic
//! batches, schedules, async persist mode), level 3 adds the snapshot `window_size`; jetlog
//! serves all three. Level 4 (2.14: fast-ingest batches, which jetlog serves, and the
//! `flow_control` ack policy, which it does not) is not all built, so a request that
//! requires it is refused, as nats-server refuses one that requires more than it has.

use super::error::ApiError;
use crate::protocol::headers::header_value;

/// The API level jetlog serves in full.
pub const JS_API_LEVEL: u32 = 3;

/// The request header naming the level a request needs.
pub const REQUIRED_API_LEVEL_HEADER: &[u8] = b"Nats-Required-Api-Level";

/// Whether a request with header block `headers` requires more than `JS_API_LEVEL`. A value
/// that is not a number counts as unmet, as in nats-server.
pub fn required_level_unmet(headers: Option<&[u8]>) -> bool {
    let Some(value) = headers.and_then(|h| header_value(h, REQUIRED_API_LEVEL_HEADER)) else {
        return false;
    };
    std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok())
        .is_none_or(|level| level > JS_API_LEVEL)
}

/// nats-server's JSON error for an unmet required level.
pub fn required_level_error() -> ApiError {
    ApiError::new(412, 10185, "JetStream minimum api level required")
}

/// The status a pull request (`MSG.NEXT`) gets instead.
pub const REQUIRED_LEVEL_STATUS: (u16, &str) = (412, "Required Api Level");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_required_level_above_ours_or_not_a_number_is_unmet() {
        let block = |v: &str| format!("NATS/1.0\r\nNats-Required-Api-Level: {v}\r\n\r\n");
        assert!(!required_level_unmet(None));
        assert!(!required_level_unmet(Some(b"NATS/1.0\r\nOther: 1\r\n\r\n")));
        assert!(!required_level_unmet(Some(block("0").as_bytes())));
        assert!(!required_level_unmet(Some(block("1").as_bytes())));
        assert!(!required_level_unmet(Some(block("3").as_bytes())));
        assert!(required_level_unmet(Some(block("4").as_bytes())));
        assert!(required_level_unmet(Some(block("x").as_bytes())));
    }
}
