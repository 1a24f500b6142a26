//! Opening a data directory from the offline tools (`check`, `stats`,
//! `inspect path`, `compact`).
//!
//! The readers must work on read-only media and must never change what
//! they are pointed at, so before the engine is asked anything the path is
//! looked at: a stale FUSE mount (its daemon died), something that is not a
//! directory, a live lsmfs mount point or a directory without `CURRENT` is
//! refused with one line and nothing is created (not even `LOCK`). The
//! engine then opens read-only with a shared lock (or none, with a note, if
//! the lock file cannot be opened) and the tuning the directory's last
//! mount recorded (`engine::options_file`), so offline and live figures
//! agree.

use crate::engine::{Db, Error, Options};
use std::path::Path;

/// Why `dir` cannot be read offline, before anything touches it.
pub fn preflight(dir: &Path) -> Result<(), String> {
    let shown = dir.display();
    if crate::fs::mount::statfs_errno(dir) == Some(libc::ENOTCONN) {
        return Err(format!(
            "{shown} is a stale lsmfs mount (its daemon is gone): clear it with \
             `umount {shown}` (`umount -l {shown}` if it is busy), or mount it again"
        ));
    }
    let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    if crate::fs::mount::is_fuse_mounted(&abs, "fuse") {
        return Err(format!(
            "{shown} is the mount point of a running lsmfs, not its data directory"
        ));
    }
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(format!("{shown} is not a directory")),
        Err(e) => return Err(format!("{shown}: {e}")),
    }
    if !dir.join("CURRENT").exists() {
        return Err(format!(
            "{shown} is not an lsmfs data directory (no CURRENT file)"
        ));
    }
    Ok(())
}

/// Options for an offline open: read-only unless `writable` (`compact`),
/// no background thread, the directory's own tuning.
pub fn options(writable: bool) -> Options {
    Options {
        read_only: !writable,
        create_if_missing: false,
        background_compaction: false,
        tuning_from_dir: true,
        ..Default::default()
    }
}

/// `preflight`, then open; `Locked` gets `hint` appended.
pub fn open(dir: &Path, writable: bool, hint: &str) -> Result<Db, OpenError> {
    preflight(dir).map_err(OpenError::Refused)?;
    match Db::open(dir, options(writable)) {
        Ok(db) => {
            if let Some(why) = db.unlocked_note() {
                eprintln!(
                    "note: reading {} without a lock ({why}): a daemon writing it at the \
                     same time would not be noticed",
                    dir.display()
                );
            }
            Ok(db)
        }
        Err(e @ Error::Locked { .. }) => Err(OpenError::Refused(format!("{e}; {hint}"))),
        Err(e) => Err(OpenError::Engine(e)),
    }
}

pub enum OpenError {
    /// One line for the user.
    Refused(String),
    /// The engine's error (corruption names the file and offset).
    Engine(Error),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Refused(m) => write!(f, "{m}"),
            OpenError::Engine(e) => write!(f, "{e}"),
        }
    }
}
