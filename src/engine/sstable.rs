//! SSTables: immutable sorted files of internal keys (LevelDB's table
//! format, without compression).
//!
//! ```text
//! [data block 0][trailer] ... [data block n][trailer]
//! [filter block][trailer] [properties block][trailer]
//! [metaindex block][trailer] [index block][trailer]
//! [footer: 48 bytes]
//! ```
//!
//! - **Block**: entries `varint32 shared | varint32 non_shared | varint32
//!   value_len | key delta | value`, keys prefix-compressed against the
//!   previous entry, with a full key every 16 entries (a *restart point*);
//!   then the restart offsets (fixed32 each) and their count (fixed32).
//!   Data blocks close at ~`block_size` (4 KiB) bytes.
//! - **Trailer** (5 bytes) after every block: a type byte (0 = raw) and the
//!   masked CRC32 of contents + type. Every read verifies it.
//! - **Filter**: one bloom filter over the table's *user* keys (≈10 bits a
//!   key, k = bits·ln2 probes by double hashing; last byte holds k). One
//!   filter per table rather than per 2 KiB of data: a point lookup touches
//!   one table block at most, so the per-block split buys nothing here.
//! - **Properties**: varints: entries, data blocks, raw key bytes, raw value
//!   bytes, smallest seq, largest seq (then, in version 2, range deletions).
//! - **Range deletions** (version 2, only in tables that have some): the
//!   table's range tombstones, encoded as `range_del` says. They are not in
//!   the data blocks; the table's smallest and largest keys cover them.
//! - **Metaindex**: a block mapping `"filter"`, `"properties"` (and
//!   `"rangedel"`) to handles; **index**: one entry per data block, the
//!   block's last key → its handle (`varint64 offset, varint64 size`).
//! - **Footer**: metaindex handle, index handle, zero padding to 40 bytes,
//!   then the 8-byte magic little-endian: `0x6c736d6673737431` ("lsmfsst1",
//!   version 1) or, for a table holding range deletions, `0x6c736d6673737432`
//!   (version 2). Both are read; an older build refuses a version-2 table
//!   instead of reading it without its tombstones (which would bring
//!   deleted keys back).
//!
//! Reading: a point lookup checks the filter, then reads one data block
//! through the block cache. Scans read ahead: data blocks are contiguous in
//! the file, so a run of them is one `pread` (see [`ReadAhead`]); a bounded
//! scan stops its run at the block holding its bound, and a plain iterator
//! starts reading ahead once it has stepped into two blocks in a row. Every
//! block of a run is still checksummed on its own and named by its own
//! offset when damaged.

use super::cache::BlockCache;
use super::coding::{get_varint32, put_varint32, put_varint64, Decoder};
use super::dbformat::{
    compare_internal, make_internal_key, parse_internal_key, range_end_sentinel, user_key,
    ValueType,
};
use super::env::{RandomAccessFile, WritableFile};
use super::error::{Error, Result};
use super::iterator::InternalIterator;
use super::log_format::mask_crc;
use super::options::Options;
use super::range_del::{self, Fragments, RangeTombstone};
use std::cmp::Ordering;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const MAGIC: u64 = 0x6c73_6d66_7373_7431;
/// Tables holding range deletions.
pub const MAGIC_V2: u64 = 0x6c73_6d66_7373_7432;
pub const FOOTER_SIZE: usize = 48;
const TRAILER_SIZE: usize = 5;
const MAX_BLOCK_SIZE: u64 = 256 << 20;
/// An iterator without a `ReadAhead` reads ahead once `next` has taken it
/// into this many blocks in a row, in runs of this many bytes.
const AUTO_READ_AHEAD_AFTER: u32 = 2;
const AUTO_READ_AHEAD_BYTES: usize = 256 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockHandle {
    pub offset: u64,
    pub size: u64,
}

impl BlockHandle {
    fn encode_to(&self, dst: &mut Vec<u8>) {
        put_varint64(dst, self.offset);
        put_varint64(dst, self.size);
    }

