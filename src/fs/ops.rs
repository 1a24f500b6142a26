//! What each FUSE request does, whichever transport carried it.
//!
//! lsmfs has two transports: `fuse` (fuser's `/dev/fuse` loop) and `uring`
//! (FUSE over io_uring, one pinned queue per CPU). Both decode a request,
//! call the one method here that answers it, and encode what it returns;
//! nothing about semantics is decided in a transport. What lives here on
//! top of `FsCore` is what only FUSE has: TTLs, file and directory handles,
//! the hidden `.lsmfs-stats` file, and the per-transport request counts.
//!
//! Caching: we are the only writer, so the kernel may keep names and
//! attributes for `TTL` (every change goes through it and invalidates what
//! it touches), cache misses too (negative entries), keep a file's pages
//! across opens (FOPEN_KEEP_CACHE) and cache symlink targets.
//! On a shared store (etcd, other hosts writing) names and attributes are
//! still cached for `TTL` — the bound on how late another host's change is
//! seen, unless the store follows other clients' changes and `invalidate`
//! drops what they make stale at once — but pages only while a file is
//! open: each open drops them.

use super::core::{Caller, FsCore, SetAttr};
use super::inode::{Attr, KIND_FILE};
use super::requests::RequestCounts;
use super::schema::{ROOT_INO, STATS_INO, STATS_NAME};
use super::snapshots::{split_ino, Snapshots, View, SNAPSHOTS_INO, SNAPSHOTS_NAME};
use super::space::SpaceGuard;
use super::FsConfig;
use crate::store::Store;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// We are the only writer, so the kernel may cache names and attributes.
pub const TTL: Duration = Duration::from_secs(1);
/// Entries whose attributes a readdirplus on a shared store reads at once.
const READDIRPLUS_AHEAD: usize = 64;
/// `st_blksize` of every file: the chunk size.
pub const BLKSIZE: u32 = 4096;

/// FUSE's `FOPEN_*` reply flags (`include/uapi/linux/fuse.h`).
pub const FOPEN_DIRECT_IO: u32 = 1 << 0;
pub const FOPEN_KEEP_CACHE: u32 = 1 << 1;

/// The `FUSE_WRITE_KILL_SUIDGID` write flag.
pub const WRITE_KILL_SUIDGID: u32 = 1 << 2;

type DirList = Arc<Vec<(u64, u8, Vec<u8>)>>;

/// A name's answer: its attributes, cached by the kernel for `ttl`. An
/// `attr.ino` of 0 is a negative entry (the name does not exist).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub attr: Attr,
    pub ttl: Duration,
}

/// An open's answer: our handle and the `FOPEN_*` flags.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Opened {
    pub fh: u64,
    pub flags: u32,
}

/// A `statfs` answer, in `struct fuse_kstatfs` terms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Statfs {
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub bsize: u32,
    pub namelen: u32,
    pub frsize: u32,
}

/// A getxattr/listxattr answer: the size the caller needs (when it asked
/// with size 0), or the bytes.
#[derive(Debug, Clone, PartialEq)]
pub enum XattrOut {
    Size(u32),
    Data(Vec<u8>),
}

/// One directory entry handed to a transport's packer: the child's inode,
/// the offset of the entry after it, its kind, its name and (readdirplus)
/// its attributes. The packer returns true when its buffer is full.
pub struct DirEntry<'a> {
    pub ino: u64,
    pub next: u64,
    pub kind: u8,
    pub name: &'a [u8],
    pub attr: Option<&'a Attr>,
}

/// Which transport serves the mount, for `.lsmfs-stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    DevFuse { threads: usize },
    IoUring { queues: usize },
}

/// Which tree an inode number is in (see `snapshots`).
enum At {
    Live(u64),
    Stats,
    /// `.snapshots`
    Dir,
    /// An inode of a snapshot's tree (its own number there).
    View(Arc<View>, u64),
}

/// EROFS for an inode of `.snapshots` or a snapshot's tree.
fn live_only(ino: u64) -> Result<(), i32> {
    if ino == SNAPSHOTS_INO || split_ino(ino).is_some() {
        Err(libc::EROFS)
    } else {
        Ok(())
    }
}

