//! Extended attributes: one key `X ino name` per attribute.
//!
//! The inode record's `has_xattrs` flag is set by the first setxattr, so
//! removing an inode that never had any skips the range scan. Names are up
//! to 255 bytes and values up to 64 KiB, as on Linux. The kernel checks
//! who may touch which namespace (trusted.* needs CAP_SYS_ADMIN) but passes
//! every name through. There are no POSIX ACLs: `system.*` names (ACLs
//! among them) and names outside the user/trusted/security namespaces are
//! refused with EOPNOTSUPP, as ext4 mounted `noacl` does — so `cp -a` falls
//! back to chmod, where storing `system.posix_acl_access` as an opaque
//! value would silently lose the mode it carries.

use super::core::{io_errno, now_ns, Caller, FsCore, FsResult};
use super::inode::{KIND_DIR, KIND_FILE};
use super::schema::*;
use crate::store::Batch;

const XATTR_NAME_MAX: usize = 255;
const XATTR_SIZE_MAX: usize = 64 * 1024;

/// ERANGE for an empty or too long name, EOPNOTSUPP outside the supported
/// namespaces.
fn check_name(name: &[u8]) -> FsResult<()> {
    if name.is_empty() || name.len() > XATTR_NAME_MAX {
        return Err(libc::ERANGE);
    }
    let supported = [&b"user."[..], b"trusted.", b"security."]
        .iter()
        .any(|p| name.starts_with(p) && name.len() > p.len());
    if !supported {
        return Err(libc::EOPNOTSUPP);
    }
    Ok(())
}

impl FsCore {
    /// setxattr(2) with `flags` XATTR_CREATE / XATTR_REPLACE (or 0).
    pub fn setxattr(
        &self,
        _c: Caller,
        ino: u64,
        name: &[u8],
        value: &[u8],
        flags: i32,
    ) -> FsResult<()> {
        check_name(name)?;
        if value.len() > XATTR_SIZE_MAX {
            return Err(libc::E2BIG);
        }
        self.room_for((name.len() + value.len()) as u64)?;
        if flags & !(libc::XATTR_CREATE | libc::XATTR_REPLACE) != 0 {
            return Err(libc::EINVAL);
        }
        self.writable()?;
        let _g = self.lock_inodes(&[ino]);
        let mut a = self.getattr(ino)?;
        // user.* only on files and directories (elsewhere the permission
        // bits do not mean what they say), as Linux.
        if name.starts_with(b"user.") && a.kind != KIND_FILE && a.kind != KIND_DIR {
            return Err(libc::EPERM);
        }
        let exists = self
            .store
            .get(&xattr_key(ino, name))
            .map_err(io_errno)?
            .is_some();
        if flags & libc::XATTR_CREATE != 0 && exists {
            return Err(libc::EEXIST);
        }
        if flags & libc::XATTR_REPLACE != 0 && !exists {
            return Err(libc::ENODATA);
        }
        let mut b = Batch::new();
        b.put(xattr_key(ino, name), value.to_vec());
        a.has_xattrs = true;
        a.ctime = now_ns();
        Self::put_attr(&mut b, &a);
        self.commit(b)
    }

    pub fn getxattr(&self, ino: u64, name: &[u8]) -> FsResult<Vec<u8>> {
        check_name(name)?;
        let a = self.getattr(ino)?;
        if !a.has_xattrs {
            return Err(libc::ENODATA);
        }
        self.store
            .get(&xattr_key(ino, name))
            .map_err(io_errno)?
            .ok_or(libc::ENODATA)
    }

    /// Names, each followed by a NUL, as listxattr(2) returns them.
    pub fn listxattr(&self, ino: u64) -> FsResult<Vec<u8>> {
        let a = self.getattr(ino)?;
        let mut out = Vec::new();
        if !a.has_xattrs {
            return Ok(out);
        }
        let mut start = xattr_key(ino, b"");
        let end = prefix_end(&start);
        const PAGE: usize = 1024;
        loop {
            let page = self.store.scan(&start, &end, PAGE).map_err(io_errno)?;
            for (k, _) in &page {
                if let Some(Key::Xattr(_, n)) = parse_key(k) {
                    out.extend_from_slice(n);
                    out.push(0);
                }
            }
            match page.last() {
                Some((k, _)) if page.len() == PAGE => {
                    start = k.clone();
                    start.push(0);
                }
                _ => return Ok(out),
            }
        }
    }

