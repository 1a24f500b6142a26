//! Snapshots on the mount: `MOUNTPOINT/.snapshots/NAME/` is the whole tree
//! as it was when snapshot NAME was taken, read-only.
//!
//! A snapshot is the store's (`Store::create_snapshot`): a name for a
//! sequence number, durable once created. Each one the mount is asked about
//! gets a *view*: an `FsCore` opened read-only over `Store::snapshot_view`,
//! so every operation inside it is the live tree's own code reading older
//! keys — contents, sizes, modes, owners, times, symlinks, hard links and
//! xattrs come out as they were, and every change is refused with EROFS.
//!
//! # Inode numbers
//! A view's inode `i` is `(id + 1) << 44 | i` on the mount, `id` being the
//! snapshot's id (never reused within a store): the top 20 bits say which
//! tree, the low 44 the inode in it. Live inodes stay below `2^44` (the
//! allocator refuses more, `MAX_INODE`), so no two trees' numbers collide,
//! and a file keeps its low bits in every snapshot (`snapshot diff` uses
//! that to see renames). Ids go up to `2^20 - 2`: a store that has taken
//! a million snapshots takes no more (EMLINK). `.snapshots` itself is
//! inode 3, below the first allocated number, like `.lsmfs-stats` (2).
//!
//! # The `.snapshots` directory
//! It is not listed by readdir at the root (so `find`, `du`, `cp -a`,
//! `tar` and `rsync` of the mount do not descend into every snapshot, as
//! ZFS's hidden `.zfs`) but answers lookup. It lists one directory per
//! snapshot and is read-only except for two control operations, like
//! ZFS's `.zfs/snapshot`: `mkdir .snapshots/NAME` takes a snapshot, and
//! `rmdir .snapshots/NAME` deletes one (the snapshot need not be empty).
//! Both are allowed to root and to the data directory's owner only (EPERM
//! for anyone else; the directory is theirs, mode 0755, so the kernel
//! refuses others first), and reply once the MANIFEST edit is fsync'd. A
//! read-only mount refuses them with EROFS. `lsmfs snapshot create|delete`
//! on a mount point is that mkdir and rmdir: an ordinary system call that
//! carries the caller's identity to the daemon, needs no ioctl plumbing in
//! two transports, and works from any shell.
//!
//! The name `.snapshots` at the root is reserved (`namespace`): it cannot
//! be created, linked, renamed or removed there. An entry of that name a
//! build before snapshots made at the root is shadowed on the mount (not
//! listed, not reachable); it stays in the store, and in every view.

use super::core::{Caller, FsCore, FsResult};
use super::inode::{Attr, KIND_DIR};
use super::schema::ROOT_INO;
use crate::store::{SnapshotInfo, Store};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const SNAPSHOTS_INO: u64 = 3;
pub const SNAPSHOTS_NAME: &[u8] = b".snapshots";
/// The low bits of a mount inode number: the inode within its tree.
pub const INO_BITS: u32 = 44;
/// Live inode numbers stay below this.
pub const MAX_INODE: u64 = 1 << INO_BITS;
/// The largest snapshot id a mount can number.
pub const MAX_SNAPSHOT_ID: u64 = (1 << (64 - INO_BITS)) - 2;
/// Memory for one view's decoded inode records.
const VIEW_CACHE_BYTES: usize = 4 << 20;

/// The mount's number for inode `inner` of snapshot `id`.
pub fn outer_ino(id: u64, inner: u64) -> u64 {
    ((id + 1) << INO_BITS) | inner
}

/// (snapshot id, inode in it) of a mount number, None for the live tree.
pub fn split_ino(ino: u64) -> Option<(u64, u64)> {
    let slot = ino >> INO_BITS;
    (slot > 0).then(|| (slot - 1, ino & (MAX_INODE - 1)))
}

/// One snapshot's tree, open.
pub struct View {
    pub info: SnapshotInfo,
    pub core: FsCore,
}

impl View {
    pub fn outer(&self, inner: u64) -> u64 {
        outer_ino(self.info.id, inner)
    }

    /// An attribute of the view as the mount shows it.
    pub fn attr(&self, mut a: Attr) -> Attr {
        a.ino = self.outer(a.ino);
        a.parent = if a.parent == ROOT_INO && a.ino == self.outer(ROOT_INO) {
            SNAPSHOTS_INO
        } else {
            self.outer(a.parent)
        };
        a
    }
}

