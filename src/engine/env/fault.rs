//! FaultEnv: an in-memory `Env` that can lose power, die, and fail on demand.
//!
//! Why it exists: the engine's promises ("a synced write survives power
//! loss", "a crash at any instant recovers to a prefix of the acknowledged
//! operations") can only be tested by crashing at every instant, thousands
//! of times, which needs a filesystem model that remembers precisely what a
//! real one would have made durable. The model is deliberately the weakest
//! filesystem that still honours fsync, so code that forgets one fails here.
//!
//! # Model
//!
//! An inode table and two maps of directory entries (path → inode):
//! - **live**: what the running process sees;
//! - **durable**: what survives a power loss. `sync_dir(dir)` copies the live
//!   entries *directly in* `dir` to the durable map (additions, removals and
//!   renames alike); nothing else changes it.
//!
//! Each inode holds `data` (what readers see), `flushed` (how many bytes of
//! `data` were handed to the "OS": everything appended, once `flush`/`sync`
//! ran or the handle was dropped) and `synced` (its content as of the last
//! `WritableFile::sync`).
//!
//! - `create_writable` makes a fresh inode and links it live at the path,
//!   replacing any previous live entry (like writing a new file and renaming
//!   it over the old one: until the directory is synced, a crash brings the
//!   old one back). A write handle keeps writing to its inode even if the
//!   path is renamed or removed.
//! - Appended bytes are visible to readers at once. `flush` marks them as
//!   handed to the OS; `sync` also makes them durable.
//! - `truncate` is durable when it returns (as `PosixEnv::truncate`, which
//!   fsyncs): the file's whole content becomes its synced content.
//! - Directories are implicit and durable at once (`create_dir_all` only
//!   records them so that `exists`/`list_dir` work): the engine creates its
//!   one directory before anything else.
//!
//! Events:
//! - [`FaultEnv::crash`]: power loss. The live map becomes the durable map;
//!   every inode's data becomes its synced content; locks are released; every
//!   outstanding handle is dead (a generation counter): further operations
//!   on it return an I/O error. The env is then usable again.
//! - [`FaultEnv::crash_torn`]: power loss during writeback. As `crash`, but
//!   each file also keeps a pseudo-random part of the bytes handed to the OS
//!   after its last sync, possibly ending in zeros (a size update that
//!   reached the disk before the data), or with some of its 512-byte
//!   sectors zero (writeback is not in file order, so later sectors can
//!   land while earlier ones are lost): the torn tails recovery must handle.
//! - [`FaultEnv::kill`]: kill -9 of the process, the OS survives. Live
//!   entries stay; bytes appended but never flushed are lost; handles die.
//!
//! Faults:
//! - `set_fail_after(n, kinds)`: the (n+1)-th later mutating operation of one
//!   of `kinds` fails once with `Error::Io` ("injected fault") and has no
//!   effect.
//! - `set_space_limit(Some(n))`: a disk of n bytes; an append past it fails
//!   with ENOSPC (the count is every inode's data, live or not yet freed).
//! - `set_dead_after(n)`: once n more mutating operations have run, *every*
//!   operation (reads too) fails, as if the process had died at that instant;
//!   the test then drops the database and calls `crash()` (or `kill()`).
//!
//! Mutating operations (what `op_count` counts): append, a flush with
//! pending bytes and truncate (`WRITE`); file sync and `sync_dir` (`SYNC`);
//! rename (`RENAME`); remove (`REMOVE`); create (`CREATE`).
//!
//! Inodes that no entry (live or durable) and no open handle refers to are
//! freed, so long crash loops do not accumulate every file ever written.

use crate::engine::env::{Env, FileLock, RandomAccessFile, WritableFile};
use crate::engine::error::{Error, Result};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// The unit in which `crash_torn` loses unsynced writes out of order.
pub const SECTOR: usize = 512;

/// A set of operation kinds that a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultKinds(pub u32);

impl FaultKinds {
    pub const NONE: FaultKinds = FaultKinds(0);
    /// `append`, a `flush` that has bytes to write, `truncate`.
    pub const WRITE: FaultKinds = FaultKinds(1);
    /// `WritableFile::sync` and `Env::sync_dir`.
    pub const SYNC: FaultKinds = FaultKinds(2);
    pub const RENAME: FaultKinds = FaultKinds(4);
    pub const REMOVE: FaultKinds = FaultKinds(8);
    pub const CREATE: FaultKinds = FaultKinds(16);
    pub const ALL: FaultKinds = FaultKinds(31);

    /// True if the two sets share a kind.
    pub fn intersects(self, other: FaultKinds) -> bool {
        self.0 & other.0 != 0
    }

