//! Iterating a table: a [`TwoLevelIterator`] whose index is the table's
//! index block and whose pieces are its data blocks, read ahead for scans.
//!
//! Scans read ahead: data blocks are contiguous in the file, so a run of
//! them is one `pread` (see [`ReadAhead`]); a bounded scan stops its run at
//! the block holding its bound, and a plain iterator starts reading ahead
//! once it has stepped into two blocks in a row. Every block of a run is
//! still checksummed on its own and named by its own offset when damaged.

use super::block::{Block, BlockIter};
use super::format::{BlockHandle, TRAILER_SIZE};
use super::reader::Table;
use super::two_level::{Index, TwoLevelIterator};
use crate::engine::dbformat::{compare_internal, user_key};
use crate::engine::error::{Error, Result};
use crate::engine::iterator::InternalIterator;
use std::collections::VecDeque;
use std::sync::Arc;

/// An iterator without a `ReadAhead` reads ahead once `next` has taken it
/// into this many blocks in a row, in runs of this many bytes.
const AUTO_READ_AHEAD_AFTER: u32 = 2;
const AUTO_READ_AHEAD_BYTES: usize = 256 << 10;

/// How a scan reads ahead. A range scan that will visit many consecutive
/// data blocks (a file read of 1 MiB is 256 chunk blocks; compaction reads
/// whole tables) would otherwise pay one `pread` per 4 KiB block; with a
/// `ReadAhead` the table iterator reads a run of consecutive blocks that may
/// hold keys below `upper` with a single read of at most `max_bytes`.
#[derive(Clone, Debug)]
pub struct ReadAhead {
    /// Exclusive user-key bound of the scan (None: to the end of the table).
    pub upper: Option<Arc<[u8]>>,
    pub max_bytes: usize,
    /// Whether blocks read by this scan go into the block cache
    /// (compaction's do not: they would only evict hot blocks).
    pub fill_cache: bool,
}

/// The entries of a table, in order.
pub type TableIterator = TwoLevelIterator<TableIndex>;

impl Table {
    pub fn iter(self: &Arc<Self>) -> TableIterator {
        self.iter_with(None)
    }

    /// An iterator that reads data blocks ahead as `ahead` says.
    pub fn iter_with(self: &Arc<Self>, ahead: Option<ReadAhead>) -> TableIterator {
        TwoLevelIterator::new(TableIndex {
            table: self.clone(),
            index: BlockIter::new(self.index.clone(), compare_internal),
            ahead,
            prefetched: VecDeque::new(),
            sequential: 0,
        })
    }
}

/// The first level of a table iterator: the index block, each entry a data
/// block's last key → its handle.
pub struct TableIndex {
    table: Arc<Table>,
    index: BlockIter,
    ahead: Option<ReadAhead>,
    /// Blocks read ahead, by offset, in file order.
    prefetched: VecDeque<(u64, Arc<Block>)>,
    /// Blocks stepped into by `next` since the last seek.
    sequential: u32,
}

/// A data block of a table, its damage named by the table and offset.
pub struct DataBlockIter {
    it: BlockIter,
    table: Arc<Table>,
    offset: u64,
}

impl InternalIterator for DataBlockIter {
    fn valid(&self) -> bool {
        self.it.valid()
    }

    fn seek_to_first(&mut self) {
        self.it.seek_to_first();
    }

    fn seek(&mut self, target: &[u8]) {
        self.it.seek(target);
    }

    fn next(&mut self) {
        self.it.next();
    }

    fn key(&self) -> &[u8] {
        self.it.key()
    }

    fn value(&self) -> &[u8] {
        self.it.value()
    }

    fn status(&self) -> Result<()> {
        match &self.it.error {
            Some(e) => Err(Error::corruption(&self.table.path, self.offset, e.clone())),
            None => Ok(()),
        }
    }
}

impl Index for TableIndex {
    type Piece = DataBlockIter;

    fn seek_to_first(&mut self) {
        self.sequential = 0;
        self.index.seek_to_first();
    }

    fn seek(&mut self, target: &[u8]) {
        self.sequential = 0;
        self.index.seek(target);
    }

    fn next(&mut self) {
        self.index.next();
        self.sequential += 1;
    }

    fn valid(&mut self) -> Result<bool> {
        if self.index.valid() {
            return Ok(true);
        }
        match self.index.error.take() {
            Some(e) => Err(Error::corruption(
                &self.table.path,
                0,
                format!("index block: {e}"),
            )),
            None => Ok(false),
        }
    }

    fn open(&mut self) -> Result<DataBlockIter> {
        let h = self.table.decode_handle(self.index.value())?;
        let block = self.fetch(h)?;
        Ok(DataBlockIter {
            it: BlockIter::new(block, compare_internal),
            table: self.table.clone(),
            offset: h.offset,
        })
    }
}

impl TableIndex {
    /// The block at `h`: read ahead, cached, or read now (with the blocks
    /// after it when reading ahead).
    fn fetch(&mut self, h: BlockHandle) -> Result<Arc<Block>> {
        while let Some((off, b)) = self.prefetched.pop_front() {
            if off == h.offset {
                return Ok(b);
            }
        }
        let ahead = match &self.ahead {
            Some(a) => a.clone(),
            // An iterator without a plan that has walked from block to block
            // is scanning: read ahead anyway, as RocksDB's auto read-ahead does.
            None if self.sequential >= AUTO_READ_AHEAD_AFTER => ReadAhead {
                upper: None,
                max_bytes: AUTO_READ_AHEAD_BYTES,
                fill_cache: true,
            },
            None => return self.table.read_block(h),
        };
        let table = self.table.clone();
        if let Some(b) = table.cached(h) {
            return Ok(b);
        }
        let run = self.run_from(h, &ahead)?;
        let mut blocks = table.read_run(&run, ahead.fill_cache)?.into_iter();
        let first = blocks
            .next()
            .ok_or_else(|| Error::corruption(&table.path, h.offset, "empty read-ahead run"))?;
        for (hb, b) in run.iter().zip(std::iter::once(first.clone()).chain(blocks)) {
            if ahead.fill_cache {
                if let Some(c) = &table.cache {
                    c.insert(table.number, hb.offset, b.clone());
                }
            }
            if hb.offset != h.offset {
                self.prefetched.push_back((hb.offset, b));
            }
        }
        Ok(first)
    }

    /// `h` and the consecutive blocks after it that the scan may need,
    /// within `ahead.max_bytes`.
    fn run_from(&self, h: BlockHandle, ahead: &ReadAhead) -> Result<Vec<BlockHandle>> {
        let mut run = vec![h];
        let mut bytes = h.size + TRAILER_SIZE as u64;
        let mut idx = self.index.clone();
        loop {
            // The index key is the block's last key: if it is at or past the
            // bound, later blocks hold nothing the scan wants.
            if !idx.valid()
                || ahead
                    .upper
                    .as_deref()
                    .is_some_and(|u| user_key(idx.key()) >= u)
            {
                break;
            }
            idx.next();
            if !idx.valid() {
                break;
            }
            let Some(last) = run.last() else { break };
            let next = self.table.decode_handle(idx.value())?;
            let size = next.size + TRAILER_SIZE as u64;
            if next.offset != last.offset + last.size + TRAILER_SIZE as u64
                || bytes + size > ahead.max_bytes as u64
            {
                break;
            }
            bytes += size;
            run.push(next);
        }
        Ok(run)
    }
}
