//! What the keys of a nats-server config file mean to the server.
//!
//! Every key is either honoured, refused with an error naming it and its line (a setting jetlog
//! cannot honour yet must never be dropped silently: a user would believe it in force), or
//! unknown: a warning, or an error under `strict: true`, as nats-server does. Keys are
//! compared case-sensitively, as in nats-server's `opts.go`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod accounts;
mod cluster;
mod operator;
mod tls;
mod users;
mod values;

use values::{
    boolean, count, duration, invalid, ip, listen, map, port, seconds, string, sync_mode,
    unsupported,
};

use crate::conf::{self, ConfError, Document, Entry, Position, Value};
use crate::server::tls::TlsConfig;
use crate::server::SyncMode;

/// Settings read from a config file; `None` leaves the flag or the default in force.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FileSettings {
    pub addr: Option<IpAddr>,
    /// As the `-p` flag: -1 picks a free port.
    pub port: Option<i32>,
    pub server_name: Option<String>,
    /// As the `-m` flag: 0 leaves monitoring off, -1 picks a free port.
    pub http_port: Option<i32>,
    /// As the `--https_port` flag: monitoring over HTTPS with the `tls` block's certificates.
    pub https_port: Option<i32>,
    /// The monitor's address (`http_host`, or the host of `http: host:port`).
    pub http_host: Option<IpAddr>,
    pub max_payload: Option<usize>,
    pub max_connections: Option<usize>,
    pub max_control_line: Option<usize>,
    pub max_pending: Option<usize>,
    pub ping_interval: Option<Duration>,
    pub ping_max: Option<u32>,
    pub write_deadline: Option<Duration>,
    pub debug: Option<bool>,
    pub trace: Option<bool>,
    pub logtime: Option<bool>,
    pub log_file: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub ports_file_dir: Option<PathBuf>,
    pub store_dir: Option<PathBuf>,
    pub sync: Option<SyncMode>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
    /// `authorization { users: [...] }`, each user with its permissions resolved.
    pub users: Option<Vec<crate::server::UserAuth>>,
    pub max_memory_store: Option<u64>,
    pub max_file_store: Option<u64>,
    pub js_domain: Option<String>,
    pub auth_timeout: Option<Duration>,
    /// `jetstream: enabled|disabled`, a `jetstream {}` block (on unless it says
    /// `enabled: false`).
    pub jetstream: Option<bool>,
    /// `jetstream { strict }`: refuse JetStream API requests with unknown fields.
    pub js_strict: Option<bool>,
    /// `tls { cert_file, key_file, ca_file, verify, timeout, handshake_first }`.
    pub tls: Option<TlsConfig>,
    /// `allow_non_tls`: plaintext clients beside TLS ones on the client port.
    pub allow_non_tls: Option<bool>,
    /// `no_auth_user`: the user a client without credentials is taken for.
    pub no_auth_user: Option<String>,
    /// `accounts { … }`.
    pub accounts: Vec<crate::server::accounts::AccountSettings>,
    /// `system_account`: the account of the server's own requests and events.
    pub system_account: Option<String>,
    /// `operator` and `resolver` (with `resolver_preload`): operator mode.
    pub operator: Option<crate::server::operator::OperatorConfig>,
    /// `cluster {}`: routes to the other servers.
    pub cluster: crate::cluster::config::ClusterSettings,
    /// `client_advertise`: the client URL told to the cluster's clients.
    pub client_advertise: Option<String>,
    pub lame_duck_duration: Option<Duration>,
    pub lame_duck_grace_period: Option<Duration>,
}

/// A config file's settings and the warnings to log once logging is set up.
#[derive(Debug, Default)]
pub struct LoadedConfig {
    pub settings: FileSettings,
    pub warnings: Vec<String>,
}

/// Why a config file cannot be used. Each names the file, line and column.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error(transparent)]
    Syntax(#[from] ConfError),
    #[error("{at}: invalid value for {key}: {message}")]
    Invalid {
        at: Position,
        key: String,
        message: String,
    },
    #[error("{at}: {key} is not supported by jetlog yet: {why}")]
    Unsupported {
        at: Position,
        key: String,
        why: &'static str,
    },
    #[error("{at}: unknown key {key} (refused because strict is true)")]
    Unknown { at: Position, key: String },
}

/// Keys of nats-server that jetlog knows it cannot honour, and why.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("gateway", "gateways are not implemented"),
    ("leafnodes", "leaf nodes are not implemented"),
    ("websocket", "websocket clients are not implemented"),
    ("mqtt", "MQTT is not implemented"),
    (
        "trusted_keys",
        "trust operators through their JWTs (operator)",
    ),
    ("trusted", "trust operators through their JWTs (operator)"),
    ("mappings", "subject mappings are not implemented"),
];

/// Reads a config file and maps it onto server settings.
pub fn load(path: &Path) -> Result<LoadedConfig, ConfigFileError> {
    let document = conf::parse_file(path)?;
    map_document(&document)
}

