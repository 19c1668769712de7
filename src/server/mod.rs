//! The tokio glue: the listener, one reading task and one writing task per connection, and
//! shutdown. Protocol rules live in `protocol`, routing decisions in `broker`; this layer moves
//! bytes and time between the socket and them.

pub mod accounts;
pub mod auth;
mod cert_identity;
mod claims;
mod client;
pub mod cluster_js;
pub mod config;
pub mod config_file;
mod conn_stats;
mod events;
mod interest_watch;
mod internal;
mod jetstream;
pub mod jwt;
pub mod lame_duck;
pub mod meta_group;
pub mod operator;
mod outbound;
pub mod permissions;
mod protocol_trace;
pub mod raft_link;
mod reply_grants;
mod requester;
mod router;
mod routes;
mod security_log;
pub mod system;
pub mod tls;
mod view;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

pub use config::{AuthConfig, ServerConfig, SyncMode, UserAuth};
pub use conn_stats::{ClientMeta, Traffic};
pub use jetstream::clock as stream_clock;
pub use jetstream::AccountLimits;
use outbound::{ClientHandle, CloseReason, WriteSink};
pub use routes::{ClusterReport, RouteReport};
pub use view::{
    AccountReport, ConnectionReport, JetStreamReport, ServerReport, ServerView, StreamReport,
    SubscriptionReport,
};

use crate::protocol::connect::{ServerInfo, NATS_COMPAT_VERSION};
use crate::protocol::{encode, ProtocolError};

/// How long shutdown waits for connections to flush what they have queued.
const SHUTDOWN_FLUSH_LIMIT: Duration = Duration::from_secs(5);

/// State every connection shares.
pub(crate) struct ServerState {
    config: ServerConfig,
    accounts: accounts::Accounts,
    clients: Mutex<HashMap<u64, Arc<ClientHandle>>>,
    next_client_id: AtomicU64,
    info: ServerInfo,
    /// `$JS.<domain>.API.` when a JetStream domain is set: publishes there are served as
    /// `$JS.API.` ones, as nats-server maps them.
    js_domain_api_prefix: Option<Vec<u8>>,
    started: std::time::SystemTime,
    /// Traffic of connections that have ended, so the server's totals never go back. Locked
    /// before `clients` wherever both are taken, so a report sees a connection in exactly one.
    closed_traffic: Mutex<Traffic>,
    /// Connections closed as slow consumers; incremented once per such close, off the hot path.
    slow_consumers: AtomicU64,
    /// TLS on the client port, when configured: the certificates read at start, replaced by
    /// a reload.
    tls: Option<Arc<tls::Tls>>,
    /// Whether INFO carries a nonce for nkey users to sign.
    auth_uses_nonce: bool,
    /// Operator mode: the trusted operators and the accounts' user checks.
    operator: Option<Arc<operator::Operator>>,
    /// The cluster this server routes to, when configured.
    cluster: Option<Arc<routes::Cluster>>,
    /// Rung (by SIGUSR2) to enter lame duck mode.
    lame_duck: Arc<tokio::sync::Notify>,
    /// JetStream in a cluster, once started.
    clustered_js: std::sync::OnceLock<Arc<cluster_js::ClusterJs>>,
}

impl ServerState {
    /// Whether clients must authenticate (with configured users or JWTs).
    fn auth_required(&self) -> bool {
        self.config.auth.is_some() || self.operator.is_some()
    }
}

/// The store's sync policy for the server's sync mode.
fn sync_policy(mode: SyncMode) -> crate::store::SyncPolicy {
    match mode {
        SyncMode::Always => crate::store::SyncPolicy::Always,
        SyncMode::Interval(d) => crate::store::SyncPolicy::Interval(d),
        SyncMode::Never => crate::store::SyncPolicy::Never,
    }
}

