//! The database: ties the WAL, memtables, tables and the VersionSet together.
//!
//! ## Threads and locks
//! - Writers queue up; the first becomes the *leader*, takes the whole queue
//!   as one group (group commit), appends it to the WAL as one record, fsyncs
//!   once if any member asked for it, inserts it into the memtable, then
//!   wakes the others with the common result.
//! - One background thread flushes the immutable memtable to an L0 table and
//!   runs compactions. Edits to the set of files are serialised by
//!   `version_lock`; the MANIFEST write happens under the VersionSet lock,
//!   never under the `state` lock that readers take.
//! - Readers take the `state` lock only to clone `Arc`s of the memtables and
//!   the current Version, then read without locks: they never wait for a
//!   flush or compaction.
//!
//! ## Ordering rules (each one a known bug elsewhere)
//! - A table is fsync'd, and then its directory, before the edit naming it is
//!   written (leveldb#333).
//! - A WAL is deleted only after the edit whose log number covers it is
//!   durable in the MANIFEST; tables only after the edit retiring them is.
//! - After a failed WAL or MANIFEST write/sync, the error is sticky: every
//!   later write fails rather than land behind a damaged record
//!   (rocksdb#6316); the next open starts a fresh WAL and MANIFEST.

use super::blob::{
    divert_large_values, has_large_values, resolve_blob_refs, BlobCache, BlobFileMeta,
    BlobPrefetcher, BlobWriter, ResolveError,
};
use super::cache::BlockCache;
use super::compaction::{self, Compaction, MergeContext};
use super::db_iter::DbIterator;
use super::dbformat::{
    lookup_key, make_internal_key, parse_internal_key, user_key, SequenceNumber, ValueType,
};
use super::env::{Env, FileLock, SharedLock, WritableFile};
use super::error::{Error, Result};
use super::filename::{
    blob_file_name, current_file_name, lock_file_name, log_file_name, parse_file_name,
    table_file_name, FileType,
};
use super::iterator::InternalIterator;
use super::log_reader::LogReader;
use super::log_writer::LogWriter;
use super::memtable::{MemGet, MemTable};
use super::merge_iter::MergingIterator;
use super::options::{Options, SyncMode, NUM_LEVELS};
use super::options_file;
use super::snapshot::{check_name, PersistentSnapshot, Stripes};
use super::sstable::{ReadAhead, TableBuilder, TableOptions};
use super::table_cache::TableCache;
use super::version::{TableGet, Version};
use super::version_edit::{FileMetaData, VersionEdit};
use super::version_set::VersionSet;
use super::write_batch::WriteBatch;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Group commits are capped at this many bytes of batch data.
const MAX_GROUP_BYTES: usize = 1 << 20;
/// Zeros a WAL keeps written past its end so that most fsyncs of it need
/// not change its size (see `WritableFile::set_sync_headroom`).
const WAL_SYNC_HEADROOM: u64 = 64 << 10;

/// How long writes must pause before the background thread reclaims
/// space on its own (see `Shared::reclaim_step`).
const RECLAIM_IDLE: Duration = Duration::from_millis(500);
/// The pause between two steps of a GC pass (writes go first).
const RECLAIM_STEP_PAUSE: Duration = Duration::from_millis(20);

/// A blob log's writeback is started every this many bytes.
const BLOB_WRITEBACK: u64 = 1 << 20;

/// How long the background thread waits before retrying a flush or
/// compaction that found the disk full.
const NO_SPACE_RETRY: Duration = Duration::from_millis(500);

/// Most bytes a range scan (or compaction) reads from a table at once.
pub(crate) const SCAN_READ_AHEAD: usize = 1 << 20;

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
struct Counters {
    user_bytes_written: AtomicU64,
    wal_bytes_written: AtomicU64,
    bytes_flushed: AtomicU64,
    bytes_compacted_read: AtomicU64,
    bytes_compacted_written: AtomicU64,
    bytes_blob_written: AtomicU64,
    blob_gc_runs: AtomicU64,
    bytes_blob_relocated: AtomicU64,
    num_flushes: AtomicU64,
    num_compactions: AtomicU64,
    num_trivial_moves: AtomicU64,
    gets: AtomicU64,
    writes: AtomicU64,
    write_stalls: AtomicU64,
    wal_syncs: AtomicU64,
    background_busy: AtomicBool,
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// What readers and the write leader share, under `Shared::state`.
struct State {
    mem: Arc<MemTable>,
    imm: Option<Arc<MemTable>>,
    current: Arc<Version>,
    /// Number of the WAL that `mem` is logged to.
    log_number: u64,
    /// Sticky: set by a failed WAL/MANIFEST/flush write; every write then fails.
    bg_error: Option<Error>,
    /// The last flush or compaction found the disk full. Not sticky: the
    /// background thread retries at `retry_at`; meanwhile writers that would
    /// have to wait for it get this error (ENOSPC) instead of waiting.
    no_space: Option<Error>,
    retry_at: Option<Instant>,
    /// Whether it was a flush that found no room (a compaction's failure
    /// need not hold back a flush, which writes less).
    no_space_in_flush: bool,
    /// A compaction hit corrupt input; stop compacting, keep serving.
    compaction_paused: bool,
    compaction_needed: bool,
    /// Table numbers being written, not yet in any Version (and blob logs
    /// until the flush edit naming them).
    pending_outputs: HashSet<u64>,
    /// The blob log of `imm` (see `blob`): synced at the switch, sealed
    /// and named by its flush.
    imm_blob: Option<ImmBlob>,
    /// Idle reclaim (`reclaim_step`): the sequence it last found nothing
    /// to do at; the running GC pass (tables numbered below this are
    /// still to go); the GC candidates (file, garbage bytes) the last pass
    /// ended with, so a pass that could do no more is not repeated.
    reclaim_checked_seq: SequenceNumber,
    /// The last reclaim step did something: the next follows shortly.
    reclaiming: bool,
    gc_pass: Option<u64>,
    gc_last: Vec<(u64, u64)>,
}

/// The blob log of the immutable memtable.
enum ImmBlob {
    Open(BlobWriter),
    Sealed(BlobFileMeta),
}

struct Pending {
    id: u64,
    batch: WriteBatch,
    sync: bool,
    force_switch: bool,
}

#[derive(Default)]
struct WriteQueue {
    pending: VecDeque<Pending>,
    results: HashMap<u64, Result<()>>,
    next_id: u64,
    leader_active: bool,
}

struct Shared {
    dir: PathBuf,
    opts: Options,
    env: Arc<dyn Env>,
    state: Mutex<State>,
    /// Signalled when background work is wanted or has made progress.
    bg_cv: Condvar,
    writers: Mutex<WriteQueue>,
    writers_cv: Condvar,
    log: Mutex<Option<LogWriter>>,
    /// The blob log of `mem`, created at its first large value. Lock order:
    /// `state`, then `blob_log`, then `log`.
    blob_log: Mutex<Option<BlobWriter>>,
    versions: Mutex<VersionSet>,
    /// Serialises flushes and compactions (every change of the file set).
    version_lock: Mutex<()>,
    tables: Arc<TableCache>,
    blobs: Arc<BlobCache>,
    block_cache: Arc<BlockCache>,
    /// Highest sequence number whose batch is fully in the memtable.
    visible_seq: AtomicU64,
    snapshots: Mutex<BTreeMap<SequenceNumber, usize>>,
    /// The blob logs the WALs replayed at open referenced.
    wal_blob_logs: HashSet<u64>,
    shutting_down: AtomicBool,
    counters: Counters,
}

/// A consistent read view at a fixed sequence number; released on drop.
pub struct Snapshot {
    pub sequence: SequenceNumber,
    shared: Arc<Shared>,
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        if let Ok(mut s) = self.shared.snapshots.lock() {
            if let Some(c) = s.get_mut(&self.sequence) {
                *c -= 1;
                if *c == 0 {
                    s.remove(&self.sequence);
                }
            }
        }
    }
}

