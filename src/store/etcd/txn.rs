//! A store batch as one etcd transaction.
//!
//! A batch applies its ops in order, but etcd refuses a transaction that
//! names a key twice or puts a key inside a range it also deletes
//! ("duplicate key given in txn request"). So a batch is first reduced to
//! its net effect: the last put or delete of each key, and the deleted
//! ranges merged and cut around the keys put after them (a put before a
//! range in the same batch is gone with it, as in the engine). Keys and
//! ranges are still the filesystem's; the store adds its prefix.

use crate::store::{Batch, BatchOp};
use std::collections::BTreeMap;

/// The net effect of a batch: disjoint, sorted ranges to delete, then
/// point puts (`Some`) and deletes (`None`) outside those ranges' effect.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct NetBatch {
    pub ranges: Vec<(Vec<u8>, Vec<u8>)>,
    pub points: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl NetBatch {
    pub fn of(batch: Batch) -> NetBatch {
        let mut points: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        let mut ranges: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for op in batch.ops {
            match op {
                BatchOp::Put(k, v) => {
                    points.insert(k, Some(v));
                }
                BatchOp::Delete(k) => {
                    points.insert(k, None);
                }
                BatchOp::DeleteRange(s, e) => {
                    if s < e {
                        let doomed: Vec<Vec<u8>> = points
                            .range(s.clone()..e.clone())
                            .map(|(k, _)| k.clone())
                            .collect();
                        for k in doomed {
                            points.remove(&k);
                        }
                        ranges.push((s, e));
                    }
                }
            }
        }
        ranges.sort();
        let mut merged: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for (s, e) in ranges {
            match merged.last_mut() {
                Some(last) if s <= last.1 => {
                    if e > last.1 {
                        last.1 = e;
                    }
                }
                _ => merged.push((s, e)),
            }
        }
        // A point delete inside a deleted range is the range's job; a put
        // inside one (it came after the range) cuts the range around it.
        points.retain(|k, v| v.is_some() || !merged.iter().any(|(s, e)| s <= k && k < e));
        let mut ranges = Vec::with_capacity(merged.len());
        for (s, e) in merged {
            let mut from = s;
            for k in points.range(from.clone()..e.clone()).map(|(k, _)| k) {
                if from < *k {
                    ranges.push((from, k.clone()));
                }
                from = k.clone();
                from.push(0);
            }
            if from < e {
                ranges.push((from, e));
            }
        }
        NetBatch { ranges, points }
    }

    /// Operations in the transaction.
    pub fn len(&self) -> usize {
        self.ranges.len() + self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of keys and values (about the request's size).
    pub fn bytes(&self) -> usize {
        let r: usize = self.ranges.iter().map(|(s, e)| s.len() + e.len()).sum();
        let p: usize = self
            .points
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
            .sum();
        r + p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemStore, Store};

    fn apply(store: &MemStore, n: &NetBatch) {
        let mut b = Batch::new();
        for (s, e) in &n.ranges {
            b.delete_range(s.clone(), e.clone());
        }
        for (k, v) in &n.points {
            match v {
                Some(v) => b.put(k.clone(), v.clone()),
                None => b.delete(k.clone()),
            }
        }
        store.write(b, false).expect("write");
    }

    /// The net batch has no key twice, no put inside a deleted range, and
    /// leaves a store exactly as the batch itself does.
    #[test]
    fn net_effect_matches_the_ordered_batch() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(13);
        for _ in 0..500 {
            let (a, b) = (MemStore::new(), MemStore::new());
            let mut seed = Batch::new();
            for k in 0..20u8 {
                if rng.gen_bool(0.5) {
                    seed.put(vec![b'k', k], vec![k]);
                }
            }
            a.write(seed.clone(), false).unwrap();
            b.write(seed, false).unwrap();
            let mut batch = Batch::new();
            for _ in 0..rng.gen_range(1..12) {
                let k = vec![b'k', rng.gen_range(0..20u8)];
                match rng.gen_range(0..3) {
                    0 => batch.put(k, vec![rng.gen()]),
                    1 => batch.delete(k),
                    _ => {
                        let e = vec![b'k', rng.gen_range(0..22u8)];
                        batch.delete_range(k, e);
                    }
                }
            }
            let net = NetBatch::of(batch.clone());
            a.write(batch, false).unwrap();
            apply(&b, &net);
            assert_eq!(
                a.scan(b"", b"z", 100).unwrap(),
                b.scan(b"", b"z", 100).unwrap()
            );
            for (s, e) in &net.ranges {
                assert!(s < e);
                assert!(!net.points.keys().any(|k| s <= k && k < e), "{net:?}");
            }
            for w in net.ranges.windows(2) {
                assert!(w[0].1 <= w[1].0, "{net:?}");
            }
        }
    }
}
