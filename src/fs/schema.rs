//! The key schema: how the tree is laid out in the key-value store.
//!
//! Integers are big-endian so keys sort by inode, then by name or chunk.
//!
//! | key | value |
//! | --- | --- |
//! | `I` ino(8) | inode record (see `inode`); small files' data inline |
//! | `D` parent(8) name | child ino(8) + file type(1): a directory entry |
//! | `C` ino(8) chunk(8) | file data from byte `chunk * CHUNK_SIZE` on: up to `CHUNK_SIZE` bytes, or up to `EXTENT_SIZE` at an extent's first chunk; a missing chunk, or the part past a short value's end, reads as zeros |
//! | `S` ino(8) | symlink target |
//! | `X` ino(8) name | extended attribute value |
//! | `O` ino(8) | reclaim pending: data beyond the inode's size (all of it, and the inode, once nlink is 0) is still to be deleted |
//! | `M` name | filesystem metadata: `format` (u32), `next_ino` (u64 high-water mark of the inode allocator), `uuid` |
//!
//! Because entries name inodes (not paths), renaming a directory with a
//! million files under it rewrites two keys.
//!
//! Chunks are 4 KiB, a page. A write that covers part of a chunk rewrites
//! the whole chunk (values are immutable), and without the kernel's
//! writeback cache writes arrive at the application's size — 10 KiB records
//! from `tar`, 4 KiB pages from random writers and mmap, 30-byte appends
//! from loggers — so a page-sized chunk makes page writes pure overwrites
//! and bounds every other rewrite to 4 KiB (16 KiB chunks wrote 2.1 bytes
//! per byte of an untar, and up to 16 KiB of WAL for an fsync'd 30-byte
//! append). Large reads stay cheap because a range scan reads the chunk
//! blocks ahead in 1 MiB runs.
//!
//! Extents: a write that covers a whole aligned `EXTENT_SIZE` slot (128 KiB,
//! `EXTENT_CHUNKS` chunks) stores it as one value under the slot's first
//! chunk key. Per-key costs (the key, the memtable node, the blob record,
//! the index entry) are most of what a large sequential write pays beyond
//! the copies, and an extent pays them once per 32 pages: a 512 MiB
//! `dd bs=1M` went from 0.52–0.83 s to 0.40–0.50 s (two builds side by
//! side; ext4 0.31). 128 KiB is
//! the kernel's default FUSE request, coreutils' I/O size and ZFS's default
//! recordsize; like ZFS's records, an extent is read whole, so a 4 KiB
//! random read of one reads 128 KiB from its blob file. The rules:
//! - only a write covering the whole slot makes an extent (so unaligned or
//!   small writers keep page chunks: `tar`'s 10 KiB records never rewrite a
//!   slot twice);
//! - a slot holding an extent (a value longer than `CHUNK_SIZE` at its
//!   first chunk) holds no other key;
//! - a write covering part of such a slot first splits the extent into its
//!   chunks (once: the slot then takes page writes as any other);
//! - a truncate inside an extent cuts it (an extent may be shorter than the
//!   slot, never longer).
//!
//! Format 1 had 16 KiB chunks; format 2 has 4 KiB. Format 3 adds the count
//! of stored chunks to the inode record (its version 2), so st_blocks shows
//! holes. Format 4 adds extents (and the inode flag saying a file may hold
//! one). A format-2 or format-3 store is read as it is (its records count
//! every chunk up to the size, or hold no extents) and marked format 4 at
//! its first read-write mount, so that an older lsmfs refuses it instead of
//! misreading the newer records. Any other format is refused.

pub const CHUNK_SIZE: u64 = 4 * 1024;
/// Chunks per extent slot, and the slot's size in bytes.
pub const EXTENT_CHUNKS: u64 = 32;
pub const EXTENT_SIZE: u64 = EXTENT_CHUNKS * CHUNK_SIZE;

