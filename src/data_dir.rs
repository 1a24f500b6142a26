//! The data directory as a thing on the host, and who may read it.
//!
//! The store's files hold every file's contents, names and xattrs in the
//! clear, whatever the permission bits the filesystem shows through the
//! mount, so the directory is the real permission boundary: lsmfs creates
//! it 0700 and every file in it 0600, whatever the umask (the engine's
//! files through `engine::env::posix`, the `--daemon` log here). A data
//! directory that already exists is left as it is — it may have been made
//! by hand, or by an older lsmfs (0755, files 0644) — but one that group
//! or others can read, write or enter gets a one-line warning at mount and
//! from `lsmfs check`, naming the mode and the fix; `mount --strict-perms`
//! refuses it instead.

use crate::engine::env::posix::{create_private_dir, open_private};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Create `dir` owner-only (0700) if it is missing; an existing one is
/// left alone.
pub fn create(dir: &Path) -> Result<(), String> {
    create_private_dir(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))
}

/// Open `path` for appending, creating it 0600 (the `--daemon` log).
pub fn open_append_private(path: &Path) -> Result<File, String> {
    open_private(OpenOptions::new().create(true).append(true), path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))
}

/// If `dir` exists and group or others have any access to it, the
/// one-line description of the problem and its fix.
pub fn access_problem(dir: &Path) -> Option<String> {
    let md = std::fs::metadata(dir).ok()?;
    let mode = md.mode() & 0o7777;
    if !md.is_dir() || mode & 0o077 == 0 {
        return None;
    }
    Some(format!(
        "data directory {} is mode {mode:04o}: other users can read the store's files, \
         and with them every file's contents whatever its mode (fix: chmod 700 {})",
        dir.display(),
        dir.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn created_private_whatever_the_umask_and_warned_when_open() {
        let tmp = tempfile::tempdir().unwrap();
        // SAFETY: umask only changes this process's creation mask; the
        // test restores it (other tests' files are created 0600 anyway).
        let old = unsafe { libc::umask(0) };
        let dir = tmp.path().join("a/b/data");
        let created = create(&dir);
        let log = open_append_private(&dir.join("LOG"));
        unsafe { libc::umask(old) };
        created.unwrap();
        log.unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&tmp.path().join("a")), 0o700);
        assert_eq!(mode(&dir.join("LOG")), 0o600);
        assert_eq!(access_problem(&dir), None);
        // An existing directory is left as it is, and named in the warning.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        create(&dir).unwrap();
        assert_eq!(mode(&dir), 0o755);
        let w = access_problem(&dir).unwrap();
        assert!(w.contains("mode 0755") && w.contains("chmod 700"), "{w}");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o710)).unwrap();
        assert!(access_problem(&dir).unwrap().contains("0710"));
        assert_eq!(access_problem(&tmp.path().join("missing")), None);
        // A log kept from an older version is tightened.
        std::fs::set_permissions(dir.join("LOG"), std::fs::Permissions::from_mode(0o644)).unwrap();
        open_append_private(&dir.join("LOG")).unwrap();
        assert_eq!(mode(&dir.join("LOG")), 0o600);
    }
}
