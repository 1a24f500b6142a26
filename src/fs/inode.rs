//! The inode record stored under `I ino`.
//!
//! ```text
//! version u8 (=2) | kind u8 | mode u32 | uid u32 | gid u32 | nlink u32 | rdev u32
//! | size u64 | atime i64 | mtime i64 | ctime i64 (ns since the epoch)
//! | parent u64 (directories: their parent, for `..` and cycle checks)
//! | chunks u64 (files: how many chunk keys hold data, for st_blocks)
//! | flags u8 (bit 0: data inline, bit 1: has xattrs, bit 2: may hold extents) | inline data (rest of the record)
//! ```
//! all little-endian. Files of up to `INLINE_MAX` bytes keep their data in
//! the record itself, so creating a small file is one key, and reading it is
//! one lookup.
//!
//! Version 1 (filesystem format 2) had no `chunks`: such a record reads as
//! a file with every chunk up to its size stored, which is what `st_blocks`
//! said then. `chunks` is what makes a sparse file look sparse to `du` and
//! to `cp`/`tar`/`rsync`, which only look for holes in a file whose
//! st_blocks are fewer than its size. A truncate that defers its deletions
//! keeps it an upper bound, never less than what is stored.

use super::schema::CHUNK_SIZE;

pub const INLINE_MAX: usize = 4096;
const VERSION: u8 = 2;
const FIXED: usize = 1 + 1 + 4 * 5 + 8 * 6 + 1;
const FIXED_V1: usize = FIXED - 8;

pub const KIND_FILE: u8 = 1;
pub const KIND_DIR: u8 = 2;
pub const KIND_SYMLINK: u8 = 3;
pub const KIND_FIFO: u8 = 4;
pub const KIND_SOCK: u8 = 5;
pub const KIND_CHR: u8 = 6;
pub const KIND_BLK: u8 = 7;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attr {
    pub ino: u64,
    pub kind: u8,
    /// Full st_mode (type bits and permissions).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub rdev: u32,
    pub size: u64,
    pub atime: i64,
    pub mtime: i64,
    pub ctime: i64,
    pub parent: u64,
    /// Some: the file's whole data lives here (len == size).
    pub inline: Option<Vec<u8>>,
    /// Set once an xattr is written, so removing the inode knows whether
    /// to look for `X` keys.
    pub has_xattrs: bool,
    /// Stored 4 KiB chunks of this file's data, an extent counting the
    /// chunks it spans (0 while it is inline).
    pub chunks: u64,
    /// Set once an extent is written (see `schema`), so reads and partial
    /// writes of files that never had one skip looking for them.
    pub extents: bool,
}

/// File type from the type bits of a mode.
pub fn kind_from_mode(mode: u32) -> Option<u8> {
    Some(match mode & libc::S_IFMT {
        libc::S_IFREG => KIND_FILE,
        libc::S_IFDIR => KIND_DIR,
        libc::S_IFLNK => KIND_SYMLINK,
        libc::S_IFIFO => KIND_FIFO,
        libc::S_IFSOCK => KIND_SOCK,
        libc::S_IFCHR => KIND_CHR,
        libc::S_IFBLK => KIND_BLK,
        _ => return None,
    })
}

pub fn type_bits(kind: u8) -> u32 {
    match kind {
        KIND_DIR => libc::S_IFDIR,
        KIND_SYMLINK => libc::S_IFLNK,
        KIND_FIFO => libc::S_IFIFO,
        KIND_SOCK => libc::S_IFSOCK,
        KIND_CHR => libc::S_IFCHR,
        KIND_BLK => libc::S_IFBLK,
        _ => libc::S_IFREG,
    }
}

impl Attr {
    pub fn is_dir(&self) -> bool {
        self.kind == KIND_DIR
    }

