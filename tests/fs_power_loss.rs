//! Power loss at the filesystem level: the POSIX logic runs in-process over
//! the engine on `FaultEnv`, the "machine" dies after a random number of
//! file operations, and after recovery the tree must equal the model after
//! some prefix of the operations that includes everything before the last
//! successful fsync — and pass `check`'s invariants. Half the power losses
//! tear the writeback (`FaultEnv::crash_torn`).

mod common;
use lsmfs::engine::env::fault::FaultEnv;
use lsmfs::fs::core::{Caller, FsCore, SetAttr};
use lsmfs::fs::schema::ROOT_INO;
use lsmfs::store::{EngineStore, Store};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::Arc;

const C: Caller = Caller { uid: 0, gid: 0 };

/// path -> None for a directory, Some((len, hash)) for a file.
type Snapshot = BTreeMap<String, Option<(usize, u64)>>;

fn hash(d: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    d.hash(&mut h);
    h.finish()
}

fn resolve(fs: &FsCore, path: &str) -> Result<u64, i32> {
    let mut ino = ROOT_INO;
    for c in path.split('/').filter(|c| !c.is_empty()) {
        ino = fs.lookup(ino, c.as_bytes())?.ino;
    }
    Ok(ino)
}

fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

fn walk(fs: &FsCore, ino: u64, prefix: &str, out: &mut Snapshot) {
    for (child, _, name) in fs.list_dir(ino).expect("list") {
        let p = format!("{prefix}/{}", String::from_utf8_lossy(&name));
        let a = fs.getattr(child).expect("getattr");
        if a.is_dir() {
            out.insert(p.clone(), None);
            walk(fs, child, &p, out);
        } else {
            let d = fs.read(child, 0, a.size as u32 + 1).expect("read");
            out.insert(p, Some((d.len(), hash(&d))));
        }
    }
}

struct Model {
    files: BTreeMap<String, Vec<u8>>,
    dirs: Vec<String>,
}

impl Model {
    fn snapshot(&self) -> Snapshot {
        let mut s: Snapshot = self.dirs.iter().map(|d| (d.clone(), None)).collect();
        for (p, d) in &self.files {
            s.insert(p.clone(), Some((d.len(), hash(d))));
        }
        s
    }
}

/// One random operation applied to both the filesystem and the model.
/// Returns Err when the filesystem failed (the env died).
fn step(
    fs: &FsCore,
    m: &mut Model,
    rng: &mut StdRng,
    n: usize,
    snaps: &mut Vec<Snapshot>,
) -> Result<bool, i32> {
    let dir = m.dirs[rng.gen_range(0..m.dirs.len())].clone();
    let file = (!m.files.is_empty()).then(|| {
        let i = rng.gen_range(0..m.files.len());
        m.files.keys().nth(i).cloned().unwrap_or_default()
    });
    match (rng.gen_range(0..10), file) {
        (0..=2, _) | (_, None) => {
            let p = format!("{dir}/f{n}");
            let len = [0usize, 10, 3000, 70_000, 200_000, 300_000][rng.gen_range(0..6)];
            let data: Vec<u8> = (0..len).map(|i| (i as u8) ^ (n as u8)).collect();
            let a = fs.create(C, resolve(fs, &dir)?, format!("f{n}").as_bytes(), 0o644)?;
            if !data.is_empty() {
                // create and write are two operations; model both.
                m.files.insert(p.clone(), Vec::new());
                snaps.push(m.snapshot());
                fs.write(C, a.ino, 0, &data, false)?;
            }
            m.files.insert(p, data);
        }
        (3, Some(f)) => {
            let extra = vec![n as u8; rng.gen_range(1..50_000)];
            fs.write(C, resolve(fs, &f)?, 0, &extra, true)?;
            if let Some(d) = m.files.get_mut(&f) {
                d.extend_from_slice(&extra);
            }
        }
        (4, Some(f)) => {
            let ino = resolve(fs, &f)?;
            let len = m.files[&f].len();
            let off = rng.gen_range(0..=len);
            let patch = vec![0xAB; rng.gen_range(1..5000)];
            fs.write(C, ino, off as u64, &patch, false)?;
            if let Some(d) = m.files.get_mut(&f) {
                if d.len() < off + patch.len() {
                    d.resize(off + patch.len(), 0);
                }
                d[off..off + patch.len()].copy_from_slice(&patch);
            }
        }
        (5, Some(f)) => {
            let (pd, name) = split(&f);
            fs.unlink(C, resolve(fs, pd)?, name.as_bytes())?;
            m.files.remove(&f);
        }
        (6, Some(f)) => {
            let to = format!("{dir}/r{n}");
            let (pd, name) = split(&f);
            fs.rename(
                C,
                resolve(fs, pd)?,
                name.as_bytes(),
                resolve(fs, &dir)?,
                format!("r{n}").as_bytes(),
                0,
            )?;
            if let Some(d) = m.files.remove(&f) {
                m.files.insert(to, d);
            }
        }
        (7, Some(f)) => {
            let size = rng.gen_range(0..100_000u64);
            fs.setattr(
                C,
                resolve(fs, &f)?,
                SetAttr {
                    size: Some(size),
                    ..Default::default()
                },
            )?;
            if let Some(d) = m.files.get_mut(&f) {
                d.resize(size as usize, 0);
            }
        }
        (8, _) => {
            let p = format!("{dir}/d{n}");
            fs.mkdir(C, resolve(fs, &dir)?, format!("d{n}").as_bytes(), 0o755)?;
            m.dirs.push(p);
        }
        _ => {
            fs.sync()?;
            return Ok(true);
        }
    }
    Ok(false)
}

