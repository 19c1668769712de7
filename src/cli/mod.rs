//! The `jetlog` command line: `jetlog server` runs the server; the client commands (`pub`,
//! `sub`, `stream`, `consumer`, `replay`, …) live in `client`.

mod argv;
mod client;
mod cluster_args;
mod duration;
pub mod fd_limit;
mod generated;
mod log_format;
mod nats_server_mode;
mod process_files;
mod refused_flags;
mod server;
mod signal;

use std::ffi::OsString;
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
    #[command(flatten)]
    Client(client::ClientCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish or powershell).
    Completions { shell: clap_complete::Shell },
    /// Print jetlog's man page, or write one per command into --dir.
    Man {
        /// Write jetlog.1, jetlog-stream.1, jetlog-stream-add.1, … here.
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
}

/// Parses the process arguments and runs the chosen command.
pub fn main() -> ExitCode {
    // nats-server's flag spellings are rewritten for `jetlog server` only: a client command's
    // arguments (a subject or a body that happens to read `server`, say) are left alone.
    // Arguments stay `OsString`s until clap has seen them, so one that is not UTF-8 (a body
    // piped from a binary file, say) is a usage error, not a panic.
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let as_nats_server = nats_server_mode::invoked_as_nats_server(args.first());
    if as_nats_server {
        // Run as `nats-server`, the binary is the server: there is no subcommand to give.
        args.insert(1.min(args.len()), OsString::from("server"));
    }
    // `jetlog server ping|info|list` are client commands: their flags are the client's.
    let server_ops = !as_nats_server
        && args.get(1).is_some_and(|a| a == "server")
        && args.get(2).is_some_and(|a| {
            ["ping", "info", "list", "report", "check"]
                .iter()
                .any(|op| a == op)
        });
    let args = if args.get(1).is_some_and(|a| a == "server") && !server_ops {
        let lossy = args.iter().map(|a| a.to_string_lossy().into_owned());
        let normalized = argv::normalize_server_args(lossy);
        if let Some(message) = refused_flags::refusal(&normalized) {
            eprintln!("jetlog server: {message}");
            return ExitCode::from(1);
        }
        if as_nats_server {
            let after_server = normalized.iter().skip(2).take_while(|a| *a != "--");
            if after_server.clone().any(|a| a == "-h" || a == "--help") {
                print!("{}", nats_server_mode::usage());
                return ExitCode::SUCCESS;
            }
        }
        normalized.into_iter().map(OsString::from).collect()
    } else {
        client::global_flags::hoist(args)
    };
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) => {
            let code = if err.use_stderr() { 1 } else { 0 };
            let _ = err.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Command::Server(mut args) => {
            if let Some(ops) = args.ops.take() {
                return client::run_server_ops(*ops);
            }
            args.nats_server_defaults = as_nats_server;
            server::run(args)
        }
        Command::Client(command) => client::run(command),
        Command::Completions { shell } => generated::completions(shell),
        Command::Man { dir } => generated::man(dir.as_deref()),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap checks the definitions (unique names, flags that exist) only when a command is
    /// parsed: this checks every subcommand's at once.
    #[test]
    fn every_command_definition_is_sound() {
        super::Cli::command().debug_assert();
    }
}
