//! The store interface: the only way the filesystem talks to a key-value store.
//!
//! Kept deliberately small (point get, bounded range scan, atomic batch write,
//! sync) so that another engine — an in-memory map in tests, or a distributed
//! store later — can stand in for the embedded LSM engine. Errors are
//! `std::io::Error` carrying the errno the filesystem should return.

use std::collections::BTreeMap;
use std::io;
use std::sync::RwLock;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOp {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
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
    /// Apply a batch atomically. Once this returns Ok the batch survives a
    /// kill of the process; with `sync` it also survives power loss.
    fn write(&self, batch: Batch, sync: bool) -> io::Result<()>;
    /// Make everything written so far survive power loss.
    fn sync(&self) -> io::Result<()>;
    /// Human-readable statistics of the store (shown through the mount).
    fn stats_text(&self) -> String {
        String::new()
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
            }
        }
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        Ok(())
    }
}