struct Handle {
    shared: Arc<Shared>,
    bg: Mutex<Option<JoinHandle<()>>>,
    lock: Mutex<Option<Box<dyn FileLock>>>,
    /// A read-only open that could take no lock: why.
    unlocked: Option<String>,
    closed: AtomicBool,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Handle {
    fn shutdown(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        {
            // Set the flag under the state lock: the background thread checks
            // it under that lock before waiting, so the wakeup cannot be lost.
            let _st = lock(&self.shared.state);
            self.shared.shutting_down.store(true, Ordering::Release);
        }
        // The blob log first: a synced WAL record never names unsynced blob bytes.
        if let Ok(mut b) = self.shared.blob_log.lock() {
            if let Some(w) = b.as_mut() {
                if let Err(e) = w.sync() {
                    log::warn!("closing: blob log sync failed: {e}");
                    b.take();
                    self.shared.log.lock().map(|mut l| l.take()).ok();
                }
            }
        }
        if let Ok(mut log) = self.shared.log.lock() {
            if let Some(w) = log.as_mut() {
                if let Err(e) = w.sync() {
                    log::warn!("closing: WAL sync failed: {e}");
                }
            }
        }
        self.shared.bg_cv.notify_all();
        if let Ok(mut bg) = self.bg.lock() {
            if let Some(h) = bg.take() {
                if h.join().is_err() {
                    log::error!("background thread panicked");
                }
            }
        }
        self.shared.writers_cv.notify_all();
        // The background thread is gone: what the last flush or compaction
        // retired (kept while its input Version was still referenced) goes
        // now, so a cleanly closed directory holds only live files.
        let failed = lock(&self.shared.state).bg_error.is_some();
        if !self.shared.opts.read_only && !failed {
            self.shared.remove_obsolete_files(false);
        }
        if let Ok(mut l) = self.lock.lock() {
            l.take();
        }
    }
}

/// The open database. Cheap to clone; all clones share one engine, which
/// shuts down when the last clone is dropped or `close()` is called.
#[derive(Clone)]
pub struct Db {
    handle: Arc<Handle>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock means a thread panicked while holding it; the data
    // behind our locks stays consistent at every await point, so continue.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn errno_error(context: String, errno: i32) -> Error {
    Error::io(context, std::io::Error::from_raw_os_error(errno))
}

/// Delete tables and blob files no Version names, and temp files (at open,
/// before anything is written). Blob files numbered from `logs_from` on
/// may be blob logs of the WALs about to be replayed: they stay until the
/// replay is done (see `blob`).
fn remove_stray_tables(env: &dyn Env, dir: &Path, live: &HashSet<u64>, logs_from: u64) {
    let names = match env.list_dir(dir) {
        Ok(n) => n,
        Err(e) => {
            log::warn!("listing {}: {e}", dir.display());
            return;
        }
    };
    for name in names {
        let stray = match parse_file_name(&name) {
            Some(FileType::Table(n)) => !live.contains(&n),
            Some(FileType::Blob(n)) => !live.contains(&n) && n < logs_from,
            Some(FileType::Temp) => true,
            _ => false,
        };
        if stray {
            log::info!("removing garbage file {name}");
            if let Err(e) = env.remove_file(&dir.join(&name)) {
                log::warn!("removing {name}: {e}");
            }
        }
    }
}

/// A new WAL file, with zero headroom for its fsyncs.
fn create_wal(env: &dyn Env, path: &Path) -> Result<Box<dyn WritableFile>> {
    let mut f = env.create_writable(path)?;
    f.set_sync_headroom(WAL_SYNC_HEADROOM);
    Ok(f)
}

impl Db {
    pub fn open(dir: &Path, opts: Options) -> Result<Db> {
        let env = opts.env.clone();
        let mut unlocked = None;
        let file_lock = if opts.read_only {
            // A reader creates nothing, not even a LOCK in a foreign directory.
            if !env.exists(&current_file_name(dir)) {
                return Err(Error::InvalidArgument(format!(
                    "{} is not an lsmfs data directory (no CURRENT file)",
                    dir.display()
                )));
            }
            match env.lock_file_shared(&lock_file_name(dir))? {
                SharedLock::Held(l) => Some(l),
                SharedLock::Unavailable(why) => {
                    unlocked = Some(why);
                    None
                }
            }
        } else {
            if opts.create_if_missing {
                env.create_dir_all(dir)?;
            }
            let l = env.lock_file(&lock_file_name(dir))?;
            l.set_holder(&format!("pid {}\n{}\n", std::process::id(), opts.lock_note));
            Some(l)
        };
        let opts = if opts.tuning_from_dir {
            options_file::adopt(env.as_ref(), dir, &opts)
        } else {
            opts
        };
        let block_cache = Arc::new(BlockCache::new(opts.block_cache_bytes));
        let tables = Arc::new(TableCache::new(
            env.clone(),
            dir.to_path_buf(),
            opts.max_open_files,
            block_cache.clone(),
        ));
        let mut versions = VersionSet::new(dir, &opts);
        if versions.exists() {
            let report = versions.recover()?;
            versions.verify_live_files_present()?;
            if !opts.read_only {
                // A disk that filled up mid-flush may hold half-written
                // tables: free them before the replay below needs room.
                let logs_from = match versions.prev_log_number {
                    0 => versions.log_number,
                    p => p.min(versions.log_number),
                };
                remove_stray_tables(env.as_ref(), dir, &versions.live_files(), logs_from);
            }
            log::debug!(
                "recovered {} edits from {}",
                report.edits,
                report.manifest.display()
            );
        } else if opts.read_only {
            return Err(Error::InvalidArgument(format!(
                "{} holds no lsmfs database (no CURRENT file)",
                dir.display()
            )));
        } else {
            let leftovers: Vec<String> = env
                .list_dir(dir)?
                .into_iter()
                .filter(|n| {
                    matches!(
                        parse_file_name(n),
                        Some(
                            FileType::Log(_)
                                | FileType::Table(_)
                                | FileType::Blob(_)
                                | FileType::Manifest(_)
                        )
                    )
                })
                .collect();
            if !leftovers.is_empty() {
                return Err(Error::corruption(
                    &dir.join("CURRENT"),
                    0,
                    format!(
                        "CURRENT is missing but the directory holds database files ({}); refusing to start empty",
                        leftovers.join(", ")
                    ),
                ));
            }
        }
        let mut edit = VersionEdit::default();
        let mut max_seq = versions.last_sequence;
        let (recovered_mem, wal_blob_logs) =
            Self::replay_logs(dir, &opts, &env, &mut versions, &mut edit, &mut max_seq)?;
        versions.last_sequence = max_seq;
        let (mem, log_writer, log_number, current) = if opts.read_only {
            let n = versions.log_number;
            (recovered_mem, None, n, versions.current())
        } else {
            let log_number = versions.new_file_number();
            let log_file = create_wal(env.as_ref(), &log_file_name(dir, log_number))?;
            edit.log_number = Some(log_number);
            edit.prev_log_number = Some(0);
            edit.last_sequence = Some(max_seq);
            // Always a fresh MANIFEST at open: never append behind an old tail.
            let current = versions.log_and_apply(&mut edit)?;
            (
                Arc::new(MemTable::new()),
                Some(LogWriter::new(log_file)),
                log_number,
                current,
            )
        };
        let state = State {
            mem,
            imm: None,
            current,
            log_number,
            bg_error: None,
            no_space: None,
            retry_at: None,
            no_space_in_flush: false,
            compaction_paused: false,
            compaction_needed: false,
            pending_outputs: HashSet::new(),
            imm_blob: None,
            reclaim_checked_seq: u64::MAX,
            reclaiming: false,
            gc_pass: None,
            gc_last: Vec::new(),
        };
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            opts: opts.clone(),
            env: env.clone(),
            state: Mutex::new(state),
            bg_cv: Condvar::new(),
            writers: Mutex::new(WriteQueue::default()),
            writers_cv: Condvar::new(),
            log: Mutex::new(log_writer),
            blob_log: Mutex::new(None),
            versions: Mutex::new(versions),
            version_lock: Mutex::new(()),
            tables,
            blobs: Arc::new(BlobCache::new(env.clone(), dir.to_path_buf())),
            block_cache,
            visible_seq: AtomicU64::new(max_seq),
            snapshots: Mutex::new(BTreeMap::new()),
            wal_blob_logs,
            shutting_down: AtomicBool::new(false),
            counters: Counters::default(),
        });
        if !opts.read_only {
            if !opts.tuning_from_dir {
                options_file::save(env.as_ref(), dir, &opts);
            }
            shared.remove_obsolete_files(true);
            shared.update_compaction_needed();
        }
        let bg = if opts.background_compaction && !opts.read_only {
            let s = shared.clone();
            Some(
                std::thread::Builder::new()
                    .name("lsmfs-compact".into())
                    .spawn(move || s.background_loop())
                    .map_err(|e| Error::io("spawn background thread", e))?,
            )
        } else {
            None
        };
        Ok(Db {
            handle: Arc::new(Handle {
                shared,
                bg: Mutex::new(bg),
                lock: Mutex::new(file_lock),
                unlocked,
                closed: AtomicBool::new(false),
            }),
        })
    }

    /// Replay the WALs the MANIFEST does not cover into L0 tables.
    fn replay_logs(
        dir: &Path,
        opts: &Options,
        env: &Arc<dyn Env>,
        versions: &mut VersionSet,
        edit: &mut VersionEdit,
        max_seq: &mut SequenceNumber,
    ) -> Result<(Arc<MemTable>, HashSet<u64>)> {
        let names = env.list_dir(dir)?;
        // A blob log is numbered after its WAL, and no edit may have
        // recorded its number yet: never hand that number out again.
        for n in &names {
            if let Some(FileType::Blob(b)) = parse_file_name(n) {
                versions.mark_file_number_used(b);
            }
        }
        let mut logs: Vec<u64> = names
            .iter()
            .filter_map(|n| match parse_file_name(n) {
                Some(FileType::Log(n))
                    if n >= versions.log_number || n == versions.prev_log_number =>
                {
                    Some(n)
                }
                _ => None,
            })
            .collect();
        logs.sort_unstable();
        // The persistent snapshots are known by now: the replay keeps what they see.
        let stripes = Stripes::new(versions.snapshots.values().map(|s| s.sequence), u64::MAX);
        let mut mem = Arc::new(MemTable::new());
        // Values the WALs hold as references into blob logs are read back.
        let blob_logs = BlobCache::for_replay(env.clone(), dir.to_path_buf());
        // A record naming blob bytes that are not there: where, and why.
        let mut torn_blob: Option<Error> = None;
        for number in logs {
            versions.mark_file_number_used(number);
            let path = log_file_name(dir, number);
            let data = env.read_all(&path)?;
            let mut reader = LogReader::new(path.clone(), data);
            let mut batches = 0u64;
            while let Some(rec) = reader.read_record()? {
                let offset = reader.last_record_offset();
                if let Some(e) = torn_blob.take() {
                    // Records after it: the switch to this WAL synced the
                    // blob log, so those bytes were durable once.
                    return Err(e);
                }
                let batch =
                    WriteBatch::from_data(rec).map_err(|m| Error::corruption(&path, offset, m))?;
                let batch = match resolve_blob_refs(batch, &blob_logs) {
                    Ok(b) => b,
                    Err(ResolveError::Batch(m)) => return Err(Error::corruption(&path, offset, m)),
                    // Only an unsynced write loses its blob bytes (a sync
                    // covers the blob log first, a switch of WAL syncs the
                    // old blob log and WAL before the new WAL takes a
                    // record): a torn tail, if no WAL record follows.
                    Err(ResolveError::Blob(e)) => {
                        log::warn!(
                            "{}: the record at offset {offset} names blob bytes that were never synced ({e}); recovered the {batches} records before it",
                            path.display()
                        );
                        torn_blob = Some(e);
                        break;
                    }
                };
                batch
                    .insert_into(&mem)
                    .map_err(|m| Error::corruption(&path, offset, m))?;
                let last = batch.sequence() + (batch.count() as u64).saturating_sub(1);
                *max_seq = (*max_seq).max(last);
                batches += 1;
                if !opts.read_only && mem.approximate_memory_usage() > opts.write_buffer_size {
                    let numbers = (versions.new_file_number(), versions.new_file_number());
                    let out = write_level0_table(env, dir, opts, numbers, &mem, &stripes)?;
                    add_level0_output(edit, out);
                    mem = Arc::new(MemTable::new());
                }
            }
            if let Some(t) = reader.torn_tail() {
                log::warn!(
                    "{}: torn tail at offset {} ({}); recovered the {batches} whole records before it",
                    path.display(),
                    t.offset,
                    t.reason
                );
            } else {
                log::debug!("{}: replayed {batches} records", path.display());
            }
        }
        let read = blob_logs.opened();
        if opts.read_only {
            return Ok((mem, read));
        }
        if !mem.is_empty() {
            let numbers = (versions.new_file_number(), versions.new_file_number());
            let out = write_level0_table(env, dir, opts, numbers, &mem, &stripes)?;
            add_level0_output(edit, out);
        }
        if !edit.new_files.is_empty() {
            env.sync_dir(dir)?;
        }
        Ok((Arc::new(MemTable::new()), read))
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let seq = self.handle.shared.visible_seq.load(Ordering::Acquire);
        self.handle.shared.get(key, seq)
    }

    pub fn get_at(&self, key: &[u8], snap: &Snapshot) -> Result<Option<Vec<u8>>> {
        self.handle.shared.get(key, snap.sequence)
    }

    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let mut b = WriteBatch::new();
        b.put(key, value);
        self.write(b, false)
    }

    pub fn delete(&self, key: &[u8]) -> Result<()> {
        let mut b = WriteBatch::new();
        b.delete(key);
        self.write(b, false)
    }

    /// Delete every key in `[start, end)` with one tombstone.
    pub fn delete_range(&self, start: &[u8], end: &[u8]) -> Result<()> {
        let mut b = WriteBatch::new();
        b.delete_range(start, end);
        self.write(b, false)
    }

    /// Apply `batch` atomically. When this returns Ok the batch is in the WAL
    /// (handed to the OS); with `sync` (or `SyncMode::Always`) it is fsync'd.
    pub fn write(&self, batch: WriteBatch, sync: bool) -> Result<()> {
        self.handle.shared.write(batch, sync, false)
    }

    /// A merged iterator over the whole key space, as of `snap` or now.
    pub fn iter(&self, snap: Option<&Snapshot>) -> Result<DbIterator> {
        self.handle.shared.iter(snap, None, (&[], None))
    }

    /// Up to `limit` live entries with `start <= key < end` (`end` None = unbounded).
    pub fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        snap: Option<&Snapshot>,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        self.scan_visit(start, end, limit, snap, &mut |k, v| {
            out.push((k.to_vec(), v.to_vec()))
        })?;
        Ok(out)
    }

    /// `scan` that hands each entry to `f` instead of copying it.
    pub fn scan_visit(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        snap: Option<&Snapshot>,
        f: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<()> {
        // A scan for at most 4 keys reads block by block through the
        // block cache; a longer one reads the blocks up to `end` ahead, up to
        // 1 MiB at a time, past the cache (what it reads is file data or a
        // directory listing, which the kernel caches above us, and it would
        // evict the metadata blocks point lookups need).
        let ahead = (limit > 4).then(|| ReadAhead {
            upper: end.map(Arc::from),
            max_bytes: SCAN_READ_AHEAD,
            fill_cache: false,
        });
        let mut it = self
            .handle
            .shared
            .iter(snap, ahead.as_ref(), (start, end))?;
        it.seek(start);
        let mut n = 0;
        while it.valid() && n < limit {
            if end.is_some_and(|e| it.key() >= e) {
                break;
            }
            f(it.key(), it.value());
            n += 1;
            it.next();
        }
        it.status()
    }

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
        let (mem, imm, version) = {
            let st = lock(&shared.state);
            (st.mem.clone(), st.imm.clone(), st.current.clone())
        };
        let mut children: Vec<Box<dyn InternalIterator>> = vec![Box::new(mem.iter())];
        let mut ranges: Vec<_> = mem.range_deletions().into_iter().collect();
        if let Some(imm) = &imm {
            children.push(Box::new(imm.iter()));
            ranges.extend(imm.range_deletions());
        }
        for f in version.files_overlapping(&[], None) {
            let t = shared.tables.get_table(f.number, f.file_size)?;
            if !t.range_deletions().is_empty() {
                ranges.push(t.range_deletions().clone());
            }
        }
        let ahead = ReadAhead {
            upper: None,
            max_bytes: SCAN_READ_AHEAD,
            fill_cache: false,
        };
        children.extend(version.iterators(&shared.tables, Some(&ahead))?);
        let mut input = MergingIterator::new(children);
        let bounds: Vec<(u64, SequenceNumber)> = snaps.iter().map(|s| (s.id, s.sequence)).collect();
        super::snapshot::exclusive_bytes(&mut input, &ranges, &bounds, live, &shared.dir)
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

    /// Switch the memtable and wait until it is an L0 table in the MANIFEST.
    pub fn flush(&self) -> Result<()> {
        let shared = &self.handle.shared;
        shared.write(WriteBatch::new(), false, true)?;
        if !shared.opts.background_compaction {
            let _g = lock(&shared.version_lock);
            return shared.flush_imm();
        }
        let mut st = lock(&shared.state);
        while st.imm.is_some() {
            if shared.shutting_down.load(Ordering::Acquire) {
                return Err(Error::Closed);
            }
            if let Some(e) = st.bg_error.as_ref().or(st.no_space.as_ref()) {
                return Err(e.clone());
            }
            st = shared.bg_cv.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        match &st.bg_error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

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

    /// fsync the WAL: everything written so far survives power loss.
    pub fn sync(&self) -> Result<()> {
        self.handle.shared.write(WriteBatch::new(), true, false)
    }

    /// Sync the WAL, stop the background thread, release the LOCK.
    pub fn close(&self) -> Result<()> {
        let err = lock(&self.handle.shared.state).bg_error.clone();
        self.handle.shutdown();
        match err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.handle.shared.dir
    }

    /// A read-only open that could take no shared lock (read-only media
    /// without a LOCK file, say): why. A writer could change the files
    /// while this handle reads them.
    pub fn unlocked_note(&self) -> Option<&str> {
        self.handle.unlocked.as_deref()
    }

    /// The options in force (after `tuning_from_dir`).
    pub fn options(&self) -> &Options {
        &self.handle.shared.opts
    }

    /// The live set of tables (for `check` and `inspect`).
    pub fn current_version(&self) -> Arc<Version> {
        lock(&self.handle.shared.state).current.clone()
    }

    /// The blob logs (see `blob`) that the WALs replayed at open hold
    /// values in: not Version members, not garbage either (for `check`).
    pub fn wal_blob_logs(&self) -> &HashSet<u64> {
        &self.handle.shared.wal_blob_logs
    }

    /// The open blob files (for `check`, which reads every reference).
    pub fn blob_cache(&self) -> &Arc<BlobCache> {
        &self.handle.shared.blobs
    }

    /// The open-table cache (for `check`, which reads every block).
    pub fn table_cache(&self) -> &Arc<TableCache> {
        &self.handle.shared.tables
    }

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
            wal_syncs: get(&c.wal_syncs),
            background_busy: c.background_busy.load(Ordering::Relaxed),
        }
    }
}

