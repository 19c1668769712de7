//! What the configuration says about accounts: their names, JetStream, and what they export
//! and import. Plain data, checked for consistency by [`check`] before the server starts.

use std::time::Duration;

use crate::protocol::subject::{is_subset_match, is_valid_subject, subjects_overlap};
use crate::server::AccountLimits;

/// The account of clients when the configuration names none (nats-server's global account).
pub const GLOBAL_ACCOUNT: &str = "$G";
/// The system account's name unless `system_account` names another.
pub const DEFAULT_SYSTEM_ACCOUNT: &str = "$SYS";
/// How long a service import waits for responses to a request before forgetting it
/// (nats-server's `DEFAULT_SERVICE_EXPORT_RESPONSE_THRESHOLD`).
pub const DEFAULT_RESPONSE_THRESHOLD: Duration = Duration::from_secs(120);

/// One account of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccountSettings {
    pub name: String,
    /// The account's JetStream limits; `None` when JetStream is not enabled for it.
    pub jetstream: Option<AccountLimits>,
    pub exports: Vec<Export>,
    pub imports: Vec<Import>,
}

/// How many responses a service request may get through an import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResponseType {
    /// One response; the mapping is dropped after it.
    #[default]
    Singleton,
    /// Any number of responses until the threshold passes.
    Stream,
    /// A response in several messages until the threshold passes.
    Chunked,
}

impl ResponseType {
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "single" | "singleton" => Some(Self::Singleton),
            "stream" => Some(Self::Stream),
            "chunk" | "chunked" => Some(Self::Chunked),
            _ => None,
        }
    }
}

/// What an export offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportKind {
    /// Messages published on the subject flow to importers.
    Stream,
    /// Requests from importers reach the exporter's responders.
    Service {
        response: ResponseType,
        threshold: Duration,
    },
}

/// A subject an account offers to others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    pub subject: String,
    pub kind: ExportKind,
    /// The accounts that may import it; `None` is public.
    pub accounts: Option<Vec<String>>,
}

/// A subject an account takes from another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// The exporting account.
    pub account: String,
    /// The subject in the exporting account.
    pub subject: String,
    /// The subject in the importing account (`to`, or `prefix` put in front of `subject`).
    pub local: String,
    pub service: bool,
}

/// Why an accounts configuration cannot be served (nats-server's words where it has them).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountsError {
    #[error("Duplicate Account Entry: {0}")]
    Duplicate(String),
    #[error("{0:?} is a Reserved Account")]
    Reserved(String),
    #[error("{from:?} account not defined for {kind} import")]
    UnknownAccount { from: String, kind: &'static str },
    #[error("{account:?} account not defined for {kind} export")]
    UnknownExportAccount { account: String, kind: &'static str },
    #[error("Error adding {kind} import {subject:?}: {kind} import not authorized")]
    NotExported { kind: &'static str, subject: String },
    #[error("Error adding {kind} import {subject:?}: import forms a cycle ({path})")]
    Cycle {
        kind: &'static str,
        subject: String,
        path: String,
    },
    #[error("{0:?} is not a valid subject for an import or export")]
    BadSubject(String),
    #[error("error resolving system account: account missing ({0:?} is not defined)")]
    UnknownSystemAccount(String),
}

fn kind(service: bool) -> &'static str {
    if service {
        "service"
    } else {
        "stream"
    }
}

/// Checks that every import names a defined account and a subject that account exports to the
/// importer, and that imports do not form a cycle (a message would go round forever).
pub fn check(accounts: &[AccountSettings]) -> Result<(), AccountsError> {
    for (i, a) in accounts.iter().enumerate() {
        if a.name == GLOBAL_ACCOUNT {
            return Err(AccountsError::Reserved(a.name.clone()));
        }
        if accounts[..i].iter().any(|b| b.name == a.name) {
            return Err(AccountsError::Duplicate(a.name.clone()));
        }
        let subjects = a.exports.iter().map(|e| &e.subject);
        let imported = a.imports.iter().flat_map(|i| [&i.subject, &i.local]);
        if let Some(bad) = subjects.chain(imported).find(|s| !is_valid_subject(s)) {
            return Err(AccountsError::BadSubject(bad.clone()));
        }
        for export in &a.exports {
            let service = matches!(export.kind, ExportKind::Service { .. });
            let names = export.accounts.iter().flatten();
            if let Some(unknown) = names
                .into_iter()
                .find(|n| !accounts.iter().any(|b| &b.name == *n))
            {
                return Err(AccountsError::UnknownExportAccount {
                    account: unknown.clone(),
                    kind: kind(service),
                });
            }
        }
    }
    for account in accounts {
        for import in &account.imports {
            check_import(accounts, account, import)?;
        }
    }
    let edges = edges(accounts);
    let imports = accounts.iter().flat_map(|a| a.imports.iter());
    for (n, import) in imports.enumerate() {
        if let Some(path) = find_cycle(&edges, n) {
            return Err(AccountsError::Cycle {
                kind: kind(import.service),
                subject: import.subject.clone(),
                path,
            });
        }
    }
    Ok(())
}

fn check_import(
    accounts: &[AccountSettings],
    account: &AccountSettings,
    import: &Import,
) -> Result<(), AccountsError> {
    let Some(from) = accounts.iter().find(|a| a.name == import.account) else {
        return Err(AccountsError::UnknownAccount {
            from: import.account.clone(),
            kind: kind(import.service),
        });
    };
    let offered = from.exports.iter().any(|e| {
        matches!(e.kind, ExportKind::Service { .. }) == import.service
            && is_subset_match(&import.subject, &e.subject)
            && e.accounts
                .as_ref()
                .is_none_or(|names| names.contains(&account.name))
    });
    if offered {
        return Ok(());
    }
    Err(AccountsError::NotExported {
        kind: kind(import.service),
        subject: import.subject.clone(),
    })
}

/// An import as the way a message takes: published in `from.0` on a subject matching
/// `from.1`, it is routed again in `to.0` under `to.1`. A service import carries requests
/// from the importer to the exporter, a stream import messages from the exporter to the
/// importer; both are subscriptions, so a message can take several in a row.
struct Edge<'a> {
    from: (&'a str, &'a str),
    to: (&'a str, &'a str),
}

