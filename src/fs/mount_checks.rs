//! What `lsmfs mount` refuses, decided before anything is created.
//!
//! A failed mount must leave the disk as it found it, so every check here
//! only looks (stat, statfs, readdir, canonicalize); DATA_DIR is created
//! and formatted only after all of them pass, in the foreground and the
//! `--daemon` path alike. What is refused, and why:
//!
//! - **A mount point that does not exist or is not a directory**: the
//!   mount would fail after the store was formatted.
//! - **A mount point that is itself an lsmfs data directory** (it holds
//!   `CURRENT` or a `MANIFEST-*`): almost always DATA_DIR and MOUNTPOINT
//!   swapped; mounting would hide the real store under a new, empty one.
//! - **A non-empty mount point** unless `-o nonempty`: the mount hides what
//!   is there (`--help` says "Empty directory to mount on").
//! - **A live lsmfs mount at the mount point**: stacking would hide it.
//!   (A *stale* one, a killed daemon's, passes: it is detached once the
//!   store's lock is ours.)
//! - **DATA_DIR inside MOUNTPOINT, or MOUNTPOINT inside DATA_DIR** (after
//!   resolving symlinks; the same directory counts as both): the engine
//!   opens its files by path under DATA_DIR, so once mounted those lookups
//!   would go through the daemon's own mount, and a FUSE thread waiting
//!   for itself deadlocks the mount (D state, unkillable). With nesting
//!   refused, no path the daemon resolves after mounting crosses its own
//!   mount: the engine's paths are the canonical DATA_DIR resolved here,
//!   before the mount, and free space is read through a descriptor of it
//!   opened before the mount too (`space`).
//! - **A DATA_DIR that exists but is not a directory**.
//! - **For `-o ro`, a DATA_DIR that is not a data directory**: a read-only
//!   mount creates and writes nothing.

use std::path::{Path, PathBuf};

/// The two paths, resolved (symlinks and `..` gone).
#[derive(Debug)]
pub struct Resolved {
    /// DATA_DIR, canonical; it may not exist yet (then its nearest existing
    /// ancestor is canonical and the rest appended).
    pub data_dir: PathBuf,
    pub mountpoint: PathBuf,
}

/// Whether `dir` holds an lsmfs store (CURRENT or a MANIFEST).
pub fn is_data_dir(dir: &Path) -> bool {
    if dir.join("CURRENT").exists() {
        return true;
    }
    std::fs::read_dir(dir).is_ok_and(|mut it| {
        it.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("MANIFEST-")))
    })
}

/// `p` canonical as far as it exists, the missing rest appended.
pub(crate) fn resolve(p: &Path) -> Result<PathBuf, String> {
    let abs = std::path::absolute(p).map_err(|e| format!("{}: {e}", p.display()))?;
    let mut existing = abs.as_path();
    let mut rest = Vec::new();
    loop {
        match existing.canonicalize() {
            Ok(c) => {
                let mut out = c;
                out.extend(rest.iter().rev());
                return Ok(out);
            }
            Err(_) => match (existing.parent(), existing.file_name()) {
                (Some(parent), Some(name)) => {
                    rest.push(name.to_os_string());
                    existing = parent;
                }
                _ => return Ok(abs),
            },
        }
    }
}

/// Check DATA_DIR and MOUNTPOINT; nothing is created or changed.
pub fn check(
    data_dir: &Path,
    mountpoint: &Path,
    nonempty: bool,
    read_only: bool,
) -> Result<Resolved, String> {
    let mnt = check_mountpoint(mountpoint, nonempty)?;
    let data = check_data_dir(data_dir, read_only)?;
    let nested = |inner: &Path, outer: &Path| inner.starts_with(outer);
    if data == mnt {
        return Err(format!(
            "the data directory and the mount point are the same directory ({}): \
             the daemon would reach its own files through its own mount",
            data.display()
        ));
    }
    if nested(&data, &mnt) {
        return Err(format!(
            "data directory {} is inside mount point {}: the daemon would reach its own \
             files through its own mount and deadlock; keep DATA_DIR outside MOUNTPOINT",
            data.display(),
            mnt.display()
        ));
    }
    if nested(&mnt, &data) {
        return Err(format!(
            "mount point {} is inside data directory {}: the mount would hide and \
             deadlock on the store's own directory; keep MOUNTPOINT outside DATA_DIR",
            mnt.display(),
            data.display()
        ));
    }
    Ok(Resolved {
        data_dir: data,
        mountpoint: mnt,
    })
}

/// Whether an errno from a mount point says its daemon is gone (ENOTCONN;
/// ECONNABORTED while it is still dying, ECANCELED while an io_uring
/// daemon's queues are cancelled).
pub fn is_dead(e: Option<i32>) -> bool {
    matches!(
        e,
        Some(libc::ENOTCONN | libc::ECONNABORTED | libc::ECANCELED)
    )
}

