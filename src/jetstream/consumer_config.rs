//! The JetStream `ConsumerConfig` as clients send and receive it, with nats-server's defaults
//! (`setConsumerConfigDefaults` in server/consumer.go), its validation and error texts
//! (`checkConsumerCfg`, the work-queue checks of `addConsumerWithAssignment`), the rules for what
//! an update may change (`checkNewConsumerConfig`), the checks `jsConsumerCreate`
//! (server/jetstream_api.go) makes against the API subject, the `ConsumerInfo` reply, and the
//! parsing of pull requests (`nextReqFromMsg`, `processNextMsgRequest`).
//!
//! Everything here is pure: the caller supplies the stream's config, the subject tokens and any
//! randomness, and gets back the effective config or nats-server's exact error. Checks that need
//! other consumers (work-queue overlap, 10099/10100) or live state (wait-queue fullness, interest
//! on a push consumer's old deliver subject) are left to the caller.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::api_types::ClusterInfo;
use super::error::ApiError;
use super::stream_config::{
    is_valid_name, Retention, StreamConfig, MAX_DESCRIPTION_BYTES, MAX_NAME_BYTES,
};
use super::time::parse_rfc3339;
use crate::protocol::subject::{is_literal, is_subset_match, is_valid_subject, subjects_overlap};

/// nats-server `JsAckWaitDefault`: the ack wait of an acking consumer that sets none.
pub const DEFAULT_ACK_WAIT_NS: i64 = 30 * NANOS_PER_SEC;
/// nats-server `JsDefaultMaxAckPending`.
pub const DEFAULT_MAX_ACK_PENDING: i64 = 1000;
/// nats-server `JSWaitQueueDefaultMax`: pull requests a pull consumer queues by default.
pub const DEFAULT_MAX_WAITING: i64 = 512;
/// nats-server `JsDeleteWaitTimeDefault`: how long an ephemeral lives without interest. The
/// server adds up to a second of jitter to its timer but stamps the config with this value.
pub const DEFAULT_EPHEMERAL_INACTIVE_THRESHOLD_NS: i64 = 5 * NANOS_PER_SEC;
/// The shortest idle heartbeat a push consumer may ask for.
pub const MIN_IDLE_HEARTBEAT_NS: i64 = 100 * NANOS_PER_MILLI;
/// The shortest `max_expires` a pull consumer may set.
pub const MIN_MAX_EXPIRES_NS: i64 = NANOS_PER_MILLI;
/// nats-server `JSMaxMetadataLen`: total bytes of metadata keys and values.
pub const MAX_METADATA_BYTES: usize = 128 * 1024;
/// Length of the name nats-server generates for a legacy ephemeral consumer.
pub const GENERATED_NAME_LEN: usize = 8;

const NANOS_PER_SEC: i64 = 1_000_000_000;
const NANOS_PER_MILLI: i64 = 1_000_000;

/// Where a consumer starts in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeliverPolicy {
    #[default]
    All,
    Last,
    New,
    ByStartSequence,
    ByStartTime,
    LastPerSubject,
}

/// How delivered messages are acknowledged. Missing means `none`, Go's zero value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AckPolicy {
    #[default]
    None,
    All,
    Explicit,
}

/// Whether messages are replayed as fast as possible or at their original pace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplayPolicy {
    #[default]
    Instant,
    Original,
}

/// Serde for enums that travel as lower-case strings and are read case-insensitively; `alias`
/// lists extra spellings that parse to a variant.
macro_rules! string_enum {
    (
        $name:ident { $($variant:ident => $text:literal),+ }
        $(alias $alias:literal => $avariant:ident)?
    ) => {
        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                match text.to_ascii_lowercase().as_str() {
                    $($text => Ok(Self::$variant),)+
                    $($alias => Ok(Self::$avariant),)?
                    _ => Err(serde::de::Error::custom(format!("can not unmarshal {text:?}"))),
                }
            }
        }
    };
}