/// Write a memtable to a new L0 table; `None` if it is empty. The table is
/// fsync'd; the caller fsyncs the directory before naming it in an edit.
///
/// An older version of a key is left out when a newer one is in its
/// snapshot stripe (see `snapshot`): a file rewritten chunk by chunk
/// produces many versions of one key, and only the last one matters.
/// So is an entry a range deletion of the memtable hides from every
/// snapshot that sees it. Deletion markers and range deletions are kept —
/// deeper levels may hold what they hide.
///
/// Values of at least `min_blob_size` bytes go to a new blob file (number
/// `numbers.1`, fsync'd too), the table (`numbers.0`) holding references.
pub(crate) fn write_level0_table(
    env: &Arc<dyn Env>,
    dir: &Path,
    opts: &Options,
    numbers: (u64, u64),
    mem: &Arc<MemTable>,
    stripes: &Stripes,
) -> Result<Option<Level0Output>> {
    let (number, blob_number) = numbers;
    let mut it = mem.iter();
    it.seek_to_first();
    let ranges = mem.range_deletions();
    if !it.valid() && ranges.is_none() {
        return Ok(None);
    }
    let path = table_file_name(dir, number);
    let file = env.create_writable(&path)?;
    let mut builder = TableBuilder::new(file, TableOptions::from_options(opts));
    if let Some(r) = &ranges {
        for t in r.tombstones() {
            builder.add_range_deletion(t.clone());
        }
    }
    let mut last_user_key: Vec<u8> = Vec::new();
    let mut last_seq = u64::MAX;
    let mut first = true;
    let mut blob: Option<BlobWriter> = None;
    let mut garbage: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    while it.valid() {
        let key = it.key();
        let (ukey, seq) = match parse_internal_key(key) {
            Some(p) => (p.user_key, p.sequence),
            None => (key, u64::MAX),
        };
        let same = !first && ukey == &last_user_key[..];
        let covered = ranges
            .as_ref()
            .is_some_and(|r| stripes.covered(seq, |read| r.max_covering(ukey, read)));
        let shadowed = (same && stripes.shadowed(last_seq, seq)) || covered;
        if !same {
            last_user_key.clear();
            last_user_key.extend_from_slice(ukey);
        }
        last_seq = seq;
        first = false;
        let is_ref = parse_internal_key(key).is_some_and(|p| p.value_type == ValueType::BlobIndex);
        if shadowed && is_ref {
            // A blob-log record nothing will reference.
            match super::blob::decode_ref(dir, it.value()) {
                Ok(r) => {
                    let g = garbage.entry(r.file).or_default();
                    g.0 += 1;
                    g.1 += r.size;
                }
                Err(e) => {
                    builder.abandon();
                    return Err(e);
                }
            }
        }
        if !shadowed {
            let value = it.value();
            let added = if !is_ref && opts.min_blob_size > 0 && value.len() >= opts.min_blob_size {
                (|| {
                    if blob.is_none() {
                        blob = Some(BlobWriter::create(env.as_ref(), dir, blob_number)?);
                    }
                    let Some(w) = blob.as_mut() else {
                        return Ok(());
                    };
                    let r = w.add(ukey, value)?;
                    builder.add(
                        &make_internal_key(ukey, seq, ValueType::BlobIndex),
                        &r.encode(),
                    )
                })()
            } else {
                builder.add(key, value)
            };
            if let Err(e) = added {
                builder.abandon();
                return Err(e);
            }
        }
        it.next();
    }
    it.status()?;
    let blob = match blob {
        Some(w) => Some(w.finish()?),
        None => None,
    };
    let table = compaction::finish_output(number, builder)?;
    Ok(Some(Level0Output {
        table,
        blob,
        garbage,
    }))
}

