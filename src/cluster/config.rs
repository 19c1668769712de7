//! What a server is told about its cluster: the `cluster {}` block and the `--cluster*` and
//! `--routes` flags, checked into one value before anything listens.

use std::net::SocketAddr;
use std::time::Duration;

/// The route port nats-server uses when a cluster URL names none.
pub const DEFAULT_CLUSTER_PORT: u16 = 6222;
/// How long dialling a route may take before the attempt counts as failed (nats-server's
/// `DEFAULT_ROUTE_DIAL`).
pub const ROUTE_DIAL_TIMEOUT: Duration = Duration::from_secs(1);
/// The pause between attempts to reach a route, and before redialling a lost one
/// (nats-server's `DEFAULT_ROUTE_CONNECT` and `DEFAULT_ROUTE_RECONNECT`).
pub const ROUTE_RETRY_DELAY: Duration = Duration::from_secs(1);
/// How long an accepted route has to send its CONNECT when routes must authenticate
/// (nats-server's default for `cluster.authorization.timeout`).
pub const ROUTE_AUTH_TIMEOUT: Duration = Duration::from_secs(2);
/// Extra attempts at a route learned by gossip, in a row, before it is given up. nats-server
/// makes none by default; a heal after a partition often drops the first dial (the peer's
/// address not yet resolved again), and a gossiped route is not learned a second time.
pub const DEFAULT_CONNECT_RETRIES: u32 = 3;
/// The pause between attempts grows after this many failed dials in a row, doubling up to
/// `MAX_ROUTE_RETRY_DELAY`: a server that is down for long is not dialled every second.
pub const ROUTE_BACKOFF_AFTER: u32 = 3;
pub const MAX_ROUTE_RETRY_DELAY: Duration = Duration::from_secs(5);

/// The pause before the next dial after `failures` failed ones in a row.
pub fn route_retry_delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(ROUTE_BACKOFF_AFTER).min(8);
    (ROUTE_RETRY_DELAY * 2u32.pow(doublings)).min(MAX_ROUTE_RETRY_DELAY)
}

/// Routes are pinged at most this far apart, whatever the clients' ping interval (nats-server
/// 2.10 caps a route's interval the same way).
pub const MAX_ROUTE_PING_INTERVAL: Duration = Duration::from_secs(30);

/// One server of the cluster to dial: `nats-route://[user:pass@]host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteUrl {
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub pass: Option<String>,
}

impl RouteUrl {
    /// Parses a route URL. The scheme may be `nats-route`, `nats` or left out, as nats-server
    /// takes them; a missing port is the default cluster port.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let with_scheme = if text.contains("://") {
            text.to_string()
        } else {
            format!("nats-route://{text}")
        };
        let url = url::Url::parse(&with_scheme)
            .map_err(|e| format!("invalid route URL {text:?}: {e}"))?;
        if !matches!(url.scheme(), "nats-route" | "nats" | "route") {
            return Err(format!(
                "invalid route URL {text:?}: the scheme must be nats-route or nats"
            ));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("invalid route URL {text:?}: no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let user = Some(url.username()).filter(|u| !u.is_empty()).map(decode);
        let pass = url.password().map(decode);
        Ok(Self {
            host,
            port: url.port().unwrap_or(DEFAULT_CLUSTER_PORT),
            user,
            pass,
        })
    }

    /// `host:port`, the form dialled and compared.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The credentials every route must present (`cluster.authorization`, or the user and
/// password of the `--cluster` URL); this server presents them too when it dials a route whose
/// URL names none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteAuth {
    pub user: String,
    /// Plain, or a bcrypt hash (`$2a$…`); a server that dials with a hashed password cannot
    /// present it, so its route URLs must carry the plain one.
    pub password: String,
    pub timeout: Duration,
}

/// A server's cluster settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    /// The cluster's name; `None` lets the servers agree on a generated one, as nats-server
    /// does when `cluster.name` is not set.
    pub name: Option<String>,
    /// Where the route port listens (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Servers to dial at start and to keep redialling.
    pub routes: Vec<RouteUrl>,
    /// `host:port` other servers should dial instead of the address seen on the socket.
    pub advertise: Option<String>,
    /// Leaves the peers' client URLs out of what this server's clients are told.
    pub no_advertise: bool,
    /// Extra attempts at a route learned from another server (explicit ones are retried for
    /// ever).
    pub connect_retries: u32,
    /// What routes must authenticate with, if anything.
    pub auth: Option<RouteAuth>,
    /// Mutual TLS between routes: this certificate serves both sides, and the peer's must
    /// chain to the CA.
    pub tls: Option<crate::server::tls::TlsConfig>,
}