    fn decode(d: &mut Decoder<'_>) -> Option<BlockHandle> {
        Some(BlockHandle {
            offset: d.varint64()?,
            size: d.varint64()?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct TableOptions {
    pub block_size: usize,
    pub restart_interval: usize,
    pub bloom_bits_per_key: usize,
}

impl TableOptions {
    pub fn from_options(o: &Options) -> TableOptions {
        TableOptions {
            block_size: o.block_size.max(64),
            restart_interval: o.block_restart_interval.max(1),
            bloom_bits_per_key: o.bloom_bits_per_key,
        }
    }
}

fn block_crc(contents: &[u8], kind: u8) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(contents);
    h.update(&[kind]);
    mask_crc(h.finalize())
}

// ---------------------------------------------------------------- blocks

struct BlockBuilder {
    buf: Vec<u8>,
    restarts: Vec<u32>,
    counter: usize,
    last_key: Vec<u8>,
    interval: usize,
}

impl BlockBuilder {
    fn new(interval: usize) -> BlockBuilder {
        BlockBuilder {
            buf: Vec::new(),
            restarts: vec![0],
            counter: 0,
            last_key: Vec::new(),
            interval,
        }
    }

    fn add(&mut self, key: &[u8], value: &[u8]) {
        let mut shared = 0;
        if self.counter < self.interval {
            shared = key
                .iter()
                .zip(self.last_key.iter())
                .take_while(|(a, b)| a == b)
                .count();
        } else {
            self.restarts.push(self.buf.len() as u32);
            self.counter = 0;
        }
        put_varint32(&mut self.buf, shared as u32);
        put_varint32(&mut self.buf, (key.len() - shared) as u32);
        put_varint32(&mut self.buf, value.len() as u32);
        self.buf.extend_from_slice(&key[shared..]);
        self.buf.extend_from_slice(value);
        self.last_key.truncate(shared);
        self.last_key.extend_from_slice(&key[shared..]);
        self.counter += 1;
    }

    fn estimated_size(&self) -> usize {
        self.buf.len() + self.restarts.len() * 4 + 4
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn finish(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.buf);
        for r in &self.restarts {
            out.extend_from_slice(&r.to_le_bytes());
        }
        out.extend_from_slice(&(self.restarts.len() as u32).to_le_bytes());
        self.restarts = vec![0];
        self.counter = 0;
        self.last_key.clear();
        out
    }
}

/// A parsed, checksum-verified block: `len` bytes at `start` of `buf`.
/// Blocks read ahead share one buffer; cached blocks own theirs, so that the
/// cache's charge is the memory it pins.
pub struct Block {
    buf: Arc<Vec<u8>>,
    start: usize,
    len: usize,
    restarts_offset: usize,
    num_restarts: usize,
}

impl Block {
    fn parse(data: Vec<u8>, path: &Path, offset: u64) -> Result<Block> {
        let len = data.len();
        Block::parse_shared(Arc::new(data), 0, len, path, offset)
    }

    fn parse_shared(
        buf: Arc<Vec<u8>>,
        start: usize,
        len: usize,
        path: &Path,
        offset: u64,
    ) -> Result<Block> {
        let bad = |m: &str| Error::corruption(path, offset, format!("malformed block: {m}"));
        let Some(data) = buf.get(start..start + len) else {
            return Err(bad("outside its buffer"));
        };
        if len < 4 {
            return Err(bad("shorter than its restart count"));
        }
        let n = u32::from_le_bytes([data[len - 4], data[len - 3], data[len - 2], data[len - 1]])
            as usize;
        let max = (len - 4) / 4;
        if n == 0 || n > max {
            return Err(bad("bad restart count"));
        }
        let restarts_offset = len - 4 - 4 * n;
        Ok(Block {
            buf,
            start,
            len,
            restarts_offset,
            num_restarts: n,
        })
    }

    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }

    pub fn size(&self) -> usize {
        self.len
    }

    fn restart(&self, i: usize) -> usize {
        let o = self.restarts_offset + 4 * i;
        let d = self.data();
        u32::from_le_bytes([d[o], d[o + 1], d[o + 2], d[o + 3]]) as usize
    }
}

type Cmp = fn(&[u8], &[u8]) -> Ordering;

fn bytewise(a: &[u8], b: &[u8]) -> Ordering {
    a.cmp(b)
}

/// Iterates one block; the current key is rebuilt in a reused buffer.
#[derive(Clone)]
pub struct BlockIter {
    block: Arc<Block>,
    cmp: Cmp,
    /// Offset of the next entry to decode.
    next_offset: usize,
    key: Vec<u8>,
    value: (usize, usize),
    valid: bool,
    error: Option<String>,
}

impl BlockIter {
    fn new(block: Arc<Block>, cmp: Cmp) -> BlockIter {
        BlockIter {
            block,
            cmp,
            next_offset: 0,
            key: Vec::new(),
            value: (0, 0),
            valid: false,
            error: None,
        }
    }

    /// Decode the entry at `next_offset`; false at the end or on damage.
    fn parse_next(&mut self) -> bool {
        let limit = self.block.restarts_offset;
        let p = self.next_offset;
        if p >= limit {
            self.valid = false;
            return false;
        }
        let data = &self.block.data()[..limit];
        let mut d = Decoder::new(&data[p..]);
        let parsed = (|| {
            let shared = d.varint32()? as usize;
            let non_shared = d.varint32()? as usize;
            let vlen = d.varint32()? as usize;
            let kstart = p + d.pos;
            let vstart = kstart.checked_add(non_shared)?;
            let vend = vstart.checked_add(vlen)?;
            if shared > self.key.len() || vend > limit {
                return None;
            }
            Some((shared, kstart, vstart, vend))
        })();
        match parsed {
            Some((shared, kstart, vstart, vend)) => {
                self.key.truncate(shared);
                self.key.extend_from_slice(&data[kstart..vstart]);
                self.value = (vstart, vend);
                self.next_offset = vend;
                self.valid = true;
                true
            }
            None => {
                self.error = Some(format!("bad entry at block offset {p}"));
                self.valid = false;
                false
            }
        }
    }

    fn seek_to_restart(&mut self, i: usize) {
        self.key.clear();
        self.next_offset = self.block.restart(i);
        if self.next_offset > self.block.restarts_offset {
            self.error = Some("restart point past the entries".into());
            self.next_offset = self.block.restarts_offset;
        }
    }

    /// Key at restart point `i` (shared must be 0 there).
    fn restart_key(&self, i: usize) -> Option<&[u8]> {
        let p = self.block.restart(i);
        let data = self.block.data().get(..self.block.restarts_offset)?;
        let (shared, n1) = get_varint32(data.get(p..)?)?;
        let (non_shared, n2) = get_varint32(data.get(p + n1..)?)?;
        let (_, n3) = get_varint32(data.get(p + n1 + n2..)?)?;
        if shared != 0 {
            return None;
        }
        let s = p + n1 + n2 + n3;
        data.get(s..s + non_shared as usize)
    }

    pub fn seek_to_first(&mut self) {
        self.seek_to_restart(0);
        self.parse_next();
    }

    pub fn seek(&mut self, target: &[u8]) {
        // Binary search: the last restart whose key < target.
        let (mut lo, mut hi) = (0usize, self.block.num_restarts - 1);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            match self.restart_key(mid) {
                Some(k) if (self.cmp)(k, target) == Ordering::Less => lo = mid,
                Some(_) => hi = mid - 1,
                None => {
                    self.error = Some(format!("bad restart point {mid}"));
                    self.valid = false;
                    return;
                }
            }
        }
        self.seek_to_restart(lo);
        while self.parse_next() {
            if (self.cmp)(&self.key, target) != Ordering::Less {
                return;
            }
        }
    }

    pub fn next(&mut self) {
        if self.valid {
            self.parse_next();
        }
    }

    pub fn valid(&self) -> bool {
        self.valid
    }

    pub fn key(&self) -> &[u8] {
        &self.key
    }

    pub fn value(&self) -> &[u8] {
        &self.block.data()[self.value.0..self.value.1]
    }
}

// ---------------------------------------------------------------- bloom

fn bloom_hash(key: &[u8]) -> u32 {
    // Murmur-style mixing, as LevelDB's filter hash does.
    const M: u32 = 0xc6a4_a793;
    let mut h: u32 = 0xbc9f_1d34 ^ (key.len() as u32).wrapping_mul(M);
    let mut chunks = key.chunks_exact(4);
    for c in &mut chunks {
        let w = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        h = h.wrapping_add(w).wrapping_mul(M);
        h ^= h >> 16;
    }
    let rest = chunks.remainder();
    for (i, &b) in rest.iter().enumerate().rev() {
        h = h.wrapping_add((b as u32) << (8 * i));
        if i == 0 {
            h = h.wrapping_mul(M);
            h ^= h >> 24;
        }
    }
    h
}

fn build_bloom(hashes: &[u32], bits_per_key: usize) -> Vec<u8> {
    let k = ((bits_per_key as f64 * 0.69) as usize).clamp(1, 30);
    let bits = (hashes.len() * bits_per_key).max(64);
    let bytes = bits.div_ceil(8);
    let bits = bytes * 8;
    let mut out = vec![0u8; bytes + 1];
    for &h0 in hashes {
        let mut h = h0;
        let delta = h.rotate_right(17);
        for _ in 0..k {
            let pos = (h as usize) % bits;
            out[pos / 8] |= 1 << (pos % 8);
            h = h.wrapping_add(delta);
        }
    }
    out[bytes] = k as u8;
    out
}

fn bloom_may_contain(filter: &[u8], key: &[u8]) -> bool {
    if filter.len() < 2 {
        return true;
    }
    let bytes = filter.len() - 1;
    let bits = bytes * 8;
    let k = filter[bytes] as usize;
    if k > 30 {
        return true;
    }
    let mut h = bloom_hash(key);
    let delta = h.rotate_right(17);
    for _ in 0..k {
        let pos = (h as usize) % bits;
        if filter[pos / 8] & (1 << (pos % 8)) == 0 {
            return false;
        }
        h = h.wrapping_add(delta);
    }
    true
}

// ---------------------------------------------------------------- builder

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableProperties {
    pub num_entries: u64,
    pub num_data_blocks: u64,
    pub raw_key_bytes: u64,
    pub raw_value_bytes: u64,
    pub smallest_seq: u64,
    pub largest_seq: u64,
    pub filter_bytes: u64,
    pub index_bytes: u64,
    pub num_range_deletions: u64,
}

/// What a finished table holds, for its MANIFEST entry.
#[derive(Debug, Clone)]
pub struct TableSummary {
    pub file_size: u64,
    pub num_entries: u64,
    pub smallest: Vec<u8>,
    pub largest: Vec<u8>,
    pub smallest_seq: u64,
    pub largest_seq: u64,
}

pub struct TableBuilder {
    file: Box<dyn WritableFile>,
    opts: TableOptions,
    offset: u64,
    data: BlockBuilder,
    index: BlockBuilder,
    last_key: Vec<u8>,
    smallest: Vec<u8>,
    hashes: Vec<u32>,
    last_user_key_hashed: Vec<u8>,
    props: TableProperties,
    range_dels: Vec<RangeTombstone>,
}

impl TableBuilder {
    pub fn new(file: Box<dyn WritableFile>, opts: TableOptions) -> TableBuilder {
        TableBuilder {
            file,
            data: BlockBuilder::new(opts.restart_interval),
            index: BlockBuilder::new(1),
            opts,
            offset: 0,
            last_key: Vec::new(),
            smallest: Vec::new(),
            hashes: Vec::new(),
            last_user_key_hashed: Vec::new(),
            props: TableProperties {
                smallest_seq: u64::MAX,
                ..Default::default()
            },
            range_dels: Vec::new(),
        }
    }

