//! The filesystem state and the machinery every operation shares: opening
//! (format, validation, recovery), locking, the inode allocator, the inode
//! cache, and committing batches. The operations themselves live in
//! `namespace` (entries), `data` (file contents and attributes) and `xattr`,
//! all as methods of [`FsCore`]: plain functions over the store returning
//! errno values (`i32`), callable without a kernel.
//!
//! # Atomicity
//! Every operation that changes state builds one [`Batch`] with all its key
//! changes and commits it once, so a crash shows it whole or not at all. The
//! one exception is an unlinked file that is still open (below), which an
//! `O` key makes restartable.
//!
//! # Concurrency
//! FUSE requests arrive on several threads. Readers (lookup, getattr, read,
//! readdir, getxattr) take no lock: each store read sees some committed
//! batch. Writers lock the inodes whose records they read-modify-write, in
//! a striped lock table (`STRIPES` mutexes, an inode maps to one): a write
//! locks its file, a create locks the parent, an unlink the parent and the
//! victim, a rename both parents and both names' inodes. Several stripes are
//! always taken in ascending stripe order, so two operations can never wait
//! on each other in a cycle. An operation that must know an entry's inode
//! before locking it reads the entry, locks, and reads it again — retrying if
//! it changed in between.
//!
//! A rename that moves a directory to another parent also takes the rename
//! mutex first (before any stripe): its "not into its own subtree" check
//! walks the `parent` fields up to the root, and only such renames change
//! those fields, so the walk sees a stable tree.
//!
//! The open counts, the allocator and the cache shards have their own small
//! mutexes, taken last and never held while taking another.
//!
//! # Inode numbers
//! `M next_ino` holds a high-water mark: every number ever handed out is
//! below it. The allocator hands out numbers below the persisted mark and,
//! when it runs out, first commits a mark `INO_RESERVE` higher. After a
//! crash the allocator restarts at the mark, so a number is never reused.
//!
//! # Reclaiming space
//! An unlink or truncate deletes the chunks in its own batch: one deletion
//! per chunk for a small file, one range deletion (`Batch::delete_range`)
//! for a big one, so removing a file of any size is one small batch. When
//! the last name of an inode goes while it is open, the operation's batch
//! sets nlink to 0 and writes an `O` (orphan) key; the last release deletes
//! the inode and its `O` key in one batch. If the daemon dies in between,
//! [`FsCore::open`] finishes the job before serving anything. (Older builds
//! also wrote `O` keys for big truncates, deleting the chunks past the size
//! in bounded batches; such a key left by a crash is finished the same
//! way.)

use super::cache::AttrCache;
use super::inode::{Attr, KIND_DIR, KIND_FILE, KIND_SYMLINK};
use super::schema::*;
use super::space::SpaceGuard;
use crate::store::{Batch, BatchOp, Store};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

pub use super::data::{SetAttr, TimeSet};

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

/// Chunks past which an unlink or truncate deletes a file's chunks with
/// one range deletion instead of one deletion each.
pub(super) const MAX_INLINE_DELETES: usize = 256;
pub(super) const NAME_MAX: usize = 255;
/// Inode numbers reserved by one write of the high-water mark.
const INO_RESERVE: u64 = 1024;
const STRIPES: usize = 1024;
/// Memory for decoded inode records.
const CACHE_BYTES: usize = 32 << 20;

struct Alloc {
    next: u64,
    /// Persisted high-water mark: every number handed out is below it.
    hwm: u64,
}

pub struct FsCore {
    pub(super) store: Arc<dyn Store>,
    sync_always: bool,
    pub read_only: bool,
    /// Room kept on the data directory's disk (see `space`).
    pub space: SpaceGuard,
    stripes: Vec<Mutex<()>>,
    pub(super) rename_lock: Mutex<()>,
    alloc: Mutex<Alloc>,
    /// Open handles per inode (files and directories).
    open: Mutex<HashMap<u64, u32>>,
    cache: AttrCache,
    /// POSIX ACLs are stored and kept in step with the mode (the kernel
    /// enforces them: FUSE_POSIX_ACL was granted at init).
    acls: std::sync::atomic::AtomicBool,
    /// Other hosts write the store too (see `shared`): no inode cache,
    /// inode numbers claimed by compared commits.
    shared: bool,
    /// Operations re-run after another host's commit conflicted.
    conflicts: std::sync::atomic::AtomicU64,
    /// Unlinks that left an open inode behind, for `room_for`.
    releases: Releases,
}

/// A `close(2)` on a FUSE mount returns before the kernel sends RELEASE
/// (it is sent in the background), so a file closed and then removed may
/// still be open here for a moment: its unlink leaves an orphan whose data
/// goes only at that RELEASE. An operation refused for room within
/// `RELEASE_GRACE` of such an unlink waits for the release (and the
/// reclaim it makes due) before it gives up, as it would have found the
/// room had the RELEASE come first. A file kept open longer holds its space,
/// as on any filesystem.
#[derive(Default)]
struct Releases {
    /// When an unlink last left an open orphan; how many orphans the last
    /// releases reclaimed so far.
    state: Mutex<(Option<std::time::Instant>, u64)>,
    reclaimed: std::sync::Condvar,
}

/// How long after an unlink of an open file a refused operation waits for
/// its RELEASE.
const RELEASE_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

impl Releases {
    fn orphaned(&self) {
        lock(&self.state).0 = Some(std::time::Instant::now());
    }

    fn reclaimed(&self) {
        lock(&self.state).1 += 1;
        self.reclaimed.notify_all();
    }

