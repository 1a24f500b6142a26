//! The store interface: the only way the filesystem talks to a key-value store.
//!
//! Kept deliberately small (point get, bounded range scan, atomic batch write,
//! sync) so that another engine — an in-memory map in tests, or a distributed
//! store later — can stand in for the embedded LSM engine. Errors are
//! `std::io::Error` carrying the errno the filesystem should return.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOp {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
    /// Every key `k` with `start <= k < end`, whatever their number: one
    /// range tombstone in the engine, O(1) to write.
    DeleteRange(Vec<u8>, Vec<u8>),
}

/// A group of changes applied atomically: after a crash either all or none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub ops: Vec<BatchOp>,
}

impl Batch {
    pub fn new() -> Batch {
        Batch::default()
    }
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(BatchOp::Put(key.into(), value.into()));
    }
    pub fn delete(&mut self, key: impl Into<Vec<u8>>) {
        self.ops.push(BatchOp::Delete(key.into()));
    }
    /// Delete every key in `[start, end)`. Ops apply in order: a put
    /// after it in the same batch survives it, one before it does not.
    pub fn delete_range(&mut self, start: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) {
        self.ops
            .push(BatchOp::DeleteRange(start.into(), end.into()));
    }
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
    pub fn len(&self) -> usize {
        self.ops.len()
    }
}

pub trait Store: Send + Sync {
    fn get(&self, key: &[u8]) -> io::Result<Option<Vec<u8>>>;
    /// Entries with `start <= key < end`, in key order, at most `limit` of them.
    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>>;
    /// `scan` that lends each entry to `f` instead of copying it out.
    fn scan_visit(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
        f: &mut dyn FnMut(&[u8], &[u8]),
    ) -> io::Result<()> {
        for (k, v) in self.scan(start, end, limit)? {
            f(&k, &v);
        }
        Ok(())
    }
    /// Apply a batch atomically. Once this returns Ok the batch survives a
    /// kill of the process; with `sync` it also survives power loss.
    fn write(&self, batch: Batch, sync: bool) -> io::Result<()>;
    /// Make everything written so far survive power loss.
    fn sync(&self) -> io::Result<()>;
    /// Human-readable statistics of the store (shown through the mount).
    fn stats_text(&self) -> String {
        String::new()
    }
    /// The disk is nearly full: give back the space of deleted data if
    /// there is any, in the background (an LSM tree frees it only when a
    /// compaction drops what the deletions shadow). Waits up to `wait` for
    /// a reclaim that is running; true if one finished meanwhile.
    fn reclaim_space(&self, _wait: Duration) -> bool {
        false
    }
}

