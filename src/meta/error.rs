//! Errors of the metadata layer.
//!
//! *Absent* is never an error here (getters return `Option`); *corrupt* and *written by a newer
//! jetlog* are distinct variants because they need different recovery: a corrupt record can
//! be deleted and recreated, while a record from a newer format must make the server refuse to
//! start rather than lose data by rewriting it.

use std::fmt;

/// Which kind of name failed validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    Stream,
    Consumer,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameKind::Stream => "stream",
            NameKind::Consumer => "consumer",
        })
    }
}

/// Everything that can go wrong in [`MetaStore`](super::MetaStore).
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// The underlying key-value engine failed (I/O error, lock held by another process, ...).
    /// The engine's own error type is boxed so that callers never depend on sled directly.
    #[error("metadata store failed to {op}: {source}")]
    Storage {
        /// What we were doing, e.g. "open" or "flush".
        op: &'static str,
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// A stream or consumer name that cannot be used as (part of) a key.
    #[error("invalid {kind} name {name:?}: {reason}")]
    InvalidName {
        kind: NameKind,
        name: String,
        reason: &'static str,
    },

    /// A consumer was written for a stream that has no stored config.
    #[error("stream {stream:?} not found")]
    StreamNotFound { stream: String },

    /// A consumer state was written for a consumer that has no stored config.
    #[error("consumer {name:?} of stream {stream:?} not found")]
    ConsumerNotFound { stream: String, name: String },

    /// A consumer state that breaks its own invariants was refused before it was written.
    /// This is a bug in the caller, reported as an error so that it never reaches the disk.
    #[error("refusing to store state of consumer {name:?} of stream {stream:?}: {reason}")]
    InvalidState {
        stream: String,
        name: String,
        reason: &'static str,
    },

    /// An encoded value larger than [`MAX_VALUE_BYTES`](super::MAX_VALUE_BYTES).
    #[error("value for tree {tree} is {len_bytes} bytes, over the limit of {max_bytes}")]
    ValueTooLarge {
        tree: &'static str,
        len_bytes: usize,
        max_bytes: usize,
    },

    /// A stored value that cannot be decoded or that contradicts its key.
    #[error("corrupt value in tree {tree} at key {}: {reason}", show_key(key))]
    Corrupt {
        tree: &'static str,
        key: Vec<u8>,
        reason: String,
    },

    /// A stored value whose format version is newer than this build understands.
    #[error(
        "value in tree {tree} at key {} has format version {version}, newer than this jetlog \
         (which reads up to {supported})",
        show_key(key)
    )]
    UnsupportedVersion {
        tree: &'static str,
        key: Vec<u8>,
        version: u8,
        supported: u8,
    },
}

impl MetaError {
    /// A stable number per variant, for logs and metrics; never reuse a retired code.
    pub fn code(&self) -> u16 {
        match self {
            MetaError::Storage { .. } => 1,
            MetaError::InvalidName { .. } => 2,
            MetaError::StreamNotFound { .. } => 3,
            MetaError::ConsumerNotFound { .. } => 4,
            MetaError::InvalidState { .. } => 5,
            MetaError::ValueTooLarge { .. } => 6,
            MetaError::Corrupt { .. } => 7,
            MetaError::UnsupportedVersion { .. } => 8,
        }
    }

    pub(crate) fn io(op: &'static str, source: std::io::Error) -> MetaError {
        MetaError::Storage {
            op,
            source: Box::new(source),
        }
    }

    pub(crate) fn storage(op: &'static str, source: sled::Error) -> MetaError {
        MetaError::Storage {
            op,
            source: Box::new(source),
        }
    }
}

/// Renders a key for messages: consumer keys hold a NUL separator, shown as `\0`.
fn show_key(key: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(key))
}
