//! Bounded LRU caches: the block cache (parsed, checksummed table blocks)
//! and, through the generic [`LruCache`], the open-table cache.
//!
//! The LRU is a hash map into a slab of nodes linked in recency order, so
//! lookup, insert and eviction are O(1). The block cache is split into
//! shards, each behind its own mutex, so concurrent readers rarely contend.

use crate::engine::table::Block;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

const NIL: usize = usize::MAX;

struct Node<K, V> {
    key: K,
    value: V,
    charge: usize,
    prev: usize,
    next: usize,
}

/// An LRU map bounded by the sum of its entries' charges.
pub struct LruCache<K, V> {
    map: HashMap<K, usize>,
    nodes: Vec<Option<Node<K, V>>>,
    free: Vec<usize>,
    /// Most recently used.
    head: usize,
    /// Least recently used.
    tail: usize,
    used: usize,
    capacity: usize,
}

impl<K: Hash + Eq + Clone, V: Clone> LruCache<K, V> {
    pub fn new(capacity: usize) -> LruCache<K, V> {
        LruCache {
            map: HashMap::new(),
            nodes: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            used: 0,
            capacity,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Total charge of the entries held.
    pub fn used(&self) -> usize {
        self.used
    }

    fn unlink(&mut self, i: usize) {
        let (prev, next) = match &self.nodes[i] {
            Some(n) => (n.prev, n.next),
            None => return,
        };
        if prev == NIL {
            self.head = next;
        } else if let Some(p) = self.nodes[prev].as_mut() {
            p.next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else if let Some(n) = self.nodes[next].as_mut() {
            n.prev = prev;
        }
    }

    fn push_front(&mut self, i: usize) {
        let old = self.head;
        if let Some(n) = self.nodes[i].as_mut() {
            n.prev = NIL;
            n.next = old;
        }
        if old != NIL {
            if let Some(o) = self.nodes[old].as_mut() {
                o.prev = i;
            }
        } else {
            self.tail = i;
        }
        self.head = i;
    }

    pub fn get(&mut self, key: &K) -> Option<V> {
        let i = *self.map.get(key)?;
        self.unlink(i);
        self.push_front(i);
        self.nodes[i].as_ref().map(|n| n.value.clone())
    }

    pub fn insert(&mut self, key: K, value: V, charge: usize) {
        self.remove(&key);
        let node = Node {
            key: key.clone(),
            value,
            charge,
            prev: NIL,
            next: NIL,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.nodes[i] = Some(node);
                i
            }
            None => {
                self.nodes.push(Some(node));
                self.nodes.len() - 1
            }
        };
        self.map.insert(key, i);
        self.push_front(i);
        self.used += charge;
        while self.used > self.capacity && self.tail != NIL && self.tail != i {
            let t = self.tail;
            if let Some(k) = self.nodes[t].as_ref().map(|n| n.key.clone()) {
                self.remove(&k);
            }
        }
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        let i = self.map.remove(key)?;
        self.unlink(i);
        let n = self.nodes[i].take()?;
        self.free.push(i);
        self.used -= n.charge;
        Some(n.value)
    }

    /// Remove every entry whose key matches.
    pub fn retain(&mut self, mut keep: impl FnMut(&K) -> bool) {
        let gone: Vec<K> = self.map.keys().filter(|k| !keep(k)).cloned().collect();
        for k in gone {
            self.remove(&k);
        }
    }
}

const SHARDS: usize = 16;

type Shard = Mutex<LruCache<(u64, u64), Arc<Block>>>;

/// Parsed table blocks keyed by (file number, block offset).
pub struct BlockCache {
    shards: Vec<Shard>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl BlockCache {
    pub fn new(capacity_bytes: usize) -> BlockCache {
        let per = (capacity_bytes / SHARDS).max(1);
        BlockCache {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(LruCache::new(per)))
                .collect(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn shard(&self, file: u64, offset: u64) -> &Shard {
        let h = (file.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (offset >> 12)) as usize;
        &self.shards[h % SHARDS]
    }

    pub fn get(&self, file: u64, offset: u64) -> Option<Arc<Block>> {
        let r = self
            .shard(file, offset)
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(file, offset));
        let c = if r.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        c.fetch_add(1, Ordering::Relaxed);
        r
    }

    pub fn insert(&self, file: u64, offset: u64, block: Arc<Block>) {
        let charge = block.size() + 64;
        self.shard(file, offset)
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((file, offset), block, charge);
    }

    pub fn erase_file(&self, file: u64) {
        for s in &self.shards {
            s.lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|k| k.0 != file);
        }
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    /// Bytes currently charged.
    pub fn used(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).used())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_by_charge() {
        let mut c: LruCache<u32, u32> = LruCache::new(10);
        c.insert(1, 10, 4);
        c.insert(2, 20, 4);
        assert_eq!(c.get(&1), Some(10));
        c.insert(3, 30, 4); // over capacity: evicts 2, the LRU
        assert_eq!(c.get(&2), None);
        assert_eq!(c.get(&1), Some(10));
        assert_eq!(c.get(&3), Some(30));
        assert_eq!(c.used(), 8);
        c.insert(1, 11, 2);
        assert_eq!(c.used(), 6);
        assert_eq!(c.remove(&3), Some(30));
        assert_eq!(c.len(), 1);
        c.insert(9, 90, 100); // larger than capacity: kept alone
        assert_eq!(c.len(), 1);
        assert_eq!(c.get(&9), Some(90));
    }

    #[test]
    fn slab_slots_are_reused() {
        let mut c: LruCache<u32, u32> = LruCache::new(3);
        for i in 0..1000 {
            c.insert(i, i, 1);
        }
        assert_eq!(c.len(), 3);
        assert!(c.nodes.len() <= 4);
    }
}
