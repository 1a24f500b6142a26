//! The filesystem logic: POSIX semantics as plain functions over the store.
//!
//! Every operation that changes state builds one [`Batch`] holding all its
//! key changes and commits it once, so a crash shows it whole or not at all.
//! Errors are errno values (`i32`). Nothing here knows about FUSE; the
//! `fuse` module only translates, and tests call this directly.
//!
//! Concurrency: all state changes run under one mutex (`inner`), which
//! also guards the inode allocator and open counts; the engine serialises
//! batch commits anyway, and a single lock makes every read-modify-write
//! (parent attributes, partial chunks, nlink) trivially correct. Reads take
//! no lock: each sees the store as of some committed batch.
//!
//! Reclaiming space: when the last name of an inode goes while it is open,
//! or when a truncate or unlink would delete more chunks than fit in one
//! batch, the operation's batch writes an `O` (orphan) key; the data is then
//! deleted in bounded batches, and the `O` key last. If the daemon dies in
//! between, `recover()` at the next mount finishes the job.

use super::inode::{
    kind_from_mode, type_bits, Attr, INLINE_MAX, KIND_DIR, KIND_FILE, KIND_SYMLINK,
};
use super::schema::*;
use crate::store::{Batch, Store};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

pub type FsResult<T> = Result<T, i32>;

/// Who is asking.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
}

impl Caller {
    pub const ROOT: Caller = Caller { uid: 0, gid: 0 };
}

/// Chunk deletions that fit in the operation's own batch.
const MAX_INLINE_DELETES: usize = 256;
/// Keys deleted per batch when reclaiming in the background of an operation.
const RECLAIM_BATCH: usize = 1024;
const NAME_MAX: usize = 255;
const XATTR_MAX: usize = 64 * 1024;
const INO_RESERVE: u64 = 1024;

struct Inner {
    next_ino: u64,
    /// Persisted high-water mark: numbers below it may have been handed out.
    hwm: u64,
    open: HashMap<u64, u32>,
}

pub struct FsCore {
    store: Arc<dyn Store>,
    sync_always: bool,
    pub read_only: bool,
    pub statfs_path: Option<PathBuf>,
    inner: Mutex<Inner>,
}

fn io_errno(e: std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

fn check_name(name: &[u8]) -> FsResult<()> {
    if name.len() > NAME_MAX {
        return Err(libc::ENAMETOOLONG);
    }
    if name.is_empty() || name.contains(&b'/') || name.contains(&0) || name == b"." || name == b".."
    {
        return Err(libc::EINVAL);
    }
    Ok(())
}

fn chunks_for(size: u64) -> u64 {
    size.div_ceil(CHUNK_SIZE)
}

/// What `set_times` should do with one timestamp.
#[derive(Debug, Clone, Copy)]
pub enum TimeSet {
    Now,
    At(i64),
}

/// Changes requested by setattr.
#[derive(Debug, Default, Clone, Copy)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<TimeSet>,
    pub mtime: Option<TimeSet>,
}

