//! Directory entries: lookup, create (every file type), link, unlink,
//! rmdir, rename, readdir, readlink.
//!
//! Timestamps follow ext4: a changed directory gets mtime and ctime, an
//! inode that gains or loses a name gets ctime. A directory's nlink is 2
//! plus its subdirectories. The hidden `.lsmfs-stats` and `.snapshots`
//! names at the root are reserved: they cannot be created, linked, renamed
//! or removed.

use super::core::{Caller, FsCore, FsResult, NAME_MAX, NEW_ENTRY_BYTES};
use super::inode::{kind_from_mode, Attr, KIND_DIR, KIND_FILE, KIND_SYMLINK};
use super::schema::*;
use crate::store::Batch;

/// A directory entry's target: (inode, file type).
type Entry = (u64, u8);

fn check_name(name: &[u8]) -> FsResult<()> {
    if name.len() > NAME_MAX {
        return Err(libc::ENAMETOOLONG);
    }
    if name.is_empty() || name.contains(&b'/') || name.contains(&0) {
        return Err(libc::EINVAL);
    }
    if name == b"." || name == b".." {
        return Err(libc::EEXIST);
    }
    Ok(())
}

fn reserved(parent: u64, name: &[u8]) -> bool {
    parent == ROOT_INO && (name == STATS_NAME || name == super::snapshots::SNAPSHOTS_NAME)
}

fn put_entry(b: &mut Batch, parent: u64, name: &[u8], ino: u64, kind: u8) {
    let mut v = ino.to_be_bytes().to_vec();
    v.push(kind);
    b.put(dentry_key(parent, name), v);
}

/// Sticky directories: only root, the directory's owner or the entry's
/// owner may remove or replace an entry.
fn sticky_ok(c: Caller, dir: &Attr, victim: &Attr) -> bool {
    dir.mode & libc::S_ISVTX == 0 || c.uid == 0 || c.uid == dir.uid || c.uid == victim.uid
}

/// Moving a directory to another parent moves its `..` link.
fn move_dir(a: &mut Attr, dirs: &mut [Attr], from: usize, to: usize, p: u64) {
    if a.is_dir() && from != to {
        dirs[from].nlink = dirs[from].nlink.saturating_sub(1);
        dirs[to].nlink = dirs[to].nlink.saturating_add(1);
        a.parent = p;
    }
}

fn touch(a: &mut Attr, t: i64) {
    a.mtime = t;
    a.ctime = t;
}

impl FsCore {
    pub(super) fn entry(&self, parent: u64, name: &[u8]) -> FsResult<Option<Entry>> {
        let v = self
            .store
            .get(&dentry_key(parent, name))
            .map_err(super::core::io_errno)?;
        Ok(v.and_then(|v| Some((be64(&v)?, *v.get(8)?))))
    }

    pub fn lookup(&self, parent: u64, name: &[u8]) -> FsResult<Attr> {
        if name.len() > NAME_MAX {
            return Err(libc::ENAMETOOLONG);
        }
        // An entry can only live in a directory, so check the parent only
        // to tell ENOENT from ENOTDIR when there is none (one get saved).
        match self.entry(parent, name)? {
            Some((ino, _)) => self.getattr(ino),
            None => {
                self.dir_attr(parent)?;
                Err(libc::ENOENT)
            }
        }
    }

    /// Create an inode of any type (`mode` holds the type bits) under
    /// `parent`. Symlinks need their target.
    pub fn mknod(
        &self,
        c: Caller,
        parent: u64,
        name: &[u8],
        mode: u32,
        rdev: u32,
        symlink_target: Option<&[u8]>,
    ) -> FsResult<Attr> {
        self.mknod_umask(c, parent, name, mode, 0, rdev, symlink_target)
    }

