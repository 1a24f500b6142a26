//! The FUSE-over-io_uring wire format: decoding a request from a ring
//! entry's buffers and encoding the reply into them.
//!
//! Layouts are the kernel's uAPI (`include/uapi/linux/fuse.h`, protocol
//! 7.42+, Linux 6.14+), little-endian, decoded field by field here (the
//! machine's own header is older). Each ring entry owns two buffers it
//! registered with the kernel:
//!
//! - the header, `struct fuse_uring_req_header` (288 bytes): `in_out`
//!   (128 bytes: the `fuse_in_header` of a request, the `fuse_out_header`
//!   of its reply), `op_in` (128 bytes: the opcode's fixed argument struct,
//!   e.g. `fuse_write_in`, the kernel's `in_args[0]`; nothing for opcodes
//!   whose first argument is empty) and `ring_ent_in_out` (32 bytes: flags,
//!   commit_id, payload_sz, padding, reserved);
//! - the payload (at least the negotiated max_write): the request's other
//!   arguments back to back (names with their NUL, write data), and on the
//!   reply all the reply's arguments (`payload_sz` says how many bytes;
//!   unlike `/dev/fuse`, the out header is not part of it).
//!
//! A request whose bytes do not make sense (short payload, a name without
//! its NUL) decodes to `Err(EINVAL)` and is answered so; nothing here
//! panics on any input.

use crate::fs::core::{Caller, SetAttr, TimeSet};
use crate::fs::inode::{type_bits, Attr};
use crate::fs::ops::{DirEntry, Entry, Opened, Statfs, BLKSIZE};
use crate::fs::requests::Req;

pub const IN_OUT_SZ: usize = 128;
pub const OP_IN_SZ: usize = 128;
/// `sizeof(struct fuse_uring_req_header)`.
pub const HEADER_SZ: usize = IN_OUT_SZ + OP_IN_SZ + 32;
const ENT_IN_OUT: usize = IN_OUT_SZ + OP_IN_SZ;
/// `sizeof(struct fuse_in_header)` and `sizeof(struct fuse_out_header)`.
pub const IN_HEADER_SZ: usize = 40;
pub const OUT_HEADER_SZ: usize = 16;
/// `FUSE_MIN_READ_BUFFER`: the kernel's floor for a payload buffer.
pub const MIN_PAYLOAD: usize = 8192;

/// `enum fuse_uring_cmd`.
pub const CMD_REGISTER: u32 = 1;
pub const CMD_COMMIT_AND_FETCH: u32 = 2;

// FUSE opcodes (`enum fuse_opcode`).
const LOOKUP: u32 = 1;
const GETATTR: u32 = 3;
const SETATTR: u32 = 4;
const READLINK: u32 = 5;
const SYMLINK: u32 = 6;
const MKNOD: u32 = 8;
const MKDIR: u32 = 9;
const UNLINK: u32 = 10;
const RMDIR: u32 = 11;
const RENAME: u32 = 12;
const LINK: u32 = 13;
const OPEN: u32 = 14;
const READ: u32 = 15;
const WRITE: u32 = 16;
const STATFS: u32 = 17;
const RELEASE: u32 = 18;
const FSYNC: u32 = 20;
const SETXATTR: u32 = 21;
const GETXATTR: u32 = 22;
const LISTXATTR: u32 = 23;
const REMOVEXATTR: u32 = 24;
const FLUSH: u32 = 25;
const OPENDIR: u32 = 27;
const READDIR: u32 = 28;
const RELEASEDIR: u32 = 29;
const FSYNCDIR: u32 = 30;
const ACCESS: u32 = 34;
const CREATE: u32 = 35;
const IOCTL: u32 = 39;
const FALLOCATE: u32 = 43;
const READDIRPLUS: u32 = 44;
const RENAME2: u32 = 45;
const LSEEK: u32 = 46;