impl FsCore {
    /// Format an empty store or check an existing one, then finish any
    /// reclaim a crash interrupted.
    pub fn open(store: Arc<dyn Store>, sync_always: bool, read_only: bool) -> FsResult<FsCore> {
        let format = store.get(&meta_key("format")).map_err(io_errno)?;
        let hwm = match format {
            None => {
                if !store.scan(b"", &[0xff], 1).map_err(io_errno)?.is_empty() {
                    log::error!("store holds keys but no format record");
                    return Err(libc::EIO);
                }
                let t = now_ns();
                let root = Attr {
                    ino: ROOT_INO,
                    kind: KIND_DIR,
                    mode: libc::S_IFDIR | 0o755,
                    nlink: 2,
                    atime: t,
                    mtime: t,
                    ctime: t,
                    parent: ROOT_INO,
                    ..Default::default()
                };
                let mut b = Batch::new();
                b.put(meta_key("format"), FORMAT_VERSION.to_be_bytes().to_vec());
                b.put(meta_key("uuid"), format!("{:x}", t).into_bytes());
                b.put(meta_key("next_ino"), FIRST_INO.to_be_bytes().to_vec());
                b.put(inode_key(ROOT_INO), root.encode());
                store.write(b, true).map_err(io_errno)?;
                log::info!("formatted a new filesystem");
                FIRST_INO
            }
            Some(v) => {
                let ver = v
                    .get(..4)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                if ver != Some(FORMAT_VERSION) {
                    log::error!("unsupported filesystem format {ver:?}");
                    return Err(libc::EIO);
                }
                let hwm = store
                    .get(&meta_key("next_ino"))
                    .map_err(io_errno)?
                    .and_then(|v| be64(&v))
                    .ok_or(libc::EIO)?;
                hwm.max(FIRST_INO)
            }
        };
        let core = FsCore {
            store,
            sync_always,
            read_only,
            statfs_path: None,
            inner: Mutex::new(Inner {
                next_ino: hwm,
                hwm,
                open: HashMap::new(),
            }),
        };
        if !read_only {
            core.recover()?;
        }
        Ok(core)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn commit(&self, b: Batch) -> FsResult<()> {
        if self.read_only {
            return Err(libc::EROFS);
        }
        self.store.write(b, self.sync_always).map_err(io_errno)
    }

    pub fn sync(&self) -> FsResult<()> {
        self.store.sync().map_err(io_errno)
    }

    /// Finish reclaims recorded by `O` keys (interrupted by a crash).
    pub fn recover(&self) -> FsResult<()> {
        let start = vec![b'O'];
        let end = vec![b'P'];
        let mut done = 0;
        loop {
            let orphans = self.store.scan(&start, &end, 256).map_err(io_errno)?;
            if orphans.is_empty() {
                break;
            }
            for (k, _) in orphans {
                if let Some(Key::Orphan(ino)) = parse_key(&k) {
                    let _g = self.lock();
                    self.reclaim(ino, 0)?;
                    done += 1;
                }
            }
        }
        if done > 0 {
            log::info!("recovery: finished reclaiming space of {done} inode(s)");
        }
        Ok(())
    }

    pub fn getattr(&self, ino: u64) -> FsResult<Attr> {
        let v = self.store.get(&inode_key(ino)).map_err(io_errno)?;
        let v = v.ok_or(libc::ENOENT)?;
        let mut a = Attr::decode(&v).map_err(|e| {
            log::error!("inode {ino}: {e}");
            libc::EIO
        })?;
        a.ino = ino;
        Ok(a)
    }

    fn entry(&self, parent: u64, name: &[u8]) -> FsResult<Option<(u64, u8)>> {
        let v = self
            .store
            .get(&dentry_key(parent, name))
            .map_err(io_errno)?;
        Ok(v.and_then(|v| Some((be64(&v)?, *v.get(8)?))))
    }

    fn dir_attr(&self, ino: u64) -> FsResult<Attr> {
        let a = self.getattr(ino)?;
        if !a.is_dir() {
            return Err(libc::ENOTDIR);
        }
        Ok(a)
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

    fn alloc_ino(&self, inner: &mut Inner, b: &mut Batch) -> u64 {
        let ino = inner.next_ino;
        inner.next_ino += 1;
        if inner.next_ino > inner.hwm {
            inner.hwm = inner.next_ino + INO_RESERVE;
            b.put(meta_key("next_ino"), inner.hwm.to_be_bytes().to_vec());
        }
        ino
    }

    fn put_attr(b: &mut Batch, a: &Attr) {
        b.put(inode_key(a.ino), a.encode());
    }

    fn put_entry(b: &mut Batch, parent: u64, name: &[u8], ino: u64, kind: u8) {
        let mut v = ino.to_be_bytes().to_vec();
        v.push(kind);
        b.put(dentry_key(parent, name), v);
    }

    /// Create any kind of inode under `parent`.
    pub fn mknod(
        &self,
        c: Caller,
        parent: u64,
        name: &[u8],
        mode: u32,
        rdev: u32,
        symlink_target: Option<&[u8]>,
    ) -> FsResult<Attr> {
        check_name(name)?;
        let kind = kind_from_mode(mode).ok_or(libc::EINVAL)?;
        let mut inner = self.lock();
        let mut p = self.dir_attr(parent)?;
        if p.nlink == 0 {
            return Err(libc::ENOENT);
        }
        if self.entry(parent, name)?.is_some() {
            return Err(libc::EEXIST);
        }
        let mut b = Batch::new();
        let ino = self.alloc_ino(&mut inner, &mut b);
        let t = now_ns();
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
                a.nlink = 2;
                a.parent = parent;
                p.nlink += 1;
            }
            KIND_FILE => a.inline = Some(Vec::new()),
            KIND_SYMLINK => {
                let target = symlink_target.ok_or(libc::EINVAL)?;
                if target.is_empty() || target.len() > 4095 {
                    return Err(libc::ENAMETOOLONG);
                }
                a.size = target.len() as u64;
                b.put(symlink_key(ino), target.to_vec());
            }
            _ => {}
        }
        p.mtime = t;
        p.ctime = t;
        Self::put_attr(&mut b, &a);
        Self::put_attr(&mut b, &p);
        Self::put_entry(&mut b, parent, name, ino, kind);
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
        self.store
            .get(&symlink_key(ino))
            .map_err(io_errno)?
            .ok_or(libc::EINVAL)
    }

    pub fn link(&self, ino: u64, newparent: u64, newname: &[u8]) -> FsResult<Attr> {
        check_name(newname)?;
        let _g = self.lock();
        let mut a = self.getattr(ino)?;
        if a.is_dir() {
            return Err(libc::EPERM);
        }
        let mut p = self.dir_attr(newparent)?;
        if self.entry(newparent, newname)?.is_some() {
            return Err(libc::EEXIST);
        }
        if a.nlink == 0 {
            return Err(libc::ENOENT);
        }
        let t = now_ns();
        a.nlink += 1;
        a.ctime = t;
        p.mtime = t;
        p.ctime = t;
        let mut b = Batch::new();
        Self::put_attr(&mut b, &a);
        Self::put_attr(&mut b, &p);
        Self::put_entry(&mut b, newparent, newname, ino, a.kind);
        self.commit(b)?;
        Ok(a)
    }

    /// Sticky directories: only root, the directory's owner or the file's
    /// owner may remove or rename an entry.
    fn sticky_ok(c: Caller, dir: &Attr, victim: &Attr) -> bool {
        dir.mode & libc::S_ISVTX == 0 || c.uid == 0 || c.uid == dir.uid || c.uid == victim.uid
    }

    /// Keys of an inode that go when it goes; false if too many for one batch.
    fn delete_inode_keys(&self, ino: u64, b: &mut Batch) -> FsResult<bool> {
        let known = self.getattr(ino).ok();
        if let Some(a) = &known {
            // Inline files have no chunks and most inodes no xattrs: skip
            // range scans that cannot find anything.
            if a.inline.is_some() || a.kind != KIND_FILE {
                if a.has_xattrs {
                    self.delete_xattrs(ino, b)?;
                }
                if a.kind == KIND_SYMLINK {
                    b.delete(symlink_key(ino));
                }
                b.delete(inode_key(ino));
                return Ok(true);
            }
        }
        let cs = chunk_key(ino, 0);
        let ce = prefix_end(&inode_key(ino)[1..]).into_iter();
        let mut ce_key = vec![b'C'];
        ce_key.extend(ce);
        let chunks = self
            .store
            .scan(&cs, &ce_key, MAX_INLINE_DELETES + 1)
            .map_err(io_errno)?;
        if chunks.len() > MAX_INLINE_DELETES {
            return Ok(false);
        }
        for (k, _) in chunks {
            b.delete(k);
        }
        if known.as_ref().is_none_or(|a| a.has_xattrs) {
            self.delete_xattrs(ino, b)?;
        }
        b.delete(symlink_key(ino));
        b.delete(inode_key(ino));
        Ok(true)
    }

