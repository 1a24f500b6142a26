//! Hostile bytes: every decoder of bytes that come from disk, fed random and
//! mutated input, returns an error — it never panics and never allocates
//! without bound (see `common/hostile.rs` for the harness and its knobs).
//!
//! Decoders behind a checksum are fuzzed twice: through their framing (the
//! checksum must catch the damage) and with the damage re-checksummed, so
//! the decoder itself sees it. The last tests go end to end: a damaged
//! table through `Table::open` and iteration, damaged WALs, MANIFESTs,
//! CURRENT and tables through `Db::open`, damaged values through the
//! filesystem's operations.
//!
//! Every bug these found keeps its reproducing case in `regressions`.

#[path = "common/hostile.rs"]
mod hostile;

use hostile::{mutate, run, run_corpus};
use lsmfs::engine::coding::{get_length_prefixed, get_varint32, get_varint64, Decoder};
use lsmfs::engine::dbformat::{lookup_key, make_internal_key, ValueType};
use lsmfs::engine::env::fault::FaultEnv;
use lsmfs::engine::env::Env;
use lsmfs::engine::iterator::InternalIterator;
use lsmfs::engine::log::format::{fragment_crc, mask_crc, BLOCK_SIZE};
use lsmfs::engine::log::reader::LogReader;
use lsmfs::engine::log::writer::LogWriter;
use lsmfs::engine::memtable::MemTable;
use lsmfs::engine::range_del::{self, RangeTombstone};
use lsmfs::engine::table::{Table, TableBuilder, TableOptions, FOOTER_SIZE};
use lsmfs::engine::version::edit::{FileMetaData, VersionEdit};
use lsmfs::engine::{Db, Options, WriteBatch};
use lsmfs::fs::core::{Caller, FsCore};
use lsmfs::fs::inode::Attr;
use lsmfs::fs::schema::{describe_key, parse_key, ROOT_INO};
use lsmfs::store::{Batch, MemStore, Store};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[global_allocator]
static ALLOC: hostile::Bounded = hostile::Bounded;

// ------------------------------------------------------------ corpora

fn batches() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut b = WriteBatch::new();
    b.put(b"key", b"value");
    b.delete(b"gone");
    b.put(b"", b"");
    b.set_sequence(77);
    out.push(b.data().to_vec());
    let mut b = WriteBatch::new();
    for i in 0..40u32 {
        b.put(format!("k{i}").as_bytes(), &vec![i as u8; i as usize * 3]);
    }
    b.set_sequence(1 << 40);
    out.push(b.data().to_vec());
    let mut b = WriteBatch::new();
    b.put(b"a", b"1");
    b.delete_range(b"a", b"m");
    b.delete_range(b"x", b"\xff\xff");
    b.set_sequence(9);
    out.push(b.data().to_vec());
    out
}

fn edits() -> Vec<Vec<u8>> {
    let file = |n: u64, a: &[u8], z: &[u8]| FileMetaData {
        number: n,
        file_size: 4096 + n,
        smallest: make_internal_key(a, n * 10, ValueType::Value),
        largest: make_internal_key(z, n * 10 + 5, ValueType::Deletion),
        smallest_seq: n * 10,
        largest_seq: n * 10 + 5,
        num_entries: 42,
    };
    let mut e = VersionEdit {
        comparator: Some("lsmfs.BytewiseComparator".into()),
        log_number: Some(5),
        prev_log_number: Some(0),
        next_file_number: Some(13),
        last_sequence: Some(9000),
        ..Default::default()
    };
    e.compact_pointers
        .push((2, make_internal_key(b"m", 5, ValueType::Value)));
    e.delete_file(1, 7);
    e.add_file(0, file(11, b"a", b"q"));
    e.add_file(2, file(12, b"b", b"c"));
    e.new_blobs.push(lsmfs::engine::blob::BlobFileMeta {
        number: 14,
        file_size: 99999,
        records: 20,
        record_bytes: 90000,
        garbage_records: 2,
        garbage_bytes: 9000,
    });
    e.blob_garbage.push((14, 1, 4500));
    e.deleted_blobs.insert(10);
    let small = VersionEdit {
        log_number: Some(9),
        last_sequence: Some(1),
        ..Default::default()
    };
    vec![e.encode(), small.encode()]
}