string_enum!(DeliverPolicy {
    All => "all",
    Last => "last",
    New => "new",
    ByStartSequence => "by_start_sequence",
    ByStartTime => "by_start_time",
    LastPerSubject => "last_per_subject"
} alias "undefined" => All);
string_enum!(AckPolicy { None => "none", All => "all", Explicit => "explicit" });
string_enum!(ReplayPolicy { Instant => "instant", Original => "original" });

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero_i64(n: &i64) -> bool {
    *n == 0
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

/// A consumer's configuration, field for field as nats-server's JSON has it (durations in ns).
/// `omitempty` is mirrored exactly: what nats-server leaves out, we leave out, so clients that
/// compare configs see the same thing.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerConfig {
    /// Present for durable consumers; the consumer then outlives its subscribers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub durable_name: Option<String>,
    /// The consumer's name (2.9+ API); equals `durable_name` when both are set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub deliver_policy: DeliverPolicy,
    /// Set only with `by_start_sequence`; 0 is Go's "unset" and is dropped by `normalized`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opt_start_seq: Option<u64>,
    /// RFC 3339, echoed as sent; set only with `by_start_time`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opt_start_time: Option<String>,
    pub ack_policy: AckPolicy,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub ack_wait: i64,
    /// -1 is unlimited, which `normalized` makes of 0.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub max_deliver: i64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub backoff: Vec<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_subject: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filter_subjects: Vec<String>,
    pub replay_policy: ReplayPolicy,
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub rate_limit_bps: u64,
    /// Ack sampling, "50" or "50%".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_freq: Option<String>,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub max_waiting: i64,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub max_ack_pending: i64,
    /// Present for push consumers, absent for pull consumers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliver_subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliver_group: Option<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub flow_control: bool,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub idle_heartbeat: i64,
    #[serde(skip_serializing_if = "is_false")]
    pub headers_only: bool,
    /// Largest `batch` a pull request may ask for; 0 is no limit.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub max_batch: i64,
    /// Longest `expires` a pull request may ask for, in ns; 0 is no limit.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub max_expires: i64,
    /// Largest `max_bytes` a pull request may ask for; 0 is no limit.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub max_bytes: i64,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub inactive_threshold: i64,
    /// Always emitted, as nats-server does (no `omitempty`).
    pub num_replicas: i64,
    #[serde(skip_serializing_if = "is_false")]
    pub mem_storage: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
}

/// Go treats `""` as "not set"; so do we, by turning `Some("")` into `None`.
fn drop_empty(field: &mut Option<String>) {
    if field.as_deref() == Some("") {
        *field = None;
    }
}

fn invalid_config(text: impl std::fmt::Display) -> ApiError {
    ApiError::stream_invalid_config(text)
}

fn invalid_policy(text: String) -> ApiError {
    ApiError::new(400, 10094, text)
}

/// nats-server's two templates for start-position conflicts.
fn bad_start(policy: &str, start: &str) -> ApiError {
    invalid_policy(format!(
        "consumer delivery policy is deliver {policy}, but optional start {start} is also set"
    ))
}

fn not_set(policy: &str, missing: &str) -> ApiError {
    invalid_policy(format!(
        "consumer delivery policy is deliver {policy}, but optional {missing} is not set"
    ))
}

/// Consumer errors with nats-server's codes (server/errors.json), kept here beside their only
/// users.
impl ApiError {
    pub fn consumer_create(detail: impl std::fmt::Display) -> Self {
        Self::new(500, 10012, detail.to_string())
    }

    pub fn consumer_not_found() -> Self {
        Self::new(404, 10014, "consumer not found")
    }

    pub fn consumer_name_exists() -> Self {
        Self::new(400, 10013, "consumer name already in use")
    }

    pub fn consumer_already_exists() -> Self {
        Self::new(400, 10148, "consumer already exists")
    }

    pub fn consumer_does_not_exist() -> Self {
        Self::new(400, 10149, "consumer does not exist")
    }

    pub fn consumer_max_deliver_backoff() -> Self {
        Self::new(
            400,
            10116,
            "max deliver is required to be > length of backoff values",
        )
    }
}

impl ConsumerConfig {
    /// Fills nats-server's defaults and validates against the stream, returning the effective
    /// config or the exact ApiError nats-server gives.
    pub fn normalized(mut self, stream: &StreamConfig) -> Result<ConsumerConfig, ApiError> {
        self.drop_unset_values();
        if let Some(time) = &self.opt_start_time {
            // Go fails to decode a bad time while unmarshalling the request.
            parse_rfc3339(time).map_err(ApiError::invalid_json)?;
        }
        self.set_defaults(stream);
        self.check(stream)?;
        self.check_work_queue(stream)?;
        if let Some(name) = self.effective_name() {
            if name.len() > MAX_NAME_BYTES {
                return Err(ApiError::new(
                    400,
                    10102,
                    format!("consumer name is too long, maximum allowed is {MAX_NAME_BYTES}"),
                ));
            }
        }
        // `updateInactiveThreshold`: ephemerals always expire; the config shows the default
        // without the server's internal jitter.
        if !self.is_durable() && self.inactive_threshold <= 0 {
            self.inactive_threshold = DEFAULT_EPHEMERAL_INACTIVE_THRESHOLD_NS;
        }
        if self.num_replicas == 0 {
            self.num_replicas = stream.num_replicas.max(1);
        }
        Ok(self)
    }

    /// Go's zero values mean "not set"; normalise them so that a client sending `""` or `0`
    /// gets the same config as one omitting the field.
    fn drop_unset_values(&mut self) {
        for field in [
            &mut self.durable_name,
            &mut self.name,
            &mut self.description,
            &mut self.filter_subject,
            &mut self.sample_freq,
            &mut self.deliver_subject,
            &mut self.deliver_group,
        ] {
            drop_empty(field);
        }
        if self.opt_start_seq == Some(0) {
            self.opt_start_seq = None;
        }
        if self.metadata.as_ref().is_some_and(BTreeMap::is_empty) {
            self.metadata = None;
        }
    }

