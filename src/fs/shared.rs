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
//! What a scan found is recorded key by key; a key a scan did *not* find
//! is not (an expectation names keys). The operations that decide on an
//! absence read it by point lookup (a name before create, link and
//! rename), or read the parent's inode record, which every change to a
//! directory's entries rewrites (rmdir's emptiness check: a create in the
//! directory elsewhere changes the directory's record, which rmdir read).

use super::core::{FsCore, FsResult};
use crate::store::{is_conflict, Batch, BatchOp, Store};
use std::cell::RefCell;
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
        let v = self.inner.get(key)?;
        record(key, v.as_deref());
        Ok(v)
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
}

/// The errno for a store error: a conflict is `ECONFLICT`.
pub(super) fn errno_of(e: &io::Error) -> Option<i32> {
    is_conflict(e).then_some(ECONFLICT)
}

impl FsCore {
    /// Run one operation; on a shared store, with its reads tracked and
    /// re-run from the start while another host's commit conflicts with it.
    pub fn atomically<T>(&self, op: impl Fn() -> FsResult<T>) -> FsResult<T> {
        if !self.shared() || READS.with(|r| r.borrow().is_some()) {
            return op();
        }
        for attempt in 0..MAX_TRIES {
            READS.with(|r| *r.borrow_mut() = Some(ReadSet::new()));
            let r = op();
            READS.with(|r| *r.borrow_mut() = None);
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
