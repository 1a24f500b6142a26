//! File contents and attributes: read, write, setattr (chmod, chown,
//! utimens, truncate), fallocate, lseek(SEEK_DATA/SEEK_HOLE).
//!
//! A file of up to `INLINE_MAX` bytes keeps its data in its inode record
//! (one key per small file). A bigger file lives in `CHUNK_SIZE` chunks
//! `C ino index`; a missing chunk, or the part past a short chunk's end,
//! reads as zeros, so sparse files cost nothing for their holes, and the
//! chunk index (u64) allows files far beyond any disk. A write that covers
//! part of a chunk rewrites that chunk; a write that covers a whole
//! `EXTENT_SIZE` slot stores it as one extent (the rules are in `schema`).
//! Bytes past the end of file are never kept: a truncate down cuts the
//! value holding the new end and deletes the rest, so a later extension
//! reads zeros there.

use super::core::MAX_INLINE_DELETES;
use super::core::{chunk_range_end, chunks_for, io_errno, now_ns, Caller, FsCore, FsResult};
use super::inode::{Attr, INLINE_MAX, KIND_FILE};
use super::schema::*;
use crate::store::Batch;
use std::collections::HashMap;

/// Largest file size (what `write` and `truncate` accept): 2^50 bytes.
pub const MAX_FILE_SIZE: u64 = 1 << 50;

const CS: usize = CHUNK_SIZE as usize;

/// The first chunk of the extent slot holding chunk `idx`.
fn slot_start(idx: u64) -> u64 {
    idx - idx % EXTENT_CHUNKS
}

/// What a setattr does with one timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSet {
    Now,
    At(i64),
}

/// Changes requested by setattr.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<TimeSet>,
    pub mtime: Option<TimeSet>,
}

/// Clear setuid, and setgid if group-executable (without group-exec the
/// bit means mandatory locking and stays), as the kernel does.
fn kill_suid_sgid(a: &mut Attr) {
    a.mode &= !libc::S_ISUID;
    if a.mode & libc::S_IXGRP != 0 {
        a.mode &= !libc::S_ISGID;
    }
}

impl FsCore {
    pub fn setattr(&self, c: Caller, ino: u64, s: SetAttr) -> FsResult<Attr> {
        self.writable()?;
        let _g = self.lock_inodes(&[ino]);
        let mut a = self.getattr(ino)?;
        let t = now_ns();
        let owner = c.uid == 0 || c.uid == a.uid;
        let mut b = Batch::new();
        if let Some(m) = s.mode {
            if !owner {
                return Err(libc::EPERM);
            }
            a.mode = (a.mode & libc::S_IFMT) | (m & 0o7777);
            self.chmod_acl(&a, &mut b)?;
        }
        if s.uid.is_some() || s.gid.is_some() {
            if let Some(u) = s.uid {
                if u != a.uid && c.uid != 0 {
                    return Err(libc::EPERM);
                }
                a.uid = u;
            }
            if let Some(g) = s.gid {
                if g != a.gid && !owner {
                    return Err(libc::EPERM);
                }
                a.gid = g;
            }
            // chown of anything but a directory drops setuid/setgid, even
            // by root (the kernel leaves this to us: HANDLE_KILLPRIV_V2).
            if !a.is_dir() {
                kill_suid_sgid(&mut a);
            }
        }
        for (req, is_atime) in [(s.atime, true), (s.mtime, false)] {
            let Some(ts) = req else { continue };
            let v = match ts {
                TimeSet::Now => t,
                TimeSet::At(v) if owner => v,
                TimeSet::At(_) => return Err(libc::EPERM),
            };
            if is_atime {
                a.atime = v;
            } else {
                a.mtime = v;
            }
        }
        if let Some(size) = s.size {
            if a.is_dir() {
                return Err(libc::EISDIR);
            }
            if a.kind != KIND_FILE {
                return Err(libc::EINVAL);
            }
            if size > MAX_FILE_SIZE {
                return Err(libc::EFBIG);
            }
            self.truncate_into(&mut a, size, &mut b)?;
            a.mtime = t;
            if c.uid != 0 {
                kill_suid_sgid(&mut a);
            }
        }
        a.ctime = t;
        Self::put_attr(&mut b, &a);
        self.commit(b)?;
        Ok(a)
    }

    /// Set the size in `a` and add the chunk changes to `b`: the chunks
    /// past the new end go one deletion each if there are few, else with
    /// one range deletion (then the stored-chunk count is bounded by the
    /// chunks that remain below the end rather than counted).
    pub(super) fn truncate_into(&self, a: &mut Attr, size: u64, b: &mut Batch) -> FsResult<()> {
        if let Some(data) = a.inline.as_mut() {
            if size as usize <= INLINE_MAX {
                data.resize(size as usize, 0);
                a.size = size;
                return Ok(());
            }
            let data = std::mem::take(data);
            a.inline = None;
            if !data.is_empty() {
                b.put(chunk_key(a.ino, 0), data);
                a.chunks = 1;
            }
            a.size = size;
            return Ok(());
        }
        let old = a.size;
        a.size = size;
        if size >= old {
            return Ok(());
        }
        let keep = chunks_for(size);
        // Cut the value holding the new end: the extent spanning it, or
        // its chunk.
        let idx = size / CHUNK_SIZE;
        let cut = match self.slot_extent(a, old, slot_start(idx))? {
            Some(e) => Some((slot_start(idx), e)),
            None if !size.is_multiple_of(CHUNK_SIZE) => self
                .store
                .get(&chunk_key(a.ino, idx))
                .map_err(io_errno)?
                .map(|c| (idx, c)),
            None => None,
        };
        if let Some((at, mut v)) = cut {
            let len = (size - at * CHUNK_SIZE) as usize;
            // (len 0: the value starts at the new end, and goes below.)
            if len > 0 && v.len() > len {
                a.chunks = a.chunks.saturating_sub(units(v.len()) - units(len));
                v.truncate(len);
                b.put(chunk_key(a.ino, at), v);
            }
        }
        if size == 0 {
            a.extents = false;
        }
        // Few keys past the end: delete them one at a time (counted); many:
        // one range deletion. Finding out reads the values, so a file with
        // extents (a few hundred of which are tens of MiB) is not asked
        // when its size spans many chunks.
        let doomed = if a.extents && chunks_for(old) - keep > MAX_INLINE_DELETES as u64 {
            None
        } else {
            Some(
                self.store
                    .scan(
                        &chunk_key(a.ino, keep),
                        &chunk_range_end(a.ino),
                        MAX_INLINE_DELETES + 1,
                    )
                    .map_err(io_errno)?,
            )
        };
        match doomed {
            Some(doomed) if doomed.len() <= MAX_INLINE_DELETES => {
                let gone: u64 = doomed.iter().map(|(_, v)| units(v.len())).sum();
                a.chunks = a.chunks.saturating_sub(gone).min(keep);
                for (k, _) in doomed {
                    b.delete(k);
                }
            }
            _ => {
                a.chunks = a.chunks.min(keep);
                b.delete_range(chunk_key(a.ino, keep), chunk_range_end(a.ino));
            }
        }
        Ok(())
    }

