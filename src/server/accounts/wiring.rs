//! Wiring the imports: the `Owner::Forward` subscriptions that carry messages between
//! accounts, put into the routers at start and redone when an account's JWT changes.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use bytes::Bytes;

use super::imports::{ServiceImport, StreamImport, Target};
use super::responses::ResponseTable;
use super::settings::{self, AccountSettings, ExportKind, DEFAULT_RESPONSE_THRESHOLD};
use super::subject_map::SubjectMap;
use super::Account;
use crate::server::outbound::{Forward, Owner, Subscription};
use crate::server::router::Router;

/// A subscription put into a router for an import, with the router, so it can be taken out.
pub(super) struct Wired {
    pub(super) router: Arc<Router>,
    pub(super) sub: Arc<Subscription>,
}

impl Wired {
    pub(super) fn new(router: &Arc<Router>, sub: Arc<Subscription>) -> Self {
        router.subscribe(sub.clone());
        Self {
            router: router.clone(),
            sub,
        }
    }

    pub(super) fn remove(self) {
        self.router.unsubscribe(&self.sub);
    }
}

pub(super) fn forwarding(subject: &str, forward: Arc<dyn Forward>) -> Arc<Subscription> {
    Arc::new(Subscription {
        owner: Owner::Forward(forward),
        subject: Bytes::copy_from_slice(subject.as_bytes()),
        queue: None,
        sid: Bytes::new(),
        max_msgs: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
    })
}

/// Wires every account's imports, and the system requests each may make about itself.
pub(super) fn wire_all(
    by_name: &BTreeMap<String, Arc<Account>>,
    all: &[AccountSettings],
    system: &str,
) -> Result<Vec<Wired>, String> {
    let mut wired = Vec::new();
    for account in all {
        wire_imports(by_name, all, account, &mut wired)?;
    }
    let system_account = by_name
        .get(system)
        .cloned()
        .ok_or_else(|| "the system account is missing".to_string())?;
    for account in by_name.values().filter(|a| a.name != system) {
        wire_system_imports(account, &system_account, &mut wired)?;
    }
    Ok(wired)
}

/// Subscribes the forwarders of `account`'s imports.
pub(super) fn wire_imports(
    by_name: &BTreeMap<String, Arc<Account>>,
    all: &[AccountSettings],
    account: &AccountSettings,
    wiring: &mut Vec<Wired>,
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
            wiring.push(Wired::new(&exporter.router, sub));
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
) -> Result<[Wired; 2], String> {
    let (exporter, subject) = remote;
    let table_name = format!("{}{table}", crate::server::new_token());
    let responses = Arc::new(ResponseTable::new(
        &table_name,
        kind,
        threshold,
        Target::new(&importer.router),
    ));
    let back = Wired::new(
        &exporter.router,
        forwarding(&responses.pattern(), responses.clone()),
    );
    let map = SubjectMap::new(local, subject).map_err(|e| e.to_string())?;
    let forward = Arc::new(ServiceImport {
        target: Target::new(&exporter.router),
        map,
        responses,
    });
    let sub = Wired::new(&importer.router, forwarding(local, forward));
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
pub(super) fn wire_system_imports(
    account: &Arc<Account>,
    system: &Arc<Account>,
    wiring: &mut Vec<Wired>,
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
