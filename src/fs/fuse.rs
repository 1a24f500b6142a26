//! The `fuser` glue: translate FUSE requests to `FsCore` calls and replies.
//!
//! Kept thin on purpose: every decision about semantics lives in `core`.
//! What lives here is what only FUSE has: kernel capability negotiation,
//! TTLs, file and directory handles, and the hidden `.lsmfs-stats` file.
//!
//! Caching: we are the only writer, so the kernel may keep names and
//! attributes for `TTL` (every change goes through it and invalidates what
//! it touches), cache misses too (negative entries), keep a file's pages
//! across opens (FOPEN_KEEP_CACHE) and cache symlink targets.

use super::core::{Caller, FsCore, SetAttr, TimeSet};
use super::inode::{Attr, KIND_BLK, KIND_CHR, KIND_DIR, KIND_FIFO, KIND_SOCK, KIND_SYMLINK};
use super::requests::{Req, RequestCounts};
use super::schema::{ROOT_INO, STATS_INO, STATS_NAME};
use super::space::SpaceGuard;
use super::FsConfig;
use crate::store::Store;
use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen, ReplyStatfs, ReplyWrite,
    ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// We are the only writer, so the kernel may cache names and attributes.
const TTL: Duration = Duration::from_secs(1);
const GEN: Generation = Generation(0);

type DirList = Arc<Vec<(u64, u8, Vec<u8>)>>;

pub struct FuseFs {
    core: Arc<FsCore>,
    config: FsConfig,
    next_fh: AtomicU64,
    dirs: Mutex<HashMap<u64, DirList>>,
    stats: Mutex<HashMap<u64, Arc<Vec<u8>>>>,
    requests: RequestCounts,
    /// Write-only opens bypass the page cache (set at init, see there).
    direct_writes: bool,
}

fn errno(e: i32) -> Errno {
    Errno::from_i32(e)
}

fn caller(req: &Request) -> Caller {
    Caller {
        uid: req.uid(),
        gid: req.gid(),
    }
}

fn time(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

fn ns(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i64,
        Err(e) => -(e.duration().as_nanos() as i64),
    }
}

fn file_type(kind: u8) -> FileType {
    match kind {
        KIND_DIR => FileType::Directory,
        KIND_SYMLINK => FileType::Symlink,
        KIND_FIFO => FileType::NamedPipe,
        KIND_SOCK => FileType::Socket,
        KIND_CHR => FileType::CharDevice,
        KIND_BLK => FileType::BlockDevice,
        _ => FileType::RegularFile,
    }
}

fn to_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.blocks(),
        atime: time(a.atime),
        mtime: time(a.mtime),
        ctime: time(a.ctime),
        crtime: time(a.ctime),
        kind: file_type(a.kind),
        perm: (a.mode & 0o7777) as u16,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev,
        blksize: 4096,
        flags: 0,
    }
}

fn time_set(t: TimeOrNow) -> TimeSet {
    match t {
        TimeOrNow::Now => TimeSet::Now,
        TimeOrNow::SpecificTime(t) => TimeSet::At(ns(t)),
    }
}

impl FuseFs {
    pub fn new(store: Arc<dyn Store>, config: FsConfig) -> std::io::Result<FuseFs> {
        let mut core = FsCore::open(store, config.sync_always, config.read_only).map_err(|e| {
            let kind = std::io::Error::from_raw_os_error(e.errno).kind();
            std::io::Error::new(kind, e.reason)
        })?;
        if let Some(dir) = &config.statfs_path {
            core.space = SpaceGuard::new(dir, config.space_reserve);
        }
        Ok(FuseFs {
            core: Arc::new(core),
            config,
            next_fh: AtomicU64::new(1),
            dirs: Mutex::new(HashMap::new()),
            stats: Mutex::new(HashMap::new()),
            requests: RequestCounts::default(),
            direct_writes: false,
        })
    }

    pub fn core(&self) -> &Arc<FsCore> {
        &self.core
    }

    fn fh(&self) -> u64 {
        self.next_fh.fetch_add(1, Ordering::Relaxed)
    }

    fn stats_text(&self) -> Vec<u8> {
        let mut text = self.core.store().stats_text();
        text.push_str(&self.core.space.text());
        text.push_str(&self.requests.text());
        text.into_bytes()
    }