/// Record dropped blob references in `edit`, and delete (in the same edit)
/// every blob file of `current` whose records are then all garbage.
fn add_blob_garbage(
    edit: &mut VersionEdit,
    current: &Version,
    garbage: &BTreeMap<u64, (u64, u64)>,
) {
    for (&n, &(records, bytes)) in garbage {
        edit.blob_garbage.push((n, records, bytes));
        if let Some(b) = current.blobs.get(&n) {
            if b.garbage_records + records >= b.records {
                edit.deleted_blobs.insert(n);
            }
        }
    }
}

/// What a flush wrote: a table, and the blob file its references point into.
pub(crate) struct Level0Output {
    pub(crate) table: FileMetaData,
    pub(crate) blob: Option<BlobFileMeta>,
    /// Blob-log records of the memtable that it dropped: file → (records, bytes).
    pub(crate) garbage: BTreeMap<u64, (u64, u64)>,
}

fn add_level0_output(edit: &mut VersionEdit, out: Option<Level0Output>) {
    if let Some(o) = out {
        edit.new_files.push((0, o.table));
        edit.new_blobs.extend(o.blob);
    }
}

impl Shared {
    fn get(&self, key: &[u8], seq: SequenceNumber) -> Result<Option<Vec<u8>>> {
        add(&self.counters.gets, 1);
        let (mem, imm, version) = {
            let st = lock(&self.state);
            (st.mem.clone(), st.imm.clone(), st.current.clone())
        };
        // The newest range deletion over the key met so far: an entry
        // older than it is deleted.
        let mut cover = 0;
        for m in std::iter::once(&mem).chain(imm.iter()) {
            cover = cover.max(m.range_del_cover(key, seq));
            match m.get(key, seq) {
                Some((s, _)) if s < cover => return Ok(None),
                Some((_, MemGet::Value(v))) => return Ok(Some(v)),
                Some((_, MemGet::Blob(r))) => return self.blobs.get(key, &r).map(Some),
                Some((_, MemGet::Deleted)) => return Ok(None),
                None => {}
            }
        }
        match version.get(&self.tables, &lookup_key(key, seq), &mut cover)? {
            TableGet::Found(v) => Ok(Some(v)),
            TableGet::Blob(r) => self.blobs.get(key, &r).map(Some),
            TableGet::Deleted | TableGet::NotFound => Ok(None),
        }
    }

