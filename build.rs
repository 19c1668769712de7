//! Compiles `proto/*.proto` into Rust types for `src/meta/pb.rs`.
//!
//! The `.proto` files are parsed by `protox` (a pure-Rust protobuf compiler) and the resulting
//! `FileDescriptorSet` is handed to `prost-build`, so no `protoc` binary is needed on any
//! developer or CI machine.

use std::error::Error;

/// Directory holding the `.proto` sources; also the protobuf import root.
const PROTO_DIR: &str = "proto";

/// Every `.proto` file to compile, relative to `PROTO_DIR`.
const PROTO_FILES: &[&str] = &["jetlog_meta.proto"];

fn main() -> Result<(), Box<dyn Error>> {
    // Re-run only when a .proto changes, not on every edit of src/.
    println!("cargo:rerun-if-changed={PROTO_DIR}");
    let descriptors = protox::compile(PROTO_FILES, [PROTO_DIR])?;
    prost_build::Config::new()
        // BTreeMap rather than HashMap: the encoding of a map field then follows key order,
        // so the same value always encodes to the same bytes.
        .btree_map(["."])
        .compile_fds(descriptors)?;
    Ok(())
}
