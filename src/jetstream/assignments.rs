//! The meta group's state: which streams and consumers exist in the cluster and which servers
//! hold them. Every JetStream server applies the same commands in the same order and so agrees
//! on this catalog; each then opens, closes or leaves the streams assigned to it.
//!
//! The meta leader validates a request and places it (see [`super::placement`]) before
//! proposing, so applying needs no clock, no randomness and no local setting. The only checks
//! made here are the ones two proposals racing each other could both pass on the leader: a
//! name taken by a different configuration, and a consumer whose stream is gone.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::raft::machine::Machine;

/// The servers of one Raft group and its name (`S-R3F-…` for streams, as nats-server names
/// them; empty for an R1 asset, which has no group).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub group: String,
    pub peers: Vec<String>,
    /// The peer asked to campaign first, so a new group has a leader at once.
    pub preferred: Option<String>,
}

/// A stream as the cluster knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamAssignment {
    pub account: String,
    pub name: String,
    /// The stream's configuration as JSON, exactly as validated by the meta leader.
    pub config: String,
    pub placement: Placement,
    /// When the meta leader accepted it (Unix ns), so every server reports the same `created`.
    pub created_ns: u64,
    pub consumers: BTreeMap<String, ConsumerAssignment>,
}

/// A consumer as the cluster knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerAssignment {
    pub name: String,
    pub config: String,
    pub placement: Placement,
    pub created_ns: u64,
}

/// What the meta group's log carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaCommand {
    /// Create a stream, or (with `update`) change an existing one's config or peers.
    AssignStream {
        stream: StreamAssignment,
        update: bool,
        /// Where the client that asked waits for the answer, which the server that opens
        /// the stream sends once it has.
        #[serde(default)]
        reply: Option<String>,
    },
    RemoveStream {
        account: String,
        name: String,
    },
    /// Create a consumer, or replace its config: the meta leader has already checked that
    /// the change is an allowed update.
    AssignConsumer {
        account: String,
        stream: String,
        consumer: ConsumerAssignment,
    },
    RemoveConsumer {
        account: String,
        stream: String,
        name: String,
    },
}

/// What applying a command did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaOutcome {
    Done,
    /// Re-creating a stream or consumer with its own config changes nothing.
    Unchanged,
    /// nats-server's `err_code` for why it was refused.
    Refused(u16),
    /// The log held something this server cannot read (a newer jetlog's command).
    Undecodable,
}

/// nats-server's code for a stream name taken by a different config (10058).
pub const STREAM_NAME_IN_USE: u16 = 10058;
/// …for a missing stream (10059) and consumer (10014).
pub const STREAM_NOT_FOUND: u16 = 10059;
pub const CONSUMER_NOT_FOUND: u16 = 10014;
/// …for subjects that overlap another stream's of the account (10065).
pub const STREAM_SUBJECT_OVERLAP: u16 = 10065;

/// The catalog of every stream and consumer in the cluster, keyed by account then name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignments {
    pub streams: BTreeMap<String, BTreeMap<String, StreamAssignment>>,
}

impl Assignments {
    pub fn stream(&self, account: &str, name: &str) -> Option<&StreamAssignment> {
        self.streams.get(account)?.get(name)
    }

    /// The streams placed on `server`, for it to open.
    pub fn streams_on<'a>(&'a self, server: &'a str) -> impl Iterator<Item = &'a StreamAssignment> {
        self.streams
            .values()
            .flat_map(BTreeMap::values)
            .filter(move |s| s.placement.peers.iter().any(|p| p == server))
    }

