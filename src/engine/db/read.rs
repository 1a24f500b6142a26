//! The read path: point lookups through the memtables and the Version, and
//! merged iterators and scans (with read-ahead) over them.

use super::iter::DbIterator;
use super::{add, lock, Db, Shared, Snapshot, SCAN_READ_AHEAD};
use crate::engine::blob::BlobPrefetcher;
use crate::engine::dbformat::{lookup_key, SequenceNumber};
use crate::engine::error::Result;
use crate::engine::iterator::InternalIterator;
use crate::engine::memtable::MemGet;
use crate::engine::range_del::Fragments;
use crate::engine::table::merger::MergingIterator;
use crate::engine::table::ReadAhead;
use crate::engine::version::{TableGet, Version};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The sources of a merged view (see `Shared::sources`).
pub(super) struct Sources {
    pub(super) children: Vec<Box<dyn InternalIterator>>,
    pub(super) ranges: Vec<Arc<Fragments>>,
    pub(super) version: Arc<Version>,
}

impl Db {
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let seq = self.handle.shared.visible_seq.load(Ordering::Acquire);
        self.handle.shared.get(key, seq)
    }

    pub fn get_at(&self, key: &[u8], snap: &Snapshot) -> Result<Option<Vec<u8>>> {
        self.handle.shared.get(key, snap.sequence)
    }

    /// A merged iterator over the whole key space, as of `snap` or now.
    pub fn iter(&self, snap: Option<&Snapshot>) -> Result<DbIterator> {
        self.handle.shared.iter(snap, None, (&[], None))
    }

    /// Up to `limit` live entries with `start <= key < end` (`end` None = unbounded).
    pub fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        snap: Option<&Snapshot>,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        self.scan_visit(start, end, limit, snap, &mut |k, v| {
            out.push((k.to_vec(), v.to_vec()))
        })?;
        Ok(out)
    }

    /// `scan` that hands each entry to `f` instead of copying it.
    pub fn scan_visit(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        snap: Option<&Snapshot>,
        f: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<()> {
        // A scan for at most 4 keys reads block by block through the
        // block cache; a longer one reads the blocks up to `end` ahead, up to
        // 1 MiB at a time, past the cache (what it reads is file data or a
        // directory listing, which the kernel caches above us, and it would
        // evict the metadata blocks point lookups need).
        let ahead = (limit > 4).then(|| ReadAhead {
            upper: end.map(Arc::from),
            max_bytes: SCAN_READ_AHEAD,
            fill_cache: false,
        });
        let mut it = self
            .handle
            .shared
            .iter(snap, ahead.as_ref(), (start, end))?;
        it.seek(start);
        let mut n = 0;
        while it.valid() && n < limit {
            if end.is_some_and(|e| it.key() >= e) {
                break;
            }
            f(it.key(), it.value());
            n += 1;
            it.next();
        }
        it.status()
    }
}

impl Shared {
    pub(super) fn get(&self, key: &[u8], seq: SequenceNumber) -> Result<Option<Vec<u8>>> {
        add(&self.counters.gets, 1);
        let (mem, imm, version) = {
            let st = lock(&self.state);
            (st.mem.clone(), st.imm.clone(), st.current.clone())
        };
        // The newest range deletion over the key met so far: an entry
        // older than it is deleted.
        let mut cover = 0;
        for m in std::iter::once(&mem).chain(imm.iter()) {
            cover = cover.max(m.range_del_cover(key, seq));
            match m.get(key, seq) {
                Some((s, _)) if s < cover => return Ok(None),
                Some((_, MemGet::Value(v))) => return Ok(Some(v)),
                Some((_, MemGet::Blob(r))) => return self.blobs.get(key, &r).map(Some),
                Some((_, MemGet::Deleted)) => return Ok(None),
                None => {}
            }
        }
        match version.get(&self.tables, &lookup_key(key, seq), &mut cover)? {
            TableGet::Found(v) => Ok(Some(v)),
            TableGet::Blob(r) => self.blobs.get(key, &r).map(Some),
            TableGet::Deleted | TableGet::NotFound => Ok(None),
        }
    }

    /// Every source of a merged view, newest first — memtables, then the
    /// tables read ahead as `ahead` says — with the range deletions of
    /// those meeting `range`, and the Version the tables belong to.
    pub(super) fn sources(
        &self,
        ahead: Option<&ReadAhead>,
        range: (&[u8], Option<&[u8]>),
    ) -> Result<Sources> {
        let (mem, imm, version) = {
            let st = lock(&self.state);
            (st.mem.clone(), st.imm.clone(), st.current.clone())
        };
        let mut children: Vec<Box<dyn InternalIterator>> = vec![Box::new(mem.iter())];
        let mut ranges: Vec<_> = mem.range_deletions().into_iter().collect();
        if let Some(imm) = &imm {
            children.push(Box::new(imm.iter()));
            ranges.extend(imm.range_deletions());
        }
        for f in version.files_overlapping(range.0, range.1) {
            let t = self.tables.get_table(f.number, f.file_size)?;
            if !t.range_deletions().is_empty() {
                ranges.push(t.range_deletions().clone());
            }
        }
        children.extend(version.iterators(&self.tables, ahead)?);
        Ok(Sources {
            children,
            ranges,
            version,
        })
    }

    /// A merged iterator; `range` bounds the keys it will be asked for
    /// (only range deletions meeting it are gathered).
    pub(super) fn iter(
        &self,
        snap: Option<&Snapshot>,
        ahead: Option<&ReadAhead>,
        range: (&[u8], Option<&[u8]>),
    ) -> Result<DbIterator> {
        let seq = snap.map_or_else(|| self.visible_seq.load(Ordering::Acquire), |s| s.sequence);
        let s = self.sources(ahead, range)?;
        let window = ahead.map_or(0, |a| a.max_bytes);
        Ok(DbIterator::new(
            MergingIterator::new(s.children),
            seq,
            s.version,
            None,
            s.ranges,
            BlobPrefetcher::new(self.blobs.clone(), window),
        ))
    }
}
