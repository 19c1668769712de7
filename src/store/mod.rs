//! The store: the segmented, append-only log every stream lives in.
//!
//! A synchronous API over plain files, with no networking and no async runtime, so it can be
//! tested alone and driven by the stream actor from a blocking context. One [`Log`] per
//! stream, in its own directory. The byte layout of every file is in
//! `docs/storage-format.md`; the durability contract is in [`log`]'s module docs.
//!
//! Layout of the module, by lifetime of the data:
//! - [`record`]: record and segment-header bytes; [`index`]: per-segment seq → offset index;
//!   [`meta`]: `deletes.dat` and the clean-shutdown `snapshot.dat`.
//! - [`segment`]: one segment file; [`scan`]: sequential reads and the recovery scan.
//! - [`log`]: the log (append, sync, reads, removal, retention, recovery on open).
//! - [`memory`]: [`MemLog`], the same log held in memory for `storage: memory` streams;
//!   [`stream_store`]: [`StreamStore`], either kind behind one type for the stream layer.
//! - [`io`]: the file-system trait everything goes through; [`fd_cache`]: the bound on open
//!   descriptors every log on the real file system shares; [`fault`]: a fault-injecting
//!   implementation for tests.

pub mod config;
pub mod error;
pub mod fault;
pub mod fd_cache;
pub mod index;
pub mod io;
pub mod log;
pub mod memory;
pub mod meta;
pub mod power_loss;
pub mod ranges;
pub mod record;
pub mod recovery;
pub mod scan;
pub mod segment;
pub mod stream_store;
pub mod subjects;

pub use config::{
    Discard, LogConfig, LogState, NewMessage, PurgeRequest, StoredMessage, SyncPolicy,
};
pub use error::{Rejection, Result, StoreError};
pub use log::{AppendResult, Log};
pub use memory::MemLog;
pub use recovery::{Finding, FindingKind, RecoveryReport};
pub use stream_store::StreamStore;
