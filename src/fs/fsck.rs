//! Filesystem invariants over the keys, for `lsmfs check`, and the offline
//! path resolver behind `lsmfs inspect path`.
//!
//! The check reads every key once (a streaming merge of the store) and
//! verifies: every directory entry points to an existing inode of the
//! recorded type; every inode is reachable from the root or listed as an
//! orphan; nlink equals the number of entries (directories: 2 + their
//! subdirectories); no data chunk lies beyond its file's size or belongs to
//! a missing inode; no value is longer than its key allows (an extent
//! only at a slot's first chunk, alone in its slot, in a file flagged as
//! holding extents); a file's chunk count (st_blocks) is at least its
//! stored chunks; every symlink has a target; no directory is its own ancestor;
//! every inode number is below the allocator's high-water mark. Each
//! snapshot's tree is checked the same way, as the snapshot sees the keys.

use super::inode::{Attr, KIND_DIR, KIND_SYMLINK};
use super::schema::*;
use crate::engine::Db;
use crate::store::Store;
use std::collections::{HashMap, HashSet};

#[derive(Default)]
struct Seen {
    inodes: HashMap<u64, Attr>,
    /// (parent, child, kind)
    entries: Vec<(u64, u64, u8)>,
    chunks: Vec<(u64, u64, usize)>,
    symlinks: HashSet<u64>,
    orphans: HashSet<u64>,
    xattrs: usize,
    bad_keys: usize,
    /// `M next_ino`: every inode number ever handed out is below it.
    next_ino: Option<u64>,
}

pub fn check_tree(db: &Db, problems: &mut Vec<String>, summary: &mut Vec<String>) {
    check_tree_at(db, None, problems, summary)
}

/// `check_tree` of the tree as a snapshot sees it (None: the live tree).
pub fn check_tree_at(
    db: &Db,
    snap: Option<&crate::engine::Snapshot>,
    problems: &mut Vec<String>,
    summary: &mut Vec<String>,
) {
    let mut s = Seen::default();
    let mut it = match db.iter(snap) {
        Ok(it) => it,
        Err(e) => {
            problems.push(format!("cannot read the store: {e}"));
            return;
        }
    };
    it.seek_to_first();
    while it.valid() {
        s.see(it.key(), it.value(), problems);
        it.next();
    }
    if let Err(e) = it.status() {
        problems.push(format!("reading the store: {e}"));
        return;
    }
    s.report(problems, summary);
}

/// `check_tree` over any store (etcd's: one paged scan of its prefix).
pub fn check_store(store: &dyn Store, problems: &mut Vec<String>, summary: &mut Vec<String>) {
    let mut s = Seen::default();
    let mut found = Vec::new();
    if let Err(e) = store.scan_visit(b"", &[0xff], usize::MAX, &mut |k, v| {
        s.see(k, v, &mut found)
    }) {
        problems.push(format!("reading the store: {e}"));
        return;
    }
    problems.extend(found);
    s.report(problems, summary);
}

impl Seen {
    fn see(&mut self, k: &[u8], v: &[u8], problems: &mut Vec<String>) {
        let s = self;
        match parse_key(k) {
            Some(Key::Inode(ino)) => match Attr::decode(v) {
                Ok(mut a) => {
                    a.ino = ino;
                    s.inodes.insert(ino, a);
                }
                Err(e) => problems.push(format!("inode {ino}: {e}")),
            },
            Some(Key::Dentry(p, name)) => match (be64(v), v.get(8)) {
                (Some(c), Some(&kind)) => s.entries.push((p, c, kind)),
                _ => problems.push(format!(
                    "entry {:?} in directory {p}: malformed value",
                    String::from_utf8_lossy(name)
                )),
            },
            Some(Key::Chunk(ino, idx)) => s.chunks.push((ino, idx, v.len())),
            Some(Key::Symlink(ino)) => {
                s.symlinks.insert(ino);
            }
            Some(Key::Xattr(..)) => s.xattrs += 1,
            Some(Key::Orphan(ino)) => {
                s.orphans.insert(ino);
            }
            Some(Key::Meta(b"next_ino")) => s.next_ino = be64(v),
            Some(Key::Meta(_)) => {}
            None => s.bad_keys += 1,
        }
    }