// `fuse_setattr_in.valid` bits.
const FATTR_MODE: u32 = 1 << 0;
const FATTR_UID: u32 = 1 << 1;
const FATTR_GID: u32 = 1 << 2;
const FATTR_SIZE: u32 = 1 << 3;
const FATTR_ATIME: u32 = 1 << 4;
const FATTR_MTIME: u32 = 1 << 5;
const FATTR_ATIME_NOW: u32 = 1 << 7;
const FATTR_MTIME_NOW: u32 = 1 << 8;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// `struct fuse_in_header`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InHeader {
    pub len: u32,
    pub opcode: u32,
    pub unique: u64,
    pub nodeid: u64,
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
    pub total_extlen: u16,
}

impl InHeader {
    pub fn decode(b: &[u8]) -> Option<InHeader> {
        let b = b.get(..IN_HEADER_SZ)?;
        Some(InHeader {
            len: u32_at(b, 0)?,
            opcode: u32_at(b, 4)?,
            unique: u64_at(b, 8)?,
            nodeid: u64_at(b, 16)?,
            uid: u32_at(b, 24)?,
            gid: u32_at(b, 28)?,
            pid: u32_at(b, 32)?,
            total_extlen: u16_at(b, 36)?,
        })
    }

    pub fn caller(&self) -> Caller {
        Caller {
            uid: self.uid,
            gid: self.gid,
        }
    }
}

/// `struct fuse_uring_ent_in_out` as the kernel filled it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EntInOut {
    pub commit_id: u64,
    pub payload_sz: u32,
}

impl EntInOut {
    pub fn decode(header: &[u8]) -> Option<EntInOut> {
        let header = header.get(..HEADER_SZ)?;
        Some(EntInOut {
            commit_id: u64_at(header, ENT_IN_OUT + 8)?,
            payload_sz: u32_at(header, ENT_IN_OUT + 16)?,
        })
    }
}

/// `struct fuse_uring_cmd_req`, the first 24 of the SQE's 80 command bytes.
pub fn cmd_req(commit_id: u64, qid: u16) -> [u8; 80] {
    let mut c = [0u8; 80];
    c[8..16].copy_from_slice(&commit_id.to_le_bytes());
    c[16..18].copy_from_slice(&qid.to_le_bytes());
    c
}

/// Whether a request may keep its server waiting long (on the disk, or
/// copying a megabyte), judged from its header before it is decoded: an
/// fsync, or a read or write of at least `big` bytes (`fuse_read_in` and
/// `fuse_write_in` both carry their size at byte 16).
pub fn may_block(opcode: u32, op_in: &[u8], big: u32) -> bool {
    match opcode {
        FSYNC | FSYNCDIR => true,
        READ | WRITE => u32_at(op_in, 16).is_some_and(|n| n >= big),
        _ => false,
    }
}

/// A decoded request: what the opcode asks, borrowing names and data from
/// the entry's payload.
#[derive(Debug, Clone, PartialEq)]
pub enum Op<'a> {
    Lookup {
        name: &'a [u8],
    },
    Getattr,
    Setattr(SetAttr),
    Readlink,
    Symlink {
        name: &'a [u8],
        target: &'a [u8],
    },
    Mknod {
        name: &'a [u8],
        mode: u32,
        rdev: u32,
        umask: u32,
    },
    Mkdir {
        name: &'a [u8],
        mode: u32,
        umask: u32,
    },
    Unlink {
        name: &'a [u8],
    },
    Rmdir {
        name: &'a [u8],
    },
    Rename {
        name: &'a [u8],
        newdir: u64,
        newname: &'a [u8],
        flags: u32,
    },
    Link {
        oldnodeid: u64,
        name: &'a [u8],
    },
    Open {
        flags: i32,
    },
    Read {
        fh: u64,
        offset: u64,
        size: u32,
    },
    Write {
        offset: u64,
        data: &'a [u8],
        write_flags: u32,
        flags: i32,
    },
    Statfs,
    Release {
        fh: u64,
    },
    Fsync,
    Setxattr {
        name: &'a [u8],
        value: &'a [u8],
        flags: i32,
    },
    Getxattr {
        name: &'a [u8],
        size: u32,
    },
    Listxattr {
        size: u32,
    },
    Removexattr {
        name: &'a [u8],
    },
    Flush,
    Opendir,
    Readdir {
        fh: u64,
        offset: u64,
        size: u32,
        plus: bool,
    },
    Releasedir {
        fh: u64,
    },
    Fsyncdir,
    Access {
        mask: i32,
    },
    Create {
        name: &'a [u8],
        mode: u32,
        umask: u32,
        flags: i32,
    },
    Ioctl,
    Fallocate {
        offset: u64,
        length: u64,
        mode: i32,
    },
    Lseek {
        offset: i64,
        whence: i32,
    },
    /// An opcode we do not serve: answered ENOSYS.
    Unknown(u32),
}

