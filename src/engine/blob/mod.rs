//! Blob files: large values kept out of the SSTables (WiscKey, RocksDB's
//! integrated BlobDB).
//!
//! ## Blob logs: large values written once
//!
//! A write batch's values of at least `Options::min_blob_size` bytes (a
//! whole 4 KiB file chunk) do not go to the WAL: the write leader appends
//! them to the *blob log* — the blob file of the current memtable — and the
//! WAL record carries only their references (write batch tag 3). The blob
//! log's records are the durable log of those bytes, so a byte of file data
//! is written once (WiscKey), not once to the WAL and again at flush.
//! Ordering, for the two contracts:
//! - kill -9: the blob records are handed to the OS (`flush`) before the
//!   WAL record naming them is, and both before the write returns;
//! - power loss: a sync fsyncs the blob log before the WAL, so a durable
//!   WAL record never names a blob record that is not; a switch of
//!   memtable fsyncs the old blob log before the old WAL.
//!
//! The memtable holds the references too; a read resolves them in the blob
//! log, which it opens *growing* (`BlobCache::begin_log`: no footer yet,
//! its length re-read when a reference lies past it). The memtable switches
//! when its bytes reach `write_buffer_size` or its blob log's reach
//! `BLOB_LOG_MEMTABLES` times that (in `db::write`, with why). Its flush
//! writes the blob log's footer, fsyncs it and names it in the flush's edit
//! beside the L0 table, with the records the flush dropped (overwritten or
//! deleted within the memtable) counted as garbage from the start: the
//! bytes are not rewritten.
//!
//! Until that edit, a blob log belongs to the WAL that references it, not
//! to the Version: open keeps blob files numbered from the oldest WAL it
//! replays on, replay reads each referenced value back (checking its CRC and
//! key) into the recovery memtable, whose flush writes them to a new blob
//! file, and the old blob log then goes with its WAL. A reference the replay
//! cannot read in the newest WAL is its torn tail (only a write that was
//! never synced can lose its blob bytes: every sync covered the blob log
//! first): replay stops there, as at a torn WAL record. In an older WAL,
//! synced whole at the switch, it is corruption.
//!
//! ## Blob files written at flush, GC
//!
//! A flush writes every value of at least `Options::min_blob_size` bytes
//! still in the memtable (a recovery memtable's) to a new blob file, in key
//! order, and the table gets a small *blob reference* in its place (an
//! entry of type `BlobIndex`). Compactions then move the references, not
//! the bytes. A blob file is fsync'd (and its directory) before the edit
//! naming it, like a table.
//!
//! Blob files are members of the Version, like tables: the MANIFEST records
//! their creation, their garbage (references compactions dropped) and their
//! deletion (see `version::edit`); a blob file no edit names is garbage at
//! open (a blob log as above aside); one any live Version names is never
//! deleted. When every record of a file is garbage, the compaction that
//! dropped the last reference deletes the file in its own edit.
//!
//! ```text
//! file    := header record* footer
//! header  := magic "lsmfsbl1" (fixed64 LE 0x6c73_6d66_7362_6c31)
//! record  := fixed32 masked crc32 of the rest | varint32 klen | varint32 vlen | key | value
//! footer  := fixed64 records | fixed64 record bytes | fixed32 masked crc of those 16 | magic
//! ref     := varint64 file number | varint64 record offset | varint64 record size
//! ```
//!
//! The record holds its user key, so a reader checks that a reference leads
//! to the key it was found under, and `check`/`inspect` can list a file on
//! its own. A damaged record is an error naming the file and offset.
//!
//! | module | job |
//! | --- | --- |
//! | this one | the format, the MANIFEST's view of a file, references |
//! | `writer` | writing a blob file or blob log |
//! | `file` | reading one: a record, or all of them |
//! | `cache` | open blob files shared by readers; a scan's prefetcher |
//! | `batch` | large values of a write batch into the blob log and back |

pub mod batch;
pub mod cache;
pub mod file;
pub mod writer;

pub use batch::{divert_large_values, has_large_values, resolve_blob_refs, ResolveError};
pub use cache::{BlobCache, BlobPrefetcher};
pub use file::{BlobFile, BlobRecord};
pub use writer::BlobWriter;

use crate::engine::coding::{put_varint64, Decoder};
use crate::engine::error::{Error, Result};
use crate::engine::log::format::mask_crc;
use std::path::Path;

pub const BLOB_MAGIC: u64 = 0x6c73_6d66_7362_6c31;
pub const HEADER_SIZE: u64 = 8;
pub const FOOTER_SIZE: u64 = 28;
/// Longest record a reference may name (a value is at most a few MiB).
pub(super) const MAX_RECORD: u64 = 64 << 20;

