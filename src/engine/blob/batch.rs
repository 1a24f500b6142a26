//! Blob logs and write batches: diverting a batch's large values to the
//! blob log (the WAL record holds references), and resolving them again
//! when a WAL is replayed.

use super::cache::BlobCache;
use super::writer::BlobWriter;
use crate::engine::error::{Error, Result};
use crate::engine::write_batch::{BatchEntry, WriteBatch};

/// Whether `batch` holds a put of at least `min` bytes (0: none does).
pub fn has_large_values(batch: &WriteBatch, min: usize) -> bool {
    min > 0
        && batch
            .iter()
            .any(|e| matches!(e, Ok(BatchEntry::Put(_, v)) if v.len() >= min))
}

/// `batch` with each value of at least `min` bytes appended to `log` and
/// replaced by its reference (the WAL record of a blob-log write).
pub fn divert_large_values(
    batch: &WriteBatch,
    min: usize,
    log: &mut BlobWriter,
) -> Result<WriteBatch> {
    let bad = |m| Error::InvalidArgument(format!("write batch: {m}"));
    let mut large = Vec::new();
    for e in batch.iter() {
        if let BatchEntry::Put(k, v) = e.map_err(bad)? {
            if v.len() >= min {
                large.push((k, v));
            }
        }
    }
    let mut refs = log.add_all(&large)?.into_iter();
    let mut out = WriteBatch::new();
    for e in batch.iter() {
        match e.map_err(bad)? {
            BatchEntry::Put(k, v) if v.len() >= min => {
                let r = refs.next().ok_or_else(|| bad("a value lost".into()))?;
                out.put_blob_ref(k, &r.encode());
            }
            BatchEntry::Put(k, v) => out.put(k, v),
            BatchEntry::Delete(k) => out.delete(k),
            BatchEntry::DeleteRange(s, e) => out.delete_range(s, e),
            BatchEntry::BlobRef(k, r) => out.put_blob_ref(k, r),
        }
    }
    out.set_sequence(batch.sequence());
    Ok(out)
}

/// Why a WAL record's batch could not be replayed.
#[derive(Debug)]
pub enum ResolveError {
    /// The batch itself is malformed.
    Batch(String),
    /// A value it names in a blob log cannot be read.
    Blob(Error),
}

/// `batch` with every blob-log reference replaced by its value, read back
/// (CRC and key checked) through `cache`; the same batch if it has none.
pub fn resolve_blob_refs(
    batch: WriteBatch,
    cache: &BlobCache,
) -> std::result::Result<WriteBatch, ResolveError> {
    let mut any = false;
    for e in batch.iter() {
        any |= matches!(e.map_err(ResolveError::Batch)?, BatchEntry::BlobRef(..));
    }
    if !any {
        return Ok(batch);
    }
    let mut out = WriteBatch::new();
    for e in batch.iter() {
        match e.map_err(ResolveError::Batch)? {
            BatchEntry::Put(k, v) => out.put(k, v),
            BatchEntry::Delete(k) => out.delete(k),
            BatchEntry::DeleteRange(s, e) => out.delete_range(s, e),
            BatchEntry::BlobRef(k, r) => {
                let v = cache.get(k, r).map_err(ResolveError::Blob)?;
                out.put(k, &v);
            }
        }
    }
    out.set_sequence(batch.sequence());
    Ok(out)
}
