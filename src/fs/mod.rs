//! The filesystem: POSIX semantics over the key schema, and the FUSE glue.
//!
//! | module | job |
//! | --- | --- |
//! | `schema` | the keys (the on-disk layout of the tree) |
//! | `inode` | the inode record codec |
//! | `core` | `FsCore`: opening, recovery, locking, inode allocation, commits |
//! | `cache` | the bounded write-through cache of inode records |
//! | `namespace` | entries: lookup, create, link, unlink, rmdir, rename, readdir |
//! | `data` | contents and attributes: read, write, setattr, fallocate, lseek |
//! | `xattr` | extended attributes |
//! | `acl` | POSIX ACLs: their xattr format, mode ⇄ ACL, inheritance |
//! | `space` | the free-space reserve: ENOSPC before the disk is really full |
//! | `snapshots` | `.snapshots`: each snapshot's tree, read-only, and its inode numbers |
//! | `shared` | a store other hosts write too: tracked reads, compared commits, retries |
//! | `invalidate` | another host's changes dropped from the kernel's caches at once |
//! | `ops` | what each FUSE request does, shared by both transports |
//! | `fuse` | the classic transport: the thin `fuser::Filesystem` translation |
//! | `uring` | the io_uring transport: per-CPU queues, its wire format |
//! | `fsck` | the offline invariant check behind `lsmfs check`, and `inspect path` |
//! | `mount` | the `lsmfs mount` command |
//! | `mount_options` | what each `-o` option means |
//! | `mount_checks` | what `mount` refuses before it touches the disk |
//! | `sd_notify` | telling systemd the mount is live |
//! | `umount` | the `lsmfs umount` command |
//! | `fusermount` | mounting without privilege through the setuid `fusermount3` |
//!
//! The root holds a hidden, read-only file `.lsmfs-stats` (inode 2, never
//! stored, not listed by readdir) whose contents are the engine's live
//! statistics: `cat MOUNTPOINT/.lsmfs-stats` or `lsmfs stats MOUNTPOINT`.
//! The name is reserved there: creating, linking, renaming or removing it
//! fails.
//!
//! Known limits, by choice: an inode lives while it has a name or an open
//! handle, not while the kernel merely references it (a removed directory
//! that is only some process's cwd goes at once); reads do not update
//! atime (as `noatime`). `st_blocks` counts a file's stored 4 KiB chunks, so holes
//! take none (after a truncate that defers its deletions, it may count
//! chunks still being deleted).

pub mod acl;
mod cache;
pub mod core;
pub mod data;
pub mod fsck;
pub mod fuse;
pub mod fusermount;
pub mod inode;
mod invalidate;
pub mod mount;
pub mod mount_checks;
pub mod mount_options;
pub mod namespace;
pub mod ops;
pub mod requests;
pub mod schema;
pub mod sd_notify;
mod shared;
pub mod snapshots;
pub mod space;
pub mod umount;
pub mod uring;
pub mod xattr;

pub use self::fuse::FuseFs;
use std::path::PathBuf;

/// How the filesystem behaves; set by `lsmfs mount`.
#[derive(Debug, Clone, Default)]
pub struct FsConfig {
    /// fsync the WAL before every reply (`--sync always`).
    pub sync_always: bool,
    /// Let the kernel cache writes (`-o writeback_cache`): faster, but a
    /// kill -9 loses what the kernel had not yet sent.
    pub writeback_cache: bool,
    pub read_only: bool,
    /// Directory whose filesystem `statfs` reports (the data directory,
    /// opened once, before the mount exists: see `space`).
    pub statfs_path: Option<PathBuf>,
    /// Bytes kept free on that filesystem for flushes and compactions:
    /// operations that add data fail with ENOSPC below it (see `space`).
    pub space_reserve: u64,
    /// No POSIX ACLs (`-o noacl`): system.posix_acl_* xattrs are refused.
    pub no_acl: bool,
    /// Offer FUSE_OVER_IO_URING at INIT (`uring` then serves the mount).
    pub io_uring: bool,
    /// Who besides root may create and delete snapshots: the data
    /// directory's owner (None: the root directory's owner).
    pub snapshot_owner: Option<u32>,
}
