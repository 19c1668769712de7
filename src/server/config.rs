//! The server's settings and the limits it enforces, with nats-server's defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::protocol::parser::{MAX_CONTROL_LINE_BYTES, MAX_PAYLOAD_BYTES};

/// The client port nats-server listens on by default.
pub const DEFAULT_PORT: u16 = 4222;
/// Outbound bytes a client may have queued before it is cut off as a slow consumer
/// (nats-server `MAX_PENDING_SIZE`).
pub const MAX_PENDING_BYTES_PER_CLIENT: usize = 64 * 1024 * 1024;
/// nats-server `DEFAULT_MAX_CONNECTIONS`.
pub const MAX_CONNECTIONS: usize = 64 * 1024;
/// How often the server PINGs an idle client (nats-server `DEFAULT_PING_INTERVAL`).
pub const PING_INTERVAL: Duration = Duration::from_secs(120);
/// Unanswered PINGs after which a connection is stale (nats-server `DEFAULT_PING_MAX_OUT`).
pub const MAX_PINGS_OUT: u32 = 2;
/// How long a client has to send CONNECT when auth is required (`AUTH_TIMEOUT`).
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one flush to a client may take before it is a slow consumer (`DEFAULT_FLUSH_DEADLINE`).
pub const WRITE_DEADLINE: Duration = Duration::from_secs(10);

/// How the store makes appended bytes durable before a publish is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// fsync every batch before its acks leave (group commit). The default.
    Always,
    /// fsync at most this often; acks of the last interval can be lost on power failure.
    Interval(Duration),
    /// Leave it to the operating system.
    Never,
}

impl std::fmt::Display for SyncMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Always => f.write_str("always"),
            Self::Never => f.write_str("never"),
            Self::Interval(d) => write!(f, "{}ms", d.as_millis()),
        }
    }
}

/// Credentials clients must present in CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthConfig {
    UserPassword {
        user: String,
        password: String,
    },
    Token(String),
    /// Several users, each with its own permissions (`authorization { users: [...] }`).
    Users(Vec<UserAuth>),
}

impl AuthConfig {
    /// Whether clients are challenged with a nonce: some user authenticates with an nkey.
    pub fn uses_nonce(&self) -> bool {
        matches!(self, AuthConfig::Users(users) if users.iter().any(|u| u.nkey.is_some()))
    }
}

/// One user of [`AuthConfig::Users`]: a name and password (plain or a bcrypt hash), or an
/// nkey (then name and password are empty and never match: only a signature of the
/// connection's nonce by the nkey's private key lets the user in).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserAuth {
    pub user: String,
    pub password: String,
    /// The user's public nkey (`U…`).
    pub nkey: Option<String>,
    /// `None`: everything is allowed.
    pub permissions: Option<std::sync::Arc<super::permissions::Permissions>>,
    /// The account the user belongs to; `None` is the global account.
    pub account: Option<String>,
}

/// Everything `jetlog server` can be told.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen; port 0 picks a free one.
    pub listen: SocketAddr,
    pub server_name: Option<String>,
    pub store_dir: PathBuf,
    pub sync: SyncMode,
    pub auth: Option<AuthConfig>,
    pub max_payload_bytes: usize,
    pub max_control_line_bytes: usize,
    pub max_pending_bytes: usize,
    pub max_connections: usize,
    pub ping_interval: Duration,
    pub max_pings_out: u32,
    pub auth_timeout: Duration,
    pub write_deadline: Duration,
    /// Server-wide limit on bytes stored by memory streams (`jetstream { max_memory_store }`).
    pub max_memory_store: Option<u64>,
    /// Server-wide limit on bytes stored by file streams (`jetstream { max_file_store }`).
    pub max_file_store: Option<u64>,
    /// Whether JetStream runs: on for `jetlog server`, off for the binary run as
    /// `nats-server` unless `-js` or the config file turns it on. Off, the server keeps no
    /// store and `$JS.API` requests get the no-responders status, as from nats-server.
    pub jetstream: bool,
    /// `no_auth_user`: a client that presents no credentials is taken for this user (a name
    /// or nkey of `AuthConfig::Users`), and INFO stops saying `auth_required`.
    pub no_auth_user: Option<String>,
    /// The account's JetStream limits (`accounts { A: { jetstream { max_streams, … } } }`).
    /// The global account's JetStream limits, when no accounts are configured.
    pub account_limits: super::AccountLimits,
    /// `accounts { … }`; empty runs every client in the global account.
    pub accounts: Vec<super::accounts::AccountSettings>,
    /// `system_account`; `None` is `$SYS`.
    pub system_account: Option<String>,
    /// Operator mode: trusted operators and the account resolver (then `accounts` is empty).
    pub operator: Option<super::operator::OperatorConfig>,
    /// `jetstream { strict: true }`: JetStream API requests with fields the server does not
    /// know are refused instead of having those fields ignored (nats-server 2.11's option).
    pub js_strict: bool,
    /// JetStream domain (`jetstream { domain }`): the API is also served on
    /// `$JS.<domain>.API.>` and PubAcks name the domain.
    pub js_domain: Option<String>,
    /// Where the HTTP monitor listens (port 0 picks a free one); `None` when it is off.
    pub monitor_listen: Option<SocketAddr>,
    /// The monitor speaks HTTPS with the client port's certificates (`https_port`).
    pub monitor_tls: bool,
    /// TLS on the client port (`tls {}` or `--tls*`); every client must use it.
    pub tls: Option<super::tls::TlsConfig>,
    /// Routes to the other servers of a cluster (`cluster {}`, `--cluster`, `--routes`).
    pub cluster: Option<crate::cluster::ClusterConfig>,
    /// `host:port` this server's clients are told to reconnect to, instead of the listen
    /// address (`client_advertise`).
    pub client_advertise: Option<String>,
    /// How long lame duck mode takes, and how long of it clients get to leave on their own.
    pub lame_duck_duration: Duration,
    pub lame_duck_grace_period: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)),
            server_name: None,
            store_dir: PathBuf::from("./data"),
            sync: SyncMode::Always,
            auth: None,
            max_payload_bytes: MAX_PAYLOAD_BYTES,
            max_control_line_bytes: MAX_CONTROL_LINE_BYTES,
            max_pending_bytes: MAX_PENDING_BYTES_PER_CLIENT,
            max_connections: MAX_CONNECTIONS,
            ping_interval: PING_INTERVAL,
            max_pings_out: MAX_PINGS_OUT,
            auth_timeout: AUTH_TIMEOUT,
            write_deadline: WRITE_DEADLINE,
            max_memory_store: None,
            max_file_store: None,
            jetstream: true,
            account_limits: super::AccountLimits::default(),
            accounts: Vec::new(),
            system_account: None,
            operator: None,
            no_auth_user: None,
            js_strict: false,
            js_domain: None,
            monitor_listen: None,
            cluster: None,
            client_advertise: None,
            lame_duck_duration: super::lame_duck::LAME_DUCK_DURATION,
            lame_duck_grace_period: super::lame_duck::LAME_DUCK_GRACE_PERIOD,
            monitor_tls: false,
            tls: None,
        }
    }
}
