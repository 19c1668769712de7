//! The NATS client wire protocol, sans-io: bytes in, operations out; operations in, bytes out.
//! Nothing here touches a socket or a runtime, so every edge case is testable with plain bytes.

pub mod connect;
pub mod encode;
pub mod error;
pub mod headers;
pub mod parser;
pub mod pattern_index;
pub mod route;
pub mod subject;
pub mod transform;

pub use error::ProtocolError;
pub use parser::{ClientOp, Parser, ParserLimits, Publish};
