//! SSTables: immutable sorted files of internal keys (LevelDB's table
//! format, without compression).
//!
//! ```text
//! [data block 0][trailer] ... [data block n][trailer]
//! [filter block][trailer] [properties block][trailer]
//! [metaindex block][trailer] [index block][trailer]
//! [footer: 48 bytes]
//! ```
//!
//! - **Block**: entries `varint32 shared | varint32 non_shared | varint32
//!   value_len | key delta | value`, keys prefix-compressed against the
//!   previous entry, with a full key every 16 entries (a *restart point*);
//!   then the restart offsets (fixed32 each) and their count (fixed32).
//!   Data blocks close at ~`block_size` (4 KiB) bytes.
//! - **Trailer** (5 bytes) after every block: a type byte (0 = raw) and the
//!   masked CRC32 of contents + type. Every read verifies it.
//! - **Filter**: one bloom filter over the table's *user* keys (≈10 bits a
//!   key, k = bits·ln2 probes by double hashing; last byte holds k). One
//!   filter per table rather than per 2 KiB of data: a point lookup touches
//!   one table block at most, so the per-block split buys nothing here.
//! - **Properties**: varints: entries, data blocks, raw key bytes, raw value
//!   bytes, smallest seq, largest seq (then, in version 2, range deletions).
//! - **Range deletions** (version 2, only in tables that have some): the
//!   table's range tombstones, encoded as `range_del` says. They are not in
//!   the data blocks; the table's smallest and largest keys cover them.
//! - **Metaindex**: a block mapping `"filter"`, `"properties"` (and
//!   `"rangedel"`) to handles; **index**: one entry per data block, the
//!   block's last key → its handle (`varint64 offset, varint64 size`).
//! - **Footer**: metaindex handle, index handle, zero padding to 40 bytes,
//!   then the 8-byte magic little-endian: `0x6c736d6673737431` ("lsmfsst1",
//!   version 1) or, for a table holding range deletions, `0x6c736d6673737432`
//!   (version 2). Both are read; an older build refuses a version-2 table
//!   instead of reading it without its tombstones (which would bring
//!   deleted keys back).
//!
//! Reading: a point lookup checks the filter, then reads one data block
//! through the block cache (`reader`); scans read runs of blocks ahead
//! (`iterator`).
//!
//! | module | job |
//! | --- | --- |
//! | `format` | block handles, trailers, the footer |
//! | `block` | the block format: building, parsing, iterating |
//! | `filter` | the bloom filter |
//! | `builder` | writing a table |
//! | `reader` | opening a table, point lookups, verification |
//! | `two_level` | the index → pieces iterator tables and levels share |
//! | `iterator` | a table's iterator, with read-ahead |
//! | `merger` | the merged view over several sorted iterators |
//! | `block_cache`, `table_cache` | LRU block cache, open-table cache |

pub mod block;
pub mod block_cache;
pub mod builder;
pub mod filter;
pub mod format;
pub mod iterator;
pub mod merger;
pub mod reader;
pub mod table_cache;
pub mod two_level;

#[cfg(test)]
mod tests;

pub use block::{Block, BlockIter};
pub use builder::{widen_bounds, TableBuilder, TableProperties, TableSummary};
pub use format::{BlockHandle, FOOTER_SIZE, MAGIC, MAGIC_V2};
pub use iterator::{ReadAhead, TableIterator};
pub use reader::Table;
pub use table_cache::TableCache;

use crate::engine::options::Options;

/// How tables are written.
#[derive(Debug, Clone)]
pub struct TableOptions {
    pub block_size: usize,
    pub restart_interval: usize,
    pub bloom_bits_per_key: usize,
}

impl TableOptions {
    pub fn from_options(o: &Options) -> TableOptions {
        TableOptions {
            block_size: o.block_size.max(64),
            restart_interval: o.block_restart_interval.max(1),
            bloom_bits_per_key: o.bloom_bits_per_key,
        }
    }
}
