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
//! when its bytes plus its blob log's reach `write_buffer_size`. Its flush
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
//! deletion (see `version_edit`); a blob file no edit names is garbage at
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

use super::coding::{put_varint32, put_varint64, Decoder};
use super::env::{Env, RandomAccessFile, WritableFile};
use super::error::{Error, Result};
use super::filename::blob_file_name;
use super::log_format::mask_crc;
use super::write_batch::{BatchEntry, WriteBatch};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub const BLOB_MAGIC: u64 = 0x6c73_6d66_7362_6c31;
pub const HEADER_SIZE: u64 = 8;
pub const FOOTER_SIZE: u64 = 28;
/// Longest record a reference may name (a value is at most a few MiB).
const MAX_RECORD: u64 = 64 << 20;

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

fn record_crc(body: &[u8]) -> u32 {
    mask_crc(crc32fast::hash(body))
}

/// Writes one blob file.
pub struct BlobWriter {
    file: Box<dyn WritableFile>,
    number: u64,
    offset: u64,
    records: u64,
    record_bytes: u64,
    buf: Vec<u8>,
}

impl BlobWriter {
    pub fn create(env: &dyn Env, dir: &Path, number: u64) -> Result<BlobWriter> {
        let mut file = env.create_writable(&blob_file_name(dir, number))?;
        file.append(&BLOB_MAGIC.to_le_bytes())?;
        Ok(BlobWriter {
            file,
            number,
            offset: HEADER_SIZE,
            records: 0,
            record_bytes: 0,
            buf: Vec::new(),
        })
    }

    pub fn number(&self) -> u64 {
        self.number
    }

    /// Bytes written so far (header and records).
    pub fn len(&self) -> u64 {
        self.offset
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Hand what was added to the OS (it survives a kill -9).
    pub fn flush(&mut self) -> Result<()> {
        self.file.flush()
    }

    /// fsync what was added (it survives power loss).
    pub fn sync(&mut self) -> Result<()> {
        self.file.sync()
    }

    /// Start writing back what was flushed (see `WritableFile::start_writeback`).
    pub fn start_writeback(&mut self) {
        self.file.start_writeback()
    }

    pub fn add(&mut self, key: &[u8], value: &[u8]) -> Result<BlobRef> {
        self.buf.clear();
        self.buf.extend_from_slice(&[0; 4]);
        put_varint32(&mut self.buf, key.len() as u32);
        put_varint32(&mut self.buf, value.len() as u32);
        self.buf.extend_from_slice(key);
        self.buf.extend_from_slice(value);
        let crc = record_crc(&self.buf[4..]);
        self.buf[..4].copy_from_slice(&crc.to_le_bytes());
        self.file.append(&self.buf)?;
        let r = BlobRef {
            file: self.number,
            offset: self.offset,
            size: self.buf.len() as u64,
        };
        self.offset += r.size;
        self.records += 1;
        self.record_bytes += r.size;
        Ok(r)
    }

    /// Write the footer and fsync; the caller fsyncs the directory before
    /// naming the file in an edit.
    pub fn finish(mut self) -> Result<BlobFileMeta> {
        let mut f = Vec::with_capacity(FOOTER_SIZE as usize);
        f.extend_from_slice(&self.records.to_le_bytes());
        f.extend_from_slice(&self.record_bytes.to_le_bytes());
        let crc = record_crc(&f);
        f.extend_from_slice(&crc.to_le_bytes());
        f.extend_from_slice(&BLOB_MAGIC.to_le_bytes());
        self.file.append(&f)?;
        self.file.sync()?;
        Ok(BlobFileMeta {
            number: self.number,
            file_size: self.offset + FOOTER_SIZE,
            records: self.records,
            record_bytes: self.record_bytes,
            garbage_records: 0,
            garbage_bytes: 0,
        })
    }
}

/// One decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRecord {
    pub offset: u64,
    pub size: u64,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// Parse and verify the record in `raw` (exactly its bytes), read at `offset` of `path`.
fn parse_record(path: &Path, offset: u64, raw: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    let bad = |m: &str| Error::corruption(path, offset, format!("blob record: {m}"));
    if raw.len() < 6 {
        return Err(bad("shorter than its header"));
    }
    let stored = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
    if stored != record_crc(&raw[4..]) {
        return Err(bad("checksum mismatch"));
    }
    let mut d = Decoder::new(&raw[4..]);
    let (Some(kl), Some(vl)) = (d.varint32(), d.varint32()) else {
        return Err(bad("bad lengths"));
    };
    let rest = d.remaining();
    if rest.len() != kl as usize + vl as usize {
        return Err(bad("lengths disagree with the record size"));
    }
    Ok((rest[..kl as usize].to_vec(), rest[kl as usize..].to_vec()))
}

/// An open blob file.
pub struct BlobFile {
    file: Box<dyn RandomAccessFile>,
    path: PathBuf,
    /// Whether it ends in a footer (false: a blob log still being written).
    sealed: bool,
}

impl BlobFile {
    pub fn open(env: &dyn Env, path: PathBuf) -> Result<BlobFile> {
        let file = env.open_random_access(&path)?;
        Ok(BlobFile {
            file,
            path,
            sealed: true,
        })
    }

