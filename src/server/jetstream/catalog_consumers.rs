//! Consumer configs and states in the catalog, as prost messages.

use super::catalog::Catalog;
use crate::jetstream::consumer_config::{
    AckPolicy, ConsumerConfig, DeliverPolicy, PriorityPolicy, ReplayPolicy,
};
use crate::jetstream::time::{format_rfc3339, parse_rfc3339};
use crate::meta::{pb, MetaError};

/// A consumer as the catalog holds it: name, config, creation time, last persisted state.
pub type SavedConsumer = (String, ConsumerConfig, i64, Option<pb::ConsumerState>);

impl Catalog {
    pub fn put_consumer(
        &self,
        stream: &str,
        name: &str,
        config: &ConsumerConfig,
        created_ns: i64,
    ) -> Result<(), MetaError> {
        self.meta()
            .put_consumer(stream, &consumer_to_pb(name, config, created_ns))
    }

    /// When consumer `name` of `stream` was created, if the catalog holds it.
    pub fn consumer_created(&self, stream: &str, name: &str) -> Result<Option<i64>, MetaError> {
        Ok(self
            .meta()
            .get_consumer(stream, name)?
            .map(|c| c.created_unix_ns))
    }

    /// Whether consumer `name` of `stream` is in the catalog with a config other than
    /// `config`. An unreadable entry counts as differing: a create is not applied over it.
    pub fn consumer_differs(&self, stream: &str, name: &str, config: &ConsumerConfig) -> bool {
        match self.meta().get_consumer(stream, name) {
            Ok(Some(saved)) => saved != consumer_to_pb(name, config, saved.created_unix_ns),
            Ok(None) => false,
            Err(_) => true,
        }
    }

    pub fn delete_consumer(&self, stream: &str, name: &str) -> Result<bool, MetaError> {
        self.meta().delete_consumer(stream, name)
    }

    /// Every consumer of `stream`: (name, config, created, state).
    pub fn list_consumers(&self, stream: &str) -> Result<Vec<SavedConsumer>, MetaError> {
        let mut out = Vec::new();
        for pb in self.meta().list_consumers(stream)? {
            let name = crate::meta::consumer_name(&pb).to_string();
            let state = self.meta().get_consumer_state(stream, &name)?;
            out.push((name, consumer_from_pb(&pb), pb.created_unix_ns, state));
        }
        Ok(out)
    }

    /// Writes several consumer states with one sync.
    pub fn put_consumer_states(
        &self,
        states: &[(&str, &str, &pb::ConsumerState)],
    ) -> Result<usize, MetaError> {
        self.meta().put_consumer_states(states)
    }
}

