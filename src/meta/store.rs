//! [`MetaStore`]: stream configs, consumer configs and consumer states in sled trees.

use std::convert::Infallible;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use sled::transaction::TransactionError;
use sled::Transactional;

use super::codec::{self, consumer_key, consumer_name, consumer_prefix, validate_name};
use super::error::{MetaError, NameKind};
use super::pb;

/// Tree of stream configs, keyed by stream name.
pub const STREAMS_TREE: &str = "streams";
/// Tree of consumer configs, keyed by `stream NUL consumer`.
pub const CONSUMERS_TREE: &str = "consumers";
/// Tree of consumer states, keyed like [`CONSUMERS_TREE`]. Kept apart from the configs
/// because states are rewritten on every durable ack while configs almost never change:
/// a state write then never re-encodes (or risks) the config.
pub const CONSUMER_STATES_TREE: &str = "consumer_states";

/// Upper bound of sled's page cache. Metadata is small (kilobytes per stream), so sled's
/// 1 GiB default would only ever matter as a hazard; 64 MiB is ample.
pub const CACHE_CAPACITY_BYTES: u64 = 64 << 20;

/// sled 0.34's file holding its log, inside the database directory.
const SLED_LOG_FILE: &str = "db";
/// sled 0.34's directory of values too large to sit in its log (over 128 KiB with the default
/// 512 KiB segments), one file per value.
const SLED_BLOB_DIR: &str = "blobs";

/// How long `open` waits for sled's file lock. Dropping a `sled::Db` releases the lock only
/// once sled's background flusher has wound down, a few milliseconds later, so a reopen in the
/// same process (a restart, a test) would otherwise fail at random; a lock that is still held
/// after this long belongs to another live process.
const LOCK_WAIT: Duration = Duration::from_secs(2);
/// Pause between attempts to take the lock.
const LOCK_RETRY_PAUSE: Duration = Duration::from_millis(10);

/// Opens sled in `dir`, retrying while its file lock is held, for at most [`LOCK_WAIT`].
fn open_db(dir: &Path) -> Result<sled::Db, MetaError> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_CAPACITY_BYTES)
            .open()
        {
            Ok(db) => return Ok(db),
            Err(e) if is_lock_held(&e) && Instant::now() < deadline => {
                std::thread::sleep(LOCK_RETRY_PAUSE)
            }
            Err(e) => return Err(MetaError::storage("open", e)),
        }
    }
}

/// sled 0.34 reports a held lock as an I/O error wrapping `WouldBlock` in its message only.
fn is_lock_held(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.to_string().contains("could not acquire lock"))
}

/// Durable metadata of streams and consumers. See the module docs of `meta` for the
/// durability contract. `MetaStore` is `Send + Sync`; share it behind an `Arc`.
pub struct MetaStore {
    /// Kept for `flush`: every tree shares the database's one log, so one flush covers them.
    db: sled::Db,
    streams: sled::Tree,
    consumers: sled::Tree,
    consumer_states: sled::Tree,
    /// Our own handle on sled's log file. sled's `flush` ends with `sync_file_range`, which
    /// neither flushes the drive's write cache nor persists the file's new length, so after
    /// it we `fdatasync` the same inode, which does both.
    log_file: File,
    /// sled writes large values to files here and never syncs them; `flush` does.
    blob_dir: PathBuf,
    /// Serialises each "check that the parent exists, then write" sequence with the cascading
    /// deletes, so that no consumer (or state) can be written for a stream that is being
    /// deleted and be left orphaned. It is held only for in-memory tree operations, never
    /// across `flush`, so writers still share fsyncs. A std mutex: nothing awaits under it.
    write_lock: Mutex<()>,
}