    /// Applies one command; the same commands in the same order give the same catalog.
    pub fn apply_command(&mut self, command: MetaCommand) -> MetaOutcome {
        match command {
            MetaCommand::AssignStream { stream, update, .. } => self.assign_stream(stream, update),
            MetaCommand::RemoveStream { account, name } => {
                let streams = self.streams.entry(account.clone()).or_default();
                let removed = streams.remove(&name);
                if streams.is_empty() {
                    self.streams.remove(&account);
                }
                match removed {
                    Some(_) => MetaOutcome::Done,
                    None => MetaOutcome::Refused(STREAM_NOT_FOUND),
                }
            }
            MetaCommand::AssignConsumer {
                account,
                stream,
                consumer,
            } => {
                let Some(owner) = self
                    .streams
                    .get_mut(&account)
                    .and_then(|s| s.get_mut(&stream))
                else {
                    return MetaOutcome::Refused(STREAM_NOT_FOUND);
                };
                match owner.consumers.get(&consumer.name) {
                    Some(existing) if *existing == consumer => MetaOutcome::Unchanged,
                    _ => {
                        owner.consumers.insert(consumer.name.clone(), consumer);
                        MetaOutcome::Done
                    }
                }
            }
            MetaCommand::RemoveConsumer {
                account,
                stream,
                name,
            } => {
                let owner = self
                    .streams
                    .get_mut(&account)
                    .and_then(|s| s.get_mut(&stream));
                match owner.and_then(|s| s.consumers.remove(&name)) {
                    Some(_) => MetaOutcome::Done,
                    None => MetaOutcome::Refused(CONSUMER_NOT_FOUND),
                }
            }
        }
    }

    fn assign_stream(&mut self, stream: StreamAssignment, update: bool) -> MetaOutcome {
        let streams = self.streams.entry(stream.account.clone()).or_default();
        // The one check of subjects against the account's other streams, made here rather
        // than on the leader: two proposals racing each other could both pass there, and
        // here the one committed second is refused on every server alike.
        let overlaps = streams
            .iter()
            .any(|(name, other)| *name != stream.name && overlapping(other, &stream));
        match streams.get_mut(&stream.name) {
            None if update => {
                if streams.is_empty() {
                    self.streams.remove(&stream.account);
                }
                MetaOutcome::Refused(STREAM_NOT_FOUND)
            }
            None if overlaps => MetaOutcome::Refused(STREAM_SUBJECT_OVERLAP),
            None => {
                streams.insert(stream.name.clone(), stream);
                MetaOutcome::Done
            }
            Some(_) if update && overlaps => MetaOutcome::Refused(STREAM_SUBJECT_OVERLAP),
            Some(existing) if update => {
                // An update keeps the stream's consumers and its creation time.
                existing.config = stream.config;
                existing.placement = stream.placement;
                MetaOutcome::Done
            }
            Some(existing) if existing.config == stream.config => MetaOutcome::Unchanged,
            Some(_) => MetaOutcome::Refused(STREAM_NAME_IN_USE),
        }
    }
}

/// The `subjects` of a stream's config JSON.
fn subjects(stream: &StreamAssignment) -> Vec<String> {
    serde_json::from_str::<serde_json::Value>(&stream.config)
        .ok()
        .and_then(|c| serde_json::from_value(c.get("subjects")?.clone()).ok())
        .unwrap_or_default()
}

fn overlapping(a: &StreamAssignment, b: &StreamAssignment) -> bool {
    let theirs = subjects(a);
    subjects(b).iter().any(|s| {
        theirs
            .iter()
            .any(|t| crate::protocol::subject::subjects_overlap(s, t))
    })
}

impl Machine for Assignments {
    fn apply(&mut self, command: &[u8]) -> Vec<u8> {
        let outcome = match serde_json::from_slice::<MetaCommand>(command) {
            Ok(command) => self.apply_command(command),
            Err(_) => MetaOutcome::Undecodable,
        };
        serde_json::to_vec(&outcome).unwrap_or_default()
    }

    fn snapshot(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        *self = serde_json::from_slice(snapshot).map_err(|e| e.to_string())?;
        Ok(())
    }
}

#[cfg(test)]
#[path = "assignments_tests.rs"]
mod tests;