    /// True if every kind of `other` is in `self`.
    pub fn contains(self, other: FaultKinds) -> bool {
        self.0 & other.0 == other.0
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
    /// `data[..flushed]` was handed to the OS (survives kill -9).
    flushed: usize,
    /// Content as of the last sync (survives power loss).
    synced: Vec<u8>,
    /// Open handles (writable and random-access) of the current generation.
    handles: usize,
    /// Entries naming this inode, live and durable counted separately.
    links: usize,
}

impl Inode {
    fn make_durable(&mut self) {
        self.flushed = self.data.len();
        // Usually the file only grew since the last sync: copy the new bytes only.
        let n = self.synced.len();
        if n <= self.data.len() && self.data[..n] == self.synced[..] {
            self.synced.extend_from_slice(&self.data[n..]);
        } else {
            self.synced = self.data.clone();
        }
    }
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
    /// Bytes all files together may hold (`set_space_limit`).
    space_limit: Option<u64>,
}

fn injected(what: &str, path: &Path) -> Error {
    Error::io(
        format!("{what} {}", path.display()),
        std::io::Error::other("injected fault"),
    )
}

fn dead_error(what: &str, path: &Path) -> Error {
    Error::io(
        format!("{what} {}", path.display()),
        std::io::Error::other("injected fault: the simulated process is dead"),
    )
}

fn stale(what: &str, path: &Path) -> Error {
    Error::io(
        format!("{what} {}", path.display()),
        std::io::Error::other("file handle from before a simulated crash"),
    )
}

fn not_found(what: &str, path: &Path) -> Error {
    Error::io(
        format!("{what} {}", path.display()),
        std::io::Error::from_raw_os_error(libc::ENOENT),
    )
}

impl State {
    /// Account for one mutating operation; fails if a fault fires.
    fn op(&mut self, kind: FaultKinds, what: &str, path: &Path) -> Result<()> {
        self.alive(what, path)?;
        self.ops += 1;
        let mut result = Ok(());
        if let Some((left, kinds)) = self.fail {
            if kinds.intersects(kind) {
                if left == 0 {
                    self.fail = None;
                    result = Err(injected(what, path));
                } else {
                    self.fail = Some((left - 1, kinds));
                }
            }
        }
        if self.dead_at.is_some_and(|d| self.ops >= d) {
            self.dead = true;
            self.dead_at = None;
        }
        result
    }

    fn alive(&self, what: &str, path: &Path) -> Result<()> {
        if self.dead {
            return Err(dead_error(what, path));
        }
        Ok(())
    }

    /// Check a handle: the process is alive and the handle predates no crash.
    fn handle(&self, generation: u64, what: &str, path: &Path) -> Result<()> {
        self.alive(what, path)?;
        if self.generation != generation {
            return Err(stale(what, path));
        }
        Ok(())
    }

    fn lookup(&self, what: &str, path: &Path) -> Result<u64> {
        self.live
            .get(path)
            .copied()
            .ok_or_else(|| not_found(what, path))
    }

    fn inode_mut(&mut self, ino: u64, what: &str, path: &Path) -> Result<&mut Inode> {
        // A referenced inode is never freed, so this only fails on a bug here.
        self.inodes
            .get_mut(&ino)
            .ok_or_else(|| not_found(what, path))
    }

    fn new_inode(&mut self) -> u64 {
        self.next_ino += 1;
        self.inodes.insert(self.next_ino, Inode::default());
        self.next_ino
    }

    /// Free `ino` if nothing refers to it any more.
    fn gc(&mut self, ino: u64) {
        if self
            .inodes
            .get(&ino)
            .is_some_and(|i| i.handles == 0 && i.links == 0)
        {
            self.inodes.remove(&ino);
        }
    }

    fn add_link(&mut self, ino: u64) {
        if let Some(i) = self.inodes.get_mut(&ino) {
            i.links += 1;
        }
    }

    fn drop_link(&mut self, ino: u64) {
        if let Some(i) = self.inodes.get_mut(&ino) {
            i.links = i.links.saturating_sub(1);
        }
        self.gc(ino);
    }

    /// Point the live entry `path` at `ino`, unlinking what it named.
    fn link_live(&mut self, path: &Path, ino: u64) {
        self.add_link(ino);
        if let Some(old) = self.live.insert(path.to_path_buf(), ino) {
            self.drop_link(old);
        }
    }

    fn unlink_live(&mut self, path: &Path) {
        if let Some(old) = self.live.remove(path) {
            self.drop_link(old);
        }
    }

    /// Recount links and keep only inodes an entry names (after a crash:
    /// every handle is dead).
    fn gc_all(&mut self) {
        for inode in self.inodes.values_mut() {
            inode.handles = 0;
            inode.links = 0;
        }
        let names: Vec<u64> = self
            .live
            .values()
            .chain(self.durable.values())
            .copied()
            .collect();
        for ino in names {
            self.add_link(ino);
        }
        self.inodes.retain(|_, i| i.links > 0);
    }

