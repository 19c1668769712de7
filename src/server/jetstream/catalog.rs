//! The stream catalog: JetStream stream configurations as prost messages in the metadata
//! store. Every write is durable before it returns, so the API answers a create, update or
//! delete only once a restart would see it.

use std::collections::BTreeMap;
use std::path::Path;

use crate::jetstream::stream_config::{
    ConsumerLimits, Discard, PersistMode, Placement, RepublishConfig, Retention, Storage,
    SubjectTransformConfig,
};
use crate::jetstream::stream_origin::OriginSpec;
use crate::jetstream::time::{format_rfc3339, parse_rfc3339};
use crate::jetstream::StreamConfig;
use crate::meta::{pb, MetaError, MetaStore};

pub struct Catalog {
    meta: MetaStore,
}

impl Catalog {
    pub fn open(dir: &Path) -> Result<Self, MetaError> {
        Ok(Self {
            meta: MetaStore::open(dir)?,
        })
    }

    pub fn meta(&self) -> &MetaStore {
        &self.meta
    }

    pub fn put_stream(&self, config: &StreamConfig, created_ns: i64) -> Result<(), MetaError> {
        self.meta.put_stream(&to_pb(config, created_ns))
    }

    pub fn delete_stream(&self, name: &str) -> Result<bool, MetaError> {
        self.meta.delete_stream(name)
    }

    /// Every stream's config and creation time, sorted by name.
    pub fn list_streams(&self) -> Result<Vec<(StreamConfig, i64)>, MetaError> {
        Ok(self
            .meta
            .list_streams()?
            .into_iter()
            .map(|pb| (from_pb(&pb), pb.created_unix_ns))
            .collect())
    }
}

fn to_pb(c: &StreamConfig, created_ns: i64) -> pb::StreamConfig {
    let placement = c.placement.as_ref().map(|p| pb::Placement {
        cluster: p.cluster.clone(),
        tags: p.tags.clone(),
    });
    let mut out = pb::StreamConfig {
        name: c.name.clone(),
        description: c.description.clone(),
        subjects: c.subjects.clone(),
        max_consumers: c.max_consumers,
        max_msgs: c.max_msgs,
        max_bytes: c.max_bytes,
        max_age_ns: c.max_age,
        max_msgs_per_subject: c.max_msgs_per_subject,
        max_msg_size: i32::try_from(c.max_msg_size).unwrap_or(i32::MAX),
        discard_new_per_subject: c.discard_new_per_subject,
        num_replicas: i32::try_from(c.num_replicas).unwrap_or(1),
        duplicate_window_ns: c.duplicate_window,
        no_ack: c.no_ack,
        allow_rollup_hdrs: c.allow_rollup_hdrs,
        deny_delete: c.deny_delete,
        deny_purge: c.deny_purge,
        allow_direct: c.allow_direct,
        mirror_direct: c.mirror_direct,
        sealed: c.sealed,
        allow_msg_ttl: c.allow_msg_ttl,
        subject_delete_marker_ttl_ns: c.subject_delete_marker_ttl,
        allow_msg_counter: c.allow_msg_counter,
        allow_atomic: c.allow_atomic,
        allow_msg_schedules: c.allow_msg_schedules,
        allow_batched: c.allow_batched,
        metadata: c.metadata.clone().unwrap_or_default().into_iter().collect(),
        first_seq: c.first_seq,
        created_unix_ns: created_ns,
        placement,
        consumer_limits: Some(pb::ConsumerLimits {
            inactive_threshold_ns: c.consumer_limits.inactive_threshold.unwrap_or(0),
            max_ack_pending: c.consumer_limits.max_ack_pending.unwrap_or(0),
        }),
        subject_transform: c.subject_transform.as_ref().map(|t| pb::SubjectTransform {
            src: t.src.clone(),
            dest: t.dest.clone(),
        }),
        republish: c.republish.as_ref().map(|r| pb::Republish {
            src: r.src.clone(),
            dest: r.dest.clone(),
            headers_only: r.headers_only,
        }),
        mirror: c
            .mirror
            .as_ref()
            .and_then(OriginSpec::of)
            .map(|m| origin_pb(&m)),
        sources: c
            .sources
            .iter()
            .flat_map(|s| s.as_array().into_iter().flatten())
            .filter_map(OriginSpec::of)
            .map(|s| origin_pb(&s))
            .collect(),
        ..pb::StreamConfig::default()
    };
    out.set_retention(match c.retention {
        Retention::Limits => pb::RetentionPolicy::Limits,
        Retention::Interest => pb::RetentionPolicy::Interest,
        Retention::WorkQueue => pb::RetentionPolicy::Workqueue,
    });
    out.set_persist_mode(match c.persist_mode {
        PersistMode::Default => pb::PersistMode::Default,
        PersistMode::Async => pb::PersistMode::Async,
    });
    out.set_discard(match c.discard {
        Discard::Old => pb::DiscardPolicy::Old,
        Discard::New => pb::DiscardPolicy::New,
    });
    out.set_storage(match c.storage {
        Storage::File => pb::StorageType::File,
        Storage::Memory => pb::StorageType::Memory,
    });
    out.set_compression(match c.compression.as_str() {
        "s2" => pb::Compression::S2,
        _ => pb::Compression::None,
    });
    out
}

