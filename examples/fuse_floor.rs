//! The floor under lsmfs's large-file writes: the cheapest FUSE file a
//! sequential writer can talk to, on the same `fuser` session lsmfs uses
//! (4 threads, cloned `/dev/fuse` fds, 1 MiB writes, direct writes).
//!
//! `fuse_floor MOUNTPOINT null` answers each WRITE at once: what the
//! transport alone costs. `fuse_floor MOUNTPOINT file BACKING` `pwrite`s
//! each request to BACKING and `fdatasync`s it on FSYNC: one page-cache
//! copy, as any store must make, and nothing else. `scripts/fuse-floor.sh`
//! runs both beside plain ext4 and lsmfs; the gap between `file` and lsmfs
//! is what lsmfs's write path costs (see docs/performance.md).
//!
//! One directory (inode 1) holding at most one file (inode 2) of any name.

use fuser::{
    BsdFileFlags, Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, InitFlags, KernelConfig, LockOwner, MountOption, OpenFlags, ReplyAttr,
    ReplyCreate, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const TTL: Duration = Duration::from_secs(1);
const FILE_INO: u64 = 2;

struct Floor {
    backing: Option<File>,
    size: AtomicU64,
}

impl Floor {
    fn attr(&self, ino: u64) -> FileAttr {
        let dir = ino != FILE_INO;
        let size = if dir {
            0
        } else {
            self.size.load(Ordering::Relaxed)
        };
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: UNIX_EPOCH,
            mtime: UNIX_EPOCH,
            ctime: UNIX_EPOCH,
            crtime: UNIX_EPOCH,
            kind: if dir {
                FileType::Directory
            } else {
                FileType::RegularFile
            },
            perm: if dir { 0o755 } else { 0o644 },
            nlink: if dir { 2 } else { 1 },
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }
}

impl Filesystem for Floor {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        if let Err(nearest) = config.set_max_write(1 << 20) {
            let _ = config.set_max_write(nearest);
        }
        for flag in [InitFlags::FUSE_BIG_WRITES, InitFlags::FUSE_MAX_PAGES] {
            let _ = config.add_capabilities(flag);
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEntry) {
        reply.entry(&TTL, &self.attr(FILE_INO), Generation(0));
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        reply.attr(&TTL, &self.attr(ino.0));
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        if let Some(s) = size {
            self.size.store(s, Ordering::Relaxed);
        }
        reply.attr(&TTL, &self.attr(ino.0));
    }

    fn create(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        self.size.store(0, Ordering::Relaxed);
        let attr = self.attr(FILE_INO);
        reply.created(
            &TTL,
            &attr,
            Generation(0),
            FileHandle(1),
            FopenFlags::FOPEN_DIRECT_IO,
        );
    }

    fn open(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.opened(FileHandle(1), FopenFlags::FOPEN_DIRECT_IO);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        if let Some(b) = &self.backing {
            if let Err(e) = b.write_all_at(data, offset) {
                eprintln!("fuse_floor: backing write at {offset}: {e}");
                reply.error(Errno::EIO);
                return;
            }
        }
        self.size
            .fetch_max(offset + data.len() as u64, Ordering::Relaxed);
        reply.written(data.len() as u32);
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.backing.as_ref().map(File::sync_data) {
            Some(Err(e)) => {
                eprintln!("fuse_floor: backing fdatasync: {e}");
                reply.error(Errno::EIO);
            }
            _ => reply.ok(),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn unlink(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        self.size.store(0, Ordering::Relaxed);
        reply.ok();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: fuse_floor MOUNTPOINT null | fuse_floor MOUNTPOINT file BACKING";
    let backing = match (args.get(2).map(String::as_str), args.get(3)) {
        (Some("null"), None) => None,
        (Some("file"), Some(path)) => {
            match File::options()
                .create(true)
                .write(true)
                .truncate(true)
                .open(path)
            {
                Ok(f) => Some(f),
                Err(e) => {
                    eprintln!("fuse_floor: {path}: {e}");
                    std::process::exit(1);
                }
            }
        }
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let Some(mountpoint) = args.get(1) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let mut config = Config::default();
    config.n_threads = Some(4);
    config.clone_fd = true;
    config.mount_options = vec![MountOption::FSName("fuse_floor".into())];
    let fs = Floor {
        backing,
        size: AtomicU64::new(0),
    };
    if let Err(e) = fuser::mount(fs, mountpoint, &config) {
        eprintln!("fuse_floor: mount on {mountpoint}: {e}");
        std::process::exit(1);
    }
}
