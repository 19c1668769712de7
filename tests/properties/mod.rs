//! Properties of the code that reads untrusted bytes, written once and checked twice: by the
//! proptest suite in `tests/untrusted_input.rs` on every `cargo test`, and by the cargo-fuzz
//! targets in `fuzz/`, which include this module by path and run each property for as long
//! as they are let (see docs/reliability.md, "Fuzzing").
//!
//! Each property takes arbitrary bytes and panics (through `assert!`) when the code under test
//! breaks it; a panic inside the code under test fails it the same way. Where an input needs
//! some structure to get past the first checks (parser limits, split points, which request
//! type the JSON is for), it is taken from the first bytes, so a fuzzer can mutate it too.

pub mod connect;
pub mod headers;
pub mod js_api;
pub mod meta_values;
pub mod parser;
pub mod record;
pub mod seeds;
pub mod store_files;