    /// mknod with the caller's `umask`, applied here: a directory's default
    /// ACL replaces it (see `acl`).
    #[allow(clippy::too_many_arguments)]
    pub fn mknod_umask(
        &self,
        c: Caller,
        parent: u64,
        name: &[u8],
        mode: u32,
        umask: u32,
        rdev: u32,
        symlink_target: Option<&[u8]>,
    ) -> FsResult<Attr> {
        check_name(name)?;
        self.writable()?;
        self.room_for(NEW_ENTRY_BYTES + symlink_target.map_or(0, |t| t.len() as u64))?;
        if reserved(parent, name) {
            return Err(libc::EEXIST);
        }
        let kind = kind_from_mode(mode).ok_or(libc::EINVAL)?;
        if kind == KIND_SYMLINK {
            match symlink_target {
                None | Some([]) => return Err(libc::ENOENT),
                Some(t) if t.len() >= libc::PATH_MAX as usize => return Err(libc::ENAMETOOLONG),
                Some(_) => {}
            }
        }
        let _g = self.lock_inodes(&[parent]);
        let mut p = self.dir_attr(parent)?;
        if p.nlink == 0 {
            return Err(libc::ENOENT);
        }
        if self.entry(parent, name)?.is_some() {
            return Err(libc::EEXIST);
        }
        let ino = self.alloc_ino()?;
        let t = super::core::now_ns();
        let mut b = Batch::new();
        let mut gid = c.gid;
        let mut mode = mode;
        if p.mode & libc::S_ISGID != 0 {
            gid = p.gid;
            if kind == KIND_DIR {
                mode |= libc::S_ISGID;
            }
        }
        let mut a = Attr {
            ino,
            kind,
            mode,
            uid: c.uid,
            gid,
            nlink: 1,
            rdev,
            atime: t,
            mtime: t,
            ctime: t,
            ..Default::default()
        };
        match kind {
            KIND_DIR => {
                // Only a damaged record gets here: no store holds 2^32 dirs.
                if p.nlink == u32::MAX {
                    return Err(libc::EMLINK);
                }
                a.nlink = 2;
                a.parent = parent;
                p.nlink += 1;
            }
            KIND_FILE => a.inline = Some(Vec::new()),
            KIND_SYMLINK => {
                let target = symlink_target.unwrap_or_default();
                a.size = target.len() as u64;
                b.put(symlink_key(ino), target.to_vec());
            }
            _ => {}
        }
        self.inherit_acls(&p, &mut a, umask, &mut b)?;
        touch(&mut p, t);
        Self::put_attr(&mut b, &a);
        Self::put_attr(&mut b, &p);
        put_entry(&mut b, parent, name, ino, kind);
        self.commit(b)?;
        Ok(a)
    }

    pub fn mkdir(&self, c: Caller, parent: u64, name: &[u8], perm: u32) -> FsResult<Attr> {
        self.mknod(c, parent, name, libc::S_IFDIR | (perm & 0o7777), 0, None)
    }

    pub fn create(&self, c: Caller, parent: u64, name: &[u8], perm: u32) -> FsResult<Attr> {
        self.mknod(c, parent, name, libc::S_IFREG | (perm & 0o7777), 0, None)
    }

    pub fn symlink(&self, c: Caller, parent: u64, name: &[u8], target: &[u8]) -> FsResult<Attr> {
        self.mknod(c, parent, name, libc::S_IFLNK | 0o777, 0, Some(target))
    }

    pub fn readlink(&self, ino: u64) -> FsResult<Vec<u8>> {
        let a = self.getattr(ino)?;
        if a.kind != KIND_SYMLINK {
            return Err(libc::EINVAL);
        }
        self.store
            .get(&symlink_key(ino))
            .map_err(super::core::io_errno)?
            .ok_or(libc::EIO)
    }

    pub fn link(&self, ino: u64, newparent: u64, newname: &[u8]) -> FsResult<Attr> {
        check_name(newname)?;
        self.writable()?;
        self.room_for(NEW_ENTRY_BYTES)?;
        if reserved(newparent, newname) {
            return Err(libc::EEXIST);
        }
        let _g = self.lock_inodes(&[ino, newparent]);
        let mut a = self.getattr(ino)?;
        if a.is_dir() {
            return Err(libc::EPERM);
        }
        let mut p = self.dir_attr(newparent)?;
        if p.nlink == 0 || a.nlink == 0 {
            return Err(libc::ENOENT);
        }
        if self.entry(newparent, newname)?.is_some() {
            return Err(libc::EEXIST);
        }
        if a.nlink == u32::MAX {
            return Err(libc::EMLINK);
        }
        let t = super::core::now_ns();
        a.nlink += 1;
        a.ctime = t;
        touch(&mut p, t);
        let mut b = Batch::new();
        Self::put_attr(&mut b, &a);
        Self::put_attr(&mut b, &p);
        put_entry(&mut b, newparent, newname, ino, a.kind);
        self.commit(b)?;
        Ok(a)
    }

    /// Lock `parent` and the inode `name` names in it, re-checking the
    /// entry once locked. Returns the entry and the held locks.
    fn lock_entry(
        &self,
        parent: u64,
        name: &[u8],
    ) -> FsResult<(Entry, super::core::InodeLocks<'_>)> {
        loop {
            let Some(e) = self.entry(parent, name)? else {
                self.dir_attr(parent)?;
                return Err(libc::ENOENT);
            };
            let g = self.lock_inodes(&[parent, e.0]);
            if self.entry(parent, name)? == Some(e) {
                return Ok((e, g));
            }
        }
    }

