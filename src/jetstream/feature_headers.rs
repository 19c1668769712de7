//! The publish header of atomic batches (`Nats-Batch-Id`, see `stream_batch`), which a stream
//! must enable: a stream that does not refuses it with nats-server's error (probed on
//! 2.15.1), instead of storing the message as if the header meant nothing. And
//! `Nats-Stream-Source`, which only the server writes (on sourced copies, see
//! `stream_sources`): a publisher's would mislead where sources resume. (`Nats-TTL` is
//! checked by `msg_ttl`, `Nats-Incr` by `stream_counters`, `Nats-Schedule` by
//! `stream_schedules`.)

use super::error::ApiError;
use crate::protocol::headers::header_value;

/// The refusal for the first feature header in `headers`, if any.
pub fn check_feature_headers(headers: &[u8], allow_atomic: bool) -> Result<(), ApiError> {
    if header_value(headers, super::stream_sources::STREAM_SOURCE).is_some() {
        return Err(ApiError::new(
            400,
            10227,
            "message stream source header is not allowed",
        ));
    }
    if !allow_atomic && header_value(headers, b"Nats-Batch-Id").is_some() {
        return Err(ApiError::new(400, 10174, "atomic publish is disabled"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(header: &str) -> Option<(u16, String)> {
        let block = format!("NATS/1.0\r\n{header}\r\n\r\n");
        check_feature_headers(block.as_bytes(), false)
            .err()
            .map(|e| (e.err_code, e.description))
    }

    #[test]
    fn each_feature_header_gets_its_error_and_others_pass() {
        assert_eq!(refusal("Nats-Batch-Id: b").map(|r| r.0), Some(10174));
        assert_eq!(refusal("Nats-Schedule: @every 1s"), None);
        assert_eq!(refusal("Nats-Msg-Id: 1"), None);
    }
}
