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

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
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
    path: Option<CString>,
    reserve: u64,
    last: Mutex<Option<Reading>>,
    /// Operations refused with ENOSPC so far.
    refused: AtomicU64,
}

impl SpaceGuard {
    /// No disk to watch (in-memory stores, tests): every operation fits.
    pub fn unlimited() -> SpaceGuard {
        SpaceGuard {
            path: None,
            reserve: 0,
            last: Mutex::new(None),
            refused: AtomicU64::new(0),
        }
    }

    /// Watch the filesystem holding `dir`, keeping `reserve` bytes free.
    pub fn new(dir: &Path, reserve: u64) -> SpaceGuard {
        SpaceGuard {
            path: CString::new(dir.as_os_str().as_bytes()).ok(),
            reserve,
            last: Mutex::new(None),
            refused: AtomicU64::new(0),
        }
    }

    pub fn reserve(&self) -> u64 {
        self.reserve
    }

    /// One line for `.lsmfs-stats` (empty without a disk to watch).
    pub fn text(&self) -> String {
        if self.path.is_none() {
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
        let Some(path) = &self.path else {
            return Ok(());
        };
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let stale = fresh
            || last
                .as_ref()
                .is_none_or(|r| r.at.elapsed() >= REFRESH_AFTER || r.admitted >= REFRESH_BYTES);
        if stale {
            if let Some(st) = statvfs(path) {
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
        let st = statvfs(self.path.as_ref()?)?;
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

fn statvfs(path: &CString) -> Option<libc::statvfs> {
    // SAFETY: statvfs writes into a zeroed struct we own; path is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } == 0 {
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
