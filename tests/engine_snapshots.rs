//! Persistent snapshots: a model check (random writes interleaved with
//! snapshot create/delete, flushes, compactions and reopens; every snapshot
//! reads exactly the map recorded when it was taken) and power loss /
//! kill -9 around create and delete on the fault env.

mod common;

use lsmfs::engine::env::fault::FaultEnv;
use lsmfs::engine::{Db, Options, Snapshot, WriteBatch};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn opts(env: &Arc<FaultEnv>) -> Options {
    common::tiny_engine(env)
}

fn contents(db: &Db, snap: Option<&Snapshot>) -> lsmfs::engine::Result<Model> {
    let mut it = db.iter(snap)?;
    it.seek_to_first();
    let mut m = Model::new();
    while it.valid() {
        m.insert(it.key().to_vec(), it.value().to_vec());
        it.next();
    }
    it.status()?;
    Ok(m)
}

/// A random batch applied to `model` too.
fn random_batch(rng: &mut StdRng, model: &mut Model) -> WriteBatch {
    let mut b = WriteBatch::new();
    for _ in 0..rng.gen_range(1..8) {
        let i = rng.gen_range(0..400);
        let k = format!("k{i:04}").into_bytes();
        match rng.gen_range(0..100) {
            0..=74 => {
                let v: Vec<u8> = (0..rng.gen_range(1..200)).map(|_| rng.gen()).collect();
                b.put(&k, &v);
                model.insert(k, v);
            }
            75..=92 => {
                b.delete(&k);
                model.remove(&k);
            }
            _ => {
                let end = format!("k{:04}", i + rng.gen_range(1..30)).into_bytes();
                b.delete_range(&k, &end);
                model.retain(|x, _| *x < k || *x >= end);
            }
        }
    }
    b
}

fn check_snapshots(db: &Db, snaps: &BTreeMap<String, Model>, at: &str) {
    let listed: Vec<String> = db.list_snapshots().into_iter().map(|s| s.name).collect();
    let want: Vec<String> = snaps.keys().cloned().collect();
    let mut listed_sorted = listed.clone();
    listed_sorted.sort();
    assert_eq!(listed_sorted, want, "{at}: snapshot list");
    for (name, m) in snaps {
        let s = db
            .open_snapshot(name)
            .expect("snapshot listed but not found");
        let got = contents(db, Some(&s)).expect("read at snapshot");
        assert!(got == *m, "{at}: snapshot {name} differs from its model");
    }
}

#[test]
fn snapshots_match_their_models_through_compactions_and_reopens() {
    let env = Arc::new(FaultEnv::new());
    let dir = Path::new("/db");
    let mut rng = StdRng::seed_from_u64(12);
    let mut db = Db::open(dir, opts(&env)).expect("open");
    let mut model = Model::new();
    let mut snaps: BTreeMap<String, Model> = BTreeMap::new();
    let mut held: Vec<(Snapshot, Model)> = Vec::new();
    let mut next = 0;
    for step in 0..3000 {
        match rng.gen_range(0..100) {
            0..=79 => db
                .write(random_batch(&mut rng, &mut model), false)
                .expect("write"),
            80..=82 => {
                let name = format!("snap{next}");
                next += 1;
                db.create_snapshot(&name).expect("create");
                snaps.insert(name, model.clone());
            }
            83..=84 => {
                if let Some(name) = snaps.keys().next().cloned() {
                    db.delete_snapshot(&name).expect("delete");
                    snaps.remove(&name);
                    assert!(db.open_snapshot(&name).is_none());
                }
            }
            85..=86 => {
                if held.len() < 3 {
                    held.push((db.snapshot(), model.clone()));
                } else {
                    held.clear();
                }
            }
            87..=90 => db.flush().expect("flush"),
            91..=93 => db.compact_range(None, None).expect("compact"),
            94..=95 => check_snapshots(&db, &snaps, &format!("step {step}")),
            96..=97 => {
                for (s, m) in &held {
                    assert!(contents(&db, Some(s)).expect("read") == *m, "held snapshot");
                }
            }
            _ => {
                held.clear();
                db.close().expect("close");
                drop(db);
                db = Db::open(dir, opts(&env)).expect("reopen");
                check_snapshots(&db, &snaps, &format!("reopen at step {step}"));
            }
        }
    }
    assert!(contents(&db, None).expect("read") == model);
    check_snapshots(&db, &snaps, "end");
    assert!(next > 30, "the workload must create snapshots");
    // Errors: a taken name, a missing one, a bad one.
    db.create_snapshot("dup").expect("create dup");
    assert_eq!(
        db.create_snapshot("dup").map(|_| ()).unwrap_err().errno(),
        libc::EEXIST
    );
    assert_eq!(
        db.delete_snapshot("nope").unwrap_err().errno(),
        libc::ENOENT
    );
    assert_eq!(
        db.create_snapshot("a/b").map(|_| ()).unwrap_err().errno(),
        libc::EINVAL
    );
}