    /// Add a range tombstone (any order; kept in a block of its own).
    pub fn add_range_deletion(&mut self, t: RangeTombstone) {
        if t.start < t.end {
            self.range_dels.push(t);
        }
    }

    /// Whether the table would hold nothing at all.
    pub fn is_empty(&self) -> bool {
        self.props.num_entries == 0 && self.range_dels.is_empty()
    }

    pub fn add(&mut self, ikey: &[u8], value: &[u8]) -> Result<()> {
        debug_assert!(
            self.props.num_entries == 0 || compare_internal(&self.last_key, ikey) == Ordering::Less
        );
        if self.props.num_entries == 0 {
            self.smallest = ikey.to_vec();
        }
        let uk = user_key(ikey);
        if self.props.num_entries == 0 || uk != &self.last_user_key_hashed[..] {
            self.hashes.push(bloom_hash(uk));
            self.last_user_key_hashed.clear();
            self.last_user_key_hashed.extend_from_slice(uk);
        }
        if let Some(p) = parse_internal_key(ikey) {
            self.props.smallest_seq = self.props.smallest_seq.min(p.sequence);
            self.props.largest_seq = self.props.largest_seq.max(p.sequence);
        }
        self.data.add(ikey, value);
        self.last_key.clear();
        self.last_key.extend_from_slice(ikey);
        self.props.num_entries += 1;
        self.props.raw_key_bytes += ikey.len() as u64;
        self.props.raw_value_bytes += value.len() as u64;
        if self.data.estimated_size() >= self.opts.block_size {
            self.flush_data_block()?;
        }
        Ok(())
    }

    fn write_block(&mut self, contents: &[u8]) -> Result<BlockHandle> {
        let handle = BlockHandle {
            offset: self.offset,
            size: contents.len() as u64,
        };
        let mut trailer = [0u8; TRAILER_SIZE];
        trailer[1..].copy_from_slice(&block_crc(contents, 0).to_le_bytes());
        self.file.append(contents)?;
        self.file.append(&trailer)?;
        self.offset += (contents.len() + TRAILER_SIZE) as u64;
        Ok(handle)
    }

    fn flush_data_block(&mut self) -> Result<()> {
        if self.data.is_empty() {
            return Ok(());
        }
        let contents = self.data.finish();
        let h = self.write_block(&contents)?;
        let mut hv = Vec::with_capacity(16);
        h.encode_to(&mut hv);
        let last = std::mem::take(&mut self.last_key);
        self.index.add(&last, &hv);
        self.last_key = last;
        self.props.num_data_blocks += 1;
        Ok(())
    }

    pub fn num_entries(&self) -> u64 {
        self.props.num_entries
    }

    pub fn file_size(&self) -> u64 {
        self.offset + self.data.estimated_size() as u64
    }

    /// Write filter, properties, metaindex, index and footer; fsync the file.
    pub fn finish(mut self) -> Result<TableSummary> {
        self.flush_data_block()?;
        let filter = build_bloom(&self.hashes, self.opts.bloom_bits_per_key.max(1));
        self.props.filter_bytes = filter.len() as u64;
        let fh = self.write_block(&filter)?;
        let mut smallest = std::mem::take(&mut self.smallest);
        let mut largest = std::mem::take(&mut self.last_key);
        let has_ranges = !self.range_dels.is_empty();
        for t in &self.range_dels {
            widen_bounds(&mut smallest, &mut largest, t);
            self.props.smallest_seq = self.props.smallest_seq.min(t.seq);
            self.props.largest_seq = self.props.largest_seq.max(t.seq);
        }
        if self.props.smallest_seq == u64::MAX {
            self.props.smallest_seq = 0;
        }
        let index = self.index.finish();
        self.props.index_bytes = index.len() as u64;
        let mut pb = Vec::new();
        for v in [
            self.props.num_entries,
            self.props.num_data_blocks,
            self.props.raw_key_bytes,
            self.props.raw_value_bytes,
            self.props.smallest_seq,
            self.props.largest_seq,
        ] {
            put_varint64(&mut pb, v);
        }
        if has_ranges {
            put_varint64(&mut pb, self.range_dels.len() as u64);
        }
        let ph = self.write_block(&pb)?;
        let rh = if has_ranges {
            self.range_dels
                .sort_by(|a, b| a.start.cmp(&b.start).then(b.seq.cmp(&a.seq)));
            let block = range_del::encode_block(&self.range_dels);
            Some(self.write_block(&block)?)
        } else {
            None
        };
        let mut meta = BlockBuilder::new(1);
        let mut hv = Vec::new();
        fh.encode_to(&mut hv);
        meta.add(b"filter", &hv);
        hv.clear();
        ph.encode_to(&mut hv);
        meta.add(b"properties", &hv);
        if let Some(rh) = rh {
            hv.clear();
            rh.encode_to(&mut hv);
            meta.add(b"rangedel", &hv);
        }
        let meta = meta.finish();
        let mh = self.write_block(&meta)?;
        let ih = self.write_block(&index)?;
        let mut footer = Vec::with_capacity(FOOTER_SIZE);
        mh.encode_to(&mut footer);
        ih.encode_to(&mut footer);
        footer.resize(FOOTER_SIZE - 8, 0);
        let magic = if has_ranges { MAGIC_V2 } else { MAGIC };
        footer.extend_from_slice(&magic.to_le_bytes());
        self.file.append(&footer)?;
        self.offset += FOOTER_SIZE as u64;
        self.file.sync()?;
        Ok(TableSummary {
            file_size: self.offset,
            num_entries: self.props.num_entries,
            smallest,
            largest,
            smallest_seq: self.props.smallest_seq,
            largest_seq: self.props.largest_seq,
        })
    }

