//! The pid file (`-P`) and the ports file (`--ports_file_dir`) that harnesses and init
//! systems read to find the process and the ports it actually bound.
//!
//! The ports file follows nats-server's `ports.go`: it is named `<executable>_<pid>.ports`
//! after the base name of `argv[0]`, and holds `{"nats":["nats://host:port"]}`, plus
//! `"monitoring":["http://host:port"]` when the HTTP monitor is served. Both files are removed
//! on a clean shutdown.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// Files written at start-up, to remove at shutdown.
pub struct ProcessFiles {
    written: Vec<PathBuf>,
}

impl ProcessFiles {
    /// Writes the requested files for the addresses the client listener and the monitor bound.
    pub fn write(
        pid_file: Option<&Path>,
        ports_dir: Option<&Path>,
        client: SocketAddr,
        monitor: Option<(SocketAddr, &str)>,
    ) -> Result<Self, String> {
        let mut files = Self {
            written: Vec::new(),
        };
        let pid = std::process::id();
        if let Some(path) = pid_file {
            std::fs::write(path, pid.to_string())
                .map_err(|e| format!("cannot write pid file {}: {e}", path.display()))?;
            files.written.push(path.to_path_buf());
        }
        if let Some(dir) = ports_dir {
            let path = dir.join(format!("{}_{pid}.ports", executable_name()));
            let json = ports_json(client, monitor);
            if let Err(e) = std::fs::write(&path, json) {
                files.remove();
                return Err(format!("cannot write ports file {}: {e}", path.display()));
            }
            files.written.push(path);
        }
        Ok(files)
    }

    /// Removes the files written; one already gone is no error.
    pub fn remove(&self) {
        for path in &self.written {
            if let Err(e) = std::fs::remove_file(path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!("cannot remove {}: {e}", path.display());
                }
            }
        }
    }
}

/// The base name of `argv[0]`, as nats-server names its ports file.
fn executable_name() -> String {
    std::env::args_os()
        .next()
        .as_deref()
        .map(Path::new)
        .and_then(Path::file_name)
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "jetlog".to_string())
}

/// `{"nats":["nats://host:port"],"monitoring":["http://host:port"]}` (`https://` for an HTTPS
/// monitor).
fn ports_json(client: SocketAddr, monitor: Option<(SocketAddr, &str)>) -> String {
    let mut ports = serde_json::json!({ "nats": [format!("nats://{}", reachable(client))] });
    if let Some((monitor, scheme)) = monitor {
        ports["monitoring"] = serde_json::json!([format!("{scheme}://{}", reachable(monitor))]);
    }
    ports.to_string()
}

/// An unspecified listen address is written as the loopback one, which reaches the listener
/// from the same machine, where the file is read.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => SocketAddr::from(([127, 0, 0, 1], addr.port())),
        IpAddr::V6(v6) if v6.is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port()))
        }
        _ => addr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_json_names_the_bound_client_url() {
        assert_eq!(
            ports_json("127.0.0.1:4333".parse().unwrap(), None),
            r#"{"nats":["nats://127.0.0.1:4333"]}"#
        );
        assert_eq!(
            ports_json("0.0.0.0:4222".parse().unwrap(), None),
            r#"{"nats":["nats://127.0.0.1:4222"]}"#
        );
    }

    #[test]
    fn ports_json_lists_the_monitor_when_served() {
        assert_eq!(
            ports_json(
                "0.0.0.0:4222".parse().unwrap(),
                Some(("0.0.0.0:8222".parse().unwrap(), "http"))
            ),
            r#"{"monitoring":["http://127.0.0.1:8222"],"nats":["nats://127.0.0.1:4222"]}"#
        );
        assert_eq!(
            ports_json(
                "127.0.0.1:4222".parse().unwrap(),
                Some(("127.0.0.1:8443".parse().unwrap(), "https"))
            ),
            r#"{"monitoring":["https://127.0.0.1:8443"],"nats":["nats://127.0.0.1:4222"]}"#
        );
    }
}
