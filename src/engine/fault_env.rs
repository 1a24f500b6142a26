//! FaultEnv: an in-memory `Env` that can lose power and fail on demand.
//!
//! It keeps, for every file, the bytes written and how many of them were
//! fsync'd, and two maps of directory entries: the live one and the one
//! made durable by the last `sync_dir` of each directory. `crash()` turns
//! the durable state into the live one — unsynced bytes vanish, a created
//! or renamed entry whose directory was not fsync'd reverts, a removed one
//! comes back — which is what a power loss does to a real filesystem that
//! honours fsync and nothing more. Files are only ever appended to by the
//! engine, so "synced" is a length.
//!
//! Faults: `set_fail_after(n, kinds)` makes the (n+1)-th later operation of
//! those kinds fail once with an I/O error; `set_dead_after(n)` makes every
//! operation fail after n more mutating ones, as if the process had died at
//! that instant (the test then drops the database and calls `crash()`).
//! Directories themselves are created durably at once (a simplification:
//! the engine creates its one directory before anything else).

use super::env::{Env, FileLock, RandomAccessFile, WritableFile};
use super::error::{Error, Result};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Which operations a fault applies to (bit set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultKinds(pub u32);

impl FaultKinds {
    pub const WRITE: FaultKinds = FaultKinds(1);
    pub const SYNC: FaultKinds = FaultKinds(2);
    pub const RENAME: FaultKinds = FaultKinds(4);
    pub const REMOVE: FaultKinds = FaultKinds(8);
    pub const CREATE: FaultKinds = FaultKinds(16);
    pub const ALL: FaultKinds = FaultKinds(31);

    pub fn contains(self, other: FaultKinds) -> bool {
        self.0 & other.0 != 0
    }
}

impl std::ops::BitOr for FaultKinds {
    type Output = FaultKinds;
    fn bitor(self, o: FaultKinds) -> FaultKinds {
        FaultKinds(self.0 | o.0)
    }
}

#[derive(Default)]
struct Inode {
    data: Vec<u8>,
    synced_len: usize,
}

#[derive(Default)]
struct State {
    inodes: HashMap<u64, Inode>,
    next_ino: u64,
    live: BTreeMap<PathBuf, u64>,
    durable: BTreeMap<PathBuf, u64>,
    dirs: BTreeSet<PathBuf>,
    locks: BTreeSet<PathBuf>,
    generation: u64,
    ops: u64,
    fail: Option<(u64, FaultKinds)>,
    dead_at: Option<u64>,
    dead: bool,
}

fn injected(what: &str, path: &Path) -> Error {
    Error::io(
        format!("{what} {}", path.display()),
        std::io::Error::other("injected fault"),
    )
}

impl State {
    /// Account for one mutating operation; fails if a fault fires.
    fn op(&mut self, kind: FaultKinds, what: &str, path: &Path) -> Result<()> {
        if self.dead {
            return Err(injected(what, path));
        }
        self.ops += 1;
        if self.dead_at.is_some_and(|d| self.ops > d) {
            self.dead = true;
            return Err(injected(what, path));
        }
        if let Some((left, kinds)) = self.fail {
            if kinds.contains(kind) {
                if left == 0 {
                    self.fail = None;
                    return Err(injected(what, path));
                }
                self.fail = Some((left - 1, kinds));
            }
        }
        Ok(())
    }

    fn read_check(&self, path: &Path) -> Result<()> {
        if self.dead {
            return Err(injected("read", path));
        }
        Ok(())
    }

    fn lookup(&self, path: &Path) -> Result<u64> {
        self.live.get(path).copied().ok_or_else(|| {
            Error::io(
                format!("open {}", path.display()),
                std::io::Error::from_raw_os_error(libc::ENOENT),
            )
        })
    }
}

#[derive(Default, Clone)]
pub struct FaultEnv {
    state: Arc<Mutex<State>>,
}

fn lock(s: &Mutex<State>) -> MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

impl FaultEnv {
    pub fn new() -> FaultEnv {
        FaultEnv::default()
    }

    /// Lose power: keep only what was made durable. Revives a dead env.
    pub fn crash(&self) {
        let mut st = lock(&self.state);
        st.live = st.durable.clone();
        let referenced: BTreeSet<u64> = st.live.values().copied().collect();
        st.inodes.retain(|ino, _| referenced.contains(ino));
        for inode in st.inodes.values_mut() {
            let n = inode.synced_len;
            inode.data.truncate(n);
        }
        st.locks.clear();
        st.generation += 1;
        st.dead = false;
        st.dead_at = None;
        st.fail = None;
    }

    pub fn set_fail_after(&self, n: u64, kinds: FaultKinds) {
        lock(&self.state).fail = Some((n, kinds));
    }

    pub fn set_dead_after(&self, n: u64) {
        let mut st = lock(&self.state);
        st.dead_at = Some(st.ops + n);
    }

    pub fn clear_faults(&self) {
        let mut st = lock(&self.state);
        st.fail = None;
        st.dead_at = None;
        st.dead = false;
    }

    pub fn is_dead(&self) -> bool {
        lock(&self.state).dead
    }

    /// Mutating operations so far.
    pub fn op_count(&self) -> u64 {
        lock(&self.state).ops
    }

    /// Live file names in `dir`.
    pub fn files(&self, dir: &Path) -> Vec<String> {
        let st = lock(&self.state);
        st.live
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect()
    }

    pub fn file_contents(&self, path: &Path) -> Option<Vec<u8>> {
        let st = lock(&self.state);
        let ino = st.live.get(path)?;
        st.inodes.get(ino).map(|i| i.data.clone())
    }

    /// Flip every bit of one byte (a durable change: it models bit rot).
    pub fn corrupt_byte(&self, path: &Path, offset: usize) -> bool {
        let mut st = lock(&self.state);
        let Some(&ino) = st.live.get(path) else {
            return false;
        };
        match st.inodes.get_mut(&ino).and_then(|i| i.data.get_mut(offset)) {
            Some(b) => {
                *b ^= 0xff;
                true
            }
            None => false,
        }
    }
}

struct FaultWritable {
    state: Arc<Mutex<State>>,
    path: PathBuf,
    ino: u64,
    generation: u64,
    len: u64,
}

impl FaultWritable {
    fn with<T>(
        &self,
        kind: Option<FaultKinds>,
        what: &str,
        f: impl FnOnce(&mut Inode) -> T,
    ) -> Result<T> {
        let mut st = lock(&self.state);
        if st.generation != self.generation {
            return Err(injected(what, &self.path));
        }
        if let Some(k) = kind {
            st.op(k, what, &self.path)?;
        }
        match st.inodes.get_mut(&self.ino) {
            Some(i) => Ok(f(i)),
            None => Err(injected(what, &self.path)),
        }
    }
}

impl WritableFile for FaultWritable {
    fn append(&mut self, data: &[u8]) -> Result<()> {
        self.with(Some(FaultKinds::WRITE), "write", |i| {
            i.data.extend_from_slice(data)
        })?;
        self.len += data.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.with(None, "flush", |_| ())
    }

    fn sync(&mut self) -> Result<()> {
        self.with(Some(FaultKinds::SYNC), "fsync", |i| {
            i.synced_len = i.data.len()
        })
    }

    fn len(&self) -> u64 {
        self.len
    }
}

struct FaultRandom {
    state: Arc<Mutex<State>>,
    path: PathBuf,
    ino: u64,
    generation: u64,
    len: u64,
}

impl RandomAccessFile for FaultRandom {
    fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let st = lock(&self.state);
        st.read_check(&self.path)?;
        if st.generation != self.generation {
            return Err(injected("read", &self.path));
        }
        let data = st.inodes.get(&self.ino).map_or(&[][..], |i| &i.data[..]);
        let start = offset as usize;
        match data.get(start..start.saturating_add(len)) {
            Some(b) => Ok(b.to_vec()),
            None => Err(Error::corruption(
                &self.path,
                offset,
                format!(
                    "short read: wanted {len} bytes, file is {} bytes",
                    data.len()
                ),
            )),
        }
    }

    fn len(&self) -> u64 {
        self.len
    }
}