    fn delete_xattrs(&self, ino: u64, b: &mut Batch) -> FsResult<()> {
        let xs = xattr_key(ino, b"");
        let xattrs = self
            .store
            .scan(&xs, &prefix_end(&xs), 65536)
            .map_err(io_errno)?;
        for (k, _) in xattrs {
            b.delete(k);
        }
        Ok(())
    }

    /// Drop one link of `a` inside batch `b`. Returns true if a reclaim
    /// must run after the batch commits.
    fn drop_link(&self, inner: &Inner, a: &mut Attr, b: &mut Batch, t: i64) -> FsResult<bool> {
        a.nlink = a.nlink.saturating_sub(if a.is_dir() { 2 } else { 1 });
        a.ctime = t;
        if a.nlink > 0 {
            Self::put_attr(b, a);
            return Ok(false);
        }
        if inner.open.get(&a.ino).copied().unwrap_or(0) > 0 {
            Self::put_attr(b, a);
            b.put(orphan_key(a.ino), Vec::new());
            return Ok(false);
        }
        if self.delete_inode_keys(a.ino, b)? {
            return Ok(false);
        }
        Self::put_attr(b, a);
        b.put(orphan_key(a.ino), Vec::new());
        Ok(true)
    }

    pub fn unlink(&self, c: Caller, parent: u64, name: &[u8]) -> FsResult<()> {
        let inner = self.lock();
        let mut p = self.dir_attr(parent)?;
        let (ino, _) = self.entry(parent, name)?.ok_or(libc::ENOENT)?;
        let mut a = self.getattr(ino)?;
        if a.is_dir() {
            return Err(libc::EISDIR);
        }
        if !Self::sticky_ok(c, &p, &a) {
            return Err(libc::EPERM);
        }
        let t = now_ns();
        let mut b = Batch::new();
        b.delete(dentry_key(parent, name));
        p.mtime = t;
        p.ctime = t;
        Self::put_attr(&mut b, &p);
        let reclaim = self.drop_link(&inner, &mut a, &mut b, t)?;
        self.commit(b)?;
        if reclaim {
            self.reclaim(ino, 0)?;
        }
        Ok(())
    }

    fn dir_is_empty(&self, ino: u64) -> FsResult<bool> {
        let (s, e) = dentry_range(ino);
        Ok(self.store.scan(&s, &e, 1).map_err(io_errno)?.is_empty())
    }

    pub fn rmdir(&self, c: Caller, parent: u64, name: &[u8]) -> FsResult<()> {
        if name == b"." {
            return Err(libc::EINVAL);
        }
        if name == b".." {
            return Err(libc::ENOTEMPTY);
        }
        let inner = self.lock();
        let mut p = self.dir_attr(parent)?;
        let (ino, _) = self.entry(parent, name)?.ok_or(libc::ENOENT)?;
        let mut a = self.getattr(ino)?;
        if !a.is_dir() {
            return Err(libc::ENOTDIR);
        }
        if !Self::sticky_ok(c, &p, &a) {
            return Err(libc::EPERM);
        }
        if !self.dir_is_empty(ino)? {
            return Err(libc::ENOTEMPTY);
        }
        let t = now_ns();
        let mut b = Batch::new();
        b.delete(dentry_key(parent, name));
        p.nlink = p.nlink.saturating_sub(1);
        p.mtime = t;
        p.ctime = t;
        Self::put_attr(&mut b, &p);
        self.drop_link(&inner, &mut a, &mut b, t)?;
        self.commit(b)
    }

