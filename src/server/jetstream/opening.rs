//! Reopening the catalog's streams at start while the server already serves.
//!
//! With 100,000 streams, opening every log takes tens of seconds; clients should not wait for
//! the last stream to use the first. So the start wires every stream before opening any: its
//! channel exists and its subjects (publishes, direct gets, its consumers' pulls, acks and
//! flow control) are subscribed to it, which takes a fraction of a second. Then threads open
//! the logs, four per core since an open mostly waits for the disk, and each stream's actor
//! starts on the channel that has been filling. A publish to a stream still opening waits in
//! that channel (its publisher feels the back-pressure once it is full) rather than finding
//! no stream; an API request for it waits until it has opened, bounded by
//! [`OPEN_WAIT`]; requests that need every stream (creates, lists) wait for all.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::hooks::{consumer_hooks, stream_subscriptions, ConsumerHooks};
use super::inline::InlinePublish;
use super::{actor, lock, now_ns, JetStream, StreamEntry};
use crate::jetstream::consumer::Consumer;
use crate::jetstream::{ApiError, StreamConfig};
use crate::server::internal::{self, InternalClient};
use crate::server::outbound::{InlineTaker, InternalDelivery, Subscription};
use crate::store::SyncPolicy;

/// Threads per core that reopen streams at start.
const OPEN_THREADS_PER_CORE: usize = 4;
/// How long a request waits for a stream (or all of them) still opening at start.
pub const OPEN_WAIT: Duration = Duration::from_secs(60);

/// A stream's channel and subscriptions, made before its log is open.
pub(super) struct Wiring {
    pub tx: mpsc::Sender<InternalDelivery>,
    pub rx: mpsc::Receiver<InternalDelivery>,
    pub subs: Vec<Arc<Subscription>>,
    pub consumers: HashMap<String, ConsumerHooks>,
    /// Routed, unapplied publishes, counted from the first one (shared with the entry).
    pub queued: Arc<AtomicU64>,
    /// The inline side of the publish subscriptions (`--sync never`), bound once open.
    pub inline: Option<Arc<InlinePublish>>,
}

impl Wiring {
    /// A channel with nothing subscribed yet (a stream created through the API).
    pub fn unsubscribed() -> Self {
        let (tx, rx) = internal::channel();
        Self {
            tx,
            rx,
            subs: Vec::new(),
            consumers: HashMap::new(),
            queued: Arc::new(AtomicU64::new(0)),
            inline: None,
        }
    }

    /// Drops the subscriptions of a stream that failed to open: its subjects then have no
    /// responders instead of a channel nobody reads.
    pub fn release(self, client: &InternalClient) {
        for sub in &self.subs {
            client.unsubscribe(sub);
        }
        for (_, hooks) in self.consumers {
            hooks.release(client);
        }
    }
}

