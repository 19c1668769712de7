//! `jetlog server`: turns flags into a `ServerConfig`, sets up logging, runs until a signal.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::parse_duration;
use super::process_files::ProcessFiles;
use crate::monitor::Monitor;
use crate::protocol::connect::NATS_COMPAT_VERSION;
use crate::server::config::DEFAULT_PORT;
use crate::server::config_file::{self, LoadedConfig};
use crate::server::tls::TlsConfig;
use crate::server::{AuthConfig, Server, ServerConfig, SyncMode};

/// Flags of `jetlog server`. Names follow nats-server so scripts can switch binaries; as with
/// Go's flag package, a flag given twice takes its last value.
#[derive(Debug, Args)]
#[command(args_override_self = true, args_conflicts_with_subcommands = true)]
pub struct ServerArgs {
    /// natscli's operator commands, asked of running servers instead of running one.
    #[command(subcommand)]
    pub ops: Option<Box<crate::cli::client::server_ops::ServerOps>>,
    /// Configuration file in nats-server's format; flags given beside it override it.
    #[arg(short = 'c', long = "config")]
    config: Option<PathBuf>,
    /// Test the configuration and exit: 0 if it is valid, 1 with the error if not.
    #[arg(short = 't')]
    test_config: bool,
    /// Send a running server a signal and exit: stop, quit or term, as `term=<pid|pid file>`.
    #[arg(long = "signal", value_name = "COMMAND=PID")]
    signal: Option<String>,
    /// Print the version (in nats-server's form) and exit.
    #[arg(short = 'v', long = "version")]
    version: bool,
    /// Port for clients (default 4222); -1 picks a free one.
    #[arg(short = 'p', long, allow_negative_numbers = true)]
    port: Option<i32>,
    /// Address to listen on (default 0.0.0.0).
    #[arg(short = 'a', long = "addr", visible_alias = "net")]
    addr: Option<IpAddr>,
    /// File to write the process id to; removed on a clean shutdown.
    #[arg(short = 'P', long = "pid")]
    pid: Option<PathBuf>,
    /// Directory to write `<executable>_<pid>.ports` to, with the URLs actually bound.
    #[arg(long = "ports_file_dir")]
    ports_file_dir: Option<PathBuf>,
    /// Log to this file instead of stderr.
    #[arg(short = 'l', long = "log")]
    log: Option<PathBuf>,
    /// Enable JetStream. `jetlog server` runs it anyway; run as `nats-server`, the binary
    /// runs it only with this flag or a `jetstream` block in the config file.
    #[arg(long)]
    jetstream: bool,
    /// Where streams are stored (default ./data; `$TMPDIR/nats/jetstream` when run as
    /// `nats-server`).
    #[arg(long = "store_dir", visible_alias = "store-dir")]
    store_dir: Option<PathBuf>,
    /// Server name (defaults to the server id).
    #[arg(short = 'n', long = "server_name", visible_alias = "name")]
    server_name: Option<String>,
    /// Debug logging.
    #[arg(short = 'D', long = "debug")]
    debug: bool,
    /// Trace logging.
    #[arg(short = 'V', long = "trace")]
    trace: bool,
    /// Timestamp log lines (default true; `-T=false` leaves the time out, as nats-server).
    #[arg(
        short = 'T',
        long = "logtime",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    logtime: Option<bool>,
    /// HTTP monitoring port (off unless given; -1 picks a free one).
    #[arg(short = 'm', long = "http_port", allow_negative_numbers = true)]
    http_port: Option<i32>,
    /// HTTPS monitoring port, with the client port's TLS certificates (-1 picks a free one).
    #[arg(long = "https_port", allow_negative_numbers = true)]
    https_port: Option<i32>,
    /// User required to connect (with --pass).
    #[arg(long)]
    user: Option<String>,
    /// Password required to connect (with --user).
    #[arg(long)]
    pass: Option<String>,
    /// Token required to connect.
    #[arg(long)]
    auth: Option<String>,
    /// Enable TLS on the client port (with --tlscert and --tlskey); clients must use TLS.
    #[arg(long)]
    tls: bool,
    /// The server's certificate chain (PEM).
    #[arg(long)]
    tlscert: Option<PathBuf>,
    /// The server certificate's private key (PEM).
    #[arg(long)]
    tlskey: Option<PathBuf>,
    /// Enable TLS and require a client certificate signed by --tlscacert.
    #[arg(long)]
    tlsverify: bool,
    /// The CA (PEM) client certificates are verified against.
    #[arg(long)]
    tlscacert: Option<PathBuf>,
    /// When appended messages are fsynced: always (default), never, or an interval such as 100ms.
    #[arg(long, value_parser = parse_sync_mode)]
    sync: Option<SyncMode>,
    /// Largest message a client may publish, headers included.
    #[arg(long = "max_payload")]
    max_payload: Option<usize>,
    /// Outbound bytes queued for one client before it is cut off as a slow consumer.
    #[arg(long = "max_pending")]
    max_pending: Option<usize>,
    /// Most client connections at once.
    #[arg(long = "max_connections")]
    max_connections: Option<usize>,
    /// How often idle clients are PINGed (e.g. 2m).
    #[arg(long = "ping_interval", value_parser = parse_duration)]
    ping_interval: Option<Duration>,
    /// Unanswered PINGs before a connection is stale.
    #[arg(long = "ping_max")]
    ping_max: Option<u32>,
    /// How long a client has to authenticate.
    #[arg(long = "auth_timeout", value_parser = parse_duration)]
    auth_timeout: Option<Duration>,
    /// How long one write to a client may take.
    #[arg(long = "write_deadline", value_parser = parse_duration)]
    write_deadline: Option<Duration>,
    #[command(flatten)]
    cluster: super::cluster_args::ClusterArgs,
    /// Set when the binary runs as `nats-server`: nats-server's defaults apply (see
    /// `nats_server_mode`).
    #[arg(skip)]
    pub nats_server_defaults: bool,
}

