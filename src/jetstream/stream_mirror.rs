//! Mirrors (`mirror` in a stream config): a stream that copies another stream of the same
//! server and account, keeping the origin's sequence numbers, timestamps and headers. Facts:
//! `docs/mirror-facts.md`.
//!
//! nats-server feeds a mirror through a consumer on the origin; jetlog's mirror reads the
//! origin's log directly on the JetStream timer (`server::jetstream::mirror_pump`), from its
//! own last sequence on, so it catches up after either side restarts without any state of
//! its own. Removing `mirror` by update promotes the mirror to a stream of its own. An origin
//! in another account is read the same way, through the imports `external` names (see
//! `stream_sources`). What it cannot do yet is refused by name: a mirror's `consumer`, and
//! per-message TTLs, transforms and republish on the mirror itself.

use serde_json::{json, Value};

use super::error::ApiError;
use super::stream::Stream;
use super::stream_config::{is_valid_name, StreamConfig};
use super::stream_origin::{OriginSpec, OriginTransforms, TransformErrors};
use crate::protocol::headers::without_header;
use crate::protocol::subject::is_valid_subject;
use crate::store::{NewMessage, StoredMessage};

/// How far behind its origin a mirror may be and still answer the origin's direct gets.
const MIRROR_DIRECT_MAX_LAG: u64 = 10;

/// Headers a mirror does not copy: they asked something of the origin, not of the mirror.
pub(super) const NOT_COPIED: [&[u8]; 8] = [
    b"Nats-Expected-Stream",
    b"Nats-Expected-Last-Sequence",
    b"Nats-Expected-Last-Subject-Sequence",
    b"Nats-Expected-Last-Subject-Sequence-Subject",
    b"Nats-Expected-Last-Msg-Id",
    b"Nats-Batch-Id",
    b"Nats-Batch-Sequence",
    b"Nats-Batch-Commit",
];

/// A message's headers less those a mirror does not copy.
pub(super) fn copied_headers(headers: &bytes::Bytes) -> bytes::Bytes {
    let present = |h: &&[u8]| crate::protocol::headers::header_value(headers, h).is_some();
    if !NOT_COPIED.iter().any(present) {
        return headers.clone();
    }
    NOT_COPIED
        .iter()
        .fold(headers.clone(), |block, h| without_header(&block, h))
}

fn err(code: u16, err_code: u16, text: &str) -> ApiError {
    ApiError::new(code, err_code, text)
}

pub(super) fn not_built(what: &str) -> ApiError {
    ApiError::stream_invalid_config(format!("{what} is not supported by jetlog yet"))
}

/// Checks a mirror's config in nats-server's order and fills in what a mirror differs in
/// (no default subject, no duplicate window); the spec to run it by.
pub fn check_mirror(config: &mut StreamConfig, mirror: &Value) -> Result<OriginSpec, ApiError> {
    let spec: OriginSpec = serde_json::from_value(mirror.clone())
        .map_err(|e| ApiError::invalid_json(format!("mirror: {e}")))?;
    if config.first_seq > 0 {
        return Err(err(
            400,
            10143,
            "stream mirrors can not have first sequence configured",
        ));
    }
    if !config.subjects.is_empty() {
        return Err(err(400, 10034, "stream mirrors can not contain subjects"));
    }
    if config
        .sources
        .as_ref()
        .is_some_and(|s| s.as_array().is_none_or(|a| !a.is_empty()))
    {
        return Err(err(
            400,
            10031,
            "stream mirrors can not also contain other sources",
        ));
    }
    if config.allow_msg_counter {
        return Err(err(
            400,
            10173,
            "stream mirrors can not also calculate counters",
        ));
    }
    if config.allow_atomic {
        return Err(err(
            400,
            10198,
            "stream mirrors can not also use atomic publishing",
        ));
    }
    if config.allow_batched {
        return Err(err(
            400,
            10209,
            "stream mirrors can not also use batch publishing",
        ));
    }
    if config.allow_msg_schedules {
        return Err(err(
            400,
            10186,
            "stream mirrors can not also schedule messages",
        ));
    }
    if spec.consumer.is_some() {
        return Err(not_built("a mirror's consumer"));
    }
    if !spec.filter_subject.is_empty() && !spec.subject_transforms.is_empty() {
        return Err(err(
            400,
            10150,
            "mirror with multiple subject transforms cannot also have a single subject filter",
        ));
    }
    if config.subject_delete_marker_ttl > 0 {
        return Err(err(
            500,
            10052,
            "subject delete markers forbidden on mirrors",
        ));
    }
    spec.check_start_time()?;
    spec.check_transforms(&TransformErrors {
        invalid_source: (10151, "mirror transform source"),
        invalid_dest: (10154, "mirror transform"),
        overlap: (10152, "mirror subject filters can not overlap"),
    })?;
    super::stream_sources::check_external(&spec)?;
    if !is_valid_name(&spec.name) {
        return Err(err(400, 10142, "mirrored stream name is invalid"));
    }
    if spec.name == config.name {
        return Err(err(500, 10052, "detected cycle"));
    }
    if !spec.filter_subject.is_empty() && !is_valid_subject(&spec.filter_subject) {
        return Err(err(
            500,
            10049,
            &format!(
                "subject filter '{}' for the mirror invalid subject",
                spec.filter_subject
            ),
        ));
    }
    if config.allow_msg_ttl || config.subject_transform.is_some() || config.republish.is_some() {
        return Err(not_built(
            "allow_msg_ttl, subject_transform or republish on a mirror",
        ));
    }
    Ok(spec)
}

