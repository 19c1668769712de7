//! The flags every client command shares, and a connection that fails fast.
//!
//! Contract: `connect` returns a connected client or an error line within `--timeout`. The
//! first connection is tried once per server URL (async-nats retries only later reconnects),
//! and the whole attempt is bounded by a timer as well, so a black-holed address cannot hang
//! the command.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use async_nats::jetstream::{self, Context};
use async_nats::{Client, ConnectErrorKind, ConnectOptions, Event, ServerAddr, ServerError};
use clap::Args;

use super::credentials::{redact, split_url, UrlAuth};
use super::units::format_duration;
use crate::cli::parse_duration;

/// Where client commands connect when neither `-s` nor `NATS_URL` says otherwise.
pub const DEFAULT_URL: &str = "nats://127.0.0.1:4222";

/// Reconnect attempts after an established connection drops, before the client gives up and
/// a long-running command (`sub`, `reply`, `replay --follow`) ends with an error. The same
/// number as the Go client's default, so a server restart is ridden out.
const MAX_RECONNECTS: usize = 60;

/// The name the CLI's connections carry in the server's logs and monitoring.
const CLIENT_NAME: &str = "jetlog-cli";

/// Connection and output flags, accepted by every client command (before or after its
/// subcommand, hence `global`).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Connection and output")]
pub struct CommonArgs {
    /// Server URL(s), comma separated [default: the context's, else nats://127.0.0.1:4222].
    #[arg(short = 's', long = "server", env = "NATS_URL", global = true)]
    pub server: Option<String>,
    /// A natscli context to take unset connection settings from (default: the selected one).
    #[arg(long, env = "NATS_CONTEXT", global = true)]
    pub context: Option<String>,
    /// User name (with --password).
    #[arg(long, env = "NATS_USER", global = true)]
    pub user: Option<String>,
    /// Password (with --user).
    #[arg(long, env = "NATS_PASSWORD", global = true, hide_env_values = true)]
    pub password: Option<String>,
    /// Authentication token.
    #[arg(long, global = true, conflicts_with_all = ["user", "password"])]
    pub token: Option<String>,
    /// A credentials file (user JWT and nkey seed).
    #[arg(long, env = "NATS_CREDS", global = true)]
    pub creds: Option<PathBuf>,
    /// A file holding the user's nkey seed (SU…).
    #[arg(long, env = "NATS_NKEY", global = true)]
    pub nkey: Option<PathBuf>,
    /// The CA that signed the server's certificate (PEM); implies TLS.
    #[arg(long, env = "NATS_CA", global = true)]
    pub tlsca: Option<PathBuf>,
    /// A client certificate (PEM), with --tlskey, for servers that verify clients.
    #[arg(long, env = "NATS_CERT", global = true)]
    pub tlscert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, env = "NATS_KEY", global = true)]
    pub tlskey: Option<PathBuf>,
    /// Start with the TLS handshake, for servers with `handshake_first`.
    #[arg(long, global = true)]
    pub tlsfirst: bool,
    /// How long to wait for the connection and for each reply, e.g. 5s or 500ms.
    #[arg(long, default_value = "5s", value_parser = parse_duration, global = true)]
    pub timeout: Duration,
    /// Print JSON for scripts instead of human output.
    #[arg(short = 'j', long, global = true)]
    pub json: bool,
}

impl CommonArgs {
    /// The connection options these flags ask for; credentials in a server URL apply when no
    /// flag gives any.
    async fn options(&self, from_url: Option<UrlAuth>) -> Result<ConnectOptions> {
        let mut options = ConnectOptions::new()
            .name(CLIENT_NAME)
            .connection_timeout(self.timeout)
            .request_timeout(Some(self.timeout))
            .max_reconnects(MAX_RECONNECTS);
        let flagged = self.user.is_some()
            || self.password.is_some()
            || self.token.is_some()
            || self.creds.is_some()
            || self.nkey.is_some();
        options = match (&self.user, &self.password, &self.token) {
            (Some(user), Some(password), None) => {
                options.user_and_password(user.clone(), password.clone())
            }
            (None, None, Some(token)) => options.token(token.clone()),
            (None, None, None) => match from_url.filter(|_| !flagged) {
                Some(UrlAuth::UserPassword { user, password }) => {
                    options.user_and_password(user, password)
                }
                Some(UrlAuth::Token(token)) => options.token(token),
                None => options,
            },
            (Some(_), None, _) | (None, Some(_), _) => {
                bail!("--user and --password must be given together")
            }
            (Some(_), Some(_), Some(_)) => bail!("--token cannot be combined with --user"),
        };
        if let Some(path) = &self.creds {
            options = options
                .credentials_file(path)
                .await
                .with_context(|| format!("cannot read credentials file {}", path.display()))?;
        }
        if let Some(path) = &self.nkey {
            let seed = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read nkey seed file {}", path.display()))?;
            options = options.nkey(seed.trim().to_string());
        }
        if let Some(ca) = &self.tlsca {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        match (&self.tlscert, &self.tlskey) {
            (Some(cert), Some(key)) => {
                options = options
                    .add_client_certificate(cert.clone(), key.clone())
                    .require_tls(true)
            }
            (None, None) => {}
            _ => bail!("--tlscert and --tlskey must be given together"),
        }
        if self.tlsfirst {
            options = options.tls_first();
        }
        Ok(options.event_callback(|event| async move {
            if let Event::ServerError(ServerError::Other(text)) = event {
                if text.contains("Permissions Violation") {
                    lock_refusals().push(text);
                }
            }
        }))
    }

    /// Parses `--server` into addresses, so a typo is reported as such and not as a failed
    /// connection, and takes credentials out of the URLs (the first URL that has some wins).
    fn addresses(&self) -> Result<(Vec<ServerAddr>, Option<UrlAuth>)> {
        let mut from_url = None;
        let mut addresses = Vec::new();
        for url in self
            .server
            .as_deref()
            .unwrap_or(DEFAULT_URL)
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
        {
            let (bare, auth) = split_url(url)?;
            if from_url.is_none() {
                from_url = auth;
            }
            let address = bare
                .parse::<ServerAddr>()
                .map_err(|err| anyhow!("invalid server URL {:?}: {err}", redact(url)))?;
            addresses.push(address);
        }
        if addresses.is_empty() {
            bail!("no server URL given (use -s or NATS_URL)");
        }
        Ok((addresses, from_url))
    }
}

/// What the server refused on this process's connection (`-ERR 'Permissions Violation …'`).
/// A command is one process with one connection, so a process-wide list is the command's.
static REFUSALS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn lock_refusals() -> std::sync::MutexGuard<'static, Vec<String>> {
    REFUSALS.lock().unwrap_or_else(|p| p.into_inner())
}