/// A log holding `records` as the writer frames them.
fn log_of(records: &[Vec<u8>]) -> Vec<u8> {
    let env = FaultEnv::new();
    let p = Path::new("/l.log");
    let mut w = LogWriter::new(env.create_writable(p).expect("create"));
    for r in records {
        w.add_record(r).expect("append");
    }
    w.flush().expect("flush");
    drop(w);
    env.file_contents(p).expect("contents")
}

fn log_records() -> Vec<Vec<u8>> {
    let mut recs = batches();
    recs.push(vec![7u8; BLOCK_SIZE + 100]); // FIRST, MIDDLE..., LAST
    recs.push(Vec::new());
    recs.extend(edits());
    recs
}

fn table_opts() -> TableOptions {
    TableOptions {
        block_size: 256,
        restart_interval: 4,
        bloom_bits_per_key: 10,
    }
}

/// A table of `n` entries (and, with `ranges`, range deletions: version 2).
fn table_bytes(n: u32, ranges: bool) -> Vec<u8> {
    let env = FaultEnv::new();
    let p = Path::new("/t.sst");
    let mut b = TableBuilder::new(env.create_writable(p).expect("create"), table_opts());
    if ranges {
        b.add_range_deletion(RangeTombstone::new(b"key00010", b"key00020", 50));
        b.add_range_deletion(RangeTombstone::new(b"key00015", b"zz", 7));
    }
    for i in 0..n {
        let k = make_internal_key(
            format!("key{i:05}").as_bytes(),
            100 + i as u64,
            ValueType::Value,
        );
        b.add(&k, format!("v{i}").repeat(i as usize % 5 + 1).as_bytes())
            .expect("add");
    }
    b.finish().expect("finish");
    env.file_contents(p).expect("contents")
}

/// Open `data` as a table and read all of it every way there is.
fn exercise_table(data: &[u8]) {
    let env = FaultEnv::new();
    let p = Path::new("/x.sst");
    let mut f = env.create_writable(p).expect("create");
    f.append(data).expect("append");
    drop(f);
    let file = env.open_random_access(p).expect("open");
    let t = match Table::open(file, p.to_path_buf(), 9, data.len() as u64, None) {
        Ok(t) => t,
        Err(_) => {
            // As repair does next.
            let file = env.open_random_access(p).expect("open");
            match Table::open_for_salvage(file, p.to_path_buf(), 9, data.len() as u64) {
                Ok(t) => t,
                Err(_) => return,
            }
        }
    };
    if let Ok(index) = t.index_entries() {
        for (_, h) in index {
            let _ = t.block_entries(h);
        }
    }
    let _ = t.verify();
    let _ = t.index_entries();
    let mut it = t.iter();
    it.seek_to_first();
    let mut n = 0;
    while it.valid() && n < 100_000 {
        n += 1;
        it.next();
    }
    let _ = it.status();
    for k in [&b"key00003"[..], b"key00150", b"zzz", b""] {
        let _ = t.get(&lookup_key(k, 1 << 50));
        it.seek(&lookup_key(k, 1 << 50));
        let _ = (it.valid(), it.status());
    }
}

/// Offset and size of every block of a valid table (data, filter,
/// properties, metaindex, index), parsed from its footer and metaindex.
fn block_spans(data: &[u8]) -> Vec<(usize, usize)> {
    let handle = |d: &mut Decoder| -> (usize, usize) {
        let o = d.varint64().expect("offset");
        let s = d.varint64().expect("size");
        (o as usize, s as usize)
    };
    let mut d = Decoder::new(&data[data.len() - FOOTER_SIZE..]);
    let meta = handle(&mut d);
    let index = handle(&mut d);
    let mut spans = vec![meta, index];
    // The metaindex: a restart at every entry ("filter", "properties",
    // maybe "rangedel"), so the restart count is the entry count.
    let block = &data[meta.0..meta.0 + meta.1];
    let n = u32::from_le_bytes(block[block.len() - 4..].try_into().expect("4 bytes"));
    let mut d = Decoder::new(block);
    for _ in 0..n {
        let _shared = d.varint32();
        let klen = d.varint32().expect("klen") as usize;
        let vlen = d.varint32().expect("vlen") as usize;
        d.pos += klen;
        let mut v = Decoder::new(&d.buf[d.pos..d.pos + vlen]);
        spans.push(handle(&mut v));
        d.pos += vlen;
    }
    // Data blocks run from 0 up to the first meta block, each followed by
    // its 5-byte trailer; the index lists them.
    let env = FaultEnv::new();
    let p = Path::new("/s.sst");
    let mut f = env.create_writable(p).expect("create");
    f.append(data).expect("append");
    drop(f);
    let t = Table::open(
        env.open_random_access(p).expect("open"),
        p.to_path_buf(),
        1,
        data.len() as u64,
        None,
    )
    .expect("valid table");
    for (_, h) in t.index_entries().expect("index") {
        spans.push((h.offset as usize, h.size as usize));
    }
    spans
}

