//! The one openraft type configuration every jetlog group uses, and how servers get their
//! Raft node ids.
//!
//! Commands and their results travel as opaque bytes: the group's [`Machine`] decides their
//! meaning. One type configuration then serves the meta group and every stream group, and the
//! adapters (log store, network) are written once.
//!
//! [`Machine`]: super::machine::Machine

use std::fmt;
use std::io::Cursor;

use base64::Engine;
use serde::{Deserialize, Serialize};

openraft::declare_raft_types!(
    /// jetlog's openraft type configuration.
    pub JetlogRaft:
        D = Command,
        R = Outcome,
);

/// A server's Raft node id.
pub type NodeId = u64;

/// A command proposed to a group: the bytes its [`Machine`](super::machine::Machine) applies.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Command(pub Vec<u8>);

/// What applying one log entry produced: the machine's answer to a command, empty for the
/// entries openraft writes itself (blank and membership).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Outcome(pub Vec<u8>);

/// Both travel inside openraft's JSON messages as base64, a third of the size of JSON's array
/// of numbers.
macro_rules! bytes_as_base64 {
    ($t:ident) => {
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                base64::engine::general_purpose::STANDARD
                    .decode(text.as_bytes())
                    .map($t)
                    .map_err(serde::de::Error::custom)
            }
        }

        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({} bytes)", stringify!($t), self.0.len())
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self, f)
            }
        }
    };
}

bytes_as_base64!(Command);
bytes_as_base64!(Outcome);

/// The node id of the server with this name: the first eight bytes of SHA-256 of the name.
///
/// Derived rather than configured so that every server computes the same id for a peer from
/// its name alone, as nats-server derives its 8-character peer ids; server names must
/// therefore be unique and stable in a JetStream cluster. Zero is never returned, so it can
/// mean "no node" in diagnostics.
pub fn node_id(server_name: &str) -> NodeId {
    let digest = ring::digest::digest(&ring::digest::SHA256, server_name.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    u64::from_be_bytes(first).max(1)
}

/// nats-server's 8-character peer id for a server name: the first eight bytes of SHA-256 of
/// the name, each mapped into `0-9A-Za-z`. It is what `peer` shows in cluster reports.
pub fn peer_id(server_name: &str) -> String {
    const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let digest = ring::digest::digest(&ring::digest::SHA256, server_name.as_bytes());
    digest.as_ref()[..8]
        .iter()
        .map(|b| DIGITS[usize::from(*b) % DIGITS.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_ids_match_the_ones_nats_server_showed() {
        // Seen on the wire with three nats-server 2.9.10 processes (docs/jetstream-cluster-facts.md §1.1).
        assert_eq!(peer_id("n1"), "fjFyEjc1");
        assert_eq!(peer_id("n2"), "44jzkV9D");
        assert_eq!(peer_id("n3"), "BXScrY9i");
    }

    #[test]
    fn node_ids_are_stable_and_distinct() {
        assert_eq!(node_id("n1"), node_id("n1"));
        assert_ne!(node_id("n1"), node_id("n2"));
        assert_ne!(node_id(""), 0);
    }

    #[test]
    fn commands_round_trip_through_json_as_base64() {
        let command = Command(vec![0, 1, 2, 255]);
        let json = serde_json::to_string(&command).expect("encode");
        assert_eq!(json, "\"AAEC/w==\"");
        let back: Command = serde_json::from_str(&json).expect("decode");
        assert_eq!(back, command);
        assert!(serde_json::from_str::<Outcome>("\"not base64!\"").is_err());
    }
}
