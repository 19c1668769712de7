//! Real network partitions for cluster tests, made with Linux network namespaces.
//!
//! Each server gets its own namespace with two links into the root namespace:
//! - a *client* link on a bridge the root namespace has an address on, so the test's clients
//!   reach every server directly;
//! - a *route* link on a second bridge the root namespace has no address on, which carries
//!   only the routes between servers.
//!
//! Cutting a server's route link (`ip link set <veth> down` on the bridge side) partitions it
//! from the other servers while its clients stay connected: what the tests then see is the
//! routes failing and coming back, not clients reconnecting elsewhere. A cut link leaves the
//! TCP connections half-open, as a real network failure does; only pings find them dead.
//!
//! On the route network every namespace knows its peers' MAC addresses (static neighbour
//! entries), so no ARP runs there: a cut drops packets and a heal delivers them again at once.
//! With ARP, the kernel may still be resolving a peer when the link comes back and hold the
//! first packets for up to a second, so whether a route re-forms would depend on the kernel's
//! neighbour state (see `a_gossiped_route_whose_only_dial_failed_is_dialled_again`).
//!
//! Names and subnets include the process id and a per-process counter, so tests of one binary
//! (threads) and of several binaries (processes) can run side by side.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

/// Every server listens for routes on this port: each namespace has its own port space.
pub const ROUTE_PORT: u16 = 6222;

static NEXT_NET: AtomicU32 = AtomicU32::new(0);

/// Runs `ip <args>` (`args` split at spaces: no name here has one); the error says what
/// failed and why.
fn ip(args: &str) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args.split_whitespace())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `ip`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {args}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Namespaces, veths and bridges of one test; all removed on drop, even after a panic.
pub struct Net {
    namespaces: Vec<String>,
    /// Bridge-side ends of the client links, by server.
    client_links: Vec<String>,
    /// Bridge-side ends of the route links, by server.
    route_links: Vec<String>,
    bridges: Vec<String>,
    /// `10.a.b` of the client subnet; the route subnet is `10.a.(b+1)`.
    subnet: (u8, u8),
}

impl Net {
    /// Makes `n` namespaces (at most 9) wired to a client bridge and a route bridge. Any
    /// failure (not root, no `ip`, no namespace support) is returned for the caller to skip.
    pub fn create(n: usize) -> Result<Net, String> {
        assert!(n < 10, "at most 9 servers");
        let pid = std::process::id();
        let counter = NEXT_NET.fetch_add(1, Ordering::Relaxed);
        // Interface names are at most 15 bytes: "jl" + up to 6 hex digits of the pid + one of
        // the counter + role and index.
        let tag = format!("{:x}{:x}", pid & 0xff_ffff, counter % 16);
        let mut net = Net {
            namespaces: Vec::new(),
            client_links: Vec::new(),
            route_links: Vec::new(),
            bridges: Vec::new(),
            subnet: free_subnet(pid, counter)?,
        };
        for i in 0..n {
            let ns = format!("jl{tag}n{i}");
            // A namespace left by an earlier process with the same id would be in the way.
            let _ = ip(&format!("netns del {ns}"));
            ip(&format!("netns add {ns}"))?;
            net.namespaces.push(ns.clone());
            ip(&format!("-n {ns} link set lo up"))?;
        }
        let (a, b) = net.subnet;
        for (role, third) in [("c", b), ("r", b + 1)] {
            let bridge = format!("jl{role}{tag}");
            let _ = ip(&format!("link del {bridge}"));
            ip(&format!("link add {bridge} type bridge"))?;
            net.bridges.push(bridge.clone());
            ip(&format!("link set {bridge} up"))?;
            if role == "c" {
                ip(&format!("addr add 10.{a}.{third}.254/24 dev {bridge}"))?;
            }
            for (i, ns) in net.namespaces.clone().iter().enumerate() {
                let host = format!("jl{role}{tag}{i}");
                let inner = format!("j{role}");
                let _ = ip(&format!("link del {host}"));
                ip(&format!(
                    "link add {host} type veth peer name {inner} netns {ns}"
                ))?;
                if role == "c" {
                    net.client_links.push(host.clone());
                } else {
                    net.route_links.push(host.clone());
                }
                ip(&format!("link set {host} master {bridge} up"))?;
                let addr = format!("10.{a}.{third}.{}/24", i + 1);
                ip(&format!("-n {ns} addr add {addr} dev {inner}"))?;
                if role == "r" {
                    let mac = net.route_mac(i);
                    ip(&format!("-n {ns} link set {inner} address {mac}"))?;
                }
                ip(&format!("-n {ns} link set {inner} up"))?;
            }
        }
        for (i, ns) in net.namespaces.iter().enumerate() {
            for j in (0..n).filter(|&j| j != i) {
                let (peer, mac) = (net.route_ip(j), net.route_mac(j));
                ip(&format!(
                    "-n {ns} neigh replace {peer} lladdr {mac} dev jr nud permanent"
                ))?;
            }
        }
        Ok(net)
    }

    /// The MAC address of server `i`'s route link (locally administered, unique per subnet).
    fn route_mac(&self, i: usize) -> String {
        let (a, b) = self.subnet;
        format!("02:6a:{a:02x}:{:02x}:00:{:02x}", b + 1, i + 1)
    }

    /// The address server `i`'s clients connect to (reachable from the root namespace).
    pub fn client_ip(&self, i: usize) -> String {
        format!("10.{}.{}.{}", self.subnet.0, self.subnet.1, i + 1)
    }

