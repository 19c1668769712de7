//! Signals, both ways. Received: SIGTERM/SIGINT stop the server, SIGHUP reloads the TLS
//! certificates, SIGUSR2 enters lame duck mode (`handle_other_signals`, `shutdown_signal`).
//! Sent: `jetlog server --signal <command>=<pid>`, nats-server's `-sl`, which sends a running
//! server the signal behind a command. `stop` is SIGKILL, `quit` SIGINT and `term` SIGTERM, as with
//! nats-server; jetlog shuts down cleanly on the last two. `reload` is SIGHUP, which reloads
//! the TLS certificates, and `ldm` SIGUSR2, which enters lame duck mode. `reopen` is refused:
//! jetlog has no log reopening, and sending its signal would only make the server log that it
//! ignores it.

use std::path::Path;
use std::process::ExitCode;

use rustix::process::{kill_process, Pid, Signal};

/// Sends the signal named in `spec` (`command=pid` or `command=/path/to/pid/file`).
pub fn send(spec: &str) -> ExitCode {
    match resolve(spec) {
        Ok((signal, pid)) => match kill_process(pid, signal) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!(
                    "jetlog server: cannot signal process {}: {err}",
                    pid.as_raw_nonzero()
                );
                ExitCode::from(1)
            }
        },
        Err(message) => {
            eprintln!("jetlog server: {message}");
            ExitCode::from(1)
        }
    }
}

fn resolve(spec: &str) -> Result<(Signal, Pid), String> {
    let (command, target) = match spec.split_once('=') {
        Some((c, t)) => (c, Some(t)),
        None => (spec, None),
    };
    let signal = match command {
        "stop" => Signal::KILL,
        "quit" => Signal::INT,
        "term" => Signal::TERM,
        "reload" => Signal::HUP,
        "ldm" => Signal::USR2,
        "reopen" => {
            return Err(format!(
                "signal {command} is not supported: jetlog has no log reopening"
            ))
        }
        other => {
            return Err(format!(
            "unknown signal {other:?}: use stop, quit, term, reload or ldm (nats-server's names)"
        ))
        }
    };
    let target = target.ok_or_else(|| {
        format!("give the server's pid or pid file: --signal {command}=<pid|file>")
    })?;
    let pid = match target.parse::<i32>() {
        Ok(n) => n,
        Err(_) => read_pid_file(Path::new(target))?,
    };
    let pid = Pid::from_raw(pid).ok_or_else(|| format!("{pid} is not a process id"))?;
    Ok((signal, pid))
}

fn read_pid_file(path: &Path) -> Result<i32, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read pid file {}: {e}", path.display()))?;
    text.trim()
        .parse()
        .map_err(|_| format!("pid file {} does not hold a process id", path.display()))
}

/// SIGHUP reloads the TLS certificates (the same files, as rotated in place; a file that does
/// not read leaves the certificates in force), the only part of the configuration jetlog
/// reloads. SIGUSR2 rings `lame_duck` (lame duck mode). SIGUSR1 (reopen logs) asks for
/// something jetlog does not do; its default action would kill the server, so it is caught and
/// logged: no signal a service manager sends may take the server down by accident.
pub fn handle_other_signals(
    tls: Option<std::sync::Arc<crate::server::tls::Tls>>,
    lame_duck: std::sync::Arc<tokio::sync::Notify>,
) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut hangups) = signal(SignalKind::hangup()) {
            tokio::spawn(async move {
                while hangups.recv().await.is_some() {
                    reload(tls.as_deref());
                }
            });
        }
        if let Ok(mut stream) = signal(SignalKind::user_defined1()) {
            tokio::spawn(async move {
                while stream.recv().await.is_some() {
                    tracing::warn!(
                        "SIGUSR1: log reopening is not supported; the server keeps running"
                    );
                }
            });
        }
        // SIGUSR2 is nats-server's lame duck signal.
        if let Ok(mut stream) = signal(SignalKind::user_defined2()) {
            tokio::spawn(async move {
                while stream.recv().await.is_some() {
                    lame_duck.notify_one();
                }
            });
        }
    }
}

/// What SIGHUP does: new TLS certificates for new connections, in nats-server's words.
fn reload(tls: Option<&crate::server::tls::Tls>) {
    tracing::info!("Reloading server configuration");
    match tls.map(|tls| tls.reload()) {
        Some(Ok(())) => tracing::info!(
            "Reloaded: TLS certificates (other settings take effect at the next start)"
        ),
        Some(Err(err)) => tracing::error!(
            "Failed to reload server configuration: {err}; the certificates in force stay"
        ),
        None => tracing::warn!(
            "Reloaded: nothing (jetlog reloads only TLS certificates; other settings take effect at the next start)"
        ),
    }
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called, not when
/// the future is first polled: it is called before "Server is ready" is logged, and a
/// supervisor that sends SIGTERM right after that line must get a clean shutdown, not the
/// default action of the signal.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                (Ok(mut one), Err(_)) | (Err(_), Ok(mut one)) => {
                    one.recv().await;
                }
                (Err(_), Err(_)) => std::future::pending::<()>().await,
            }
            tracing::info!("Initiating Shutdown...");
        }
    }
    #[cfg(not(unix))]
    {
        async move {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("Initiating Shutdown...");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_map_to_nats_server_signals() {
        assert_eq!(
            resolve("term=42").unwrap(),
            (Signal::TERM, Pid::from_raw(42).unwrap())
        );
        assert_eq!(resolve("quit=42").unwrap().0, Signal::INT);
        assert_eq!(resolve("stop=42").unwrap().0, Signal::KILL);
        assert_eq!(resolve("reload=42").unwrap().0, Signal::HUP);
        assert_eq!(resolve("ldm=42").unwrap().0, Signal::USR2);
        assert!(resolve("reopen=42").unwrap_err().contains("not supported"));
        assert!(resolve("term").unwrap_err().contains("pid"));
        assert!(resolve("hup=1").unwrap_err().contains("unknown signal"));
        assert!(resolve("term=0").unwrap_err().contains("not a process id"));
        assert!(resolve("term=/no/such/file")
            .unwrap_err()
            .contains("cannot read pid file"));
    }
}