    pub fn unlink(&self, c: Caller, parent: u64, name: &[u8]) -> FsResult<()> {
        if name.len() > NAME_MAX {
            return Err(libc::ENAMETOOLONG);
        }
        self.writable()?;
        if reserved(parent, name) {
            return Err(libc::EPERM);
        }
        let ((ino, _), g) = self.lock_entry(parent, name)?;
        let mut p = self.dir_attr(parent)?;
        let mut a = self.getattr(ino)?;
        if a.is_dir() {
            return Err(libc::EISDIR);
        }
        if !sticky_ok(c, &p, &a) {
            return Err(libc::EPERM);
        }
        let t = super::core::now_ns();
        let mut b = Batch::new();
        b.delete(dentry_key(parent, name));
        touch(&mut p, t);
        Self::put_attr(&mut b, &p);
        self.drop_link(&mut a, &mut b, t)?;
        self.commit(b)?;
        drop(g);
        Ok(())
    }

    fn dir_is_empty(&self, ino: u64) -> FsResult<bool> {
        let (s, e) = dentry_range(ino);
        Ok(self
            .store
            .scan(&s, &e, 1)
            .map_err(super::core::io_errno)?
            .is_empty())
    }

    pub fn rmdir(&self, c: Caller, parent: u64, name: &[u8]) -> FsResult<()> {
        if name == b"." {
            return Err(libc::EINVAL);
        }
        if name == b".." {
            return Err(libc::ENOTEMPTY);
        }
        if name.len() > NAME_MAX {
            return Err(libc::ENAMETOOLONG);
        }
        self.writable()?;
        if reserved(parent, name) {
            // `.lsmfs-stats` is a file; `.snapshots` the mount's own.
            return Err(if name == STATS_NAME {
                libc::ENOTDIR
            } else {
                libc::EBUSY
            });
        }
        let ((ino, _), g) = self.lock_entry(parent, name)?;
        let mut p = self.dir_attr(parent)?;
        let mut a = self.getattr(ino)?;
        if !a.is_dir() {
            return Err(libc::ENOTDIR);
        }
        if !sticky_ok(c, &p, &a) {
            return Err(libc::EPERM);
        }
        if !self.dir_is_empty(ino)? {
            return Err(libc::ENOTEMPTY);
        }
        let t = super::core::now_ns();
        let mut b = Batch::new();
        b.delete(dentry_key(parent, name));
        p.nlink = p.nlink.saturating_sub(1);
        touch(&mut p, t);
        Self::put_attr(&mut b, &p);
        self.drop_link(&mut a, &mut b, t)?;
        self.commit(b)?;
        drop(g);
        Ok(())
    }

    /// Whether `dir` is `ancestor` or lies below it (walks `parent` fields;
    /// the caller holds the rename lock, so they do not change meanwhile).
    fn is_within(&self, mut dir: u64, ancestor: u64) -> FsResult<bool> {
        for _ in 0..65536 {
            if dir == ancestor {
                return Ok(true);
            }
            if dir == ROOT_INO {
                return Ok(false);
            }
            dir = self.getattr(dir)?.parent;
        }
        Err(libc::ELOOP)
    }

    /// rename(2) with `flags` RENAME_NOREPLACE or RENAME_EXCHANGE (or 0).
    pub fn rename(
        &self,
        c: Caller,
        parent: u64,
        name: &[u8],
        newparent: u64,
        newname: &[u8],
        flags: u32,
    ) -> FsResult<()> {
        if name.len() > NAME_MAX {
            return Err(libc::ENAMETOOLONG);
        }
        check_name(newname)?;
        let noreplace = flags & libc::RENAME_NOREPLACE != 0;
        let exchange = flags & libc::RENAME_EXCHANGE != 0;
        if flags & !(libc::RENAME_NOREPLACE | libc::RENAME_EXCHANGE) != 0 || (noreplace && exchange)
        {
            return Err(libc::EINVAL);
        }
        if name == b"." || name == b".." {
            return Err(libc::EBUSY);
        }
        self.writable()?;
        if reserved(parent, name) || reserved(newparent, newname) {
            return Err(libc::EPERM);
        }
        loop {
            let Some(src) = self.entry(parent, name)? else {
                self.dir_attr(parent)?;
                return Err(libc::ENOENT);
            };
            let dst = self.entry(newparent, newname)?;
            let moves_dir = parent != newparent
                && (src.1 == KIND_DIR || (exchange && dst.is_some_and(|d| d.1 == KIND_DIR)));
            let _rename =
                moves_dir.then(|| self.rename_lock.lock().unwrap_or_else(|p| p.into_inner()));
            let mut inos = vec![parent, newparent, src.0];
            inos.extend(dst.map(|d| d.0));
            let g = self.lock_inodes(&inos);
            if self.entry(parent, name)? != Some(src) || self.entry(newparent, newname)? != dst {
                continue;
            }
            self.rename_locked(c, parent, name, newparent, newname, src, dst, flags)?;
            drop(g);
            return Ok(());
        }
    }