/// Maps a parsed document onto server settings.
pub fn map_document(document: &Document) -> Result<LoadedConfig, ConfigFileError> {
    let root = &document.root;
    let strict = match root.get("strict") {
        Some(entry) => boolean(entry)?,
        None => false,
    };
    let mut mapper = Mapper {
        loaded: LoadedConfig::default(),
        strict,
        variables: &document.used_variables,
        operators: Vec::new(),
        resolver: None,
        preload: Vec::new(),
    };
    for entry in root.effective() {
        mapper.top_level(entry)?;
    }
    if let Some(entry) = root.get("operator").or_else(|| root.get("operators")) {
        let operators = std::mem::take(&mut mapper.operators);
        let resolver = mapper.resolver.take();
        let preload = std::mem::take(&mut mapper.preload);
        let s = &mapper.loaded.settings;
        if !s.accounts.is_empty() || s.users.is_some() || s.user.is_some() || s.token.is_some() {
            return Err(invalid(
                entry,
                "operator mode takes its accounts and users from JWTs, not from accounts or authorization blocks",
            ));
        }
        let config = operator::assemble(entry, operators, resolver, preload)?;
        mapper.loaded.settings.operator = Some(config);
    } else if let Some(entry) = root
        .get("resolver")
        .or_else(|| root.get("resolver_preload"))
    {
        return Err(invalid(entry, "a resolver needs an operator"));
    }
    let s = &mapper.loaded.settings;
    if let (false, Some(entry)) = (s.accounts.is_empty(), root.get("authorization")) {
        if s.user.is_some() || s.token.is_some() {
            let what = if s.token.is_some() {
                "a token"
            } else {
                "a single user/pass"
            };
            return Err(invalid(entry, format!("Can not have {what} and accounts")));
        }
    }
    Ok(mapper.loaded)
}

struct Mapper<'a> {
    loaded: LoadedConfig,
    strict: bool,
    /// Keys that served as `$NAME` variables: not unknown, just definitions.
    variables: &'a [String],
    /// Operator mode's parts, put together once the whole file is read.
    operators: Vec<String>,
    resolver: Option<crate::server::operator::ResolverConfig>,
    preload: Vec<String>,
}

