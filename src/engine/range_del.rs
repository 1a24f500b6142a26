//! Range deletions (RocksDB's DeleteRange): one tombstone deletes every key
//! in `[start, end)` written before it.
//!
//! A tombstone with sequence `t` hides an entry `(k, s)` when
//! `start <= k < end` and `s < t`, for every reader whose sequence is at
//! least `t`. Tombstones are not entries of the sorted key stream (a point
//! lookup in the middle of a range would never meet one at its start key):
//! memtables keep them in a list beside their entries and tables in a block
//! of their own (see `table`), and readers ask each source which of its
//! tombstones covers a key. Within one source they are *fragmented* into
//! disjoint pieces, each carrying the sequences of every tombstone over it,
//! so that question is one binary search.
//!
//! Every source's tombstones lie inside that source's key range (a table's
//! smallest and largest keys are widened to cover them; compaction clips
//! them at the cuts between its output tables), so a tombstone moves down
//! the levels with the keys it hides and stays newer than everything below
//! it. Compaction drops the entries a tombstone visible to every snapshot
//! hides, and drops the tombstone itself once no deeper level overlaps it.
//!
//! Block encoding (tables): `varint32 count` then per tombstone
//! `length-prefixed start | length-prefixed end | varint64 seq`.

use super::coding::{put_length_prefixed, put_varint32, put_varint64, Decoder};
use super::dbformat::SequenceNumber;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeTombstone {
    pub start: Vec<u8>,
    /// Exclusive.
    pub end: Vec<u8>,
    pub seq: SequenceNumber,
}

impl RangeTombstone {
    pub fn new(start: &[u8], end: &[u8], seq: SequenceNumber) -> RangeTombstone {
        RangeTombstone {
            start: start.to_vec(),
            end: end.to_vec(),
            seq,
        }
    }

    pub fn covers(&self, key: &[u8]) -> bool {
        self.start.as_slice() <= key && key < self.end.as_slice()
    }

    /// This tombstone cut down to `[lo, hi)` (None = unbounded), if anything is left.
    pub fn clip(&self, lo: Option<&[u8]>, hi: Option<&[u8]>) -> Option<RangeTombstone> {
        let start = match lo {
            Some(l) if l > self.start.as_slice() => l,
            _ => &self.start,
        };
        let end = match hi {
            Some(h) if h < self.end.as_slice() => h,
            _ => &self.end,
        };
        (start < end).then(|| RangeTombstone::new(start, end, self.seq))
    }
}

pub fn encode_block(tombstones: &[RangeTombstone]) -> Vec<u8> {
    let mut d = Vec::new();
    put_varint32(&mut d, tombstones.len() as u32);
    for t in tombstones {
        put_length_prefixed(&mut d, &t.start);
        put_length_prefixed(&mut d, &t.end);
        put_varint64(&mut d, t.seq);
    }
    d
}

pub fn decode_block(data: &[u8]) -> Result<Vec<RangeTombstone>, String> {
    let mut d = Decoder::new(data);
    let n = d
        .varint32()
        .ok_or("range deletion block: bad count".to_string())?;
    let mut out = Vec::with_capacity((n as usize).min(data.len()));
    for i in 0..n {
        let t = (|| {
            Some(RangeTombstone {
                start: d.length_prefixed()?.to_vec(),
                end: d.length_prefixed()?.to_vec(),
                seq: d.varint64()?,
            })
        })()
        .ok_or_else(|| format!("range deletion block: tombstone {i} of {n} is truncated"))?;
        if t.start >= t.end {
            return Err(format!("range deletion block: tombstone {i} is empty"));
        }
        out.push(t);
    }
    if !d.is_empty() {
        return Err("range deletion block: bytes after the last tombstone".into());
    }
    Ok(out)
}

#[derive(Debug, Clone)]
struct Fragment {
    start: Vec<u8>,
    end: Vec<u8>,
    /// Sequences of the tombstones over this piece, newest first.
    seqs: Vec<SequenceNumber>,
}

/// Tombstones cut into disjoint, sorted pieces.
#[derive(Debug, Clone, Default)]
pub struct Fragments {
    frags: Vec<Fragment>,
    tombstones: Vec<RangeTombstone>,
}

