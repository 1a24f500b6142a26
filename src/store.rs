//! The store interface: the only way the filesystem talks to a key-value store.
//!
//! Kept deliberately small (point get, bounded range scan, atomic batch write,
//! sync) so that another engine — an in-memory map in tests, or a distributed
//! store later — can stand in for the embedded LSM engine. Errors are
//! `std::io::Error` carrying the errno the filesystem should return.
//!
//! A batch may carry expectations (`Batch::expect`): the values of keys the
//! operation read, which must still hold when it commits. A store shared by
//! several processes (`etcd`) checks them in the same transaction and,
//! when one fails, applies nothing and returns [`conflict`]: the operation
//! reads again and retries. A store only one process writes needs no
//! check: the filesystem's in-process locks already keep what an operation
//! read unchanged until it commits, so `EngineStore` ignores them
//! (`MemStore` checks them, for tests of the retry paths).

pub mod etcd;

use crate::engine::write_batch::OUT_OF_LINE_MIN;
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

impl BatchOp {
    /// The bytes of its keys and value.
    pub fn bytes(&self) -> usize {
        match self {
            BatchOp::Put(k, v) | BatchOp::DeleteRange(k, v) => k.len() + v.len(),
            BatchOp::Delete(k) => k.len(),
        }
    }
}

/// A group of changes applied atomically: after a crash either all or none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub ops: Vec<BatchOp>,
    /// Keys whose value (None: absent) must be as read for the batch to apply.
    pub expect: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// Marks the error `write` returns when an expectation failed.
#[derive(Debug)]
struct Conflict;

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("another writer changed what the operation read")
    }
}

impl std::error::Error for Conflict {}

/// The error of a batch not applied because an expectation failed.
pub fn conflict() -> io::Error {
    io::Error::other(Conflict)
}

pub fn is_conflict(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|e| e.is::<Conflict>())
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
    /// Apply only if `key` still holds `value` (None: still absent).
    pub fn expect(&mut self, key: impl Into<Vec<u8>>, value: Option<Vec<u8>>) {
        self.expect.push((key.into(), value));
    }
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
    pub fn len(&self) -> usize {
        self.ops.len()
    }
}

/// A named, durable snapshot of the whole store: a sequence number the
/// engine keeps readable until it is deleted (see `engine::snapshot`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Never reused within a store (it numbers the snapshot's inodes on
    /// the mount, see `fs::snapshots`).
    pub id: u64,
    pub name: String,
    pub sequence: u64,
    /// Creation time, nanoseconds since the Unix epoch.
    pub created_ns: u64,
}

fn unsupported() -> io::Error {
    io::Error::from_raw_os_error(libc::EOPNOTSUPP)
}

/// Where `Store::follow_changes` sends the keys another client changed.
pub type ChangeSink = Box<dyn Fn(Vec<Vec<u8>>) + Send + Sync>;

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
    /// A read that a shared store may serve from a replica that lags,
    /// though never from one behind what this store has already seen (its
    /// own commits, its earlier reads). For reads whose staleness is
    /// checked (a commit's compares, `fs::shared`) or allowed (the kernel
    /// caches names and attributes for 1 s anyway). Others: `get`.
    fn get_relaxed(&self, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        self.get(key)
    }
    /// The values of `keys`, in order, read together: a network store
    /// answers them in one request (etcd: one read-only transaction,
    /// linearizable). Others: one `get` each.
    fn get_many(&self, keys: &[Vec<u8>]) -> io::Result<Vec<Option<Vec<u8>>>> {
        keys.iter().map(|k| self.get(k)).collect()
    }
    /// Apply a batch atomically. Once this returns Ok the batch survives a
    /// kill of the process; with `sync` it also survives power loss.
    fn write(&self, batch: Batch, sync: bool) -> io::Result<()>;
    /// Make everything written so far survive power loss.
    fn sync(&self) -> io::Result<()>;
    /// Whether other processes (other hosts' mounts) write this store too:
    /// then the filesystem caches nothing of it and every operation's
    /// batches carry expectations of what it read (see `fs::shared`).
    fn shared(&self) -> bool {
        false
    }
    /// From now on, hand `sink` the keys other clients change, in batches,
    /// soon after each change (a shared store that can tell: etcd's
    /// watch); this client's own commits are left out as far as the store
    /// can tell. False if the store cannot follow (nothing is called).
    fn follow_changes(&self, _sink: ChangeSink) -> bool {
        false
    }
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
    /// The snapshots, oldest first.
    fn snapshots(&self) -> io::Result<Vec<SnapshotInfo>> {
        Ok(Vec::new())
    }
    /// Take a snapshot of everything written so far, durably (it survives
    /// power loss once this returns). EEXIST for a taken name, EINVAL for
    /// one that cannot name a directory (`engine::snapshot::check_name`).
    fn create_snapshot(&self, _name: &str) -> io::Result<SnapshotInfo> {
        Err(unsupported())
    }
    /// Delete a snapshot, durably; ENOENT if there is none of that name.
    fn delete_snapshot(&self, _name: &str) -> io::Result<()> {
        Err(unsupported())
    }
    /// A read-only store showing the keys as they were at the snapshot
    /// (writes fail with EROFS). It stays readable if the snapshot is
    /// deleted meanwhile, and pins its versions until dropped.
    fn snapshot_view(&self, _name: &str) -> io::Result<Option<Arc<dyn Store>>> {
        Ok(None)
    }
}

