//! The cluster flags of `jetlog server`, named as nats-server's, laid over the config file's
//! `cluster {}` block.

use clap::Args;

use crate::cluster::config::{parse_listen, parse_routes, ClusterSettings};

#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Route port URL to listen on for the other servers, e.g. nats://0.0.0.0:6222; a user
    /// and password in it are what routes must authenticate with.
    #[arg(long = "cluster", visible_alias = "cluster_listen", value_name = "URL")]
    cluster: Option<String>,
    /// Routes to dial, comma separated (nats-route://host:port).
    #[arg(long = "routes", value_name = "URLS")]
    routes: Option<String>,
    /// The cluster's name (every server of a cluster must use the same).
    #[arg(long = "cluster_name", value_name = "NAME")]
    cluster_name: Option<String>,
    /// host:port the other servers should dial this one at.
    #[arg(long = "cluster_advertise", value_name = "HOST:PORT")]
    cluster_advertise: Option<String>,
    /// Do not tell clients about the other servers' URLs.
    #[arg(long = "no_advertise")]
    no_advertise: bool,
    /// Extra attempts at a route learned from another server.
    #[arg(long = "connect_retries", value_name = "N")]
    connect_retries: Option<u32>,
    /// host:port clients are told to reconnect to, instead of the listen address.
    #[arg(long = "client_advertise", value_name = "HOST:PORT")]
    pub client_advertise: Option<String>,
}

impl ClusterArgs {
    /// The settings the flags give (each `None` where no flag was passed).
    pub fn settings(&self) -> Result<ClusterSettings, String> {
        let parsed = self.cluster.as_deref().map(parse_listen).transpose()?;
        let listen = parsed.as_ref().map(|(addr, _)| *addr);
        let creds = parsed.map(|(_, url)| url);
        Ok(ClusterSettings {
            user: creds.as_ref().and_then(|c| c.user.clone()),
            password: creds.and_then(|c| c.pass),
            auth_timeout: None,
            tls: None,
            name: self.cluster_name.clone(),
            host: listen.map(|a| a.ip()),
            port: listen.map(|a| a.port()),
            routes: self.routes.as_deref().map(parse_routes).transpose()?,
            advertise: self.cluster_advertise.clone(),
            no_advertise: self.no_advertise.then_some(true),
            connect_retries: self.connect_retries,
        })
    }
}
