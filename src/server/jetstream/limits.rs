//! JetStream storage limits: the server's (`jetstream { max_file_store, max_memory_store }`)
//! and, below them, each account's (`accounts { A: { jetstream { max_file, max_mem } } }`).
//!
//! As with nats-server: a stream whose `max_bytes` does not fit in what the other streams'
//! `max_bytes` leave of a limit is refused at create or update (10047 for file storage, 10028
//! for memory), and a publish that would take the bytes stored past a limit is refused (the
//! server's: 503/10023; the account's: 400/10002) while the rest of the stream keeps working.
//! Usage is kept as one counter per storage type and level, which each stream moves by the
//! change in its own size after each round, so the publish path reads atomics instead of every
//! stream's state. Reservations are kept by (account, stream), so the server's check sees the
//! streams of every account.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::jetstream::stream_config::{Storage, StreamConfig};
use crate::jetstream::ApiError;

/// Whose limit a publish ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitScope {
    Server,
    Account,
}

impl LimitScope {
    /// The error a publish past this limit gets.
    pub fn exceeded(self) -> ApiError {
        match self {
            Self::Server => ApiError::insufficient_resources(),
            Self::Account => ApiError::new(400, 10002, "resource limits exceeded for account"),
        }
    }
}

/// How an unlimited storage type is stored in the atomics.
const NO_LIMIT: u64 = u64::MAX;

/// A stream's reservation: (account, stream) → (storage, max_bytes or 0).
type Reservations = HashMap<(String, String), (Storage, u64)>;

/// The configured limits (`None` = unlimited) of one level, and what is stored now.
#[derive(Debug)]
pub struct StorageLimits {
    /// The limits, [`NO_LIMIT`] for none; atomics, since an account's JWT may change them.
    max_memory: AtomicU64,
    max_file: AtomicU64,
    used_memory: AtomicU64,
    used_file: AtomicU64,
    reserved: Mutex<Reservations>,
    scope: LimitScope,
    /// The server's limits, above an account's.
    parent: Option<Arc<StorageLimits>>,
}

impl Default for StorageLimits {
    fn default() -> Self {
        Self::new(None, None)
    }
}

impl StorageLimits {
    /// The server's limits.
    pub fn new(max_memory: Option<u64>, max_file: Option<u64>) -> Self {
        StorageLimits {
            max_memory: AtomicU64::new(max_memory.unwrap_or(NO_LIMIT)),
            max_file: AtomicU64::new(max_file.unwrap_or(NO_LIMIT)),
            used_memory: AtomicU64::new(0),
            used_file: AtomicU64::new(0),
            reserved: Mutex::new(HashMap::new()),
            scope: LimitScope::Server,
            parent: None,
        }
    }

    /// An account's limits, within the server's.
    pub fn for_account(
        server: Arc<StorageLimits>,
        max_memory: Option<u64>,
        max_file: Option<u64>,
    ) -> Self {
        StorageLimits {
            scope: LimitScope::Account,
            parent: Some(server),
            ..Self::new(max_memory, max_file)
        }
    }

    /// New limits for this level (an account's JWT was updated).
    pub fn set(&self, max_memory: Option<u64>, max_file: Option<u64>) {
        self.max_memory
            .store(max_memory.unwrap_or(NO_LIMIT), Ordering::Relaxed);
        self.max_file
            .store(max_file.unwrap_or(NO_LIMIT), Ordering::Relaxed);
    }

    /// This level's own limit for a storage type.
    fn own_max(&self, storage: Storage) -> Option<u64> {
        let max = match storage {
            Storage::Memory => &self.max_memory,
            Storage::File => &self.max_file,
        };
        Some(max.load(Ordering::Relaxed)).filter(|m| *m != NO_LIMIT)
    }