    /// Where records may end: before the footer, or the end of a growing file.
    fn records_end(&self) -> u64 {
        if self.sealed {
            self.file.len().saturating_sub(FOOTER_SIZE)
        } else {
            self.file.len()
        }
    }

    /// Whether `r` lies past what this handle saw of a growing file.
    fn behind(&self, r: &BlobRef) -> bool {
        !self.sealed && r.offset.saturating_add(r.size) > self.file.len()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn check_bounds(&self, offset: u64, size: u64) -> Result<()> {
        let end = offset.checked_add(size);
        if offset < HEADER_SIZE || size > MAX_RECORD || end.is_none_or(|e| e > self.records_end()) {
            return Err(Error::corruption(
                &self.path,
                offset,
                format!(
                    "blob reference of {size} bytes lies outside the file ({} bytes)",
                    self.file.len()
                ),
            ));
        }
        Ok(())
    }

    /// The value `r` names, checked against `key` (the key it was found under).
    pub fn read(&self, r: &BlobRef, key: &[u8]) -> Result<Vec<u8>> {
        self.check_bounds(r.offset, r.size)?;
        let raw = self.file.read_at(r.offset, r.size as usize)?;
        Self::value_of(&self.path, r, &raw, key)
    }

    fn value_of(path: &Path, r: &BlobRef, raw: &[u8], key: &[u8]) -> Result<Vec<u8>> {
        let (k, v) = parse_record(path, r.offset, raw)?;
        if k != key {
            return Err(Error::corruption(
                path,
                r.offset,
                "blob record belongs to another key",
            ));
        }
        Ok(v)
    }

    /// Every record, in file order, and the footer's counts checked.
    pub fn records(&self) -> Result<Vec<BlobRecord>> {
        let len = self.file.len();
        if len < HEADER_SIZE + FOOTER_SIZE {
            return Err(Error::corruption(
                &self.path,
                0,
                format!("{len} bytes is too short for a blob file"),
            ));
        }
        let data = self.file.read_at(0, len as usize)?;
        let magic = |at: usize| u64::from_le_bytes(data[at..at + 8].try_into().unwrap_or([0; 8]));
        if magic(0) != BLOB_MAGIC {
            return Err(Error::corruption(&self.path, 0, "bad blob file magic"));
        }
        let foot = (len - FOOTER_SIZE) as usize;
        if magic(foot + 20) != BLOB_MAGIC {
            return Err(Error::corruption(
                &self.path,
                foot as u64,
                "bad blob file footer (truncated?)",
            ));
        }
        let stored = u32::from_le_bytes(data[foot + 16..foot + 20].try_into().unwrap_or([0; 4]));
        if stored != record_crc(&data[foot..foot + 16]) {
            return Err(Error::corruption(
                &self.path,
                foot as u64,
                "blob file footer checksum mismatch",
            ));
        }
        let count = magic(foot);
        let bytes = magic(foot + 8);
        let mut out = Vec::new();
        let mut at = HEADER_SIZE as usize;
        while at < foot {
            if at + 4 > foot {
                return Err(Error::corruption(
                    &self.path,
                    at as u64,
                    "blob record: truncated header",
                ));
            }
            let mut d = Decoder::new(&data[at + 4..foot]);
            let (Some(kl), Some(vl)) = (d.varint32(), d.varint32()) else {
                return Err(Error::corruption(
                    &self.path,
                    at as u64,
                    "blob record: bad lengths",
                ));
            };
            let size = 4 + (foot - at - 4 - d.remaining().len()) + kl as usize + vl as usize;
            if at + size > foot {
                return Err(Error::corruption(
                    &self.path,
                    at as u64,
                    "blob record runs past the footer",
                ));
            }
            let (key, value) = parse_record(&self.path, at as u64, &data[at..at + size])?;
            out.push(BlobRecord {
                offset: at as u64,
                size: size as u64,
                key,
                value,
            });
            at += size;
        }
        let got: u64 = out.iter().map(|r| r.size).sum();
        if out.len() as u64 != count || got != bytes {
            return Err(Error::corruption(
                &self.path,
                foot as u64,
                format!(
                    "footer says {count} records of {bytes} bytes, the file holds {} of {got}",
                    out.len()
                ),
            ));
        }
        Ok(out)
    }
}

/// Open blob files, shared by readers.
pub struct BlobCache {
    env: Arc<dyn Env>,
    dir: PathBuf,
    files: Mutex<HashMap<u64, Arc<BlobFile>>>,
    /// Blob logs still being written (no footer yet).
    growing: Mutex<HashSet<u64>>,
    /// Read every file as a blob log (WAL replay: references name blob logs).
    all_growing: bool,
}

impl BlobCache {
    pub fn new(env: Arc<dyn Env>, dir: PathBuf) -> BlobCache {
        BlobCache {
            env,
            dir,
            files: Mutex::new(HashMap::new()),
            growing: Mutex::new(HashSet::new()),
            all_growing: false,
        }
    }

