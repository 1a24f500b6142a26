//! The decoder and encoder against hand-built byte layouts of the uAPI
//! structs, and random bytes (never a panic).

use super::*;
use crate::fs::inode::{KIND_DIR, KIND_FILE};
use rand::{Rng, SeedableRng};
use std::time::Duration;

/// A little-endian struct builder.
#[derive(Default)]
struct B(Vec<u8>);

impl B {
    fn u16(mut self, v: u16) -> B {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u32(mut self, v: u32) -> B {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(mut self, v: u64) -> B {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn raw(mut self, b: &[u8]) -> B {
        self.0.extend_from_slice(b);
        self
    }
    /// As the kernel leaves the op area: our struct, then stale bytes.
    fn op_area(mut self) -> Vec<u8> {
        self.0.resize(OP_IN_SZ, 0xAA);
        self.0
    }
}

#[test]
fn header_and_entry_fields() {
    let mut header = B::default()
        .u32(40 + 6) // len
        .u32(LOOKUP)
        .u64(77) // unique
        .u64(1) // nodeid
        .u32(1000)
        .u32(100)
        .u32(4242)
        .u16(0)
        .u16(0)
        .0;
    header.resize(IN_OUT_SZ + OP_IN_SZ, 0);
    header.extend(B::default().u64(0).u64(77).u32(6).u32(0).u64(0).0);
    assert_eq!(header.len(), HEADER_SZ);
    let h = InHeader::decode(&header).unwrap();
    assert_eq!(
        (h.opcode, h.unique, h.nodeid, h.uid, h.gid, h.pid),
        (LOOKUP, 77, 1, 1000, 100, 4242)
    );
    let e = EntInOut::decode(&header).unwrap();
    assert_eq!((e.commit_id, e.payload_sz), (77, 6));
    assert_eq!(InHeader::decode(&header[..39]), None);
    assert_eq!(EntInOut::decode(&header[..HEADER_SZ - 1]), None);
    let c = cmd_req(77, 3);
    assert_eq!(&c[8..16], &77u64.to_le_bytes());
    assert_eq!(&c[16..18], &3u16.to_le_bytes());
    assert!(c[..8].iter().chain(&c[18..]).all(|&b| b == 0));
}

#[test]
fn decodes_names_and_argument_structs() {
    let none = B::default().op_area();
    assert_eq!(
        decode(LOOKUP, &none, b"file.txt\0", false),
        Ok(Op::Lookup { name: b"file.txt" })
    );
    assert_eq!(
        decode(SYMLINK, &none, b"link\0../target\0", false),
        Ok(Op::Symlink {
            name: b"link",
            target: b"../target"
        })
    );
    let mkdir = B::default().u32(0o40755).u32(0o022).op_area();
    assert_eq!(
        decode(MKDIR, &mkdir, b"d\0", false),
        Ok(Op::Mkdir {
            name: b"d",
            mode: 0o40755,
            umask: 0o022
        })
    );
    let create = B::default()
        .u32(libc::O_WRONLY as u32)
        .u32(0o100644)
        .u32(0o022)
        .u32(0)
        .op_area();
    assert_eq!(
        decode(CREATE, &create, b"new\0", false),
        Ok(Op::Create {
            name: b"new",
            mode: 0o100644,
            umask: 0o022,
            flags: libc::O_WRONLY
        })
    );
    let rename2 = B::default().u64(9).u32(1).u32(0).op_area();
    assert_eq!(
        decode(RENAME2, &rename2, b"a\0b\0", false),
        Ok(Op::Rename {
            name: b"a",
            newdir: 9,
            newname: b"b",
            flags: 1
        })
    );
    let rename = B::default().u64(9).op_area();
    assert!(matches!(
        decode(RENAME, &rename, b"a\0b\0", false),
        Ok(Op::Rename { flags: 0, .. })
    ));
    // fuse_write_in: fh, offset, size, write_flags, lock_owner, flags.
    let write = B::default()
        .u64(5)
        .u64(4096)
        .u32(3)
        .u32(WRITE_KILL)
        .u64(0)
        .u32(libc::O_APPEND as u32)
        .u32(0)
        .op_area();
    assert_eq!(
        decode(WRITE, &write, b"abcdef", false),
        Ok(Op::Write {
            offset: 4096,
            data: b"abc",
            write_flags: WRITE_KILL,
            flags: libc::O_APPEND
        })
    );
    assert_eq!(decode(WRITE, &write, b"ab", false), Err(libc::EINVAL));
    let read = B::default().u64(5).u64(8192).u32(65536).op_area();
    assert_eq!(
        decode(READ, &read, b"", false),
        Ok(Op::Read {
            fh: 5,
            offset: 8192,
            size: 65536
        })
    );
    assert!(matches!(
        decode(READDIRPLUS, &read, b"", false),
        Ok(Op::Readdir { plus: true, .. })
    ));
    let setxattr = B::default().u32(3).u32(1).op_area();
    assert_eq!(
        decode(SETXATTR, &setxattr, b"user.k\0v12", false),
        Ok(Op::Setxattr {
            name: b"user.k",
            value: b"v12",
            flags: 1
        })
    );
    let lseek = B::default()
        .u64(5)
        .u64(100)
        .u32(libc::SEEK_DATA as u32)
        .op_area();
    assert_eq!(
        decode(LSEEK, &lseek, b"", false),
        Ok(Op::Lseek {
            offset: 100,
            whence: libc::SEEK_DATA
        })
    );
    let falloc = B::default().u64(5).u64(10).u64(20).u32(1).op_area();
    assert_eq!(
        decode(FALLOCATE, &falloc, b"", false),
        Ok(Op::Fallocate {
            offset: 10,
            length: 20,
            mode: 1
        })
    );
    assert_eq!(decode(4000, &none, b"", false), Ok(Op::Unknown(4000)));
    assert_eq!(Op::Unknown(4000).kind(), None);
    // A name without its NUL is refused, not read past.
    assert_eq!(decode(LOOKUP, &none, b"noterm", false), Err(libc::EINVAL));
    assert_eq!(decode(SYMLINK, &none, b"one\0", false), Err(libc::EINVAL));
}

const WRITE_KILL: u32 = crate::fs::ops::WRITE_KILL_SUIDGID;

#[test]
fn decodes_setattr() {
    // fuse_setattr_in: valid, padding, fh, size, lock_owner, atime, mtime,
    // ctime, atimensec, mtimensec, ctimensec, mode, unused4, uid, gid.
    let area = |valid: u32| {
        B::default()
            .u32(valid)
            .u32(0)
            .u64(0)
            .u64(12345)
            .u64(0)
            .u64(1_700_000_000)
            .u64(1_600_000_000)
            .u64(0)
            .u32(5)
            .u32(6)
            .u32(0)
            .u32(0o100600)
            .u32(0)
            .u32(1000)
            .u32(2000)
            .u32(0)
            .op_area()
    };
    let all = FATTR_MODE | FATTR_UID | FATTR_GID | FATTR_SIZE | FATTR_ATIME | FATTR_MTIME;
    assert_eq!(
        decode(SETATTR, &area(all), b"", false),
        Ok(Op::Setattr(SetAttr {
            mode: Some(0o100600),
            uid: Some(1000),
            gid: Some(2000),
            size: Some(12345),
            atime: Some(TimeSet::At(1_700_000_000_000_000_005)),
            mtime: Some(TimeSet::At(1_600_000_000_000_000_006)),
        }))
    );
    assert_eq!(
        decode(
            SETATTR,
            &area(FATTR_ATIME | FATTR_ATIME_NOW | FATTR_MTIME_NOW),
            b"",
            false
        ),
        Ok(Op::Setattr(SetAttr {
            atime: Some(TimeSet::Now),
            mtime: Some(TimeSet::Now),
            ..Default::default()
        }))
    );
    assert_eq!(
        decode(SETATTR, &area(FATTR_SIZE)[..20], b"", false),
        Err(libc::EINVAL)
    );
}

fn attr() -> Attr {
    Attr {
        ino: 42,
        kind: KIND_FILE,
        mode: libc::S_IFREG | 0o4755,
        uid: 1000,
        gid: 100,
        nlink: 2,
        rdev: 0,
        size: 10_000,
        atime: -1_500_000_000, // 1.5 s before the epoch
        mtime: 1_700_000_000_123_456_789,
        ctime: 7,
        chunks: 3,
        ..Default::default()
    }
}

#[test]
fn encodes_entry_attr_open_statfs() {
    let mut buf = vec![0u8; 4096];
    let mut out = Out::new(&mut buf);
    let e = Entry {
        attr: attr(),
        ttl: Duration::from_millis(1500),
    };
    out.entry(&e).unwrap();
    assert_eq!(out.len(), 128);
    let b = &buf[..128];
    let want = B::default()
        .u64(42)
        .u64(0)
        .u64(1)
        .u64(1)
        .u32(500_000_000)
        .u32(500_000_000)
        // fuse_attr
        .u64(42)
        .u64(10_000)
        .u64(24) // 3 chunks of 8 sectors
        .u64(-2i64 as u64)
        .u64(1_700_000_000)
        .u64(0)
        .u32(500_000_000)
        .u32(123_456_789)
        .u32(7)
        .u32(libc::S_IFREG | 0o4755)
        .u32(2)
        .u32(1000)
        .u32(100)
        .u32(0)
        .u32(4096)
        .u32(0)
        .0;
    assert_eq!(b, &want[..]);

    let mut buf = vec![0u8; 4096];
    let mut out = Out::new(&mut buf);
    Reply::Attr(e.clone()).encode(&mut out).unwrap();
    assert_eq!(out.len(), 104);
    let n = out.len();
    assert_eq!(
        &buf[..16],
        &B::default().u64(1).u32(500_000_000).u32(0).0[..]
    );
    assert_eq!(&buf[16..n], &want[40..]);

    let mut buf = vec![0u8; 4096];
    let mut out = Out::new(&mut buf);
    let o = Opened { fh: 9, flags: 2 };
    Reply::Create(e, o).encode(&mut out).unwrap();
    assert_eq!(out.len(), 144);
    assert_eq!(&buf[128..144], &B::default().u64(9).u32(2).u32(0).0[..]);

    let mut buf = vec![0u8; 4096];
    let mut out = Out::new(&mut buf);
    let s = Statfs {
        blocks: 1,
        bfree: 2,
        bavail: 3,
        files: 4,
        ffree: 5,
        bsize: 4096,
        namelen: 255,
        frsize: 512,
    };
    Reply::Statfs(s).encode(&mut out).unwrap();
    assert_eq!(out.len(), 80);
    let want = B::default()
        .u64(1)
        .u64(2)
        .u64(3)
        .u64(4)
        .u64(5)
        .u32(4096)
        .u32(255)
        .u32(512)
        .raw(&[0; 28])
        .0;
    assert_eq!(&buf[..80], &want[..]);

    // A negative entry: inode 0, mode 0, still a full entry_out.
    let mut buf = vec![0u8; 256];
    let mut out = Out::new(&mut buf);
    let neg = Entry {
        attr: Attr::default(),
        ttl: Duration::from_secs(1),
    };
    out.entry(&neg).unwrap();
    assert_eq!(out.len(), 128);
    assert_eq!(&buf[..8], &[0; 8]);

    // Too small a buffer is EIO, not a panic.
    let mut small = vec![0u8; 100];
    let mut out = Out::new(&mut small);
    assert_eq!(Reply::Data(vec![1; 101]).encode(&mut out), Err(libc::EIO));
}

#[test]
fn packs_dirents_until_full() {
    let a = Attr {
        ino: 5,
        kind: KIND_DIR,
        mode: libc::S_IFDIR | 0o755,
        ..attr()
    };
    let mut buf = vec![0u8; 80];
    let mut out = Out::new(&mut buf);
    let e = |name: &'static [u8], next| DirEntry {
        ino: 5,
        next,
        kind: KIND_DIR,
        name,
        attr: None,
    };
    assert!(!out.dirent(&e(b".", 1))); // 24 + 1 -> 32
    assert!(!out.dirent(&e(b"abcdefghij", 2))); // 24 + 10 -> 40
    assert_eq!(out.len(), 72);
    assert!(out.dirent(&e(b"x", 3)), "a third does not fit in 80");
    assert_eq!(out.len(), 72);
    let want = B::default()
        .u64(5)
        .u64(1)
        .u32(1)
        .u32(libc::DT_DIR as u32)
        .raw(b".\0\0\0\0\0\0\0")
        .0;
    assert_eq!(&buf[..32], &want[..]);

    let mut buf = vec![0u8; 4096];
    let mut out = Out::new(&mut buf);
    let plus = DirEntry {
        attr: Some(&a),
        ..e(b"sub", 7)
    };
    assert!(!out.dirent(&plus));
    assert_eq!(out.len(), 128 + 32);
    assert_eq!(&buf[..8], &5u64.to_le_bytes());
    assert_eq!(&buf[128 + 8..128 + 16], &7u64.to_le_bytes());
}

#[test]
fn reply_header() {
    let mut h = vec![0u8; HEADER_SZ];
    finish_reply(&mut h, 99, libc::ENOENT, 0);
    assert_eq!(
        &h[..16],
        &B::default().u32(16).u32(-libc::ENOENT as u32).u64(99).0[..]
    );
    finish_reply(&mut h, 100, 0, 128);
    assert_eq!(&h[..16], &B::default().u32(144).u32(0).u64(100).0[..]);
    assert_eq!(EntInOut::decode(&h).unwrap().payload_sz, 128);
    // A short buffer is left alone where it cannot hold a field.
    let mut short = vec![0u8; 10];
    finish_reply(&mut short, 1, 0, 0);
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    for _ in 0..20_000 {
        let opcode = rng.gen_range(0..60);
        let op_len = rng.gen_range(0..=OP_IN_SZ);
        let op_in: Vec<u8> = (0..op_len).map(|_| rng.gen()).collect();
        let pay_len = rng.gen_range(0..64);
        let payload: Vec<u8> = (0..pay_len)
            .map(|_| if rng.gen_bool(0.2) { 0 } else { rng.gen() })
            .collect();
        let _ = decode(opcode, &op_in, &payload, rng.gen());
        let _ = InHeader::decode(&op_in);
        let _ = EntInOut::decode(&op_in);
    }
}

#[test]
fn only_big_transfers_and_fsyncs_may_block() {
    let rw = |size: u32| B::default().u64(7).u64(0).u32(size).op_area();
    let big = 128 << 10;
    assert!(may_block(READ, &rw(1 << 20), big));
    assert!(may_block(WRITE, &rw(big), big));
    assert!(!may_block(READ, &rw(4096), big));
    assert!(!may_block(WRITE, &rw(10240), big));
    assert!(may_block(FSYNC, &[], big));
    assert!(may_block(FSYNCDIR, &[], big));
    for op in [
        LOOKUP,
        GETATTR,
        SETATTR,
        CREATE,
        UNLINK,
        RELEASE,
        READDIRPLUS,
    ] {
        assert!(!may_block(op, &rw(1 << 20), big), "opcode {op}");
    }
    // A short op area is not a big transfer (and no panic).
    assert!(!may_block(READ, &[0u8; 10], big));
}
