//! Keys that are honoured, refused and unknown.

use std::path::Path;

use super::*;

fn load_text(text: &str) -> Result<LoadedConfig, ConfigFileError> {
    map_document(&conf::parse_str(text, Path::new("s.conf"))?)
}

#[test]
fn honoured_keys_become_settings() {
    let loaded = load_text(
        "listen: 127.0.0.1:4333\nserver_name: n1\nhttp: 8222\nmax_payload: 2MB\n\
         max_connections: 10\nmax_control_line: 8KB\nmax_pending: 64MB\nping_interval: 2m\n\
         ping_max: 3\nwrite_deadline: \"5s\"\ndebug: true\ntrace: false\nlogfile: /l\n\
         pid_file: /p\njetstream { store_dir: /s, sync_interval: 100ms }\n\
         authorization { user: a, password: b, timeout: 0.5 }\n",
    )
    .unwrap();
    let s = loaded.settings;
    assert_eq!(s.addr, Some(IpAddr::from([127, 0, 0, 1])));
    assert_eq!(s.port, Some(4333));
    assert_eq!(s.server_name.as_deref(), Some("n1"));
    assert_eq!(s.http_port, Some(8222));
    assert_eq!(s.max_payload, Some(2 << 20));
    assert_eq!(s.max_connections, Some(10));
    assert_eq!(s.max_control_line, Some(8192));
    assert_eq!(s.max_pending, Some(64 << 20));
    assert_eq!(s.ping_interval, Some(Duration::from_secs(120)));
    assert_eq!(s.ping_max, Some(3));
    assert_eq!(s.write_deadline, Some(Duration::from_secs(5)));
    assert_eq!((s.debug, s.trace), (Some(true), Some(false)));
    assert_eq!(s.log_file, Some(PathBuf::from("/l")));
    assert_eq!(s.pid_file, Some(PathBuf::from("/p")));
    assert_eq!(s.store_dir, Some(PathBuf::from("/s")));
    assert_eq!(s.sync, Some(SyncMode::Interval(Duration::from_millis(100))));
    assert_eq!(
        (s.user.as_deref(), s.password.as_deref()),
        (Some("a"), Some("b"))
    );
    assert_eq!(s.auth_timeout, Some(Duration::from_millis(500)));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn jetstream_enabled_and_host_port_keys() {
    let s = load_text("jetstream: enabled\nhost: 0.0.0.0\nport: -1\n")
        .unwrap()
        .settings;
    assert_eq!(s.port, Some(-1));
    assert_eq!(s.addr, Some(IpAddr::from([0, 0, 0, 0])));
}

#[test]
fn cluster_block_is_read() {
    let loaded = load_text(
        "cluster {\n  name: prod\n  listen: 127.0.0.1:7244\n  routes: [\n    nats-route://u:p@10.0.0.2:7244\n    nats://10.0.0.3\n  ]\n  no_advertise: true\n  connect_retries: 3\n  advertise: \"10.0.0.1:7244\"\n  authorization { user: ru, password: rp, timeout: 0.5 }\n  colour: blue\n}\nclient_advertise: \"h:4222\"\n",
    )
    .unwrap();
    let c = &loaded.settings.cluster;
    assert_eq!(c.name.as_deref(), Some("prod"));
    assert_eq!(c.host, Some(IpAddr::from([127, 0, 0, 1])));
    assert_eq!(c.port, Some(7244));
    let routes = c.routes.as_ref().unwrap();
    assert_eq!(routes[0].user.as_deref(), Some("u"));
    assert_eq!(routes[1].address(), "10.0.0.3:6222");
    assert_eq!((c.no_advertise, c.connect_retries), (Some(true), Some(3)));
    assert_eq!(c.advertise.as_deref(), Some("10.0.0.1:7244"));
    assert_eq!(
        (c.user.as_deref(), c.password.as_deref()),
        (Some("ru"), Some("rp"))
    );
    assert_eq!(c.auth_timeout, Some(Duration::from_millis(500)));
    assert_eq!(loaded.settings.client_advertise.as_deref(), Some("h:4222"));
    assert!(
        loaded.warnings.iter().any(|w| w.contains("cluster.colour")),
        "{:?}",
        loaded.warnings
    );
    let bad = load_text("cluster { port: 1, routes: [ \"http://x:1\" ] }\n").unwrap_err();
    assert!(
        bad.to_string()
            .contains("the scheme must be nats-route or nats"),
        "{bad}"
    );
}

#[test]
fn keys_jetlog_cannot_honour_are_refused_with_their_line() {
    for (text, expected) in [
        (
            "port: 1\ncluster {\n  port: 6222\n  compression: s2_fast\n}\n",
            "s.conf:4:3: compression is not supported by jetlog yet: route compression is not implemented",
        ),
        (
            "cluster { port: 6222, authorization: { token: a } }\n",
            "s.conf:1:40: token is not supported by jetlog yet: routes authenticate with a user and password",
        ),
        (
            "tls { cert_file: c, key_file: k, ocsp_peer: true }\n",
            "s.conf:1:34: ocsp_peer is not supported",
        ),
        (
            "accounts { A: { mappings: { a: b } } }\n",
            "s.conf:1:17: mappings is not supported",
        ),
        (
            "accounts { A: { users: [{user: a, password: b}], jetstream: { max_conns: 2 } } }\n",
            "s.conf:1:63: max_conns is not supported by jetlog yet: this account JetStream limit is not enforced yet",
        ),
        (
            "authorization {\n  user: a, password: b, permissions: {}\n}\n",
            "s.conf:2:25: permissions is not supported",
        ),
        (
            "authorization { nkeys: [] }\n",
            "s.conf:1:17: nkeys is not supported",
        ),
    ] {
        let message = load_text(text).unwrap_err().to_string();
        assert!(message.contains(expected), "{text:?}: {message}");
    }
}

#[test]
fn bad_values_name_the_value_position() {
    for (text, expected) in [
        ("port: 70000\n", "s.conf:1:7: invalid value for port"),
        (
            "ping_interval: 2d\n",
            "s.conf:1:16: invalid value for ping_interval",
        ),
        (
            "max_payload: -1\n",
            "s.conf:1:14: invalid value for max_payload",
        ),
        ("debug: sometimes\n", "s.conf:1:8: invalid value for debug"),
        ("host: example\n", "s.conf:1:7: invalid value for host"),
        (
            "authorization { user: a }\n",
            "user and password must be given together",
        ),
    ] {
        let message = load_text(text).unwrap_err().to_string();
        assert!(message.contains(expected), "{text:?}: {message}");
    }
}

#[test]
fn unknown_keys_warn_or_fail_under_strict() {
    let loaded =
        load_text("port: 1\nconnect_error_reports: 3\nPORT_VAR: 5\nx: $PORT_VAR\n").unwrap();
    assert_eq!(loaded.warnings.len(), 2, "{:?}", loaded.warnings);
    assert!(
        loaded.warnings[0].contains("s.conf:2:1: unknown configuration key connect_error_reports")
    );
    assert!(loaded.warnings[1].contains("unknown configuration key x"));
    let message = load_text("strict: true\njetstream { colour: blue }\n")
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("s.conf:2:13: unknown key jetstream.colour"),
        "{message}"
    );
}

