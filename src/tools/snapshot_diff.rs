//! `lsmfs snapshot diff MOUNTPOINT|DATA_DIR A [B]`: what changed from
//! snapshot A to snapshot B (or to the live tree), one path a line:
//!
//! ```text
//! + path              created (or a new hard link)
//! - path              deleted (or a removed hard link)
//! M path              modified: contents (size, mtime), mode, owner,
//!                     xattrs (ACLs too), symlink target, or any other
//!                     change of its inode (its ctime); directories only by
//!                     mode, owner or xattrs
//! R old -> new        renamed (one name moved; what is under a renamed
//!                     directory is not listed again)
//! ```
//!
//! Both trees are walked whole. Files are told apart by inode number,
//! which is the same in every snapshot (`fs::snapshots`: the low 44 bits
//! on a mount) and never reused, so a rename is a name of the same inode
//! under another (parent, name) — not a delete and a create. A change of
//! names alone (a rename, a link added or removed) moves the inode's ctime
//! too: then the ctime is not taken for a modification, the `R`, `+` or
//! `-` line says it; a file rewritten in place whose size and mtime were
//! put back (`touch -d`) is still `M` by its ctime, which nobody can set.
//! A directory's mtime and ctime move with every entry made or removed in
//! it, which its own lines say already. Lines are
//! sorted by path (the new path for `+`, `M` and `R`); bytes outside
//! printable ASCII, and `\`, are written `\ooo` (octal), like `zfs diff`.
//! On a mount the walk goes through `.snapshots` (and the mount root for
//! the live tree); on a data directory through the store, offline.

use super::snapshot::offline_store;
use crate::fs::core::FsCore;
use crate::fs::inode::{KIND_DIR, KIND_SYMLINK};
use crate::fs::schema::{parse_key, prefix_end, xattr_key, Key, ROOT_INO};
use crate::store::Store;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What makes a file "modified".
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sig {
    kind: u8,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: i64,
    ctime: i64,
    target: Vec<u8>,
    xattrs: Xattrs,
}

/// (name, value), sorted by name.
type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

impl Sig {
    /// `same_names`: the inode has the same links in both trees (else its
    /// ctime moved with them).
    fn differs(&self, o: &Sig, same_names: bool) -> bool {
        let common =
            (self.mode, self.uid, self.gid, &self.xattrs) != (o.mode, o.uid, o.gid, &o.xattrs);
        if self.kind == KIND_DIR && o.kind == KIND_DIR {
            return common;
        }
        common
            || (self.kind, self.size, self.mtime, &self.target)
                != (o.kind, o.size, o.mtime, &o.target)
            || (same_names && self.ctime != o.ctime)
    }
}

/// One tree: per inode, its signature and its names as (parent, name),
/// each with the path it gives.
#[derive(Default)]
struct Tree {
    nodes: HashMap<u64, (Sig, Links)>,
}

/// An inode's names: (parent inode, name) → the path it gives.
type Links = BTreeMap<(u64, Vec<u8>), Vec<u8>>;

/// What a walk reads: a directory's (inode, name, is_dir) entries, and an
/// inode's signature. `at` is the path of the inode (the mount walk's key).
trait Source {
    fn entries(&self, ino: u64, at: &Path) -> Result<Vec<(u64, Vec<u8>)>, String>;
    fn sig(&self, ino: u64, at: &Path) -> Result<Sig, String>;
}

fn walk(src: &dyn Source, root: &Path, root_ino: u64) -> Result<Tree, String> {
    let mut tree = Tree::default();
    let sig = src.sig(root_ino, root)?;
    tree.nodes.insert(root_ino, (sig, BTreeMap::new()));
    // (inode, path relative to the root, path on disk for mounts)
    let mut stack = vec![(root_ino, Vec::new(), root.to_path_buf())];
    while let Some((dir, rel, at)) = stack.pop() {
        for (ino, name) in src.entries(dir, &at)? {
            let mut path = rel.clone();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(&name);
            let child_at = at.join(std::ffi::OsStr::from_bytes(&name));
            let first = !tree.nodes.contains_key(&ino);
            if first {
                let sig = src.sig(ino, &child_at)?;
                if sig.kind == KIND_DIR {
                    stack.push((ino, path.clone(), child_at));
                }
                tree.nodes.insert(ino, (sig, BTreeMap::new()));
            }
            if let Some(n) = tree.nodes.get_mut(&ino) {
                n.1.insert((dir, name), path);
            }
        }
    }
    Ok(tree)
}

/// A tree read through `FsCore` (offline).
struct CoreSource(FsCore);

fn errno_text(what: &str, e: i32) -> String {
    format!("{what}: {}", std::io::Error::from_raw_os_error(e))
}