    /// `setConsumerConfigDefaults` without pedantic mode: negative limits become "unset", then
    /// the defaults that depend on the ack policy and the stream's consumer limits apply.
    fn set_defaults(&mut self, stream: &StreamConfig) {
        if self.max_deliver == 0 || self.max_deliver < -1 {
            self.max_deliver = -1;
        }
        if self.max_ack_pending < -1 {
            self.max_ack_pending = -1;
        }
        for value in [
            &mut self.max_waiting,
            &mut self.max_batch,
            &mut self.max_expires,
            &mut self.max_bytes,
            &mut self.idle_heartbeat,
            &mut self.inactive_threshold,
        ] {
            if *value < 0 {
                *value = 0;
            }
        }
        if self.is_pull() && self.max_waiting == 0 {
            self.max_waiting = DEFAULT_MAX_WAITING;
        }
        if self.ack_wait == 0 && self.ack_policy != AckPolicy::None {
            self.ack_wait = DEFAULT_ACK_WAIT_NS;
        }
        if let Some(first) = self.backoff.first() {
            self.ack_wait = *first;
        }
        let limits = &stream.consumer_limits;
        if self.max_ack_pending == 0 {
            self.max_ack_pending = limits.max_ack_pending.unwrap_or(0);
        }
        if self.inactive_threshold == 0 {
            self.inactive_threshold = limits.inactive_threshold.unwrap_or(0);
        }
        if self.max_ack_pending == 0 && self.ack_policy != AckPolicy::None {
            self.max_ack_pending = DEFAULT_MAX_ACK_PENDING;
        }
    }

    /// `checkConsumerCfg`, in nats-server's order so that a config with several faults gets the
    /// same (first) error.
    fn check(&self, stream: &StreamConfig) -> Result<(), ApiError> {
        self.check_names()?;
        self.check_replicas(stream)?;
        if self.backoff.iter().any(|b| *b < 0) {
            return Err(ApiError::new(
                400,
                10184,
                "consumer backoff needs to be positive",
            ));
        }
        if self.ack_wait < 0 {
            return Err(ApiError::new(
                400,
                10183,
                "consumer ack wait needs to be positive",
            ));
        }
        let backoff_len = i64::try_from(self.backoff.len()).unwrap_or(i64::MAX);
        if backoff_len > 0 && self.max_deliver != -1 && backoff_len > self.max_deliver {
            return Err(ApiError::consumer_max_deliver_backoff());
        }
        if self.description.as_ref().map_or(0, String::len) > MAX_DESCRIPTION_BYTES {
            return Err(ApiError::new(
                400,
                10107,
                format!(
                    "consumer description is too long, maximum allowed is {MAX_DESCRIPTION_BYTES}"
                ),
            ));
        }
        match &self.deliver_subject {
            Some(deliver) => self.check_push(deliver, stream)?,
            None => self.check_pull(stream)?,
        }
        self.check_limits(stream)?;
        self.check_filters(stream)?;
        self.check_start_position()?;
        if let Some(freq) = &self.sample_freq {
            check_sample_freq(freq)?;
        }
        if self.flow_control && self.idle_heartbeat == 0 {
            return Err(ApiError::new(
                400,
                10108,
                "consumer with flow control also needs heartbeats",
            ));
        }
        if let (Some(durable), Some(name)) = (&self.durable_name, &self.name) {
            if durable != name {
                return Err(durable_and_name_mismatch());
            }
        }
        let metadata_bytes: usize = self
            .metadata
            .iter()
            .flatten()
            .map(|(k, v)| k.len() + v.len())
            .sum();
        if metadata_bytes > MAX_METADATA_BYTES {
            return Err(ApiError::new(
                400,
                10135,
                format!(
                    "consumer metadata exceeds maximum size of {}KB",
                    MAX_METADATA_BYTES / 1024
                ),
            ));
        }
        Ok(())
    }

    fn check_names(&self) -> Result<(), ApiError> {
        // Over-long names get their own error (10102) after the other checks, as in
        // nats-server; only the characters are checked here.
        let bad_chars = |name: &str| name.len() <= MAX_NAME_BYTES && !is_valid_name(name);
        if self.name.as_deref().is_some_and(bad_chars) {
            return Err(invalid_config(
                "consumer name can not contain '.', '*', '>', '\\', '/'",
            ));
        }
        if self.durable_name.as_deref().is_some_and(bad_chars) {
            return Err(invalid_config(
                "consumer durable name can not contain '.', '*', '>', '\\', '/'",
            ));
        }
        Ok(())
    }