/// The streams still opening, and who waits for them.
#[derive(Default)]
pub(super) struct Opening {
    names: Mutex<HashSet<String>>,
    opened: Condvar,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl JetStream {
    /// Wires every saved stream, then starts the threads that open them and returns.
    pub(super) fn start_opening(
        self: &Arc<Self>,
        saved: Vec<(StreamConfig, i64)>,
    ) -> Result<(), String> {
        if saved.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let count = saved.len();
        let client = InternalClient::new(self.router.clone());
        let mut queue = Vec::with_capacity(count);
        for (config, created_ns) in saved {
            let wiring = self.wire(&client, &config)?;
            lock(&self.opening.names).insert(config.name.clone());
            queue.push((config, created_ns, wiring));
        }
        let queue = Arc::new(Mutex::new(queue.into_iter()));
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get() * OPEN_THREADS_PER_CORE)
            .min(count);
        let remaining = Arc::new(AtomicU64::new(threads as u64));
        let mut handles = lock(&self.opening.threads);
        for i in 0..threads {
            let js = self.clone();
            let queue = queue.clone();
            let remaining = remaining.clone();
            let handle = std::thread::Builder::new()
                .name(format!("jetstream-open-{i}"))
                .spawn(move || {
                    js.open_queued(&queue);
                    if remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                        tracing::info!(
                            "JetStream account {}: {count} streams opened in {} ms",
                            js.account_name,
                            started.elapsed().as_millis()
                        );
                    }
                })
                .map_err(|e| format!("cannot start a thread to open streams: {e}"))?;
            handles.push(handle);
        }
        Ok(())
    }

    /// The channel and subscriptions of a saved stream and its saved consumers.
    fn wire(&self, client: &InternalClient, config: &StreamConfig) -> Result<Wiring, String> {
        let mut wiring = Wiring::unsubscribed();
        let replicated = self.replicates(config);
        if matches!(self.sync, SyncPolicy::Never) && !replicated {
            wiring.inline = Some(InlinePublish::unbound(wiring.queued.clone()));
        }
        let inline = wiring
            .inline
            .clone()
            .map(|taker| taker as Arc<dyn InlineTaker>);
        // A replica takes publishes only once it leads its group.
        wiring.subs = stream_subscriptions(client, config, &wiring.tx, inline, !replicated);
        let consumers = self
            .catalog
            .list_consumers(&config.name)
            .map_err(|e| format!("cannot read the consumers of {}: {e}", config.name))?;
        for (name, consumer, _, _) in consumers {
            if consumer.is_replicated() {
                continue;
            }
            let hooks = consumer_hooks(
                client,
                &config.name,
                &name,
                consumer.deliver_subject.clone(),
                &wiring.tx,
            );
            wiring.consumers.insert(name, hooks);
        }
        Ok(wiring)
    }

    /// Reopens the stream's durable consumers where their persisted state left them.
    pub(super) fn restore_consumers(&self, entry: &StreamEntry) -> Result<(), ApiError> {
        let saved = self
            .catalog
            .list_consumers(&entry.name)
            .map_err(ApiError::store_failed)?;
        let client = InternalClient::new(self.router.clone());
        let now = now_ns();
        // A replicated consumer runs only where its stream leads (`replicated_consumers`);
        // every replica keeps its filters for the interest its retention asks about.
        if entry.replica.is_replicated() {
            entry.lock().replicate_retention();
        }
        for (name, config, created_ns, state) in saved {
            if config.is_replicated() {
                entry
                    .lock()
                    .set_consumer_interest(&name, Some(config.filters()));
                continue;
            }
            {
                let mut stream = entry.lock();
                let consumer = match &state {
                    Some(state) => Consumer::restore(
                        &entry.name,
                        &name,
                        config,
                        created_ns,
                        state,
                        stream.log(),
                        now,
                    ),
                    None => {
                        Consumer::new(&entry.name, &name, config, created_ns, stream.log(), now)
                    }
                };
                stream.insert_consumer(consumer);
            }
            // Subscribed already when the stream was wired before it opened (at start).
            if !lock(&entry.consumer_subs).contains_key(&name) {
                entry.subscribe_consumer(&name, &client);
            }
        }
        // States clamped to a log that lost its tail are written before any new message can
        // take a lost sequence (see `Consumer::restore`).
        actor::write_consumer_states(entry).map_err(ApiError::store_failed)
    }

    /// Opens streams from `queue` until it is empty or JetStream stops. A stream that cannot
    /// be opened is logged and left out, as nats-server does: the others still serve.
    fn open_queued(&self, queue: &Mutex<std::vec::IntoIter<(StreamConfig, i64, Wiring)>>) {
        loop {
            let Some((config, created_ns, wiring)) = lock(queue).next() else {
                return;
            };
            let name = config.name.clone();
            if self.stopping.load(Ordering::Relaxed) {
                wiring.release(&InternalClient::new(self.router.clone()));
            } else if let Err(e) = self.open_stream(config, created_ns, Some(wiring)) {
                tracing::error!(
                    "JetStream account {}: cannot open stream {name}: {}",
                    self.account_name,
                    e.description
                );
            }
            lock(&self.opening.names).remove(&name);
            self.opening.opened.notify_all();
        }
    }

    /// Waits until stream `name` (or, for `None`, every stream) of the catalog has been
    /// opened at start, for at most [`OPEN_WAIT`]. Returns at once when nothing is opening.
    pub(super) fn wait_opened(&self, name: Option<&str>) {
        let deadline = Instant::now() + OPEN_WAIT;
        let mut names = lock(&self.opening.names);
        loop {
            let waiting = match name {
                Some(name) => names.contains(name),
                None => !names.is_empty(),
            };
            let now = Instant::now();
            if !waiting || now >= deadline {
                return;
            }
            names = self
                .opening
                .opened
                .wait_timeout(names, deadline - now)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// Whether streams of the catalog are still opening.
    pub(super) fn still_opening(&self) -> bool {
        !lock(&self.opening.names).is_empty()
    }

    /// Waits for the threads opening streams to finish (at shutdown, after `stopping` is set,
    /// so they open nothing more).
    pub(super) fn join_openers(&self) {
        let handles = std::mem::take(&mut *lock(&self.opening.threads));
        for handle in handles {
            let _ = handle.join();
        }
    }
}
