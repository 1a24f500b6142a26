//! Randomised model check of the engine against a `BTreeMap`: puts (a few
//! of them large), deletes, range deletions, batches, snapshots, scans,
//! flushes, compactions and reopens,
//! with tiny memtables and level budgets so that every mechanism runs.

use lsmfs::engine::env::fault::FaultEnv;
use lsmfs::engine::{Db, Options, WriteBatch};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

pub fn small_options() -> Options {
    Options {
        write_buffer_size: 16 << 10,
        block_size: 512,
        target_file_size: 8 << 10,
        max_bytes_for_level_base: 32 << 10,
        l0_compaction_trigger: 2,
        l0_slowdown_trigger: 6,
        l0_stop_trigger: 10,
        max_manifest_size: 4 << 10,
        block_cache_bytes: 64 << 10,
        max_open_files: 20,
        ..Default::default()
    }
}

fn key(rng: &mut StdRng) -> Vec<u8> {
    format!("key{:05}", rng.gen_range(0..2000)).into_bytes()
}

fn value(rng: &mut StdRng) -> Vec<u8> {
    let len = if rng.gen_bool(0.03) {
        rng.gen_range(1000..9000)
    } else {
        rng.gen_range(0..200)
    };
    (0..len).map(|_| rng.gen::<u8>()).collect()
}

/// A random range of up to ~60 keys, `start < end`.
fn key_range(rng: &mut StdRng) -> (Vec<u8>, Vec<u8>) {
    let a = rng.gen_range(0..2000);
    let b = a + rng.gen_range(1..60);
    (
        format!("key{a:05}").into_bytes(),
        format!("key{b:05}").into_bytes(),
    )
}

fn model_delete_range(model: &mut Model, start: &[u8], end: &[u8]) {
    let doomed: Vec<Vec<u8>> = model
        .range(start.to_vec()..end.to_vec())
        .map(|(k, _)| k.clone())
        .collect();
    for k in doomed {
        model.remove(&k);
    }
}

fn full_scan(db: &Db) -> Model {
    let mut it = db.iter(None).expect("iter");
    it.seek_to_first();
    let mut out = Model::new();
    while it.valid() {
        out.insert(it.key().to_vec(), it.value().to_vec());
        it.next();
    }
    it.status().expect("iterator status");
    out
}

fn check_range(db: &Db, model: &Model, rng: &mut StdRng) {
    let a = key(rng);
    let b = key(rng);
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let got = db.scan(&lo, Some(&hi), 50, None).expect("scan");
    let want: Vec<(Vec<u8>, Vec<u8>)> = model
        .range(lo.clone()..hi.clone())
        .take(50)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(got, want, "scan [{lo:?}, {hi:?})");
}

