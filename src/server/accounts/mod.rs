//! Accounts: isolated tenants, each with its own subject space (a router of its own) and, where
//! enabled, its own JetStream (streams, consumers, API, store directory). Nothing crosses
//! between accounts except through an export taken up by an import (`imports`).
//!
//! Configurations without accounts run every client in the global account `$G`, which then has
//! JetStream (when the server has it) and keeps the store directory's top level, so a store
//! written before accounts existed opens as `$G` unchanged. Other accounts store under
//! `<store_dir>/accounts/<name>/`.

mod imports;
mod js_disabled;
mod js_origins;
mod responses;
pub mod settings;
mod subject_map;
mod update;
mod wiring;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use imports::Target;
use settings::DEFAULT_SYSTEM_ACCOUNT;
pub use settings::{AccountSettings, GLOBAL_ACCOUNT};
use subject_map::SubjectMap;
use wiring::Wired;

use super::jetstream::{self, JetStream, StorageLimits};
use super::router::Router;
use super::ServerConfig;

/// One tenant.
pub struct Account {
    pub name: String,
    pub router: Arc<Router>,
    /// `None` when JetStream is not enabled for the account.
    pub jetstream: Option<Arc<JetStream>>,
}

/// What the accounts are now: they change when an account JWT is updated.
struct Registry {
    by_name: BTreeMap<String, Arc<Account>>,
    settings: Vec<AccountSettings>,
    /// The subscriptions of every import, redone when an account changes.
    imports: Vec<Wired>,
    /// The `$JS.API` responder of each account without JetStream.
    js_disabled: HashMap<String, Wired>,
}

/// What a new account's JetStream is made with.
struct JetStreamPlan {
    enabled: bool,
    store_dir: PathBuf,
    sync: crate::store::SyncPolicy,
    server_name: String,
    /// The server-wide storage limits every account's sit within.
    limits: Arc<StorageLimits>,
    domain: Option<String>,
    strict: bool,
    /// The workers every account's stream actors run on.
    pool: Option<Arc<jetstream::pool::ActorPool>>,
    /// The cluster every account's interest is announced to.
    cluster: Option<Arc<crate::server::routes::Cluster>>,
    /// Every account's JetStream, for sources that read another account's streams.
    directory: js_origins::Directory,
}

/// A connection counted in its account's open connections; the count goes down when it is
/// dropped.
pub struct ConnectionSlot {
    count: Arc<AtomicU64>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Every account of the server, by name.
pub struct Accounts {
    /// Open connections per account, for accounts whose JWT limits them.
    connections: std::sync::Mutex<HashMap<String, Arc<AtomicU64>>>,
    registry: RwLock<Registry>,
    global: Arc<Account>,
    system: String,
    plan: JetStreamPlan,
}

/// The store directory of an account: the top level for `$G`, else a directory under
/// `accounts/` whose name spells the account's in safe characters (`%XX` for the others).
pub fn store_dir_of(store_dir: &Path, account: &str) -> PathBuf {
    if account == GLOBAL_ACCOUNT {
        return store_dir.to_path_buf();
    }
    let mut name = String::with_capacity(account.len());
    for b in account.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            name.push(char::from(b));
        } else {
            name.push_str(&format!("%{b:02X}"));
        }
    }
    store_dir.join("accounts").join(name)
}

/// Whether an import's subjects can be mapped onto each other in the direction messages
/// take: exporter to importer for streams, importer to exporter for services.
pub fn check_mapping(subject: &str, local: &str, service: bool) -> Result<(), String> {
    let mapped = match service {
        true => SubjectMap::new(local, subject),
        false => SubjectMap::new(subject, local),
    };
    mapped.map(|_| ()).map_err(|e| e.to_string())
}

