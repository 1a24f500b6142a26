//! The daemon's log file (`DATA_DIR/LOG` or `--log-file`), bounded by
//! rotation.
//!
//! The log is the daemon's standard error (log lines, and anything else
//! that writes there, a panic message included), so rotating it means
//! moving the descriptor too: when a write would take the file past
//! `--log-size`, `LOG.{keep-1}` → `LOG.{keep}` … `LOG` → `LOG.1` are
//! renamed (the oldest dropped), a new `LOG` is opened with the old one's
//! mode and owner (0600 in a data directory), and it is `dup2`'d onto
//! descriptor 2. `--log-keep 0` truncates in place instead. At most
//! `(keep + 1) × size` bytes are kept. The size is the file's own (`fstat`
//! at each write: log lines are rare at INFO), so a log someone else
//! truncated or rotated is seen as it is. Only a regular file is rotated:
//! a `--log-file` naming a terminal, pipe or device is written as it is.
//!
//! `LOG` and `LOG.N` are not the store's files: the engine ignores them
//! (files it does not name are garbage only when they look like its own).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// `--log-size` default: 8 MiB, a few months of a quiet daemon's lines.
pub const DEFAULT_SIZE: &str = "8M";
/// `--log-keep` default.
pub const DEFAULT_KEEP: &str = "3";

/// The range `--log-size` accepts: 64 KiB to 1 GiB.
#[allow(non_snake_case)]
pub fn LOG_SIZE_RANGE(s: &str) -> Result<u64, String> {
    crate::cli_values::size_in(64 << 10, 1 << 30)(s)
}

/// Where the log is and how much of it to keep.
#[derive(Debug, Clone)]
pub struct Rotation {
    pub path: PathBuf,
    pub max_size: u64,
    pub keep: u64,
}

/// Writes log lines to descriptor 2, rotating the file first when due.
struct Rotating {
    rotation: Rotation,
    lock: Mutex<()>,
}

/// Point descriptor 2 at `rotation.path` (opened for appending if it is
/// not already there) and send log lines through the rotation. Returns the
/// caller's standard error when it was something else (a terminal).
pub fn init(
    rotation: Rotation,
    filter: env_logger::Builder,
) -> Result<Option<std::fs::File>, String> {
    let mut before = None;
    if !stderr_is(&rotation.path) {
        let f = open_like(&rotation.path, None)?;
        // SAFETY: dup of descriptor 2; the new descriptor is owned below.
        let old = unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 3) };
        if old >= 0 {
            // SAFETY: `old` is a fresh descriptor nothing else owns.
            before = Some(std::fs::File::from(unsafe {
                std::os::fd::OwnedFd::from_raw_fd(old)
            }));
        }
        dup_onto_stderr(f)?;
    }
    let mut filter = filter;
    filter
        .target(env_logger::Target::Pipe(Box::new(Rotating {
            rotation,
            lock: Mutex::new(()),
        })))
        .init();
    Ok(before)
}

impl Write for Rotating {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _held = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = self.rotate_if_due(buf.len() as u64) {
            // Keep logging to the old file; say why once per failed try.
            let _ = std::io::stderr().write_all(format!("log rotation failed: {e}\n").as_bytes());
        }
        std::io::stderr().write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl Rotating {
    fn rotate_if_due(&self, adding: u64) -> Result<(), String> {
        let r = &self.rotation;
        // SAFETY: fstat of descriptor 2 into a zeroed struct we own.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstat(2, &mut st) } != 0
            || st.st_mode & libc::S_IFMT != libc::S_IFREG
            || (st.st_size as u64) + adding <= r.max_size
            || st.st_size == 0
        {
            return Ok(());
        }
        // Rotate only the file the path still names (someone may have
        // moved it already: then just follow the path).
        let ours =
            std::fs::metadata(&r.path).is_ok_and(|m| m.dev() == st.st_dev && m.ino() == st.st_ino);
        if ours && r.keep == 0 {
            // SAFETY: ftruncate of descriptor 2; it is opened O_APPEND.
            if unsafe { libc::ftruncate(2, 0) } != 0 {
                return Err(format!(
                    "truncating {}: {}",
                    r.path.display(),
                    std::io::Error::last_os_error()
                ));
            }
            return Ok(());
        }
        if ours {
            for n in (1..r.keep).rev() {
                let from = numbered(&r.path, n);
                if from.exists() {
                    std::fs::rename(&from, numbered(&r.path, n + 1))
                        .map_err(|e| format!("renaming {}: {e}", from.display()))?;
                }
            }
            std::fs::rename(&r.path, numbered(&r.path, 1))
                .map_err(|e| format!("renaming {}: {e}", r.path.display()))?;
        }
        let f = open_like(&r.path, Some(&st))?;
        dup_onto_stderr(f)
    }
}

/// `LOG.n`.
pub fn numbered(path: &Path, n: u64) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// Whether descriptor 2 is the file at `path`.
fn stderr_is(path: &Path) -> bool {
    let Ok(m) = std::fs::metadata(path) else {
        return false;
    };
    // SAFETY: fstat of descriptor 2 into a zeroed struct we own.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    unsafe { libc::fstat(2, &mut st) == 0 && st.st_dev == m.dev() && st.st_ino == m.ino() }
}

/// Open `path` for appending: an existing file as it is; a new one with
/// the mode and owner of `like` (the file it replaces), else 0600.
fn open_like(path: &Path, like: Option<&libc::stat>) -> Result<std::fs::File, String> {
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    if let Some(st) = like {
        let fresh = f.metadata().is_ok_and(|m| m.len() == 0);
        if fresh {
            let mode = st.st_mode & 0o7777;
            let _ = f.set_permissions(std::fs::Permissions::from_mode(mode));
            // SAFETY: fchown of a descriptor we own; fails harmlessly
            // without the privilege (the file is then ours, as before).
            unsafe { libc::fchown(f.as_raw_fd(), st.st_uid, st.st_gid) };
        }
    }
    Ok(f)
}

fn dup_onto_stderr(f: std::fs::File) -> Result<(), String> {
    let fd = f.into_raw_fd();
    // SAFETY: dup2 of a descriptor we own onto 2, then closing ours.
    let r = unsafe { libc::dup2(fd, 2) };
    unsafe { libc::close(fd) };
    if r < 0 {
        return Err(format!(
            "dup2 onto stderr: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_names() {
        assert_eq!(numbered(Path::new("/d/LOG"), 2), PathBuf::from("/d/LOG.2"));
    }
}