fn run_model(dir: &Path, opts: Options, seed: u64, steps: usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut db = Db::open(dir, opts.clone()).expect("open");
    let mut model = Model::new();
    let mut snaps: Vec<(lsmfs::engine::Snapshot, Model)> = Vec::new();
    let mut blob_bytes = 0;
    for step in 0..steps {
        match rng.gen_range(0..100) {
            0..=44 => {
                let (k, v) = (key(&mut rng), value(&mut rng));
                db.put(&k, &v).expect("put");
                model.insert(k, v);
            }
            45..=54 => {
                let k = key(&mut rng);
                db.delete(&k).expect("delete");
                model.remove(&k);
            }
            55..=59 => {
                let (a, b) = key_range(&mut rng);
                db.delete_range(&a, &b).expect("delete_range");
                model_delete_range(&mut model, &a, &b);
            }
            60..=69 => {
                let mut b = WriteBatch::new();
                for _ in 0..rng.gen_range(1..20) {
                    let k = key(&mut rng);
                    if rng.gen_bool(0.1) {
                        let (lo, hi) = key_range(&mut rng);
                        b.delete_range(&lo, &hi);
                        model_delete_range(&mut model, &lo, &hi);
                    } else if rng.gen_bool(0.7) {
                        let v = value(&mut rng);
                        b.put(&k, &v);
                        model.insert(k, v);
                    } else {
                        b.delete(&k);
                        model.remove(&k);
                    }
                }
                db.write(b, rng.gen_bool(0.1)).expect("write batch");
            }
            70..=84 => {
                let k = key(&mut rng);
                assert_eq!(
                    db.get(&k).expect("get"),
                    model.get(&k).cloned(),
                    "get {k:?} at step {step}"
                );
            }
            85..=88 => check_range(&db, &model, &mut rng),
            89..=90 => {
                if snaps.len() < 4 {
                    snaps.push((db.snapshot(), model.clone()));
                }
            }
            91..=92 => {
                if let Some((snap, m)) = snaps.pop() {
                    for _ in 0..10 {
                        let k = key(&mut rng);
                        assert_eq!(db.get_at(&k, &snap).expect("get_at"), m.get(&k).cloned());
                    }
                    let got = db
                        .scan(b"", None, usize::MAX, Some(&snap))
                        .expect("scan at snapshot");
                    let want: Vec<_> = m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                    assert_eq!(got.len(), want.len(), "snapshot scan length at step {step}");
                    assert!(got == want, "snapshot scan differs at step {step}");
                }
            }
            93..=94 => db.flush().expect("flush"),
            95 => {
                let a = key(&mut rng);
                db.compact_range(Some(&a), None).expect("compact_range");
            }
            _ => {
                snaps.clear();
                blob_bytes += db.stats().bytes_blob_written;
                db.close().expect("close");
                drop(db);
                db = Db::open(dir, opts.clone()).expect("reopen");
            }
        }
    }
    assert!(full_scan(&db) == model, "final contents differ");
    db.compact_range(None, None).expect("full compaction");
    assert!(
        full_scan(&db) == model,
        "contents differ after full compaction"
    );
    let stats = db.stats();
    assert!(stats.num_flushes > 0, "the workload must flush: {stats}");
    assert!(
        blob_bytes + stats.bytes_blob_written > 0,
        "large values must go to blob files: {stats}"
    );
    db.close().expect("close");
    drop(db);
    let db = Db::open(dir, opts).expect("final reopen");
    assert!(
        full_scan(&db) == model,
        "contents differ after final reopen"
    );
}

#[test]
fn model_check_on_disk() {
    for seed in 0..3 {
        let dir = tempfile::tempdir().expect("tempdir");
        run_model(dir.path(), small_options(), seed, 6000);
    }
}

#[test]
fn model_check_in_memory_env() {
    for seed in 10..14 {
        let env = Arc::new(FaultEnv::new());
        let opts = Options {
            env: env.clone(),
            ..small_options()
        };
        run_model(Path::new("/db"), opts, seed, 6000);
    }
}

#[test]
fn compaction_drops_tombstones_at_the_bottom() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path(), small_options()).expect("open");
    for i in 0..3000u32 {
        db.put(format!("k{i:06}").as_bytes(), &[7u8; 100])
            .expect("put");
    }
    for i in 0..3000u32 {
        db.delete(format!("k{i:06}").as_bytes()).expect("delete");
    }
    db.compact_range(None, None).expect("compact");
    let stats = db.stats();
    let files: usize = stats.levels.iter().map(|l| l.files).sum();
    assert_eq!(
        files, 0,
        "everything deleted, nothing should remain: {stats}"
    );
    assert!(full_scan(&db).is_empty());
}

