//! Writing a table: data blocks cut at `block_size`, the index, the filter,
//! the properties, the range deletions, the metaindex and the footer, then
//! one fsync (the caller fsyncs the directory before naming it in an edit).

use super::block::BlockBuilder;
use super::filter::{bloom_hash, build_bloom};
use super::format::{block_crc, BlockHandle, Footer, FOOTER_SIZE, MAGIC, MAGIC_V2, TRAILER_SIZE};
use super::TableOptions;
use crate::engine::coding::put_varint64;
use crate::engine::dbformat::{
    compare_internal, make_internal_key, parse_internal_key, range_end_sentinel, user_key,
    ValueType,
};
use crate::engine::env::WritableFile;
use crate::engine::error::Result;
use crate::engine::range_del::{self, RangeTombstone};
use std::cmp::Ordering;

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
        let footer = Footer {
            metaindex: mh,
            index: ih,
            magic: if has_ranges { MAGIC_V2 } else { MAGIC },
        };
        self.file.append(&footer.encode())?;
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
