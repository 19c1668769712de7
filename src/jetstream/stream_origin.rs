//! The `StreamSource` object that names another stream to copy from: a mirror's `mirror` and
//! each entry of `sources`. Shared by `stream_mirror` and `stream_sources`, and by the pumps
//! that read the origin (`server::jetstream::{mirror_pump, source_pump}`).

use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::stream_config::SubjectTransformConfig;
use super::time::parse_rfc3339;
use crate::protocol::subject::{is_subset_match, subject_matches};
use crate::protocol::transform::{is_valid_source, SubjectTransform};
use crate::store::StreamStore;

/// The codes and texts a mirror's or a source's bad `subject_transforms` get.
pub struct TransformErrors {
    pub invalid_source: (u16, &'static str),
    pub invalid_dest: (u16, &'static str),
    pub overlap: (u16, &'static str),
}

/// `>` for an empty transform source or destination, as nats-server reads them.
pub fn or_all(s: &str) -> String {
    match s {
        "" => ">".to_string(),
        s => s.to_string(),
    }
}

/// The parts of a `StreamSource` jetlog uses; `consumer`, and a mirror's `external`, are
/// read only to be refused by name.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct OriginSpec {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub opt_start_seq: u64,
    #[serde(default)]
    pub opt_start_time: Option<String>,
    #[serde(default)]
    pub filter_subject: String,
    #[serde(default)]
    pub subject_transforms: Vec<SubjectTransformConfig>,
    #[serde(default)]
    pub external: Option<Value>,
    #[serde(default)]
    pub consumer: Option<Value>,
}

impl OriginSpec {
    /// `external`'s `api` and `deliver` prefixes, for an origin in another account or domain.
    pub fn external_prefixes(&self) -> Option<(String, String)> {
        let external = self.external.as_ref().filter(|e| !e.is_null())?;
        let text = |key: &str| {
            external
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        Some((text("api"), text("deliver")))
    }

    /// The spec of a `StreamSource` object, if it reads as one.
    pub fn of(source: &Value) -> Option<Self> {
        serde_json::from_value(source.clone()).ok()
    }

    /// A stream on this server and account, as the catalog keeps it.
    pub fn local(
        name: &str,
        opt_start_seq: u64,
        opt_start_time: Option<String>,
        filter_subject: &str,
        subject_transforms: Vec<SubjectTransformConfig>,
    ) -> Self {
        Self {
            name: name.to_string(),
            opt_start_seq,
            opt_start_time,
            filter_subject: filter_subject.to_string(),
            subject_transforms,
            ..Self::default()
        }
    }

    /// The object as a config shows it: the fields that are set.
    pub fn to_value(&self) -> Value {
        let mut out = json!({ "name": self.name });
        if self.opt_start_seq > 0 {
            out["opt_start_seq"] = json!(self.opt_start_seq);
        }
        if let Some(at) = &self.opt_start_time {
            out["opt_start_time"] = json!(at);
        }
        if !self.filter_subject.is_empty() {
            out["filter_subject"] = json!(self.filter_subject);
        }
        if !self.subject_transforms.is_empty() {
            out["subject_transforms"] = json!(self.subject_transforms);
        }
        // Both keys always, as nats-server writes them.
        if let Some((api, deliver)) = self.external_prefixes() {
            out["external"] = json!({"api": api, "deliver": deliver});
        }
        out
    }

    /// The subjects of the origin this copies: the filter, or each transform's source
    /// (nothing: every subject).
    pub fn filters(&self) -> Vec<&str> {
        if !self.filter_subject.is_empty() {
            return vec![self.filter_subject.as_str()];
        }
        let all = |t: &SubjectTransformConfig| t.src.is_empty() || t.src == ">";
        if self.subject_transforms.iter().any(all) {
            return Vec::new();
        }
        self.subject_transforms
            .iter()
            .map(|t| t.src.as_str())
            .collect()
    }

    /// Checks that `opt_start_time` is an RFC 3339 time, as nats-server's JSON decoding does.
    pub fn check_start_time(&self) -> Result<(), ApiError> {
        match self.opt_start_time.as_deref().map(parse_rfc3339) {
            Some(Err(_)) => Err(ApiError::invalid_json(format!(
                "opt_start_time {:?} is not an RFC 3339 time",
                self.opt_start_time.as_deref().unwrap_or("")
            ))),
            _ => Ok(()),
        }
    }

    /// Checks `subject_transforms`: each source a subject, each destination a mapping of
    /// it, and no source within another.
    pub fn check_transforms(&self, errors: &TransformErrors) -> Result<(), ApiError> {
        for t in &self.subject_transforms {
            if !t.src.is_empty() && !is_valid_source(&t.src) {
                let (code, text) = errors.invalid_source;
                let text = format!("{text}: invalid subject {}", t.src);
                return Err(ApiError::new(400, code, text));
            }
            if !t.dest.is_empty() {
                SubjectTransform::new(&t.src, &t.dest).map_err(|e| {
                    let (code, text) = errors.invalid_dest;
                    ApiError::new(400, code, format!("{text}: {e}"))
                })?;
            }
        }
        let trs = &self.subject_transforms;
        for (i, a) in trs.iter().enumerate() {
            let overlaps = trs
                .iter()
                .enumerate()
                .any(|(j, b)| i != j && is_subset_match(&or_all(&a.src), &or_all(&b.src)));
            if overlaps {
                let (code, text) = errors.overlap;
                return Err(ApiError::new(400, code, text));
            }
        }
        Ok(())
    }

    /// Where copying starts with nothing copied yet: the start options, else the origin's
    /// first message (an origin already purged is read from where its messages begin).
    pub fn start_in(&self, log: &StreamStore) -> u64 {
        if self.opt_start_seq > 0 {
            return self.opt_start_seq;
        }
        if let Some(at) = self
            .opt_start_time
            .as_deref()
            .and_then(|t| parse_rfc3339(t).ok().flatten())
        {
            return log.seq_at_or_after_time(at.max(0) as u64).unwrap_or(1);
        }
        log.state(false).map_or(1, |s| s.first_seq.max(1))
    }
}

/// A mirror's or a source's compiled `subject_transforms`: each source, and its destination
/// (`None`: the subject is kept).
#[derive(Debug, Clone, Default)]
pub struct OriginTransforms(Vec<(String, Option<SubjectTransform>)>);

impl OriginTransforms {
    pub fn of(spec: &OriginSpec) -> Self {
        let compile = |t: &SubjectTransformConfig| {
            let compiled = match t.dest.is_empty() {
                true => None,
                false => SubjectTransform::new(&t.src, &t.dest).ok(),
            };
            (or_all(&t.src), compiled)
        };
        Self(spec.subject_transforms.iter().map(compile).collect())
    }

    /// The subject a copied message is stored on: the first transform whose source matches.
    pub fn apply(&self, subject: &str) -> String {
        let first = self.0.iter().find(|(src, _)| subject_matches(src, subject));
        first
            .and_then(|(_, to)| to.as_ref())
            .and_then(|to| to.apply(subject))
            .unwrap_or_else(|| subject.to_string())
    }
}
