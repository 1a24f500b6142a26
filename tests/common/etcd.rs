//! A real 3-member etcd cluster on 127.0.0.1 for tests: free ports picked
//! at start (never etcd's default 2379/2380), data in a temporary
//! directory, the limits `lsmfs` needs raised (request size, operations
//! per transaction, backend quota). Waits until every member is healthy;
//! `Drop` kills the members it started, by pid, and nothing else.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Set to `etcd` to run the mount suites on an etcd-backed store.
pub const STORE_ENV: &str = "LSMFS_TEST_STORE";

pub fn etcd_run() -> bool {
    std::env::var(STORE_ENV).is_ok_and(|v| v == "etcd")
}

/// Whether the etcd server is installed (scripts/setup.sh installs it).
pub fn available() -> bool {
    Command::new("etcd")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

struct Member {
    name: String,
    client: u16,
    peer: u16,
    child: Option<Child>,
}

pub struct EtcdCluster {
    pub tmp: tempfile::TempDir,
    members: Vec<Member>,
    /// Extra server flags (auth/TLS tests).
    extra: Vec<String>,
    /// The client URLs' scheme: `https` with TLS (peers talk plain http
    /// on the loopback).
    scheme: &'static str,
    /// etcdctl flags for health checks (TLS material).
    ctl: Vec<String>,
    token: String,
}

/// Ports this process handed out: parallel tests never share one.
static TAKEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());

/// A port free now, below the kernel's ephemeral range (32768 and up,
/// where outgoing connections would take it from under a member).
fn free_port() -> u16 {
    let mut taken = TAKEN.lock().unwrap_or_else(|p| p.into_inner());
    let mut x = std::process::id() as u64 ^ (taken.len() as u64).wrapping_mul(0x9E37_79B9);
    loop {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let port = 20000 + ((x >> 33) % 12000) as u16;
        if taken.contains(&port) || std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        taken.push(port);
        return port;
    }
}

/// Clusters started by this process, for unique tokens.
static STARTED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl EtcdCluster {
    pub fn start() -> EtcdCluster {
        Self::start_with(&[], "http", &[])
    }

    /// A cluster with extra `etcd` flags; `scheme` https for TLS, with
    /// `ctl` the etcdctl flags its health check needs.
    pub fn start_with(extra: &[String], scheme: &'static str, ctl: &[String]) -> EtcdCluster {
        assert!(
            available(),
            "etcd is not installed (scripts/setup.sh installs etcd-server)"
        );
        let tmp = tempfile::Builder::new()
            .prefix("lsmfs-etcd")
            .tempdir()
            .expect("tempdir");
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut members = Vec::new();
        while members.len() < 3 {
            let (client, peer) = (free_port(), free_port());
            if [2379, 2380].contains(&client) || [2379, 2380].contains(&peer) {
                continue;
            }
            members.push(Member {
                name: format!("m{}", members.len()),
                client,
                peer,
                child: None,
            });
        }
        let mut c = EtcdCluster {
            tmp,
            members,
            extra: extra.to_vec(),
            scheme,
            ctl: ctl.to_vec(),
            token: format!("lsmfs-test-{}-{n}", std::process::id()),
        };
        for i in 0..3 {
            c.spawn(i, "new");
        }
        c.wait_healthy(&[0, 1, 2]);
        c
    }

    fn initial_cluster(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn log_path(&self, i: usize) -> PathBuf {
        self.tmp
            .path()
            .join(format!("{}.log", self.members[i].name))
    }

    fn spawn(&mut self, i: usize, state: &str) {
        let m = &self.members[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(i))
            .expect("etcd log");
        let client = format!("{}://127.0.0.1:{}", self.scheme, m.client);
        let peer = format!("http://127.0.0.1:{}", m.peer);
        let child = Command::new("etcd")
            .arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(self.tmp.path().join(&m.name))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &self.initial_cluster()])
            .args(["--initial-cluster-state", state])
            .args(["--initial-cluster-token", &self.token])
            // A 1 MiB FUSE write is 257 puts of 4 KiB: raise etcd's
            // defaults (1.5 MiB, 128 operations, 2 GiB).
            .args(["--max-request-bytes", "16777216"])
            .args(["--max-txn-ops", "16384"])
            .args(["--quota-backend-bytes", "8589934592"])
            .args(["--auto-compaction-mode", "revision"])
            .args(["--auto-compaction-retention", "10000"])
            // A loaded 2-vCPU machine misses 100 ms heartbeats.
            .args(["--heartbeat-interval", "250"])
            .args(["--election-timeout", "2500"])
            .args(["--logger", "zap", "--log-level", "warn"])
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn etcd");
        self.members[i].child = Some(child);
    }

    /// `host:port` of every member's client URL.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.client))
            .collect()
    }

    /// `etcd://…/PREFIX` naming all three members.
    pub fn url(&self, prefix: &str) -> String {
        format!("etcd://{}/{prefix}", self.endpoints().join(","))
    }

    fn healthy(&self, i: usize) -> bool {
        let ep = format!("{}://127.0.0.1:{}", self.scheme, self.members[i].client);
        Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg("--endpoints")
            .arg(&ep)
            .args(&self.ctl)
            .args(["--command-timeout", "2s", "endpoint", "health"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn wait_healthy(&mut self, which: &[usize]) {
        let deadline = Instant::now() + Duration::from_secs(60);
        for &i in which {
            while !self.healthy(i) {
                if let Some(Ok(Some(st))) = self.members[i].child.as_mut().map(|c| c.try_wait()) {
                    panic!(
                        "etcd member {i} exited ({st}):\n{}",
                        std::fs::read_to_string(self.log_path(i)).unwrap_or_default()
                    );
                }
                assert!(
                    Instant::now() < deadline,
                    "etcd member {i} not healthy in 60 s:\n{}",
                    std::fs::read_to_string(self.log_path(i)).unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// The member that leads the cluster now.
    pub fn leader(&self) -> Option<usize> {
        (0..self.members.len()).find(|&i| {
            if self.members[i].child.is_none() {
                return false;
            }
            let ep = format!("{}://127.0.0.1:{}", self.scheme, self.members[i].client);
            let out = Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .arg("--endpoints")
                .arg(&ep)
                .args(&self.ctl)
                .args(["endpoint", "status"])
                .output();
            // endpoint, ID, version, DB size, IS LEADER, ...
            out.is_ok_and(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split(", ")
                    .nth(4)
                    .is_some_and(|f| f == "true")
            })
        })
    }

    /// kill -9 one member (ours, by pid).
    pub fn kill_member(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start a killed member again on its data directory.
    pub fn restart_member(&mut self, i: usize) {
        assert!(self.members[i].child.is_none(), "member {i} is running");
        self.spawn(i, "existing");
        self.wait_healthy(&[i]);
    }

    /// Run etcdctl against the cluster (with `ctl` flags); (success, output).
    pub fn etcdctl(&self, args: &[&str]) -> (bool, String) {
        let eps = self
            .endpoints()
            .iter()
            .map(|e| format!("{}://{e}", self.scheme))
            .collect::<Vec<_>>()
            .join(",");
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg("--endpoints")
            .arg(eps)
            .args(&self.ctl)
            .args(args)
            .output()
            .expect("run etcdctl");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut c) = m.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}