    fn check_replicas(&self, stream: &StreamConfig) -> Result<(), ApiError> {
        let stream_replicas = stream.num_replicas.max(1);
        if self.num_replicas > stream_replicas {
            return Err(ApiError::new(
                400,
                10126,
                "consumer config replica count exceeds parent stream",
            ));
        }
        if self.num_replicas < 0 {
            return Err(ApiError::new(
                400,
                10133,
                "replicas count cannot be negative",
            ));
        }
        if matches!(stream.retention, Retention::Interest | Retention::WorkQueue)
            && self.num_replicas != 0
            && self.num_replicas != stream_replicas
        {
            return Err(ApiError::new(
                400,
                10134,
                "consumer config replicas must match interest retention stream's replicas",
            ));
        }
        if self.num_replicas > 1 {
            // Unreachable while streams are refused above R1, but a single server can never
            // keep a replicated consumer, so say so plainly if that ever changes.
            return Err(ApiError::replicas_not_supported());
        }
        Ok(())
    }

    fn check_push(&self, deliver: &str, stream: &StreamConfig) -> Result<(), ApiError> {
        if !is_literal(deliver) {
            return Err(ApiError::new(
                400,
                10079,
                "consumer deliver subject has wildcards",
            ));
        }
        if !is_valid_subject(deliver) {
            return Err(ApiError::new(
                400,
                10112,
                "invalid push consumer deliver subject",
            ));
        }
        // `deliveryFormsCycle`: delivering into the stream's own subjects would store every
        // delivery again.
        if stream_subjects(stream)
            .iter()
            .any(|s| is_subset_match(deliver, s.as_str()))
        {
            return Err(ApiError::new(
                400,
                10081,
                "consumer deliver subject forms a cycle",
            ));
        }
        if self.max_waiting != 0 {
            return Err(ApiError::new(
                400,
                10080,
                "consumer in push mode can not set max waiting",
            ));
        }
        if self.max_ack_pending > 0 && self.ack_policy == AckPolicy::None {
            return Err(ApiError::new(
                400,
                10082,
                "consumer requires ack policy for max ack pending",
            ));
        }
        if self.idle_heartbeat > 0 && self.idle_heartbeat < MIN_IDLE_HEARTBEAT_NS {
            return Err(ApiError::new(
                400,
                10083,
                "consumer idle heartbeat needs to be >= 100ms",
            ));
        }
        Ok(())
    }

    fn check_pull(&self, stream: &StreamConfig) -> Result<(), ApiError> {
        if self.ack_policy == AckPolicy::None && stream.retention == Retention::WorkQueue {
            return Err(ApiError::new(
                400,
                10084,
                "consumer in pull mode requires explicit ack policy on workqueue stream",
            ));
        }
        if self.rate_limit_bps > 0 {
            return Err(ApiError::new(
                400,
                10086,
                "consumer in pull mode can not have rate limit set",
            ));
        }
        if self.max_waiting < 0 {
            return Err(ApiError::new(
                400,
                10087,
                "consumer max waiting needs to be positive",
            ));
        }
        if self.idle_heartbeat > 0 {
            return Err(ApiError::new(
                400,
                10088,
                "consumer idle heartbeat requires a push based consumer",
            ));
        }
        if self.flow_control {
            return Err(ApiError::new(
                400,
                10089,
                "consumer flow control requires a push based consumer",
            ));
        }
        if self.max_batch < 0 {
            return Err(ApiError::new(
                400,
                10114,
                "consumer max request batch needs to be > 0",
            ));
        }
        if self.max_expires != 0 && self.max_expires < MIN_MAX_EXPIRES_NS {
            return Err(ApiError::new(
                400,
                10115,
                "consumer max request expires needs to be >= 1ms",
            ));
        }
        Ok(())
    }

    /// The stream's `consumer_limits` cap what a consumer may ask for.
    fn check_limits(&self, stream: &StreamConfig) -> Result<(), ApiError> {
        let limits = &stream.consumer_limits;
        if let Some(limit) = limits.max_ack_pending.filter(|l| *l > 0) {
            if self.max_ack_pending > limit {
                return Err(ApiError::new(
                    400,
                    10121,
                    format!("consumer max ack pending exceeds system limit of {limit}"),
                ));
            }
        }
        if let Some(limit) = limits.inactive_threshold.filter(|l| *l > 0) {
            if self.inactive_threshold > limit {
                return Err(ApiError::new(
                    400,
                    10153,
                    format!(
                        "consumer inactive threshold exceeds system limit of {}",
                        format_go_duration(limit)
                    ),
                ));
            }
        }
        Ok(())
    }