fn parse_sync_mode(text: &str) -> Result<SyncMode, String> {
    match text {
        "always" => Ok(SyncMode::Always),
        "never" => Ok(SyncMode::Never),
        other => match parse_duration(other) {
            Ok(d) if !d.is_zero() => Ok(SyncMode::Interval(d)),
            _ => Err(format!(
                "invalid sync mode {other:?}: use always, never or an interval such as 100ms"
            )),
        },
    }
}

/// What `jetlog server` runs with: the server's settings and the files around the process.
struct Launch {
    config: ServerConfig,
    debug: bool,
    trace: bool,
    logtime: bool,
    log_file: Option<PathBuf>,
    pid_file: Option<PathBuf>,
    ports_file_dir: Option<PathBuf>,
    /// Config-file warnings, logged once logging is set up.
    warnings: Vec<String>,
}

impl ServerArgs {
    /// TLS from the flags when any TLS flag is given (they replace the file's block, as in
    /// nats-server), else from the config file.
    fn tls_settings(&self, from_file: Option<TlsConfig>) -> Result<Option<TlsConfig>, String> {
        let any_flag = self.tls
            || self.tlsverify
            || self.tlscert.is_some()
            || self.tlskey.is_some()
            || self.tlscacert.is_some();
        if !any_flag {
            return Ok(from_file);
        }
        let (Some(cert_file), Some(key_file)) = (self.tlscert.clone(), self.tlskey.clone()) else {
            return Err("TLS needs both --tlscert and --tlskey".to_string());
        };
        if self.tlsverify && self.tlscacert.is_none() {
            return Err("--tlsverify needs --tlscacert to verify client certificates".to_string());
        }
        Ok(Some(TlsConfig {
            ca_file: self.tlscacert.clone(),
            verify: self.tlsverify,
            ..TlsConfig::new(cert_file, key_file)
        }))
    }