    /// A directory exists if it was created or holds (or held) an entry.
    fn dir_known(&self, dir: &Path) -> bool {
        let in_dir = |p: &PathBuf| p.parent() == Some(dir);
        self.dirs.contains(dir) || self.live.keys().any(in_dir) || self.durable.keys().any(in_dir)
    }

    /// The end of every outstanding handle, lock and fault.
    fn new_generation(&mut self) {
        self.generation += 1;
        self.locks.clear();
        self.dead = false;
        self.dead_at = None;
        self.fail = None;
        self.gc_all();
    }
}

/// The in-memory, crash-simulating `Env` (see the module docs).
/// Clones share the same simulated filesystem.
#[derive(Default, Clone)]
pub struct FaultEnv {
    state: Arc<Mutex<State>>,
}

fn lock(s: &Mutex<State>) -> MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// A tiny deterministic generator (SplitMix64) for `crash_torn`.
/// Writeback reaches the disk a sector at a time, in no particular order:
/// zero each sector of `content` past `synced` with probability 1/4 (the
/// part of it before `synced` keeps its synced bytes).
fn lose_sectors(content: &mut [u8], synced: usize, seed: &mut u64) {
    let mut start = synced;
    while start < content.len() {
        let end = ((start / SECTOR + 1) * SECTOR).min(content.len());
        if splitmix(seed).is_multiple_of(4) {
            content[start..end].fill(0);
        }
        start = end;
    }
}

fn splitmix(seed: &mut u64) -> u64 {
    *seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *seed;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl FaultEnv {
    pub fn new() -> FaultEnv {
        FaultEnv::default()
    }

    /// Lose power: keep only what was made durable. Revives a dead env and
    /// clears pending faults; every handle and lock from before is dead.
    pub fn crash(&self) {
        let mut st = lock(&self.state);
        st.live = st.durable.clone();
        for inode in st.inodes.values_mut() {
            inode.data = inode.synced.clone();
            inode.flushed = inode.data.len();
        }
        st.new_generation();
    }

    /// Lose power while the OS was writing back: like [`FaultEnv::crash`],
    /// but each file whose flushed bytes extend its synced content keeps a
    /// pseudo-random prefix of those bytes (chosen from `seed`), the end of
    /// which may read as zeros, or in which some sectors were lost.
    pub fn crash_torn(&self, seed: u64) {
        let mut seed = seed;
        let mut st = lock(&self.state);
        st.live = st.durable.clone();
        let mut inos: Vec<u64> = st.inodes.keys().copied().collect();
        inos.sort_unstable(); // deterministic for a given seed
        for ino in inos {
            let Some(inode) = st.inodes.get_mut(&ino) else {
                continue;
            };
            let n = inode.synced.len();
            let flushed = inode.flushed.min(inode.data.len());
            let extends = flushed > n && inode.data[..n] == inode.synced[..];
            let mut content = inode.synced.clone();
            if extends {
                let keep = (splitmix(&mut seed) % (flushed - n + 1) as u64) as usize;
                content.extend_from_slice(&inode.data[n..n + keep]);
                match splitmix(&mut seed) % 4 {
                    0 if keep > 0 => {
                        let zeros = (splitmix(&mut seed) % (keep as u64 + 1)) as usize;
                        let len = content.len();
                        content[len - zeros..].fill(0);
                    }
                    1 => lose_sectors(&mut content, n, &mut seed),
                    _ => {}
                }
            }
            inode.data = content;
            inode.flushed = inode.data.len();
            // What survived is on disk now; another crash keeps it.
            inode.synced = inode.data.clone();
        }
        st.new_generation();
    }

    /// kill -9 of the process: directory entries and flushed bytes stay (the
    /// OS has them), bytes appended but never flushed are lost, handles and
    /// locks die. Revives a dead env and clears pending faults.
    pub fn kill(&self) {
        let mut st = lock(&self.state);
        for inode in st.inodes.values_mut() {
            let n = inode.flushed;
            inode.data.truncate(n);
        }
        st.new_generation();
    }

    /// A disk of `limit` bytes: an append that would make all files together
    /// hold more fails with ENOSPC and has no effect (`None`: unlimited).
    pub fn set_space_limit(&self, limit: Option<u64>) {
        lock(&self.state).space_limit = limit;
    }

    /// Bytes all files hold now.
    pub fn space_used(&self) -> u64 {
        lock(&self.state)
            .inodes
            .values()
            .map(|i| i.data.len() as u64)
            .sum()
    }

    /// The (n+1)-th later mutating operation of one of `kinds` fails once.
    pub fn set_fail_after(&self, n: u64, kinds: FaultKinds) {
        lock(&self.state).fail = Some((n, kinds));
    }

    /// After `n` more mutating operations every operation fails (n = 0: now).
    pub fn set_dead_after(&self, n: u64) {
        let mut st = lock(&self.state);
        if n == 0 {
            st.dead = true;
            st.dead_at = None;
        } else {
            st.dead_at = Some(st.ops + n);
        }
    }

    /// Cancel pending faults and revive a dead process (state is unchanged).
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

    /// Live file names directly in `dir`, sorted.
    pub fn files(&self, dir: &Path) -> Vec<String> {
        let st = lock(&self.state);
        names_in(st.live.keys(), dir)
    }

    /// File names directly in `dir` that would survive a power loss now.
    pub fn durable_files(&self, dir: &Path) -> Vec<String> {
        let st = lock(&self.state);
        names_in(st.durable.keys(), dir)
    }

    /// What readers see at `path` now.
    pub fn file_contents(&self, path: &Path) -> Option<Vec<u8>> {
        let st = lock(&self.state);
        let ino = st.live.get(path)?;
        st.inodes.get(ino).map(|i| i.data.clone())
    }

    /// What `path` would hold after a power loss now.
    pub fn durable_contents(&self, path: &Path) -> Option<Vec<u8>> {
        let st = lock(&self.state);
        let ino = st.durable.get(path)?;
        st.inodes.get(ino).map(|i| i.synced.clone())
    }

    /// Flip every bit of one byte of the live file, in its current and its
    /// synced content alike (it models bit rot, which a crash does not undo).
    /// False if there is no such file or byte.
    pub fn corrupt_byte(&self, path: &Path, offset: usize) -> bool {
        let mut st = lock(&self.state);
        let Some(&ino) = st.live.get(path) else {
            return false;
        };
        let Some(inode) = st.inodes.get_mut(&ino) else {
            return false;
        };
        let Some(b) = inode.data.get_mut(offset) else {
            return false;
        };
        *b ^= 0xff;
        if let Some(b) = inode.synced.get_mut(offset) {
            *b ^= 0xff;
        }
        true
    }
}

fn names_in<'a>(paths: impl Iterator<Item = &'a PathBuf>, dir: &Path) -> Vec<String> {
    paths
        .filter(|p| p.parent() == Some(dir))
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect()
}

/// Release a handle's hold on its inode (if no crash intervened).
fn release(state: &Mutex<State>, ino: u64, generation: u64, flush: bool) {
    let mut st = lock(state);
    if st.generation != generation {
        return;
    }
    let dead = st.dead;
    if let Some(inode) = st.inodes.get_mut(&ino) {
        inode.handles = inode.handles.saturating_sub(1);
        // PosixEnv flushes on drop; a dead process runs no destructors.
        if flush && !dead {
            inode.flushed = inode.data.len();
        }
    }
    st.gc(ino);
}

struct FaultWritable {
    state: Arc<Mutex<State>>,
    path: PathBuf,
    ino: u64,
    generation: u64,
    len: u64,
}

impl WritableFile for FaultWritable {
    fn append(&mut self, data: &[u8]) -> Result<()> {
        let mut st = lock(&self.state);
        st.handle(self.generation, "write", &self.path)?;
        st.op(FaultKinds::WRITE, "write", &self.path)?;
        if let Some(limit) = st.space_limit {
            let used: u64 = st.inodes.values().map(|i| i.data.len() as u64).sum();
            if used + data.len() as u64 > limit {
                return Err(Error::io(
                    format!("write {}", self.path.display()),
                    std::io::Error::from_raw_os_error(libc::ENOSPC),
                ));
            }
        }
        st.inode_mut(self.ino, "write", &self.path)?
            .data
            .extend_from_slice(data);
        self.len += data.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let mut st = lock(&self.state);
        st.handle(self.generation, "write", &self.path)?;
        let inode = st.inode_mut(self.ino, "write", &self.path)?;
        if inode.flushed >= inode.data.len() {
            return Ok(()); // nothing buffered: no write(2), nothing to fail
        }
        st.op(FaultKinds::WRITE, "write", &self.path)?;
        let inode = st.inode_mut(self.ino, "write", &self.path)?;
        inode.flushed = inode.data.len();
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        let mut st = lock(&self.state);
        st.handle(self.generation, "fdatasync", &self.path)?;
        st.op(FaultKinds::SYNC, "fdatasync", &self.path)?;
        st.inode_mut(self.ino, "fdatasync", &self.path)?
            .make_durable();
        Ok(())
    }