    fn check_filters(&self, stream: &StreamConfig) -> Result<(), ApiError> {
        if self.filter_subject.is_some() && !self.filter_subjects.is_empty() {
            return Err(ApiError::new(
                400,
                10136,
                "consumer cannot have both FilterSubject and FilterSubjects specified",
            ));
        }
        if self
            .filter_subject
            .as_deref()
            .is_some_and(|f| !is_valid_subject(f))
        {
            return Err(invalid_config("invalid subject"));
        }
        if self.filter_subjects.iter().any(String::is_empty) {
            return Err(ApiError::new(
                400,
                10139,
                "consumer filter in FilterSubjects cannot be empty",
            ));
        }
        let filters = self.filters();
        for (i, filter) in filters.iter().enumerate() {
            if !is_valid_subject(filter.as_str()) {
                return Err(invalid_config("invalid subject"));
            }
            let overlaps_another = filters
                .iter()
                .enumerate()
                .any(|(j, other)| i != j && is_subset_match(filter.as_str(), other.as_str()));
            if overlaps_another {
                return Err(ApiError::new(
                    400,
                    10138,
                    "consumer subject filters cannot overlap",
                ));
            }
        }
        // nats-server before 2.10 refused a filter that can match nothing the stream stores
        // (`validFilteredSubject`). We keep that check, accepting any overlap, so a typo'd
        // filter is an error rather than a consumer that never delivers.
        let subjects = stream_subjects(stream);
        for filter in &filters {
            if !subjects
                .iter()
                .any(|s| subjects_overlap(filter.as_str(), s.as_str()))
            {
                return Err(ApiError::new(
                    400,
                    10093,
                    "consumer filter subject is not a valid subset of the interest subjects",
                ));
            }
        }
        Ok(())
    }

    fn check_start_position(&self) -> Result<(), ApiError> {
        let has_seq = self.opt_start_seq.is_some();
        let has_time = self.opt_start_time.is_some();
        let simple = |policy: &str| {
            if has_seq {
                Err(bad_start(policy, "sequence"))
            } else if has_time {
                Err(bad_start(policy, "time"))
            } else {
                Ok(())
            }
        };
        match self.deliver_policy {
            DeliverPolicy::All => simple("all"),
            DeliverPolicy::Last => simple("last"),
            DeliverPolicy::New => simple("new"),
            DeliverPolicy::LastPerSubject => {
                simple("last per subject")?;
                if self.filters().is_empty() {
                    return Err(not_set("last per subject", "filter subject"));
                }
                Ok(())
            }
            DeliverPolicy::ByStartSequence => {
                if !has_seq {
                    return Err(not_set("by start sequence", "start sequence"));
                }
                if has_time {
                    return Err(bad_start("by start sequence", "time"));
                }
                Ok(())
            }
            DeliverPolicy::ByStartTime => {
                if !has_time {
                    return Err(not_set("by start time", "start time"));
                }
                if has_seq {
                    // nats-server's template really does say "start start sequence".
                    return Err(bad_start("by start time", "start sequence"));
                }
                Ok(())
            }
        }
    }

    /// The work-queue rules of `addConsumerWithAssignment` that need only this config; the
    /// uniqueness rules (10099, 10100) need the other consumers and belong to the caller.
    fn check_work_queue(&self, stream: &StreamConfig) -> Result<(), ApiError> {
        if stream.retention != Retention::WorkQueue {
            return Ok(());
        }
        if self.ack_policy != AckPolicy::Explicit {
            return Err(ApiError::new(
                400,
                10098,
                "workqueue stream requires explicit ack",
            ));
        }
        if self.deliver_policy != DeliverPolicy::All {
            return Err(ApiError::new(
                400,
                10101,
                "consumer must be deliver all on workqueue stream",
            ));
        }
        Ok(())
    }

    /// The consumer's name: `name`, else `durable_name` (None for an unnamed ephemeral).
    pub fn effective_name(&self) -> Option<&str> {
        self.name
            .as_deref()
            .filter(|n| !n.is_empty())
            .or(self.durable_name.as_deref().filter(|n| !n.is_empty()))
    }

    /// Whether `durable_name` is set.
    pub fn is_durable(&self) -> bool {
        self.durable_name.as_deref().is_some_and(|d| !d.is_empty())
    }

    /// Whether the consumer is pulled from, i.e. has no deliver subject.
    pub fn is_pull(&self) -> bool {
        self.deliver_subject.as_deref().is_none_or(str::is_empty)
    }

    /// The filters as a list (filter_subject or filter_subjects; empty = whole stream).
    pub fn filters(&self) -> Vec<String> {
        match self.filter_subject.as_deref() {
            Some(filter) if !filter.is_empty() => vec![filter.to_string()],
            _ => self.filter_subjects.clone(),
        }
    }