impl Op<'_> {
    /// The request-count kind (`None` for an unknown opcode).
    pub fn kind(&self) -> Option<Req> {
        Some(match self {
            Op::Lookup { .. } => Req::Lookup,
            Op::Getattr => Req::Getattr,
            Op::Setattr(_) => Req::Setattr,
            Op::Readlink => Req::Readlink,
            Op::Symlink { .. } => Req::Symlink,
            Op::Mknod { .. } => Req::Mknod,
            Op::Mkdir { .. } => Req::Mkdir,
            Op::Unlink { .. } => Req::Unlink,
            Op::Rmdir { .. } => Req::Rmdir,
            Op::Rename { .. } => Req::Rename,
            Op::Link { .. } => Req::Link,
            Op::Open { .. } => Req::Open,
            Op::Read { .. } => Req::Read,
            Op::Write { .. } => Req::Write,
            Op::Statfs => Req::Statfs,
            Op::Release { .. } => Req::Release,
            Op::Fsync => Req::Fsync,
            Op::Setxattr { .. } => Req::Setxattr,
            Op::Getxattr { .. } => Req::Getxattr,
            Op::Listxattr { .. } => Req::Listxattr,
            Op::Removexattr { .. } => Req::Removexattr,
            Op::Flush => Req::Flush,
            Op::Opendir => Req::Opendir,
            Op::Readdir { plus: false, .. } => Req::Readdir,
            Op::Readdir { plus: true, .. } => Req::Readdirplus,
            Op::Releasedir { .. } => Req::Releasedir,
            Op::Fsyncdir => Req::Fsyncdir,
            Op::Access { .. } => Req::Access,
            Op::Create { .. } => Req::Create,
            Op::Ioctl => Req::Ioctl,
            Op::Fallocate { .. } => Req::Fallocate,
            Op::Lseek { .. } => Req::Lseek,
            Op::Unknown(_) => return None,
        })
    }
}

/// The NUL-terminated strings at the front of a payload, in order.
struct Names<'a>(&'a [u8]);

impl<'a> Names<'a> {
    fn next(&mut self) -> Result<&'a [u8], i32> {
        let end = self.0.iter().position(|&b| b == 0).ok_or(libc::EINVAL)?;
        let (name, rest) = self.0.split_at(end);
        self.0 = &rest[1..];
        Ok(name)
    }
}

fn time_set(valid: u32, set: u32, now: u32, secs: u64, nsecs: u32) -> Option<TimeSet> {
    if valid & now != 0 {
        Some(TimeSet::Now)
    } else if valid & set != 0 {
        let ns = (secs as i64)
            .saturating_mul(1_000_000_000)
            .saturating_add(i64::from(nsecs.min(999_999_999)));
        Some(TimeSet::At(ns))
    } else {
        None
    }
}

fn decode_setattr(a: &[u8]) -> Option<SetAttr> {
    let valid = u32_at(a, 0)?;
    let opt = |bit: u32, v: u32| (valid & bit != 0).then_some(v);
    Some(SetAttr {
        mode: opt(FATTR_MODE, u32_at(a, 68)?),
        uid: opt(FATTR_UID, u32_at(a, 76)?),
        gid: opt(FATTR_GID, u32_at(a, 80)?),
        size: (valid & FATTR_SIZE != 0).then_some(u64_at(a, 16)?),
        atime: time_set(
            valid,
            FATTR_ATIME,
            FATTR_ATIME_NOW,
            u64_at(a, 32)?,
            u32_at(a, 56)?,
        ),
        mtime: time_set(
            valid,
            FATTR_MTIME,
            FATTR_MTIME_NOW,
            u64_at(a, 40)?,
            u32_at(a, 60)?,
        ),
    })
}

