//! Snapshots at the filesystem level, in-process (no kernel): random
//! filesystem operations through `FsOps` (the request handlers both
//! transports call) interleaved with snapshot create/delete, flushes,
//! compactions, reopens, kill -9 and power loss on the engine's `FaultEnv`.
//! Every snapshot's tree under `.snapshots/NAME` must equal, attribute for
//! attribute, the live tree dumped when it was taken; its inode numbers
//! must carry its own id; every change inside it must get EROFS.

mod common;
use lsmfs::engine::env::fault::FaultEnv;
use lsmfs::fs::core::{Caller, SetAttr};
use lsmfs::fs::ops::{FsOps, XattrOut};
use lsmfs::fs::schema::ROOT_INO;
use lsmfs::fs::snapshots::{split_ino, SNAPSHOTS_INO, SNAPSHOTS_NAME};
use lsmfs::fs::FsConfig;
use lsmfs::store::EngineStore;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

const C: Caller = Caller { uid: 0, gid: 0 };
const U: Caller = Caller {
    uid: 1000,
    gid: 1000,
};

/// path -> everything a user can see of it.
type Dump = BTreeMap<String, String>;

fn open(env: &Arc<FaultEnv>) -> (Arc<EngineStore>, FsOps) {
    // The store logs why an operation failed (file, offset): show it with
    // a failure's output.
    let _ = env_logger::builder()
        .is_test(true)
        .filter_level(log::LevelFilter::Warn)
        .try_init();
    let store = Arc::new(
        EngineStore::open_with(Path::new("/fs"), common::small_engine(env))
            .expect("open the store"),
    );
    let ops = FsOps::new(store.clone(), FsConfig::default()).expect("open the filesystem");
    (store, ops)
}

fn try_list(ops: &FsOps, ino: u64) -> Result<Vec<(u64, Vec<u8>)>, i32> {
    let fh = ops.opendir(ino)?.fh;
    let mut out = Vec::new();
    let r = ops.readdir(ino, fh, 0, false, &mut |e| {
        if e.name != b"." && e.name != b".." {
            out.push((e.ino, e.name.to_vec()));
        }
        false
    });
    ops.releasedir(ino, fh)?;
    r.map(|()| out)
}

fn list(ops: &FsOps, ino: u64) -> Vec<(u64, Vec<u8>)> {
    try_list(ops, ino).unwrap_or_default()
}

/// Every name under `ino` with its attributes, contents, target, xattrs
/// and which inode it is (the low bits: the same in every snapshot).
/// Inodes of a snapshot must all carry `tree` (None: the live tree).
fn dump(ops: &FsOps, ino: u64, prefix: &str, tree: Option<u64>, out: &mut Dump) -> Result<(), i32> {
    for (child, name) in try_list(ops, ino)? {
        assert_eq!(split_ino(child).map(|t| t.0), tree, "inode {child:#x}");
        let p = format!("{prefix}/{}", String::from_utf8_lossy(&name));
        let a = ops.lookup(ino, &name)?.attr;
        assert_eq!(a.ino, child);
        let inner = child & ((1 << 44) - 1);
        let mut d = format!(
            "ino {inner} kind {} mode {:o} uid {} gid {} nlink {} size {} mtime {} ctime {}",
            a.kind, a.mode, a.uid, a.gid, a.nlink, a.size, a.mtime, a.ctime
        );
        if a.is_dir() {
            dump(ops, child, &p, tree, out)?;
        } else if a.kind == lsmfs::fs::inode::KIND_SYMLINK {
            d += &format!(" -> {:?}", ops.readlink(child)?);
        } else {
            let fh = ops.open(child, libc::O_RDONLY)?.fh;
            let data = ops.read(child, fh, 0, a.size as u32 + 10);
            ops.release(child, fh)?;
            let data = data?;
            assert_eq!(data.len() as u64, a.size);
            d += &format!(" data {:x}", md5ish(&data));
        }
        if let XattrOut::Data(names) = ops.listxattr(C, child, 1 << 16)? {
            for n in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
                if let XattrOut::Data(v) = ops.getxattr(C, child, n, 1 << 16)? {
                    d += &format!(" x {:?}={:?}", String::from_utf8_lossy(n), v);
                }
            }
        }
        out.insert(p, d);
    }
    Ok(())
}