    /// The address server `i` listens for routes on (reachable from the other servers only).
    pub fn route_ip(&self, i: usize) -> String {
        format!("10.{}.{}.{}", self.subnet.0, self.subnet.1 + 1, i + 1)
    }

    pub fn route_url(&self, i: usize) -> String {
        format!("nats-route://{}:{ROUTE_PORT}", self.route_ip(i))
    }

    /// Partitions server `i` from the others: its route link goes down, its client link stays.
    pub fn cut(&self, i: usize) {
        ip(&format!("link set {} down", self.route_links[i])).expect("cut the route link");
    }

    /// Heals the partition of server `i`.
    pub fn heal(&self, i: usize) {
        ip(&format!("link set {} up", self.route_links[i])).expect("heal the route link");
    }

    /// Isolates server `i`'s route port on the bridge (`on`) or lifts that: isolated ports
    /// reach the others but not each other, so isolating two servers cuts only their pair.
    pub fn isolate(&self, i: usize, on: bool) {
        let state = if on { "on" } else { "off" };
        let link = &self.route_links[i];
        ip(&format!(
            "link set dev {link} type bridge_slave isolated {state}"
        ))
        .expect("set bridge port isolation");
    }

    /// Starts `jetlog server` in namespace `i`, clients on its client address (port picked by
    /// the server), routes on its route address and `ROUTE_PORT`, with `extra` flags.
    pub fn spawn(&self, i: usize, extra: &[&str]) -> NsServer {
        let store = tempfile::tempdir().expect("temp dir");
        let client_ip = self.client_ip(i);
        let cluster = format!("nats://{}:{ROUTE_PORT}", self.route_ip(i));
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.namespaces[i]])
            .arg(env!("CARGO_BIN_EXE_jetlog"))
            .args([
                "server",
                "-a",
                &client_ip,
                "-p",
                "-1",
                "--cluster",
                &cluster,
            ])
            .arg("--store_dir")
            .arg(store.path())
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn jetlog in a namespace");
        // `ip netns exec` execs the command, so the child is the server itself.
        let (log, port) = super::follow_log(&mut child);
        NsServer {
            child,
            url: format!("nats://{client_ip}:{port}"),
            log,
            _store: store,
        }
    }
}

/// A subnet pair `10.a.b`/`10.a.(b+1)` picked from the process id and counter, skipping any
/// the root namespace already routes (another test process's, or the host's).
fn free_subnet(pid: u32, counter: u32) -> Result<(u8, u8), String> {
    let out = Command::new("ip")
        .args(["-4", "route", "show"])
        .output()
        .map_err(|e| format!("cannot run `ip`: {e}"))?;
    let routes = String::from_utf8_lossy(&out.stdout).into_owned();
    let start = pid.wrapping_mul(4).wrapping_add(counter);
    for k in 0..64 * 128 {
        let slot = (start.wrapping_add(k * 7)) % (64 * 128);
        let (a, b) = ((100 + slot / 128) as u8, ((slot % 128) * 2) as u8);
        let taken = [b, b + 1]
            .iter()
            .any(|third| routes.contains(&format!("10.{a}.{third}.")));
        if !taken {
            return Ok((a, b));
        }
    }
    Err("no free 10.x.y.0/24 subnet".to_string())
}

impl Drop for Net {
    fn drop(&mut self) {
        // Deleting one end of a veth deletes both; namespaces go once their servers are gone.
        for link in self.client_links.iter().chain(&self.route_links) {
            let _ = ip(&format!("link del {link}"));
        }
        for ns in &self.namespaces {
            let _ = ip(&format!("netns del {ns}"));
        }
        for bridge in &self.bridges {
            let _ = ip(&format!("link del {bridge}"));
        }
    }
}

/// A `jetlog server` running in a namespace; killed on drop.
pub struct NsServer {
    child: Child,
    /// Where clients in the root namespace connect.
    pub url: String,
    /// Every line the server logged so far.
    pub log: Arc<Mutex<Vec<String>>>,
    _store: tempfile::TempDir,
}

impl NsServer {
    /// How many lines the server has logged: a mark for `*_since`.
    pub fn log_len(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    /// The server ids of the routes registered since log line `mark`.
    pub fn registered_since(&self, mark: usize) -> BTreeSet<String> {
        let log = self.log.lock().unwrap();
        log.iter()
            .skip(mark)
            .filter_map(|line| line.split("Registering remote route \"").nth(1))
            .filter_map(|rest| rest.split('"').next())
            .map(str::to_string)
            .collect()
    }

    /// How many route connections were closed since log line `mark`.
    pub fn closed_since(&self, mark: usize) -> usize {
        let log = self.log.lock().unwrap();
        log.iter()
            .skip(mark)
            .filter(|l| l.contains("Router connection closed"))
            .count()
    }

    /// Whether a line containing `needle` was logged since log line `mark`.
    pub fn logged_since(&self, mark: usize, needle: &str) -> bool {
        let log = self.log.lock().unwrap();
        log.iter().skip(mark).any(|l| l.contains(needle))
    }

    /// The last `n` log lines, for failure messages.
    pub fn tail(&self, n: usize) -> Vec<String> {
        let log = self.log.lock().unwrap();
        log[log.len().saturating_sub(n)..].to_vec()
    }
}

impl Drop for NsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
