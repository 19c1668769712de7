//! A file stream whose number of replicas changes in a cluster (issue 20), on this server:
//! the stream is reopened over its own store, as a replica of a new group or as a stream of
//! its own again. Who joins and leaves the group, and when, is `cluster_js::stream_moves`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{lock, JetStream, StreamEntry};
use crate::jetstream::stream_config::Retention;
use crate::jetstream::{ApiError, StreamConfig};

/// How long a reopening waits for the last task holding the stream to let it go: its store's
/// files must be closed before the stream opens them again.
const RELEASE_WAIT: Duration = Duration::from_secs(5);

impl StreamEntry {
    /// Whether the stream runs as a replica of a group here.
    pub fn is_replicated(&self) -> bool {
        self.replica.is_replicated()
    }
}

impl JetStream {
    /// Reopens running stream `config.name` with `config` over its store: as a replica when
    /// `config` has more than one replica, its store the new group's from the group's
    /// start (`Log::begin_group`); as a stream of its own otherwise, its replicated consumers
    /// becoming R1 ones with the states its group committed. Its R1 consumers stay as
    /// they are. Pull requests waiting on the stream's consumers are dropped, as when its
    /// leader changes: clients ask again.
    pub fn reopen_stream(&self, config: StreamConfig) -> Result<Arc<StreamEntry>, ApiError> {
        let name = config.name.clone();
        let entry = lock(&self.streams)
            .remove(&name)
            .ok_or_else(ApiError::stream_not_found)?;
        self.stop(&entry);
        let (storage, subjects, created_ns) = {
            let mut stream = entry.lock();
            if self.replicates(&config) {
                stream.log_mut().begin_group();
            }
            stream.log_mut().sync().map_err(ApiError::store_failed)?;
            let old = stream.config();
            (old.storage, old.subjects.clone(), stream.created_ns())
        };
        self.index_subjects(&name, &subjects, &[]);
        let accounted = entry.accounted.swap(0, Ordering::Relaxed);
        self.limits.moved(storage, accounted, 0);
        self.limits.release(&self.account_name, &name);
        let deadline = Instant::now() + RELEASE_WAIT;
        while Arc::strong_count(&entry) > 1 {
            if Instant::now() >= deadline {
                return Err(ApiError::store_failed(format!(
                    "stream {name} is still in use and cannot be reopened"
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(entry);
        match self.replicates(&config) {
            true => self.consumers_to_group(&config)?,
            false => self.consumers_to_r1(&name)?,
        }
        self.catalog
            .put_stream(&config, created_ns)
            .map_err(ApiError::store_failed)?;
        self.open_stream(config, created_ns, None)
    }

    /// Records `config` for running stream `config.name` in the catalog, ahead of its
    /// reopening: a server that stops in between opens it as it was to become.
    pub fn keep_config(&self, config: &StreamConfig) -> Result<(), ApiError> {
        let entry = self
            .stream(&config.name)
            .ok_or_else(ApiError::stream_not_found)?;
        let created_ns = entry.lock().created_ns();
        self.catalog
            .put_stream(config, created_ns)
            .map_err(ApiError::store_failed)
    }

    /// Gives the consumers that follow a stream going from one replica to more the stream's
    /// replicas in the catalog, as nats-server moves them: its durables, and every consumer
    /// of an interest or work-queue stream. Their state, persisted when the stream stopped,
    /// becomes the group's (the new replicas get it in the group's snapshot). One kept in
    /// memory stays R1: jetlog keeps no replicated consumer in memory.
    fn consumers_to_group(&self, config: &StreamConfig) -> Result<(), ApiError> {
        let saved = self
            .catalog
            .list_consumers(&config.name)
            .map_err(ApiError::store_failed)?;
        let every_one = config.retention != Retention::Limits;
        for (name, mut consumer, created_ns, _) in saved {
            let follows = (every_one || consumer.is_durable()) && !consumer.mem_storage;
            if follows && !consumer.is_replicated() {
                consumer.num_replicas = config.num_replicas;
                self.catalog
                    .put_consumer(&config.name, &name, &consumer, created_ns)
                    .map_err(ApiError::store_failed)?;
            }
        }
        Ok(())
    }

    /// Gives the stream's replicated consumers one replica in the catalog.
    fn consumers_to_r1(&self, stream: &str) -> Result<(), ApiError> {
        let saved = self
            .catalog
            .list_consumers(stream)
            .map_err(ApiError::store_failed)?;
        for (name, mut config, created_ns, _) in saved {
            if config.is_replicated() {
                config.num_replicas = 1;
                self.catalog
                    .put_consumer(stream, &name, &config, created_ns)
                    .map_err(ApiError::store_failed)?;
            }
        }
        Ok(())
    }
}
