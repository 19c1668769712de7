//! A stream's life in the registry: create (refusing overlaps and storage that is not
//! there), update, delete, and the stop at shutdown, each telling whoever waits on the
//! stream's consumers what became of them.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{actor, lock, now_ns, JetStream, StreamEntry};
use crate::jetstream::advisories::{stream_action, Lifecycle};
use crate::jetstream::consumer::Action;
use crate::jetstream::stream::Stream;
use crate::jetstream::{ApiError, StreamConfig};
use crate::protocol::Publish;
use crate::server::internal::InternalClient;
use crate::server::outbound::InternalDelivery;

impl JetStream {
    /// Creates a stream, or returns the existing one when the effective config is identical.
    pub fn create_stream(&self, mut config: StreamConfig) -> Result<Arc<StreamEntry>, ApiError> {
        // The overlap check and the stream count need every stream of the catalog open.
        self.wait_opened(None);
        if self.still_opening() {
            return Err(ApiError::temporarily_unavailable());
        }
        self.settle_mirror_direct(&mut config);
        if let Some(existing) = self.stream(&config.name) {
            if *existing.lock().config() == config {
                return Ok(existing);
            }
            return Err(ApiError::stream_name_in_use());
        }
        if config.sealed {
            return Err(ApiError::stream_invalid_config(
                "stream configuration for create can not be sealed",
            ));
        }
        if config.mirror_direct && config.mirror.is_none() {
            return Err(ApiError::stream_invalid_config(
                "stream has no mirror but does have mirror direct",
            ));
        }
        self.check_origins(&config)?;
        let existing = lock(&self.streams).len();
        self.account_limits()
            .check_stream(&config, Some(existing))?;
        self.check_overlap(&config, None)?;
        self.limits.check_reservation(&self.account_name, &config)?;
        let created_ns = now_ns() as i64;
        self.catalog
            .put_stream(&config, created_ns)
            .map_err(ApiError::store_failed)?;
        let first_seq = config.first_seq;
        let entry = self.open_stream(config, created_ns, None)?;
        if first_seq > 1 {
            // `first_seq` places a new stream's first message; later it means nothing (an
            // update may change the value, as in nats-server, without moving anything).
            entry
                .lock()
                .log_mut()
                .start_at(first_seq)
                .map_err(ApiError::store_failed)?;
        }
        self.announce(stream_action(&entry.name, Lifecycle::Created, now_ns()));
        Ok(entry)
    }

    /// Publishes a lifecycle advisory.
    pub(super) fn announce(&self, advisory: Action) {
        let mut client = InternalClient::new(self.router.clone());
        actor::perform(advisory, &mut client);
        client.flush();
    }

    /// Rejects subjects that another stream already captures.
    pub(super) fn check_overlap(
        &self,
        config: &StreamConfig,
        except: Option<&str>,
    ) -> Result<(), ApiError> {
        let index = lock(&self.stream_subjects);
        let overlaps = config.subjects.iter().any(|subject| {
            index
                .overlapping(subject)
                .iter()
                .any(|owner| Some(owner.as_str()) != except)
        });
        match overlaps {
            true => Err(ApiError::stream_subject_overlap()),
            false => Ok(()),
        }
    }

    /// Moves stream `name` in the subject index from its `old` subjects to its `new` ones.
    pub(super) fn index_subjects(&self, name: &str, old: &[String], new: &[String]) {
        let mut index = lock(&self.stream_subjects);
        for subject in old {
            index.remove(subject, &name.to_string());
        }
        for subject in new {
            index.insert(subject, name.to_string());
        }
    }

    /// Applies a checked config update to a running stream.
    pub fn update_stream(&self, mut config: StreamConfig) -> Result<Arc<StreamEntry>, ApiError> {
        self.wait_opened(None);
        if self.still_opening() {
            return Err(ApiError::temporarily_unavailable());
        }
        let entry = self
            .stream(&config.name)
            .ok_or_else(ApiError::stream_not_found)?;
        self.check_stream_update(&entry, &mut config)?;
        self.apply_stream_update(&entry, config, None)?;
        Ok(entry)
    }

    /// Whether `entry` may take `config`, as settled for this server (a replicated
    /// stream's leader asks before it proposes the change).
    pub(super) fn check_stream_update(
        &self,
        entry: &StreamEntry,
        config: &mut StreamConfig,
    ) -> Result<(), ApiError> {
        let old = entry.lock().config().clone();
        self.settle_mirror_direct(config);
        old.check_update(config)?;
        self.check_origins(config)?;
        self.account_limits().check_stream(config, None)?;
        entry.lock().check_consumer_limits(&old, config)?;
        self.check_overlap(config, Some(&config.name))?;
        self.limits.check_reservation(&self.account_name, config)
    }