    /// Whether `dir` is `ancestor` or lies below it.
    fn is_within(&self, mut dir: u64, ancestor: u64) -> FsResult<bool> {
        for _ in 0..4096 {
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

    pub fn rename(
        &self,
        c: Caller,
        parent: u64,
        name: &[u8],
        newparent: u64,
        newname: &[u8],
        flags: u32,
    ) -> FsResult<()> {
        check_name(newname)?;
        let noreplace = flags & libc::RENAME_NOREPLACE != 0;
        let exchange = flags & libc::RENAME_EXCHANGE != 0;
        if flags & !(libc::RENAME_NOREPLACE | libc::RENAME_EXCHANGE) != 0 || (noreplace && exchange)
        {
            return Err(libc::EINVAL);
        }
        let inner = self.lock();
        let (src_ino, src_kind) = self.entry(parent, name)?.ok_or(libc::ENOENT)?;
        let dst = self.entry(newparent, newname)?;
        let mut src = self.getattr(src_ino)?;
        let t = now_ns();
        let mut b = Batch::new();
        let mut reclaim = None;
        // Attributes of the (at most two) parent directories, updated in place.
        let mut dirs: Vec<Attr> = vec![self.dir_attr(parent)?];
        if newparent != parent {
            dirs.push(self.dir_attr(newparent)?);
        }
        let di = |ino: u64| usize::from(ino != parent);
        if !Self::sticky_ok(c, &dirs[0], &src) {
            return Err(libc::EPERM);
        }
        if src.is_dir() && newparent != parent && self.is_within(newparent, src_ino)? {
            return Err(libc::EINVAL);
        }
        match dst {
            Some((dst_ino, _)) if dst_ino == src_ino => return Ok(()),
            Some(_) if noreplace => return Err(libc::EEXIST),
            None if exchange => return Err(libc::ENOENT),
            Some((dst_ino, dst_kind)) if exchange => {
                let mut d = self.getattr(dst_ino)?;
                if d.is_dir() && parent != newparent && self.is_within(parent, dst_ino)? {
                    return Err(libc::EINVAL);
                }
                Self::put_entry(&mut b, parent, name, dst_ino, dst_kind);
                Self::put_entry(&mut b, newparent, newname, src_ino, src_kind);
                if parent != newparent {
                    if src.is_dir() {
                        dirs[0].nlink -= 1;
                        dirs[1].nlink += 1;
                        src.parent = newparent;
                    }
                    if d.is_dir() {
                        dirs[1].nlink -= 1;
                        dirs[0].nlink += 1;
                        d.parent = parent;
                    }
                }
                d.ctime = t;
                Self::put_attr(&mut b, &d);
            }
            Some((dst_ino, _)) => {
                let mut d = self.getattr(dst_ino)?;
                if !Self::sticky_ok(c, &dirs[di(newparent)], &d) {
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
                    dirs[di(newparent)].nlink -= 1;
                }
                if self.drop_link(&inner, &mut d, &mut b, t)? {
                    reclaim = Some(dst_ino);
                }
                b.delete(dentry_key(parent, name));
                Self::put_entry(&mut b, newparent, newname, src_ino, src_kind);
                if src.is_dir() && parent != newparent {
                    dirs[0].nlink -= 1;
                    dirs[1].nlink += 1;
                    src.parent = newparent;
                }
            }
            None => {
                b.delete(dentry_key(parent, name));
                Self::put_entry(&mut b, newparent, newname, src_ino, src_kind);
                if src.is_dir() && parent != newparent {
                    dirs[0].nlink -= 1;
                    dirs[1].nlink += 1;
                    src.parent = newparent;
                }
            }
        }
        src.ctime = t;
        Self::put_attr(&mut b, &src);
        for d in dirs.iter_mut() {
            d.mtime = t;
            d.ctime = t;
            // The moved inode may be one of the parents' own records only
            // if it were its own parent, which `is_within` rules out.
            Self::put_attr(&mut b, d);
        }
        self.commit(b)?;
        if let Some(ino) = reclaim {
            self.reclaim(ino, 0)?;
        }
        Ok(())
    }

    /// All entries of a directory: (ino, kind, name).
    pub fn list_dir(&self, ino: u64) -> FsResult<Vec<(u64, u8, Vec<u8>)>> {
        self.dir_attr(ino)?;
        let (mut start, end) = dentry_range(ino);
        let mut out = Vec::new();
        loop {
            let page = self.store.scan(&start, &end, 1024).map_err(io_errno)?;
            let n = page.len();
            for (k, v) in &page {
                if let (Some(Key::Dentry(_, name)), Some(child)) = (parse_key(k), be64(v)) {
                    out.push((child, v.get(8).copied().unwrap_or(KIND_FILE), name.to_vec()));
                }
            }
            match page.last() {
                Some((k, _)) if n == 1024 => {
                    start = k.clone();
                    start.push(0);
                }
                _ => break,
            }
        }
        Ok(out)
    }

    pub fn setattr(&self, c: Caller, ino: u64, s: SetAttr) -> FsResult<Attr> {
        let _g = self.lock();
        let mut a = self.getattr(ino)?;
        let t = now_ns();
        let owner = c.uid == 0 || c.uid == a.uid;
        let mut b = Batch::new();
        let mut reclaim = false;
        if let Some(m) = s.mode {
            if !owner {
                return Err(libc::EPERM);
            }
            a.mode = (a.mode & libc::S_IFMT) | (m & 0o7777);
        }
        if s.uid.is_some() || s.gid.is_some() {
            if let Some(u) = s.uid {
                if u != a.uid && c.uid != 0 {
                    return Err(libc::EPERM);
                }
                a.uid = u;
            }
            if let Some(g) = s.gid {
                if g != a.gid && !owner {
                    return Err(libc::EPERM);
                }
                a.gid = g;
            }
            if !a.is_dir() && (c.uid != 0 || a.mode & 0o111 != 0) {
                a.mode &= !libc::S_ISUID;
                if a.mode & libc::S_IXGRP != 0 {
                    a.mode &= !libc::S_ISGID;
                }
            }
        }
        for (req, slot) in [(s.atime, 0), (s.mtime, 1)] {
            if let Some(ts) = req {
                let v = match ts {
                    TimeSet::Now => t,
                    TimeSet::At(v) => {
                        if !owner {
                            return Err(libc::EPERM);
                        }
                        v
                    }
                };
                if slot == 0 {
                    a.atime = v;
                } else {
                    a.mtime = v;
                }
            }
        }
        if let Some(size) = s.size {
            if a.is_dir() {
                return Err(libc::EISDIR);
            }
            if a.kind != KIND_FILE {
                return Err(libc::EINVAL);
            }
            reclaim = self.truncate_into(&mut a, size, &mut b)?;
            a.mtime = t;
            if c.uid != 0 {
                a.mode &= !libc::S_ISUID;
                if a.mode & libc::S_IXGRP != 0 {
                    a.mode &= !libc::S_ISGID;
                }
            }
        }
        a.ctime = t;
        Self::put_attr(&mut b, &a);
        self.commit(b)?;
        if reclaim {
            self.reclaim(ino, a.size)?;
        }
        Ok(a)
    }

    /// Set the size in `a` and add the chunk changes to `b`. Returns true
    /// if more chunks must be deleted than fit in `b` (an `O` key is added).
    fn truncate_into(&self, a: &mut Attr, size: u64, b: &mut Batch) -> FsResult<bool> {
        if let Some(data) = a.inline.as_mut() {
            if size as usize <= INLINE_MAX {
                data.resize(size as usize, 0);
                a.size = size;
                return Ok(false);
            }
            let data = std::mem::take(data);
            a.inline = None;
            if !data.is_empty() {
                b.put(chunk_key(a.ino, 0), data);
            }
            a.size = size;
            return Ok(false);
        }
        let old = a.size;
        a.size = size;
        if size >= old {
            return Ok(false);
        }
        let keep = chunks_for(size);
        if !size.is_multiple_of(CHUNK_SIZE) {
            let idx = size / CHUNK_SIZE;
            if let Some(mut c) = self.store.get(&chunk_key(a.ino, idx)).map_err(io_errno)? {
                c.truncate((size % CHUNK_SIZE) as usize);
                b.put(chunk_key(a.ino, idx), c);
            }
        }
        let end = chunk_key(a.ino, chunks_for(old).max(keep));
        let doomed = self
            .store
            .scan(&chunk_key(a.ino, keep), &end, MAX_INLINE_DELETES + 1)
            .map_err(io_errno)?;
        if doomed.len() > MAX_INLINE_DELETES {
            b.put(orphan_key(a.ino), Vec::new());
            return Ok(true);
        }
        for (k, _) in doomed {
            b.delete(k);
        }
        Ok(false)
    }

    /// Delete data of `ino` beyond its size — everything, with the inode,
    /// when its link count is 0 and it is not open — in bounded batches,
    /// then the `O` key. Caller holds the lock (or is the only user).
    fn reclaim(&self, ino: u64, _size_hint: u64) -> FsResult<()> {
        let attr = match self.getattr(ino) {
            Ok(a) => Some(a),
            Err(libc::ENOENT) => None,
            Err(e) => return Err(e),
        };
        let gone = attr.as_ref().is_none_or(|a| a.nlink == 0);
        let first = match &attr {
            Some(a) if !gone => chunks_for(a.size),
            _ => 0,
        };
        let mut end = vec![b'C'];
        end.extend(prefix_end(&ino.to_be_bytes()));
        loop {
            let keys = self
                .store
                .scan(&chunk_key(ino, first), &end, RECLAIM_BATCH)
                .map_err(io_errno)?;
            if keys.is_empty() {
                break;
            }
            let mut b = Batch::new();
            for (k, _) in keys {
                b.delete(k);
            }
            self.store.write(b, false).map_err(io_errno)?;
        }
        let mut b = Batch::new();
        if gone {
            self.delete_inode_keys(ino, &mut b)?;
        }
        b.delete(orphan_key(ino));
        self.store.write(b, false).map_err(io_errno)
    }

    pub fn open_file(&self, ino: u64) {
        *self.lock().open.entry(ino).or_insert(0) += 1;
    }

    /// Last close of an unlinked file reclaims it.
    pub fn release_file(&self, ino: u64) -> FsResult<()> {
        let mut inner = self.lock();
        let last = match inner.open.get_mut(&ino) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                inner.open.remove(&ino);
                true
            }
            None => false,
        };
        if last && !self.read_only {
            if let Ok(a) = self.getattr(ino) {
                if a.nlink == 0 {
                    self.reclaim(ino, 0)?;
                }
            }
        }
        Ok(())
    }

