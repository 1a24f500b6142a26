//! The database handle (being written: API fixed, bodies to come).
#![allow(unused_variables)]

use super::error::{Error, Result};
use super::options::Options;
use super::write_batch::WriteBatch;
use std::path::Path;

/// A consistent read view at a fixed sequence number; released on drop.
pub struct Snapshot {
    pub sequence: u64,
}

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
    pub num_flushes: u64,
    pub num_compactions: u64,
    pub memtable_bytes: u64,
    pub wal_bytes: u64,
    pub block_cache_hits: u64,
    pub block_cache_misses: u64,
    pub gets: u64,
    pub writes: u64,
    pub write_stalls: u64,
}

/// The open database. Cheap to clone; all clones share one engine.
#[derive(Clone)]
pub struct Db {}

impl Db {
    pub fn open(dir: &Path, opts: Options) -> Result<Db> {
        Err(Error::InvalidArgument("not yet built".into()))
    }
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Err(Error::Closed)
    }
    pub fn get_at(&self, key: &[u8], snap: &Snapshot) -> Result<Option<Vec<u8>>> {
        Err(Error::Closed)
    }
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        Err(Error::Closed)
    }
    pub fn delete(&self, key: &[u8]) -> Result<()> {
        Err(Error::Closed)
    }
    pub fn write(&self, batch: WriteBatch, sync: bool) -> Result<()> {
        Err(Error::Closed)
    }
    /// Up to `limit` live entries with `start <= key < end` (`end` None = unbounded).
    pub fn scan(&self, start: &[u8], end: Option<&[u8]>, limit: usize, snap: Option<&Snapshot>) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        Err(Error::Closed)
    }
    pub fn snapshot(&self) -> Snapshot {
        Snapshot { sequence: 0 }
    }
    pub fn flush(&self) -> Result<()> {
        Err(Error::Closed)
    }
    pub fn compact_range(&self, begin: Option<&[u8]>, end: Option<&[u8]>) -> Result<()> {
        Err(Error::Closed)
    }
    pub fn sync(&self) -> Result<()> {
        Err(Error::Closed)
    }
    pub fn close(&self) -> Result<()> {
        Ok(())
    }
    pub fn stats(&self) -> DbStats {
        DbStats::default()
    }
}
