//! Operator mode's keys: `operator` (a JWT, a file holding one, or a list of them),
//! `resolver` (`MEMORY`, or `{ type: full|cache, dir, allow_delete }`) and
//! `resolver_preload` (account public key → account JWT). The JWTs are checked when the
//! server starts, where the operator's keys are known.

use std::path::PathBuf;

use super::values::{boolean, invalid, map, string, unsupported};
use super::ConfigFileError;
use crate::conf::{Entry, Value};
use crate::server::operator::{OperatorConfig, ResolverConfig};

/// A JWT given inline (three dot-separated parts, starting `eyJ`) or a file holding one.
fn jwt_or_file(entry: &Entry, text: &str) -> Result<String, ConfigFileError> {
    if text.starts_with("eyJ") && text.matches('.').count() == 2 {
        return Ok(text.to_string());
    }
    let contents = std::fs::read_to_string(text)
        .map_err(|e| invalid(entry, format!("cannot read operator JWT {text:?}: {e}")))?;
    // A file may be the bare JWT or nsc's armoured form; the JWT is the line that is one.
    contents
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("eyJ"))
        .map(str::to_string)
        .ok_or_else(|| invalid(entry, format!("{text:?} holds no JWT")))
}

/// `operator: <jwt or file>` or a list of them.
pub fn operators(entry: &Entry) -> Result<Vec<String>, ConfigFileError> {
    match &entry.item.value {
        Value::Array(items) => items
            .iter()
            .map(|item| match &item.value {
                Value::String(s) => jwt_or_file(entry, s),
                _ => Err(invalid(entry, "expected operator JWTs or files")),
            })
            .collect(),
        _ => Ok(vec![jwt_or_file(entry, &string(entry)?)?]),
    }
}

/// `resolver: MEMORY` or `resolver { type, dir, allow_delete }`.
pub fn resolver(entry: &Entry) -> Result<ResolverConfig, ConfigFileError> {
    if let Value::String(text) = &entry.item.value {
        return match text.to_ascii_uppercase().as_str() {
            "MEMORY" => Ok(ResolverConfig::Memory {
                preload: Vec::new(),
            }),
            _ => Err(unsupported(
                entry,
                "only the MEMORY resolver and the directory resolver { type: full, dir } are implemented (no URL resolver)",
            )),
        };
    }
    let block = map(entry)?;
    let (mut kind, mut dir, mut allow_delete) = (None, None, false);
    for field in block.effective() {
        match field.key.as_str() {
            "type" => kind = Some(string(field)?.to_ascii_lowercase()),
            "dir" => dir = Some(PathBuf::from(string(field)?)),
            "allow_delete" => {
                allow_delete = boolean(field)?;
                if allow_delete {
                    return Err(unsupported(
                        field,
                        "deleting accounts ($SYS.REQ.CLAIMS.DELETE) is not implemented",
                    ));
                }
            }
            "interval" | "timeout" | "limit" | "sync" | "ttl" | "hard_delete" => {
                return Err(unsupported(
                    field,
                    "the directory resolver's tuning keys are not implemented",
                ))
            }
            _ => return Err(invalid(field, "expected type, dir or allow_delete")),
        }
    }
    match kind.as_deref() {
        Some("full") | Some("cache") | None => {}
        Some(other) => {
            return Err(invalid(
                entry,
                format!("unknown resolver type {other:?} (full or cache)"),
            ))
        }
    }
    let dir = dir.ok_or_else(|| invalid(entry, "the directory resolver needs a dir"))?;
    Ok(ResolverConfig::Dir { dir, allow_delete })
}

/// `resolver_preload { <account key>: <account JWT> }`.
pub fn preload(entry: &Entry) -> Result<Vec<String>, ConfigFileError> {
    let block = map(entry)?;
    block.effective().map(string).collect()
}

/// Puts the pieces together once the whole file is read.
pub fn assemble(
    entry: &Entry,
    operators: Vec<String>,
    resolver: Option<ResolverConfig>,
    preloaded: Vec<String>,
) -> Result<OperatorConfig, ConfigFileError> {
    let resolver = match (resolver, preloaded.is_empty()) {
        (Some(ResolverConfig::Memory { .. }), _) => ResolverConfig::Memory { preload: preloaded },
        (Some(dir @ ResolverConfig::Dir { .. }), true) => dir,
        (Some(ResolverConfig::Dir { .. }), false) => {
            return Err(invalid(
                entry,
                "resolver_preload belongs with resolver: MEMORY",
            ))
        }
        (None, _) => return Err(invalid(entry, "operator mode needs a resolver")),
    };
    Ok(OperatorConfig {
        operators,
        resolver,
    })
}