impl MetaStore {
    /// Opens (creating if needed) the metadata database in `dir`.
    ///
    /// sled takes an exclusive file lock, so a second open of the same directory, by this or
    /// another process, fails with `MetaError::Storage` until the first `MetaStore` is dropped
    /// (after waiting up to [`LOCK_WAIT`] for it to go).
    pub fn open(dir: &Path) -> Result<MetaStore, MetaError> {
        let db = open_db(dir)?;
        let open_tree = |name: &str| {
            db.open_tree(name)
                .map_err(|e| MetaError::storage("open", e))
        };
        let log_file = File::open(dir.join(SLED_LOG_FILE)).map_err(|e| MetaError::io("open", e))?;
        let store = MetaStore {
            streams: open_tree(STREAMS_TREE)?,
            consumers: open_tree(CONSUMERS_TREE)?,
            consumer_states: open_tree(CONSUMER_STATES_TREE)?,
            log_file,
            blob_dir: dir.join(SLED_BLOB_DIR),
            db,
            write_lock: Mutex::new(()),
        };
        // sled does not sync the directory after creating its files; without this, a fresh
        // store could lose its files (not only their contents) on power loss.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| MetaError::io("open", e))?;
        store.flush()?;
        Ok(store)
    }

    /// Creates or replaces the config of stream `config.name`. Durable on return.
    pub fn put_stream(&self, config: &pb::StreamConfig) -> Result<(), MetaError> {
        let key = validate_name(NameKind::Stream, &config.name)?;
        let value = codec::encode(STREAMS_TREE, config)?;
        {
            let _guard = self.lock();
            self.streams
                .insert(key, value)
                .map_err(|e| MetaError::storage("write", e))?;
        }
        self.flush()
    }

    /// The stored config of stream `name`, if any.
    pub fn get_stream(&self, name: &str) -> Result<Option<pb::StreamConfig>, MetaError> {
        let key = validate_name(NameKind::Stream, name)?;
        match self
            .streams
            .get(key)
            .map_err(|e| MetaError::storage("read", e))?
        {
            None => Ok(None),
            Some(value) => decode_stream(key, &value).map(Some),
        }
    }

    /// Every stored stream config, sorted by name (byte order).
    ///
    /// Fails as a whole on the first corrupt record, naming its key; such a record can be
    /// removed with [`delete_stream`](Self::delete_stream), which never decodes values.
    pub fn list_streams(&self) -> Result<Vec<pb::StreamConfig>, MetaError> {
        self.streams
            .iter()
            .map(|entry| {
                let (key, value) = entry.map_err(|e| MetaError::storage("read", e))?;
                decode_stream(&key, &value)
            })
            .collect()
    }

    /// Deletes stream `name` together with all its consumers and their states, atomically.
    /// Returns whether the stream existed. Durable on return.
    pub fn delete_stream(&self, name: &str) -> Result<bool, MetaError> {
        let key = validate_name(NameKind::Stream, name)?;
        let prefix = consumer_prefix(name)?;
        let existed = {
            let _guard = self.lock();
            let mut children = Vec::new();
            for tree in [&self.consumers, &self.consumer_states] {
                for child in tree.scan_prefix(&prefix).keys() {
                    children.push(child.map_err(|e| MetaError::storage("read", e))?);
                }
            }
            let trees = (&self.streams, &self.consumers, &self.consumer_states);
            let result: Result<bool, TransactionError<Infallible>> =
                trees.transaction(|(streams, consumers, states)| {
                    for child in &children {
                        consumers.remove(child)?;
                        states.remove(child)?;
                    }
                    Ok(streams.remove(key)?.is_some())
                });
            result.map_err(|e| transaction_error("delete", e))?
        };
        self.flush()?;
        Ok(existed)
    }

    /// Creates or replaces the config of a consumer of `stream`, stored under
    /// [`consumer_name`](super::consumer_name). The stream must exist. Durable on return.
    pub fn put_consumer(&self, stream: &str, config: &pb::ConsumerConfig) -> Result<(), MetaError> {
        let name = consumer_name(config);
        if !config.durable_name.is_empty() && config.durable_name != name {
            return Err(MetaError::InvalidName {
                kind: NameKind::Consumer,
                name: name.to_owned(),
                reason: "name and durable_name differ",
            });
        }
        let key = consumer_key(stream, name)?;
        let value = codec::encode(CONSUMERS_TREE, config)?;
        {
            let _guard = self.lock();
            if !self.contains(&self.streams, stream.as_bytes())? {
                return Err(MetaError::StreamNotFound {
                    stream: stream.to_owned(),
                });
            }
            self.consumers
                .insert(key, value)
                .map_err(|e| MetaError::storage("write", e))?;
        }
        self.flush()
    }

