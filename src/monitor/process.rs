//! The process's resident memory and CPU use, read from `/proc` (Linux only; elsewhere the
//! fields are left out of `/varz` rather than reported as zero).
//!
//! CPU is a percentage of one core, like nats-server's (which samples `/proc` once a second):
//! here it is measured between two requests at least `MIN_CPU_SAMPLE` apart, and since the
//! server started on the first request.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Requests closer together than this reuse the last CPU figure: a shorter window is noise.
const MIN_CPU_SAMPLE: Duration = Duration::from_secs(1);

/// Keeps the previous CPU reading, to turn cumulative CPU time into a rate.
pub struct CpuSampler {
    last: Mutex<Option<Sample>>,
}

#[derive(Clone, Copy)]
struct Sample {
    at: Instant,
    cpu_secs: f64,
    /// `None` for the start-up reading, which no rate was computed for.
    percent: Option<f64>,
}

impl CpuSampler {
    /// `started` is when the process started: the first reading is an average since then.
    pub fn new(started: Instant) -> Self {
        Self {
            last: Mutex::new(Some(Sample {
                at: started,
                cpu_secs: 0.0,
                percent: None,
            })),
        }
    }

    /// CPU use in percent of one core, or `None` where it cannot be read.
    pub fn percent(&self) -> Option<f64> {
        let cpu_secs = cpu_seconds()?;
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let previous = (*last)?;
        let window = now.duration_since(previous.at);
        if let Some(percent) = previous.percent.filter(|_| window < MIN_CPU_SAMPLE) {
            return Some(percent);
        }
        let percent = if window.is_zero() {
            0.0
        } else {
            ((cpu_secs - previous.cpu_secs).max(0.0) / window.as_secs_f64() * 100.0 * 10.0).round()
                / 10.0
        };
        *last = Some(Sample {
            at: now,
            cpu_secs,
            percent: Some(percent),
        });
        Some(percent)
    }
}

/// Resident set size in bytes (`VmRSS`).
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// User plus system CPU time of the whole process, in seconds.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name is in parentheses and may hold spaces: fields count from after it.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line; `rest` starts at field 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let ticks = rustix::param::clock_ticks_per_second();
    (ticks > 0).then(|| (utime + stime) as f64 / ticks as f64)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn memory_and_cpu_are_read_on_linux() {
        assert!(resident_bytes().is_some_and(|b| b > 0));
        let sampler = CpuSampler::new(Instant::now() - Duration::from_secs(5));
        assert!(sampler.percent().is_some_and(|p| p >= 0.0));
    }
}
