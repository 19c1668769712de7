//! The checks of a mirror's or a source's origin that need the other streams: the maximum
//! message size against the origin's, and cycles through sources and mirrors, as nats-server's
//! `checkStreamCfg` makes them when a stream is created or updated.

use std::collections::HashSet;
use std::sync::Arc;

use super::{JetStream, StreamEntry};
use crate::jetstream::stream_config::Retention;
use crate::jetstream::stream_origin::OriginSpec;
use crate::jetstream::{ApiError, StreamConfig};
use crate::protocol::subject::subjects_overlap;

/// Why jetlog cannot copy this stream: a workqueue or interest origin is held by a consumer
/// of the copy's (`origin_hold`), which jetlog makes only on an origin that is not
/// replicated.
fn uncopyable(origin: &StreamConfig) -> Option<ApiError> {
    (origin.retention != Retention::Limits && origin.num_replicas > 1).then(|| {
        ApiError::stream_invalid_config(
            "a mirror or source of a replicated workqueue or interest stream is not supported by jetlog yet",
        )
    })
}

/// The origin a spec names, wherever it lives: this account's stream, or through an import
/// another account's.
pub(super) fn hold_origin_entry(
    js: &JetStream,
    spec: &OriginSpec,
) -> Result<Arc<StreamEntry>, ApiError> {
    let elsewhere;
    let home = match spec.external_prefixes() {
        Some((api, _)) if js.is_own_api(&api) => js,
        Some((api, deliver)) => {
            elsewhere = js
                .origin_resolver
                .get()
                .and_then(|resolve| resolve(&api, &deliver, &spec.name))
                .ok_or_else(ApiError::stream_not_found)?;
            &elsewhere
        }
        None => js,
    };
    home.stream_if_open(&spec.name)
        .ok_or_else(ApiError::stream_not_found)
}

/// The origin a pump may read: open, and not a replicated workqueue or interest stream.
pub(super) fn readable_origin(
    js: &JetStream,
    spec: &OriginSpec,
) -> Result<Arc<StreamEntry>, ApiError> {
    let origin = hold_origin_entry(js, spec)?;
    let why = uncopyable(origin.lock().config());
    match why {
        Some(why) => Err(why),
        None => Ok(origin),
    }
}

/// Finds the JetStream of the account whose stream a source in another account copies
/// (`external.api`, `external.deliver`, the origin's name), through the importing account's
/// imports (`server::accounts::js_origins`).
pub type OriginResolver = Arc<dyn Fn(&str, &str, &str) -> Option<Arc<JetStream>> + Send + Sync>;

impl JetStream {
    /// Lets this account's sources read streams of the accounts it imports from.
    pub fn set_origin_resolver(&self, resolver: OriginResolver) {
        let _ = self.origin_resolver.set(resolver);
    }

    /// Whether `api` is this JetStream's own API prefix under its domain.
    fn is_own_api(&self, api: &str) -> bool {
        self.domain()
            .is_some_and(|domain| api == format!("$JS.{domain}.API"))
    }
}

/// The local origins of a config: its mirror, then its sources.
fn origins(config: &StreamConfig) -> (Option<OriginSpec>, Vec<OriginSpec>) {
    let mirror = config
        .mirror
        .as_ref()
        .and_then(OriginSpec::of)
        .filter(|m| m.external.is_none());
    let sources = config
        .sources
        .iter()
        .flat_map(|s| s.as_array().into_iter().flatten())
        .filter_map(OriginSpec::of)
        .filter(|s| s.external.is_none())
        .collect();
    (mirror, sources)
}

impl JetStream {
    fn config_of(&self, name: &str) -> Option<StreamConfig> {
        self.stream(name).map(|entry| entry.lock().config().clone())
    }

    /// A mirror's `mirror_direct` follows its origin's `allow_direct` whenever the origin
    /// exists, whatever was asked, as nats-server sets it.
    pub(super) fn settle_mirror_direct(&self, config: &mut StreamConfig) {
        // An origin in another account is not known here: `mirror_direct` stays as asked.
        let origin = config
            .mirror
            .as_ref()
            .and_then(OriginSpec::of)
            .filter(|m| m.external.is_none());
        if let Some(origin) = origin.and_then(|m| self.config_of(&m.name)) {
            config.mirror_direct = origin.allow_direct;
        }
    }

    /// Refuses a config whose origins take larger messages than it does, or that closes a
    /// cycle of streams feeding each other.
    pub(super) fn check_origins(&self, config: &StreamConfig) -> Result<(), ApiError> {
        let (mirror, sources) = origins(config);
        let too_small = |origin: &StreamConfig| {
            config.max_msg_size > 0
                && origin.max_msg_size > 0
                && config.max_msg_size < origin.max_msg_size
        };
        let named = mirror.iter().chain(sources.iter());
        for origin in named.filter_map(|o| self.config_of(&o.name)) {
            if let Some(why) = uncopyable(&origin) {
                return Err(why);
            }
        }
        if let Some(origin) = mirror.and_then(|m| self.config_of(&m.name)) {
            if too_small(&origin) {
                return Err(ApiError::new(
                    400,
                    10030,
                    "stream mirror must have max message size >= source",
                ));
            }
        }
        for source in &sources {
            if self.config_of(&source.name).is_some_and(|o| too_small(&o)) {
                return Err(ApiError::new(
                    400,
                    10046,
                    "stream source must have max message size >= target",
                ));
            }
        }
        self.check_cycles(config)
    }

    /// A walk over sources and mirrors from `config`: coming back through a mirror is a
    /// cycle, and through a source when its filter meets the subjects of the stream holding it.
    fn check_cycles(&self, config: &StreamConfig) -> Result<(), ApiError> {
        let cycle = || ApiError::stream_invalid_config("detected cycle");
        let mut to_visit = vec![config.clone()];
        let mut visited: HashSet<String> = HashSet::new();
        while !to_visit.is_empty() {
            let cfg = to_visit.remove(0);
            visited.insert(cfg.name.clone());
            let (mirror, sources) = origins(&cfg);
            for source in sources {
                if visited.contains(&source.name) {
                    let meets = source.filter_subject.is_empty()
                        || cfg
                            .subjects
                            .iter()
                            .any(|s| subjects_overlap(s, &source.filter_subject));
                    if meets {
                        return Err(cycle());
                    }
                } else if let Some(next) = self.config_of(&source.name) {
                    to_visit.push(next);
                }
            }
            if let Some(mirror) = mirror {
                if visited.contains(&mirror.name) {
                    return Err(cycle());
                }
                if let Some(next) = self.config_of(&mirror.name) {
                    to_visit.push(next);
                }
            }
        }
        Ok(())
    }
}