impl Mapper<'_> {
    fn top_level(&mut self, entry: &Entry) -> Result<(), ConfigFileError> {
        let s = &mut self.loaded.settings;
        match entry.key.as_str() {
            "strict" => {}
            "accounts" => {
                let (accounts, users) = accounts::accounts(entry)?;
                s.accounts = accounts;
                merge_users(entry, &mut s.users, users)?;
            }
            "listen" => {
                let (host, port) = listen(entry)?;
                if let Some(host) = host {
                    s.addr = Some(host);
                }
                s.port = Some(port);
            }
            "host" | "net" => s.addr = Some(ip(entry)?),
            "port" => s.port = Some(port(entry, true)?),
            "server_name" => s.server_name = Some(string(entry)?),
            "http_port" | "monitor_port" => s.http_port = Some(port(entry, true)?),
            "https_port" => s.https_port = Some(port(entry, true)?),
            "allow_non_tls" => s.allow_non_tls = Some(boolean(entry)?),
            "no_auth_user" => s.no_auth_user = Some(string(entry)?),
            "system_account" | "system" => s.system_account = Some(string(entry)?),
            "operator" | "operators" | "root" | "roots" => {
                self.operators = operator::operators(entry)?
            }
            "resolver" | "account_resolver" | "accounts_resolver" => {
                self.resolver = Some(operator::resolver(entry)?)
            }
            "resolver_preload" => self.preload = operator::preload(entry)?,
            "http_host" => s.http_host = Some(ip(entry)?),
            "http" => {
                let (host, port) = listen(entry)?;
                if let Some(host) = host {
                    s.http_host = Some(host);
                }
                s.http_port = Some(port);
            }
            "max_payload" => s.max_payload = Some(count(entry)?),
            "max_connections" | "max_conn" => s.max_connections = Some(count(entry)?),
            "max_control_line" => s.max_control_line = Some(count(entry)?),
            "max_pending" => s.max_pending = Some(count(entry)?),
            "ping_interval" => s.ping_interval = Some(duration(entry)?),
            "ping_max" => s.ping_max = Some(count(entry)?),
            "write_deadline" => s.write_deadline = Some(duration(entry)?),
            "debug" => s.debug = Some(boolean(entry)?),
            "trace" => s.trace = Some(boolean(entry)?),
            "logtime" => s.logtime = Some(boolean(entry)?),
            "logfile" | "log_file" => s.log_file = Some(string(entry)?.into()),
            "pidfile" | "pid_file" => s.pid_file = Some(string(entry)?.into()),
            "ports_file_dir" => s.ports_file_dir = Some(string(entry)?.into()),
            "jetstream" => self.jetstream(entry)?,
            "cluster" => self.cluster(entry)?,
            "client_advertise" => s.client_advertise = Some(string(entry)?),
            "lame_duck_duration" => s.lame_duck_duration = Some(duration(entry)?),
            "lame_duck_grace_period" => s.lame_duck_grace_period = Some(duration(entry)?),
            "authorization" => self.authorization(entry)?,
            "tls" => {
                let tls = self.tls(entry)?;
                self.loaded.settings.tls = Some(tls);
            }
            key => self.other(entry, key, "")?,
        }
        Ok(())
    }

    fn jetstream(&mut self, entry: &Entry) -> Result<(), ConfigFileError> {
        let enabled = match &entry.item.value {
            Value::Map(_) => true,
            Value::Bool(on) => *on,
            Value::String(text) => match text.to_ascii_lowercase().as_str() {
                "enabled" | "enable" => true,
                "disabled" | "disable" => false,
                _ => return Err(invalid(entry, "expected enabled, disabled or a block")),
            },
            other => {
                return Err(invalid(
                    entry,
                    format!("expected a block or a boolean, found {}", other.kind()),
                ))
            }
        };
        self.loaded.settings.jetstream = Some(enabled);
        let Value::Map(block) = &entry.item.value else {
            return Ok(());
        };
        for inner in block.effective() {
            let s = &mut self.loaded.settings;
            match inner.key.as_str() {
                "store_dir" | "store" | "storedir" => s.store_dir = Some(string(inner)?.into()),
                "sync_interval" | "sync" => s.sync = Some(sync_mode(inner)?),
                "enabled" | "enable" => s.jetstream = Some(boolean(inner)?),
                "strict" => s.js_strict = Some(boolean(inner)?),
                "max_memory_store" | "max_mem_store" | "max_mem" => {
                    s.max_memory_store = Some(count(inner)?)
                }
                "max_file_store" | "max_file" => s.max_file_store = Some(count(inner)?),
                "domain" => {
                    let domain = string(inner)?;
                    let valid = !domain.is_empty()
                        && domain
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                    if !valid {
                        return Err(invalid(
                            inner,
                            "a domain is one subject token of letters, digits, - and _",
                        ));
                    }
                    s.js_domain = Some(domain);
                }
                key => self.other(inner, key, "jetstream.")?,
            }
        }
        Ok(())
    }

    fn authorization(&mut self, entry: &Entry) -> Result<(), ConfigFileError> {
        let block = map(entry)?;
        for inner in block.effective() {
            let s = &mut self.loaded.settings;
            match inner.key.as_str() {
                "user" | "username" => s.user = Some(string(inner)?),
                // A bcrypt hash (`$2a$…`) is checked with bcrypt, as nats-server does.
                "password" | "pass" => s.password = Some(string(inner)?),
                "token" => s.token = Some(string(inner)?),
                "timeout" => s.auth_timeout = Some(seconds(inner)?),
                // Users of `authorization` are the global account's, beside the accounts' own.
                "users" => merge_users(inner, &mut s.users, users::users(inner, block)?)?,
                // Read with `users`, which it applies to.
                "default_permissions" => {}
                "permissions" => {
                    return Err(unsupported(
                        inner,
                        "permissions apply to entries of users, not to a single user",
                    ))
                }
                "auth_callout" => {
                    return Err(unsupported(inner, "auth callout is not implemented"))
                }
                "nkeys" => {
                    return Err(unsupported(
                        inner,
                        "list nkey users in users: [{ nkey: U… }]",
                    ))
                }
                key => self.other(inner, key, "authorization.")?,
            }
        }
        let s = &self.loaded.settings;
        if s.users.is_some() && (s.user.is_some() || s.password.is_some() || s.token.is_some()) {
            return Err(invalid(
                entry,
                "users cannot be combined with user, password or token",
            ));
        }
        if block.get("default_permissions").is_some() && s.users.is_none() {
            return Err(invalid(entry, "default_permissions needs a users list"));
        }
        match (&s.user, &s.password) {
            (Some(_), None) | (None, Some(_)) => {
                Err(invalid(entry, "user and password must be given together"))
            }
            _ => Ok(()),
        }
    }

    /// A key that is not honoured here: refused when known unsupported, else unknown.
    fn other(&mut self, entry: &Entry, key: &str, prefix: &str) -> Result<(), ConfigFileError> {
        if prefix.is_empty() {
            if let Some((_, why)) = UNSUPPORTED.iter().find(|(k, _)| *k == key) {
                return Err(unsupported(entry, why));
            }
            if self.variables.iter().any(|v| v == key) {
                return Ok(());
            }
        }
        let full = format!("{prefix}{key}");
        if self.strict {
            return Err(ConfigFileError::Unknown {
                at: entry.key_position.clone(),
                key: full,
            });
        }
        self.loaded.warnings.push(format!(
            "{}: unknown configuration key {full} is ignored",
            entry.key_position
        ));
        Ok(())
    }
}

/// Adds users read from one block to those read from another; a user in both is an error.
fn merge_users(
    entry: &Entry,
    known: &mut Option<Vec<crate::server::UserAuth>>,
    more: Vec<crate::server::UserAuth>,
) -> Result<(), ConfigFileError> {
    if more.is_empty() {
        return Ok(());
    }
    let list = known.get_or_insert_with(Vec::new);
    for user in more {
        if list.iter().any(|u| accounts::same_user(u, &user)) {
            return Err(accounts::duplicate_user(entry, &user));
        }
        list.push(user);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