    /// How a file opened with `flags` is served: through the page cache
    /// (kept across opens: every change goes through this kernel), or
    /// direct for a write-only descriptor when the kernel allows it.
    fn open_flags(&self, flags: i32) -> FopenFlags {
        if self.direct_writes && flags & libc::O_ACCMODE == libc::O_WRONLY {
            FopenFlags::FOPEN_DIRECT_IO
        } else {
            FopenFlags::FOPEN_KEEP_CACHE
        }
    }

    fn stats_attr(&self) -> FileAttr {
        let t = super::core::now_ns();
        to_attr(&Attr {
            ino: STATS_INO,
            kind: super::inode::KIND_FILE,
            mode: libc::S_IFREG | 0o444,
            nlink: 1,
            size: self.stats_text().len() as u64,
            atime: t,
            mtime: t,
            ctime: t,
            ..Default::default()
        })
    }

    fn reply_entry(&self, r: Result<Attr, i32>, reply: ReplyEntry) {
        match r {
            Ok(a) => reply.entry(&TTL, &to_attr(&a), GEN),
            Err(e) => reply.error(errno(e)),
        }
    }

    /// A lookup's reply: a miss is cached by the kernel for `TTL` (a
    /// negative entry is inode 0); our own creates replace it.
    fn reply_lookup(&self, r: Result<Attr, i32>, reply: ReplyEntry) {
        if r == Err(libc::ENOENT) {
            let none = Attr {
                ino: 0,
                ..Default::default()
            };
            return reply.entry(&TTL, &to_attr(&none), GEN);
        }
        self.reply_entry(r, reply)
    }

