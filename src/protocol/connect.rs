//! The JSON bodies of INFO (server → client) and CONNECT (client → server).

use serde::{Deserialize, Serialize};

/// The nats-server version whose client-visible behaviour jetlog matches. Clients gate features
/// on INFO's `version` (nats.go uses the 2.9+ consumer-create subjects only above 2.9.0), so we
/// advertise the release line we follow, and jetlog's own version in `jetlog_version`.
pub const NATS_COMPAT_VERSION: &str = "2.10.0";

/// The INFO a client receives on connect. Field names and presence follow nats-server's
/// `Info` struct (server/server.go): the always-present fields are never skipped, the
/// optional ones are skipped when empty or false.
#[derive(Debug, Clone, Serialize)]
pub struct ServerInfo {
    pub server_id: String,
    pub server_name: String,
    pub version: String,
    pub proto: u8,
    pub go: String,
    pub host: String,
    pub port: u16,
    pub headers: bool,
    pub max_payload: usize,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub auth_required: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tls_required: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tls_verify: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tls_available: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub jetstream: bool,
    /// The JetStream API level served, when JetStream is on (nats-server 2.11+).
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub api_lvl: u32,
    /// The challenge an nkey user signs; sent only when nkey users are configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(skip_serializing_if = "is_zero")]
    pub client_id: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub client_ip: String,
    /// The server is in lame duck mode: clients should move to another server.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ldm: bool,
    /// The cluster's name, when the server is in one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Where clients may reconnect: this server and the others of its cluster.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub connect_urls: Vec<String>,
    /// jetlog's own version; clients ignore unknown fields.
    pub jetlog_version: String,
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What a client says about itself in CONNECT. Omitted fields take nats-server's defaults:
/// verbose, pedantic and echo are true unless the client says otherwise (the JSON is decoded
/// on top of those defaults in server/client.go processConnect).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ConnectOptions {
    pub verbose: bool,
    pub pedantic: bool,
    pub echo: bool,
    pub headers: bool,
    pub no_responders: bool,
    pub protocol: i64,
    pub user: Option<String>,
    pub pass: Option<String>,
    pub auth_token: Option<String>,
    /// An nkey user's public key, and its signature of INFO's nonce (base64url).
    pub nkey: Option<String>,
    pub sig: Option<String>,
    /// A user's JWT (operator mode); `sig` then signs the nonce with the user's key.
    pub jwt: Option<String>,
    pub name: Option<String>,
    pub lang: Option<String>,
    pub version: Option<String>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            verbose: true,
            pedantic: true,
            echo: true,
            headers: false,
            no_responders: false,
            protocol: 0,
            user: None,
            pass: None,
            auth_token: None,
            nkey: None,
            sig: None,
            jwt: None,
            name: None,
            lang: None,
            version: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn omitted_fields_take_nats_defaults() {
        let opts: ConnectOptions = serde_json::from_str("{}").unwrap();
        assert!(opts.verbose && opts.pedantic && opts.echo);
        assert!(!opts.headers && !opts.no_responders);
        let opts: ConnectOptions =
            serde_json::from_str(r#"{"verbose":false,"echo":false,"extra":1}"#).unwrap();
        assert!(!opts.verbose && opts.pedantic && !opts.echo);
    }
}