    /// The tightest limit for a storage type, this level's or the server's.
    pub fn max(&self, storage: Storage) -> Option<u64> {
        let parent = self.parent.as_ref().and_then(|p| p.max(storage));
        match (self.own_max(storage), parent) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn used_counter(&self, storage: Storage) -> &AtomicU64 {
        match storage {
            Storage::Memory => &self.used_memory,
            Storage::File => &self.used_file,
        }
    }

    /// Bytes the streams of a type hold at this level, as last accounted.
    pub fn used(&self, storage: Storage) -> u64 {
        self.used_counter(storage).load(Ordering::Relaxed)
    }

    /// Bytes a stream of this type may still add, and whose limit that is; `None` when there
    /// is no limit at any level.
    pub fn room(&self, storage: Storage) -> Option<(u64, LimitScope)> {
        let own = self
            .own_max(storage)
            .map(|max| (max.saturating_sub(self.used(storage)), self.scope));
        let parent = self.parent.as_ref().and_then(|p| p.room(storage));
        match (own, parent) {
            (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
            (a, b) => a.or(b),
        }
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
        if let Some(parent) = &self.parent {
            parent.moved(storage, before, after);
        }
    }

    fn reservations(&self) -> std::sync::MutexGuard<'_, Reservations> {
        self.reserved.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks that `config`'s `max_bytes` fits beside the other streams' reservations, at
    /// this level and the server's. `account` and the stream's name say which reservation is
    /// its own (an update replaces it).
    pub fn check_reservation(&self, account: &str, config: &StreamConfig) -> Result<(), ApiError> {
        if let Some(max) = self.own_max(config.storage) {
            if config.max_bytes > 0 {
                let key = (account.to_string(), config.name.clone());
                let reserved: u64 = self
                    .reservations()
                    .iter()
                    .filter(|(k, (storage, _))| **k != key && *storage == config.storage)
                    .map(|(_, (_, bytes))| *bytes)
                    .sum();
                if reserved.saturating_add(config.max_bytes as u64) > max {
                    return Err(match config.storage {
                        Storage::Memory => {
                            ApiError::new(500, 10028, "insufficient memory resources available")
                        }
                        Storage::File => ApiError::storage_resources_exceeded(),
                    });
                }
            }
        }
        match &self.parent {
            Some(parent) => parent.check_reservation(account, config),
            None => Ok(()),
        }
    }

    /// Records a stream's reservation (on create, update and reopen).
    pub fn reserve(&self, account: &str, config: &StreamConfig) {
        let bytes = u64::try_from(config.max_bytes).unwrap_or(0);
        self.reservations().insert(
            (account.to_string(), config.name.clone()),
            (config.storage, bytes),
        );
        if let Some(parent) = &self.parent {
            parent.reserve(account, config);
        }
    }

    /// Forgets a deleted stream's reservation.
    pub fn release(&self, account: &str, stream: &str) {
        self.reservations()
            .remove(&(account.to_string(), stream.to_string()));
        if let Some(parent) = &self.parent {
            parent.release(account, stream);
        }
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
        assert!(limits.check_reservation("$G", &a).is_ok());
        limits.reserve("$G", &a);
        let b = config("B", 400);
        assert!(limits.check_reservation("$G", &b).is_ok());
        let c = config("C", 401);
        assert_eq!(
            limits.check_reservation("$G", &c).unwrap_err().err_code,
            10047
        );
        // An update replaces the stream's own reservation.
        assert!(limits.check_reservation("$G", &config("A", 1000)).is_ok());
        // Unlimited streams reserve nothing; memory is not limited here.
        limits.reserve("$G", &b);
        assert!(limits.check_reservation("$G", &config("D", -1)).is_ok());
        limits.release("$G", "A");
        assert!(limits.check_reservation("$G", &c).is_ok());
    }

    #[test]
    fn an_account_is_held_to_its_own_limits_and_the_servers() {
        let server = Arc::new(StorageLimits::new(None, Some(1000)));
        let a = StorageLimits::for_account(server.clone(), None, Some(500));
        let b = StorageLimits::for_account(server.clone(), None, None);
        assert_eq!(
            a.check_reservation("A", &config("S", 501))
                .unwrap_err()
                .err_code,
            10047
        );
        a.reserve("A", &config("S", 500));
        // B's stream must fit beside A's at the server's level.
        assert!(b.check_reservation("B", &config("S", 501)).is_err());
        assert!(b.check_reservation("B", &config("S", 500)).is_ok());
        a.moved(Storage::File, 0, 450);
        assert_eq!(a.room(Storage::File), Some((50, LimitScope::Account)));
        b.moved(Storage::File, 0, 520);
        assert_eq!(a.room(Storage::File), Some((30, LimitScope::Server)));
        assert_eq!(a.room(Storage::Memory), None);
    }

    #[test]
    fn usage_moves_both_ways_and_never_below_zero() {
        let limits = StorageLimits::new(Some(100), None);
        limits.moved(Storage::Memory, 0, 70);
        assert_eq!(limits.room(Storage::Memory), Some((30, LimitScope::Server)));
        limits.moved(Storage::Memory, 70, 20);
        assert_eq!(limits.used(Storage::Memory), 20);
        limits.moved(Storage::Memory, 500, 0);
        assert_eq!(limits.used(Storage::Memory), 0);
        assert_eq!(limits.room(Storage::File), None);
    }
}
