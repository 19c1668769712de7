//! Can one flush cover several streams' appends? Each round appends one small record to each
//! of N files (N streams that each got a publish), then makes them durable either with one
//! `fdatasync` per file (what the stream actors do, each for its own stream) or with a single
//! `syncfs` for the whole file system. Prints the time per round and per file for both.
//!
//! `cargo run --release --example sync_across_streams -- [DIR] [FILES] [ROUNDS]`
//! (DIR must be on the disk under test; the default is a temp directory under ./target)

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::time::Instant;

/// Bytes appended per file per round: a small record.
const RECORD_BYTES: usize = 200;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let base = args.first().cloned().unwrap_or_else(|| "target".into());
    let files: usize = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(64);
    let rounds: usize = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(100);
    let dir = tempfile::tempdir_in(base)?;
    let handles = (0..files)
        .map(|i| {
            OpenOptions::new()
                .create(true)
                .truncate(true)
                .read(true)
                .write(true)
                .open(dir.path().join(format!("s{i}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let record = [0x5au8; RECORD_BYTES];
    for (label, one_for_all) in [("fdatasync per file", false), ("one syncfs", true)] {
        let mut offset = 0u64;
        let started = Instant::now();
        for _ in 0..rounds {
            for file in &handles {
                file.write_all_at(&record, offset)?;
            }
            offset += RECORD_BYTES as u64;
            if one_for_all {
                rustix::fs::syncfs(&handles[0])?;
            } else {
                for file in &handles {
                    file.sync_data()?;
                }
            }
        }
        let per_round = started.elapsed().as_secs_f64() * 1e3 / rounds as f64;
        println!(
            "{label:>20}: {per_round:.2} ms per round of {files} files, {:.1} µs per file",
            per_round * 1e3 / files as f64
        );
    }
    Ok(())
}
