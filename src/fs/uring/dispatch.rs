//! Answer one decoded ring request: call the `FsOps` method for it (the
//! same one the `/dev/fuse` transport calls) and encode what it returns.

//!
//! The answer is owned (`Reply`), so the request's names and write data can
//! be read in place from the entry's payload buffer, which the reply then
//! overwrites.

use super::wire::{InHeader, Op, Out, Reply};
use crate::fs::ops::{DirEntry, FsOps, XattrOut};

/// Serve `op`; `Err` is the errno to answer with.
/// `on_worker`: a ring thread handed it to the worker pool (counted apart).
pub fn serve(ops: &FsOps, h: &InHeader, op: Op, on_worker: bool) -> Result<Reply, i32> {
    match op.kind() {
        Some(kind) => {
            ops.ring_requests.count(kind);
            if on_worker {
                ops.ring_worker_requests.count(kind);
            }
        }
        None => return Err(libc::ENOSYS),
    }
    let c = h.caller();
    let ino = h.nodeid;
    let reply = match op {
        Op::Lookup { name } => Reply::Entry(ops.lookup(ino, name)?),
        Op::Getattr => Reply::Attr(ops.getattr(ino)?),
        Op::Setattr(s) => Reply::Attr(ops.setattr(c, ino, s)?),
        Op::Readlink => Reply::Data(ops.readlink(ino)?),
        Op::Symlink { name, target } => Reply::Entry(ops.symlink(c, ino, name, target)?),
        Op::Mknod {
            name,
            mode,
            rdev,
            umask,
        } => Reply::Entry(ops.mknod(c, ino, name, mode, umask, rdev)?),
        Op::Mkdir { name, mode, umask } => Reply::Entry(ops.mkdir(c, ino, name, mode, umask)?),
        Op::Unlink { name } => empty(ops.unlink(c, ino, name))?,
        Op::Rmdir { name } => empty(ops.rmdir(c, ino, name))?,
        Op::Rename {
            name,
            newdir,
            newname,
            flags,
        } => empty(ops.rename(c, ino, name, newdir, newname, flags))?,
        Op::Link { oldnodeid, name } => Reply::Entry(ops.link(oldnodeid, ino, name)?),
        Op::Open { flags } => Reply::Open(ops.open(ino, flags)?),
        Op::Read { fh, offset, size } => Reply::Data(ops.read(ino, fh, offset, size)?),
        Op::Write {
            offset,
            data,
            write_flags,
            flags,
        } => Reply::Size(ops.write(c, ino, offset, data, write_flags, flags)?),
        Op::Statfs => Reply::Statfs(ops.statfs()),
        Op::Release { fh } => empty(ops.release(ino, fh))?,
        Op::Fsync | Op::Fsyncdir => empty(ops.fsync())?,
        Op::Setxattr { name, value, flags } => empty(ops.setxattr(c, ino, name, value, flags))?,
        Op::Getxattr { name, size } => xattr(ops.getxattr(c, ino, name, size)?),
        Op::Listxattr { size } => xattr(ops.listxattr(c, ino, size)?),
        Op::Removexattr { name } => empty(ops.removexattr(c, ino, name))?,
        Op::Flush => empty(ops.flush())?,
        Op::Opendir => Reply::Open(ops.opendir(ino)?),
        Op::Readdir {
            fh,
            offset,
            size,
            plus,
        } => {
            // The kernel asks for at most a few pages of entries.
            let mut buf = vec![0u8; (size as usize).min(1 << 20)];
            let mut out = Out::new(&mut buf);
            let mut add = |e: DirEntry| out.dirent(&e);
            ops.readdir(ino, fh, offset, plus, &mut add)?;
            let n = out.len();
            buf.truncate(n);
            Reply::Data(buf)
        }
        Op::Releasedir { fh } => empty(ops.releasedir(ino, fh))?,
        Op::Access { mask } => empty(ops.access(c, ino, mask))?,
        Op::Create {
            name,
            mode,
            umask,
            flags,
        } => {
            let (e, o) = ops.create(c, ino, name, mode, umask, flags)?;
            Reply::Create(e, o)
        }
        Op::Ioctl => return Err(ops.ioctl()),
        Op::Fallocate {
            offset,
            length,
            mode,
        } => empty(ops.fallocate(ino, offset, length, mode))?,
        Op::Lseek { offset, whence } => Reply::Offset(ops.lseek(ino, offset, whence)?),
        Op::Unknown(_) => return Err(libc::ENOSYS),
    };
    Ok(reply)
}

fn xattr(x: XattrOut) -> Reply {
    match x {
        XattrOut::Size(n) => Reply::Size(n),
        XattrOut::Data(v) => Reply::Data(v),
    }
}

fn empty(r: Result<(), i32>) -> Result<Reply, i32> {
    r.map(|()| Reply::Empty)
}