fn md5ish(d: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    d.hash(&mut h);
    h.finish()
}

fn try_live(ops: &FsOps) -> Result<Dump, i32> {
    let mut d = Dump::new();
    dump(ops, ROOT_INO, "", None, &mut d)?;
    Ok(d)
}

fn live(ops: &FsOps) -> Dump {
    try_live(ops).expect("dump the live tree")
}

fn snapshot_tree(ops: &FsOps, name: &str) -> Result<Dump, i32> {
    let e = ops.lookup(SNAPSHOTS_INO, name.as_bytes())?;
    if e.attr.ino == 0 {
        return Err(libc::ENOENT);
    }
    let tree = split_ino(e.attr.ino).map(|t| t.0);
    assert!(tree.is_some(), "a snapshot root is numbered in its tree");
    let mut d = Dump::new();
    dump(ops, e.attr.ino, "", tree, &mut d)?;
    Ok(d)
}

/// Every change inside a snapshot gets EROFS.
fn refuses_changes(ops: &FsOps, name: &str) {
    let root = ops
        .lookup(SNAPSHOTS_INO, name.as_bytes())
        .expect("root")
        .attr;
    let r = root.ino;
    let erofs = Err(libc::EROFS);
    assert_eq!(ops.create(C, r, b"n", 0o644, 0, 0).map(|_| ()), erofs);
    assert_eq!(ops.mkdir(C, r, b"n", 0o755, 0).map(|_| ()), erofs);
    assert_eq!(ops.symlink(C, r, b"n", b"t").map(|_| ()), erofs);
    assert_eq!(ops.setattr(C, r, SetAttr::default()).map(|_| ()), erofs);
    assert_eq!(ops.setxattr(C, r, b"user.a", b"1", 0), erofs);
    if let Some((child, n)) = list(ops, r).into_iter().next() {
        assert_eq!(ops.unlink(C, r, &n), erofs);
        assert_eq!(ops.rmdir(C, r, &n), erofs);
        assert_eq!(ops.rename(C, r, &n, ROOT_INO, b"moved", 0), erofs);
        assert_eq!(ops.link(child, ROOT_INO, b"linked").map(|_| ()), erofs);
        assert_eq!(ops.removexattr(C, child, b"user.a"), erofs);
        let a = ops.getattr(child).expect("getattr").attr;
        if !a.is_dir() {
            assert_eq!(ops.open(child, libc::O_WRONLY).map(|_| ()), erofs);
            assert_eq!(ops.write(C, child, 0, b"x", 0, 0).map(|_| ()), erofs);
            assert_eq!(ops.fallocate(child, 0, 10, 0), erofs);
        }
    }
    // `.snapshots` itself: only mkdir/rmdir of snapshots.
    assert_eq!(
        ops.create(C, SNAPSHOTS_INO, b"f", 0o644, 0, 0).map(|_| ()),
        erofs
    );
    assert_eq!(
        ops.rename(
            C,
            SNAPSHOTS_INO,
            name.as_bytes(),
            SNAPSHOTS_INO,
            b"other",
            0
        ),
        erofs
    );
}