impl Source for CoreSource {
    fn entries(&self, ino: u64, _at: &Path) -> Result<Vec<(u64, Vec<u8>)>, String> {
        let list = self
            .0
            .list_dir(ino)
            .map_err(|e| errno_text(&format!("directory inode {ino}"), e))?;
        Ok(list.into_iter().map(|(c, _, n)| (c, n)).collect())
    }

    fn sig(&self, ino: u64, _at: &Path) -> Result<Sig, String> {
        let a = self
            .0
            .getattr(ino)
            .map_err(|e| errno_text(&format!("inode {ino}"), e))?;
        let target = if a.kind == KIND_SYMLINK {
            self.0
                .readlink(ino)
                .map_err(|e| errno_text(&format!("symlink inode {ino}"), e))?
        } else {
            Vec::new()
        };
        let mut xattrs = Vec::new();
        if a.has_xattrs {
            let mut start = xattr_key(ino, b"");
            let end = prefix_end(&start);
            loop {
                let page = self
                    .0
                    .store()
                    .scan(&start, &end, 1024)
                    .map_err(|e| format!("xattrs of inode {ino}: {e}"))?;
                for (k, v) in &page {
                    if let Some(Key::Xattr(_, n)) = parse_key(k) {
                        xattrs.push((n.to_vec(), v.clone()));
                    }
                }
                match page.last() {
                    Some((k, _)) if page.len() == 1024 => {
                        start = k.clone();
                        start.push(0);
                    }
                    _ => break,
                }
            }
        }
        Ok(Sig {
            kind: a.kind,
            mode: a.mode,
            uid: a.uid,
            gid: a.gid,
            size: a.size,
            mtime: a.mtime,
            ctime: a.ctime,
            target,
            xattrs,
        })
    }
}

/// A tree read through a mount (`.snapshots/NAME` or the root).
struct MountSource;

fn inner(ino: u64) -> u64 {
    ino & (crate::fs::snapshots::MAX_INODE - 1)
}

impl Source for MountSource {
    fn entries(&self, _ino: u64, at: &Path) -> Result<Vec<(u64, Vec<u8>)>, String> {
        use std::os::unix::fs::DirEntryExt;
        let rd = std::fs::read_dir(at).map_err(|e| format!("{}: {e}", at.display()))?;
        let mut out = Vec::new();
        for e in rd {
            let e = e.map_err(|e| format!("{}: {e}", at.display()))?;
            out.push((inner(e.ino()), e.file_name().as_bytes().to_vec()));
        }
        Ok(out)
    }

    fn sig(&self, _ino: u64, at: &Path) -> Result<Sig, String> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::symlink_metadata(at).map_err(|e| format!("{}: {e}", at.display()))?;
        let ft = m.file_type();
        let target = if ft.is_symlink() {
            std::fs::read_link(at)
                .map_err(|e| format!("{}: {e}", at.display()))?
                .as_os_str()
                .as_bytes()
                .to_vec()
        } else {
            Vec::new()
        };
        Ok(Sig {
            kind: crate::fs::inode::kind_from_mode(m.mode()).unwrap_or(0),
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
            size: if ft.is_dir() { 0 } else { m.size() },
            mtime: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            ctime: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
            target,
            xattrs: path_xattrs(at)?,
        })
    }
}

/// One xattr system call's bytes: sized with an empty buffer, then read
/// (again if it grew in between); None where there are none (ENODATA,
/// EOPNOTSUPP).
fn xattr_bytes(
    call: impl Fn(*mut libc::c_char, usize) -> isize,
) -> std::io::Result<Option<Vec<u8>>> {
    loop {
        let n = call(std::ptr::null_mut(), 0);
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENODATA | libc::EOPNOTSUPP) => Ok(None),
                _ => Err(e),
            };
        }
        let mut buf = vec![0u8; n as usize];
        let m = call(buf.as_mut_ptr().cast(), buf.len());
        if m >= 0 {
            buf.truncate(m as usize);
            return Ok(Some(buf));
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ERANGE) {
            return Err(e);
        }
    }
}

