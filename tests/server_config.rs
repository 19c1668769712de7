//! `jetlog server -c FILE` as a process: nats-server config files, `-t`, pid, ports and log
//! files. Every server listens on loopback on a free port, and every wait is bounded.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::TestServer;

const WAIT: Duration = Duration::from_secs(20);

fn jetlog(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jetlog"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run jetlog")
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// A server started with exactly the given flags, logging to `log` (so nothing it prints can
/// block it); killed on drop.
struct LoggedServer {
    child: Child,
    log: PathBuf,
}

impl LoggedServer {
    fn start(args: &[&str], log: PathBuf) -> (Self, u16) {
        let child = Command::new(env!("CARGO_BIN_EXE_jetlog"))
            .arg("server")
            .args(args)
            .arg("-l")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn jetlog");
        let server = Self { child, log };
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            let text = std::fs::read_to_string(&server.log).unwrap_or_default();
            if text.contains("Server is ready") {
                let port = text
                    .split("Listening for client connections on ")
                    .nth(1)
                    .and_then(|rest| rest.lines().next())
                    .and_then(|addr| addr.rsplit(':').next())
                    .and_then(|p| p.trim().parse().ok())
                    .expect("port in the log");
                return (server, port);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "server did not start; log: {:?}",
            std::fs::read_to_string(&server.log)
        );
    }
}

impl Drop for LoggedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn listen_address_name_include_and_variables_come_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    write(dir.path(), "net.conf", "listen: 127.0.0.1:-1\n");
    let config = write(
        dir.path(),
        "main.conf",
        &format!(
            "# a nats-server file\ninclude 'net.conf'\nNAME = from_variable\nserver_name $NAME\n\
             jetstream {{ store_dir: \"{}\" }}\n",
            store.display()
        ),
    );
    let (_server, port) = LoggedServer::start(&["-c", &config], dir.path().join("log"));
    assert_ne!(port, 4222, "the file's -1 picked a free port");
    assert!(store.is_dir(), "the store directory comes from the file");
    let server_info = info(port);
    assert_eq!(server_info["server_name"], "from_variable");
}

fn info(port: u16) -> serde_json::Value {
    use std::io::{BufRead, BufReader};
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    serde_json::from_str(line.trim_start_matches("INFO ").trim()).unwrap()
}

#[test]
fn flags_beside_the_file_override_it() {
    let dir = tempfile::tempdir().unwrap();
    // Port 1 would need privileges: the server only starts because -p -1 overrides it.
    let config = write(dir.path(), "s.conf", "port: 1\nserver_name: file\n");
    let server = TestServer::start(&["-c", &config, "-n", "flag"]);
    assert_eq!(server.raw().read_info()["server_name"], "flag");
}

#[test]
fn a_broken_file_exits_1_with_file_line_and_column_before_listening() {
    let dir = tempfile::tempdir().unwrap();
    for (text, expected) in [
        (
            "port: 4222\nhost: \"unterminated\n",
            "bad.conf:2:7: unterminated string",
        ),
        (
            "port: 4222\ncluster {\n  port: 6222\n  pool_size: 3\n}\n",
            "bad.conf:4:3: pool_size is not supported by jetlog yet: jetlog keeps one route per server",
        ),
        (
            "strict: true\nno_such_key: 1\n",
            "bad.conf:2:1: unknown key no_such_key",
        ),
        (
            "port: $JETLOG_TEST_UNDEFINED\n",
            "bad.conf:1:7: variable $JETLOG_TEST_UNDEFINED",
        ),
    ] {
        let config = write(dir.path(), "bad.conf", text);
        let out = jetlog(&["server", "-c", &config, "-a", "127.0.0.1", "-p", "-1"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{text:?}: {stderr}");
        assert!(stderr.contains(expected), "{text:?}: {stderr}");
        assert!(!stderr.contains("Listening"), "{stderr}");
    }
}

#[test]
fn test_flag_checks_the_file_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(
        dir.path(),
        "good.conf",
        "port: 4333\nconnect_error_reports: 3\n",
    );
    let out = jetlog(&["server", "-c", &good, "-t"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("is valid"), "{stderr}");
    assert!(
        stderr.contains("good.conf:2:1: unknown configuration key connect_error_reports"),
        "{stderr}"
    );
    let bad = write(dir.path(), "bad.conf", "port: 4333\nmax_payload: lots\n");
    let out = jetlog(&["server", "-c", &bad, "-t"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("bad.conf:2:14: invalid value for max_payload"),
        "{stderr}"
    );
}

#[test]
fn pid_and_ports_files_are_written_and_removed_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("jetlog.pid");
    let ports_dir = dir.path().join("ports");
    std::fs::create_dir(&ports_dir).unwrap();
    let server = TestServer::start(&[
        "-P",
        pid_file.to_str().unwrap(),
        "--ports_file_dir",
        ports_dir.to_str().unwrap(),
    ]);
    let pid = server.pid();
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), pid.to_string());
    let ports_file = ports_dir.join(format!("jetlog_{pid}.ports"));
    let ports: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&ports_file).unwrap()).unwrap();
    assert_eq!(
        ports,
        serde_json::json!({ "nats": [format!("nats://127.0.0.1:{}", server.port)] })
    );
    assert!(server.terminate().expect("exited in time").success());
    assert!(
        !pid_file.exists() && !ports_file.exists(),
        "both files are removed"
    );
}

#[test]
fn log_file_takes_the_log_lines_and_pid_file_key_works() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("from_file.pid");
    let config = write(
        dir.path(),
        "s.conf",
        &format!(
            "listen: \"127.0.0.1:-1\"\npid_file: \"{}\"\nunknown_here: 1\njetstream {{ store_dir: \"{}\" }}\n",
            pid_file.display(),
            dir.path().join("store").display()
        ),
    );
    let log = dir.path().join("server.log");
    let (server, _port) = LoggedServer::start(&["-c", &config], log.clone());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("s.conf:3:1: unknown configuration key unknown_here"),
        "{text}"
    );
    assert!(
        text.contains("Listening for client connections on 127.0.0.1:"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap(),
        server.child.id().to_string()
    );
}