    /// The stored config of consumer `name` of `stream`, if any.
    pub fn get_consumer(
        &self,
        stream: &str,
        name: &str,
    ) -> Result<Option<pb::ConsumerConfig>, MetaError> {
        let key = consumer_key(stream, name)?;
        match self
            .consumers
            .get(&key)
            .map_err(|e| MetaError::storage("read", e))?
        {
            None => Ok(None),
            Some(value) => decode_consumer(&key, name.as_bytes(), &value).map(Some),
        }
    }

    /// The configs of every consumer of `stream`, sorted by name (byte order). Fails as a
    /// whole on the first corrupt record, like [`list_streams`](Self::list_streams).
    pub fn list_consumers(&self, stream: &str) -> Result<Vec<pb::ConsumerConfig>, MetaError> {
        let prefix = consumer_prefix(stream)?;
        self.consumers
            .scan_prefix(&prefix)
            .map(|entry| {
                let (key, value) = entry.map_err(|e| MetaError::storage("read", e))?;
                decode_consumer(&key, &key[prefix.len()..], &value)
            })
            .collect()
    }

    /// Deletes consumer `name` of `stream` and its state, atomically. Returns whether the
    /// consumer existed. Durable on return.
    pub fn delete_consumer(&self, stream: &str, name: &str) -> Result<bool, MetaError> {
        let key = consumer_key(stream, name)?;
        let existed = {
            let _guard = self.lock();
            let trees = (&self.consumers, &self.consumer_states);
            let result: Result<bool, TransactionError<Infallible>> =
                trees.transaction(|(consumers, states)| {
                    states.remove(key.as_slice())?;
                    Ok(consumers.remove(key.as_slice())?.is_some())
                });
            result.map_err(|e| transaction_error("delete", e))?
        };
        self.flush()?;
        Ok(existed)
    }

    /// Replaces the state of consumer `name` of `stream`, which must exist. Durable on return.
    ///
    /// Costs one fsync; when many consumers ack at once, prefer
    /// [`put_consumer_states`](Self::put_consumer_states).
    pub fn put_consumer_state(
        &self,
        stream: &str,
        name: &str,
        state: &pb::ConsumerState,
    ) -> Result<(), MetaError> {
        let (key, value) = encode_state(stream, name, state)?;
        {
            let _guard = self.lock();
            if !self.contains(&self.consumers, &key)? {
                return Err(MetaError::ConsumerNotFound {
                    stream: stream.to_owned(),
                    name: name.to_owned(),
                });
            }
            self.consumer_states
                .insert(key, value)
                .map_err(|e| MetaError::storage("write", e))?;
        }
        self.flush()
    }

    /// Group commit of consumer states: writes every `(stream, consumer, state)` atomically
    /// and makes them durable with a single fsync. Returns how many were written.
    ///
    /// All entries are validated first; one invalid entry fails the whole call and nothing
    /// is written. Entries whose consumer no longer exists are skipped rather than failing
    /// the batch, because a consumer deleted while its state waited in a group-commit queue
    /// has nothing left to keep, and the other consumers' acks must not be held hostage.
    /// When one consumer appears twice, the later entry wins.
    pub fn put_consumer_states(
        &self,
        states: &[(&str, &str, &pb::ConsumerState)],
    ) -> Result<usize, MetaError> {
        let encoded = states
            .iter()
            .map(|(stream, name, state)| encode_state(stream, name, state))
            .collect::<Result<Vec<_>, _>>()?;
        let mut written = 0;
        {
            let _guard = self.lock();
            let mut batch = sled::Batch::default();
            for (key, value) in encoded {
                if self.contains(&self.consumers, &key)? {
                    batch.insert(key, value);
                    written += 1;
                }
            }
            self.consumer_states
                .apply_batch(batch)
                .map_err(|e| MetaError::storage("write", e))?;
        }
        self.flush()?;
        Ok(written)
    }

    /// The stored state of consumer `name` of `stream`, if any. A consumer that was created
    /// but never had a state written has none.
    pub fn get_consumer_state(
        &self,
        stream: &str,
        name: &str,
    ) -> Result<Option<pb::ConsumerState>, MetaError> {
        let key = consumer_key(stream, name)?;
        let Some(value) = self
            .consumer_states
            .get(&key)
            .map_err(|e| MetaError::storage("read", e))?
        else {
            return Ok(None);
        };
        decode_consumer_state(&key, &value).map(Some)
    }

