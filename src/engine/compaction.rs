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
//! `BLOB_GC_MAX_BYTES` per compaction, so that a compaction (and the L0
//! slowdown behind it) stays bounded; the rest waits for the next pass.
//! It runs on the background thread only: writers and readers never wait
//! for it.
//!
//! Compactions run when a level is over its budget, and after a big delete
//! none may be: the tables hold small references, the range deletion sits
//! in the memtable. So when writes pause (`db`'s `RECLAIM_IDLE`) and no
//! compaction is due, the background thread reclaims on its own, one
//! bounded step at a time, a flush always first: it switches a memtable
//! holding range deletions, compacts each table holding some down to the
//! bottom (where they go, with what they delete — the references dropped
//! count as garbage, the blob files all garbage are deleted), and while
//! blob files are at least `BLOB_GC_RATIO` garbage it makes a pass over
//! the tables, merging each one down (the bottom level's in place), which
//! relocates the live records they reference. A pass that ends with the
//! same garbage it started with is not repeated until something changes.

use super::blob::{BlobCache, BlobFileMeta, BlobPrefetcher, BlobWriter};
use super::db::SCAN_READ_AHEAD;
use super::dbformat::{parse_internal_key, user_key, ValueType};
use super::env::Env;
use super::error::{Error, Result};
use super::filename::table_file_name;
use super::iterator::InternalIterator;
use super::merge_iter::MergingIterator;
use super::options::{Options, NUM_LEVELS};
use super::range_del::{Fragments, RangeTombstone};
use super::snapshot::Stripes;
use super::sstable::{ReadAhead, TableBuilder, TableOptions};
use super::table_cache::TableCache;
use super::version::{LevelIterator, Version};
use super::version_edit::{FileMetaData, VersionEdit};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::Arc;

/// A chosen compaction: files of `level` merged into `level + 1` — or,
/// `in_place`, one bottom-level file rewritten where it is (a full manual
/// compaction does that to relocate the blob records it references).
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
        Compaction {
            level: NUM_LEVELS - 1,
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

/// Pick the most urgent compaction, if any level's score reaches 1.
pub fn pick(version: &Version, scores: &[f64], compact_pointers: &[Vec<u8>]) -> Option<Compaction> {
    let (level, score) = scores
        .iter()
        .enumerate()
        .take(NUM_LEVELS - 1)
        .max_by(|a, b| a.1.partial_cmp(b.1).unwrap_or(std::cmp::Ordering::Equal))?;
    if *score < 1.0 || version.files[level].is_empty() {
        return None;
    }
    let files = &version.files[level];
    let first = if level == 0 {
        files[0].clone()
    } else {
        let ptr = compact_pointers.get(level).map_or(&[][..], |p| &p[..]);
        files
            .iter()
            .find(|f| {
                ptr.is_empty()
                    || super::dbformat::compare_internal(&f.largest, ptr)
                        == std::cmp::Ordering::Greater
            })
            .unwrap_or(&files[0])
            .clone()
    };
    let mut inputs = vec![first];
    if level == 0 {
        let (lo, hi) = key_range(&inputs);
        inputs = version.overlapping_inputs(0, Some(&lo), Some(&hi));
    }
    Some(with_next_level(version, level, inputs))
}

/// A compaction of everything at `level` overlapping `[begin, end]`, if any.
pub fn pick_range(
    version: &Version,
    level: usize,
    begin: Option<&[u8]>,
    end: Option<&[u8]>,
) -> Option<Compaction> {
    let inputs = version.overlapping_inputs(level, begin, end);
    if inputs.is_empty() {
        return None;
    }
    Some(with_next_level(version, level, inputs))
}

fn with_next_level(version: &Version, level: usize, inputs: Vec<Arc<FileMetaData>>) -> Compaction {
    let (lo, hi) = key_range(&inputs);
    let next_inputs = if level + 1 < NUM_LEVELS {
        version.overlapping_inputs(level + 1, Some(&lo), Some(&hi))
    } else {
        Vec::new()
    };
    Compaction {
        level,
        inputs,
        next_inputs,
        in_place: false,
    }
}

/// Smallest and largest user key over `files`.
fn key_range(files: &[Arc<FileMetaData>]) -> (Vec<u8>, Vec<u8>) {
    let mut lo: Option<&[u8]> = None;
    let mut hi: Option<&[u8]> = None;
    for f in files {
        let s = user_key(&f.smallest);
        let l = user_key(&f.largest);
        if lo.is_none_or(|x| s < x) {
            lo = Some(s);
        }
        if hi.is_none_or(|x| l > x) {
            hi = Some(l);
        }
    }
    (
        lo.unwrap_or_default().to_vec(),
        hi.unwrap_or_default().to_vec(),
    )
}

/// Everything a merge needs besides the inputs.
pub struct MergeContext<'a> {
    pub blobs: &'a Arc<BlobCache>,
    pub env: &'a Arc<dyn Env>,
    pub dir: &'a Path,
    pub options: &'a Options,
    pub tables: &'a Arc<TableCache>,
    pub version: &'a Version,
    /// The live snapshots' stripes (the live view's included).
    pub stripes: &'a Stripes,
    pub shutting_down: &'a AtomicBool,
}

