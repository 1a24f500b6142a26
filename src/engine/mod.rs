//! The embedded LSM-tree key-value store.
//!
//! Knows nothing of FUSE or files-as-a-filesystem: it stores byte keys and
//! values. Laid out by concern, as LevelDB's `db/` and `table/` are: each
//! folder is one part of the engine, each file in it one job, and each
//! on-disk format is written down in the module that owns it.
//!
//! | module | job |
//! | --- | --- |
//! | `db/` | the public handle: open and recovery, the write path, reads, flushes, compactions, idle reclaim, snapshots, file deletion, stats |
//! | `table/` | immutable sorted table files: format, blocks, bloom filter, builder, reader, the two-level iterator, merging, block and table caches |
//! | `version/` | the live file set: `Version`, level iterators, `VersionEdit` (the MANIFEST record), `VersionSet` (MANIFEST, CURRENT, recovery) |
//! | `compaction/` | leveled compaction: picking what to merge, merging it, blob GC thresholds |
//! | `log/` | the record log the WAL and the MANIFEST are written in |
//! | `env/` | the I/O seam; the real one; the crash-simulating one |
//! | `memtable` | the sorted in-memory table |
//! | `write_batch` | atomic groups of puts and deletes, the WAL payload |
//! | `range_del` | range tombstones: fragments, their block format |
//! | `blob` | blob files and blob logs: large values kept out of the tables |
//! | `snapshot` | persistent snapshots; the stripes snapshots cut the sequences into |
//! | `repair` | a new MANIFEST from the tables and WALs found, when the old one is lost |
//! | `dbformat`, `coding` | internal keys (user key + sequence + type); integer encodings |
//! | `iterator` | the forward iterator interface every source implements |
//! | `filename` | the names of the files in a data directory |
//! | `options`, `options_file` | tuning knobs; the tuning a directory was last opened with |
//! | `error` | the engine's errors: I/O, corruption, no space |

pub mod blob;
pub mod coding;
pub mod compaction;
pub mod db;
pub mod dbformat;
pub mod env;
pub mod error;
pub mod filename;
pub mod iterator;
pub mod log;
pub mod memtable;
pub mod options;
pub mod options_file;
pub mod range_del;
pub mod repair;
pub mod snapshot;
pub mod table;
pub mod version;
pub mod write_batch;

pub use db::{Db, DbStats, Snapshot};
pub use error::{Error, Result};
pub use options::{Options, SyncMode};
pub use snapshot::PersistentSnapshot;
pub use write_batch::WriteBatch;