    /// The extent in the slot starting at chunk `first` of file `a` (of
    /// `size` bytes), if the slot holds one: only a file that has had an
    /// extent, and whose slot holds more than a chunk, can.
    fn slot_extent(&self, a: &Attr, size: u64, first: u64) -> FsResult<Option<Vec<u8>>> {
        if !a.extents || size.saturating_sub(first * CHUNK_SIZE) <= CHUNK_SIZE {
            return Ok(None);
        }
        let v = self.store.get(&chunk_key(a.ino, first)).map_err(io_errno)?;
        Ok(v.filter(|v| v.len() > CS))
    }

    pub fn read(&self, ino: u64, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        let a = self.getattr(ino)?;
        if a.is_dir() {
            return Err(libc::EISDIR);
        }
        if offset >= a.size || size == 0 {
            return Ok(Vec::new());
        }
        let end = a.size.min(offset.saturating_add(size as u64));
        if let Some(d) = &a.inline {
            return Ok(d
                .get(offset as usize..end as usize)
                .map(<[u8]>::to_vec)
                .unwrap_or_default());
        }
        let mut out = vec![0u8; (end - offset) as usize];
        let first = offset / CHUNK_SIZE;
        let last = (end - 1) / CHUNK_SIZE;
        // Copy the part of the value at chunk `idx` that overlaps the read.
        let mut place = |idx: u64, v: &[u8]| {
            let cstart = idx * CHUNK_SIZE;
            let from = offset.max(cstart);
            let to = end.min(cstart + (v.len() as u64).min(value_max(idx)));
            if from < to {
                let src = &v[(from - cstart) as usize..(to - cstart) as usize];
                let dst = (from - offset) as usize;
                out[dst..dst + src.len()].copy_from_slice(src);
            }
        };
        // A point get (bloom filter, one block) is far cheaper than a merged
        // range scan, so reads of a few chunks use gets: the slot's first
        // chunk first when it may be an extent that covers the rest.
        if last - first < 4 {
            let mut idx = first;
            while idx <= last {
                let s = slot_start(idx);
                if a.extents && s < idx {
                    if let Some(e) = self.slot_extent(&a, a.size, s)? {
                        place(s, &e);
                        idx = s + EXTENT_CHUNKS;
                        continue;
                    }
                }
                if let Some(c) = self.store.get(&chunk_key(ino, idx)).map_err(io_errno)? {
                    place(idx, &c);
                    if c.len() > CS {
                        idx = s + EXTENT_CHUNKS;
                        continue;
                    }
                }
                idx += 1;
            }
        } else {
            let from = if a.extents { slot_start(first) } else { first };
            self.store
                .scan_visit(
                    &chunk_key(ino, from),
                    &chunk_key(ino, last + 1),
                    (last - from + 1) as usize,
                    &mut |k, v| {
                        if let Some(Key::Chunk(_, idx)) = parse_key(k) {
                            place(idx, v);
                        }
                    },
                )
                .map_err(io_errno)?;
        }
        Ok(out)
    }

    /// Write `data` at `offset` (or at the end with `append`). A non-root
    /// caller's write clears setuid/setgid.
    pub fn write(
        &self,
        c: Caller,
        ino: u64,
        offset: u64,
        data: &[u8],
        append: bool,
    ) -> FsResult<Attr> {
        self.write_ext(c, ino, offset, data, append, c.uid != 0)
    }

    /// Chunk `idx` of a file of `size` bytes, if stored (past the end
    /// nothing is, so that is not read; before it, a hole is a missing key).
    fn stored_chunk(&self, ino: u64, idx: u64, size: u64) -> FsResult<Option<Vec<u8>>> {
        if idx * CHUNK_SIZE >= size {
            return Ok(None);
        }
        self.store.get(&chunk_key(ino, idx)).map_err(io_errno)
    }

    /// Chunk `idx` of file `a` after a write of `data` at `offset` that
    /// overlaps it: the write's bytes over what the chunk held (taken from
    /// `pending` if this write already built it), zeros between. Counts a
    /// chunk that was a hole in `added`.
    fn patched_chunk(
        &self,
        a: &Attr,
        idx: u64,
        offset: u64,
        data: &[u8],
        pending: &mut HashMap<u64, Vec<u8>>,
        added: &mut u64,
    ) -> FsResult<Vec<u8>> {
        let end = offset + data.len() as u64;
        let cstart = idx * CHUNK_SIZE;
        let from = offset.max(cstart);
        let to = end.min(cstart + CHUNK_SIZE);
        let src = &data[(from - offset) as usize..(to - offset) as usize];
        let within = (from - cstart) as usize;
        if within == 0 && src.len() == CS {
            if pending.remove(&idx).is_none() && self.stored_chunk(a.ino, idx, a.size)?.is_none() {
                *added += 1;
            }
            return Ok(src.to_vec());
        }
        let mut cur = match pending.remove(&idx) {
            Some(c) => c,
            None => match self.stored_chunk(a.ino, idx, a.size)? {
                Some(c) => c,
                None => {
                    *added += 1;
                    Vec::new()
                }
            },
        };
        // Never resurrect bytes past the old end of file.
        let valid = a.size.saturating_sub(cstart).min(CHUNK_SIZE) as usize;
        cur.truncate(valid);
        if cur.len() < within + src.len() {
            cur.resize(within + src.len(), 0);
        }
        cur[within..within + src.len()].copy_from_slice(src);
        Ok(cur)
    }

    /// Before an extent is written over the whole slot starting at chunk
    /// `first`: delete the slot's other keys into `b` and drop what this
    /// write had built there; the chunks they counted.
    fn replace_slot(
        &self,
        a: &Attr,
        first: u64,
        pending: &mut HashMap<u64, Vec<u8>>,
        b: &mut Batch,
    ) -> FsResult<u64> {
        let mut removed = 0;
        if let Some(old) = pending.remove(&first) {
            removed += units(old.len());
        }
        // Past the old end of file nothing is stored.
        if a.size <= first * CHUNK_SIZE {
            return Ok(removed);
        }
        let old = self
            .store
            .scan(
                &chunk_key(a.ino, first),
                &chunk_key(a.ino, first + EXTENT_CHUNKS),
                EXTENT_CHUNKS as usize,
            )
            .map_err(io_errno)?;
        let extent_key = chunk_key(a.ino, first);
        for (k, v) in old {
            removed += units(v.len());
            if k != extent_key {
                b.delete(k);
            }
        }
        Ok(removed)
    }