/// Tracks, for keys in increasing order, whether any level deeper than the
/// output level may hold them (LevelDB's IsBaseLevelForKey, with cursors).
struct DeeperLevels<'a> {
    levels: Vec<(&'a [Arc<FileMetaData>], usize)>,
}

impl<'a> DeeperLevels<'a> {
    fn new(version: &'a Version, from_level: usize) -> Self {
        DeeperLevels {
            levels: version
                .files
                .iter()
                .skip(from_level)
                .map(|f| (&f[..], 0usize))
                .collect(),
        }
    }

    fn may_contain(&mut self, ukey: &[u8]) -> bool {
        for (files, idx) in self.levels.iter_mut() {
            while *idx < files.len() && user_key(&files[*idx].largest) < ukey {
                *idx += 1;
            }
            if let Some(f) = files.get(*idx) {
                if user_key(&f.smallest) <= ukey {
                    return true;
                }
            }
        }
        false
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

/// What a merge wrote, and the blob records whose references it dropped
/// or relocated: blob file → (records, bytes).
#[derive(Debug, Default)]
pub struct MergeOutput {
    pub tables: Vec<FileMetaData>,
    pub blob_garbage: BTreeMap<u64, (u64, u64)>,
    /// The blob file relocated records went to.
    pub new_blob: Option<BlobFileMeta>,
    pub relocated_bytes: u64,
}

/// Merge the inputs into new tables for `level + 1`. `new_file` allocates a
/// file number (and registers it as pending so it is not collected).
/// Tables are fsync'd by their builder; the caller fsyncs the directory
/// before naming them in the MANIFEST.
pub fn merge(
    c: &Compaction,
    ctx: &MergeContext<'_>,
    new_file: &mut dyn FnMut() -> u64,
) -> Result<MergeOutput> {
    let mut blob_garbage: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    let candidates = if ctx.options.min_blob_size > 0 {
        gc_candidates(ctx.version)
    } else {
        HashSet::new()
    };
    let mut gc_reader = BlobPrefetcher::new(ctx.blobs.clone(), SCAN_READ_AHEAD);
    let mut gc_writer: Option<BlobWriter> = None;
    let mut relocated_bytes = 0u64;
    // Inputs are read whole: in large runs, and around the block cache.
    let ahead = ReadAhead {
        upper: None,
        max_bytes: SCAN_READ_AHEAD,
        fill_cache: false,
    };
    let mut children: Vec<Box<dyn InternalIterator>> = Vec::new();
    if c.level == 0 {
        for f in &c.inputs {
            let t = ctx.tables.get_table(f.number, f.file_size)?;
            children.push(Box::new(t.iter_with(Some(ahead.clone()))));
        }
    } else {
        children.push(Box::new(
            LevelIterator::new(ctx.tables.clone(), c.inputs.clone())
                .read_ahead(Some(ahead.clone())),
        ));
    }
    if !c.next_inputs.is_empty() {
        children.push(Box::new(
            LevelIterator::new(ctx.tables.clone(), c.next_inputs.clone()).read_ahead(Some(ahead)),
        ));
    }
    let mut input = MergingIterator::new(children);
    input.seek_to_first();

    let out_level = c.output_level();
    let mut tombstones = Vec::new();
    for f in c.inputs.iter().chain(c.next_inputs.iter()) {
        let t = ctx.tables.get_table(f.number, f.file_size)?;
        tombstones.extend(t.range_deletions().tombstones().iter().cloned());
    }
    let covering = Fragments::new(tombstones.clone());
    let smallest = ctx.stripes.smallest();
    // The tombstones the outputs keep, sorted by start.
    let kept: Vec<RangeTombstone> = covering
        .tombstones()
        .iter()
        .filter(|t| t.seq > smallest || overlaps_below(ctx.version, out_level + 1, t))
        .cloned()
        .collect();
    // Where the output being written starts (None: the first).
    let mut lower: Option<Vec<u8>> = None;
    let finish_with = |n: u64,
                       mut b: TableBuilder,
                       lo: Option<&[u8]>,
                       hi: Option<&[u8]>|
     -> Result<FileMetaData> {
        for t in &kept {
            if let Some(piece) = t.clip(lo, hi) {
                b.add_range_deletion(piece);
            }
        }
        finish_output(n, b)
    };
    let mut deeper = DeeperLevels::new(ctx.version, out_level + 1);
    let topts = TableOptions::from_options(ctx.options);
    let mut outputs: Vec<FileMetaData> = Vec::new();
    let mut builder: Option<(u64, TableBuilder)> = None;
    let mut current_user_key: Option<Vec<u8>> = None;
    let mut last_seq_for_key = u64::MAX;

    let result: Result<()> = (|| {
        while input.valid() {
            if ctx.shutting_down.load(AtomicOrdering::Acquire) {
                return Err(Error::Background("shutting down".into()));
            }
            let ikey = input.key();
            let Some(parsed) = parse_internal_key(ikey) else {
                return Err(Error::InvalidArgument(format!(
                    "malformed internal key of {} bytes in compaction input",
                    ikey.len()
                )));
            };
            let new_user_key = current_user_key.as_deref() != Some(parsed.user_key);
            if new_user_key {
                // Cut the output between user keys once it is big enough.
                if let Some((_, b)) = &builder {
                    if b.file_size() >= ctx.options.target_file_size {
                        if let Some((n, b)) = builder.take() {
                            let hi = parsed.user_key;
                            outputs.push(finish_with(n, b, lower.as_deref(), Some(hi))?);
                            lower = Some(hi.to_vec());
                        }
                    }
                }
                current_user_key = Some(parsed.user_key.to_vec());
                last_seq_for_key = u64::MAX;
            }
            let seq = parsed.sequence;
            let drop = if new_user_key {
                false
            } else {
                // A newer entry of this key every snapshot seeing this one sees.
                ctx.stripes.shadowed(last_seq_for_key, seq)
            } || ctx
                .stripes
                .covered(seq, |read| covering.max_covering(parsed.user_key, read))
                || (parsed.value_type == ValueType::Deletion
                    && seq <= smallest
                    && !deeper.may_contain(parsed.user_key));
            last_seq_for_key = parsed.sequence;
            if drop && parsed.value_type == ValueType::BlobIndex {
                let r = super::blob::decode_ref(ctx.dir, input.value())?;
                let g = blob_garbage.entry(r.file).or_default();
                g.0 += 1;
                g.1 += r.size;
            }
            if !drop {
                if builder.is_none() {
                    let n = new_file();
                    let path = table_file_name(ctx.dir, n);
                    let file = ctx.env.create_writable(&path)?;
                    builder = Some((n, TableBuilder::new(file, topts.clone())));
                }
                let mut value = input.value();
                let moved;
                if parsed.value_type == ValueType::BlobIndex
                    && !candidates.is_empty()
                    && relocated_bytes < BLOB_GC_MAX_BYTES
                {
                    let r = super::blob::decode_ref(ctx.dir, value)?;
                    if candidates.contains(&r.file) {
                        let v = gc_reader.get(parsed.user_key, value)?;
                        if gc_writer.is_none() {
                            gc_writer =
                                Some(BlobWriter::create(ctx.env.as_ref(), ctx.dir, new_file())?);
                        }
                        if let Some(w) = gc_writer.as_mut() {
                            let nr = w.add(parsed.user_key, &v)?;
                            relocated_bytes += nr.size;
                            let g = blob_garbage.entry(r.file).or_default();
                            g.0 += 1;
                            g.1 += r.size;
                            moved = nr.encode();
                            value = &moved;
                        }
                    }
                }
                if let Some((_, b)) = builder.as_mut() {
                    b.add(ikey, value)?;
                }
            }
            input.next();
        }
        input.status()?;
        let rest = kept
            .iter()
            .any(|t| t.clip(lower.as_deref(), None).is_some());
        if builder.is_none() && rest {
            // Tombstones past the last kept entry (or no entry at all).
            let n = new_file();
            let file = ctx.env.create_writable(&table_file_name(ctx.dir, n))?;
            builder = Some((n, TableBuilder::new(file, topts.clone())));
        }
        if let Some((n, b)) = builder.take() {
            outputs.push(finish_with(n, b, lower.as_deref(), None)?);
        }
        Ok(())
    })();
    let new_blob = match (result.is_ok(), gc_writer) {
        (true, Some(w)) => Some(w.finish()?),
        _ => None,
    };
    if let Err(e) = result {
        if let Some((_, b)) = builder.take() {
            b.abandon();
        }
        return Err(e);
    }
    Ok(MergeOutput {
        tables: outputs,
        blob_garbage,
        new_blob,
        relocated_bytes,
    })
}

/// Whether a file at `level` or deeper overlaps `t`'s range.
fn overlaps_below(version: &Version, level: usize, t: &RangeTombstone) -> bool {
    version.files.iter().skip(level).any(|files| {
        files
            .iter()
            .any(|f| user_key(&f.largest) >= &t.start[..] && user_key(&f.smallest) < &t.end[..])
    })
}

/// Finish a table and describe it for the MANIFEST.
pub fn finish_output(number: u64, builder: TableBuilder) -> Result<FileMetaData> {
    let s = builder.finish()?;
    Ok(FileMetaData {
        number,
        file_size: s.file_size,
        smallest: s.smallest,
        largest: s.largest,
        smallest_seq: s.smallest_seq,
        largest_seq: s.largest_seq,
        num_entries: s.num_entries,
    })
}