/// How long connecting took (TCP, INFO, CONNECT and a PING answered), in microseconds: the
/// measure of a round trip to this server.
static CONNECT_MICROS: AtomicU64 = AtomicU64::new(0);

/// Bounds of the wait for a refusal after a flush: async-nats' flush ends when the bytes are
/// written, not with a PING answered, so the server's -ERR may still be on its way. The wait
/// is two connection round trips, within these bounds.
const REFUSAL_WAIT_MIN: Duration = Duration::from_millis(20);
const REFUSAL_WAIT_MAX: Duration = Duration::from_secs(1);

/// The first thing the server refused so far, as it worded it.
pub fn server_refusal() -> Option<String> {
    lock_refusals().first().cloned()
}

/// The first refusal, after waiting long enough for the server's answer to what was just
/// flushed to arrive (returning at once when one is there).
async fn refusal_after_flush() -> Option<String> {
    let round_trip = Duration::from_micros(CONNECT_MICROS.load(Ordering::Relaxed));
    let wait = (round_trip * 2).clamp(REFUSAL_WAIT_MIN, REFUSAL_WAIT_MAX);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        tokio::task::yield_now().await;
        if let Some(refusal) = server_refusal() {
            return Some(refusal);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Connects to the server, or explains in one line why not, within `--timeout`.
pub async fn connect(args: &CommonArgs) -> Result<Client> {
    let args = &super::context::resolve(args)?;
    let (addresses, from_url) = args.addresses()?;
    let options = args.options(from_url).await?;
    let target = redact(args.server.as_deref().unwrap_or(DEFAULT_URL));
    let started = std::time::Instant::now();
    match tokio::time::timeout(args.timeout, options.connect(addresses)).await {
        Ok(Ok(client)) => {
            let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            CONNECT_MICROS.store(micros, Ordering::Relaxed);
            Ok(client)
        }
        Ok(Err(err)) => {
            let reason = match err.kind() {
                ConnectErrorKind::AuthorizationViolation => {
                    "authorization violation (check --user/--password or --token)".to_string()
                }
                // The kind alone says "IO error"; its source says what happened.
                _ => err.to_string(),
            };
            Err(anyhow!("cannot connect to {target}: {reason}"))
        }
        Err(_) => Err(anyhow!(
            "cannot connect to {target}: no answer within {}",
            format_duration(args.timeout)
        )),
    }
}

/// A JetStream context whose API requests and publish acks wait at most `--timeout`.
pub fn jetstream(client: Client, args: &CommonArgs) -> Context {
    jetstream::ContextBuilder::new()
        .timeout(args.timeout)
        .ack_timeout(args.timeout)
        .build(client)
}

/// Connects and returns a JetStream context, for the commands that only use JetStream.
pub async fn connect_jetstream(args: &CommonArgs) -> Result<Context> {
    let client = connect(args).await?;
    Ok(jetstream(client, args))
}

/// Waits until everything written so far has reached the server, so a command that exits
/// right after publishing does not lose its last messages.
pub async fn flush(client: &Client, args: &CommonArgs) -> Result<()> {
    tokio::time::timeout(args.timeout, client.flush())
        .await
        .map_err(|_| anyhow!("the server did not confirm the flush within the timeout"))?
        .context("flushing to the server")?;
    // A publish or subscription the server refused must not be reported as done.
    match refusal_after_flush().await {
        Some(refusal) => Err(anyhow!("the server refused: {refusal}")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Probe {
        #[command(flatten)]
        common: CommonArgs,
    }

    fn parse(args: &[&str]) -> CommonArgs {
        let mut argv = vec!["probe"];
        argv.extend_from_slice(args);
        Probe::parse_from(argv).common
    }

    #[tokio::test]
    async fn user_without_password_is_refused() {
        let args = parse(&["--user", "a"]);
        let err = args.options(None).await.err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("--user and --password must be given together")
        );
    }

    #[test]
    fn comma_separated_servers_are_all_parsed() {
        let args = parse(&["-s", "nats://127.0.0.1:1, nats://u:p@127.0.0.1:2"]);
        let (addresses, auth) = args.addresses().unwrap();
        assert_eq!(addresses.len(), 2);
        assert_eq!(
            auth,
            Some(UrlAuth::UserPassword {
                user: "u".into(),
                password: "p".into()
            })
        );
        let args = parse(&["-s", "nats://[bad"]);
        assert!(args.addresses().is_err());
    }
}
