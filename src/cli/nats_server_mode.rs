//! The binary run under the name `nats-server` (a symlink or a copy): it is then the server
//! with nats-server's own defaults, so scripts and test harnesses written for nats-server can
//! swap the binary without changing a line. The differences from `jetlog server` are only
//! those defaults: no subcommand, JetStream off unless `-js`/`--jetstream` or the config
//! file turns it on, the store in nats-server's default place (`$TMPDIR/nats/jetstream`), and
//! `--help`/`--version` in nats-server's shape.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::protocol::connect::NATS_COMPAT_VERSION;

/// The executable name that selects this mode.
const NATS_SERVER_NAME: &str = "nats-server";

/// Whether the process was started as `nats-server` (argv[0]'s file name).
pub fn invoked_as_nats_server(argv0: Option<&OsString>) -> bool {
    argv0
        .map(Path::new)
        .and_then(Path::file_name)
        .is_some_and(|name| name == NATS_SERVER_NAME)
}

/// Where nats-server keeps JetStream's store when none is given: the system temporary
/// directory's `nats/jetstream` (Go's `os.TempDir()`, which honours `$TMPDIR` as Rust's
/// `temp_dir` does).
pub fn default_store_dir() -> PathBuf {
    std::env::temp_dir().join("nats").join("jetstream")
}

/// What `nats-server --version` prints. Harnesses read the version from this line, so it has
/// nats-server's exact shape; `jetlog --version` names jetlog's own.
pub fn version_line() -> String {
    format!("nats-server: v{NATS_COMPAT_VERSION}")
}

/// What `nats-server --help` prints: nats-server's layout, listing the options this server
/// honours. Options it recognises but cannot honour (TLS, clustering, syslog) are refused
/// with a reason when given, so they are not listed.
pub fn usage() -> String {
    let rows: &[(&str, &[(&str, &str)])] = &[
        (
            "Server Options",
            &[
                ("-a, --addr, --net <host>", "Bind to host address (default: 0.0.0.0)"),
                ("-p, --port <port>", "Use port for clients (default: 4222)"),
                ("-n, --name", ""),
                ("    --server_name <server_name>", "Server name (default: auto)"),
                ("-P, --pid <file>", "File to store PID"),
                ("-m, --http_port <port>", "Use port for http monitoring"),
                ("-c, --config <file>", "Configuration file"),
                ("-t", "Test configuration and exit"),
                (
                    "-sl,--signal <signal>[=<pid>]",
                    "Send signal to nats-server process (stop, quit, term)",
                ),
                (
                    "    --ports_file_dir <dir>",
                    "Creates a ports file in the specified directory (<executable_name>_<pid>.ports).",
                ),
            ],
        ),
        (
            "Logging Options",
            &[
                ("-l, --log <file>", "File to redirect log output"),
                ("-T, --logtime", "Timestamp log entries (default: true)"),
                ("-D, --debug", "Enable debugging output"),
                ("-V, --trace", "Trace the raw protocol"),
                ("-DV", "Debug and trace"),
            ],
        ),
        (
            "JetStream Options",
            &[
                ("-js, --jetstream", "Enable JetStream functionality"),
                ("-sd, --store_dir <dir>", "Set the storage directory"),
                (
                    "    --sync <mode>",
                    "When stored messages are fsynced: always (default), never, or an interval",
                ),
            ],
        ),
        (
            "Authorization Options",
            &[
                ("    --user <user>", "User required for connections"),
                ("    --pass <password>", "Password required for connections"),
                ("    --auth <token>", "Authorization token required for connections"),
            ],
        ),
        (
            "Common Options",
            &[
                ("-h, --help", "Show this message"),
                ("-v, --version", "Show version"),
            ],
        ),
    ];
    let mut out = String::from("\nUsage: nats-server [options]\n");
    for (section, options) in rows {
        out.push_str(&format!("\n{section}:\n"));
        for (flag, text) in *options {
            out.push_str(&format!("    {flag:<33}{text}\n").replace(" \n", "\n"));
        }
    }
    out.push_str(&format!(
        "\nThis is jetlog {} answering as nats-server {NATS_COMPAT_VERSION}; \
         `jetlog server --help` lists every option.\n",
        env!("CARGO_PKG_VERSION")
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_file_name_nats_server_selects_the_mode() {
        let yes = ["nats-server", "/usr/local/bin/nats-server", "./nats-server"];
        for name in yes {
            assert!(
                invoked_as_nats_server(Some(&OsString::from(name))),
                "{name}"
            );
        }
        let no = ["jetlog", "/opt/nats-server/jetlog", "nats-server2", "nats"];
        for name in no {
            assert!(
                !invoked_as_nats_server(Some(&OsString::from(name))),
                "{name}"
            );
        }
        assert!(!invoked_as_nats_server(None));
    }

    #[test]
    fn the_version_line_has_nats_servers_shape() {
        assert_eq!(
            version_line(),
            format!("nats-server: v{NATS_COMPAT_VERSION}")
        );
    }
}
