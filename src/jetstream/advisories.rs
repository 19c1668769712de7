//! The lifecycle advisories nats-server publishes when a stream is created, updated or
//! deleted and when a consumer is created or deleted (`$JS.EVENT.ADVISORY.STREAM.*`,
//! `$JS.EVENT.ADVISORY.CONSUMER.{CREATED,DELETED}`), with the shapes probed on 2.15.1 (a
//! consumer update sends none there, and none here); and the envelope every advisory and
//! metric event shares.

use serde_json::json;

use super::consumer::{fresh_id, Action};
use super::time::format_rfc3339;

/// What happened to a stream or consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    Created,
    Updated,
    Deleted,
}

impl Lifecycle {
    fn subject_word(self) -> &'static str {
        match self {
            Lifecycle::Created => "CREATED",
            Lifecycle::Updated => "UPDATED",
            Lifecycle::Deleted => "DELETED",
        }
    }

    fn action(self) -> &'static str {
        match self {
            Lifecycle::Created => "create",
            Lifecycle::Updated => "modify",
            Lifecycle::Deleted => "delete",
        }
    }
}

/// An event in nats-server's envelope: `type`, a fresh `id` and the `timestamp`, then the
/// fields of `fields` (a JSON object), published on `subject`.
pub fn event(subject: String, type_name: &str, now_ns: u64, fields: serde_json::Value) -> Action {
    let mut body = json!({
        "type": type_name,
        "id": fresh_id(),
        "timestamp": format_rfc3339(Some(now_ns as i64)),
    });
    if let (Some(body), serde_json::Value::Object(fields)) = (body.as_object_mut(), fields) {
        body.extend(fields);
    }
    Action::Advisory {
        subject,
        body: serde_json::to_vec(&body).unwrap_or_default(),
    }
}

/// `io.nats.jetstream.advisory.v1.stream_action` on `$JS.EVENT.ADVISORY.STREAM.<what>.<stream>`.
pub fn stream_action(stream: &str, what: Lifecycle, now_ns: u64) -> Action {
    event(
        format!("$JS.EVENT.ADVISORY.STREAM.{}.{stream}", what.subject_word()),
        "io.nats.jetstream.advisory.v1.stream_action",
        now_ns,
        json!({ "stream": stream, "action": what.action() }),
    )
}

/// `io.nats.jetstream.advisory.v1.consumer_action` on
/// `$JS.EVENT.ADVISORY.CONSUMER.<what>.<stream>.<consumer>`.
pub fn consumer_action(stream: &str, consumer: &str, what: Lifecycle, now_ns: u64) -> Action {
    debug_assert!(
        what != Lifecycle::Updated,
        "nats-server sends no consumer update advisory"
    );
    event(
        format!(
            "$JS.EVENT.ADVISORY.CONSUMER.{}.{stream}.{consumer}",
            what.subject_word()
        ),
        "io.nats.jetstream.advisory.v1.consumer_action",
        now_ns,
        json!({ "stream": stream, "consumer": consumer, "action": what.action() }),
    )
}