    /// Blocks until every write made so far is on disk: sled's `flush` writes its log
    /// buffers, then we sync what sled leaves unsynced (see `log_file` and `blob_dir`).
    /// Blobs go first so that a synced log never points at a blob that is not.
    fn flush(&self) -> Result<(), MetaError> {
        self.db
            .flush()
            .map_err(|e| MetaError::storage("flush", e))?;
        self.sync_blobs().map_err(|e| MetaError::io("flush", e))?;
        self.log_file
            .sync_data()
            .map_err(|e| MetaError::io("flush", e))
    }

    /// Syncs every file in sled's blob directory, and the directory itself. The directory is
    /// absent or empty unless a value (or a tree node) exceeded sled's inline limit, so this
    /// normally costs one `getdents`. The loop is bounded by sled's blob count, which its
    /// garbage collection keeps to the live large values.
    fn sync_blobs(&self) -> io::Result<()> {
        let entries = match std::fs::read_dir(&self.blob_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut synced_any = false;
        for entry in entries {
            match File::open(entry?.path()) {
                Ok(blob) => blob.sync_all()?,
                // Removed by sled's garbage collection since the listing: nothing to keep.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
            synced_any = true;
        }
        if synced_any {
            File::open(&self.blob_dir)?.sync_all()?;
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        // The mutex guards no data, so a panic in another holder leaves nothing inconsistent
        // behind it: ignore the poison.
        self.write_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn contains(&self, tree: &sled::Tree, key: &[u8]) -> Result<bool, MetaError> {
        tree.contains_key(key)
            .map_err(|e| MetaError::storage("read", e))
    }
}

/// Validates and encodes a consumer state with its key.
fn encode_state(
    stream: &str,
    name: &str,
    state: &pb::ConsumerState,
) -> Result<(Vec<u8>, Vec<u8>), MetaError> {
    let key = consumer_key(stream, name)?;
    codec::check_consumer_state(state).map_err(|reason| MetaError::InvalidState {
        stream: stream.to_owned(),
        name: name.to_owned(),
        reason,
    })?;
    let value = codec::encode(CONSUMER_STATES_TREE, state)?;
    Ok((key, value))
}

/// Decodes a stream config and checks that it is stored under its own name.
pub fn decode_stream(key: &[u8], value: &[u8]) -> Result<pb::StreamConfig, MetaError> {
    let config: pb::StreamConfig = codec::decode(STREAMS_TREE, key, value)?;
    if config.name.as_bytes() != key {
        return Err(MetaError::Corrupt {
            tree: STREAMS_TREE,
            key: key.to_vec(),
            reason: format!("stored config names stream {:?}", config.name),
        });
    }
    Ok(config)
}

/// Decodes a consumer config and checks that it is stored under its own name.
pub fn decode_consumer(
    key: &[u8],
    name: &[u8],
    value: &[u8],
) -> Result<pb::ConsumerConfig, MetaError> {
    let config: pb::ConsumerConfig = codec::decode(CONSUMERS_TREE, key, value)?;
    if consumer_name(&config).as_bytes() != name {
        return Err(MetaError::Corrupt {
            tree: CONSUMERS_TREE,
            key: key.to_vec(),
            reason: format!("stored config names consumer {:?}", consumer_name(&config)),
        });
    }
    Ok(config)
}

/// Decodes a consumer state and checks the invariants it was written with.
pub fn decode_consumer_state(key: &[u8], value: &[u8]) -> Result<pb::ConsumerState, MetaError> {
    let state: pb::ConsumerState = codec::decode(CONSUMER_STATES_TREE, key, value)?;
    codec::check_consumer_state(&state).map_err(|reason| MetaError::Corrupt {
        tree: CONSUMER_STATES_TREE,
        key: key.to_vec(),
        reason: reason.to_owned(),
    })?;
    Ok(state)
}

fn transaction_error(op: &'static str, error: TransactionError<Infallible>) -> MetaError {
    match error {
        TransactionError::Abort(never) => match never {},
        TransactionError::Storage(e) => MetaError::storage(op, e),
    }
}
