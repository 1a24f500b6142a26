//! Tables: round trips, read-ahead, filters and damage.

use super::builder::TableBuilder;
use super::filter::{bloom_hash, bloom_may_contain, build_bloom};
use super::format::{BlockHandle, MAGIC, MAGIC_V2, TRAILER_SIZE};
use super::iterator::ReadAhead;
use super::reader::Table;
use super::*;
use crate::engine::dbformat::{compare_internal, parse_internal_key, range_end_sentinel, user_key};
use crate::engine::dbformat::{lookup_key, make_internal_key, ValueType};
use crate::engine::env::fault::FaultEnv;
use crate::engine::env::Env;
use crate::engine::env::RandomAccessFile;
use crate::engine::error::Result;
use crate::engine::iterator::InternalIterator;
use crate::engine::range_del::RangeTombstone;
use crate::engine::table::block_cache::BlockCache;
use std::cmp::Ordering;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn opts() -> TableOptions {
    TableOptions {
        block_size: 256,
        restart_interval: 4,
        bloom_bits_per_key: 10,
    }
}

fn build(env: &FaultEnv, path: &Path, entries: &[(Vec<u8>, Vec<u8>)]) -> Arc<Table> {
    let f = env.create_writable(path).unwrap();
    let mut b = TableBuilder::new(f, opts());
    for (k, v) in entries {
        b.add(k, v).unwrap();
    }
    let s = b.finish().unwrap();
    assert_eq!(s.num_entries, entries.len() as u64);
    let size = env.file_size(path).unwrap();
    assert_eq!(size, s.file_size);
    Table::open(
        env.open_random_access(path).unwrap(),
        path.to_path_buf(),
        1,
        size,
        Some(Arc::new(BlockCache::new(1 << 20))),
    )
    .unwrap()
}

/// Open the table at `p` again, without a block cache.
fn open_uncached(env: &FaultEnv, p: &Path, number: u64) -> Arc<Table> {
    let size = env.file_size(p).unwrap();
    Table::open(
        env.open_random_access(p).unwrap(),
        p.to_path_buf(),
        number,
        size,
        None,
    )
    .unwrap()
}

fn entries(n: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..n)
        .map(|i| {
            (
                make_internal_key(
                    format!("key-with-long-shared-prefix-{i:06}").as_bytes(),
                    1000 + i as u64,
                    ValueType::Value,
                ),
                format!("value{i}")
                    .repeat((i % 7) as usize + 1)
                    .into_bytes(),
            )
        })
        .collect()
}

#[test]
fn range_deletions_widen_the_table_and_bump_its_version() {
    let env = FaultEnv::new();
    let p = Path::new("/r.sst");
    let f = env.create_writable(p).unwrap();
    let mut b = TableBuilder::new(f, opts());
    b.add(&make_internal_key(b"m", 5, ValueType::Value), b"v")
        .unwrap();
    b.add_range_deletion(RangeTombstone::new(b"c", b"k", 9));
    b.add_range_deletion(RangeTombstone::new(b"p", b"t", 3));
    b.add_range_deletion(RangeTombstone::new(b"x", b"x", 3));
    let s = b.finish().unwrap();
    assert_eq!(
        s.smallest,
        make_internal_key(b"c", 9, ValueType::RangeDeletion)
    );
    assert_eq!(s.largest, range_end_sentinel(b"t"));
    assert_eq!((s.smallest_seq, s.largest_seq), (3, 9));
    let t = open_uncached(&env, p, 1);
    assert_eq!(t.properties().num_range_deletions, 2);
    assert_eq!(t.range_deletions().max_covering(b"d", 100), 9);
    assert_eq!(t.range_deletions().max_covering(b"m", 100), 0);
    let raw = env.read_all(p).unwrap();
    assert_eq!(raw[raw.len() - 8..], MAGIC_V2.to_le_bytes());
    // A table without range deletions keeps version 1.
    let t1 = build(&env, Path::new("/plain.sst"), &entries(10));
    assert!(t1.range_deletions().is_empty());
    let raw = env.read_all(Path::new("/plain.sst")).unwrap();
    assert_eq!(raw[raw.len() - 8..], MAGIC.to_le_bytes());
    // Only tombstones: still a table.
    let f = env.create_writable(Path::new("/only.sst")).unwrap();
    let mut b = TableBuilder::new(f, opts());
    b.add_range_deletion(RangeTombstone::new(b"a", b"b", 1));
    assert!(!b.is_empty());
    b.finish().unwrap();
    let t = open_uncached(&env, Path::new("/only.sst"), 2);
    assert_eq!(t.range_deletions().len(), 1);
    t.verify().unwrap();
}