fn edges(accounts: &[AccountSettings]) -> Vec<Edge<'_>> {
    let mut edges = Vec::new();
    for account in accounts {
        for import in &account.imports {
            let (importer, exporter) = (account.name.as_str(), import.account.as_str());
            let (local, remote) = (import.local.as_str(), import.subject.as_str());
            edges.push(match import.service {
                true => Edge {
                    from: (importer, local),
                    to: (exporter, remote),
                },
                false => Edge {
                    from: (exporter, remote),
                    to: (importer, local),
                },
            });
        }
    }
    edges
}

/// A way round through imports from edge `start` back to an edge already taken, as the
/// accounts it passes; `None` if messages cannot loop.
fn find_cycle(edges: &[Edge<'_>], start: usize) -> Option<String> {
    /// Depth first; `seen` edges were explored already and lead nowhere new.
    fn walk(edges: &[Edge<'_>], at: usize, stack: &mut Vec<usize>, seen: &mut [bool]) -> bool {
        seen[at] = true;
        for (next, edge) in edges.iter().enumerate() {
            let (account, subject) = edges[at].to;
            if edge.from.0 != account || !subjects_overlap(edge.from.1, subject) {
                continue;
            }
            if stack.contains(&next) {
                stack.push(next);
                return true;
            }
            if seen[next] {
                continue;
            }
            stack.push(next);
            if walk(edges, next, stack, seen) {
                return true;
            }
            stack.pop();
        }
        false
    }
    let mut stack = vec![start];
    let mut seen = vec![false; edges.len()];
    if !walk(edges, start, &mut stack, &mut seen) {
        return None;
    }
    let mut names = vec![edges[start].from.0];
    names.extend(stack.iter().map(|e| edges[*e].to.0));
    Some(names.join(" -> "))
}

/// Leaves out the imports [`check`] would refuse (an account not known, a subject not
/// exported to the importer, a way round), as nats-server leaves out the imports of account
/// JWTs it cannot resolve; returns why each was left out. Of two accounts with one name, the
/// later stands.
pub fn retain_valid_imports(accounts: &mut Vec<AccountSettings>) -> Vec<String> {
    let mut dropped = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut i = accounts.len();
    while i > 0 {
        i -= 1;
        if !seen.insert(accounts[i].name.clone()) {
            dropped.push(format!(
                "account {} is given twice; the later JWT stands",
                accounts[i].name
            ));
            accounts.remove(i);
        }
    }
    for n in 0..accounts.len() {
        let imports = std::mem::take(&mut accounts[n].imports);
        let mut kept = Vec::new();
        for import in imports {
            match check_import(accounts, &accounts[n], &import) {
                Ok(()) => kept.push(import),
                Err(e) => dropped.push(format!("account {}: {e}", accounts[n].name)),
            }
        }
        accounts[n].imports = kept;
    }
    loop {
        let edges = edges(accounts);
        let looping = (0..edges.len()).find(|n| find_cycle(&edges, *n).is_some());
        let Some(mut n) = looping else {
            return dropped;
        };
        for account in accounts.iter_mut() {
            if n < account.imports.len() {
                let import = account.imports.remove(n);
                dropped.push(format!(
                    "account {}: import {:?} forms a cycle",
                    account.name, import.subject
                ));
                break;
            }
            n -= account.imports.len();
        }
    }
}
