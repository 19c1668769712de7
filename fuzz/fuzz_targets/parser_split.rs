//! The protocol parser fed the same bytes whole, cut at fuzzer-chosen points, and byte by byte.
//! The property is in `tests/properties`, shared with `tests/untrusted_input.rs`.
#![no_main]

#[path = "../../tests/properties/mod.rs"]
#[allow(dead_code)]
mod properties;

libfuzzer_sys::fuzz_target!(|data: &[u8]| properties::parser::split_equivalence(data));