pub fn check_mountpoint(mountpoint: &Path, nonempty: bool) -> Result<PathBuf, String> {
    let shown = mountpoint.display();
    // A dead daemon's mount: detached once we hold the store's lock.
    if is_dead(super::mount::statfs_errno(mountpoint)) {
        return resolve(mountpoint);
    }
    match std::fs::metadata(mountpoint) {
        Err(e) if is_dead(e.raw_os_error()) => return resolve(mountpoint),
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(format!("mount point {shown} is not a directory")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("mount point {shown} does not exist"))
        }
        Err(e) => return Err(format!("mount point {shown}: {e}")),
    }
    // A daemon killed a moment ago can still answer the checks above and
    // then abort the next request (ECONNABORTED): dead by then, as above.
    let mnt = match mountpoint.canonicalize() {
        Err(e) if is_dead(e.raw_os_error()) => return resolve(mountpoint),
        r => r.map_err(|e| format!("mount point {shown}: {e}"))?,
    };
    if super::mount::is_live_lsmfs_mount(&mnt) {
        return Err(format!(
            "{} is already a live lsmfs mount (umount it first)",
            mnt.display()
        ));
    }
    if is_data_dir(&mnt) {
        return Err(format!(
            "mount point {shown} is an lsmfs data directory: mounting over it would hide \
             that store (DATA_DIR and MOUNTPOINT swapped?)"
        ));
    }
    if !nonempty {
        match std::fs::read_dir(&mnt).and_then(|mut d| d.next().transpose()) {
            Err(e) if is_dead(e.raw_os_error()) => return resolve(mountpoint),
            Err(e) => return Err(format!("mount point {shown}: {e}")),
            Ok(Some(_)) => {
                return Err(format!(
                    "mount point {shown} is not empty: the mount would hide what is there \
                     (-o nonempty mounts anyway)"
                ))
            }
            Ok(None) => {}
        }
    }
    Ok(mnt)
}

fn check_data_dir(data_dir: &Path, read_only: bool) -> Result<PathBuf, String> {
    let shown = data_dir.display();
    if super::mount::statfs_errno(data_dir) == Some(libc::ENOTCONN) {
        return Err(format!(
            "data directory {shown} is a stale FUSE mount (its daemon is gone): \
             `umount -l {shown}` clears it"
        ));
    }
    match std::fs::metadata(data_dir) {
        Ok(m) if m.is_dir() => {
            if read_only && !data_dir.join("CURRENT").exists() {
                return Err(format!(
                    "{shown} is not an lsmfs data directory (no CURRENT file); \
                     a read-only mount creates nothing"
                ));
            }
        }
        Ok(_) => return Err(format!("data directory {shown} is not a directory")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if read_only {
                return Err(format!(
                    "data directory {shown} does not exist (a read-only mount creates nothing)"
                ));
            }
        }
        Err(e) => return Err(format!("data directory {shown}: {e}")),
    }
    resolve(data_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_leave_nothing_behind() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        let data = t.join("data");
        let mnt = t.join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        // Nesting, either way, also through a symlink.
        let e = check(&mnt.join("data"), &mnt, false, false).unwrap_err();
        assert!(e.contains("inside mount point"), "{e}");
        std::os::unix::fs::symlink(&mnt, t.join("link")).unwrap();
        let e = check(&t.join("link/d"), &mnt, false, false).unwrap_err();
        assert!(e.contains("inside mount point"), "{e}");
        std::fs::create_dir(&data).unwrap();
        std::fs::create_dir(data.join("m")).unwrap();
        let e = check(&data, &data.join("m"), false, false).unwrap_err();
        assert!(e.contains("inside data directory"), "{e}");
        std::fs::remove_dir(data.join("m")).unwrap();
        // Missing or non-directory mount points.
        let e = check(&data, &t.join("nope"), false, false).unwrap_err();
        assert!(e.contains("does not exist"), "{e}");
        std::fs::write(t.join("file"), b"x").unwrap();
        let e = check(&data, &t.join("file"), false, false).unwrap_err();
        assert!(e.contains("not a directory"), "{e}");
        let e = check(&t.join("file"), &mnt, false, false).unwrap_err();
        assert_eq!(
            e,
            format!(
                "data directory {} is not a directory",
                t.join("file").display()
            )
        );
        // A data directory as mount point; a non-empty one.
        std::fs::write(data.join("CURRENT"), b"MANIFEST-000001\n").unwrap();
        let e = check(&mnt, &data, false, false).unwrap_err();
        assert!(e.contains("swapped"), "{e}");
        std::fs::write(mnt.join("x"), b"x").unwrap();
        let e = check(&data, &mnt, false, false).unwrap_err();
        assert!(e.contains("not empty"), "{e}");
        let r = check(&data, &mnt, true, false).unwrap();
        assert_eq!(r.mountpoint, mnt.canonicalize().unwrap());
        // Read-only: the data directory must already be one.
        std::fs::remove_file(mnt.join("x")).unwrap();
        let e = check(&t.join("new"), &mnt, false, true).unwrap_err();
        assert!(e.contains("creates nothing"), "{e}");
        assert!(check(&t.join("new/deeper"), &mnt, false, false).is_ok());
        assert!(!t.join("new").exists());
    }
}