    /// Give up on this table; the caller removes the file (or leaves it as garbage).
    pub fn abandon(self) {}
}

/// Widen a table's key range (internal keys; empty = none yet) to cover
/// range tombstone `t`: from `(start, seq)` up to `end`'s sentinel.
pub fn widen_bounds(smallest: &mut Vec<u8>, largest: &mut Vec<u8>, t: &RangeTombstone) {
    let lo = make_internal_key(&t.start, t.seq, ValueType::RangeDeletion);
    let hi = range_end_sentinel(&t.end);
    if smallest.is_empty() || compare_internal(&lo, smallest) == Ordering::Less {
        *smallest = lo;
    }
    if largest.is_empty() || compare_internal(&hi, largest) == Ordering::Greater {
        *largest = hi;
    }
}

// ---------------------------------------------------------------- reader

pub struct Table {
    file: Box<dyn RandomAccessFile>,
    path: PathBuf,
    number: u64,
    cache: Option<Arc<BlockCache>>,
    index: Arc<Block>,
    filter: Vec<u8>,
    props: TableProperties,
    range_dels: Arc<Fragments>,
}

impl Table {
    pub fn open(
        file: Box<dyn RandomAccessFile>,
        path: PathBuf,
        file_number: u64,
        file_size: u64,
        cache: Option<Arc<BlockCache>>,
    ) -> Result<Arc<Table>> {
        Table::open_inner(file, path, file_number, file_size, cache, true)
    }

    /// `open` for `repair`, when that failed: a damaged filter or properties
    /// block is left out (no filter: every lookup reads the data block), so
    /// the data blocks can be salvaged. The footer, index and metaindex must
    /// read, and so must the range deletions of a table that has them.
    pub fn open_for_salvage(
        file: Box<dyn RandomAccessFile>,
        path: PathBuf,
        file_number: u64,
        file_size: u64,
    ) -> Result<Arc<Table>> {
        Table::open_inner(file, path, file_number, file_size, None, false)
    }

    fn open_inner(
        file: Box<dyn RandomAccessFile>,
        path: PathBuf,
        file_number: u64,
        file_size: u64,
        cache: Option<Arc<BlockCache>>,
        strict: bool,
    ) -> Result<Arc<Table>> {
        if file_size < FOOTER_SIZE as u64 {
            return Err(Error::corruption(
                &path,
                0,
                format!("{file_size} bytes is too short for a table"),
            ));
        }
        let foot_off = file_size - FOOTER_SIZE as u64;
        let footer = file.read_at(foot_off, FOOTER_SIZE)?;
        let mut magic = [0u8; 8];
        magic.copy_from_slice(&footer[FOOTER_SIZE - 8..]);
        let magic = u64::from_le_bytes(magic);
        if magic != MAGIC && magic != MAGIC_V2 {
            return Err(Error::corruption(
                &path,
                foot_off,
                "bad table magic number (not an lsmfs table, or truncated)",
            ));
        }
        let mut d = Decoder::new(&footer[..FOOTER_SIZE - 8]);
        let (mh, ih) = match (BlockHandle::decode(&mut d), BlockHandle::decode(&mut d)) {
            (Some(m), Some(i)) => (m, i),
            _ => return Err(Error::corruption(&path, foot_off, "bad footer handles")),
        };
        let mut t = Table {
            file,
            path,
            number: file_number,
            cache: None,
            index: Arc::new(Block {
                buf: Arc::new(vec![0; 8]),
                start: 0,
                len: 8,
                restarts_offset: 0,
                num_restarts: 1,
            }),
            filter: Vec::new(),
            props: TableProperties::default(),
            range_dels: Arc::new(Fragments::default()),
        };
        t.index = t.read_block(ih)?;
        let meta = t.read_block(mh)?;
        let mut props_ok = true;
        let mut it = BlockIter::new(meta, bytewise);
        it.seek_to_first();
        while it.valid() {
            let mut d = Decoder::new(it.value());
            let Some(h) = BlockHandle::decode(&mut d) else {
                return Err(Error::corruption(
                    &t.path,
                    mh.offset,
                    "bad metaindex handle",
                ));
            };
            match it.key() {
                b"filter" => match t.read_raw(h) {
                    Ok(f) => t.filter = f,
                    Err(_) if !strict => {}
                    Err(e) => return Err(e),
                },
                b"properties" if !strict && t.read_raw(h).is_err() => props_ok = false,
                b"properties" => {
                    let raw = t.read_raw(h)?;
                    let mut d = Decoder::new(&raw);
                    let mut f = || d.varint64();
                    let p = (|| {
                        Some(TableProperties {
                            num_entries: f()?,
                            num_data_blocks: f()?,
                            raw_key_bytes: f()?,
                            raw_value_bytes: f()?,
                            smallest_seq: f()?,
                            largest_seq: f()?,
                            filter_bytes: 0,
                            index_bytes: 0,
                            num_range_deletions: f().unwrap_or(0),
                        })
                    })();
                    match p {
                        Some(p) => t.props = p,
                        None if !strict => props_ok = false,
                        None => {
                            return Err(Error::corruption(
                                &t.path,
                                h.offset,
                                "bad properties block",
                            ))
                        }
                    }
                }
                b"rangedel" => {
                    let raw = t.read_raw(h)?;
                    let list = range_del::decode_block(&raw)
                        .map_err(|m| Error::corruption(&t.path, h.offset, m))?;
                    t.range_dels = Arc::new(Fragments::new(list));
                }
                _ => {}
            }
            it.next();
        }
        if let Some(e) = it.error {
            return Err(Error::corruption(&t.path, mh.offset, e));
        }
        if !props_ok && magic == MAGIC_V2 && t.range_dels.is_empty() {
            // Without the properties, only the metaindex says the table
            // had range deletions: without them its data would lie.
            return Err(Error::corruption(
                &t.path,
                mh.offset,
                "a version-2 table without its range deletions",
            ));
        }
        if props_ok && t.range_dels.len() as u64 != t.props.num_range_deletions {
            return Err(Error::corruption(
                &t.path,
                mh.offset,
                format!(
                    "properties say {} range deletions, the table holds {}",
                    t.props.num_range_deletions,
                    t.range_dels.len()
                ),
            ));
        }
        t.props.filter_bytes = t.filter.len() as u64;
        t.props.index_bytes = t.index.size() as u64;
        t.cache = cache;
        Ok(Arc::new(t))
    }

    /// Reject a handle that points outside the file before reading it.
    fn check_handle(&self, h: BlockHandle) -> Result<()> {
        if h.size > MAX_BLOCK_SIZE || h.offset.saturating_add(h.size) > self.file.len() {
            return Err(Error::corruption(
                &self.path,
                h.offset,
                format!("block handle of {} bytes points outside the file", h.size),
            ));
        }
        Ok(())
    }

