//! JetStream: the API's JSON types and errors, validation, and the stream state machine. The
//! tokio side (actors, API dispatch) lives in `server`.

pub mod advisories;
pub mod api_level;
pub mod api_types;
pub mod assignments;
pub mod consumer;
pub mod consumer_config;
mod consumer_pacing;
mod consumer_state;
pub mod dedup;
pub mod error;
mod feature_headers;
pub mod msg_ttl;
pub mod placement;
mod read_ahead;
pub mod replica;
pub mod replica_consumers;
pub mod replica_machine;
pub mod replica_snapshot;
pub mod replica_stream_ops;
mod schedule_pattern;
pub mod snapshot_archive;
pub mod snapshot_state;
pub mod stream;
mod stream_batch;
pub mod stream_config;
mod stream_config_update;
mod stream_consumers;
mod stream_counters;
mod stream_expectations;
mod stream_fast_batch;
mod stream_markers;
pub mod stream_mirror;
pub mod stream_origin;
pub mod stream_republish;
mod stream_schedules;
pub mod stream_sources;
pub mod stream_sourcing;
mod stream_ttl;
#[cfg(test)]
mod test_publish;
pub mod time;
pub mod versioning;

pub use error::ApiError;
pub use stream::Stream;
pub use stream_config::StreamConfig;
