//! Iterating one level of disjoint tables: a [`TwoLevelIterator`] whose
//! index is the level's file list (sorted by key) and whose pieces are
//! table iterators, each table opened only when the iterator reaches it.

use super::{find_file, FileMetaData};
use crate::engine::error::{Error, Result};
use crate::engine::table::two_level::{Index, TwoLevelIterator};
use crate::engine::table::{ReadAhead, TableCache, TableIterator};
use std::sync::Arc;

/// Concatenation of the disjoint, sorted files of one level.
pub type LevelIterator = TwoLevelIterator<LevelFiles>;

/// An iterator over `files` (one level's, disjoint and sorted) reading each
/// table's blocks ahead as `ahead` says.
pub fn level_iterator(
    tables: Arc<TableCache>,
    files: Vec<Arc<FileMetaData>>,
    ahead: Option<ReadAhead>,
) -> LevelIterator {
    TwoLevelIterator::new(LevelFiles {
        tables,
        index: files.len(),
        files,
        ahead,
    })
}

/// The first level of a level iterator: a position in the file list.
pub struct LevelFiles {
    tables: Arc<TableCache>,
    files: Vec<Arc<FileMetaData>>,
    index: usize,
    ahead: Option<ReadAhead>,
}

impl Index for LevelFiles {
    type Piece = TableIterator;

    fn seek_to_first(&mut self) {
        self.index = 0;
    }

    fn seek(&mut self, target: &[u8]) {
        self.index = find_file(&self.files, target);
    }

    fn next(&mut self) {
        self.index = (self.index + 1).min(self.files.len());
    }

    fn valid(&mut self) -> Result<bool> {
        Ok(self.index < self.files.len())
    }

    fn open(&mut self) -> Result<TableIterator> {
        let Some(f) = self.files.get(self.index) else {
            return Err(Error::InvalidArgument(
                "level iterator opened past its last file".into(),
            ));
        };
        let t = self.tables.get_table(f.number, f.file_size)?;
        Ok(t.iter_with(self.ahead.clone()))
    }
}
