//! The client commands of `jetlog`: core publish/subscribe, stream and consumer management,
//! key-value and object-store buckets, and replay, all on async-nats, so they work against
//! jetlog and nats-server alike.
//!
//! Contract: a command prints its result on stdout (a table or text, or JSON with `--json`)
//! and exits 0; on failure it prints one line, `jetlog: error: …`, with the server's own
//! description where there is one, and exits 1. Every wait on the network is bounded by
//! `--timeout`, except those the user asked to be open-ended (`sub` and `reply` without
//! `--count`, `replay --follow`, `kv watch` without `--count`).

mod api;
mod bench;
mod buckets;
mod connect;
mod consumer;
mod consumer_config;
mod consumer_edit;
mod consumer_ops;
mod consumer_view;
mod context;
mod credentials;
pub mod global_flags;
mod kv;
mod kv_config;
mod kv_view;
mod object;
mod object_view;
mod output;
mod progress;
mod pubsub;
mod replay;
pub mod server_check;
mod server_check_js;
mod server_check_kv;
mod server_check_msg;
mod server_check_server;
pub mod server_ops;
mod server_report_accounts;
mod stream;
mod stream_backup;
mod stream_cluster;
mod stream_config;
mod stream_edit;
mod stream_features;
mod stream_view;
mod units;

use std::process::ExitCode;

use clap::Subcommand;

/// The client subcommands, flattened into `jetlog`'s own list.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Publish a message (with --js, through JetStream, printing each PubAck).
    Pub(pubsub::PubArgs),
    /// Subscribe to a subject and print what arrives.
    Sub(pubsub::SubArgs),
    /// Send a request and print the reply.
    #[command(visible_alias = "request")]
    Req(pubsub::ReqArgs),
    /// Answer requests on a subject with a fixed body.
    Reply(pubsub::ReplyArgs),
    /// Manage JetStream streams.
    #[command(visible_alias = "str", aliases = ["st", "ms", "s"])]
    Stream(stream::StreamArgs),
    /// Manage JetStream consumers and pull messages.
    #[command(visible_alias = "con", aliases = ["obs", "c"])]
    Consumer(consumer::ConsumerArgs),
    /// Manage key-value buckets and their keys.
    Kv(kv::KvArgs),
    /// Manage object-store buckets and their objects.
    #[command(visible_alias = "obj")]
    Object(object::ObjectArgs),
    /// Print a stream's events in order, from a start point to its current end.
    Replay(replay::ReplayArgs),
    /// Measure throughput and latency: core pub/sub, request/reply, JetStream publish/consume.
    Bench(bench::BenchArgs),
    /// Manage natscli contexts: named connection settings the commands can use.
    #[command(visible_alias = "ctx")]
    Context(context::ContextArgs),
}

/// Runs one of `jetlog server`'s operator commands (`ping`, `info`, `list`).
pub fn run_server_ops(ops: server_ops::ServerOps) -> ExitCode {
    run_to_exit(server_ops::run(ops))
}

/// Runs one client command to completion and turns its outcome into an exit code.
pub fn run(command: ClientCommand) -> ExitCode {
    run_to_exit(async move {
        match command {
            ClientCommand::Pub(args) => pubsub::publish(args).await,
            ClientCommand::Sub(args) => pubsub::subscribe(args).await,
            ClientCommand::Req(args) => pubsub::request(args).await,
            ClientCommand::Reply(args) => pubsub::reply(args).await,
            ClientCommand::Stream(args) => stream::run(args).await,
            ClientCommand::Consumer(args) => consumer::run(args).await,
            ClientCommand::Kv(args) => kv::run(args).await,
            ClientCommand::Object(args) => object::run(args).await,
            ClientCommand::Replay(args) => replay::run(args).await,
            ClientCommand::Bench(args) => bench::run(args).await,
            ClientCommand::Context(args) => context::run(args).await,
        }
    })
}

/// Runs a command's future on a one-thread runtime and turns its outcome into an exit code.
fn run_to_exit(command: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    // One thread is plenty for one connection, and leaves the cores to the server.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("jetlog: error: cannot start the async runtime: {err}");
            return ExitCode::from(1);
        }
    };
    let outcome = runtime.block_on(async move {
        let outcome = command.await;
        // A request to a subject the user may not publish to is refused by the server and
        // never answered: say so, rather than that the answer did not come in time.
        tokio::task::yield_now().await;
        match (outcome, connect::server_refusal()) {
            (Err(err), Some(refusal)) if !err.to_string().contains(&refusal) => {
                Err(anyhow::anyhow!("the server refused: {refusal} ({err:#})"))
            }
            (outcome, _) => outcome,
        }
    });
    // Background tasks of the client (reconnects, pings) must not delay the exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("jetlog: error: {}", one_line(&format!("{err:#}")));
            ExitCode::from(1)
        }
    }
}

/// Whether stdout was closed by the reader (`jetlog stream ls | head -1`), which is not an
/// error of the command.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Folds a message onto one line, so every failure is exactly one line on stderr, and
/// writes a server error the async-nats way (`jetstream error: … (code 404, error code
/// 10059)`, from the key-value and object calls) as every other command does (`… (status 404,
/// err_code 10059)`).
fn one_line(text: &str) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let text = text.replace("jetstream error: ", "");
    let Some(start) = text.rfind("(code ") else {
        return text;
    };
    let tail = &text[start..];
    let Some((code, rest)) = tail["(code ".len()..].split_once(", error code ") else {
        return text;
    };
    let Some((err_code, after)) = rest.split_once(')') else {
        return text;
    };
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !numeric(code) || !numeric(err_code) {
        return text;
    }
    format!(
        "{}(status {code}, err_code {err_code}){after}",
        &text[..start]
    )
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn server_errors_read_the_same_from_every_command() {
        assert_eq!(
            one_line("key-value bucket X: failed to get the bucket: jetstream error: stream not found (code 404, error code 10059)"),
            "key-value bucket X: failed to get the bucket: stream not found (status 404, err_code 10059)"
        );
        assert_eq!(
            one_line("stream S: stream not found\n (status 404, err_code 10059)"),
            "stream S: stream not found (status 404, err_code 10059)"
        );
        assert_eq!(
            one_line("a (code x, error code 1)"),
            "a (code x, error code 1)"
        );
    }
}
