//! The internal iterator interface shared by memtables, blocks, tables and
//! the merging iterator.
//!
//! Forward-only by design: the filesystem reads directories and files in key
//! order and never needs to step backwards, and a forward-only merge is far
//! simpler to get right. Keys are internal keys (see `dbformat`).
//! An iterator that hits an error becomes invalid and reports it from
//! `status()`; callers must check `status()` when `valid()` turns false.

use super::error::Result;

pub trait InternalIterator: Send {
    fn valid(&self) -> bool;
    fn seek_to_first(&mut self);
    /// Position at the first entry whose internal key is >= `target`.
    fn seek(&mut self, target: &[u8]);
    fn next(&mut self);
    /// Current internal key. Only meaningful while `valid()`.
    fn key(&self) -> &[u8];
    /// Current value. Only meaningful while `valid()`.
    fn value(&self) -> &[u8];
    fn status(&self) -> Result<()>;
}