fn from_pb(p: &pb::StreamConfig) -> StreamConfig {
    let limits = p.consumer_limits.as_ref();
    StreamConfig {
        name: p.name.clone(),
        description: p.description.clone(),
        subjects: p.subjects.clone(),
        retention: match p.retention() {
            pb::RetentionPolicy::Interest => Retention::Interest,
            pb::RetentionPolicy::Workqueue => Retention::WorkQueue,
            _ => Retention::Limits,
        },
        max_consumers: p.max_consumers,
        max_msgs: p.max_msgs,
        max_bytes: p.max_bytes,
        max_age: p.max_age_ns,
        max_msgs_per_subject: p.max_msgs_per_subject,
        max_msg_size: i64::from(p.max_msg_size),
        discard: match p.discard() {
            pb::DiscardPolicy::New => Discard::New,
            _ => Discard::Old,
        },
        discard_new_per_subject: p.discard_new_per_subject,
        storage: match p.storage() {
            pb::StorageType::Memory => Storage::Memory,
            _ => Storage::File,
        },
        num_replicas: i64::from(p.num_replicas),
        no_ack: p.no_ack,
        duplicate_window: p.duplicate_window_ns,
        compression: match p.compression() {
            pb::Compression::S2 => "s2",
            _ => "none",
        }
        .to_string(),
        first_seq: p.first_seq,
        allow_direct: p.allow_direct,
        mirror_direct: p.mirror_direct,
        sealed: p.sealed,
        deny_delete: p.deny_delete,
        deny_purge: p.deny_purge,
        allow_rollup_hdrs: p.allow_rollup_hdrs,
        consumer_limits: ConsumerLimits {
            inactive_threshold: limits.map(|l| l.inactive_threshold_ns).filter(|v| *v != 0),
            max_ack_pending: limits.map(|l| l.max_ack_pending).filter(|v| *v != 0),
        },
        allow_msg_ttl: p.allow_msg_ttl,
        subject_delete_marker_ttl: p.subject_delete_marker_ttl_ns,
        allow_msg_counter: p.allow_msg_counter,
        allow_atomic: p.allow_atomic,
        allow_msg_schedules: p.allow_msg_schedules,
        allow_batched: p.allow_batched,
        persist_mode: match p.persist_mode() {
            pb::PersistMode::Async => PersistMode::Async,
            _ => PersistMode::Default,
        },
        metadata: (!p.metadata.is_empty())
            .then(|| p.metadata.clone().into_iter().collect::<BTreeMap<_, _>>()),
        placement: p.placement.as_ref().map(|pl| Placement {
            cluster: pl.cluster.clone(),
            tags: pl.tags.clone(),
        }),
        mirror: p.mirror.as_ref().map(|m| origin_of_pb(m).to_value()),
        sources: (!p.sources.is_empty()).then(|| {
            serde_json::Value::Array(
                p.sources
                    .iter()
                    .map(|s| origin_of_pb(s).to_value())
                    .collect(),
            )
        }),
        republish: p.republish.as_ref().map(|r| RepublishConfig {
            src: r.src.clone(),
            dest: r.dest.clone(),
            headers_only: r.headers_only,
        }),
        subject_transform: p
            .subject_transform
            .as_ref()
            .map(|t| SubjectTransformConfig {
                src: t.src.clone(),
                dest: t.dest.clone(),
            }),
    }
}

