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
//!
//! | module | job |
//! | --- | --- |
//! | this one | the shared state, the handle, shutdown, accessors |
//! | `open` | opening: lock, recovery, WAL replay |
//! | `write` | the write path: group commit, blob log, making room |
//! | `read` | point lookups, iterators, scans |
//! | `iter` | the user-facing iterator over the merged internal one |
//! | `snapshots` | read views, persistent snapshots, stripes |
//! | `flush` | memtable → L0 table |
//! | `compact` | running compactions, `compact_range` |
//! | `reclaim` | idle reclaim of range deletions and blob garbage |
//! | `background` | the background thread's loop, out-of-space handling |
//! | `files` | deleting garbage and obsolete files |
//! | `stats` | live figures |

mod background;
mod compact;
mod files;
mod flush;
pub mod iter;
mod open;
mod read;
mod reclaim;
mod snapshots;
mod stats;
mod write;

pub(crate) use flush::write_level0_table;
pub use iter::DbIterator;
use stats::{add, Counters};
pub use stats::{DbStats, LevelStats};

use crate::engine::blob::{BlobCache, BlobFileMeta, BlobWriter};
use crate::engine::dbformat::SequenceNumber;
use crate::engine::env::{Env, FileLock};
use crate::engine::error::{Error, Result};
use crate::engine::log::writer::LogWriter;
use crate::engine::memtable::MemTable;
use crate::engine::options::Options;
use crate::engine::table::block_cache::BlockCache;
use crate::engine::table::TableCache;
use crate::engine::version::set::VersionSet;
use crate::engine::version::Version;
use crate::engine::write_batch::WriteBatch;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

/// Most bytes a range scan (or compaction) reads from a table at once.
pub(crate) const SCAN_READ_AHEAD: usize = 1 << 20;

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
    /// started from, so a pass that changed nothing is not repeated.
    reclaim_checked_seq: SequenceNumber,
    /// The last reclaim step did something: the next follows shortly.
    reclaiming: bool,
    gc_pass: Option<u64>,
    gc_last: Vec<(u64, u64)>,
    /// Deleted snapshots whose versions the tables may still keep: (its
    /// sequence, the first file number a flush or compaction that could
    /// not see it may write — set by the first step of `reclaim_retired`
    /// after no reader holds it). `retired_due`: a step may be possible;
    /// `retired_wakes` counts the times it was set, so that a step that
    /// found nothing clears it only if no reader let go meanwhile.
    retired: Vec<(SequenceNumber, Option<u64>)>,
    retired_due: bool,
    retired_wakes: u64,
}

impl State {
    /// A deleted snapshot's space may be given back now.
    fn wake_retired(&mut self) {
        self.retired_due = true;
        self.retired_wakes += 1;
    }
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
    /// Writers asleep on `writers_cv`: with none, nobody is woken (a
    /// futex call saved on every write of a lone writer).
    waiting: usize,
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
        let mut released = false;
        if let Ok(mut s) = self.shared.snapshots.lock() {
            if let Some(c) = s.get_mut(&self.sequence) {
                *c -= 1;
                if *c == 0 {
                    s.remove(&self.sequence);
                    released = true;
                }
            }
        }
        // A deleted snapshot's space may have waited for this reader.
        if released {
            if let Ok(mut st) = self.shared.state.lock() {
                if !st.retired.is_empty() {
                    st.wake_retired();
                    self.shared.bg_cv.notify_all();
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

impl Db {
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
}

impl Shared {
    fn set_bg_error(&self, e: Error) -> Error {
        log::error!("stopping writes: {e}");
        let mut st = lock(&self.state);
        if st.bg_error.is_none() {
            st.bg_error = Some(e.clone());
        }
        self.bg_cv.notify_all();
        e
    }
}
