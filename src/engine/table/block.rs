//! Blocks: sorted key/value entries, prefix-compressed, with restart points
//! for binary search (the data blocks, the index and the metaindex all use
//! this format; see `table`'s module doc for the bytes).

use crate::engine::coding::{get_varint32, put_varint32, Decoder};
use crate::engine::error::{Error, Result};
use std::cmp::Ordering;
use std::path::Path;
use std::sync::Arc;

pub(super) struct BlockBuilder {
    buf: Vec<u8>,
    restarts: Vec<u32>,
    counter: usize,
    last_key: Vec<u8>,
    interval: usize,
}

impl BlockBuilder {
    pub(super) fn new(interval: usize) -> BlockBuilder {
        BlockBuilder {
            buf: Vec::new(),
            restarts: vec![0],
            counter: 0,
            last_key: Vec::new(),
            interval,
        }
    }

    pub(super) fn add(&mut self, key: &[u8], value: &[u8]) {
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

    pub(super) fn estimated_size(&self) -> usize {
        self.buf.len() + self.restarts.len() * 4 + 4
    }

    pub(super) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(super) fn finish(&mut self) -> Vec<u8> {
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
    /// A block of no entries (a table's index until the real one is read).
    pub(super) fn placeholder() -> Block {
        Block {
            buf: Arc::new(vec![0; 8]),
            start: 0,
            len: 8,
            restarts_offset: 0,
            num_restarts: 1,
        }
    }

    pub(super) fn parse(data: Vec<u8>, path: &Path, offset: u64) -> Result<Block> {
        let len = data.len();
        Block::parse_shared(Arc::new(data), 0, len, path, offset)
    }

    pub(super) fn parse_shared(
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

pub(super) type Cmp = fn(&[u8], &[u8]) -> Ordering;

pub(super) fn bytewise(a: &[u8], b: &[u8]) -> Ordering {
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
    pub(super) error: Option<String>,
}

impl BlockIter {
    pub(super) fn new(block: Arc<Block>, cmp: Cmp) -> BlockIter {
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