/// Cluster settings as given, each possibly missing: the config file's block, with the flags
/// laid over it, then checked into a [`ClusterConfig`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterSettings {
    pub name: Option<String>,
    pub host: Option<std::net::IpAddr>,
    pub port: Option<u16>,
    pub routes: Option<Vec<RouteUrl>>,
    pub advertise: Option<String>,
    pub no_advertise: Option<bool>,
    pub connect_retries: Option<u32>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub auth_timeout: Option<Duration>,
    /// `cluster.tls`: mutual TLS between routes.
    pub tls: Option<crate::server::tls::TlsConfig>,
}

impl ClusterSettings {
    /// These settings over `base`: what is set here wins.
    pub fn over(self, base: ClusterSettings) -> ClusterSettings {
        ClusterSettings {
            name: self.name.or(base.name),
            host: self.host.or(base.host),
            port: self.port.or(base.port),
            routes: self.routes.or(base.routes),
            advertise: self.advertise.or(base.advertise),
            no_advertise: self.no_advertise.or(base.no_advertise),
            connect_retries: self.connect_retries.or(base.connect_retries),
            user: self.user.or(base.user),
            password: self.password.or(base.password),
            auth_timeout: self.auth_timeout.or(base.auth_timeout),
            tls: self.tls.or(base.tls),
        }
    }

    /// Whether anything about a cluster was said at all.
    pub fn is_empty(&self) -> bool {
        *self == ClusterSettings::default()
    }

    /// The cluster configuration, or `None` when nothing was set. Routes, a name or the other
    /// settings without a route port are refused: nats-server would run without routes, and
    /// the user would believe the server clustered.
    pub fn build(self) -> Result<Option<ClusterConfig>, String> {
        if self.is_empty() {
            return Ok(None);
        }
        let Some(port) = self.port else {
            return Err(
                "a cluster needs a route port: set cluster.listen (or cluster.port), or --cluster"
                    .to_string(),
            );
        };
        if let Some(name) = &self.name {
            if name.is_empty() || name.contains(|c: char| c.is_whitespace()) {
                return Err(format!(
                    "cluster name {name:?} must not be empty or contain spaces"
                ));
            }
        }
        let auth = match (self.user, self.password) {
            (None, None) => {
                if self.auth_timeout.is_some() {
                    return Err(
                        "cluster.authorization.timeout needs a user and password".to_string()
                    );
                }
                None
            }
            (Some(user), Some(password)) => Some(RouteAuth {
                user,
                password,
                timeout: self.auth_timeout.unwrap_or(ROUTE_AUTH_TIMEOUT),
            }),
            _ => return Err("route authorization needs both a user and a password".to_string()),
        };
        Ok(Some(ClusterConfig {
            auth,
            tls: self.tls,
            name: self.name,
            listen: SocketAddr::new(
                self.host.unwrap_or(std::net::IpAddr::from([0, 0, 0, 0])),
                port,
            ),
            routes: self.routes.unwrap_or_default(),
            advertise: self.advertise,
            no_advertise: self.no_advertise.unwrap_or(false),
            connect_retries: self.connect_retries.unwrap_or(DEFAULT_CONNECT_RETRIES),
        }))
    }
}

/// Parses `--routes`: URLs separated by commas.
pub fn parse_routes(text: &str) -> Result<Vec<RouteUrl>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(RouteUrl::parse)
        .collect()
}

