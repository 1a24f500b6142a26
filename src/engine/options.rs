//! Tuning knobs of the engine, with defaults close to LevelDB's.

use super::env::posix::PosixEnv;
use super::env::Env;
use std::sync::Arc;

/// When the WAL is fsync'd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// Every write batch is fsync'd before it is acknowledged.
    Always,
    /// Only writes with `sync = true`, and `Db::sync()`, fsync the WAL.
    OnRequest,
}

#[derive(Clone)]
pub struct Options {
    pub env: Arc<dyn Env>,
    pub create_if_missing: bool,
    pub sync_mode: SyncMode,
    /// Memtable size at which it is switched to immutable and flushed.
    pub write_buffer_size: usize,
    /// Target uncompressed size of an SSTable data block.
    pub block_size: usize,
    pub block_restart_interval: usize,
    pub bloom_bits_per_key: usize,
    /// Capacity of the LRU block cache, in bytes.
    pub block_cache_bytes: usize,
    /// How many SSTables are kept open.
    pub max_open_files: usize,
    /// Target size of one SSTable written by compaction.
    pub target_file_size: u64,
    /// Byte budget of level 1; each deeper level gets 10x more.
    pub max_bytes_for_level_base: u64,
    pub l0_compaction_trigger: usize,
    pub l0_slowdown_trigger: usize,
    pub l0_stop_trigger: usize,
    /// A MANIFEST larger than this is replaced by a fresh one holding a snapshot.
    pub max_manifest_size: u64,
    /// Run compactions in the background thread (tests may turn it off).
    pub background_compaction: bool,
    /// Open without changing anything on disk (for `check`, `inspect`,
    /// `stats`): the WALs are replayed into memory only, no file is
    /// created or deleted, and writes are refused.
    pub read_only: bool,
    /// Values of at least this many bytes go to the blob log beside the
    /// WAL (written once; the WAL and the tables keep a reference), and
    /// those of a replayed WAL to a blob file at flush (0: never). See `blob`.
    pub min_blob_size: usize,
    /// Most blob bytes one compaction relocates out of files past the GC
    /// ratio (`compaction::BLOB_GC_MAX_BYTES` by default): the bound that
    /// keeps a compaction, and the writers behind it, short.
    pub blob_gc_max_bytes: u64,
    /// Take the tree-shaping fields (memtable size, level budget, table
    /// size, L0 trigger) from the directory's `OPTIONS` file, as its last
    /// read-write open set them (offline tools; see `options_file`).
    pub tuning_from_dir: bool,
    /// Who this opener is, written into LOCK after the pid (e.g. the mount
    /// point) so a refused opener can say who holds the directory.
    pub lock_note: String,
}

pub const NUM_LEVELS: usize = 7;

impl Default for Options {
    fn default() -> Self {
        Options {
            env: Arc::new(PosixEnv::new()),
            create_if_missing: true,
            sync_mode: SyncMode::OnRequest,
            write_buffer_size: 4 << 20,
            block_size: 4096,
            block_restart_interval: 16,
            bloom_bits_per_key: 10,
            block_cache_bytes: 32 << 20,
            max_open_files: 1000,
            target_file_size: 2 << 20,
            max_bytes_for_level_base: 10 << 20,
            l0_compaction_trigger: 4,
            l0_slowdown_trigger: 8,
            l0_stop_trigger: 12,
            max_manifest_size: 4 << 20,
            background_compaction: true,
            read_only: false,
            // A full 4 KiB file chunk, not the tail of a file or metadata.
            min_blob_size: 4096,
            blob_gc_max_bytes: crate::engine::compaction::BLOB_GC_MAX_BYTES,
            tuning_from_dir: false,
            lock_note: String::new(),
        }
    }
}
