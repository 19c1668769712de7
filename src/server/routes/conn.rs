//! The session that serves one route connection: TLS, the handshake, authorization, and
//! then interest and messages in both directions. The tasks that open connections are in
//! `dial`.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::dial::{transport, ReadSide};
use super::link::RouteLink;
use super::Cluster;
use crate::broker::MatchCache;
use crate::cluster::config::{RouteUrl, MAX_ROUTE_PING_INTERVAL};
use crate::cluster::handshake::{check_connect, NameCheck, RouteConnect, RouteInfo};
use crate::protocol::route::{RouteOp, RouteParser, RoutedMessage};
use crate::protocol::subject::is_valid_subject;
use crate::protocol::{ParserLimits, Publish};
use crate::server::outbound::{ClientHandle, CloseReason, Subscription};
use crate::server::router::{Deliveries, Publisher, Reach};
use crate::server::ServerState;

/// A route's buffer may hold this much before the peer counts as a slow consumer: routes
/// carry every client's traffic, so they get far more room than one client.
const ROUTE_MAX_PENDING_BYTES: usize = 256 * 1024 * 1024;
/// The largest message a peer may forward: nats-server's ceiling for `max_payload`, since a
/// peer may allow more than this server does.
const ROUTE_MAX_PAYLOAD_BYTES: usize = 64 * 1024 * 1024;
/// The first PING on a route goes out this soon, so a dead peer is found early.
const FIRST_ROUTE_PING: Duration = Duration::from_secs(1);
/// Read buffer of a route connection.
const ROUTE_READ_BUFFER_BYTES: usize = 64 * 1024;
/// How long a closing route may take to flush what it has queued.
const ROUTE_CLOSE_FLUSH: Duration = Duration::from_secs(2);

/// Which side of the route this server is.
#[derive(Clone)]
pub(super) enum Side {
    Accepted,
    /// Dialled at `url`, whose credentials (or the cluster's own) go in the CONNECT.
    Dialled {
        explicit: bool,
        url: RouteUrl,
    },
}

/// How a route connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Ended {
    /// The peer is this server.
    ToSelf,
    /// Another route to the same server was registered first.
    Duplicate(String),
    /// It was lost, after registering (the peer's id known) or before.
    Closed(Option<String>),
    /// The server is stopping.
    Stopping,
}

/// Serves one route connection to its end.
pub(super) async fn serve(
    state: Arc<ServerState>,
    cluster: Arc<Cluster>,
    socket: TcpStream,
    peer: SocketAddr,
    side: Side,
) -> Ended {
    let _ = socket.set_nodelay(true);
    let local = socket.local_addr().ok();
    let id = state.next_client_id.fetch_add(1, Ordering::Relaxed);
    let handle = Arc::new(ClientHandle::new(id, ROUTE_MAX_PENDING_BYTES, peer));
    let Some((read_half, write_sink)) = transport(&cluster, socket, &side, &handle).await else {
        return Ended::Closed(None);
    };
    let writer = tokio::spawn(
        handle
            .clone()
            .run_writer(write_sink, state.config.write_deadline),
    );
    tracing::info!("{peer} - rid:{id} - Route connection created");
    let mut session = Session {
        state: state.clone(),
        cluster: cluster.clone(),
        handle: handle.clone(),
        peer,
        local,
        side: side.clone(),
        connect: None,
        link: None,
        remote_id: None,
        cache: MatchCache::default(),
        out: Deliveries::default(),
        rng: 0x9E37_79B9_7F4A_7C15 ^ id,
        pings_out: 0,
        lagging: Vec::new(),
    };
    if let Side::Dialled { .. } = side {
        session.send_connect();
    }
    session.send_info();
    let ended = match session.run(read_half).await {
        // The dialler waits on a route to the same server rather than dial it again.
        Ended::Closed(None) => Ended::Closed(session.remote_id.take()),
        other => other,
    };
    if let Some(link) = session.link.take() {
        if cluster.unregister(&link) {
            link.remove_all_interest();
            state.cluster_changed();
        }
    }
    let reason = match ended {
        Ended::Stopping => CloseReason::ServerShutdown,
        _ => CloseReason::ProtocolError,
    };
    handle.close(reason);
    let _ = tokio::time::timeout(ROUTE_CLOSE_FLUSH, writer).await;
    tracing::info!(
        "{peer} - rid:{id} - Router connection closed: {}",
        describe(&ended)
    );
    ended
}

