//! `/accountz`: the accounts of the server, with nats-server's field names
//! (`server/monitor.go`, `Accountz`, `AccountInfo`). jetlog serves one account, named as
//! nats-server names the account clients use without configured accounts, `$G`; it has no
//! system account, so `system_account` is left out rather than made up.

use std::time::SystemTime;

use serde::Serialize;

use super::clock::rfc3339;
use super::jsz::GLOBAL_ACCOUNT;
use super::query::Query;
use super::{MonitorError, MonitorState};

#[derive(Serialize)]
pub struct Accountz {
    server_id: String,
    now: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    accounts: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_detail: Option<AccountInfo>,
}

#[derive(Serialize)]
struct AccountInfo {
    account_name: &'static str,
    update_time: String,
    is_system: bool,
    expired: bool,
    complete: bool,
    jetstream_enabled: bool,
    leafnode_connections: u32,
    client_connections: usize,
    subscriptions: usize,
}

/// The account list, or with `?acc=<name>` that account's details.
pub fn accountz(state: &MonitorState, query: &Query) -> Result<Accountz, MonitorError> {
    let server = state.view.server();
    let now = rfc3339(SystemTime::now());
    let Some(name) = query.get("acc") else {
        return Ok(Accountz {
            server_id: server.server_id,
            now,
            accounts: vec![GLOBAL_ACCOUNT],
            account_detail: None,
        });
    };
    if name != GLOBAL_ACCOUNT {
        return Err(MonitorError::BadRequest(format!(
            "Account {name} does not exist"
        )));
    }
    Ok(Accountz {
        server_id: server.server_id,
        now,
        accounts: Vec::new(),
        account_detail: Some(AccountInfo {
            account_name: GLOBAL_ACCOUNT,
            update_time: rfc3339(server.started),
            is_system: false,
            expired: false,
            complete: true,
            jetstream_enabled: true,
            leafnode_connections: 0,
            client_connections: server.connections,
            subscriptions: server.subscriptions,
        }),
    })
}
