//! The `jetlog` command line: `jetlog server` runs the server; client commands come later.

mod argv;
mod duration;
mod server;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use duration::parse_duration;

/// jetlog: a persistent stream server that speaks the NATS protocol and the JetStream API.
#[derive(Debug, Parser)]
#[command(name = "jetlog", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (accepts nats-server's common flags).
    Server(server::ServerArgs),
}

/// Parses the process arguments and runs the chosen command.
pub fn main() -> ExitCode {
    let args = argv::normalize_server_args(std::env::args());
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) => {
            let code = if err.use_stderr() { 1 } else { 0 };
            let _ = err.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Command::Server(args) => server::run(args),
    }
}
