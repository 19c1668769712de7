//! Consensus for replicated JetStream, on openraft.
//!
//! jetlog does not implement Raft itself: openraft does. This module is the adapters openraft
//! asks for and nothing more:
//! - [`types`]: the type configuration (commands and outcomes are opaque bytes) and node ids;
//! - [`log_store`]: a group's log and vote, durable before openraft is told: the entries in
//!   [`entry_log`] segment files (encoded by [`codec`]), the vote in sled;
//! - [`machine`]: the [`machine::Machine`] a group replicates, and its snapshots;
//! - [`network`]: RPCs as NATS requests on `$JLR.<group>.<node>.<op>`, so groups talk over
//!   the cluster's routes;
//! - [`nats_transport`]: that transport over a NATS client connection;
//! - [`group`]: one member of one group, with jetlog's timers.

// openraft's traits fix the error type every storage method returns (`StorageError`, over
// 200 bytes); boxing it is not ours to choose.
#![allow(clippy::result_large_err)]

pub mod codec;
pub mod entry_log;
pub mod group;
pub mod log_store;
pub mod machine;
pub mod nats_transport;
pub mod network;
pub mod types;

#[cfg(test)]
mod entry_log_tests;
#[cfg(test)]
mod log_store_tests;