/// A `BTreeMap` store for tests of the filesystem logic; not durable.
#[derive(Default)]
pub struct MemStore {
    map: RwLock<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl MemStore {
    pub fn new() -> MemStore {
        MemStore::default()
    }
}

fn poisoned() -> io::Error {
    io::Error::other("store lock poisoned")
}

impl Store for MemStore {
    fn get(&self, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        Ok(self.map.read().map_err(|_| poisoned())?.get(key).cloned())
    }

    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if start >= end {
            return Ok(Vec::new());
        }
        let map = self.map.read().map_err(|_| poisoned())?;
        Ok(map
            .range(start.to_vec()..end.to_vec())
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn write(&self, batch: Batch, _sync: bool) -> io::Result<()> {
        let mut map = self.map.write().map_err(|_| poisoned())?;
        for op in batch.ops {
            match op {
                BatchOp::Put(k, v) => {
                    map.insert(k, v);
                }
                BatchOp::Delete(k) => {
                    map.remove(&k);
                }
                BatchOp::DeleteRange(s, e) => {
                    if s < e {
                        let doomed: Vec<Vec<u8>> =
                            map.range(s..e).map(|(k, _)| k.clone()).collect();
                        for k in doomed {
                            map.remove(&k);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        Ok(())
    }
}

/// Deleted keys it takes for `reclaim_space` to run a full compaction.
const RECLAIM_MIN_DELETES: u64 = 32;

/// The embedded LSM engine behind the store interface.
pub struct EngineStore {
    db: crate::engine::Db,
    /// Keys deleted since the last `reclaim_space`.
    deletes: AtomicU64,
    /// Whether a reclaim is running, and its end.
    reclaiming: Arc<(Mutex<bool>, Condvar)>,
}

/// Keep the errno for the filesystem; the engine's message (file, offset)
/// goes to the log, since an errno cannot carry it.
fn engine_err(e: crate::engine::Error) -> io::Error {
    log::warn!("store: {e}");
    io::Error::from_raw_os_error(e.errno())
}

impl EngineStore {
    /// Open (or create) the engine in `dir`. `sync_always` fsyncs every batch.
    pub fn open(dir: &std::path::Path, sync_always: bool) -> Result<EngineStore, String> {
        Self::open_tuned(
            dir,
            sync_always,
            crate::engine::Options::default().write_buffer_size,
        )
    }

    /// `open` with a chosen memtable size (small ones make flushes and
    /// compactions frequent, which crash tests want).
    pub fn open_tuned(
        dir: &std::path::Path,
        sync_always: bool,
        write_buffer_size: usize,
    ) -> Result<EngineStore, String> {
        Self::open_with(dir, Self::tuned_options(sync_always, write_buffer_size))
    }

    /// The engine options for a memtable size: L1 holds what one L0
    /// compaction brings (trigger x memtable), so a big memtable does not
    /// leave L1 permanently over budget. The engine records them in the
    /// data directory (`engine::options_file`) for the offline tools.
    pub fn tuned_options(sync_always: bool, write_buffer_size: usize) -> crate::engine::Options {
        let d = crate::engine::Options::default();
        crate::engine::Options {
            write_buffer_size,
            max_bytes_for_level_base: d
                .max_bytes_for_level_base
                .max((d.l0_compaction_trigger * write_buffer_size) as u64),
            target_file_size: d.target_file_size.max(write_buffer_size as u64 / 4),
            sync_mode: if sync_always {
                crate::engine::SyncMode::Always
            } else {
                crate::engine::SyncMode::OnRequest
            },
            ..d
        }
    }

    pub fn open_with(
        dir: &std::path::Path,
        opts: crate::engine::Options,
    ) -> Result<EngineStore, String> {
        match crate::engine::Db::open(dir, opts) {
            Ok(db) => Ok(EngineStore {
                db,
                deletes: AtomicU64::new(0),
                reclaiming: Arc::new((Mutex::new(false), Condvar::new())),
            }),
            Err(e @ crate::engine::Error::Locked { .. }) => Err(e.to_string()),
            Err(e) => Err(format!("cannot open {}: {e}", dir.display())),
        }
    }

    pub fn db(&self) -> &crate::engine::Db {
        &self.db
    }

    /// Sync and stop the engine.
    pub fn close(&self) -> io::Result<()> {
        self.db.close().map_err(engine_err)
    }
}

impl Store for EngineStore {
    fn get(&self, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        self.db.get(key).map_err(engine_err)
    }

    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if start >= end {
            return Ok(Vec::new());
        }
        self.db
            .scan(start, Some(end), limit, None)
            .map_err(engine_err)
    }

    fn scan_visit(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
        f: &mut dyn FnMut(&[u8], &[u8]),
    ) -> io::Result<()> {
        if start >= end {
            return Ok(());
        }
        self.db
            .scan_visit(start, Some(end), limit, None, f)
            .map_err(engine_err)
    }

    fn write(&self, batch: Batch, sync: bool) -> io::Result<()> {
        let mut b = crate::engine::WriteBatch::new();
        let mut deletes = 0;
        for op in &batch.ops {
            match op {
                BatchOp::Put(k, v) => b.put(k, v),
                BatchOp::Delete(k) => {
                    b.delete(k);
                    deletes += 1;
                }
                BatchOp::DeleteRange(s, e) => {
                    b.delete_range(s, e);
                    // Of unknown size: enough to make the next reclaim run.
                    deletes += RECLAIM_MIN_DELETES;
                }
            }
        }
        self.db.write(b, sync).map_err(engine_err)?;
        if deletes > 0 {
            self.deletes.fetch_add(deletes, Ordering::Relaxed);
        }
        Ok(())
    }

    /// A full compaction on a thread of its own, once per run of deletions.
    fn reclaim_space(&self, wait: Duration) -> bool {
        let (running, ended) = &*self.reclaiming;
        let mut r = running.lock().unwrap_or_else(|p| p.into_inner());
        if !*r {
            // A few deleted keys free next to nothing: not worth a full
            // compaction (and a refused write's wait for it).
            if self.deletes.load(Ordering::Relaxed) < RECLAIM_MIN_DELETES {
                return false;
            }
            let n = self.deletes.swap(0, Ordering::Relaxed);
            log::info!("low on space: compacting to give back what {n} deleted keys held");
            let db = self.db.clone();
            let state = self.reclaiming.clone();
            let spawned = std::thread::Builder::new()
                .name("lsmfs-reclaim".into())
                .spawn(move || {
                    match db.compact_range(None, None) {
                        Ok(()) => log::info!("space reclaim finished"),
                        Err(e) => log::warn!("space reclaim stopped: {e}"),
                    }
                    let (running, ended) = &*state;
                    *running.lock().unwrap_or_else(|p| p.into_inner()) = false;
                    ended.notify_all();
                });
            if let Err(e) = spawned {
                log::warn!("cannot start the space reclaim: {e}");
                return false;
            }
            *r = true;
        }
        let deadline = Instant::now() + wait;
        while *r {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            r = ended
                .wait_timeout(r, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        true
    }

    fn sync(&self) -> io::Result<()> {
        self.db.sync().map_err(engine_err)
    }

    fn stats_text(&self) -> String {
        self.db.stats().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MemStore and the engine agree on a batch whose range deletion sits
    /// between puts: earlier puts in its range go, later ones stay.
    #[test]
    fn delete_range_in_a_batch_is_ordered() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = EngineStore::open(dir.path(), false).expect("open");
        let mem = MemStore::new();
        for s in [&mem as &dyn Store, &engine] {
            let mut b = Batch::new();
            for k in [&b"a"[..], b"b", b"c", b"d"] {
                b.put(k, b"1".to_vec());
            }
            s.write(b, false).unwrap();
            let mut b = Batch::new();
            b.put(b"b".to_vec(), b"2".to_vec());
            b.delete_range(b"b".to_vec(), b"d".to_vec());
            b.put(b"c".to_vec(), b"3".to_vec());
            s.write(b, false).unwrap();
            let all = s.scan(b"", b"z", 10).unwrap();
            let keys: Vec<(&[u8], &[u8])> = all.iter().map(|(k, v)| (&k[..], &v[..])).collect();
            assert_eq!(
                keys,
                vec![(&b"a"[..], &b"1"[..]), (b"c", b"3"), (b"d", b"1")]
            );
            assert_eq!(s.get(b"b").unwrap(), None);
        }
    }
}