    /// A merged iterator; `range` bounds the keys it will be asked for
    /// (only range deletions meeting it are gathered).
    fn iter(
        &self,
        snap: Option<&Snapshot>,
        ahead: Option<&ReadAhead>,
        range: (&[u8], Option<&[u8]>),
    ) -> Result<DbIterator> {
        let seq = snap.map_or_else(|| self.visible_seq.load(Ordering::Acquire), |s| s.sequence);
        let (mem, imm, version) = {
            let st = lock(&self.state);
            (st.mem.clone(), st.imm.clone(), st.current.clone())
        };
        let mut children: Vec<Box<dyn InternalIterator>> = vec![Box::new(mem.iter())];
        let mut ranges: Vec<_> = mem.range_deletions().into_iter().collect();
        if let Some(imm) = &imm {
            children.push(Box::new(imm.iter()));
            ranges.extend(imm.range_deletions());
        }
        for f in version.files_overlapping(range.0, range.1) {
            let t = self.tables.get_table(f.number, f.file_size)?;
            if !t.range_deletions().is_empty() {
                ranges.push(t.range_deletions().clone());
            }
        }
        children.extend(version.iterators(&self.tables, ahead)?);
        let window = ahead.map_or(0, |a| a.max_bytes);
        Ok(DbIterator::new(
            MergingIterator::new(children),
            seq,
            version,
            None,
            ranges,
            BlobPrefetcher::new(self.blobs.clone(), window),
        ))
    }