/// Every extended attribute of `at` (not following a symlink) the caller
/// may read, sorted by name; none where the filesystem has none.
fn path_xattrs(at: &Path) -> Result<Xattrs, String> {
    let fail = |e: std::io::Error| format!("{}: reading xattrs: {e}", at.display());
    let nul = || format!("{}: a NUL byte in the path or an xattr name", at.display());
    let c = std::ffi::CString::new(at.as_os_str().as_bytes()).map_err(|_| nul())?;
    // SAFETY: `c` is a NUL-terminated path; each buffer is `len` bytes.
    let names = xattr_bytes(|p, len| unsafe { libc::llistxattr(c.as_ptr(), p, len) })
        .map_err(fail)?
        .unwrap_or_default();
    let mut out = Vec::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let cn = std::ffi::CString::new(name).map_err(|_| nul())?;
        // SAFETY: as above, with the NUL-terminated name.
        let value = xattr_bytes(|p, len| unsafe {
            libc::lgetxattr(c.as_ptr(), cn.as_ptr(), p.cast(), len)
        })
        .map_err(fail)?;
        if let Some(v) = value {
            out.push((name.to_vec(), v));
        }
    }
    out.sort();
    Ok(out)
}

/// The diff lines of `a` → `b`, sorted by path.
fn diff(a: &Tree, b: &Tree) -> Vec<(Vec<u8>, String)> {
    let mut out: Vec<(Vec<u8>, String)> = Vec::new();
    let line = |tag: &str, p: &[u8]| (p.to_vec(), format!("{tag} {}", escape(p)));
    for (ino, (sa, la)) in &a.nodes {
        match b.nodes.get(ino) {
            None => out.extend(la.values().map(|p| line("-", p))),
            Some((sb, lb)) => {
                let gone: Vec<&Vec<u8>> = la
                    .iter()
                    .filter(|(k, _)| !lb.contains_key(k))
                    .map(|x| x.1)
                    .collect();
                let new: Vec<&Vec<u8>> = lb
                    .iter()
                    .filter(|(k, _)| !la.contains_key(k))
                    .map(|x| x.1)
                    .collect();
                if let ([old], [to]) = (&gone[..], &new[..]) {
                    out.push((to.to_vec(), format!("R {} -> {}", escape(old), escape(to))));
                } else {
                    out.extend(gone.iter().map(|p| line("-", p)));
                    out.extend(new.iter().map(|p| line("+", p)));
                }
                if sa.differs(sb, gone.is_empty() && new.is_empty()) {
                    if let Some(p) = lb.values().next() {
                        out.push(line("M", p));
                    }
                }
            }
        }
    }
    for (ino, (_, lb)) in &b.nodes {
        if !a.nodes.contains_key(ino) {
            out.extend(lb.values().map(|p| line("+", p)));
        }
    }
    out.sort();
    out
}

fn escape(p: &[u8]) -> String {
    let mut s = String::with_capacity(p.len() + 1);
    s.push('/');
    for &c in p {
        if (0x20..0x7f).contains(&c) && c != b'\\' {
            s.push(c as char);
        } else {
            s.push_str(&format!("\\{c:03o}"));
        }
    }
    s
}

type Failed = super::snapshot::Failed;