    /// Verify the trailer of `raw` (a block's contents and its trailer, as
    /// read from `h.offset`) and return the contents.
    fn check_trailer<'a>(&self, raw: &'a [u8], h: BlockHandle) -> Result<&'a [u8]> {
        let n = h.size as usize;
        let kind = raw[n];
        let stored = u32::from_le_bytes([raw[n + 1], raw[n + 2], raw[n + 3], raw[n + 4]]);
        if stored != block_crc(&raw[..n], kind) {
            return Err(Error::corruption(
                &self.path,
                h.offset,
                "block checksum mismatch",
            ));
        }
        if kind != 0 {
            return Err(Error::corruption(
                &self.path,
                h.offset,
                format!("unknown block type {kind}"),
            ));
        }
        Ok(&raw[..n])
    }

    /// Read and checksum a block's contents.
    fn read_raw(&self, h: BlockHandle) -> Result<Vec<u8>> {
        self.check_handle(h)?;
        let mut buf = self
            .file
            .read_at(h.offset, h.size as usize + TRAILER_SIZE)?;
        self.check_trailer(&buf, h)?;
        buf.truncate(h.size as usize);
        Ok(buf)
    }

    /// Read consecutive blocks (`run` sorted, each starting where the
    /// previous one's trailer ends) with one read, checksumming each. With
    /// `own`, each block gets its own copy (to be cached); otherwise they
    /// share the read buffer.
    fn read_run(&self, run: &[BlockHandle], own: bool) -> Result<Vec<Arc<Block>>> {
        // A damaged block after the first ends the run instead of failing
        // it: the scan may stop before reaching it, and if it does reach it,
        // reading it alone reports it by its own offset.
        if let Some(&h) = run.first() {
            self.check_handle(h)?;
        }
        let good = run
            .iter()
            .position(|&h| self.check_handle(h).is_err())
            .unwrap_or(run.len());
        let run = &run[..good];
        let (Some(first), Some(last)) = (run.first(), run.last()) else {
            return Ok(Vec::new());
        };
        let end = last.offset + last.size + TRAILER_SIZE as u64;
        let buf = Arc::new(
            self.file
                .read_at(first.offset, (end - first.offset) as usize)?,
        );
        let mut out = Vec::with_capacity(run.len());
        for &h in run {
            let at = (h.offset - first.offset) as usize;
            let n = h.size as usize;
            let block = self
                .check_trailer(&buf[at..at + n + TRAILER_SIZE], h)
                .and_then(|contents| {
                    if own {
                        Block::parse(contents.to_vec(), &self.path, h.offset)
                    } else {
                        Block::parse_shared(buf.clone(), at, n, &self.path, h.offset)
                    }
                });
            match block {
                Ok(b) => out.push(Arc::new(b)),
                Err(e) if out.is_empty() => return Err(e),
                Err(_) => break,
            }
        }
        Ok(out)
    }

    /// The block at `h` if the block cache holds it.
    fn cached(&self, h: BlockHandle) -> Option<Arc<Block>> {
        self.cache.as_ref()?.get(self.number, h.offset)
    }

    fn read_block(&self, h: BlockHandle) -> Result<Arc<Block>> {
        if let Some(b) = self.cached(h) {
            return Ok(b);
        }
        let b = Arc::new(Block::parse(self.read_raw(h)?, &self.path, h.offset)?);
        if let Some(c) = &self.cache {
            c.insert(self.number, h.offset, b.clone());
        }
        Ok(b)
    }

    fn decode_handle(&self, v: &[u8]) -> Result<BlockHandle> {
        BlockHandle::decode(&mut Decoder::new(v))
            .ok_or_else(|| Error::corruption(&self.path, 0, "bad block handle in index"))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file_number(&self) -> u64 {
        self.number
    }

    pub fn properties(&self) -> &TableProperties {
        &self.props
    }

    /// The table's range tombstones, fragmented.
    pub fn range_deletions(&self) -> &Arc<Fragments> {
        &self.range_dels
    }

    pub fn may_contain(&self, ukey: &[u8]) -> bool {
        bloom_may_contain(&self.filter, ukey)
    }

    /// First entry >= `lookup` if it has the same user key.
    pub fn get(&self, lookup: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let ukey = user_key(lookup);
        if !self.may_contain(ukey) {
            return Ok(None);
        }
        let mut idx = BlockIter::new(self.index.clone(), compare_internal);
        idx.seek(lookup);
        if let Some(e) = idx.error.take() {
            return Err(Error::corruption(
                &self.path,
                0,
                format!("index block: {e}"),
            ));
        }
        if !idx.valid() {
            return Ok(None);
        }
        let h = self.decode_handle(idx.value())?;
        let mut it = BlockIter::new(self.read_block(h)?, compare_internal);
        it.seek(lookup);
        if let Some(e) = it.error {
            return Err(Error::corruption(&self.path, h.offset, e));
        }
        if it.valid() && user_key(it.key()) == ukey {
            return Ok(Some((it.key().to_vec(), it.value().to_vec())));
        }
        Ok(None)
    }

    pub fn iter(self: &Arc<Self>) -> TableIterator {
        self.iter_with(None)
    }

    /// An iterator that reads data blocks ahead as `ahead` says.
    pub fn iter_with(self: &Arc<Self>, ahead: Option<ReadAhead>) -> TableIterator {
        TableIterator {
            table: self.clone(),
            index: BlockIter::new(self.index.clone(), compare_internal),
            data: None,
            data_offset: 0,
            error: None,
            ahead,
            prefetched: VecDeque::new(),
            sequential: 0,
        }
    }

    pub fn index_entries(&self) -> Result<Vec<(Vec<u8>, BlockHandle)>> {
        let mut out = Vec::new();
        let mut idx = BlockIter::new(self.index.clone(), compare_internal);
        idx.seek_to_first();
        while idx.valid() {
            out.push((idx.key().to_vec(), self.decode_handle(idx.value())?));
            idx.next();
        }
        if let Some(e) = idx.error {
            return Err(Error::corruption(
                &self.path,
                0,
                format!("index block: {e}"),
            ));
        }
        Ok(out)
    }

    /// Every entry of the data block at `h` (read past the cache), or the
    /// error that names the damage; `repair` salvages a table block by block.
    pub fn block_entries(&self, h: BlockHandle) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let b = Arc::new(Block::parse(self.read_raw(h)?, &self.path, h.offset)?);
        let mut it = BlockIter::new(b, compare_internal);
        it.seek_to_first();
        let mut out = Vec::new();
        while it.valid() {
            out.push((it.key().to_vec(), it.value().to_vec()));
            it.next();
        }
        match it.error {
            Some(e) => Err(Error::corruption(&self.path, h.offset, e)),
            None => Ok(out),
        }
    }

    /// Read every block (checksums) and check that keys strictly increase.
    pub fn verify(&self) -> Result<()> {
        let mut last: Option<Vec<u8>> = None;
        for (_, h) in self.index_entries()? {
            let b = Arc::new(Block::parse(self.read_raw(h)?, &self.path, h.offset)?);
            let mut it = BlockIter::new(b, compare_internal);
            it.seek_to_first();
            while it.valid() {
                if parse_internal_key(it.key()).is_none() {
                    return Err(Error::corruption(
                        &self.path,
                        h.offset,
                        "malformed internal key",
                    ));
                }
                if let Some(l) = &last {
                    if compare_internal(l, it.key()) != Ordering::Less {
                        return Err(Error::corruption(&self.path, h.offset, "keys out of order"));
                    }
                }
                last = Some(it.key().to_vec());
                it.next();
            }
            if let Some(e) = it.error {
                return Err(Error::corruption(&self.path, h.offset, e));
            }
        }
        Ok(())
    }
}

