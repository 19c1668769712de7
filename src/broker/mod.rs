//! Routing decisions without I/O: which subscriptions a subject reaches.
//!
//! `Sublist` is the trie of subscriptions; `MatchCache` remembers results per publisher. The
//! server layer owns the locking and the delivery; nothing here knows about sockets.

pub mod cache;
pub mod sublist;

pub use cache::MatchCache;
pub use sublist::{MatchResult, QueueGroup, Sublist};