/// The views the mount has opened, by snapshot id.
pub struct Snapshots {
    views: Mutex<HashMap<u64, Arc<View>>>,
    /// Who may create and delete snapshots besides root (the data
    /// directory's owner; None: the live root's owner).
    owner: Option<u32>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn errno(e: std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

impl Snapshots {
    pub fn new(owner: Option<u32>) -> Snapshots {
        Snapshots {
            views: Mutex::new(HashMap::new()),
            owner,
        }
    }

    pub fn list(&self, store: &Arc<dyn Store>) -> FsResult<Vec<SnapshotInfo>> {
        store.snapshots().map_err(errno)
    }

    /// Opened under the `views` lock, as `delete` deletes: a view opened
    /// just before a delete cannot be put in the map after it (where it
    /// would pin the deleted snapshot until unmount).
    fn open(&self, store: &Arc<dyn Store>, info: SnapshotInfo) -> FsResult<Arc<View>> {
        let mut views = lock(&self.views);
        if let Some(v) = views.get(&info.id) {
            return Ok(v.clone());
        }
        let view_store = store.snapshot_view(&info.name).map_err(errno)?;
        let view_store = view_store.ok_or(libc::ENOENT)?;
        let core = FsCore::open_view(view_store, VIEW_CACHE_BYTES).map_err(|e| {
            log::error!("snapshot {:?}: {e}", info.name);
            e.errno
        })?;
        let view = Arc::new(View { info, core });
        views.insert(view.info.id, view.clone());
        Ok(view)
    }

    /// The view of the snapshot named `name` (ENOENT if there is none).
    pub fn by_name(&self, store: &Arc<dyn Store>, name: &[u8]) -> FsResult<Arc<View>> {
        let info = self
            .list(store)?
            .into_iter()
            .find(|s| s.name.as_bytes() == name)
            .ok_or(libc::ENOENT)?;
        self.open(store, info)
    }

    /// The view a mount inode number belongs to (ENOENT once deleted).
    pub fn by_id(&self, store: &Arc<dyn Store>, id: u64) -> FsResult<Arc<View>> {
        if let Some(v) = lock(&self.views).get(&id) {
            return Ok(v.clone());
        }
        let info = self
            .list(store)?
            .into_iter()
            .find(|s| s.id == id)
            .ok_or(libc::ENOENT)?;
        self.open(store, info)
    }

    fn may_manage(&self, live: &FsCore, c: Caller) -> FsResult<()> {
        if live.read_only {
            return Err(libc::EROFS);
        }
        let owner = match self.owner {
            Some(o) => o,
            None => live.getattr(ROOT_INO)?.uid,
        };
        if c.uid == 0 || c.uid == owner {
            Ok(())
        } else {
            Err(libc::EPERM)
        }
    }

    /// `mkdir .snapshots/NAME`: take a snapshot; its root as the mount
    /// shows it.
    pub fn create(&self, live: &FsCore, c: Caller, name: &[u8]) -> FsResult<Attr> {
        self.may_manage(live, c)?;
        let name = std::str::from_utf8(name).map_err(|_| libc::EINVAL)?;
        if crate::engine::snapshot::check_name(name).is_err() {
            return Err(if name.len() > crate::engine::snapshot::MAX_NAME_LEN {
                libc::ENAMETOOLONG
            } else {
                libc::EINVAL
            });
        }
        let store = live.store();
        let ids = self.list(store)?;
        if ids.iter().any(|s| s.name == name) {
            return Err(libc::EEXIST);
        }
        let info = store.create_snapshot(name).map_err(errno)?;
        if info.id > MAX_SNAPSHOT_ID {
            // Taken but not numberable on the mount: undo.
            let _ = store.delete_snapshot(name);
            return Err(libc::EMLINK);
        }
        let view = self.open(store, info)?;
        Ok(view.attr(view.core.getattr(ROOT_INO)?))
    }

    /// `rmdir .snapshots/NAME`: delete the snapshot and close its view
    /// (which would otherwise pin what it sees).
    pub fn delete(&self, live: &FsCore, c: Caller, name: &[u8]) -> FsResult<()> {
        self.may_manage(live, c)?;
        let name = std::str::from_utf8(name).map_err(|_| libc::ENOENT)?;
        let store = live.store();
        let id = self
            .list(store)?
            .into_iter()
            .find(|s| s.name == name)
            .map(|s| s.id)
            .ok_or(libc::ENOENT)?;
        let mut views = lock(&self.views);
        store.delete_snapshot(name).map_err(errno)?;
        let view = views.remove(&id);
        drop(views);
        drop(view);
        Ok(())
    }

    /// The `.snapshots` directory's attributes: the owner's, 0755, times
    /// of the newest snapshot (the root's while there is none).
    pub fn dir_attr(&self, live: &FsCore) -> FsResult<Attr> {
        let root = live.getattr(ROOT_INO)?;
        let snaps = self.list(live.store())?;
        let t = snaps
            .iter()
            .map(|s| s.created_ns as i64)
            .max()
            .unwrap_or(root.ctime);
        Ok(Attr {
            ino: SNAPSHOTS_INO,
            kind: KIND_DIR,
            mode: libc::S_IFDIR | 0o755,
            nlink: 2 + snaps.len() as u32,
            uid: self.owner.unwrap_or(root.uid),
            gid: root.gid,
            atime: t,
            mtime: t,
            ctime: t,
            parent: ROOT_INO,
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inode_numbers_of_trees_never_collide() {
        assert_eq!(split_ino(ROOT_INO), None);
        assert_eq!(split_ino(MAX_INODE - 1), None);
        assert_eq!(split_ino(outer_ino(0, ROOT_INO)), Some((0, ROOT_INO)));
        assert_eq!(
            split_ino(outer_ino(MAX_SNAPSHOT_ID, MAX_INODE - 1)),
            Some((MAX_SNAPSHOT_ID, MAX_INODE - 1))
        );
        assert_ne!(outer_ino(0, 17), outer_ino(1, 17));
        assert!(outer_ino(0, 1) >= MAX_INODE);
    }
}