/// Recompute the trailer checksum of each block in `spans` that still fits.
fn fix_block_crcs(d: &mut [u8], spans: &[(usize, usize)]) {
    for &(o, s) in spans {
        if o + s + 5 > d.len() {
            continue;
        }
        let mut h = crc32fast::Hasher::new();
        h.update(&d[o..o + s]);
        h.update(&[d[o + s]]);
        let crc = mask_crc(h.finalize());
        d[o + s + 1..o + s + 5].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Re-frame a log so every fragment's checksum matches its (damaged)
/// payload: the decoder behind the log sees the damage.
fn fix_log_crcs(d: &mut [u8]) {
    let mut pos = 0;
    while pos + 7 <= d.len() {
        let left = BLOCK_SIZE - pos % BLOCK_SIZE;
        if left < 7 {
            pos += left;
            continue;
        }
        let len = u16::from_le_bytes([d[pos + 4], d[pos + 5]]) as usize;
        let kind = d[pos + 6];
        let end = pos + 7 + len;
        if end > d.len() || len > left - 7 {
            return;
        }
        let crc = mask_crc(fragment_crc(kind, &d[pos + 7..end]));
        d[pos..pos + 4].copy_from_slice(&crc.to_le_bytes());
        pos = end;
    }
}

fn read_log(data: &[u8], synced: bool) {
    let path = PathBuf::from("/fuzz.log");
    let mut r = if synced {
        LogReader::each_record_synced(path, data.to_vec())
    } else {
        LogReader::new(path, data.to_vec())
    };
    // As repair reads: past every damage to the next valid record.
    let mut n = 0;
    loop {
        n += 1;
        assert!(
            n < 100_000,
            "a log of {} bytes gave {n} records",
            data.len()
        );
        match r.read_record() {
            Ok(Some(rec)) => {
                decode_batch(&rec);
                let _ = VersionEdit::decode(&rec).map(|e| e.to_string());
            }
            _ => {
                let _ = r.torn_tail();
                if r.skip_damage().is_none() {
                    break;
                }
            }
        }
    }
}

fn decode_batch(data: &[u8]) {
    if let Ok(b) = WriteBatch::from_data(data.to_vec()) {
        let _ = (b.count(), b.sequence());
        for e in b.iter() {
            if e.is_err() {
                break;
            }
        }
        let _ = b.insert_into(&MemTable::new());
    }
}

// ------------------------------------------------------------ decoders

#[test]
fn varints_and_length_prefixes() {
    run(
        "coding",
        |rng| (0..rng.gen_range(0..24)).map(|_| rng.gen()).collect(),
        |d| {
            let _ = get_varint32(d);
            let _ = get_varint64(d);
            let _ = get_length_prefixed(d);
            let mut dec = Decoder::new(d);
            while !dec.is_empty() {
                if dec.length_prefixed().is_none() && dec.varint64().is_none() && dec.u8().is_none()
                {
                    break;
                }
            }
        },
    );
}

#[test]
fn write_batch() {
    run_corpus("write_batch", &batches(), decode_batch);
}

#[test]
fn version_edit() {
    run_corpus("version_edit", &edits(), |d| {
        if let Ok(e) = VersionEdit::decode(d) {
            let _ = e.to_string();
            let _ = VersionEdit::decode(&e.encode());
        }
    });
}

#[test]
fn log_records_through_the_checksums() {
    let log = log_of(&log_records());
    run_corpus("log", &[log], |d| {
        read_log(d, false);
        read_log(d, true);
    });
}

#[test]
fn log_payloads_behind_valid_checksums() {
    let log = log_of(&log_records());
    run_corpus("log_payload", &[log], |d| {
        let mut d = d.to_vec();
        fix_log_crcs(&mut d);
        read_log(&d, false);
        read_log(&d, true);
    });
}

#[test]
fn table_through_the_checksums() {
    let corpus = vec![
        table_bytes(1, false),
        table_bytes(300, false),
        table_bytes(40, true),
    ];
    run_corpus("table", &corpus, exercise_table);
}

#[test]
fn table_blocks_behind_valid_checksums() {
    let corpus = [
        table_bytes(1, false),
        table_bytes(300, false),
        table_bytes(40, true),
    ];
    let spans: Vec<Vec<(usize, usize)>> = corpus.iter().map(|t| block_spans(t)).collect();
    run(
        "table_blocks",
        |rng| {
            let i = rng.gen_range(0..corpus.len());
            let mut d = corpus[i].clone();
            // Damage inside one block (or the footer), keeping the size,
            // then make its checksum match again.
            let (o, s) = if rng.gen_bool(0.1) {
                (d.len() - FOOTER_SIZE, FOOTER_SIZE)
            } else {
                spans[i][rng.gen_range(0..spans[i].len())]
            };
            let m = mutate(rng, &d[o..o + s]);
            let n = m.len().min(s);
            d[o..o + n].copy_from_slice(&m[..n]);
            fix_block_crcs(&mut d, &spans[i]);
            d
        },
        exercise_table,
    );
}

#[test]
fn range_deletion_blocks() {
    let ts = vec![
        RangeTombstone::new(b"a", b"c", 5),
        RangeTombstone::new(b"b", b"zz", 9),
        RangeTombstone::new(b"", b"\x00", 1),
    ];
    run_corpus("range_del", &[range_del::encode_block(&ts)], |d| {
        if let Ok(list) = range_del::decode_block(d) {
            let f = range_del::Fragments::new(list);
            for k in [&b""[..], b"a", b"b", b"m", b"\xff"] {
                let _ = f.max_covering(k, u64::MAX);
                let _ = f.max_covering(k, 6);
            }
        }
    });
}

/// Blob files and blob references: a whole file through `records` (every
/// CRC, the footer's counts) and single references through reads.
#[test]
fn blob_files_and_references() {
    use lsmfs::engine::blob::{BlobCache, BlobFile, BlobRef, BlobWriter};
    let env: Arc<dyn Env> = Arc::new(FaultEnv::new());
    let dir = Path::new("/b");
    env.create_dir_all(dir).expect("dir");
    let mut w = BlobWriter::create(env.as_ref(), dir, 3).expect("create");
    let refs: Vec<BlobRef> = (0..8u32)
        .map(|i| {
            w.add(format!("k{i}").as_bytes(), &vec![i as u8; 300])
                .expect("add")
        })
        .collect();
    w.finish().expect("finish");
    let path = dir.join("000003.blob");
    let valid = env.read_all(&path).expect("read");
    run_corpus("blob_file", &[valid], |d| {
        let mut f = env.create_writable(&path).expect("create");
        f.append(d).expect("append");
        f.sync().expect("sync");
        drop(f);
        if let Ok(b) = BlobFile::open(env.as_ref(), path.clone()) {
            let _ = b.records();
            for (i, r) in refs.iter().enumerate() {
                let _ = b.read(r, format!("k{i}").as_bytes());
            }
        }
    });
    let cache = BlobCache::new(env.clone(), dir.to_path_buf());
    run_corpus("blob_ref", &[refs[3].encode()], |d| {
        let _ = BlobRef::decode(d);
        let _ = cache.get(b"k3", d);
    });
}

#[test]
fn inode_records() {
    let mut corpus = Vec::new();
    for (kind, inline) in [
        (1u8, Some(b"hello".to_vec())),
        (1, None),
        (2, None),
        (3, None),
    ] {
        let a = Attr {
            kind,
            mode: lsmfs::fs::inode::type_bits(kind) | 0o644,
            nlink: 1,
            size: inline.as_ref().map_or(1 << 20, |d| d.len() as u64),
            chunks: 256,
            inline,
            has_xattrs: true,
            ..Default::default()
        };
        corpus.push(a.encode());
    }
    run_corpus("inode", &corpus, |d| {
        if let Ok(a) = Attr::decode(d) {
            let _ = (a.blocks(), a.kind_name(), a.is_dir());
            assert_eq!(Attr::decode(&a.encode()).as_ref(), Ok(&a));
        }
    });
}

#[test]
fn keys_and_values_described() {
    let keys: Vec<Vec<u8>> = vec![
        lsmfs::fs::schema::inode_key(42),
        lsmfs::fs::schema::dentry_key(1, b"name"),
        lsmfs::fs::schema::chunk_key(3, 9),
        lsmfs::fs::schema::xattr_key(3, b"user.k"),
        lsmfs::fs::schema::meta_key("next_ino"),
    ];
    run(
        "schema",
        |rng| {
            let which = rng.gen_range(0..keys.len());
            let k = mutate(rng, &keys[which]);
            let mut v = mutate(rng, &[0u8; 9]);
            let mut out = (k.len() as u32).to_le_bytes().to_vec();
            out.append(&mut k.clone());
            out.append(&mut v);
            out
        },
        |d| {
            let n = u32::from_le_bytes([d[0], d[1], d[2], d[3]]) as usize;
            let (k, v) = d[4..].split_at(n);
            let _ = parse_key(k);
            let _ = describe_key(k, Some(v));
            let _ = describe_key(k, None);
        },
    );
}

// ------------------------------------------------------------ end to end

fn small_opts(env: &Arc<FaultEnv>) -> Options {
    Options {
        env: env.clone(),
        write_buffer_size: 4 << 10,
        block_size: 256,
        ..Default::default()
    }
}

/// A data directory with tables on two levels, a MANIFEST and a WAL tail.
fn sample_db(env: &Arc<FaultEnv>, dir: &Path) {
    let db = Db::open(dir, small_opts(env)).expect("open");
    for i in 0..400u32 {
        db.put(format!("k{i:04}").as_bytes(), &[i as u8; 40])
            .expect("put");
        if i == 200 {
            db.compact_range(None, None).expect("compact");
        }
    }
    db.flush().expect("flush");
    for i in 0..50u32 {
        db.put(format!("w{i:03}").as_bytes(), b"in the wal")
            .expect("put");
    }
    db.sync().expect("sync");
    db.close().expect("close");
}

/// Damaged databases through `Db::open` and a full read: an error that
/// names a file of the directory, or a store that reads to its end.
#[test]
fn damaged_databases_through_recovery() {
    let env = Arc::new(FaultEnv::new());
    let dir = Path::new("/db");
    sample_db(&env, dir);
    let names = env.files(dir);
    let originals: Vec<(String, Vec<u8>)> = names
        .iter()
        .filter(|n| n.as_str() != "LOCK")
        .map(|n| {
            (
                n.clone(),
                env.file_contents(&dir.join(n)).expect("contents"),
            )
        })
        .collect();
    assert!(originals.iter().any(|(n, _)| n.ends_with(".sst")));
    assert!(originals.iter().any(|(n, _)| n.ends_with(".log")));
    assert!(originals.iter().any(|(n, _)| n.starts_with("MANIFEST")));
    let cases = (hostile::cases() / 10).max(20);
    let seed = hostile::seed();
    for case in 0..cases {
        let mut rng = StdRng::seed_from_u64(seed ^ case);
        let env = Arc::new(FaultEnv::new());
        let victim = rng.gen_range(0..originals.len());
        for (i, (name, data)) in originals.iter().enumerate() {
            let data = if i == victim {
                mutate(&mut rng, data)
            } else {
                data.clone()
            };
            let mut f = env.create_writable(&dir.join(name)).expect("create");
            f.append(&data).expect("append");
            f.sync().expect("sync");
        }
        env.sync_dir(dir).expect("sync dir");
        let victim = &originals[victim].0;
        let outcome = std::panic::catch_unwind(|| match Db::open(dir, small_opts(&env)) {
            Ok(db) => {
                let r = db.iter(None).and_then(|mut it| {
                    it.seek_to_first();
                    while it.valid() {
                        it.next();
                    }
                    it.status()
                });
                let _ = db.get(b"k0100");
                let _ = db.close();
                r.err()
            }
            Err(e) => Some(e),
        });
        match outcome {
            Ok(Some(e)) => {
                let msg = e.to_string();
                assert!(
                    e.is_corruption() && msg.contains("/db/") && msg.contains(" at offset "),
                    "case {case} (damaged {victim}): not an error naming the file and offset: {msg}"
                );
            }
            Ok(None) => {}
            Err(p) => {
                eprintln!("hostile bytes: Db::open panicked, case {case} damaging {victim} (LSMFS_FUZZ_SEED={seed})");
                std::panic::resume_unwind(p);
            }
        }
    }
}

/// A filesystem whose stored values are damaged: every operation returns
/// an errno (EIO for a bad record) and none panics.
#[test]
fn damaged_values_through_the_filesystem() {
    let store = Arc::new(MemStore::new());
    {
        let fs = FsCore::open(store.clone(), false, false).expect("format");
        let c = Caller::ROOT;
        let d = fs.mkdir(c, ROOT_INO, b"dir", 0o755).expect("mkdir");
        let f = fs.create(c, d.ino, b"big", 0o644).expect("create");
        fs.write(c, f.ino, 0, &[5u8; 20_000], false).expect("write");
        let s = fs.create(c, ROOT_INO, b"small", 0o644).expect("create");
        fs.write(c, s.ino, 0, b"inline", false).expect("write");
        fs.symlink(c, ROOT_INO, b"link", b"dir/big")
            .expect("symlink");
        fs.link(s.ino, d.ino, b"hard").expect("link");
        fs.setxattr(c, s.ino, b"user.k", b"v", 0).expect("setxattr");
        fs.release_file(f.ino).ok();
    }
    let all = store.scan(b"", &[0xff; 4], usize::MAX).expect("scan");
    run(
        "fs_values",
        |rng| {
            let i = rng.gen_range(0..all.len());
            let mut out = (i as u32).to_le_bytes().to_vec();
            out.push(rng.gen_range(0..2));
            out.extend(mutate(rng, if out[4] == 0 { &all[i].1 } else { &all[i].0 }));
            out
        },
        |d| {
            let i = u32::from_le_bytes([d[0], d[1], d[2], d[3]]) as usize;
            let damaged = &d[5..];
            let s = Arc::new(MemStore::new());
            let mut b = Batch::new();
            for (j, (k, v)) in all.iter().enumerate() {
                match (j == i, d[4]) {
                    (true, 0) => b.put(k.clone(), damaged.to_vec()),
                    (true, _) => b.put(damaged.to_vec(), v.clone()),
                    _ => b.put(k.clone(), v.clone()),
                }
            }
            s.write(b, false).expect("write");
            walk_and_poke(s);
        },
    );
}

/// The same damage through `check`'s filesystem pass (over the engine).
#[test]
fn damaged_values_through_fsck() {
    let store = Arc::new(MemStore::new());
    {
        let fs = FsCore::open(store.clone(), false, false).expect("format");
        let c = Caller::ROOT;
        let d = fs.mkdir(c, ROOT_INO, b"dir", 0o755).expect("mkdir");
        let f = fs.create(c, d.ino, b"big", 0o644).expect("create");
        fs.write(c, f.ino, 0, &[5u8; 9000], false).expect("write");
        fs.symlink(c, ROOT_INO, b"link", b"dir/big")
            .expect("symlink");
        fs.link(f.ino, ROOT_INO, b"hard").expect("link");
        fs.release_file(f.ino).ok();
    }
    let all = store.scan(b"", &[0xff; 4], usize::MAX).expect("scan");
    let cases = (hostile::cases() / 10).max(20);
    let seed = hostile::seed();
    for case in 0..cases {
        let mut rng = StdRng::seed_from_u64(seed ^ case ^ 0xf5c4);
        let i = rng.gen_range(0..all.len());
        let value = rng.gen_bool(0.7);
        let damaged = mutate(&mut rng, if value { &all[i].1 } else { &all[i].0 });
        let env = Arc::new(FaultEnv::new());
        let db = Db::open(Path::new("/f"), small_opts(&env)).expect("open");
        let mut b = WriteBatch::new();
        for (j, (k, v)) in all.iter().enumerate() {
            match (j == i, value) {
                (true, true) => b.put(k, &damaged),
                (true, false) => b.put(&damaged, v),
                _ => b.put(k, v),
            }
        }
        db.write(b, false).expect("write");
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let (mut problems, mut summary) = (Vec::new(), Vec::new());
            lsmfs::fs::fsck::check_tree(&db, &mut problems, &mut summary);
        }));
        if let Err(p) = outcome {
            eprintln!("hostile bytes: fsck panicked, case {case} (LSMFS_FUZZ_SEED={seed})");
            std::panic::resume_unwind(p);
        }
        db.close().expect("close");
    }
}

