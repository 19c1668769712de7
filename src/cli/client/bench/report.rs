//! What a benchmark run measured, and how it is shown: per-client statistics, the human
//! summary, the stable `key=value` line, the `--csv` rows, and the progress line.
//!
//! Contract: the `key=value` line is the last line on stdout and always carries the same
//! keys in the same order, so scripts can diff runs; a value that was not measured (latency in
//! an async publish run) is `-`. Megabytes are 1,000,000 bytes.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result};

use super::super::output;

/// Bytes in the megabyte of `mb_per_s`.
const BYTES_PER_MB: f64 = 1_000_000.0;

/// What one client (publisher, subscriber, requester, responder) did.
#[derive(Debug)]
pub struct ClientStats {
    /// `pub`, `sub`, `req` or `reply`: the CSV's first column.
    pub role: &'static str,
    /// 1-based, per role, as the human summary numbers them.
    pub index: usize,
    /// Messages sent (publishers, requesters) or received (everyone else).
    pub msgs: u64,
    /// Payload bytes of those messages.
    pub bytes: u64,
    /// From the client's first message to its last (or its last ack or flush).
    pub elapsed: Duration,
    /// Round trips in microseconds, where each message waited for an answer (sync publish,
    /// request); empty otherwise.
    pub latencies_us: Vec<u32>,
}

impl ClientStats {
    pub fn new(role: &'static str, index: usize) -> Self {
        Self {
            role,
            index,
            msgs: 0,
            bytes: 0,
            elapsed: Duration::ZERO,
            latencies_us: Vec::new(),
        }
    }

    /// Counts one message of `bytes` that waited for its answer since `sent`.
    pub fn answered(&mut self, sent: std::time::Instant, bytes: usize) {
        self.latencies_us.push(latency_us(sent.elapsed()));
        self.msgs += 1;
        self.bytes += bytes as u64;
    }

    fn msgs_per_s(&self) -> f64 {
        rate(self.msgs as f64, self.elapsed)
    }

    fn mb_per_s(&self) -> f64 {
        rate(self.bytes as f64 / BYTES_PER_MB, self.elapsed)
    }
}

/// Converts a microsecond latency for storage, saturating (an hour-long round trip is
/// reported as the largest value rather than wrapping).
pub fn latency_us(elapsed: Duration) -> u32 {
    u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX)
}

fn rate(amount: f64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        amount / secs
    } else {
        0.0
    }
}

