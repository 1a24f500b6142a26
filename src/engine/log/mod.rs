//! The record log: the file format the WAL and the MANIFEST are written in
//! (LevelDB's log format: 32 KiB blocks of checksummed fragments).
//!
//! | module | job |
//! | --- | --- |
//! | `format` | the bytes: blocks, fragment headers, checksums |
//! | `writer` | appending records |
//! | `reader` | reading them back, telling a torn tail from corruption |

pub mod format;
pub mod reader;
pub mod writer;

pub use reader::{LogReader, TornTail};
pub use writer::LogWriter;
