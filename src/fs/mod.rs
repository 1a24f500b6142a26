//! The filesystem: POSIX semantics over the key schema, and the FUSE glue.

pub mod mount;
