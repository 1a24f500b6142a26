//! Power-loss tests: the engine runs on `FaultEnv`, which "dies" after a
//! random number of mutating file operations (in the middle of a WAL append,
//! a flush, a compaction or a MANIFEST rotation), then drops every byte and
//! directory entry that was not made durable. After reopening, the contents
//! must equal the model after some prefix of the batches — a prefix that
//! includes every batch acknowledged with `sync`.

mod common;

use lsmfs::engine::env::fault::{FaultEnv, FaultKinds};
use lsmfs::engine::env::Env;
use lsmfs::engine::{Db, Error, Options, WriteBatch};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

type Model = BTreeMap<Vec<u8>, Vec<u8>>;
/// One change of a batch.
enum Op {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
    DeleteRange(Vec<u8>, Vec<u8>),
}
type Ops = Vec<Op>;

fn opts(env: &Arc<FaultEnv>) -> Options {
    common::tiny_engine(env)
}

/// A batch; `large` of its puts are 4 KiB or more (blob-log values).
fn random_batch(rng: &mut StdRng, large: f64) -> Ops {
    (0..rng.gen_range(1..8))
        .map(|_| {
            let i = rng.gen_range(0..600);
            let k = format!("k{i:04}").into_bytes();
            match rng.gen_range(0..100) {
                0..=79 => {
                    // Some values large enough for blob files.
                    let len = if rng.gen_bool(large) {
                        rng.gen_range(4096..6000)
                    } else {
                        rng.gen_range(1..300)
                    };
                    Op::Put(k, (0..len).map(|_| rng.gen::<u8>()).collect())
                }
                80..=96 => Op::Delete(k),
                _ => {
                    let end = format!("k{:04}", i + rng.gen_range(1..40)).into_bytes();
                    Op::DeleteRange(k, end)
                }
            }
        })
        .collect()
}

fn apply(model: &mut Model, ops: &[Op]) {
    for op in ops {
        match op {
            Op::Put(k, v) => {
                model.insert(k.clone(), v.clone());
            }
            Op::Delete(k) => {
                model.remove(k);
            }
            Op::DeleteRange(a, b) => model.retain(|k, _| k < a || k >= b),
        }
    }
}

fn contents(db: &Db) -> Result<Model, Error> {
    let mut it = db.iter(None)?;
    it.seek_to_first();
    let mut m = Model::new();
    while it.valid() {
        m.insert(it.key().to_vec(), it.value().to_vec());
        it.next();
    }
    it.status()?;
    Ok(m)
}

/// How a trial ends.
#[derive(Clone, Copy, Debug)]
enum Loss {
    /// Power loss: only synced bytes and directory entries survive.
    Power,
    /// Power loss during writeback: part of the unsynced tail of each file
    /// survives, possibly ending in zeros or with sectors lost out of order.
    Torn,
    /// kill -9: everything handed to the OS survives, so every acknowledged
    /// batch must be there.
    Kill,
}

/// One crash trial. Returns how many batches were acknowledged.
fn trial(
    seed: u64,
    loss: Loss,
    large: f64,
    env: &Arc<FaultEnv>,
    dir: &Path,
    base: &mut Model,
) -> usize {
    let mut rng = StdRng::seed_from_u64(seed);
    let db = Db::open(dir, opts(env)).expect("open before workload");
    let ops_before = env.op_count();
    env.set_dead_after(rng.gen_range(1..4000));
    let mut batches: Vec<Ops> = Vec::new();
    let mut synced = 0; // batches[..synced] were acknowledged with sync
    let mut acked = 0;
    for _ in 0..3000 {
        let ops = random_batch(&mut rng, large);
        let mut b = WriteBatch::new();
        for op in &ops {
            match op {
                Op::Put(k, v) => b.put(k, v),
                Op::Delete(k) => b.delete(k),
                Op::DeleteRange(s, e) => b.delete_range(s, e),
            }
        }
        let sync = rng.gen_bool(0.05);
        batches.push(ops);
        match db.write(b, sync) {
            Ok(()) => {
                acked = batches.len();
                if sync {
                    synced = acked;
                }
            }
            Err(_) => break,
        }
        if rng.gen_bool(0.01) && db.flush().is_err() {
            break;
        }
    }
    assert!(env.op_count() > ops_before);
    drop(db);
    match loss {
        Loss::Power => env.crash(),
        Loss::Torn => env.crash_torn(seed),
        Loss::Kill => env.kill(),
    }
    env.clear_faults();
    // What must have survived: synced batches, or all acknowledged ones.
    let must = match loss {
        Loss::Kill => acked,
        Loss::Power | Loss::Torn => synced,
    };

    let db = Db::open(dir, opts(env))
        .unwrap_or_else(|e| panic!("seed {seed} ({loss:?}): reopen failed: {e}"));
    let got = contents(&db).unwrap_or_else(|e| panic!("seed {seed} ({loss:?}): read failed: {e}"));
    // Find the prefix: at least every batch that must survive, at most
    // every attempted one.
    let mut model = base.clone();
    for b in &batches[..must] {
        apply(&mut model, b);
    }
    let mut matched = got == model;
    let mut n = must;
    while !matched && n < batches.len() {
        apply(&mut model, &batches[n]);
        n += 1;
        matched = got == model;
    }
    assert!(
        matched,
        "seed {seed} ({loss:?}): recovered state is no prefix of the batches holding the first {must} (synced {synced}, acked {acked}, attempted {})",
        batches.len()
    );
    // The recovered store must take writes and survive a clean reopen.
    db.put(b"after-crash", b"ok").expect("write after recovery");
    db.close().expect("close after recovery");
    drop(db);
    let db = Db::open(dir, opts(env)).expect("second reopen");
    let mut again = contents(&db).expect("read after second reopen");
    assert_eq!(
        again.remove(b"after-crash".as_slice()),
        Some(b"ok".to_vec())
    );
    assert!(
        again == got,
        "seed {seed}: state changed across a clean reopen"
    );
    db.delete(b"after-crash").expect("delete");
    db.close().expect("close");
    *base = got;
    acked
}

