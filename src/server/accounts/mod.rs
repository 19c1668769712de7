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
mod responses;
pub mod settings;
mod subject_map;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use bytes::Bytes;

use imports::{ServiceImport, StreamImport, Target};
use responses::ResponseTable;
pub use settings::{AccountSettings, GLOBAL_ACCOUNT};
use settings::{ExportKind, DEFAULT_RESPONSE_THRESHOLD, DEFAULT_SYSTEM_ACCOUNT};
use subject_map::SubjectMap;

use super::jetstream::{self, JetStream, StorageLimits};
use super::outbound::{Forward, Owner, Subscription};
use super::router::Router;
use super::ServerConfig;

/// One tenant.
pub struct Account {
    pub name: String,
    pub router: Arc<Router>,
    /// `None` when JetStream is not enabled for the account.
    pub jetstream: Option<Arc<JetStream>>,
}

/// Every account of the server, by name.
pub struct Accounts {
    by_name: BTreeMap<String, Arc<Account>>,
    global: Arc<Account>,
    system: String,
    /// The subscriptions that carry imports (held so they live as long as the server).
    _wiring: Vec<Arc<Subscription>>,
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

fn forwarding(subject: &str, forward: Arc<dyn Forward>) -> Arc<Subscription> {
    Arc::new(Subscription {
        owner: Owner::Forward(forward),
        subject: Bytes::copy_from_slice(subject.as_bytes()),
        queue: None,
        sid: Bytes::new(),
        max_msgs: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
    })
}

impl Accounts {
    /// Creates every account of `config` (and `$G` and the system account), starts JetStream
    /// for those that have it, and wires imports. The accounts were checked when the
    /// configuration was read; an inconsistency found here is still an error, never a panic.
    pub(super) fn start(
        config: &ServerConfig,
        configured: &[AccountSettings],
        system: Option<String>,
        server_name: &str,
        sync: crate::store::SyncPolicy,
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
        let limits = Arc::new(StorageLimits::new(
            config.max_memory_store,
            config.max_file_store,
        ));
        let mut by_name = BTreeMap::new();
        let mut wiring = Vec::new();
        for account in &all {
            let router = Arc::new(Router::default());
            let js_limits = account
                .jetstream
                .clone()
                .filter(|_| config.jetstream && account.name != system);
            let jetstream = match js_limits {
                Some(account_limits) => Some(JetStream::start(
                    router.clone(),
                    &store_dir_of(&config.store_dir, &account.name),
                    sync,
                    server_name.to_string(),
                    jetstream::JetStreamSettings {
                        account_name: account.name.clone(),
                        limits: Arc::new(StorageLimits::for_account(
                            limits.clone(),
                            account_limits.max_memory,
                            account_limits.max_file,
                        )),
                        account: account_limits,
                        domain: config.js_domain.clone(),
                        strict: config.js_strict,
                    },
                )?),
                None => None,
            };
            if jetstream.is_none() && config.jetstream && account.name != system {
                let sub = forwarding(
                    js_disabled::JS_API_ALL,
                    Arc::new(js_disabled::JetStreamDisabled {
                        account: Target::new(&router),
                    }),
                );
                router.subscribe(sub.clone());
                wiring.push(sub);
            }
            let entry = Arc::new(Account {
                name: account.name.clone(),
                router,
                jetstream,
            });
            by_name.insert(account.name.clone(), entry);
        }
        for account in &all {
            wire_imports(&by_name, &all, account, &mut wiring)?;
        }
        let system_account = by_name
            .get(&system)
            .cloned()
            .ok_or_else(|| "the system account is missing".to_string())?;
        for account in by_name.values().filter(|a| a.name != system) {
            wire_system_imports(account, &system_account, &mut wiring)?;
        }
        if !only_global {
            report(config, &by_name, &system);
        }
        let global = by_name
            .get(GLOBAL_ACCOUNT)
            .cloned()
            .ok_or_else(|| "the global account is missing".to_string())?;
        Ok(Self {
            by_name,
            global,
            system,
            _wiring: wiring,
        })
    }

    /// The account of clients that name none.
    pub fn global(&self) -> &Arc<Account> {
        &self.global
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Account>> {
        self.by_name.get(name)
    }

    /// Every account, by name.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Account>> {
        self.by_name.values()
    }

    pub fn system_account(&self) -> &str {
        &self.system
    }

