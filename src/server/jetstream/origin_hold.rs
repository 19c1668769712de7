//! A mirror's or source's hold on a workqueue or interest origin, as nats-server's sourcing
//! durable (`JS_MIRROR_…`, `JS_SRC_…`): a durable consumer on the origin, listed and counted
//! with its consumers, with `max_ack_pending` 1000 and deliver all. Its interest keeps an
//! interest origin's messages until they are copied; once the copying stream has stored a
//! batch, the hold is moved past it (`Stream::release_held`), so a workqueue origin lets
//! those messages go at once, and an interest origin once its other consumers are done with
//! them too. It is deleted with the copy: a source removed by an update, or the copying
//! stream deleted. (nats-server's hold has `ack_policy: flow_control`, which jetlog has not
//! built; this one says `explicit`.)

use std::sync::Arc;

use serde_json::json;

use super::{now_ns, JetStream, StreamEntry};
use crate::jetstream::consumer::Consumer;
use crate::jetstream::consumer_config::ConsumerConfig;
use crate::jetstream::stream_config::Retention;
use crate::jetstream::stream_origin::OriginSpec;
use crate::jetstream::ApiError;
use crate::protocol::transform::fnv1a32;
use crate::server::internal::InternalClient;
use crate::store::StoredMessage;

/// The most messages a hold may have outstanding, as nats-server's sourcing durable shows.
const HOLD_MAX_ACK_PENDING: i64 = 1000;

/// The hold's name: `JS_MIRROR_` or `JS_SRC_` and a hash of the copying stream and what it
/// copies (the origin's index name), so each copy of an origin has its own.
pub(super) fn hold_name(mirror: bool, target: &str, iname: &str) -> String {
    // FNV-1a: stable across versions and runs, unlike std's hasher.
    let hash = fnv1a32(format!("{target}\0{iname}").as_bytes());
    let kind = if mirror { "MIRROR" } else { "SRC" };
    format!("JS_{kind}_{hash:08X}")
}

impl JetStream {
    /// Makes sure `origin` has the hold `name`, filtered as the copy reads it, when its
    /// retention lets messages go once consumed; whether it is held.
    pub(super) fn hold_origin(
        &self,
        origin: &Arc<StreamEntry>,
        name: &str,
        spec: &OriginSpec,
    ) -> Result<bool, ApiError> {
        let stream_config = {
            let stream = origin.lock();
            if stream.config().retention == Retention::Limits {
                return Ok(false);
            }
            if stream.consumers().contains_key(name) {
                return Ok(true);
            }
            stream.config().clone()
        };
        let filters: Vec<&str> = spec.filters();
        let mut request = json!({
            "durable_name": name,
            "name": name,
            "ack_policy": "explicit",
            "deliver_policy": "all",
            "max_ack_pending": HOLD_MAX_ACK_PENDING,
        });
        match filters.as_slice() {
            [] => {}
            [one] => request["filter_subject"] = json!(one),
            many => request["filter_subjects"] = json!(many),
        }
        let config: ConsumerConfig =
            serde_json::from_value(request).map_err(ApiError::invalid_json)?;
        let mut config = config.normalized(&stream_config)?;
        config.sourcing = true;
        let now = now_ns();
        {
            let mut stream = origin.lock();
            stream.check_new_consumer(name, &config)?;
            let consumer = Consumer::new(
                &origin.name,
                name,
                config.clone(),
                now as i64,
                stream.log(),
                now,
            );
            stream.insert_consumer(consumer);
        }
        origin
            .catalog
            .put_consumer(&origin.name, name, &config, now as i64)
            .map_err(ApiError::store_failed)?;
        Ok(true)
    }

    /// Deletes the hold `name` on the origin `spec` names, if this server has it.
    pub(super) fn drop_hold(&self, spec: &OriginSpec, name: &str) {
        let Ok(origin) = super::origins::hold_origin_entry(self, spec) else {
            return;
        };
        if origin.lock().consumers().contains_key(name) {
            origin.delete_consumer(name, &mut InternalClient::new(self.router.clone()));
        }
    }
}

/// The holds a stream's copies may keep on their origins: each origin and the hold's name.
pub(super) fn holds_of(entry: &StreamEntry) -> Vec<(OriginSpec, String)> {
    let stream = entry.lock();
    let mut holds: Vec<(OriginSpec, String)> = stream
        .source_specs()
        .into_iter()
        .map(|(iname, spec)| {
            let name = hold_name(false, &entry.name, &iname);
            (spec, name)
        })
        .collect();
    if let Some(spec) = stream.config().mirror.as_ref().and_then(OriginSpec::of) {
        let name = hold_name(true, &entry.name, &spec.name);
        holds.push((spec, name));
    }
    holds
}

impl JetStream {
    /// Deletes the holds in `before` that `after` no longer has: a source removed, a mirror
    /// promoted, or (with `after` empty) the copying stream deleted.
    pub(super) fn drop_holds(
        &self,
        before: Vec<(OriginSpec, String)>,
        after: &[(OriginSpec, String)],
    ) {
        for (spec, name) in before {
            if !after.iter().any(|(_, kept)| *kept == name) {
                self.drop_hold(&spec, &name);
            }
        }
    }
}

/// Moves the hold `name` past `stored`, the messages of the origin the copy has stored.
pub(super) fn release(origin: &StreamEntry, name: &str, stored: &[StoredMessage]) {
    let seqs: Vec<u64> = stored.iter().map(|m| m.seq).collect();
    origin.lock().release_held(name, &seqs, now_ns());
    origin.kick();
}

#[cfg(test)]
mod tests {
    use super::hold_name;

    #[test]
    fn each_copy_of_an_origin_has_a_hold_of_its_own() {
        let a = hold_name(false, "AGG", "ORDERS > >");
        assert!(a.starts_with("JS_SRC_") && a.len() == 15, "{a}");
        assert_eq!(a, hold_name(false, "AGG", "ORDERS > >"));
        assert_ne!(a, hold_name(false, "AGG2", "ORDERS > >"));
        assert_ne!(a, hold_name(false, "AGG", "ORDERS o.a >"));
        assert!(hold_name(true, "M", "ORDERS").starts_with("JS_MIRROR_"));
    }
}