/// Crash trials `seeds` — power losses, torn writebacks and kill -9 in
/// turn — on one store that lives through all of them, `large` of the puts
/// blob-log values; at least `min_acked` batches must be acknowledged.
fn crash_trials(seeds: std::ops::Range<u64>, large: f64, min_acked: usize) -> Arc<FaultEnv> {
    let env = Arc::new(FaultEnv::new());
    let mut base = Model::new();
    let mut total = 0;
    for seed in seeds {
        let loss = [Loss::Power, Loss::Torn, Loss::Kill][seed as usize % 3];
        total += trial(seed, loss, large, &env, Path::new("/db"), &mut base);
    }
    assert!(
        total > min_acked,
        "the trials must do real work ({total} batches acknowledged)"
    );
    env
}

/// 300 crashes at random points.
#[test]
fn power_loss_at_random_points_keeps_a_synced_prefix() {
    crash_trials(0..300, 0.05, 1000);
}

/// The same with mostly large values: the crashes land mid blob-log
/// append, mid switch (blob log synced before the WAL), mid flush sealing a
/// blob log, mid GC relocating records and mid the MANIFEST edits naming
/// and deleting blob files. Every synced value must be readable after, and
/// no referenced blob file missing (a read of every value checks both).
#[test]
fn power_loss_with_large_values_keeps_a_synced_prefix() {
    let env = crash_trials(1000..1150, 0.6, 500);
    let db = Db::open(Path::new("/db"), opts(&env)).expect("open");
    let s = db.stats();
    assert!(s.blob_files > 0, "{s}");
}

#[test]
fn failed_wal_sync_stops_writes_until_reopen() {
    let env = Arc::new(FaultEnv::new());
    let dir = Path::new("/db");
    let db = Db::open(dir, opts(&env)).expect("open");
    db.put(b"a", b"1").expect("put");
    db.sync().expect("sync");
    env.set_fail_after(0, FaultKinds::SYNC);
    assert!(
        db.put(b"b", b"2").is_ok(),
        "an unsynced write does not sync"
    );
    assert!(db.sync().is_err(), "the injected sync failure must surface");
    env.clear_faults();
    assert!(
        db.put(b"c", b"3").is_err(),
        "writes after a failed WAL sync must fail (sticky)"
    );
    drop(db);
    env.crash();
    let db = Db::open(dir, opts(&env)).expect("reopen");
    assert_eq!(db.get(b"a").expect("get"), Some(b"1".to_vec()));
    assert_eq!(db.get(b"c").expect("get"), None);
}

#[test]
fn failed_manifest_write_is_never_appended_behind() {
    // Fail each of the first few renames/syncs during heavy flushing; the
    // database must either keep working or stop cleanly, and always reopen.
    for n in 0..6 {
        let env = Arc::new(FaultEnv::new());
        let dir = Path::new("/db");
        let db = Db::open(dir, opts(&env)).expect("open");
        env.set_fail_after(n, FaultKinds::SYNC);
        let mut acked = Model::new();
        for i in 0..2000u32 {
            let k = format!("k{i:05}").into_bytes();
            if db.put(&k, &[1u8; 64]).is_ok() {
                acked.insert(k, vec![1u8; 64]);
            } else {
                break;
            }
        }
        env.clear_faults();
        drop(db);
        // kill -9: nothing was lost from the OS, every acknowledged write is back.
        let db = Db::open(dir, opts(&env)).expect("reopen after failure");
        let got = contents(&db).expect("read");
        assert!(
            got == acked,
            "n={n}: acknowledged writes lost after a failed sync"
        );
    }
}