/// What a mirror knows of its origin, for `STREAM.INFO`.
#[derive(Debug, Clone, Default)]
pub struct MirrorState {
    pub spec: Option<OriginSpec>,
    /// The spec's compiled `subject_transforms`.
    transforms: OriginTransforms,
    /// When the origin was last read (stream clock, ns); `None` before the first time.
    last_contact_ns: Option<u64>,
    /// Origin messages not yet copied, as of the last read.
    lag: u64,
    /// Why the origin could not be read, when it could not.
    error: Option<ApiError>,
}

impl MirrorState {
    pub fn of(config: &StreamConfig) -> Self {
        let spec = config.mirror.as_ref().and_then(OriginSpec::of);
        Self {
            transforms: spec.as_ref().map(OriginTransforms::of).unwrap_or_default(),
            spec,
            ..Self::default()
        }
    }
}

impl Stream {
    /// The mirror spec, for a mirror.
    pub fn mirror_spec(&self) -> Option<&OriginSpec> {
        self.mirror.spec.as_ref()
    }

    /// The next origin sequence to copy, or `None` while nothing was copied yet (the start
    /// options then decide).
    pub fn mirror_next(&self) -> Option<u64> {
        let log = self.log();
        (log.last_seq() > 0).then(|| log.last_seq() + 1)
    }

    /// Whether the mirror is close enough behind its origin to answer the origin's direct
    /// gets (`mirror_direct`), as nats-server's mirror joins once within 10 messages.
    pub fn mirror_current(&self) -> bool {
        self.mirror.error.is_none()
            && self.mirror.last_contact_ns.is_some()
            && self.mirror.lag <= MIRROR_DIRECT_MAX_LAG
    }

    /// The origin cannot be read: it does not exist, or is not one jetlog can copy.
    pub fn mirror_origin_unreadable(&mut self, why: ApiError) {
        self.mirror.error = Some(why);
    }

    /// Copies `msgs` (read from the origin at `from` on, in order) at their own sequences;
    /// `lag` is how many messages the origin held beyond them when they were read. An empty mirror that
    /// finds nothing starts where the origin's messages (or its start options) begin.
    pub fn mirror_store(
        &mut self,
        from: u64,
        msgs: &[StoredMessage],
        lag: u64,
        now_ns: u64,
    ) -> Result<(), ApiError> {
        self.mirror.error = None;
        self.mirror.last_contact_ns = Some(now_ns);
        if msgs.is_empty() && self.log.last_seq() == 0 && from > 1 {
            self.log.skip_to(from).map_err(super::stream::store_error)?;
        }
        // Runs of consecutive sequences go in one append each; a gap is skipped before one.
        let mut run: Vec<NewMessage> = Vec::new();
        let mut run_first = 0;
        for msg in msgs {
            if !run.is_empty() && msg.seq != run_first + run.len() as u64 {
                self.mirror_append(run_first, &mut run)?;
            }
            if run.is_empty() {
                run_first = msg.seq;
            }
            run.push(NewMessage {
                subject: self.mirror.transforms.apply(&msg.subject),
                headers: copied_headers(&msg.headers),
                payload: msg.payload.clone(),
                ts_ns: msg.ts_ns,
            });
        }
        self.mirror_append(run_first, &mut run)?;
        self.sync(std::time::Instant::now())?;
        self.mirror.lag = lag;
        Ok(())
    }

    /// Appends `run`, whose first message is origin sequence `first`, at the same sequences.
    fn mirror_append(&mut self, first: u64, run: &mut Vec<NewMessage>) -> Result<(), ApiError> {
        if run.is_empty() {
            return Ok(());
        }
        self.log
            .skip_to(first)
            .map_err(super::stream::store_error)?;
        let results = self
            .log
            .append_batch(run)
            .map_err(super::stream::store_error)?;
        for (i, (result, msg)) in results.into_iter().zip(run.drain(..)).enumerate() {
            match result {
                Ok(seq) => {
                    debug_assert_eq!(
                        seq,
                        first + i as u64,
                        "a mirror keeps the origin's sequences"
                    );
                    self.upkeep_stored.push((seq, msg.subject));
                }
                // Its own limits (discard new) may refuse a message, as they would a publish.
                Err(rejection) => {
                    return Err(super::stream::rejection_error(rejection));
                }
            }
        }
        Ok(())
    }

    /// The `mirror` block of `STREAM.INFO`.
    pub fn mirror_info(&self, now_ns: u64) -> Option<Value> {
        let spec = self.mirror.spec.as_ref()?;
        let active = self
            .mirror
            .last_contact_ns
            .map_or(-1, |at| now_ns.saturating_sub(at) as i64);
        let mut info = json!({"name": spec.name, "lag": self.mirror.lag, "active": active});
        if let Some((api, deliver)) = spec.external_prefixes() {
            info["external"] = json!({"api": api, "deliver": deliver});
        }
        if let Some(error) = &self.mirror.error {
            info["error"] = json!(error);
        }
        if !spec.filter_subject.is_empty() {
            info["filter_subject"] = json!(spec.filter_subject);
        }
        if !spec.subject_transforms.is_empty() {
            info["subject_transforms"] = json!(spec.subject_transforms);
        }
        Some(info)
    }
}