fn describe(ended: &Ended) -> &'static str {
    match ended {
        Ended::ToSelf => "Route to Self",
        Ended::Duplicate(_) => "Duplicate Route",
        Ended::Closed(_) => "Client Closed",
        Ended::Stopping => "Server Shutdown",
    }
}

/// One route connection's reading side and what it has learned.
struct Session {
    state: Arc<ServerState>,
    cluster: Arc<Cluster>,
    handle: Arc<ClientHandle>,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    side: Side,
    /// The peer's CONNECT, on a route it dialled.
    connect: Option<RouteConnect>,
    link: Option<Arc<RouteLink>>,
    /// The peer's server id, once its INFO has been read.
    remote_id: Option<String>,
    cache: MatchCache<Subscription>,
    out: Deliveries,
    rng: u64,
    pings_out: u32,
    /// Subscribers behind on what this route brought (scratch for pacing).
    lagging: Vec<Arc<ClientHandle>>,
}

impl Session {
    fn send_line(&self, verb: &str, json: &[u8]) {
        let mut line = BytesMut::with_capacity(verb.len() + json.len() + 3);
        line.extend_from_slice(verb.as_bytes());
        line.extend_from_slice(b" ");
        line.extend_from_slice(json);
        line.extend_from_slice(b"\r\n");
        self.handle.enqueue_raw(&line);
        self.handle.wake();
    }

    /// INFO, framed as the client port frames it (nats-server's `INFO {json} \r\n`).
    fn send_info(&self) {
        let info = self.cluster.route_info(self.state.config.max_payload_bytes);
        let json = serde_json::to_vec(&info).unwrap_or_default();
        let mut line = BytesMut::with_capacity(json.len() + 8);
        crate::protocol::encode::write_info(&mut line, &json);
        self.handle.enqueue_raw(&line);
        self.handle.wake();
    }

    fn send_connect(&self) {
        let name = self.cluster.name();
        let (user, pass) = match &self.side {
            Side::Dialled { url, .. } if url.user.is_some() => (url.user.clone(), url.pass.clone()),
            // A URL without credentials (a gossiped one, say) presents the cluster's own; a
            // bcrypt hash cannot be presented.
            _ => match &self.cluster.config.auth {
                Some(auth) if !crate::server::auth::is_bcrypt(&auth.password) => {
                    (Some(auth.user.clone()), Some(auth.password.clone()))
                }
                _ => (None, None),
            },
        };
        let connect = RouteConnect {
            user,
            pass,
            echo: true,
            headers: true,
            name: self.cluster.server_id().to_string(),
            cluster: name.name,
            cluster_dynamic: name.dynamic,
            ..RouteConnect::default()
        };
        self.send_line("CONNECT", &serde_json::to_vec(&connect).unwrap_or_default());
    }

    /// Sends `-ERR '<text>'` and logs it; the caller closes.
    fn refuse(&self, text: &str) {
        tracing::error!("{} - rid:{} - {text}", self.peer, self.handle.id);
        self.send_line("-ERR", format!("'{text}'").as_bytes());
    }

