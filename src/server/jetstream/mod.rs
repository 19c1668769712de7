//! JetStream inside the server: the registry of streams, the API thread, and each stream's
//! actor thread, wired to the router through internal subscriptions.
//!
//! Streams live in `<store_dir>/streams/<name>/` (names are validated so they cannot leave
//! that directory); their configurations live in the metadata catalog, written durably before
//! the API answers. On start every stream in the catalog is reopened.

mod account_limits;
mod actor;
mod api;
mod api_account;
mod api_consumer_admin;
mod api_consumers;
mod audit;
mod catalog;
mod catalog_consumers;
pub mod clock;
mod cluster_api;
mod cluster_local;
mod cluster_placement;
mod cluster_replicated;
mod direct;
mod direct_batch;
mod hooks;
mod inline;
mod lifecycle;
mod limits;
mod mirror_pump;
mod opening;
mod origin_hold;
mod origins;
pub mod pool;
mod replica_moves;
mod replica_sync;
mod replicated;
mod replicated_consumers;
mod replicated_stream_ops;
mod report;
mod restore;
mod restore_cluster;
mod snapshot;
mod source_pump;
mod timer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;

use super::internal::{self, InternalClient};
use super::outbound::{InternalDelivery, InternalSink, Subscription};
use super::router::Router;
use crate::jetstream::api_types::json_string;
use crate::jetstream::stream::Stream;
use crate::jetstream::{ApiError, StreamConfig};
use crate::protocol::pattern_index::PatternIndex;
use crate::protocol::Publish;
use crate::store::SyncPolicy;
use catalog::Catalog;
use hooks::{consumer_hooks, ConsumerHooks};

pub use account_limits::AccountLimits;
pub use api::API_EXCLUDED;
pub use limits::StorageLimits;
pub use origins::OriginResolver;
pub use replica_sync::{SyncLink, SYNC_OP};
pub use replicated::{propose_rounds, EntryHost};
pub use replicated_stream_ops::CatalogUpdate;
pub use report::{JetStreamReport, StreamReport};

/// What the API thread's subscription is tagged with.
const TAG_API: u64 = 0;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub use clock::now_ns;

/// One stream as the server runs it.
pub struct StreamEntry {
    name: String,
    /// The name again, shared with the timer's list of streams that want ticks.
    tick_name: Arc<str>,
    /// Whether the stream is on that list (changed only under the stream's lock).
    ticking: std::sync::atomic::AtomicBool,
    stream: Mutex<Stream>,
    /// Subscriptions on the stream's subjects, and on DIRECT.GET when allowed (for a mirror
    /// with `mirror_direct`, also its origin's, once it has caught up: see `mirror_pump`).
    subs: Mutex<Vec<Arc<Subscription>>>,
    mirror_direct_joined: std::sync::atomic::AtomicBool,
    /// Each consumer's subscriptions and its watch on its deliver subject.
    consumer_subs: Mutex<std::collections::HashMap<String, ConsumerHooks>>,
    tx: mpsc::Sender<InternalDelivery>,
    /// The actor's task on the pool, until the stream stops.
    task: Mutex<Option<Arc<pool::ActorTask>>>,
    catalog: Arc<Catalog>,
    /// The actor's state; whoever holds it runs a round (the actor, or an inline publish).
    actor: Mutex<actor::ActorState>,
    /// Publishes routed to this stream and not yet applied: an inline publish may only run
    /// when it is the one, or it could overtake an earlier one.
    queued: Arc<AtomicU64>,
    /// Whether publishes may be stored on the publisher's task (`--sync never` only: a
    /// round there never waits for a disk).
    inline_publish: bool,
    /// Set when the stream stops; inline publishes then go to the (closing) actor.
    stopping: std::sync::atomic::AtomicBool,
    /// The server-wide storage limits, and this stream's bytes as last counted into them.
    limits: Arc<StorageLimits>,
    accounted: AtomicU64,
    /// The JetStream timer's alarm, told of this stream's deadlines after each round.
    alarm: Arc<timer::Alarm>,
    /// What a PubAck says before `seq`: the stream name as JSON, and the domain if any
    /// (`"S","domain":"hub"`, nats-server's field order). Built once, not per round.
    pub_ack_prefix: String,
    /// A replicated stream's group (see `replicated`).
    replica: replicated::ReplicaSlot,
}

