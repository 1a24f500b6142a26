//! Counts of the FUSE requests the daemon has served, by kind, for
//! `.lsmfs-stats`. What a workload costs on FUSE is mostly how many round
//! trips it makes (an untar sends ~9 per file), so the counts say where a
//! slow workload's time goes without tracing the daemon.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! requests {
    ($($kind:ident => $name:literal),* $(,)?) => {
        /// A kind of FUSE request.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Req { $($kind),* }

        const NAMES: &[&str] = &[$($name),*];
    };
}

requests! {
    Lookup => "lookup", Getattr => "getattr", Setattr => "setattr",
    Readlink => "readlink", Mknod => "mknod", Mkdir => "mkdir",
    Unlink => "unlink", Rmdir => "rmdir", Symlink => "symlink",
    Rename => "rename", Link => "link", Open => "open", Read => "read",
    Write => "write", Ioctl => "ioctl", Flush => "flush", Release => "release",
    Fsync => "fsync", Opendir => "opendir", Readdir => "readdir",
    Readdirplus => "readdirplus", Releasedir => "releasedir",
    Fsyncdir => "fsyncdir", Statfs => "statfs", Setxattr => "setxattr",
    Getxattr => "getxattr", Listxattr => "listxattr",
    Removexattr => "removexattr", Access => "access", Create => "create",
    Fallocate => "fallocate", Lseek => "lseek",
}

pub struct RequestCounts {
    counts: Vec<AtomicU64>,
}

impl Default for RequestCounts {
    fn default() -> Self {
        RequestCounts {
            counts: NAMES.iter().map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl RequestCounts {
    pub fn count(&self, r: Req) {
        if let Some(c) = self.counts.get(r as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn get(&self, r: Req) -> u64 {
        self.counts
            .get(r as usize)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Add `other`'s counts to these.
    pub fn add(&self, other: &RequestCounts) {
        for (c, o) in self.counts.iter().zip(&other.counts) {
            c.fetch_add(o.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }

    /// `LABEL  N (lookup a, write b, ...)`, busiest first; kinds never seen
    /// are left out.
    pub fn text(&self, label: &str) -> String {
        let mut seen: Vec<(u64, &str)> = self
            .counts
            .iter()
            .zip(NAMES)
            .map(|(c, n)| (c.load(Ordering::Relaxed), *n))
            .filter(|(c, _)| *c > 0)
            .collect();
        seen.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
        let total: u64 = seen.iter().map(|(c, _)| c).sum();
        let parts: Vec<String> = seen.iter().map(|(c, n)| format!("{n} {c}")).collect();
        format!("{label:<20} {total} ({})\n", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_text() {
        let r = RequestCounts::default();
        assert_eq!(NAMES.len(), Req::Lseek as usize + 1);
        assert_eq!(r.text("fuse_requests"), "fuse_requests        0 ()\n");
        for _ in 0..3 {
            r.count(Req::Write);
        }
        r.count(Req::Lookup);
        r.count(Req::Lseek);
        assert_eq!(r.get(Req::Write), 3);
        assert_eq!(
            r.text("fuse_requests"),
            "fuse_requests        5 (write 3, lookup 1, lseek 1)\n"
        );
    }
}
