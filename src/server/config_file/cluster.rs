//! The `cluster {}` block: the route port, the routes to dial and how this server presents
//! itself to them, their credentials and TLS. What routes cannot do (permissions, pooling,
//! compression) is refused by name.

use super::values::{boolean, count, invalid, ip, listen, map, port, seconds, string, unsupported};
use super::ConfigFileError;
use crate::cluster::config::{ClusterSettings, RouteUrl};
use crate::conf::{Entry, Value};

/// Keys of nats-server's cluster block that jetlog cannot honour yet, and why.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("permissions", "route permissions are not implemented"),
    (
        "pool_size",
        "jetlog keeps one route per server (a nats-server peer needs pool_size: -1 only to avoid a refused extra connection)",
    ),
    ("compression", "route compression is not implemented"),
    ("accounts", "routes dedicated to accounts are not implemented"),
    ("pinned_accounts", "routes dedicated to accounts are not implemented"),
    ("ping_interval", "routes are pinged at the server's ping_interval (at most 30s)"),
    ("ping_max", "routes use the server's ping_max"),
];

impl super::Mapper<'_> {
    /// Reads the block into the settings.
    pub(super) fn cluster(&mut self, entry: &Entry) -> Result<(), ConfigFileError> {
        let block = map(entry)?;
        let mut settings = ClusterSettings::default();
        for inner in block.effective() {
            match inner.key.as_str() {
                "name" => settings.name = Some(string(inner)?),
                "listen" => {
                    let (host, p) = listen(inner)?;
                    settings.host = host.or(settings.host);
                    settings.port = Some(route_port(inner, p)?);
                }
                "host" | "net" => settings.host = Some(ip(inner)?),
                "port" => settings.port = Some(route_port(inner, port(inner, true)?)?),
                "routes" => settings.routes = Some(routes(inner)?),
                "advertise" | "cluster_advertise" => settings.advertise = Some(string(inner)?),
                "no_advertise" => settings.no_advertise = Some(boolean(inner)?),
                "connect_retries" => settings.connect_retries = Some(count(inner)?),
                "authorization" => authorization(inner, &mut settings)?,
                "tls" => {
                    let mut tls = self.tls(inner)?;
                    if tls.verify_and_map {
                        return Err(unsupported(
                            inner,
                            "mapping route certificates to users is not implemented",
                        ));
                    }
                    if tls.ca_file.is_none() {
                        return Err(invalid(
                            inner,
                            "cluster.tls needs ca_file: routes verify each other's certificates against it",
                        ));
                    }
                    // Routes always verify each other, as nats-server's do.
                    tls.verify = true;
                    settings.tls = Some(tls);
                }
                key => {
                    if let Some((_, why)) = UNSUPPORTED.iter().find(|(k, _)| *k == key) {
                        return Err(unsupported(inner, why));
                    }
                    self.other(inner, key, "cluster.")?;
                }
            }
        }
        self.loaded.settings.cluster = settings;
        Ok(())
    }
}

/// `authorization { user, password, timeout }`: what every route must present. nats-server's
/// other ways (tokens, users lists, permissions) are refused by name.
fn authorization(entry: &Entry, settings: &mut ClusterSettings) -> Result<(), ConfigFileError> {
    for inner in map(entry)?.effective() {
        match inner.key.as_str() {
            "user" | "username" => settings.user = Some(string(inner)?),
            "password" | "pass" => settings.password = Some(string(inner)?),
            "timeout" => settings.auth_timeout = Some(seconds(inner)?),
            "token" => {
                return Err(unsupported(
                    inner,
                    "routes authenticate with a user and password",
                ))
            }
            "users" | "nkeys" => {
                return Err(unsupported(
                    inner,
                    "routes authenticate with one user and password",
                ))
            }
            "permissions" => {
                return Err(unsupported(inner, "route permissions are not implemented"))
            }
            _ => {
                return Err(invalid(
                    inner,
                    "cluster.authorization takes user, password and timeout",
                ))
            }
        }
    }
    Ok(())
}

/// -1 picks a free port, as for the client port.
fn route_port(entry: &Entry, p: i32) -> Result<u16, ConfigFileError> {
    match p {
        -1 => Ok(0),
        p => u16::try_from(p).map_err(|_| invalid(entry, format!("invalid port {p}"))),
    }
}

/// `routes: [url, …]` (or one URL as a string).
fn routes(entry: &Entry) -> Result<Vec<RouteUrl>, ConfigFileError> {
    let texts: Vec<&str> = match &entry.item.value {
        Value::String(one) => vec![one.as_str()],
        Value::Array(items) => {
            let mut texts = Vec::with_capacity(items.len());
            for item in items {
                let Value::String(text) = &item.value else {
                    return Err(invalid(entry, "each route is a URL string"));
                };
                texts.push(text.as_str());
            }
            texts
        }
        other => {
            return Err(invalid(
                entry,
                format!("expected a list of route URLs, found {}", other.kind()),
            ))
        }
    };
    texts
        .into_iter()
        .map(|t| RouteUrl::parse(t).map_err(|e| invalid(entry, e)))
        .collect()
}