impl ServerState {
    /// The INFO JSON for one connection.
    fn info_json(&self, client_id: u64, client_ip: String, nonce: Option<&str>) -> Vec<u8> {
        let mut info = self.info.clone();
        info.client_id = client_id;
        info.client_ip = client_ip;
        info.nonce = nonce.map(str::to_string);
        if let Some(cluster) = &self.cluster {
            info.cluster = Some(cluster.name().name);
            info.connect_urls = cluster.client_connect_urls();
        }
        serde_json::to_vec(&info).unwrap_or_default()
    }

    /// The cluster's membership changed: clients that take INFO updates (CONNECT `protocol`
    /// 1) learn the URLs they may reconnect to, as nats-server tells them.
    fn cluster_changed(&self) {
        self.send_async_info(&self.info_json(0, String::new(), None));
    }

    /// Sends an INFO (`json`) to every client that takes INFO updates, outside the clients'
    /// lock.
    fn send_async_info(&self, json: &[u8]) {
        let clients: Vec<_> = lock(&self.clients)
            .values()
            .filter(|c| c.async_info.load(Ordering::Relaxed))
            .cloned()
            .collect();
        if clients.is_empty() {
            return;
        }
        let mut line = BytesMut::with_capacity(json.len() + 8);
        encode::write_info(&mut line, json);
        for client in clients {
            client.enqueue_raw(&line);
            client.wake();
        }
    }
}

/// A bound, not yet running server.
pub struct Server {
    listener: TcpListener,
    /// The route port, when the server is in a cluster.
    route_listener: Option<TcpListener>,
    state: Arc<ServerState>,
}

