//! Server-wide JetStream storage limits (`jetstream { max_file_store, max_memory_store }`).
//!
//! As with nats-server: a stream whose `max_bytes` does not fit in what the other streams'
//! `max_bytes` leave of the limit is refused at create or update (10047), and a publish that
//! would take the bytes stored by all streams of its storage type past the limit is refused
//! (10023) while the rest of the stream keeps working. Usage is kept as one counter per
//! storage type, which each stream moves by the change in its own size after each round,
//! so the publish path reads one atomic instead of every stream's state.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::jetstream::stream_config::{Storage, StreamConfig};
use crate::jetstream::ApiError;

/// The configured limits (`None` = unlimited) and what is stored now.
#[derive(Debug, Default)]
pub struct StorageLimits {
    max_memory: Option<u64>,
    max_file: Option<u64>,
    used_memory: AtomicU64,
    used_file: AtomicU64,
}

impl StorageLimits {
    pub fn new(max_memory: Option<u64>, max_file: Option<u64>) -> Self {
        StorageLimits {
            max_memory,
            max_file,
            ..StorageLimits::default()
        }
    }

    /// The limit for a storage type.
    pub fn max(&self, storage: Storage) -> Option<u64> {
        match storage {
            Storage::Memory => self.max_memory,
            Storage::File => self.max_file,
        }
    }

    fn used_counter(&self, storage: Storage) -> &AtomicU64 {
        match storage {
            Storage::Memory => &self.used_memory,
            Storage::File => &self.used_file,
        }
    }

    /// Bytes the streams of a type hold, as last accounted.
    pub fn used(&self, storage: Storage) -> u64 {
        self.used_counter(storage).load(Ordering::Relaxed)
    }

    /// Bytes a stream of this type may still add; `None` when there is no limit.
    pub fn room(&self, storage: Storage) -> Option<u64> {
        self.max(storage)
            .map(|max| max.saturating_sub(self.used(storage)))
    }

    /// A stream's size moved from `before` to `after` bytes.
    pub fn moved(&self, storage: Storage, before: u64, after: u64) {
        let counter = self.used_counter(storage);
        if after >= before {
            counter.fetch_add(after - before, Ordering::Relaxed);
        } else {
            let gone = before - after;
            // Never below zero, whatever order concurrent accounts arrive in.
            let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                Some(u.saturating_sub(gone))
            });
        }
    }

    /// Checks that `config`'s `max_bytes` fits beside the `max_bytes` of `others` (the other
    /// streams' configs).
    pub fn check_reservation<'a>(
        &self,
        config: &StreamConfig,
        others: impl Iterator<Item = &'a StreamConfig>,
    ) -> Result<(), ApiError> {
        let Some(max) = self.max(config.storage) else {
            return Ok(());
        };
        if config.max_bytes <= 0 {
            return Ok(());
        }
        let reserved: u64 = others
            .filter(|c| c.storage == config.storage && c.max_bytes > 0)
            .map(|c| c.max_bytes as u64)
            .sum();
        if reserved.saturating_add(config.max_bytes as u64) > max {
            return Err(ApiError::storage_resources_exceeded());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(name: &str, max_bytes: i64) -> StreamConfig {
        StreamConfig {
            name: name.into(),
            max_bytes,
            ..StreamConfig::default()
        }
    }

    #[test]
    fn reservations_must_fit_beside_the_others() {
        let limits = StorageLimits::new(None, Some(1000));
        let a = config("A", 600);
        assert!(limits.check_reservation(&a, std::iter::empty()).is_ok());
        let b = config("B", 400);
        assert!(limits.check_reservation(&b, [&a].into_iter()).is_ok());
        let c = config("C", 401);
        assert_eq!(
            limits
                .check_reservation(&c, [&a].into_iter())
                .unwrap_err()
                .err_code,
            10047
        );
        // Unlimited streams reserve nothing; memory is not limited here.
        assert!(limits
            .check_reservation(&config("D", -1), [&a, &b].into_iter())
            .is_ok());
    }

    #[test]
    fn usage_moves_both_ways_and_never_below_zero() {
        let limits = StorageLimits::new(Some(100), None);
        limits.moved(Storage::Memory, 0, 70);
        assert_eq!(limits.room(Storage::Memory), Some(30));
        limits.moved(Storage::Memory, 70, 20);
        assert_eq!(limits.used(Storage::Memory), 20);
        limits.moved(Storage::Memory, 500, 0);
        assert_eq!(limits.used(Storage::Memory), 0);
        assert_eq!(limits.room(Storage::File), None);
    }
}