/// A mirror's or source's origin as the catalog keeps it.
fn origin_pb(o: &OriginSpec) -> pb::StreamSource {
    pb::StreamSource {
        name: o.name.clone(),
        opt_start_seq: o.opt_start_seq,
        opt_start_time_unix_ns: o
            .opt_start_time
            .as_deref()
            .and_then(|t| parse_rfc3339(t).ok().flatten()),
        filter_subject: o.filter_subject.clone(),
        subject_transforms: o
            .subject_transforms
            .iter()
            .map(|t| pb::SubjectTransform {
                src: t.src.clone(),
                dest: t.dest.clone(),
            })
            .collect(),
        external: o
            .external_prefixes()
            .map(|(api, deliver)| pb::ExternalStream { api, deliver }),
        ..pb::StreamSource::default()
    }
}

fn origin_of_pb(p: &pb::StreamSource) -> OriginSpec {
    let mut spec = OriginSpec::local(
        &p.name,
        p.opt_start_seq,
        p.opt_start_time_unix_ns.map(|ns| format_rfc3339(Some(ns))),
        &p.filter_subject,
        p.subject_transforms
            .iter()
            .map(|t| SubjectTransformConfig {
                src: t.src.clone(),
                dest: t.dest.clone(),
            })
            .collect(),
    );
    spec.external = p
        .external
        .as_ref()
        .map(|e| serde_json::json!({"api": e.api, "deliver": e.deliver}));
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_survives_the_round_trip() {
        let json = r#"{"name":"ORDERS","subjects":["orders.>"],"retention":"workqueue","max_msgs":5,
            "max_age":60000000000,"discard":"new","storage":"memory","allow_direct":true,
            "allow_rollup_hdrs":true,"deny_delete":true,"metadata":{"team":"a"},
            "max_msgs_per_subject":3,"discard_new_per_subject":true,"description":"d",
            "placement":{"cluster":"c","tags":["a","b"]}}"#;
        let config = serde_json::from_str::<StreamConfig>(json)
            .unwrap()
            .normalized()
            .unwrap();
        let back = from_pb(&to_pb(&config, 42));
        assert_eq!(back, config);
        assert_eq!(to_pb(&config, 42).created_unix_ns, 42);
    }

    #[test]
    fn a_source_in_another_account_keeps_its_prefixes() {
        let json = r#"{"name":"AGG","subjects":["agg"],"sources":[
            {"name":"ORD","filter_subject":"ord.>","external":{"api":"$JS.A.API","deliver":"d.b"}},
            {"name":"LOCAL"}]}"#;
        let config = serde_json::from_str::<StreamConfig>(json)
            .unwrap()
            .normalized()
            .unwrap();
        let back = from_pb(&to_pb(&config, 1));
        assert_eq!(back, config);
        let sources = back.sources.expect("sources");
        assert_eq!(sources[0]["external"]["deliver"], "d.b");
        assert!(sources[1].get("external").is_none());
    }
}
