//! Live figures of an open database (`lsmfs stats`, benchmarks).

use super::{lock, Db};
use crate::engine::options::NUM_LEVELS;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Per-level figures.
#[derive(Debug, Clone, Default)]
pub struct LevelStats {
    pub files: usize,
    pub bytes: u64,
    pub score: f64,
}

/// Live figures of an open database.
#[derive(Debug, Clone, Default)]
pub struct DbStats {
    pub levels: Vec<LevelStats>,
    pub last_sequence: u64,
    pub user_bytes_written: u64,
    pub wal_bytes_written: u64,
    pub bytes_flushed: u64,
    pub bytes_compacted_read: u64,
    pub bytes_compacted_written: u64,
    /// Blob files written by flushes, and by GC relocating live records.
    pub bytes_blob_written: u64,
    pub bytes_blob_relocated: u64,
    pub blob_gc_runs: u64,
    pub blob_files: usize,
    pub blob_bytes: u64,
    pub blob_garbage_bytes: u64,
    pub num_flushes: u64,
    pub num_compactions: u64,
    pub num_trivial_moves: u64,
    /// Tables rewritten to drop what only a deleted snapshot kept.
    pub snapshot_rewrites: u64,
    pub memtable_bytes: u64,
    pub wal_bytes: u64,
    pub block_cache_hits: u64,
    pub block_cache_misses: u64,
    pub gets: u64,
    pub writes: u64,
    pub write_stalls: u64,
    pub wal_syncs: u64,
    /// Set while a flush or compaction is running (for crash-test logging).
    pub background_busy: bool,
}

impl DbStats {
    /// Bytes written to disk (WAL + flushes + compactions) per user byte.
    pub fn write_amplification(&self) -> f64 {
        if self.user_bytes_written == 0 {
            return 0.0;
        }
        (self.wal_bytes_written + self.table_bytes_written() + self.blob_bytes_written()) as f64
            / self.user_bytes_written as f64
    }

    pub fn table_bytes_written(&self) -> u64 {
        self.bytes_flushed + self.bytes_compacted_written
    }

    pub fn blob_bytes_written(&self) -> u64 {
        self.bytes_blob_written + self.bytes_blob_relocated
    }

    pub fn block_cache_hit_rate(&self) -> f64 {
        let total = self.block_cache_hits + self.block_cache_misses;
        if total == 0 {
            0.0
        } else {
            self.block_cache_hits as f64 / total as f64
        }
    }
}

impl std::fmt::Display for DbStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "level  files        bytes  score")?;
        for (i, l) in self.levels.iter().enumerate() {
            writeln!(f, "L{i:<5} {:>5} {:>12} {:>6.2}", l.files, l.bytes, l.score)?;
        }
        writeln!(f, "last_sequence        {}", self.last_sequence)?;
        writeln!(f, "user_bytes_written   {}", self.user_bytes_written)?;
        writeln!(f, "wal_bytes_written    {}", self.wal_bytes_written)?;
        writeln!(
            f,
            "bytes_flushed        {} ({} flushes)",
            self.bytes_flushed, self.num_flushes
        )?;
        writeln!(
            f,
            "bytes_compacted      {} read, {} written ({} compactions, {} trivial moves)",
            self.bytes_compacted_read,
            self.bytes_compacted_written,
            self.num_compactions,
            self.num_trivial_moves
        )?;
        writeln!(
            f,
            "snapshot_rewrites    {} (tables rewritten after snapshot deletes)",
            self.snapshot_rewrites
        )?;
        writeln!(
            f,
            "blob_files           {} ({} bytes, {} garbage; {} written by flushes, {} relocated by {} GC runs)",
            self.blob_files,
            self.blob_bytes,
            self.blob_garbage_bytes,
            self.bytes_blob_written,
            self.bytes_blob_relocated,
            self.blob_gc_runs
        )?;
        let per_user = |n: u64| {
            if self.user_bytes_written == 0 {
                0.0
            } else {
                n as f64 / self.user_bytes_written as f64
            }
        };
        writeln!(
            f,
            "write_amplification  {:.2} (WAL {:.2}, tables {:.2}, blobs {:.2})",
            self.write_amplification(),
            per_user(self.wal_bytes_written),
            per_user(self.table_bytes_written()),
            per_user(self.blob_bytes_written())
        )?;
        writeln!(f, "memtable_bytes       {}", self.memtable_bytes)?;
        writeln!(f, "wal_bytes            {}", self.wal_bytes)?;
        writeln!(
            f,
            "block_cache          {} hits, {} misses ({:.1}% hit rate)",
            self.block_cache_hits,
            self.block_cache_misses,
            100.0 * self.block_cache_hit_rate()
        )?;
        writeln!(f, "gets                 {}", self.gets)?;
        writeln!(
            f,
            "writes               {} ({} WAL syncs)",
            self.writes, self.wal_syncs
        )?;
        writeln!(f, "write_stalls         {}", self.write_stalls)?;
        writeln!(f, "background_busy      {}", self.background_busy)
    }
}