/// Every read and a few writes over the whole tree.
fn walk_and_poke(store: Arc<MemStore>) {
    let Ok(fs) = FsCore::open(store, false, false) else {
        return;
    };
    let c = Caller::ROOT;
    let mut todo = vec![ROOT_INO];
    let mut seen = 0;
    while let Some(dir) = todo.pop() {
        seen += 1;
        if seen > 100 {
            break;
        }
        let Ok(entries) = fs.list_dir(dir) else {
            continue;
        };
        for (ino, _kind, name) in entries {
            let Ok(a) = fs.lookup(dir, &name) else {
                continue;
            };
            let _ = fs.getattr(ino);
            let _ = (
                a.blocks(),
                fs.listxattr(c, ino),
                fs.getxattr(c, ino, b"user.k"),
            );
            if a.is_dir() {
                todo.push(a.ino);
                continue;
            }
            let _ = fs.readlink(a.ino);
            if fs.open_file(a.ino).is_ok() {
                let _ = fs.read(a.ino, 0, 1 << 16);
                let _ = fs.read(a.ino, a.size.saturating_sub(10), 100);
                let _ = fs.write(c, a.ino, 4090, b"poke", false);
                let _ = fs.release_file(a.ino);
            }
            let _ = fs.link(a.ino, ROOT_INO, b"again");
            let _ = fs.rename(c, dir, &name, ROOT_INO, b"moved", 0);
            let _ = fs.unlink(c, ROOT_INO, b"moved");
        }
        let _ = fs.mkdir(c, dir, b"new", 0o755);
        let _ = fs.rmdir(c, dir, b"new");
    }
    let _ = fs.rmdir(c, ROOT_INO, b"dir");
}

