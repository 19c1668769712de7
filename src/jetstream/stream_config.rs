//! The JetStream `StreamConfig` as clients send and receive it, with nats-server's defaults
//! (`checkStreamCfg` in server/stream.go) and its validation texts, and the rules for what an
//! update may change.
//!
//! Clients compare the config they sent with the one echoed back (nats.go's `AddStream` is
//! idempotent only for an identical effective config), so defaults are filled in exactly as
//! nats-server fills them: 0 limits become -1, the duplicate window becomes 2 minutes (or
//! max_age when that is shorter), an empty subject list becomes the stream's name.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::ApiError;
use crate::protocol::subject::{is_subset_match, is_valid_subject, subjects_overlap};
use crate::protocol::transform::{is_valid_source, SubjectTransform};

/// nats-server `JSMaxNameLen`.
pub const MAX_NAME_BYTES: usize = 255;
/// nats-server `JSMaxDescriptionLen`.
pub const MAX_DESCRIPTION_BYTES: usize = 4 * 1024;
/// nats-server `StreamMaxReplicas`.
pub const MAX_REPLICAS: i64 = 5;
/// nats-server `StreamDefaultDuplicatesWindow`, in nanoseconds.
/// The shortest life a subject delete marker may be given.
const MIN_MARKER_TTL_NS: i64 = 1_000_000_000;
pub const DEFAULT_DUPLICATE_WINDOW_NS: i64 = 120 * 1_000_000_000;
/// The shortest max_age and duplicate window nats-server accepts, in nanoseconds.
pub const MIN_WINDOW_NS: i64 = 100_000_000;

/// When messages leave a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Retention {
    #[default]
    Limits,
    Interest,
    WorkQueue,
}

/// Which messages give way when a limit is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Discard {
    #[default]
    Old,
    New,
}

/// Where a stream keeps its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Storage {
    #[default]
    File,
    Memory,
}

/// Serde for enums that travel as lower-case strings and are read case-insensitively.
macro_rules! string_enum {
    ($name:ident { $($variant:ident => $text:literal),+ }) => {
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
                    _ => Err(serde::de::Error::custom(format!("can not unmarshal {text:?}"))),
                }
            }
        }
    };
}

string_enum!(Retention { Limits => "limits", Interest => "interest", WorkQueue => "workqueue" });
string_enum!(Discard { Old => "old", New => "new" });
string_enum!(Storage { File => "file", Memory => "memory" });

fn is_zero_i64(n: &i64) -> bool {
    *n == 0
}

/// When a stream's writes reach the disk (nats-server 2.12). `async` acknowledges a publish
/// before its fsync, whatever the server's `--sync` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PersistMode {
    #[default]
    Default,
    Async,
}

impl PersistMode {
    fn is_default(&self) -> bool {
        *self == PersistMode::Default
    }
}

impl Serialize for PersistMode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            PersistMode::Default => "default",
            PersistMode::Async => "async",
        })
    }
}

impl<'de> Deserialize<'de> for PersistMode {
    /// As Go's: exactly `default`, `async`, or an empty string for the default.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match text.as_str() {
            "" | "default" => Ok(PersistMode::Default),
            "async" => Ok(PersistMode::Async),
            _ => Err(serde::de::Error::custom(format!(
                "can not unmarshal {text:?}"
            ))),
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

/// Limits the stream imposes on its consumers; always emitted, as `{}` when empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerLimits {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inactive_threshold: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_ack_pending: Option<i64>,
}

