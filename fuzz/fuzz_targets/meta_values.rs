//! Metadata values as sled returns them: stream and consumer configs, consumer states.
//! The property is in `tests/properties`, shared with `tests/untrusted_input.rs`.
#![no_main]

#[path = "../../tests/properties/mod.rs"]
#[allow(dead_code)]
mod properties;

libfuzzer_sys::fuzz_target!(|data: &[u8]| properties::meta_values::meta_value(data));