    /// Builds the settings from the flags over the config file over the defaults, refusing
    /// combinations that cannot work.
    fn into_launch(self) -> Result<Launch, String> {
        let loaded = match &self.config {
            Some(path) => config_file::load(path).map_err(|e| e.to_string())?,
            None => LoadedConfig::default(),
        };
        let mut file = loaded.settings;
        let mut warnings = loaded.warnings;
        let mut tls = self.tls_settings(file.tls.take())?;
        if file.allow_non_tls == Some(true) {
            let Some(tls) = tls.as_mut() else {
                return Err("allow_non_tls needs TLS (a tls block or --tls*)".to_string());
            };
            if tls.handshake_first {
                return Err("allow_non_tls cannot be combined with handshake_first".to_string());
            }
            tls.allow_non_tls = true;
        }
        let port = match self.port.or(file.port).unwrap_or(i32::from(DEFAULT_PORT)) {
            -1 => 0,
            p => u16::try_from(p).map_err(|_| format!("invalid port {p}: use 0-65535 or -1"))?,
        };
        // Credentials come as a whole from the flags when any is given there, else from the
        // file, so a flag never pairs with half of the file's credentials.
        let from_flags = self.user.is_some() || self.pass.is_some() || self.auth.is_some();
        let (user, pass, token) = if from_flags {
            (self.user, self.pass, self.auth)
        } else {
            (file.user, file.password, file.token)
        };
        let users = if from_flags { None } else { file.users };
        let auth = match (user, pass, token) {
            (None, None, None) if users.is_some() => users.map(AuthConfig::Users),
            (None, None, None) => None,
            (Some(user), Some(password), None) => Some(AuthConfig::UserPassword { user, password }),
            (None, None, Some(token)) => Some(AuthConfig::Token(token)),
            (Some(_), None, _) | (None, Some(_), _) => {
                return Err("--user and --pass must be given together".to_string())
            }
            (Some(_), Some(_), Some(_)) => {
                return Err("--auth (token) cannot be combined with --user/--pass".to_string())
            }
        };
        let defaults = ServerConfig::default();
        let host = self.addr.or(file.addr).unwrap_or(defaults.listen.ip());
        // As in nats-server, port 0 leaves monitoring off and -1 picks a free port; the
        // monitor listens on the client host unless `http_host` says otherwise.
        let monitor_port = |port: Option<i32>, what: &str| match port {
            None | Some(0) => Ok(None),
            Some(-1) => Ok(Some(0)),
            Some(p) => u16::try_from(p)
                .map(Some)
                .map_err(|_| format!("invalid {what} port {p}: use 1-65535, or -1")),
        };
        let http = monitor_port(self.http_port.or(file.http_port), "http")?;
        let https = monitor_port(self.https_port.or(file.https_port), "https")?;
        // nats-server's rules (StartMonitoring): one or the other, and HTTPS needs TLS.
        let monitor_tls = https.is_some();
        let monitor_port = match (http, https) {
            (Some(_), Some(_)) => {
                return Err(format!(
                    "can't specify both HTTP ({:?}) and HTTPs ({:?}) ports",
                    self.http_port.or(file.http_port).unwrap_or(0),
                    self.https_port.or(file.https_port).unwrap_or(0)
                ))
            }
            (port, None) | (None, port) => port,
        };
        if monitor_tls && tls.is_none() {
            return Err("TLS cert and key required for HTTPS (a tls block or --tls*)".to_string());
        }
        let monitor_listen =
            monitor_port.map(|p| SocketAddr::new(file.http_host.unwrap_or(host), p));
        let cluster = self
            .cluster
            .settings()?
            .over(file.cluster.clone())
            .build()?;
        // A flag can only turn JetStream on, as with nats-server's -js.
        let asked_for_jetstream = self.jetstream || file.jetstream == Some(true);
        let mut jetstream = self.jetstream || file.jetstream.unwrap_or(!self.nats_server_defaults);
        if let (Some(cluster), true) = (&cluster, jetstream) {
            // nats-server's conditions for JetStream in a cluster (jetstream.go,
            // validateJetStreamOptions): JetStream asked for is refused
            // without them; jetlog's default of running it gives way, with a warning.
            let server_name = self.server_name.clone().or(file.server_name.clone());
            if let Some(missing) = clustered_jetstream_missing(server_name.as_deref(), cluster) {
                if asked_for_jetstream {
                    return Err(missing.to_string());
                }
                jetstream = false;
                warnings.push(format!("JetStream is off: {missing}"));
            }
        }
        let default_store_dir = match self.nats_server_defaults {
            true => super::nats_server_mode::default_store_dir(),
            false => defaults.store_dir,
        };
        let config = ServerConfig {
            listen: SocketAddr::new(host, port),
            server_name: self.server_name.or(file.server_name),
            store_dir: self
                .store_dir
                .or(file.store_dir)
                .unwrap_or(default_store_dir),
            sync: self.sync.or(file.sync).unwrap_or(defaults.sync),
            auth,
            max_payload_bytes: self
                .max_payload
                .or(file.max_payload)
                .unwrap_or(defaults.max_payload_bytes),
            max_control_line_bytes: file
                .max_control_line
                .unwrap_or(defaults.max_control_line_bytes),
            max_pending_bytes: self
                .max_pending
                .or(file.max_pending)
                .unwrap_or(defaults.max_pending_bytes),
            max_connections: self
                .max_connections
                .or(file.max_connections)
                .unwrap_or(defaults.max_connections),
            ping_interval: self
                .ping_interval
                .or(file.ping_interval)
                .unwrap_or(defaults.ping_interval),
            max_pings_out: self
                .ping_max
                .or(file.ping_max)
                .unwrap_or(defaults.max_pings_out),
            auth_timeout: self
                .auth_timeout
                .or(file.auth_timeout)
                .unwrap_or(defaults.auth_timeout),
            write_deadline: self
                .write_deadline
                .or(file.write_deadline)
                .unwrap_or(defaults.write_deadline),
            max_memory_store: file.max_memory_store,
            max_file_store: file.max_file_store,
            jetstream,
            js_strict: file.js_strict.unwrap_or(defaults.js_strict),
            account_limits: crate::server::AccountLimits::default(),
            accounts: file.accounts.clone(),
            system_account: file.system_account.clone(),
            operator: file.operator.clone(),
            no_auth_user: file.no_auth_user.clone(),
            js_domain: file.js_domain,
            monitor_listen,
            monitor_tls,
            tls,
            cluster,
            client_advertise: self
                .cluster
                .client_advertise
                .clone()
                .or(file.client_advertise),
            lame_duck_duration: file
                .lame_duck_duration
                .unwrap_or(defaults.lame_duck_duration),
            lame_duck_grace_period: file
                .lame_duck_grace_period
                .unwrap_or(defaults.lame_duck_grace_period),
        };
        if config.max_payload_bytes == 0 || config.max_payload_bytes > config.max_pending_bytes {
            return Err(format!(
                "max_payload ({}) must be above 0 and at most max_pending ({})",
                config.max_payload_bytes, config.max_pending_bytes
            ));
        }
        if config.ping_interval.is_zero() || config.max_connections == 0 {
            return Err("ping_interval and max_connections must be above 0".to_string());
        }
        if let Some(name) = &config.no_auth_user {
            // nats-server's words (validateNoAuthUser).
            let Some(users @ AuthConfig::Users(_)) = &config.auth else {
                return Err(format!(
                    "no_auth_user: \"{name}\" present, but users/nkeys are not defined"
                ));
            };
            if crate::server::auth::authorize_default(users, name).is_none() {
                return Err(format!(
                    "no_auth_user: \"{name}\" not present as user or nkey in authorization block or account configuration"
                ));
            }
        }
        if config.max_control_line_bytes == 0 {
            return Err("max_control_line must be above 0".to_string());
        }
        Ok(Launch {
            config,
            // A flag can only turn these on, as with nats-server's -D/-V.
            debug: self.debug || file.debug.unwrap_or(false),
            trace: self.trace || file.trace.unwrap_or(false),
            logtime: self.logtime.or(file.logtime).unwrap_or(true),
            log_file: self.log.or(file.log_file),
            pid_file: self.pid.or(file.pid_file),
            ports_file_dir: self.ports_file_dir.or(file.ports_file_dir),
            warnings,
        })
    }
}

