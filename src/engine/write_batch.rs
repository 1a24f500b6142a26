//! WriteBatch: a group of puts and deletes applied atomically.
//!
//! Its byte representation is also the WAL record payload, so a batch is
//! logged in one record and replayed whole or not at all:
//!
//! ```text
//! sequence fixed64 LE | count fixed32 LE | record*
//! record := 0x01 varint32(klen) key varint32(vlen) value   (put)
//!         | 0x00 varint32(klen) key                          (delete)
//!         | 0x02 varint32(slen) start varint32(elen) end      (delete range)
//!         | 0x03 varint32(klen) key varint32(rlen) reference  (put, value in a blob log)
//! ```
//!
//! Entry i gets sequence number `sequence + i`, so a range deletion hides
//! the batch's own earlier entries in its range and none of its later ones.
//! Tag 2 is new with range deletions: a WAL of an older build has none,
//! and replays as before. Tag 3 is new with blob logs (see `blob`): the
//! value of a large put went to the blob log beside the WAL and the record
//! carries its reference; replay reads the value back from there.
//!
//! In memory only, a large value given by value (`put_owned`) stays out
//! of line — `0x04 varint32(klen) key`, the n-th such entry's value being
//! the n-th of the batch's own list of values — so that a MiB of file data is moved, not copied,
//! on its way to the blob log. Such a batch is never logged as it is: the
//! write path diverts those values to the blob log or `inline_values`
//! first, and a WAL record holding tag 4 does not decode.

use super::coding::{put_length_prefixed, Decoder};
use super::dbformat::{ValueType, MAX_SEQUENCE};
use super::memtable::MemTable;
use super::range_del::RangeTombstone;