// ------------------------------------------------------------ regressions

/// Inputs that once panicked or allocated without bound.
mod regressions {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    /// An inode record with `chunks` near 2^64: st_blocks overflowed.
    #[test]
    fn inode_with_a_huge_chunk_count() {
        let d = hex(
            "0201a4810000000000000000000001000000000000000500000000000000000000000000000000000000\
             000000000000000000000000000000000031cf81e79135e26db72f340e954a842d53bf657d63cbd4e0\
             9517c8756d00000000010000000000000368656c6c6f",
        );
        let a = Attr::decode(&d).expect("a valid record, with a silly count");
        assert_eq!(a.blocks(), u64::MAX);
    }

    /// A WAL batch whose count field says 2^32 - 1 entries: the replay
    /// reserved room for all of them (a 128 GiB allocation).
    #[test]
    fn batch_with_a_huge_count() {
        let mut b = WriteBatch::new();
        b.put(b"k", b"v");
        let mut d = b.data().to_vec();
        d[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        let b = WriteBatch::from_data(d).expect("header");
        let e = b.insert_into(&MemTable::new()).expect_err("count mismatch");
        assert!(e.contains("header says"), "{e}");
    }

    /// A batch whose sequence numbers run past 2^56 (or wrap 2^64): they
    /// do not fit an internal key, and counting them overflowed.
    #[test]
    fn batch_past_the_largest_sequence() {
        for seq in [u64::MAX, u64::MAX - 1, 1 << 56] {
            let mut b = WriteBatch::new();
            b.put(b"a", b"1");
            b.put(b"b", b"2");
            b.set_sequence(seq);
            let b = WriteBatch::from_data(b.data().to_vec()).expect("header");
            let e = b.insert_into(&MemTable::new()).expect_err("out of range");
            assert!(e.contains("largest sequence"), "{e}");
        }
    }

    /// A directory inode whose nlink is 2^32 - 1: mkdir in it, or a
    /// rename of a directory into it, overflowed the count.
    #[test]
    fn directory_with_a_full_link_count() {
        let store = Arc::new(MemStore::new());
        let fs = FsCore::open(store.clone(), false, false).expect("format");
        let c = Caller::ROOT;
        let d = fs.mkdir(c, ROOT_INO, b"d", 0o755).expect("mkdir");
        let e = fs.mkdir(c, ROOT_INO, b"e", 0o755).expect("mkdir");
        drop(fs);
        let key = lsmfs::fs::schema::inode_key(d.ino);
        let mut a = Attr::decode(&store.get(&key).expect("get").expect("inode")).expect("decode");
        a.nlink = u32::MAX;
        let mut b = Batch::new();
        b.put(key, a.encode());
        store.write(b, false).expect("write");
        let fs = FsCore::open(store, false, false).expect("open");
        assert_eq!(fs.mkdir(c, d.ino, b"x", 0o755).err(), Some(libc::EMLINK));
        let _ = fs.rename(c, ROOT_INO, b"e", d.ino, b"e", 0);
        let _ = e;
    }

    /// `M next_ino` of 2^64 - 1: the next allocation overflowed.
    #[test]
    fn inode_high_water_mark_at_the_end() {
        let store = Arc::new(MemStore::new());
        drop(FsCore::open(store.clone(), false, false).expect("format"));
        let mut b = Batch::new();
        b.put(
            lsmfs::fs::schema::meta_key("next_ino"),
            u64::MAX.to_be_bytes().to_vec(),
        );
        store.write(b, false).expect("write");
        let fs = FsCore::open(store, false, false).expect("open");
        let c = Caller::ROOT;
        assert_eq!(fs.mkdir(c, ROOT_INO, b"d", 0o755).err(), Some(libc::ENOSPC));
        let _ = fs.inodes_used();
    }

    /// fsck over a chunk key naming chunk 2^64 - 1, and over two files of
    /// 2^63 bytes: the offsets and the byte total overflowed.
    #[test]
    fn fsck_over_huge_chunk_indexes_and_sizes() {
        let env = Arc::new(FaultEnv::new());
        let db = Db::open(Path::new("/f"), small_opts(&env)).expect("open");
        let mut b = WriteBatch::new();
        for ino in [20u64, 21] {
            let a = Attr {
                kind: lsmfs::fs::inode::KIND_FILE,
                mode: libc::S_IFREG | 0o644,
                nlink: 1,
                size: 1 << 63,
                ..Default::default()
            };
            b.put(&lsmfs::fs::schema::inode_key(ino), &a.encode());
        }
        b.put(&lsmfs::fs::schema::chunk_key(20, u64::MAX), b"data");
        db.write(b, false).expect("write");
        let (mut problems, mut summary) = (Vec::new(), Vec::new());
        lsmfs::fs::fsck::check_tree(&db, &mut problems, &mut summary);
        assert!(
            problems.iter().any(|p| p.contains("beyond the size")),
            "{problems:?}"
        );
        db.close().expect("close");
    }

    /// MANIFEST records with a file number or counter of 2^64 - 1: the
    /// next-file counter overflowed when recovery marked it used.
    #[test]
    fn edit_with_impossible_numbers() {
        let big = |f: &mut VersionEdit| f.next_file_number = Some(u64::MAX);
        let seq = |f: &mut VersionEdit| f.last_sequence = Some(u64::MAX);
        let file = |f: &mut VersionEdit| {
            f.add_file(
                0,
                FileMetaData {
                    number: u64::MAX,
                    smallest: make_internal_key(b"a", 1, ValueType::Value),
                    largest: make_internal_key(b"b", 1, ValueType::Value),
                    ..Default::default()
                },
            )
        };
        for damage in [big, seq, file] {
            let mut e = VersionEdit {
                log_number: Some(3),
                next_file_number: Some(4),
                last_sequence: Some(5),
                ..Default::default()
            };
            damage(&mut e);
            let err = VersionEdit::decode(&e.encode()).expect_err("out of range");
            assert!(err.contains("out of range"), "{err}");
            // And through recovery: a MANIFEST holding it is refused by name.
            let env = Arc::new(FaultEnv::new());
            let dir = Path::new("/m");
            let mut w = LogWriter::new(
                env.create_writable(&dir.join("MANIFEST-000002"))
                    .expect("create"),
            );
            w.add_record(&e.encode()).expect("add");
            w.sync().expect("sync");
            drop(w);
            let mut c = env.create_writable(&dir.join("CURRENT")).expect("create");
            c.append(b"MANIFEST-000002\n").expect("append");
            c.sync().expect("sync");
            drop(c);
            env.sync_dir(dir).expect("sync dir");
            let err = Db::open(dir, small_opts(&env)).err().expect("refused");
            assert!(err.to_string().contains("/m/MANIFEST-000002"), "{err}");
        }
    }
}
