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
string_enum!(PriorityPolicy {
    None => "none",
    Overflow => "overflow",
    PinnedClient => "pinned_client",
    Prioritized => "prioritized"
});

/// How a pull consumer with priority groups chooses among waiting requests (ADR-42).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PriorityPolicy {
    #[default]
    None,
    /// A request is served only while the consumer is behind by its `min_pending` or
    /// `min_ack_pending`.
    Overflow,
    /// One client at a time, named by its `Nats-Pin-Id`, gets the messages.
    PinnedClient,
    /// Requests with a lower `priority` number are served first.
    Prioritized,
}

impl PriorityPolicy {
    fn is_none(&self) -> bool {
        *self == PriorityPolicy::None
    }
}

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
    /// 2.11+: nothing is delivered before this RFC 3339 time; absent = not paused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pause_until: Option<String>,
    /// 2.11+: the priority groups pull requests name (ADR-42); exactly one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub priority_groups: Vec<String>,
    #[serde(skip_serializing_if = "PriorityPolicy::is_none")]
    pub priority_policy: PriorityPolicy,
    /// How long a pinned client keeps its pin without pulling, in ns.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub priority_timeout: i64,
    /// A mirror's or source's hold on a workqueue or interest origin (nats-server's
    /// `sourcing`, `server::jetstream::origin_hold`): exempt from the work-queue rules on
    /// other consumers. Only the server sets it; `CONSUMER.CREATE` refuses it.
    #[serde(skip_serializing_if = "is_false")]
    pub sourcing: bool,
}

impl ConsumerConfig {
    /// Whether the consumer outlives a restart: one on file storage does, durable or
    /// ephemeral (an ephemeral until its `inactive_threshold`); one on memory storage
    /// (`mem_storage`, as ordered consumers ask) is gone after a restart, as in nats-server.
    pub fn is_kept_across_restarts(&self) -> bool {
        !self.mem_storage
    }

    /// Whether the consumer's state is replicated in its stream's group: it has more than one
    /// replica, which only a consumer of a replicated stream can have (`check_replicas`).
    pub fn is_replicated(&self) -> bool {
        self.num_replicas > 1
    }
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

#[path = "consumer_config_2_11.rs"]
mod level_1;
#[path = "consumer_requests.rs"]
mod requests;
#[path = "consumer_rules.rs"]
mod rules;

pub use level_1::{invalid_group_name, is_valid_group_name, DEFAULT_PRIORITY_TIMEOUT_NS};
pub use requests::*;

#[cfg(test)]
#[path = "consumer_config_tests.rs"]
mod tests;