/// Parses the `--cluster` URL (`nats://[user:pass@]host:port`, `nats-route://…`, or
/// `host:port`) into the address the route port listens on, and the credentials routes must
/// present when the URL names them (as nats-server reads that flag).
pub fn parse_listen(text: &str) -> Result<(SocketAddr, RouteUrl), String> {
    let url = RouteUrl::parse(text)?;
    if url.user.is_some() != url.pass.is_some() {
        return Err(format!(
            "invalid cluster URL {text:?}: give both a user and a password, or neither"
        ));
    }
    let host = if url.host.is_empty() {
        "0.0.0.0"
    } else {
        &url.host
    };
    let ip: std::net::IpAddr = host.parse().map_err(|_| {
        format!("invalid cluster URL {text:?}: the host must be an IP address to listen on")
    })?;
    Ok((SocketAddr::new(ip, url.port), url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_urls_take_nats_server_forms() {
        let url = RouteUrl::parse("nats-route://ruser:p%40ss@10.0.0.2:7244").unwrap();
        assert_eq!(
            url,
            RouteUrl {
                host: "10.0.0.2".into(),
                port: 7244,
                user: Some("ruser".into()),
                pass: Some("p@ss".into()),
            }
        );
        assert_eq!(
            RouteUrl::parse("nats://h").unwrap().port,
            DEFAULT_CLUSTER_PORT
        );
        assert_eq!(
            RouteUrl::parse("127.0.0.1:5").unwrap().address(),
            "127.0.0.1:5"
        );
        assert_eq!(RouteUrl::parse("[::1]:5").unwrap().address(), "[::1]:5");
        assert!(RouteUrl::parse("http://h:1")
            .unwrap_err()
            .contains("the scheme must be nats-route or nats"));
        assert!(RouteUrl::parse("nats-route://:1").is_err());
    }

    #[test]
    fn route_lists_and_listen_addresses() {
        let routes = parse_routes("nats://a:1, nats-route://b:2,").unwrap();
        assert_eq!(routes.len(), 2);
        assert_eq!(routes[1].address(), "b:2");
        assert!(parse_routes("nats://a:1,http://b").is_err());
        assert_eq!(
            parse_listen("nats://127.0.0.1:0").unwrap().0,
            "127.0.0.1:0".parse().unwrap()
        );
        assert_eq!(
            parse_listen("0.0.0.0:6222").unwrap().0,
            "0.0.0.0:6222".parse().unwrap()
        );
        assert!(parse_listen("nats://somehost:1")
            .unwrap_err()
            .contains("must be an IP address"));
        let (_, creds) = parse_listen("nats://u:p@127.0.0.1:1").unwrap();
        assert_eq!(
            (creds.user.as_deref(), creds.pass.as_deref()),
            (Some("u"), Some("p"))
        );
        assert!(parse_listen("nats://u@127.0.0.1:1").is_err());
    }

    #[test]
    fn redials_back_off_after_a_few_failures_up_to_a_cap() {
        let delays: Vec<u64> = (0..9).map(|f| route_retry_delay(f).as_secs()).collect();
        assert_eq!(delays, [1, 1, 1, 1, 2, 4, 5, 5, 5]);
        assert_eq!(route_retry_delay(u32::MAX), MAX_ROUTE_RETRY_DELAY);
    }

    #[test]
    fn settings_need_a_route_port() {
        assert_eq!(ClusterSettings::default().build(), Ok(None));
        let routes_only = ClusterSettings {
            routes: Some(parse_routes("nats://a:1").unwrap()),
            ..ClusterSettings::default()
        };
        assert!(routes_only
            .clone()
            .build()
            .unwrap_err()
            .contains("route port"));
        let flags = ClusterSettings {
            port: Some(7000),
            name: Some("c".into()),
            ..ClusterSettings::default()
        };
        let built = flags.over(routes_only).build().unwrap().unwrap();
        assert_eq!(built.listen, "0.0.0.0:7000".parse().unwrap());
        assert_eq!(built.routes.len(), 1);
        assert_eq!(built.name.as_deref(), Some("c"));
        let spaced = ClusterSettings {
            port: Some(1),
            name: Some("a b".into()),
            ..ClusterSettings::default()
        };
        assert!(spaced.build().is_err());
        let half = ClusterSettings {
            port: Some(1),
            user: Some("u".into()),
            ..ClusterSettings::default()
        };
        assert!(half
            .build()
            .unwrap_err()
            .contains("both a user and a password"));
        let auth = ClusterSettings {
            port: Some(1),
            user: Some("u".into()),
            password: Some("p".into()),
            ..ClusterSettings::default()
        };
        let built = auth.build().unwrap().unwrap().auth.unwrap();
        assert_eq!(built.timeout, ROUTE_AUTH_TIMEOUT);
    }
}
