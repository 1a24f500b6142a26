//! Snapshots: in-memory read views and persistent, named ones (see
//! `engine::snapshot`), and the stripes they cut the sequences into for
//! flushes and compactions.

use super::{errno_error, lock, Db, Shared, Snapshot, SCAN_READ_AHEAD};
use crate::engine::dbformat::SequenceNumber;
use crate::engine::error::{Error, Result};
use crate::engine::snapshot::{check_name, PersistentSnapshot, Stripes};
use crate::engine::table::merger::MergingIterator;
use crate::engine::table::ReadAhead;
use crate::engine::version::edit::VersionEdit;
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl Db {
    pub fn snapshot(&self) -> Snapshot {
        let shared = &self.handle.shared;
        shared.hold(shared.visible_seq.load(Ordering::Acquire))
    }

    /// Record a persistent snapshot of everything written so far, durably:
    /// the WAL is fsync'd, then one MANIFEST edit names the sequence. O(1)
    /// whatever the store's size (it may wait for a running flush's or
    /// compaction's MANIFEST write, never for the flush itself).
    pub fn create_snapshot(&self, name: &str) -> Result<PersistentSnapshot> {
        check_name(name).map_err(Error::InvalidArgument)?;
        let shared = &self.handle.shared;
        let seq = shared.visible_seq.load(Ordering::Acquire);
        // Everything at or below `seq` is in this WAL or an older (synced) one.
        self.sync()?;
        let created_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let mut vs = lock(&shared.versions);
        if vs.snapshot_named(name).is_some() {
            return Err(errno_error(format!("snapshot {name:?}"), libc::EEXIST));
        }
        let snap = PersistentSnapshot {
            id: vs.next_snapshot_id,
            name: name.to_string(),
            sequence: seq,
            created_ns,
        };
        let mut edit = VersionEdit {
            last_sequence: Some(seq),
            next_snapshot_id: Some(snap.id + 1),
            new_snapshots: vec![snap.clone()],
            ..Default::default()
        };
        // The new Version names the same files as the current one, so the
        // state's `current` need not change.
        // A failed write leaves no snapshot; the next edit starts a new MANIFEST.
        vs.log_and_apply(&mut edit)?;
        Ok(snap)
    }

    /// Delete the persistent snapshot `name` (one fsync'd MANIFEST edit);
    /// what only it kept is dropped by the next compactions.
    pub fn delete_snapshot(&self, name: &str) -> Result<()> {
        let shared = &self.handle.shared;
        if shared.opts.read_only {
            return Err(Error::InvalidArgument("database is open read-only".into()));
        }
        let mut vs = lock(&shared.versions);
        let Some(id) = vs.snapshot_named(name).map(|s| s.id) else {
            return Err(errno_error(format!("snapshot {name:?}"), libc::ENOENT));
        };
        let mut edit = VersionEdit::default();
        edit.deleted_snapshots.insert(id);
        // A failed write leaves no snapshot; the next edit starts a new MANIFEST.
        vs.log_and_apply(&mut edit)?;
        drop(vs);
        // Compaction scores do not see what became droppable; a manual
        // `compact_range` or the next scheduled compactions collect it.
        Ok(())
    }

    /// The live persistent snapshots, oldest first.
    pub fn list_snapshots(&self) -> Vec<PersistentSnapshot> {
        let vs = lock(&self.handle.shared.versions);
        let mut v: Vec<PersistentSnapshot> = vs.snapshots.values().cloned().collect();
        v.sort_by_key(|s| s.id);
        v
    }

    /// For each persistent snapshot, oldest first: (id, an estimate of the
    /// bytes only it holds — what deleting it and compacting would give
    /// back). One pass over every table's entries (blob records counted by
    /// their references, never read); see `snapshot::exclusive_bytes`.
    pub fn snapshot_exclusive_bytes(&self) -> Result<Vec<(u64, u64)>> {
        let snaps = self.list_snapshots();
        if snaps.is_empty() {
            return Ok(Vec::new());
        }
        let shared = &self.handle.shared;
        let live = shared.visible_seq.load(Ordering::Acquire);
        let ahead = ReadAhead {
            upper: None,
            max_bytes: SCAN_READ_AHEAD,
            fill_cache: false,
        };
        let sources = shared.sources(Some(&ahead), (&[], None))?;
        let ranges = sources.ranges;
        let mut input = MergingIterator::new(sources.children);
        let bounds: Vec<(u64, SequenceNumber)> = snaps.iter().map(|s| (s.id, s.sequence)).collect();
        crate::engine::snapshot::exclusive_bytes(&mut input, &ranges, &bounds, live, &shared.dir)
    }

    /// A read view at the persistent snapshot `name`, if it exists. The view
    /// stays valid if the snapshot is deleted meanwhile.
    pub fn open_snapshot(&self, name: &str) -> Option<Snapshot> {
        let shared = &self.handle.shared;
        let vs = lock(&shared.versions);
        let seq = vs.snapshot_named(name)?.sequence;
        // Held before `versions` is released: a delete cannot slip between.
        let snap = shared.hold(seq);
        drop(vs);
        Some(snap)
    }
}

impl Shared {
    /// The stripes of every snapshot — persistent, held in memory — and of
    /// the live view. Lock order: `versions`, then `snapshots`.
    pub(super) fn stripes(&self) -> Stripes {
        let vs = lock(&self.versions);
        let held = lock(&self.snapshots);
        Stripes::new(
            vs.snapshots
                .values()
                .map(|s| s.sequence)
                .chain(held.keys().copied()),
            self.visible_seq.load(Ordering::Acquire),
        )
    }

    /// Register a reader at `seq` (released when the Snapshot drops).
    pub(super) fn hold(self: &Arc<Self>, seq: SequenceNumber) -> Snapshot {
        *lock(&self.snapshots).entry(seq).or_insert(0) += 1;
        Snapshot {
            sequence: seq,
            shared: self.clone(),
        }
    }
}