#[derive(Default)]
pub(super) struct Counters {
    pub(super) user_bytes_written: AtomicU64,
    pub(super) wal_bytes_written: AtomicU64,
    pub(super) bytes_flushed: AtomicU64,
    pub(super) bytes_compacted_read: AtomicU64,
    pub(super) bytes_compacted_written: AtomicU64,
    pub(super) bytes_blob_written: AtomicU64,
    pub(super) blob_gc_runs: AtomicU64,
    pub(super) bytes_blob_relocated: AtomicU64,
    pub(super) num_flushes: AtomicU64,
    pub(super) num_compactions: AtomicU64,
    pub(super) num_trivial_moves: AtomicU64,
    pub(super) snapshot_rewrites: AtomicU64,
    pub(super) gets: AtomicU64,
    pub(super) writes: AtomicU64,
    pub(super) write_stalls: AtomicU64,
    pub(super) wal_syncs: AtomicU64,
    pub(super) background_busy: AtomicBool,
}

pub(super) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Db {
    pub fn stats(&self) -> DbStats {
        let s = &self.handle.shared;
        let (current, mem_bytes, imm_bytes) = {
            let st = lock(&s.state);
            (
                st.current.clone(),
                st.mem.approximate_memory_usage() as u64,
                st.imm
                    .as_ref()
                    .map_or(0, |m| m.approximate_memory_usage() as u64),
            )
        };
        let scores = lock(&s.versions).level_scores(&s.opts);
        let wal_bytes = lock(&s.log).as_ref().map_or(0, |w| w.len());
        let c = &s.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        DbStats {
            levels: (0..NUM_LEVELS)
                .map(|l| LevelStats {
                    files: current.num_files(l),
                    bytes: current.level_bytes(l),
                    score: scores.get(l).copied().unwrap_or(0.0),
                })
                .collect(),
            last_sequence: s.visible_seq.load(Ordering::Acquire),
            user_bytes_written: get(&c.user_bytes_written),
            wal_bytes_written: get(&c.wal_bytes_written),
            bytes_flushed: get(&c.bytes_flushed),
            bytes_compacted_read: get(&c.bytes_compacted_read),
            bytes_compacted_written: get(&c.bytes_compacted_written),
            bytes_blob_written: get(&c.bytes_blob_written),
            bytes_blob_relocated: get(&c.bytes_blob_relocated),
            blob_gc_runs: get(&c.blob_gc_runs),
            blob_files: current.blobs.len(),
            blob_bytes: current.blobs.values().map(|b| b.file_size).sum(),
            blob_garbage_bytes: current.blobs.values().map(|b| b.garbage_bytes).sum(),
            num_flushes: get(&c.num_flushes),
            num_compactions: get(&c.num_compactions),
            num_trivial_moves: get(&c.num_trivial_moves),
            memtable_bytes: mem_bytes + imm_bytes,
            wal_bytes,
            block_cache_hits: s.block_cache.hits(),
            block_cache_misses: s.block_cache.misses(),
            gets: get(&c.gets),
            writes: get(&c.writes),
            write_stalls: get(&c.write_stalls),
            snapshot_rewrites: get(&c.snapshot_rewrites),
            wal_syncs: get(&c.wal_syncs),
            background_busy: c.background_busy.load(Ordering::Relaxed),
        }
    }
}
