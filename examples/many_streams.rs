//! Load for `docs/bench/many_streams.sh`: creates N streams (`S<i>` on `s<i>.>`), each with one
//! message and one durable consumer, reporting the create rate per thousand; or, with
//! `--check`, waits until every stream answers `STREAM.INFO` and prints how long that took.
//!
//! `cargo run --release --example many_streams -- nats://127.0.0.1:4222 10000 [--check]
//! [--no-consumers]`

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};

/// Waits until stream `S<i>` answers STREAM.INFO (at most 600 s after `started`).
async fn answers(
    js: &jetstream::Context,
    i: usize,
    started: Instant,
) -> Result<(), Box<dyn std::error::Error>> {
    loop {
        match js.get_stream(format!("S{i}")).await {
            Ok(_) => return Ok(()),
            Err(_) if started.elapsed() < Duration::from_secs(600) => {
                tokio::time::sleep(Duration::from_millis(5)).await
            }
            Err(e) => return Err(format!("S{i}: {e}").into()),
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = args
        .first()
        .cloned()
        .unwrap_or_else(|| "nats://127.0.0.1:4222".into());
    let count: usize = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(1000);
    let check = args.iter().any(|a| a == "--check");
    // Streams alone, to tell a consumer's memory from a stream's.
    let consumers = !args.iter().any(|a| a == "--no-consumers");
    let started = Instant::now();
    let client = loop {
        match async_nats::connect(&url).await {
            Ok(client) => break client,
            Err(_) if started.elapsed() < Duration::from_secs(120) => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => return Err(e.into()),
        }
    };
    let js = jetstream::new(client);
    if check {
        // The last stream first: at a restart it is likely the last opened.
        let last = count.saturating_sub(1);
        answers(&js, last, started).await?;
        println!(
            "stream S{last} answers after {:.2}s",
            started.elapsed().as_secs_f64()
        );
        for i in 0..count {
            answers(&js, i, started).await?;
        }
        println!(
            "all {count} streams answer after {:.2}s",
            started.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    let mut lap = Instant::now();
    for i in 0..count {
        let stream = js
            .create_stream(stream::Config {
                name: format!("S{i}"),
                subjects: vec![format!("s{i}.>")],
                ..Default::default()
            })
            .await?;
        js.publish(format!("s{i}.a"), "x".into()).await?.await?;
        if consumers {
            stream
                .create_consumer(consumer::pull::Config {
                    durable_name: Some(format!("C{i}")),
                    ..Default::default()
                })
                .await?;
        }
        if (i + 1) % 1000 == 0 {
            let per = lap.elapsed().as_secs_f64() * 1000.0 / 1000.0;
            println!(
                "streams {:>6}: {per:.2} ms per stream+message+consumer",
                i + 1
            );
            lap = Instant::now();
        }
    }
    println!("created {count} in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}