impl Fragments {
    pub fn new(mut tombstones: Vec<RangeTombstone>) -> Fragments {
        tombstones.retain(|t| t.start < t.end);
        tombstones.sort_by(|a, b| a.start.cmp(&b.start).then(b.seq.cmp(&a.seq)));
        let mut bounds: Vec<&[u8]> = tombstones
            .iter()
            .flat_map(|t| [&t.start[..], &t.end[..]])
            .collect();
        bounds.sort_unstable();
        bounds.dedup();
        let mut frags = Vec::new();
        let mut active: Vec<&RangeTombstone> = Vec::new();
        let mut next = 0;
        for w in bounds.windows(2) {
            let (lo, hi) = (w[0], w[1]);
            active.retain(|t| t.end.as_slice() > lo);
            while next < tombstones.len() && tombstones[next].start.as_slice() <= lo {
                active.push(&tombstones[next]);
                next += 1;
            }
            if active.is_empty() {
                continue;
            }
            let mut seqs: Vec<SequenceNumber> = active.iter().map(|t| t.seq).collect();
            seqs.sort_unstable_by(|a, b| b.cmp(a));
            seqs.dedup();
            frags.push(Fragment {
                start: lo.to_vec(),
                end: hi.to_vec(),
                seqs,
            });
        }
        Fragments { frags, tombstones }
    }

    pub fn is_empty(&self) -> bool {
        self.tombstones.is_empty()
    }

    pub fn len(&self) -> usize {
        self.tombstones.len()
    }

    /// The tombstones as given (sorted by start).
    pub fn tombstones(&self) -> &[RangeTombstone] {
        &self.tombstones
    }

    /// The newest sequence `<= read_seq` of a tombstone covering `key`; 0 if none.
    pub fn max_covering(&self, key: &[u8], read_seq: SequenceNumber) -> SequenceNumber {
        if self.frags.is_empty() {
            return 0;
        }
        let i = self.frags.partition_point(|f| f.end.as_slice() <= key);
        match self.frags.get(i) {
            Some(f) if f.start.as_slice() <= key => {
                f.seqs.iter().copied().find(|&s| s <= read_seq).unwrap_or(0)
            }
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_answer_the_newest_visible_cover() {
        let f = Fragments::new(vec![
            RangeTombstone::new(b"b", b"f", 10),
            RangeTombstone::new(b"d", b"h", 20),
            RangeTombstone::new(b"x", b"z", 5),
        ]);
        assert_eq!(f.max_covering(b"a", 100), 0);
        assert_eq!(f.max_covering(b"b", 100), 10);
        assert_eq!(f.max_covering(b"d", 100), 20);
        assert_eq!(f.max_covering(b"d", 15), 10);
        assert_eq!(f.max_covering(b"d", 9), 0);
        assert_eq!(f.max_covering(b"f", 100), 20);
        assert_eq!(f.max_covering(b"h", 100), 0);
        assert_eq!(f.max_covering(b"y", 100), 5);
        assert_eq!(f.max_covering(b"z", 100), 0);
        assert!(Fragments::new(Vec::new()).max_covering(b"a", 1) == 0);
    }

    #[test]
    fn fragments_match_a_brute_force_check() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..200 {
            let ts: Vec<RangeTombstone> = (0..rng.gen_range(0..8))
                .map(|_| {
                    let a = rng.gen_range(0u8..20);
                    let b = rng.gen_range(0u8..20);
                    RangeTombstone::new(&[a.min(b)], &[a.max(b)], rng.gen_range(1..50))
                })
                .collect();
            let f = Fragments::new(ts.clone());
            for k in 0u8..21 {
                for rs in [0, 10, 25, 100] {
                    let want = ts
                        .iter()
                        .filter(|t| t.covers(&[k]) && t.seq <= rs)
                        .map(|t| t.seq)
                        .max()
                        .unwrap_or(0);
                    assert_eq!(f.max_covering(&[k], rs), want, "{ts:?} {k} {rs}");
                }
            }
        }
    }

    #[test]
    fn block_roundtrip_and_garbage() {
        let ts = vec![
            RangeTombstone::new(b"a", b"c", 3),
            RangeTombstone::new(b"b", b"q", 9),
        ];
        let d = encode_block(&ts);
        assert_eq!(decode_block(&d).unwrap(), ts);
        for cut in 0..d.len() {
            assert!(decode_block(&d[..cut]).is_err(), "cut {cut}");
        }
        assert!(decode_block(&encode_block(&[RangeTombstone::new(b"b", b"a", 1)])).is_err());
        let mut long = d.clone();
        long.push(0);
        assert!(decode_block(&long).is_err());
    }

    #[test]
    fn clip() {
        let t = RangeTombstone::new(b"c", b"m", 4);
        assert_eq!(t.clip(None, None), Some(t.clone()));
        assert_eq!(
            t.clip(Some(b"e"), Some(b"g")),
            Some(RangeTombstone::new(b"e", b"g", 4))
        );
        assert_eq!(t.clip(Some(b"m"), None), None);
        assert_eq!(t.clip(None, Some(b"c")), None);
    }
}