    pub fn read(&self, ino: u64, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        let a = self.getattr(ino)?;
        if a.is_dir() {
            return Err(libc::EISDIR);
        }
        self.read_attr(&a, offset, size as u64)
    }

    fn read_attr(&self, a: &Attr, offset: u64, size: u64) -> FsResult<Vec<u8>> {
        if offset >= a.size || size == 0 {
            return Ok(Vec::new());
        }
        let end = a.size.min(offset.saturating_add(size));
        if let Some(d) = &a.inline {
            return Ok(d[offset as usize..end as usize].to_vec());
        }
        let mut out = vec![0u8; (end - offset) as usize];
        let first = offset / CHUNK_SIZE;
        let last = (end - 1) / CHUNK_SIZE;
        // A point get (bloom filter, one block) is far cheaper than a merged
        // range scan, so reads of a few chunks use gets.
        let chunks = if last - first < 4 {
            let mut v = Vec::new();
            for idx in first..=last {
                let k = chunk_key(a.ino, idx);
                if let Some(c) = self.store.get(&k).map_err(io_errno)? {
                    v.push((k, c));
                }
            }
            v
        } else {
            self.store
                .scan(
                    &chunk_key(a.ino, first),
                    &chunk_key(a.ino, last + 1),
                    (last - first + 1) as usize,
                )
                .map_err(io_errno)?
        };
        for (k, v) in chunks {
            let Some(Key::Chunk(_, idx)) = parse_key(&k) else {
                continue;
            };
            let cstart = idx * CHUNK_SIZE;
            let from = offset.max(cstart);
            let to = end.min(cstart + v.len() as u64);
            if from < to {
                let src = &v[(from - cstart) as usize..(to - cstart) as usize];
                let dst = (from - offset) as usize;
                out[dst..dst + src.len()].copy_from_slice(src);
            }
        }
        Ok(out)
    }

    /// Write `data` at `offset` (or at the end with `append`). Returns the
    /// new attributes; suid/sgid are cleared when a non-root caller writes.
    pub fn write(
        &self,
        c: Caller,
        ino: u64,
        offset: u64,
        data: &[u8],
        append: bool,
    ) -> FsResult<Attr> {
        let _g = self.lock();
        let mut a = self.getattr(ino)?;
        if a.is_dir() {
            return Err(libc::EISDIR);
        }
        let offset = if append { a.size } else { offset };
        let end = offset.checked_add(data.len() as u64).ok_or(libc::EFBIG)?;
        if end > (1u64 << 50) {
            return Err(libc::EFBIG);
        }
        let mut b = Batch::new();
        let mut pending: HashMap<u64, Vec<u8>> = HashMap::new();
        if let Some(buf) = a.inline.as_mut() {
            if end as usize <= INLINE_MAX {
                if buf.len() < end as usize {
                    buf.resize(end as usize, 0);
                }
                buf[offset as usize..end as usize].copy_from_slice(data);
                a.size = buf.len() as u64;
            } else {
                let old = std::mem::take(buf);
                a.inline = None;
                if !old.is_empty() {
                    pending.insert(0, old);
                }
            }
        }
        if a.inline.is_none() {
            let first = offset / CHUNK_SIZE;
            let last = if data.is_empty() {
                first
            } else {
                (end - 1) / CHUNK_SIZE
            };
            for idx in first..=last {
                if data.is_empty() {
                    break;
                }
                let cstart = idx * CHUNK_SIZE;
                let from = offset.max(cstart);
                let to = end.min(cstart + CHUNK_SIZE);
                let src = &data[(from - offset) as usize..(to - offset) as usize];
                let within = (from - cstart) as usize;
                let chunk = if within == 0 && src.len() as u64 == CHUNK_SIZE {
                    pending.remove(&idx);
                    src.to_vec()
                } else {
                    let mut cur = match pending.remove(&idx) {
                        Some(c) => c,
                        None => self
                            .store
                            .get(&chunk_key(ino, idx))
                            .map_err(io_errno)?
                            .unwrap_or_default(),
                    };
                    // Never resurrect bytes past the old end of file.
                    let valid = a.size.saturating_sub(cstart).min(CHUNK_SIZE) as usize;
                    cur.truncate(valid);
                    if cur.len() < within + src.len() {
                        cur.resize(within + src.len(), 0);
                    }
                    cur[within..within + src.len()].copy_from_slice(src);
                    cur
                };
                b.put(chunk_key(ino, idx), chunk);
            }
            for (idx, c) in pending {
                b.put(chunk_key(ino, idx), c);
            }
            a.size = a.size.max(end);
        }
        let t = now_ns();
        a.mtime = t;
        a.ctime = t;
        if c.uid != 0 && a.mode & (libc::S_ISUID | libc::S_ISGID) != 0 {
            a.mode &= !libc::S_ISUID;
            if a.mode & libc::S_IXGRP != 0 {
                a.mode &= !libc::S_ISGID;
            }
        }
        Self::put_attr(&mut b, &a);
        self.commit(b)?;
        Ok(a)
    }

