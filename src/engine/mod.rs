//! The embedded LSM-tree key-value store.
//!
//! Knows nothing of FUSE or files-as-a-filesystem: it stores byte keys and
//! values. Module map (LevelDB's `db/` folder is the model):
//!
//! | module | job |
//! | --- | --- |
//! | `env`, `posix_env`, `fault_env` | the I/O seam; the real one; the crash-simulating one |
//! | `coding` | fixed-width and varint integer encodings |
//! | `dbformat` | internal keys: user key + sequence number + type |
//! | `log_format`, `log_writer`, `log_reader` | the record log used by the WAL and the MANIFEST |
//! | `write_batch` | atomic groups of puts and deletes, the WAL payload |
//! | `range_del` | range tombstones: fragments, their block format |
//! | `memtable` | the sorted in-memory table |
//! | `sstable` | immutable sorted table files, blocks, bloom filters |
//! | `blob` | blob files: large values kept out of the tables |
//! | `cache`, `table_cache` | LRU block cache, open-table cache |
//! | `snapshot` | persistent snapshots; the stripes snapshots cut the sequences into |
//! | `version_edit` | one change to the set of live files |
//! | `version_set` | Versions, the MANIFEST, CURRENT, recovery of the file set |
//! | `repair` | a new MANIFEST from the tables and WALs found, when the old one is lost |
//! | `compaction` | picking and running leveled compactions |
//! | `merge_iter`, `db_iter` | merged views over memtables and tables |
//! | `options`, `options_file` | tuning knobs; the tuning a directory was last opened with |
//! | `db` | the public handle tying it together |

pub mod blob;
pub mod cache;
pub mod coding;
pub mod compaction;
pub mod db;
pub mod db_iter;
pub mod dbformat;
pub mod env;
pub mod error;
pub mod fault_env;
pub mod filename;
pub mod iterator;
pub mod log_format;
pub mod log_reader;
pub mod log_writer;
pub mod memtable;
pub mod merge_iter;
pub mod options;
pub mod options_file;
pub mod posix_env;
pub mod range_del;
pub mod repair;
pub mod snapshot;
pub mod sstable;
pub mod table_cache;
pub mod version;
pub mod version_edit;
pub mod version_set;
pub mod write_batch;

pub use db::{Db, DbStats, Snapshot};
pub use error::{Error, Result};
pub use options::{Options, SyncMode};
pub use snapshot::PersistentSnapshot;
pub use write_batch::WriteBatch;
