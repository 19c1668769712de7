//! The JSON two servers exchange when a route opens (`INFO` from both, `CONNECT` from the one
//! that dialled), and the checks made on it. Field names and the interoperable subset follow
//! nats-server (see `docs/route-protocol.md`, section 7): no route pooling, no compression, no
//! leaf-origin extensions, so a 2.10+ peer treats this server as an old one-connection peer.

use serde::{Deserialize, Serialize};

/// The route protocol version sent: 2 is accounts on routes (nats-server 2.x).
pub const ROUTE_PROTO: u8 = 2;

/// A route's `INFO`, sent and received. Unknown fields are ignored on receipt.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct RouteInfo {
    pub server_id: String,
    pub server_name: String,
    pub version: String,
    pub proto: u8,
    pub go: String,
    pub host: String,
    pub port: u16,
    pub headers: bool,
    pub max_payload: usize,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cluster_dynamic: bool,
    /// `nats-route://host:port/` the peers should dial, when it is not the socket's address.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ip: String,
    /// This server's client URLs, for the peers' clients.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub connect_urls: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub auth_required: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tls_required: bool,
    /// The sender is entering lame duck mode.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ldm: bool,
    /// Set by a 2.10+ peer on a connection dedicated to one account; jetlog keeps one
    /// connection for every account and closes such a connection.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub route_account: String,
    /// The sender runs JetStream, so it is a member of the meta group (nats-server's
    /// `jetstream`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub jetstream: bool,
}

/// A route's `CONNECT`, sent by the dialling server.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct RouteConnect {
    pub echo: bool,
    pub verbose: bool,
    pub pedantic: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass: Option<String>,
    pub tls_required: bool,
    pub headers: bool,
    /// The sender's server id.
    pub name: String,
    pub cluster: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cluster_dynamic: bool,
    /// Set by a client library: a client dialled the route port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    /// Set by a gateway, which must not use the route port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
}

/// Why a route's CONNECT is refused, with the text nats-server sends in `-ERR`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectRefusal {
    #[error("attempted to connect to route port")]
    ClientOnRoutePort,
    #[error("Rejecting connection from gateway \"{0}\" on the Route port")]
    Gateway(String),
    #[error("Rejecting connection, cluster name \"{theirs}\" does not match \"{ours}\"")]
    ClusterName { theirs: String, ours: String },
}

/// The cluster name this server goes by, and whether it was generated (a generated name gives
/// way to a configured one, or to a greater generated one, so that servers started without
/// names still agree on one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterName {
    pub name: String,
    pub dynamic: bool,
}

/// What a name comparison decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameCheck {
    /// The names agree.
    Same,
    /// Ours was generated and gives way: take this one.
    Adopt(ClusterName),
    /// Theirs was generated and will give way to ours.
    Theirs,
    /// Two configured names differ.
    Conflict,
}

impl ClusterName {
    /// Compares our name with a peer's.
    pub fn check(&self, theirs: &str, theirs_dynamic: bool) -> NameCheck {
        if self.name == theirs {
            return NameCheck::Same;
        }
        let adopt = || {
            NameCheck::Adopt(ClusterName {
                name: theirs.to_string(),
                dynamic: theirs_dynamic,
            })
        };
        match (self.dynamic, theirs_dynamic) {
            (false, false) => NameCheck::Conflict,
            (true, false) => adopt(),
            (false, true) => NameCheck::Theirs,
            (true, true) if theirs > self.name.as_str() => adopt(),
            (true, true) => NameCheck::Theirs,
        }
    }
}

/// Checks a peer's CONNECT against our cluster name.
pub fn check_connect(connect: &RouteConnect, ours: &ClusterName) -> Result<(), ConnectRefusal> {
    if connect.lang.as_deref().is_some_and(|l| !l.is_empty()) {
        return Err(ConnectRefusal::ClientOnRoutePort);
    }
    if let Some(gateway) = connect.gateway.as_ref().filter(|g| !g.is_empty()) {
        return Err(ConnectRefusal::Gateway(gateway.clone()));
    }
    if connect.cluster.is_empty() {
        return Ok(());
    }
    match ours.check(&connect.cluster, connect.cluster_dynamic) {
        NameCheck::Conflict => Err(ConnectRefusal::ClusterName {
            theirs: connect.cluster.clone(),
            ours: ours.name.clone(),
        }),
        NameCheck::Same | NameCheck::Adopt(_) | NameCheck::Theirs => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str, dynamic: bool) -> ClusterName {
        ClusterName {
            name: n.into(),
            dynamic,
        }
    }

    #[test]
    fn generated_names_give_way_to_configured_and_greater_ones() {
        assert_eq!(name("a", false).check("a", false), NameCheck::Same);
        assert_eq!(name("a", false).check("b", false), NameCheck::Conflict);
        assert_eq!(
            name("gen", true).check("prod", false),
            NameCheck::Adopt(name("prod", false))
        );
        assert_eq!(name("prod", false).check("gen", true), NameCheck::Theirs);
        assert_eq!(
            name("AAA", true).check("BBB", true),
            NameCheck::Adopt(name("BBB", true))
        );
        assert_eq!(name("BBB", true).check("AAA", true), NameCheck::Theirs);
    }

    #[test]
    fn connect_refusals_use_nats_server_words() {
        let ours = name("testc", false);
        let mut connect = RouteConnect {
            cluster: "other".into(),
            ..RouteConnect::default()
        };
        assert_eq!(
            check_connect(&connect, &ours).unwrap_err().to_string(),
            "Rejecting connection, cluster name \"other\" does not match \"testc\""
        );
        connect.cluster = "testc".into();
        assert_eq!(check_connect(&connect, &ours), Ok(()));
        connect.lang = Some("go".into());
        assert_eq!(
            check_connect(&connect, &ours).unwrap_err().to_string(),
            "attempted to connect to route port"
        );
    }

    #[test]
    fn info_round_trips_and_ignores_what_it_does_not_know() {
        let json = r#"{"server_id":"NX","server_name":"a","version":"2.9.10","proto":2,
            "go":"go1.19","host":"127.0.0.1","port":6222,"headers":true,"max_payload":1048576,
            "nonce":"xyz","cluster":"c","connect_urls":["127.0.0.1:4222"],"lnoc":true}"#;
        let info: RouteInfo = serde_json::from_str(json).unwrap();
        assert_eq!(info.server_id, "NX");
        assert_eq!(info.connect_urls, ["127.0.0.1:4222"]);
        let sent = serde_json::to_string(&info).unwrap();
        assert!(!sent.contains("lnoc") && !sent.contains("ldm") && !sent.contains("ip"));
    }
}
