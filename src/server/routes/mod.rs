//! Routes: this server's connections to the other servers of its cluster (issue 19).
//!
//! Every server dials the routes it is configured with and accepts the others on its route
//! port; gossip tells existing members about a newcomer, so a server given one seed joins the
//! full mesh. Each server announces only its own subscriptions (`RS+`/`RS-`) and forwards a
//! message published here at most once to each other server with interest (`RMSG`); a message
//! that came from a route is never forwarded to another route, except to reach a queue group
//! with no member here. See `docs/clustering.md`.
//!
//! - this module: [`Cluster`], the state all route connections share;
//! - [`link`]: one registered route and the interest it stands for;
//! - [`dial`]: the tasks that accept and dial route connections;
//! - [`conn`]: the session that serves one route connection;
//! - [`targets`]: the routes one message goes to;
//! - [`report`]: what monitoring shows of the cluster.

mod conn;
mod dial;
mod link;
mod report;
mod targets;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::{Bytes, BytesMut};

use crate::cluster::handshake::{ClusterName, RouteInfo, ROUTE_PROTO};
use crate::cluster::interest::LocalInterest;
use crate::cluster::ClusterConfig;
use crate::protocol::route::{encode_interest, encode_no_interest, RouteOp};
pub use dial::{accept_routes, dial_configured_routes};
pub use link::{RemoteInterest, RouteLink};
pub use report::{ClusterReport, RouteReport};
pub use targets::{weighted_start, RouteTargets};

/// The cluster as this server sees it.
pub struct Cluster {
    pub config: ClusterConfig,
    server_id: String,
    server_name: String,
    name: Mutex<ClusterName>,
    /// Where the route port listens, once bound.
    listen: OnceLock<SocketAddr>,
    /// This server's client URL, when known (an unspecified listen address is replaced by the
    /// address a route reached this server on).
    client_url: Mutex<Option<String>>,
    client_port: u16,
    mesh: Mutex<Mesh>,
    /// This server runs JetStream (said in its route INFO).
    jetstream: std::sync::atomic::AtomicBool,
    /// Set when the server stops: route tasks end and nothing is redialled.
    stopping: tokio::sync::watch::Sender<bool>,
    /// Mutual TLS between routes, when configured.
    tls: Option<Arc<crate::server::tls::Tls>>,
}

/// The routes and the interest announced on them, under one lock so that a route that
/// registers gets every announcement exactly once (in its snapshot or after it).
#[derive(Default)]
struct Mesh {
    interest: LocalInterest,
    links: BTreeMap<String, Arc<RouteLink>>,
    /// The peers' client URLs, counted by the routes that told them.
    peer_urls: BTreeMap<String, u32>,
    /// Route addresses being dialled, so gossip does not start a second dialler.
    dialling: HashSet<String>,
}

/// Why a route could not be registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// There already is a route to that server: the first one registered wins.
    Duplicate,
}

impl Cluster {
    pub fn new(
        config: ClusterConfig,
        server_id: &str,
        server_name: &str,
        client: SocketAddr,
        client_advertise: Option<String>,
    ) -> Result<Arc<Self>, String> {
        let tls = match &config.tls {
            Some(settings) => Some(Arc::new(
                crate::server::tls::Tls::load(settings.clone())
                    .map_err(|e| format!("route TLS: {e}"))?,
            )),
            None => None,
        };
        let name = match &config.name {
            Some(name) => ClusterName {
                name: name.clone(),
                dynamic: false,
            },
            None => ClusterName {
                name: crate::server::random_chars(22),
                dynamic: true,
            },
        };
        let client_url = client_advertise.or_else(|| {
            (!client.ip().is_unspecified()).then(|| host_port(client.ip(), client.port()))
        });
        Ok(Arc::new(Self {
            tls,
            config,
            server_id: server_id.to_string(),
            server_name: server_name.to_string(),
            name: Mutex::new(name),
            listen: OnceLock::new(),
            client_url: Mutex::new(client_url),
            client_port: client.port(),
            mesh: Mutex::new(Mesh::default()),
            jetstream: std::sync::atomic::AtomicBool::new(false),
            stopping: tokio::sync::watch::channel(false).0,
        }))
    }

    pub fn server_id(&self) -> &str {
        &self.server_id
    }

    pub fn server_name(&self) -> &str {
        &self.server_name
    }

