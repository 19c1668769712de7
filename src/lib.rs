//! jetlog: a persistent stream server that speaks the NATS client protocol and the JetStream API.

pub mod broker;
pub mod cli;
pub mod cluster;
pub mod conf;
pub mod jetstream;
pub mod meta;
pub mod monitor;
pub mod protocol;
pub mod raft;
pub mod server;
pub mod store;
