//! Helpers of `tests/reliability_abuse.rs`: raw connections that misbehave on purpose, and a
//! strict reader of what a subscriber was sent (the server's memory is read with
//! `common::process`).
#![allow(dead_code)]

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{sleep, timeout};

/// What a misbehaving connection does after the server's INFO.
#[derive(Debug, Clone, Copy)]
pub enum Misbehaviour {
    /// Sends nothing at all.
    Silent,
    /// Sends `bytes` one byte at a time, `gap` apart (a slowloris CONNECT).
    Dribble { bytes: &'static [u8], gap: Duration },
}

/// How one misbehaving connection ended.
#[derive(Debug)]
pub struct Ending {
    /// Everything the server sent after INFO.
    pub received: Vec<u8>,
    /// How long after connecting the server closed the socket; None if it never did within
    /// the limit.
    pub closed_after: Option<Duration>,
}

/// Connects to `port`, misbehaves, and waits up to `limit` for the server to hang up.
pub async fn misbehave(port: u16, how: Misbehaviour, limit: Duration) -> Ending {
    let started = Instant::now();
    let socket = timeout(limit, TcpStream::connect(("127.0.0.1", port)))
        .await
        .expect("connect in time")
        .expect("connect");
    let (mut reader, mut writer) = socket.into_split();
    let dribbler = tokio::spawn(async move {
        if let Misbehaviour::Dribble { bytes, gap } = how {
            for byte in bytes {
                sleep(gap).await;
                if writer.write_all(&[*byte]).await.is_err() {
                    return;
                }
            }
        }
        // Keep the write half open (dropping it would half-close the socket) until aborted.
        sleep(limit).await;
    });
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut closed_after = None;
    while let Some(left) = limit.checked_sub(started.elapsed()) {
        match timeout(left, reader.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed_after = Some(started.elapsed());
                break;
            }
            Ok(Ok(n)) => seen.extend_from_slice(&chunk[..n]),
            Err(_) => break,
        }
    }
    dribbler.abort();
    let after_info = seen
        .windows(2)
        .position(|w| w == b"\r\n")
        .filter(|_| seen.starts_with(b"INFO "))
        .map_or(0, |p| p + 2);
    Ending {
        received: seen.split_off(after_info),
        closed_after,
    }
}

/// One protocol frame a subscriber received.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    Msg { subject: String, payload: Vec<u8> },
    Control(String),
}

/// Splits what the server sent into frames, checking each MSG/HMSG's sizes; an error names
/// the first line that is not a frame the server may send. A control line smuggled into a
/// subject or a payload whose size is off shows here.
pub fn frames(mut bytes: &[u8]) -> Result<Vec<Frame>, String> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let end = bytes
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| format!("unterminated line {:?}", String::from_utf8_lossy(bytes)))?;
        let line = String::from_utf8_lossy(&bytes[..end]).into_owned();
        bytes = &bytes[end + 2..];
        let args: Vec<&str> = line.split(' ').collect();
        let total = match args[0] {
            "MSG" if args.len() == 4 || args.len() == 5 => args.last().and_then(|n| n.parse().ok()),
            "HMSG" if args.len() == 5 || args.len() == 6 => {
                args.last().and_then(|n| n.parse().ok())
            }
            "PING" | "PONG" | "+OK" if args.len() == 1 => {
                out.push(Frame::Control(line));
                continue;
            }
            "INFO" => {
                out.push(Frame::Control(line));
                continue;
            }
            _ => None,
        };
        let total: usize = total.ok_or_else(|| format!("not a frame: {line:?}"))?;
        if bytes.len() < total + 2 || &bytes[total..total + 2] != b"\r\n" {
            return Err(format!("payload of {line:?} does not end where announced"));
        }
        out.push(Frame::Msg {
            subject: args[1].to_string(),
            payload: bytes[..total].to_vec(),
        });
        bytes = &bytes[total + 2..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_accept_messages_and_refuse_smuggled_lines() {
        let good = b"MSG a 1 2\r\nhi\r\nHMSG b 1 r 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPONG\r\n";
        assert_eq!(frames(good).unwrap().len(), 3);
        assert!(frames(b"MSG a 1 2\r\nhi\r\nPUB evil 1\r\nx\r\n").is_err());
        assert!(frames(b"MSG a 1 5\r\nhi\r\n").is_err());
    }
}