#[test]
fn get_iterate_and_seek() {
    let env = FaultEnv::new();
    let p = Path::new("/t.sst");
    let es = entries(2000);
    let t = build(&env, p, &es);
    assert!(t.properties().num_data_blocks > 10);
    for (k, v) in es.iter().step_by(7) {
        let uk = user_key(k);
        let got = t.get(&lookup_key(uk, u64::MAX >> 8)).unwrap().unwrap();
        assert_eq!(&got.1, v);
        assert!(
            t.get(&lookup_key(uk, 999)).unwrap().is_none(),
            "older than any entry"
        );
    }
    assert!(t.get(&lookup_key(b"nope", 5000)).unwrap().is_none());
    let mut it = t.iter();
    it.seek_to_first();
    let mut n = 0;
    while it.valid() {
        assert_eq!(it.key(), &es[n].0[..]);
        assert_eq!(it.value(), &es[n].1[..]);
        n += 1;
        it.next();
    }
    assert_eq!(n, es.len());
    for (i, (k, _)) in es.iter().enumerate().step_by(13) {
        it.seek(k);
        assert_eq!(it.key(), &k[..], "seek to entry {i}");
    }
    it.seek(&lookup_key(b"zzz", 1));
    assert!(!it.valid());
    t.verify().unwrap();
}

#[test]
fn versions_of_one_key_and_large_values() {
    let env = FaultEnv::new();
    let p = Path::new("/v.sst");
    let es = vec![
        (
            make_internal_key(b"a", 9, ValueType::Value),
            vec![9u8; 1000],
        ),
        (make_internal_key(b"a", 5, ValueType::Deletion), vec![]),
        (
            make_internal_key(b"a", 2, ValueType::Value),
            b"old".to_vec(),
        ),
        (
            make_internal_key(b"b", 1, ValueType::Value),
            vec![1u8; 5000],
        ),
    ];
    let t = build(&env, p, &es);
    assert_eq!(
        t.get(&lookup_key(b"a", 100)).unwrap().unwrap().1,
        vec![9u8; 1000]
    );
    let (k, _) = t.get(&lookup_key(b"a", 6)).unwrap().unwrap();
    assert_eq!(
        parse_internal_key(&k).unwrap().value_type,
        ValueType::Deletion
    );
    assert_eq!(t.get(&lookup_key(b"a", 3)).unwrap().unwrap().1, b"old");
    assert_eq!(t.get(&lookup_key(b"b", 3)).unwrap().unwrap().1.len(), 5000);
}

#[test]
fn bloom_false_positive_rate() {
    let hashes: Vec<u32> = (0..10000u32)
        .map(|i| bloom_hash(format!("k{i}").as_bytes()))
        .collect();
    let f = build_bloom(&hashes, 10);
    for i in 0..10000u32 {
        assert!(bloom_may_contain(&f, format!("k{i}").as_bytes()));
    }
    let fp = (0..10000u32)
        .filter(|i| bloom_may_contain(&f, format!("x{i}").as_bytes()))
        .count();
    assert!(fp < 300, "false positives {fp} of 10000");
}

/// Counts the reads and bytes a table makes.
struct CountingFile {
    inner: Box<dyn RandomAccessFile>,
    reads: Arc<std::sync::atomic::AtomicU64>,
    bytes: Arc<std::sync::atomic::AtomicU64>,
}