    pub fn removexattr(&self, ino: u64, name: &[u8]) -> FsResult<()> {
        check_name(name)?;
        self.writable()?;
        let _g = self.lock_inodes(&[ino]);
        let mut a = self.getattr(ino)?;
        let key = xattr_key(ino, name);
        if !a.has_xattrs || self.store.get(&key).map_err(io_errno)?.is_none() {
            return Err(libc::ENODATA);
        }
        let mut b = Batch::new();
        b.delete(key);
        a.ctime = now_ns();
        Self::put_attr(&mut b, &a);
        self.commit(b)
    }

    /// Every xattr key of `ino`, deleted into `b`.
    pub(super) fn delete_xattr_keys(&self, ino: u64, b: &mut Batch) -> FsResult<()> {
        let start = xattr_key(ino, b"");
        let all = self
            .store
            .scan(&start, &prefix_end(&start), usize::MAX)
            .map_err(io_errno)?;
        for (k, _) in all {
            b.delete(k);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::core::testutil::*;
    use super::*;

    #[test]
    fn create_replace_get_list_remove() {
        let (store, f) = fs();
        let a = f.create(U, ROOT_INO, b"a", 0o644).unwrap();
        assert_eq!(f.listxattr(a.ino).unwrap(), b"");
        assert_eq!(f.getxattr(a.ino, b"user.k").unwrap_err(), libc::ENODATA);
        f.setxattr(U, a.ino, b"user.k", b"v", 0).unwrap();
        assert_eq!(
            f.setxattr(U, a.ino, b"user.k", b"v2", libc::XATTR_CREATE)
                .unwrap_err(),
            libc::EEXIST
        );
        assert_eq!(
            f.setxattr(U, a.ino, b"user.n", b"v", libc::XATTR_REPLACE)
                .unwrap_err(),
            libc::ENODATA
        );
        f.setxattr(U, a.ino, b"user.k", b"v2", libc::XATTR_REPLACE)
            .unwrap();
        f.setxattr(U, a.ino, b"user.n", b"", libc::XATTR_CREATE)
            .unwrap();
        assert_eq!(f.getxattr(a.ino, b"user.k").unwrap(), b"v2");
        assert_eq!(
            f.getxattr(a.ino, b"user.n").unwrap(),
            b"",
            "empty values exist"
        );
        assert_eq!(f.listxattr(a.ino).unwrap(), b"user.k\0user.n\0");
        f.removexattr(a.ino, b"user.k").unwrap();
        assert_eq!(f.getxattr(a.ino, b"user.k").unwrap_err(), libc::ENODATA);
        assert_eq!(f.removexattr(a.ino, b"user.k").unwrap_err(), libc::ENODATA);
        assert_eq!(f.listxattr(a.ino).unwrap(), b"user.n\0");
        // Limits.
        assert_eq!(
            f.setxattr(U, a.ino, &[b'u'; 256], b"", 0).unwrap_err(),
            libc::ERANGE
        );
        assert_eq!(
            f.setxattr(U, a.ino, b"user.big", &vec![0; XATTR_SIZE_MAX + 1], 0)
                .unwrap_err(),
            libc::E2BIG
        );
        f.setxattr(U, a.ino, b"user.big", &vec![1; XATTR_SIZE_MAX], 0)
            .unwrap();
        // No ACLs, no unknown namespaces.
        for name in [
            &b"system.posix_acl_access"[..],
            b"system.x",
            b"foo",
            b"user.",
        ] {
            assert_eq!(
                f.setxattr(U, a.ino, name, b"v", 0).unwrap_err(),
                libc::EOPNOTSUPP
            );
            assert_eq!(f.getxattr(a.ino, name).unwrap_err(), libc::EOPNOTSUPP);
        }
        f.setxattr(Caller::ROOT, a.ino, b"trusted.t", b"1", 0)
            .unwrap();
        f.setxattr(Caller::ROOT, a.ino, b"security.capability", b"1", 0)
            .unwrap();
        // Not on symlinks (write permission is the kernel's check).
        let l = f.symlink(U, ROOT_INO, b"l", b"a").unwrap();
        assert_eq!(
            f.setxattr(U, l.ino, b"user.k", b"v", 0).unwrap_err(),
            libc::EPERM
        );
        // Gone with the inode.
        f.unlink(U, ROOT_INO, b"a").unwrap();
        assert_eq!(keys_with_prefix(&store, b"X"), 0);
        assert_eq!(f.getxattr(a.ino, b"user.n").unwrap_err(), libc::ENOENT);
    }
}
