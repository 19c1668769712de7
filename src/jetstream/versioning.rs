//! The `_nats.*` keys nats-server 2.11+ keeps in stream and consumer `metadata`: the API level
//! an asset requires (`_nats.req.level`, from the features its config uses) and, in every
//! response, the server's own level and version (`_nats.level`, `_nats.ver`). A client that
//! sends a config back (an edit, an update from an info) sends them too: they are dropped
//! from what is stored, and worked out again for each response, so they can never go stale.

use std::collections::BTreeMap;

use super::api_level::JS_API_LEVEL;
use super::consumer_config::{ConsumerConfig, PriorityPolicy};
use super::stream_config::{PersistMode, StreamConfig};
use super::time::ZERO_TIME;
use crate::protocol::connect::NATS_COMPAT_VERSION;

pub const REQUIRED_LEVEL_KEY: &str = "_nats.req.level";
pub const LEVEL_KEY: &str = "_nats.level";
pub const VERSION_KEY: &str = "_nats.ver";

type Metadata = Option<BTreeMap<String, String>>;

/// Drops the server's keys from metadata a client sent; none left is no metadata.
pub fn strip(metadata: &mut Metadata) {
    if let Some(map) = metadata {
        for key in [REQUIRED_LEVEL_KEY, LEVEL_KEY, VERSION_KEY] {
            map.remove(key);
        }
        if map.is_empty() {
            *metadata = None;
        }
    }
}

/// The metadata to show in a response: the stored keys and the server's three.
pub fn shown(metadata: &Metadata, required: u32) -> Metadata {
    let mut map = metadata.clone().unwrap_or_default();
    map.insert(REQUIRED_LEVEL_KEY.into(), required.to_string());
    map.insert(LEVEL_KEY.into(), JS_API_LEVEL.to_string());
    map.insert(VERSION_KEY.into(), NATS_COMPAT_VERSION.into());
    Some(map)
}

/// The API level a stream's config needs, as nats-server works it out.
pub fn stream_level(config: &StreamConfig) -> u32 {
    let mut level = 0;
    if config.allow_msg_ttl || config.subject_delete_marker_ttl > 0 {
        level = 1;
    }
    if config.allow_msg_counter
        || config.allow_atomic
        || config.allow_msg_schedules
        || config.persist_mode == PersistMode::Async
    {
        level = 2;
    }
    if config.allow_batched {
        level = 4;
    }
    level
}

/// The API level a consumer's config needs.
pub fn consumer_level(config: &ConsumerConfig) -> u32 {
    let paused = config
        .pause_until
        .as_deref()
        .is_some_and(|t| t != ZERO_TIME);
    let prioritised = config.priority_policy != PriorityPolicy::None
        || config.priority_timeout != 0
        || !config.priority_groups.is_empty();
    u32::from(paused || prioritised)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_keys_are_dropped_on_the_way_in_and_added_on_the_way_out() {
        let mut sent: Metadata = Some(BTreeMap::from([
            ("team".to_string(), "a".to_string()),
            (VERSION_KEY.to_string(), "2.15.1".to_string()),
            (REQUIRED_LEVEL_KEY.to_string(), "9".to_string()),
        ]));
        strip(&mut sent);
        assert_eq!(sent, Some(BTreeMap::from([("team".into(), "a".into())])));
        let mut only_ours: Metadata = Some(BTreeMap::from([(LEVEL_KEY.into(), "5".into())]));
        strip(&mut only_ours);
        assert_eq!(only_ours, None);
        let out = shown(&None, 2).expect("keys");
        assert_eq!(out[REQUIRED_LEVEL_KEY], "2");
        assert_eq!(out[LEVEL_KEY], JS_API_LEVEL.to_string());
        assert_eq!(out[VERSION_KEY], NATS_COMPAT_VERSION);
    }

    #[test]
    fn levels_follow_the_features_a_config_uses() {
        let stream = |json: &str| serde_json::from_str::<StreamConfig>(json).expect("config");
        assert_eq!(stream_level(&stream(r#"{"name":"S"}"#)), 0);
        assert_eq!(
            stream_level(&stream(r#"{"name":"S","allow_msg_ttl":true}"#)),
            1
        );
        assert_eq!(
            stream_level(&stream(r#"{"name":"S","allow_atomic":true}"#)),
            2
        );
        let consumer = |json: &str| serde_json::from_str::<ConsumerConfig>(json).expect("config");
        assert_eq!(consumer_level(&consumer(r#"{}"#)), 0);
        assert_eq!(
            consumer_level(&consumer(r#"{"pause_until":"0001-01-01T00:00:00Z"}"#)),
            0
        );
        assert_eq!(
            consumer_level(&consumer(r#"{"pause_until":"2030-01-01T00:00:00Z"}"#)),
            1
        );
        assert_eq!(
            consumer_level(&consumer(
                r#"{"priority_groups":["g"],"priority_policy":"overflow"}"#
            )),
            1
        );
    }
}
