//! The protocol trace of `-V`/`-DV`, in nats-server's shape: each op a client sends as
//! `<addr> - cid:<n> - <<- [PUB foo 5]`, each message delivered to it as `->> [MSG foo 1 5]`.
//! Off unless the log level is trace; then every op costs a formatted line, so it is a tool for
//! looking at a problem, not for production. Credentials in CONNECT are redacted as
//! nats-server redacts them.

use std::net::SocketAddr;

use crate::protocol::encode::OutMsg;
use crate::protocol::parser::ClientOp;

/// CONNECT fields whose values never reach the log.
const SECRET_FIELDS: &[&str] = &["pass", "auth_token", "sig", "jwt"];

/// Whether the trace is on; a cached check, cheap enough for the message path.
pub fn enabled() -> bool {
    tracing::enabled!(tracing::Level::TRACE)
}

/// An op a client sent.
pub fn received(peer: SocketAddr, cid: u64, op: &ClientOp) {
    let text = match op {
        ClientOp::Connect(json) => format!("CONNECT {}", redacted_connect(json)),
        ClientOp::Publish(msg) => {
            let subject = String::from_utf8_lossy(&msg.subject);
            let reply = msg
                .reply
                .as_ref()
                .map(|r| format!(" {}", String::from_utf8_lossy(r)))
                .unwrap_or_default();
            match &msg.headers {
                Some(headers) => {
                    let total = headers.len() + msg.payload.len();
                    format!("HPUB {subject}{reply} {} {total}", headers.len())
                }
                None => format!("PUB {subject}{reply} {}", msg.payload.len()),
            }
        }
        ClientOp::Subscribe {
            subject,
            queue,
            sid,
        } => {
            let queue = queue
                .as_ref()
                .map(|q| format!(" {}", String::from_utf8_lossy(q)))
                .unwrap_or_default();
            format!(
                "SUB {}{queue} {}",
                String::from_utf8_lossy(subject),
                String::from_utf8_lossy(sid)
            )
        }
        ClientOp::Unsubscribe { sid, max_msgs } => {
            let max = max_msgs.map(|m| format!(" {m}")).unwrap_or_default();
            format!("UNSUB {}{max}", String::from_utf8_lossy(sid))
        }
        ClientOp::Ping => "PING".to_string(),
        ClientOp::Pong => "PONG".to_string(),
    };
    tracing::trace!("{peer} - cid:{cid} - <<- [{text}]");
}

/// A message encoded for a client.
pub fn delivered(peer: SocketAddr, cid: u64, msg: &OutMsg<'_>) {
    let subject = String::from_utf8_lossy(msg.subject);
    let sid = String::from_utf8_lossy(msg.sid);
    let reply = msg
        .reply
        .map(|r| format!(" {}", String::from_utf8_lossy(r)))
        .unwrap_or_default();
    match msg.headers.filter(|h| !h.is_empty()) {
        Some(headers) => {
            let total = headers.len() + msg.payload.len();
            tracing::trace!(
                "{peer} - cid:{cid} - ->> [HMSG {subject} {sid}{reply} {} {total}]",
                headers.len()
            )
        }
        None => tracing::trace!(
            "{peer} - cid:{cid} - ->> [MSG {subject} {sid}{reply} {}]",
            msg.payload.len()
        ),
    }
}

/// CONNECT's JSON with every secret replaced by `[REDACTED]`; a body that does not parse is
/// not shown at all (it could hold anything).
fn redacted_connect(json: &[u8]) -> String {
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(json) else {
        return "<not JSON>".to_string();
    };
    if let Some(fields) = value.as_object_mut() {
        for key in SECRET_FIELDS {
            if let Some(secret) = fields.get_mut(*key) {
                *secret = serde_json::Value::String("[REDACTED]".into());
            }
        }
    }
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_connect_are_redacted() {
        let shown =
            redacted_connect(br#"{"user":"u","pass":"p4ss","auth_token":"t0k","name":"x"}"#);
        assert!(shown.contains(r#""user":"u""#) && shown.contains(r#""name":"x""#));
        assert!(!shown.contains("p4ss") && !shown.contains("t0k"), "{shown}");
        assert_eq!(redacted_connect(b"{not json pass=p4ss"), "<not JSON>");
    }
}
