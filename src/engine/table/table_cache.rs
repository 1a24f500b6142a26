//! The open-table cache: keeps up to `max_open_files` tables open (their
//! file handle, index block and bloom filter parsed), evicting the least
//! recently used. A table's blocks live in the shared block cache.

use crate::engine::env::Env;
use crate::engine::error::{Error, Result};
use crate::engine::filename::table_file_name;
use crate::engine::table::block_cache::{BlockCache, LruCache};
use crate::engine::table::Table;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub struct TableCache {
    env: Arc<dyn Env>,
    dir: PathBuf,
    block_cache: Arc<BlockCache>,
    tables: Mutex<LruCache<u64, Arc<Table>>>,
}

impl TableCache {
    pub fn new(
        env: Arc<dyn Env>,
        dir: PathBuf,
        max_open: usize,
        block_cache: Arc<BlockCache>,
    ) -> TableCache {
        TableCache {
            env,
            dir,
            block_cache,
            tables: Mutex::new(LruCache::new(max_open.max(1))),
        }
    }

    pub fn get_table(&self, file_number: u64, file_size: u64) -> Result<Arc<Table>> {
        if let Some(t) = self
            .tables
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&file_number)
        {
            return Ok(t);
        }
        let path = table_file_name(&self.dir, file_number);
        let file = self.env.open_random_access(&path).map_err(|e| match e {
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Error::corruption(&path, 0, "live table is missing")
            }
            other => other,
        })?;
        let table = Table::open(
            file,
            path,
            file_number,
            file_size,
            Some(self.block_cache.clone()),
        )?;
        self.tables
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(file_number, table.clone(), 1);
        Ok(table)
    }

    pub fn evict(&self, file_number: u64) {
        self.tables
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&file_number);
        self.block_cache.erase_file(file_number);
    }
}