pub(super) fn run(path: &Path, a: &str, b: Option<&str>) -> Result<(), Failed> {
    let (ta, tb) = if std::fs::metadata(path.join(".lsmfs-stats")).is_ok() {
        let at = |name: Option<&str>| -> Result<Tree, Failed> {
            let root: PathBuf = match name {
                Some(n) => path.join(".snapshots").join(n),
                None => path.to_path_buf(),
            };
            if let (Some(n), Err(_)) = (name, std::fs::symlink_metadata(&root)) {
                return Err(Failed::Refused(format!(
                    "no snapshot {n:?} in {}",
                    path.display()
                )));
            }
            walk(&MountSource, &root, ROOT_INO).map_err(Failed::CouldNot)
        };
        (at(Some(a))?, at(b)?)
    } else {
        let store = offline_store(path).map_err(Failed::CouldNot)?;
        let at = |name: Option<&str>| -> Result<Tree, Failed> {
            let s: Arc<dyn Store> = match name {
                None => store.clone(),
                Some(n) => store
                    .snapshot_view(n)
                    .map_err(|e| Failed::CouldNot(e.to_string()))?
                    .ok_or_else(|| {
                        Failed::Refused(format!("no snapshot {n:?} in {}", path.display()))
                    })?,
            };
            let core = FsCore::open_view(s, 8 << 20)
                .map_err(|e| Failed::CouldNot(format!("{}: {e}", path.display())))?;
            walk(&CoreSource(core), path, ROOT_INO).map_err(Failed::CouldNot)
        };
        (at(Some(a))?, at(b)?)
    };
    let mut set = BTreeSet::new();
    for (_, l) in diff(&ta, &tb) {
        if set.insert(l.clone()) {
            println!("{l}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::core::Caller;
    use crate::store::MemStore;

    const U: Caller = Caller {
        uid: 1000,
        gid: 1000,
    };

    fn tree(store: &Arc<dyn Store>, snap: Option<&str>) -> Tree {
        let s = match snap {
            Some(n) => store.snapshot_view(n).unwrap().unwrap(),
            None => store.clone(),
        };
        walk(
            &CoreSource(FsCore::open_view(s, 1 << 20).unwrap()),
            Path::new("/"),
            ROOT_INO,
        )
        .unwrap()
    }

    /// The diff lines from snapshot `a` to the live tree.
    fn lines(store: &Arc<dyn Store>, a: &str) -> Vec<String> {
        diff(&tree(store, Some(a)), &tree(store, None))
            .into_iter()
            .map(|l| l.1)
            .collect()
    }

    #[test]
    fn created_deleted_modified_renamed() {
        let store: Arc<dyn Store> = Arc::new(MemStore::new());
        let f = FsCore::open(store.clone(), false, false).unwrap();
        let d = f.mkdir(U, ROOT_INO, b"d", 0o755).unwrap();
        let x = f.create(U, d.ino, b"x", 0o644).unwrap();
        f.create(U, d.ino, b"gone", 0o644).unwrap();
        let m = f.create(U, ROOT_INO, b"m", 0o644).unwrap();
        f.create(U, ROOT_INO, b"same", 0o644).unwrap();
        store.create_snapshot("a").unwrap();
        f.rename(U, ROOT_INO, b"d", ROOT_INO, b"e", 0).unwrap();
        f.unlink(U, d.ino, b"gone").unwrap();
        f.write(U, m.ino, 0, b"more", false).unwrap();
        f.create(U, ROOT_INO, b"new\n", 0o644).unwrap();
        f.link(x.ino, ROOT_INO, b"xlink").unwrap();
        let got = lines(&store, "a");
        assert_eq!(
            got,
            vec!["- /d/gone", "R /d -> /e", "M /m", "+ /new\\012", "+ /xlink"],
            "{got:?}"
        );
        assert!(diff(&tree(&store, Some("a")), &tree(&store, Some("a"))).is_empty());
    }

    /// Mode, owner, xattrs and a rewrite whose size and mtime were put
    /// back are modifications; a rename or a new link of a file alone is
    /// not (though its ctime moved).
    #[test]
    fn modified_by_mode_owner_xattrs_and_ctime() {
        use crate::fs::data::{SetAttr, TimeSet};
        let store: Arc<dyn Store> = Arc::new(MemStore::new());
        let f = FsCore::open(store.clone(), false, false).unwrap();
        let ino = |name: &[u8]| {
            let a = f.create(U, ROOT_INO, name, 0o644).unwrap();
            f.write(U, a.ino, 0, b"abcd", false).unwrap();
            a.ino
        };
        let (chmod, chown, xattr, rewrite, moved, linked, same) = (
            ino(b"chmod"),
            ino(b"chown"),
            ino(b"xattr"),
            ino(b"rewrite"),
            ino(b"moved"),
            ino(b"linked"),
            ino(b"same"),
        );
        let d = f.mkdir(U, ROOT_INO, b"dir", 0o755).unwrap();
        let _ = (moved, same);
        store.create_snapshot("a").unwrap();
        let set = |ino, s: SetAttr| f.setattr(Caller { uid: 0, gid: 0 }, ino, s).unwrap();
        set(
            chmod,
            SetAttr {
                mode: Some(0o600),
                ..Default::default()
            },
        );
        set(
            chown,
            SetAttr {
                uid: Some(1001),
                ..Default::default()
            },
        );
        f.setxattr(U, xattr, b"user.k", b"v", 0).unwrap();
        f.setxattr(U, d.ino, b"user.k", b"v", 0).unwrap();
        let mtime = f.getattr(rewrite).unwrap().mtime;
        f.write(U, rewrite, 0, b"wxyz", false).unwrap();
        set(
            rewrite,
            SetAttr {
                mtime: Some(TimeSet::At(mtime)),
                ..Default::default()
            },
        );
        assert_eq!(f.getattr(rewrite).unwrap().mtime, mtime);
        f.rename(U, ROOT_INO, b"moved", ROOT_INO, b"moved2", 0)
            .unwrap();
        f.link(linked, ROOT_INO, b"linked2").unwrap();
        let got = lines(&store, "a");
        assert_eq!(
            got,
            vec![
                "M /chmod",
                "M /chown",
                "M /dir",
                "+ /linked2",
                "R /moved -> /moved2",
                "M /rewrite",
                "M /xattr",
            ],
            "{got:?}"
        );
        // Changing an xattr's value, not its name, is seen too.
        store.create_snapshot("b").unwrap();
        f.setxattr(U, xattr, b"user.k", b"w", 0).unwrap();
        let got = lines(&store, "b");
        assert_eq!(got, vec!["M /xattr"], "{got:?}");
    }
}
