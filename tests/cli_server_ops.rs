//! `jetlog server ping|info|list` run as a process against a real jetlog server with a
//! system account: the answers of `$SYS.REQ.SERVER.PING…`, and the error for a user who is
//! not in the system account.

mod cli_support;
mod common;

use cli_support::jetlog_at;
use common::TestServer;

const CONF: &str = r#"
server_name: ops-test
accounts {
  APP: { jetstream: enabled, users: [ { user: app, password: pw } ] }
  OPS: { users: [ { user: admin, password: pw } ] }
}
system_account: OPS
"#;

fn url(server: &TestServer, user: &str) -> String {
    format!("nats://{user}:pw@127.0.0.1:{}", server.port)
}

#[test]
fn ping_info_list_and_report_ask_every_server_through_the_system_account() {
    let (server, _dir) = TestServer::start_with_config(CONF, &[]);
    let admin = url(&server, "admin");
    let pings = jetlog_at(&admin, &["server", "ping", "--json", "--expect", "1"]).json();
    assert_eq!(pings[0]["server"]["name"], "ops-test", "{pings}");
    assert!(pings[0]["rtt"].as_u64().is_some_and(|ns| ns > 0), "{pings}");
    let text = jetlog_at(&admin, &["server", "ping"]).ok().to_string();
    assert!(
        text.contains("ops-test") && text.contains("1 servers answered"),
        "{text}"
    );

    let info = jetlog_at(&admin, &["server", "info", "ops-test", "--json"]).json();
    assert_eq!(info["server_name"], "ops-test", "{info}");
    assert_eq!(info["port"], server.port, "{info}");
    let text = jetlog_at(&admin, &["server", "info"]).ok().to_string();
    assert!(text.contains("Max payload"), "{text}");
    jetlog_at(&admin, &["server", "info", "elsewhere"]).fails_with("no server named");

    let list = jetlog_at(&admin, &["server", "list", "--json"]).json();
    assert_eq!(list[0]["server"]["name"], "ops-test", "{list}");
    assert!(
        list[0]["statsz"]["connections"].as_u64().is_some(),
        "{list}"
    );
    let table = jetlog_at(&admin, &["server", "list"]).ok().to_string();
    assert!(
        table.contains("Conns") && table.contains("ops-test"),
        "{table}"
    );

    // A JetStream user's stream and connection show in the reports.
    let app = url(&server, "app");
    jetlog_at(&app, &["stream", "add", "ORDERS", "--subjects", "orders.>"]).ok();
    let js = jetlog_at(&admin, &["server", "report", "jetstream", "--json"]).json();
    assert_eq!(js[0]["streams"], 1, "{js}");
    assert!(
        js[0]["api"]["total"].as_u64().is_some_and(|n| n >= 1),
        "{js}"
    );
    let table = jetlog_at(&admin, &["server", "report", "js"])
        .ok()
        .to_string();
    assert!(
        table.contains("Streams") && table.contains("ops-test"),
        "{table}"
    );
    let conns = jetlog_at(&admin, &["server", "report", "connections", "--json"]).json();
    let accounts: Vec<&str> = conns[0]["connections"]
        .as_array()
        .expect("connections")
        .iter()
        .filter_map(|c| c["account"].as_str())
        .collect();
    assert!(accounts.contains(&"OPS"), "the asking connection: {conns}");
    let table = jetlog_at(&admin, &["server", "report", "connections"])
        .ok()
        .to_string();
    assert!(table.contains("OPS") && table.contains("CID"), "{table}");

    jetlog_at(&app, &["server", "ping", "--timeout", "1s"])
        .fails_with("connect as a user of the system account");
}

#[test]
fn the_server_check_asks_the_named_server_and_judges_its_varz() {
    let (server, _dir) = TestServer::start_with_config(CONF, &[]);
    let admin = url(&server, "admin");
    let check = |extra: &[&str]| {
        let args = [&["server", "check", "server"][..], extra].concat();
        let run = jetlog_at(&admin, &args);
        (run.code, run.stdout.trim_end().to_string())
    };
    let (code, out) = check(&[
        "--name",
        "ops-test",
        "--js-required",
        "--auth-required",
        "--conn-critical",
        "100",
        "--conn-warn",
        "50",
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.starts_with("OK ops-test OK:JetStream enabled OK:Authentication required OK:Connections 1.00 | uptime="),
        "{out}"
    );
    assert!(out.contains(" connections=1;50;100 "), "{out}");
    // A critical threshold below the warning one is a floor: one connection is at most 5.
    let (code, out) = check(&[
        "--name",
        "ops-test",
        "--conn-critical",
        "0",
        "--conn-warn",
        "5",
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("Warn:Connections 1.00"), "{out}");
    // CPU and memory are ceilings only.
    let (code, out) = check(&[
        "--name",
        "ops-test",
        "--mem-critical",
        "1",
        "--mem-warn",
        "2",
    ]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("Crit:Memory invalid thresholds"), "{out}");
    let (code, out) = check(&["--name", "ops-test", "--tls-required"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("Crit:TLS not required"), "{out}");
    let (code, out) = check(&[
        "--name",
        "ops-test",
        "--uptime-critical",
        "1h",
        "--uptime-warn",
        "2h",
    ]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.starts_with("CRITICAL ops-test Crit:Up "), "{out}");
    // The event filter matches names that contain the one asked for; the check then
    // wants that very name, as natscli's does.
    let (code, out) = check(&["--name", "ops"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("Crit:result from wrong server \"ops-test\""),
        "{out}"
    );
    // A name no server has: nobody answers (the event filter leaves every server out).
    let (code, out) = check(&["--name", "nobody", "--timeout", "1s"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("varz failed"), "{out}");
}

#[test]
fn the_accounts_report_sums_each_accounts_connections_over_the_servers() {
    let (server, _dir) = TestServer::start_with_config(CONF, &[]);
    // Two connections of APP with three subscriptions between them.
    let mut apps = Vec::new();
    for subs in [1, 2] {
        let mut app = server.raw();
        app.send(b"CONNECT {\"user\":\"app\",\"pass\":\"pw\",\"verbose\":false}\r\n");
        for i in 0..subs {
            app.send(format!("SUB app.{i} {i}\r\n").as_bytes());
        }
        app.send(b"PING\r\n");
        app.read_until_contains(b"PONG", std::time::Duration::from_secs(5));
        apps.push(app);
    }
    let admin = url(&server, "admin");
    let rows = jetlog_at(&admin, &["server", "report", "accounts", "--json"]).json();
    let app = rows
        .as_array()
        .and_then(|r| r.iter().find(|a| a["account"] == "APP"))
        .unwrap_or_else(|| panic!("no APP row: {rows}"));
    assert_eq!(app["connections"], 2, "{rows}");
    assert_eq!(app["subscriptions"], 3, "{rows}");
    assert_eq!(app["servers"], serde_json::json!(["ops-test"]), "{rows}");
    // Sorted by subscriptions, largest first; one account asked for, only it.
    let only = jetlog_at(&admin, &["server", "report", "accounts", "APP", "--json"]).json();
    assert_eq!(only.as_array().map(Vec::len), Some(1), "{only}");
    let table = jetlog_at(&admin, &["server", "report", "acct", "--sort", "conns"])
        .ok()
        .to_string();
    assert!(table.contains("APP") && table.contains("OPS"), "{table}");
    drop(apps);
}