    /// `write`, with the kernel saying whether to clear setuid/setgid
    /// (FUSE_WRITE_KILL_SUIDGID).
    pub fn write_ext(
        &self,
        _c: Caller,
        ino: u64,
        offset: u64,
        data: &[u8],
        append: bool,
        kill_priv: bool,
    ) -> FsResult<Attr> {
        self.writable()?;
        self.room_for(data.len() as u64)?;
        let _g = self.lock_inodes(&[ino]);
        let mut a = self.getattr(ino)?;
        if a.is_dir() {
            return Err(libc::EISDIR);
        }
        if a.kind != KIND_FILE {
            return Err(libc::EINVAL);
        }
        let offset = if append { a.size } else { offset };
        let end = offset.checked_add(data.len() as u64).ok_or(libc::EFBIG)?;
        if end > MAX_FILE_SIZE {
            return Err(libc::EFBIG);
        }
        let mut b = Batch::new();
        // Chunks already built in this write (the old inline data).
        let mut pending: HashMap<u64, Vec<u8>> = HashMap::new();
        if let Some(buf) = a.inline.as_mut() {
            if end as usize <= INLINE_MAX {
                if buf.len() < end as usize {
                    buf.resize(end as usize, 0);
                }
                buf[offset as usize..end as usize].copy_from_slice(data);
                a.size = buf.len() as u64;
            } else {
                let old = std::mem::take(buf);
                a.inline = None;
                if !old.is_empty() {
                    pending.insert(0, old);
                }
            }
        }
        // Chunks this write adds and removes (for st_blocks): every chunk
        // past the old end is new; one before it may be a hole.
        let mut added = pending.len() as u64;
        let mut removed = 0u64;
        if a.inline.is_none() && !data.is_empty() {
            for slot in offset / EXTENT_SIZE..=(end - 1) / EXTENT_SIZE {
                let sstart = slot * EXTENT_SIZE;
                let (from, to) = (offset.max(sstart), end.min(sstart + EXTENT_SIZE));
                let first = slot * EXTENT_CHUNKS;
                if from == sstart && to == sstart + EXTENT_SIZE {
                    let src = &data[(from - offset) as usize..(to - offset) as usize];
                    removed += self.replace_slot(&a, first, &mut pending, &mut b)?;
                    b.put(chunk_key(ino, first), src.to_vec());
                    added += EXTENT_CHUNKS;
                    a.extents = true;
                    continue;
                }
                // Part of a slot: page chunks, an extent there split first
                // (its chunks count as they did).
                if let Some(e) = self.slot_extent(&a, a.size, first)? {
                    for (j, piece) in e.chunks(CS).enumerate() {
                        pending.insert(first + j as u64, piece.to_vec());
                    }
                }
                for idx in from / CHUNK_SIZE..=(to - 1) / CHUNK_SIZE {
                    let chunk =
                        self.patched_chunk(&a, idx, offset, data, &mut pending, &mut added)?;
                    b.put(chunk_key(ino, idx), chunk);
                }
            }
        }
        for (idx, c) in pending {
            b.put(chunk_key(ino, idx), c);
        }
        a.chunks = (a.chunks + added).saturating_sub(removed);
        a.size = a.size.max(end);
        let t = now_ns();
        a.mtime = t;
        a.ctime = t;
        if kill_priv && a.mode & (libc::S_ISUID | libc::S_ISGID) != 0 {
            kill_suid_sgid(&mut a);
        }
        Self::put_attr(&mut b, &a);
        self.commit(b)?;
        Ok(a)
    }

    /// fallocate(2). Mode 0 extends the size (holes read as zeros, so no
    /// data is written: space is not reserved, the store has no notion of
    /// it); KEEP_SIZE alone changes nothing; PUNCH_HOLE (with KEEP_SIZE)
    /// and ZERO_RANGE zero the range, deleting the chunks it covers whole.
    /// A punch over more chunks than fit in one batch is applied in several
    /// (each leaves some of the range zeroed: a crash can show it partly
    /// done). Other modes: EOPNOTSUPP.
    pub fn fallocate(&self, ino: u64, offset: u64, length: u64, mode: i32) -> FsResult<()> {
        let keep = mode & libc::FALLOC_FL_KEEP_SIZE != 0;
        let punch = mode & libc::FALLOC_FL_PUNCH_HOLE != 0;
        let zero = mode & libc::FALLOC_FL_ZERO_RANGE != 0;
        let known =
            libc::FALLOC_FL_KEEP_SIZE | libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_ZERO_RANGE;
        if mode & !known != 0 || (punch && (zero || !keep)) {
            return Err(libc::EOPNOTSUPP);
        }
        if length == 0 {
            return Err(libc::EINVAL);
        }
        self.writable()?;
        if !punch && !zero {
            // Nothing is allocated ahead (files are sparse), but a caller
            // asking for room must hear ENOSPC when the disk has none.
            self.room_for(length)?;
        }
        let _g = self.lock_inodes(&[ino]);
        let mut a = self.getattr(ino)?;
        if a.is_dir() {
            return Err(libc::EISDIR);
        }
        if a.kind != KIND_FILE {
            return Err(libc::ENODEV);
        }
        let end = offset.checked_add(length).ok_or(libc::EFBIG)?;
        if end > MAX_FILE_SIZE {
            return Err(libc::EFBIG);
        }
        let t = now_ns();
        let mut b = Batch::new();
        if punch || zero {
            let to = end.min(a.size);
            self.zero_range(&mut a, offset, to, &mut b)?;
            a.mtime = t;
        }
        if !keep && end > a.size {
            self.truncate_into(&mut a, end, &mut b)?;
            a.mtime = t;
        } else if !punch && !zero {
            return Ok(());
        }
        a.ctime = t;
        Self::put_attr(&mut b, &a);
        self.commit(b)
    }

    /// Zero `[from, to)` (within the file): edit inline data or partial
    /// chunks into `b`; delete whole chunks (in extra batches if many).
    fn zero_range(&self, a: &mut Attr, from: u64, to: u64, b: &mut Batch) -> FsResult<()> {
        if from >= to {
            return Ok(());
        }
        if let Some(d) = a.inline.as_mut() {
            d[from as usize..to as usize].fill(0);
            return Ok(());
        }
        let (first, last) = (from / CHUNK_SIZE, (to - 1) / CHUNK_SIZE);
        let mut whole_first = from.div_ceil(CHUNK_SIZE);
        let mut whole_end = to / CHUNK_SIZE;
        // An extent in the slot at either end that the range covers only
        // in part: zero that part in place, and keep its key out of the
        // deletion below (it is its slot's only key).
        let mut in_extent = Vec::new();
        let (sf, sl) = (slot_start(first), slot_start(last));
        for s in if sf == sl { vec![sf] } else { vec![sf, sl] } {
            let Some(mut e) = self.slot_extent(a, a.size, s)? else {
                continue;
            };
            let es = s * CHUNK_SIZE;
            if from <= es && to >= es + e.len() as u64 {
                continue;
            }
            let (zs, ze) = (from.max(es) - es, (to - es).min(e.len() as u64));
            if zs < ze {
                e[zs as usize..ze as usize].fill(0);
                b.put(chunk_key(a.ino, s), e);
            }
            if s < whole_first {
                whole_first = whole_first.max(s + EXTENT_CHUNKS);
            } else {
                whole_end = whole_end.min(s);
            }
            in_extent.push(s);
        }
        // Partial chunks at either end: zero their part.
        let ends = if first == last {
            vec![first]
        } else {
            vec![first, last]
        };
        for idx in ends {
            if in_extent.contains(&slot_start(idx)) {
                continue;
            }
            let cstart = idx * CHUNK_SIZE;
            let (zs, ze) = (
                from.max(cstart) - cstart,
                to.min(cstart + CHUNK_SIZE) - cstart,
            );
            if zs == 0 && ze == CHUNK_SIZE {
                continue;
            }
            if let Some(mut c) = self.store.get(&chunk_key(a.ino, idx)).map_err(io_errno)? {
                let e = (ze as usize).min(c.len());
                if (zs as usize) < e {
                    c[zs as usize..e].fill(0);
                    b.put(chunk_key(a.ino, idx), c);
                }
            }
        }
        // Whole chunks: delete what exists — a few one by one, more with
        // one range deletion (counted first, for st_blocks).
        if whole_first >= whole_end {
            return Ok(());
        }
        let start = chunk_key(a.ino, whole_first);
        let end = chunk_key(a.ino, whole_end);
        let keys = self
            .store
            .scan(&start, &end, MAX_INLINE_DELETES + 1)
            .map_err(io_errno)?;
        if keys.len() <= MAX_INLINE_DELETES {
            let gone: u64 = keys.iter().map(|(_, v)| units(v.len())).sum();
            a.chunks = a.chunks.saturating_sub(gone);
            for (k, _) in keys {
                b.delete(k);
            }
            return Ok(());
        }
        let mut stored = 0u64;
        self.store
            .scan_visit(&start, &end, usize::MAX, &mut |_, v| {
                stored += units(v.len())
            })
            .map_err(io_errno)?;
        a.chunks = a.chunks.saturating_sub(stored);
        b.delete_range(start, end);
        Ok(())
    }

