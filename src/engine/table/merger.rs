//! MergingIterator: the union of several sorted iterators, in internal-key
//! order.
//!
//! Children are few (memtable, immutable memtable, a handful of L0 tables,
//! one iterator per deeper level), so the smallest is found by a linear scan
//! over the children's current keys — no heap bookkeeping, and it is cheaper
//! than a heap below ~16 children. Ties go to the lower child index.
//! A child error invalidates the merge: skipping a broken child would
//! silently hide data.

use crate::engine::dbformat::compare_internal;
use crate::engine::error::Result;
use crate::engine::iterator::InternalIterator;
use std::cmp::Ordering;

pub struct MergingIterator {
    children: Vec<Box<dyn InternalIterator>>,
    current: Option<usize>,
}

impl MergingIterator {
    pub fn new(children: Vec<Box<dyn InternalIterator>>) -> MergingIterator {
        MergingIterator {
            children,
            current: None,
        }
    }

    fn find_smallest(&mut self) {
        self.current = None;
        if self
            .children
            .iter()
            .any(|c| !c.valid() && c.status().is_err())
        {
            return;
        }
        let mut best: Option<usize> = None;
        for (i, c) in self.children.iter().enumerate() {
            if !c.valid() {
                continue;
            }
            best = match best {
                Some(b)
                    if compare_internal(self.children[b].key(), c.key()) != Ordering::Greater =>
                {
                    Some(b)
                }
                _ => Some(i),
            };
        }
        self.current = best;
    }
}

impl InternalIterator for MergingIterator {
    fn valid(&self) -> bool {
        self.current.is_some()
    }

    fn seek_to_first(&mut self) {
        for c in self.children.iter_mut() {
            c.seek_to_first();
        }
        self.find_smallest();
    }

    fn seek(&mut self, target: &[u8]) {
        for c in self.children.iter_mut() {
            c.seek(target);
        }
        self.find_smallest();
    }

    fn next(&mut self) {
        if let Some(i) = self.current {
            self.children[i].next();
            self.find_smallest();
        }
    }

    fn key(&self) -> &[u8] {
        self.current.map_or(&[], |i| self.children[i].key())
    }

    fn value(&self) -> &[u8] {
        self.current.map_or(&[], |i| self.children[i].value())
    }

    fn status(&self) -> Result<()> {
        for c in &self.children {
            c.status()?;
        }
        Ok(())
    }
}

/// An iterator over a sorted vector of (internal key, value), for tests and
/// for small in-memory sources.
pub struct VecIterator {
    entries: Vec<(Vec<u8>, Vec<u8>)>,
    pos: usize,
}

impl VecIterator {
    /// `entries` must be sorted by internal key.
    pub fn new(entries: Vec<(Vec<u8>, Vec<u8>)>) -> VecIterator {
        let pos = entries.len();
        VecIterator { entries, pos }
    }
}

impl InternalIterator for VecIterator {
    fn valid(&self) -> bool {
        self.pos < self.entries.len()
    }
    fn seek_to_first(&mut self) {
        self.pos = 0;
    }
    fn seek(&mut self, target: &[u8]) {
        self.pos = self
            .entries
            .partition_point(|(k, _)| compare_internal(k, target) == Ordering::Less);
    }
    fn next(&mut self) {
        if self.pos < self.entries.len() {
            self.pos += 1;
        }
    }
    fn key(&self) -> &[u8] {
        self.entries.get(self.pos).map_or(&[], |e| &e.0)
    }
    fn value(&self) -> &[u8] {
        self.entries.get(self.pos).map_or(&[], |e| &e.1)
    }
    fn status(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::dbformat::{make_internal_key, user_key, ValueType};
    use crate::engine::error::Error;

    fn vi(keys: &[(&str, u64)]) -> Box<dyn InternalIterator> {
        Box::new(VecIterator::new(
            keys.iter()
                .map(|(k, s)| {
                    (
                        make_internal_key(k.as_bytes(), *s, ValueType::Value),
                        vec![],
                    )
                })
                .collect(),
        ))
    }

    fn collect(m: &mut MergingIterator) -> Vec<(Vec<u8>, u64)> {
        let mut out = Vec::new();
        while m.valid() {
            let k = m.key();
            let seq = crate::engine::dbformat::parse_internal_key(k)
                .unwrap()
                .sequence;
            out.push((user_key(k).to_vec(), seq));
            m.next();
        }
        out
    }

    #[test]
    fn merges_in_order_newest_first() {
        let mut m = MergingIterator::new(vec![
            vi(&[("a", 5), ("c", 5)]),
            vi(&[]),
            vi(&[("a", 9), ("b", 1), ("d", 2)]),
        ]);
        m.seek_to_first();
        let got = collect(&mut m);
        let want: Vec<(Vec<u8>, u64)> = [("a", 9), ("a", 5), ("b", 1), ("c", 5), ("d", 2)]
            .iter()
            .map(|(k, s)| (k.as_bytes().to_vec(), *s))
            .collect();
        assert_eq!(got, want);
        m.seek(&make_internal_key(b"b", 100, ValueType::Value));
        assert_eq!(collect(&mut m).len(), 3);
    }

    struct Broken;
    impl InternalIterator for Broken {
        fn valid(&self) -> bool {
            false
        }
        fn seek_to_first(&mut self) {}
        fn seek(&mut self, _: &[u8]) {}
        fn next(&mut self) {}
        fn key(&self) -> &[u8] {
            &[]
        }
        fn value(&self) -> &[u8] {
            &[]
        }
        fn status(&self) -> Result<()> {
            Err(Error::InvalidArgument("broken".into()))
        }
    }

    #[test]
    fn child_error_invalidates() {
        let mut m = MergingIterator::new(vec![vi(&[("a", 1)]), Box::new(Broken)]);
        m.seek_to_first();
        assert!(!m.valid());
        assert!(m.status().is_err());
    }
}
