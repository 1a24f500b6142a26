//! The `fuser` glue: the classic `/dev/fuse` transport.
//!
//! A request flows: the kernel queues it on the connection; one of fuser's
//! session threads reads it from its `/dev/fuse` descriptor, parses it and
//! calls the `fuser::Filesystem` method below, which counts it, calls the
//! `FsOps` method that answers it (see `ops`: all semantics live there and
//! in `core`) and hands the answer to fuser's reply type, which writes it
//! back to `/dev/fuse`. INIT is negotiated here for both transports; when
//! io_uring serves the mount (see `uring`), this loop still receives what
//! the kernel never routes through the ring: FORGET and INTERRUPT.
//!
//! lsmfs keeps no lookup counts (an unlinked file's data goes at its last
//! release, see `core`), so a FORGET is only a wake-up. On a ring mount it
//! is an expensive one: the kernel wakes a thread sleeping in `read` on
//! `/dev/fuse` for every forget it queues, and that thread is usually on
//! the other, idle CPU (on this VM each such wake-up is an exit to the
//! host: 10% of fs_mark's time went to the forgets of its unlinks). So on
//! a ring mount the thread that reads a FORGET (or a BATCH_FORGET) lingers
//! `FORGET_LINGER` before reading again; forgets queued meanwhile wake nobody and arrive
//! as one BATCH_FORGET. Nothing else comes through `/dev/fuse` once the
//! ring serves (INTERRUPT is ignored either way), so lingering delays no
//! request; on the classic transport the same threads serve everything
//! and never linger.

use super::core::{Caller, TimeSet};
use super::inode::{Attr, KIND_BLK, KIND_CHR, KIND_DIR, KIND_FIFO, KIND_SOCK, KIND_SYMLINK};
use super::ops::{self, DirEntry, Entry, FsOps, Negotiated, XattrOut, BLKSIZE};
use super::requests::Req;
use super::FsConfig;
use crate::store::Store;
use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen, ReplyStatfs, ReplyWrite,
    ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const GEN: Generation = Generation(0);
/// How long a `/dev/fuse` thread of a ring mount waits after a FORGET.
const FORGET_LINGER: Duration = Duration::from_millis(50);
/// What we ask the kernel for max_write and max_readahead.
pub const MAX_WRITE: u32 = 1 << 20;

pub struct FuseFs {
    ops: Arc<FsOps>,
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
        blksize: BLKSIZE,
        flags: 0,
    }
}

fn time_set(t: TimeOrNow) -> TimeSet {
    match t {
        TimeOrNow::Now => TimeSet::Now,
        TimeOrNow::SpecificTime(t) => TimeSet::At(ns(t)),
    }
}

fn reply_entry(r: Result<Entry, i32>, reply: ReplyEntry) {
    match r {
        Ok(e) => reply.entry(&e.ttl, &to_attr(&e.attr), GEN),
        Err(e) => reply.error(errno(e)),
    }
}

fn reply_attr(r: Result<Entry, i32>, reply: ReplyAttr) {
    match r {
        Ok(e) => reply.attr(&e.ttl, &to_attr(&e.attr)),
        Err(e) => reply.error(errno(e)),
    }
}

fn reply_empty(r: Result<(), i32>, reply: ReplyEmpty) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(errno(e)),
    }
}

fn reply_open(r: Result<ops::Opened, i32>, reply: ReplyOpen) {
    match r {
        Ok(o) => reply.opened(FileHandle(o.fh), FopenFlags::from_bits_retain(o.flags)),
        Err(e) => reply.error(errno(e)),
    }
}

fn reply_xattr(r: Result<XattrOut, i32>, reply: ReplyXattr) {
    match r {
        Ok(XattrOut::Size(n)) => reply.size(n),
        Ok(XattrOut::Data(v)) => reply.data(&v),
        Err(e) => reply.error(errno(e)),
    }
}

impl FuseFs {
    pub fn new(store: Arc<dyn Store>, config: FsConfig) -> std::io::Result<FuseFs> {
        Ok(FuseFs {
            ops: Arc::new(FsOps::new(store, config)?),
        })
    }

    pub fn core(&self) -> &Arc<super::core::FsCore> {
        self.ops.core()
    }

    /// The request handlers, shared with the io_uring transport.
    pub fn ops(&self) -> &Arc<FsOps> {
        &self.ops
    }

    fn count(&self, r: Req) {
        self.ops.dev_requests.count(r);
    }