/// The most bytes the value at chunk key `idx` may hold.
pub fn value_max(idx: u64) -> u64 {
    if idx.is_multiple_of(EXTENT_CHUNKS) {
        EXTENT_SIZE
    } else {
        CHUNK_SIZE
    }
}

/// Chunks a value of `len` bytes spans (what an inode's chunk count counts).
pub fn units(len: usize) -> u64 {
    (len as u64).div_ceil(CHUNK_SIZE)
}
pub const ROOT_INO: u64 = 1;
/// The hidden statistics file at the root (never stored).
pub const STATS_INO: u64 = 2;
pub const FIRST_INO: u64 = 16;
pub const STATS_NAME: &[u8] = b".lsmfs-stats";
pub const FORMAT_VERSION: u32 = 4;
/// The older formats this build still reads (and upgrades when writable).
pub const FORMAT_UPGRADABLE: [u32; 2] = [2, 3];

pub fn inode_key(ino: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(b'I');
    k.extend_from_slice(&ino.to_be_bytes());
    k
}

pub fn dentry_key(parent: u64, name: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + name.len());
    k.push(b'D');
    k.extend_from_slice(&parent.to_be_bytes());
    k.extend_from_slice(name);
    k
}

/// The range `[start, end)` of every entry of a directory.
pub fn dentry_range(parent: u64) -> (Vec<u8>, Vec<u8>) {
    (
        dentry_key(parent, b""),
        prefix_end(&dentry_key(parent, b"")),
    )
}

pub fn chunk_key(ino: u64, index: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(17);
    k.push(b'C');
    k.extend_from_slice(&ino.to_be_bytes());
    k.extend_from_slice(&index.to_be_bytes());
    k
}

pub fn symlink_key(ino: u64) -> Vec<u8> {
    let mut k = inode_key(ino);
    k[0] = b'S';
    k
}

pub fn xattr_key(ino: u64, name: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + name.len());
    k.push(b'X');
    k.extend_from_slice(&ino.to_be_bytes());
    k.extend_from_slice(name);
    k
}

pub fn orphan_key(ino: u64) -> Vec<u8> {
    let mut k = inode_key(ino);
    k[0] = b'O';
    k
}

pub fn meta_key(name: &str) -> Vec<u8> {
    let mut k = vec![b'M'];
    k.extend_from_slice(name.as_bytes());
    k
}

/// The smallest key greater than every key starting with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut e = prefix.to_vec();
    while let Some(last) = e.pop() {
        if last < 0xff {
            e.push(last + 1);
            return e;
        }
    }
    vec![0xff; prefix.len() + 1]
}

pub fn be64(b: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(..8)?.try_into().ok()?))
}

/// A decoded key.
#[derive(Debug, PartialEq, Eq)]
pub enum Key<'a> {
    Inode(u64),
    Dentry(u64, &'a [u8]),
    Chunk(u64, u64),
    Symlink(u64),
    Xattr(u64, &'a [u8]),
    Orphan(u64),
    Meta(&'a [u8]),
}

pub fn parse_key(k: &[u8]) -> Option<Key<'_>> {
    let (&tag, rest) = k.split_first()?;
    match tag {
        b'I' if rest.len() == 8 => Some(Key::Inode(be64(rest)?)),
        b'D' if rest.len() >= 8 => Some(Key::Dentry(be64(rest)?, &rest[8..])),
        b'C' if rest.len() == 16 => Some(Key::Chunk(be64(rest)?, be64(&rest[8..])?)),
        b'S' if rest.len() == 8 => Some(Key::Symlink(be64(rest)?)),
        b'X' if rest.len() >= 8 => Some(Key::Xattr(be64(rest)?, &rest[8..])),
        b'O' if rest.len() == 8 => Some(Key::Orphan(be64(rest)?)),
        b'M' => Some(Key::Meta(rest)),
        _ => None,
    }
}

fn quoted(b: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(b))
}