    /// fallocate: mode 0 extends the size (holes read as zeros, so nothing
    /// is written); KEEP_SIZE changes nothing visible. Other modes: EOPNOTSUPP.
    pub fn fallocate(&self, ino: u64, offset: u64, length: u64, mode: i32) -> FsResult<()> {
        if mode & !libc::FALLOC_FL_KEEP_SIZE != 0 {
            return Err(libc::EOPNOTSUPP);
        }
        let _g = self.lock();
        let mut a = self.getattr(ino)?;
        if a.kind != KIND_FILE {
            return Err(libc::ENODEV);
        }
        let end = offset.checked_add(length).ok_or(libc::EFBIG)?;
        if mode & libc::FALLOC_FL_KEEP_SIZE != 0 || end <= a.size {
            return Ok(());
        }
        let mut b = Batch::new();
        self.truncate_into(&mut a, end, &mut b)?;
        a.ctime = now_ns();
        Self::put_attr(&mut b, &a);
        self.commit(b)
    }

    /// SEEK_DATA / SEEK_HOLE at chunk granularity.
    pub fn lseek(&self, ino: u64, offset: i64, whence: i32) -> FsResult<i64> {
        let a = self.getattr(ino)?;
        if offset < 0 {
            return Err(libc::EINVAL);
        }
        let off = offset as u64;
        match whence {
            libc::SEEK_SET => return Ok(offset),
            libc::SEEK_END => return Ok(a.size as i64 + offset),
            libc::SEEK_DATA | libc::SEEK_HOLE => {}
            _ => return Err(libc::EINVAL),
        }
        if off >= a.size {
            return Err(libc::ENXIO);
        }
        if a.inline.is_some() {
            return Ok(if whence == libc::SEEK_DATA {
                offset
            } else {
                a.size as i64
            });
        }
        let mut idx = off / CHUNK_SIZE;
        let last = (a.size - 1) / CHUNK_SIZE;
        while idx <= last {
            let page = self
                .store
                .scan(&chunk_key(ino, idx), &chunk_key(ino, last + 1), 1)
                .map_err(io_errno)?;
            let next = page.first().and_then(|(k, _)| match parse_key(k) {
                Some(Key::Chunk(_, i)) => Some(i),
                _ => None,
            });
            match (whence, next) {
                (libc::SEEK_DATA, Some(i)) => return Ok(off.max(i * CHUNK_SIZE) as i64),
                (libc::SEEK_DATA, None) => return Err(libc::ENXIO),
                (_, Some(i)) if i == idx => idx += 1,
                _ => return Ok(off.max(idx * CHUNK_SIZE).min(a.size) as i64),
            }
        }
        Ok(a.size as i64)
    }

