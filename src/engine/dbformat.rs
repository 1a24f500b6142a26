//! Internal keys: how user keys, sequence numbers and value types are packed.
//!
//! An internal key is `user_key ++ fixed64_le(seq << 8 | type)`. Internal keys
//! order by user key ascending, then by sequence number *descending*, so a
//! forward seek to `(key, snapshot_seq)` lands on the newest version visible
//! at that snapshot. Memtables and SSTables store internal keys; only the
//! bloom filter and user-facing APIs see bare user keys.

use std::cmp::Ordering;

pub type SequenceNumber = u64;

/// Largest sequence number that fits in the 56 bits left beside the type.
pub const MAX_SEQUENCE: SequenceNumber = (1u64 << 56) - 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ValueType {
    Deletion = 0,
    Value = 1,
    /// A range tombstone (see `range_del`). Never an entry of the key
    /// stream: it types the WAL record and the bound keys a table's
    /// tombstones give its MANIFEST entry.
    RangeDeletion = 2,
    /// A value kept in a blob file: the entry's value is a blob reference
    /// (see `blob`). Only in tables.
    BlobIndex = 3,
}

impl ValueType {
    pub fn from_u8(b: u8) -> Option<ValueType> {
        match b {
            0 => Some(ValueType::Deletion),
            1 => Some(ValueType::Value),
            2 => Some(ValueType::RangeDeletion),
            3 => Some(ValueType::BlobIndex),
            _ => None,
        }
    }
}

/// The type used when seeking: with equal user key and sequence, sorts
/// first — so it is the highest type (LevelDB's kValueTypeForSeek).
pub const VALUE_TYPE_FOR_SEEK: ValueType = ValueType::BlobIndex;

pub fn pack_tag(seq: SequenceNumber, t: ValueType) -> u64 {
    (seq << 8) | t as u64
}

pub fn make_internal_key(user_key: &[u8], seq: SequenceNumber, t: ValueType) -> Vec<u8> {
    let mut k = Vec::with_capacity(user_key.len() + 8);
    append_internal_key(&mut k, user_key, seq, t);
    k
}

pub fn append_internal_key(dst: &mut Vec<u8>, user_key: &[u8], seq: SequenceNumber, t: ValueType) {
    dst.extend_from_slice(user_key);
    dst.extend_from_slice(&pack_tag(seq, t).to_le_bytes());
}

/// The internal key bounding a range tombstone's exclusive `end` from
/// above: it sorts before every real entry of `end`, so a table whose
/// largest key it is does not claim `end` itself.
pub fn range_end_sentinel(end: &[u8]) -> Vec<u8> {
    make_internal_key(end, MAX_SEQUENCE, ValueType::RangeDeletion)
}

/// The key to seek for the newest version of `user_key` visible at `seq`.
pub fn lookup_key(user_key: &[u8], seq: SequenceNumber) -> Vec<u8> {
    make_internal_key(user_key, seq, VALUE_TYPE_FOR_SEEK)
}

/// A decoded view of an internal key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedInternalKey<'a> {
    pub user_key: &'a [u8],
    pub sequence: SequenceNumber,
    pub value_type: ValueType,
}

/// Parse an internal key; `None` if it is too short or has an unknown type.
pub fn parse_internal_key(ikey: &[u8]) -> Option<ParsedInternalKey<'_>> {
    if ikey.len() < 8 {
        return None;
    }
    let n = ikey.len() - 8;
    let mut tag_bytes = [0u8; 8];
    tag_bytes.copy_from_slice(&ikey[n..]);
    let tag = u64::from_le_bytes(tag_bytes);
    let value_type = ValueType::from_u8((tag & 0xff) as u8)?;
    Some(ParsedInternalKey {
        user_key: &ikey[..n],
        sequence: tag >> 8,
        value_type,
    })
}

/// The user-key part of an internal key (the whole slice if malformed).
pub fn user_key(ikey: &[u8]) -> &[u8] {
    if ikey.len() < 8 {
        ikey
    } else {
        &ikey[..ikey.len() - 8]
    }
}

fn tag(ikey: &[u8]) -> u64 {
    if ikey.len() < 8 {
        return 0;
    }
    let mut b = [0u8; 8];
    b.copy_from_slice(&ikey[ikey.len() - 8..]);
    u64::from_le_bytes(b)
}

/// The internal-key order: user key ascending, then tag (seq, type) descending.
pub fn compare_internal(a: &[u8], b: &[u8]) -> Ordering {
    match user_key(a).cmp(user_key(b)) {
        Ordering::Equal => tag(b).cmp(&tag(a)),
        o => o,
    }
}

/// An owned internal key that sorts in internal-key order (for the
/// memtable's B-tree). It carries the first 16 bytes of its user key as
/// a big-endian integer, zero-padded: keys whose heads differ are ordered
/// by the heads alone (a shorter key pads with zeros, which sort first),
/// so most comparisons in a B-tree search touch no key bytes on the heap
/// and call no `memcmp`. Only equal heads fall back to the full order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalKey {
    head: u128,
    key: Vec<u8>,
}

impl InternalKey {
    pub fn new(key: Vec<u8>) -> InternalKey {
        let u = user_key(&key);
        let mut b = [0u8; 16];
        let n = u.len().min(16);
        b[..n].copy_from_slice(&u[..n]);
        InternalKey {
            head: u128::from_be_bytes(b),
            key,
        }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.key
    }
}

impl Ord for InternalKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.head
            .cmp(&other.head)
            .then_with(|| compare_internal(&self.key, &other.key))
    }
}

impl PartialOrd for InternalKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_user_key_then_newest_first() {
        let a1 = make_internal_key(b"a", 1, ValueType::Value);
        let a2 = make_internal_key(b"a", 2, ValueType::Value);
        let b1 = make_internal_key(b"b", 1, ValueType::Value);
        assert_eq!(compare_internal(&a2, &a1), Ordering::Less);
        assert_eq!(compare_internal(&a1, &b1), Ordering::Less);
        let d2 = make_internal_key(b"a", 2, ValueType::Deletion);
        assert_eq!(compare_internal(&a2, &d2), Ordering::Less);
    }

    #[test]
    fn head_order_agrees_with_the_full_order() {
        let keys: Vec<&[u8]> = vec![
            b"",
            b"\0",
            b"\0\0",
            b"a",
            b"a\0",
            b"a\0b",
            b"ab",
            b"abcdefghijklmnop",
            b"abcdefghijklmnop\0",
            b"abcdefghijklmnopq",
            b"abcdefghijklmnoq",
            b"\xff",
            b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
        ];
        for a in &keys {
            for b in &keys {
                for (sa, sb) in [(1, 1), (1, 2), (2, 1)] {
                    let ka = make_internal_key(a, sa, ValueType::Value);
                    let kb = make_internal_key(b, sb, ValueType::Value);
                    let want = compare_internal(&ka, &kb);
                    let got = InternalKey::new(ka).cmp(&InternalKey::new(kb));
                    assert_eq!(got, want, "{a:?}@{sa} vs {b:?}@{sb}");
                }
            }
        }
    }

    #[test]
    fn parse_roundtrip_and_rejects_garbage() {
        let k = make_internal_key(b"key", 77, ValueType::Deletion);
        let p = parse_internal_key(&k).unwrap();
        assert_eq!(p.user_key, b"key");
        assert_eq!(p.sequence, 77);
        assert_eq!(p.value_type, ValueType::Deletion);
        assert!(parse_internal_key(b"short").is_none());
        let mut bad = k.clone();
        let n = bad.len();
        bad[n - 8] = 9;
        assert!(parse_internal_key(&bad).is_none());
    }
}