    /// After a FORGET: let further forgets gather while the ring serves.
    /// fuser hands a BATCH_FORGET to `forget` one node at a time, all with
    /// the batch's request id; only its first node lingers.
    fn linger_after_forget(&self, req: &Request) {
        thread_local! {
            static LAST: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
        }
        let unique = req.unique().0;
        if LAST.with(|l| l.replace(unique)) == unique {
            return;
        }
        if matches!(self.ops.transport(), ops::Transport::IoUring { .. }) {
            std::thread::sleep(FORGET_LINGER);
        }
    }
}

impl fuser::Filesystem for FuseFs {
    fn forget(&self, req: &Request, _ino: INodeNo, _nlookup: u64) {
        self.linger_after_forget(req);
    }

    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let max_write = match config.set_max_write(MAX_WRITE) {
            Ok(_) => MAX_WRITE,
            Err(nearest) => {
                let _ = config.set_max_write(nearest);
                nearest
            }
        };
        let max_readahead = match config.set_max_readahead(MAX_WRITE) {
            Ok(_) => MAX_WRITE,
            Err(nearest) => {
                let _ = config.set_max_readahead(nearest);
                nearest
            }
        };
        let mut caps = InitFlags::FUSE_ASYNC_READ
            | InitFlags::FUSE_BIG_WRITES
            | InitFlags::FUSE_DO_READDIRPLUS
            | InitFlags::FUSE_READDIRPLUS_AUTO
            | InitFlags::FUSE_PARALLEL_DIROPS
            | InitFlags::FUSE_MAX_PAGES
            | InitFlags::FUSE_CACHE_SYMLINKS
            | InitFlags::FUSE_HANDLE_KILLPRIV_V2;
        if self.ops.config().writeback_cache {
            caps |= InitFlags::FUSE_WRITEBACK_CACHE;
        }
        if self.ops.config().io_uring {
            caps |= InitFlags::FUSE_OVER_IO_URING;
        }
        // POSIX ACLs: the kernel enforces them (under default_permissions)
        // and we store them and keep them in step with the mode; with
        // DONT_MASK the umask comes to us, to apply only where no default
        // ACL replaces it.
        if !self.ops.config().no_acl {
            caps |= InitFlags::FUSE_POSIX_ACL | InitFlags::FUSE_DONT_MASK;
        }
        let mut granted = InitFlags::empty();
        for flag in caps.iter() {
            if config.add_capabilities(flag).is_err() {
                log::debug!("kernel does not offer {flag:?}");
            } else {
                granted |= flag;
            }
        }
        let acl = !self.ops.config().no_acl
            && granted.contains(InitFlags::FUSE_POSIX_ACL | InitFlags::FUSE_DONT_MASK);
        self.ops.core().set_acls(acl);
        // Without the writeback cache a cached write is cut at every page
        // the cache does not hold whole: tar's 10 KiB records arrive as two
        // requests. A write-only descriptor cannot be read or mmap'd, so its
        // writes may bypass the cache (one request each) — safely since
        // FUSE 7.39 (Linux 6.6), which drops cached pages a direct write
        // covers, so readers through other descriptors never see stale data.
        let abi = config.kernel_abi();
        let direct = !self.ops.config().writeback_cache && (abi.0, abi.1) >= (7, 39);
        self.ops.set_direct_writes(direct);
        self.ops.set_negotiated(Negotiated {
            io_uring: granted.contains(InitFlags::FUSE_OVER_IO_URING),
            max_write,
            max_readahead,
            setxattr_ext: granted.contains(InitFlags::FUSE_SETXATTR_EXT),
        });
        log::info!(
            "kernel FUSE {}.{}; write-only opens direct: {direct}; POSIX ACLs: {acl}",
            abi.0,
            abi.1,
        );
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.count(Req::Lookup);
        reply_entry(self.ops.lookup(parent.0, name.as_bytes()), reply);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.count(Req::Getattr);
        reply_attr(self.ops.getattr(ino.0), reply);
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
        self.count(Req::Setattr);
        let s = super::core::SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: atime.map(time_set),
            mtime: mtime.map(time_set),
        };
        reply_attr(self.ops.setattr(caller(req), ino.0, s), reply);
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        self.count(Req::Readlink);
        match self.ops.readlink(ino.0) {
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
        self.count(Req::Mknod);
        let r = self
            .ops
            .mknod(caller(req), parent.0, name.as_bytes(), mode, umask, rdev);
        reply_entry(r, reply);
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
        self.count(Req::Mkdir);
        let r = self
            .ops
            .mkdir(caller(req), parent.0, name.as_bytes(), mode, umask);
        reply_entry(r, reply);
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.count(Req::Unlink);
        reply_empty(
            self.ops.unlink(caller(req), parent.0, name.as_bytes()),
            reply,
        );
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.count(Req::Rmdir);
        reply_empty(
            self.ops.rmdir(caller(req), parent.0, name.as_bytes()),
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
        self.count(Req::Symlink);
        let r = self.ops.symlink(
            caller(req),
            parent.0,
            link_name.as_bytes(),
            target.as_os_str().as_bytes(),
        );
        reply_entry(r, reply);
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
        self.count(Req::Rename);
        let r = self.ops.rename(
            caller(req),
            parent.0,
            name.as_bytes(),
            newparent.0,
            newname.as_bytes(),
            flags.bits(),
        );
        reply_empty(r, reply);
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        self.count(Req::Link);
        reply_entry(self.ops.link(ino.0, newparent.0, newname.as_bytes()), reply);
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        self.count(Req::Open);
        reply_open(self.ops.open(ino.0, flags.0), reply);
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
        self.count(Req::Read);
        match self.ops.read(ino.0, fh.0, offset, size) {
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
        self.count(Req::Write);
        let r = self.ops.write(
            caller(req),
            ino.0,
            offset,
            data,
            write_flags.bits(),
            flags.0,
        );
        match r {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(errno(e)),
        }
    }

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
        self.count(Req::Ioctl);
        reply.error(errno(self.ops.ioctl()));
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lo: fuser::LockOwner,
        reply: ReplyEmpty,
    ) {
        self.count(Req::Flush);
        reply_empty(self.ops.flush(), reply);
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
        self.count(Req::Release);
        reply_empty(self.ops.release(ino.0, fh.0), reply);
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.count(Req::Fsync);
        reply_empty(self.ops.fsync(), reply);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.count(Req::Opendir);
        reply_open(self.ops.opendir(ino.0), reply);
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        self.count(Req::Readdir);
        let mut add = |e: DirEntry| {
            reply.add(
                INodeNo(e.ino),
                e.next,
                file_type(e.kind),
                OsStr::from_bytes(e.name),
            )
        };
        match self.ops.readdir(ino.0, fh.0, offset, false, &mut add) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        self.count(Req::Readdirplus);
        let mut add = |e: DirEntry| match e.attr {
            Some(a) => reply.add(
                INodeNo(e.ino),
                e.next,
                OsStr::from_bytes(e.name),
                &ops::TTL,
                &to_attr(a),
                GEN,
            ),
            None => false,
        };
        match self.ops.readdir(ino.0, fh.0, offset, true, &mut add) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.count(Req::Releasedir);
        reply_empty(self.ops.releasedir(ino.0, fh.0), reply);
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.count(Req::Fsyncdir);
        reply_empty(self.ops.fsync(), reply);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        self.count(Req::Statfs);
        let s = self.ops.statfs();
        reply.statfs(
            s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.frsize,
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
        self.count(Req::Setxattr);
        let r = self
            .ops
            .setxattr(caller(req), ino.0, name.as_bytes(), value, flags);
        reply_empty(r, reply);
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        self.count(Req::Getxattr);
        let r = self.ops.getxattr(caller(req), ino.0, name.as_bytes(), size);
        reply_xattr(r, reply);
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        self.count(Req::Listxattr);
        reply_xattr(self.ops.listxattr(caller(req), ino.0, size), reply);
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.count(Req::Removexattr);
        let r = self.ops.removexattr(caller(req), ino.0, name.as_bytes());
        reply_empty(r, reply);
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        self.count(Req::Access);
        reply_empty(self.ops.access(caller(req), ino.0, mask.bits()), reply);
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
        self.count(Req::Create);
        let r = self
            .ops
            .create(caller(req), parent.0, name.as_bytes(), mode, umask, flags);
        match r {
            Ok((e, o)) => reply.created(
                &e.ttl,
                &to_attr(&e.attr),
                GEN,
                FileHandle(o.fh),
                FopenFlags::from_bits_retain(o.flags),
            ),
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
        self.count(Req::Fallocate);
        reply_empty(self.ops.fallocate(ino.0, offset, length, mode), reply);
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
        self.count(Req::Lseek);
        match self.ops.lseek(ino.0, offset, whence) {
            Ok(o) => reply.offset(o),
            Err(e) => reply.error(errno(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::core::Caller;
    use crate::fs::schema::{chunk_key, orphan_key, ROOT_INO};
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
