//! The write path: group commit (the first writer leads the queue: one WAL
//! record, at most one fsync), the blob log large values go to, and making
//! room: switching the memtable and WAL, slowing and stopping writers while
//! L0 piles up.

use super::{add, lock, Db, ImmBlob, Pending, Shared, State};
use crate::engine::blob::{divert_large_values, has_large_values, BlobWriter};
use crate::engine::env::{Env, WritableFile};
use crate::engine::error::{Error, Result};
use crate::engine::filename::log_file_name;
use crate::engine::log::writer::LogWriter;
use crate::engine::memtable::MemTable;
use crate::engine::options::SyncMode;
use crate::engine::write_batch::WriteBatch;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

/// Group commits are capped at this many bytes of batch data.
const MAX_GROUP_BYTES: usize = 1 << 20;
/// Zeros a WAL keeps written past its end so that most fsyncs of it need
/// not change its size (see `WritableFile::set_sync_headroom`).
const WAL_SYNC_HEADROOM: u64 = 64 << 10;
/// A blob log's writeback is started every this many bytes.
const BLOB_WRITEBACK: u64 = 1 << 20;

/// A new WAL file, with zero headroom for its fsyncs.
pub(super) fn create_wal(env: &dyn Env, path: &Path) -> Result<Box<dyn WritableFile>> {
    let mut f = env.create_writable(path)?;
    f.set_sync_headroom(WAL_SYNC_HEADROOM);
    Ok(f)
}

/// How many memtables' worth of bytes a blob log may grow to before its
/// memtable switches (see `blob`): its bytes are on disk, not in memory,
/// and every switch is a flush whose L0 table spans from the file's chunk
/// keys to its inode key — a compaction of L0 into L1 then rewrites the
/// L1 tables in between. At one memtable's worth, a 512 MiB write behind
/// a source tree's metadata rewrote L1 four times.
const BLOB_LOG_MEMTABLES: usize = 4;

impl Db {
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

    /// fsync the WAL: everything written so far survives power loss.
    pub fn sync(&self) -> Result<()> {
        self.handle.shared.write(WriteBatch::new(), true, false)
    }
}

impl Shared {
    pub(super) fn write(&self, batch: WriteBatch, sync: bool, force_switch: bool) -> Result<()> {
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
                let mut mine = None;
                for p in &group {
                    if p.id == id {
                        mine = Some(r.clone());
                    } else {
                        q.results.insert(p.id, r.clone());
                    }
                }
                self.end_leading(&mut q);
                match mine {
                    Some(r) => return r,
                    None => continue,
                }
            }
            q.waiting += 1;
            q = self.writers_cv.wait(q).unwrap_or_else(|p| p.into_inner());
            q.waiting -= 1;
        }
    }

    /// Give up the write leadership, waking the writers only if one sleeps.
    pub(super) fn end_leading(&self, q: &mut super::WriteQueue) {
        q.leader_active = false;
        if q.waiting > 0 {
            self.writers_cv.notify_all();
        }
    }

    pub(super) fn write_group(&self, group: &mut [Pending]) -> Result<()> {
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
            for p in group.iter_mut() {
                combined.append(std::mem::take(&mut p.batch));
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
        if diverted.is_none() {
            // Values kept out of line that no blob log took.
            batch
                .inline_values()
                .map_err(|m| Error::InvalidArgument(format!("write batch: {m}")))?;
        }
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
    pub(super) fn write_blob_log(
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

    /// Make sure the memtable has room; switch it (and the WAL) when full.
    /// Slows writers down when L0 piles up, and stops them at the stop trigger.
    pub(super) fn make_room_for_write(&self, mut force: bool) -> Result<Arc<MemTable>> {
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
            let wbs = self.opts.write_buffer_size;
            if !force
                && st.mem.approximate_memory_usage() <= wbs
                && blob_log <= wbs.saturating_mul(BLOB_LOG_MEMTABLES)
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
    pub(super) fn switch_memtable(&self, st: &mut MutexGuard<'_, State>) -> Result<()> {
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
}