impl RandomAccessFile for CountingFile {
    fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        use std::sync::atomic::Ordering::Relaxed;
        self.reads.fetch_add(1, Relaxed);
        self.bytes.fetch_add(len as u64, Relaxed);
        self.inner.read_at(offset, len)
    }
    fn len(&self) -> u64 {
        self.inner.len()
    }
}

#[test]
fn read_ahead_reads_runs_up_to_the_bound() {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    let env = FaultEnv::new();
    let p = Path::new("/ra.sst");
    let es = entries(2000);
    build(&env, p, &es);
    let (reads, bytes) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let file = CountingFile {
        inner: env.open_random_access(p).unwrap(),
        reads: reads.clone(),
        bytes: bytes.clone(),
    };
    let cache = Arc::new(BlockCache::new(1 << 20));
    let size = env.file_size(p).unwrap();
    let t = Table::open(Box::new(file), p.to_path_buf(), 7, size, Some(cache)).unwrap();
    let index = t.index_entries().unwrap();
    for (case, (first, upper, max_bytes, fill_cache)) in [
        (100usize, Some(1500usize), 4096usize, false),
        (0, None, 1 << 20, false),
        (1999, Some(1999), 4096, false),
        (700, Some(900), 1000, true),
        (700, Some(900), 1000, true), // now from the cache
    ]
    .into_iter()
    .enumerate()
    {
        let upper_key = upper.map(|u| user_key(&es[u].0).to_vec());
        let mut it = t.iter_with(Some(ReadAhead {
            upper: upper_key.as_deref().map(Arc::from),
            max_bytes,
            fill_cache,
        }));
        reads.store(0, Relaxed);
        bytes.store(0, Relaxed);
        it.seek(&es[first].0);
        let mut n = first;
        while it.valid() && upper_key.as_deref().is_none_or(|u| user_key(it.key()) < u) {
            assert_eq!((it.key(), it.value()), (&es[n].0[..], &es[n].1[..]));
            n += 1;
            it.next();
        }
        it.status().unwrap();
        assert_eq!(n, upper.unwrap_or(es.len()), "scan from {first}");
        // The blocks the scan needs: from the one holding `first` to the
        // one holding the bound.
        let wanted: Vec<&BlockHandle> = index
            .iter()
            .filter(|(last, _)| compare_internal(last, &es[first].0) != Ordering::Less)
            .take_while(|(_, h)| {
                upper_key.as_deref().is_none_or(|u| {
                    index
                        .iter()
                        .take_while(|(_, x)| x.offset < h.offset)
                        .all(|(l, _)| user_key(l) < u)
                })
            })
            .map(|(_, h)| h)
            .collect();
        let need: u64 = wanted.iter().map(|h| h.size + TRAILER_SIZE as u64).sum();
        if case == 4 {
            assert_eq!(reads.load(Relaxed), 0, "the previous scan filled the cache");
        } else {
            assert_eq!(bytes.load(Relaxed), need, "bytes read from {first}");
            // Blocks here are under 400 bytes: a run holds at least
            // max_bytes / 400 of them.
            let per_run = (max_bytes / 400).max(1);
            let got = reads.load(Relaxed) as usize;
            assert!(
                got <= wanted.len().div_ceil(per_run) + 1,
                "{got} reads for {} blocks in runs of {max_bytes} bytes",
                wanted.len()
            );
            assert!(index.iter().all(|(_, h)| h.size < 400));
        }
    }
}

/// A plain iterator that keeps stepping into the next block starts
/// reading ahead by itself; one that seeks around does not.
#[test]
fn plain_iterator_reads_ahead_once_it_is_scanning() {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    let env = FaultEnv::new();
    let p = Path::new("/auto.sst");
    let es = entries(3000);
    build(&env, p, &es);
    let reads = Arc::new(AtomicU64::new(0));
    let file = CountingFile {
        inner: env.open_random_access(p).unwrap(),
        reads: reads.clone(),
        bytes: Arc::new(AtomicU64::new(0)),
    };
    let size = env.file_size(p).unwrap();
    let t = Table::open(Box::new(file), p.to_path_buf(), 9, size, None).unwrap();
    let blocks = t.index_entries().unwrap().len() as u64;
    reads.store(0, Relaxed);
    let mut it = t.iter();
    it.seek_to_first();
    let mut n = 0;
    while it.valid() {
        assert_eq!(it.key(), &es[n].0[..]);
        n += 1;
        it.next();
    }
    assert_eq!(n, es.len());
    let scanned = reads.load(Relaxed);
    assert!(scanned * 20 < blocks, "{scanned} reads for {blocks} blocks");
    reads.store(0, Relaxed);
    for (k, _) in es.iter().step_by(300) {
        it.seek(k);
        assert_eq!(it.key(), &k[..]);
    }
    assert_eq!(reads.load(Relaxed), 10, "one block per seek");
}

