//! JetStream: the API's JSON types, errors and validation. The stream and consumer state
//! machines and the API handlers build on these (their issues are open).

pub mod error;
pub mod stream_config;
pub mod time;

pub use error::ApiError;
pub use stream_config::StreamConfig;
