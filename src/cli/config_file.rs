//! What the keys of a nats-server config file mean to `jetlog server`.
//!
//! Every key is either honoured, refused with an error naming it and its line (a setting jetlog
//! cannot honour yet must never be dropped silently: a user would believe it in force), or
//! unknown: a warning, or an error under `strict: true`, as nats-server does. Keys are
//! compared case-sensitively, as in nats-server's `opts.go`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::config_users;
use crate::conf::{self, ConfError, Document, Entry, Item, Map, Position, Value};
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
    /// The one account's `jetstream { … }` limits.
    pub account_limits: crate::server::AccountLimits,
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
    ("cluster", "clustering is not implemented"),
    ("gateway", "gateways are not implemented"),
    ("leafnodes", "leaf nodes are not implemented"),
    ("websocket", "websocket clients are not implemented"),
    ("mqtt", "MQTT is not implemented"),
    (
        "operator",
        "operator mode (JWT accounts) is not implemented",
    ),
    (
        "resolver",
        "operator mode (JWT accounts) is not implemented",
    ),
    ("system_account", "the system account is not implemented"),
    ("mappings", "subject mappings are not implemented"),
];

/// Keys of nats-server's `tls {}` block that jetlog cannot honour yet, and why.
const UNSUPPORTED_TLS: &[(&str, &str)] = &[
    (
        "verify_cert_and_check_known_urls",
        "that check belongs to clusters, which are not implemented",
    ),
    (
        "cipher_suites",
        "choosing cipher suites is not implemented (rustls' safe defaults apply)",
    ),
    (
        "curve_preferences",
        "choosing curves is not implemented (rustls' safe defaults apply)",
    ),
    (
        "min_version",
        "choosing the TLS version is not implemented (TLS 1.2 and 1.3 apply)",
    ),
    ("insecure", "skipping verification is not implemented"),
    (
        "cert_store",
        "the Windows certificate store does not exist here",
    ),
    (
        "cert_match",
        "the Windows certificate store does not exist here",
    ),
    (
        "cert_match_by",
        "the Windows certificate store does not exist here",
    ),
    (
        "ca_certs_match",
        "the Windows certificate store does not exist here",
    ),
    ("certs", "several certificates (SNI) are not implemented"),
    ("ocsp_peer", "OCSP is not implemented"),
    (
        "connection_rate_limit",
        "handshake rate limits are not implemented",
    ),
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
    };
    for entry in root.effective() {
        mapper.top_level(entry)?;
    }
    Ok(mapper.loaded)
}

struct Mapper<'a> {
    loaded: LoadedConfig,
    strict: bool,
    /// Keys that served as `$NAME` variables: not unknown, just definitions.
    variables: &'a [String],
}