/// How a scan reads ahead. A range scan that will visit many consecutive
/// data blocks (a file read of 1 MiB is 256 chunk blocks; compaction reads
/// whole tables) would otherwise pay one `pread` per 4 KiB block; with a
/// `ReadAhead` the table iterator reads a run of consecutive blocks that may
/// hold keys below `upper` with a single read of at most `max_bytes`.
#[derive(Clone, Debug)]
pub struct ReadAhead {
    /// Exclusive user-key bound of the scan (None: to the end of the table).
    pub upper: Option<Arc<[u8]>>,
    pub max_bytes: usize,
    /// Whether blocks read by this scan go into the block cache
    /// (compaction's do not: they would only evict hot blocks).
    pub fill_cache: bool,
}

/// Two-level iterator: the index block chooses data blocks.
pub struct TableIterator {
    table: Arc<Table>,
    index: BlockIter,
    data: Option<BlockIter>,
    data_offset: u64,
    error: Option<Error>,
    ahead: Option<ReadAhead>,
    /// Blocks read ahead, by offset, in file order.
    prefetched: VecDeque<(u64, Arc<Block>)>,
    /// Blocks stepped into by `next` since the last seek.
    sequential: u32,
}

impl TableIterator {
    fn load_block(&mut self) -> bool {
        self.data = None;
        if !self.index.valid() {
            if let Some(e) = self.index.error.take() {
                self.error = Some(Error::corruption(
                    &self.table.path,
                    0,
                    format!("index block: {e}"),
                ));
            }
            return false;
        }
        let h = match self.table.decode_handle(self.index.value()) {
            Ok(h) => h,
            Err(e) => {
                self.error = Some(e);
                return false;
            }
        };
        match self.fetch(h) {
            Ok(b) => {
                self.data = Some(BlockIter::new(b, compare_internal));
                self.data_offset = h.offset;
                true
            }
            Err(e) => {
                self.error = Some(e);
                false
            }
        }
    }

    /// The block at `h`: read ahead, cached, or read now (with the blocks
    /// after it when reading ahead).
    fn fetch(&mut self, h: BlockHandle) -> Result<Arc<Block>> {
        while let Some((off, b)) = self.prefetched.pop_front() {
            if off == h.offset {
                return Ok(b);
            }
        }
        let ahead = match &self.ahead {
            Some(a) => a.clone(),
            // An iterator without a plan that has walked from block to block
            // is scanning: read ahead anyway, as RocksDB's auto read-ahead does.
            None if self.sequential >= AUTO_READ_AHEAD_AFTER => ReadAhead {
                upper: None,
                max_bytes: AUTO_READ_AHEAD_BYTES,
                fill_cache: true,
            },
            None => return self.table.read_block(h),
        };
        let table = self.table.clone();
        if let Some(b) = table.cached(h) {
            return Ok(b);
        }
        let run = self.run_from(h, &ahead)?;
        let mut blocks = table.read_run(&run, ahead.fill_cache)?.into_iter();
        let first = blocks
            .next()
            .ok_or_else(|| Error::corruption(&table.path, h.offset, "empty read-ahead run"))?;
        for (hb, b) in run.iter().zip(std::iter::once(first.clone()).chain(blocks)) {
            if ahead.fill_cache {
                if let Some(c) = &table.cache {
                    c.insert(table.number, hb.offset, b.clone());
                }
            }
            if hb.offset != h.offset {
                self.prefetched.push_back((hb.offset, b));
            }
        }
        Ok(first)
    }

    /// `h` and the consecutive blocks after it that the scan may need,
    /// within `ahead.max_bytes`.
    fn run_from(&self, h: BlockHandle, ahead: &ReadAhead) -> Result<Vec<BlockHandle>> {
        let mut run = vec![h];
        let mut bytes = h.size + TRAILER_SIZE as u64;
        let mut idx = self.index.clone();
        loop {
            // The index key is the block's last key: if it is at or past the
            // bound, later blocks hold nothing the scan wants.
            if !idx.valid()
                || ahead
                    .upper
                    .as_deref()
                    .is_some_and(|u| user_key(idx.key()) >= u)
            {
                break;
            }
            idx.next();
            if !idx.valid() {
                break;
            }
            let Some(last) = run.last() else { break };
            let next = self.table.decode_handle(idx.value())?;
            let size = next.size + TRAILER_SIZE as u64;
            if next.offset != last.offset + last.size + TRAILER_SIZE as u64
                || bytes + size > ahead.max_bytes as u64
            {
                break;
            }
            bytes += size;
            run.push(next);
        }
        Ok(run)
    }

    /// Move to following blocks while the current one is exhausted.
    fn skip_empty(&mut self) {
        loop {
            match &mut self.data {
                Some(d) if d.valid() => return,
                Some(d) => {
                    if let Some(e) = d.error.take() {
                        self.error = Some(Error::corruption(&self.table.path, self.data_offset, e));
                        self.data = None;
                        return;
                    }
                }
                None => return,
            }
            self.index.next();
            self.sequential += 1;
            if !self.load_block() {
                return;
            }
            if let Some(d) = self.data.as_mut() {
                d.seek_to_first();
            }
        }
    }
}

impl InternalIterator for TableIterator {
    fn valid(&self) -> bool {
        self.error.is_none() && self.data.as_ref().is_some_and(|d| d.valid())
    }

    fn seek_to_first(&mut self) {
        self.error = None;
        self.sequential = 0;
        self.index.seek_to_first();
        if self.load_block() {
            if let Some(d) = self.data.as_mut() {
                d.seek_to_first();
            }
            self.skip_empty();
        }
    }

    fn seek(&mut self, target: &[u8]) {
        self.error = None;
        self.sequential = 0;
        self.index.seek(target);
        if self.load_block() {
            if let Some(d) = self.data.as_mut() {
                d.seek(target);
            }
            self.skip_empty();
        }
    }

    fn next(&mut self) {
        if let Some(d) = self.data.as_mut() {
            d.next();
        }
        self.skip_empty();
    }

    fn key(&self) -> &[u8] {
        self.data.as_ref().map_or(&[], |d| d.key())
    }

    fn value(&self) -> &[u8] {
        self.data.as_ref().map_or(&[], |d| d.value())
    }

