//! A store other hosts write too (`Store::shared`, etcd): optimistic
//! concurrency for every operation.
//!
//! The in-process stripe locks of `core` serialise this daemon's
//! operations, not another host's. So while an operation runs
//! ([`FsCore::atomically`]), every key it reads through the store, and the
//! value it saw, is recorded for its thread ([`Tracked`]); each batch it
//! commits carries those values as expectations (`Batch::expect`), which
//! the store checks in the same transaction. If another host changed any
//! of them, nothing is applied, and the operation runs again from the
//! start on fresh reads (up to `MAX_TRIES`, with a short random pause).
//! Two hosts creating one name: both read the entry as absent and the
//! parent's record; the first commit changes both, the second fails its
//! compares, re-runs, and finds the name taken (EEXIST). A key written by
//! the operation's own earlier batch (the allocator's mark) is recorded
//! with its new value, so the next batch expects that.
//!
//! Relaxed first runs: since the commit compares every value read, the
//! reads need not be linearizable for a run that commits. So the first
//! run of an operation reads point keys through `Store::get_relaxed`
//! (etcd: serializable, no consensus round). A run whose outcome no
//! compare checked — an error, success with nothing written, or reads
//! after its last commit — runs again at once on ordinary reads, as does
//! one that conflicted (not counted as a conflict: the replica lagged).
//! Within a relaxed run a key already read or written answers from the
//! read set, so the run never sees its own writes go back in time.
//!
//! What a scan found is recorded key by key; a key a scan did *not* find
//! is not (an expectation names keys). The operations that decide on an
//! absence read it by point lookup (a name before create, link and
//! rename), or read the parent's inode record, which every change to a
//! directory's entries rewrites (rmdir's emptiness check: a create in the
//! directory elsewhere changes the directory's record, which rmdir read).

use super::core::{FsCore, FsResult};
use crate::store::{is_conflict, Batch, BatchOp, ChangeSink, Store};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

/// The errno an operation's commit fails with when an expectation did
/// not hold: never sent to the kernel (`atomically` retries, then EIO).
pub(super) const ECONFLICT: i32 = libc::ERESTART;
const MAX_TRIES: u32 = 64;

type ReadSet = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

thread_local! {
    /// The reads of the operation running on this thread, if tracked.
    static READS: RefCell<Option<ReadSet>> = const { RefCell::new(None) };
    /// This run of the operation reads relaxed (`Store::get_relaxed`).
    static RELAXED: Cell<bool> = const { Cell::new(false) };
    /// This run of the operation has committed a batch, and read nothing
    /// relaxed since.
    static COMMITTED: Cell<bool> = const { Cell::new(false) };
}

fn record(k: &[u8], v: Option<&[u8]>) {
    READS.with(|r| {
        if let Some(set) = r.borrow_mut().as_mut() {
            // The first value read is what the operation decided on.
            set.entry(k.to_vec())
                .or_insert_with(|| v.map(<[u8]>::to_vec));
        }
    });
}

/// In a relaxed run: the value this run already read or wrote for `k`
/// (so that it never sees its own keys go back in time on a replica that
/// lags); None when it has not, or the run is not relaxed.
fn seen(k: &[u8]) -> Option<Option<Vec<u8>>> {
    if !RELAXED.with(Cell::get) {
        return None;
    }
    READS.with(|r| r.borrow().as_ref()?.get(k).cloned())
}

/// The store seen through the read set of the running operation.
pub(super) struct Tracked {
    inner: Arc<dyn Store>,
}

impl Tracked {
    pub(super) fn wrap(inner: Arc<dyn Store>) -> Arc<dyn Store> {
        Arc::new(Tracked { inner })
    }
}

impl Store for Tracked {
    fn get(&self, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        if let Some(v) = seen(key) {
            return Ok(v);
        }
        let v = if RELAXED.with(Cell::get) {
            // Unchecked until a commit compares it.
            COMMITTED.with(|c| c.set(false));
            self.inner.get_relaxed(key)?
        } else {
            self.inner.get(key)?
        };
        record(key, v.as_deref());
        Ok(v)
    }

