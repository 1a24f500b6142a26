//! Keeping room on the data directory's disk for the engine itself.
//!
//! Why: an LSM tree needs free space to free space. A deletion is only a
//! tombstone until a compaction rewrites the tables that hold the data, and
//! a flush or compaction writes its new tables before it deletes the old
//! ones. If user writes were allowed to fill the disk to the last block, the
//! engine could no longer flush or compact, so even `rm` would find no room
//! and the space would never come back.
//!
//! So operations that add data (write, create, mkdir, symlink, link,
//! setxattr, fallocate) fail with ENOSPC once the disk's available space
//! drops below a reserve; everything that removes or rearranges (unlink,
//! rmdir, rename, truncate, setattr, removexattr) still goes through, and
//! `statfs` reports the space above the reserve, so `df` shows the mount
//! full when writes start failing. The reserve is sized for the largest
//! compaction the engine runs (see `lsmfs mount`): 8 memtables.
//!
//! The available space is read with `statvfs` at most every 20 ms or after
//! 1 MiB admitted since the last reading, whichever comes first; between
//! readings the bytes admitted are subtracted from the last one.
//!
//! A refused operation first waits (a few seconds at most) for what
//! deletions since the last try give back (`FsCore::room_for`): the
//! compaction that drops deleted data, and the RELEASE of a file closed
//! just before it was removed, which FUSE sends in the background.
//!
//! Snapshots keep on disk what they see, which no compaction frees while
//! they live: the reserve counts that space as used like any other, and the
//! ENOSPC log line (`warn_full`, once a minute) names the snapshots and how
//! to give their space back.
//!
//! The disk is read through a descriptor of the data directory opened when
//! the guard is made, before the mount exists (`fstatvfs`, never a path
//! lookup): whatever later happens to the path, the daemon never resolves
//! it through a mount, least of all its own (see `mount_checks`).

use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const REFRESH_AFTER: Duration = Duration::from_millis(20);
const REFRESH_BYTES: u64 = 1 << 20;

/// What `statvfs` says about the data directory's filesystem, with the
/// reserve taken out of the free and available block counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskSpace {
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub bsize: u32,
    pub frsize: u32,
}

struct Reading {
    at: Instant,
    avail: u64,
    admitted: u64,
}

pub struct SpaceGuard {
    /// The data directory, opened at `new`; None when it could not be.
    dir: Option<std::fs::File>,
    /// Made by `new` (a disk to report in `.lsmfs-stats`).
    watched: bool,
    reserve: u64,
    last: Mutex<Option<Reading>>,
    /// Operations refused with ENOSPC so far.
    refused: AtomicU64,
    /// When `warn_full` last logged (ns since the epoch).
    warned_ns: AtomicU64,
}

/// `warn_full` logs at most this often.
const WARN_EVERY_NS: u64 = 60_000_000_000;

impl SpaceGuard {
    /// No disk to watch (in-memory stores, tests): every operation fits.
    pub fn unlimited() -> SpaceGuard {
        SpaceGuard {
            dir: None,
            watched: false,
            reserve: 0,
            last: Mutex::new(None),
            refused: AtomicU64::new(0),
            warned_ns: AtomicU64::new(0),
        }
    }

    /// Watch the filesystem holding `dir`, keeping `reserve` bytes free.
    pub fn new(dir: &Path, reserve: u64) -> SpaceGuard {
        let opened = std::fs::File::open(dir);
        if let Err(e) = &opened {
            log::warn!("free space not watched: {}: {e}", dir.display());
        }
        SpaceGuard {
            dir: opened.ok(),
            watched: true,
            reserve,
            last: Mutex::new(None),
            refused: AtomicU64::new(0),
            warned_ns: AtomicU64::new(0),
        }
    }

    /// Log that an operation was refused for room, at most once a minute;
    /// `advice` (called only then) adds what the user can do about it.
    pub fn warn_full(&self, advice: impl FnOnce() -> String) {
        let now = super::core::now_ns() as u64;
        let last = self.warned_ns.load(Ordering::Relaxed);
        if now.saturating_sub(last) < WARN_EVERY_NS
            || self
                .warned_ns
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        log::warn!(
            "ENOSPC: the data directory's disk is down to its reserve of {} bytes; \
             writes are refused until deletions and compactions give room back{}",
            self.reserve,
            advice()
        );
    }

