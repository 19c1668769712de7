//! CONNECT JSON, alone and through the parser, and the credential checks on what it decodes to.
//! The property is in `tests/properties`, shared with `tests/untrusted_input.rs`.
#![no_main]

#[path = "../../tests/properties/mod.rs"]
#[allow(dead_code)]
mod properties;

libfuzzer_sys::fuzz_target!(|data: &[u8]| properties::connect::connect_json(data));