    fn report(&self, problems: &mut Vec<String>, summary: &mut Vec<String>) {
        let s = self;
        if s.bad_keys > 0 {
            problems.push(format!("{} keys of no known family", s.bad_keys));
        }
        verify(s, problems);
        let dirs = s.inodes.values().filter(|a| a.is_dir()).count();
        // What is stored (chunks and inline data), not the files' sizes: a
        // sparse file's holes take no room and are not file data.
        let inline: u64 = s
            .inodes
            .values()
            .filter_map(|a| a.inline.as_ref())
            .map(|d| d.len() as u64)
            .sum();
        let bytes = inline + s.chunks.iter().map(|c| c.2 as u64).sum::<u64>();
        let apparent: u64 = s
            .inodes
            .values()
            .filter(|a| !a.is_dir())
            .fold(0u64, |n, a| n.saturating_add(a.size));
        summary.push(format!(
        "filesystem: {} inodes ({dirs} directories), {} entries, {} chunks, {} xattrs, {} orphans, {bytes} bytes of file data ({apparent} bytes of file sizes, holes included)",
        s.inodes.len(),
        s.entries.len(),
        s.chunks.len(),
        s.xattrs,
        s.orphans.len()
    ));
    }
}

fn verify(s: &Seen, problems: &mut Vec<String>) {
    if !s.inodes.contains_key(&ROOT_INO) && !s.inodes.is_empty() {
        problems.push("the root inode is missing".into());
    }
    let mut links: HashMap<u64, u32> = HashMap::new();
    let mut subdirs: HashMap<u64, u32> = HashMap::new();
    let mut children: HashMap<u64, Vec<u64>> = HashMap::new();
    for &(p, c, kind) in &s.entries {
        match s.inodes.get(&c) {
            None => problems.push(format!(
                "entry in directory {p} points to missing inode {c}"
            )),
            Some(a) if a.kind != kind => problems.push(format!(
                "entry in directory {p} says inode {c} is type {kind}, the inode says {}",
                a.kind
            )),
            Some(_) => {}
        }
        if !s.inodes.get(&p).is_some_and(|a| a.is_dir()) {
            problems.push(format!(
                "entry for inode {c} lives in {p}, which is not a directory"
            ));
        }
        *links.entry(c).or_default() += 1;
        if kind == KIND_DIR {
            *subdirs.entry(p).or_default() += 1;
            if s.inodes.get(&c).is_some_and(|a| a.parent != p) {
                problems.push(format!(
                    "directory {c} is listed in {p} but records parent {}",
                    s.inodes[&c].parent
                ));
            }
        }
        children.entry(p).or_default().push(c);
    }
    // Reachability (and cycles: a directory reached twice).
    let mut reached: HashSet<u64> = HashSet::new();
    let mut stack = vec![ROOT_INO];
    while let Some(d) = stack.pop() {
        if !reached.insert(d) {
            if s.inodes.get(&d).is_some_and(|a| a.is_dir()) {
                problems.push(format!(
                    "directory {d} is reachable twice (a cycle or a directory hard link)"
                ));
            }
            continue;
        }
        for &c in children.get(&d).map_or(&[][..], |v| &v[..]) {
            if s.inodes.get(&c).is_some_and(|a| a.is_dir()) || !reached.contains(&c) {
                stack.push(c);
            }
        }
    }
    match s.next_ino {
        None if !s.inodes.is_empty() => {
            problems.push("no inode high-water mark (M next_ino)".into());
        }
        Some(hwm) => {
            if let Some(max) = s.inodes.keys().copied().filter(|&i| i >= hwm).max() {
                problems.push(format!(
                    "inode {max} is at or above the high-water mark {hwm}: its number could be handed out again"
                ));
            }
        }
        None => {}
    }
    for (ino, a) in &s.inodes {
        let n = links.get(ino).copied().unwrap_or(0);
        let want = if a.is_dir() {
            if *ino == ROOT_INO || n > 0 {
                2 + subdirs.get(ino).copied().unwrap_or(0)
            } else {
                0
            }
        } else {
            n
        };
        let orphan = s.orphans.contains(ino);
        if a.nlink != want && !(orphan && a.nlink == 0) {
            problems.push(format!(
                "inode {ino}: nlink {} but {want} expected from the entries",
                a.nlink
            ));
        }
        if !reached.contains(ino) && !orphan {
            problems.push(format!(
                "inode {ino} is unreachable and not listed as an orphan"
            ));
        }
        if a.kind == KIND_SYMLINK && !s.symlinks.contains(ino) {
            problems.push(format!("symlink {ino} has no target"));
        }
    }
    // In u128: a damaged chunk key may name chunk 2^64 - 1.
    let beyond = |idx: u64, len: u64, size: u64| {
        let start = idx as u128 * CHUNK_SIZE as u128;
        start + len as u128 > (size as u128).max(start)
    };
    let mut stored: HashMap<u64, u64> = HashMap::new();
    // The slot of the last extent seen, to find keys sharing it (keys
    // come sorted, so they follow it).
    let mut extent: Option<(u64, u64)> = None;
    for &(ino, idx, len) in &s.chunks {
        *stored.entry(ino).or_default() += units(len);
        let slot = idx / EXTENT_CHUNKS;
        let max = value_max(idx);
        if len as u64 > max {
            problems.push(format!(
                "inode {ino}: chunk #{idx} holds {len} bytes, more than the {max} its key allows"
            ));
        }
        if extent == Some((ino, slot)) {
            problems.push(format!(
                "inode {ino}: chunk #{idx} shares its slot with an extent"
            ));
        }
        if len as u64 > CHUNK_SIZE {
            extent = Some((ino, slot));
            if s.inodes.get(&ino).is_some_and(|a| !a.extents) {
                problems.push(format!(
                    "inode {ino}: chunk #{idx} is an extent, but the inode is not flagged as holding any"
                ));
            }
        }
        match s.inodes.get(&ino) {
            None if !s.orphans.contains(&ino) => {
                problems.push(format!("chunk #{idx} belongs to missing inode {ino}"))
            }
            Some(a)
                if !s.orphans.contains(&ino)
                    && (a.inline.is_some() || beyond(idx, len as u64, a.size)) =>
            {
                problems.push(format!(
                    "inode {ino}: chunk #{idx} ({len} bytes) lies beyond the size {}",
                    a.size
                ))
            }
            _ => {}
        }
    }
    for (ino, n) in stored {
        if let Some(a) = s.inodes.get(&ino) {
            if a.chunks < n && !s.orphans.contains(&ino) {
                problems.push(format!(
                    "inode {ino}: records {} chunks but {n} are stored (st_blocks too small)",
                    a.chunks
                ));
            }
        }
    }
}

