//! A Version: the immutable set of live SSTables, per level.
//!
//! Readers take an `Arc<Version>` and keep using it while flushes and
//! compactions install newer ones, so a read never waits for background
//! work. Level 0 files may overlap each other (they are flushed memtables,
//! or tables `repair` found) and a lookup takes the highest sequence among
//! them; files of level 1 and deeper are disjoint
//! and sorted by key, so one binary search finds the only candidate.
//!
//! A file stays on disk while any Version that names it is alive (see
//! `VersionSet::live_files`), so an old iterator keeps working after a
//! compaction has retired its files.
//!
//! | module | job |
//! | --- | --- |
//! | this one | `Version`: lookups, overlaps, iterators, invariants |
//! | `level_iter` | iterating one level's disjoint tables |
//! | `edit` | `VersionEdit`, one change to the file set: the MANIFEST record |
//! | `set` | `VersionSet`: the current Version, the MANIFEST and CURRENT, recovery |

pub mod edit;
pub mod level_iter;
pub mod set;

pub use edit::{FileMetaData, VersionEdit};
pub use level_iter::{level_iterator, LevelIterator};
pub use set::VersionSet;

use crate::engine::blob::BlobFileMeta;
use crate::engine::dbformat::{compare_internal, parse_internal_key, user_key, ValueType};
use crate::engine::error::{Error, Result};
use crate::engine::iterator::InternalIterator;
use crate::engine::options::NUM_LEVELS;
use crate::engine::table::{ReadAhead, TableCache};

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The outcome of looking a key up in the tables.
#[derive(Debug, PartialEq, Eq)]
pub enum TableGet {
    Found(Vec<u8>),
    /// Found as a blob reference (see `blob`).
    Blob(Vec<u8>),
    Deleted,
    NotFound,
}

#[derive(Debug, Clone, Default)]
pub struct Version {
    /// `files[0]` sorted by file number (oldest first); deeper levels by smallest key.
    pub files: Vec<Vec<Arc<FileMetaData>>>,
    /// Live blob files by number.
    pub blobs: BTreeMap<u64, Arc<BlobFileMeta>>,
}

impl Version {
    pub fn empty() -> Version {
        Version {
            files: vec![Vec::new(); NUM_LEVELS],
            blobs: BTreeMap::new(),
        }
    }

    pub fn num_files(&self, level: usize) -> usize {
        self.files.get(level).map_or(0, |f| f.len())
    }

    pub fn level_bytes(&self, level: usize) -> u64 {
        self.files
            .get(level)
            .map_or(0, |f| f.iter().map(|m| m.file_size).sum())
    }

    pub fn total_files(&self) -> usize {
        self.files.iter().map(|f| f.len()).sum()
    }

    /// Look up `ukey` as of the sequence encoded in `lookup` (an internal
    /// key). `cover` is the newest range deletion over the key seen so far
    /// (in the memtables); the tables' own raise it as they are probed, and
    /// an entry older than it counts as deleted.
    pub fn get(&self, tables: &TableCache, lookup: &[u8], cover: &mut u64) -> Result<TableGet> {
        let ukey = user_key(lookup);
        // An entry older than the newest range deletion over it is deleted.
        let visible = |(seq, r): (u64, TableGet), cover: u64| {
            if seq < cover {
                TableGet::Deleted
            } else {
                r
            }
        };
        // Level 0: the files whose range holds the key may overlap, so the
        // newest entry is the one with the highest sequence. Flushed files
        // are newest-first by number too, but files placed in L0 by
        // `repair` need not be: visit them by largest sequence and stop
        // once no file left can hold a newer entry (or range deletion)
        // than the entry found.
        let mut l0: Vec<&Arc<FileMetaData>> = self.files[0]
            .iter()
            .filter(|f| user_key(&f.smallest) <= ukey && ukey <= user_key(&f.largest))
            .collect();
        l0.sort_by_key(|f| std::cmp::Reverse((f.largest_seq, f.number)));
        let mut best: Option<(u64, TableGet)> = None;
        for f in l0 {
            if best.as_ref().is_some_and(|(seq, _)| f.largest_seq < *seq) {
                break;
            }
            if let Some((seq, r)) = probe(tables, f, lookup, ukey, cover)? {
                if best.as_ref().is_none_or(|(s, _)| seq > *s) {
                    best = Some((seq, r));
                }
            }
        }
        if let Some(b) = best {
            return Ok(visible(b, *cover));
        }
        for level in 1..NUM_LEVELS {
            let files = &self.files[level];
            let idx = find_file(files, lookup);
            if let Some(f) = files.get(idx) {
                if user_key(&f.smallest) <= ukey {
                    if let Some(b) = probe(tables, f, lookup, ukey, cover)? {
                        return Ok(visible(b, *cover));
                    }
                }
            }
        }
        Ok(TableGet::NotFound)
    }

    /// Every table of this version whose key range meets `[start, end)`
    /// (`end` None: unbounded), newest level first.
    pub fn files_overlapping(&self, start: &[u8], end: Option<&[u8]>) -> Vec<Arc<FileMetaData>> {
        let meets = |f: &FileMetaData| {
            user_key(&f.largest) >= start && end.is_none_or(|e| user_key(&f.smallest) < e)
        };
        let mut out: Vec<Arc<FileMetaData>> =
            self.files[0].iter().filter(|f| meets(f)).cloned().collect();
        for files in self.files.iter().skip(1) {
            // Sorted and disjoint: skip to the first that can meet the range.
            let from = files.partition_point(|f| user_key(&f.largest) < start);
            out.extend(files[from..].iter().take_while(|f| meets(f)).cloned());
        }
        out
    }