    /// The names of the servers this one has a route to now.
    /// Whether this server runs JetStream, as its route INFO tells the peers.
    pub fn set_jetstream(&self, on: bool) {
        self.jetstream
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// The names of the connected peers that run JetStream: the meta group's members.
    pub fn jetstream_peer_names(&self) -> std::collections::BTreeSet<String> {
        lock(&self.mesh)
            .links
            .values()
            .filter(|link| link.jetstream.load(std::sync::atomic::Ordering::Relaxed))
            .map(|link| link.remote_name.clone())
            .collect()
    }

    pub fn peer_names(&self) -> std::collections::BTreeSet<String> {
        lock(&self.mesh)
            .links
            .values()
            .map(|link| link.remote_name.clone())
            .collect()
    }

    /// The cluster's name as it stands (a generated one may give way to a peer's).
    pub fn name(&self) -> ClusterName {
        lock(&self.name).clone()
    }

    fn adopt_name(&self, name: ClusterName) {
        tracing::info!("Cluster name updated to {}", name.name);
        *lock(&self.name) = name;
    }

    /// Records where the route port was bound (port 0 picks one).
    pub fn set_listen_addr(&self, addr: SocketAddr) {
        let _ = self.listen.set(addr);
    }

    /// The bound route address.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen.get().copied()
    }

    /// Stops every route task; lost routes are no longer redialled.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// A local subscription of `account` was added or removed: announces what changed to
    /// every route.
    pub fn local_interest(
        &self,
        account: &Bytes,
        subject: &Bytes,
        queue: Option<&Bytes>,
        added: bool,
    ) {
        let mut mesh = lock(&self.mesh);
        let (account, subject, queue) = (account.clone(), subject.clone(), queue.cloned());
        let op = match added {
            true => mesh.interest.add(account, subject, queue),
            false => mesh.interest.remove(account, subject, queue),
        };
        let Some(op) = op else {
            return;
        };
        if mesh.links.is_empty() {
            return;
        }
        let mut line = BytesMut::with_capacity(128);
        encode_op(&mut line, &op);
        for link in mesh.links.values() {
            link.handle.enqueue_raw(&line);
            link.handle.wake();
        }
    }

    /// Registers a route whose INFO has been read: sends it every local interest and returns
    /// the other routes (to tell them about the newcomer), or refuses a second route to the
    /// same server.
    ///
    /// Of two routes between the same pair of servers, both ends keep the one the server with
    /// the smaller id dialled. "The first registered wins" is not enough: when both dial at
    /// once, each end can register a different connection first, refuse the other, and the
    /// pair is left with none (found by `tests/cluster_partition.rs`, where gossip in both
    /// directions makes both ends dial together). A newcomer that is the one to keep
    /// displaces the registered route, which is closed.
    pub fn register(&self, link: &Arc<RouteLink>) -> Result<Vec<Arc<RouteLink>>, Refused> {
        let mut mesh = lock(&self.mesh);
        if let Some(existing) = mesh.links.get(&link.remote_id) {
            if !self.is_kept(link) || self.is_kept(existing) {
                return Err(Refused::Duplicate);
            }
            let displaced = existing.clone();
            mesh.links.remove(&link.remote_id);
            forget_urls(&mut mesh, &displaced);
            displaced.remove_all_interest();
            displaced
                .handle
                .close(crate::server::outbound::CloseReason::ProtocolError);
            tracing::debug!(
                "Replacing route {:?} (rid:{}) with rid:{}: both servers keep this one",
                link.remote_id,
                displaced.id,
                link.id
            );
        }
        let mut snapshot = BytesMut::with_capacity(4096);
        for op in mesh.interest.snapshot() {
            encode_op(&mut snapshot, &op);
        }
        link.handle.enqueue_raw(&snapshot);
        link.handle.wake();
        let others = mesh.links.values().cloned().collect();
        mesh.links.insert(link.remote_id.clone(), link.clone());
        if !self.config.no_advertise {
            for url in &link.connect_urls {
                *mesh.peer_urls.entry(url.clone()).or_insert(0) += 1;
            }
        }
        Ok(others)
    }

    /// Whether `link` is the route to keep between this server and its peer: the one the
    /// server with the smaller id dialled.
    fn is_kept(&self, link: &RouteLink) -> bool {
        link.solicited == (self.server_id.as_str() < link.remote_id.as_str())
    }

    /// Takes a closed route out. Returns whether it was the registered one (a refused
    /// duplicate never was).
    pub fn unregister(&self, link: &Arc<RouteLink>) -> bool {
        let mut mesh = lock(&self.mesh);
        let registered = mesh
            .links
            .get(&link.remote_id)
            .is_some_and(|l| Arc::ptr_eq(l, link));
        if !registered {
            return false;
        }
        mesh.links.remove(&link.remote_id);
        if !link.lame_duck.load(std::sync::atomic::Ordering::Acquire) {
            forget_urls(&mut mesh, link);
        }
        true
    }

