//! Leveled compaction: choosing what to merge, and merging it.
//!
//! Level 0 holds flushed memtables, which may overlap; deeper levels hold
//! disjoint sorted runs, each with a byte budget 10x the one above. The
//! level with the highest score (L0: file count against the trigger; Ln:
//! bytes against its budget) is compacted: one file of it (round-robin by a
//! per-level compaction pointer, so every key range gets its turn; for L0
//! every overlapping file) is merged with the files of the next level it
//! overlaps. A single file with nothing below it is *moved* — a MANIFEST edit
//! only, no bytes rewritten.
//!
//! While merging, an older version of a key is dropped when a newer one is
//! in the same snapshot stripe (every snapshot that sees the older one sees
//! the newer: see `snapshot`), and a deletion marker is dropped only when it
//! is older than every snapshot and no deeper level may hold the key
//! (otherwise the older value would resurface). Output tables are cut at
//! `target_file_size`, always between two user keys so that a user key never
//! spans two files of one level.
//!
//! Range deletions (see `range_del`): an entry a tombstone of the inputs
//! hides from every snapshot that sees the entry is dropped; a tombstone is
//! dropped when every snapshot sees it and no deeper level overlaps its range, and otherwise
//! written to the outputs, clipped at the cuts between them so that each
//! output's key range still covers its own tombstones and the level stays
//! disjoint.
//!
//! Blob references (see `blob`) are copied like any value; one that is
//! dropped makes its record garbage, and `merge` reports the garbage per
//! blob file for the compaction's edit. Garbage collection rides on the
//! same pass: a kept reference into a blob file whose garbage has reached
//! `BLOB_GC_RATIO` of its bytes is *relocated* — its value copied to a new
//! blob file of this compaction, the old record counted as garbage — so
//! the old file empties and goes. Relocation stops after
//! `Options::blob_gc_max_bytes` (`BLOB_GC_MAX_BYTES`) per compaction, so that a compaction (and the L0
//! slowdown behind it) stays bounded; the rest waits for the next pass.
//! It runs on the background thread only: writers and readers never wait
//! for it.
//!
//! Compactions run when a level is over its budget, and after a big delete
//! none may be: the tables hold small references, the range deletion sits
//! in the memtable. So when writes pause (`db::background`'s `RECLAIM_IDLE`) and no
//! compaction is due, the background thread reclaims on its own, one
//! bounded step at a time, a flush always first: it switches a memtable
//! holding range deletions, compacts each table holding some down to the
//! bottom (where they go, with what they delete — the references dropped
//! count as garbage, the blob files all garbage are deleted), and while
//! blob files are at least `BLOB_GC_RATIO` garbage it makes a pass over
//! the tables, merging each one down (the bottom level's in place), which
//! relocates the live records they reference. A pass that changed the
//! garbage is followed by another (one compaction's relocation is bounded,
//! so the live records of a big delete may take several passes over the
//! same table); one that ends with the garbage it started with is not
//! repeated until something changes.
//!
//! After a snapshot is deleted, the tables that may keep versions only it
//! saw are rewritten one at a time (in place at L1 and down, `Compaction::
//! rewrite_at`), after any flush or compaction due: see `snapshot`.
//!
//! | module | job |
//! | --- | --- |
//! | this one | a chosen `Compaction`; blob GC's thresholds |
//! | `pick` | choosing what to compact: level scores, ranges |
//! | `merge` | merging the inputs into output tables |

pub mod merge;
pub mod pick;

pub use merge::{finish_output, merge, MergeContext, MergeOutput};
pub use pick::{pick, pick_range};

use crate::engine::options::NUM_LEVELS;
use crate::engine::version::edit::{FileMetaData, VersionEdit};
use crate::engine::version::Version;
use std::collections::HashSet;
use std::sync::Arc;

/// A chosen compaction: files of `level` merged into `level + 1` — or,
/// `in_place`, one file rewritten where it is (a full manual compaction
/// does that at the bottom to relocate the blob records it references;
/// a snapshot delete at any level but L0, see `snapshot`).
#[derive(Debug, Clone)]
pub struct Compaction {
    pub level: usize,
    pub inputs: Vec<Arc<FileMetaData>>,
    pub next_inputs: Vec<Arc<FileMetaData>>,
    pub in_place: bool,
}

impl Compaction {
    pub fn output_level(&self) -> usize {
        if self.in_place {
            self.level
        } else {
            self.level + 1
        }
    }

    /// Rewrite one file of the bottom level in place.
    pub fn rewrite(file: Arc<FileMetaData>) -> Compaction {
        Self::rewrite_at(NUM_LEVELS - 1, file)
    }

    /// Rewrite one file of `level` (1 or deeper: L0's files overlap, and
    /// are read newest first) in place: its output covers no more keys
    /// than it, so the level stays disjoint.
    pub fn rewrite_at(level: usize, file: Arc<FileMetaData>) -> Compaction {
        Compaction {
            level,
            inputs: vec![file],
            next_inputs: Vec::new(),
            in_place: true,
        }
    }

    /// One file, nothing to merge with: move it down by editing the MANIFEST.
    pub fn is_trivial_move(&self) -> bool {
        self.inputs.len() == 1 && self.next_inputs.is_empty()
    }

    pub fn input_bytes(&self) -> u64 {
        self.inputs
            .iter()
            .chain(self.next_inputs.iter())
            .map(|f| f.file_size)
            .sum()
    }

    /// The edit that retires every input.
    pub fn delete_inputs(&self, edit: &mut VersionEdit) {
        for f in &self.inputs {
            edit.deleted_files.insert((self.level, f.number));
        }
        for f in &self.next_inputs {
            edit.deleted_files.insert((self.level + 1, f.number));
        }
    }
}

/// A blob file whose garbage reaches this share of its bytes has its live
/// records relocated by the compactions that meet them.
pub const BLOB_GC_RATIO: f64 = 0.5;
/// Most bytes one compaction relocates.
pub const BLOB_GC_MAX_BYTES: u64 = 64 << 20;

/// The blob files a compaction of `version` relocates records out of.
pub fn gc_candidates(version: &Version) -> HashSet<u64> {
    version
        .blobs
        .values()
        .filter(|b| b.garbage_bytes as f64 >= BLOB_GC_RATIO * b.record_bytes as f64)
        .map(|b| b.number)
        .collect()
}