struct FaultLock {
    state: Arc<Mutex<State>>,
    path: PathBuf,
    generation: u64,
}

impl FileLock for FaultLock {}

impl Drop for FaultLock {
    fn drop(&mut self) {
        let mut st = lock(&self.state);
        if st.generation == self.generation {
            st.locks.remove(&self.path);
        }
    }
}

impl Env for FaultEnv {
    fn create_writable(&self, path: &Path) -> Result<Box<dyn WritableFile>> {
        let mut st = lock(&self.state);
        st.op(FaultKinds::CREATE, "create", path)?;
        st.next_ino += 1;
        let ino = st.next_ino;
        st.inodes.insert(ino, Inode::default());
        st.live.insert(path.to_path_buf(), ino);
        Ok(Box::new(FaultWritable {
            state: self.state.clone(),
            path: path.to_path_buf(),
            ino,
            generation: st.generation,
            len: 0,
        }))
    }

    fn open_random_access(&self, path: &Path) -> Result<Box<dyn RandomAccessFile>> {
        let st = lock(&self.state);
        st.read_check(path)?;
        let ino = st.lookup(path)?;
        let len = st.inodes.get(&ino).map_or(0, |i| i.data.len() as u64);
        Ok(Box::new(FaultRandom {
            state: self.state.clone(),
            path: path.to_path_buf(),
            ino,
            generation: st.generation,
            len,
        }))
    }