/// Where a stream asks to be placed in a cluster. Typed with nats-server's fields (`Placement`
/// in server/stream.go: `cluster` and `tags`, both omitempty) rather than kept as raw JSON, so
/// that unknown keys are dropped as Go's decoder drops them, the echo is the same before and
/// after a restart (the catalog stores only these two fields), and numbers cannot drift in a
/// decode-encode round trip (found by the `js_api_request` fuzz target).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Placement {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// A stream's configuration, field for field as JetStream's JSON has it (durations in ns).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamConfig {
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<String>,
    pub retention: Retention,
    pub max_consumers: i64,
    pub max_msgs: i64,
    pub max_bytes: i64,
    pub max_age: i64,
    pub max_msgs_per_subject: i64,
    pub max_msg_size: i64,
    pub discard: Discard,
    #[serde(skip_serializing_if = "is_false")]
    pub discard_new_per_subject: bool,
    pub storage: Storage,
    pub num_replicas: i64,
    #[serde(skip_serializing_if = "is_false")]
    pub no_ack: bool,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub duplicate_window: i64,
    pub compression: String,
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub first_seq: u64,
    pub allow_direct: bool,
    pub mirror_direct: bool,
    pub sealed: bool,
    pub deny_delete: bool,
    pub deny_purge: bool,
    pub allow_rollup_hdrs: bool,
    pub consumer_limits: ConsumerLimits,
    #[serde(skip_serializing_if = "is_false")]
    pub allow_msg_ttl: bool,
    /// How long a subject delete marker lives (ns); 0: no markers (ADR-43).
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub subject_delete_marker_ttl: i64,
    /// A counter stream (ADR-49): publishes are `Nats-Incr` increments.
    #[serde(skip_serializing_if = "is_false")]
    pub allow_msg_counter: bool,
    /// Atomic batch publish (ADR-50): `Nats-Batch-*` publishes are staged and stored all
    /// together at their commit, or not at all (see `stream_batch`).
    #[serde(skip_serializing_if = "is_false")]
    pub allow_atomic: bool,
    /// Message schedules (ADR-51): `Nats-Schedule` publishes make the stream store messages
    /// later (see `stream_schedules`).
    #[serde(skip_serializing_if = "is_false")]
    pub allow_msg_schedules: bool,
    /// Fast-ingest batch publish (2.14): messages whose reply subject ends in `.$FI` are
    /// stored as they come, with flow control on that subject (see `stream_fast_batch`).
    #[serde(skip_serializing_if = "is_false")]
    pub allow_batched: bool,
    #[serde(skip_serializing_if = "PersistMode::is_default")]
    pub persist_mode: PersistMode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Accepted and echoed; placement means nothing on a single server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// Not supported yet: a stream asking for one is refused with a clear error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sources: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub republish: Option<RepublishConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_transform: Option<SubjectTransformConfig>,
}

/// `subject_transform`: stored messages take the transformed subject (both keys always shown).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SubjectTransformConfig {
    pub src: String,
    pub dest: String,
}

/// `republish`: each stored message matching `src` is published again on `dest`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RepublishConfig {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub src: String,
    pub dest: String,
    #[serde(skip_serializing_if = "is_false")]
    pub headers_only: bool,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            description: String::new(),
            subjects: Vec::new(),
            retention: Retention::Limits,
            max_consumers: 0,
            max_msgs: 0,
            max_bytes: 0,
            max_age: 0,
            max_msgs_per_subject: 0,
            max_msg_size: 0,
            discard: Discard::Old,
            discard_new_per_subject: false,
            storage: Storage::File,
            num_replicas: 0,
            no_ack: false,
            duplicate_window: 0,
            compression: String::new(),
            first_seq: 0,
            allow_direct: false,
            mirror_direct: false,
            sealed: false,
            deny_delete: false,
            deny_purge: false,
            allow_rollup_hdrs: false,
            consumer_limits: ConsumerLimits::default(),
            allow_msg_ttl: false,
            subject_delete_marker_ttl: 0,
            allow_msg_counter: false,
            allow_atomic: false,
            allow_msg_schedules: false,
            allow_batched: false,
            persist_mode: PersistMode::Default,
            metadata: None,
            placement: None,
            mirror: None,
            sources: None,
            republish: None,
            subject_transform: None,
        }
    }
}

/// Subject spaces the server itself answers in; a stream capturing them would swallow API
/// replies unless it sends no acks (nats-server's rule, with its two exceptions).
fn overlaps_reserved(subject: &str) -> bool {
    let reserved = ["$JS.>", "$JSC.>", "$NRG.>", "$SYS.>"];
    let allowed = ["$JS.EVENT.>", "$SYS.ACCOUNT.>"];
    reserved.iter().any(|r| subjects_overlap(subject, *r))
        && !allowed.iter().any(|a| is_subset_match(subject, *a))
}

/// Whether `name` may name a stream or consumer: non-empty, at most 255 bytes, and none of the
/// characters that would break subjects or file paths.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && !name.chars().any(|c| {
            matches!(
                c,
                ' ' | '\t' | '\r' | '\n' | '\x0c' | '.' | '*' | '>' | '\\' | '/' | '\0'
            )
        })
}

pub(super) fn invalid(text: &str) -> ApiError {
    ApiError::stream_invalid_config(text)
}

/// Replaces a 0 or below-minus-one limit with -1 (unlimited), as nats-server does.
fn unlimited_if_unset(value: &mut i64) {
    if *value == 0 || *value < -1 {
        *value = -1;
    }
}