    /// st_blocks (512-byte units): the stored chunks of a chunked file (so
    /// holes take none), else the size.
    pub fn blocks(&self) -> u64 {
        if self.kind == KIND_FILE && self.inline.is_none() {
            // Saturating: a damaged record must not overflow a stat.
            self.chunks.saturating_mul(CHUNK_SIZE / 512)
        } else {
            self.size.div_ceil(512)
        }
    }

    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            KIND_FILE => "file",
            KIND_DIR => "dir",
            KIND_SYMLINK => "symlink",
            KIND_FIFO => "fifo",
            KIND_SOCK => "socket",
            KIND_CHR => "chardev",
            KIND_BLK => "blockdev",
            _ => "unknown",
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let inline = self.inline.as_deref().unwrap_or(&[]);
        let mut v = Vec::with_capacity(FIXED + inline.len());
        v.push(VERSION);
        v.push(self.kind);
        for x in [self.mode, self.uid, self.gid, self.nlink, self.rdev] {
            v.extend_from_slice(&x.to_le_bytes());
        }
        v.extend_from_slice(&self.size.to_le_bytes());
        for t in [self.atime, self.mtime, self.ctime] {
            v.extend_from_slice(&t.to_le_bytes());
        }
        v.extend_from_slice(&self.parent.to_le_bytes());
        v.extend_from_slice(&self.chunks.to_le_bytes());
        v.push(
            u8::from(self.inline.is_some())
                | (u8::from(self.has_xattrs) << 1)
                | (u8::from(self.extents) << 2),
        );
        v.extend_from_slice(inline);
        v
    }

    /// Decode a record (the inode number is not part of it).
    pub fn decode(b: &[u8]) -> Result<Attr, String> {
        let fixed = match b.first() {
            Some(&VERSION) => FIXED,
            Some(1) => FIXED_V1,
            Some(v) => return Err(format!("unknown inode record version {v}")),
            None => 0,
        };
        if fixed == 0 || b.len() < fixed {
            return Err(format!("inode record of {} bytes is too short", b.len()));
        }
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u64_at = |o: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[o..o + 8]);
            u64::from_le_bytes(x)
        };
        let flags = b[fixed - 1];
        let mut a = Attr {
            ino: 0,
            kind: b[1],
            mode: u32_at(2),
            uid: u32_at(6),
            gid: u32_at(10),
            nlink: u32_at(14),
            rdev: u32_at(18),
            size: u64_at(22),
            atime: u64_at(30) as i64,
            mtime: u64_at(38) as i64,
            ctime: u64_at(46) as i64,
            parent: u64_at(54),
            inline: (flags & 1 != 0).then(|| b[fixed..].to_vec()),
            has_xattrs: flags & 2 != 0,
            extents: flags & 4 != 0,
            chunks: if fixed == FIXED { u64_at(62) } else { 0 },
        };
        if fixed == FIXED_V1 && a.kind == KIND_FILE && a.inline.is_none() {
            a.chunks = a.size.div_ceil(CHUNK_SIZE);
        }
        if !(KIND_FILE..=KIND_BLK).contains(&a.kind) {
            return Err(format!("unknown file type {}", a.kind));
        }
        if a.inline.as_ref().is_some_and(|d| d.len() as u64 != a.size) {
            return Err("inline data length differs from the size".into());
        }
        Ok(a)
    }
}

/// The record as version 1 wrote it (no `chunks`), for upgrade tests.
#[cfg(test)]
pub(crate) fn encode_v1(a: &Attr) -> Vec<u8> {
    let mut v = a.encode();
    v[0] = 1;
    v.drain(FIXED - 9..FIXED - 1);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let a = Attr {
            ino: 0,
            kind: KIND_FILE,
            mode: libc::S_IFREG | 0o644,
            uid: 1,
            gid: 2,
            nlink: 1,
            rdev: 0,
            size: 3,
            atime: -5,
            mtime: 6,
            ctime: 7,
            parent: 0,
            inline: Some(b"abc".to_vec()),
            has_xattrs: true,
            chunks: 0,
            extents: false,
        };
        assert_eq!(Attr::decode(&a.encode()).unwrap(), a);
        let b = Attr {
            inline: None,
            size: 1 << 40,
            extents: true,
            ..a.clone()
        };
        assert_eq!(Attr::decode(&b.encode()).unwrap(), b);
        let c = Attr {
            inline: None,
            size: 10 << 20,
            chunks: 3,
            ..a.clone()
        };
        assert_eq!(Attr::decode(&c.encode()).unwrap(), c);
        assert!(Attr::decode(&a.encode()[..10]).is_err());
        assert!(Attr::decode(&[]).is_err());
        let mut bad = a.encode();
        bad[0] = 9;
        assert!(Attr::decode(&bad).is_err());
    }

    #[test]
    fn version_1_records_read_as_dense_files() {
        let a = Attr {
            kind: KIND_FILE,
            mode: libc::S_IFREG | 0o600,
            nlink: 1,
            size: 3 * CHUNK_SIZE + 1,
            chunks: 1,
            ..Default::default()
        };
        let v1 = encode_v1(&a);
        let got = Attr::decode(&v1).unwrap();
        assert_eq!(got.chunks, 4, "every chunk up to the size");
        assert_eq!(Attr { chunks: 1, ..got }, a);
        let small = Attr {
            size: 2,
            inline: Some(b"hi".to_vec()),
            chunks: 0,
            ..a.clone()
        };
        assert_eq!(Attr::decode(&encode_v1(&small)).unwrap(), small);
    }
}