    pub fn reserve(&self) -> u64 {
        self.reserve
    }

    /// One line for `.lsmfs-stats` (empty without a disk to watch).
    pub fn text(&self) -> String {
        if !self.watched {
            return String::new();
        }
        format!(
            "space_reserve        {} bytes ({} operations refused with ENOSPC)\n",
            self.reserve,
            self.refused.load(Ordering::Relaxed)
        )
    }

    /// May an operation add `bytes` to the store? ENOSPC when that would eat
    /// into the reserve. An unreadable disk (statvfs failing) never blocks.
    pub fn admit(&self, bytes: u64) -> Result<(), i32> {
        self.admit_with(bytes, false)
    }

    /// `admit` on a fresh reading of the disk.
    pub fn admit_now(&self, bytes: u64) -> Result<(), i32> {
        self.admit_with(bytes, true)
    }

    fn admit_with(&self, bytes: u64, fresh: bool) -> Result<(), i32> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let stale = fresh
            || last
                .as_ref()
                .is_none_or(|r| r.at.elapsed() >= REFRESH_AFTER || r.admitted >= REFRESH_BYTES);
        if stale {
            if let Some(st) = statvfs(dir) {
                *last = Some(Reading {
                    at: Instant::now(),
                    avail: st.f_bavail.saturating_mul(st.f_frsize),
                    admitted: 0,
                });
            }
        }
        let Some(r) = last.as_mut() else {
            return Ok(());
        };
        if r.avail
            < self
                .reserve
                .saturating_add(r.admitted)
                .saturating_add(bytes)
        {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(libc::ENOSPC);
        }
        r.admitted += bytes;
        Ok(())
    }

    /// The disk as `statfs` should report it; `None` without a disk or when
    /// `statvfs` fails.
    pub fn disk_space(&self) -> Option<DiskSpace> {
        let st = statvfs(self.dir.as_ref()?)?;
        let frsize = st.f_frsize.max(1);
        let held = self.reserve.div_ceil(frsize);
        Some(DiskSpace {
            blocks: st.f_blocks,
            bfree: st.f_bfree.saturating_sub(held),
            bavail: st.f_bavail.saturating_sub(held),
            files: st.f_files,
            ffree: st.f_ffree,
            bsize: st.f_bsize as u32,
            frsize: frsize as u32,
        })
    }
}

fn statvfs(dir: &std::fs::File) -> Option<libc::statvfs> {
    // SAFETY: fstatvfs writes into a zeroed struct we own; the fd is open.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatvfs(dir.as_raw_fd(), &mut st) } == 0 {
        Some(st)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_admits_everything() {
        let g = SpaceGuard::unlimited();
        assert_eq!(g.admit(u64::MAX), Ok(()));
        assert_eq!(g.disk_space(), None);
    }

    #[test]
    fn the_reserve_is_kept_and_reported() {
        let dir = std::env::temp_dir();
        let free = SpaceGuard::new(&dir, 0).disk_space().expect("statvfs");
        let avail = free.bavail * free.frsize as u64;
        // A reserve beyond what the disk has: nothing that adds data fits.
        let full = SpaceGuard::new(&dir, avail + (1 << 40));
        assert_eq!(full.admit(1), Err(libc::ENOSPC));
        assert_eq!(full.disk_space().expect("statvfs").bavail, 0);
        // A small reserve: writes fit until the admitted bytes reach it.
        let g = SpaceGuard::new(&dir, 1 << 20);
        assert_eq!(g.admit(4096), Ok(()));
        assert_eq!(g.admit(avail + (1 << 30)), Err(libc::ENOSPC));
        assert_eq!(g.disk_space().expect("statvfs").blocks, free.blocks);
    }

    #[test]
    fn a_missing_directory_never_blocks() {
        let g = SpaceGuard::new(Path::new("/nonexistent/lsmfs/space"), 1 << 40);
        assert_eq!(g.admit(1), Ok(()));
    }
}
