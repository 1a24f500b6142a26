//! Extended attributes: one key `X ino name` per attribute.
//!
//! The inode record's `has_xattrs` flag is set by the first setxattr, so
//! removing an inode that never had any skips the range scan. Names are up
//! to 255 bytes and values up to 64 KiB, as on Linux.
//!
//! Namespaces: `user.*` for anyone the file's mode lets write (on files and
//! directories only); `trusted.*` is CAP_SYS_ADMIN's and `security.*` is
//! written by the privileged only. The kernel checks both before a request
//! reaches the daemon, but for FUSE it does not filter listxattr, so
//! trusted names are hidden here from callers other than root (a request
//! carries a uid, not capabilities: uid 0 stands for them), and writes to
//! either namespace by others are refused here too. POSIX ACLs
//! (`system.posix_acl_access` / `_default`, see `acl`) when the kernel
//! enforces them (FUSE_POSIX_ACL); other `system.*` names, and all of them
//! on a kernel without it, are EOPNOTSUPP, as on ext4 mounted `noacl` — so
//! `cp -a` falls back to chmod rather than store an ACL nobody enforces.

use super::acl::{self, Acl};
use super::core::{io_errno, now_ns, Caller, FsCore, FsResult};
use super::inode::{Attr, KIND_DIR, KIND_FILE, KIND_SYMLINK};
use super::schema::*;
use crate::store::Batch;

const XATTR_NAME_MAX: usize = 255;
const XATTR_SIZE_MAX: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ns {
    User,
    /// trusted.* and security.*: the privileged's.
    Privileged,
    Acl,
}

fn is_trusted(name: &[u8]) -> bool {
    name.starts_with(b"trusted.")
}

impl FsCore {
    /// The namespace of `name`: ERANGE for an empty or too long name,
    /// EOPNOTSUPP outside the supported namespaces.
    fn check_name(&self, name: &[u8]) -> FsResult<Ns> {
        if name.is_empty() || name.len() > XATTR_NAME_MAX {
            return Err(libc::ERANGE);
        }
        let has = |p: &[u8]| name.starts_with(p) && name.len() > p.len();
        if has(b"user.") {
            Ok(Ns::User)
        } else if has(b"trusted.") || has(b"security.") {
            Ok(Ns::Privileged)
        } else if self.acls() && (name == acl::ACCESS || name == acl::DEFAULT) {
            Ok(Ns::Acl)
        } else {
            Err(libc::EOPNOTSUPP)
        }
    }

    /// An ACL xattr written: the ACL validated, the mode's permission bits
    /// following an access ACL, and one that says no more than the mode
    /// not stored (see `acl`).
    fn set_acl(
        &self,
        c: Caller,
        a: &mut Attr,
        name: &[u8],
        value: &[u8],
        b: &mut Batch,
    ) -> FsResult<()> {
        if c.uid != 0 && c.uid != a.uid {
            return Err(libc::EPERM);
        }
        let parsed = Acl::decode(value)?;
        let key = xattr_key(a.ino, name);
        if name == acl::DEFAULT {
            if a.kind != KIND_DIR {
                return Err(libc::EACCES);
            }
            b.put(key, parsed.encode());
            return Ok(());
        }
        a.mode = parsed.apply_to_mode(a.mode);
        if parsed.is_minimal() {
            b.delete(key);
        } else {
            b.put(key, parsed.encode());
        }
        Ok(())
    }

    /// The stored ACL `name` of `a`, if any.
    fn stored_acl(&self, a: &Attr, name: &[u8]) -> FsResult<Option<Acl>> {
        if !a.has_xattrs || !self.acls() {
            return Ok(None);
        }
        let Some(v) = self.store.get(&xattr_key(a.ino, name)).map_err(io_errno)? else {
            return Ok(None);
        };
        Acl::decode(&v).map(Some).map_err(|_| {
            log::warn!(
                "inode {}: stored {} does not decode",
                a.ino,
                String::from_utf8_lossy(name)
            );
            libc::EIO
        })
    }