impl StreamConfig {
    /// Fills in defaults and checks the result, giving the effective config or the error
    /// nats-server would give for the same request.
    /// `subject_transform` and `republish`, checked (and republish's empty `src` filled in)
    /// as nats-server 2.15.1 does: 10155/10156 for a bad transform, 500/10052 for a
    /// republish that would feed the stream or cannot be mapped.
    fn check_transforms(&mut self) -> Result<(), ApiError> {
        if let Some(t) = &self.subject_transform {
            if !t.src.is_empty() && !is_valid_source(&t.src) {
                return Err(ApiError::new(
                    400,
                    10155,
                    format!("stream transform source: invalid subject {}", t.src),
                ));
            }
            if !t.dest.is_empty() {
                SubjectTransform::new(&t.src, &t.dest)
                    .map_err(|e| ApiError::new(400, 10156, format!("stream transform: {e}")))?;
            }
        }
        let transform = self.subject_transform.clone();
        if let Some(r) = &mut self.republish {
            if r.src.is_empty() {
                r.src = ">".to_string();
            }
            // The implicit form: republish everything under the transform's destination.
            if let Some(t) = transform.filter(|t| {
                r.src == ">"
                    && r.dest == ">"
                    && self.subjects.len() == 1
                    && self.subjects[0] == t.src
            }) {
                r.src = t.dest.clone();
                r.dest = t.dest;
            }
            if r.dest.is_empty() {
                return Ok(());
            }
            if self.subjects.iter().any(|s| subjects_overlap(&r.dest, s)) {
                return Err(invalid(
                    "stream configuration for republish destination forms a cycle",
                ));
            }
            if !is_valid_source(&r.src) || SubjectTransform::new(&r.src, &r.dest).is_err() {
                return Err(invalid(&format!(
                    "stream configuration for republish with transform from '{}' to '{}' not valid",
                    r.src, r.dest
                )));
            }
        }
        Ok(())
    }

    pub fn normalized(self) -> Result<Self, ApiError> {
        self.normalize(false)
    }

    /// [`StreamConfig::normalized`] for a clustered server, where `num_replicas` may be up
    /// to [`MAX_REPLICAS`] (a single server refuses more than one, as nats-server's does).
    pub fn normalized_for_cluster(self) -> Result<Self, ApiError> {
        self.normalize(true)
    }