    /// The rename itself, with every inode it touches locked.
    #[allow(clippy::too_many_arguments)]
    fn rename_locked(
        &self,
        c: Caller,
        parent: u64,
        name: &[u8],
        newparent: u64,
        newname: &[u8],
        (src_ino, src_kind): Entry,
        dst: Option<Entry>,
        flags: u32,
    ) -> FsResult<()> {
        let noreplace = flags & libc::RENAME_NOREPLACE != 0;
        let exchange = flags & libc::RENAME_EXCHANGE != 0;
        let mut src = self.getattr(src_ino)?;
        // The (one or two) parent directories, updated in place.
        let mut dirs: Vec<Attr> = vec![self.dir_attr(parent)?];
        if newparent != parent {
            dirs.push(self.dir_attr(newparent)?);
        }
        let old = 0;
        let new = dirs.len() - 1;
        if dirs[new].nlink == 0 {
            return Err(libc::ENOENT);
        }
        if !sticky_ok(c, &dirs[old], &src) {
            return Err(libc::EPERM);
        }
        if src.is_dir() && parent != newparent && self.is_within(newparent, src_ino)? {
            return Err(libc::EINVAL);
        }
        let t = super::core::now_ns();
        let mut b = Batch::new();
        match dst {
            // Two names of one inode: nothing to do (POSIX).
            Some((dst_ino, _)) if dst_ino == src_ino => return Ok(()),
            Some(_) if noreplace => return Err(libc::EEXIST),
            None if exchange => return Err(libc::ENOENT),
            Some((dst_ino, dst_kind)) if exchange => {
                let mut d = self.getattr(dst_ino)?;
                if !sticky_ok(c, &dirs[new], &d) {
                    return Err(libc::EPERM);
                }
                if d.is_dir() && parent != newparent && self.is_within(parent, dst_ino)? {
                    return Err(libc::EINVAL);
                }
                put_entry(&mut b, parent, name, dst_ino, dst_kind);
                put_entry(&mut b, newparent, newname, src_ino, src_kind);
                move_dir(&mut src, &mut dirs, old, new, newparent);
                move_dir(&mut d, &mut dirs, new, old, parent);
                d.ctime = t;
                Self::put_attr(&mut b, &d);
            }
            Some((dst_ino, _)) => {
                let mut d = self.getattr(dst_ino)?;
                if !sticky_ok(c, &dirs[new], &d) {
                    return Err(libc::EPERM);
                }
                if src.is_dir() && !d.is_dir() {
                    return Err(libc::ENOTDIR);
                }
                if !src.is_dir() && d.is_dir() {
                    return Err(libc::EISDIR);
                }
                if d.is_dir() {
                    if !self.dir_is_empty(dst_ino)? {
                        return Err(libc::ENOTEMPTY);
                    }
                    dirs[new].nlink = dirs[new].nlink.saturating_sub(1);
                }
                self.drop_link(&mut d, &mut b, t)?;
                b.delete(dentry_key(parent, name));
                put_entry(&mut b, newparent, newname, src_ino, src_kind);
                move_dir(&mut src, &mut dirs, old, new, newparent);
            }
            None => {
                b.delete(dentry_key(parent, name));
                put_entry(&mut b, newparent, newname, src_ino, src_kind);
                move_dir(&mut src, &mut dirs, old, new, newparent);
            }
        }
        src.ctime = t;
        Self::put_attr(&mut b, &src);
        // Last, so a parent's record wins over any stale copy above (the
        // moved inodes are never one of the parents: `is_within` rules it out).
        for d in dirs.iter_mut() {
            touch(d, t);
            Self::put_attr(&mut b, d);
        }
        self.commit(b)
    }

