//! Reading a table: opening it (footer, index, metaindex, filter,
//! properties, range deletions), point lookups through the filter and the
//! block cache, reads of runs of blocks for scans, and the whole-table
//! verification `check` and `repair` use.

use super::block::{bytewise, Block, BlockIter};
use super::builder::TableProperties;
use super::filter::bloom_may_contain;
use super::format::{
    block_crc, BlockHandle, Footer, FOOTER_SIZE, MAGIC_V2, MAX_BLOCK_SIZE, TRAILER_SIZE,
};
use crate::engine::coding::Decoder;
use crate::engine::dbformat::{compare_internal, parse_internal_key, user_key};
use crate::engine::env::RandomAccessFile;
use crate::engine::error::{Error, Result};
use crate::engine::range_del::{self, Fragments};
use crate::engine::table::block_cache::BlockCache;
use std::cmp::Ordering;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct Table {
    pub(super) file: Box<dyn RandomAccessFile>,
    pub(super) path: PathBuf,
    pub(super) number: u64,
    pub(super) cache: Option<Arc<BlockCache>>,
    pub(super) index: Arc<Block>,
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
        let footer = Footer::decode(&file.read_at(foot_off, FOOTER_SIZE)?)
            .map_err(|m| Error::corruption(&path, foot_off, m))?;
        let (mh, ih, magic) = (footer.metaindex, footer.index, footer.magic);
        let mut t = Table {
            file,
            path,
            number: file_number,
            cache: None,
            index: Arc::new(Block::placeholder()),
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
    pub(super) fn read_run(&self, run: &[BlockHandle], own: bool) -> Result<Vec<Arc<Block>>> {
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
    pub(super) fn cached(&self, h: BlockHandle) -> Option<Arc<Block>> {
        self.cache.as_ref()?.get(self.number, h.offset)
    }

    pub(super) fn read_block(&self, h: BlockHandle) -> Result<Arc<Block>> {
        if let Some(b) = self.cached(h) {
            return Ok(b);
        }
        let b = Arc::new(Block::parse(self.read_raw(h)?, &self.path, h.offset)?);
        if let Some(c) = &self.cache {
            c.insert(self.number, h.offset, b.clone());
        }
        Ok(b)
    }

    pub(super) fn decode_handle(&self, v: &[u8]) -> Result<BlockHandle> {
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
