//! `jetlog server report accounts`: each account's activity summed over the servers' client
//! connections (their `CONNZ` through the system account), as natscli's report shows it.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;

use super::output;
use super::server_ops::{gather_with, AccountSort, AccountsArgs};
use super::units::format_size;

/// One account's sums.
#[derive(Debug, Default, Serialize)]
struct AccountActivity {
    account: String,
    connections: u64,
    subscriptions: u64,
    in_msgs: u64,
    out_msgs: u64,
    in_bytes: u64,
    out_bytes: u64,
    /// The servers its connections are on.
    servers: Vec<String>,
}

impl AccountActivity {
    fn key(&self, sort: AccountSort) -> u64 {
        match sort {
            AccountSort::InBytes => self.in_bytes,
            AccountSort::OutBytes => self.out_bytes,
            AccountSort::InMsgs => self.in_msgs,
            AccountSort::OutMsgs => self.out_msgs,
            AccountSort::Conns => self.connections,
            AccountSort::Subs => self.subscriptions,
        }
    }
}

pub(super) async fn report(args: &AccountsArgs) -> Result<()> {
    let client = super::connect::connect(&args.ops.common).await?;
    let options = match &args.account {
        Some(account) => serde_json::json!({ "auth": true, "account": account }).to_string(),
        None => r#"{"auth":true}"#.to_string(),
    };
    let answers = gather_with(&client, "$SYS.REQ.SERVER.PING.CONNZ", &options, &args.ops).await?;
    let mut accounts: BTreeMap<String, AccountActivity> = BTreeMap::new();
    for answer in &answers {
        let server = answer.body["server"]["name"].as_str().unwrap_or_default();
        let none = Vec::new();
        let connections = answer.body["data"]["connections"]
            .as_array()
            .unwrap_or(&none);
        for c in connections {
            let name = c["account"].as_str().unwrap_or("$G").to_string();
            if args.account.as_ref().is_some_and(|only| *only != name) {
                continue;
            }
            let entry = accounts
                .entry(name.clone())
                .or_insert_with(|| AccountActivity {
                    account: name,
                    ..AccountActivity::default()
                });
            let n = |key: &str| c[key].as_u64().unwrap_or(0);
            entry.connections += 1;
            entry.subscriptions += n("subscriptions");
            entry.in_msgs += n("in_msgs");
            entry.out_msgs += n("out_msgs");
            entry.in_bytes += n("in_bytes");
            entry.out_bytes += n("out_bytes");
            if !entry.servers.iter().any(|s| s == server) {
                entry.servers.push(server.to_string());
            }
        }
    }
    let mut rows: Vec<AccountActivity> = accounts.into_values().collect();
    rows.sort_by(|a, b| {
        b.key(args.sort)
            .cmp(&a.key(args.sort))
            .then(a.account.cmp(&b.account))
    });
    rows.truncate(args.top);
    if args.ops.common.json {
        return output::json_pretty(&rows);
    }
    let mut table = output::table(&[
        "Account",
        "Connections",
        "Subscriptions",
        "In Msgs",
        "Out Msgs",
        "In Bytes",
        "Out Bytes",
        "Servers",
    ]);
    for row in &rows {
        table.add_row(vec![
            row.account.clone(),
            row.connections.to_string(),
            row.subscriptions.to_string(),
            row.in_msgs.to_string(),
            row.out_msgs.to_string(),
            format_size(row.in_bytes),
            format_size(row.out_bytes),
            row.servers.join(", "),
        ]);
    }
    output::print_table(&table)
}