    /// lseek SEEK_DATA / SEEK_HOLE, at chunk granularity (a chunk present
    /// is data, even where it holds zeros). Other whence values are the
    /// kernel's business: EINVAL.
    pub fn lseek(&self, ino: u64, offset: i64, whence: i32) -> FsResult<i64> {
        let a = self.getattr(ino)?;
        if offset < 0 {
            return Err(libc::ENXIO);
        }
        let off = offset as u64;
        match whence {
            libc::SEEK_DATA | libc::SEEK_HOLE => {}
            libc::SEEK_SET => return Ok(offset),
            libc::SEEK_END => return Ok((a.size as i64).saturating_add(offset)),
            _ => return Err(libc::EINVAL),
        }
        if off >= a.size {
            return Err(libc::ENXIO);
        }
        if a.inline.is_some() {
            return Ok(if whence == libc::SEEK_DATA {
                offset
            } else {
                a.size as i64
            });
        }
        let last = (a.size - 1) / CHUNK_SIZE;
        let mut idx = off / CHUNK_SIZE;
        // Values are read, so pages of extents are kept short; a page holds
        // more keys than a slot, so the first one reaches past `idx`.
        let page_len = if a.extents { 64 } else { 1024 };
        let mut from = if a.extents { slot_start(idx) } else { idx };
        loop {
            let page = self
                .store
                .scan(&chunk_key(ino, from), &chunk_key(ino, last + 1), page_len)
                .map_err(io_errno)?;
            // Each value's chunks [start, end): a present key is data.
            let mut spans = page.iter().filter_map(|(k, v)| match parse_key(k) {
                Some(Key::Chunk(_, i)) => {
                    let len = (v.len() as u64).min(value_max(i));
                    Some((i, i + len.div_ceil(CHUNK_SIZE).max(1)))
                }
                _ => None,
            });
            if whence == libc::SEEK_DATA {
                return match spans.find(|&(_, e)| e > idx) {
                    Some((i, _)) => Ok(off.max(i * CHUNK_SIZE) as i64),
                    None => Err(libc::ENXIO),
                };
            }
            // SEEK_HOLE: the first chunk at or after `idx` no value spans.
            let mut gap = false;
            for (i, e) in spans {
                if i > idx {
                    gap = true;
                    break;
                }
                idx = idx.max(e);
            }
            if idx > last {
                return Ok(a.size as i64);
            }
            if gap || page.len() < page_len {
                return Ok(off.max(idx * CHUNK_SIZE) as i64);
            }
            from = idx;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::core::testutil::*;
    use super::*;
    use crate::store::Store;
    use rand::{Rng, SeedableRng};

    const ES: usize = EXTENT_SIZE as usize;

    fn size(s: u64) -> SetAttr {
        SetAttr {
            size: Some(s),
            ..Default::default()
        }
    }

    #[test]
    fn inline_then_chunks_with_holes() {
        let (store, f) = fs();
        let a = f.create(U, ROOT_INO, b"f", 0o644).unwrap();
        f.write(U, a.ino, 0, b"hello", false).unwrap();
        let at = f.getattr(a.ino).unwrap();
        assert_eq!(at.inline.as_deref(), Some(&b"hello"[..]));
        assert_eq!(
            keys_with_prefix(&store, &chunk_key(a.ino, 0)[..9]),
            0,
            "one key per small file"
        );
        f.write(U, a.ino, 0, b"!", true).unwrap();
        assert_eq!(f.read(a.ino, 0, 100).unwrap(), b"hello!");
        assert_eq!(f.read(a.ino, 3, 2).unwrap(), b"lo");
        assert_eq!(f.read(a.ino, 6, 10).unwrap(), b"", "at EOF");
        assert_eq!(f.read(a.ino, 1 << 40, 10).unwrap(), b"", "far past EOF");
        // Grow past the inline limit, across chunk boundaries, with a hole.
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        f.write(U, a.ino, 100_000, &big, false).unwrap();
        let at = f.getattr(a.ino).unwrap();
        assert!(at.inline.is_none());
        assert_eq!(at.size, 300_000);
        let all = f.read(a.ino, 0, 400_000).unwrap();
        assert_eq!(all.len(), 300_000);
        assert_eq!(&all[..6], b"hello!");
        assert!(all[6..100_000].iter().all(|&b| b == 0));
        assert_eq!(&all[100_000..], &big[..]);
        // Reads starting mid-chunk, spanning chunks.
        assert_eq!(f.read(a.ino, 100_000 + 5, 70_000).unwrap(), &big[5..70_005]);
        // An inline file overwritten from 0 by whole chunks (found by crash-loop).
        let g = f.create(U, ROOT_INO, b"g", 0o644).unwrap();
        f.write(U, g.ino, 0, b"x", false).unwrap();
        f.write(U, g.ino, 0, &big, false).unwrap();
        assert_eq!(f.read(g.ino, 0, 300_000).unwrap(), big);
    }

    #[test]
    fn sparse_file_of_many_gib() {
        let (store, f) = fs();
        let a = f.create(U, ROOT_INO, b"sparse", 0o644).unwrap();
        let far = 5u64 << 30;
        f.write(U, a.ino, far, b"tail", false).unwrap();
        assert_eq!(f.getattr(a.ino).unwrap().size, far + 4);
        assert_eq!(keys_with_prefix(&store, &chunk_key(a.ino, 0)[..9]), 1);
        assert_eq!(f.read(a.ino, far - 2, 10).unwrap(), b"\0\0tail");
        assert_eq!(f.read(a.ino, 1 << 30, 8).unwrap(), vec![0; 8]);
        assert_eq!(
            f.lseek(a.ino, 0, libc::SEEK_DATA).unwrap(),
            (far / CHUNK_SIZE * CHUNK_SIZE) as i64
        );
        assert_eq!(f.lseek(a.ino, 0, libc::SEEK_HOLE).unwrap(), 0);
        assert_eq!(
            f.lseek(a.ino, far as i64, libc::SEEK_HOLE).unwrap(),
            (far + 4) as i64
        );
        assert_eq!(
            f.lseek(a.ino, (far + 4) as i64, libc::SEEK_DATA)
                .unwrap_err(),
            libc::ENXIO
        );
        f.setattr(U, a.ino, size(0)).unwrap();
        assert_eq!(keys_with_prefix(&store, &chunk_key(a.ino, 0)[..9]), 0);
        assert_eq!(
            f.write(U, a.ino, MAX_FILE_SIZE, b"x", false).unwrap_err(),
            libc::EFBIG
        );
        assert_eq!(
            f.write(U, a.ino, u64::MAX, b"x", false).unwrap_err(),
            libc::EFBIG
        );
    }

    #[test]
    fn seek_hole_walks_many_chunks() {
        let (_, f) = fs();
        let a = f.create(U, ROOT_INO, b"dense", 0o644).unwrap();
        let n = 1500u64;
        for i in 0..n {
            f.write(U, a.ino, i * CHUNK_SIZE, &vec![1u8; CS], false)
                .unwrap();
        }
        f.write(U, a.ino, (n + 3) * CHUNK_SIZE, b"z", false)
            .unwrap();
        assert_eq!(
            f.lseek(a.ino, 5, libc::SEEK_HOLE).unwrap(),
            (n * CHUNK_SIZE) as i64
        );
        assert_eq!(
            f.lseek(a.ino, (n * CHUNK_SIZE) as i64, libc::SEEK_DATA)
                .unwrap(),
            ((n + 3) * CHUNK_SIZE) as i64
        );
        assert_eq!(f.lseek(a.ino, 7, libc::SEEK_DATA).unwrap(), 7);
    }

    /// `chunks` (st_blocks) counts the stored chunk keys through every
    /// kind of change: appends, writes into holes, overwrites, inline
    /// conversion, truncation, punched holes.
    #[test]
    fn chunk_count_follows_the_stored_chunks() {
        let (store, f) = fs();
        let a = f.create(U, ROOT_INO, b"f", 0o644).unwrap();
        let stored = |ino| keys_with_prefix(&store, &chunk_key(ino, 0)[..9]) as u64;
        let check = |what: &str| {
            let got = f.getattr(a.ino).unwrap();
            assert_eq!(got.chunks, stored(a.ino), "{what}");
            got
        };
        f.write(U, a.ino, 0, b"small", false).unwrap();
        assert_eq!(check("inline").blocks(), 1);
        f.write(U, a.ino, 0, &vec![1u8; CS + 10], false).unwrap();
        check("inline to chunks");
        // A hole, then one chunk far out: a sparse file.
        f.setattr(U, a.ino, size(1 << 30)).unwrap();
        f.write(U, a.ino, 100 * CS as u64 + 3, b"x", false).unwrap();
        let got = check("one chunk in a hole");
        assert_eq!(got.chunks, 3);
        assert!(got.blocks() * 512 < got.size / 1000, "holes take no blocks");
        // Whole-chunk writes into the hole and over existing chunks.
        f.write(U, a.ino, 50 * CS as u64, &vec![2u8; 2 * CS], false)
            .unwrap();
        f.write(U, a.ino, 50 * CS as u64, &vec![3u8; 3 * CS], false)
            .unwrap();
        assert_eq!(check("writes into holes and over chunks").chunks, 6);
        // Punching a hole deletes whole chunks.
        f.fallocate(
            a.ino,
            50 * CS as u64,
            2 * CS as u64,
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
        )
        .unwrap();
        assert_eq!(check("punched").chunks, 4);
        // Truncating drops the chunks past the new size.
        f.setattr(U, a.ino, size(60 * CS as u64)).unwrap();
        assert_eq!(check("truncated").chunks, 3);
        f.setattr(U, a.ino, size(0)).unwrap();
        assert_eq!(check("emptied").chunks, 0);
    }

    #[test]
    fn truncate_down_and_up_across_chunks() {
        let (store, f) = fs();
        let a = f.create(U, ROOT_INO, b"f", 0o644).unwrap();
        let data: Vec<u8> = (0..5 * CS as u32).map(|i| (i % 253) as u8 + 1).collect();
        f.write(U, a.ino, 0, &data, false).unwrap();
        // Down to mid-chunk 2: chunks 3, 4 go; chunk 2 is cut.
        let cut = 2 * CS + 100;
        f.setattr(U, a.ino, size(cut as u64)).unwrap();
        assert_eq!(keys_with_prefix(&store, &chunk_key(a.ino, 0)[..9]), 3);
        assert_eq!(store.get(&chunk_key(a.ino, 2)).unwrap().unwrap().len(), 100);
        // Up again: the cut part reads zeros, not the old bytes.
        f.setattr(U, a.ino, size(4 * CS as u64)).unwrap();
        let all = f.read(a.ino, 0, 10 * CS as u32).unwrap();
        assert_eq!(all.len(), 4 * CS);
        assert_eq!(&all[..cut], &data[..cut]);
        assert!(all[cut..].iter().all(|&b| b == 0));
        // A write beyond the cut inside the cut chunk keeps the zeros between.
        f.setattr(U, a.ino, size(cut as u64)).unwrap();
        f.write(U, a.ino, cut as u64 + 50, b"ab", false).unwrap();
        let tail = f.read(a.ino, cut as u64 - 2, 100).unwrap();
        assert_eq!(tail.len(), 54);
        assert_eq!(&tail[..2], &data[cut - 2..cut]);
        assert!(tail[2..52].iter().all(|&b| b == 0));
        assert_eq!(&tail[52..], b"ab");
        // Down to a chunk boundary, then to inline size: the file stays chunked.
        f.setattr(U, a.ino, size(CS as u64)).unwrap();
        assert_eq!(keys_with_prefix(&store, &chunk_key(a.ino, 0)[..9]), 1);
        f.setattr(U, a.ino, size(10)).unwrap();
        assert_eq!(f.read(a.ino, 0, 100).unwrap(), &data[..10]);
        // Inline files truncate in place and grow into chunks.
        let b = f.create(U, ROOT_INO, b"g", 0o644).unwrap();
        f.write(U, b.ino, 0, b"0123456789", false).unwrap();
        f.setattr(U, b.ino, size(4)).unwrap();
        f.setattr(U, b.ino, size(8)).unwrap();
        assert_eq!(f.read(b.ino, 0, 100).unwrap(), b"0123\0\0\0\0");
        f.setattr(U, b.ino, size(100_000)).unwrap();
        let r = f.read(b.ino, 0, 200_000).unwrap();
        assert_eq!(r.len(), 100_000);
        assert_eq!(&r[..8], b"0123\0\0\0\0");
        assert!(r[8..].iter().all(|&b| b == 0));
        let dir = f.mkdir(U, ROOT_INO, b"d", 0o755).unwrap();
        assert_eq!(f.setattr(U, dir.ino, size(0)).unwrap_err(), libc::EISDIR);
    }

    #[test]
    fn big_truncate_is_one_small_batch() {
        let (cs, f) = counted_fs();
        let store = &cs.inner;
        let a = f.create(U, ROOT_INO, b"f", 0o644).unwrap();
        let n = MAX_INLINE_DELETES as u64 + 50;
        for i in 0..n {
            f.write(U, a.ino, i * CHUNK_SIZE, &[9u8; 10], false)
                .unwrap();
        }
        let before = cs.batch_sizes.lock().unwrap().len();
        f.setattr(U, a.ino, size(CHUNK_SIZE + 5)).unwrap();
        let sizes = cs.batch_sizes.lock().unwrap()[before..].to_vec();
        assert!(sizes.len() == 1 && sizes[0] <= 4, "batches {sizes:?}");
        assert_eq!(f.getattr(a.ino).unwrap().chunks, 2);
        assert_eq!(keys_with_prefix(store, &chunk_key(a.ino, 0)[..9]), 2);
        assert_eq!(keys_with_prefix(store, b"O"), 0);
        f.setattr(U, a.ino, size(n * CHUNK_SIZE)).unwrap();
        assert_eq!(f.read(a.ino, 2 * CHUNK_SIZE, 100).unwrap(), vec![0u8; 100]);
        // Writes past the cut after it are not hidden by it.
        f.write(U, a.ino, (n - 1) * CHUNK_SIZE, b"tail", false)
            .unwrap();
        assert_eq!(f.read(a.ino, (n - 1) * CHUNK_SIZE, 4).unwrap(), b"tail");
    }

    #[test]
    fn append_and_overwrite() {
        let (_, f) = fs();
        let a = f.create(U, ROOT_INO, b"log", 0o644).unwrap();
        let mut model = Vec::new();
        for i in 0..40u32 {
            let rec = vec![i as u8; 1000 + i as usize * 37];
            f.write(U, a.ino, 0, &rec, true).unwrap();
            model.extend_from_slice(&rec);
        }
        assert_eq!(f.getattr(a.ino).unwrap().size, model.len() as u64);
        // An unaligned overwrite spanning three chunks.
        let patch = vec![0xEEu8; 2 * CS + 10];
        f.write(U, a.ino, CS as u64 - 5, &patch, false).unwrap();
        model[CS - 5..CS - 5 + patch.len()].copy_from_slice(&patch);
        assert_eq!(f.read(a.ino, 0, 1 << 20).unwrap(), model);
        let d = f.mkdir(U, ROOT_INO, b"d", 0o755).unwrap();
        assert_eq!(f.write(U, d.ino, 0, b"x", false).unwrap_err(), libc::EISDIR);
        assert_eq!(f.read(d.ino, 0, 1).unwrap_err(), libc::EISDIR);
    }

    #[test]
    fn mtime_and_ctime_on_write_and_truncate() {
        let (_, f) = fs();
        let a = f.create(U, ROOT_INO, b"f", 0o644).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let w = f.write(U, a.ino, 0, b"x", false).unwrap();
        assert!(w.mtime > a.mtime && w.ctime > a.ctime);
        std::thread::sleep(std::time::Duration::from_millis(2));
        let t = f.setattr(U, a.ino, size(0)).unwrap();
        assert!(t.mtime > w.mtime && t.ctime > w.ctime);
    }

    #[test]
    fn setattr_mode_owner_times() {
        let (_, f) = fs();
        let a = f.create(U, ROOT_INO, b"a", 0o644).unwrap();
        let chmod = SetAttr {
            mode: Some(0o600),
            ..Default::default()
        };
        assert_eq!(f.setattr(OTHER, a.ino, chmod).unwrap_err(), libc::EPERM);
        assert_eq!(
            f.setattr(U, a.ino, chmod).unwrap().mode,
            libc::S_IFREG | 0o600
        );
        let chown = SetAttr {
            uid: Some(OTHER.uid),
            ..Default::default()
        };
        assert_eq!(
            f.setattr(U, a.ino, chown).unwrap_err(),
            libc::EPERM,
            "only root gives files away"
        );
        assert_eq!(
            f.setattr(Caller::ROOT, a.ino, chown).unwrap().uid,
            OTHER.uid
        );
        let chgrp = SetAttr {
            gid: Some(77),
            ..Default::default()
        };
        assert_eq!(
            f.setattr(U, a.ino, chgrp).unwrap_err(),
            libc::EPERM,
            "not the owner any more"
        );
        assert_eq!(f.setattr(OTHER, a.ino, chgrp).unwrap().gid, 77);
        let at = SetAttr {
            atime: Some(TimeSet::At(5_000_000_000)),
            mtime: Some(TimeSet::At(-7)),
            ..Default::default()
        };
        assert_eq!(f.setattr(U, a.ino, at).unwrap_err(), libc::EPERM);
        let r = f.setattr(OTHER, a.ino, at).unwrap();
        assert_eq!((r.atime, r.mtime), (5_000_000_000, -7));
        let now = SetAttr {
            mtime: Some(TimeSet::Now),
            ..Default::default()
        };
        let r = f.setattr(U, a.ino, now).unwrap();
        assert!(r.mtime > 0);
        assert_eq!(r.atime, 5_000_000_000, "an omitted time stays");
        assert!(r.ctime >= r.mtime);
    }

    #[test]
    fn setuid_and_setgid_are_dropped() {
        let (_, f) = fs();
        let a = f.create(U, ROOT_INO, b"a", 0o644).unwrap();
        let m = |mode| SetAttr {
            mode: Some(mode),
            ..Default::default()
        };
        f.setattr(U, a.ino, m(0o6755)).unwrap();
        let w = f.write(U, a.ino, 0, b"x", false).unwrap();
        assert_eq!(w.mode & 0o7777, 0o755, "a write by non-root drops both");
        f.setattr(U, a.ino, m(0o6755)).unwrap();
        let w = f.write(Caller::ROOT, a.ino, 0, b"x", false).unwrap();
        assert_eq!(w.mode & 0o7777, 0o6755, "root's write keeps them");
        let t = f.setattr(U, a.ino, size(0)).unwrap();
        assert_eq!(t.mode & 0o7777, 0o755, "so does truncate");
        // Setgid without group-exec (mandatory locking) stays.
        f.setattr(U, a.ino, m(0o2644)).unwrap();
        let w = f.write(U, a.ino, 0, b"x", false).unwrap();
        assert_eq!(w.mode & 0o7777, 0o2644);
        // chown drops setuid even by root.
        f.setattr(U, a.ino, m(0o4755)).unwrap();
        let chown = SetAttr {
            uid: Some(U.uid),
            gid: Some(U.gid),
            ..Default::default()
        };
        let r = f.setattr(Caller::ROOT, a.ino, chown).unwrap();
        assert_eq!(r.mode & 0o7777, 0o755);
    }

    #[test]
    fn fallocate_modes() {
        let (store, f) = fs();
        let a = f.create(U, ROOT_INO, b"a", 0o644).unwrap();
        f.fallocate(a.ino, 0, 100, 0).unwrap();
        assert_eq!(f.getattr(a.ino).unwrap().size, 100);
        f.fallocate(a.ino, 0, 1 << 20, libc::FALLOC_FL_KEEP_SIZE)
            .unwrap();
        assert_eq!(f.getattr(a.ino).unwrap().size, 100);
        f.fallocate(a.ino, 50, 1 << 20, 0).unwrap();
        assert_eq!(f.getattr(a.ino).unwrap().size, 50 + (1 << 20));
        f.fallocate(a.ino, 10, 10, 0).unwrap();
        assert_eq!(
            f.getattr(a.ino).unwrap().size,
            50 + (1 << 20),
            "never shrinks"
        );
        assert_eq!(f.fallocate(a.ino, 0, 0, 0).unwrap_err(), libc::EINVAL);
        assert_eq!(
            f.fallocate(a.ino, 0, 10, libc::FALLOC_FL_PUNCH_HOLE)
                .unwrap_err(),
            libc::EOPNOTSUPP
        );
        assert_eq!(
            f.fallocate(a.ino, 0, 10, 0x100).unwrap_err(),
            libc::EOPNOTSUPP
        );
        // Punch a hole through data spanning chunks.
        let b = f.create(U, ROOT_INO, b"b", 0o644).unwrap();
        f.write(U, b.ino, 0, &vec![7u8; 4 * CS], false).unwrap();
        let punch = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
        f.fallocate(b.ino, CS as u64 - 10, 2 * CHUNK_SIZE + 20, punch)
            .unwrap();
        assert_eq!(
            keys_with_prefix(&store, &chunk_key(b.ino, 0)[..9]),
            2,
            "chunks 1, 2 deleted"
        );
        let r = f.read(b.ino, 0, 1 << 20).unwrap();
        assert_eq!(r.len(), 4 * CS);
        assert!(r[..CS - 10].iter().all(|&x| x == 7));
        assert!(r[CS - 10..3 * CS + 10].iter().all(|&x| x == 0));
        assert!(r[3 * CS + 10..].iter().all(|&x| x == 7));
        // Zero range past the end grows the file.
        f.fallocate(b.ino, 4 * CHUNK_SIZE - 5, 100, libc::FALLOC_FL_ZERO_RANGE)
            .unwrap();
        let r = f.read(b.ino, 4 * CHUNK_SIZE - 10, 1000).unwrap();
        assert_eq!(r.len(), 105);
        assert_eq!(&r[..5], &[7u8; 5]);
        assert!(r[5..].iter().all(|&x| x == 0));
        let d = f.mkdir(U, ROOT_INO, b"d", 0o755).unwrap();
        assert_eq!(f.fallocate(d.ino, 0, 10, 0).unwrap_err(), libc::EISDIR);
    }

    #[test]
    fn open_unlinked_file_lives_until_release() {
        let (store, f) = fs();
        let a = f.create(U, ROOT_INO, b"a", 0o644).unwrap();
        f.write(U, a.ino, 0, &vec![7u8; 300_000], false).unwrap();
        f.link(a.ino, ROOT_INO, b"b").unwrap();
        f.open_file(a.ino).unwrap();
        f.open_file(a.ino).unwrap();
        f.unlink(U, ROOT_INO, b"a").unwrap();
        assert!(
            store.get(&orphan_key(a.ino)).unwrap().is_none(),
            "one name left"
        );
        f.unlink(U, ROOT_INO, b"b").unwrap();
        assert!(store.get(&orphan_key(a.ino)).unwrap().is_some());
        assert_eq!(f.getattr(a.ino).unwrap().nlink, 0);
        assert_eq!(
            f.read(a.ino, 0, 10).unwrap(),
            vec![7u8; 10],
            "still readable"
        );
        f.write(U, a.ino, 0, b"still writable", false).unwrap();
        f.release_file(a.ino).unwrap();
        assert_eq!(f.read(a.ino, 0, 5).unwrap(), b"still");
        f.release_file(a.ino).unwrap();
        assert_eq!(f.getattr(a.ino).unwrap_err(), libc::ENOENT);
        assert_eq!(keys_with_prefix(&store, &chunk_key(a.ino, 0)[..9]), 0);
        assert!(store.get(&orphan_key(a.ino)).unwrap().is_none());
        assert_eq!(f.open_file(a.ino).unwrap_err(), libc::ENOENT);
        // Replacing an open file by rename orphans it the same way.
        let x = f.create(U, ROOT_INO, b"x", 0o644).unwrap();
        f.write(U, x.ino, 0, b"old", false).unwrap();
        f.create(U, ROOT_INO, b"y", 0o644).unwrap();
        f.open_file(x.ino).unwrap();
        f.rename(U, ROOT_INO, b"y", ROOT_INO, b"x", 0).unwrap();
        assert_eq!(f.read(x.ino, 0, 10).unwrap(), b"old");
        f.release_file(x.ino).unwrap();
        assert_eq!(f.getattr(x.ino).unwrap_err(), libc::ENOENT);
    }

    #[test]
    fn unlinking_a_huge_file_is_one_small_batch() {
        let (cs, f) = counted_fs();
        let store = &cs.inner;
        let a = f.create(U, ROOT_INO, b"huge", 0o644).unwrap();
        let n = 3 * MAX_INLINE_DELETES as u64;
        for i in 0..n {
            f.write(U, a.ino, i * CHUNK_SIZE * 3, b"x", false).unwrap();
        }
        f.setxattr(U, a.ino, b"user.a", b"b", 0).unwrap();
        let before = cs.batch_sizes.lock().unwrap().len();
        f.unlink(U, ROOT_INO, b"huge").unwrap();
        let sizes = cs.batch_sizes.lock().unwrap()[before..].to_vec();
        assert!(sizes.len() == 1 && sizes[0] <= 8, "batches {sizes:?}");
        assert_eq!(f.getattr(a.ino).unwrap_err(), libc::ENOENT);
        assert_eq!(keys_with_prefix(store, &chunk_key(a.ino, 0)[..9]), 0);
        assert_eq!(keys_with_prefix(store, b"O"), 0);
        assert_eq!(keys_with_prefix(store, b"X"), 0);
    }

    /// The chunk keys of `ino` with their lengths.
    fn values(store: &dyn Store, ino: u64) -> Vec<(u64, usize)> {
        store
            .scan(&chunk_key(ino, 0), &chunk_range_end(ino), usize::MAX)
            .unwrap()
            .into_iter()
            .filter_map(|(k, v)| match parse_key(&k) {
                Some(Key::Chunk(_, i)) => Some((i, v.len())),
                _ => None,
            })
            .collect()
    }

    fn clean(store: &dyn Store) {
        let (mut problems, mut summary) = (Vec::new(), Vec::new());
        super::super::fsck::check_store(store, &mut problems, &mut summary);
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn whole_slots_are_extents_and_the_rest_chunks() {
        let (store, f) = fs();
        let a = f.create(U, ROOT_INO, b"f", 0o644).unwrap();
        let data: Vec<u8> = (0..3 * ES + 10_000).map(|i| (i % 249) as u8).collect();
        // Unaligned at both ends: slot 0 in part, slots 1 and 2 whole.
        f.write(U, a.ino, 5000, &data, false).unwrap();
        let v = values(&*store, a.ino);
        assert_eq!(v.iter().filter(|(_, l)| *l == ES).count(), 2, "{v:?}");
        assert!(v.iter().all(|&(i, l)| l <= CS || i % EXTENT_CHUNKS == 0));
        let at = f.getattr(a.ino).unwrap();
        assert!(at.extents);
        let stored: u64 = v.iter().map(|&(_, l)| units(l)).sum();
        assert_eq!(at.chunks, stored);
        assert_eq!(f.read(a.ino, 5000, data.len() as u32).unwrap(), data);
        // Small reads inside an extent, across its edges, and past EOF.
        assert_eq!(
            f.read(a.ino, ES as u64 + 7, 100).unwrap(),
            &data[ES + 7 - 5000..][..100]
        );
        assert_eq!(
            f.read(a.ino, 2 * ES as u64 - 3, 10).unwrap(),
            &data[2 * ES - 3 - 5000..][..10]
        );
        assert_eq!(f.read(a.ino, 0, 10).unwrap(), vec![0u8; 10]);
        clean(&*store);
    }

    #[test]
    fn a_write_into_part_of_an_extent_splits_it_once() {
        let (store, f) = fs();
        let a = f.create(U, ROOT_INO, b"f", 0o644).unwrap();
        let mut model = vec![3u8; 2 * ES];
        f.write(U, a.ino, 0, &model, false).unwrap();
        assert_eq!(values(&*store, a.ino).len(), 2);
        f.write(U, a.ino, 10_000, b"patch", false).unwrap();
        model[10_000..10_005].copy_from_slice(b"patch");
        let v = values(&*store, a.ino);
        assert_eq!(v.len(), 33, "slot 0 in chunks, slot 1 still one extent");
        assert!(v[..32].iter().all(|&(_, l)| l == CS));
        assert_eq!(f.read(a.ino, 0, 2 * ES as u32).unwrap(), model);
        assert_eq!(f.getattr(a.ino).unwrap().chunks, 64);
        // A whole-slot write over chunks makes it an extent again.
        f.write(U, a.ino, 0, &vec![4u8; ES], false).unwrap();
        model[..ES].fill(4);
        assert_eq!(values(&*store, a.ino).len(), 2);
        assert_eq!(f.read(a.ino, 0, 2 * ES as u32).unwrap(), model);
        assert_eq!(f.getattr(a.ino).unwrap().chunks, 64);
        clean(&*store);
    }

    #[test]
    fn truncate_punch_and_seek_inside_extents() {
        let (store, f) = fs();
        let a = f.create(U, ROOT_INO, b"f", 0o644).unwrap();
        f.write(U, a.ino, 0, &vec![1u8; 3 * ES], false).unwrap();
        // Truncate into slot 1: it is cut, slot 2 goes.
        let cut = ES as u64 + 9000;
        f.setattr(U, a.ino, size(cut)).unwrap();
        assert_eq!(values(&*store, a.ino), vec![(0, ES), (32, 9000)]);
        assert_eq!(f.getattr(a.ino).unwrap().chunks, 32 + 3);
        f.setattr(U, a.ino, size(3 * ES as u64)).unwrap();
        let r = f.read(a.ino, 0, 3 * ES as u32).unwrap();
        assert!(r[..cut as usize].iter().all(|&x| x == 1));
        assert!(r[cut as usize..].iter().all(|&x| x == 0));
        clean(&*store);
        // Truncating to a slot boundary drops the extent there whole.
        f.setattr(U, a.ino, size(ES as u64)).unwrap();
        assert_eq!(values(&*store, a.ino), vec![(0, ES)]);
        // A punch inside an extent zeroes it in place; over it, deletes it.
        f.write(U, a.ino, ES as u64, &vec![2u8; 2 * ES], false)
            .unwrap();
        let punch = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
        f.fallocate(a.ino, 100, 5000, punch).unwrap();
        f.fallocate(a.ino, 2 * EXTENT_SIZE - 10, 20, punch).unwrap();
        f.fallocate(a.ino, 2 * EXTENT_SIZE + 10, EXTENT_SIZE - 10, punch)
            .unwrap();
        let r = f.read(a.ino, 0, 3 * ES as u32).unwrap();
        let mut want = [vec![1u8; ES], vec![2u8; 2 * ES]].concat();
        want[100..5100].fill(0);
        want[2 * ES - 10..2 * ES + 10].fill(0);
        want[2 * ES + 10..].fill(0);
        assert_eq!(r, want);
        // Slot 2 was cut by the punch's end, zeroed in place, not deleted.
        assert_eq!(values(&*store, a.ino).len(), 3);
        f.fallocate(a.ino, 2 * EXTENT_SIZE, EXTENT_SIZE, punch)
            .unwrap();
        assert_eq!(values(&*store, a.ino), vec![(0, ES), (32, ES)]);
        assert_eq!(f.getattr(a.ino).unwrap().chunks, 64);
        // Holes and data at extent granularity.
        f.setattr(U, a.ino, size(5 * ES as u64)).unwrap();
        f.write(U, a.ino, 4 * EXTENT_SIZE, &vec![5u8; ES], false)
            .unwrap();
        assert_eq!(f.lseek(a.ino, 7, libc::SEEK_HOLE).unwrap(), 2 * ES as i64);
        assert_eq!(
            f.lseek(a.ino, ES as i64 + 3, libc::SEEK_DATA).unwrap(),
            ES as i64 + 3
        );
        assert_eq!(
            f.lseek(a.ino, 2 * ES as i64, libc::SEEK_DATA).unwrap(),
            4 * ES as i64
        );
        assert_eq!(
            f.lseek(a.ino, 4 * ES as i64 + 5, libc::SEEK_HOLE).unwrap(),
            5 * ES as i64
        );
        clean(&*store);
        f.setattr(U, a.ino, size(0)).unwrap();
        assert!(!f.getattr(a.ino).unwrap().extents);
        assert!(values(&*store, a.ino).is_empty());
    }

    /// Random writes (page, unaligned, whole-slot), truncates and punches
    /// against a byte vector: every read matches, st_blocks counts the
    /// stored chunks exactly, and the invariant check stays clean.
    #[test]
    fn model_check_of_chunks_and_extents() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5107);
        let (store, f) = fs();
        let a = f.create(U, ROOT_INO, b"f", 0o644).unwrap();
        let mut model: Vec<u8> = Vec::new();
        let span = 6 * ES;
        for step in 0..600 {
            let fill = (step % 250) as u8 + 1;
            match rng.gen_range(0..10) {
                0..=3 => {
                    let slot = rng.gen_range(0..6);
                    let n = rng.gen_range(1..=2usize).min(6 - slot);
                    let off = slot * ES;
                    f.write(U, a.ino, off as u64, &vec![fill; n * ES], false)
                        .unwrap();
                    if model.len() < off + n * ES {
                        model.resize(off + n * ES, 0);
                    }
                    model[off..off + n * ES].fill(fill);
                }
                4..=6 => {
                    let off = rng.gen_range(0..span);
                    let len = [1, 100, CS, 3 * CS + 7, ES + 11][rng.gen_range(0..5)];
                    f.write(U, a.ino, off as u64, &vec![fill; len], false)
                        .unwrap();
                    if model.len() < off + len {
                        model.resize(off + len, 0);
                    }
                    model[off..off + len].fill(fill);
                }
                7 => {
                    let to = rng.gen_range(0..span);
                    f.setattr(U, a.ino, size(to as u64)).unwrap();
                    model.resize(to, 0);
                }
                _ => {
                    let off = rng.gen_range(0..span);
                    let len = rng.gen_range(1..2 * ES);
                    let punch = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
                    f.fallocate(a.ino, off as u64, len as u64, punch).unwrap();
                    let end = (off + len).min(model.len());
                    if off < end {
                        model[off..end].fill(0);
                    }
                }
            }
            let at = f.getattr(a.ino).unwrap();
            assert_eq!(at.size, model.len() as u64, "step {step}");
            let stored: u64 = values(&*store, a.ino).iter().map(|&(_, l)| units(l)).sum();
            assert_eq!(at.chunks, stored, "step {step}: st_blocks");
            let off = rng.gen_range(0..=model.len());
            let len = rng.gen_range(0..3 * ES);
            let want = &model[off..(off + len).min(model.len())];
            assert_eq!(
                f.read(a.ino, off as u64, len as u32).unwrap(),
                want,
                "step {step}"
            );
            if step % 50 == 0 {
                assert_eq!(f.read(a.ino, 0, span as u32 * 2).unwrap(), model);
                clean(&*store);
            }
        }
        clean(&*store);
    }
}