    fn reply_empty(r: Result<(), i32>, reply: ReplyEmpty) {
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn dir_list(&self, ino: u64, fh: u64, offset: u64) -> Result<DirList, i32> {
        let mut dirs = self.dirs.lock().unwrap_or_else(|p| p.into_inner());
        if offset == 0 || !dirs.contains_key(&fh) {
            let list = Arc::new(self.core.list_dir(ino)?);
            dirs.insert(fh, list);
        }
        dirs.get(&fh).cloned().ok_or(libc::EBADF)
    }
}

impl fuser::Filesystem for FuseFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_write(1 << 20);
        let _ = config.set_max_readahead(1 << 20);
        let mut caps = InitFlags::FUSE_ASYNC_READ
            | InitFlags::FUSE_BIG_WRITES
            | InitFlags::FUSE_DO_READDIRPLUS
            | InitFlags::FUSE_READDIRPLUS_AUTO
            | InitFlags::FUSE_PARALLEL_DIROPS
            | InitFlags::FUSE_MAX_PAGES
            | InitFlags::FUSE_CACHE_SYMLINKS
            | InitFlags::FUSE_HANDLE_KILLPRIV_V2;
        if self.config.writeback_cache {
            caps |= InitFlags::FUSE_WRITEBACK_CACHE;
        }
        // POSIX ACLs: the kernel enforces them (under default_permissions)
        // and we store them and keep them in step with the mode; with
        // DONT_MASK the umask comes to us, to apply only where no default
        // ACL replaces it.
        if !self.config.no_acl {
            caps |= InitFlags::FUSE_POSIX_ACL | InitFlags::FUSE_DONT_MASK;
        }
        let mut acl = !self.config.no_acl;
        for flag in caps.iter() {
            if config.add_capabilities(flag).is_err() {
                log::debug!("kernel does not offer {flag:?}");
                acl &= flag != InitFlags::FUSE_POSIX_ACL && flag != InitFlags::FUSE_DONT_MASK;
            }
        }
        self.core.set_acls(acl);
        // Without the writeback cache a cached write is cut at every page
        // the cache does not hold whole: tar's 10 KiB records arrive as two
        // requests. A write-only descriptor cannot be read or mmap'd, so its
        // writes may bypass the cache (one request each) — safely since
        // FUSE 7.39 (Linux 6.6), which drops cached pages a direct write
        // covers, so readers through other descriptors never see stale data.
        let abi = config.kernel_abi();
        self.direct_writes = !self.config.writeback_cache && (abi.0, abi.1) >= (7, 39);
        log::info!(
            "kernel FUSE {}.{}; write-only opens direct: {}; POSIX ACLs: {}",
            abi.0,
            abi.1,
            self.direct_writes,
            acl
        );
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.requests.count(Req::Lookup);
        if parent.0 == ROOT_INO && name.as_bytes() == STATS_NAME {
            reply.entry(&Duration::ZERO, &self.stats_attr(), GEN);
            return;
        }
        self.reply_lookup(self.core.lookup(parent.0, name.as_bytes()), reply);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.requests.count(Req::Getattr);
        if ino.0 == STATS_INO {
            reply.attr(&Duration::ZERO, &self.stats_attr());
            return;
        }
        match self.core.getattr(ino.0) {
            Ok(a) => reply.attr(&TTL, &to_attr(&a)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        self.requests.count(Req::Setattr);
        if ino.0 == STATS_INO {
            return reply.error(Errno::EPERM);
        }
        let s = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: atime.map(time_set),
            mtime: mtime.map(time_set),
        };
        match self.core.setattr(caller(req), ino.0, s) {
            Ok(a) => reply.attr(&TTL, &to_attr(&a)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        self.requests.count(Req::Readlink);
        match self.core.readlink(ino.0) {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        self.requests.count(Req::Mknod);
        let r = self.core.mknod_umask(
            caller(req),
            parent.0,
            name.as_bytes(),
            mode,
            umask,
            rdev,
            None,
        );
        self.reply_entry(r, reply);
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        self.requests.count(Req::Mkdir);
        let mode = libc::S_IFDIR | (mode & 0o7777);
        let r = self
            .core
            .mknod_umask(caller(req), parent.0, name.as_bytes(), mode, umask, 0, None);
        self.reply_entry(r, reply);
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.requests.count(Req::Unlink);
        Self::reply_empty(
            self.core.unlink(caller(req), parent.0, name.as_bytes()),
            reply,
        );
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.requests.count(Req::Rmdir);
        Self::reply_empty(
            self.core.rmdir(caller(req), parent.0, name.as_bytes()),
            reply,
        );
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        self.requests.count(Req::Symlink);
        let r = self.core.symlink(
            caller(req),
            parent.0,
            link_name.as_bytes(),
            target.as_os_str().as_bytes(),
        );
        self.reply_entry(r, reply);
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        self.requests.count(Req::Rename);
        let r = self.core.rename(
            caller(req),
            parent.0,
            name.as_bytes(),
            newparent.0,
            newname.as_bytes(),
            flags.bits(),
        );
        Self::reply_empty(r, reply);
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        self.requests.count(Req::Link);
        self.reply_entry(
            self.core.link(ino.0, newparent.0, newname.as_bytes()),
            reply,
        );
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        self.requests.count(Req::Open);
        if ino.0 == STATS_INO {
            if flags.0 & libc::O_ACCMODE != libc::O_RDONLY {
                return reply.error(Errno::EACCES);
            }
            let fh = self.fh();
            let text = Arc::new(self.stats_text());
            self.stats
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(fh, text);
            reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO);
            return;
        }
        match self.core.getattr(ino.0) {
            Ok(a) if a.is_dir() => reply.error(Errno::EISDIR),
            Ok(_) => match self.core.open_file(ino.0) {
                Ok(_) => reply.opened(FileHandle(self.fh()), self.open_flags(flags.0)),
                Err(e) => reply.error(errno(e)),
            },
            Err(e) => reply.error(errno(e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        self.requests.count(Req::Read);
        if ino.0 == STATS_INO {
            let text = self
                .stats
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&fh.0)
                .cloned()
                .unwrap_or_default();
            let s = (offset as usize).min(text.len());
            let e = (s + size as usize).min(text.len());
            reply.data(&text[s..e]);
            return;
        }
        match self.core.read(ino.0, offset, size) {
            Ok(d) => reply.data(&d),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyWrite,
    ) {
        self.requests.count(Req::Write);
        if ino.0 == STATS_INO {
            return reply.error(Errno::EBADF);
        }
        // With the writeback cache the kernel places appends itself.
        let append = flags.0 & libc::O_APPEND != 0 && !self.config.writeback_cache;
        let c = caller(req);
        let kill = c.uid != 0 || write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID);
        match self.core.write_ext(c, ino.0, offset, data, append, kill) {
            Ok(_) => reply.written(data.len() as u32),
            Err(e) => reply.error(errno(e)),
        }
    }

    /// No ioctls (Python asks every file it opens whether it is a
    /// terminal): answered quietly, since fuser's default logs a warning
    /// per call.
    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: fuser::IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: fuser::ReplyIoctl,
    ) {
        self.requests.count(Req::Ioctl);
        reply.error(Errno::ENOTTY);
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lo: fuser::LockOwner,
        reply: ReplyEmpty,
    ) {
        self.requests.count(Req::Flush);
        // Every write is in the WAL before its reply, so close(2) has
        // nothing to push. ENOSYS tells the kernel never to send FLUSH again
        // (it then treats close as succeeding): one round trip less per close.
        reply.error(Errno::ENOSYS);
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.requests.count(Req::Release);
        if ino.0 == STATS_INO {
            self.stats
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&fh.0);
            reply.ok();
            return;
        }
        Self::reply_empty(self.core.release_file(ino.0), reply);
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.requests.count(Req::Fsync);
        Self::reply_empty(self.core.sync(), reply);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.requests.count(Req::Opendir);
        match self.core.getattr(ino.0) {
            Ok(a) if a.is_dir() => match self.core.open_file(ino.0) {
                Ok(_) => reply.opened(FileHandle(self.fh()), FopenFlags::empty()),
                Err(e) => reply.error(errno(e)),
            },
            Ok(_) => reply.error(Errno::ENOTDIR),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        self.requests.count(Req::Readdir);
        let list = match self.dir_list(ino.0, fh.0, offset) {
            Ok(l) => l,
            Err(e) => return reply.error(errno(e)),
        };
        let parent = self.core.getattr(ino.0).map_or(ROOT_INO, |a| a.parent);
        let mut i = offset;
        while i < list.len() as u64 + 2 {
            let full = match i {
                0 => reply.add(ino, 1, FileType::Directory, "."),
                1 => reply.add(INodeNo(parent), 2, FileType::Directory, ".."),
                n => {
                    let (child, kind, name) = &list[(n - 2) as usize];
                    reply.add(
                        INodeNo(*child),
                        n + 1,
                        file_type(*kind),
                        OsStr::from_bytes(name),
                    )
                }
            };
            if full {
                break;
            }
            i += 1;
        }
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        self.requests.count(Req::Readdirplus);
        let list = match self.dir_list(ino.0, fh.0, offset) {
            Ok(l) => l,
            Err(e) => return reply.error(errno(e)),
        };
        let me = match self.core.getattr(ino.0) {
            Ok(a) => a,
            Err(e) => return reply.error(errno(e)),
        };
        let mut i = offset;
        while i < list.len() as u64 + 2 {
            let full = match i {
                0 => reply.add(ino, 1, ".", &TTL, &to_attr(&me), GEN),
                1 => match self.core.getattr(me.parent) {
                    Ok(p) => reply.add(INodeNo(me.parent), 2, "..", &TTL, &to_attr(&p), GEN),
                    Err(_) => false,
                },
                n => {
                    let (child, _, name) = &list[(n - 2) as usize];
                    match self.core.getattr(*child) {
                        Ok(a) => reply.add(
                            INodeNo(*child),
                            n + 1,
                            OsStr::from_bytes(name),
                            &TTL,
                            &to_attr(&a),
                            GEN,
                        ),
                        Err(_) => false,
                    }
                }
            };
            if full {
                break;
            }
            i += 1;
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.requests.count(Req::Releasedir);
        self.dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&fh.0);
        Self::reply_empty(self.core.release_file(ino.0), reply);
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.requests.count(Req::Fsyncdir);
        Self::reply_empty(self.core.sync(), reply);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        self.requests.count(Req::Statfs);
        let used = self.core.inodes_used();
        if let Some(d) = self.core.space.disk_space() {
            reply.statfs(
                d.blocks,
                d.bfree,
                d.bavail,
                used + d.ffree,
                d.ffree,
                d.bsize,
                255,
                d.frsize,
            );
            return;
        }
        reply.statfs(
            1 << 30,
            1 << 29,
            1 << 29,
            used + (1 << 30),
            1 << 30,
            4096,
            255,
            4096,
        );
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        self.requests.count(Req::Setxattr);
        if ino.0 == STATS_INO {
            return reply.error(Errno::EPERM);
        }
        Self::reply_empty(
            self.core
                .setxattr(caller(req), ino.0, name.as_bytes(), value, flags),
            reply,
        );
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        self.requests.count(Req::Getxattr);
        if ino.0 == STATS_INO {
            return reply.error(Errno::ENODATA);
        }
        match self.core.getxattr(caller(req), ino.0, name.as_bytes()) {
            Ok(v) if size == 0 => reply.size(v.len() as u32),
            Ok(v) if v.len() > size as usize => reply.error(Errno::ERANGE),
            Ok(v) => reply.data(&v),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        self.requests.count(Req::Listxattr);
        let r = if ino.0 == STATS_INO {
            Ok(Vec::new())
        } else {
            self.core.listxattr(caller(req), ino.0)
        };
        match r {
            Ok(v) if size == 0 => reply.size(v.len() as u32),
            Ok(v) if v.len() > size as usize => reply.error(Errno::ERANGE),
            Ok(v) => reply.data(&v),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.requests.count(Req::Removexattr);
        Self::reply_empty(
            self.core.removexattr(caller(req), ino.0, name.as_bytes()),
            reply,
        );
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        self.requests.count(Req::Access);
        if ino.0 == STATS_INO {
            return reply.ok();
        }
        Self::reply_empty(self.core.access(caller(req), ino.0, mask.bits()), reply);
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        self.requests.count(Req::Create);
        let mode = if mode & libc::S_IFMT == 0 {
            mode | libc::S_IFREG
        } else {
            mode
        };
        match self
            .core
            .mknod_umask(caller(req), parent.0, name.as_bytes(), mode, umask, 0, None)
        {
            Ok(a) => match self.core.open_file(a.ino) {
                Ok(_) => reply.created(
                    &TTL,
                    &to_attr(&a),
                    GEN,
                    FileHandle(self.fh()),
                    self.open_flags(flags),
                ),
                Err(e) => reply.error(errno(e)),
            },
            Err(e) => reply.error(errno(e)),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        self.requests.count(Req::Fallocate);
        Self::reply_empty(self.core.fallocate(ino.0, offset, length, mode), reply);
    }

    fn lseek(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        self.requests.count(Req::Lseek);
        match self.core.lseek(ino.0, offset, whence) {
            Ok(o) => reply.offset(o),
            Err(e) => reply.error(errno(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::core::Caller;
    use crate::fs::schema::{chunk_key, orphan_key};
    use crate::store::MemStore;

    const U: Caller = Caller {
        uid: 1000,
        gid: 1000,
    };

    #[test]
    fn new_formats_then_reclaims_orphans_of_a_dead_daemon() {
        let store = Arc::new(MemStore::new());
        let fs = FuseFs::new(store.clone(), FsConfig::default()).unwrap();
        let core = fs.core().clone();
        let a = core.create(U, ROOT_INO, b"a", 0o644).unwrap();
        core.write(U, a.ino, 0, &vec![1u8; 1 << 20], false).unwrap();
        core.open_file(a.ino).unwrap();
        core.unlink(U, ROOT_INO, b"a").unwrap();
        assert!(store.get(&orphan_key(a.ino)).unwrap().is_some());
        drop(core);
        drop(fs); // killed: no release ever comes
        let fs = FuseFs::new(store.clone(), FsConfig::default()).unwrap();
        assert_eq!(fs.core().getattr(a.ino).unwrap_err(), libc::ENOENT);
        assert!(store.get(&orphan_key(a.ino)).unwrap().is_none());
        let left = store
            .scan(&chunk_key(a.ino, 0), &chunk_key(a.ino + 1, 0), 10)
            .unwrap();
        assert!(left.is_empty());
    }

    #[test]
    fn attributes_translate() {
        let a = Attr {
            ino: 42,
            kind: KIND_SYMLINK,
            mode: libc::S_IFLNK | 0o777,
            nlink: 1,
            size: 1000,
            atime: -1_500_000_000,
            mtime: 1_700_000_000_123_456_789,
            ..Default::default()
        };
        let f = to_attr(&a);
        assert_eq!(f.kind, FileType::Symlink);
        assert_eq!(f.perm, 0o777);
        assert_eq!(f.blocks, 2);
        let sparse = Attr {
            kind: crate::fs::inode::KIND_FILE,
            mode: libc::S_IFREG | 0o644,
            size: 5 << 30,
            chunks: 1,
            ..a.clone()
        };
        assert_eq!(to_attr(&sparse).blocks, 8, "holes take no blocks");
        assert_eq!(ns(f.atime), -1_500_000_000);
        assert_eq!(ns(f.mtime), 1_700_000_000_123_456_789);
        assert_eq!(time_set(TimeOrNow::SpecificTime(time(5))), TimeSet::At(5));
    }
}