    /// All entries of a directory: (ino, kind, name), in name order.
    pub fn list_dir(&self, ino: u64) -> FsResult<Vec<(u64, u8, Vec<u8>)>> {
        self.dir_attr(ino)?;
        let (mut start, end) = dentry_range(ino);
        let mut out = Vec::new();
        const PAGE: usize = 1024;
        loop {
            let page = self
                .store
                .scan(&start, &end, PAGE)
                .map_err(super::core::io_errno)?;
            for (k, v) in &page {
                if let (Some(Key::Dentry(_, name)), Some(child)) = (parse_key(k), be64(v)) {
                    out.push((child, v.get(8).copied().unwrap_or(KIND_FILE), name.to_vec()));
                }
            }
            match page.last() {
                Some((k, _)) if page.len() == PAGE => {
                    start = k.clone();
                    start.push(0);
                }
                _ => break,
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::core::testutil::*;
    use super::*;
    use crate::store::Store;

    fn nlink(f: &FsCore, ino: u64) -> u32 {
        f.getattr(ino).unwrap().nlink
    }

    #[test]
    fn create_lookup_and_errnos() {
        let (_, f) = fs();
        let d = f.mkdir(U, ROOT_INO, b"d", 0o755).unwrap();
        assert_eq!(nlink(&f, ROOT_INO), 3);
        assert_eq!(d.nlink, 2);
        assert_eq!(f.mkdir(U, ROOT_INO, b"d", 0o755).unwrap_err(), libc::EEXIST);
        assert_eq!(
            f.create(U, ROOT_INO, b"d", 0o644).unwrap_err(),
            libc::EEXIST
        );
        let a = f.create(U, d.ino, b"a", 0o644).unwrap();
        assert_eq!(a.mode, libc::S_IFREG | 0o644);
        assert_eq!((a.uid, a.gid), (U.uid, U.gid));
        assert_eq!(f.lookup(d.ino, b"a").unwrap().ino, a.ino);
        assert_eq!(f.lookup(d.ino, b"zz").unwrap_err(), libc::ENOENT);
        assert_eq!(f.lookup(a.ino, b"x").unwrap_err(), libc::ENOTDIR);
        assert_eq!(f.lookup(999_999, b"x").unwrap_err(), libc::ENOENT);
        assert_eq!(f.create(U, a.ino, b"x", 0o644).unwrap_err(), libc::ENOTDIR);
        let long = [b'n'; 256];
        assert_eq!(
            f.create(U, ROOT_INO, &long, 0o644).unwrap_err(),
            libc::ENAMETOOLONG
        );
        assert_eq!(f.lookup(ROOT_INO, &long).unwrap_err(), libc::ENAMETOOLONG);
        assert_eq!(
            f.unlink(U, ROOT_INO, &long).unwrap_err(),
            libc::ENAMETOOLONG
        );
        f.create(U, ROOT_INO, &long[..255], 0o644).unwrap();
        assert_eq!(
            f.mkdir(U, ROOT_INO, b"..", 0o755).unwrap_err(),
            libc::EEXIST
        );
        assert_eq!(f.rmdir(U, ROOT_INO, b"d").unwrap_err(), libc::ENOTEMPTY);
        assert_eq!(f.rmdir(U, ROOT_INO, b".").unwrap_err(), libc::EINVAL);
        assert_eq!(f.rmdir(U, ROOT_INO, b"..").unwrap_err(), libc::ENOTEMPTY);
        assert_eq!(f.unlink(U, ROOT_INO, b"d").unwrap_err(), libc::EISDIR);
        assert_eq!(f.rmdir(U, d.ino, b"a").unwrap_err(), libc::ENOTDIR);
        assert_eq!(f.unlink(U, d.ino, b"nope").unwrap_err(), libc::ENOENT);
        assert_eq!(f.rmdir(U, d.ino, b"nope").unwrap_err(), libc::ENOENT);
        f.unlink(U, d.ino, b"a").unwrap();
        assert_eq!(f.getattr(a.ino).unwrap_err(), libc::ENOENT);
        f.rmdir(U, ROOT_INO, b"d").unwrap();
        assert_eq!(nlink(&f, ROOT_INO), 2);
        assert_eq!(f.getattr(d.ino).unwrap_err(), libc::ENOENT);
    }

    #[test]
    fn special_files_and_symlinks() {
        let (_, f) = fs();
        let fifo = f
            .mknod(U, ROOT_INO, b"p", libc::S_IFIFO | 0o600, 0, None)
            .unwrap();
        assert_eq!(fifo.mode & libc::S_IFMT, libc::S_IFIFO);
        let dev = f
            .mknod(
                Caller::ROOT,
                ROOT_INO,
                b"c",
                libc::S_IFCHR | 0o600,
                0x0501,
                None,
            )
            .unwrap();
        assert_eq!(f.getattr(dev.ino).unwrap().rdev, 0x0501);
        f.mknod(U, ROOT_INO, b"s", libc::S_IFSOCK | 0o600, 0, None)
            .unwrap();
        assert_eq!(
            f.mknod(U, ROOT_INO, b"x", 0o600, 0, None).unwrap_err(),
            libc::EINVAL
        );
        let l = f.symlink(U, ROOT_INO, b"l", b"some/target").unwrap();
        assert_eq!(l.size, 11);
        assert_eq!(f.readlink(l.ino).unwrap(), b"some/target");
        assert_eq!(f.readlink(fifo.ino).unwrap_err(), libc::EINVAL);
        assert_eq!(f.symlink(U, ROOT_INO, b"e", b"").unwrap_err(), libc::ENOENT);
        assert_eq!(
            f.symlink(U, ROOT_INO, b"e", &[b'a'; 5000]).unwrap_err(),
            libc::ENAMETOOLONG
        );
        f.unlink(U, ROOT_INO, b"l").unwrap();
        assert_eq!(f.readlink(l.ino).unwrap_err(), libc::ENOENT);
        f.unlink(U, ROOT_INO, b"p").unwrap();
        assert_eq!(f.list_dir(ROOT_INO).unwrap().len(), 2);
    }

    #[test]
    fn setgid_directories_pass_their_group_on() {
        let (_, f) = fs();
        let d = f.mkdir(Caller::ROOT, ROOT_INO, b"g", 0o2777).unwrap();
        let sub = f.mkdir(U, d.ino, b"sub", 0o755).unwrap();
        assert_eq!(sub.gid, 0);
        assert_ne!(sub.mode & libc::S_ISGID, 0);
        let file = f.create(U, d.ino, b"f", 0o644).unwrap();
        assert_eq!(file.gid, 0);
        assert_eq!(file.mode & libc::S_ISGID, 0);
    }

    #[test]
    fn hard_links_count() {
        let (_, f) = fs();
        let d = f.mkdir(U, ROOT_INO, b"d", 0o755).unwrap();
        let a = f.create(U, ROOT_INO, b"a", 0o644).unwrap();
        let l = f.link(a.ino, d.ino, b"b").unwrap();
        assert_eq!(l.nlink, 2);
        f.link(a.ino, d.ino, b"c").unwrap();
        assert_eq!(nlink(&f, a.ino), 3);
        assert_eq!(f.link(a.ino, d.ino, b"c").unwrap_err(), libc::EEXIST);
        assert_eq!(f.link(d.ino, ROOT_INO, b"dl").unwrap_err(), libc::EPERM);
        assert_eq!(f.link(a.ino, a.ino, b"x").unwrap_err(), libc::ENOTDIR);
        assert_eq!(nlink(&f, d.ino), 2, "files do not count in a dir's nlink");
        f.unlink(U, ROOT_INO, b"a").unwrap();
        assert_eq!(nlink(&f, a.ino), 2);
        f.unlink(U, d.ino, b"b").unwrap();
        assert_eq!(f.lookup(d.ino, b"c").unwrap().nlink, 1);
        f.unlink(U, d.ino, b"c").unwrap();
        assert_eq!(f.getattr(a.ino).unwrap_err(), libc::ENOENT);
    }

    #[test]
    fn timestamps_move_like_ext4() {
        let (_, f) = fs();
        let d = f.mkdir(U, ROOT_INO, b"d", 0o755).unwrap();
        let a = f.create(U, d.ino, b"a", 0o644).unwrap();
        let before = f.getattr(d.ino).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
        f.link(a.ino, d.ino, b"b").unwrap();
        let after = f.getattr(d.ino).unwrap();
        assert!(after.mtime > before.mtime && after.ctime > before.ctime);
        let a2 = f.getattr(a.ino).unwrap();
        assert!(a2.ctime > a.ctime);
        assert_eq!(a2.mtime, a.mtime, "a new name is not a data change");
    }

    #[test]
    fn rename_files_and_dirs() {
        let (_, f) = fs();
        let a = f.mkdir(U, ROOT_INO, b"a", 0o755).unwrap();
        let b = f.mkdir(U, a.ino, b"b", 0o755).unwrap();
        assert_eq!(
            f.rename(U, ROOT_INO, b"a", b.ino, b"x", 0).unwrap_err(),
            libc::EINVAL,
            "into its own subtree"
        );
        assert_eq!(
            f.rename(U, ROOT_INO, b"a", a.ino, b"x", 0).unwrap_err(),
            libc::EINVAL,
            "into itself"
        );
        let c = f.mkdir(U, ROOT_INO, b"c", 0o755).unwrap();
        f.rename(U, a.ino, b"b", c.ino, b"b2", 0).unwrap();
        assert_eq!(nlink(&f, a.ino), 2);
        assert_eq!(nlink(&f, c.ino), 3);
        assert_eq!(f.getattr(b.ino).unwrap().parent, c.ino);
        assert_eq!(f.lookup(a.ino, b"b").unwrap_err(), libc::ENOENT);
        // Over a file.
        let x = f.create(U, ROOT_INO, b"x", 0o644).unwrap();
        let y = f.create(U, ROOT_INO, b"y", 0o644).unwrap();
        f.rename(U, ROOT_INO, b"x", ROOT_INO, b"y", 0).unwrap();
        assert_eq!(f.lookup(ROOT_INO, b"y").unwrap().ino, x.ino);
        assert_eq!(
            f.getattr(y.ino).unwrap_err(),
            libc::ENOENT,
            "replaced target is gone"
        );
        assert_eq!(
            f.rename(U, ROOT_INO, b"x", ROOT_INO, b"z", 0).unwrap_err(),
            libc::ENOENT
        );
        // Kinds must agree; a replaced directory must be empty.
        assert_eq!(
            f.rename(U, ROOT_INO, b"y", ROOT_INO, b"c", 0).unwrap_err(),
            libc::EISDIR
        );
        assert_eq!(
            f.rename(U, ROOT_INO, b"c", ROOT_INO, b"y", 0).unwrap_err(),
            libc::ENOTDIR
        );
        assert_eq!(
            f.rename(U, ROOT_INO, b"a", ROOT_INO, b"c", 0).unwrap_err(),
            libc::ENOTEMPTY
        );
        f.rmdir(U, c.ino, b"b2").unwrap();
        f.rename(U, ROOT_INO, b"a", ROOT_INO, b"c", 0).unwrap();
        assert_eq!(nlink(&f, ROOT_INO), 3);
        assert_eq!(f.getattr(c.ino).unwrap_err(), libc::ENOENT);
        // Across parents, over an empty directory.
        let p = f.mkdir(U, ROOT_INO, b"p", 0o755).unwrap();
        let q = f.mkdir(U, p.ino, b"q", 0o755).unwrap();
        f.rename(U, ROOT_INO, b"c", p.ino, b"q", 0).unwrap();
        assert_eq!(f.getattr(q.ino).unwrap_err(), libc::ENOENT);
        assert_eq!(nlink(&f, p.ino), 3);
        assert_eq!(nlink(&f, ROOT_INO), 3);
        assert_eq!(f.getattr(a.ino).unwrap().parent, p.ino);
        // Hard links of one inode: a no-op.
        f.link(x.ino, ROOT_INO, b"x2").unwrap();
        f.rename(U, ROOT_INO, b"x2", ROOT_INO, b"y", 0).unwrap();
        assert_eq!(f.lookup(ROOT_INO, b"x2").unwrap().ino, x.ino);
        assert_eq!(nlink(&f, x.ino), 2);
        // Replacing a file that has another name keeps it.
        let z = f.create(U, ROOT_INO, b"z", 0o644).unwrap();
        f.rename(U, ROOT_INO, b"z", ROOT_INO, b"x2", 0).unwrap();
        assert_eq!(nlink(&f, x.ino), 1);
        assert_eq!(f.lookup(ROOT_INO, b"x2").unwrap().ino, z.ino);
    }

    #[test]
    fn rename_noreplace_and_exchange() {
        let (_, f) = fs();
        let x = f.create(U, ROOT_INO, b"x", 0o644).unwrap();
        let y = f.create(U, ROOT_INO, b"y", 0o644).unwrap();
        let nr = libc::RENAME_NOREPLACE;
        let ex = libc::RENAME_EXCHANGE;
        assert_eq!(
            f.rename(U, ROOT_INO, b"x", ROOT_INO, b"y", nr).unwrap_err(),
            libc::EEXIST
        );
        assert_eq!(
            f.rename(U, ROOT_INO, b"x", ROOT_INO, b"y", nr | ex)
                .unwrap_err(),
            libc::EINVAL
        );
        assert_eq!(
            f.rename(U, ROOT_INO, b"x", ROOT_INO, b"n", ex).unwrap_err(),
            libc::ENOENT
        );
        f.rename(U, ROOT_INO, b"x", ROOT_INO, b"n", nr).unwrap();
        f.rename(U, ROOT_INO, b"n", ROOT_INO, b"x", nr).unwrap();
        f.rename(U, ROOT_INO, b"x", ROOT_INO, b"y", ex).unwrap();
        assert_eq!(f.lookup(ROOT_INO, b"y").unwrap().ino, x.ino);
        assert_eq!(f.lookup(ROOT_INO, b"x").unwrap().ino, y.ino);
        // A file and a directory in different parents trade places.
        let d = f.mkdir(U, ROOT_INO, b"d", 0o755).unwrap();
        let e = f.mkdir(U, ROOT_INO, b"e", 0o755).unwrap();
        let sub = f.mkdir(U, d.ino, b"sub", 0o755).unwrap();
        f.rename(U, d.ino, b"sub", ROOT_INO, b"x", ex).unwrap();
        assert_eq!(f.lookup(ROOT_INO, b"x").unwrap().ino, sub.ino);
        assert_eq!(f.lookup(d.ino, b"sub").unwrap().ino, y.ino);
        assert_eq!(f.getattr(sub.ino).unwrap().parent, ROOT_INO);
        assert_eq!(nlink(&f, d.ino), 2);
        assert_eq!(nlink(&f, ROOT_INO), 2 + 3);
        // Exchanging a directory with its own descendant is refused.
        let inner = f.mkdir(U, e.ino, b"inner", 0o755).unwrap();
        assert_eq!(
            f.rename(U, ROOT_INO, b"e", e.ino, b"inner", ex)
                .unwrap_err(),
            libc::EINVAL
        );
        assert_eq!(
            f.rename(U, e.ino, b"inner", ROOT_INO, b"e", ex)
                .unwrap_err(),
            libc::EINVAL
        );
        assert_eq!(f.getattr(inner.ino).unwrap().parent, e.ino);
    }

    #[test]
    fn sticky_directories() {
        let (_, f) = fs();
        let t = f.mkdir(Caller::ROOT, ROOT_INO, b"tmp", 0o1777).unwrap();
        f.create(U, t.ino, b"mine", 0o644).unwrap();
        f.mkdir(U, t.ino, b"mydir", 0o755).unwrap();
        f.create(OTHER, t.ino, b"theirs", 0o644).unwrap();
        assert_eq!(f.unlink(OTHER, t.ino, b"mine").unwrap_err(), libc::EPERM);
        assert_eq!(f.rmdir(OTHER, t.ino, b"mydir").unwrap_err(), libc::EPERM);
        assert_eq!(
            f.rename(OTHER, t.ino, b"mine", t.ino, b"m2", 0)
                .unwrap_err(),
            libc::EPERM
        );
        assert_eq!(
            f.rename(OTHER, t.ino, b"theirs", t.ino, b"mine", 0)
                .unwrap_err(),
            libc::EPERM,
            "nor replace it"
        );
        assert_eq!(
            f.rename(
                OTHER,
                t.ino,
                b"theirs",
                t.ino,
                b"mine",
                libc::RENAME_EXCHANGE
            )
            .unwrap_err(),
            libc::EPERM
        );
        f.rename(U, t.ino, b"mine", t.ino, b"m2", 0).unwrap();
        f.unlink(Caller::ROOT, t.ino, b"theirs").unwrap();
        f.unlink(U, t.ino, b"m2").unwrap();
        f.rmdir(U, t.ino, b"mydir").unwrap();
    }

    #[test]
    fn stats_name_is_reserved() {
        let (_, f) = fs();
        let a = f.create(U, ROOT_INO, b"a", 0o644).unwrap();
        assert_eq!(
            f.create(U, ROOT_INO, STATS_NAME, 0o644).unwrap_err(),
            libc::EEXIST
        );
        assert_eq!(
            f.mkdir(U, ROOT_INO, STATS_NAME, 0o755).unwrap_err(),
            libc::EEXIST
        );
        assert_eq!(
            f.link(a.ino, ROOT_INO, STATS_NAME).unwrap_err(),
            libc::EEXIST
        );
        assert_eq!(
            f.rename(U, ROOT_INO, b"a", ROOT_INO, STATS_NAME, 0)
                .unwrap_err(),
            libc::EPERM
        );
        assert_eq!(f.unlink(U, ROOT_INO, STATS_NAME).unwrap_err(), libc::EPERM);
        // Anywhere but the root it is an ordinary name.
        let d = f.mkdir(U, ROOT_INO, b"d", 0o755).unwrap();
        f.create(U, d.ino, STATS_NAME, 0o644).unwrap();
    }

    #[test]
    fn removed_directory_accepts_no_entries() {
        let (_, f) = fs();
        let d = f.mkdir(U, ROOT_INO, b"d", 0o755).unwrap();
        f.open_file(d.ino).unwrap(); // an opendir handle
        f.rmdir(U, ROOT_INO, b"d").unwrap();
        assert_eq!(f.getattr(d.ino).unwrap().nlink, 0, "still there while open");
        assert!(f.list_dir(d.ino).unwrap().is_empty());
        assert_eq!(f.create(U, d.ino, b"x", 0o644).unwrap_err(), libc::ENOENT);
        f.release_file(d.ino).unwrap();
        assert_eq!(f.getattr(d.ino).unwrap_err(), libc::ENOENT);
    }

    #[test]
    fn big_directory_lists_fully() {
        let (store, f) = fs();
        let d = f.mkdir(U, ROOT_INO, b"d", 0o755).unwrap();
        for i in 0..2500 {
            f.create(U, d.ino, format!("{i:05}").as_bytes(), 0o644)
                .unwrap();
        }
        let l = f.list_dir(d.ino).unwrap();
        assert_eq!(l.len(), 2500);
        assert_eq!(l[2499].2, b"02499");
        // Renaming the directory rewrites a handful of keys, not 2500.
        let before = store.scan(b"D", b"E", usize::MAX).unwrap();
        f.rename(U, ROOT_INO, b"d", ROOT_INO, b"e", 0).unwrap();
        let after = store.scan(b"D", b"E", usize::MAX).unwrap();
        let changed = before.iter().filter(|kv| !after.contains(kv)).count();
        assert_eq!(changed, 1);
    }
}
