//! Choosing the servers a replicated stream lives on, as the meta leader does.
//!
//! The choice is made once, on the meta leader, before the assignment is proposed; the
//! assignment carries the chosen peers, so replicas never have to agree on a random draw.
//! The rules and the error text follow nats-server's peer selection: candidates are the
//! servers of the target cluster that are online, not excluded by the `!jetstream` tag,
//! carrying every requested tag (case-insensitively), with room for `max_bytes` and under the
//! HA-asset limit; among them the ones with the most free storage win, and for R>1 the ones
//! holding the fewest replicated assets before that.

use std::collections::BTreeSet;
use std::fmt;

/// The most replicas a stream may ask for.
pub const MAX_REPLICAS: i64 = 5;
/// A server with this tag never gets streams placed on it.
pub const EXCLUDE_PLACEMENT_TAG: &str = "!jetstream";

/// Where a stream keeps its messages: which of a server's limits its `max_bytes` counts against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    File,
    Memory,
}

/// What the meta leader knows of one server.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub name: String,
    pub cluster: String,
    /// Its `server_tags`, lower-cased.
    pub tags: Vec<String>,
    /// Whether its statistics are recent; a server not heard from is never chosen.
    pub online: bool,
    /// Free bytes under its file-storage limit.
    pub free_file: u64,
    /// Free bytes under its memory-storage limit.
    pub free_memory: u64,
    /// How many replicated streams and consumers it already holds.
    pub ha_assets: usize,
}

/// One placement to make.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    pub replicas: usize,
    /// The target cluster: `placement.cluster`, else the requesting client's.
    pub cluster: &'a str,
    /// `placement.tags`: every one must be on a chosen server.
    pub tags: &'a [String],
    pub storage: Storage,
    /// The stream's `max_bytes`, 0 when unlimited.
    pub max_bytes: u64,
    /// Peers that stay (a scale-up keeps the current ones, first).
    pub existing: &'a [String],
    /// Peers that must not be chosen (the one being removed).
    pub ignore: &'a [String],
    /// The server's `max_ha_assets`, 0 when unlimited.
    pub max_ha_assets: usize,
}

/// Why no peer set could be chosen; shown as nats-server shows it (err_code 10005).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlacementError {
    pub offline: bool,
    pub exclude_tag: bool,
    pub no_storage: bool,
    pub misc: bool,
    pub no_jetstream_in_cluster: bool,
    pub unmatched_tags: BTreeSet<String>,
}

impl fmt::Display for PlacementError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no suitable peers for placement")?;
        let reasons = [
            (self.offline, "peer offline"),
            (self.exclude_tag, "exclude tag set"),
            (self.no_storage, "insufficient storage"),
            (self.misc, "miscellaneous issue"),
            (
                self.no_jetstream_in_cluster,
                "jetstream not enabled in cluster",
            ),
        ];
        for (_, reason) in reasons.iter().filter(|(set, _)| *set) {
            write!(f, ", {reason}")?;
        }
        if !self.unmatched_tags.is_empty() {
            let tags: Vec<String> = self
                .unmatched_tags
                .iter()
                .map(|t| format!("'{t}'"))
                .collect();
            write!(f, ", tags not matched [{}]", tags.join(", "))?;
        }
        Ok(())
    }
}

impl std::error::Error for PlacementError {}

/// Chooses `request.replicas` peers from `candidates`. `shuffle` puts the candidates in a
/// random order first (ties on free space and assets then fall randomly, as in nats-server);
/// tests pass one that leaves the order alone.
pub fn select_peers(
    request: &Request<'_>,
    candidates: &[Candidate],
    shuffle: impl FnOnce(&mut Vec<&Candidate>),
) -> Result<Vec<String>, PlacementError> {
    let mut error = PlacementError::default();
    if request.cluster.is_empty() {
        error.misc = true;
        return Err(error);
    }
    if request.existing.len() >= request.replicas {
        return Ok(request.existing[..request.replicas].to_vec());
    }
    let wanted_tags: Vec<String> = request.tags.iter().map(|t| t.to_lowercase()).collect();
    let mut order: Vec<&Candidate> = candidates.iter().collect();
    shuffle(&mut order);
    let mut chosen: Vec<(&Candidate, u64)> = Vec::new();
    for candidate in order {
        if candidate.cluster != request.cluster {
            continue;
        }
        if !candidate.online {
            error.offline = true;
            continue;
        }
        if request.ignore.contains(&candidate.name) || request.existing.contains(&candidate.name) {
            continue;
        }
        if candidate.tags.iter().any(|t| t == EXCLUDE_PLACEMENT_TAG) {
            error.exclude_tag = true;
            continue;
        }
        if let Some(missing) = wanted_tags.iter().position(|t| !candidate.tags.contains(t)) {
            error.unmatched_tags.insert(request.tags[missing].clone());
            continue;
        }
        let free = match request.storage {
            Storage::File => candidate.free_file,
            Storage::Memory => candidate.free_memory,
        };
        if request.max_bytes > free {
            error.no_storage = true;
            continue;
        }
        // Every server's count includes the meta group itself, hence "more than".
        if request.max_ha_assets > 0 && candidate.ha_assets > request.max_ha_assets {
            error.misc = true;
            continue;
        }
        chosen.push((candidate, free));
    }
    let needed = request.replicas - request.existing.len();
    if chosen.len() < needed {
        if candidates.is_empty() {
            error.no_jetstream_in_cluster = true;
        }
        return Err(error);
    }
    chosen.sort_by_key(|(_, free)| std::cmp::Reverse(*free));
    if request.replicas > 1 {
        chosen.sort_by_key(|(c, _)| c.ha_assets);
    }
    let mut peers = request.existing.to_vec();
    peers.extend(chosen[..needed].iter().map(|(c, _)| c.name.clone()));
    debug_assert_eq!(peers.len(), request.replicas);
    Ok(peers)
}

#[cfg(test)]
#[path = "placement_tests.rs"]
mod tests;