#[test]
fn logtime_is_read_as_a_boolean() {
    let loaded = load_text("logtime: false\n").unwrap();
    assert_eq!(loaded.settings.logtime, Some(false));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn users_and_their_permissions_are_read() {
    let text = r#"
authorization {
  default_permissions: { publish: ["a.>", "b"], subscribe: { deny: "secret.>" } }
  users: [
    { user: admin, password: x, permissions: { publish: { allow: ">", deny: "admin.off" } } }
    { user: app, password: y }
  ]
}
"#;
    let users = load_text(text).unwrap().settings.users.expect("users");
    assert_eq!(users.len(), 2);
    let admin = users[0].permissions.as_ref().expect("own permissions");
    assert_eq!(admin.publish.allow, vec![">"]);
    assert_eq!(admin.publish.deny, vec!["admin.off"]);
    assert!(admin.subscribe.is_open());
    let app = users[1].permissions.as_ref().expect("default permissions");
    assert_eq!(app.publish.allow, vec!["a.>", "b"]);
    assert_eq!(app.subscribe.deny, vec!["secret.>"]);
}

#[test]
fn bad_user_lists_name_the_problem() {
    for (text, expected) in [
        ("authorization { users: [] }\n", "list of users is empty"),
        (
            "authorization { users: [{password: a}] }\n",
            "each user needs a user name or an nkey",
        ),
        (
            "authorization { users: [{user: a, password: b}, {user: a, password: c}] }\n",
            "user a is listed twice",
        ),
        (
            "authorization { users: [{user: a, password: b, permissions: {publish: \"a b\"}}] }\n",
            "is not a valid subject",
        ),
        (
            "authorization { user: x, password: y, users: [{user: a, password: b}] }\n",
            "users cannot be combined",
        ),
        (
            "authorization { default_permissions: { publish: a } }\n",
            "default_permissions needs a users list",
        ),
    ] {
        let message = load_text(text).unwrap_err().to_string();
        assert!(message.contains(expected), "{text:?}: {message}");
    }
}

#[test]
fn tls_blocks_are_read_and_checked() {
    let loaded = load_text(
        "tls { cert_file: /c.pem, key_file: /k.pem, ca_file: /ca.pem, verify: true, timeout: 0.5, handshake_first: true }\n",
    )
    .unwrap();
    let tls = loaded.settings.tls.expect("tls");
    assert_eq!(tls.cert_file.to_str(), Some("/c.pem"));
    assert_eq!(
        tls.ca_file.as_deref().and_then(|p| p.to_str()),
        Some("/ca.pem")
    );
    assert!(tls.verify && tls.handshake_first);
    assert_eq!(tls.timeout, std::time::Duration::from_millis(500));
    for (text, expected) in [
        ("tls { cert_file: c }\n", "TLS needs cert_file and key_file"),
        (
            "tls { cert_file: c, key_file: k, verify: true }\n",
            "verify needs a ca_file",
        ),
        (
            "tls { cert_file: c, key_file: k, timeout: 0 }\n",
            "handshake timeout must be above 0",
        ),
        (
            "tls { cert_file: c, key_file: k, pinned_certs: [\"ab\"] }\n",
            "does not look like hex-encoded sha256",
        ),
        (
            "tls { cert_file: c, key_file: k, pinned_certs: [\"0000000000000000000000000000000000000000000000000000000000000000\"] }\n",
            "pinned_certs needs verify: true",
        ),
    ] {
        let message = load_text(text).unwrap_err().to_string();
        assert!(message.contains(expected), "{text:?}: {message}");
    }
}

#[test]
fn nkey_and_bcrypt_users_are_read() {
    let key = nkeys::KeyPair::new_user().public_key();
    let text = format!(
        "authorization {{ users: [{{ nkey: {key:?} }}, {{ user: a, password: \"$2a$11$abc\" }}] }}\n"
    );
    let users = load_text(&text).unwrap().settings.users.expect("users");
    assert_eq!(users[0].nkey.as_deref(), Some(key.as_str()));
    assert_eq!(
        (users[0].user.as_str(), users[0].password.as_str()),
        ("", "")
    );
    assert_eq!(users[1].password, "$2a$11$abc");
    for (text, expected) in [
        (
            format!("authorization {{ users: [{{ nkey: {key:?}, password: p }}] }}\n"),
            "cannot have a password",
        ),
        (
            format!("authorization {{ users: [{{ nkey: {key:?}, user: u }}] }}\n"),
            "a user name or an nkey, not both",
        ),
        (
            format!("authorization {{ users: [{{ nkey: {key:?} }}, {{ nkey: {key:?} }}] }}\n"),
            "is listed twice",
        ),
        (
            "authorization { users: [{ nkey: SUAXYZ }] }\n".to_string(),
            "is not a user's public nkey",
        ),
    ] {
        let message = load_text(&text).unwrap_err().to_string();
        assert!(message.contains(expected), "{text:?}: {message}");
    }
}

#[test]
fn jetstream_can_be_turned_off_and_made_strict() {
    for (text, on, strict) in [
        ("jetstream: disabled\n", Some(false), None),
        ("jetstream: enabled\n", Some(true), None),
        ("jetstream { enabled: false }\n", Some(false), None),
        ("jetstream { strict: true }\n", Some(true), Some(true)),
        (
            "jetstream { strict: false, store: /s }\n",
            Some(true),
            Some(false),
        ),
        ("port: 1\n", None, None),
    ] {
        let loaded = load_text(text).unwrap();
        let s = &loaded.settings;
        assert_eq!((s.jetstream, s.js_strict), (on, strict), "{text:?}");
        assert!(
            loaded.warnings.is_empty(),
            "{text:?}: {:?}",
            loaded.warnings
        );
    }
    let message = load_text("jetstream { strict: 1 }\n")
        .unwrap_err()
        .to_string();
    assert!(message.contains("invalid value for strict"), "{message}");
}

#[test]
fn a_user_without_a_password_has_an_empty_one() {
    let loaded =
        load_text("authorization { users: [{user: nopass}, {user: a, password: b}] }\n").unwrap();
    let users = loaded.settings.users.expect("users");
    assert_eq!(users[0].user, "nopass");
    assert_eq!(users[0].password, "");
    assert_eq!(users[1].password, "b");
}

#[test]
fn accounts_bring_their_users_jetstream_exports_and_imports() {
    let text = r#"
accounts {
  APP: {
    jetstream: enabled
    users: [ { user: a, password: b, permissions: { publish: "x.>", allow_responses: { max: 3, expires: "1s" } } } ]
    exports: [
      { stream: "events.>" }
      { service: "svc.*", response_type: stream, response_threshold: "5s", accounts: [OTHER] }
    ]
  }
  OTHER: {
    users: [ { user: c } ]
    imports: [
      { stream: { account: APP, subject: "events.>" }, prefix: app }
      { service: { account: APP, subject: "svc.*" }, to: "app.svc.*" }
    ]
  }
}
system_account: OTHER
"#;
    let settings = load_text(text).unwrap().settings;
    let users = settings.users.expect("users");
    assert_eq!(users[0].user, "a");
    assert_eq!(users[0].account.as_deref(), Some("APP"));
    assert_eq!(users[1].account.as_deref(), Some("OTHER"));
    let perms = users[0].permissions.as_ref().unwrap();
    assert_eq!(perms.publish.allow, vec!["x.>"]);
    assert_eq!(
        perms.responses,
        Some(crate::server::permissions::ResponsePermission {
            max: 3,
            expires: Some(Duration::from_secs(1))
        })
    );
    assert_eq!(settings.system_account.as_deref(), Some("OTHER"));
    let (app, other) = (&settings.accounts[0], &settings.accounts[1]);
    assert!(app.jetstream.is_some() && other.jetstream.is_none());
    assert_eq!(app.exports.len(), 2);
    assert_eq!(other.imports[0].local, "app.events.>");
    assert_eq!(other.imports[1].local, "app.svc.*");
    assert!(other.imports[1].service);
}

#[test]
fn inconsistent_accounts_are_refused_with_the_reason() {
    for (text, expected) in [
        (
            "accounts { A: { users: [{user: a}] }, B: { users: [{user: a}] } }\n",
            "Duplicate user \"a\" detected",
        ),
        (
            "accounts { A: {}, B: { imports: [{ stream: { account: A, subject: x } }] } }\n",
            "Error adding stream import \"x\": stream import not authorized",
        ),
        (
            "accounts { A: { exports: [{ stream: x, accounts: [C] }] }, B: { imports: [{ stream: { account: A, subject: x } }] } }\n",
            "\"C\" account not defined for stream export",
        ),
        (
            "accounts { A: { exports: [{ stream: x, accounts: [C] }] }, B: { imports: [{ stream: { account: A, subject: x } }] }, C: {} }\n",
            "stream import not authorized",
        ),
        (
            "accounts { A: { exports: [{ stream: q }], imports: [{ stream: { account: B, subject: q } }] }, \
             B: { exports: [{ stream: q }], imports: [{ stream: { account: A, subject: q } }] } }\n",
            "Error adding stream import \"q\": import forms a cycle",
        ),
        (
            "accounts { A: { exports: [{ stream: \"q.>\" }] }, B: { imports: [{ stream: { account: A, subject: \"q.>\" }, prefix: \"p.*\" }] } }\n",
            "stream import prefix can not contain wildcard tokens",
        ),
        (
            "accounts { A: { users: [{user: a}] } }\nauthorization { users: [{user: a}] }\n",
            "Duplicate user \"a\" detected",
        ),
        (
            "authorization { user: x, password: y }\naccounts { A: {} }\n",
            "Can not have a single user/pass and accounts",
        ),
        ("accounts { $G: {} }\n", "\"$G\" is a Reserved Account"),
        (
            "accounts { A: { exports: [{ stream: x }] }, B: { imports: [{ service: { account: A, subject: x } }] } }\n",
            "Error adding service import \"x\": service import not authorized",
        ),
        (
            "accounts { B: { imports: [{ stream: { account: NOPE, subject: x } }] } }\n",
            "\"NOPE\" account not defined for stream import",
        ),
        (
            "accounts { A: { exports: [{ service: x }], imports: [{ service: { account: B, subject: y }, to: x }] }, \
             B: { exports: [{ service: y }], imports: [{ service: { account: A, subject: x }, to: y }] } }\n",
            "Error adding service import \"y\": import forms a cycle (A -> B -> A",
        ),
        (
            "accounts { A: { exports: [{ stream: \"x.*\" }] }, B: { imports: [{ stream: { account: A, subject: \"x.*\" }, to: \"y.>\" }] } }\n",
            "cannot stand for",
        ),
        (
            "accounts { A: { exports: [{ service: x, response_type: many }] } }\n",
            "Unknown response type: \"many\"",
        ),
    ] {
        let message = load_text(text).unwrap_err().to_string();
        assert!(message.contains(expected), "{text:?}: {message}");
    }
}

#[test]
fn storage_limits_are_read_as_sizes() {
    let loaded = load_text("jetstream { max_file_store: 1GB, max_mem: 64MB }\n").unwrap();
    assert_eq!(loaded.settings.max_file_store, Some(1 << 30));
    assert_eq!(loaded.settings.max_memory_store, Some(64 << 20));
}

#[test]
fn a_jetstream_domain_is_one_token() {
    let loaded = load_text("jetstream { domain: hub-1 }\n").unwrap();
    assert_eq!(loaded.settings.js_domain.as_deref(), Some("hub-1"));
    for bad in ["\"a.b\"", "\"\"", "\"a b\""] {
        let message = load_text(&format!("jetstream {{ domain: {bad} }}\n"))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("invalid value for domain"),
            "{bad}: {message}"
        );
    }
}

