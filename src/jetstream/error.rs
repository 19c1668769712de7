//! JetStream API errors in nats-server's shape: `{"code","err_code","description"}`.
//!
//! The numbers are nats-server's (server/errors.json): clients key on `err_code` (nats.go
//! `JSErrCodeStreamNotFound`, async-nats `ErrorCode`), so each constructor here names the case
//! the way the server does and carries the exact code pair.

use serde::Serialize;

/// One API error as it is serialised inside a response's `error` field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{description} (err_code {err_code})")]
pub struct ApiError {
    /// HTTP-like status.
    pub code: u16,
    /// The stable JetStream error code.
    pub err_code: u16,
    pub description: String,
}

impl ApiError {
    pub fn new(code: u16, err_code: u16, description: impl Into<String>) -> Self {
        Self {
            code,
            err_code,
            description: description.into(),
        }
    }

    pub fn bad_request(detail: Option<&str>) -> Self {
        Self::new(
            400,
            10003,
            detail.map_or("bad request".into(), |d| format!("bad request: {d}")),
        )
    }

    pub fn invalid_json(err: impl std::fmt::Display) -> Self {
        Self::new(400, 10025, format!("invalid JSON: {err}"))
    }

    /// A publish that would take the server past `max_file_store`/`max_memory_store`.
    pub fn insufficient_resources() -> Self {
        Self::new(503, 10023, "insufficient resources")
    }

    /// A stream whose `max_bytes` does not fit in what the server-wide limit leaves.
    pub fn storage_resources_exceeded() -> Self {
        Self::new(500, 10047, "insufficient storage resources available")
    }

    pub fn stream_not_found() -> Self {
        Self::new(404, 10059, "stream not found")
    }

    pub fn stream_name_in_use() -> Self {
        Self::new(
            400,
            10058,
            "stream name already in use with a different configuration",
        )
    }

    pub fn stream_name_mismatch() -> Self {
        Self::new(400, 10056, "stream name in subject does not match request")
    }

    pub fn stream_invalid_config(detail: impl std::fmt::Display) -> Self {
        Self::new(500, 10052, detail.to_string())
    }

    /// nats-server's JSClusterNotAvailErr; here, the streams of the catalog are still opening
    /// at start past the wait a request is given.
    pub fn temporarily_unavailable() -> Self {
        Self::new(503, 10008, "JetStream system temporarily unavailable")
    }

    pub fn stream_subject_overlap() -> Self {
        Self::new(400, 10065, "subjects overlap with an existing stream")
    }

    pub fn replicas_not_supported() -> Self {
        Self::new(
            500,
            10074,
            "replicas > 1 not supported in non-clustered mode",
        )
    }

    pub fn stream_update(detail: impl std::fmt::Display) -> Self {
        Self::new(
            500,
            10052,
            format!("stream configuration update can not change {detail}"),
        )
    }

    pub fn max_streams() -> Self {
        Self::new(400, 10027, "maximum number of streams reached")
    }

    pub fn no_message_found() -> Self {
        Self::new(404, 10037, "no message found")
    }

    pub fn sequence_not_found(seq: u64) -> Self {
        Self::new(400, 10043, format!("sequence {seq} not found"))
    }

    pub fn sealed() -> Self {
        Self::new(400, 10109, "invalid operation on sealed stream")
    }

    pub fn msg_delete_failed(detail: impl std::fmt::Display) -> Self {
        Self::new(500, 10057, detail.to_string())
    }

    pub fn purge_failed(detail: impl std::fmt::Display) -> Self {
        Self::new(500, 10110, detail.to_string())
    }

    pub fn message_too_large() -> Self {
        Self::new(400, 10054, "message size exceeds maximum allowed")
    }

    pub fn store_failed(detail: impl std::fmt::Display) -> Self {
        Self::new(503, 10077, detail.to_string())
    }

    pub fn expected_stream_mismatch() -> Self {
        Self::new(400, 10060, "expected stream does not match")
    }

    pub fn wrong_last_sequence(actual: u64) -> Self {
        Self::new(400, 10071, format!("wrong last sequence: {actual}"))
    }

    pub fn wrong_last_msg_id(actual: &str) -> Self {
        Self::new(400, 10070, format!("wrong last msg ID: {actual}"))
    }

    pub fn rollup_failed(detail: impl std::fmt::Display) -> Self {
        Self::new(500, 10111, detail.to_string())
    }

    pub fn header_too_large() -> Self {
        Self::new(400, 10097, "header size exceeds maximum allowed of 64k")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_as_nats_server_does() {
        let json = serde_json::to_string(&ApiError::stream_not_found()).unwrap();
        assert_eq!(
            json,
            r#"{"code":404,"err_code":10059,"description":"stream not found"}"#
        );
        assert_eq!(
            ApiError::wrong_last_sequence(5).description,
            "wrong last sequence: 5"
        );
        assert_eq!(ApiError::bad_request(None).description, "bad request");
    }
}
