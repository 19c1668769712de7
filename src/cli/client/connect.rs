//! The flags every client command shares, and a connection that fails fast.
//!
//! Contract: `connect` returns a connected client or an error line within `--timeout`. The
//! first connection is tried once per server URL (async-nats retries only later reconnects),
//! and the whole attempt is bounded by a timer as well, so a black-holed address cannot hang
//! the command.

use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use async_nats::jetstream::{self, Context};
use async_nats::{Client, ConnectErrorKind, ConnectOptions, ServerAddr};
use clap::Args;

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
    /// Server URL(s), comma separated.
    #[arg(short = 's', long = "server", env = "NATS_URL", default_value = DEFAULT_URL,
          global = true)]
    pub server: String,
    /// User name (with --password).
    #[arg(long, global = true)]
    pub user: Option<String>,
    /// Password (with --user).
    #[arg(long, global = true)]
    pub password: Option<String>,
    /// Authentication token.
    #[arg(long, global = true, conflicts_with_all = ["user", "password"])]
    pub token: Option<String>,
    /// How long to wait for the connection and for each reply, e.g. 5s or 500ms.
    #[arg(long, default_value = "5s", value_parser = parse_duration, global = true)]
    pub timeout: Duration,
    /// Print JSON for scripts instead of human output.
    #[arg(long, global = true)]
    pub json: bool,
}

impl CommonArgs {
    /// The connection options these flags ask for.
    fn options(&self) -> Result<ConnectOptions> {
        let options = ConnectOptions::new()
            .name(CLIENT_NAME)
            .connection_timeout(self.timeout)
            .request_timeout(Some(self.timeout))
            .max_reconnects(MAX_RECONNECTS);
        Ok(match (&self.user, &self.password, &self.token) {
            (Some(user), Some(password), None) => {
                options.user_and_password(user.clone(), password.clone())
            }
            (None, None, Some(token)) => options.token(token.clone()),
            (None, None, None) => options,
            (Some(_), None, _) | (None, Some(_), _) => {
                bail!("--user and --password must be given together")
            }
            (Some(_), Some(_), Some(_)) => bail!("--token cannot be combined with --user"),
        })
    }

    /// Parses `--server` into addresses, so a typo is reported as such and not as a failed
    /// connection.
    fn addresses(&self) -> Result<Vec<ServerAddr>> {
        let addresses = self
            .server
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(|url| {
                url.parse::<ServerAddr>()
                    .map_err(|err| anyhow!("invalid server URL {url:?}: {err}"))
            })
            .collect::<Result<Vec<_>>>()?;
        if addresses.is_empty() {
            bail!("no server URL given (use -s or NATS_URL)");
        }
        Ok(addresses)
    }
}

/// Connects to the server, or explains in one line why not, within `--timeout`.
pub async fn connect(args: &CommonArgs) -> Result<Client> {
    let options = args.options()?;
    let addresses = args.addresses()?;
    let target = &args.server;
    match tokio::time::timeout(args.timeout, options.connect(addresses)).await {
        Ok(Ok(client)) => Ok(client),
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
        .context("flushing to the server")
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

    #[test]
    fn user_without_password_is_refused() {
        let args = parse(&["--user", "a"]);
        let err = args.options().err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("--user and --password must be given together")
        );
    }

    #[test]
    fn comma_separated_servers_are_all_parsed() {
        let args = parse(&["-s", "nats://127.0.0.1:1, nats://127.0.0.1:2"]);
        assert_eq!(args.addresses().map(|a| a.len()).ok(), Some(2));
        let args = parse(&["-s", "nats://[bad"]);
        assert!(args.addresses().is_err());
    }
}