    /// Gives a running stream its new config: the catalog, the store's limits, the
    /// subscriptions. A replica passes the index of the group's entry that carries the
    /// change (see `replicated_stream_ops`): the store is made durable before the catalog
    /// changes, so that entries before this one never apply again under the new config,
    /// and again with the entry as its checkpoint after the change.
    pub(super) fn apply_stream_update(
        &self,
        entry: &Arc<StreamEntry>,
        config: StreamConfig,
        index: Option<u64>,
    ) -> Result<(), ApiError> {
        let created_ns = entry.lock().created_ns();
        let holds_before = super::origin_hold::holds_of(entry);
        if index.is_some() {
            entry
                .lock()
                .log_mut()
                .sync()
                .map_err(ApiError::store_failed)?;
        }
        self.catalog
            .put_stream(&config, created_ns)
            .map_err(ApiError::store_failed)?;
        self.limits.reserve(&self.account_name, &config);
        {
            let mut stream = entry.lock();
            let old_subjects = stream.config().subjects.clone();
            stream.update(config)?;
            self.index_subjects(&entry.name, &old_subjects, &stream.config().subjects);
            // A max_age set now wants ticks that nothing else would ask for.
            entry.want_ticks_if_needed(&stream, stream.next_wake_ns());
            if let Some(index) = index {
                stream.log_mut().set_applied(index);
                stream.log_mut().sync().map_err(ApiError::store_failed)?;
            }
            entry.account(&stream);
        }
        self.resubscribe(entry);
        self.drop_holds(holds_before, &super::origin_hold::holds_of(entry));
        // A replicated stream's change is announced once, by its leader.
        if !entry.replica.is_replicated() || entry.replica.leading() {
            self.announce(stream_action(&entry.name, Lifecycle::Updated, now_ns()));
        }
        Ok(())
    }

    /// Deletes a stream and its files.
    pub fn delete_stream(&self, name: &str) -> Result<(), ApiError> {
        self.wait_opened(Some(name));
        let entry = lock(&self.streams)
            .remove(name)
            .ok_or_else(ApiError::stream_not_found)?;
        let holds = super::origin_hold::holds_of(&entry);
        self.stop(&entry);
        // As nats-server does, pull requests still waiting hear `409 Consumer Deleted`
        // rather than waiting out their expiry for a stream that is gone.
        self.tell_waiting(&entry, |stream, actions| {
            let names: Vec<String> = stream.consumers().keys().cloned().collect();
            for consumer in names {
                stream.remove_consumer(&consumer, actions);
            }
        });
        let (storage, subjects) = {
            let stream = entry.lock();
            (stream.config().storage, stream.config().subjects.clone())
        };
        self.index_subjects(name, &subjects, &[]);
        let accounted = entry.accounted.swap(0, Ordering::Relaxed);
        self.limits.moved(storage, accounted, 0);
        self.limits.release(&self.account_name, name);
        self.catalog
            .delete_stream(name)
            .map_err(ApiError::store_failed)?;
        self.announce(stream_action(name, Lifecycle::Deleted, now_ns()));
        self.drop_holds(holds, &[]);
        // A memory stream never made a directory, so there may be nothing to remove.
        let dir = self.stream_dir(name);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(ApiError::store_failed(
                format!("cannot remove {}: {e}", dir.display()),
            )),
            _ => Ok(()),
        }
    }

    /// Unsubscribes a stream and waits for its actor to finish what it had queued.
    pub(super) fn stop(&self, entry: &StreamEntry) {
        entry.stopping.store(true, Ordering::Release);
        let client = InternalClient::new(self.router.clone());
        for sub in lock(&entry.subs).drain(..) {
            client.unsubscribe(&sub);
        }
        let names: Vec<String> = lock(&entry.consumer_subs).keys().cloned().collect();
        for name in names {
            entry.unsubscribe_consumer(&name, &client);
        }
        let stop = InternalDelivery {
            tag: actor::TAG_STOP,
            msg: Publish::default(),
            origin: None,
        };
        let _ = entry.tx.blocking_send(stop);
        if let Some(task) = lock(&entry.task).take() {
            task.join();
        }
    }

    /// Sends what `notify` makes of a stopped stream's consumers (statuses to waiting pull
    /// requests), through a client of its own: the actor is gone by then.
    fn tell_waiting(
        &self,
        entry: &StreamEntry,
        notify: impl FnOnce(&mut Stream, &mut Vec<Action>),
    ) {
        let mut actions = Vec::new();
        notify(&mut entry.lock(), &mut actions);
        let mut client = InternalClient::new(self.router.clone());
        for action in actions {
            actor::perform(action, &mut client);
        }
        client.flush();
    }

    /// Stops every stream actor, so everything acknowledged has been synced, and tells waiting
    /// pull requests `409 Server Shutdown` before the connections close.
    pub fn shutdown(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        self.join_openers();
        for entry in self.streams() {
            self.stop(&entry);
            self.tell_waiting(&entry, |stream, actions| stream.shutdown_consumers(actions));
            // The clean-shutdown summary lets the next start skip scanning sealed segments.
            if let Err(err) = entry.lock().log_mut().close_in_place() {
                tracing::warn!(stream = %entry.name, error = %err, "stream not closed cleanly");
            }
        }
    }
}
