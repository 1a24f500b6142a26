//! The open blob files readers share (blob logs read as growing files),
//! and the prefetcher that serves a scan's references from one read.

use super::file::BlobFile;
use super::{decode_ref, BlobRef};
use crate::engine::env::Env;
use crate::engine::error::{Error, Result};
use crate::engine::filename::blob_file_name;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

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

    pub(super) fn open(&self, number: u64) -> Result<Arc<BlobFile>> {
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
    pub(super) fn file_for(&self, r: &BlobRef) -> Result<Arc<BlobFile>> {
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

/// Reads the values of a scan: references into one blob file at rising
/// offsets (a flush writes them in key order, a large file's chunks lie in
/// order in the blob log) are served from one read of up to `window` bytes
/// instead of one `pread` each. The first read takes the whole window; a
/// record that does not lie just past the one before drops the read-ahead
/// to nothing, and it doubles again while records follow each other: so
/// references in random order — a store filled in random key order,
/// relocated by GC — cost one record each, not a window each (a 1 MiB
/// window for every 4 KiB record made GC read 256 times what it moved).
pub struct BlobPrefetcher {
    cache: Arc<BlobCache>,
    window: usize,
    file: u64,
    start: u64,
    buf: Vec<u8>,
    /// Where the last record served ended (none yet), and the read-ahead now.
    last_end: Option<u64>,
    ahead: usize,
    bytes_read: u64,
}

/// The first read-ahead of a sequential run, and how far past the last
/// record the next may start and still count as sequential.
const FIRST_AHEAD: usize = 16 << 10;

impl BlobPrefetcher {
    pub fn new(cache: Arc<BlobCache>, window: usize) -> BlobPrefetcher {
        BlobPrefetcher {
            cache,
            window,
            file: 0,
            start: 0,
            buf: Vec::new(),
            last_end: None,
            ahead: window,
            bytes_read: 0,
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
            match self.last_end {
                None => {}
                Some(last)
                    if r.file == self.file
                        && r.offset >= last
                        && r.offset - last < FIRST_AHEAD as u64 =>
                {
                    self.ahead = (self.ahead * 2).clamp(FIRST_AHEAD.min(self.window), self.window);
                }
                Some(_) => self.ahead = 0,
            }
            let end = f.records_end().min(r.offset + self.ahead as u64);
            let len = (end.max(r.offset + r.size) - r.offset) as usize;
            self.buf = f.file.read_at(r.offset, len)?;
            self.bytes_read += len as u64;
            self.file = r.file;
            self.start = r.offset;
        }
        self.last_end = Some(r.offset + r.size);
        let at = (r.offset - self.start) as usize;
        BlobFile::value_of(&f.path, &r, &self.buf[at..at + r.size as usize], key)
    }

    /// Bytes read from blob files so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::blob::writer::BlobWriter;
    use crate::engine::env::fault::FaultEnv;
    use crate::engine::env::Env;
    use std::path::Path;

    /// In order, one window serves many records; in random order each
    /// miss reads the one record, never a window.
    #[test]
    fn read_ahead_follows_the_access_pattern() {
        let env: Arc<dyn Env> = Arc::new(FaultEnv::new());
        let dir = Path::new("/db");
        env.create_dir_all(dir).expect("dir");
        let mut w = BlobWriter::create(env.as_ref(), dir, 9).expect("create");
        let refs: Vec<_> = (0..300u32)
            .map(|i| {
                w.add(format!("k{i:03}").as_bytes(), &[i as u8; 4096])
                    .expect("add")
            })
            .collect();
        let meta = w.finish().expect("finish");
        let cache = Arc::new(BlobCache::new(env.clone(), dir.to_path_buf()));
        let window = 256 << 10;
        let get = |pf: &mut BlobPrefetcher, i: usize| {
            let v = pf
                .get(format!("k{i:03}").as_bytes(), &refs[i].encode())
                .expect("get");
            assert_eq!(v, vec![i as u8; 4096]);
        };
        let mut pf = BlobPrefetcher::new(cache.clone(), window);
        for i in 0..refs.len() {
            get(&mut pf, i);
        }
        // A window ends inside a record, which the next read starts at.
        assert!(
            pf.bytes_read() <= meta.file_size + meta.file_size / 10,
            "in order read {} bytes of a {}-byte file",
            pf.bytes_read(),
            meta.file_size
        );
        // Asked for no read-ahead, it reads each record alone.
        let mut pf = BlobPrefetcher::new(cache.clone(), 0);
        for i in 0..refs.len() {
            get(&mut pf, i);
        }
        let records: u64 = refs.iter().map(|r| r.size).sum();
        assert_eq!(pf.bytes_read(), records);
        let mut pf = BlobPrefetcher::new(cache, window);
        let mut i = 0usize;
        for _ in 0..refs.len() {
            i = (i + 137) % refs.len();
            get(&mut pf, i);
        }
        assert!(
            pf.bytes_read() <= records + window as u64,
            "random order read {} bytes for {records} of records",
            pf.bytes_read()
        );
    }
}