    fn write(&self, batch: WriteBatch, sync: bool, force_switch: bool) -> Result<()> {
        let mut q = lock(&self.writers);
        let id = q.next_id;
        q.next_id += 1;
        q.pending.push_back(Pending {
            id,
            batch,
            sync,
            force_switch,
        });
        loop {
            if let Some(r) = q.results.remove(&id) {
                return r;
            }
            if !q.leader_active {
                // Lead one group, then look again for our own result.
                q.leader_active = true;
                let mut group = Vec::new();
                let mut bytes = 0;
                while let Some(p) = q.pending.front() {
                    if !group.is_empty()
                        && (bytes + p.batch.approximate_size() > MAX_GROUP_BYTES || p.force_switch)
                    {
                        break;
                    }
                    bytes += p.batch.approximate_size();
                    let force = p.force_switch;
                    if let Some(p) = q.pending.pop_front() {
                        group.push(p);
                    }
                    if force {
                        break;
                    }
                }
                drop(q);
                let r = self.write_group(&mut group);
                q = lock(&self.writers);
                for p in &group {
                    q.results.insert(p.id, r.clone());
                }
                q.leader_active = false;
                self.writers_cv.notify_all();
                continue;
            }
            q = self.writers_cv.wait(q).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn write_group(&self, group: &mut [Pending]) -> Result<()> {
        if self.shutting_down.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        if self.opts.read_only {
            return Err(Error::InvalidArgument("database is open read-only".into()));
        }
        let force = group.iter().any(|p| p.force_switch);
        let sync = self.opts.sync_mode == SyncMode::Always || group.iter().any(|p| p.sync);
        let mem = self.make_room_for_write(force)?;
        let mut combined;
        let batch: &mut WriteBatch = if group.len() == 1 {
            &mut group[0].batch
        } else {
            combined = WriteBatch::new();
            for p in group.iter() {
                combined.append(&p.batch);
            }
            &mut combined
        };
        let count = batch.count() as u64;
        if count == 0 && !sync {
            return Ok(());
        }
        let seq = self.visible_seq.load(Ordering::Acquire) + 1;
        if count > 0 {
            batch.set_sequence(seq);
        }
        let user_bytes = batch.approximate_size() as u64;
        let diverted = self.write_blob_log(batch, count > 0, sync)?;
        let batch: &WriteBatch = diverted.as_ref().unwrap_or(batch);
        {
            let mut log = lock(&self.log);
            let Some(w) = log.as_mut() else {
                return Err(Error::Closed);
            };
            let r = (|| {
                if count > 0 {
                    w.add_record(batch.data())?;
                    w.flush()?;
                    add(&self.counters.wal_bytes_written, batch.data().len() as u64);
                }
                if sync {
                    w.sync()?;
                    add(&self.counters.wal_syncs, 1);
                }
                Ok(())
            })();
            if let Err(e) = r {
                // Never append behind a record that may be damaged.
                *log = None;
                return Err(self.set_bg_error(e));
            }
        }
        if count > 0 {
            batch
                .insert_into(&mem)
                .map_err(|m| Error::InvalidArgument(format!("write batch: {m}")))?;
            self.visible_seq.store(seq + count - 1, Ordering::Release);
            add(&self.counters.writes, count);
            add(&self.counters.user_bytes_written, user_bytes);
        }
        Ok(())
    }

    /// Append the large values of `batch` (if `any` entries) to the blob
    /// log, handed to the OS, and fsync it if `sync`: before the WAL record
    /// that names them (see `blob`). Returns the batch to log in their
    /// place, if it changed. Caller is the write leader.
    fn write_blob_log(
        &self,
        batch: &WriteBatch,
        any: bool,
        sync: bool,
    ) -> Result<Option<WriteBatch>> {
        let min = self.opts.min_blob_size;
        let divert = any && has_large_values(batch, min);
        if divert && lock(&self.blob_log).is_none() {
            let n = lock(&self.versions).new_file_number();
            lock(&self.state).pending_outputs.insert(n);
            self.blobs.begin_log(n);
            log::debug!("blob log {n:06}.blob started");
            // Its directory entry is durable before a synced WAL record names it.
            let w = BlobWriter::create(self.env.as_ref(), &self.dir, n)
                .and_then(|w| self.env.sync_dir(&self.dir).map(|()| w))
                .map_err(|e| self.set_bg_error(e))?;
            *lock(&self.blob_log) = Some(w);
        }
        let mut blog = lock(&self.blob_log);
        let Some(w) = blog.as_mut() else {
            return Ok(None);
        };
        let before = w.len();
        let r = (|| {
            let out = if divert {
                let b = divert_large_values(batch, min, w)?;
                w.flush()?;
                Some(b)
            } else {
                None
            };
            if sync {
                w.sync()?;
            }
            Ok(out)
        })();
        add(&self.counters.bytes_blob_written, w.len() - before);
        // Every BLOB_WRITEBACK bytes, start their writeback (RocksDB's
        // bytes_per_sync): the fsync at the memtable switch, in the
        // writer's path, then finds them on disk instead of writing 32 MiB.
        if r.is_ok() && w.len() / BLOB_WRITEBACK != before / BLOB_WRITEBACK {
            w.start_writeback();
        }
        r.map_err(|e| {
            // Never append behind a record that may be damaged.
            *blog = None;
            self.set_bg_error(e)
        })
    }

    fn set_bg_error(&self, e: Error) -> Error {
        log::error!("stopping writes: {e}");
        let mut st = lock(&self.state);
        if st.bg_error.is_none() {
            st.bg_error = Some(e.clone());
        }
        self.bg_cv.notify_all();
        e
    }

    /// A flush or compaction found the disk full: retry later, and let
    /// writers that would wait for it fail with the error meanwhile.
    fn out_of_space(&self, e: Error, in_flush: bool) {
        let mut st = lock(&self.state);
        st.no_space_in_flush = in_flush;
        if st.no_space.is_none() {
            log::warn!(
                "out of space: flushes and compactions wait for room (retrying every {} ms); \
                 writes that need them fail meanwhile: {e}",
                NO_SPACE_RETRY.as_millis()
            );
        }
        st.no_space = Some(e);
        st.retry_at = Some(Instant::now() + NO_SPACE_RETRY);
    }

    /// A flush or compaction went through: any out-of-space condition is over.
    fn room_again(&self) {
        let mut st = lock(&self.state);
        st.retry_at = None;
        st.no_space_in_flush = false;
        if st.no_space.take().is_some() {
            log::warn!("space available again: flushes and compactions resumed");
        }
    }

    /// Make sure the memtable has room; switch it (and the WAL) when full.
    /// Slows writers down when L0 piles up, and stops them at the stop trigger.
    fn make_room_for_write(&self, mut force: bool) -> Result<Arc<MemTable>> {
        let mut allow_delay = !force;
        let mut st = lock(&self.state);
        loop {
            if let Some(e) = &st.bg_error {
                return Err(e.clone());
            }
            if self.shutting_down.load(Ordering::Acquire) {
                return Err(Error::Closed);
            }
            let l0 = st.current.num_files(0);
            if allow_delay && l0 >= self.opts.l0_slowdown_trigger {
                drop(st);
                add(&self.counters.write_stalls, 1);
                std::thread::sleep(Duration::from_millis(1));
                allow_delay = false;
                st = lock(&self.state);
                continue;
            }
            let blob_log = lock(&self.blob_log).as_ref().map_or(0, |b| b.len()) as usize;
            if !force && st.mem.approximate_memory_usage() + blob_log <= self.opts.write_buffer_size
            {
                return Ok(st.mem.clone());
            }
            if force && st.mem.is_empty() {
                return Ok(st.mem.clone());
            }
            let stopped = l0 >= self.opts.l0_stop_trigger;
            if st.imm.is_some() || stopped {
                if let Some(e) = st
                    .no_space
                    .as_ref()
                    .filter(|_| st.no_space_in_flush || stopped)
                {
                    return Err(e.clone());
                }
                add(&self.counters.write_stalls, 1);
                self.bg_cv.notify_all();
                st = self
                    .bg_cv
                    .wait_timeout(st, Duration::from_millis(100))
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
                continue;
            }
            if let Err(e) = self.switch_memtable(&mut st) {
                drop(st);
                return Err(self.set_bg_error(e));
            }
            force = false;
        }
    }

    /// Make `mem` the immutable memtable, with a new WAL (and, at the
    /// first large value, a new blob log) for the next one. Caller is the
    /// write leader, and checked that `imm` is empty; an error is for
    /// `set_bg_error` (called by the caller once `st` is released).
    fn switch_memtable(&self, st: &mut MutexGuard<'_, State>) -> Result<()> {
        let number = lock(&self.versions).new_file_number();
        let path = log_file_name(&self.dir, number);
        let file = create_wal(self.env.as_ref(), &path)?;
        // The new log's directory entry must be durable before a synced
        // write in it is acknowledged; and the old log is synced now so a
        // later fsync of the new log never makes a batch durable while
        // an earlier one (in the old log) is not: recovery is a prefix.
        self.env.sync_dir(&self.dir)?;
        // The old blob log is synced before the old WAL, whose
        // records name it; it goes with the memtable to its flush.
        if let Some(mut b) = lock(&self.blob_log).take() {
            if let Err(e) = b.sync() {
                *lock(&self.log) = None;
                return Err(e);
            }
            st.imm_blob = Some(ImmBlob::Open(b));
        }
        {
            let mut log = lock(&self.log);
            if let Some(old) = log.as_mut() {
                if let Err(e) = old.sync() {
                    *log = None;
                    return Err(e);
                }
            }
            *log = Some(LogWriter::new(file));
        }
        let full = std::mem::replace(&mut st.mem, Arc::new(MemTable::new()));
        st.imm = Some(full);
        st.log_number = number;
        self.bg_cv.notify_all();
        Ok(())
    }

    /// Switch a memtable holding range deletions while no writer is
    /// active (the background thread takes the write leadership for it),
    /// so that its flush lets compactions drop what they delete. Never
    /// waits: with a writer active or a flush pending it does nothing.
    fn switch_when_idle(&self) -> Result<bool> {
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
        lock(&self.writers).leader_active = false;
        self.writers_cv.notify_all();
        r.map_err(|e| self.set_bg_error(e))
    }

    /// One step of reclaiming space when the store is idle (no flush or
    /// compaction is due): flush a memtable holding range deletions;
    /// compact a table holding range deletions one level down (at the
    /// bottom they are dropped with what they delete); then, while blob
    /// files are at least `BLOB_GC_RATIO` garbage, a pass over the tables
    /// that merges each file created before the pass one level down (the
    /// bottom level's in place), relocating the live records it references
    /// (`BLOB_GC_MAX_BYTES` at most per step). Each step is one bounded
    /// compaction, and a flush goes before the next step. Whether it did
    /// something. Caller holds `version_lock`.
    fn reclaim_step(&self) -> Result<bool> {
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
            *st.gc_pass
                .get_or_insert_with(|| lock(&self.versions).next_file_number)
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
            st.gc_last = signature;
            return Ok(false);
        };
        log::info!(
            "blob GC: {} blob files at least half garbage; compacting L{}",
            candidates.len(),
            c.level
        );
        self.run_compaction(&c, version, true)?;
        Ok(true)
    }

    fn background_loop(self: Arc<Self>) {
        loop {
            let mut reclaim = false;
            {
                let mut st = lock(&self.state);
                loop {
                    if self.shutting_down.load(Ordering::Acquire) {
                        return;
                    }
                    let compact = st.compaction_needed && !st.compaction_paused;
                    let work = st.bg_error.is_none() && (st.imm.is_some() || compact);
                    let wait = st
                        .retry_at
                        .filter(|_| st.imm.is_none() || st.no_space_in_flush)
                        .map(|at| at.saturating_duration_since(Instant::now()));
                    let seq = self.visible_seq.load(Ordering::Acquire);
                    let idle_check = st.bg_error.is_none()
                        && !st.compaction_paused
                        && st.retry_at.is_none()
                        && self.opts.min_blob_size > 0
                        && (st.reclaiming || st.reclaim_checked_seq != seq);
                    st = match wait {
                        _ if !work && idle_check => {
                            // Reclaim once writes have paused for RECLAIM_IDLE.
                            let pause = if st.reclaiming {
                                RECLAIM_STEP_PAUSE
                            } else {
                                RECLAIM_IDLE
                            };
                            let (g, t) = self
                                .bg_cv
                                .wait_timeout(st, pause)
                                .unwrap_or_else(|p| p.into_inner());
                            if t.timed_out() && self.visible_seq.load(Ordering::Acquire) == seq {
                                reclaim = true;
                                st = g;
                                break;
                            }
                            g
                        }
                        _ if !work => self.bg_cv.wait(st).unwrap_or_else(|p| p.into_inner()),
                        Some(d) if !d.is_zero() => self
                            .bg_cv
                            .wait_timeout(st, d)
                            .map(|(g, _)| g)
                            .unwrap_or_else(|p| p.into_inner().0),
                        _ => break,
                    };
                }
            }
            self.counters.background_busy.store(true, Ordering::Relaxed);
            let (flushed, r) = if reclaim {
                let seq = self.visible_seq.load(Ordering::Acquire);
                let r = {
                    let _g = lock(&self.version_lock);
                    self.reclaim_step()
                };
                let mut st = lock(&self.state);
                st.reclaiming = matches!(r, Ok(true));
                if matches!(r, Ok(false)) {
                    st.reclaim_checked_seq = seq;
                }
                (false, r.map(|_| ()))
            } else {
                self.background_work()
            };
            self.counters
                .background_busy
                .store(false, Ordering::Relaxed);
            match r {
                Ok(()) => self.room_again(),
                Err(_) if self.shutting_down.load(Ordering::Acquire) => return,
                Err(e) if e.is_corruption() => {
                    log::error!("compaction stopped: {e}");
                    lock(&self.state).compaction_paused = true;
                }
                Err(e) if e.is_no_space() => self.out_of_space(e, flushed),
                Err(e) => {
                    self.set_bg_error(e);
                }
            }
            self.bg_cv.notify_all();
        }
    }

    /// One flush or compaction; whether it was a flush, and how it went.
    fn background_work(&self) -> (bool, Result<()>) {
        let _g = lock(&self.version_lock);
        let has_imm = lock(&self.state).imm.is_some();
        if has_imm {
            log::debug!("flush started");
            let r = self.flush_imm();
            if r.is_ok() {
                log::debug!("flush finished");
            }
            return (true, r);
        }
        (false, self.compact_once())
    }

    /// The compaction the level scores call for, if any.
    fn compact_once(&self) -> Result<()> {
        let (version, c) = {
            let vs = lock(&self.versions);
            let v = vs.current();
            let scores = vs.level_scores(&self.opts);
            let c = compaction::pick(&v, &scores, &vs.compact_pointers);
            (v, c)
        };
        match c {
            Some(c) => {
                log::debug!(
                    "compaction started: L{} ({} files) into L{} ({} files){}",
                    c.level,
                    c.inputs.len(),
                    c.level + 1,
                    c.next_inputs.len(),
                    if c.is_trivial_move() {
                        ", trivial move"
                    } else {
                        ""
                    }
                );
                let r = self.run_compaction(&c, version, false);
                if r.is_ok() {
                    log::debug!("compaction finished");
                }
                r
            }
            None => {
                lock(&self.state).compaction_needed = false;
                Ok(())
            }
        }
    }

    /// Write the immutable memtable to L0 and record it. Caller holds `version_lock`.
    fn flush_imm(&self) -> Result<()> {
        let (imm, log_number) = {
            let st = lock(&self.state);
            match &st.imm {
                Some(m) => (m.clone(), st.log_number),
                None => return Ok(()),
            }
        };
        let blob_log = self.seal_imm_blob()?;
        let numbers = {
            let mut vs = lock(&self.versions);
            (vs.new_file_number(), vs.new_file_number())
        };
        {
            let mut st = lock(&self.state);
            st.pending_outputs.insert(numbers.0);
            st.pending_outputs.insert(numbers.1);
        }
        let result = (|| {
            let built = write_level0_table(
                &self.env,
                &self.dir,
                &self.opts,
                numbers,
                &imm,
                &self.stripes(),
            )
            .and_then(|out| {
                if out.is_some() {
                    self.env.sync_dir(&self.dir)?;
                }
                Ok(out)
            });
            let mut out = built.inspect_err(|_| self.discard_outputs(&[numbers.0, numbers.1]))?;
            let mut edit = VersionEdit::default();
            if let Some(o) = &mut out {
                add(&self.counters.bytes_flushed, o.table.file_size);
                add(
                    &self.counters.bytes_blob_written,
                    o.blob.as_ref().map_or(0, |b| b.file_size),
                );
                // The blob log joins the Version with what the flush
                // dropped of it already counted as garbage.
                if let Some(mut b) = blob_log.clone() {
                    if let Some((r, n)) = o.garbage.remove(&b.number) {
                        b.garbage_records += r;
                        b.garbage_bytes += n;
                    }
                    if !b.all_garbage() {
                        edit.new_blobs.push(b);
                    }
                }
                add_blob_garbage(&mut edit, &lock(&self.versions).current(), &o.garbage);
            }
            add_level0_output(&mut edit, out);
            edit.log_number = Some(log_number);
            edit.prev_log_number = Some(0);
            edit.last_sequence = Some(self.visible_seq.load(Ordering::Acquire));
            let v = lock(&self.versions).log_and_apply(&mut edit)?;
            Ok(v)
        })();
        let mut st = lock(&self.state);
        st.pending_outputs.remove(&numbers.0);
        st.pending_outputs.remove(&numbers.1);
        let v = result?;
        st.current = v;
        st.imm = None;
        st.imm_blob = None;
        if let Some(b) = &blob_log {
            st.pending_outputs.remove(&b.number);
        }
        drop(st);
        add(&self.counters.num_flushes, 1);
        self.update_compaction_needed();
        self.bg_cv.notify_all();
        self.remove_obsolete_files(false);
        Ok(())
    }

    /// Write the footer of the immutable memtable's blob log and fsync it
    /// (once: a retried flush finds it sealed). A failure is sticky: the
    /// file's end is unknown, and the WALs still hold what it holds.
    fn seal_imm_blob(&self) -> Result<Option<BlobFileMeta>> {
        let open = {
            let mut st = lock(&self.state);
            match st.imm_blob.take() {
                None => return Ok(None),
                Some(ImmBlob::Sealed(m)) => {
                    st.imm_blob = Some(ImmBlob::Sealed(m.clone()));
                    return Ok(Some(m));
                }
                Some(ImmBlob::Open(w)) => w,
            }
        };
        let n = open.number();
        let before = open.len();
        let meta = open.finish().map_err(|e| self.set_bg_error(e))?;
        add(&self.counters.bytes_blob_written, meta.file_size - before);
        self.env
            .sync_dir(&self.dir)
            .map_err(|e| self.set_bg_error(e))?;
        self.blobs.seal_log(n);
        lock(&self.state).imm_blob = Some(ImmBlob::Sealed(meta.clone()));
        Ok(Some(meta))
    }

    /// Run one compaction chosen against `version`. Caller holds `version_lock`.
    /// `manual` compactions always merge (never just move a file down), so
    /// a full compaction really drops overwritten versions and deletions.
    /// Takes the input Version by value and lets it go before deleting
    /// what the edit retired: while it is referenced, its files count as
    /// live (`VersionSet::live_files`), and the inputs would stay on disk.
    fn run_compaction(&self, c: &Compaction, version: Arc<Version>, manual: bool) -> Result<()> {
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

    /// Delete the tables and blob files a failed flush or compaction was
    /// writing (no edit names them), so that a full disk gets its space
    /// back at once.
    fn discard_outputs(&self, numbers: &[u64]) {
        for &n in numbers {
            for path in [table_file_name(&self.dir, n), blob_file_name(&self.dir, n)] {
                if self.env.exists(&path) {
                    if let Err(e) = self.env.remove_file(&path) {
                        log::debug!("discarding {}: {e}", path.display());
                    }
                }
            }
        }
    }

    /// The stripes of every snapshot — persistent, held in memory — and of
    /// the live view. Lock order: `versions`, then `snapshots`.
    fn stripes(&self) -> Stripes {
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
    fn hold(self: &Arc<Self>, seq: SequenceNumber) -> Snapshot {
        *lock(&self.snapshots).entry(seq).or_insert(0) += 1;
        Snapshot {
            sequence: seq,
            shared: self.clone(),
        }
    }

    fn update_compaction_needed(&self) {
        let needed = {
            let vs = lock(&self.versions);
            vs.level_scores(&self.opts).iter().any(|s| *s >= 1.0)
        };
        lock(&self.state).compaction_needed = needed;
        if needed {
            self.bg_cv.notify_all();
        }
    }

    /// Delete files no durable Version needs: WALs older than the MANIFEST's
    /// log number, tables no live Version names, old MANIFESTs, temp files.
    ///
    /// The listing comes first, then the pending numbers, then the live
    /// ones: a writer registers a blob log's number as pending before it
    /// creates the file, and a flush installs the Version naming it before
    /// it stops being pending, so a file listed is always in one of them.
    fn remove_obsolete_files(&self, at_open: bool) {
        let names = match self.env.list_dir(&self.dir) {
            Ok(n) => n,
            Err(e) => {
                log::warn!("listing {}: {e}", self.dir.display());
                return;
            }
        };
        let (pending, mem_log) = {
            let st = lock(&self.state);
            (st.pending_outputs.clone(), st.log_number)
        };
        let (live, log_number, prev_log, manifest_number) = {
            let mut vs = lock(&self.versions);
            (
                vs.live_files(),
                vs.log_number,
                vs.prev_log_number,
                vs.manifest_number,
            )
        };
        for name in names {
            let keep = match parse_file_name(&name) {
                Some(FileType::Log(n)) => n >= log_number || n == prev_log || n == mem_log,
                Some(FileType::Table(n) | FileType::Blob(n)) => {
                    live.contains(&n) || pending.contains(&n)
                }
                Some(FileType::Manifest(n)) => n >= manifest_number,
                Some(FileType::Temp) => !at_open,
                Some(FileType::Current | FileType::Lock) | None => true,
            };
            if keep {
                continue;
            }
            if at_open {
                log::info!("removing garbage file {name}");
            } else {
                log::debug!("removing obsolete file {name}");
            }
            match parse_file_name(&name) {
                Some(FileType::Table(n)) => self.tables.evict(n),
                Some(FileType::Blob(n)) => self.blobs.evict(n),
                _ => {}
            }
            if let Err(e) = self.env.remove_file(&self.dir.join(&name)) {
                log::warn!("removing {name}: {e}");
            }
        }
    }
}