impl StreamEntry {
    /// The stream state; a std mutex because it is only held by threads, never across awaits.
    pub fn lock(&self) -> MutexGuard<'_, Stream> {
        lock(&self.stream)
    }

    /// Counts this stream's size change into the server-wide usage (only where a limit is
    /// set for its storage type, so unlimited servers pay nothing).
    pub fn account(&self, stream: &Stream) {
        let storage = stream.config().storage;
        if self.limits.max(storage).is_none() {
            return;
        }
        let bytes = stream.log().state(false).map(|s| s.bytes).unwrap_or(0);
        let before = self.accounted.swap(bytes, Ordering::Relaxed);
        self.limits.moved(storage, before, bytes);
    }

    /// Puts the stream on the timer's list if what it holds now wants ticks. `stream` is this
    /// entry's state, locked by the caller; the timer takes it off under the same lock.
    /// `deadline` is `stream.next_wake_ns()`, which the caller has at hand.
    fn want_ticks_if_needed(&self, stream: &Stream, deadline: Option<u64>) {
        debug_assert_eq!(deadline, stream.next_wake_ns());
        let wants = deadline.is_some() || stream.needs_ticks();
        if wants && !self.ticking.swap(true, Ordering::Relaxed) {
            self.alarm.want_ticks(&self.tick_name);
        }
    }

    fn actor_state(&self) -> MutexGuard<'_, actor::ActorState> {
        lock(&self.actor)
    }

    /// The actor (or an inline round) applied `n` routed publishes.
    fn applied_publishes(&self, n: usize) {
        if self.inline_publish && n > 0 {
            let before = self.queued.fetch_sub(n as u64, Ordering::AcqRel);
            debug_assert!(before >= n as u64, "more publishes applied than routed");
        }
    }

    /// Subscribes consumer `name`'s pull, ack and flow-control subjects to this stream's actor,
    /// and watches its deliver subject for subscribers. Called again after an update, whose
    /// deliver subject may differ.
    fn subscribe_consumer(&self, name: &str, client: &InternalClient) {
        let deliver_subject = self
            .lock()
            .consumers()
            .get(name)
            .and_then(|c| c.config.deliver_subject.clone());
        let hooks = consumer_hooks(client, &self.name, name, deliver_subject, &self.tx);
        if let Some(old) = lock(&self.consumer_subs).insert(name.to_string(), hooks) {
            old.release(client);
        }
    }

    fn unsubscribe_consumer(&self, name: &str, client: &InternalClient) {
        if let Some(hooks) = lock(&self.consumer_subs).remove(name) {
            hooks.release(client);
        }
    }

    /// Deletes a consumer: its waiting requests are told, its subscriptions and metadata go.
    pub fn delete_consumer(&self, name: &str, client: &mut InternalClient) -> bool {
        let mut actions = Vec::new();
        let removed = self.lock().remove_consumer(name, &mut actions);
        if removed.is_some() {
            actions.push(crate::jetstream::advisories::consumer_action(
                &self.name,
                name,
                crate::jetstream::advisories::Lifecycle::Deleted,
                now_ns(),
            ));
        }
        self.unsubscribe_consumer(name, client);
        for action in actions {
            actor::perform(action, client);
        }
        client.flush();
        if let Err(err) = self.catalog.delete_consumer(&self.name, name) {
            tracing::warn!(stream = %self.name, consumer = name, error = %err, "cannot delete consumer metadata");
        }
        removed.is_some()
    }

    /// Asks the actor to run a tick now (after an API change that may allow deliveries).
    pub fn kick(&self) {
        let _ = self.tx.try_send(InternalDelivery {
            tag: actor::TAG_TICK,
            msg: Publish::default(),
            origin: None,
        });
    }
}