fn read_only() -> io::Error {
    io::Error::from_raw_os_error(libc::EROFS)
}

/// A `BTreeMap` store for tests of the filesystem logic; not durable.
/// Snapshots are copies of the map (O(size), which tests do not mind).
#[derive(Default)]
pub struct MemStore {
    map: RwLock<BTreeMap<Vec<u8>, Vec<u8>>>,
    snapshots: Mutex<Vec<(SnapshotInfo, Arc<MemStore>)>>,
    read_only: bool,
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
        if self.read_only {
            return Err(read_only());
        }
        let mut map = self.map.write().map_err(|_| poisoned())?;
        if batch.expect.iter().any(|(k, v)| map.get(k) != v.as_ref()) {
            return Err(conflict());
        }
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

    fn snapshots(&self) -> io::Result<Vec<SnapshotInfo>> {
        let snaps = self.snapshots.lock().map_err(|_| poisoned())?;
        Ok(snaps.iter().map(|(i, _)| i.clone()).collect())
    }

    fn create_snapshot(&self, name: &str) -> io::Result<SnapshotInfo> {
        if self.read_only {
            return Err(read_only());
        }
        crate::engine::snapshot::check_name(name)
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let mut snaps = self.snapshots.lock().map_err(|_| poisoned())?;
        if snaps.iter().any(|(i, _)| i.name == name) {
            return Err(io::Error::from_raw_os_error(libc::EEXIST));
        }
        let map = self.map.read().map_err(|_| poisoned())?.clone();
        let info = SnapshotInfo {
            id: snaps.last().map_or(0, |(i, _)| i.id + 1),
            name: name.to_string(),
            sequence: snaps.len() as u64,
            created_ns: crate::fs::core::now_ns() as u64,
        };
        let view = MemStore {
            map: RwLock::new(map),
            snapshots: Mutex::default(),
            read_only: true,
        };
        snaps.push((info.clone(), Arc::new(view)));
        Ok(info)
    }