pub struct FsOps {
    core: Arc<FsCore>,
    snaps: Snapshots,
    config: FsConfig,
    next_fh: AtomicU64,
    dirs: Mutex<HashMap<u64, DirList>>,
    stats: Mutex<HashMap<u64, Arc<Vec<u8>>>>,
    /// Requests served through `/dev/fuse` (fuser's loop).
    pub dev_requests: RequestCounts,
    /// Requests served through the io_uring queues.
    pub ring_requests: RequestCounts,
    /// Those of them a ring thread handed to its worker pool (see `uring`).
    pub ring_worker_requests: RequestCounts,
    /// Write-only opens bypass the page cache (set at init, see `fuse`).
    direct_writes: AtomicBool,
    transport: Mutex<Transport>,
    negotiated: Mutex<Option<Negotiated>>,
}

/// What INIT settled that the io_uring transport needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// The kernel accepted FUSE_OVER_IO_URING.
    pub io_uring: bool,
    pub max_write: u32,
    pub max_readahead: u32,
    /// FUSE_SETXATTR_EXT: setxattr requests carry the 16-byte header.
    pub setxattr_ext: bool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl FsOps {
    pub fn new(store: Arc<dyn Store>, config: FsConfig) -> std::io::Result<FsOps> {
        let mut core = FsCore::open(store, config.sync_always, config.read_only).map_err(|e| {
            let kind = std::io::Error::from_raw_os_error(e.errno).kind();
            std::io::Error::new(kind, e.reason)
        })?;
        if let Some(dir) = &config.statfs_path {
            core.space = SpaceGuard::new(dir, config.space_reserve);
        }
        Ok(FsOps {
            snaps: Snapshots::new(config.snapshot_owner),
            core: Arc::new(core),
            config,
            next_fh: AtomicU64::new(1),
            dirs: Mutex::new(HashMap::new()),
            stats: Mutex::new(HashMap::new()),
            dev_requests: RequestCounts::default(),
            ring_requests: RequestCounts::default(),
            ring_worker_requests: RequestCounts::default(),
            direct_writes: AtomicBool::new(false),
            transport: Mutex::new(Transport::DevFuse { threads: 1 }),
            negotiated: Mutex::new(None),
        })
    }

    pub fn core(&self) -> &Arc<FsCore> {
        &self.core
    }

    pub fn config(&self) -> &FsConfig {
        &self.config
    }

    pub fn set_direct_writes(&self, on: bool) {
        self.direct_writes.store(on, Ordering::Relaxed);
    }

    pub fn set_transport(&self, t: Transport) {
        *lock(&self.transport) = t;
    }

    pub fn transport(&self) -> Transport {
        *lock(&self.transport)
    }

    pub fn set_negotiated(&self, n: Negotiated) {
        *lock(&self.negotiated) = Some(n);
    }

    /// None until INIT has been answered.
    pub fn negotiated(&self) -> Option<Negotiated> {
        *lock(&self.negotiated)
    }

    fn at(&self, ino: u64) -> Result<At, i32> {
        Ok(match ino {
            STATS_INO => At::Stats,
            SNAPSHOTS_INO => At::Dir,
            _ => match split_ino(ino) {
                None => At::Live(ino),
                Some((id, inner)) => At::View(self.snaps.by_id(self.core.store(), id)?, inner),
            },
        })
    }

    fn fh(&self) -> u64 {
        self.next_fh.fetch_add(1, Ordering::Relaxed)
    }

    fn stats_text(&self) -> Vec<u8> {
        let mut text = self.core.store().stats_text();
        text.push_str(&self.core.space.text());
        if self.core.shared() {
            text.push_str(&format!("conflicts_retried    {}\n", self.core.conflicts()));
        }
        text.push_str(&match self.transport() {
            Transport::DevFuse { threads } => {
                format!("transport            /dev/fuse, {threads} threads\n")
            }
            Transport::IoUring { queues } => {
                format!("transport            io_uring, {queues} queues\n")
            }
        });
        let (dev, ring) = (&self.dev_requests, &self.ring_requests);
        let total = RequestCounts::default();
        total.add(dev);
        total.add(ring);
        text.push_str(&total.text("fuse_requests"));
        text.push_str(&ring.text("io_uring_requests"));
        text.push_str(&self.ring_worker_requests.text("io_uring_workers"));
        text.push_str(&dev.text("dev_fuse_requests"));
        text.into_bytes()
    }

    fn stats_attr(&self) -> Attr {
        let t = super::core::now_ns();
        Attr {
            ino: STATS_INO,
            kind: KIND_FILE,
            mode: libc::S_IFREG | 0o444,
            nlink: 1,
            size: self.stats_text().len() as u64,
            atime: t,
            mtime: t,
            ctime: t,
            ..Default::default()
        }
    }

    /// How a file opened with `flags` is served: through the page cache
    /// (kept across opens: every change goes through this kernel), or
    /// direct for a write-only descriptor when the kernel allows it.
    fn open_flags(&self, flags: i32) -> u32 {
        if self.direct_writes.load(Ordering::Relaxed) && flags & libc::O_ACCMODE == libc::O_WRONLY {
            FOPEN_DIRECT_IO
        } else if self.core.shared() {
            // Another host may have changed the file: each open drops the
            // kernel's pages of it (close-to-open consistency).
            0
        } else {
            FOPEN_KEEP_CACHE
        }
    }

    fn entry(r: Result<Attr, i32>) -> Result<Entry, i32> {
        r.map(|attr| Entry { attr, ttl: TTL })
    }

    /// A miss is cached by the kernel for `TTL` (a negative entry is inode
    /// 0); our own creates replace it.
    pub fn lookup(&self, parent: u64, name: &[u8]) -> Result<Entry, i32> {
        if parent == ROOT_INO && name == STATS_NAME {
            return Ok(Entry {
                attr: self.stats_attr(),
                ttl: Duration::ZERO,
            });
        }
        if parent == ROOT_INO && name == SNAPSHOTS_NAME {
            return Self::entry(self.snaps.dir_attr(&self.core));
        }
        let found = match self.at(parent)? {
            At::Live(p) => self.core.relaxed(|| self.core.lookup(p, name)),
            At::Stats => Err(libc::ENOTDIR),
            At::Dir => self
                .snaps
                .by_name(self.core.store(), name)
                .and_then(|v| Ok(v.attr(v.core.getattr(ROOT_INO)?))),
            At::View(v, p) => v.core.lookup(p, name).map(|a| v.attr(a)),
        };
        match found {
            Err(libc::ENOENT) => Ok(Entry {
                attr: Attr::default(),
                ttl: TTL,
            }),
            r => Self::entry(r),
        }
    }

    pub fn getattr(&self, ino: u64) -> Result<Entry, i32> {
        if ino == STATS_INO {
            return Ok(Entry {
                attr: self.stats_attr(),
                ttl: Duration::ZERO,
            });
        }
        Self::entry(self.core.relaxed(|| self.attr_of(ino)))
    }

    /// An inode's attributes, whichever tree it is in.
    fn attr_of(&self, ino: u64) -> Result<Attr, i32> {
        match self.at(ino)? {
            At::Live(i) => self.core.getattr(i),
            At::Stats => Ok(self.stats_attr()),
            At::Dir => self.snaps.dir_attr(&self.core),
            At::View(v, i) => v.core.getattr(i).map(|a| v.attr(a)),
        }
    }

    pub fn setattr(&self, c: Caller, ino: u64, s: SetAttr) -> Result<Entry, i32> {
        if ino == STATS_INO {
            return Err(libc::EPERM);
        }
        live_only(ino)?;
        Self::entry(self.core.atomically(|| self.core.setattr(c, ino, s)))
    }

    pub fn readlink(&self, ino: u64) -> Result<Vec<u8>, i32> {
        match self.at(ino)? {
            At::Live(i) => self.core.readlink(i),
            At::View(v, i) => v.core.readlink(i),
            At::Stats | At::Dir => Err(libc::EINVAL),
        }
    }

    pub fn mknod(
        &self,
        c: Caller,
        parent: u64,
        name: &[u8],
        mode: u32,
        umask: u32,
        rdev: u32,
    ) -> Result<Entry, i32> {
        live_only(parent)?;
        Self::entry(self.core.atomically(|| {
            self.core
                .mknod_umask(c, parent, name, mode, umask, rdev, None)
        }))
    }

    pub fn mkdir(
        &self,
        c: Caller,
        parent: u64,
        name: &[u8],
        mode: u32,
        umask: u32,
    ) -> Result<Entry, i32> {
        if parent == SNAPSHOTS_INO {
            return Self::entry(self.snaps.create(&self.core, c, name));
        }
        live_only(parent)?;
        let mode = libc::S_IFDIR | (mode & 0o7777);
        Self::entry(
            self.core
                .atomically(|| self.core.mknod_umask(c, parent, name, mode, umask, 0, None)),
        )
    }

    pub fn unlink(&self, c: Caller, parent: u64, name: &[u8]) -> Result<(), i32> {
        live_only(parent)?;
        self.core.atomically(|| self.core.unlink(c, parent, name))
    }

    pub fn rmdir(&self, c: Caller, parent: u64, name: &[u8]) -> Result<(), i32> {
        if parent == SNAPSHOTS_INO {
            return self.snaps.delete(&self.core, c, name);
        }
        live_only(parent)?;
        self.core.atomically(|| self.core.rmdir(c, parent, name))
    }

    pub fn symlink(
        &self,
        c: Caller,
        parent: u64,
        name: &[u8],
        target: &[u8],
    ) -> Result<Entry, i32> {
        live_only(parent)?;
        Self::entry(
            self.core
                .atomically(|| self.core.symlink(c, parent, name, target)),
        )
    }

    pub fn rename(
        &self,
        c: Caller,
        parent: u64,
        name: &[u8],
        newparent: u64,
        newname: &[u8],
        flags: u32,
    ) -> Result<(), i32> {
        live_only(parent)?;
        live_only(newparent)?;
        self.core
            .atomically(|| self.core.rename(c, parent, name, newparent, newname, flags))
    }

    pub fn link(&self, ino: u64, newparent: u64, newname: &[u8]) -> Result<Entry, i32> {
        live_only(ino)?;
        live_only(newparent)?;
        Self::entry(
            self.core
                .atomically(|| self.core.link(ino, newparent, newname)),
        )
    }

    pub fn open(&self, ino: u64, flags: i32) -> Result<Opened, i32> {
        if ino == STATS_INO {
            if flags & libc::O_ACCMODE != libc::O_RDONLY {
                return Err(libc::EACCES);
            }
            let fh = self.fh();
            lock(&self.stats).insert(fh, Arc::new(self.stats_text()));
            return Ok(Opened {
                fh,
                flags: FOPEN_DIRECT_IO,
            });
        }
        let (core, i) = match self.at(ino)? {
            At::Live(i) => (None, i),
            At::View(v, i) => {
                if flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0 {
                    return Err(libc::EROFS);
                }
                (Some(v), i)
            }
            At::Dir => return Err(libc::EISDIR),
            At::Stats => return Err(libc::EACCES),
        };
        let core = core.as_ref().map_or(&*self.core, |v| &v.core);
        if core.getattr(i)?.is_dir() {
            return Err(libc::EISDIR);
        }
        core.open_file(i)?;
        Ok(Opened {
            fh: self.fh(),
            flags: self.open_flags(flags),
        })
    }

    pub fn read(&self, ino: u64, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>, i32> {
        if ino == STATS_INO {
            let text = lock(&self.stats).get(&fh).cloned().unwrap_or_default();
            let s = (offset.min(text.len() as u64)) as usize;
            let e = (s + size as usize).min(text.len());
            return Ok(text[s..e].to_vec());
        }
        match self.at(ino)? {
            At::View(v, i) => v.core.read(i, offset, size),
            _ => self.core.read(ino, offset, size),
        }
    }

    /// `write_flags` are FUSE's (`WRITE_KILL_SUIDGID`), `flags` the open's.
    pub fn write(
        &self,
        c: Caller,
        ino: u64,
        offset: u64,
        data: &[u8],
        write_flags: u32,
        flags: i32,
    ) -> Result<u32, i32> {
        if ino == STATS_INO {
            return Err(libc::EBADF);
        }
        live_only(ino)?;
        // With the writeback cache the kernel places appends itself.
        let append = flags & libc::O_APPEND != 0 && !self.config.writeback_cache;
        let kill = c.uid != 0 || write_flags & WRITE_KILL_SUIDGID != 0;
        self.core
            .atomically(|| self.core.write_ext(c, ino, offset, data, append, kill))?;
        Ok(data.len() as u32)
    }

    /// No ioctls (Python asks every file it opens whether it is a
    /// terminal): the errno every ioctl gets.
    pub fn ioctl(&self) -> i32 {
        libc::ENOTTY
    }

    /// Every write is in the WAL before its reply, so close(2) has nothing
    /// to push. ENOSYS tells the kernel never to send FLUSH again (it then
    /// treats close as succeeding): one round trip less per close.
    pub fn flush(&self) -> Result<(), i32> {
        Err(libc::ENOSYS)
    }

    pub fn release(&self, ino: u64, fh: u64) -> Result<(), i32> {
        if ino == STATS_INO {
            lock(&self.stats).remove(&fh);
            return Ok(());
        }
        self.release_ino(ino)
    }

    /// Drop an open count, in whichever tree (a deleted snapshot's view
    /// is gone, and its counts with it).
    fn release_ino(&self, ino: u64) -> Result<(), i32> {
        match self.at(ino) {
            // The handle is dropped once; only the store part may re-run.
            Ok(At::Live(i)) if self.core.drop_handle(i) => {
                // Only this host leaves an inode it has open unlinked (another
                // host's unlink deletes it at once), and relaxed reads see
                // this host's writes: an inode read as linked needs no
                // linearizable re-read before nothing is done.
                if self
                    .core
                    .relaxed(|| self.core.getattr(i))
                    .is_ok_and(|a| a.nlink > 0)
                {
                    return Ok(());
                }
                self.core.atomically(|| self.core.reclaim_if_unlinked(i))
            }
            Ok(At::Live(_)) => Ok(()),
            Ok(At::View(v, i)) => v.core.release_file(i),
            Ok(At::Dir | At::Stats) | Err(libc::ENOENT) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// fsync and fsyncdir: the WAL is synced (every change is in it).
    pub fn fsync(&self) -> Result<(), i32> {
        self.core.sync()
    }

    pub fn opendir(&self, ino: u64) -> Result<Opened, i32> {
        match self.at(ino)? {
            At::Live(i) => {
                let dir = |a: &Attr| {
                    if a.is_dir() {
                        Ok(())
                    } else {
                        Err(libc::ENOTDIR)
                    }
                };
                self.core.relaxed(|| self.core.open_checked(i, dir))?;
            }
            At::View(v, i) => {
                if !v.core.getattr(i)?.is_dir() {
                    return Err(libc::ENOTDIR);
                }
                v.core.open_file(i)?;
            }
            At::Dir => {}
            At::Stats => return Err(libc::ENOTDIR),
        }
        Ok(Opened {
            fh: self.fh(),
            flags: 0,
        })
    }

    /// The listing is taken at offset 0 and kept with the handle, so a
    /// directory read in several requests is one consistent snapshot.
    fn dir_list(&self, ino: u64, fh: u64, offset: u64) -> Result<DirList, i32> {
        let mut dirs = lock(&self.dirs);
        if offset == 0 || !dirs.contains_key(&fh) {
            let list = Arc::new(self.list_dir(ino)?);
            dirs.insert(fh, list);
        }
        dirs.get(&fh).cloned().ok_or(libc::EBADF)
    }

    /// A directory's entries with the mount's inode numbers.
    fn list_dir(&self, ino: u64) -> Result<Vec<(u64, u8, Vec<u8>)>, i32> {
        use super::inode::KIND_DIR;
        match self.at(ino)? {
            At::Live(i) => {
                let mut list = self.core.list_dir(i)?;
                if i == ROOT_INO {
                    // Shadowed by the mount's own (see `snapshots`).
                    list.retain(|e| e.2 != SNAPSHOTS_NAME);
                }
                Ok(list)
            }
            At::View(v, i) => Ok(v
                .core
                .list_dir(i)?
                .into_iter()
                .map(|(c, k, n)| (v.outer(c), k, n))
                .collect()),
            At::Dir => Ok(self
                .snaps
                .list(self.core.store())?
                .into_iter()
                .map(|s| {
                    let ino = super::snapshots::outer_ino(s.id, ROOT_INO);
                    (ino, KIND_DIR, s.name.into_bytes())
                })
                .collect()),
            At::Stats => Err(libc::ENOTDIR),
        }
    }

    /// Hand the entries from `offset` on to `add` until it is full: `.`
    /// and `..` first, then the listing. With `plus`, each carries its
    /// attributes; one whose attributes cannot be read ends the batch.
    /// On a shared store the point reads here are relaxed
    /// (`FsCore::relaxed`); the listing's scan and the entries' attributes
    /// read together (`FsCore::getattr_many`) are not.
    pub fn readdir(
        &self,
        ino: u64,
        fh: u64,
        offset: u64,
        plus: bool,
        add: &mut dyn FnMut(DirEntry) -> bool,
    ) -> Result<(), i32> {
        use super::inode::KIND_DIR;
        let relaxed_attr = |i| self.core.relaxed(|| self.attr_of(i));
        let list = self.core.relaxed(|| self.dir_list(ino, fh, offset))?;
        let me = if plus { Some(relaxed_attr(ino)?) } else { None };
        // `..` is only sent from offsets 0 and 1: later requests (the
        // empty one that ends every listing) need not read the parent.
        let parent = match &me {
            Some(a) => a.parent,
            None if offset <= 1 => relaxed_attr(ino).map_or(ROOT_INO, |a| a.parent),
            None => ROOT_INO,
        };
        // On a shared store, the attributes of the entries likely to fit
        // (and of `..`) are read in one request, not one each.
        let mut ahead = HashMap::new();
        if plus && self.core.shared() && !matches!(self.at(ino), Ok(At::View(..))) {
            let from = offset.saturating_sub(2) as usize;
            let mut inos: Vec<u64> = list
                .iter()
                .skip(from)
                .take(READDIRPLUS_AHEAD)
                .map(|(c, _, _)| *c)
                .collect();
            if offset <= 1 {
                inos.push(parent);
            }
            ahead = self.core.getattr_many(&inos);
        }
        let mut i = offset;
        while i < list.len() as u64 + 2 {
            let (child, kind, name): (u64, u8, &[u8]) = match i {
                0 => (ino, KIND_DIR, b"."),
                1 => (parent, KIND_DIR, b".."),
                n => {
                    let (c, k, name) = &list[(n - 2) as usize];
                    (*c, *k, name)
                }
            };
            let attr = match (plus, i) {
                (false, _) => None,
                (true, 0) => me.clone(),
                (true, _) => match ahead.remove(&child).map_or_else(|| relaxed_attr(child), Ok) {
                    Ok(a) => Some(a),
                    // Gone since the listing was taken: skipped.
                    Err(_) => {
                        i += 1;
                        continue;
                    }
                },
            };
            let e = DirEntry {
                ino: child,
                next: i + 1,
                kind,
                name,
                attr: attr.as_ref(),
            };
            if add(e) {
                break;
            }
            i += 1;
        }
        Ok(())
    }

    pub fn releasedir(&self, ino: u64, fh: u64) -> Result<(), i32> {
        lock(&self.dirs).remove(&fh);
        self.release_ino(ino)
    }

    pub fn statfs(&self) -> Statfs {
        let used = self.core.inodes_used();
        match self.core.space.disk_space() {
            Some(d) => Statfs {
                blocks: d.blocks,
                bfree: d.bfree,
                bavail: d.bavail,
                files: used + d.ffree,
                ffree: d.ffree,
                bsize: d.bsize,
                namelen: 255,
                frsize: d.frsize,
            },
            None => Statfs {
                blocks: 1 << 30,
                bfree: 1 << 29,
                bavail: 1 << 29,
                files: used + (1 << 30),
                ffree: 1 << 30,
                bsize: 4096,
                namelen: 255,
                frsize: 4096,
            },
        }
    }

    pub fn setxattr(
        &self,
        c: Caller,
        ino: u64,
        name: &[u8],
        value: &[u8],
        flags: i32,
    ) -> Result<(), i32> {
        if ino == STATS_INO {
            return Err(libc::EPERM);
        }
        live_only(ino)?;
        self.core
            .atomically(|| self.core.setxattr(c, ino, name, value, flags))
    }

    fn xattr_out(v: Vec<u8>, size: u32) -> Result<XattrOut, i32> {
        if size == 0 {
            Ok(XattrOut::Size(v.len() as u32))
        } else if v.len() > size as usize {
            Err(libc::ERANGE)
        } else {
            Ok(XattrOut::Data(v))
        }
    }

    pub fn getxattr(&self, c: Caller, ino: u64, name: &[u8], size: u32) -> Result<XattrOut, i32> {
        let v = match self.at(ino)? {
            At::Live(i) => self.core.getxattr(c, i, name)?,
            At::View(v, i) => v.core.getxattr(c, i, name)?,
            At::Stats | At::Dir => return Err(libc::ENODATA),
        };
        Self::xattr_out(v, size)
    }

    pub fn listxattr(&self, c: Caller, ino: u64, size: u32) -> Result<XattrOut, i32> {
        let v = match self.at(ino)? {
            At::Live(i) => self.core.listxattr(c, i)?,
            At::View(v, i) => v.core.listxattr(c, i)?,
            At::Stats | At::Dir => Vec::new(),
        };
        Self::xattr_out(v, size)
    }

    pub fn removexattr(&self, c: Caller, ino: u64, name: &[u8]) -> Result<(), i32> {
        live_only(ino)?;
        self.core.atomically(|| self.core.removexattr(c, ino, name))
    }

    pub fn access(&self, c: Caller, ino: u64, mask: i32) -> Result<(), i32> {
        match self.at(ino)? {
            At::Live(i) => self.core.access(c, i, mask),
            At::View(_, _) | At::Dir if mask & libc::W_OK != 0 => Err(libc::EROFS),
            At::View(v, i) => v.core.access(c, i, mask),
            At::Stats | At::Dir => Ok(()),
        }
    }

    pub fn create(
        &self,
        c: Caller,
        parent: u64,
        name: &[u8],
        mode: u32,
        umask: u32,
        flags: i32,
    ) -> Result<(Entry, Opened), i32> {
        live_only(parent)?;
        let mode = if mode & libc::S_IFMT == 0 {
            mode | libc::S_IFREG
        } else {
            mode
        };
        let a = self
            .core
            .atomically(|| self.core.mknod_umask(c, parent, name, mode, umask, 0, None))?;
        self.core.open_file(a.ino)?;
        let opened = Opened {
            fh: self.fh(),
            flags: self.open_flags(flags),
        };
        Ok((Entry { attr: a, ttl: TTL }, opened))
    }

    pub fn fallocate(&self, ino: u64, offset: u64, length: u64, mode: i32) -> Result<(), i32> {
        live_only(ino)?;
        self.core
            .atomically(|| self.core.fallocate(ino, offset, length, mode))
    }

    pub fn lseek(&self, ino: u64, offset: i64, whence: i32) -> Result<i64, i32> {
        match self.at(ino)? {
            At::View(v, i) => v.core.lseek(i, offset, whence),
            _ => self.core.lseek(ino, offset, whence),
        }
    }
}
