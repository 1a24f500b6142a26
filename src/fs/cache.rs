//! A bounded, write-through cache of inode records.
//!
//! `getattr` and `lookup` are the most frequent requests, and with small
//! files inline a read of one is an inode lookup too, so the hot records are
//! kept decoded in memory. The cache is split into shards (one mutex each,
//! never held while taking another lock) and bounded in bytes: a record
//! costs a fixed overhead plus its inline data. Eviction is a one-bit CLOCK
//! approximation of LRU: a hit marks an entry, an eviction pass spares marked
//! entries once.
//!
//! Coherence: every committed change to an `I` key is written through
//! (`put`/`remove`) after the store accepted the batch, while the writer
//! still holds the inode's lock. A reader that misses reads the store and
//! then `fill`s the cache, but only if no write-through touched the shard
//! since it started (each shard counts its write-throughs), so a slow
//! reader can never install a record older than one already committed.

use super::inode::Attr;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

const SHARDS: usize = 64;
const ENTRY_OVERHEAD: usize = 128;

struct Entry {
    attr: Attr,
    referenced: bool,
}

#[derive(Default)]
struct Shard {
    map: HashMap<u64, Entry>,
    bytes: usize,
    /// Write-throughs so far; a fill that raced one is dropped.
    version: u64,
}

pub struct AttrCache {
    shards: Vec<Mutex<Shard>>,
    budget: usize,
}

fn cost(a: &Attr) -> usize {
    ENTRY_OVERHEAD + a.inline.as_ref().map_or(0, |d| d.len())
}

impl AttrCache {
    /// A cache of about `bytes` bytes in all.
    pub fn new(bytes: usize) -> AttrCache {
        AttrCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            budget: (bytes / SHARDS).max(ENTRY_OVERHEAD * 4),
        }
    }

    fn shard(&self, ino: u64) -> MutexGuard<'_, Shard> {
        let i = (ino.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize % SHARDS;
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, ino: u64) -> Option<Attr> {
        let mut s = self.shard(ino);
        let e = s.map.get_mut(&ino)?;
        e.referenced = true;
        Some(e.attr.clone())
    }

    /// The shard's write-through count, to pass to `fill` after a store read.
    pub fn version(&self, ino: u64) -> u64 {
        self.shard(ino).version
    }

    /// Install a record read from the store, unless a write-through to the
    /// shard happened since `seen` was taken.
    pub fn fill(&self, ino: u64, attr: &Attr, seen: u64) {
        let mut s = self.shard(ino);
        if s.version != seen {
            return;
        }
        Self::insert(&mut s, ino, attr.clone(), self.budget);
    }

    /// Write-through of a committed record.
    pub fn put(&self, ino: u64, attr: Attr) {
        let mut s = self.shard(ino);
        s.version += 1;
        Self::insert(&mut s, ino, attr, self.budget);
    }

    /// Write-through of a deleted record (or one whose state is unknown).
    pub fn remove(&self, ino: u64) {
        let mut s = self.shard(ino);
        s.version += 1;
        if let Some(old) = s.map.remove(&ino) {
            s.bytes -= cost(&old.attr);
        }
    }

    #[cfg(test)]
    pub fn clear(&self) {
        for i in 0..SHARDS {
            let mut s = self.shards[i].lock().unwrap_or_else(|p| p.into_inner());
            s.version += 1;
            s.map.clear();
            s.bytes = 0;
        }
    }

    fn insert(s: &mut Shard, ino: u64, attr: Attr, budget: usize) {
        let c = cost(&attr);
        if c > budget {
            if let Some(old) = s.map.remove(&ino) {
                s.bytes -= cost(&old.attr);
            }
            return;
        }
        let e = Entry {
            attr,
            referenced: false,
        };
        if let Some(old) = s.map.insert(ino, e) {
            s.bytes -= cost(&old.attr);
        }
        s.bytes += c;
        if s.bytes > budget {
            Self::evict(s, ino, budget - budget / 4);
        }
    }

    /// Evict down to `target` bytes, sparing `keep` and (once) referenced entries.
    fn evict(s: &mut Shard, keep: u64, target: usize) {
        for pass in 0..2 {
            let mut victims = Vec::new();
            let mut freed = 0;
            for (ino, e) in s.map.iter_mut() {
                if s.bytes - freed <= target {
                    break;
                }
                if *ino == keep {
                    continue;
                }
                if e.referenced && pass == 0 {
                    e.referenced = false;
                    continue;
                }
                freed += cost(&e.attr);
                victims.push(*ino);
            }
            for ino in victims {
                if let Some(old) = s.map.remove(&ino) {
                    s.bytes -= cost(&old.attr);
                }
            }
            if s.bytes <= target {
                return;
            }
        }
    }

    /// Entries and bytes held (for statistics and tests).
    pub fn usage(&self) -> (usize, usize) {
        let mut n = 0;
        let mut b = 0;
        for sh in &self.shards {
            let s = sh.lock().unwrap_or_else(|p| p.into_inner());
            n += s.map.len();
            b += s.bytes;
        }
        (n, b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(size: usize) -> Attr {
        Attr {
            size: size as u64,
            inline: Some(vec![1; size]),
            ..Default::default()
        }
    }

    #[test]
    fn bounded_and_coherent() {
        let c = AttrCache::new(64 * 1024);
        for ino in 0..10_000u64 {
            c.put(ino, attr(100));
        }
        let (n, bytes) = c.usage();
        assert!(bytes <= 64 * 1024 && n > 0, "{n} entries, {bytes} bytes");
        // A fill that raced a write-through is dropped.
        let v = c.version(77);
        c.put(77, attr(5));
        c.fill(77, &attr(9), v);
        assert_eq!(c.get(77).map(|a| a.size), Some(5));
        let v = c.version(78);
        c.fill(78, &attr(9), v);
        assert_eq!(c.get(78).map(|a| a.size), Some(9));
        c.remove(78);
        assert!(c.get(78).is_none());
        // Too big for a shard: not cached at all.
        c.put(79, attr(100_000));
        assert!(c.get(79).is_none());
    }
}
