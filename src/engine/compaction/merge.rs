//! Merging a compaction's inputs into new tables: dropping what no snapshot
//! can see, clipping range deletions at the output cuts, counting and
//! relocating blob records (the rules are in `compaction`'s module doc).

use super::{gc_candidates, Compaction};
use crate::engine::blob::{BlobCache, BlobFileMeta, BlobPrefetcher, BlobWriter};
use crate::engine::db::SCAN_READ_AHEAD;
use crate::engine::dbformat::{parse_internal_key, user_key, ValueType};
use crate::engine::env::Env;
use crate::engine::error::{Error, Result};
use crate::engine::filename::table_file_name;
use crate::engine::iterator::InternalIterator;
use crate::engine::options::Options;
use crate::engine::range_del::{Fragments, RangeTombstone};
use crate::engine::snapshot::Stripes;
use crate::engine::table::merger::MergingIterator;
use crate::engine::table::TableCache;
use crate::engine::table::{ReadAhead, TableBuilder, TableOptions};
use crate::engine::version::edit::FileMetaData;
use crate::engine::version::{level_iterator, Version};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::Arc;

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
        children.push(Box::new(level_iterator(
            ctx.tables.clone(),
            c.inputs.clone(),
            Some(ahead.clone()),
        )));
    }
    if !c.next_inputs.is_empty() {
        children.push(Box::new(level_iterator(
            ctx.tables.clone(),
            c.next_inputs.clone(),
            Some(ahead),
        )));
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
                let r = crate::engine::blob::decode_ref(ctx.dir, input.value())?;
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
                    && relocated_bytes < ctx.options.blob_gc_max_bytes
                {
                    let r = crate::engine::blob::decode_ref(ctx.dir, value)?;
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
