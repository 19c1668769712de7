//! What a server process holds, read from `/proc`: resident memory and open descriptors.

/// The resident set size of process `pid`, in bytes (VmRSS in /proc/<pid>/status).
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line");
    kib * 1024
}

/// A process's open file descriptors, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FdCounts {
    pub total: usize,
    /// Sockets: listeners and connections.
    pub sockets: usize,
    /// Segment files of a stream (`*.seg`): a log keeps one open per segment.
    pub segments: usize,
    /// Every other descriptor: other files, pipes, epoll and event descriptors.
    pub other: usize,
}

/// Counts the open descriptors of process `pid` (the links in /proc/<pid>/fd). A descriptor
/// closed while the directory is read is skipped.
pub fn fd_counts(pid: u32) -> FdCounts {
    let mut counts = FdCounts::default();
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd")).expect("proc fd");
    for entry in dir.map_while(Result::ok) {
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        counts.total += 1;
        let target = target.to_string_lossy();
        if target.starts_with("socket:") {
            counts.sockets += 1;
        } else if target.ends_with(".seg") {
            counts.segments += 1;
        } else {
            counts.other += 1;
        }
    }
    counts
}