#[test]
fn read_ahead_names_a_damaged_block_in_a_run() {
    let env = FaultEnv::new();
    let p = Path::new("/rc.sst");
    let es = entries(1000);
    build(&env, p, &es);
    let t = open_uncached(&env, p, 3);
    let index = t.index_entries().unwrap();
    let h = index[5].1;
    assert!(env.corrupt_byte(p, h.offset as usize + 3));
    let t = open_uncached(&env, p, 3);
    let mut it = t.iter_with(Some(ReadAhead {
        upper: None,
        max_bytes: 1 << 20,
        fill_cache: false,
    }));
    it.seek_to_first();
    let mut n = 0;
    while it.valid() {
        n += 1;
        it.next();
    }
    // Everything before the damaged block was returned; the error came
    // when the scan reached it.
    let before = es
        .iter()
        .filter(|(k, _)| compare_internal(k, &index[4].0) != Ordering::Greater)
        .count();
    assert_eq!(n, before);
    let err = it.status().unwrap_err();
    assert!(err.is_corruption(), "{err}");
    assert!(
        err.to_string().contains(&format!("offset {}", h.offset)),
        "{err}"
    );
}

#[test]
fn corruption_names_file_and_offset() {
    let env = FaultEnv::new();
    let p = Path::new("/c.sst");
    let es = entries(500);
    build(&env, p, &es);
    assert!(env.corrupt_byte(p, 100));
    let t = open_uncached(&env, p, 2);
    let err = t.verify().unwrap_err();
    assert!(
        err.to_string().contains("/c.sst") && err.to_string().contains("offset 0"),
        "{err}"
    );
    let mut it = t.iter();
    it.seek_to_first();
    assert!(!it.valid());
    assert!(it.status().unwrap_err().is_corruption());
    let e = t.get(&lookup_key(user_key(&es[0].0), 1 << 40)).unwrap_err();
    assert!(e.is_corruption());
}

#[test]
fn truncated_or_garbage_files_never_panic() {
    let env = FaultEnv::new();
    let p = Path::new("/g.sst");
    build(&env, p, &entries(300));
    let data = env.file_contents(p).unwrap();
    for cut in [0usize, 10, 47, 48, data.len() / 2, data.len() - 1] {
        let q = Path::new("/cut.sst");
        let mut f = env.create_writable(q).unwrap();
        f.append(&data[..cut]).unwrap();
        drop(f);
        let r = Table::open(
            env.open_random_access(q).unwrap(),
            q.to_path_buf(),
            3,
            cut as u64,
            None,
        );
        assert!(r.is_err(), "cut {cut}");
    }
    let mut seed = 7u64;
    for round in 0..200 {
        let mut d = data.clone();
        for _ in 0..4 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let i = (seed >> 33) as usize % d.len();
            d[i] = (seed >> 20) as u8;
        }
        let q = PathBuf::from(format!("/r{round}.sst"));
        let mut f = env.create_writable(&q).unwrap();
        f.append(&d).unwrap();
        drop(f);
        if let Ok(t) = Table::open(
            env.open_random_access(&q).unwrap(),
            q.clone(),
            4,
            d.len() as u64,
            None,
        ) {
            let _ = t.verify();
            let mut it = t.iter();
            it.seek_to_first();
            while it.valid() {
                it.next();
            }
            let _ = t.get(&lookup_key(b"key-with", 5));
        }
    }
}
