//! Helpers of `tests/reliability_kill_loop.rs`: the client workload and the checker.

pub mod verdict;
pub mod workload;
