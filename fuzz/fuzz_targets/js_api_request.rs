//! JetStream API request bodies: stream and consumer configs, pull requests, acks, other requests.
//! The property is in `tests/properties`, shared with `tests/untrusted_input.rs`.
#![no_main]

#[path = "../../tests/properties/mod.rs"]
#[allow(dead_code)]
mod properties;

libfuzzer_sys::fuzz_target!(|data: &[u8]| properties::js_api::js_api_request(data));