    /// chmod of `a` (its new mode already set): a stored access ACL
    /// follows, in the same batch.
    pub(super) fn chmod_acl(&self, a: &Attr, b: &mut Batch) -> FsResult<()> {
        if let Some(mut acl) = self.stored_acl(a, acl::ACCESS)? {
            acl.chmod(a.mode);
            b.put(xattr_key(a.ino, acl::ACCESS), acl.encode());
        }
        Ok(())
    }

    /// A new inode `a` in directory `p`: with a default ACL there, `a`
    /// inherits it (as its access ACL, masked by the mode asked for, and
    /// for a directory as its default ACL too) and the umask is not
    /// applied; without one, the umask is.
    pub(super) fn inherit_acls(
        &self,
        p: &Attr,
        a: &mut Attr,
        umask: u32,
        b: &mut Batch,
    ) -> FsResult<()> {
        let default = match a.kind {
            KIND_SYMLINK => None,
            _ => self.stored_acl(p, acl::DEFAULT)?,
        };
        let Some(default) = default else {
            a.mode &= !(umask & 0o777);
            return Ok(());
        };
        let (access, mode) = default.inherit(a.mode);
        a.mode = mode;
        if !access.is_minimal() {
            b.put(xattr_key(a.ino, acl::ACCESS), access.encode());
            a.has_xattrs = true;
        }
        if a.kind == KIND_DIR {
            b.put(xattr_key(a.ino, acl::DEFAULT), default.encode());
            a.has_xattrs = true;
        }
        Ok(())
    }