/// The nearest-rank percentile of sorted samples, `None` when there are none.
pub fn percentile(sorted: &[u32], quantile: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (quantile * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The outcome of a whole run.
pub struct Report {
    /// `core`, `request`, `jspub`, `jspull` or `jspush`.
    pub bench: &'static str,
    /// Whether each publish waited for its ack (only `--js --sync`).
    pub sync: bool,
    /// Publishers or requesters.
    pub pubs: usize,
    /// Subscribers, responders or consumers.
    pub subs: usize,
    /// The run's headline count: messages published, requests made, or messages consumed.
    pub msgs: u64,
    /// Messages subscribers received (or responders answered) in all.
    pub received: u64,
    /// Payload bytes per message (measured, for a consume run).
    pub size: usize,
    /// Wall time from the first client's start to the last client's end.
    pub elapsed: Duration,
    /// Every client's own numbers: the per-client lines and the CSV rows.
    pub clients: Vec<ClientStats>,
    /// A line describing the setup, printed first in the human summary.
    pub title: String,
}

impl Report {
    fn sorted_latencies(&self) -> Vec<u32> {
        let mut all: Vec<u32> = self
            .clients
            .iter()
            .flat_map(|c| c.latencies_us.iter().copied())
            .collect();
        all.sort_unstable();
        all
    }

    /// The human summary, then the `key=value` line, on stdout.
    pub fn print(&self) -> Result<()> {
        let mut text = format!("{}\n", self.title);
        for role in ["pub", "req", "sub", "reply"] {
            let clients: Vec<&ClientStats> =
                self.clients.iter().filter(|c| c.role == role).collect();
            if clients.is_empty() {
                continue;
            }
            let msgs: u64 = clients.iter().map(|c| c.msgs).sum();
            let bytes: u64 = clients.iter().map(|c| c.bytes).sum();
            let slowest = clients.iter().map(|c| c.elapsed).max().unwrap_or_default();
            let _ = writeln!(
                text,
                "{role} stats: {:.0} msgs/s, {:.2} MB/s ({msgs} msgs in {:.3}s)",
                rate(msgs as f64, slowest),
                rate(bytes as f64 / BYTES_PER_MB, slowest),
                slowest.as_secs_f64()
            );
            if clients.len() > 1 {
                for client in clients {
                    let _ = writeln!(
                        text,
                        "  [{}] {:.0} msgs/s, {:.2} MB/s ({} msgs)",
                        client.index,
                        client.msgs_per_s(),
                        client.mb_per_s(),
                        client.msgs
                    );
                }
            }
        }
        let latencies = self.sorted_latencies();
        if let (Some(min), Some(p50), Some(p99), Some(max)) = (
            latencies.first(),
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.99),
            latencies.last(),
        ) {
            let _ = writeln!(
                text,
                "latency: min {min}µs, p50 {p50}µs, p99 {p99}µs, max {max}µs"
            );
        }
        text.push_str(&self.key_values(&latencies));
        output::line(text)
    }

    /// `--json`: the `key=value` line's fields as one JSON object (a latency not measured is
    /// `null`), with each client's own numbers under `clients`.
    pub fn to_json(&self) -> serde_json::Value {
        let latencies = self.sorted_latencies();
        let clients: Vec<serde_json::Value> = self
            .clients
            .iter()
            .map(|c| {
                serde_json::json!({
                    "role": c.role,
                    "index": c.index,
                    "msgs": c.msgs,
                    "bytes": c.bytes,
                    "secs": c.elapsed.as_secs_f64(),
                    "msgs_per_s": c.msgs_per_s().round(),
                    "mb_per_s": c.mb_per_s(),
                })
            })
            .collect();
        serde_json::json!({
            "bench": self.bench,
            "sync": self.sync,
            "pubs": self.pubs,
            "subs": self.subs,
            "msgs": self.msgs,
            "received": self.received,
            "size": self.size,
            "secs": self.elapsed.as_secs_f64(),
            "msgs_per_s": rate(self.msgs as f64, self.elapsed).round(),
            "mb_per_s": rate(self.msgs as f64 * self.size as f64 / BYTES_PER_MB, self.elapsed),
            "p50_us": percentile(&latencies, 0.50),
            "p99_us": percentile(&latencies, 0.99),
            "clients": clients,
        })
    }

    /// The stable one-line summary.
    fn key_values(&self, sorted_latencies: &[u32]) -> String {
        let show = |value: Option<u32>| value.map_or_else(|| "-".to_string(), |v| v.to_string());
        format!(
            "bench={} sync={} pubs={} subs={} msgs={} received={} size={} secs={:.3} \
             msgs_per_s={:.0} mb_per_s={:.2} p50_us={} p99_us={}",
            self.bench,
            self.sync,
            self.pubs,
            self.subs,
            self.msgs,
            self.received,
            self.size,
            self.elapsed.as_secs_f64(),
            rate(self.msgs as f64, self.elapsed),
            rate(
                self.msgs as f64 * self.size as f64 / BYTES_PER_MB,
                self.elapsed
            ),
            show(percentile(sorted_latencies, 0.50)),
            show(percentile(sorted_latencies, 0.99)),
        )
    }

    /// Writes one CSV row per client, after a header row.
    pub fn write_csv(&self, path: &Path) -> Result<()> {
        let mut text =
            String::from("role,client,msgs,bytes,secs,msgs_per_s,mb_per_s,p50_us,p99_us\n");
        for client in &self.clients {
            let mut sorted = client.latencies_us.clone();
            sorted.sort_unstable();
            let show = |v: Option<u32>| v.map(|v| v.to_string()).unwrap_or_default();
            let _ = writeln!(
                text,
                "{},{},{},{},{:.6},{:.0},{:.3},{},{}",
                client.role,
                client.index,
                client.msgs,
                client.bytes,
                client.elapsed.as_secs_f64(),
                client.msgs_per_s(),
                client.mb_per_s(),
                show(percentile(&sorted, 0.50)),
                show(percentile(&sorted, 0.99)),
            );
        }
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_uses_nearest_rank() {
        let samples: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&samples, 0.50), Some(50));
        assert_eq!(percentile(&samples, 0.99), Some(99));
        assert_eq!(percentile(&[7], 0.99), Some(7));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn key_values_have_every_key_even_without_latency() {
        let report = Report {
            bench: "jspub",
            sync: false,
            pubs: 1,
            subs: 0,
            msgs: 1000,
            received: 0,
            size: 100,
            elapsed: Duration::from_secs(2),
            clients: Vec::new(),
            title: String::new(),
        };
        assert_eq!(
            report.key_values(&[]),
            "bench=jspub sync=false pubs=1 subs=0 msgs=1000 received=0 size=100 secs=2.000 \
             msgs_per_s=500 mb_per_s=0.05 p50_us=- p99_us=-"
        );
    }
}
