//! Running compactions: the background ones the level scores call for and
//! manual `compact_range`, each one merged (see `engine::compaction`) and
//! installed by one edit.

use super::flush::add_blob_garbage;
use super::{add, lock, Db, Shared};
use crate::engine::compaction::{self, Compaction, MergeContext};
use crate::engine::dbformat::user_key;
use crate::engine::error::Result;
use crate::engine::options::NUM_LEVELS;
use crate::engine::version::edit::VersionEdit;
use crate::engine::version::Version;
use std::collections::HashSet;
use std::sync::Arc;

impl Db {
    /// Compact every level overlapping `[begin, end]` (user keys) down to the bottom.
    pub fn compact_range(&self, begin: Option<&[u8]>, end: Option<&[u8]>) -> Result<()> {
        match self.flush() {
            // No room for the memtable: the tables may still give some back.
            Err(e) if e.is_no_space() => log::warn!("compacting without a flush: {e}"),
            r => r?,
        }
        let shared = &self.handle.shared;
        let _g = lock(&shared.version_lock);
        let bottom = NUM_LEVELS - 1;
        // The bottom files this call does not write: they were written
        // under the stripes of their time, and may keep versions only a
        // since-deleted snapshot could see.
        let old_bottom: HashSet<u64> = lock(&shared.state)
            .current
            .overlapping_inputs(bottom, begin, end)
            .iter()
            .map(|f| f.number)
            .collect();
        // One file (with what it overlaps) at a time, not a whole level at
        // once: each step needs room for its own output only, and frees its
        // inputs before the next (this is how a nearly full disk gets
        // deleted data's space back).
        for level in 0..NUM_LEVELS - 1 {
            loop {
                let version = lock(&shared.state).current.clone();
                let Some(first) = version
                    .overlapping_inputs(level, begin, end)
                    .first()
                    .cloned()
                else {
                    break;
                };
                let (lo, hi) = (user_key(&first.smallest), user_key(&first.largest));
                match compaction::pick_range(&version, level, Some(lo), Some(hi)) {
                    Some(c) => shared.run_compaction(&c, version, true)?,
                    None => break,
                }
            }
        }
        // Everything overlapping is at the bottom now. Rewrite in place
        // the bottom files no merge above rewrote and whose entries span
        // several sequences (all versions of a key sit in one file there):
        // what only a deleted snapshot saw goes, and so does its share of
        // the blob files. A file of one sequence holds one version per key.
        for n in old_bottom {
            let version = lock(&shared.state).current.clone();
            let Some(f) = version.files[bottom]
                .iter()
                .find(|f| f.number == n && f.smallest_seq < f.largest_seq)
                .cloned()
            else {
                continue;
            };
            shared.run_compaction(&Compaction::rewrite(f), version, true)?;
        }
        // Blob files with much garbage keep it until the tables referencing
        // their live records are rewritten: rewrite the bottom level's files
        // (small — they hold references), relocating those records.
        if !compaction::gc_candidates(&lock(&shared.state).current).is_empty() {
            let numbers: Vec<u64> = lock(&shared.state)
                .current
                .overlapping_inputs(bottom, begin, end)
                .iter()
                .map(|f| f.number)
                .collect();
            for n in numbers {
                let version = lock(&shared.state).current.clone();
                if compaction::gc_candidates(&version).is_empty() {
                    break;
                }
                let Some(f) = version.files[bottom]
                    .iter()
                    .find(|f| f.number == n)
                    .cloned()
                else {
                    continue;
                };
                shared.run_compaction(&Compaction::rewrite(f), version, true)?;
            }
        }
        // The loop held older Versions alive; collect what they kept.
        shared.remove_obsolete_files(false);
        Ok(())
    }
}

impl Shared {
    /// Run one compaction chosen against `version`. Caller holds `version_lock`.
    /// `manual` compactions always merge (never just move a file down), so
    /// a full compaction really drops overwritten versions and deletions.
    /// Takes the input Version by value and lets it go before deleting
    /// what the edit retired: while it is referenced, its files count as
    /// live (`VersionSet::live_files`), and the inputs would stay on disk.
    pub(super) fn run_compaction(
        &self,
        c: &Compaction,
        version: Arc<Version>,
        manual: bool,
    ) -> Result<()> {
        let mut edit = VersionEdit::default();
        c.delete_inputs(&mut edit);
        if let Some(last) = c.inputs.last() {
            edit.compact_pointers.push((c.level, last.largest.clone()));
        }
        if c.is_trivial_move() && !manual {
            if let Some(f) = c.inputs.first() {
                edit.new_files.push((c.output_level(), (**f).clone()));
            }
            let v = lock(&self.versions).log_and_apply(&mut edit)?;
            lock(&self.state).current = v;
            add(&self.counters.num_trivial_moves, 1);
            self.update_compaction_needed();
            return Ok(());
        }
        let stripes = self.stripes();
        let ctx = MergeContext {
            blobs: &self.blobs,
            env: &self.env,
            dir: &self.dir,
            options: &self.opts,
            tables: &self.tables,
            version: &version,
            stripes: &stripes,
            shutting_down: &self.shutting_down,
        };
        let mut allocated = Vec::new();
        let mut new_file = || {
            let n = lock(&self.versions).new_file_number();
            lock(&self.state).pending_outputs.insert(n);
            allocated.push(n);
            n
        };
        let built = compaction::merge(c, &ctx, &mut new_file)
            .and_then(|out| self.env.sync_dir(&self.dir).map(|()| out));
        let result = match built {
            Err(e) => {
                self.discard_outputs(&allocated);
                Err(e)
            }
            Ok(out) => {
                let written: u64 = out.tables.iter().map(|f| f.file_size).sum();
                for f in out.tables {
                    edit.new_files.push((c.output_level(), f));
                }
                if out.relocated_bytes > 0 {
                    add(&self.counters.blob_gc_runs, 1);
                    add(&self.counters.bytes_blob_relocated, out.relocated_bytes);
                }
                edit.new_blobs.extend(out.new_blob);
                let mut vs = lock(&self.versions);
                add_blob_garbage(&mut edit, &vs.current(), &out.blob_garbage);
                let applied = vs.log_and_apply(&mut edit);
                applied.map(|v| (v, written))
            }
        };
        let mut st = lock(&self.state);
        for n in &allocated {
            st.pending_outputs.remove(n);
        }
        let (v, written) = result?;
        st.current = v;
        drop(st);
        drop(version);
        add(&self.counters.num_compactions, 1);
        add(&self.counters.bytes_compacted_read, c.input_bytes());
        add(&self.counters.bytes_compacted_written, written);
        self.update_compaction_needed();
        self.remove_obsolete_files(false);
        Ok(())
    }

    pub(super) fn update_compaction_needed(&self) {
        let needed = {
            let vs = lock(&self.versions);
            vs.level_scores(&self.opts).iter().any(|s| *s >= 1.0)
        };
        lock(&self.state).compaction_needed = needed;
        if needed {
            self.bg_cv.notify_all();
        }
    }
}