fn consumer_to_pb(name: &str, c: &ConsumerConfig, created_ns: i64) -> pb::ConsumerConfig {
    let mut out = pb::ConsumerConfig {
        durable_name: c.durable_name.clone().unwrap_or_default(),
        name: name.to_string(),
        description: c.description.clone().unwrap_or_default(),
        opt_start_seq: c.opt_start_seq.unwrap_or(0),
        opt_start_time_unix_ns: c
            .opt_start_time
            .as_deref()
            .and_then(|t| parse_rfc3339(t).ok().flatten()),
        ack_wait_ns: c.ack_wait,
        max_deliver: c.max_deliver,
        backoff_ns: c.backoff.clone(),
        filter_subject: c.filter_subject.clone().unwrap_or_default(),
        filter_subjects: c.filter_subjects.clone(),
        rate_limit_bps: c.rate_limit_bps,
        sample_freq: c.sample_freq.clone().unwrap_or_default(),
        max_waiting: c.max_waiting,
        max_ack_pending: c.max_ack_pending,
        deliver_subject: c.deliver_subject.clone().unwrap_or_default(),
        deliver_group: c.deliver_group.clone().unwrap_or_default(),
        flow_control: c.flow_control,
        idle_heartbeat_ns: c.idle_heartbeat,
        headers_only: c.headers_only,
        max_batch: c.max_batch,
        max_expires_ns: c.max_expires,
        max_bytes: c.max_bytes,
        inactive_threshold_ns: c.inactive_threshold,
        num_replicas: i32::try_from(c.num_replicas).unwrap_or(1),
        mem_storage: c.mem_storage,
        metadata: c.metadata.clone().unwrap_or_default().into_iter().collect(),
        created_unix_ns: created_ns,
        pause_until_unix_ns: c
            .pause_until
            .as_deref()
            .and_then(|t| parse_rfc3339(t).ok().flatten()),
        priority_groups: c.priority_groups.clone(),
        priority_timeout_ns: c.priority_timeout,
        sourcing: c.sourcing,
        ..pb::ConsumerConfig::default()
    };
    out.set_priority_policy(match c.priority_policy {
        PriorityPolicy::None => pb::PriorityPolicy::None,
        PriorityPolicy::Overflow => pb::PriorityPolicy::Overflow,
        PriorityPolicy::PinnedClient => pb::PriorityPolicy::PinnedClient,
        PriorityPolicy::Prioritized => pb::PriorityPolicy::Prioritized,
    });
    out.set_deliver_policy(match c.deliver_policy {
        DeliverPolicy::All => pb::DeliverPolicy::All,
        DeliverPolicy::Last => pb::DeliverPolicy::Last,
        DeliverPolicy::New => pb::DeliverPolicy::New,
        DeliverPolicy::ByStartSequence => pb::DeliverPolicy::ByStartSequence,
        DeliverPolicy::ByStartTime => pb::DeliverPolicy::ByStartTime,
        DeliverPolicy::LastPerSubject => pb::DeliverPolicy::LastPerSubject,
    });
    out.set_ack_policy(match c.ack_policy {
        AckPolicy::None => pb::AckPolicy::None,
        AckPolicy::All => pb::AckPolicy::All,
        AckPolicy::Explicit => pb::AckPolicy::Explicit,
    });
    out.set_replay_policy(match c.replay_policy {
        ReplayPolicy::Instant => pb::ReplayPolicy::Instant,
        ReplayPolicy::Original => pb::ReplayPolicy::Original,
    });
    out
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

fn consumer_from_pb(p: &pb::ConsumerConfig) -> ConsumerConfig {
    ConsumerConfig {
        durable_name: non_empty(&p.durable_name),
        name: non_empty(&p.name),
        description: non_empty(&p.description),
        deliver_policy: match p.deliver_policy() {
            pb::DeliverPolicy::Last => DeliverPolicy::Last,
            pb::DeliverPolicy::New => DeliverPolicy::New,
            pb::DeliverPolicy::ByStartSequence => DeliverPolicy::ByStartSequence,
            pb::DeliverPolicy::ByStartTime => DeliverPolicy::ByStartTime,
            pb::DeliverPolicy::LastPerSubject => DeliverPolicy::LastPerSubject,
            _ => DeliverPolicy::All,
        },
        opt_start_seq: (p.opt_start_seq > 0).then_some(p.opt_start_seq),
        opt_start_time: p.opt_start_time_unix_ns.map(|ns| format_rfc3339(Some(ns))),
        ack_policy: match p.ack_policy() {
            pb::AckPolicy::All => AckPolicy::All,
            pb::AckPolicy::Explicit => AckPolicy::Explicit,
            _ => AckPolicy::None,
        },
        ack_wait: p.ack_wait_ns,
        max_deliver: p.max_deliver,
        backoff: p.backoff_ns.clone(),
        filter_subject: non_empty(&p.filter_subject),
        filter_subjects: p.filter_subjects.clone(),
        replay_policy: match p.replay_policy() {
            pb::ReplayPolicy::Original => ReplayPolicy::Original,
            _ => ReplayPolicy::Instant,
        },
        rate_limit_bps: p.rate_limit_bps,
        sample_freq: non_empty(&p.sample_freq),
        max_waiting: p.max_waiting,
        max_ack_pending: p.max_ack_pending,
        deliver_subject: non_empty(&p.deliver_subject),
        deliver_group: non_empty(&p.deliver_group),
        flow_control: p.flow_control,
        idle_heartbeat: p.idle_heartbeat_ns,
        headers_only: p.headers_only,
        max_batch: p.max_batch,
        max_expires: p.max_expires_ns,
        max_bytes: p.max_bytes,
        inactive_threshold: p.inactive_threshold_ns,
        num_replicas: i64::from(p.num_replicas),
        mem_storage: p.mem_storage,
        metadata: (!p.metadata.is_empty()).then(|| p.metadata.clone().into_iter().collect()),
        pause_until: p.pause_until_unix_ns.map(|ns| format_rfc3339(Some(ns))),
        priority_groups: p.priority_groups.clone(),
        priority_policy: match p.priority_policy() {
            pb::PriorityPolicy::Overflow => PriorityPolicy::Overflow,
            pb::PriorityPolicy::PinnedClient => PriorityPolicy::PinnedClient,
            pb::PriorityPolicy::Prioritized => PriorityPolicy::Prioritized,
            _ => PriorityPolicy::None,
        },
        priority_timeout: p.priority_timeout_ns,
        sourcing: p.sourcing,
    }
}