    fn delete_snapshot(&self, name: &str) -> io::Result<()> {
        let mut snaps = self.snapshots.lock().map_err(|_| poisoned())?;
        let before = snaps.len();
        snaps.retain(|(i, _)| i.name != name);
        if snaps.len() == before {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        Ok(())
    }

    fn snapshot_view(&self, name: &str) -> io::Result<Option<Arc<dyn Store>>> {
        let snaps = self.snapshots.lock().map_err(|_| poisoned())?;
        Ok(snaps
            .iter()
            .find(|(i, _)| i.name == name)
            .map(|(_, v)| v.clone() as Arc<dyn Store>))
    }
}

/// Deleted keys it takes for `reclaim_space` to run a full compaction.
const RECLAIM_MIN_DELETES: u64 = 32;

/// The embedded LSM engine behind the store interface.
pub struct EngineStore {
    db: crate::engine::Db,
    /// The reads, at the live sequence.
    live: EngineView,
    /// Keys deleted since the last `reclaim_space`.
    deletes: AtomicU64,
    /// Whether a reclaim is running, and its end.
    reclaiming: Arc<(Mutex<bool>, Condvar)>,
    /// The last estimate of the bytes each snapshot alone holds, and when
    /// (it reads every table: `stats_text` reuses it for a while).
    exclusive: Mutex<Option<(Instant, SnapshotSizes)>>,
}

/// (snapshot id, bytes only it holds), from `Db::snapshot_exclusive_bytes`.
type SnapshotSizes = Vec<(u64, u64)>;

/// How long a snapshot size estimate is shown before it is recomputed.
const EXCLUSIVE_TTL: Duration = Duration::from_secs(30);

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
            Ok(db) => Ok(EngineStore::from_db(db)),
            Err(e @ crate::engine::Error::Locked { .. }) => Err(e.to_string()),
            Err(e) => Err(format!("cannot open {}: {e}", dir.display())),
        }
    }

    /// The store over an engine already open (the offline tools).
    pub fn from_db(db: crate::engine::Db) -> EngineStore {
        EngineStore {
            live: EngineView {
                db: db.clone(),
                snap: None,
            },
            db,
            deletes: AtomicU64::new(0),
            reclaiming: Arc::new((Mutex::new(false), Condvar::new())),
            exclusive: Mutex::new(None),
        }
    }

    /// One line per snapshot: name, id, sequence, age, and the estimate of
    /// the bytes only it holds (`Db::snapshot_exclusive_bytes`).
    pub fn snapshots_text(&self) -> String {
        let snaps = self.db.list_snapshots();
        if snaps.is_empty() {
            return String::new();
        }
        let sizes = {
            let mut cached = self.exclusive.lock().unwrap_or_else(|p| p.into_inner());
            match cached.as_ref() {
                Some((at, v)) if at.elapsed() < EXCLUSIVE_TTL => Some(v.clone()),
                _ => match self.db.snapshot_exclusive_bytes() {
                    Ok(v) => {
                        *cached = Some((Instant::now(), v.clone()));
                        Some(v)
                    }
                    Err(e) => {
                        log::warn!("estimating snapshot sizes: {e}");
                        None
                    }
                },
            }
        };
        let now = crate::fs::core::now_ns() as u64;
        let mut text = format!("snapshots            {}\n", snaps.len());
        for s in snaps {
            let only = sizes
                .as_ref()
                .and_then(|v| v.iter().find(|(id, _)| *id == s.id))
                .map_or("?".to_string(), |(_, b)| b.to_string());
            text.push_str(&format!(
                "snapshot             id {} seq {} age {}s only_it_holds {} bytes name {:?}\n",
                s.id,
                s.sequence,
                now.saturating_sub(s.created_ns) / 1_000_000_000,
                only,
                s.name
            ));
        }
        text
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
        self.live.get(key)
    }

    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.live.scan(start, end, limit)
    }

    fn scan_visit(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
        f: &mut dyn FnMut(&[u8], &[u8]),
    ) -> io::Result<()> {
        self.live.scan_visit(start, end, limit, f)
    }

    fn write(&self, batch: Batch, sync: bool) -> io::Result<()> {
        // A tag and two length prefixes (at most 5 bytes each) per op; a
        // large value is moved, not copied (`WriteBatch::put_owned`).
        let bytes = batch
            .ops
            .iter()
            .map(|op| match op {
                BatchOp::Put(k, v) if v.len() >= OUT_OF_LINE_MIN => 11 + k.len(),
                op => 11 + op.bytes(),
            })
            .sum();
        let mut b = crate::engine::WriteBatch::with_capacity(bytes);
        let mut deletes = 0;
        for op in batch.ops {
            match op {
                BatchOp::Put(k, v) => b.put_owned(&k, v),
                BatchOp::Delete(k) => {
                    b.delete(&k);
                    deletes += 1;
                }
                BatchOp::DeleteRange(s, e) => {
                    b.delete_range(&s, &e);
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
        let mut text = self.db.stats().to_string();
        text.push_str(&self.snapshots_text());
        text
    }

    fn snapshots(&self) -> io::Result<Vec<SnapshotInfo>> {
        Ok(self
            .db
            .list_snapshots()
            .into_iter()
            .map(snapshot_info)
            .collect())
    }

    fn create_snapshot(&self, name: &str) -> io::Result<SnapshotInfo> {
        let s = self.db.create_snapshot(name).map_err(engine_err)?;
        *self.exclusive.lock().unwrap_or_else(|p| p.into_inner()) = None;
        log::info!("snapshot {name:?} created at sequence {}", s.sequence);
        Ok(snapshot_info(s))
    }

    fn delete_snapshot(&self, name: &str) -> io::Result<()> {
        self.db.delete_snapshot(name).map_err(engine_err)?;
        log::info!("snapshot {name:?} deleted");
        *self.exclusive.lock().unwrap_or_else(|p| p.into_inner()) = None;
        // The engine's background rewrites give back what only it held;
        // near a full disk, the reclaim's full compaction does it at once.
        self.deletes
            .fetch_add(RECLAIM_MIN_DELETES, Ordering::Relaxed);
        Ok(())
    }

    fn snapshot_view(&self, name: &str) -> io::Result<Option<Arc<dyn Store>>> {
        Ok(self.db.open_snapshot(name).map(|snap| {
            Arc::new(EngineView {
                db: self.db.clone(),
                snap: Some(snap),
            }) as Arc<dyn Store>
        }))
    }
}

fn snapshot_info(s: crate::engine::PersistentSnapshot) -> SnapshotInfo {
    SnapshotInfo {
        id: s.id,
        name: s.name,
        sequence: s.sequence,
        created_ns: s.created_ns,
    }
}

/// The engine's reads at the live sequence (`snap` None: `EngineStore`'s
/// own) or at a snapshot's — as a store of its own, a read-only one that
/// refuses writes with EROFS (`Store::snapshot_view`).
pub struct EngineView {
    db: crate::engine::Db,
    snap: Option<crate::engine::Snapshot>,
}

impl Store for EngineView {
    fn get(&self, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        match &self.snap {
            None => self.db.get(key),
            Some(s) => self.db.get_at(key, s),
        }
        .map_err(engine_err)
    }

    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if start >= end {
            return Ok(Vec::new());
        }
        self.db
            .scan(start, Some(end), limit, self.snap.as_ref())
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
            .scan_visit(start, Some(end), limit, self.snap.as_ref(), f)
            .map_err(engine_err)
    }

    fn write(&self, _batch: Batch, _sync: bool) -> io::Result<()> {
        Err(read_only())
    }

    fn sync(&self) -> io::Result<()> {
        Ok(())
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
