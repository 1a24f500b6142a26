//! The I/O seam.
//!
//! Every file operation of the engine goes through an [`Env`], so that tests
//! can substitute [`crate::engine::env::fault::FaultEnv`], which keeps files in
//! memory, remembers what has been made durable, and can "crash" (drop
//! everything that was not fsync'd, including directory entries whose
//! directory was not fsync'd) or fail the Nth operation.
//!
//! Durability rules the engine relies on (and that `FaultEnv` models):
//! - bytes appended to a file are durable only after `WritableFile::sync`;
//! - a newly created, renamed or removed directory entry is durable only after
//!   `Env::sync_dir` on its directory;
//! - `WritableFile::flush` hands bytes to the OS: they survive a kill -9 of the
//!   process, not a power loss.
//!
//! | module | job |
//! | --- | --- |
//! | this one | the `Env`, `WritableFile`, `RandomAccessFile` and lock traits |
//! | `posix` | the real one: `std::fs`, `fdatasync`, `flock` |
//! | `fault` | the in-memory one that loses power, dies and fails on demand |

pub mod fault;
pub mod posix;

pub use fault::{FaultEnv, FaultKinds};
pub use posix::PosixEnv;

use crate::engine::error::Result;
use std::path::{Path, PathBuf};

/// A file being written sequentially (WAL, MANIFEST, SSTable under construction).
pub trait WritableFile: Send {
    /// Append bytes. May buffer in user space.
    fn append(&mut self, data: &[u8]) -> Result<()>;
    /// Append the parts in order, as one `append` of their concatenation.
    /// A large write goes straight to the OS from the parts (`writev`),
    /// with no copy into a buffer.
    fn append_vectored(&mut self, parts: &[&[u8]]) -> Result<()> {
        for p in parts {
            self.append(p)?;
        }
        Ok(())
    }
    /// Push user-space buffers to the OS (survives process death).
    fn flush(&mut self) -> Result<()>;
    /// flush + fdatasync/fsync (survives power loss).
    fn sync(&mut self) -> Result<()>;
    /// Bytes appended so far (including buffered ones).
    fn len(&self) -> u64;
    /// Ask `sync` to keep about `bytes` of zeros written (and synced) past
    /// the end, so that most syncs of a growing file leave its size alone
    /// and the filesystem need not write its inode: one device write per
    /// fsync'd append instead of two. Only for logs, whose reader takes a
    /// zero tail as their end. Best effort; the default does nothing.
    fn set_sync_headroom(&mut self, _bytes: u64) {}
    /// Start writing back what was handed to the OS, without waiting
    /// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`), so that a later `sync`
    /// of a big file finds most of it on disk already. No durability
    /// promise. Best effort; the default does nothing.
    fn start_writeback(&mut self) {}
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A file read at arbitrary offsets (SSTables). Shared between threads.
pub trait RandomAccessFile: Send + Sync {
    /// Read exactly `len` bytes at `offset`; a short read is an error.
    fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>>;
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An advisory lock held while the guard lives.
pub trait FileLock: Send + Sync {
    /// Write who holds the lock into the lock file (an exclusive holder
    /// does, so that a process refused the lock can name it). Best effort.
    fn set_holder(&self, _text: &str) {}
}

/// What a reader that must not write got when it asked for a shared lock.
pub enum SharedLock {
    Held(Box<dyn FileLock>),
    /// No lock could be taken without creating or writing anything (the
    /// lock file is missing, or cannot be opened: read-only media); why.
    Unavailable(String),
}

pub trait Env: Send + Sync {
    /// Create (or truncate) a file for writing.
    fn create_writable(&self, path: &Path) -> Result<Box<dyn WritableFile>>;
    fn open_random_access(&self, path: &Path) -> Result<Box<dyn RandomAccessFile>>;
    /// Read a whole file (WAL, MANIFEST, CURRENT are read sequentially at open).
    fn read_all(&self, path: &Path) -> Result<Vec<u8>>;
    fn rename(&self, from: &Path, to: &Path) -> Result<()>;
    fn remove_file(&self, path: &Path) -> Result<()>;
    /// fsync a directory, making its entries durable.
    fn sync_dir(&self, dir: &Path) -> Result<()>;
    /// File names (not paths) in a directory.
    fn list_dir(&self, dir: &Path) -> Result<Vec<String>>;
    fn file_size(&self, path: &Path) -> Result<u64>;
    fn exists(&self, path: &Path) -> bool;
    fn create_dir_all(&self, dir: &Path) -> Result<()>;
    /// Take an exclusive lock on `path` (creating it), failing with
    /// `Error::Locked` if another process or handle holds it.
    fn lock_file(&self, path: &Path) -> Result<Box<dyn FileLock>>;
    /// Take a shared lock on an existing `path` without creating or
    /// writing anything; `Error::Locked` if an exclusive holder has it.
    fn lock_file_shared(&self, path: &Path) -> Result<SharedLock> {
        if !self.exists(path) {
            return Ok(SharedLock::Unavailable(format!(
                "{} does not exist",
                path.display()
            )));
        }
        self.lock_file(path).map(SharedLock::Held)
    }
    /// Truncate a file to `len` bytes (used to cut a torn tail).
    fn truncate(&self, path: &Path, len: u64) -> Result<()>;
}

pub fn join(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}
