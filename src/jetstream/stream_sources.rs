//! Sources (`sources` in a stream config): a stream that takes in the messages of other streams
//! of this server, in its own account or (with `external` and the imports nats-server's
//! sourcing needs, `server::accounts::js_origins`) another, each copied at a new sequence of its own with a
//! `Nats-Stream-Source` header naming where it came from. Facts: `docs/sources-facts.md`.
//!
//! Like a mirror, a source reads its origin's log directly on the JetStream timer
//! (`server::jetstream::source_pump`). Where each source has got to is kept durably two
//! ways, as nats-server 2.15 does: in `sources.state` beside the log (so a purge of the
//! sourcing stream does not make it start over) and in the `Nats-Stream-Source` headers of
//! the messages themselves (so a kill between the log's sync and the state file's write does
//! not copy anything twice); on open the later of the two wins.

use serde_json::Value;

use super::error::ApiError;
use super::stream_config::{is_valid_name, StreamConfig};
use super::stream_mirror::not_built;
use super::stream_origin::{or_all, OriginSpec, OriginTransforms, TransformErrors};
use crate::protocol::subject::{is_literal, is_valid_subject, subjects_overlap};

/// The header a sourced message carries: `<origin> <seq> <filter> <dest> <subject>`.
pub const STREAM_SOURCE: &[u8] = b"Nats-Stream-Source";

fn err(code: u16, err_code: u16, text: impl Into<String>) -> ApiError {
    ApiError::new(code, err_code, text)
}

/// A source's index name as nats-server composes it: `<origin> <filters> <destinations>`,
/// `>` standing for none and form feeds joining several transforms. Positions are kept by it.
pub fn index_name(spec: &OriginSpec) -> String {
    let (filter, dest) = match spec.subject_transforms.is_empty() {
        true => (or_all(&spec.filter_subject), ">".to_string()),
        false => {
            let srcs: Vec<String> = spec
                .subject_transforms
                .iter()
                .map(|t| or_all(&t.src))
                .collect();
            let dests: Vec<String> = spec
                .subject_transforms
                .iter()
                .map(|t| or_all(&t.dest))
                .collect();
            (srcs.join("\u{c}"), dests.join("\u{c}"))
        }
    };
    match spec.external_prefixes() {
        Some((api, _)) => format!(
            "{}:{} {filter} {dest}",
            spec.name,
            crate::raft::types::peer_id(&api)
        ),
        None => format!("{} {filter} {dest}", spec.name),
    }
}

/// A source's `external` prefixes, in nats-server's order and words (facts §1.2 rows
/// 11, 13, 14). Whether they lead anywhere is only known when the source runs: a prefix no
/// import serves leaves the source without an origin, as nats-server's consumer request
/// would go unanswered.
pub(super) fn check_external(spec: &OriginSpec) -> Result<(), ApiError> {
    let Some((api, deliver)) = spec.external_prefixes() else {
        return Ok(());
    };
    let literal = |s: &str| is_valid_subject(s) && is_literal(s);
    if !deliver.is_empty() && !literal(&deliver) {
        return Err(ApiError::new(
            400,
            10024,
            format!("stream external delivery prefix {deliver} must not contain wildcards"),
        ));
    }
    if !literal(&api) {
        return Err(ApiError::new(
            500,
            10052,
            format!("stream external api prefix {api:?} must be a valid subject without wildcards"),
        ));
    }
    if subjects_overlap(&format!("{api}.>"), "$JS.API.>") {
        return Err(ApiError::new(
            400,
            10021,
            format!("stream external api prefix {api} must not overlap with $JS.API"),
        ));
    }
    Ok(())
}