    fn get_many(&self, keys: &[Vec<u8>]) -> io::Result<Vec<Option<Vec<u8>>>> {
        let out = self.inner.get_many(keys)?;
        for (k, v) in keys.iter().zip(&out) {
            record(k, v.as_deref());
        }
        Ok(out)
    }

    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let out = self.inner.scan(start, end, limit)?;
        for (k, v) in &out {
            record(k, Some(v));
        }
        Ok(out)
    }

    fn scan_visit(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
        f: &mut dyn FnMut(&[u8], &[u8]),
    ) -> io::Result<()> {
        self.inner.scan_visit(start, end, limit, &mut |k, v| {
            record(k, Some(v));
            f(k, v)
        })
    }

    fn write(&self, mut batch: Batch, sync: bool) -> io::Result<()> {
        let ops = READS.with(|r| {
            let r = r.borrow();
            let set = r.as_ref()?;
            batch
                .expect
                .extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
            Some(batch.ops.clone())
        });
        self.inner.write(batch, sync)?;
        COMMITTED.with(|c| c.set(true));
        if let Some(ops) = ops {
            READS.with(|r| {
                if let Some(set) = r.borrow_mut().as_mut() {
                    for op in ops {
                        match op {
                            BatchOp::Put(k, v) => {
                                set.insert(k, Some(v));
                            }
                            BatchOp::Delete(k) => {
                                set.insert(k, None);
                            }
                            BatchOp::DeleteRange(s, e) => {
                                for (_, v) in set.range_mut(s..e) {
                                    *v = None;
                                }
                            }
                        }
                    }
                }
            });
        }
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        self.inner.sync()
    }

    fn stats_text(&self) -> String {
        self.inner.stats_text()
    }

    fn shared(&self) -> bool {
        true
    }

    fn follow_changes(&self, sink: ChangeSink) -> bool {
        self.inner.follow_changes(sink)
    }
}

/// The errno for a store error: a conflict is `ECONFLICT`.
pub(super) fn errno_of(e: &io::Error) -> Option<i32> {
    is_conflict(e).then_some(ECONFLICT)
}

impl FsCore {
    /// Run a read that answers the kernel (lookup, getattr) on relaxed
    /// reads (`Store::get_relaxed`: never behind what this mount has seen,
    /// at most as stale as the kernel's 1 s caching allows anyway).
    pub fn relaxed<T>(&self, read: impl FnOnce() -> T) -> T {
        if !self.shared() || READS.with(|r| r.borrow().is_some()) {
            return read();
        }
        RELAXED.with(|c| c.set(true));
        let r = read();
        RELAXED.with(|c| c.set(false));
        r
    }

    /// Run one operation; on a shared store, with its reads tracked and
    /// re-run from the start while another host's commit conflicts with it.
    pub fn atomically<T>(&self, op: impl Fn() -> FsResult<T>) -> FsResult<T> {
        if !self.shared() || READS.with(|r| r.borrow().is_some()) {
            return op();
        }
        // The first run reads relaxed when the store offers it; one whose
        // outcome no commit checked — an error, or nothing written — or
        // that conflicted runs again on linearizable reads, and so does
        // every run after a conflict.
        let mut relaxed = true;
        for attempt in 0..MAX_TRIES {
            READS.with(|r| *r.borrow_mut() = Some(ReadSet::new()));
            RELAXED.with(|c| c.set(relaxed));
            COMMITTED.with(|c| c.set(false));
            let r = op();
            READS.with(|r| *r.borrow_mut() = None);
            RELAXED.with(|c| c.set(false));
            let unchecked = r.is_err() || !COMMITTED.with(Cell::get);
            if std::mem::take(&mut relaxed) && unchecked {
                continue;
            }
            match r {
                Err(ECONFLICT) => {
                    self.count_conflict();
                    // A pause of 0-2^n ms, so two hosts do not collide again.
                    let max = 1u64 << attempt.min(6);
                    let jitter = (super::core::now_ns() as u64 ^ u64::from(attempt)) % max;
                    std::thread::sleep(std::time::Duration::from_micros(jitter * 1000 + 100));
                }
                r => return r,
            }
        }
        log::error!("an operation conflicted {MAX_TRIES} times with other mounts; giving up (EIO)");
        Err(libc::EIO)
    }
}