    fn status(&self) -> Result<()> {
        match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::dbformat::{lookup_key, make_internal_key, ValueType};
    use crate::engine::env::Env;
    use crate::engine::fault_env::FaultEnv;

    fn opts() -> TableOptions {
        TableOptions {
            block_size: 256,
            restart_interval: 4,
            bloom_bits_per_key: 10,
        }
    }

    fn build(env: &FaultEnv, path: &Path, entries: &[(Vec<u8>, Vec<u8>)]) -> Arc<Table> {
        let f = env.create_writable(path).unwrap();
        let mut b = TableBuilder::new(f, opts());
        for (k, v) in entries {
            b.add(k, v).unwrap();
        }
        let s = b.finish().unwrap();
        assert_eq!(s.num_entries, entries.len() as u64);
        let size = env.file_size(path).unwrap();
        assert_eq!(size, s.file_size);
        Table::open(
            env.open_random_access(path).unwrap(),
            path.to_path_buf(),
            1,
            size,
            Some(Arc::new(BlockCache::new(1 << 20))),
        )
        .unwrap()
    }

    /// Open the table at `p` again, without a block cache.
    fn open_uncached(env: &FaultEnv, p: &Path, number: u64) -> Arc<Table> {
        let size = env.file_size(p).unwrap();
        Table::open(
            env.open_random_access(p).unwrap(),
            p.to_path_buf(),
            number,
            size,
            None,
        )
        .unwrap()
    }

    fn entries(n: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
        (0..n)
            .map(|i| {
                (
                    make_internal_key(
                        format!("key-with-long-shared-prefix-{i:06}").as_bytes(),
                        1000 + i as u64,
                        ValueType::Value,
                    ),
                    format!("value{i}")
                        .repeat((i % 7) as usize + 1)
                        .into_bytes(),
                )
            })
            .collect()
    }

    #[test]
    fn range_deletions_widen_the_table_and_bump_its_version() {
        let env = FaultEnv::new();
        let p = Path::new("/r.sst");
        let f = env.create_writable(p).unwrap();
        let mut b = TableBuilder::new(f, opts());
        b.add(&make_internal_key(b"m", 5, ValueType::Value), b"v")
            .unwrap();
        b.add_range_deletion(RangeTombstone::new(b"c", b"k", 9));
        b.add_range_deletion(RangeTombstone::new(b"p", b"t", 3));
        b.add_range_deletion(RangeTombstone::new(b"x", b"x", 3));
        let s = b.finish().unwrap();
        assert_eq!(
            s.smallest,
            make_internal_key(b"c", 9, ValueType::RangeDeletion)
        );
        assert_eq!(s.largest, range_end_sentinel(b"t"));
        assert_eq!((s.smallest_seq, s.largest_seq), (3, 9));
        let t = open_uncached(&env, p, 1);
        assert_eq!(t.properties().num_range_deletions, 2);
        assert_eq!(t.range_deletions().max_covering(b"d", 100), 9);
        assert_eq!(t.range_deletions().max_covering(b"m", 100), 0);
        let raw = env.read_all(p).unwrap();
        assert_eq!(raw[raw.len() - 8..], MAGIC_V2.to_le_bytes());
        // A table without range deletions keeps version 1.
        let t1 = build(&env, Path::new("/plain.sst"), &entries(10));
        assert!(t1.range_deletions().is_empty());
        let raw = env.read_all(Path::new("/plain.sst")).unwrap();
        assert_eq!(raw[raw.len() - 8..], MAGIC.to_le_bytes());
        // Only tombstones: still a table.
        let f = env.create_writable(Path::new("/only.sst")).unwrap();
        let mut b = TableBuilder::new(f, opts());
        b.add_range_deletion(RangeTombstone::new(b"a", b"b", 1));
        assert!(!b.is_empty());
        b.finish().unwrap();
        let t = open_uncached(&env, Path::new("/only.sst"), 2);
        assert_eq!(t.range_deletions().len(), 1);
        t.verify().unwrap();
    }

    #[test]
    fn get_iterate_and_seek() {
        let env = FaultEnv::new();
        let p = Path::new("/t.sst");
        let es = entries(2000);
        let t = build(&env, p, &es);
        assert!(t.properties().num_data_blocks > 10);
        for (k, v) in es.iter().step_by(7) {
            let uk = user_key(k);
            let got = t.get(&lookup_key(uk, u64::MAX >> 8)).unwrap().unwrap();
            assert_eq!(&got.1, v);
            assert!(
                t.get(&lookup_key(uk, 999)).unwrap().is_none(),
                "older than any entry"
            );
        }
        assert!(t.get(&lookup_key(b"nope", 5000)).unwrap().is_none());
        let mut it = t.iter();
        it.seek_to_first();
        let mut n = 0;
        while it.valid() {
            assert_eq!(it.key(), &es[n].0[..]);
            assert_eq!(it.value(), &es[n].1[..]);
            n += 1;
            it.next();
        }
        assert_eq!(n, es.len());
        for (i, (k, _)) in es.iter().enumerate().step_by(13) {
            it.seek(k);
            assert_eq!(it.key(), &k[..], "seek to entry {i}");
        }
        it.seek(&lookup_key(b"zzz", 1));
        assert!(!it.valid());
        t.verify().unwrap();
    }

    #[test]
    fn versions_of_one_key_and_large_values() {
        let env = FaultEnv::new();
        let p = Path::new("/v.sst");
        let es = vec![
            (
                make_internal_key(b"a", 9, ValueType::Value),
                vec![9u8; 1000],
            ),
            (make_internal_key(b"a", 5, ValueType::Deletion), vec![]),
            (
                make_internal_key(b"a", 2, ValueType::Value),
                b"old".to_vec(),
            ),
            (
                make_internal_key(b"b", 1, ValueType::Value),
                vec![1u8; 5000],
            ),
        ];
        let t = build(&env, p, &es);
        assert_eq!(
            t.get(&lookup_key(b"a", 100)).unwrap().unwrap().1,
            vec![9u8; 1000]
        );
        let (k, _) = t.get(&lookup_key(b"a", 6)).unwrap().unwrap();
        assert_eq!(
            parse_internal_key(&k).unwrap().value_type,
            ValueType::Deletion
        );
        assert_eq!(t.get(&lookup_key(b"a", 3)).unwrap().unwrap().1, b"old");
        assert_eq!(t.get(&lookup_key(b"b", 3)).unwrap().unwrap().1.len(), 5000);
    }

    #[test]
    fn bloom_false_positive_rate() {
        let hashes: Vec<u32> = (0..10000u32)
            .map(|i| bloom_hash(format!("k{i}").as_bytes()))
            .collect();
        let f = build_bloom(&hashes, 10);
        for i in 0..10000u32 {
            assert!(bloom_may_contain(&f, format!("k{i}").as_bytes()));
        }
        let fp = (0..10000u32)
            .filter(|i| bloom_may_contain(&f, format!("x{i}").as_bytes()))
            .count();
        assert!(fp < 300, "false positives {fp} of 10000");
    }

    /// Counts the reads and bytes a table makes.
    struct CountingFile {
        inner: Box<dyn RandomAccessFile>,
        reads: Arc<std::sync::atomic::AtomicU64>,
        bytes: Arc<std::sync::atomic::AtomicU64>,
    }

    impl RandomAccessFile for CountingFile {
        fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
            use std::sync::atomic::Ordering::Relaxed;
            self.reads.fetch_add(1, Relaxed);
            self.bytes.fetch_add(len as u64, Relaxed);
            self.inner.read_at(offset, len)
        }
        fn len(&self) -> u64 {
            self.inner.len()
        }
    }

