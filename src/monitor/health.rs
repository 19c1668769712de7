//! `/healthz`: `{"status":"ok"}` while the server serves, 503 once JetStream is shutting
//! down or, in a cluster, while the meta group has had no leader for 10 s, with
//! nats-server's `HealthStatus` fields and words. `js-enabled-only=true` only asks whether
//! JetStream is enabled, which in jetlog it always is.

use hyper::StatusCode;
use serde::Serialize;

use super::query::Query;
use super::MonitorState;

#[derive(Serialize)]
pub struct HealthStatus {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub fn healthz(monitor: &MonitorState, query: &Query) -> (StatusCode, HealthStatus) {
    let enabled_only = match query.flag("js-enabled-only") {
        Ok(flag) => flag,
        Err(err) => return unavailable(StatusCode::BAD_REQUEST, err.to_string()),
    };
    if !enabled_only && monitor.view.jetstream_stopping() {
        return unavailable(
            StatusCode::SERVICE_UNAVAILABLE,
            "JetStream is shutting down".to_string(),
        );
    }
    if let Some(error) = monitor
        .view
        .clustered_js_unhealthy()
        .filter(|_| !enabled_only)
    {
        return unavailable(StatusCode::SERVICE_UNAVAILABLE, error.to_string());
    }
    let ok = HealthStatus {
        status: "ok",
        status_code: None,
        error: None,
    };
    (StatusCode::OK, ok)
}

fn unavailable(status: StatusCode, error: String) -> (StatusCode, HealthStatus) {
    let health = HealthStatus {
        status: if status == StatusCode::BAD_REQUEST {
            "error"
        } else {
            "unavailable"
        },
        status_code: Some(status.as_u16()),
        error: Some(error),
    };
    (status, health)
}
