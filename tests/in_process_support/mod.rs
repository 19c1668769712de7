//! Servers run inside the test process, for tests that need a server's Rust API (its Raft
//! groups) rather than only its wire: bound to 127.0.0.1 with ephemeral client and route
//! ports, and stopped through a channel.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use jetlog::cluster::{ClusterConfig, RouteUrl};
use jetlog::server::{Server, ServerConfig};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a stopping server may take to let its connections go.
const STOP_WAIT: Duration = Duration::from_secs(20);

/// A server of cluster `cluster` named `name`, routed to `seed` if given; not running yet.
/// Returns it with its store directory and its route address.
pub async fn bind_clustered(
    name: &str,
    cluster: &str,
    seed: Option<SocketAddr>,
) -> (Server, tempfile::TempDir, SocketAddr) {
    let store = tempfile::tempdir().expect("store");
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        server_name: Some(name.to_owned()),
        store_dir: store.path().to_path_buf(),
        jetstream: false,
        cluster: Some(ClusterConfig {
            name: Some(cluster.into()),
            listen: "127.0.0.1:0".parse().expect("addr"),
            routes: seed
                .map(|a| RouteUrl::parse(&format!("nats-route://{a}")).expect("url"))
                .into_iter()
                .collect(),
            advertise: None,
            no_advertise: false,
            connect_retries: 3,
            auth: None,
            tls: None,
        }),
        ..ServerConfig::default()
    };
    let server = Server::bind(config).await.expect("bind");
    let addr = server.cluster_addr().expect("route port");
    (server, store, addr)
}

/// A server running on its own task until [`Running::stop`].
pub struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Running {
    pub fn start(server: Server) -> Running {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Running { stop, task }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(STOP_WAIT, self.task).await;
    }
}