#[cfg(test)]
mod tests {
    use super::super::core::testutil::U;
    use super::*;
    use crate::store::MemStore;
    use std::sync::Mutex;

    /// A shared store whose relaxed reads come from a replica frozen at
    /// `freeze` (a member that stopped applying), its other reads and its
    /// commits from the live state.
    #[derive(Default)]
    struct Lagging {
        live: MemStore,
        replica: Mutex<Option<MemStore>>,
        relaxed_reads: std::sync::atomic::AtomicU64,
    }

    impl Lagging {
        fn freeze(&self) {
            let copy = MemStore::new();
            let all = self.live.scan(b"", &[0xff; 32], usize::MAX).expect("scan");
            let mut b = Batch::new();
            for (k, v) in all {
                b.put(k, v);
            }
            copy.write(b, false).expect("copy");
            *self.replica.lock().expect("lock") = Some(copy);
        }
    }

    impl Store for Lagging {
        fn get(&self, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
            self.live.get(key)
        }
        fn get_relaxed(&self, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
            self.relaxed_reads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            match self.replica.lock().expect("lock").as_ref() {
                Some(r) => r.get(key),
                None => self.live.get(key),
            }
        }
        fn scan(
            &self,
            start: &[u8],
            end: &[u8],
            limit: usize,
        ) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
            self.live.scan(start, end, limit)
        }
        fn write(&self, batch: Batch, sync: bool) -> io::Result<()> {
            self.live.write(batch, sync)
        }
        fn sync(&self) -> io::Result<()> {
            Ok(())
        }
        fn shared(&self) -> bool {
            true
        }
    }

    /// Operations whose relaxed reads are stale — absent parents, old
    /// sizes, names already taken — come out as on a fresh store: a stale
    /// read fails a compare or an error is re-checked on linearizable
    /// reads. None of it counts as a conflict with another host.
    #[test]
    fn stale_relaxed_reads_never_change_an_outcome() {
        let store = Arc::new(Lagging::default());
        let core = FsCore::open(store.clone(), false, false).expect("open");
        store.freeze();
        let root = super::super::schema::ROOT_INO;
        let d = core
            .atomically(|| core.mkdir(U, root, b"d", 0o755))
            .expect("mkdir");
        // The replica has no `d`: create in it must still work.
        let f = core
            .atomically(|| core.create(U, d.ino, b"f", 0o644))
            .expect("create in a directory the replica lacks");
        core.atomically(|| core.write(U, f.ino, 0, b"hello", false))
            .expect("write");
        core.atomically(|| core.write(U, f.ino, 5, b" world", false))
            .expect("a write after one the replica lacks");
        assert_eq!(core.read(f.ino, 0, 64).expect("read"), b"hello world");
        // The replica says the name is free; it is not.
        assert_eq!(
            core.atomically(|| core.create(U, d.ino, b"f", 0o644)).err(),
            Some(libc::EEXIST)
        );
        core.atomically(|| core.rename(U, d.ino, b"f", root, b"g", 0))
            .expect("rename");
        assert_eq!(core.lookup(d.ino, b"f").err(), Some(libc::ENOENT));
        assert_eq!(core.lookup(root, b"g").expect("lookup").size, 11);
        assert!(
            store
                .relaxed_reads
                .load(std::sync::atomic::Ordering::Relaxed)
                > 0
        );
        assert_eq!(core.conflicts(), 0);
    }
}