/// What the MANIFEST knows of one blob file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlobFileMeta {
    pub number: u64,
    pub file_size: u64,
    pub records: u64,
    pub record_bytes: u64,
    /// References compactions have dropped.
    pub garbage_records: u64,
    pub garbage_bytes: u64,
}

impl BlobFileMeta {
    pub fn live_bytes(&self) -> u64 {
        self.record_bytes.saturating_sub(self.garbage_bytes)
    }

    pub fn all_garbage(&self) -> bool {
        self.garbage_records >= self.records
    }
}

/// Where a value lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobRef {
    pub file: u64,
    pub offset: u64,
    pub size: u64,
}

impl BlobRef {
    pub fn encode(&self) -> Vec<u8> {
        let mut d = Vec::with_capacity(16);
        put_varint64(&mut d, self.file);
        put_varint64(&mut d, self.offset);
        put_varint64(&mut d, self.size);
        d
    }

    pub fn decode(v: &[u8]) -> Option<BlobRef> {
        let mut d = Decoder::new(v);
        let r = BlobRef {
            file: d.varint64()?,
            offset: d.varint64()?,
            size: d.varint64()?,
        };
        d.is_empty().then_some(r)
    }
}

pub(super) fn record_crc(body: &[u8]) -> u32 {
    record_crc_of(&[body])
}

/// `record_crc` of a body given in parts (their concatenation's CRC), so
/// a writer need not copy them together first.
pub(super) fn record_crc_of(parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for p in parts {
        h.update(p);
    }
    mask_crc(h.finalize())
}

pub fn decode_ref(dir: &Path, reference: &[u8]) -> Result<BlobRef> {
    BlobRef::decode(reference).ok_or_else(|| {
        Error::corruption(
            dir,
            0,
            format!("malformed blob reference of {} bytes", reference.len()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::env::fault::FaultEnv;
    use crate::engine::env::Env;
    use crate::engine::filename::blob_file_name;
    use std::sync::Arc;

    #[test]
    fn write_read_list_and_damage() {
        let env: Arc<dyn Env> = Arc::new(FaultEnv::new());
        let dir = Path::new("/db");
        env.create_dir_all(dir).unwrap();
        let mut w = BlobWriter::create(env.as_ref(), dir, 7).unwrap();
        let refs: Vec<BlobRef> = (0..50u32)
            .map(|i| {
                w.add(format!("k{i:03}").as_bytes(), &vec![i as u8; 4096])
                    .unwrap()
            })
            .collect();
        let meta = w.finish().unwrap();
        assert_eq!(meta.records, 50);
        assert_eq!(
            meta.file_size,
            env.file_size(&blob_file_name(dir, 7)).unwrap()
        );
        let cache = Arc::new(BlobCache::new(env.clone(), dir.to_path_buf()));
        let mut pf = BlobPrefetcher::new(cache.clone(), 64 << 10);
        for (i, r) in refs.iter().enumerate() {
            let k = format!("k{i:03}");
            assert_eq!(BlobRef::decode(&r.encode()), Some(*r));
            let v = cache.get(k.as_bytes(), &r.encode()).unwrap();
            assert_eq!(v, vec![i as u8; 4096]);
            assert_eq!(pf.get(k.as_bytes(), &r.encode()).unwrap(), v);
        }
        // The wrong key, a reference out of bounds, a malformed one.
        assert!(cache.get(b"other", &refs[0].encode()).is_err());
        let far = BlobRef {
            offset: meta.file_size,
            ..refs[0]
        };
        assert!(cache.get(b"k000", &far.encode()).is_err());
        assert!(cache.get(b"k000", &[0xff]).is_err());
        let f = cache.file(7).unwrap();
        let recs = f.records().unwrap();
        assert_eq!(recs.len(), 50);
        assert_eq!(recs[3].key, b"k003");
        // Flip a byte inside record 10: its read names the file and offset.
        let p = blob_file_name(dir, 7);
        let mut raw = env.read_all(&p).unwrap();
        raw[refs[10].offset as usize + 20] ^= 1;
        let mut wf = env.create_writable(&p).unwrap();
        wf.append(&raw).unwrap();
        wf.sync().unwrap();
        let cache = BlobCache::new(env.clone(), dir.to_path_buf());
        let e = cache.get(b"k010", &refs[10].encode()).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("000007.blob") && msg.contains(&refs[10].offset.to_string()),
            "{msg}"
        );
        assert!(cache.file(7).unwrap().records().is_err());
        // Truncated or random bytes never panic.
        for cut in [0usize, 5, 9, 100, raw.len() - 3] {
            let mut wf = env.create_writable(&p).unwrap();
            wf.append(&raw[..cut]).unwrap();
            wf.sync().unwrap();
            let c = BlobCache::new(env.clone(), dir.to_path_buf());
            let _ = c.file(7).and_then(|f| f.records());
            let _ = c.get(b"k001", &refs[1].encode());
        }
    }
}