/// All of JetStream's state.
pub struct JetStream {
    router: Arc<Router>,
    store_dir: PathBuf,
    sync: SyncPolicy,
    server_name: String,
    catalog: Arc<Catalog>,
    streams: Mutex<BTreeMap<String, Arc<StreamEntry>>>,
    /// Streams of the catalog still being opened at start, and the threads opening them.
    opening: opening::Opening,
    /// Every stream's subjects, by stream name: what a create checks for overlaps.
    stream_subjects: Mutex<PatternIndex<String>>,
    api_total: AtomicU64,
    api_errors: AtomicU64,
    stopping: std::sync::atomic::AtomicBool,
    limits: Arc<StorageLimits>,
    /// The JetStream domain, named in PubAcks and account info.
    domain: Option<String>,
    /// Wakes the timer thread when a stream's next deadline comes sooner than it planned.
    alarm: Arc<timer::Alarm>,
    /// `jetstream { strict }`: API requests with unknown fields are refused.
    strict: bool,
    /// The account's own JetStream limits (its JWT may change them).
    account: std::sync::RwLock<AccountLimits>,
    /// The account's name.
    account_name: String,
    /// The workers every stream's actor runs on (shared by all accounts).
    pool: Arc<pool::ActorPool>,
    /// This JetStream itself, for work it hands to threads of its own (a restore).
    me: std::sync::OnceLock<std::sync::Weak<JetStream>>,
    /// Whether the server is in a cluster, and its clustered JetStream once started.
    clustered: bool,
    cluster: std::sync::OnceLock<Arc<crate::server::cluster_js::ClusterJs>>,
    /// How a source in another account finds its origin (set by the accounts at start).
    origin_resolver: std::sync::OnceLock<origins::OriginResolver>,
}

/// What JetStream is told besides where it stores: its limits, domain and decoding rule.
pub struct JetStreamSettings {
    /// The workers stream actors run on.
    pub pool: Arc<pool::ActorPool>,
    /// The account's name, which its stream reservations are kept under.
    pub account_name: String,
    /// The account's storage limits, within the server's.
    pub limits: Arc<StorageLimits>,
    pub account: AccountLimits,
    pub domain: Option<String>,
    pub strict: bool,
    /// The server is in a cluster: the meta group decides what exists (see `cluster_api`),
    /// and until this JetStream has joined it, it answers no request.
    pub clustered: bool,
}