/// A random operation on the live tree (errors are part of the game).
fn random_op(rng: &mut StdRng, ops: &FsOps) {
    let dirs: Vec<u64> = {
        let mut v = vec![ROOT_INO];
        for (ino, _) in list(ops, ROOT_INO) {
            if ops.getattr(ino).is_ok_and(|e| e.attr.is_dir()) {
                v.push(ino);
            }
        }
        v
    };
    let dir = dirs[rng.gen_range(0..dirs.len())];
    let name = format!("n{}", rng.gen_range(0..12)).into_bytes();
    let entries = list(ops, dir);
    let some = entries.get(rng.gen_range(0..entries.len().max(1))).cloned();
    match rng.gen_range(0..100) {
        0..=24 => {
            if let Ok((e, o)) = ops.create(C, dir, &name, 0o644, 0o022, libc::O_WRONLY) {
                let len = rng.gen_range(0..20_000);
                let data: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
                let _ = ops.write(C, e.attr.ino, 0, &data, 0, libc::O_WRONLY);
                let _ = ops.release(e.attr.ino, o.fh);
            }
        }
        25..=39 => {
            if let Some((ino, _)) = some {
                if ops.getattr(ino).is_ok_and(|e| !e.attr.is_dir()) {
                    let off = rng.gen_range(0..30_000);
                    let data = vec![rng.gen::<u8>(); rng.gen_range(1..9000)];
                    let _ = ops.write(C, ino, off, &data, 0, 0);
                }
            }
        }
        40..=47 => {
            let _ = ops.mkdir(C, dir, &name, 0o755, 0o022);
        }
        48..=59 => {
            if let Some((_, n)) = some {
                let to = dirs[rng.gen_range(0..dirs.len())];
                let _ = ops.rename(C, dir, &n, to, &name, 0);
            }
        }
        60..=69 => {
            if let Some((_, n)) = some {
                if ops.unlink(C, dir, &n).is_err() {
                    let _ = ops.rmdir(C, dir, &n);
                }
            }
        }
        70..=75 => {
            if let Some((ino, _)) = some {
                let _ = ops.link(ino, dir, &name);
            }
        }
        76..=81 => {
            let _ = ops.symlink(C, dir, &name, b"some/target");
        }
        82..=89 => {
            if let Some((ino, _)) = some {
                let v = vec![rng.gen::<u8>(); rng.gen_range(1..100)];
                let _ = ops.setxattr(C, ino, b"user.k", &v, 0);
            }
        }
        _ => {
            if let Some((ino, _)) = some {
                let s = SetAttr {
                    mode: Some(rng.gen_range(0..0o777)),
                    uid: Some(rng.gen_range(0..3)),
                    size: ops
                        .getattr(ino)
                        .ok()
                        .filter(|e| !e.attr.is_dir())
                        .map(|_| rng.gen_range(0..10_000)),
                    ..Default::default()
                };
                let _ = ops.setattr(C, ino, s);
            }
        }
    }
}

fn check_all(ops: &FsOps, snaps: &BTreeMap<String, Dump>, at: &str) {
    let listed: Vec<Vec<u8>> = list(ops, SNAPSHOTS_INO).into_iter().map(|e| e.1).collect();
    let want: Vec<Vec<u8>> = snaps.keys().map(|k| k.clone().into_bytes()).collect();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(sorted, want, "{at}: .snapshots lists the snapshots");
    for (name, d) in snaps {
        let got = snapshot_tree(ops, name).unwrap_or_else(|e| panic!("{at}: {name}: {e}"));
        if &got != d {
            for (p, v) in d {
                if got.get(p) != Some(v) {
                    panic!("{at}: snapshot {name}: {p}: want {v}, got {:?}", got.get(p));
                }
            }
            panic!("{at}: snapshot {name} has extra entries");
        }
    }
}