/// Decode a request: `op_in` is the entry's 128-byte op area, `payload` the
/// `payload_sz` bytes the kernel wrote. `setxattr_ext`: FUSE_SETXATTR_EXT
/// was negotiated (a 16-byte `fuse_setxattr_in`).
pub fn decode<'a>(
    opcode: u32,
    op_in: &[u8],
    payload: &'a [u8],
    setxattr_ext: bool,
) -> Result<Op<'a>, i32> {
    let a = op_in;
    let bad = libc::EINVAL;
    let mut names = Names(payload);
    let op = match opcode {
        LOOKUP => Op::Lookup {
            name: names.next()?,
        },
        GETATTR => Op::Getattr,
        SETATTR => Op::Setattr(decode_setattr(a).ok_or(bad)?),
        READLINK => Op::Readlink,
        SYMLINK => Op::Symlink {
            name: names.next()?,
            target: names.next()?,
        },
        MKNOD => Op::Mknod {
            mode: u32_at(a, 0).ok_or(bad)?,
            rdev: u32_at(a, 4).ok_or(bad)?,
            umask: u32_at(a, 8).ok_or(bad)?,
            name: names.next()?,
        },
        MKDIR => Op::Mkdir {
            mode: u32_at(a, 0).ok_or(bad)?,
            umask: u32_at(a, 4).ok_or(bad)?,
            name: names.next()?,
        },
        UNLINK => Op::Unlink {
            name: names.next()?,
        },
        RMDIR => Op::Rmdir {
            name: names.next()?,
        },
        RENAME | RENAME2 => Op::Rename {
            newdir: u64_at(a, 0).ok_or(bad)?,
            flags: if opcode == RENAME2 {
                u32_at(a, 8).ok_or(bad)?
            } else {
                0
            },
            name: names.next()?,
            newname: names.next()?,
        },
        LINK => Op::Link {
            oldnodeid: u64_at(a, 0).ok_or(bad)?,
            name: names.next()?,
        },
        OPEN => Op::Open {
            flags: u32_at(a, 0).ok_or(bad)? as i32,
        },
        READ => Op::Read {
            fh: u64_at(a, 0).ok_or(bad)?,
            offset: u64_at(a, 8).ok_or(bad)?,
            size: u32_at(a, 16).ok_or(bad)?,
        },
        WRITE => {
            let size = u32_at(a, 16).ok_or(bad)? as usize;
            Op::Write {
                offset: u64_at(a, 8).ok_or(bad)?,
                write_flags: u32_at(a, 20).ok_or(bad)?,
                flags: u32_at(a, 32).ok_or(bad)? as i32,
                data: payload.get(..size).ok_or(bad)?,
            }
        }
        STATFS => Op::Statfs,
        RELEASE => Op::Release {
            fh: u64_at(a, 0).ok_or(bad)?,
        },
        FSYNC => Op::Fsync,
        SETXATTR => {
            let size = u32_at(a, 0).ok_or(bad)? as usize;
            let flags = u32_at(a, 4).ok_or(bad)? as i32;
            let _ = setxattr_ext; // the extra flags word is not ours to act on
            let name = names.next()?;
            Op::Setxattr {
                name,
                flags,
                value: names.0.get(..size).ok_or(bad)?,
            }
        }
        GETXATTR => Op::Getxattr {
            size: u32_at(a, 0).ok_or(bad)?,
            name: names.next()?,
        },
        LISTXATTR => Op::Listxattr {
            size: u32_at(a, 0).ok_or(bad)?,
        },
        REMOVEXATTR => Op::Removexattr {
            name: names.next()?,
        },
        FLUSH => Op::Flush,
        OPENDIR => Op::Opendir,
        READDIR | READDIRPLUS => Op::Readdir {
            fh: u64_at(a, 0).ok_or(bad)?,
            offset: u64_at(a, 8).ok_or(bad)?,
            size: u32_at(a, 16).ok_or(bad)?,
            plus: opcode == READDIRPLUS,
        },
        RELEASEDIR => Op::Releasedir {
            fh: u64_at(a, 0).ok_or(bad)?,
        },
        FSYNCDIR => Op::Fsyncdir,
        ACCESS => Op::Access {
            mask: u32_at(a, 0).ok_or(bad)? as i32,
        },
        CREATE => Op::Create {
            flags: u32_at(a, 0).ok_or(bad)? as i32,
            mode: u32_at(a, 4).ok_or(bad)?,
            umask: u32_at(a, 8).ok_or(bad)?,
            name: names.next()?,
        },
        IOCTL => Op::Ioctl,
        FALLOCATE => Op::Fallocate {
            offset: u64_at(a, 8).ok_or(bad)?,
            length: u64_at(a, 16).ok_or(bad)?,
            mode: u32_at(a, 24).ok_or(bad)? as i32,
        },
        LSEEK => Op::Lseek {
            offset: u64_at(a, 8).ok_or(bad)? as i64,
            whence: u32_at(a, 16).ok_or(bad)? as i32,
        },
        other => Op::Unknown(other),
    };
    Ok(op)
}

