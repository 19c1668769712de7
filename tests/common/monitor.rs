//! The server's HTTP monitor (`-m -1`): where it listens and plain GETs against it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

use super::TestServer;

/// How long one HTTP exchange with the monitor may take.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

impl TestServer {
    /// The monitor's port, read from the log line nats-server prints; None when it is off.
    pub fn monitor_port(&self) -> Option<u16> {
        self.log.lock().unwrap().iter().find_map(|line| {
            line.split("Starting http monitor on ")
                .nth(1)
                .and_then(|addr| addr.trim().rsplit(':').next())
                .and_then(|p| p.parse::<u16>().ok())
        })
    }
}

/// A GET over a plain socket: (status, content type, body).
pub fn get(port: u16, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect monitor");
    stream.set_read_timeout(Some(HTTP_TIMEOUT)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    stream
        .read_to_string(&mut raw)
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let (head, body) = raw.split_once("\r\n\r\n").expect("response head");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type:")
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default();
    (status, content_type, body.to_string())
}

/// A GET of a JSON endpoint, checked for status 200 and the JSON content type.
pub fn get_json(port: u16, path: &str) -> Value {
    let (status, content_type, body) = get(port, path);
    assert_eq!(status, 200, "{path}: {body}");
    assert_eq!(content_type, "application/json", "{path}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}
