//! Helpers of `tests/reliability_kill_loop.rs` (and the soak): the client workload, the
//! server's kills and restarts, and the checker.
// Each of the two tests uses a part of these.
#![allow(dead_code)]

pub mod server;
pub mod verdict;
pub mod workload;