/// Large values live in blob files; once compactions have dropped every
/// reference to a blob file, the file leaves the Version and the disk.
#[test]
fn blob_files_come_and_go_with_their_references() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path(), small_options()).expect("open");
    let big = |i: u32| vec![(i % 251) as u8; 4096 + (i as usize % 300)];
    for i in 0..400u32 {
        db.put(format!("b{i:05}").as_bytes(), &big(i)).expect("put");
    }
    db.flush().expect("flush");
    let stats = db.stats();
    assert!(stats.blob_files > 0, "{stats}");
    let table_bytes: u64 = stats.levels.iter().map(|l| l.bytes).sum();
    assert!(
        table_bytes < stats.blob_bytes / 10,
        "tables hold references, not values: {stats}"
    );
    for i in (0..400u32).step_by(7) {
        assert_eq!(
            db.get(format!("b{i:05}").as_bytes()).expect("get"),
            Some(big(i))
        );
    }
    let all = full_scan(&db);
    assert_eq!(all.len(), 400);
    assert!(all.iter().all(|(k, v)| {
        let i: u32 = std::str::from_utf8(&k[1..]).unwrap().parse().unwrap();
        *v == big(i)
    }));
    // Overwrite half, delete the rest: every old record becomes garbage.
    for i in 0..200u32 {
        db.put(format!("b{i:05}").as_bytes(), b"small")
            .expect("put");
    }
    db.delete_range(b"b00200", b"b99999").expect("delete_range");
    db.compact_range(None, None).expect("compact");
    let stats = db.stats();
    assert_eq!(stats.blob_files, 0, "all-garbage blob files go: {stats}");
    let blobs_on_disk = std::fs::read_dir(dir.path())
        .expect("read_dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".blob"))
        })
        .count();
    assert_eq!(blobs_on_disk, 0);
    assert_eq!(full_scan(&db).len(), 200);
    drop(db);
    let db = Db::open(dir.path(), small_options()).expect("reopen");
    assert_eq!(full_scan(&db).len(), 200);
}

/// Delete 90% of the large values, spread over every blob file: a full
/// compaction relocates the live tenth and the old files go, so the blob
/// files shrink to about the live data.
#[test]
fn blob_gc_gives_the_space_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path(), small_options()).expect("open");
    let val = |i: u32| vec![(i % 253) as u8; 4096];
    for i in 0..2000u32 {
        db.put(format!("g{i:05}").as_bytes(), &val(i)).expect("put");
    }
    db.flush().expect("flush");
    for i in 0..2000u32 {
        if i % 10 != 0 {
            db.delete(format!("g{i:05}").as_bytes()).expect("delete");
        }
    }
    db.compact_range(None, None).expect("compact");
    let stats = db.stats();
    let live = 200 * 4096u64;
    assert!(stats.blob_gc_runs > 0, "{stats}");
    assert!(
        stats.blob_bytes as f64 <= 1.3 * live as f64,
        "blob files hold {} bytes for {live} live: {stats}",
        stats.blob_bytes
    );
    let all = full_scan(&db);
    assert_eq!(all.len(), 200);
    assert!(all.values().all(|v| v.len() == 4096));
    drop(db);
    let db = Db::open(dir.path(), small_options()).expect("reopen");
    for i in (0..2000u32).step_by(10) {
        assert_eq!(
            db.get(format!("g{i:05}").as_bytes()).expect("get"),
            Some(val(i))
        );
    }
}

/// With no compaction asked for, idle reclaim gives a big delete's space
/// back on its own once writes pause: the range deletions are flushed and
/// compacted down, and GC passes repeat while they change something —
/// here each compaction may relocate only 64 KiB, so the live tenth takes
/// many passes over the one table that references it.
#[test]
fn idle_reclaim_gives_the_space_back_with_no_compact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = || Options {
        write_buffer_size: 256 << 10,
        target_file_size: 1 << 20,
        max_bytes_for_level_base: 4 << 20,
        blob_gc_max_bytes: 64 << 10,
        ..small_options()
    };
    let db = Db::open(dir.path(), opts()).expect("open");
    let val = |i: u32| vec![(i % 253) as u8; 4096 + (i as usize % 7)];
    let n = 2000u32;
    for i in 0..n {
        db.put(format!("g{i:05}").as_bytes(), &val(i)).expect("put");
    }
    let mut rng = StdRng::seed_from_u64(10);
    let mut kept = Vec::new();
    for i in 0..n {
        if rng.gen_range(0..10) == 0 {
            kept.push(i);
            continue;
        }
        let k = format!("g{i:05}");
        db.delete_range(k.as_bytes(), format!("{k}\0").as_bytes())
            .expect("delete_range");
    }
    let live: u64 = kept.iter().map(|&i| val(i).len() as u64).sum();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut stats = db.stats();
    while stats.blob_bytes as f64 > 1.3 * live as f64 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
        stats = db.stats();
    }
    assert!(
        stats.blob_bytes as f64 <= 1.3 * live as f64,
        "idle reclaim left {} blob bytes for {live} live: {stats}",
        stats.blob_bytes
    );
    assert!(stats.blob_gc_runs > 1, "more than one GC run: {stats}");
    let check = |db: &Db| {
        let all = full_scan(db);
        assert_eq!(all.len(), kept.len());
        for &i in &kept {
            assert_eq!(all.get(format!("g{i:05}").as_bytes()), Some(&val(i)));
        }
    };
    check(&db);
    drop(db);
    let db = Db::open(dir.path(), opts()).expect("reopen");
    check(&db);
}