/// An entry of the store, in filesystem terms (`describe_key`) or, with
/// `raw`, as hex: the one describer of `inspect` and `check --path`.
pub fn describe(user_key: &[u8], value: Option<&[u8]>, raw: bool) -> String {
    if raw {
        let v = value.map_or(String::new(), |v| format!(" = {}", hex(v)));
        return format!("{}{v}", hex(user_key));
    }
    describe_key(user_key, value)
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One line describing a key (and its value, if given) in filesystem terms.
pub fn describe_key(k: &[u8], value: Option<&[u8]>) -> String {
    match parse_key(k) {
        Some(Key::Inode(ino)) => match value.map(super::inode::Attr::decode) {
            Some(Ok(a)) => format!(
                "inode {ino} {} {:04o} nlink {} size {} uid {} gid {}{}",
                a.kind_name(),
                a.mode & 0o7777,
                a.nlink,
                a.size,
                a.uid,
                a.gid,
                if a.inline.is_some() {
                    " (data inline)"
                } else {
                    ""
                }
            ),
            Some(Err(e)) => format!("inode {ino} <bad record: {e}>"),
            None => format!("inode {ino}"),
        },
        Some(Key::Dentry(p, name)) => match value {
            Some(v) => format!(
                "dentry parent={p} name={} -> ino {}",
                quoted(name),
                be64(v).map_or("?".into(), |i| i.to_string())
            ),
            None => format!("dentry parent={p} name={}", quoted(name)),
        },
        Some(Key::Chunk(ino, i)) => match value {
            Some(v) if v.len() as u64 > CHUNK_SIZE => {
                format!("extent ino={ino} #{i} {} bytes", v.len())
            }
            Some(v) => format!("chunk ino={ino} #{i} {} bytes", v.len()),
            None => format!("chunk ino={ino} #{i}"),
        },
        Some(Key::Symlink(ino)) => match value {
            Some(v) => format!("symlink ino={ino} -> {}", quoted(v)),
            None => format!("symlink ino={ino}"),
        },
        Some(Key::Xattr(ino, name)) => match value {
            Some(v) => format!("xattr ino={ino} {} ({} bytes)", quoted(name), v.len()),
            None => format!("xattr ino={ino} {}", quoted(name)),
        },
        Some(Key::Orphan(ino)) => format!("orphan ino={ino} (data to reclaim)"),
        Some(Key::Meta(name)) => match value {
            Some(v) if v.len() == 8 => format!("meta {} = {}", quoted(name), be64(v).unwrap_or(0)),
            Some(v) => format!("meta {} ({} bytes)", quoted(name), v.len()),
            None => format!("meta {}", quoted(name)),
        },
        None => format!("<unknown key {}>", hex(k)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_roundtrip_and_sort() {
        assert_eq!(parse_key(&inode_key(42)), Some(Key::Inode(42)));
        assert_eq!(
            parse_key(&dentry_key(1, b"docs")),
            Some(Key::Dentry(1, b"docs"))
        );
        assert_eq!(parse_key(&chunk_key(57, 3)), Some(Key::Chunk(57, 3)));
        assert_eq!(parse_key(&orphan_key(9)), Some(Key::Orphan(9)));
        assert!(chunk_key(1, 2) < chunk_key(1, 256));
        assert!(dentry_key(1, b"zzz") < dentry_key(2, b""));
        let (s, e) = dentry_range(5);
        assert!(s <= dentry_key(5, b"\xff\xff") && dentry_key(5, b"\xff\xff") < e);
        assert_eq!(parse_key(b"Q"), None);
        assert_eq!(parse_key(b""), None);
        let d = describe_key(&dentry_key(1, b"docs"), Some(&42u64.to_be_bytes()));
        assert_eq!(d, "dentry parent=1 name=\"docs\" -> ino 42");
        assert_eq!(
            describe_key(&chunk_key(57, 3), Some(&[0u8; 100])),
            "chunk ino=57 #3 100 bytes"
        );
    }
}