impl Accounts {
    /// Creates every account of `configured` (and `$G` and the system account), starts
    /// JetStream for those that have it, and wires imports. The accounts were checked when the
    /// configuration was read; an inconsistency found here is still an error, never a panic.
    pub(super) fn start(
        config: &ServerConfig,
        configured: &[AccountSettings],
        system: Option<String>,
        server_name: &str,
        sync: crate::store::SyncPolicy,
        cluster: Option<Arc<crate::server::routes::Cluster>>,
    ) -> Result<Self, String> {
        settings::check(configured).map_err(|e| e.to_string())?;
        let mut all: Vec<AccountSettings> = configured.to_vec();
        let system = system.unwrap_or_else(|| DEFAULT_SYSTEM_ACCOUNT.to_string());
        let only_global = configured.is_empty() && config.operator.is_none();
        for implicit in [GLOBAL_ACCOUNT, DEFAULT_SYSTEM_ACCOUNT] {
            if !all.iter().any(|a| a.name == implicit) {
                all.push(AccountSettings {
                    name: implicit.to_string(),
                    // Without configured accounts, the global account is the server's one.
                    jetstream: (implicit == GLOBAL_ACCOUNT && only_global)
                        .then(|| config.account_limits.clone()),
                    ..AccountSettings::default()
                });
            }
        }
        if !all.iter().any(|a| a.name == system) {
            return Err(settings::AccountsError::UnknownSystemAccount(system).to_string());
        }
        let plan = JetStreamPlan {
            enabled: config.jetstream,
            store_dir: config.store_dir.clone(),
            sync,
            server_name: server_name.to_string(),
            limits: Arc::new(StorageLimits::new(
                config.max_memory_store,
                config.max_file_store,
            )),
            domain: config.js_domain.clone(),
            strict: config.js_strict,
            cluster,
            directory: Default::default(),
            pool: match config.jetstream {
                true => Some(
                    jetstream::pool::ActorPool::start()
                        .map_err(|e| format!("cannot start the stream workers: {e}"))?,
                ),
                false => None,
            },
        };
        let mut registry = Registry {
            by_name: BTreeMap::new(),
            settings: all.clone(),
            imports: Vec::new(),
            js_disabled: HashMap::new(),
        };
        for account in &all {
            let entry = plan.create(account, &system, &mut registry.js_disabled)?;
            registry.by_name.insert(account.name.clone(), entry);
        }
        registry.imports = wiring::wire_all(&registry.by_name, &all, &system)?;
        if !only_global {
            report(config, &registry.by_name, &system);
        }
        let global = registry
            .by_name
            .get(GLOBAL_ACCOUNT)
            .cloned()
            .ok_or_else(|| "the global account is missing".to_string())?;
        Ok(Self {
            connections: std::sync::Mutex::new(HashMap::new()),
            registry: RwLock::new(registry),
            global,
            system,
            plan,
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.registry.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a new connection of `account`, unless it already has `max` open.
    pub fn admit(&self, account: &str, max: Option<u64>) -> Option<ConnectionSlot> {
        let count = {
            let mut all = self.connections.lock().unwrap_or_else(|p| p.into_inner());
            all.entry(account.to_string()).or_default().clone()
        };
        let limit = max.unwrap_or(u64::MAX);
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()?;
        Some(ConnectionSlot { count })
    }

    /// The account of clients that name none.
    pub fn global(&self) -> &Arc<Account> {
        &self.global
    }

    pub fn get(&self, name: &str) -> Option<Arc<Account>> {
        self.read().by_name.get(name).cloned()
    }

    /// Every account, by name.
    pub fn all(&self) -> Vec<Arc<Account>> {
        self.read().by_name.values().cloned().collect()
    }

    /// What the configuration (or the account's JWT) says of an account.
    pub fn settings(&self, name: &str) -> Option<AccountSettings> {
        self.read()
            .settings
            .iter()
            .find(|a| a.name == name)
            .cloned()
    }

    pub fn system_account(&self) -> &str {
        &self.system
    }

    /// The accounts with JetStream, by name.
    pub fn jetstreams(&self) -> Vec<(String, Arc<JetStream>)> {
        self.all()
            .into_iter()
            .filter_map(|a| a.jetstream.clone().map(|js| (a.name.clone(), js)))
            .collect()
    }
}

impl JetStreamPlan {
    /// A new account: its router, its JetStream (or the responder that says it has none).
    fn create(
        &self,
        account: &AccountSettings,
        system: &str,
        js_disabled: &mut HashMap<String, Wired>,
    ) -> Result<Arc<Account>, String> {
        let router = Arc::new(Router::default());
        if let Some(cluster) = &self.cluster {
            router.join_cluster(&account.name, cluster.clone());
        }
        let js_limits = account
            .jetstream
            .clone()
            .filter(|_| self.enabled && account.name != system);
        let jetstream = match js_limits {
            Some(limits) => {
                let js = self.start(&account.name, &router, limits)?;
                js.set_origin_resolver(js_origins::resolver(
                    account.imports.clone(),
                    self.directory.clone(),
                ));
                self.directory
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(account.name.clone(), Arc::downgrade(&js));
                Some(js)
            }
            None => None,
        };
        if jetstream.is_none() && self.enabled && account.name != system {
            js_disabled.insert(account.name.clone(), disabled_responder(&router));
        }
        Ok(Arc::new(Account {
            name: account.name.clone(),
            router,
            jetstream,
        }))
    }

    /// Starts an account's JetStream on its store directory.
    fn start(
        &self,
        name: &str,
        router: &Arc<Router>,
        limits: crate::server::AccountLimits,
    ) -> Result<Arc<JetStream>, String> {
        let pool = self
            .pool
            .clone()
            .ok_or_else(|| "JetStream is off on this server".to_string())?;
        JetStream::start(
            router.clone(),
            &store_dir_of(&self.store_dir, name),
            self.sync,
            self.server_name.clone(),
            jetstream::JetStreamSettings {
                pool,
                account_name: name.to_string(),
                limits: Arc::new(StorageLimits::for_account(
                    self.limits.clone(),
                    limits.max_memory,
                    limits.max_file,
                )),
                account: limits,
                domain: self.domain.clone(),
                strict: self.strict,
                clustered: self.cluster.is_some(),
            },
        )
    }
}

/// The `$JS.API` responder of an account without JetStream.
fn disabled_responder(router: &Arc<Router>) -> Wired {
    let forward = Arc::new(js_disabled::JetStreamDisabled {
        account: Target::new(router),
    });
    wiring::Wired::new(router, wiring::forwarding(js_disabled::JS_API_ALL, forward))
}

/// Logs the accounts served, and warns of streams at the top of the store directory: they are
/// the global account's (a store from before accounts), which has no JetStream once accounts
/// are configured, so nothing would serve them.
fn report(config: &ServerConfig, by_name: &BTreeMap<String, Arc<Account>>, system: &str) {
    let names: Vec<String> = by_name
        .values()
        .map(|a| match (&a.jetstream, a.name == system) {
            (_, true) => format!("{} (system)", a.name),
            (Some(_), false) => format!("{} (JetStream)", a.name),
            (None, false) => a.name.clone(),
        })
        .collect();
    tracing::info!("Accounts: {}", names.join(", "));
    let top = &config.store_dir;
    if config.jetstream && top.join("meta").exists() {
        tracing::warn!(
            "{} holds streams of the global account $G, which has no JetStream once accounts \
             are configured: to give them to an account, stop the server and move meta/ and \
             streams/ into {}",
            top.display(),
            top.join("accounts").join("<name>").display()
        );
    }
}