fn table_bytes(db: &Db) -> u64 {
    db.stats().levels.iter().map(|l| l.bytes).sum()
}

#[test]
fn a_snapshot_pins_the_versions_it_sees_through_a_full_compaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path(), Options::default()).expect("open");
    let value = vec![7u8; 4000];
    for i in 0..500 {
        db.put(format!("f{i:04}").as_bytes(), &value).expect("put");
    }
    db.create_snapshot("before").expect("create");
    let other = vec![9u8; 4000];
    for i in 0..500 {
        db.put(format!("f{i:04}").as_bytes(), &other).expect("put");
    }
    db.compact_range(None, None).expect("compact");
    let pinned = table_bytes(&db);
    assert!(
        pinned > 2 * 500 * 4000 * 9 / 10,
        "both versions kept: {pinned}"
    );
    let s = db.open_snapshot("before").expect("snapshot");
    assert_eq!(db.get_at(b"f0001", &s).expect("get"), Some(value.clone()));
    drop(s);
    db.delete_snapshot("before").expect("delete");
    assert!(db.open_snapshot("before").is_none());
    assert_eq!(db.get(b"f0001").expect("get"), Some(other.clone()));
    // The versions only the snapshot saw sit in the bottom level, which
    // the merges above never rewrite: a full compaction rewrites it too.
    db.compact_range(None, None).expect("compact");
    let live = table_bytes(&db);
    assert!(
        live < 500 * 4000 * 12 / 10,
        "deleting the snapshot gives its space back: {live} of {pinned}"
    );
    assert_eq!(db.get(b"f0001").expect("get"), Some(other));
}

/// Blob-held values (full 4 KiB chunks) pinned by a snapshot come back as
/// space once it is deleted: its blob records become garbage, and the blob
/// files go.
#[test]
fn deleting_a_snapshot_gives_its_blob_space_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path(), Options::default()).expect("open");
    let stored = |db: &Db| {
        let s = db.stats();
        table_bytes(db) + s.blob_bytes
    };
    for round in 0..2u8 {
        let value = vec![round + 1; 4096];
        for i in 0..2000 {
            db.put(format!("c{i:05}").as_bytes(), &value).expect("put");
        }
        if round == 0 {
            db.create_snapshot("old").expect("create");
        }
    }
    db.compact_range(None, None).expect("compact");
    let pinned = stored(&db);
    assert!(pinned > 2 * 2000 * 4096 * 9 / 10, "both kept: {pinned}");
    db.delete_snapshot("old").expect("delete");
    db.compact_range(None, None).expect("compact");
    let live = stored(&db);
    assert!(
        live < 2000 * 4096 * 12 / 10,
        "the snapshot's blob records are given back: {live} of {pinned}"
    );
    assert_eq!(db.get(b"c00007").expect("get"), Some(vec![2u8; 4096]));
}

/// Waits up to a minute for `done`; the last value seen.
fn eventually(mut f: impl FnMut() -> u64, done: impl Fn(u64) -> bool) -> u64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let v = f();
        if done(v) || std::time::Instant::now() > deadline {
            return v;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Deleting a snapshot gives its space back with no manual compaction:
/// the background thread rewrites the tables — at every level, not only
/// the bottom — that kept versions only it saw. A view still open on the
/// deleted snapshot keeps reading it exactly until it is dropped; writes
/// go on meanwhile.
#[test]
fn deleting_a_snapshot_gives_its_space_back_without_a_full_compaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = Options {
        write_buffer_size: 64 << 10,
        target_file_size: 32 << 10,
        max_bytes_for_level_base: 256 << 10,
        l0_compaction_trigger: 2,
        ..Default::default()
    };
    let db = Db::open(dir.path(), opts).expect("open");
    let (n, len) = (2000, 1000);
    let mut old = Model::new();
    for i in 0..n {
        let k = format!("k{i:05}").into_bytes();
        let v = vec![(i % 251) as u8; len];
        db.put(&k, &v).expect("put");
        old.insert(k, v);
    }
    db.create_snapshot("before").expect("create");
    let mut live = Model::new();
    for i in 0..n {
        let k = format!("k{i:05}").into_bytes();
        let v = vec![(i % 13) as u8 + 1; len];
        db.put(&k, &v).expect("put");
        live.insert(k, v);
    }
    db.flush().expect("flush");
    let one = (n * len) as u64;
    let pinned = eventually(|| table_bytes(&db), |b| b > 2 * one * 9 / 10);
    assert!(pinned > 2 * one * 9 / 10, "both versions kept: {pinned}");
    let view = db.open_snapshot("before").expect("open");
    db.delete_snapshot("before").expect("delete");
    // Writes are not held back, and the held view stays exact.
    for i in 0..200 {
        let k = format!("w{i:05}").into_bytes();
        db.put(&k, b"more").expect("put");
        live.insert(k, b"more".to_vec());
    }
    db.flush().expect("flush");
    assert!(
        contents(&db, Some(&view)).expect("read") == old,
        "held view"
    );
    drop(view);
    let limit = one * 13 / 10;
    let after = eventually(|| table_bytes(&db), |b| b < limit);
    assert!(
        after < limit,
        "deleting the snapshot gives its space back: {after} bytes of {pinned} \
         (one version is {one})"
    );
    assert!(db.stats().snapshot_rewrites > 0, "{}", db.stats());
    assert!(contents(&db, None).expect("read") == live);
    db.close().expect("close");
}

