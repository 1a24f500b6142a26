//! Snapshots: in-memory read views and persistent, named ones (see
//! `engine::snapshot`), and the stripes they cut the sequences into for
//! flushes and compactions.

use super::{add, errno_error, lock, Db, Shared, Snapshot, SCAN_READ_AHEAD};
use crate::engine::compaction::{self, Compaction};
use crate::engine::dbformat::{user_key, SequenceNumber};
use crate::engine::error::{Error, Result};
use crate::engine::options::NUM_LEVELS;
use crate::engine::snapshot::{check_name, PersistentSnapshot, Stripes};
use crate::engine::table::merger::MergingIterator;
use crate::engine::table::ReadAhead;
use crate::engine::version::edit::{FileMetaData, VersionEdit};
use std::collections::HashSet;
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
    /// the background thread then rewrites the tables that may keep
    /// versions only it saw (`Shared::reclaim_retired`).
    pub fn delete_snapshot(&self, name: &str) -> Result<()> {
        let shared = &self.handle.shared;
        if shared.opts.read_only {
            return Err(Error::InvalidArgument("database is open read-only".into()));
        }
        let mut vs = lock(&shared.versions);
        let Some((id, seq)) = vs.snapshot_named(name).map(|s| (s.id, s.sequence)) else {
            return Err(errno_error(format!("snapshot {name:?}"), libc::ENOENT));
        };
        let mut edit = VersionEdit::default();
        edit.deleted_snapshots.insert(id);
        // A failed write leaves no snapshot; the next edit starts a new MANIFEST.
        vs.log_and_apply(&mut edit)?;
        drop(vs);
        let mut st = lock(&shared.state);
        st.retired.push((seq, None));
        st.wake_retired();
        shared.bg_cv.notify_all();
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

    /// One step of giving back what deleted snapshots alone kept, after
    /// every flush and scheduled compaction (see `snapshot`, "Giving a
    /// deleted snapshot's space back"): one table that may keep versions
    /// only a deleted snapshot saw — its sequence range straddles the
    /// snapshot's sequence, and it was written while the snapshot could
    /// still be seen — is
    /// rewritten under the stripes of today (in place at L1 and down; at
    /// L0, whose files overlap, merged into L1 with what it overlaps).
    /// A deleted snapshot a reader still holds waits for its release. Once
    /// no table is left to rewrite, the idle reclaim looks again (the blob
    /// records the rewrites let go may call for a GC pass). Whether it did
    /// something. Caller holds `version_lock`.
    pub(super) fn reclaim_retired(&self) -> Result<bool> {
        // Read before the stripes: a reader let go after them wakes again.
        let (version, wakes) = {
            let st = lock(&self.state);
            (st.current.clone(), st.retired_wakes)
        };
        let stripes = self.stripes();
        let live = self.visible_seq.load(Ordering::Acquire);
        let (kept, next_file): (HashSet<SequenceNumber>, u64) = {
            let vs = lock(&self.versions);
            let kept = vs.snapshots.values().map(|s| s.sequence).collect();
            (kept, vs.next_file_number)
        };
        let waiting: Vec<(SequenceNumber, Option<u64>)> = {
            let mut st = lock(&self.state);
            // Nothing newer than it yet, or another snapshot at the same
            // sequence: nothing only it kept.
            st.retired.retain(|(s, _)| *s < live && !kept.contains(s));
            // Not held: every flush or compaction from now on drops what
            // only it saw (they hold `version_lock`, as this caller: none
            // is under way), so only tables numbered below this may keep it.
            for (s, from) in st.retired.iter_mut() {
                if stripes.bound(*s) != Some(*s) {
                    from.get_or_insert(next_file);
                }
            }
            st.retired
                .iter()
                .filter(|r| r.1.is_some())
                .copied()
                .collect()
        };
        let straddles = |f: &FileMetaData| {
            waiting.iter().any(|&(s, from)| {
                from.is_some_and(|n| f.number < n) && f.smallest_seq <= s && s < f.largest_seq
            })
        };
        let found = (0..NUM_LEVELS).find_map(|level| {
            let f = version.files[level].iter().find(|f| straddles(f))?;
            if level > 0 {
                return Some(Compaction::rewrite_at(level, f.clone()));
            }
            let (lo, hi) = (user_key(&f.smallest), user_key(&f.largest));
            compaction::pick_range(&version, 0, Some(lo), Some(hi))
        });
        let Some(c) = found else {
            let mut st = lock(&self.state);
            st.retired.retain(|r| !waiting.contains(r));
            st.retired_due = st.retired_wakes != wakes;
            if !waiting.is_empty() {
                st.reclaim_checked_seq = SequenceNumber::MAX;
            }
            return Ok(false);
        };
        log::debug!(
            "snapshot reclaim: rewriting L{} table {}",
            c.level,
            c.inputs.first().map_or(0, |f| f.number)
        );
        self.run_compaction(&c, version, true)?;
        add(&self.counters.snapshot_rewrites, 1);
        Ok(true)
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
