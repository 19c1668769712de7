//! The API audit advisory (`io.nats.jetstream.advisory.v1.api_audit` on
//! `$JS.EVENT.ADVISORY.API`): every answered API request, with who asked, what they sent and
//! what they were told, in the requester's account, after the reply, and only when someone
//! listens. Facts: `docs/api-audit-facts.md`.

use serde::Serialize;

use crate::jetstream::consumer::fresh_id;
use crate::jetstream::time::format_rfc3339;
use crate::server::requester::{ClientInfo, Requester};

pub const AUDIT_SUBJECT: &str = "$JS.EVENT.ADVISORY.API";
const AUDIT_TYPE: &str = "io.nats.jetstream.advisory.v1.api_audit";

#[derive(Serialize)]
struct Audit<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: String,
    timestamp: String,
    server: &'a str,
    /// `null` when the request did not come from a client of this server.
    client: Option<ClientInfo<'a>>,
    subject: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    request: &'a str,
    response: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<&'a str>,
}

/// Whether nats-server audits this answer: all but a message a `STREAM.MSG.GET` found
/// (answered outside its API layer; a failed get is audited).
pub fn audited(subject: &str, failed: bool) -> bool {
    failed || !subject.starts_with("$JS.API.STREAM.MSG.GET.")
}

/// What one audit says.
pub struct Answered<'a> {
    pub server: &'a str,
    pub domain: Option<&'a str>,
    pub requester: Option<&'a Requester>,
    pub subject: &'a str,
    pub request: &'a [u8],
    pub response: &'a [u8],
}

impl Answered<'_> {
    /// The advisory's body.
    pub fn body(&self, now_ns: i64) -> Vec<u8> {
        let request = String::from_utf8_lossy(self.request);
        let response = String::from_utf8_lossy(self.response);
        let audit = Audit {
            kind: AUDIT_TYPE,
            id: fresh_id(),
            timestamp: format_rfc3339(Some(now_ns)),
            server: self.server,
            client: self.requester.map(|r| r.info(self.server, None)),
            subject: self.subject,
            request: &request,
            response: &response,
            domain: self.domain,
        };
        serde_json::to_vec(&audit).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_audit_has_nats_servers_fields_in_its_order() {
        let answered = Answered {
            server: "s1",
            domain: Some("hub"),
            requester: None,
            subject: "$JS.API.INFO",
            request: b"",
            response: br#"{"type":"x"}"#,
        };
        let body: serde_json::Value =
            serde_json::from_slice(&answered.body(1_700_000_000_123_456_789)).unwrap();
        let text = serde_json::to_string(&body).unwrap();
        assert!(text.contains(r#""client":null"#), "{text}");
        assert!(
            !text.contains("request"),
            "an empty body is left out: {text}"
        );
        assert_eq!(body["timestamp"], "2023-11-14T22:13:20.123456789Z");
        assert_eq!(body["response"], r#"{"type":"x"}"#);
        assert_eq!(body["domain"], "hub");
        let raw = String::from_utf8(answered.body(0)).unwrap();
        let order: Vec<usize> = [
            "\"type\"",
            "\"id\"",
            "\"timestamp\"",
            "\"server\"",
            "\"client\"",
            "\"subject\"",
            "\"response\"",
            "\"domain\"",
        ]
        .iter()
        .map(|k| raw.find(k).unwrap())
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{raw}");
        assert!(audited("$JS.API.STREAM.MSG.GET.S", true));
        assert!(!audited("$JS.API.STREAM.MSG.GET.S", false));
        assert!(audited("$JS.API.STREAM.INFO.S", false));
    }
}