    /// Checks that `new` (normalized) may replace `self`, with nats-server's 10012 texts
    /// (`checkNewConsumerConfig`). A push consumer moving to another deliver subject is
    /// refused by nats-server (10013) only while the old subject still has interest; the caller
    /// knows about interest and must make that check.
    pub fn check_update(&self, new: &ConsumerConfig) -> Result<(), ApiError> {
        if self == new {
            return Ok(());
        }
        let refuse = |what: &str| Err(ApiError::consumer_create(what));
        if self.deliver_policy != new.deliver_policy {
            return refuse("deliver policy can not be updated");
        }
        if self.mem_storage != new.mem_storage {
            return refuse("storage type can not be updated");
        }
        if self.opt_start_seq.unwrap_or(0) != new.opt_start_seq.unwrap_or(0) {
            return refuse("start sequence can not be updated");
        }
        if !same_instant(
            self.opt_start_time.as_deref(),
            new.opt_start_time.as_deref(),
        ) {
            return refuse("start time can not be updated");
        }
        if self.ack_policy != new.ack_policy {
            return refuse("ack policy can not be updated");
        }
        if self.replay_policy != new.replay_policy {
            return refuse("replay policy can not be updated");
        }
        if self.idle_heartbeat != new.idle_heartbeat {
            return refuse("heart beats can not be updated");
        }
        if self.flow_control != new.flow_control {
            return refuse("flow control can not be updated");
        }
        match (self.is_pull(), new.is_pull()) {
            (true, false) => return refuse("can not update pull consumer to push based"),
            (false, true) => return refuse("can not update push consumer to pull based"),
            _ => {}
        }
        if self.max_waiting != new.max_waiting {
            return refuse("max waiting can not be updated");
        }
        let backoff_len = i64::try_from(new.backoff.len()).unwrap_or(i64::MAX);
        if backoff_len > 0 && new.max_deliver != -1 && backoff_len > new.max_deliver {
            return Err(ApiError::consumer_max_deliver_backoff());
        }
        Ok(())
    }
}

/// Whether two optional start times name the same instant (Go compares with `Time.Equal`).
fn same_instant(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            a == b || matches!((parse_rfc3339(a), parse_rfc3339(b)), (Ok(x), Ok(y)) if x == y)
        }
        _ => false,
    }
}

/// The subjects a stream stores: its own list, or its name when the list is empty (as
/// `StreamConfig::normalized` would fill it).
fn stream_subjects(stream: &StreamConfig) -> Vec<String> {
    if stream.subjects.is_empty() {
        vec![stream.name.clone()]
    } else {
        stream.subjects.clone()
    }
}

/// `sample_freq` is an integer percentage, optionally with `%`. Go's `strconv.Atoi` error (or
/// `<nil>` for a negative number) is part of the description.
fn check_sample_freq(freq: &str) -> Result<(), ApiError> {
    let digits = freq.strip_suffix('%').unwrap_or(freq);
    let detail = match digits.parse::<i64>() {
        Ok(n) if n >= 0 => return Ok(()),
        Ok(_) => "<nil>".to_string(),
        Err(_) => format!("strconv.Atoi: parsing {digits:?}: invalid syntax"),
    };
    Err(ApiError::new(
        400,
        10095,
        format!("failed to parse consumer sampling configuration: {detail}"),
    ))
}

fn durable_and_name_mismatch() -> ApiError {
    ApiError::new(
        400,
        10132,
        "Consumer Durable and Name have to be equal if both are provided",
    )
}

/// Formats nanoseconds the way Go's `time.Duration.String` does ("1.5s", "1m0s", "100ms"),
/// because nats-server puts durations into some error texts with `%v`.
pub fn format_go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    if ns < 0 {
        out.push('-');
    }
    let n = ns.unsigned_abs();
    const SEC: u64 = 1_000_000_000;
    let with_fraction = |whole: u64, frac: u64, width: usize| {
        if frac == 0 {
            whole.to_string()
        } else {
            let digits = format!("{frac:0width$}");
            format!("{whole}.{}", digits.trim_end_matches('0'))
        }
    };
    if n < 1_000 {
        out.push_str(&format!("{n}ns"));
    } else if n < 1_000_000 {
        out.push_str(&with_fraction(n / 1_000, n % 1_000, 3));
        out.push_str("µs");
    } else if n < SEC {
        out.push_str(&with_fraction(n / 1_000_000, n % 1_000_000, 6));
        out.push_str("ms");
    } else {
        let secs = n / SEC;
        let (hours, minutes) = (secs / 3600, secs / 60 % 60);
        if hours > 0 {
            out.push_str(&format!("{hours}h{minutes}m"));
        } else if minutes > 0 {
            out.push_str(&format!("{minutes}m"));
        }
        out.push_str(&with_fraction(secs % 60, n % SEC, 9));
        out.push('s');
    }
    out
}

/// The body of `CONSUMER.CREATE` and `CONSUMER.DURABLE.CREATE`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CreateConsumerRequest {
    pub stream_name: String,
    pub config: ConsumerConfig,
    /// `""` (create or update), `"create"` or `"update"`.
    pub action: String,
    pub pedantic: bool,
}

/// Base 62 digits, as in the names nats-server generates.
const NAME_ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// An 8-character `[0-9A-Za-z]` name from `random` (62^8 < 2^64, so every digit is used).
fn generated_name(mut random: u64) -> String {
    (0..GENERATED_NAME_LEN)
        .map(|_| {
            let digit = NAME_ALPHABET[(random % 62) as usize];
            random /= 62;
            char::from(digit)
        })
        .collect()
}

