//! The server as the official clients' test harnesses start it (issue 15): the binary run
//! under the name `nats-server` with nats-server's defaults, config files nats-server accepts,
//! `jetstream { strict }`, and users without passwords. Every server listens on loopback on a
//! free port, and every wait is bounded.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::RawClient;

const WAIT: Duration = Duration::from_secs(20);

/// A symlink named `nats-server` to the jetlog binary, in its own directory.
fn nats_server_link(dir: &Path) -> PathBuf {
    let link = dir.join("nats-server");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_jetlog"), &link).expect("symlink");
    link
}

/// A server process logging to a file, killed on drop.
struct Proc {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Proc {
    /// Runs `program args… -l <log>` in `cwd` (with `TMPDIR` set to `tmp`) until it is ready.
    fn start(program: &Path, args: &[&str], cwd: &Path, tmp: &Path) -> Self {
        let log = cwd.join(format!("server-{}.log", args.len()));
        let _ = std::fs::remove_file(&log);
        let child = Command::new(program)
            .args(args)
            .arg("-l")
            .arg(&log)
            .current_dir(cwd)
            .env("TMPDIR", tmp)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let mut proc = Self {
            child,
            port: 0,
            log,
        };
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            let text = proc.log_text();
            if text.contains("Server is ready") {
                proc.port = text
                    .split("Listening for client connections on ")
                    .nth(1)
                    .and_then(|rest| rest.lines().next())
                    .and_then(|addr| addr.rsplit(':').next())
                    .and_then(|p| p.trim().parse().ok())
                    .expect("port in the log");
                return proc;
            }
            if let Ok(Some(status)) = proc.child.try_wait() {
                panic!("server exited with {status}; log: {text}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("server did not start; log: {}", proc.log_text());
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn raw(&self) -> RawClient {
        connect(self.port, "")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn raw_to(port: u16) -> RawClient {
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    RawClient::from_stream(stream)
}

fn info_of(port: u16) -> serde_json::Value {
    raw_to(port).read_info()
}

/// A raw connection that has read INFO and sent CONNECT with `fields` added.
fn connect(port: u16, fields: &str) -> RawClient {
    let mut raw = raw_to(port);
    raw.read_info();
    raw.send(
        format!("CONNECT {{\"verbose\":false,\"headers\":true,\"no_responders\":true{fields}}}\r\nPING\r\n")
            .as_bytes(),
    );
    raw
}

/// The reply to a request on `subject` with an empty body.
fn request(raw: &mut RawClient, subject: &str, body: &str) -> String {
    raw.send(
        format!(
            "SUB r.1 9\r\nPUB {subject} r.1 {}\r\n{body}\r\n",
            body.len()
        )
        .as_bytes(),
    );
    let got = raw.read_until_contains(b"r.1 9 ", Duration::from_secs(5));
    let more = raw.read_for(Duration::from_millis(300)).0;
    String::from_utf8_lossy(&[got, more].concat()).into_owned()
}

fn run(program: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run")
}

#[test]
fn as_nats_server_jetstream_is_off_without_js_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let bin = nats_server_link(dir.path());
    // Two servers in one directory, as harnesses start them: neither takes a store lock.
    let first = Proc::start(
        &bin,
        &["-a", "127.0.0.1", "-p", "-1", "-m", "-1"],
        dir.path(),
        tmp.path(),
    );
    let second = Proc::start(
        &bin,
        &["-p", "-1", "-a", "127.0.0.1"],
        dir.path(),
        tmp.path(),
    );
    for server in [&first, &second] {
        let mut raw = server.raw();
        let reply = request(&mut raw, "$JS.API.INFO", "");
        // No JetStream, so no responder: the client reports "JetStream not enabled".
        assert!(
            reply.contains("HMSG r.1 9") && reply.contains("NATS/1.0 503"),
            "{reply}"
        );
    }
    // nats-server leaves `jetstream` out of INFO when it is off.
    let info = info_of(first.port);
    assert!(info.get("jetstream").is_none(), "{info}");
    assert!(
        !dir.path().join("data").exists(),
        "a store appeared in the working directory"
    );
    assert!(
        !tmp.path().join("nats").exists(),
        "a store appeared in TMPDIR"
    );
    assert!(!first.log_text().contains("Starting JetStream"));
    // Monitoring says so as nats-server does: /jsz marked disabled, /varz an empty block.
    let monitor: u16 = first
        .log_text()
        .split("Starting http monitor on ")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .and_then(|addr| addr.rsplit(':').next())
        .and_then(|p| p.trim().parse().ok())
        .expect("monitor port in the log");
    let jsz = common::monitor::get_json(monitor, "/jsz");
    assert_eq!(jsz["disabled"], true, "{jsz}");
    assert_eq!(jsz["streams"], 0, "{jsz}");
    let varz = common::monitor::get_json(monitor, "/varz");
    assert_eq!(varz["jetstream"], serde_json::json!({}), "{varz}");
}

#[test]
fn as_nats_server_js_uses_nats_servers_default_store_or_the_given_one() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let bin = nats_server_link(dir.path());
    let server = Proc::start(
        &bin,
        &["-js", "-a", "127.0.0.1", "-p", "-1"],
        dir.path(),
        tmp.path(),
    );
    let mut raw = server.raw();
    let reply = request(&mut raw, "$JS.API.STREAM.CREATE.S", r#"{"name":"S"}"#);
    assert!(
        reply.contains("stream_create_response") && !reply.contains("error"),
        "{reply}"
    );
    let store = tmp.path().join("nats").join("jetstream");
    assert!(
        store.join("streams").join("S").exists(),
        "no stream under {store:?}"
    );
    assert!(!dir.path().join("data").exists());
    drop(server);
    let store = dir.path().join("explicit");
    let sd = store.to_str().unwrap();
    let server = Proc::start(
        &bin,
        &["--jetstream", "-sd", sd, "-p", "-1"],
        dir.path(),
        tmp.path(),
    );
    let reply = request(
        &mut server.raw(),
        "$JS.API.STREAM.CREATE.T",
        r#"{"name":"T"}"#,
    );
    assert!(!reply.contains("error"), "{reply}");
    assert!(store.join("streams").join("T").exists());
    drop(server);
    // A jetstream block in a config file turns it on too.
    let conf = dir.path().join("js.conf");
    std::fs::write(&conf, format!("jetstream {{ store_dir: {sd:?} }}\n")).unwrap();
    let server = Proc::start(
        &bin,
        &["-c", conf.to_str().unwrap(), "-p", "-1"],
        dir.path(),
        tmp.path(),
    );
    let reply = request(&mut server.raw(), "$JS.API.STREAM.INFO.T", "");
    assert!(
        reply.contains("stream_info_response") && !reply.contains("error"),
        "{reply}"
    );
}

#[test]
fn as_nats_server_help_and_version_have_its_shape() {
    let dir = tempfile::tempdir().unwrap();
    let bin = nats_server_link(dir.path());
    for flag in ["--version", "-v", "-version"] {
        let out = run(&bin, &[flag]);
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.trim().starts_with("nats-server: v2.") && !text.contains("jetlog"),
            "{flag}: {text}"
        );
    }
    for flag in ["--help", "-h"] {
        let out = run(&bin, &[flag]);
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Usage: nats-server [options]"), "{text}");
        assert!(text.contains("-js, --jetstream"), "{text}");
    }
    // Under its own name the binary keeps its subcommands and its README default.
    let out = run(
        Path::new(env!("CARGO_BIN_EXE_jetlog")),
        &["server", "--version"],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("jetlog"));
}

#[test]
fn config_files_nats_server_accepts_start_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_jetlog"));
    let store = dir.path().join("store");
    let text = format!(
        "listen: 127.0.0.1:-1\n\
         jetstream\n{{\n  store_dir: {store:?}\n}}\n\
         authorization {{\n  users: [{{user: \"nopass\"}}, {{user: a, password: b}}]\n}}\n\
         }}\n"
    );
    let conf = dir.path().join("quirks.conf");
    std::fs::write(&conf, text).unwrap();
    let conf = conf.to_str().unwrap();
    let out = run(&bin, &["server", "-t", "-c", conf]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = Proc::start(&bin, &["server", "-c", conf], dir.path(), tmp.path());
    // The user without a password connects with its name alone.
    let mut raw = connect(server.port, r#","user":"nopass""#);
    assert!(raw
        .read_until_contains(b"PONG\r\n", Duration::from_secs(5))
        .ends_with(b"PONG\r\n"));
    let mut raw = connect(server.port, r#","user":"a","pass":"wrong""#);
    let (got, _) = raw.read_for(Duration::from_millis(500));
    assert!(
        String::from_utf8_lossy(&got).contains("-ERR 'Authorization Violation'"),
        "{got:?}"
    );
    // The block opened on the line after its key was read: JetStream stores where it says.
    let mut raw = connect(server.port, r#","user":"nopass""#);
    let reply = request(&mut raw, "$JS.API.STREAM.CREATE.Q", r#"{"name":"Q"}"#);
    assert!(!reply.contains("error"), "{reply}");
    assert!(store.join("streams").join("Q").exists());
}

#[test]
fn strict_jetstream_refuses_unknown_fields_and_is_not_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_jetlog"));
    let store = dir.path().join("store");
    // A list request with a field nats-server does not know: refused only under `strict`.
    let body = r#"{"offset":0,"colour":"blue"}"#;
    // A stream config with one set to a value: refused either way, as jetlog could not
    // honour it.
    let config = r#"{"name":"U","subjects":["u"],"colour":"blue"}"#;
    for (strict, refused) in [(true, true), (false, false)] {
        let conf = dir.path().join(format!("strict-{strict}.conf"));
        std::fs::write(
            &conf,
            format!(
                "listen: 127.0.0.1:-1\njetstream {{ store_dir: {store:?}, strict: {strict} }}\n"
            ),
        )
        .unwrap();
        let server = Proc::start(
            &bin,
            &["server", "-c", conf.to_str().unwrap()],
            dir.path(),
            tmp.path(),
        );
        assert!(
            !server.log_text().contains("unknown"),
            "{}",
            server.log_text()
        );
        let reply = request(&mut server.raw(), "$JS.API.STREAM.CREATE.U", config);
        assert!(
            reply.contains(r#""err_code":10025"#)
                && reply.contains(r#"invalid JSON: json: unknown field \"colour\""#),
            "{reply}"
        );
        let reply = request(&mut server.raw(), "$JS.API.STREAM.NAMES", body);
        if refused {
            assert!(
                reply.contains(r#""err_code":10025"#)
                    && reply.contains(r#"invalid JSON: json: unknown field \"colour\""#),
                "{reply}"
            );
        } else {
            assert!(!reply.contains("error"), "{reply}");
        }
    }
}

/// What a JetStream-less config file (`jetstream: disabled`) means for `jetlog server`: no
/// JetStream, where it used to be refused.
#[test]
fn jetstream_disabled_in_the_config_file_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let conf = dir.path().join("off.conf");
    std::fs::write(&conf, "listen: 127.0.0.1:-1\njetstream: disabled\n").unwrap();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_jetlog"));
    let server = Proc::start(
        &bin,
        &["server", "-c", conf.to_str().unwrap()],
        dir.path(),
        tmp.path(),
    );
    let reply = request(&mut server.raw(), "$JS.API.INFO", "");
    assert!(reply.contains("NATS/1.0 503"), "{reply}");
    assert!(!dir.path().join("data").exists());
}