impl JetStream {
    /// The account's limits now.
    pub(super) fn account_limits(&self) -> AccountLimits {
        self.account
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// New limits for the account (its JWT was updated): later creates and publishes are held
    /// to them; what exists already is kept.
    pub fn set_account_limits(&self, limits: AccountLimits) {
        self.limits.set(limits.max_memory, limits.max_file);
        *self.account.write().unwrap_or_else(|p| p.into_inner()) = limits;
    }

    /// Opens the catalog, reopens every stream in it, and starts the API thread.
    pub fn start(
        router: Arc<Router>,
        store_dir: &Path,
        sync: SyncPolicy,
        server_name: String,
        settings: JetStreamSettings,
    ) -> Result<Arc<Self>, String> {
        let JetStreamSettings {
            pool,
            account_name,
            limits,
            account,
            domain,
            strict,
            clustered,
        } = settings;
        let catalog = Arc::new(
            Catalog::open(&store_dir.join("meta"))
                .map_err(|e| format!("cannot open metadata: {e}"))?,
        );
        let js = Arc::new(Self {
            router,
            store_dir: store_dir.to_path_buf(),
            sync,
            server_name,
            catalog,
            streams: Mutex::new(BTreeMap::new()),
            opening: opening::Opening::default(),
            stream_subjects: Mutex::new(PatternIndex::default()),
            api_total: AtomicU64::new(0),
            api_errors: AtomicU64::new(0),
            stopping: std::sync::atomic::AtomicBool::new(false),
            limits,
            domain,
            alarm: Arc::new(timer::Alarm::default()),
            strict,
            account: std::sync::RwLock::new(account),
            account_name,
            pool,
            me: std::sync::OnceLock::new(),
            clustered,
            cluster: std::sync::OnceLock::new(),
            origin_resolver: std::sync::OnceLock::new(),
        });
        let _ = js.me.set(Arc::downgrade(&js));
        let saved = js
            .catalog
            .list_streams()
            .map_err(|e| format!("cannot read metadata: {e}"))?;
        js.start_opening(saved)?;
        let (tx, rx) = internal::channel();
        let client = InternalClient::new(js.router.clone());
        let sink = InternalSink {
            tag: TAG_API,
            tx,
            exclude: API_EXCLUDED,
            inline: None,
            origin: true,
        };
        client.subscribe("$JS.API.>", None, sink);
        let api = js.clone();
        std::thread::Builder::new()
            .name("jetstream-api".into())
            .spawn(move || api.run_api(rx, client))
            .map_err(|e| format!("cannot start the API thread: {e}"))?;
        let timer = js.clone();
        std::thread::Builder::new()
            .name("jetstream-timer".into())
            .spawn(move || timer::run(&timer))
            .map_err(|e| format!("cannot start the timer thread: {e}"))?;
        Ok(js)
    }

    fn stream_dir(&self, name: &str) -> PathBuf {
        debug_assert!(crate::jetstream::stream_config::is_valid_name(name));
        self.store_dir.join("streams").join(name)
    }

    /// The stream called `name`; one still opening at start is waited for (bounded).
    pub fn stream(&self, name: &str) -> Option<Arc<StreamEntry>> {
        if let Some(entry) = lock(&self.streams).get(name) {
            return Some(entry.clone());
        }
        self.wait_opened(Some(name));
        lock(&self.streams).get(name).cloned()
    }

    /// The stream called `name` if it is open now (no wait for one still opening at start).
    pub(super) fn stream_if_open(&self, name: &str) -> Option<Arc<StreamEntry>> {
        lock(&self.streams).get(name).cloned()
    }

    /// The streams open now, without waiting for those still opening at start.
    pub fn open_streams(&self) -> Vec<Arc<StreamEntry>> {
        lock(&self.streams).values().cloned().collect()
    }

    /// Every stream; at start, once all have opened (waited for, bounded).
    pub fn streams(&self) -> Vec<Arc<StreamEntry>> {
        self.wait_opened(None);
        lock(&self.streams).values().cloned().collect()
    }

    /// Opens a stream's log, subscribes it and starts its actor.
    fn open_stream(
        &self,
        config: StreamConfig,
        created_ns: i64,
        wiring: Option<opening::Wiring>,
    ) -> Result<Arc<StreamEntry>, ApiError> {
        let name = config.name.clone();
        self.limits.reserve(&self.account_name, &config);
        let wiring = wiring.unwrap_or_else(opening::Wiring::unsubscribed);
        let replicated = self.replicates(&config);
        // A replica's store goes back to what its group knows it applied.
        let rewound = match replicated {
            true => crate::jetstream::replica::rewind_store(&self.stream_dir(&name), &config),
            false => Ok(Default::default()),
        };
        let stream = match rewound.and_then(|_| {
            Stream::open(
                &self.stream_dir(&name),
                config,
                created_ns,
                self.sync,
                now_ns(),
            )
        }) {
            Ok(stream) => stream,
            Err(err) => {
                wiring.release(&InternalClient::new(self.router.clone()));
                self.limits.release(&self.account_name, &name);
                return Err(err);
            }
        };
        let early = !wiring.subs.is_empty() || !wiring.consumers.is_empty();
        let entry = Arc::new(StreamEntry {
            tick_name: Arc::from(name.as_str()),
            ticking: std::sync::atomic::AtomicBool::new(false),
            name: name.clone(),
            stream: Mutex::new(stream),
            subs: Mutex::new(wiring.subs),
            mirror_direct_joined: std::sync::atomic::AtomicBool::new(false),
            consumer_subs: Mutex::new(wiring.consumers),
            tx: wiring.tx,
            task: Mutex::new(None),
            catalog: self.catalog.clone(),
            actor: Mutex::new(actor::ActorState::new(InternalClient::deferred(
                self.router.clone(),
            ))),
            queued: wiring.queued,
            inline_publish: matches!(self.sync, SyncPolicy::Never) && !replicated,
            stopping: std::sync::atomic::AtomicBool::new(false),
            limits: self.limits.clone(),
            accounted: AtomicU64::new(0),
            alarm: self.alarm.clone(),
            pub_ack_prefix: match &self.domain {
                Some(domain) => {
                    format!("{},\"domain\":{}", json_string(&name), json_string(domain))
                }
                None => json_string(&name),
            },
            replica: replicated::ReplicaSlot::new(replicated),
        });
        entry.account(&entry.lock());
        match (early, &wiring.inline) {
            (true, Some(taker)) => taker.bind(&entry),
            (true, None) => {}
            (false, _) => self.resubscribe(&entry),
        }
        if let Err(err) = self.restore_consumers(&entry) {
            // Nothing will read the channel: its subjects go back to having no responders.
            let client = InternalClient::new(self.router.clone());
            for sub in lock(&entry.subs).drain(..) {
                client.unsubscribe(&sub);
            }
            for (_, hooks) in lock(&entry.consumer_subs).drain() {
                hooks.release(&client);
            }
            self.limits.release(&self.account_name, &name);
            return Err(err);
        }
        let task = self.pool.spawn(entry.clone(), wiring.rx);
        *lock(&entry.task) = Some(task);
        self.index_subjects(&name, &[], &entry.lock().config().subjects);
        lock(&self.streams).insert(name, entry.clone());
        // Only once the registry has it, and whatever the flag says: a timer pass that finds
        // a name on its list but no open stream forgets the name without clearing the flag
        // (an actor round may have set it already), and the flag would then keep the stream
        // off the list for good (a TTL due after a restart was never expired: CI found it).
        let stream = entry.lock();
        let deadline = stream.next_wake_ns();
        if deadline.is_some() || stream.needs_ticks() {
            entry.ticking.store(true, Ordering::Relaxed);
            self.alarm.want_ticks(&entry.tick_name);
        }
        if let Some(at) = deadline {
            self.alarm.schedule(at);
        }
        drop(stream);
        Ok(entry)
    }

    /// A handle on this JetStream for a thread that must not keep it alive.
    fn handle(&self) -> std::sync::Weak<JetStream> {
        self.me.get().cloned().unwrap_or_default()
    }

    /// The JetStream domain, if one is set.
    pub fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }

    /// The server-wide storage limits and usage.
    pub fn limits(&self) -> &StorageLimits {
        &self.limits
    }

    fn run_api(&self, mut rx: mpsc::Receiver<InternalDelivery>, mut client: InternalClient) {
        while let Some(request) = rx.blocking_recv() {
            // As nats-server: a request with no reply subject is carried out all the same
            // (and audited); only the answer has nowhere to go.
            let subject = String::from_utf8_lossy(&request.msg.subject).into_owned();
            let routed = match self.clustered {
                false => cluster_api::Route::Local,
                true => cluster_api::route(
                    self,
                    &subject,
                    &request.msg.payload,
                    request.msg.reply.clone(),
                ),
            };
            let (body, failed) = match routed {
                cluster_api::Route::Local => api::handle(
                    self,
                    &subject,
                    request.msg.headers.as_deref(),
                    &request.msg.payload,
                ),
                cluster_api::Route::Answered(kind, reply) => api::encode(kind, reply),
                cluster_api::Route::Ignore => continue,
                // Answered by a task; counted here, not audited (see docs/clustering.md).
                cluster_api::Route::Deferred => {
                    self.api_total.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            self.api_total.fetch_add(1, Ordering::Relaxed);
            if failed {
                self.api_errors.fetch_add(1, Ordering::Relaxed);
            }
            let audit = (client.has_interest(audit::AUDIT_SUBJECT)
                && audit::audited(&subject, failed))
            .then(|| {
                audit::Answered {
                    server: &self.server_name,
                    domain: self.domain(),
                    requester: request.origin.as_deref(),
                    subject: &subject,
                    request: &request.msg.payload,
                    response: &body,
                }
                .body(now_ns() as i64)
            });
            if let Some(reply) = request.msg.reply {
                client.queue_publish(reply, None, body.into());
            }
            if let Some(audit) = audit {
                client.queue_publish(audit::AUDIT_SUBJECT.into(), None, audit.into());
            }
            client.flush();
        }
    }
}