pub const HEADER: usize = 12;
/// `put_owned` keeps values of at least this many bytes out of line.
pub const OUT_OF_LINE_MIN: usize = 512;
/// The in-memory tag of an out-of-line put.
const TAG_OUT_OF_LINE: u8 = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteBatch {
    rep: Vec<u8>,
    /// Out-of-line values (tag 4), in entry order.
    values: Vec<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchEntry<'a> {
    Put(&'a [u8], &'a [u8]),
    Delete(&'a [u8]),
    /// Every key in `[start, end)`.
    DeleteRange(&'a [u8], &'a [u8]),
    /// A put whose value is in a blob file: key, encoded `BlobRef`.
    BlobRef(&'a [u8], &'a [u8]),
}

impl Default for WriteBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl WriteBatch {
    pub fn new() -> WriteBatch {
        WriteBatch::with_capacity(0)
    }

    /// An empty batch with room for `bytes` of entries (a large batch then
    /// never grows by copying what it holds).
    pub fn with_capacity(bytes: usize) -> WriteBatch {
        let mut rep = Vec::with_capacity(HEADER + bytes);
        rep.resize(HEADER, 0);
        WriteBatch {
            rep,
            values: Vec::new(),
        }
    }

    pub fn put(&mut self, key: &[u8], value: &[u8]) {
        self.set_count(self.count() + 1);
        self.rep.push(ValueType::Value as u8);
        put_length_prefixed(&mut self.rep, key);
        put_length_prefixed(&mut self.rep, value);
    }

    pub fn delete(&mut self, key: &[u8]) {
        self.set_count(self.count() + 1);
        self.rep.push(ValueType::Deletion as u8);
        put_length_prefixed(&mut self.rep, key);
    }

    /// A put that takes its value: a large one is kept out of line (moved,
    /// not copied; see the module doc).
    pub fn put_owned(&mut self, key: &[u8], value: Vec<u8>) {
        if value.len() < OUT_OF_LINE_MIN {
            return self.put(key, &value);
        }
        self.set_count(self.count() + 1);
        self.rep.push(TAG_OUT_OF_LINE);
        put_length_prefixed(&mut self.rep, key);
        self.values.push(value);
    }

    /// Whether some value is out of line (the batch cannot be logged as is).
    pub fn has_out_of_line(&self) -> bool {
        !self.values.is_empty()
    }

    /// Bring every out-of-line value into the representation.
    pub fn inline_values(&mut self) -> Result<(), String> {
        if self.values.is_empty() {
            return Ok(());
        }
        let mut out = WriteBatch::with_capacity(self.approximate_size());
        out.append_entries(self)?;
        out.set_sequence(self.sequence());
        *self = out;
        Ok(())
    }

    /// A put of `key` whose value is the blob record `reference` names.
    pub fn put_blob_ref(&mut self, key: &[u8], reference: &[u8]) {
        self.set_count(self.count() + 1);
        self.rep.push(ValueType::BlobIndex as u8);
        put_length_prefixed(&mut self.rep, key);
        put_length_prefixed(&mut self.rep, reference);
    }

    /// Delete every key `k` with `start <= k < end`.
    pub fn delete_range(&mut self, start: &[u8], end: &[u8]) {
        self.set_count(self.count() + 1);
        self.rep.push(ValueType::RangeDeletion as u8);
        put_length_prefixed(&mut self.rep, start);
        put_length_prefixed(&mut self.rep, end);
    }

    pub fn clear(&mut self) {
        self.rep.clear();
        self.rep.resize(HEADER, 0);
        self.values.clear();
    }

    pub fn count(&self) -> u32 {
        u32::from_le_bytes([self.rep[8], self.rep[9], self.rep[10], self.rep[11]])
    }

    fn set_count(&mut self, n: u32) {
        self.rep[8..12].copy_from_slice(&n.to_le_bytes());
    }

    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    pub fn approximate_size(&self) -> usize {
        self.rep.len() + self.values.iter().map(Vec::len).sum::<usize>()
    }

    pub fn sequence(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.rep[..8]);
        u64::from_le_bytes(b)
    }

    pub fn set_sequence(&mut self, seq: u64) {
        self.rep[..8].copy_from_slice(&seq.to_le_bytes());
    }

    /// Append `other`'s entries (group commit); its out-of-line values
    /// are moved over, after this batch's own as its entries are.
    pub fn append(&mut self, mut other: WriteBatch) {
        self.set_count(self.count() + other.count());
        self.rep.extend_from_slice(&other.rep[HEADER..]);
        self.values.append(&mut other.values);
    }

    /// Each entry of `other`, with out-of-line values copied in (the count
    /// is `other`'s added).
    fn append_entries(&mut self, other: &WriteBatch) -> Result<(), String> {
        for e in other.iter() {
            match e? {
                BatchEntry::Put(k, v) => self.put(k, v),
                BatchEntry::Delete(k) => self.delete(k),
                BatchEntry::DeleteRange(s, e) => self.delete_range(s, e),
                BatchEntry::BlobRef(k, r) => self.put_blob_ref(k, r),
            }
        }
        Ok(())
    }

    /// The WAL payload. Only for a batch with no out-of-line values
    /// (`inline_values`): their entries would not decode.
    pub fn data(&self) -> &[u8] {
        debug_assert!(self.values.is_empty(), "out-of-line values in a WAL record");
        &self.rep
    }

    /// Rebuild a batch from a WAL record.
    pub fn from_data(data: Vec<u8>) -> Result<WriteBatch, String> {
        if data.len() < HEADER {
            return Err(format!(
                "write batch of {} bytes is shorter than its header",
                data.len()
            ));
        }
        Ok(WriteBatch {
            rep: data,
            values: Vec::new(),
        })
    }

    pub fn iter(&self) -> BatchIter<'_> {
        BatchIter {
            d: Decoder::new(&self.rep[HEADER..]),
            values: self.values.iter(),
            failed: false,
        }
    }

    /// Insert every entry into `mem` with consecutive sequence numbers;
    /// checks the record count against the header.
    /// Sequence numbers past `MAX_SEQUENCE` (which would not fit an
    /// internal key) are an error, as is a count the record cannot hold.
    pub fn insert_into(&self, mem: &MemTable) -> Result<(), String> {
        let last = self.sequence().checked_add(self.count() as u64);
        if last.is_none_or(|l| l > MAX_SEQUENCE) {
            return Err(format!(
                "write batch sequence {} + {} entries is past the largest sequence number",
                self.sequence(),
                self.count()
            ));
        }
        let mut n = 0u32;
        // An entry takes at least 2 bytes: a damaged count must not size
        // the allocation.
        let cap = (self.count() as usize).min((self.rep.len() - HEADER) / 2);
        let mut entries = Vec::with_capacity(cap);
        let mut ranges = Vec::new();
        for (seq, e) in (self.sequence()..).zip(self.iter()) {
            match e? {
                BatchEntry::Put(k, v) => entries.push((seq, ValueType::Value, k, v)),
                BatchEntry::Delete(k) => entries.push((seq, ValueType::Deletion, k, &[][..])),
                BatchEntry::DeleteRange(s, e) => ranges.push(RangeTombstone::new(s, e, seq)),
                BatchEntry::BlobRef(k, r) => entries.push((seq, ValueType::BlobIndex, k, r)),
            }
            n += 1;
        }
        if n != self.count() {
            return Err(format!(
                "write batch header says {} entries, found {n}",
                self.count()
            ));
        }
        mem.add_all(&entries);
        mem.add_range_deletions(ranges);
        Ok(())
    }
}