    async fn run(&mut self, mut socket: ReadSide) -> Ended {
        let limits = ParserLimits {
            max_control_line_bytes: self.state.config.max_control_line_bytes,
            max_payload_bytes: ROUTE_MAX_PAYLOAD_BYTES,
        };
        let mut parser = RouteParser::new(limits, None);
        let mut buf = BytesMut::with_capacity(ROUTE_READ_BUFFER_BYTES);
        let interval = self.state.config.ping_interval.min(MAX_ROUTE_PING_INTERVAL);
        let mut ping = tokio::time::interval_at(Instant::now() + FIRST_ROUTE_PING, interval);
        let mut stopping = self.cluster.stopping();
        let must_authenticate =
            matches!(self.side, Side::Accepted) && self.cluster.config.auth.is_some();
        let auth_deadline = tokio::time::sleep(
            self.cluster
                .config
                .auth
                .as_ref()
                .map_or(Duration::ZERO, |a| a.timeout),
        );
        tokio::pin!(auth_deadline);
        loop {
            if buf.capacity() - buf.len() < ROUTE_READ_BUFFER_BYTES / 4 {
                buf.reserve(ROUTE_READ_BUFFER_BYTES);
            }
            tokio::select! {
                read = socket.read_buf(&mut buf) => {
                    if !matches!(read, Ok(n) if n > 0) {
                        return Ended::Closed(None);
                    }
                    self.pings_out = 0;
                    let ended = self.process(&mut parser, &mut buf);
                    self.out.flush_internal().await;
                    self.out.wake_and_pace(self.handle.id, &mut self.lagging).await;
                    if let Some(ended) = ended {
                        return ended;
                    }
                }
                _ = ping.tick() => {
                    if self.pings_out >= self.state.config.max_pings_out {
                        self.refuse("Stale Connection");
                        return Ended::Closed(None);
                    }
                    self.pings_out += 1;
                    self.handle.enqueue_raw(b"PING\r\n");
                    self.handle.wake();
                }
                _ = &mut auth_deadline, if must_authenticate && self.connect.is_none() => {
                    self.refuse("Authentication Timeout");
                    return Ended::Closed(None);
                }
                _ = self.handle.closed_elsewhere() => return Ended::Closed(None),
                _ = stopping.changed() => return Ended::Stopping,
            }
        }
    }

    /// Applies every complete operation in `buf`; `Some` ends the connection.
    fn process(&mut self, parser: &mut RouteParser, buf: &mut BytesMut) -> Option<Ended> {
        loop {
            let op = match parser.next_op(buf) {
                Ok(Some(op)) => op,
                Ok(None) => return None,
                Err(err) => {
                    self.refuse(&err.to_string());
                    return Some(Ended::Closed(None));
                }
            };
            if let Some(ended) = self.apply(op) {
                return Some(ended);
            }
        }
    }

    fn apply(&mut self, op: RouteOp) -> Option<Ended> {
        match op {
            RouteOp::Connect(json) => return self.on_connect(&json),
            RouteOp::Info(json) => return self.on_info(&json),
            RouteOp::Interest {
                account,
                subject,
                queue,
            } => self.on_interest(account, subject, queue),
            RouteOp::NoInterest {
                account,
                subject,
                queue,
            } => {
                if let Some(link) = &self.link {
                    link.remove_interest(&(account, subject, queue));
                }
            }
            RouteOp::Message(msg) => self.on_message(msg),
            RouteOp::Ping => {
                self.handle.enqueue_raw(b"PONG\r\n");
                self.handle.wake();
            }
            RouteOp::Pong => {}
            RouteOp::Err(text) => {
                tracing::error!(
                    "{} - rid:{} - Route Error '{}'",
                    self.peer,
                    self.handle.id,
                    String::from_utf8_lossy(&text)
                );
                return Some(Ended::Closed(None));
            }
        }
        None
    }

    fn on_connect(&mut self, json: &[u8]) -> Option<Ended> {
        let connect: RouteConnect = match serde_json::from_slice(json) {
            Ok(c) => c,
            Err(_) => {
                self.refuse("Invalid CONNECT");
                return Some(Ended::Closed(None));
            }
        };
        if let Err(refusal) = check_connect(&connect, &self.cluster.name()) {
            self.refuse(&refusal.to_string());
            return Some(Ended::Closed(None));
        }
        if let Some(auth) = &self.cluster.config.auth {
            let user_ok = connect.user.as_deref() == Some(auth.user.as_str());
            let pass = connect.pass.as_deref().unwrap_or("");
            if !user_ok || !crate::server::auth::secret_matches(&auth.password, pass) {
                tracing::error!(
                    "{} - rid:{} - authentication error",
                    self.peer,
                    self.handle.id
                );
                self.refuse("Authorization Violation");
                return Some(Ended::Closed(None));
            }
        }
        self.connect = Some(connect);
        None
    }

