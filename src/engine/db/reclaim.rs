//! Idle reclaim: when writes pause and no compaction is due, space held by
//! range deletions and blob garbage is given back one bounded step at a time
//! (why in `engine::compaction`'s module doc).

use super::{lock, Shared};
use crate::engine::compaction::{self, Compaction};
use crate::engine::dbformat::user_key;
use crate::engine::error::Result;
use crate::engine::options::NUM_LEVELS;
use crate::engine::version::edit::FileMetaData;
use std::sync::Arc;

impl Shared {
    /// Switch a memtable holding range deletions while no writer is
    /// active (the background thread takes the write leadership for it),
    /// so that its flush lets compactions drop what they delete. Never
    /// waits: with a writer active or a flush pending it does nothing.
    pub(super) fn switch_when_idle(&self) -> Result<bool> {
        {
            let mut q = lock(&self.writers);
            if q.leader_active || !q.pending.is_empty() {
                return Ok(false);
            }
            q.leader_active = true;
        }
        let mut st = lock(&self.state);
        let r = if st.imm.is_some() || st.mem.is_empty() || st.bg_error.is_some() {
            Ok(false)
        } else {
            self.switch_memtable(&mut st).map(|()| true)
        };
        drop(st);
        self.end_leading(&mut lock(&self.writers));
        r.map_err(|e| self.set_bg_error(e))
    }

    /// One step of reclaiming space when the store is idle (no flush or
    /// compaction is due): flush a memtable holding range deletions;
    /// compact a table holding range deletions one level down (at the
    /// bottom they are dropped with what they delete); then, while blob
    /// files are at least `BLOB_GC_RATIO` garbage, a pass over the tables
    /// that merges each file created before the pass one level down (the
    /// bottom level's in place), relocating the live records it references
    /// (`Options::blob_gc_max_bytes` at most per step), and passes repeat
    /// while they change the garbage. Each step is one bounded
    /// compaction, and a flush goes before the next step. Whether it did
    /// something. Caller holds `version_lock`.
    pub(super) fn reclaim_step(&self) -> Result<bool> {
        let has_ranges = {
            let st = lock(&self.state);
            st.imm.is_none() && st.mem.range_deletions().is_some()
        };
        if has_ranges && self.switch_when_idle()? {
            return Ok(true);
        }
        let version = lock(&self.state).current.clone();
        let bottom = NUM_LEVELS - 1;
        // One file of `level` (all of L0, whose files overlap) with what
        // it overlaps below; the bottom level's file rewritten in place.
        let down = |level: usize, f: &Arc<FileMetaData>| {
            if level == bottom {
                return Some(Compaction::rewrite(f.clone()));
            }
            let (lo, hi) = (user_key(&f.smallest), user_key(&f.largest));
            let (lo, hi) = if level == 0 {
                (None, None)
            } else {
                (Some(lo), Some(hi))
            };
            compaction::pick_range(&version, level, lo, hi)
        };
        let mut ranged = None;
        'levels: for level in 0..bottom {
            for f in &version.files[level] {
                let t = self.tables.get_table(f.number, f.file_size)?;
                if !t.range_deletions().is_empty() {
                    ranged = down(level, f);
                    break 'levels;
                }
            }
        }
        if let Some(c) = ranged {
            log::info!("reclaim: compacting L{} range deletions down", c.level);
            self.run_compaction(&c, version, true)?;
            return Ok(true);
        }
        let candidates = compaction::gc_candidates(&version);
        let mut signature: Vec<(u64, u64)> = candidates
            .iter()
            .filter_map(|n| version.blobs.get(n).map(|b| (*n, b.garbage_bytes)))
            .collect();
        signature.sort_unstable();
        let pass_from = {
            let mut st = lock(&self.state);
            if signature.is_empty() || (st.gc_pass.is_none() && st.gc_last == signature) {
                st.gc_pass = None;
                return Ok(false);
            }
            match st.gc_pass {
                Some(from) => from,
                None => {
                    // A pass remembers what it started from: one that changed
                    // nothing is not repeated, one that did (a compaction
                    // stops relocating at blob_gc_max_bytes) is.
                    let from = lock(&self.versions).next_file_number;
                    st.gc_pass = Some(from);
                    st.gc_last = signature.clone();
                    from
                }
            }
        };
        // The first file the pass has not rewritten yet (its outputs are
        // numbered from `pass_from` on).
        let next = (0..=bottom).find_map(|level| {
            version.files[level]
                .iter()
                .find(|f| f.number < pass_from)
                .and_then(|f| down(level, f))
        });
        let Some(c) = next else {
            let mut st = lock(&self.state);
            st.gc_pass = None;
            // Another pass follows at once if this one changed the garbage.
            return Ok(st.gc_last != signature);
        };
        log::info!(
            "blob GC: {} blob files at least half garbage; compacting L{}",
            candidates.len(),
            c.level
        );
        self.run_compaction(&c, version, true)?;
        Ok(true)
    }
}
