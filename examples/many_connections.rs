//! Load for `docs/bench/many_connections.sh`: opens C plain TCP connections that each hold S
//! subscriptions (distinct subjects `conn.<c>.<s>`), measures core publish throughput to one
//! subscribed subject before and after they are in place, and keeps them open until stdin
//! closes, so the script can read the server's threads, RSS and descriptors meanwhile.
//!
//! `cargo run --release --example many_connections -- 127.0.0.1:4222 10000 100`

use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Connections opened at once: more would overrun the server's listen backlog.
const CONNECT_BATCH: usize = 500;
/// Messages in one throughput measurement.
const PUBLISHES: usize = 200_000;

/// Opens one connection, subscribes it to `subs` subjects and waits for the PONG that says
/// the server has them all.
async fn hold(addr: String, conn: usize, subs: usize) -> std::io::Result<TcpStream> {
    let mut stream = TcpStream::connect(&addr).await?;
    let mut commands = String::from("CONNECT {\"verbose\":false,\"pedantic\":false}\r\n");
    for s in 0..subs {
        commands.push_str(&format!("SUB conn.{conn}.{s} {s}\r\n"));
    }
    commands.push_str("PING\r\n");
    stream.write_all(commands.as_bytes()).await?;
    let mut reader = BufReader::new(&mut stream);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line.starts_with("PONG") {
            break;
        }
        if line.starts_with("-ERR") {
            return Err(std::io::Error::other(line.trim().to_string()));
        }
    }
    Ok(stream)
}

/// Publishes `PUBLISHES` messages to a subject one async-nats subscriber listens on and
/// returns messages per second, received.
async fn throughput(url: &str) -> Result<f64, Box<dyn std::error::Error>> {
    let client = async_nats::connect(url).await?;
    let mut sub = client.subscribe("bench.target").await?;
    client.flush().await?;
    let receiver = tokio::spawn(async move {
        let mut n = 0;
        while n < PUBLISHES {
            match tokio::time::timeout(Duration::from_secs(30), futures_next(&mut sub)).await {
                Ok(true) => n += 1,
                _ => break,
            }
        }
        n
    });
    let started = Instant::now();
    for _ in 0..PUBLISHES {
        client.publish("bench.target", "x".into()).await?;
    }
    client.flush().await?;
    let received = receiver.await?;
    Ok(received as f64 / started.elapsed().as_secs_f64())
}

async fn futures_next(sub: &mut async_nats::Subscriber) -> bool {
    use futures::StreamExt;
    sub.next().await.is_some()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = args
        .first()
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:4222".into());
    let connections: usize = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(1000);
    let subs: usize = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(10);
    let url = format!("nats://{addr}");
    println!("publish before: {:.0} msgs/s", throughput(&url).await?);
    let started = Instant::now();
    let mut held = Vec::with_capacity(connections);
    for batch in (0..connections).collect::<Vec<_>>().chunks(CONNECT_BATCH) {
        let opening: Vec<_> = batch
            .iter()
            .map(|&c| tokio::spawn(hold(addr.clone(), c, subs)))
            .collect();
        for task in opening {
            held.push(task.await??);
        }
    }
    println!(
        "{connections} connections with {} subscriptions in {:.1}s",
        connections * subs,
        started.elapsed().as_secs_f64()
    );
    println!("publish after: {:.0} msgs/s", throughput(&url).await?);
    println!("holding; close stdin to end");
    let mut rest = Vec::new();
    tokio::io::stdin().read_to_end(&mut rest).await?;
    drop(held);
    Ok(())
}