/// Large values go to the blob log beside the WAL, once: the WAL carries
/// references, reads find the values in the growing blob log, a reopen
/// replays them from there, and the flush names the log in the Version
/// without rewriting it.
#[test]
fn large_values_are_written_once_through_the_blob_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = || Options {
        write_buffer_size: 1 << 20,
        ..small_options()
    };
    let db = Db::open(dir.path(), opts()).expect("open");
    let val = |i: u32| vec![(i % 241) as u8 + 1; 4096];
    for i in 0..100u32 {
        let mut b = WriteBatch::new();
        b.put(format!("v{i:05}").as_bytes(), &val(i));
        b.put(format!("s{i:05}").as_bytes(), b"small");
        db.write(b, i % 10 == 0).expect("write");
    }
    let stats = db.stats();
    assert!(
        stats.wal_bytes_written * 20 < stats.user_bytes_written,
        "the WAL carries references, not the values: {stats}"
    );
    assert_eq!(stats.num_flushes, 0, "{stats}");
    // Read back from the memtable's blob log, by get and by scan.
    for i in (0..100u32).step_by(9) {
        assert_eq!(
            db.get(format!("v{i:05}").as_bytes()).expect("get"),
            Some(val(i))
        );
    }
    assert_eq!(full_scan(&db).len(), 200);
    drop(db);
    // Replayed from the blob log.
    let db = Db::open(dir.path(), opts()).expect("reopen");
    let all = full_scan(&db);
    assert_eq!(all.len(), 200);
    assert!((0..100u32).all(|i| all.get(format!("v{i:05}").as_bytes()) == Some(&val(i))));
    // Write some more, overwrite a few in the same memtable, and flush:
    // the blob log joins the Version as it is, its overwritten records garbage.
    for i in 100..200u32 {
        db.put(format!("v{i:05}").as_bytes(), &val(i)).expect("put");
    }
    for i in 100..110u32 {
        db.put(format!("v{i:05}").as_bytes(), &val(i + 1))
            .expect("put");
    }
    let before = db.stats();
    db.flush().expect("flush");
    let stats = db.stats();
    assert!(stats.blob_files >= 2, "{stats}");
    assert!(stats.blob_garbage_bytes >= 10 * 4096, "{stats}");
    assert!(
        stats.bytes_blob_written - before.bytes_blob_written < 4096,
        "the flush only seals the blob log: {before} then {stats}"
    );
    assert!(stats.write_amplification() < 1.3, "{stats}");
    for i in 100..200u32 {
        let want = if i < 110 { val(i + 1) } else { val(i) };
        assert_eq!(
            db.get(format!("v{i:05}").as_bytes()).expect("get"),
            Some(want)
        );
    }
    drop(db);
    // A blob log torn in its last record (the WAL record naming it made it
    // to the disk, the blob bytes did not): replay stops there, as at a
    // torn WAL record, and keeps everything before it.
    let db = Db::open(dir.path(), opts()).expect("reopen");
    for i in 300..320u32 {
        db.put(format!("v{i:05}").as_bytes(), &val(i)).expect("put");
    }
    drop(db);
    let newest_blob = std::fs::read_dir(dir.path())
        .expect("read_dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "blob"))
        .max()
        .expect("a blob log");
    let len = std::fs::metadata(&newest_blob).expect("stat").len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&newest_blob)
        .expect("open blob log");
    f.set_len(len - 100).expect("truncate");
    drop(f);
    let db = Db::open(dir.path(), opts()).expect("reopen after a torn blob log");
    let all = full_scan(&db);
    assert!(
        all.contains_key(b"v00318".as_slice()),
        "the records before the tear stay"
    );
    assert!(
        !all.contains_key(b"v00319".as_slice()),
        "the torn one is gone"
    );
    assert_eq!(all.len(), 200 + 100 + 19);
}

