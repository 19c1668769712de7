//! Clustering (issue 19, in progress): servers in a full mesh of routes sharing interest and
//! forwarding core NATS messages. What is here so far is sans-io and not yet wired to a
//! listener; a `cluster {}` block is still refused. The route protocol's codec lives beside
//! the client protocol, in `protocol::route`.
//!
//! - [`interest`]: what this server tells its routes about its own subscriptions.

pub mod interest;