    /// Whether a route to this server id is registered.
    pub fn has_route_to(&self, server_id: &str) -> bool {
        lock(&self.mesh).links.contains_key(server_id)
    }

    /// Every registered route, by remote server id.
    pub fn links(&self) -> Vec<Arc<RouteLink>> {
        lock(&self.mesh).links.values().cloned().collect()
    }

    /// Marks an address as being dialled; false if it already is.
    fn begin_dial(&self, address: &str) -> bool {
        lock(&self.mesh).dialling.insert(address.to_string())
    }

    fn end_dial(&self, address: &str) {
        lock(&self.mesh).dialling.remove(address);
    }

    /// The other servers' client URLs (what a server in lame duck mode tells its clients).
    pub fn peer_connect_urls(&self) -> Vec<String> {
        lock(&self.mesh).peer_urls.keys().cloned().collect()
    }

    /// This server enters lame duck mode: every route hears it, so the other servers stop
    /// sending their clients here.
    pub fn enter_lame_duck(&self, max_payload: usize) {
        let mut info = self.route_info(max_payload);
        info.ldm = true;
        let Ok(json) = serde_json::to_vec(&info) else {
            return;
        };
        let mut line = BytesMut::with_capacity(json.len() + 8);
        crate::protocol::encode::write_info(&mut line, &json);
        for link in self.links() {
            link.handle.enqueue_raw(&line);
            link.handle.wake();
        }
    }

    /// A peer entered lame duck mode: its client URLs are no longer told to clients. Returns
    /// whether anything changed.
    pub fn peer_in_lame_duck(&self, link: &Arc<RouteLink>) -> bool {
        if link
            .lame_duck
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            return false;
        }
        let mut mesh = lock(&self.mesh);
        forget_urls(&mut mesh, link);
        true
    }

    /// The URLs this server's clients may reconnect to: its own first, then the peers'.
    pub fn client_connect_urls(&self) -> Vec<String> {
        let mut urls: Vec<String> = lock(&self.client_url).iter().cloned().collect();
        for url in lock(&self.mesh).peer_urls.keys() {
            if !urls.contains(url) {
                urls.push(url.clone());
            }
        }
        urls
    }

    /// Learns this server's client URL from the local address of a route socket, when the
    /// client port listens on every address.
    fn learn_client_host(&self, local: SocketAddr) {
        let mut url = lock(&self.client_url);
        if url.is_none() && !local.ip().is_unspecified() {
            *url = Some(host_port(local.ip(), self.client_port));
        }
    }

    /// This server's route INFO.
    fn route_info(&self, max_payload: usize) -> RouteInfo {
        let name = self.name();
        let listen = self.listen_addr();
        RouteInfo {
            server_id: self.server_id.clone(),
            server_name: self.server_name.clone(),
            version: crate::protocol::connect::NATS_COMPAT_VERSION.to_string(),
            proto: ROUTE_PROTO,
            go: "jetlog (rust)".to_string(),
            host: listen.map_or_else(String::new, |a| a.ip().to_string()),
            port: listen.map_or(0, |a| a.port()),
            headers: true,
            max_payload,
            cluster: name.name,
            cluster_dynamic: name.dynamic,
            ip: self
                .config
                .advertise
                .as_ref()
                .map_or_else(String::new, |a| format!("nats-route://{a}/")),
            auth_required: self.config.auth.is_some(),
            tls_required: self.tls.is_some(),
            connect_urls: match self.config.no_advertise {
                true => Vec::new(),
                false => lock(&self.client_url).iter().cloned().collect(),
            },
            jetstream: self.jetstream.load(std::sync::atomic::Ordering::Relaxed),
            ..RouteInfo::default()
        }
    }
}

/// Takes a route's peer URLs out of the count (they were counted unless `no_advertise`).
fn forget_urls(mesh: &mut Mesh, link: &RouteLink) {
    for url in &link.connect_urls {
        if let Some(n) = mesh.peer_urls.get_mut(url) {
            *n -= 1;
            if *n == 0 {
                mesh.peer_urls.remove(url);
            }
        }
    }
}

/// `host:port`, with brackets around an IPv6 host.
fn host_port(ip: std::net::IpAddr, port: u16) -> String {
    SocketAddr::new(ip, port).to_string()
}

fn encode_op(out: &mut BytesMut, op: &RouteOp) {
    match op {
        RouteOp::Interest {
            account,
            subject,
            queue,
        } => encode_interest(
            out,
            Some(account),
            subject,
            queue.as_ref().map(|(q, w)| (&q[..], *w)),
        ),
        RouteOp::NoInterest {
            account,
            subject,
            queue,
        } => encode_no_interest(out, Some(account), subject, queue.as_deref()),
        _ => debug_assert!(false, "only interest is announced"),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
