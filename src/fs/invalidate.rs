//! Another host's changes, dropped from this kernel's caches at once.
//!
//! On a shared store the kernel keeps names and attributes for `ops::TTL`
//! (1 s). When the store can follow other clients' changes
//! (`Store::follow_changes`: etcd's watch), each changed key becomes the
//! FUSE notification that drops what the kernel caches of it, so a change
//! made on host A is seen on host B within the watch's delay instead of
//! the TTL:
//!
//! | key | notification |
//! | --- | --- |
//! | `D` parent name | `INVAL_ENTRY` (parent, name): the name, positive or negative |
//! | `I` ino, `X` ino name | `INVAL_INODE` (ino, offset -1): its attributes and cached ACLs |
//! | `C` ino chunk | `INVAL_INODE` (ino, the chunks' bytes): those pages of a file open here |
//! | others | none: the kernel caches nothing of them |
//!
//! One thread of its own writes the notifications: an `INVAL_ENTRY` waits
//! for the directory's lock, which a request being served may hold, so it
//! must never hold up the watch or a request. An inode the kernel does not
//! know answers ENOENT, which is nothing to do. While the watch is down the
//! TTL is the bound again (a change missed then is not replayed).

use super::schema::{parse_key, value_max, Key, CHUNK_SIZE};
use crate::store::ChangeSink;
use fuser::{INodeNo, Notifier};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::mpsc;

/// What one batch of changed keys asks the kernel to drop.
#[derive(Debug, Default, PartialEq)]
struct Drops {
    entries: BTreeSet<(u64, Vec<u8>)>,
    attrs: BTreeSet<u64>,
    /// Per inode: the byte range its changed chunks cover.
    pages: BTreeMap<u64, (u64, u64)>,
}

fn drops(keys: &[Vec<u8>]) -> Drops {
    let mut d = Drops::default();
    for k in keys {
        match parse_key(k) {
            Some(Key::Dentry(parent, name)) => {
                d.entries.insert((parent, name.to_vec()));
            }
            Some(Key::Inode(ino) | Key::Xattr(ino, _)) => {
                d.attrs.insert(ino);
            }
            Some(Key::Chunk(ino, idx)) => {
                let start = idx.saturating_mul(CHUNK_SIZE);
                let end = start.saturating_add(value_max(idx));
                let r = d.pages.entry(ino).or_insert((start, end));
                *r = (r.0.min(start), r.1.max(end));
            }
            _ => {}
        }
    }
    d
}

fn notify(n: &Notifier, d: &Drops) {
    let report = |what: &str, r: std::io::Result<()>| {
        if let Err(e) = r {
            log::debug!("invalidating {what} after another host's change: {e}");
        }
    };
    for (parent, name) in &d.entries {
        let r = n.inval_entry(INodeNo(*parent), OsStr::from_bytes(name));
        report("an entry", r);
    }
    for &ino in &d.attrs {
        report("attributes", n.inval_inode(INodeNo(ino), -1, 0));
    }
    for (&ino, &(start, end)) in &d.pages {
        let (off, len) = (start.min(i64::MAX as u64), end.saturating_sub(start));
        let r = n.inval_inode(INodeNo(ino), off as i64, len.min(i64::MAX as u64) as i64);
        report("pages", r);
    }
}

/// A sink for `Store::follow_changes` that drops what each change makes
/// stale from the kernel's caches, through `notifier`, on a thread of its
/// own (it ends when the store drops the sink).
pub fn kernel_sink(notifier: Notifier) -> std::io::Result<ChangeSink> {
    let (tx, rx) = mpsc::channel::<Vec<Vec<u8>>>();
    std::thread::Builder::new()
        .name("lsmfs-inval".into())
        .spawn(move || {
            for keys in rx {
                notify(&notifier, &drops(&keys));
            }
        })?;
    Ok(Box::new(move |keys| {
        let _ = tx.send(keys);
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::schema::{chunk_key, dentry_key, inode_key, meta_key, xattr_key, EXTENT_SIZE};

    #[test]
    fn each_key_drops_what_the_kernel_caches_of_it() {
        let keys = vec![
            dentry_key(1, b"a"),
            dentry_key(1, b"a"),
            inode_key(20),
            xattr_key(21, b"system.posix_acl_access"),
            chunk_key(22, 3),
            chunk_key(22, 1),
            chunk_key(23, 32),
            meta_key("next_ino"),
            b"garbage".to_vec(),
            Vec::new(),
        ];
        let d = drops(&keys);
        assert_eq!(d.entries, BTreeSet::from([(1, b"a".to_vec())]));
        assert_eq!(d.attrs, BTreeSet::from([20, 21]));
        assert_eq!(d.pages.get(&22), Some(&(CHUNK_SIZE, 4 * CHUNK_SIZE)));
        let extent = 32 * CHUNK_SIZE;
        assert_eq!(d.pages.get(&23), Some(&(extent, extent + EXTENT_SIZE)));
    }

    #[test]
    fn a_chunk_index_at_the_end_of_u64_does_not_overflow() {
        let d = drops(&[chunk_key(5, u64::MAX)]);
        assert_eq!(d.pages.get(&5), Some(&(u64::MAX, u64::MAX)));
    }
}
