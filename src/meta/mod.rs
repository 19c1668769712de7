//! Durable metadata: stream configs, consumer configs and consumer states.
//!
//! # Contract
//! - Values are the prost messages of `proto/jetlog_meta.proto` ([`pb`]), framed with a
//!   one-byte format version ([`FORMAT_VERSION`]). Reading a value that does not decode, or
//!   that names a different stream/consumer than its key, gives [`MetaError::Corrupt`] with
//!   the tree and key; it never panics. A value from a newer format gives
//!   [`MetaError::UnsupportedVersion`].
//! - **Every mutating call returns only after its change is durable**: it ends with sled's
//!   `flush()` and then syncs what sled leaves unsynced (see "What sled does not do").
//!   Multi-key changes (the cascading deletes, [`MetaStore::put_consumer_states`]) are
//!   atomic: after a crash either all of them or none are visible.
//! - Consumers belong to a stream: [`MetaStore::put_consumer`] fails with
//!   [`MetaError::StreamNotFound`] when the stream has no config,
//!   [`MetaStore::put_consumer_state`] with [`MetaError::ConsumerNotFound`] when the consumer
//!   has none, and [`MetaStore::delete_stream`] removes the stream's consumers and states.
//! - Listings are sorted by name in byte order.
//! - Only the key layout is validated here (names non-empty, at most [`MAX_NAME_BYTES`], no
//!   NUL); JetStream's naming rules are the jetstream layer's job. Consumer states must keep
//!   their invariants (ack floor not past delivered; pending above the floor, strictly
//!   increasing) or are refused with [`MetaError::InvalidState`].
//!
//! # Cost, and grouping frequent writes
//! One durable write costs one sled flush plus one `fdatasync` of sled's log: on this
//! project's 2-core VM (ext4 on a virtual disk) the median was 0.15-0.35 ms over 200 writes
//! (`tests/meta_store.rs`, `durable_put_latency`, prints it with `--nocapture`); on a real
//! disk without a power-loss-protected cache expect milliseconds. Concurrent callers each
//! sync; nothing holds a lock across a sync. Consumer states change on every ack, so a
//! consumer layer that makes AckSync durable should gather the states changed during one
//! tick (or while the previous sync ran) and write them with
//! [`MetaStore::put_consumer_states`]: one atomic batch and one sync for any number of
//! consumers (50 states cost about 1.3x one state here).
//!
//! # What sled does not do, and what we do about it
//! sled 0.34's `flush` ends in `sync_file_range` (spacejam/sled#1452), which neither flushes
//! the drive's volatile write cache nor persists the log file's new length; values over
//! 128 KiB go to blob files that it never syncs; it never syncs its directory (see
//! `shared/reliability-notes.md`). `MetaStore` therefore `fdatasync`s sled's log file after
//! every flush, syncs any blob files and their directory, and syncs the store directory on
//! open. This leans on sled 0.34's file layout (`db`, `blobs/`), so the sled version is
//! pinned. What remains: sled's own background flusher can make its log durable before we
//! sync a blob it points to (only for values over 128 KiB, only on power loss), and sled's
//! recovery has not been audited. The kill -9 test shows survival of process death, not of
//! power loss, so recovery must still treat consumer state as possibly stale: clamp the ack
//! floor to the stream's durable last sequence and let a regression cause redelivery, never
//! skipping.
//!
//! # Why a wrapper
//! Callers see only `MetaStore`, `MetaError` and the `pb` types, never sled's, so the engine
//! can be replaced (by sled 1.x, or by our own write-temp/fsync/rename files) behind this
//! interface.

mod codec;
mod error;
pub mod pb;
mod store;

pub use codec::{consumer_name, FORMAT_VERSION, MAX_NAME_BYTES, MAX_VALUE_BYTES};
pub use error::{MetaError, NameKind};
pub use store::{
    MetaStore, CACHE_CAPACITY_BYTES, CONSUMERS_TREE, CONSUMER_STATES_TREE, STREAMS_TREE,
};

/// How each tree's values are written and read back, without a sled store underneath: the
/// same functions `MetaStore` uses, for the fuzz targets in `fuzz/` and the property tests in
/// `tests/untrusted_input.rs`, which feed them arbitrary bytes. Not part of the API.
#[doc(hidden)]
pub mod values {
    pub use super::codec::{decode, encode};
    pub use super::store::{decode_consumer, decode_consumer_state, decode_stream};
}