    pub fn setxattr(
        &self,
        c: Caller,
        ino: u64,
        name: &[u8],
        value: &[u8],
        flags: i32,
    ) -> FsResult<()> {
        if name.is_empty() || name.len() > 255 {
            return Err(libc::ERANGE);
        }
        if value.len() > XATTR_MAX {
            return Err(libc::E2BIG);
        }
        let _g = self.lock();
        let mut a = self.getattr(ino)?;
        if c.uid != 0 && c.uid != a.uid && name.starts_with(b"trusted.") {
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
        self.getattr(ino)?;
        self.store
            .get(&xattr_key(ino, name))
            .map_err(io_errno)?
            .ok_or(libc::ENODATA)
    }

    /// Names, each followed by a NUL, as listxattr returns them.
    pub fn listxattr(&self, ino: u64) -> FsResult<Vec<u8>> {
        self.getattr(ino)?;
        let s = xattr_key(ino, b"");
        let all = self
            .store
            .scan(&s, &prefix_end(&s), 65536)
            .map_err(io_errno)?;
        let mut out = Vec::new();
        for (k, _) in all {
            if let Some(Key::Xattr(_, n)) = parse_key(&k) {
                out.extend_from_slice(n);
                out.push(0);
            }
        }
        Ok(out)
    }

    pub fn removexattr(&self, ino: u64, name: &[u8]) -> FsResult<()> {
        let _g = self.lock();
        let mut a = self.getattr(ino)?;
        if self
            .store
            .get(&xattr_key(ino, name))
            .map_err(io_errno)?
            .is_none()
        {
            return Err(libc::ENODATA);
        }
        let mut b = Batch::new();
        b.delete(xattr_key(ino, name));
        a.ctime = now_ns();
        Self::put_attr(&mut b, &a);
        self.commit(b)
    }

    /// Permission check for `access(2)` (the kernel checks opens itself).
    pub fn access(&self, c: Caller, ino: u64, mask: i32) -> FsResult<()> {
        let a = self.getattr(ino)?;
        if mask == libc::F_OK || c.uid == 0 {
            if c.uid == 0 && mask & libc::X_OK != 0 && !a.is_dir() && a.mode & 0o111 == 0 {
                return Err(libc::EACCES);
            }
            return Ok(());
        }
        let bits = if c.uid == a.uid {
            (a.mode >> 6) & 7
        } else if c.gid == a.gid {
            (a.mode >> 3) & 7
        } else {
            a.mode & 7
        };
        if (mask as u32) & !bits & 7 != 0 {
            return Err(libc::EACCES);
        }
        Ok(())
    }

    /// Inodes in use (approximately: the allocator's position).
    pub fn inodes_used(&self) -> u64 {
        self.lock().next_ino - FIRST_INO + 1
    }
}

/// Convenience for tests and tools: `st_mode` for a kind and permissions.
pub fn mode_of(kind: u8, perm: u32) -> u32 {
    type_bits(kind) | (perm & 0o7777)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemStore;

    const U: Caller = Caller {
        uid: 1000,
        gid: 1000,
    };

    fn fs() -> (Arc<MemStore>, FsCore) {
        let store = Arc::new(MemStore::new());
        let core = FsCore::open(store.clone(), false, false).unwrap();
        (store, core)
    }

    #[test]
    fn namespace_operations_and_errnos() {
        let (_, f) = fs();
        let d = f.mkdir(U, ROOT_INO, b"d", 0o755).unwrap();
        assert_eq!(f.getattr(ROOT_INO).unwrap().nlink, 3);
        assert_eq!(f.mkdir(U, ROOT_INO, b"d", 0o755).unwrap_err(), libc::EEXIST);
        let a = f.create(U, d.ino, b"a", 0o644).unwrap();
        assert_eq!(f.lookup(d.ino, b"a").unwrap().ino, a.ino);
        assert_eq!(f.lookup(d.ino, b"zz").unwrap_err(), libc::ENOENT);
        assert_eq!(f.lookup(a.ino, b"x").unwrap_err(), libc::ENOTDIR);
        assert_eq!(
            f.create(U, ROOT_INO, &[b'n'; 256], 0o644).unwrap_err(),
            libc::ENAMETOOLONG
        );
        assert_eq!(f.rmdir(U, ROOT_INO, b"d").unwrap_err(), libc::ENOTEMPTY);
        assert_eq!(f.unlink(U, ROOT_INO, b"d").unwrap_err(), libc::EISDIR);
        assert_eq!(f.rmdir(U, d.ino, b"a").unwrap_err(), libc::ENOTDIR);
        f.unlink(U, d.ino, b"a").unwrap();
        assert_eq!(f.getattr(a.ino).unwrap_err(), libc::ENOENT);
        f.rmdir(U, ROOT_INO, b"d").unwrap();
        assert_eq!(f.getattr(ROOT_INO).unwrap().nlink, 2);
        let l = f.symlink(U, ROOT_INO, b"l", b"target").unwrap();
        assert_eq!(f.readlink(l.ino).unwrap(), b"target");
    }

    #[test]
    fn rename_cases() {
        let (_, f) = fs();
        let a = f.mkdir(U, ROOT_INO, b"a", 0o755).unwrap();
        let b = f.mkdir(U, a.ino, b"b", 0o755).unwrap();
        assert_eq!(
            f.rename(U, ROOT_INO, b"a", b.ino, b"x", 0).unwrap_err(),
            libc::EINVAL
        );
        let c = f.mkdir(U, ROOT_INO, b"c", 0o755).unwrap();
        f.rename(U, a.ino, b"b", c.ino, b"b2", 0).unwrap();
        assert_eq!(f.getattr(a.ino).unwrap().nlink, 2);
        assert_eq!(f.getattr(c.ino).unwrap().nlink, 3);
        assert_eq!(f.getattr(b.ino).unwrap().parent, c.ino);
        let x = f.create(U, ROOT_INO, b"x", 0o644).unwrap();
        let y = f.create(U, ROOT_INO, b"y", 0o644).unwrap();
        assert_eq!(
            f.rename(U, ROOT_INO, b"x", ROOT_INO, b"y", libc::RENAME_NOREPLACE)
                .unwrap_err(),
            libc::EEXIST
        );
        f.rename(U, ROOT_INO, b"x", ROOT_INO, b"y", libc::RENAME_EXCHANGE)
            .unwrap();
        assert_eq!(f.lookup(ROOT_INO, b"y").unwrap().ino, x.ino);
        assert_eq!(f.lookup(ROOT_INO, b"x").unwrap().ino, y.ino);
        f.rename(U, ROOT_INO, b"x", ROOT_INO, b"y", 0).unwrap();
        assert_eq!(
            f.getattr(x.ino).unwrap_err(),
            libc::ENOENT,
            "replaced target is gone"
        );
        assert_eq!(
            f.rename(U, ROOT_INO, b"y", ROOT_INO, b"c", 0).unwrap_err(),
            libc::EISDIR
        );
        assert_eq!(
            f.rename(U, ROOT_INO, b"c", ROOT_INO, b"y", 0).unwrap_err(),
            libc::ENOTDIR
        );
        f.rmdir(U, c.ino, b"b2").unwrap();
        f.rename(U, ROOT_INO, b"a", ROOT_INO, b"c", 0).unwrap();
        assert_eq!(f.getattr(ROOT_INO).unwrap().nlink, 3);
    }

    #[test]
    fn data_inline_chunks_holes_truncate_append() {
        let (_, f) = fs();
        let a = f.create(U, ROOT_INO, b"f", 0o644).unwrap();
        f.write(U, a.ino, 0, b"hello", false).unwrap();
        assert!(f.getattr(a.ino).unwrap().inline.is_some());
        f.write(U, a.ino, 0, b"!", true).unwrap();
        assert_eq!(f.read(a.ino, 0, 100).unwrap(), b"hello!");
        // Grow past the inline limit, across chunk boundaries, with a hole.
        let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        f.write(U, a.ino, 100_000, &big, false).unwrap();
        let at = f.getattr(a.ino).unwrap();
        assert!(at.inline.is_none());
        assert_eq!(at.size, 300_000);
        let all = f.read(a.ino, 0, 400_000).unwrap();
        assert_eq!(&all[..6], b"hello!");
        assert!(all[6..100_000].iter().all(|&b| b == 0));
        assert_eq!(&all[100_000..], &big[..]);
        // Truncate down mid-chunk, then up: the tail reads zeros.
        let s = SetAttr {
            size: Some(150_000),
            ..Default::default()
        };
        f.setattr(U, a.ino, s).unwrap();
        let s = SetAttr {
            size: Some(250_000),
            ..Default::default()
        };
        f.setattr(U, a.ino, s).unwrap();
        let all = f.read(a.ino, 0, 400_000).unwrap();
        assert_eq!(all.len(), 250_000);
        assert_eq!(&all[100_000..150_000], &big[..50_000]);
        assert!(all[150_000..].iter().all(|&b| b == 0));
        assert_eq!(f.lseek(a.ino, 0, libc::SEEK_DATA).unwrap(), 0);
        // An inline file overwritten from 0 by whole chunks (found by crash-loop).
        let b = f.create(U, ROOT_INO, b"g", 0o644).unwrap();
        f.write(U, b.ino, 0, b"x", false).unwrap();
        f.write(U, b.ino, 0, &big, false).unwrap();
        assert_eq!(f.read(b.ino, 0, 300_000).unwrap(), big);
        assert_eq!(f.read(a.ino, 1 << 40, 10).unwrap(), b"");
    }

    #[test]
    fn hard_links_and_open_unlinked_files() {
        let (store, f) = fs();
        let a = f.create(U, ROOT_INO, b"a", 0o644).unwrap();
        f.write(U, a.ino, 0, &vec![7u8; 300_000], false).unwrap();
        f.link(a.ino, ROOT_INO, b"b").unwrap();
        assert_eq!(f.getattr(a.ino).unwrap().nlink, 2);
        f.open_file(a.ino);
        f.unlink(U, ROOT_INO, b"a").unwrap();
        f.unlink(U, ROOT_INO, b"b").unwrap();
        assert_eq!(
            f.read(a.ino, 0, 10).unwrap(),
            vec![7u8; 10],
            "still readable while open"
        );
        assert!(store.get(&orphan_key(a.ino)).unwrap().is_some());
        f.release_file(a.ino).unwrap();
        assert_eq!(f.getattr(a.ino).unwrap_err(), libc::ENOENT);
        let left = store
            .scan(&chunk_key(a.ino, 0), &chunk_key(a.ino + 1, 0), 10)
            .unwrap();
        assert!(left.is_empty());
        assert!(store.get(&orphan_key(a.ino)).unwrap().is_none());
    }

    #[test]
    fn crash_then_remount_reclaims_orphans_and_never_reuses_inodes() {
        let (store, f) = fs();
        let a = f.create(U, ROOT_INO, b"a", 0o644).unwrap();
        f.write(U, a.ino, 0, &vec![1u8; 1 << 20], false).unwrap();
        f.open_file(a.ino);
        f.unlink(U, ROOT_INO, b"a").unwrap();
        let last = f.create(U, ROOT_INO, b"b", 0o644).unwrap().ino;
        drop(f); // the daemon dies with the file open
        let f = FsCore::open(store.clone(), false, false).unwrap();
        assert_eq!(f.getattr(a.ino).unwrap_err(), libc::ENOENT);
        assert!(
            store.scan(b"C", b"D", 10).unwrap().is_empty(),
            "chunks reclaimed"
        );
        let next = f.create(U, ROOT_INO, b"c", 0o644).unwrap().ino;
        assert!(next > last);
        assert_eq!(f.lookup(ROOT_INO, b"b").unwrap().ino, last);
    }

    #[test]
    fn xattrs_and_permissions() {
        let (_, f) = fs();
        let a = f.create(U, ROOT_INO, b"a", 0o644).unwrap();
        f.setxattr(U, a.ino, b"user.k", b"v", 0).unwrap();
        assert_eq!(
            f.setxattr(U, a.ino, b"user.k", b"v", libc::XATTR_CREATE)
                .unwrap_err(),
            libc::EEXIST
        );
        assert_eq!(
            f.setxattr(U, a.ino, b"user.n", b"v", libc::XATTR_REPLACE)
                .unwrap_err(),
            libc::ENODATA
        );
        assert_eq!(f.getxattr(a.ino, b"user.k").unwrap(), b"v");
        assert_eq!(f.listxattr(a.ino).unwrap(), b"user.k\0");
        f.removexattr(a.ino, b"user.k").unwrap();
        assert_eq!(f.getxattr(a.ino, b"user.k").unwrap_err(), libc::ENODATA);
        let other = Caller {
            uid: 2000,
            gid: 2000,
        };
        let chmod = SetAttr {
            mode: Some(0o600),
            ..Default::default()
        };
        assert_eq!(f.setattr(other, a.ino, chmod).unwrap_err(), libc::EPERM);
        let chown = SetAttr {
            uid: Some(2000),
            ..Default::default()
        };
        assert_eq!(f.setattr(U, a.ino, chown).unwrap_err(), libc::EPERM);
        let suid = SetAttr {
            mode: Some(0o4755),
            ..Default::default()
        };
        f.setattr(U, a.ino, suid).unwrap();
        f.write(U, a.ino, 0, b"x", false).unwrap();
        assert_eq!(
            f.getattr(a.ino).unwrap().mode & libc::S_ISUID,
            0,
            "write clears setuid"
        );
        // sticky directory
        let t = f.mkdir(Caller::ROOT, ROOT_INO, b"tmp", 0o1777).unwrap();
        f.create(U, t.ino, b"mine", 0o644).unwrap();
        assert_eq!(f.unlink(other, t.ino, b"mine").unwrap_err(), libc::EPERM);
        f.unlink(U, t.ino, b"mine").unwrap();
    }
}