#[test]
fn power_loss_at_random_points_of_a_filesystem_workload() {
    let env = Arc::new(FaultEnv::new());
    let dir = Path::new("/fs");
    let mut model = Model {
        files: BTreeMap::new(),
        dirs: vec![String::new()],
    };
    let mut crashes = 0;
    for seed in 0..250u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let store =
            Arc::new(EngineStore::open_with(dir, common::small_engine(&env)).expect("open"));
        let fs = FsCore::open(store.clone() as Arc<dyn Store>, false, false).expect("fs open");
        let mut snaps = vec![model.snapshot()];
        let mut synced = 0;
        env.set_dead_after(rng.gen_range(1..1500));
        for n in 0..300 {
            match step(
                &fs,
                &mut model,
                &mut rng,
                seed as usize * 1000 + n,
                &mut snaps,
            ) {
                Ok(sync) => {
                    snaps.push(model.snapshot());
                    if sync {
                        synced = snaps.len() - 1;
                    }
                }
                Err(_) => {
                    // The op in flight may or may not have landed.
                    snaps.push(model.snapshot());
                    crashes += 1;
                    break;
                }
            }
        }
        drop(fs);
        drop(store);
        // Every other loss happens during writeback: part of the unsynced
        // tails survive, possibly with sectors lost out of order.
        if seed % 2 == 1 {
            env.crash_torn(seed);
        } else {
            env.crash();
        }
        env.clear_faults();
        let store =
            Arc::new(EngineStore::open_with(dir, common::small_engine(&env)).expect("reopen"));
        let fs = FsCore::open(store.clone() as Arc<dyn Store>, false, false).expect("fs reopen");
        let mut got = Snapshot::new();
        got.insert(String::new(), None);
        walk(&fs, ROOT_INO, "", &mut got);
        let k = (synced..snaps.len()).rev().find(|&i| snaps[i] == got);
        assert!(
            k.is_some(),
            "seed {seed}: recovered tree matches no state from the last fsync (op {synced}) on ({} ops)",
            snaps.len() - 1
        );
        let mut problems = Vec::new();
        let mut summary = Vec::new();
        lsmfs::fs::fsck::check_tree(store.db(), &mut problems, &mut summary);
        assert!(problems.is_empty(), "seed {seed}: check found {problems:?}");
        // Continue from what survived.
        model.dirs = got
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(p, _)| p.clone())
            .collect();
        let mut files = BTreeMap::new();
        for (p, v) in &got {
            if v.is_some() {
                let ino = resolve(&fs, p).expect("resolve");
                let a = fs.getattr(ino).expect("getattr");
                files.insert(p.clone(), fs.read(ino, 0, a.size as u32 + 1).expect("read"));
            }
        }
        model.files = files;
        drop(fs);
        store.close().expect("close");
    }
    assert!(
        crashes > 150,
        "most trials must crash mid-workload ({crashes})"
    );
}