/// Checks a config's `sources` in nats-server's order; the specs to run them by.
pub fn check_sources(config: &StreamConfig, sources: &Value) -> Result<Vec<OriginSpec>, ApiError> {
    // A `null` entry or name reads as a bad name, as nats-server reports it.
    let entries = sources.as_array().map(Vec::as_slice).unwrap_or_default();
    if entries
        .iter()
        .any(|e| !e.is_object() || !e["name"].is_string())
    {
        return Err(err(400, 10141, "sourced stream name is invalid"));
    }
    let specs: Vec<OriginSpec> = serde_json::from_value(sources.clone())
        .map_err(|e| ApiError::invalid_json(format!("sources: {e}")))?;
    if !specs.is_empty() && config.allow_msg_schedules {
        return Err(err(
            400,
            10187,
            "stream source can not also schedule messages",
        ));
    }
    let mut seen = Vec::new();
    for spec in &specs {
        if !is_valid_name(&spec.name) {
            return Err(err(400, 10141, "sourced stream name is invalid"));
        }
        let iname = index_name(spec);
        if seen.contains(&iname) {
            return Err(err(400, 10140, "duplicate source configuration detected"));
        }
        seen.push(iname);
        if !spec.filter_subject.is_empty() && !spec.subject_transforms.is_empty() {
            return Err(err(
                400,
                10144,
                "source with multiple subject transforms cannot also have a single subject filter",
            ));
        }
        spec.check_start_time()?;
        spec.check_transforms(&TransformErrors {
            invalid_source: (10145, "source transform source"),
            invalid_dest: (10146, "source transform"),
            overlap: (10147, "source filters can not overlap"),
        })?;
        if spec.consumer.is_some() {
            return Err(not_built("a source's consumer"));
        }
    }
    for spec in &specs {
        check_external(spec)?;
    }
    // The stream itself is the first one the cycle check visits (the others are checked
    // where the streams are known, `server::jetstream::origins`).
    for spec in &specs {
        let own = spec.name == config.name
            && (spec.filter_subject.is_empty()
                || config
                    .subjects
                    .iter()
                    .any(|s| subjects_overlap(s, &spec.filter_subject)));
        if own {
            return Err(ApiError::stream_invalid_config("detected cycle"));
        }
    }
    for spec in &specs {
        if !spec.filter_subject.is_empty() && !is_valid_subject(&spec.filter_subject) {
            return Err(err(
                500,
                10049,
                format!(
                    "subject filter '{}' for the source: invalid subject",
                    spec.filter_subject
                ),
            ));
        }
    }
    Ok(specs)
}

/// One source as the stream runs it.
#[derive(Debug, Clone)]
pub(super) struct Source {
    pub(super) spec: OriginSpec,
    pub(super) iname: String,
    /// Filter and destination parts of the index name, as the header repeats them.
    pub(super) header_mid: String,
    /// Each transform's source and compiled destination (`None`: the subject is kept).
    transforms: OriginTransforms,
    /// The next origin sequence to copy; `None` until known (the start options decide).
    pub(super) next: Option<u64>,
    /// The origin's identity when last read (see `stream_sourcing::origin_ident`).
    pub(super) ident: Option<String>,
    /// The origin was created anew: it is read from its start, whatever the stream holds.
    pub(super) recreated: bool,
    /// The last origin sequence taken (copied, or skipped as a duplicate), for INFO's `seq`.
    pub(super) last_taken: Option<u64>,
    /// After a refusal, when to try again (stream clock, ns).
    pub(super) retry_at_ns: Option<u64>,
    pub(super) last_contact_ns: Option<u64>,
    pub(super) lag: u64,
    pub(super) error: Option<ApiError>,
}

impl Source {
    fn new(spec: OriginSpec) -> Self {
        let iname = index_name(&spec);
        let header_mid = iname
            .split_once(' ')
            .map_or(String::new(), |(_, rest)| rest.to_string());
        let transforms = OriginTransforms::of(&spec);
        Self {
            spec,
            iname,
            header_mid,
            transforms,
            next: None,
            ident: None,
            recreated: false,
            last_taken: None,
            retry_at_ns: None,
            last_contact_ns: None,
            lag: 0,
            error: None,
        }
    }

    /// The subject a copied message is stored on: the first transform that matches.
    pub(super) fn stored_subject(&self, subject: &str) -> String {
        self.transforms.apply(subject)
    }
}

/// The sources of a stream and where each has got to.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    entries: Vec<Source>,
}

impl Sources {
    pub fn of(config: &StreamConfig) -> Self {
        let entries = config
            .sources
            .iter()
            .flat_map(|s| s.as_array().into_iter().flatten())
            .filter_map(OriginSpec::of)
            .map(Source::new)
            .collect();
        Self { entries }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(super) fn specs(&self) -> Vec<(String, OriginSpec)> {
        let spec = |s: &Source| (s.iname.clone(), s.spec.clone());
        self.entries.iter().map(spec).collect()
    }

    pub(super) fn get(&self, iname: &str) -> Option<&Source> {
        self.entries.iter().find(|s| s.iname == iname)
    }

    pub(super) fn get_mut(&mut self, iname: &str) -> Option<&mut Source> {
        self.entries.iter_mut().find(|s| s.iname == iname)
    }

    pub(super) fn entries(&self) -> &[Source] {
        &self.entries
    }

    pub(super) fn entries_mut(&mut self) -> &mut [Source] {
        &mut self.entries
    }

    /// The sources after an update: those kept keep their positions; added ones start unknown.
    pub(super) fn reconciled(mut self, config: &StreamConfig) -> Self {
        let mut next = Self::of(config);
        for source in &mut next.entries {
            if let Some(old) = self.entries.iter_mut().find(|o| o.iname == source.iname) {
                source.next = old.next.take();
                source.ident = old.ident.take();
                source.last_taken = old.last_taken;
                source.last_contact_ns = old.last_contact_ns;
                source.lag = old.lag;
            }
        }
        next
    }
}