    /// setxattr(2) with `flags` XATTR_CREATE / XATTR_REPLACE (or 0).
    pub fn setxattr(
        &self,
        c: Caller,
        ino: u64,
        name: &[u8],
        value: &[u8],
        flags: i32,
    ) -> FsResult<()> {
        let ns = self.check_name(name)?;
        if ns == Ns::Privileged && c.uid != 0 {
            return Err(libc::EPERM);
        }
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
        if ns == Ns::User && a.kind != KIND_FILE && a.kind != KIND_DIR {
            return Err(libc::EPERM);
        }
        if ns == Ns::Acl {
            let mut b = Batch::new();
            self.set_acl(c, &mut a, name, value, &mut b)?;
            a.has_xattrs = true;
            a.ctime = now_ns();
            Self::put_attr(&mut b, &a);
            return self.commit(b);
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

    pub fn getxattr(&self, c: Caller, ino: u64, name: &[u8]) -> FsResult<Vec<u8>> {
        self.check_name(name)?;
        if is_trusted(name) && c.uid != 0 {
            return Err(libc::ENODATA);
        }
        let a = self.getattr(ino)?;
        if !a.has_xattrs {
            return Err(libc::ENODATA);
        }
        self.store
            .get(&xattr_key(ino, name))
            .map_err(io_errno)?
            .ok_or(libc::ENODATA)
    }

    /// Names, each followed by a NUL, as listxattr(2) returns them
    /// (trusted.* only to root).
    pub fn listxattr(&self, c: Caller, ino: u64) -> FsResult<Vec<u8>> {
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
                    if is_trusted(n) && c.uid != 0 {
                        continue;
                    }
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

    pub fn removexattr(&self, c: Caller, ino: u64, name: &[u8]) -> FsResult<()> {
        let ns = self.check_name(name)?;
        if ns == Ns::Privileged && c.uid != 0 {
            return Err(libc::EPERM);
        }
        self.writable()?;
        let _g = self.lock_inodes(&[ino]);
        let mut a = self.getattr(ino)?;
        if ns == Ns::Acl && c.uid != 0 && c.uid != a.uid {
            return Err(libc::EPERM);
        }
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
    use super::super::core::SetAttr;
    use super::*;

    #[test]
    fn create_replace_get_list_remove() {
        let (store, f) = fs();
        let a = f.create(U, ROOT_INO, b"a", 0o644).unwrap();
        assert_eq!(f.listxattr(U, a.ino).unwrap(), b"");
        assert_eq!(f.getxattr(U, a.ino, b"user.k").unwrap_err(), libc::ENODATA);
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
        assert_eq!(f.getxattr(U, a.ino, b"user.k").unwrap(), b"v2");
        assert_eq!(
            f.getxattr(U, a.ino, b"user.n").unwrap(),
            b"",
            "empty values exist"
        );
        assert_eq!(f.listxattr(U, a.ino).unwrap(), b"user.k\0user.n\0");
        f.removexattr(U, a.ino, b"user.k").unwrap();
        assert_eq!(f.getxattr(U, a.ino, b"user.k").unwrap_err(), libc::ENODATA);
        assert_eq!(
            f.removexattr(U, a.ino, b"user.k").unwrap_err(),
            libc::ENODATA
        );
        assert_eq!(f.listxattr(U, a.ino).unwrap(), b"user.n\0");
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
            assert_eq!(f.getxattr(U, a.ino, name).unwrap_err(), libc::EOPNOTSUPP);
        }
        f.setxattr(Caller::ROOT, a.ino, b"trusted.t", b"1", 0)
            .unwrap();
        f.setxattr(Caller::ROOT, a.ino, b"security.capability", b"1", 0)
            .unwrap();
        // The privileged namespaces are root's: others cannot write them,
        // nor see trusted names (security.* stays readable, as on Linux).
        for name in [&b"trusted.u"[..], b"security.selinux"] {
            assert_eq!(
                f.setxattr(U, a.ino, name, b"1", 0).unwrap_err(),
                libc::EPERM
            );
        }
        assert_eq!(
            f.removexattr(U, a.ino, b"trusted.t").unwrap_err(),
            libc::EPERM
        );
        assert_eq!(
            f.getxattr(U, a.ino, b"trusted.t").unwrap_err(),
            libc::ENODATA
        );
        assert_eq!(f.getxattr(Caller::ROOT, a.ino, b"trusted.t").unwrap(), b"1");
        assert_eq!(f.getxattr(U, a.ino, b"security.capability").unwrap(), b"1");
        assert_eq!(
            f.listxattr(U, a.ino).unwrap(),
            b"security.capability\0user.big\0user.n\0"
        );
        assert_eq!(
            f.listxattr(Caller::ROOT, a.ino).unwrap(),
            b"security.capability\0trusted.t\0user.big\0user.n\0"
        );
        // Not on symlinks (write permission is the kernel's check).
        let l = f.symlink(U, ROOT_INO, b"l", b"a").unwrap();
        assert_eq!(
            f.setxattr(U, l.ino, b"user.k", b"v", 0).unwrap_err(),
            libc::EPERM
        );
        // Gone with the inode.
        f.unlink(U, ROOT_INO, b"a").unwrap();
        assert_eq!(keys_with_prefix(&store, b"X"), 0);
        assert_eq!(f.getxattr(U, a.ino, b"user.n").unwrap_err(), libc::ENOENT);
    }

    fn acl_value(entries: &[(u16, u16, u32)]) -> Vec<u8> {
        let mut v = 2u32.to_le_bytes().to_vec();
        for &(tag, perm, id) in entries {
            v.extend_from_slice(&tag.to_le_bytes());
            v.extend_from_slice(&perm.to_le_bytes());
            v.extend_from_slice(&id.to_le_bytes());
        }
        v
    }

    const X: u32 = u32::MAX;

    #[test]
    fn acls_set_the_mode_follow_chmod_and_are_inherited() {
        let (store, f) = fs();
        let a = f.create(U, ROOT_INO, b"a", 0o640).unwrap();
        let shared = acl_value(&[
            (1, 6, X),
            (2, 4, 4242),
            (4, 0, X),
            (0x10, 4, X),
            (0x20, 0, X),
        ]);
        // Off until the kernel enforces them.
        assert_eq!(
            f.setxattr(U, a.ino, acl::ACCESS, &shared, 0).unwrap_err(),
            libc::EOPNOTSUPP
        );
        f.set_acls(true);
        assert_eq!(
            f.setxattr(U, a.ino, b"system.other", b"", 0).unwrap_err(),
            libc::EOPNOTSUPP
        );
        assert_eq!(
            f.setxattr(U, a.ino, acl::ACCESS, b"junk", 0).unwrap_err(),
            libc::EINVAL
        );
        let stranger = Caller {
            uid: 4242,
            gid: 4242,
        };
        assert_eq!(
            f.setxattr(stranger, a.ino, acl::ACCESS, &shared, 0)
                .unwrap_err(),
            libc::EPERM
        );
        f.setxattr(U, a.ino, acl::ACCESS, &shared, 0).unwrap();
        // The group bits show the mask.
        assert_eq!(f.getattr(a.ino).unwrap().mode & 0o777, 0o640);
        assert_eq!(f.getxattr(U, a.ino, acl::ACCESS).unwrap(), shared);
        // chmod rewrites owner, mask and other; the named user stays.
        f.setattr(
            U,
            a.ino,
            SetAttr {
                mode: Some(0o604),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            f.getxattr(U, a.ino, acl::ACCESS).unwrap(),
            acl_value(&[
                (1, 6, X),
                (2, 4, 4242),
                (4, 0, X),
                (0x10, 0, X),
                (0x20, 4, X)
            ])
        );
        // A minimal ACL is the mode: not stored.
        f.setxattr(
            U,
            a.ino,
            acl::ACCESS,
            &acl_value(&[(1, 7, X), (4, 5, X), (0x20, 1, X)]),
            0,
        )
        .unwrap();
        assert_eq!(f.getattr(a.ino).unwrap().mode & 0o777, 0o751);
        assert_eq!(
            f.getxattr(U, a.ino, acl::ACCESS).unwrap_err(),
            libc::ENODATA
        );
        // Default ACLs: directories only; inherited by new inodes, masked
        // by the mode asked for, with no umask.
        assert_eq!(
            f.setxattr(U, a.ino, acl::DEFAULT, &shared, 0).unwrap_err(),
            libc::EACCES
        );
        let d = f.mkdir(U, ROOT_INO, b"d", 0o755).unwrap();
        let default = acl_value(&[
            (1, 7, X),
            (2, 6, 4242),
            (4, 5, X),
            (0x10, 7, X),
            (0x20, 0, X),
        ]);
        f.setxattr(U, d.ino, acl::DEFAULT, &default, 0).unwrap();
        let file = f
            .mknod_umask(U, d.ino, b"f", libc::S_IFREG | 0o666, 0o077, 0, None)
            .unwrap();
        assert_eq!(file.mode & 0o777, 0o660);
        assert_eq!(
            f.getxattr(U, file.ino, acl::ACCESS).unwrap(),
            acl_value(&[
                (1, 6, X),
                (2, 6, 4242),
                (4, 5, X),
                (0x10, 6, X),
                (0x20, 0, X)
            ])
        );
        assert_eq!(
            f.getxattr(U, file.ino, acl::DEFAULT).unwrap_err(),
            libc::ENODATA
        );
        let sub = f
            .mknod_umask(U, d.ino, b"s", libc::S_IFDIR | 0o777, 0o022, 0, None)
            .unwrap();
        assert_eq!(sub.mode & 0o777, 0o770);
        assert_eq!(f.getxattr(U, sub.ino, acl::DEFAULT).unwrap(), default);
        // Symlinks inherit nothing; without a default ACL the umask applies.
        let l = f.symlink(U, d.ino, b"l", b"f").unwrap();
        assert_eq!(f.listxattr(U, l.ino).unwrap(), b"");
        let plain = f
            .mknod_umask(U, ROOT_INO, b"p", libc::S_IFREG | 0o666, 0o027, 0, None)
            .unwrap();
        assert_eq!(plain.mode & 0o777, 0o640);
        // Removing an access ACL keeps the mode.
        f.removexattr(U, file.ino, acl::ACCESS).unwrap();
        assert_eq!(f.getattr(file.ino).unwrap().mode & 0o777, 0o660);
        assert!(keys_with_prefix(&store, b"X") > 0);
    }
}
