//! Rust types generated from `proto/jetlog_meta.proto` by `build.rs` (prost).
//!
//! Edit the `.proto`, never this output. The types are plain data; `meta::codec` frames them
//! with a format version before they reach sled.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

include!(concat!(env!("OUT_DIR"), "/jetlog.meta.rs"));