#[test]
fn compaction_drops_range_deletions_at_the_bottom() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path(), small_options()).expect("open");
    for i in 0..3000u32 {
        db.put(format!("k{i:06}").as_bytes(), &[7u8; 100])
            .expect("put");
    }
    db.flush().expect("flush");
    let snap = db.snapshot();
    db.delete_range(b"k000100", b"k002900")
        .expect("delete_range");
    db.put(b"k000200", b"back").expect("put after");
    assert_eq!(db.get(b"k000150").expect("get"), None);
    assert_eq!(db.get(b"k000200").expect("get"), Some(b"back".to_vec()));
    assert_eq!(db.get(b"k002900").expect("get"), Some(vec![7u8; 100]));
    db.compact_range(None, None).expect("compact");
    // The snapshot still sees everything, so nothing was dropped yet.
    assert_eq!(
        db.get_at(b"k000150", &snap).expect("get_at"),
        Some(vec![7u8; 100])
    );
    assert_eq!(
        db.scan(b"", None, usize::MAX, Some(&snap))
            .expect("scan")
            .len(),
        3000
    );
    assert_eq!(full_scan(&db).len(), 3000 - 2800 + 1);
    drop(snap);
    drop(db);
    // Without a snapshot, one full compaction drops the range's keys and
    // then the tombstone itself at the bottom level.
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path(), small_options()).expect("open");
    for i in 0..3000u32 {
        db.put(format!("k{i:06}").as_bytes(), &[7u8; 100])
            .expect("put");
    }
    db.compact_range(None, None).expect("compact");
    db.delete_range(b"k000100", b"k002900")
        .expect("delete_range");
    db.put(b"k000200", b"back").expect("put after");
    db.compact_range(None, None).expect("compact");
    let all = full_scan(&db);
    assert_eq!(all.len(), 3000 - 2800 + 1);
    assert_eq!(all.get(&b"k000200"[..]), Some(&b"back".to_vec()));
    let stats = db.stats();
    let bytes: u64 = stats.levels.iter().map(|l| l.bytes).sum();
    assert!(
        bytes < 100 * 1000,
        "the deleted range's space is given back: {stats}"
    );
    let v = db.current_version();
    for f in v.files.iter().flatten() {
        let t = db
            .table_cache()
            .get_table(f.number, f.file_size)
            .expect("table");
        assert!(
            t.range_deletions().is_empty(),
            "a bottom-level table keeps a tombstone nothing below needs"
        );
    }
}

#[test]
fn concurrent_writers_and_readers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path(), small_options()).expect("open");
    let mut handles = Vec::new();
    for t in 0..4u32 {
        let db = db.clone();
        handles.push(std::thread::spawn(move || {
            for i in 0..2000u32 {
                let k = format!("t{t}-{i:05}");
                db.write(
                    {
                        let mut b = WriteBatch::new();
                        b.put(k.as_bytes(), k.as_bytes());
                        b
                    },
                    i % 500 == 0,
                )
                .expect("write");
                if i % 7 == 0 {
                    assert_eq!(
                        db.get(k.as_bytes()).expect("get"),
                        Some(k.clone().into_bytes())
                    );
                }
            }
        }));
    }
    for h in handles {
        h.join().expect("thread");
    }
    let all = full_scan(&db);
    assert_eq!(all.len(), 8000);
    for (k, v) in &all {
        assert_eq!(k, v);
    }
}

#[test]
fn second_open_of_a_locked_directory_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _db = Db::open(dir.path(), small_options()).expect("open");
    match Db::open(dir.path(), small_options()) {
        Err(lsmfs::engine::Error::Locked { .. }) => {}
        Err(e) => panic!("expected Locked, got {e}"),
        Ok(_) => panic!("second open of a locked directory succeeded"),
    }
}