    /// Files of `level` whose user-key range intersects `[begin, end]` (None = unbounded).
    /// For level 0 the range is widened by every overlapping file, as L0 files overlap.
    pub fn overlapping_inputs(
        &self,
        level: usize,
        begin: Option<&[u8]>,
        end: Option<&[u8]>,
    ) -> Vec<Arc<FileMetaData>> {
        let mut lo = begin.map(|b| b.to_vec());
        let mut hi = end.map(|e| e.to_vec());
        let files = &self.files[level];
        let mut out: Vec<Arc<FileMetaData>> = Vec::new();
        let mut i = 0;
        while i < files.len() {
            let f = &files[i];
            i += 1;
            let fs = user_key(&f.smallest);
            let fl = user_key(&f.largest);
            let before = lo.as_deref().is_some_and(|b| fl < b);
            let after = hi.as_deref().is_some_and(|e| fs > e);
            if before || after {
                continue;
            }
            out.push(f.clone());
            if level == 0 {
                // Restart if this file widens the range.
                let mut widened = false;
                if lo.as_deref().is_some_and(|b| fs < b) {
                    lo = Some(fs.to_vec());
                    widened = true;
                }
                if hi.as_deref().is_some_and(|e| fl > e) {
                    hi = Some(fl.to_vec());
                    widened = true;
                }
                if widened {
                    out.clear();
                    i = 0;
                }
            }
        }
        out
    }

    /// Whether any file at `level` or deeper may hold `ukey`.
    pub fn key_may_exist_below(&self, level: usize, ukey: &[u8]) -> bool {
        for files in self.files.iter().skip(level) {
            for f in files {
                if user_key(&f.smallest) <= ukey && ukey <= user_key(&f.largest) {
                    return true;
                }
            }
        }
        false
    }

    /// Iterators over every table of this version: one per L0 file, one
    /// concatenating iterator per deeper non-empty level.
    pub fn iterators(
        &self,
        tables: &Arc<TableCache>,
        ahead: Option<&ReadAhead>,
    ) -> Result<Vec<Box<dyn InternalIterator>>> {
        let mut out: Vec<Box<dyn InternalIterator>> = Vec::new();
        for f in self.files[0].iter().rev() {
            let t = tables.get_table(f.number, f.file_size)?;
            out.push(Box::new(t.iter_with(ahead.cloned())));
        }
        for level in 1..NUM_LEVELS {
            if !self.files[level].is_empty() {
                out.push(Box::new(level_iterator(
                    tables.clone(),
                    self.files[level].clone(),
                    ahead.cloned(),
                )));
            }
        }
        Ok(out)
    }

    /// Check the invariants a recovered Version must hold: L1+ files sorted
    /// and disjoint, every file's smallest <= largest.
    pub fn check_invariants(&self) -> std::result::Result<(), String> {
        for (level, files) in self.files.iter().enumerate() {
            for f in files {
                if compare_internal(&f.smallest, &f.largest) == Ordering::Greater {
                    return Err(format!(
                        "L{level} file #{} has smallest > largest",
                        f.number
                    ));
                }
            }
            if level == 0 {
                continue;
            }
            for w in files.windows(2) {
                if compare_internal(&w[0].largest, &w[1].smallest) != Ordering::Less {
                    return Err(format!(
                        "L{level} files #{} and #{} overlap",
                        w[0].number, w[1].number
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Index of the first file whose largest key >= `ikey` (files sorted, disjoint).
pub fn find_file(files: &[Arc<FileMetaData>], ikey: &[u8]) -> usize {
    files.partition_point(|f| compare_internal(&f.largest, ikey) == Ordering::Less)
}

/// The entry for `ukey` visible at `lookup` in `f`, with its sequence;
/// raises `cover` to the newest of `f`'s range deletions over the key.
fn probe(
    tables: &TableCache,
    f: &FileMetaData,
    lookup: &[u8],
    ukey: &[u8],
    cover: &mut u64,
) -> Result<Option<(u64, TableGet)>> {
    let table = tables.get_table(f.number, f.file_size)?;
    let read_seq = parse_internal_key(lookup).map_or(u64::MAX, |p| p.sequence);
    *cover = (*cover).max(table.range_deletions().max_covering(ukey, read_seq));
    match table.get(lookup)? {
        Some((ikey, value)) => {
            let parsed = parse_internal_key(&ikey).ok_or_else(|| {
                Error::corruption(table.path(), 0, "malformed internal key in table")
            })?;
            if parsed.user_key != ukey {
                return Ok(None);
            }
            let r = match parsed.value_type {
                ValueType::Value => TableGet::Found(value),
                ValueType::BlobIndex => TableGet::Blob(value),
                ValueType::Deletion | ValueType::RangeDeletion => TableGet::Deleted,
            };
            Ok(Some((parsed.sequence, r)))
        }
        None => Ok(None),
    }
}