/// A request's answer, owned (see `dispatch`).
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Empty,
    Entry(Entry),
    Attr(Entry),
    Open(Opened),
    Create(Entry, Opened),
    /// `fuse_write_out` or `fuse_getxattr_out`.
    Size(u32),
    Offset(i64),
    Statfs(Statfs),
    /// Read data, a symlink target, xattr bytes, packed directory entries.
    Data(Vec<u8>),
}

impl Reply {
    /// Write the reply's arguments into `out`.
    pub fn encode(&self, out: &mut Out) -> Result<(), i32> {
        match self {
            Reply::Empty => Ok(()),
            Reply::Entry(e) => out.entry(e),
            Reply::Attr(e) => out.attr_out(e),
            Reply::Open(o) => out.open(o),
            Reply::Create(e, o) => {
                out.entry(e)?;
                out.open(o)
            }
            Reply::Size(n) => out.size(*n),
            Reply::Offset(o) => out.offset(*o),
            Reply::Statfs(s) => out.statfs(s),
            Reply::Data(d) => out.bytes(d),
        }
    }
}

/// Writes a reply's arguments into a buffer. A reply that does not fit is
/// `EIO` (the kernel sized the payload buffer for the largest reply it can
/// ask for, so this means a bug, not bad input).
pub struct Out<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> Out<'a> {
    pub fn new(buf: &'a mut [u8]) -> Out<'a> {
        Out { buf, len: 0 }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn room(&self) -> usize {
        self.buf.len() - self.len
    }

    pub fn bytes(&mut self, b: &[u8]) -> Result<(), i32> {
        let dst = self
            .buf
            .get_mut(self.len..self.len + b.len())
            .ok_or(libc::EIO)?;
        dst.copy_from_slice(b);
        self.len += b.len();
        Ok(())
    }

    fn u32(&mut self, v: u32) -> Result<(), i32> {
        self.bytes(&v.to_le_bytes())
    }

    fn u64(&mut self, v: u64) -> Result<(), i32> {
        self.bytes(&v.to_le_bytes())
    }

    /// `struct fuse_attr` (88 bytes).
    pub fn attr(&mut self, a: &Attr) -> Result<(), i32> {
        let split = |ns: i64| {
            (
                ns.div_euclid(1_000_000_000) as u64,
                ns.rem_euclid(1_000_000_000) as u32,
            )
        };
        let (at, atn) = split(a.atime);
        let (mt, mtn) = split(a.mtime);
        let (ct, ctn) = split(a.ctime);
        let mode = if a.ino == 0 {
            0
        } else {
            type_bits(a.kind) | (a.mode & 0o7777)
        };
        for v in [a.ino, a.size, a.blocks(), at, mt, ct] {
            self.u64(v)?;
        }
        for v in [
            atn, mtn, ctn, mode, a.nlink, a.uid, a.gid, a.rdev, BLKSIZE, 0,
        ] {
            self.u32(v)?;
        }
        Ok(())
    }

    /// `struct fuse_entry_out` (128 bytes).
    pub fn entry(&mut self, e: &Entry) -> Result<(), i32> {
        let (s, n) = (e.ttl.as_secs(), e.ttl.subsec_nanos());
        self.u64(e.attr.ino)?;
        self.u64(0)?; // generation
        self.u64(s)?;
        self.u64(s)?;
        self.u32(n)?;
        self.u32(n)?;
        self.attr(&e.attr)
    }

    /// `struct fuse_attr_out` (104 bytes).
    pub fn attr_out(&mut self, e: &Entry) -> Result<(), i32> {
        let (s, n) = (e.ttl.as_secs(), e.ttl.subsec_nanos());
        self.u64(s)?;
        self.u32(n)?;
        self.u32(0)?;
        self.attr(&e.attr)
    }

    /// `struct fuse_open_out` (16 bytes).
    pub fn open(&mut self, o: &Opened) -> Result<(), i32> {
        self.u64(o.fh)?;
        self.u32(o.flags)?;
        self.u32(0) // backing_id
    }

    /// `struct fuse_write_out`, `fuse_getxattr_out` (8 bytes: a size).
    pub fn size(&mut self, n: u32) -> Result<(), i32> {
        self.u32(n)?;
        self.u32(0)
    }

    /// `struct fuse_lseek_out`.
    pub fn offset(&mut self, off: i64) -> Result<(), i32> {
        self.u64(off as u64)
    }

    /// `struct fuse_statfs_out` (80 bytes).
    pub fn statfs(&mut self, s: &Statfs) -> Result<(), i32> {
        for v in [s.blocks, s.bfree, s.bavail, s.files, s.ffree] {
            self.u64(v)?;
        }
        for v in [s.bsize, s.namelen, s.frsize, 0, 0, 0, 0, 0, 0, 0] {
            self.u32(v)?;
        }
        Ok(())
    }

    /// One `struct fuse_dirent` (or `fuse_direntplus` when the entry has
    /// attributes), padded to 8 bytes, if it fits; returns true (the
    /// buffer is full, nothing written) when it does not.
    pub fn dirent(&mut self, e: &DirEntry) -> bool {
        let plus = if e.attr.is_some() { 128 } else { 0 };
        let size = plus + (24 + e.name.len()).next_multiple_of(8);
        if size > self.room() {
            return true;
        }
        self.put_dirent(e).is_err()
    }

    fn put_dirent(&mut self, e: &DirEntry) -> Result<(), i32> {
        if let Some(a) = e.attr {
            self.entry(&Entry {
                attr: a.clone(),
                ttl: crate::fs::ops::TTL,
            })?;
        }
        self.u64(e.ino)?;
        self.u64(e.next)?;
        self.u32(e.name.len() as u32)?;
        self.u32(type_bits(e.kind) >> 12)?;
        self.bytes(e.name)?;
        let pad = (8 - e.name.len() % 8) % 8;
        self.bytes(&[0u8; 8][..pad])
    }
}

/// Fill the entry's `in_out` with the `fuse_out_header` of a reply carrying
/// `payload_len` bytes (`errno` 0 for success), and `ring_ent_in_out` with
/// the payload size.
pub fn finish_reply(header: &mut [u8], unique: u64, errno: i32, payload_len: usize) {
    let len = (OUT_HEADER_SZ + payload_len) as u32;
    let fields: [(usize, &[u8]); 4] = [
        (0, &len.to_le_bytes()),
        (4, &(-errno).to_le_bytes()),
        (8, &unique.to_le_bytes()),
        (ENT_IN_OUT + 16, &(payload_len as u32).to_le_bytes()),
    ];
    for (at, b) in fields {
        if let Some(dst) = header.get_mut(at..at + b.len()) {
            dst.copy_from_slice(b);
        }
    }
}

#[cfg(test)]
mod tests;
