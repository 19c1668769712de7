//! The segment record decoder and the recovery scan over a whole segment.
//! The property is in `tests/properties`, shared with `tests/untrusted_input.rs`.
#![no_main]

#[path = "../../tests/properties/mod.rs"]
#[allow(dead_code)]
mod properties;

libfuzzer_sys::fuzz_target!(|data: &[u8]| properties::record::segment_record(data));
