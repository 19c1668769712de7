//! Errors of the store layer.
//!
//! Two families live here. [`StoreError`] is what a call on the log returns when something went
//! wrong with the files or the call itself. [`Rejection`] is a per-message verdict of the limits
//! (`discard: new`, `max_msg_size`, an invalid subject): a batch can store some messages and
//! reject others, so rejections are reported per message and never poison the whole batch.

use std::io;
use std::path::PathBuf;

/// Why a single message of a batch was not stored. Rejected messages consume no sequence.
///
/// The `Display` texts are the descriptions nats-server puts in its PubAck errors, so the
/// stream layer can forward them unchanged (`server/errors.json`, code 10077 and friends).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// `discard: new` and `max_msgs` is reached.
    #[error("maximum messages exceeded")]
    MaxMsgs,
    /// `discard: new` and storing the message would pass `max_bytes`.
    #[error("maximum bytes exceeded")]
    MaxBytes,
    /// `discard_new_per_subject` and the subject holds `max_msgs_per_subject` messages.
    #[error("maximum messages per subject exceeded")]
    MaxMsgsPerSubject,
    /// Headers plus payload are longer than `max_msg_size` (or than the store can frame).
    #[error("message size exceeds maximum allowed")]
    MsgTooLarge,
    /// The subject is empty, holds a wildcard or whitespace, or is longer than a record allows.
    #[error("invalid subject")]
    InvalidSubject,
}

/// An error from the store. Every variant that concerns a file names it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An operating-system error on a file or directory.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The file or directory the operation was on.
        path: PathBuf,
        /// The error the operating system returned.
        #[source]
        source: io::Error,
    },
    /// The device is full. The failed batch was rolled back; later appends may succeed once
    /// space is freed.
    #[error("no space left on device while writing {path}")]
    NoSpace {
        /// The file that could not grow.
        path: PathBuf,
    },
    /// An earlier fsync or rollback failed, so what is on disk is unknown; the log refuses
    /// every write until it is reopened (PostgreSQL's "fsyncgate" lesson: never retry an fsync
    /// and call it a success).
    #[error("log is read-only after a failed {cause}; reopen it to recover")]
    ReadOnly {
        /// What failed first, with its path and OS error.
        cause: String,
    },
    /// A record, header or metadata file failed its checks. The bytes are never served.
    #[error("corrupt data in {path} at offset {offset}: {reason}")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset of the damaged record or field.
        offset: u64,
        /// What check failed.
        reason: String,
    },
    /// A file was written by an incompatible version of the store.
    #[error("unsupported format in {path}: {reason}")]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
        /// Which field did not match.
        reason: String,
    },
    /// The configuration given to `open` or `update_config` is not valid.
    #[error("invalid log configuration: {0}")]
    InvalidConfig(String),
    /// A single-message append was refused by the limits.
    #[error("{0}")]
    Rejected(#[from] Rejection),
}

impl StoreError {
    /// Builds the right variant for an I/O error on `path`: ENOSPC gets its own variant so that
    /// the stream layer can tell "disk full" from "disk broken".
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        let path = path.into();
        if is_no_space(&source) {
            StoreError::NoSpace { path }
        } else {
            StoreError::Io { path, source }
        }
    }

    /// A corruption error.
    pub(crate) fn corrupt(
        path: impl Into<PathBuf>,
        offset: u64,
        reason: impl Into<String>,
    ) -> Self {
        StoreError::Corrupt {
            path: path.into(),
            offset,
            reason: reason.into(),
        }
    }

    /// A stable number per variant, for logs and API errors that must not change wording.
    pub fn code(&self) -> u16 {
        match self {
            StoreError::Io { .. } => 1,
            StoreError::NoSpace { .. } => 2,
            StoreError::ReadOnly { .. } => 3,
            StoreError::Corrupt { .. } => 4,
            StoreError::UnsupportedFormat { .. } => 5,
            StoreError::InvalidConfig(_) => 6,
            StoreError::Rejected(_) => 7,
        }
    }
}

/// Whether an I/O error says the device is full (ENOSPC).
pub(crate) fn is_no_space(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::StorageFull || e.raw_os_error() == Some(28)
}

/// Shorthand used throughout the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