#[test]
fn missing_current_and_missing_table_are_clear_errors() {
    let env = Arc::new(FaultEnv::new());
    let dir = Path::new("/db");
    let db = Db::open(dir, opts(&env)).expect("open");
    for i in 0..500u32 {
        db.put(format!("k{i:05}").as_bytes(), &[3u8; 100])
            .expect("put");
    }
    db.flush().expect("flush");
    db.close().expect("close");
    drop(db);
    let tables: Vec<String> = env
        .files(dir)
        .into_iter()
        .filter(|n| n.ends_with(".sst"))
        .collect();
    assert!(!tables.is_empty());
    let victim = dir.join(&tables[0]);
    let saved = env.file_contents(&victim).expect("table contents");
    use lsmfs::engine::env::Env;
    env.remove_file(&victim).expect("remove table");
    match Db::open(dir, opts(&env)) {
        Err(e) => assert!(
            e.to_string().contains(&tables[0]),
            "error should name the table: {e}"
        ),
        Ok(_) => panic!("open with a missing live table succeeded"),
    }
    let mut f = env.create_writable(&victim).expect("recreate");
    f.append(&saved).expect("append");
    f.sync().expect("sync");
    drop(f);
    env.remove_file(&dir.join("CURRENT"))
        .expect("remove CURRENT");
    match Db::open(dir, opts(&env)) {
        Err(e) => assert!(
            e.to_string().contains("CURRENT"),
            "error should name CURRENT: {e}"
        ),
        Ok(_) => panic!("open without CURRENT succeeded"),
    }
}

#[test]
fn manifest_bit_flip_is_an_error_naming_the_file_and_offset() {
    let env = Arc::new(FaultEnv::new());
    let dir = Path::new("/db");
    let db = Db::open(dir, opts(&env)).expect("open");
    for round in 0..4u32 {
        for i in 0..200u32 {
            db.put(format!("k{round}-{i:04}").as_bytes(), &[5u8; 64])
                .expect("put");
        }
        db.flush().expect("flush");
    }
    db.close().expect("close");
    drop(db);
    let manifest = env
        .files(dir)
        .into_iter()
        .find(|n| n.starts_with("MANIFEST-"))
        .expect("a MANIFEST");
    let path = dir.join(&manifest);
    // Inside the first record (the snapshot), with later edits behind it.
    assert!(env.corrupt_byte(&path, 20));
    match Db::open(dir, opts(&env)) {
        Err(e) => {
            let m = e.to_string();
            assert!(
                e.is_corruption() && m.contains(&manifest) && m.contains("offset"),
                "{m}"
            );
        }
        Ok(_) => panic!("a corrupt MANIFEST was accepted"),
    }
}

/// A full disk is not a crash: the flush that found it full gives its
/// half-written table back, writes that would wait for that flush fail with
/// ENOSPC (reads go on), and once there is room the background thread
/// retries and writes go through again, without a reopen.
#[test]
fn a_full_disk_fails_writes_with_enospc_until_there_is_room() {
    let env = Arc::new(FaultEnv::new());
    let dir = Path::new("/db");
    let db = Db::open(dir, opts(&env)).expect("open");
    let value = vec![7u8; 100];
    // About 5 KiB: well below the 8 KiB memtable, so no flush of its own
    // starts before the disk is full.
    for i in 0..40u32 {
        db.put(format!("k{i:04}").as_bytes(), &value).expect("put");
    }
    // Room for a few WAL records, not for the table the flush writes.
    env.set_space_limit(Some(env.space_used() + 1024));
    let err = db.flush().expect_err("the flush cannot fit");
    assert_eq!(err.errno(), libc::ENOSPC, "{err}");
    let live: Vec<u64> = db
        .current_version()
        .files
        .iter()
        .flatten()
        .map(|f| f.number)
        .collect();
    for name in env.list_dir(dir).expect("list") {
        if let Some(n) = name.strip_suffix(".sst") {
            let n: u64 = n.parse().expect("table number");
            assert!(live.contains(&n), "half-written {name} left behind");
        }
    }
    assert_eq!(db.get(b"k0003").expect("read"), Some(value.clone()));
    db.put(b"small", b"fits in the memtable")
        .expect("a write that needs no flush");
    let err = db
        .flush()
        .expect_err("a second switch must wait for the first flush");
    assert_eq!(err.errno(), libc::ENOSPC, "{err}");

    env.set_space_limit(None);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while let Err(e) = db.flush() {
        assert_eq!(e.errno(), libc::ENOSPC, "{e}");
        assert!(
            std::time::Instant::now() < deadline,
            "no retry after room came back"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    db.put(b"after", b"room")
        .expect("write after room came back");
    db.close().expect("close");
    drop(db);
    let db = Db::open(dir, opts(&env)).expect("reopen");
    let got = contents(&db).expect("read back");
    assert_eq!(got.len(), 42);
    assert_eq!(got.get(b"after".as_slice()), Some(&b"room".to_vec()));
    assert_eq!(got.get(b"k0039".as_slice()), Some(&value));
}