impl Server {
    /// Binds the listener (the configured port may be 0 to pick a free one) and starts
    /// JetStream on the store directory, reopening every stream it holds.
    pub async fn bind(config: ServerConfig) -> Result<Self, String> {
        let listener = listen(config.listen)
            .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        let server_id = new_server_id();
        let info = ServerInfo {
            server_name: config
                .server_name
                .clone()
                .unwrap_or_else(|| server_id.clone()),
            server_id,
            version: NATS_COMPAT_VERSION.to_string(),
            proto: 1,
            go: "jetlog (rust)".to_string(),
            host: local.ip().to_string(),
            port: local.port(),
            headers: true,
            max_payload: config.max_payload_bytes,
            // nats-server: a default user means nobody has to authenticate.
            auth_required: (config.auth.is_some() && config.no_auth_user.is_none())
                || config.operator.is_some(),
            tls_required: config.tls.as_ref().is_some_and(|t| !t.allow_non_tls),
            tls_available: config.tls.as_ref().is_some_and(|t| t.allow_non_tls),
            tls_verify: config.tls.as_ref().is_some_and(|t| t.verify),
            jetstream: config.jetstream,
            api_lvl: match config.jetstream {
                true => crate::jetstream::api_level::JS_API_LEVEL,
                false => 0,
            },
            nonce: None,
            client_id: 0,
            client_ip: String::new(),
            ldm: false,
            cluster: None,
            connect_urls: Vec::new(),
            jetlog_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        let tls = match &config.tls {
            Some(settings) => Some(Arc::new(
                tls::Tls::load(settings.clone()).map_err(|e| e.to_string())?,
            )),
            None => None,
        };
        let auth_uses_nonce =
            config.auth.as_ref().is_some_and(AuthConfig::uses_nonce) || config.operator.is_some();
        let (operator, configured) = match &config.operator {
            Some(settings) => {
                let (operator, accounts) = operator_accounts(settings)?;
                (Some(operator), accounts)
            }
            None => (None, config.accounts.clone()),
        };
        let system = config
            .system_account
            .clone()
            .or_else(|| operator.as_ref().and_then(|o| o.system_account.clone()));
        let (cluster, route_listener) = match &config.cluster {
            Some(settings) => {
                let listener = listen(settings.listen)
                    .map_err(|e| format!("cannot listen for routes on {}: {e}", settings.listen))?;
                let cluster = routes::Cluster::new(
                    settings.clone(),
                    &info.server_id,
                    &info.server_name,
                    local,
                    config.client_advertise.clone(),
                )?;
                cluster.set_listen_addr(listener.local_addr().map_err(|e| e.to_string())?);
                cluster.set_jetstream(config.jetstream);
                (Some(cluster), Some(listener))
            }
            None => (None, None),
        };
        let accounts = accounts::Accounts::start(
            &config,
            &configured,
            system,
            &info.server_name,
            sync_policy(config.sync),
            cluster.clone(),
        )?;
        let js_domain_api_prefix = config
            .js_domain
            .as_ref()
            .map(|d| format!("$JS.{d}.API.").into_bytes());
        let state = Arc::new(ServerState {
            config,
            accounts,
            clients: Mutex::new(HashMap::new()),
            next_client_id: AtomicU64::new(1),
            info,
            js_domain_api_prefix,
            started: std::time::SystemTime::now(),
            closed_traffic: Mutex::new(Traffic::default()),
            slow_consumers: AtomicU64::new(0),
            tls,
            auth_uses_nonce,
            operator,
            cluster,
            lame_duck: Arc::new(tokio::sync::Notify::new()),
            clustered_js: std::sync::OnceLock::new(),
        });
        Ok(Self {
            listener,
            route_listener,
            state,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The cluster's name, when the server is in one.
    pub fn cluster_name(&self) -> Option<String> {
        self.state.cluster.as_ref().map(|c| c.name().name)
    }

    /// The route port actually bound, when the server is in a cluster.
    pub fn cluster_addr(&self) -> Option<SocketAddr> {
        self.state.cluster.as_ref().and_then(|c| c.listen_addr())
    }

    /// What enters lame duck mode when notified (the SIGUSR2 handler holds it).
    pub fn lame_duck_trigger(&self) -> Arc<tokio::sync::Notify> {
        self.state.lame_duck.clone()
    }

    /// The server's TLS, for reloading its certificates while it runs (SIGHUP).
    pub fn tls(&self) -> Option<Arc<tls::Tls>> {
        self.state.tls.clone()
    }

    /// A read-only window on the server's state, for monitoring.
    pub fn view(&self) -> ServerView {
        ServerView::new(self.state.clone())
    }

    /// Serves clients until `shutdown` resolves, then stops accepting, lets every connection
    /// flush what is queued (bounded), and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut tasks = JoinSet::new();
        let clustered_js = self.start_clustered_jetstream_if_asked().await;
        if let (Some(cluster), Some(listener)) = (&self.state.cluster, self.route_listener) {
            tokio::spawn(routes::accept_routes(
                self.state.clone(),
                cluster.clone(),
                listener,
            ));
            routes::dial_configured_routes(&self.state, cluster);
        }
        let mut listener = Some(self.listener);
        let lame_duck = self.state.lame_duck.clone();
        let lame_duck_rung = lame_duck.notified();
        tokio::pin!(lame_duck_rung);
        let lame_duck_mode = lame_duck::run(&self.state);
        tokio::pin!(lame_duck_mode);
        let mut in_lame_duck = false;
        loop {
            tokio::select! {
                accepted = accept(listener.as_ref()) => match accepted {
                    Ok((socket, peer)) => {
                        let state = self.state.clone();
                        tasks.spawn(serve(state, socket, peer));
                    }
                    Err(err) => {
                        // Running out of file descriptors must not end the server.
                        tracing::warn!(error = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = &mut lame_duck_rung, if !in_lame_duck => {
                    in_lame_duck = true;
                    listener = None;
                }
                _ = &mut lame_duck_mode, if in_lame_duck => break,
                _ = &mut shutdown => break,
            }
        }
        drop(listener);
        if let Some(cluster) = clustered_js {
            cluster.stop().await;
        }
        if let Some(cluster) = &self.state.cluster {
            cluster.stop();
        }
        // Stream actors finish (and sync) what was queued before connections are closed, so
        // their last acknowledgements can still be flushed to the publishers.
        for (_, jetstream) in self.state.accounts.jetstreams() {
            let _ = tokio::task::spawn_blocking(move || jetstream.shutdown()).await;
        }
        let clients: Vec<_> = lock(&self.state.clients).values().cloned().collect();
        for client in clients {
            client.close(CloseReason::ServerShutdown);
        }
        let drain = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(SHUTDOWN_FLUSH_LIMIT, drain)
            .await
            .is_err()
        {
            tracing::warn!("some connections did not flush before shutdown");
        }
    }
}

/// The next client connection, or never once the listener is gone (lame duck mode).
async fn accept(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// Trusts the operators and reads every account JWT the resolver holds. An account whose JWT
/// is bad is left out with an error in the log: the others are still served.
fn operator_accounts(
    settings: &operator::OperatorConfig,
) -> Result<(Arc<operator::Operator>, Vec<accounts::AccountSettings>), String> {
    let operator = Arc::new(operator::Operator::trust(settings)?);
    let mut found = Vec::new();
    for token in operator.stored_accounts()? {
        match operator.account(&token) {
            Ok((account, auth)) => {
                operator.set_account(&account.name, auth);
                found.push(account);
            }
            Err(err) => tracing::error!("account JWT refused: {err}"),
        }
    }
    let dropped = accounts::settings::retain_valid_imports(&mut found);
    for why in dropped {
        tracing::warn!("import left out: {why}");
    }
    Ok((operator, found))
}

/// Connections the kernel may hold for us before we accept them. tokio's `bind` uses std's
/// 128: a burst of clients reconnecting after a restart, or a flood of idle ones, overflows
/// it, and a client whose handshake the kernel dropped waits for its retransmit (seconds)
/// or, with SYN cookies, is never seen at all. nats-server (Go's `net.Listen`) takes
/// `net.core.somaxconn`; the kernel caps this value at the same.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds `addr` with `LISTEN_BACKLOG` and `SO_REUSEADDR` (as tokio's `bind` sets it, so a
/// restart is not refused while old connections are in TIME_WAIT).
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The reading side of a connection, plaintext or TLS.
type ReadSide = std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>;

/// A connection's halves once its transport is set up, whether INFO was already sent, and
/// the names its client certificate offers for `verify_and_map`.
type Transport = (ReadSide, WriteSink, bool, Vec<String>);

/// Sets a connection up: for TLS, the handshake (after a plaintext INFO, or first), then the
/// halves the reader and the writer use, and whether INFO was already sent.
async fn open_transport(
    state: &ServerState,
    socket: TcpStream,
    peer: SocketAddr,
    id: u64,
    handle: &ClientHandle,
    nonce: Option<&str>,
) -> Option<Transport> {
    let Some(tls) = &state.tls else {
        return Some(plain_transport(socket, handle, false));
    };
    let mut socket = socket;
    let info_first = !tls.config.handshake_first;
    if info_first {
        use tokio::io::AsyncWriteExt;
        let json = state.info_json(id, peer.ip().to_string(), nonce);
        let mut line = BytesMut::with_capacity(json.len() + 8);
        encode::write_info(&mut line, &json);
        let sent = tokio::time::timeout(tls.config.timeout, socket.write_all(&line)).await;
        if !matches!(sent, Ok(Ok(()))) {
            return None;
        }
    }
    if tls.config.allow_non_tls && !speaks_tls(&socket, tls.config.timeout).await {
        return Some(plain_transport(socket, handle, true));
    }
    match tls.accept(socket).await {
        Ok(stream) => {
            let identities = tls::mapped_identities(tls, &stream);
            let (read_half, write_half) = tokio::io::split(stream);
            Some((
                Box::pin(read_half),
                WriteSink::Tls(Box::pin(write_half)),
                info_first,
                identities,
            ))
        }
        Err(err) => {
            // nats-server's wording, so operators' log searches find it.
            tracing::error!("{peer} - cid:{id} - TLS handshake error: {err}");
            None
        }
    }
}

/// A plaintext connection's halves; the write half is also the outbound side's, for the
/// direct writes publishers make while the writer task is idle.
fn plain_transport(socket: TcpStream, handle: &ClientHandle, info_sent: bool) -> Transport {
    let (read_half, write_half) = socket.into_split();
    let write_half = Arc::new(write_half);
    handle.attach_socket(write_half.clone());
    (
        Box::pin(read_half),
        WriteSink::Plain(write_half),
        info_sent,
        Vec::new(),
    )
}

/// Whether a client that was offered TLS (`allow_non_tls`) starts a handshake: its first byte
/// is a TLS handshake record's (0x16), as nats-server sniffs it. A client that sends nothing
/// within the handshake timeout is served in plaintext.
async fn speaks_tls(socket: &TcpStream, wait: Duration) -> bool {
    let mut first = [0u8; 1];
    matches!(
        tokio::time::timeout(wait, socket.peek(&mut first)).await,
        Ok(Ok(1)) if first[0] == TLS_HANDSHAKE_RECORD
    )
}

/// The content type of a TLS handshake record, the first byte a TLS client sends.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Runs one connection to its end.
async fn serve(state: Arc<ServerState>, socket: TcpStream, peer: SocketAddr) {
    let _ = socket.set_nodelay(true);
    let id = state.next_client_id.fetch_add(1, Ordering::Relaxed);
    let handle = Arc::new(ClientHandle::new(id, state.config.max_pending_bytes, peer));
    let nonce = state.auth_uses_nonce.then(auth::new_nonce);
    let Some((read_half, write_half, info_sent, cert_identities)) =
        open_transport(&state, socket, peer, id, &handle, nonce.as_deref()).await
    else {
        return;
    };
    let writer = tokio::spawn(
        handle
            .clone()
            .run_writer(write_half, state.config.write_deadline),
    );
    let mut conn = client::Connection::new(state.clone(), handle.clone(), nonce, cert_identities);
    if !info_sent {
        conn.send_info(peer.ip().to_string());
    }
    let admitted = {
        let mut clients = lock(&state.clients);
        let admitted = clients.len() < state.config.max_connections;
        if admitted {
            clients.insert(id, handle.clone());
        }
        admitted
    };
    let reason = if admitted {
        tracing::debug!(cid = id, %peer, "client connected");
        conn.run(read_half).await
    } else {
        let mut line = BytesMut::new();
        encode::write_err(&mut line, &ProtocolError::MaxConnectionsExceeded);
        handle.enqueue_raw(&line);
        tracing::warn!(%peer, "maximum connections exceeded");
        CloseReason::ProtocolError
    };
    handle.close(reason);
    conn.remove_all_subscriptions();
    let closed = handle.close_reason().unwrap_or(reason);
    state.client_event(&handle, events::Kind::Disconnect(closed));
    if handle.close_reason() == Some(CloseReason::SlowConsumer) {
        state.slow_consumers.fetch_add(1, Ordering::Relaxed);
    }
    {
        let mut closed = lock(&state.closed_traffic);
        if lock(&state.clients).remove(&id).is_some() {
            closed.add(view::traffic_of(&handle));
        }
    }
    let flush_limit = state.config.write_deadline.min(SHUTDOWN_FLUSH_LIMIT);
    if tokio::time::timeout(flush_limit, writer).await.is_err() {
        tracing::debug!(cid = id, "writer did not finish flushing in time");
    }
    tracing::debug!(cid = id, ?reason, "client closed");
}

/// A server id in nats-server's shape: 56 upper-case characters starting with `N`.
fn new_server_id() -> String {
    format!("N{}", random_chars(55))
}

/// A short random token (for reply subjects that must not collide between imports).
fn new_token() -> String {
    random_chars(8)
}

/// `n` random characters of base32's alphabet.
pub(crate) fn random_chars(n: usize) -> String {
    use std::hash::{BuildHasher, Hasher};
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut id = String::with_capacity(n);
    let mut seed = {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.finish() | 1
    };
    while id.len() < n {
        let r = router::next_random(&mut seed);
        id.push(char::from(ALPHABET[(r % 32) as usize]));
    }
    id
}