    fn read_all(&self, path: &Path) -> Result<Vec<u8>> {
        let st = lock(&self.state);
        st.read_check(path)?;
        let ino = st.lookup(path)?;
        Ok(st
            .inodes
            .get(&ino)
            .map(|i| i.data.clone())
            .unwrap_or_default())
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        let mut st = lock(&self.state);
        st.op(FaultKinds::RENAME, "rename", from)?;
        let ino = st.lookup(from)?;
        st.live.remove(from);
        st.live.insert(to.to_path_buf(), ino);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> Result<()> {
        let mut st = lock(&self.state);
        st.op(FaultKinds::REMOVE, "remove", path)?;
        st.lookup(path)?;
        st.live.remove(path);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        let mut st = lock(&self.state);
        st.op(FaultKinds::SYNC, "fsync directory", dir)?;
        let in_dir = |p: &PathBuf| p.parent() == Some(dir);
        st.durable.retain(|p, _| !in_dir(p));
        let entries: Vec<(PathBuf, u64)> = st
            .live
            .iter()
            .filter(|(p, _)| in_dir(p))
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        st.durable.extend(entries);
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> Result<Vec<String>> {
        lock(&self.state).read_check(dir)?;
        Ok(self.files(dir))
    }

    fn file_size(&self, path: &Path) -> Result<u64> {
        let st = lock(&self.state);
        st.read_check(path)?;
        let ino = st.lookup(path)?;
        Ok(st.inodes.get(&ino).map_or(0, |i| i.data.len() as u64))
    }

    fn exists(&self, path: &Path) -> bool {
        let st = lock(&self.state);
        st.live.contains_key(path) || st.dirs.contains(path)
    }

    fn create_dir_all(&self, dir: &Path) -> Result<()> {
        let mut st = lock(&self.state);
        st.read_check(dir)?;
        let mut p = Some(dir);
        while let Some(d) = p {
            st.dirs.insert(d.to_path_buf());
            p = d.parent();
        }
        Ok(())
    }

    fn lock_file(&self, path: &Path) -> Result<Box<dyn FileLock>> {
        let mut st = lock(&self.state);
        st.read_check(path)?;
        if !st.locks.insert(path.to_path_buf()) {
            return Err(Error::Locked(path.parent().unwrap_or(path).to_path_buf()));
        }
        Ok(Box::new(FaultLock {
            state: self.state.clone(),
            path: path.to_path_buf(),
            generation: st.generation,
        }))
    }

    fn truncate(&self, path: &Path, len: u64) -> Result<()> {
        let mut st = lock(&self.state);
        st.op(FaultKinds::WRITE, "truncate", path)?;
        let ino = st.lookup(path)?;
        if let Some(i) = st.inodes.get_mut(&ino) {
            i.data.truncate(len as usize);
            i.synced_len = i.synced_len.min(i.data.len());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(env: &FaultEnv, p: &str, data: &[u8], sync: bool) -> Box<dyn WritableFile> {
        let mut f = env.create_writable(Path::new(p)).unwrap();
        f.append(data).unwrap();
        if sync {
            f.sync().unwrap();
        }
        f
    }

    #[test]
    fn crash_keeps_only_durable_state() {
        let env = FaultEnv::new();
        let d = Path::new("/d");
        env.create_dir_all(d).unwrap();
        let mut f = write(&env, "/d/a", b"synced", true);
        f.append(b" lost").unwrap();
        env.sync_dir(d).unwrap();
        drop(write(&env, "/d/b", b"not in dir", true));
        env.rename(Path::new("/d/a"), Path::new("/d/c")).unwrap();
        env.crash();
        assert_eq!(env.file_contents(Path::new("/d/a")).unwrap(), b"synced");
        assert!(env.file_contents(Path::new("/d/b")).is_none());
        assert!(env.file_contents(Path::new("/d/c")).is_none());
        assert!(f.append(b"x").is_err(), "old handles die with the crash");
        env.remove_file(Path::new("/d/a")).unwrap();
        env.crash();
        assert!(
            env.file_contents(Path::new("/d/a")).is_some(),
            "unsynced removal reverts"
        );
    }

    #[test]
    fn faults_fire_at_the_nth_operation() {
        let env = FaultEnv::new();
        env.set_fail_after(2, FaultKinds::SYNC);
        let mut f = write(&env, "/a", b"1", false);
        f.sync().unwrap();
        f.sync().unwrap();
        assert!(f.sync().is_err());
        f.sync().unwrap();
        env.set_dead_after(1);
        f.append(b"x").unwrap();
        assert!(f.append(b"y").is_err());
        assert!(env.read_all(Path::new("/a")).is_err());
        env.crash();
        assert_eq!(env.read_all(Path::new("/a")).unwrap_or_default(), b"");
    }

    #[test]
    fn locks_are_exclusive() {
        let env = FaultEnv::new();
        let l = env.lock_file(Path::new("/d/LOCK")).unwrap();
        assert!(matches!(
            env.lock_file(Path::new("/d/LOCK")),
            Err(Error::Locked(_))
        ));
        drop(l);
        env.lock_file(Path::new("/d/LOCK")).unwrap();
    }
}