/// Validates a create request against the API subject it arrived on, per §2.3 / §5.2:
/// subject_tokens are the tokens after `$JS.API.` e.g. ["CONSUMER","CREATE","S","C","f","x"] or
/// ["CONSUMER","DURABLE","CREATE","S","D"].
/// Returns the consumer name to use (generating an 8-char [0-9A-Za-z] name for a legacy
/// ephemeral with none, from a caller-supplied random u64) or the nats-server error.
///
/// On success `req.config.name` holds the name for the new-style and generated-name forms, as
/// nats-server stamps it into the config it stores.
pub fn check_create_subject(
    subject_tokens: &[&str],
    req: &mut CreateConsumerRequest,
    random: u64,
) -> Result<String, ApiError> {
    // Go decodes `action` while unmarshalling, so a bad one is an invalid-JSON error.
    if !matches!(req.action.as_str(), "" | "create" | "update") {
        return Err(ApiError::invalid_json(format!(
            "unknown consumer action: {:?}",
            req.action
        )));
    }
    let (stream, form) = match subject_tokens {
        ["CONSUMER", "DURABLE", "CREATE", stream, rest @ ..] => {
            if rest.len() != 1 {
                return Err(ApiError::new(
                    400,
                    10016,
                    "consumer expected to be durable but no durable name set in subject",
                ));
            }
            (*stream, CreateForm::LegacyDurable(rest[0]))
        }
        ["CONSUMER", "CREATE", stream] => (*stream, CreateForm::LegacyEphemeral),
        ["CONSUMER", "CREATE", stream, name, filter @ ..] => (
            *stream,
            CreateForm::Named {
                name,
                filter: filter.join("."),
            },
        ),
        _ => return Err(ApiError::bad_request(None)),
    };
    if stream != req.stream_name {
        return Err(ApiError::stream_name_mismatch());
    }
    let config = &mut req.config;
    drop_empty(&mut config.durable_name);
    drop_empty(&mut config.name);
    drop_empty(&mut config.filter_subject);
    let name = match form {
        CreateForm::LegacyDurable(durable) => {
            check_no_path_separators(durable)?;
            let Some(requested) = config.durable_name.as_deref() else {
                return Err(ApiError::new(
                    400,
                    10018,
                    "consumer expected to be durable but a durable name was not set",
                ));
            };
            if requested != durable {
                return Err(ApiError::new(
                    400,
                    10017,
                    "consumer name in subject does not match durable name in request",
                ));
            }
            if config.name.as_deref().is_some_and(|n| n != durable) {
                return Err(durable_and_name_mismatch());
            }
            durable.to_string()
        }
        CreateForm::LegacyEphemeral => {
            if config.durable_name.is_some() {
                return Err(ApiError::new(
                    400,
                    10020,
                    "consumer expected to be ephemeral but a durable name was set in request",
                ));
            }
            match &config.name {
                Some(name) => name.clone(),
                None => {
                    let name = generated_name(random);
                    config.name = Some(name.clone());
                    name
                }
            }
        }
        CreateForm::Named { name, filter } => {
            check_no_path_separators(name)?;
            if config.durable_name.as_deref().is_some_and(|d| d != name) {
                return Err(ApiError::new(
                    400,
                    10017,
                    "consumer name in subject does not match durable name in request",
                ));
            }
            // The subject names the consumer; nats-server stamps it into the config.
            config.name = Some(name.to_string());
            if !filter.is_empty() {
                if !config.filter_subjects.is_empty() {
                    return Err(ApiError::new(
                        400,
                        10137,
                        "consumer with multiple subject filters cannot use subject based API",
                    ));
                }
                if config.filter_subject.as_deref() != Some(filter.as_str()) {
                    return Err(ApiError::new(
                        400,
                        10131,
                        concat!(
                            "Consumer create request did not match filtered subject ",
                            "from create subject"
                        ),
                    ));
                }
            }
            name.to_string()
        }
    };
    if name.len() > MAX_NAME_BYTES {
        return Err(ApiError::new(
            400,
            10102,
            format!("consumer name is too long, maximum allowed is {MAX_NAME_BYTES}"),
        ));
    }
    if !is_valid_name(&name) {
        return Err(invalid_config(
            "consumer name can not contain '.', '*', '>', '\\', '/'",
        ));
    }
    Ok(name)
}

/// The create subject's shapes.
enum CreateForm<'a> {
    /// `CONSUMER.DURABLE.CREATE.<stream>.<durable>` (nats-py, old nats.go).
    LegacyDurable(&'a str),
    /// `CONSUMER.CREATE.<stream>`: the server names the consumer if the config does not.
    LegacyEphemeral,
    /// `CONSUMER.CREATE.<stream>.<name>[.<filter>]`.
    Named { name: &'a str, filter: String },
}

fn check_no_path_separators(name: &str) -> Result<(), ApiError> {
    if name.contains(['\\', '/']) {
        return Err(ApiError::new(
            400,
            10127,
            "Consumer name can not contain path separators",
        ));
    }
    Ok(())
}

/// A consumer's position: the consumer and stream sequences and when it last moved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SequenceInfo {
    pub consumer_seq: u64,
    pub stream_seq: u64,
    /// RFC 3339; omitted until the consumer has been active.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_active: Option<String>,
}

