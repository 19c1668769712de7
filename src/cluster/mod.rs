//! Clustering (issue 19): servers in a full mesh of routes sharing interest and forwarding
//! core NATS messages. This part is sans-io; the connections themselves are driven by
//! `server::routes`, and the route protocol's codec lives beside the client protocol, in
//! `protocol::route`.
//!
//! - [`config`]: the `cluster {}` block and the route URLs.
//! - [`handshake`]: the route `INFO`/`CONNECT` JSON and the checks made on it.
//! - [`interest`]: what this server tells its routes about its own subscriptions.

pub mod config;
pub mod handshake;
pub mod interest;

pub use config::{ClusterConfig, RouteUrl};