    fn on_info(&mut self, json: &[u8]) -> Option<Ended> {
        let Ok(info) = serde_json::from_slice::<RouteInfo>(json) else {
            self.refuse("Invalid INFO");
            return Some(Ended::Closed(None));
        };
        let authenticated = self.connect.is_some() || matches!(self.side, Side::Dialled { .. });
        if self.cluster.config.auth.is_some() && !authenticated {
            self.refuse("Authorization Violation");
            return Some(Ended::Closed(None));
        }
        match self.link.clone() {
            None => self.register(info),
            Some(link) => {
                if info.server_id != link.remote_id {
                    self.on_gossip(&info);
                } else if info.ldm && self.cluster.peer_in_lame_duck(&link) {
                    tracing::info!(
                        "{} - rid:{} - Peer {:?} is in lame duck mode",
                        self.peer,
                        self.handle.id,
                        link.remote_name
                    );
                    self.state.cluster_changed();
                }
                None
            }
        }
    }

    /// The peer's first INFO: checks it and registers the route.
    fn register(&mut self, mut info: RouteInfo) -> Option<Ended> {
        self.remote_id = Some(info.server_id.clone());
        if info.server_id == self.cluster.server_id() {
            tracing::debug!("Detected route to self, ignoring {}", self.peer);
            return Some(Ended::ToSelf);
        }
        if !info.route_account.is_empty() {
            tracing::warn!(
                "{} - rid:{} - route dedicated to account {:?} refused: jetlog keeps one route per server",
                self.peer, self.handle.id, info.route_account
            );
            return Some(Ended::Closed(None));
        }
        if !info.cluster.is_empty() {
            match self
                .cluster
                .name()
                .check(&info.cluster, info.cluster_dynamic)
            {
                NameCheck::Conflict => {
                    tracing::error!(
                        "{} - rid:{} - Rejecting route, cluster name {:?} does not match {:?}",
                        self.peer,
                        self.handle.id,
                        info.cluster,
                        self.cluster.name().name
                    );
                    return Some(Ended::Closed(None));
                }
                NameCheck::Adopt(name) => self.cluster.adopt_name(name),
                NameCheck::Same | NameCheck::Theirs => {}
            }
        }
        let headers = match (&self.side, &self.connect) {
            (Side::Accepted, Some(connect)) => connect.headers && info.headers,
            _ => info.headers,
        };
        let (solicited, configured) = match self.side {
            Side::Accepted => (false, false),
            Side::Dialled { explicit, .. } => (true, explicit),
        };
        let link = Arc::new(RouteLink::new(
            self.handle.id,
            info.server_id.clone(),
            info.server_name.clone(),
            self.handle.clone(),
            headers,
            solicited,
            configured,
            info.connect_urls.clone(),
        ));
        link.jetstream.store(info.jetstream, Ordering::Relaxed);
        let others = match self.cluster.register(&link) {
            Ok(others) => others,
            Err(_) => {
                tracing::debug!("Detected duplicate remote route {:?}", info.server_id);
                return Some(Ended::Duplicate(info.server_id));
            }
        };
        tracing::info!(
            "{} - rid:{} - Registering remote route {:?}",
            self.peer,
            self.handle.id,
            info.server_id
        );
        if let Some(local) = self.local {
            self.cluster.learn_client_host(local);
        }
        // Tell the others about the newcomer, with the address it can be dialled at.
        if info.ip.is_empty() {
            info.ip = format!(
                "nats-route://{}/",
                SocketAddr::new(self.peer.ip(), info.port)
            );
        }
        info.ldm = false;
        if let Ok(json) = serde_json::to_vec(&info) {
            let mut line = BytesMut::with_capacity(json.len() + 8);
            line.extend_from_slice(b"INFO ");
            line.extend_from_slice(&json);
            line.extend_from_slice(b"\r\n");
            let line = Bytes::from(line);
            for other in &others {
                other.handle.enqueue_raw(&line);
                other.handle.wake();
            }
            *link.gossip.lock().unwrap_or_else(|p| p.into_inner()) = Some(line);
        }
        // And the newcomer about the others (nats-server leaves this to the others' dials):
        // with both sides of every missing pair dialling, one failed dial cannot leave the
        // mesh partial.
        for other in &others {
            let told = other
                .gossip
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            if let Some(line) = told {
                link.handle.enqueue_raw(&line);
            }
        }
        link.handle.wake();
        self.link = Some(link);
        self.state.cluster_changed();
        None
    }