/// `CONSUMER.INFO` / `CONSUMER.CREATE` bodies (less `type`). `created` and `ts` are always
/// present (async-nats requires `created`).
#[derive(Debug, Clone, Serialize)]
pub struct ConsumerInfo {
    pub stream_name: String,
    pub name: String,
    pub created: String,
    pub config: ConsumerConfig,
    pub delivered: SequenceInfo,
    pub ack_floor: SequenceInfo,
    pub num_ack_pending: u64,
    pub num_redelivered: u64,
    pub num_waiting: u64,
    pub num_pending: u64,
    pub cluster: ClusterInfo,
    #[serde(skip_serializing_if = "is_false")]
    pub push_bound: bool,
    pub ts: String,
}

/// A parsed pull request (`$JS.API.CONSUMER.MSG.NEXT`): empty body = batch 1; a bare integer =
/// batch N; else JSON {batch, expires (ns), max_bytes, no_wait, idle_heartbeat (ns)}.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PullRequest {
    pub batch: u64,
    /// 0 = no expiry.
    pub expires_ns: u64,
    /// 0 = no byte limit.
    pub max_bytes: u64,
    pub no_wait: bool,
    pub idle_heartbeat_ns: u64,
}

/// The JSON form of a pull request; fields we do not act on (priority groups, pins) are
/// ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PullRequestJson {
    batch: i64,
    expires: i64,
    max_bytes: i64,
    no_wait: bool,
    idle_heartbeat: i64,
}

/// Parse and check against the consumer config. Errors are (status code, description) as sent
/// in the status header, e.g. (400, "Bad Request - heartbeat value too large"),
/// (409, "Exceeded MaxRequestBatch of 10"), (409, "Exceeded MaxRequestExpires of 1s"),
/// (409, "Exceeded MaxRequestMaxBytes of 100"), (409, "Consumer is push based").
///
/// "Exceeded MaxWaiting" needs the wait queue and is the caller's check.
pub fn parse_pull_request(
    payload: &[u8],
    config: &ConsumerConfig,
) -> Result<PullRequest, (u16, String)> {
    if !config.is_pull() {
        return Err((409, "Consumer is push based".to_string()));
    }
    let body = payload.trim_ascii();
    let req = if body.is_empty() {
        PullRequestJson {
            batch: 1,
            ..PullRequestJson::default()
        }
    } else if body[0] == b'{' {
        let req: PullRequestJson = super::api_types::from_go_json(body)
            .map_err(|err| (400, format!("Bad Request - {err}")))?;
        // The heartbeat must fit twice into the request's life, or the client would see it
        // expire between heartbeats (`nextReqFromMsg`).
        if req.idle_heartbeat > 0 && req.idle_heartbeat.saturating_mul(2) > req.expires {
            return Err((400, "Bad Request - heartbeat value too large".to_string()));
        }
        req
    } else {
        // nats-server takes a bare integer as the batch and anything else as a batch of 1.
        let batch = std::str::from_utf8(body)
            .ok()
            .and_then(|text| text.parse::<i64>().ok())
            .unwrap_or(1);
        PullRequestJson {
            batch,
            ..PullRequestJson::default()
        }
    };
    if config.max_batch > 0 && req.batch > config.max_batch {
        return Err((
            409,
            format!("Exceeded MaxRequestBatch of {}", config.max_batch),
        ));
    }
    if req.expires > 0 && config.max_expires > 0 && req.expires > config.max_expires {
        return Err((
            409,
            format!(
                "Exceeded MaxRequestExpires of {}",
                format_go_duration(config.max_expires)
            ),
        ));
    }
    if req.max_bytes > 0 && config.max_bytes > 0 && req.max_bytes > config.max_bytes {
        return Err((
            409,
            format!("Exceeded MaxRequestMaxBytes of {}", config.max_bytes),
        ));
    }
    let positive = |n: i64| u64::try_from(n).unwrap_or(0);
    Ok(PullRequest {
        // A batch of 0 or less still asks for one message.
        batch: positive(req.batch).max(1),
        // A negative expiry is already in the past in nats-server: the request times out at
        // once, which the smallest expiry reproduces.
        expires_ns: if req.expires < 0 {
            1
        } else {
            positive(req.expires)
        },
        max_bytes: positive(req.max_bytes),
        no_wait: req.no_wait,
        idle_heartbeat_ns: positive(req.idle_heartbeat),
    })
}

#[cfg(test)]
#[path = "consumer_config_tests.rs"]
mod tests;