    fn normalize(mut self, clustered: bool) -> Result<Self, ApiError> {
        crate::jetstream::versioning::strip(&mut self.metadata);
        if !is_valid_name(&self.name) {
            return Err(invalid(
                "stream name is required and can not contain '.', '*', '>'",
            ));
        }
        if self.description.len() > MAX_DESCRIPTION_BYTES {
            return Err(invalid(
                "stream description is too long, maximum allowed is 4096",
            ));
        }
        if let Some(mirror) = self.mirror.clone() {
            // Kept in one form, so that it compares and persists the same after a restart.
            let spec = super::stream_mirror::check_mirror(&mut self, &mirror)?;
            self.mirror = Some(spec.to_value());
        }
        // `sources: []` is no sources at all, as in nats-server.
        if self
            .sources
            .as_ref()
            .is_some_and(|s| s.as_array().is_some_and(Vec::is_empty))
        {
            self.sources = None;
        }
        if let Some(sources) = self.sources.clone() {
            let specs = super::stream_sources::check_sources(&self, &sources)?;
            let kept = specs.iter().map(super::stream_origin::OriginSpec::to_value);
            self.sources = Some(serde_json::Value::Array(kept.collect()));
        }
        self.check_transforms()?;
        if self.num_replicas < 0 {
            return Err(invalid("replicas count cannot be negative"));
        }
        if self.num_replicas == 0 {
            self.num_replicas = 1;
        }
        if self.num_replicas > MAX_REPLICAS {
            return Err(invalid("maximum replicas is 5"));
        }
        if self.num_replicas > 1 && !clustered {
            return Err(ApiError::replicas_not_supported());
        }
        for limit in [
            &mut self.max_consumers,
            &mut self.max_msgs,
            &mut self.max_bytes,
        ] {
            unlimited_if_unset(limit);
        }
        unlimited_if_unset(&mut self.max_msgs_per_subject);
        unlimited_if_unset(&mut self.max_msg_size);
        if self.max_age < 0 {
            return Err(invalid("max age can not be negative"));
        }
        if self.max_age > 0 && self.max_age < MIN_WINDOW_NS {
            return Err(invalid("max age needs to be >= 100ms"));
        }
        if self.duplicate_window < 0 {
            return Err(invalid("duplicates window can not be negative"));
        }
        // Mirrors and sources get no default window, as in nats-server.
        let copies = self.mirror.is_some() || self.sources.is_some();
        if self.duplicate_window == 0 && !copies {
            self.duplicate_window =
                if self.max_age != 0 && self.max_age < DEFAULT_DUPLICATE_WINDOW_NS {
                    self.max_age
                } else {
                    DEFAULT_DUPLICATE_WINDOW_NS
                };
        }
        if self.max_age != 0 && self.duplicate_window > self.max_age {
            return Err(invalid("duplicates window can not be larger then max age"));
        }
        if self.duplicate_window < MIN_WINDOW_NS && !copies {
            return Err(invalid("duplicates window needs to be >= 100ms"));
        }
        if self.deny_purge && self.allow_rollup_hdrs {
            return Err(invalid("roll-ups require the purge permission"));
        }
        if self.persist_mode == PersistMode::Async {
            if self.storage != Storage::File {
                return Err(invalid(
                    "async persist mode is only supported on file storage",
                ));
            }
            if self.num_replicas > 1 {
                return Err(invalid(
                    "async persist mode is not supported on replicated streams",
                ));
            }
            if self.allow_atomic {
                return Err(invalid(
                    "async persist mode is not supported with atomic batch publish",
                ));
            }
        }
        if self.allow_msg_schedules {
            if self.allow_msg_counter {
                return Err(invalid("counter stream cannot use message schedules"));
            }
            if self.discard == Discard::New {
                return Err(invalid("message scheduling cannot use discard new"));
            }
            // A schedule replaces its subject's earlier message by a rollup, so nats-server
            // switches roll-ups on (and purges back) for such a stream, as jetlog does.
            self.allow_rollup_hdrs = true;
            self.deny_purge = false;
        }
        if self.allow_msg_counter {
            // nats-server's order. Markers are TTL'd messages, refused here at create too
            // (2.15.1 lets them through at create by switching TTLs on afterwards).
            if self.discard == Discard::New {
                return Err(invalid("counter stream cannot use discard new"));
            }
            if self.allow_msg_ttl || self.subject_delete_marker_ttl > 0 {
                return Err(invalid("counter stream cannot use message TTLs"));
            }
            if self.retention != Retention::Limits {
                return Err(invalid("counter stream can only use limits retention"));
            }
        }
        if self.subject_delete_marker_ttl < 0 {
            return Err(invalid("subject delete marker TTL must not be negative"));
        }
        if self.subject_delete_marker_ttl > 0 {
            if self.subject_delete_marker_ttl < MIN_MARKER_TTL_NS {
                return Err(invalid(
                    "subject delete marker TTL must be at least 1 second",
                ));
            }
            // Markers are TTL'd roll-ups: as nats-server does outside pedantic mode, asking
            // for them turns on what they need.
            self.allow_msg_ttl = true;
            if !self.allow_rollup_hdrs {
                self.allow_rollup_hdrs = true;
                self.deny_purge = false;
            }
        }
        if self.discard_new_per_subject {
            if self.discard != Discard::New {
                return Err(invalid(
                    "discard new per subject requires discard new policy to be set",
                ));
            }
            if self.max_msgs_per_subject <= 0 {
                return Err(invalid(
                    "discard new per subject requires max msgs per subject > 0",
                ));
            }
        }
        match self.compression.as_str() {
            "" | "none" => self.compression = "none".to_string(),
            // Payloads are compressed in the segment files (see `store::record`); a memory
            // stream has none, and nats-server accepts the setting there to ignore it.
            "s2" if self.storage == Storage::Memory => {
                return Err(invalid("compression is only supported on file storage"))
            }
            "s2" => {}
            _ => return Err(ApiError::invalid_json("unknown compression algorithm")),
        }
        // A mirror or a stream with sources gets no subjects by default, not even its name.
        if self.subjects.is_empty() && !copies {
            self.subjects.push(self.name.clone());
        }
        self.check_subjects()?;
        Ok(self)
    }

    fn check_subjects(&self) -> Result<(), ApiError> {
        for (i, subject) in self.subjects.iter().enumerate() {
            if !is_valid_subject(subject.as_str()) {
                return Err(invalid(&format!("invalid subject {subject:?}")));
            }
            if self.subjects[..i].iter().any(|s| s == subject) {
                return Err(invalid("duplicate subjects detected"));
            }
            if let Some(other) = self.subjects[..i]
                .iter()
                .find(|s| subjects_overlap(s.as_str(), subject.as_str()))
            {
                return Err(invalid(&format!(
                    "subject {other:?} overlaps with {subject:?}"
                )));
            }
            if !self.no_ack && overlaps_reserved(subject) {
                return Err(invalid(
                    "subjects that overlap with jetstream api require no-ack to be true",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "stream_config_tests.rs"]
mod tests;
