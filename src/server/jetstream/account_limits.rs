//! The JetStream limits of the one account jetlog serves (`accounts { A: { jetstream {
//! max_streams, max_consumers, max_bytes_required, memory_max_stream_bytes,
//! store_max_stream_bytes } } }`), checked as nats-server checks them (`checkStreamCfg`,
//! `checkLimits`, the stream-create and consumer-create paths) with its error codes.

use crate::jetstream::stream_config::{Storage, StreamConfig};
use crate::jetstream::ApiError;

/// What the account may have; `None` (or `false`) is no limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountLimits {
    pub max_streams: Option<u64>,
    /// Consumers per stream (a stream's own `max_consumers` may be lower).
    pub max_consumers: Option<u64>,
    /// Every stream must set `max_bytes`.
    pub max_bytes_required: bool,
    pub memory_max_stream_bytes: Option<u64>,
    pub store_max_stream_bytes: Option<u64>,
    /// Bytes all the account's memory streams may hold (`max_mem`).
    pub max_memory: Option<u64>,
    /// Bytes all the account's file streams may hold (`max_file`).
    pub max_file: Option<u64>,
    /// Most unacknowledged messages a consumer may allow (`max_ack_pending`).
    pub max_ack_pending: Option<u64>,
}

impl AccountLimits {
    /// Checks a stream's config on create (with how many streams exist) or update (`None`).
    pub fn check_stream(
        &self,
        config: &StreamConfig,
        existing_streams: Option<usize>,
    ) -> Result<(), ApiError> {
        let max_stream_bytes = match config.storage {
            Storage::Memory => self.memory_max_stream_bytes,
            Storage::File => self.store_max_stream_bytes,
        };
        if self.max_bytes_required && config.max_bytes <= 0 {
            return Err(ApiError::new(
                400,
                10113,
                "account requires a stream config to have max bytes set",
            ));
        }
        if max_stream_bytes
            .is_some_and(|limit| config.max_bytes > 0 && config.max_bytes as u64 > limit)
        {
            return Err(ApiError::new(
                400,
                10122,
                "stream max bytes exceeds account limit max stream bytes",
            ));
        }
        if let Some(limit) = self.max_consumers {
            if config.max_consumers > 0 && config.max_consumers as u64 > limit {
                return Err(max_consumers_reached());
            }
        }
        if let (Some(limit), Some(existing)) = (self.max_streams, existing_streams) {
            if existing as u64 >= limit {
                return Err(ApiError::new(
                    400,
                    10027,
                    "maximum number of streams reached",
                ));
            }
        }
        Ok(())
    }

    /// Checks that a stream whose own limit is `stream_max_consumers` and which has
    /// `existing` consumers may take one more: the lower of its limit and the account's.
    pub fn check_new_consumer(
        &self,
        stream_max_consumers: i64,
        existing: usize,
    ) -> Result<(), ApiError> {
        let own = u64::try_from(stream_max_consumers).ok().filter(|m| *m > 0);
        let limit = match (own, self.max_consumers) {
            (Some(own), Some(account)) => Some(own.min(account)),
            (own, account) => own.or(account),
        };
        match limit {
            Some(limit) if existing as u64 >= limit => Err(max_consumers_reached()),
            _ => Ok(()),
        }
    }

    /// Holds a consumer's `max_ack_pending` to the account's, as nats-server does: one that
    /// was not asked for (`requested` 0, so the default was taken) comes down to the limit;
    /// one asked for above it is refused (10121).
    pub fn fit_max_ack_pending(
        &self,
        requested: i64,
        config: &mut crate::jetstream::consumer_config::ConsumerConfig,
    ) -> Result<(), ApiError> {
        let Some(limit) = self.max_ack_pending.and_then(|l| i64::try_from(l).ok()) else {
            return Ok(());
        };
        if requested == 0 && config.max_ack_pending > limit {
            config.max_ack_pending = limit;
        }
        if config.max_ack_pending > limit {
            return Err(ApiError::new(
                400,
                10121,
                format!("consumer max ack pending exceeds system limit of {limit}"),
            ));
        }
        Ok(())
    }

    /// A limit as `$JS.API.INFO` reports it: -1 for none.
    pub fn reported(limit: Option<u64>) -> i64 {
        limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX))
    }
}

fn max_consumers_reached() -> ApiError {
    ApiError::new(400, 10026, "maximum consumers limit reached")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(max_bytes: i64, storage: Storage) -> StreamConfig {
        StreamConfig {
            name: "S".into(),
            max_bytes,
            storage,
            ..StreamConfig::default()
        }
    }

    #[test]
    fn each_limit_gives_nats_servers_error() {
        let limits = AccountLimits {
            max_streams: Some(2),
            max_consumers: Some(3),
            max_bytes_required: true,
            memory_max_stream_bytes: Some(100),
            store_max_stream_bytes: Some(1000),
            ..AccountLimits::default()
        };
        let code = |r: Result<(), ApiError>| r.err().map(|e| e.err_code);
        assert_eq!(
            code(limits.check_stream(&stream(-1, Storage::File), Some(0))),
            Some(10113)
        );
        assert_eq!(
            code(limits.check_stream(&stream(500, Storage::Memory), Some(0))),
            Some(10122)
        );
        assert_eq!(
            code(limits.check_stream(&stream(500, Storage::File), Some(0))),
            None
        );
        assert_eq!(
            code(limits.check_stream(&stream(500, Storage::File), Some(2))),
            Some(10027)
        );
        assert_eq!(
            code(limits.check_stream(&stream(500, Storage::File), None)),
            None
        );
        let mut many = stream(500, Storage::File);
        many.max_consumers = 5;
        assert_eq!(code(limits.check_stream(&many, None)), Some(10026));
        assert_eq!(code(limits.check_new_consumer(-1, 2)), None);
        assert_eq!(code(limits.check_new_consumer(-1, 3)), Some(10026));
        assert_eq!(code(limits.check_new_consumer(1, 1)), Some(10026));
        assert_eq!(
            code(AccountLimits::default().check_new_consumer(-1, 10_000)),
            None
        );
    }
}