    #[test]
    fn read_ahead_reads_runs_up_to_the_bound() {
        use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
        let env = FaultEnv::new();
        let p = Path::new("/ra.sst");
        let es = entries(2000);
        build(&env, p, &es);
        let (reads, bytes) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let file = CountingFile {
            inner: env.open_random_access(p).unwrap(),
            reads: reads.clone(),
            bytes: bytes.clone(),
        };
        let cache = Arc::new(BlockCache::new(1 << 20));
        let size = env.file_size(p).unwrap();
        let t = Table::open(Box::new(file), p.to_path_buf(), 7, size, Some(cache)).unwrap();
        let index = t.index_entries().unwrap();
        for (case, (first, upper, max_bytes, fill_cache)) in [
            (100usize, Some(1500usize), 4096usize, false),
            (0, None, 1 << 20, false),
            (1999, Some(1999), 4096, false),
            (700, Some(900), 1000, true),
            (700, Some(900), 1000, true), // now from the cache
        ]
        .into_iter()
        .enumerate()
        {
            let upper_key = upper.map(|u| user_key(&es[u].0).to_vec());
            let mut it = t.iter_with(Some(ReadAhead {
                upper: upper_key.as_deref().map(Arc::from),
                max_bytes,
                fill_cache,
            }));
            reads.store(0, Relaxed);
            bytes.store(0, Relaxed);
            it.seek(&es[first].0);
            let mut n = first;
            while it.valid() && upper_key.as_deref().is_none_or(|u| user_key(it.key()) < u) {
                assert_eq!((it.key(), it.value()), (&es[n].0[..], &es[n].1[..]));
                n += 1;
                it.next();
            }
            it.status().unwrap();
            assert_eq!(n, upper.unwrap_or(es.len()), "scan from {first}");
            // The blocks the scan needs: from the one holding `first` to the
            // one holding the bound.
            let wanted: Vec<&BlockHandle> = index
                .iter()
                .filter(|(last, _)| compare_internal(last, &es[first].0) != Ordering::Less)
                .take_while(|(_, h)| {
                    upper_key.as_deref().is_none_or(|u| {
                        index
                            .iter()
                            .take_while(|(_, x)| x.offset < h.offset)
                            .all(|(l, _)| user_key(l) < u)
                    })
                })
                .map(|(_, h)| h)
                .collect();
            let need: u64 = wanted.iter().map(|h| h.size + TRAILER_SIZE as u64).sum();
            if case == 4 {
                assert_eq!(reads.load(Relaxed), 0, "the previous scan filled the cache");
            } else {
                assert_eq!(bytes.load(Relaxed), need, "bytes read from {first}");
                // Blocks here are under 400 bytes: a run holds at least
                // max_bytes / 400 of them.
                let per_run = (max_bytes / 400).max(1);
                let got = reads.load(Relaxed) as usize;
                assert!(
                    got <= wanted.len().div_ceil(per_run) + 1,
                    "{got} reads for {} blocks in runs of {max_bytes} bytes",
                    wanted.len()
                );
                assert!(index.iter().all(|(_, h)| h.size < 400));
            }
        }
    }

    /// A plain iterator that keeps stepping into the next block starts
    /// reading ahead by itself; one that seeks around does not.
    #[test]
    fn plain_iterator_reads_ahead_once_it_is_scanning() {
        use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
        let env = FaultEnv::new();
        let p = Path::new("/auto.sst");
        let es = entries(3000);
        build(&env, p, &es);
        let reads = Arc::new(AtomicU64::new(0));
        let file = CountingFile {
            inner: env.open_random_access(p).unwrap(),
            reads: reads.clone(),
            bytes: Arc::new(AtomicU64::new(0)),
        };
        let size = env.file_size(p).unwrap();
        let t = Table::open(Box::new(file), p.to_path_buf(), 9, size, None).unwrap();
        let blocks = t.index_entries().unwrap().len() as u64;
        reads.store(0, Relaxed);
        let mut it = t.iter();
        it.seek_to_first();
        let mut n = 0;
        while it.valid() {
            assert_eq!(it.key(), &es[n].0[..]);
            n += 1;
            it.next();
        }
        assert_eq!(n, es.len());
        let scanned = reads.load(Relaxed);
        assert!(scanned * 20 < blocks, "{scanned} reads for {blocks} blocks");
        reads.store(0, Relaxed);
        for (k, _) in es.iter().step_by(300) {
            it.seek(k);
            assert_eq!(it.key(), &k[..]);
        }
        assert_eq!(reads.load(Relaxed), 10, "one block per seek");
    }

    #[test]
    fn read_ahead_names_a_damaged_block_in_a_run() {
        let env = FaultEnv::new();
        let p = Path::new("/rc.sst");
        let es = entries(1000);
        build(&env, p, &es);
        let t = open_uncached(&env, p, 3);
        let index = t.index_entries().unwrap();
        let h = index[5].1;
        assert!(env.corrupt_byte(p, h.offset as usize + 3));
        let t = open_uncached(&env, p, 3);
        let mut it = t.iter_with(Some(ReadAhead {
            upper: None,
            max_bytes: 1 << 20,
            fill_cache: false,
        }));
        it.seek_to_first();
        let mut n = 0;
        while it.valid() {
            n += 1;
            it.next();
        }
        // Everything before the damaged block was returned; the error came
        // when the scan reached it.
        let before = es
            .iter()
            .filter(|(k, _)| compare_internal(k, &index[4].0) != Ordering::Greater)
            .count();
        assert_eq!(n, before);
        let err = it.status().unwrap_err();
        assert!(err.is_corruption(), "{err}");
        assert!(
            err.to_string().contains(&format!("offset {}", h.offset)),
            "{err}"
        );
    }

    #[test]
    fn corruption_names_file_and_offset() {
        let env = FaultEnv::new();
        let p = Path::new("/c.sst");
        let es = entries(500);
        build(&env, p, &es);
        assert!(env.corrupt_byte(p, 100));
        let t = open_uncached(&env, p, 2);
        let err = t.verify().unwrap_err();
        assert!(
            err.to_string().contains("/c.sst") && err.to_string().contains("offset 0"),
            "{err}"
        );
        let mut it = t.iter();
        it.seek_to_first();
        assert!(!it.valid());
        assert!(it.status().unwrap_err().is_corruption());
        let e = t.get(&lookup_key(user_key(&es[0].0), 1 << 40)).unwrap_err();
        assert!(e.is_corruption());
    }

    #[test]
    fn truncated_or_garbage_files_never_panic() {
        let env = FaultEnv::new();
        let p = Path::new("/g.sst");
        build(&env, p, &entries(300));
        let data = env.file_contents(p).unwrap();
        for cut in [0usize, 10, 47, 48, data.len() / 2, data.len() - 1] {
            let q = Path::new("/cut.sst");
            let mut f = env.create_writable(q).unwrap();
            f.append(&data[..cut]).unwrap();
            drop(f);
            let r = Table::open(
                env.open_random_access(q).unwrap(),
                q.to_path_buf(),
                3,
                cut as u64,
                None,
            );
            assert!(r.is_err(), "cut {cut}");
        }
        let mut seed = 7u64;
        for round in 0..200 {
            let mut d = data.clone();
            for _ in 0..4 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let i = (seed >> 33) as usize % d.len();
                d[i] = (seed >> 20) as u8;
            }
            let q = PathBuf::from(format!("/r{round}.sst"));
            let mut f = env.create_writable(&q).unwrap();
            f.append(&d).unwrap();
            drop(f);
            if let Ok(t) = Table::open(
                env.open_random_access(&q).unwrap(),
                q.clone(),
                4,
                d.len() as u64,
                None,
            ) {
                let _ = t.verify();
                let mut it = t.iter();
                it.seek_to_first();
                while it.valid() {
                    it.next();
                }
                let _ = t.get(&lookup_key(b"key-with", 5));
            }
        }
    }
}