    /// Wait for the next orphan's reclaim while an unlink that left one is
    /// at most `RELEASE_GRACE` old; whether one came.
    fn wait(&self) -> bool {
        let mut st = lock(&self.state);
        let seen = st.1;
        loop {
            if st.1 != seen {
                return true;
            }
            let Some(left) =
                st.0.and_then(|at| {
                    (at + RELEASE_GRACE).checked_duration_since(std::time::Instant::now())
                })
                .filter(|d| !d.is_zero())
            else {
                return false;
            };
            st = self
                .reclaimed
                .wait_timeout(st, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Held stripes of the lock table; released on drop.
pub(super) struct InodeLocks<'a> {
    _guards: Vec<MutexGuard<'a, ()>>,
}

/// How long an operation that found the disk full waits for a compaction
/// that gives deleted data's space back.
const RECLAIM_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// What a new name and inode add to the store, about (for `room_for`).
pub(super) const NEW_ENTRY_BYTES: u64 = 256;

pub(super) fn io_errno(e: std::io::Error) -> i32 {
    e.raw_os_error()
        .or_else(|| super::shared::errno_of(&e))
        .unwrap_or(libc::EIO)
}

pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

pub(super) fn chunks_for(size: u64) -> u64 {
    size.div_ceil(CHUNK_SIZE)
}

/// The end of `ino`'s chunk range (exclusive).
pub(super) fn chunk_range_end(ino: u64) -> Vec<u8> {
    let mut end = vec![b'C'];
    end.extend(prefix_end(&ino.to_be_bytes()));
    end
}

fn stripe_of(ino: u64) -> usize {
    (ino.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as usize % STRIPES
}

/// Why a store could not be opened as a filesystem: the errno, and a line
/// for the user (the mount prints it, so a refused store says why).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenError {
    pub errno: i32,
    pub reason: String,
}

impl OpenError {
    /// A store this build will not serve (EIO), logged as an error.
    fn refused(reason: String) -> OpenError {
        log::error!("{reason}");
        OpenError {
            errno: libc::EIO,
            reason,
        }
    }
}

impl From<i32> for OpenError {
    fn from(errno: i32) -> OpenError {
        OpenError {
            errno,
            reason: std::io::Error::from_raw_os_error(errno).to_string(),
        }
    }
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl FsCore {
    /// Whether POSIX ACLs are on (see `acl`).
    pub fn acls(&self) -> bool {
        self.acls.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Turn POSIX ACLs on: only when the kernel enforces them.
    pub fn set_acls(&self, on: bool) {
        self.acls.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Format an empty store or check an existing one, then finish any
    /// reclaim a crash interrupted (unless read-only).
    pub fn open(
        store: Arc<dyn Store>,
        sync_always: bool,
        read_only: bool,
    ) -> Result<FsCore, OpenError> {
        Self::open_cached(store, sync_always, read_only, CACHE_BYTES)
    }

    /// A snapshot's tree (see `snapshots`): read-only, with a cache of
    /// `cache_bytes` (a mount may have many open).
    pub fn open_view(store: Arc<dyn Store>, cache_bytes: usize) -> Result<FsCore, OpenError> {
        Self::open_cached(store, false, true, cache_bytes)
    }

    fn open_cached(
        store: Arc<dyn Store>,
        sync_always: bool,
        read_only: bool,
        cache_bytes: usize,
    ) -> Result<FsCore, OpenError> {
        let format = store.get(&meta_key("format")).map_err(io_errno)?;
        let hwm = match format {
            None => Self::format(&store)?,
            Some(v) => {
                let ver = v
                    .get(..4)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                let older = ver.filter(|v| FORMAT_UPGRADABLE.contains(v));
                if ver != Some(FORMAT_VERSION) && older.is_none() {
                    let found = ver.map_or("an unreadable format record".into(), |v| {
                        format!("format {v}")
                    });
                    return Err(OpenError::refused(format!(
                        "the store holds a filesystem of {found}; this lsmfs reads formats \
                         {} and {FORMAT_VERSION} only",
                        FORMAT_UPGRADABLE.map(|v| v.to_string()).join(", ")
                    )));
                }
                if let (Some(old), false) = (older, read_only) {
                    let mut b = Batch::new();
                    b.put(meta_key("format"), FORMAT_VERSION.to_be_bytes().to_vec());
                    store.write(b, true).map_err(io_errno)?;
                    log::info!(
                        "filesystem format {old} upgraded to {FORMAT_VERSION} \
                         (inode records count their chunks; files may hold extents)"
                    );
                }
                let hwm = store
                    .get(&meta_key("next_ino"))
                    .map_err(io_errno)?
                    .and_then(|v| be64(&v));
                let Some(hwm) = hwm else {
                    return Err(OpenError::refused(
                        "the filesystem has no inode high-water mark (M next_ino)".into(),
                    ));
                };
                if store.get(&inode_key(ROOT_INO)).map_err(io_errno)?.is_none() {
                    return Err(OpenError::refused(
                        "the filesystem has no root inode".into(),
                    ));
                }
                hwm.max(FIRST_INO)
            }
        };
        let shared = store.shared();
        let store = if shared {
            super::shared::Tracked::wrap(store)
        } else {
            store
        };
        let core = FsCore {
            store,
            sync_always,
            read_only,
            space: SpaceGuard::unlimited(),
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            rename_lock: Mutex::new(()),
            alloc: Mutex::new(Alloc { next: hwm, hwm }),
            open: Mutex::new(HashMap::new()),
            cache: AttrCache::new(cache_bytes),
            acls: std::sync::atomic::AtomicBool::new(false),
            shared,
            conflicts: std::sync::atomic::AtomicU64::new(0),
            releases: Releases::default(),
        };
        if !read_only {
            core.recover()?;
        }
        Ok(core)
    }

    fn format(store: &Arc<dyn Store>) -> Result<u64, OpenError> {
        if !store.scan(b"", &[0xff], 1).map_err(io_errno)?.is_empty() {
            return Err(OpenError::refused(
                "the store holds keys but no filesystem format record".into(),
            ));
        }
        let t = now_ns();
        // The root belongs to whoever formats, as mke2fs makes it: a user
        // mounting through fusermount3 can then write in their own mount.
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let root = Attr {
            ino: ROOT_INO,
            kind: KIND_DIR,
            mode: libc::S_IFDIR | 0o755,
            nlink: 2,
            uid,
            gid,
            atime: t,
            mtime: t,
            ctime: t,
            parent: ROOT_INO,
            ..Default::default()
        };
        let mut uuid = [0u8; 16];
        if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
            let _ = std::io::Read::read_exact(&mut f, &mut uuid);
        }
        if uuid == [0u8; 16] {
            uuid[..8].copy_from_slice(&t.to_be_bytes());
            uuid[8..12].copy_from_slice(&std::process::id().to_be_bytes());
        }
        let uuid: String = uuid.iter().map(|b| format!("{b:02x}")).collect();
        let mut b = Batch::new();
        b.put(meta_key("format"), FORMAT_VERSION.to_be_bytes().to_vec());
        b.put(meta_key("uuid"), uuid.clone().into_bytes());
        b.put(meta_key("next_ino"), FIRST_INO.to_be_bytes().to_vec());
        b.put(inode_key(ROOT_INO), root.encode());
        store.write(b, true).map_err(io_errno)?;
        log::info!("formatted a new filesystem (uuid {uuid})");
        Ok(FIRST_INO)
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Whether other hosts write the store too (see `shared`).
    pub fn shared(&self) -> bool {
        self.shared
    }

    pub(super) fn count_conflict(&self) {
        self.conflicts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Operations re-run because another host's commit conflicted.
    pub fn conflicts(&self) -> u64 {
        self.conflicts.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Lock the stripes of `inos` in ascending order.
    pub(super) fn lock_inodes(&self, inos: &[u64]) -> InodeLocks<'_> {
        let mut idx: Vec<usize> = inos.iter().map(|&i| stripe_of(i)).collect();
        idx.sort_unstable();
        idx.dedup();
        InodeLocks {
            _guards: idx
                .into_iter()
                .map(|i| self.stripes[i].lock().unwrap_or_else(|p| p.into_inner()))
                .collect(),
        }
    }

    pub(super) fn writable(&self) -> FsResult<()> {
        if self.read_only {
            Err(libc::EROFS)
        } else {
            Ok(())
        }
    }

    /// May an operation add about `bytes` to the store? ENOSPC near full,
    /// unless deletions since the last try give space back: then this waits
    /// (a few seconds at most) for the compaction that frees it, and for
    /// the RELEASE of a file just closed and removed (see `Releases`).
    pub(super) fn room_for(&self, bytes: u64) -> FsResult<()> {
        if self.space.admit(bytes).is_ok() {
            return Ok(());
        }
        loop {
            while self.store.reclaim_space(RECLAIM_WAIT) {
                if self.space.admit_now(bytes).is_ok() {
                    return Ok(());
                }
            }
            if !self.releases.wait() {
                break;
            }
            if self.space.admit_now(bytes).is_ok() {
                return Ok(());
            }
        }
        self.space.warn_full(|| {
            let n = self.store.snapshots().map_or(0, |s| s.len());
            if n == 0 {
                String::new()
            } else {
                format!(
                    "; {n} snapshot(s) keep what they see on disk, which no compaction \
                     frees: delete one (`lsmfs snapshot delete MOUNTPOINT NAME`, see \
                     `lsmfs stats` for what each holds alone) to give its space back"
                )
            }
        });
        Err(libc::ENOSPC)
    }

    /// Commit one operation's batch (synced with `sync_always`).
    pub(super) fn commit(&self, b: Batch) -> FsResult<()> {
        self.writable()?;
        self.apply(b, self.sync_always)
    }

    /// Write a batch and write its inode records through to the cache.
    /// On failure the cache forgets them (the batch may or may not be in).
    fn apply(&self, b: Batch, sync: bool) -> FsResult<()> {
        let mut touched: Vec<(u64, Option<Attr>)> = Vec::new();
        for op in &b.ops {
            let (k, v) = match op {
                BatchOp::Put(k, v) => (k, Some(v)),
                BatchOp::Delete(k) => (k, None),
                BatchOp::DeleteRange(..) => continue,
            };
            if let Some(Key::Inode(ino)) = parse_key(k) {
                let attr = v.and_then(|v| Attr::decode(v).ok()).map(|mut a| {
                    a.ino = ino;
                    a
                });
                touched.push((ino, attr));
            }
        }
        match self.store.write(b, sync) {
            Ok(()) if self.shared => Ok(()),
            Ok(()) => {
                for (ino, a) in touched {
                    match a {
                        Some(a) => self.cache.put(ino, a),
                        None => self.cache.remove(ino),
                    }
                }
                Ok(())
            }
            Err(e) => {
                for (ino, _) in touched {
                    self.cache.remove(ino);
                }
                Err(io_errno(e))
            }
        }
    }

    pub fn sync(&self) -> FsResult<()> {
        self.store.sync().map_err(io_errno)
    }

    /// A fresh inode number (never handed out before, even across crashes).
    pub(super) fn alloc_ino(&self) -> FsResult<u64> {
        let mut a = self.alloc.lock().unwrap_or_else(|p| p.into_inner());
        if a.next >= a.hwm {
            let mut b = Batch::new();
            if self.shared {
                // Other mounts claim ranges too: start past the newest
                // mark, and commit only if it is still the newest.
                let mark = self.store.get(&meta_key("next_ino")).map_err(io_errno)?;
                a.next = a
                    .next
                    .max(mark.as_deref().and_then(be64).unwrap_or(FIRST_INO));
                b.expect(meta_key("next_ino"), mark);
            }
            // Only a damaged `next_ino` gets near 2^64: out of inodes.
            let hwm = a.next.checked_add(INO_RESERVE).ok_or(libc::ENOSPC)?;
            b.put(meta_key("next_ino"), hwm.to_be_bytes().to_vec());
            self.writable()?;
            self.store.write(b, false).map_err(io_errno)?;
            a.hwm = hwm;
        }
        let ino = a.next;
        if ino >= super::snapshots::MAX_INODE {
            // The numbers above are snapshots' on the mount.
            return Err(libc::ENOSPC);
        }
        a.next += 1;
        Ok(ino)
    }

    /// Inodes in use (approximately: the allocator's position).
    pub fn inodes_used(&self) -> u64 {
        let a = self.alloc.lock().unwrap_or_else(|p| p.into_inner());
        a.next - FIRST_INO + 1
    }

    /// Finish reclaims recorded by `O` keys (interrupted by a crash).
    pub fn recover(&self) -> FsResult<()> {
        let mut start = vec![b'O'];
        let end = vec![b'P'];
        let (mut inodes, mut truncated) = (0, 0);
        loop {
            let orphans = self.store.scan(&start, &end, 256).map_err(io_errno)?;
            let Some((last, _)) = orphans.last() else {
                break;
            };
            start = last.clone();
            start.push(0);
            for (k, _) in &orphans {
                match parse_key(k) {
                    Some(Key::Orphan(ino)) => {
                        if self.reclaim(ino)? {
                            inodes += 1;
                        } else {
                            truncated += 1;
                        }
                    }
                    _ => log::warn!("recovery: ignoring malformed orphan key {k:02x?}"),
                }
            }
        }
        if inodes + truncated > 0 {
            log::info!(
                "recovery: reclaimed {inodes} unlinked inode(s) and the cut-off data of {truncated} truncated file(s)"
            );
        }
        Ok(())
    }

    pub fn getattr(&self, ino: u64) -> FsResult<Attr> {
        if self.shared {
            // Another host may have changed it: always the store's.
            let v = self.store.get(&inode_key(ino)).map_err(io_errno)?;
            return decode_inode(ino, &v.ok_or(libc::ENOENT)?);
        }
        if let Some(a) = self.cache.get(ino) {
            return Ok(a);
        }
        let seen = self.cache.version(ino);
        let v = self.store.get(&inode_key(ino)).map_err(io_errno)?;
        let a = decode_inode(ino, &v.ok_or(libc::ENOENT)?)?;
        self.cache.fill(ino, &a, seen);
        Ok(a)
    }

    /// On a shared store, the attributes of `inos` read together (one
    /// request; see `Store::get_many`), for the ones that exist; empty
    /// elsewhere (where `getattr` has the cache and a local store).
    pub fn getattr_many(&self, inos: &[u64]) -> HashMap<u64, Attr> {
        if !self.shared || inos.is_empty() {
            return HashMap::new();
        }
        let keys: Vec<Vec<u8>> = inos.iter().map(|&i| inode_key(i)).collect();
        let Ok(values) = self.store.get_many(&keys) else {
            return HashMap::new();
        };
        inos.iter()
            .zip(values)
            .filter_map(|(&ino, v)| Some((ino, decode_inode(ino, &v?).ok()?)))
            .collect()
    }

    pub(super) fn dir_attr(&self, ino: u64) -> FsResult<Attr> {
        let a = self.getattr(ino)?;
        if !a.is_dir() {
            return Err(libc::ENOTDIR);
        }
        Ok(a)
    }

    pub(super) fn put_attr(b: &mut Batch, a: &Attr) {
        b.put(inode_key(a.ino), a.encode());
    }

    /// Delete every key of an unreachable inode into `b`. A small file's
    /// chunk keys are deleted one by one; a bigger file's (or one whose
    /// size does not bound its chunks) go with one range deletion, so the
    /// batch stays small whatever the file's size.
    pub(super) fn delete_inode_keys(&self, ino: u64, b: &mut Batch) -> FsResult<()> {
        let known = self.getattr(ino).ok();
        // Inline files have no chunks and most inodes no xattrs: skip what
        // cannot find anything.
        let may_have_chunks = known
            .as_ref()
            .is_none_or(|a| a.kind == KIND_FILE && a.inline.is_none());
        if may_have_chunks {
            // Chunks lie past the size only while a reclaim is pending (`O`
            // key); otherwise a small file's chunk keys are known: delete
            // each index below the size, existing or a hole. Point
            // deletions of a few keys cost readers less than a tombstone
            // (which every lookup in its range consults until compaction
            // drops it).
            let blind = known
                .as_ref()
                .map(|a| chunks_for(a.size))
                .filter(|&n| n <= MAX_INLINE_DELETES as u64);
            match blind {
                Some(n)
                    if self
                        .store
                        .get(&orphan_key(ino))
                        .map_err(io_errno)?
                        .is_none() =>
                {
                    for idx in 0..n {
                        b.delete(chunk_key(ino, idx));
                    }
                }
                _ => {
                    b.delete_range(chunk_key(ino, 0), chunk_range_end(ino));
                    // A pending reclaim (if that is why we got here) is done too.
                    b.delete(orphan_key(ino));
                }
            }
        }
        if known.as_ref().is_none_or(|a| a.has_xattrs) {
            self.delete_xattr_keys(ino, b)?;
        }
        if known.as_ref().is_none_or(|a| a.kind == KIND_SYMLINK) {
            b.delete(symlink_key(ino));
        }
        b.delete(inode_key(ino));
        Ok(())
    }

    /// Drop one link of `a` (a directory: its last) inside batch `b`: the
    /// last link of an inode nobody has open deletes it in the same batch;
    /// of an open one, leaves it with nlink 0 and an `O` key for the last
    /// release.
    pub(super) fn drop_link(&self, a: &mut Attr, b: &mut Batch, t: i64) -> FsResult<()> {
        a.nlink = if a.is_dir() {
            0
        } else {
            a.nlink.saturating_sub(1)
        };
        a.ctime = t;
        if a.nlink > 0 {
            Self::put_attr(b, a);
            return Ok(());
        }
        if self.open_count(a.ino) > 0 {
            Self::put_attr(b, a);
            b.put(orphan_key(a.ino), Vec::new());
            self.releases.orphaned();
            return Ok(());
        }
        self.delete_inode_keys(a.ino, b)
    }

    /// Finish what an `O` key records, in one batch with its deletion:
    /// delete the inode with all its keys when its link count is 0, else
    /// the data beyond its size (an interrupted truncate of an older
    /// build). Returns true if the inode itself went. The caller holds the
    /// inode's lock, or the inode is unreachable and not open.
    pub(super) fn reclaim(&self, ino: u64) -> FsResult<bool> {
        let attr = match self.getattr(ino) {
            Ok(a) => Some(a),
            Err(libc::ENOENT) => None,
            Err(e) => return Err(e),
        };
        let gone = attr.as_ref().is_none_or(|a| a.nlink == 0);
        let mut b = Batch::new();
        match &attr {
            Some(a) if !gone => {
                b.delete_range(chunk_key(ino, chunks_for(a.size)), chunk_range_end(ino));
            }
            _ => self.delete_inode_keys(ino, &mut b)?,
        }
        b.delete(orphan_key(ino));
        self.apply(b, false)?;
        Ok(gone)
    }

    pub(super) fn open_count(&self, ino: u64) -> u32 {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(&ino).copied().unwrap_or(0)
    }

    /// Count an open handle (file or directory). An inode without names is
    /// only openable while another handle keeps it (e.g. /proc/PID/fd/N).
    pub fn open_file(&self, ino: u64) -> FsResult<Attr> {
        self.open_checked(ino, |_| Ok(()))
    }

    /// `open_file`, refusing with `check`'s errno an inode it rejects (one
    /// read of the inode for both).
    pub fn open_checked(&self, ino: u64, check: impl Fn(&Attr) -> FsResult<()>) -> FsResult<Attr> {
        let _g = self.lock_inodes(&[ino]);
        let a = self.getattr(ino)?;
        check(&a)?;
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ino).or_insert(0);
        if a.nlink == 0 && *n == 0 {
            open.remove(&ino);
            return Err(libc::ENOENT);
        }
        *n += 1;
        Ok(a)
    }

    /// Drop an open handle; the last one of an unlinked inode reclaims it.
    pub fn release_file(&self, ino: u64) -> FsResult<()> {
        if !self.drop_handle(ino) {
            return Ok(());
        }
        self.reclaim_if_unlinked(ino)
    }

    /// Drop one open handle of `ino` (memory only, so never to be re-run
    /// by `atomically`); whether it was the last.
    pub fn drop_handle(&self, ino: u64) -> bool {
        let _g = self.lock_inodes(&[ino]);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        match open.get_mut(&ino) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                open.remove(&ino);
                true
            }
            None => false,
        }
    }

    /// After the last handle went: reclaim `ino` if it is unlinked and
    /// nobody opened it again (an unlinked inode cannot be). Safe to run
    /// again: a reclaimed inode is gone.
    pub fn reclaim_if_unlinked(&self, ino: u64) -> FsResult<()> {
        if self.read_only {
            return Ok(());
        }
        let g = self.lock_inodes(&[ino]);
        if self
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&ino)
        {
            return Ok(());
        }
        match self.getattr(ino) {
            Ok(a) if a.nlink == 0 => {
                // Unreachable and no longer open: nobody else can touch it.
                drop(g);
                let r = self.reclaim(ino).map(|_| ());
                self.releases.reclaimed();
                r
            }
            _ => Ok(()),
        }
    }

    /// Permission check for `access(2)` (with `default_permissions` the
    /// kernel answers it itself; this serves mounts without it).
    pub fn access(&self, c: Caller, ino: u64, mask: i32) -> FsResult<()> {
        let a = self.getattr(ino)?;
        if mask == libc::F_OK {
            return Ok(());
        }
        if c.uid == 0 {
            if mask & libc::X_OK != 0 && !a.is_dir() && a.mode & 0o111 == 0 {
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

    /// Cached inode records: (entries, bytes).
    pub fn cache_usage(&self) -> (usize, usize) {
        self.cache.usage()
    }

    #[cfg(test)]
    pub(super) fn drop_cache(&self) {
        self.cache.clear();
    }
}

/// Convenience for tests and tools: `st_mode` for a kind and permissions.
pub fn mode_of(kind: u8, perm: u32) -> u32 {
    super::inode::type_bits(kind) | (perm & 0o7777)
}

/// Inode `ino`'s record, decoded (EIO, logged, if it cannot be).
fn decode_inode(ino: u64, v: &[u8]) -> FsResult<Attr> {
    let mut a = Attr::decode(v).map_err(|e| {
        log::error!("inode {ino}: {e}");
        libc::EIO
    })?;
    a.ino = ino;
    Ok(a)
}

#[cfg(test)]
pub(super) mod testutil {
    use super::*;
    use crate::store::MemStore;

    pub const U: Caller = Caller {
        uid: 1000,
        gid: 1000,
    };
    pub const OTHER: Caller = Caller {
        uid: 2000,
        gid: 2000,
    };

    pub fn fs() -> (Arc<MemStore>, FsCore) {
        let store = Arc::new(MemStore::new());
        let core = FsCore::open(store.clone(), false, false).expect("open");
        (store, core)
    }

    /// A `MemStore` that remembers the size of every batch written to it.
    #[derive(Default)]
    pub struct CountingStore {
        pub inner: MemStore,
        pub batch_sizes: Mutex<Vec<usize>>,
    }

    impl Store for CountingStore {
        fn get(&self, key: &[u8]) -> std::io::Result<Option<Vec<u8>>> {
            self.inner.get(key)
        }
        fn scan(
            &self,
            start: &[u8],
            end: &[u8],
            limit: usize,
        ) -> std::io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
            self.inner.scan(start, end, limit)
        }
        fn write(&self, batch: Batch, sync: bool) -> std::io::Result<()> {
            self.batch_sizes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(batch.len());
            self.inner.write(batch, sync)
        }
        fn sync(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A filesystem over a `CountingStore`.
    pub fn counted_fs() -> (Arc<CountingStore>, FsCore) {
        let store = Arc::new(CountingStore::default());
        let core = FsCore::open(store.clone(), false, false).expect("open");
        (store, core)
    }

    pub fn keys_with_prefix(store: &MemStore, prefix: &[u8]) -> usize {
        store
            .scan(prefix, &prefix_end(prefix), usize::MAX)
            .expect("scan")
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;
    use crate::store::MemStore;

    #[test]
    fn format_then_validate() {
        let (store, f) = fs();
        let root = f.getattr(ROOT_INO).unwrap();
        assert!(root.is_dir());
        assert_eq!(root.nlink, 2);
        assert!(store.get(&meta_key("uuid")).unwrap().is_some());
        drop(f);
        FsCore::open(store.clone(), false, false).unwrap();
        // A store with keys but no format record is refused, never formatted over.
        let other = Arc::new(MemStore::new());
        let mut b = Batch::new();
        b.put(b"Zjunk".to_vec(), b"x".to_vec());
        other.write(b, false).unwrap();
        assert_eq!(
            FsCore::open(other, false, false).err().map(|e| e.errno),
            Some(libc::EIO)
        );
        // An unknown format version is refused.
        let mut b = Batch::new();
        b.put(meta_key("format"), 99u32.to_be_bytes().to_vec());
        store.write(b, false).unwrap();
        let e = FsCore::open(store, false, false).err();
        assert_eq!(e.as_ref().map(|e| e.errno), Some(libc::EIO));
        assert!(e.is_some_and(|e| e.reason.contains("format 99")));
    }

    /// A format-2 store (inode records without a chunk count) is read as
    /// it is, and marked the current format only by a read-write open.
    #[test]
    fn format_2_is_read_and_upgraded() {
        let (store, f) = fs();
        let a = f.create(U, ROOT_INO, b"f", 0o644).unwrap();
        f.write(U, a.ino, 0, &vec![7u8; 2 * CHUNK_SIZE as usize + 1], false)
            .unwrap();
        let a = f.getattr(a.ino).unwrap();
        drop(f);
        let mut b = Batch::new();
        b.put(meta_key("format"), 2u32.to_be_bytes().to_vec());
        b.put(inode_key(a.ino), super::super::inode::encode_v1(&a));
        store.write(b, false).unwrap();
        let format = || store.get(&meta_key("format")).unwrap();
        let ro = FsCore::open(store.clone(), false, true).unwrap();
        assert_eq!(ro.getattr(a.ino).unwrap().chunks, 3);
        assert_eq!(format(), Some(2u32.to_be_bytes().to_vec()));
        drop(ro);
        let rw = FsCore::open(store.clone(), false, false).unwrap();
        assert_eq!(format(), Some(FORMAT_VERSION.to_be_bytes().to_vec()));
        assert_eq!(rw.getattr(a.ino).unwrap(), a);
        rw.write(U, a.ino, 0, b"new", false).unwrap();
        assert_eq!(rw.getattr(a.ino).unwrap().chunks, 3);
        assert_eq!(rw.read(a.ino, 0, 4).unwrap(), b"new\x07");
    }

    /// A format-3 store (page chunks only) is read as it is, marked format
    /// 4 by a read-write open, and then takes extents beside its chunks.
    #[test]
    fn format_3_is_read_and_upgraded() {
        let (store, f) = fs();
        let a = f.create(U, ROOT_INO, b"f", 0o644).unwrap();
        let old: Vec<u8> = (0..40 * CHUNK_SIZE as usize).map(|i| i as u8).collect();
        for (i, page) in old.chunks(CHUNK_SIZE as usize).enumerate() {
            f.write(U, a.ino, i as u64 * CHUNK_SIZE, page, false)
                .unwrap();
        }
        drop(f);
        let mut b = Batch::new();
        b.put(meta_key("format"), 3u32.to_be_bytes().to_vec());
        store.write(b, false).unwrap();
        let format = || store.get(&meta_key("format")).unwrap();
        let ro = FsCore::open(store.clone(), false, true).unwrap();
        assert_eq!(ro.read(a.ino, 0, 1 << 20).unwrap(), old);
        assert_eq!(format(), Some(3u32.to_be_bytes().to_vec()));
        drop(ro);
        let rw = FsCore::open(store.clone(), false, false).unwrap();
        assert_eq!(format(), Some(4u32.to_be_bytes().to_vec()));
        let slot = vec![9u8; EXTENT_SIZE as usize];
        rw.write(U, a.ino, 0, &slot, false).unwrap();
        let got = rw.read(a.ino, 0, 1 << 20).unwrap();
        assert_eq!(got[..slot.len()], slot[..]);
        assert_eq!(got[slot.len()..], old[slot.len()..]);
        assert_eq!(rw.getattr(a.ino).unwrap().chunks, 40);
    }

    #[test]
    fn read_only_refuses_changes_and_skips_recovery() {
        let (store, f) = fs();
        f.create(U, ROOT_INO, b"a", 0o644).unwrap();
        drop(f);
        let ro = FsCore::open(store, false, true).unwrap();
        assert_eq!(ro.lookup(ROOT_INO, b"a").unwrap().size, 0);
        assert_eq!(
            ro.create(U, ROOT_INO, b"b", 0o644).unwrap_err(),
            libc::EROFS
        );
        assert_eq!(ro.unlink(U, ROOT_INO, b"a").unwrap_err(), libc::EROFS);
    }

    /// Build a tree, "crash" (drop without any shutdown), reopen: every
    /// operation is there, the allocator never hands out a used number, and
    /// an open-unlinked file and a big truncate are reclaimed.
    #[test]
    fn crash_and_remount() {
        let (store, f) = fs();
        let d = f.mkdir(U, ROOT_INO, b"d", 0o755).unwrap();
        let e = f.mkdir(U, d.ino, b"e", 0o700).unwrap();
        let a = f.create(U, e.ino, b"a", 0o644).unwrap();
        f.write(U, a.ino, 0, b"small", false).unwrap();
        let big = f.create(U, d.ino, b"big", 0o644).unwrap();
        f.write(U, big.ino, 0, &vec![3u8; 1 << 20], false).unwrap();
        f.link(a.ino, ROOT_INO, b"hard").unwrap();
        f.symlink(U, ROOT_INO, b"sym", b"d/e/a").unwrap();
        f.rename(U, ROOT_INO, b"d", ROOT_INO, b"d2", 0).unwrap();
        f.setxattr(U, a.ino, b"user.x", b"1", 0).unwrap();
        let gone = f.create(U, ROOT_INO, b"gone", 0o644).unwrap();
        f.write(U, gone.ino, 0, &vec![1u8; 1 << 20], false).unwrap();
        f.open_file(gone.ino).unwrap();
        f.unlink(U, ROOT_INO, b"gone").unwrap();
        let mut last = 0;
        for i in 0..1500 {
            last = f
                .create(U, e.ino, format!("n{i}").as_bytes(), 0o600)
                .unwrap()
                .ino;
        }
        drop(f);

        let f = FsCore::open(store.clone(), false, false).unwrap();
        let d2 = f.lookup(ROOT_INO, b"d2").unwrap();
        assert_eq!(d2.ino, d.ino);
        let e2 = f.lookup(d2.ino, b"e").unwrap();
        let a2 = f.lookup(e2.ino, b"a").unwrap();
        assert_eq!(a2.nlink, 2);
        assert_eq!(f.read(a2.ino, 0, 100).unwrap(), b"small");
        assert_eq!(f.getxattr(U, a2.ino, b"user.x").unwrap(), b"1");
        assert_eq!(
            f.readlink(f.lookup(ROOT_INO, b"sym").unwrap().ino).unwrap(),
            b"d/e/a"
        );
        assert_eq!(f.lookup(d2.ino, b"big").unwrap().size, 1 << 20);
        assert_eq!(f.list_dir(e2.ino).unwrap().len(), 1501);
        assert_eq!(f.getattr(gone.ino).unwrap_err(), libc::ENOENT);
        assert_eq!(keys_with_prefix(&store, &orphan_key(gone.ino)), 0);
        assert_eq!(keys_with_prefix(&store, &chunk_key(gone.ino, 0)[..9]), 0);
        let next = f.create(U, ROOT_INO, b"new", 0o644).unwrap().ino;
        assert!(next > last, "{next} reused (last {last})");
    }

    #[test]
    fn interrupted_truncate_is_finished_at_mount() {
        let (store, f) = fs();
        let a = f.create(U, ROOT_INO, b"a", 0o644).unwrap();
        f.write(U, a.ino, 0, &vec![5u8; 40 * CHUNK_SIZE as usize], false)
            .unwrap();
        // What a truncate to 1 chunk commits before its bounded deletions.
        let mut at = f.getattr(a.ino).unwrap();
        at.size = CHUNK_SIZE;
        let mut b = Batch::new();
        FsCore::put_attr(&mut b, &at);
        b.put(orphan_key(a.ino), Vec::new());
        store.write(b, false).unwrap();
        drop(f);
        let f = FsCore::open(store.clone(), false, false).unwrap();
        assert_eq!(keys_with_prefix(&store, &chunk_key(a.ino, 0)[..9]), 1);
        assert_eq!(keys_with_prefix(&store, b"O"), 0);
        assert_eq!(
            f.read(a.ino, 0, 1 << 20).unwrap(),
            vec![5u8; CHUNK_SIZE as usize]
        );
    }

    /// Unlink deletes every chunk: dense, sparse, past the blind-delete
    /// limit, and with a reclaim pending (chunks past the size).
    #[test]
    fn unlink_leaves_no_chunks() {
        let (store, f) = fs();
        let dense = f.create(U, ROOT_INO, b"dense", 0o644).unwrap().ino;
        f.write(U, dense, 0, &vec![1u8; 10 * CHUNK_SIZE as usize + 7], false)
            .unwrap();
        let sparse = f.create(U, ROOT_INO, b"sparse", 0o644).unwrap().ino;
        f.write(U, sparse, 3 * CHUNK_SIZE, b"x", false).unwrap();
        f.write(U, sparse, 90 * CHUNK_SIZE + 5, b"y", false)
            .unwrap();
        let big = f.create(U, ROOT_INO, b"big", 0o644).unwrap().ino;
        let n = MAX_INLINE_DELETES as u64 + 9;
        f.write(U, big, 0, &vec![2u8; (n * CHUNK_SIZE) as usize], false)
            .unwrap();
        // A truncate whose bounded deletions have not run yet.
        let pending = f.create(U, ROOT_INO, b"pending", 0o644).unwrap().ino;
        f.write(U, pending, 0, &vec![3u8; 20 * CHUNK_SIZE as usize], false)
            .unwrap();
        let mut at = f.getattr(pending).unwrap();
        at.size = CHUNK_SIZE;
        let mut b = Batch::new();
        FsCore::put_attr(&mut b, &at);
        b.put(orphan_key(pending), Vec::new());
        store.write(b, false).unwrap();
        f.drop_cache();
        for name in [&b"dense"[..], b"sparse", b"big", b"pending"] {
            f.unlink(U, ROOT_INO, name).unwrap();
        }
        for ino in [dense, sparse, big, pending] {
            assert_eq!(
                keys_with_prefix(&store, &chunk_key(ino, 0)[..9]),
                0,
                "ino {ino}"
            );
            assert_eq!(keys_with_prefix(&store, &inode_key(ino)), 0);
        }
        assert_eq!(keys_with_prefix(&store, b"O"), 0);
    }

    #[test]
    fn malformed_orphan_key_does_not_hang_recovery() {
        let (store, f) = fs();
        drop(f);
        let mut b = Batch::new();
        b.put(b"Obad".to_vec(), Vec::new());
        store.write(b, false).unwrap();
        FsCore::open(store, false, false).unwrap();
    }

    #[test]
    fn allocator_reserves_ahead() {
        let (store, f) = fs();
        let first = f.create(U, ROOT_INO, b"a", 0o644).unwrap().ino;
        let hwm = be64(&store.get(&meta_key("next_ino")).unwrap().unwrap()).unwrap();
        assert!(hwm > first);
        drop(f);
        let f = FsCore::open(store, false, false).unwrap();
        assert!(f.create(U, ROOT_INO, b"b", 0o644).unwrap().ino >= hwm);
    }

    /// Many threads hammering shared parents and files: link counts, sizes
    /// and the tree must come out exact.
    #[test]
    fn concurrent_operations_stay_consistent() {
        let (store, f) = fs();
        let f = Arc::new(f);
        let shared = f.mkdir(U, ROOT_INO, b"shared", 0o755).unwrap().ino;
        let log = f.create(U, ROOT_INO, b"log", 0o644).unwrap().ino;
        let threads: Vec<_> = (0..8u32)
            .map(|t| {
                let f = f.clone();
                std::thread::spawn(move || {
                    for i in 0..50u32 {
                        let name = format!("t{t}-{i}");
                        let d = f.mkdir(U, shared, name.as_bytes(), 0o755).unwrap();
                        let x = f.create(U, d.ino, b"x", 0o644).unwrap();
                        f.write(U, x.ino, 0, &vec![t as u8; 5000], false).unwrap();
                        f.write(U, log, 0, &[b'.'; 100], true).unwrap();
                        f.rename(U, d.ino, b"x", shared, format!("{name}.x").as_bytes(), 0)
                            .unwrap();
                        if i % 2 == 0 {
                            f.rmdir(U, shared, name.as_bytes()).unwrap();
                        } else {
                            let to = format!("{name}-moved");
                            f.rename(U, shared, name.as_bytes(), ROOT_INO, to.as_bytes(), 0)
                                .unwrap();
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(f.getattr(log).unwrap().size, 8 * 50 * 100);
        // shared: 400 files; root: shared + log + 200 moved dirs.
        assert_eq!(f.list_dir(shared).unwrap().len(), 400);
        assert_eq!(f.getattr(shared).unwrap().nlink, 2);
        assert_eq!(f.getattr(ROOT_INO).unwrap().nlink, 2 + 1 + 200);
        // The cache agrees with the store.
        f.drop_cache();
        assert_eq!(f.getattr(ROOT_INO).unwrap().nlink, 2 + 1 + 200);
        assert_eq!(f.getattr(log).unwrap().size, 8 * 50 * 100);
        assert_eq!(keys_with_prefix(&store, b"O"), 0);
    }
}