    /// The accounts with JetStream, by name.
    pub fn jetstreams(&self) -> Vec<(String, Arc<JetStream>)> {
        self.all()
            .filter_map(|a| a.jetstream.clone().map(|js| (a.name.clone(), js)))
            .collect()
    }
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

/// Subscribes the forwarders of `account`'s imports.
fn wire_imports(
    by_name: &BTreeMap<String, Arc<Account>>,
    all: &[AccountSettings],
    account: &AccountSettings,
    wiring: &mut Vec<Arc<Subscription>>,
) -> Result<(), String> {
    let missing = |name: &str| format!("account {name:?} is not defined");
    let importer = by_name
        .get(&account.name)
        .ok_or_else(|| missing(&account.name))?;
    for (n, import) in account.imports.iter().enumerate() {
        let n = n.to_string();
        let exporter = by_name
            .get(&import.account)
            .ok_or_else(|| missing(&import.account))?;
        if !import.service {
            let map = SubjectMap::new(&import.subject, &import.local).map_err(|e| e.to_string())?;
            let forward = Arc::new(StreamImport {
                target: Target::new(&importer.router),
                map,
            });
            let sub = forwarding(&import.subject, forward);
            exporter.router.subscribe(sub.clone());
            wiring.push(sub);
            continue;
        }
        let (kind, threshold) = all
            .iter()
            .find(|a| a.name == import.account)
            .and_then(|a| {
                a.exports.iter().find_map(|e| match &e.kind {
                    ExportKind::Service {
                        response,
                        threshold,
                    } if crate::protocol::subject::is_subset_match(&import.subject, &e.subject) => {
                        Some((*response, *threshold))
                    }
                    _ => None,
                })
            })
            .unwrap_or((
                settings::ResponseType::Singleton,
                DEFAULT_RESPONSE_THRESHOLD,
            ));
        let remote = (exporter, import.subject.as_str());
        let route = service_import(importer, remote, &import.local, kind, threshold, &n)?;
        wiring.extend(route);
    }
    Ok(())
}

/// Wires a service import: requests on `local` in `importer` go to `remote` (an account and
/// its subject), answers come back through a response table. Returns the subscriptions made.
fn service_import(
    importer: &Account,
    remote: (&Arc<Account>, &str),
    local: &str,
    kind: settings::ResponseType,
    threshold: std::time::Duration,
    table: &str,
) -> Result<[Arc<Subscription>; 2], String> {
    let (exporter, subject) = remote;
    let table_name = format!("{}{table}", super::new_token());
    let responses = Arc::new(ResponseTable::new(
        &table_name,
        kind,
        threshold,
        Target::new(&importer.router),
    ));
    let back = forwarding(&responses.pattern(), responses.clone());
    exporter.router.subscribe(back.clone());
    let map = SubjectMap::new(local, subject).map_err(|e| e.to_string())?;
    let forward = Arc::new(ServiceImport {
        target: Target::new(&exporter.router),
        map,
        responses,
    });
    let sub = forwarding(local, forward);
    importer.router.subscribe(sub.clone());
    Ok([back, sub])
}

/// The system requests every other account may make about itself, as nats-server imports
/// them for each account: (subject asked, the system account's subject with `{acc}` for the
/// account's name).
const SYSTEM_IMPORTS: &[(&str, &str)] = &[
    ("$SYS.REQ.SERVER.PING.CONNZ", "$SYS.REQ.ACCOUNT.{acc}.CONNZ"),
    (
        "$SYS.REQ.ACCOUNT.PING.CONNZ",
        "$SYS.REQ.ACCOUNT.{acc}.CONNZ",
    ),
    (
        "$SYS.REQ.ACCOUNT.PING.STATZ",
        "$SYS.REQ.ACCOUNT.{acc}.STATZ",
    ),
];

/// Wires [`SYSTEM_IMPORTS`] into `account`. Accounts whose name is not one subject token
/// cannot be named in a subject and get none.
fn wire_system_imports(
    account: &Arc<Account>,
    system: &Arc<Account>,
    wiring: &mut Vec<Arc<Subscription>>,
) -> Result<(), String> {
    let name = &account.name;
    if name.is_empty() || name.contains(['.', '*', '>', ' ']) {
        return Ok(());
    }
    for (n, (local, remote)) in SYSTEM_IMPORTS.iter().enumerate() {
        let remote = remote.replace("{acc}", name);
        let table = format!("S{n}");
        let route = service_import(
            account,
            (system, &remote),
            local,
            settings::ResponseType::Singleton,
            DEFAULT_RESPONSE_THRESHOLD,
            &table,
        )?;
        wiring.extend(route);
    }
    Ok(())
}