    fn len(&self) -> u64 {
        self.len
    }
}

impl Drop for FaultWritable {
    fn drop(&mut self) {
        release(&self.state, self.ino, self.generation, true);
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
        let mut st = lock(&self.state);
        st.handle(self.generation, "read", &self.path)?;
        let data = &st.inode_mut(self.ino, "read", &self.path)?.data;
        let slice = usize::try_from(offset)
            .ok()
            .and_then(|start| data.get(start..start.checked_add(len)?));
        match slice {
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

impl Drop for FaultRandom {
    fn drop(&mut self) {
        release(&self.state, self.ino, self.generation, false);
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
        let ino = st.new_inode();
        if let Some(inode) = st.inodes.get_mut(&ino) {
            inode.handles = 1;
        }
        st.link_live(path, ino);
        Ok(Box::new(FaultWritable {
            state: self.state.clone(),
            path: path.to_path_buf(),
            ino,
            generation: st.generation,
            len: 0,
        }))
    }

    fn open_random_access(&self, path: &Path) -> Result<Box<dyn RandomAccessFile>> {
        let mut st = lock(&self.state);
        st.alive("open", path)?;
        let ino = st.lookup("open", path)?;
        let inode = st.inode_mut(ino, "open", path)?;
        inode.handles += 1;
        let len = inode.data.len() as u64;
        Ok(Box::new(FaultRandom {
            state: self.state.clone(),
            path: path.to_path_buf(),
            ino,
            generation: st.generation,
            len,
        }))
    }

    fn read_all(&self, path: &Path) -> Result<Vec<u8>> {
        let mut st = lock(&self.state);
        st.alive("read", path)?;
        let ino = st.lookup("read", path)?;
        Ok(st.inode_mut(ino, "read", path)?.data.clone())
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        let mut st = lock(&self.state);
        st.op(FaultKinds::RENAME, "rename", from)?;
        let ino = st.lookup("rename", from)?;
        if from == to {
            return Ok(());
        }
        st.link_live(to, ino);
        st.unlink_live(from);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> Result<()> {
        let mut st = lock(&self.state);
        st.op(FaultKinds::REMOVE, "remove", path)?;
        st.lookup("remove", path)?;
        st.unlink_live(path);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        let mut st = lock(&self.state);
        st.op(FaultKinds::SYNC, "fsync directory", dir)?;
        if !st.dir_known(dir) {
            return Err(not_found("open directory", dir));
        }
        let in_dir = |p: &PathBuf| p.parent() == Some(dir);
        let dropped: Vec<u64> = st
            .durable
            .iter()
            .filter(|(p, _)| in_dir(p))
            .map(|(_, &i)| i)
            .collect();
        st.durable.retain(|p, _| !in_dir(p));
        let entries: Vec<(PathBuf, u64)> = st
            .live
            .iter()
            .filter(|(p, _)| in_dir(p))
            .map(|(p, &i)| (p.clone(), i))
            .collect();
        for &(_, ino) in &entries {
            st.add_link(ino);
        }
        st.durable.extend(entries);
        for ino in dropped {
            st.drop_link(ino);
        }
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> Result<Vec<String>> {
        let st = lock(&self.state);
        st.alive("list", dir)?;
        if !st.dir_known(dir) {
            return Err(not_found("list", dir));
        }
        let mut names = names_in(st.live.keys(), dir);
        names.extend(names_in(st.dirs.iter(), dir));
        Ok(names)
    }

    fn file_size(&self, path: &Path) -> Result<u64> {
        let mut st = lock(&self.state);
        st.alive("stat", path)?;
        let ino = st.lookup("stat", path)?;
        Ok(st.inode_mut(ino, "stat", path)?.data.len() as u64)
    }

    fn exists(&self, path: &Path) -> bool {
        let st = lock(&self.state);
        st.live.contains_key(path) || st.dirs.contains(path)
    }

    fn create_dir_all(&self, dir: &Path) -> Result<()> {
        let mut st = lock(&self.state);
        st.alive("create directory", dir)?;
        let mut p = Some(dir);
        while let Some(d) = p {
            st.dirs.insert(d.to_path_buf());
            p = d.parent();
        }
        Ok(())
    }

    fn lock_file(&self, path: &Path) -> Result<Box<dyn FileLock>> {
        let mut st = lock(&self.state);
        st.alive("open lock file", path)?;
        if st.locks.contains(path) {
            return Err(Error::Locked {
                dir: path.parent().unwrap_or(path).to_path_buf(),
                holder: None,
            });
        }
        if !st.live.contains_key(path) {
            // Like open(O_CREAT): the file appears (durable once its dir is synced).
            let ino = st.new_inode();
            st.link_live(path, ino);
        }
        st.locks.insert(path.to_path_buf());
        Ok(Box::new(FaultLock {
            state: self.state.clone(),
            path: path.to_path_buf(),
            generation: st.generation,
        }))
    }

    fn truncate(&self, path: &Path, len: u64) -> Result<()> {
        let mut st = lock(&self.state);
        st.op(FaultKinds::WRITE, "truncate", path)?;
        let ino = st.lookup("truncate", path)?;
        let len = usize::try_from(len).map_err(|_| {
            Error::io(
                format!("truncate {}", path.display()),
                std::io::Error::from_raw_os_error(libc::EFBIG),
            )
        })?;
        let inode = st.inode_mut(ino, "truncate", path)?;
        inode.data.resize(len, 0);
        inode.make_durable();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> &Path {
        Path::new(s)
    }

    fn env_with_dir() -> FaultEnv {
        let env = FaultEnv::new();
        env.create_dir_all(p("/d")).unwrap();
        env
    }

    fn write(env: &FaultEnv, path: &str, data: &[u8], sync: bool) -> Box<dyn WritableFile> {
        let mut f = env.create_writable(p(path)).unwrap();
        f.append(data).unwrap();
        if sync {
            f.sync().unwrap();
        }
        f
    }

    fn contents(env: &FaultEnv, path: &str) -> Option<Vec<u8>> {
        env.file_contents(p(path))
    }

    #[test]
    fn unsynced_bytes_are_lost_on_crash() {
        let env = env_with_dir();
        let mut f = write(&env, "/d/a", b"synced", true);
        f.append(b" flushed").unwrap();
        f.flush().unwrap();
        f.append(b" buffered").unwrap();
        env.sync_dir(p("/d")).unwrap();
        assert_eq!(contents(&env, "/d/a").unwrap(), b"synced flushed buffered");
        assert_eq!(env.durable_contents(p("/d/a")).unwrap(), b"synced");
        env.crash();
        assert_eq!(contents(&env, "/d/a").unwrap(), b"synced");
        assert_eq!(env.read_all(p("/d/a")).unwrap(), b"synced");
    }

    #[test]
    fn created_file_without_dir_sync_vanishes() {
        let env = env_with_dir();
        drop(write(&env, "/d/b", b"data", true));
        assert_eq!(env.files(p("/d")), vec!["b"]);
        assert!(env.durable_files(p("/d")).is_empty());
        env.crash();
        assert!(contents(&env, "/d/b").is_none());
        assert!(!env.exists(p("/d/b")));
        assert!(env.list_dir(p("/d")).unwrap().is_empty());
    }

    #[test]
    fn rename_without_dir_sync_reverts_and_with_it_sticks() {
        let env = env_with_dir();
        drop(write(&env, "/d/a", b"A", true));
        drop(write(&env, "/d/c", b"old C", true));
        env.sync_dir(p("/d")).unwrap();
        env.rename(p("/d/a"), p("/d/c")).unwrap();
        assert_eq!(contents(&env, "/d/c").unwrap(), b"A");
        assert!(contents(&env, "/d/a").is_none());
        env.crash();
        assert_eq!(contents(&env, "/d/a").unwrap(), b"A");
        assert_eq!(contents(&env, "/d/c").unwrap(), b"old C");

        env.rename(p("/d/a"), p("/d/c")).unwrap();
        env.sync_dir(p("/d")).unwrap();
        env.crash();
        assert!(contents(&env, "/d/a").is_none());
        assert_eq!(contents(&env, "/d/c").unwrap(), b"A");
    }

    #[test]
    fn removed_file_without_dir_sync_comes_back() {
        let env = env_with_dir();
        drop(write(&env, "/d/a", b"keep", true));
        env.sync_dir(p("/d")).unwrap();
        env.remove_file(p("/d/a")).unwrap();
        assert!(!env.exists(p("/d/a")));
        env.crash();
        assert_eq!(contents(&env, "/d/a").unwrap(), b"keep");
        env.remove_file(p("/d/a")).unwrap();
        env.sync_dir(p("/d")).unwrap();
        env.crash();
        assert!(contents(&env, "/d/a").is_none());
        assert!(env.remove_file(p("/d/a")).is_err());
    }

    #[test]
    fn sync_dir_covers_only_its_own_directory() {
        let env = env_with_dir();
        env.create_dir_all(p("/e")).unwrap();
        drop(write(&env, "/d/a", b"1", true));
        drop(write(&env, "/e/b", b"2", true));
        env.sync_dir(p("/d")).unwrap();
        env.crash();
        assert!(contents(&env, "/d/a").is_some());
        assert!(contents(&env, "/e/b").is_none());
        assert!(env.sync_dir(p("/nowhere")).is_err());
    }

    #[test]
    fn handles_follow_the_inode_and_die_with_a_crash() {
        let env = env_with_dir();
        let mut f = write(&env, "/d/a", b"x", false);
        env.rename(p("/d/a"), p("/d/b")).unwrap();
        f.append(b"y").unwrap();
        f.sync().unwrap();
        assert_eq!(contents(&env, "/d/b").unwrap(), b"xy");
        let r = env.open_random_access(p("/d/b")).unwrap();
        env.remove_file(p("/d/b")).unwrap();
        f.append(b"z").unwrap();
        assert_eq!(
            r.read_at(0, 2).unwrap(),
            b"xy",
            "an open file outlives its name"
        );
        assert!(r.read_at(1, 5).unwrap_err().is_corruption());
        env.crash();
        assert!(f.append(b"!").is_err(), "old handles die with the crash");
        assert!(f.flush().is_err() && f.sync().is_err());
        assert!(r.read_at(0, 1).is_err());
        drop(f);
        drop(r);
        // The unnamed inode is freed once its handles are gone.
        assert!(lock(&env.state).inodes.is_empty());
    }

    #[test]
    fn create_over_an_existing_file_reverts_without_dir_sync() {
        let env = env_with_dir();
        drop(write(&env, "/d/a", b"old", true));
        env.sync_dir(p("/d")).unwrap();
        drop(write(&env, "/d/a", b"new", true));
        assert_eq!(contents(&env, "/d/a").unwrap(), b"new");
        env.crash();
        assert_eq!(contents(&env, "/d/a").unwrap(), b"old");
    }

    #[test]
    fn fail_after_fires_at_exactly_the_nth_operation_of_its_kinds() {
        let env = env_with_dir();
        let mut f = write(&env, "/d/a", b"1", false);
        env.set_fail_after(2, FaultKinds::SYNC | FaultKinds::RENAME);
        f.append(b"2").unwrap(); // not a selected kind
        f.sync().unwrap(); // 0
        env.sync_dir(p("/d")).unwrap(); // 1
        let before = env.op_count();
        let err = env.rename(p("/d/a"), p("/d/b")).unwrap_err(); // 2: fails
        assert!(err.to_string().contains("injected fault"), "{err}");
        assert_eq!(env.op_count(), before + 1);
        assert!(env.exists(p("/d/a")), "a failed rename has no effect");
        env.rename(p("/d/a"), p("/d/b")).unwrap(); // fires once only
        f.sync().unwrap();

        for n in 0..5 {
            let env = env_with_dir();
            env.set_fail_after(n, FaultKinds::WRITE);
            let mut f = env.create_writable(p("/d/w")).unwrap();
            let mut failed = None;
            for i in 0..10u64 {
                if f.append(&[i as u8]).is_err() {
                    failed = Some(i);
                    break;
                }
            }
            assert_eq!(failed, Some(n));
            assert_eq!(contents(&env, "/d/w").unwrap().len() as u64, n);
        }
    }

    #[test]
    fn flush_counts_as_a_write_only_when_bytes_are_pending() {
        let env = env_with_dir();
        let mut f = write(&env, "/d/a", b"1", false);
        let before = env.op_count();
        f.flush().unwrap();
        assert_eq!(env.op_count(), before + 1);
        f.flush().unwrap();
        assert_eq!(env.op_count(), before + 1);
        f.append(b"2").unwrap();
        env.set_fail_after(0, FaultKinds::WRITE);
        assert!(f.flush().is_err());
    }

    #[test]
    fn dead_after_n_fails_everything_until_crash() {
        let env = env_with_dir();
        let mut f = write(&env, "/d/a", b"1", true);
        env.sync_dir(p("/d")).unwrap();
        env.set_dead_after(2);
        f.append(b"2").unwrap();
        assert!(!env.is_dead());
        f.append(b"3").unwrap();
        assert!(env.is_dead(), "dead right after the nth operation");
        assert!(f.append(b"4").is_err());
        assert!(env.read_all(p("/d/a")).is_err(), "reads fail too");
        assert!(env.open_random_access(p("/d/a")).is_err());
        assert!(env.list_dir(p("/d")).is_err());
        assert!(env.create_writable(p("/d/b")).is_err());
        drop(f);
        env.crash();
        assert!(!env.is_dead());
        assert_eq!(env.read_all(p("/d/a")).unwrap(), b"1");
        env.set_dead_after(0);
        assert!(env.read_all(p("/d/a")).is_err());
        env.clear_faults();
        assert!(env.read_all(p("/d/a")).is_ok());
    }

    #[test]
    fn kill_keeps_flushed_bytes_and_entries() {
        let env = env_with_dir();
        let mut f = write(&env, "/d/a", b"flushed", false);
        f.flush().unwrap();
        f.append(b" lost").unwrap();
        let g = write(&env, "/d/b", b"dropped handle flushes", false);
        drop(g);
        env.set_dead_after(0);
        drop(f); // a dead process runs no destructors: no flush
        env.kill();
        assert_eq!(contents(&env, "/d/a").unwrap(), b"flushed");
        assert_eq!(contents(&env, "/d/b").unwrap(), b"dropped handle flushes");
        env.crash();
        assert!(env.files(p("/d")).is_empty(), "nothing was ever durable");
    }

    #[test]
    fn crash_torn_keeps_a_prefix_of_the_unsynced_bytes() {
        let mut saw_partial = false;
        for seed in 0..50 {
            let env = env_with_dir();
            let mut f = write(&env, "/d/a", b"synced|", true);
            env.sync_dir(p("/d")).unwrap();
            f.append(b"abcdefghijklmnop").unwrap();
            f.flush().unwrap();
            f.append(b"never flushed").unwrap();
            env.crash_torn(seed);
            let got = contents(&env, "/d/a").unwrap();
            let full = b"synced|abcdefghijklmnop";
            assert!(got.starts_with(b"synced|") && got.len() <= full.len());
            for (i, &b) in got.iter().enumerate() {
                assert!(b == full[i] || b == 0, "seed {seed}: byte {i}");
            }
            saw_partial |= got.len() > 7 && got.len() < full.len();
        }
        assert!(saw_partial);
    }

    #[test]
    fn truncate_is_durable_and_corruption_survives_crash() {
        let env = env_with_dir();
        let mut f = write(&env, "/d/a", b"0123456789", true);
        env.sync_dir(p("/d")).unwrap();
        f.append(b"unsynced").unwrap();
        env.truncate(p("/d/a"), 4).unwrap();
        assert!(env.corrupt_byte(p("/d/a"), 1));
        assert!(!env.corrupt_byte(p("/d/a"), 4));
        assert!(!env.corrupt_byte(p("/d/missing"), 0));
        env.crash();
        assert_eq!(contents(&env, "/d/a").unwrap(), b"0\xce23");
        env.truncate(p("/d/a"), 6).unwrap();
        assert_eq!(env.file_size(p("/d/a")).unwrap(), 6);
    }

    #[test]
    fn locks_are_exclusive_and_released_by_crash() {
        let env = env_with_dir();
        let l = env.lock_file(p("/d/LOCK")).unwrap();
        assert!(env.exists(p("/d/LOCK")), "locking creates the file");
        assert!(matches!(
            env.lock_file(p("/d/LOCK")),
            Err(Error::Locked { .. })
        ));
        drop(l);
        let l = env.lock_file(p("/d/LOCK")).unwrap();
        env.crash();
        let l2 = env.lock_file(p("/d/LOCK")).unwrap();
        drop(l); // a stale guard must not release the new lock
        assert!(env.lock_file(p("/d/LOCK")).is_err());
        drop(l2);
    }

    /// Link counts match the maps, and exactly the named or open inodes exist.
    fn check_bookkeeping(env: &FaultEnv) {
        let st = lock(&env.state);
        let mut links: HashMap<u64, usize> = HashMap::new();
        for &ino in st.live.values().chain(st.durable.values()) {
            *links.entry(ino).or_default() += 1;
        }
        for (ino, inode) in &st.inodes {
            assert_eq!(
                inode.links,
                links.get(ino).copied().unwrap_or(0),
                "ino {ino}"
            );
            assert!(inode.links > 0 || inode.handles > 0, "ino {ino} leaked");
        }
        for ino in links.keys() {
            assert!(st.inodes.contains_key(ino), "named ino {ino} was freed");
        }
    }

    #[test]
    fn random_operations_keep_bookkeeping_exact() {
        let env = env_with_dir();
        let mut seed = 7u64;
        let mut handles: Vec<Box<dyn WritableFile>> = Vec::new();
        let mut readers: Vec<Box<dyn RandomAccessFile>> = Vec::new();
        let name = |n: u64| format!("/d/{}", n % 6);
        for _ in 0..3000 {
            let r = splitmix(&mut seed);
            let a = name(splitmix(&mut seed));
            let b = name(splitmix(&mut seed));
            let _ = match r % 12 {
                0 | 1 => env.create_writable(p(&a)).map(|f| handles.push(f)),
                2 => env.rename(p(&a), p(&b)),
                3 => env.remove_file(p(&a)),
                4 => env.sync_dir(p("/d")),
                5 => env.open_random_access(p(&a)).map(|f| readers.push(f)),
                6 => handles.last_mut().map_or(Ok(()), |f| f.append(b"xy")),
                7 => handles.last_mut().map_or(Ok(()), |f| f.sync()),
                8 => {
                    handles.pop();
                    readers.pop();
                    Ok(())
                }
                9 => env.truncate(p(&a), 1),
                10 if r % 100 == 10 => {
                    env.crash();
                    Ok(())
                }
                11 if r % 100 == 11 => {
                    env.kill();
                    Ok(())
                }
                _ => Ok(()),
            };
            check_bookkeeping(&env);
        }
        handles.clear();
        readers.clear();
        check_bookkeeping(&env);
    }

    #[test]
    fn is_send_and_sync_and_usable_as_dyn_env() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<FaultEnv>();
        let env: Arc<dyn Env> = Arc::new(FaultEnv::new());
        let mut f = env.create_writable(p("/x")).unwrap();
        f.append(b"1").unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(env.list_dir(p("/")).unwrap(), vec!["x"]);
    }
}