/// Resolve `path` in the store `db` and print every key it touches.
pub fn inspect_path(db: &Db, path: &str, raw: bool) -> Result<(), String> {
    inspect_path_with(
        &|k| db.get(k).map_err(|e| e.to_string()),
        &|s, e| db.scan(s, Some(e), 10_000, None).map_err(|e| e.to_string()),
        path,
        raw,
    )
}

/// `inspect_path` on any store.
pub fn inspect_store_path(store: &dyn Store, path: &str, raw: bool) -> Result<(), String> {
    inspect_path_with(
        &|k| store.get(k).map_err(|e| e.to_string()),
        &|s, e| store.scan(s, e, 10_000).map_err(|e| e.to_string()),
        path,
        raw,
    )
}

type Got = Result<Option<Vec<u8>>, String>;
type Scanned = Result<Vec<(Vec<u8>, Vec<u8>)>, String>;

fn inspect_path_with(
    get: &dyn Fn(&[u8]) -> Got,
    scan: &dyn Fn(&[u8], &[u8]) -> Scanned,
    path: &str,
    raw: bool,
) -> Result<(), String> {
    let show = |k: &[u8], v: Option<&[u8]>| {
        println!("  {}", super::schema::describe(k, v, raw));
    };
    let mut ino = ROOT_INO;
    let root = inode_key(ino);
    println!("/");
    show(&root, get(&root)?.as_deref());
    for comp in path.split('/').filter(|c| !c.is_empty()) {
        let dk = dentry_key(ino, comp.as_bytes());
        let Some(v) = get(&dk)? else {
            println!("{comp}: no such entry in directory {ino}");
            return Err(format!("{path}: not found"));
        };
        println!("{comp}");
        show(&dk, Some(&v));
        ino = be64(&v).ok_or("malformed entry")?;
        let ik = inode_key(ino);
        show(&ik, get(&ik)?.as_deref());
    }
    let (sk, sv) = (symlink_key(ino), get(&symlink_key(ino))?);
    if let Some(v) = sv {
        show(&sk, Some(&v));
    }
    let ranges = [
        (chunk_key(ino, 0), chunk_key(ino, u64::MAX)),
        (xattr_key(ino, b""), prefix_end(&xattr_key(ino, b""))),
        (dentry_range(ino).0, dentry_range(ino).1),
    ];
    for (s, e) in ranges {
        for (k, v) in scan(&s, &e)? {
            show(&k, Some(&v));
        }
    }
    if let Some(v) = get(&orphan_key(ino))? {
        show(&orphan_key(ino), Some(&v));
    }
    Ok(())
}