    /// An INFO about another server, passed on by the peer: dial it unless it is known.
    fn on_gossip(&self, info: &RouteInfo) {
        if info.server_id == self.cluster.server_id() || self.cluster.has_route_to(&info.server_id)
        {
            return;
        }
        let address = info.ip.trim_end_matches('/');
        let Ok(url) = RouteUrl::parse(address) else {
            tracing::debug!("gossiped route without a usable address: {:?}", info.ip);
            return;
        };
        if self
            .cluster
            .config
            .routes
            .iter()
            .any(|r| r.address() == url.address())
        {
            return;
        }
        tokio::spawn(super::dial::keep_dialling(
            self.state.clone(),
            self.cluster.clone(),
            url,
            false,
            Some(info.server_id.clone()),
        ));
    }

    fn on_interest(&mut self, account: Bytes, subject: Bytes, queue: Option<(Bytes, u32)>) {
        let Some(link) = &self.link else {
            return;
        };
        if !is_valid_subject(&subject) {
            tracing::warn!(
                "{} - rid:{} - invalid remote subject {:?} ignored",
                self.peer,
                self.handle.id,
                String::from_utf8_lossy(&subject)
            );
            return;
        }
        let Some(acc) = self.state.accounts.get(&String::from_utf8_lossy(&account)) else {
            tracing::error!(
                "Unknown account {:?} for remote subject {:?}",
                String::from_utf8_lossy(&account),
                String::from_utf8_lossy(&subject)
            );
            return;
        };
        let (queue, weight) = match queue {
            Some((q, w)) => (Some(q), w),
            None => (None, 1),
        };
        link.add_interest(&acc.router, (account, subject, queue), weight);
    }

    fn on_message(&mut self, msg: RoutedMessage) {
        let Some(link) = &self.link else {
            return;
        };
        let size = msg.headers.as_ref().map_or(0, Bytes::len) + msg.payload.len();
        link.in_msgs.fetch_add(1, Ordering::Relaxed);
        link.in_bytes.fetch_add(size as u64, Ordering::Relaxed);
        let Some(account) = self
            .state
            .accounts
            .get(&String::from_utf8_lossy(&msg.account))
        else {
            tracing::debug!(
                "Unknown account {:?} for routed message on subject: {:?}",
                String::from_utf8_lossy(&msg.account),
                String::from_utf8_lossy(&msg.subject)
            );
            return;
        };
        let from = Publisher {
            client: None,
            echo: true,
            reach: Reach::Routed(&msg.queues),
        };
        // A JetStream delivery is routed on its deliver subject and shown with the subject
        // carried after its reply.
        let (shown, reply) = match msg
            .reply
            .as_ref()
            .and_then(super::link::split_deliver_reply)
        {
            Some((reply, shown)) => (Some(shown), Some(reply)),
            None => (None, msg.reply),
        };
        let publish = Publish {
            subject: shown.unwrap_or_else(|| msg.subject.clone()),
            reply,
            headers: msg.headers,
            payload: msg.payload,
        };
        account.router.route_as(
            &from,
            &msg.subject,
            &publish,
            &mut self.cache,
            &mut self.out,
            &mut self.rng,
        );
    }
}