pub struct BatchIter<'a> {
    d: Decoder<'a>,
    /// The out-of-line values still to be met.
    values: std::slice::Iter<'a, Vec<u8>>,
    failed: bool,
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = Result<BatchEntry<'a>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.d.is_empty() {
            return None;
        }
        let at = self.d.pos + HEADER;
        let r = (|| {
            let tag = self.d.u8()?;
            let key = self.d.length_prefixed()?;
            match tag {
                1 => Some(Ok(BatchEntry::Put(key, self.d.length_prefixed()?))),
                0 => Some(Ok(BatchEntry::Delete(key))),
                2 => Some(Ok(BatchEntry::DeleteRange(key, self.d.length_prefixed()?))),
                3 => Some(Ok(BatchEntry::BlobRef(key, self.d.length_prefixed()?))),
                TAG_OUT_OF_LINE => Some(match self.values.next() {
                    Some(v) => Ok(BatchEntry::Put(key, v)),
                    None => Err(format!("unknown write batch tag 4 at byte {at}")),
                }),
                t => Some(Err(format!("unknown write batch tag {t} at byte {at}"))),
            }
        })();
        let r = r.unwrap_or_else(|| Err(format!("truncated write batch entry at byte {at}")));
        if r.is_err() {
            self.failed = true;
        }
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_append() {
        let mut b = WriteBatch::new();
        b.put(b"k1", b"v1");
        b.delete(b"k2");
        let mut c = WriteBatch::new();
        c.put(b"k3", b"");
        c.delete_range(b"a", b"k2");
        b.append(c);
        b.set_sequence(100);
        let d = WriteBatch::from_data(b.data().to_vec()).unwrap();
        assert_eq!(d.count(), 4);
        assert_eq!(d.sequence(), 100);
        let e: Vec<_> = d.iter().map(|x| x.unwrap()).collect();
        assert_eq!(
            e,
            vec![
                BatchEntry::Put(b"k1", b"v1"),
                BatchEntry::Delete(b"k2"),
                BatchEntry::Put(b"k3", b""),
                BatchEntry::DeleteRange(b"a", b"k2"),
            ]
        );
        let mem = MemTable::new();
        d.insert_into(&mem).unwrap();
        assert_eq!(mem.len(), 4);
        // The range deletion (seq 103) hides k1 (seq 100), not what follows it.
        assert_eq!(mem.range_del_cover(b"k1", 200), 103);
        assert_eq!(mem.range_del_cover(b"k2", 200), 0);
    }

    /// Large values given by value stay out of line through group-commit
    /// appends (renumbered), read back in order, and inline into exactly
    /// the representation `put` builds.
    #[test]
    fn out_of_line_values_move_through_appends_and_inline_exactly() {
        let big = |n: u8| vec![n; OUT_OF_LINE_MIN + n as usize];
        let mut a = WriteBatch::new();
        a.put_owned(b"a1", big(1));
        a.put_owned(b"a2", b"small".to_vec());
        a.delete(b"a3");
        let mut b = WriteBatch::new();
        b.put_owned(b"b1", big(2));
        b.delete_range(b"c", b"d");
        b.put_owned(b"b2", big(3));
        let mut plain = WriteBatch::new();
        plain.put(b"a1", &big(1));
        plain.put(b"a2", b"small");
        plain.delete(b"a3");
        plain.put(b"b1", &big(2));
        plain.delete_range(b"c", b"d");
        plain.put(b"b2", &big(3));
        plain.set_sequence(7);
        a.append(b);
        a.set_sequence(7);
        assert!(a.has_out_of_line());
        // Sized as inline, give or take the length prefixes.
        let sizes = (a.approximate_size(), plain.approximate_size());
        assert!(sizes.0.abs_diff(sizes.1) <= 5 * 3, "{sizes:?}");
        let got: Vec<_> = a.iter().map(|e| e.unwrap()).collect();
        let want: Vec<_> = plain.iter().map(|e| e.unwrap()).collect();
        assert_eq!(got, want);
        a.inline_values().unwrap();
        assert!(!a.has_out_of_line());
        assert_eq!(a.data(), plain.data());
        // Tag 4 in a logged record (no values of its own) does not decode.
        let mut c = WriteBatch::new();
        c.put_owned(b"k", big(4));
        let raw = c.rep.clone();
        let logged = WriteBatch::from_data(raw).unwrap();
        assert!(logged.insert_into(&MemTable::new()).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(WriteBatch::from_data(vec![1, 2]).is_err());
        let mut b = WriteBatch::new();
        b.put(b"key", b"value");
        let data = b.data().to_vec();
        for cut in HEADER..data.len() {
            let t = WriteBatch::from_data(data[..cut].to_vec()).unwrap();
            assert!(t.insert_into(&MemTable::new()).is_err(), "cut {cut}");
        }
        let mut bad = data.clone();
        bad[HEADER] = 9;
        assert!(WriteBatch::from_data(bad)
            .unwrap()
            .insert_into(&MemTable::new())
            .is_err());
    }
}