    /// A cache that reads every file as a blob log, for WAL replay: the
    /// references a WAL holds name blob logs, sealed or not.
    pub fn for_replay(env: Arc<dyn Env>, dir: PathBuf) -> BlobCache {
        BlobCache {
            all_growing: true,
            ..BlobCache::new(env, dir)
        }
    }

    /// The files read through this cache so far.
    pub fn opened(&self) -> HashSet<u64> {
        self.files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .copied()
            .collect()
    }

    /// Blob file `number` is a blob log being written: read it without a footer.
    pub fn begin_log(&self, number: u64) {
        self.growing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(number);
    }

    /// Blob log `number` has its footer: the next read opens it as sealed.
    pub fn seal_log(&self, number: u64) {
        self.growing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&number);
        self.evict(number);
    }

    pub fn file(&self, number: u64) -> Result<Arc<BlobFile>> {
        if let Some(f) = self
            .files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&number)
        {
            return Ok(f.clone());
        }
        self.open(number)
    }

    fn open(&self, number: u64) -> Result<Arc<BlobFile>> {
        let path = blob_file_name(&self.dir, number);
        let mut f = BlobFile::open(self.env.as_ref(), path.clone()).map_err(|e| match e {
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Error::corruption(&path, 0, "live blob file is missing")
            }
            other => other,
        })?;
        f.sealed = !self.all_growing
            && !self
                .growing
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&number);
        let f = Arc::new(f);
        self.files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(number, f.clone());
        Ok(f)
    }

    /// The file `r` names, opened again if it is a growing blob log that
    /// has grown past `r` since this cache last opened it.
    fn file_for(&self, r: &BlobRef) -> Result<Arc<BlobFile>> {
        let f = self.file(r.file)?;
        if f.behind(r) {
            return self.open(r.file);
        }
        Ok(f)
    }

    /// The value a `BlobIndex` entry of `key` names.
    pub fn get(&self, key: &[u8], reference: &[u8]) -> Result<Vec<u8>> {
        let r = decode_ref(&self.dir, reference)?;
        self.file_for(&r)?.read(&r, key)
    }

    pub fn evict(&self, number: u64) {
        self.files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&number);
    }
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

/// Reads the values of a scan: references into one blob file at rising
/// offsets (a flush writes them in key order) are served from one read of
/// up to `window` bytes instead of one `pread` each.
pub struct BlobPrefetcher {
    cache: Arc<BlobCache>,
    window: usize,
    file: u64,
    start: u64,
    buf: Vec<u8>,
}

impl BlobPrefetcher {
    pub fn new(cache: Arc<BlobCache>, window: usize) -> BlobPrefetcher {
        BlobPrefetcher {
            cache,
            window,
            file: 0,
            start: 0,
            buf: Vec::new(),
        }
    }

    pub fn get(&mut self, key: &[u8], reference: &[u8]) -> Result<Vec<u8>> {
        let r = decode_ref(&self.cache.dir, reference)?;
        let f = self.cache.file_for(&r)?;
        let inside = r.file == self.file
            && r.offset >= self.start
            && r.offset + r.size <= self.start + self.buf.len() as u64;
        if !inside {
            f.check_bounds(r.offset, r.size)?;
            let end = f.records_end().min(r.offset + self.window.max(1) as u64);
            let len = (end.max(r.offset + r.size) - r.offset) as usize;
            self.buf = f.file.read_at(r.offset, len)?;
            self.file = r.file;
            self.start = r.offset;
        }
        let at = (r.offset - self.start) as usize;
        BlobFile::value_of(&f.path, &r, &self.buf[at..at + r.size as usize], key)
    }
}

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
    let mut out = WriteBatch::new();
    for e in batch.iter() {
        match e.map_err(|m| Error::InvalidArgument(format!("write batch: {m}")))? {
            BatchEntry::Put(k, v) if v.len() >= min => {
                let r = log.add(k, v)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fault_env::FaultEnv;

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