/// A view dropped just after its snapshot's delete — the mount's `rmdir
/// .snapshots/NAME` order — races the background step the delete woke:
/// a step that saw the view held and found nothing must not put the work
/// to sleep once the view is gone. Every round's rewrite comes, whenever
/// the view goes.
#[test]
fn a_view_let_go_just_after_the_delete_still_frees_the_space() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path(), Options::default()).expect("open");
    for round in 0..40u32 {
        for i in 0..50 {
            db.put(format!("k{i:03}").as_bytes(), &round.to_le_bytes())
                .expect("put");
        }
        let name = format!("s{round}");
        db.create_snapshot(&name).expect("create");
        for i in 0..50 {
            db.put(format!("k{i:03}").as_bytes(), b"newer")
                .expect("put");
        }
        // One bottom table holding both versions of every key.
        db.compact_range(None, None).expect("compact");
        let before = db.stats().snapshot_rewrites;
        let view = db.open_snapshot(&name).expect("open");
        db.delete_snapshot(&name).expect("delete");
        // Swept across the background step's time, so that some rounds
        // let go while it runs; the last rounds after it is done.
        let pause = if round < 36 {
            u64::from(round) * 25
        } else {
            50_000
        };
        std::thread::sleep(std::time::Duration::from_micros(pause));
        drop(view);
        let after = eventually(|| db.stats().snapshot_rewrites, |n| n > before);
        assert!(
            after > before,
            "round {round}: no rewrite after the view went"
        );
    }
    db.close().expect("close");
}

/// kill -9 and power loss at random points around snapshot create and
/// delete: every acknowledged snapshot is there and exact, every
/// acknowledged delete is gone, an interrupted one is whole or absent.
#[test]
fn crashes_around_create_and_delete_keep_acknowledged_snapshots_exact() {
    let env = Arc::new(FaultEnv::new());
    let dir = Path::new("/db");
    let mut base = Model::new();
    // Snapshots that must exist, and ones that may (interrupted).
    let mut snaps: BTreeMap<String, Model> = BTreeMap::new();
    let mut next = 0;
    for seed in 0..60u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let db = Db::open(dir, opts(&env)).expect("open");
        let mut model = base.clone();
        let mut maybe: BTreeMap<String, Option<Model>> = BTreeMap::new();
        env.set_dead_after(rng.gen_range(1..1500));
        for _ in 0..400 {
            let r = rng.gen_range(0..100);
            if r < 8 {
                let name = format!("s{next}");
                next += 1;
                match db.create_snapshot(&name) {
                    Ok(_) => {
                        snaps.insert(name, model.clone());
                    }
                    Err(_) => {
                        maybe.insert(name, Some(model.clone()));
                        break;
                    }
                }
            } else if r < 12 && !snaps.is_empty() {
                let name = snaps.keys().next().cloned().unwrap_or_default();
                let m = snaps.remove(&name);
                if db.delete_snapshot(&name).is_err() {
                    maybe.insert(name, m);
                    break;
                }
            } else {
                let mut m2 = model.clone();
                let b = random_batch(&mut rng, &mut m2);
                if db.write(b, false).is_err() {
                    break;
                }
                model = m2;
            }
        }
        drop(db);
        if seed % 2 == 0 {
            env.kill();
        } else {
            env.crash();
        }
        env.clear_faults();
        let db =
            Db::open(dir, opts(&env)).unwrap_or_else(|e| panic!("seed {seed}: reopen failed: {e}"));
        let listed: BTreeMap<String, ()> = db
            .list_snapshots()
            .into_iter()
            .map(|s| (s.name, ()))
            .collect();
        for (name, m) in &snaps {
            assert!(
                listed.contains_key(name),
                "seed {seed}: acknowledged {name} lost"
            );
            let s = db.open_snapshot(name).expect("open snapshot");
            let got = contents(&db, Some(&s)).expect("read");
            assert!(got == *m, "seed {seed}: snapshot {name} is not exact");
        }
        for (name, m) in &maybe {
            if let Some(s) = db.open_snapshot(name) {
                let got = contents(&db, Some(&s)).expect("read");
                assert!(
                    Some(&got) == m.as_ref(),
                    "seed {seed}: interrupted {name} not whole"
                );
                if let Some(m) = m {
                    snaps.insert(name.clone(), m.clone());
                }
            }
        }
        for name in listed.keys() {
            assert!(
                snaps.contains_key(name),
                "seed {seed}: deleted {name} came back"
            );
        }
        base = contents(&db, None).expect("read live");
        db.close().expect("close");
    }
    assert!(next > 20, "the trials must create snapshots ({next})");
}