/// Runs the server until SIGINT or SIGTERM; with `-t`, only checks the configuration.
pub fn run(args: ServerArgs) -> ExitCode {
    if args.version {
        match args.nats_server_defaults {
            true => println!("{}", super::nats_server_mode::version_line()),
            false => println!(
                "nats-server: v{NATS_COMPAT_VERSION} (jetlog {})",
                env!("CARGO_PKG_VERSION")
            ),
        }
        return ExitCode::SUCCESS;
    }
    if let Some(spec) = &args.signal {
        return super::signal::send(spec);
    }
    let test_only = args.test_config;
    let config_path = args.config.clone();
    let launch = match args.into_launch() {
        Ok(launch) => launch,
        Err(message) => {
            eprintln!("jetlog server: {message}");
            return ExitCode::from(1);
        }
    };
    if test_only {
        for warning in &launch.warnings {
            eprintln!("jetlog server: warning: {warning}");
        }
        match config_path {
            Some(path) => eprintln!(
                "jetlog server: configuration file {} is valid",
                path.display()
            ),
            None => eprintln!("jetlog server: configuration is valid"),
        }
        return ExitCode::SUCCESS;
    }
    if let Err(message) = super::log_format::init_logging(
        launch.debug,
        launch.trace,
        launch.logtime,
        launch.log_file.as_deref(),
    ) {
        eprintln!("jetlog server: {message}");
        return ExitCode::from(1);
    }
    for warning in &launch.warnings {
        tracing::warn!("{warning}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("jetlog server: cannot start the runtime: {err}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(serve(launch)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::from(1)
        }
    }
}

/// Sets the stream clock off the machine's when the fault-test variable names this server
/// (`server::stream_clock`); a value that does not parse stops the server.
fn skew_clock_for_faults(server_name: Option<&str>) -> Result<(), String> {
    use crate::server::stream_clock::{self as clock, FAULT_SKEW_ENV};
    let Ok(spec) = std::env::var(FAULT_SKEW_ENV) else {
        return Ok(());
    };
    if let Some(millis) = clock::skew_for(&spec, server_name.unwrap_or_default())? {
        clock::set_skew(millis);
        tracing::warn!(
            "Stream clock runs {millis} ms off the machine's ({FAULT_SKEW_ENV}, for fault tests)"
        );
    }
    Ok(())
}

async fn serve(launch: Launch) -> Result<(), String> {
    let config = launch.config;
    if config.jetstream {
        std::fs::create_dir_all(&config.store_dir).map_err(|e| {
            format!(
                "cannot create store directory {}: {e}",
                config.store_dir.display()
            )
        })?;
    }
    let store_dir = config.store_dir.display().to_string();
    let sync = config.sync;
    // The start-up lines nats-server prints, which harnesses and operators look for.
    tracing::info!("Starting nats-server");
    tracing::info!("  Version:  {NATS_COMPAT_VERSION}");
    tracing::info!("  Server:   jetlog {}", env!("CARGO_PKG_VERSION"));
    if let Some(name) = &config.server_name {
        tracing::info!("  Name:     {name}");
    }
    skew_clock_for_faults(config.server_name.as_deref())?;
    let open_files = super::fd_limit::raise_open_files_limit();
    match open_files {
        Some(n) => tracing::debug!("Open files limit: {n}"),
        None => tracing::debug!("Open files limit: unlimited"),
    }
    let store_files = crate::store::fd_cache::shared();
    store_files.set_capacity(super::fd_limit::store_file_budget(open_files));
    tracing::debug!("Store files open at most: {}", store_files.capacity());
    if config.jetstream {
        tracing::info!("Starting JetStream");
        tracing::info!("    Store Directory: {store_dir:?}");
        tracing::info!("    Sync:            {sync}");
        if config.js_strict {
            tracing::info!("    Strict:          true");
        }
    }
    let monitor_listen = config.monitor_listen;
    let tls = config.tls.clone();
    let server = Server::bind(config.clone()).await?;
    let local = server.local_addr().map_err(|e| e.to_string())?;
    crate::monitor::system::start(server.view())
        .map_err(|e| format!("cannot start the system account's responder: {e}"))?;
    let monitor_tls = if config.monitor_tls {
        server.tls()
    } else {
        None
    };
    let monitor_scheme = if monitor_tls.is_some() {
        "https"
    } else {
        "http"
    };
    let monitor = match monitor_listen {
        Some(addr) => Some(
            Monitor::bind(addr, server.view(), monitor_tls)
                .await
                .map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    let monitor_addr = match &monitor {
        Some(m) => Some(m.local_addr().map_err(|e| e.to_string())?),
        None => None,
    };
    let process_files = ProcessFiles::write(
        launch.pid_file.as_deref(),
        launch.ports_file_dir.as_deref(),
        local,
        monitor_addr.map(|addr| (addr, monitor_scheme)),
    )?;
    // The signal handlers are installed here, before "Server is ready" (see shutdown_signal);
    // the monitor hears of the signal through `stop`, at the moment the client port closes.
    let shutdown = super::signal::shutdown_signal();
    super::signal::handle_other_signals(server.tls(), server.lame_duck_trigger());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let monitor_task = monitor.map(|monitor| {
        let mut stopped = stopped.clone();
        tokio::spawn(monitor.run(async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }))
    });
    if let Some(addr) = monitor_addr {
        // nats-server's wording (server.go, startMonitoring): host and port, no scheme.
        tracing::info!("Starting {monitor_scheme} monitor on {addr}");
    }
    tracing::info!("Listening for client connections on {local}");
    if let Some(addr) = server.cluster_addr() {
        // nats-server's lines (server.go, startRouting).
        if let Some(name) = server.cluster_name() {
            tracing::info!("Cluster name is {name}");
        }
        tracing::info!("Listening for route connections on {addr}");
    }
    if let Some(tls) = &tls {
        // nats-server's line, which operators look for.
        tracing::info!("TLS required for client connections");
        if tls.handshake_first {
            tracing::info!("Clients must start with the TLS handshake (handshake_first)");
        }
    }
    tracing::info!("Server is ready");
    server
        .run(async move {
            shutdown.await;
            let _ = stop.send(true);
        })
        .await;
    if let Some(task) = monitor_task {
        let _ = task.await;
    }
    process_files.remove();
    tracing::info!("Server Exiting..");
    Ok(())
}

/// What a server in a cluster lacks to run JetStream, in nats-server's words.
fn clustered_jetstream_missing(
    server_name: Option<&str>,
    cluster: &crate::cluster::config::ClusterConfig,
) -> Option<&'static str> {
    if server_name.is_none_or(str::is_empty) {
        return Some("jetstream cluster requires `server_name` to be set");
    }
    if cluster.name.as_deref().is_none_or(str::is_empty) {
        return Some("jetstream cluster requires `cluster.name` to be set");
    }
    // nats-server also wants configured routes; jetlog forms the meta group from whatever
    // mesh the server ends up in, so a seed that only waits to be dialled runs JetStream too.
    None
}
