//! lsmfs: a FUSE filesystem whose whole tree lives in its own LSM-tree
//! key-value engine.
//!
//! Layers: `engine` (the store, knows nothing of FUSE) → `store` (the small
//! interface the filesystem uses) → `fs` (POSIX semantics over keys, and the
//! thin `fuser` glue). `tools` holds the offline commands (check, inspect,
//! stats, compact), `data_dir` who may read the data directory, and `bench`
//! the db_bench-compatible benchmark.

pub mod bench;
pub mod cli_values;
pub mod data_dir;
pub mod engine;
pub mod fs;
pub mod log_file;
pub mod store;
pub mod tools;