#[test]
fn snapshot_trees_match_the_tree_they_were_taken_of() {
    let env = Arc::new(FaultEnv::new());
    let (mut store, mut ops) = open(&env);
    let mut rng = StdRng::seed_from_u64(1212);
    let mut snaps: BTreeMap<String, Dump> = BTreeMap::new();
    let mut next = 0;
    for step in 0..1500 {
        match rng.gen_range(0..100) {
            0..=82 => random_op(&mut rng, &ops),
            83..=86 => {
                let name = format!("s{next}");
                next += 1;
                let before = live(&ops);
                let e = ops.mkdir(C, SNAPSHOTS_INO, name.as_bytes(), 0o755, 0);
                assert!(e.is_ok(), "create {name}: {e:?}");
                snaps.insert(name.clone(), before);
                refuses_changes(&ops, &name);
            }
            87..=88 => {
                if let Some(name) = snaps
                    .keys()
                    .nth(rng.gen_range(0..snaps.len().max(1)))
                    .cloned()
                {
                    ops.rmdir(C, SNAPSHOTS_INO, name.as_bytes())
                        .expect("delete");
                    snaps.remove(&name);
                    let e = ops.lookup(SNAPSHOTS_INO, name.as_bytes()).expect("lookup");
                    assert_eq!(e.attr.ino, 0, "a deleted snapshot is gone");
                }
            }
            89..=91 => store.db().flush().expect("flush"),
            92..=93 => store.db().compact_range(None, None).expect("compact"),
            94..=96 => check_all(&ops, &snaps, &format!("step {step}")),
            _ => {
                drop(ops);
                store.close().expect("close");
                drop(store);
                (store, ops) = open(&env);
                check_all(&ops, &snaps, &format!("reopen at step {step}"));
            }
        }
    }
    check_all(&ops, &snaps, "end");
    assert!(next >= 20, "the workload takes snapshots ({next})");
    // Names: taken, invalid, too long; only root and the owner may manage.
    let taken = snaps.keys().next().cloned().unwrap_or_else(|| {
        ops.mkdir(C, SNAPSHOTS_INO, b"t", 0o755, 0).expect("create");
        "t".into()
    });
    assert_eq!(
        ops.mkdir(C, SNAPSHOTS_INO, taken.as_bytes(), 0o755, 0)
            .map(|_| ()),
        Err(libc::EEXIST)
    );
    assert_eq!(
        ops.mkdir(C, SNAPSHOTS_INO, &[b'x'; 256], 0o755, 0)
            .map(|_| ()),
        Err(libc::ENAMETOOLONG)
    );
    assert_eq!(
        ops.mkdir(U, SNAPSHOTS_INO, b"mine", 0o755, 0).map(|_| ()),
        Err(libc::EPERM)
    );
    assert_eq!(
        ops.rmdir(U, SNAPSHOTS_INO, taken.as_bytes()),
        Err(libc::EPERM)
    );
    assert_eq!(ops.rmdir(C, SNAPSHOTS_INO, b"nope"), Err(libc::ENOENT));
    // `.snapshots` is reserved at the root, and not listed there.
    assert_eq!(
        ops.mkdir(C, ROOT_INO, SNAPSHOTS_NAME, 0o755, 0).map(|_| ()),
        Err(libc::EEXIST)
    );
    assert!(list(&ops, ROOT_INO).iter().all(|e| e.1 != SNAPSHOTS_NAME));
    assert_eq!(ops.rmdir(C, ROOT_INO, SNAPSHOTS_NAME), Err(libc::EBUSY));
}

/// kill -9 and power loss at random points of a workload that takes
/// snapshots: every acknowledged snapshot is there after recovery and
/// exact; one whose create failed is whole or absent.
#[test]
fn acknowledged_snapshots_survive_kill_and_power_loss() {
    let env = Arc::new(FaultEnv::new());
    let mut snaps: BTreeMap<String, Dump> = BTreeMap::new();
    let mut next = 0;
    for seed in 0..40u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let (store, ops) = open(&env);
        check_all(&ops, &snaps, &format!("seed {seed} at open"));
        let mut maybe: Option<(String, Dump)> = None;
        env.set_dead_after(rng.gen_range(20..3000));
        for _ in 0..300 {
            if env.is_dead() {
                break;
            }
            if rng.gen_range(0..100) < 6 {
                let Ok(before) = try_live(&ops) else {
                    break;
                };
                let name = format!("s{next}");
                next += 1;
                match ops.mkdir(C, SNAPSHOTS_INO, name.as_bytes(), 0o755, 0) {
                    Ok(_) => {
                        snaps.insert(name, before);
                    }
                    Err(_) => {
                        maybe = Some((name, before));
                        break;
                    }
                }
            } else if rng.gen_range(0..100) < 3 && !snaps.is_empty() {
                let name = snaps.keys().next().cloned().unwrap_or_default();
                if ops.rmdir(C, SNAPSHOTS_INO, name.as_bytes()).is_err() {
                    maybe = snaps.remove_entry(&name);
                    break;
                }
                snaps.remove(&name);
            } else {
                random_op(&mut rng, &ops);
            }
        }
        drop(ops);
        drop(store);
        if seed % 2 == 0 {
            env.kill();
        } else {
            env.crash();
        }
        env.clear_faults();
        let (store, ops) = open(&env);
        if let Some((name, d)) = maybe {
            if let Ok(got) = snapshot_tree(&ops, &name) {
                assert!(got == d, "seed {seed}: interrupted {name} is not whole");
                snaps.insert(name, d);
            }
        }
        check_all(&ops, &snaps, &format!("seed {seed} after recovery"));
        drop(ops);
        store.close().expect("close");
    }
    assert!(next >= 15, "the trials take snapshots ({next})");
}
