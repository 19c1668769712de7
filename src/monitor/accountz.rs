//! `/accountz` and `/accstatz`: the accounts of the server and their activity, with
//! nats-server's field names (`server/monitor.go`: `Accountz`, `AccountInfo`, `AccountStatz`).

use std::time::SystemTime;

use serde::Serialize;

use super::clock::rfc3339;
use super::query::Query;
use super::{MonitorError, MonitorState};
use crate::server::accounts::settings::{ExportKind, ResponseType};
use crate::server::AccountReport;

#[derive(Serialize)]
pub struct Accountz {
    server_id: String,
    now: String,
    system_account: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    accounts: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_detail: Option<AccountInfo>,
}

#[derive(Serialize)]
struct AccountInfo {
    account_name: String,
    update_time: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    is_system: bool,
    expired: bool,
    complete: bool,
    jetstream_enabled: bool,
    leafnode_connections: u32,
    client_connections: usize,
    subscriptions: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    exports: Vec<ExportInfo>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    imports: Vec<ImportInfo>,
}

#[derive(Serialize)]
struct ExportInfo {
    subject: String,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    approved_accounts: Option<Vec<String>>,
}

/// As nats-server 2.10+ shows an import: `subject` in the exporter, `local_subject` here.
#[derive(Serialize)]
struct ImportInfo {
    subject: String,
    account: String,
    local_subject: String,
    #[serde(rename = "type")]
    kind: &'static str,
    invalid: bool,
}

fn response_name(kind: ResponseType) -> &'static str {
    match kind {
        ResponseType::Singleton => "Singleton",
        ResponseType::Stream => "Streamed",
        ResponseType::Chunked => "Chunked",
    }
}

fn detail(account: AccountReport, started: SystemTime) -> AccountInfo {
    let settings = account.settings.unwrap_or_default();
    AccountInfo {
        account_name: account.name,
        update_time: rfc3339(started),
        is_system: account.is_system,
        expired: false,
        complete: true,
        jetstream_enabled: account.jetstream,
        leafnode_connections: 0,
        client_connections: account.connections,
        subscriptions: account.subscriptions,
        exports: settings
            .exports
            .into_iter()
            .map(|e| ExportInfo {
                subject: e.subject,
                kind: match e.kind {
                    ExportKind::Stream => "stream",
                    ExportKind::Service { .. } => "service",
                },
                response_type: match e.kind {
                    ExportKind::Service { response, .. } => Some(response_name(response)),
                    ExportKind::Stream => None,
                },
                approved_accounts: e.accounts,
            })
            .collect(),
        imports: settings
            .imports
            .into_iter()
            .map(|i| ImportInfo {
                subject: i.subject,
                account: i.account,
                local_subject: i.local,
                kind: if i.service { "service" } else { "stream" },
                invalid: false,
            })
            .collect(),
    }
}

/// The account list, or with `?acc=<name>` that account's details.
pub fn accountz(state: &MonitorState, query: &Query) -> Result<Accountz, MonitorError> {
    let server = state.view.server();
    let accounts = state.view.accounts();
    let mut out = Accountz {
        server_id: server.server_id,
        now: rfc3339(SystemTime::now()),
        system_account: state.view.system_account(),
        accounts: Vec::new(),
        account_detail: None,
    };
    let Some(name) = query.get("acc") else {
        out.accounts = accounts.into_iter().map(|a| a.name).collect();
        return Ok(out);
    };
    let Some(account) = accounts.into_iter().find(|a| a.name == name) else {
        return Err(MonitorError::BadRequest(format!(
            "Account {name} does not exist"
        )));
    };
    out.account_detail = Some(detail(account, server.started));
    Ok(out)
}

#[derive(Serialize)]
pub struct Accstatz {
    server_id: String,
    now: String,
    account_statz: Vec<AccountStat>,
}

#[derive(Serialize)]
struct Counts {
    msgs: u64,
    bytes: u64,
}

#[derive(Serialize)]
struct AccountStat {
    acc: String,
    conns: usize,
    leafnodes: u32,
    total_conns: usize,
    num_subscriptions: usize,
    sent: Counts,
    received: Counts,
}

/// Each account with open connections (every account with `?unused=true`), with what its
/// open connections sent and received. `?acc=<name>` picks one.
pub fn accstatz(state: &MonitorState, query: &Query) -> Result<Accstatz, MonitorError> {
    let unused = query.flag("unused")?;
    let only = query.get("acc");
    let account_statz = state
        .view
        .accounts()
        .into_iter()
        .filter(|a| only.is_none_or(|name| a.name == name))
        .filter(|a| unused || a.connections > 0)
        .map(|a| AccountStat {
            acc: a.name,
            conns: a.connections,
            leafnodes: 0,
            total_conns: a.connections,
            num_subscriptions: a.subscriptions,
            // The server's view: what it sent to the account's clients, and received.
            sent: Counts {
                msgs: a.traffic.out_msgs,
                bytes: a.traffic.out_bytes,
            },
            received: Counts {
                msgs: a.traffic.in_msgs,
                bytes: a.traffic.in_bytes,
            },
        })
        .collect();
    Ok(Accstatz {
        server_id: state.view.server().server_id,
        now: rfc3339(SystemTime::now()),
        account_statz,
    })
}