#[test]
fn operator_mode_is_read_and_its_impossible_combinations_refused() {
    let operator = nkeys::KeyPair::new_operator();
    let jwt = crate::server::jwt::encode(
        serde_json::json!({"sub": operator.public_key(), "nats": {"type": "operator", "version": 2}}),
        &operator,
    );
    let loaded = load_text(&format!(
        "operator: \"{jwt}\"\nresolver: MEMORY\nresolver_preload: {{ AAA: \"x.y.z\" }}\n"
    ))
    .unwrap();
    let config = loaded.settings.operator.expect("operator mode");
    assert_eq!(config.operators, vec![jwt.clone()]);
    assert_eq!(
        config.resolver,
        crate::server::operator::ResolverConfig::Memory {
            preload: vec!["x.y.z".into()]
        }
    );
    for (text, expected) in [
        (
            format!("operator: \"{jwt}\"\n"),
            "operator mode needs a resolver",
        ),
        ("resolver: MEMORY\n".to_string(), "a resolver needs an operator"),
        (
            format!("operator: \"{jwt}\"\nresolver: MEMORY\naccounts {{ A: {{}} }}\n"),
            "not from accounts or authorization blocks",
        ),
        (
            format!("operator: \"{jwt}\"\nresolver: \"URL(http://x)\"\n"),
            "no URL resolver",
        ),
        (
            format!("operator: \"{jwt}\"\nresolver {{ type: full, dir: /tmp/j, allow_delete: true }}\n"),
            "CLAIMS.DELETE",
        ),
        (
            format!("operator: \"{jwt}\"\nresolver {{ type: full, dir: /tmp/j }}\nresolver_preload: {{ A: b }}\n"),
            "resolver_preload belongs with resolver: MEMORY",
        ),
        (
            "operator: /nonexistent/op.jwt\nresolver: MEMORY\n".to_string(),
            "cannot read operator JWT",
        ),
    ] {
        let message = load_text(&text).unwrap_err().to_string();
        assert!(message.contains(expected), "{text:?}: {message}");
    }
}