impl Mapper<'_> {
    fn top_level(&mut self, entry: &Entry) -> Result<(), ConfigFileError> {
        let s = &mut self.loaded.settings;
        match entry.key.as_str() {
            "strict" => {}
            "accounts" => {
                if s.users.is_some() {
                    return Err(invalid(
                        entry,
                        "users are given twice (accounts and authorization)",
                    ));
                }
                let (users, limits) = config_users::single_account(entry)?;
                s.users = Some(users);
                s.account_limits = limits;
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

    /// `tls {}`: the server's certificate and key, and client verification.
    fn tls(&mut self, entry: &Entry) -> Result<TlsConfig, ConfigFileError> {
        let block = map(entry)?;
        let mut tls = TlsConfig::new(PathBuf::new(), PathBuf::new());
        for inner in block.effective() {
            match inner.key.as_str() {
                "cert_file" => tls.cert_file = string(inner)?.into(),
                "key_file" => tls.key_file = string(inner)?.into(),
                "ca_file" => tls.ca_file = Some(string(inner)?.into()),
                "verify" => tls.verify = boolean(inner)?,
                "verify_and_map" => tls.verify_and_map = boolean(inner)?,
                "timeout" => tls.timeout = seconds(inner)?,
                "handshake_first" | "first" | "immediate" => tls.handshake_first = boolean(inner)?,
                "pinned_certs" => tls.pinned_certs = pins(inner)?,
                key => match UNSUPPORTED_TLS.iter().find(|(k, _)| *k == key) {
                    Some((_, why)) => return Err(unsupported(inner, why)),
                    None => self.other(inner, key, "tls.")?,
                },
            }
        }
        if tls.cert_file.as_os_str().is_empty() || tls.key_file.as_os_str().is_empty() {
            return Err(invalid(entry, "TLS needs cert_file and key_file"));
        }
        // verify_and_map implies verify, as in nats-server.
        tls.verify |= tls.verify_and_map;
        if tls.verify && tls.ca_file.is_none() {
            return Err(invalid(
                entry,
                "verify needs a ca_file to verify client certificates against",
            ));
        }
        if !tls.pinned_certs.is_empty() && !tls.verify {
            return Err(invalid(
                entry,
                "pinned_certs needs verify: true (clients must present a certificate)",
            ));
        }
        if tls.timeout.is_zero() {
            return Err(invalid(entry, "the handshake timeout must be above 0"));
        }
        Ok(tls)
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
                "users" if s.users.is_some() => {
                    return Err(invalid(
                        inner,
                        "users are given twice (accounts and authorization)",
                    ))
                }
                "users" => s.users = Some(config_users::users(inner, block)?),
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

pub(super) fn invalid(entry: &Entry, message: impl Into<String>) -> ConfigFileError {
    ConfigFileError::Invalid {
        at: entry.item.position.clone(),
        key: entry.key.clone(),
        message: message.into(),
    }
}

pub(super) fn unsupported(entry: &Entry, why: &'static str) -> ConfigFileError {
    ConfigFileError::Unsupported {
        at: entry.key_position.clone(),
        key: entry.key.clone(),
        why,
    }
}

fn found(item: &Item) -> String {
    format!("found {}", item.value.kind())
}

pub(super) fn string(entry: &Entry) -> Result<String, ConfigFileError> {
    match &entry.item.value {
        Value::String(s) => Ok(s.clone()),
        _ => match &entry.item.literal {
            // An unquoted word that looked like a number (`server_name: 42`) is still text.
            Some(literal) => Ok(literal.clone()),
            None => Err(invalid(
                entry,
                format!("expected a string, {}", found(&entry.item)),
            )),
        },
    }
}

/// `pinned_certs`: hex SHA-256 of DER SubjectPublicKeyInfo, lower-cased as compared.
fn pins(entry: &Entry) -> Result<Vec<String>, ConfigFileError> {
    let Value::Array(items) = &entry.item.value else {
        return Err(invalid(
            entry,
            "expected a list of hex-encoded sha256 of DER encoded SubjectPublicKeyInfo",
        ));
    };
    let mut pins = Vec::with_capacity(items.len());
    for item in items {
        let Value::String(text) = &item.value else {
            return Err(invalid(entry, "each pinned certificate is a hex string"));
        };
        let pin = text.to_ascii_lowercase();
        if !crate::server::tls::is_pin(&pin) {
            return Err(invalid(
                entry,
                format!(
                    "{pin} does not look like hex-encoded sha256 of DER encoded SubjectPublicKeyInfo"
                ),
            ));
        }
        pins.push(pin);
    }
    Ok(pins)
}

pub(super) fn map(entry: &Entry) -> Result<&Map, ConfigFileError> {
    match &entry.item.value {
        Value::Map(m) => Ok(m),
        _ => Err(invalid(
            entry,
            format!("expected a block, {}", found(&entry.item)),
        )),
    }
}

fn boolean(entry: &Entry) -> Result<bool, ConfigFileError> {
    match entry.item.value {
        Value::Bool(b) => Ok(b),
        _ => Err(invalid(
            entry,
            format!("expected true or false, {}", found(&entry.item)),
        )),
    }
}

/// A non-negative integer that fits the target (sizes such as `8MB` included).
fn count<T: TryFrom<i64>>(entry: &Entry) -> Result<T, ConfigFileError> {
    match entry.item.value {
        Value::Integer(n) if n >= 0 => {
            T::try_from(n).map_err(|_| invalid(entry, format!("{n} is out of range")))
        }
        _ => Err(invalid(
            entry,
            format!(
                "expected a non-negative integer or size, {}",
                found(&entry.item)
            ),
        )),
    }
}

/// A port: 0-65535, or -1 (a free port) where `allow_random`.
fn port(entry: &Entry, allow_random: bool) -> Result<i32, ConfigFileError> {
    match entry.item.value {
        Value::Integer(-1) if allow_random => Ok(-1),
        Value::Integer(n) if (0..=65535).contains(&n) => Ok(n as i32),
        _ => Err(invalid(entry, "expected a port number from 0 to 65535")),
    }
}

fn ip(entry: &Entry) -> Result<IpAddr, ConfigFileError> {
    let text = string(entry)?;
    parse_host(&text).ok_or_else(|| invalid(entry, format!("{text:?} is not an IP address")))
}

fn parse_host(text: &str) -> Option<IpAddr> {
    let text = text.trim_start_matches('[').trim_end_matches(']');
    match text {
        "localhost" => Some(IpAddr::from([127, 0, 0, 1])),
        "" => Some(IpAddr::from([0, 0, 0, 0])),
        _ => text.parse().ok(),
    }
}

/// `listen`/`http`: `host:port`, `:port` or a bare port number.
fn listen(entry: &Entry) -> Result<(Option<IpAddr>, i32), ConfigFileError> {
    if let Value::Integer(_) = entry.item.value {
        return Ok((None, port(entry, true)?));
    }
    let text = string(entry)?;
    let bad = || invalid(entry, format!("expected host:port, found {text:?}"));
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let port: i32 = port.parse().map_err(|_| bad())?;
    if !(-1..=65535).contains(&port) {
        return Err(bad());
    }
    let host = parse_host(host).ok_or_else(bad)?;
    Ok((Some(host), port))
}

/// A duration: a Go duration string (`"2m"`, `1h30m`), or an integer of seconds as nats-server
/// still accepts. An unquoted `2m` is read as two minutes: nats-server would read the `m` as a
/// size suffix and make it 2,000,000 seconds, which no one means.
fn duration(entry: &Entry) -> Result<Duration, ConfigFileError> {
    let item = &entry.item;
    if let Some(text) = item
        .literal
        .as_deref()
        .filter(|t| t.ends_with(|c: char| c.is_ascii_alphabetic()))
    {
        return conf::parse_duration(text).map_err(|e| invalid(entry, e));
    }
    match &item.value {
        Value::String(text) => conf::parse_duration(text).map_err(|e| invalid(entry, e)),
        Value::Integer(n) if *n >= 0 => Ok(Duration::from_secs(n.unsigned_abs())),
        _ => Err(invalid(
            entry,
            format!("expected a duration such as \"2m\", {}", found(item)),
        )),
    }
}

/// `authorization.timeout`: seconds, possibly fractional (nats-server reads a float).
fn seconds(entry: &Entry) -> Result<Duration, ConfigFileError> {
    match entry.item.value {
        Value::Float(f) => Duration::try_from_secs_f64(f)
            .map_err(|_| invalid(entry, "expected a non-negative number of seconds")),
        _ => duration(entry),
    }
}

fn sync_mode(entry: &Entry) -> Result<SyncMode, ConfigFileError> {
    if let Value::String(text) = &entry.item.value {
        match text.as_str() {
            "always" => return Ok(SyncMode::Always),
            "never" => return Ok(SyncMode::Never),
            _ => {}
        }
    }
    match duration(entry)? {
        d if d.is_zero() => Err(invalid(entry, "the sync interval must be above 0")),
        d => Ok(SyncMode::Interval(d)),
    }
}

#[cfg(test)]
#[path = "config_file_tests.rs"]
mod tests;
