//! The real `Env`: files through `std::fs`, `fdatasync`, `flock`.
//!
//! Writable files buffer appends in user space (64 KiB) because SSTables
//! are written in many small pieces; `flush()` hands the buffer to the
//! kernel with `write(2)`, which is what makes a WAL record survive a kill -9
//! of the process, and `sync()` adds `fdatasync`.
//!
//! A writable file that has seen a failed write or fdatasync refuses every
//! later operation: after a failed write(2) the file may hold part of the
//! buffer (retrying would duplicate bytes), and after a failed fdatasync
//! Linux may already have dropped the dirty pages, so a retry could report
//! success for data that never reached the disk.
//!
//! `truncate` is durable when it returns (it fsyncs), so a cut torn tail
//! stays cut; `FaultEnv` models it the same way.
//!
//! Every file and directory the engine creates is owner-only — files 0600,
//! directories 0700, whatever the umask — because they hold every file's
//! contents, names and xattrs whatever the filesystem's own permission bits
//! say (see [`make_private`]).

use crate::engine::env::{Env, FileLock, RandomAccessFile, SharedLock, WritableFile};
use crate::engine::error::{Error, Result};
use std::fs::{File, OpenOptions};
use std::io::{IoSlice, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

const BUFFER_SIZE: usize = 64 << 10;

#[derive(Debug, Default, Clone, Copy)]
pub struct PosixEnv;

impl PosixEnv {
    pub fn new() -> PosixEnv {
        PosixEnv
    }
}

fn ctx(what: &str, path: &Path) -> String {
    format!("{what} {}", path.display())
}

/// Make a file the engine (or the daemon) writes in a data directory
/// owner-only: mode 0600 whatever the umask (the umask can only take bits
/// away, and a file kept from an older version may be 0644). Run as root
/// in a directory that belongs to someone else (root compacting or
/// mounting a user's data directory), the file is given to the
/// directory's owner, so that the owner's own daemon can still open it.
pub fn make_private(file: &File, path: &Path) -> std::io::Result<()> {
    let md = file.metadata()?;
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 && md.uid() != euid {
        return Ok(()); // someone else's file: not ours to change
    }
    if md.mode() & 0o7777 != 0o600 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    if euid != 0 {
        return Ok(());
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = std::fs::metadata(parent)?;
    if dir.uid() != md.uid() {
        std::os::unix::fs::fchown(file, Some(dir.uid()), Some(dir.gid()))?;
    }
    Ok(())
}

/// `open` with mode 0600 for a file that may be created, then
/// [`make_private`].
pub fn open_private(opts: &mut OpenOptions, path: &Path) -> std::io::Result<File> {
    let file = opts.mode(0o600).open(path)?;
    make_private(&file, path)?;
    Ok(file)
}

/// Create `dir` (and missing parents) owner-only: mode 0700 whatever the
/// umask, owned by whoever creates it. An existing directory is left as it
/// is (mounting warns about one others can read).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_private_dir(parent)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) => return Err(e),
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// The most parts one `writev` takes (Linux's IOV_MAX).
const IOV_MAX: usize = 1024;

/// Write every byte of `parts`, in order, with as few `writev`s as the
/// kernel allows (a short write resumes where it stopped).
fn write_all_parts(f: &mut File, parts: &[&[u8]]) -> std::io::Result<()> {
    let (mut i, mut off) = (0, 0);
    while i < parts.len() {
        if off == parts[i].len() {
            i += 1;
            off = 0;
            continue;
        }
        let end = (i + IOV_MAX).min(parts.len());
        let mut iov = Vec::with_capacity(end - i);
        iov.push(IoSlice::new(&parts[i][off..]));
        iov.extend(parts[i + 1..end].iter().map(|p| IoSlice::new(p)));
        let mut n = match f.write_vectored(&iov) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        while n > 0 {
            let left = parts[i].len() - off;
            if n >= left {
                n -= left;
                i += 1;
                off = 0;
            } else {
                off += n;
                n = 0;
            }
        }
    }
    Ok(())
}

struct PosixWritable {
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
    len: u64,
    /// Set by a failed write or fdatasync: the file's state is unknown.
    failed: Option<String>,
    /// See `WritableFile::set_sync_headroom`; 0 = off.
    headroom: u64,
    /// The file is zero-filled (or written) up to here.
    zeroed_to: u64,
}

impl PosixWritable {
    fn check(&self, what: &str) -> Result<()> {
        match &self.failed {
            None => Ok(()),
            Some(first) => Err(Error::io(
                ctx(what, &self.path),
                std::io::Error::other(format!("refused after an earlier failure: {first}")),
            )),
        }
    }

    /// Run a write or sync; a failure poisons the file.
    fn guarded(
        &mut self,
        what: &str,
        op: impl FnOnce(&mut File) -> std::io::Result<()>,
    ) -> Result<()> {
        if let Err(e) = op(&mut self.file) {
            let err = Error::io(ctx(what, &self.path), e);
            self.failed = Some(err.to_string());
            return Err(err);
        }
        Ok(())
    }

    /// Write zeros from the end of what is on disk to `headroom` past the
    /// logical end (the sync that follows makes them durable). Appends keep
    /// going at the logical end, over the zeros. A failure (a full disk)
    /// only turns the headroom off: nothing logical was written.
    fn extend_zeros(&mut self) {
        let from = self.zeroed_to.max(self.len);
        let to = self.len + self.headroom;
        let zeros = vec![0u8; (to - from) as usize];
        match self.file.write_all_at(&zeros, from) {
            Ok(()) => self.zeroed_to = to,
            Err(e) => {
                log::debug!("{}: no zero headroom: {e}", self.path.display());
                self.headroom = 0;
            }
        }
    }

    fn write_out(&mut self) -> Result<()> {
        if !self.buf.is_empty() {
            let buf = std::mem::take(&mut self.buf);
            let result = self.guarded("write", |f| f.write_all(&buf));
            self.buf = buf;
            result?;
            self.buf.clear();
        }
        Ok(())
    }
}

impl WritableFile for PosixWritable {
    fn append(&mut self, data: &[u8]) -> Result<()> {
        self.check("write")?;
        if self.buf.len() + data.len() > BUFFER_SIZE {
            self.write_out()?;
            if data.len() >= BUFFER_SIZE {
                self.guarded("write", |f| f.write_all(data))?;
                self.len += data.len() as u64;
                return Ok(());
            }
        }
        self.buf.extend_from_slice(data);
        self.len += data.len() as u64;
        Ok(())
    }

    fn append_vectored(&mut self, parts: &[&[u8]]) -> Result<()> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total < BUFFER_SIZE {
            for p in parts {
                self.append(p)?;
            }
            return Ok(());
        }
        self.check("write")?;
        self.write_out()?;
        self.guarded("write", |f| write_all_parts(f, parts))?;
        self.len += total as u64;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.check("write")?;
        self.write_out()
    }

    fn sync(&mut self) -> Result<()> {
        self.check("fdatasync")?;
        self.write_out()?;
        if self.headroom > 0 && self.len + self.headroom / 2 > self.zeroed_to {
            self.extend_zeros();
        }
        self.guarded("fdatasync", |f| f.sync_data())
    }

    fn set_sync_headroom(&mut self, bytes: u64) {
        self.headroom = bytes;
    }

    fn start_writeback(&mut self) {
        if self.failed.is_some() {
            return;
        }
        match self.file.try_clone() {
            Ok(dup) => writeback::start(dup, self.path.clone()),
            Err(e) => log::debug!("{}: dup for writeback: {e}", self.path.display()),
        }
    }

    fn len(&self) -> u64 {
        self.len
    }
}

/// `start_writeback`'s `sync_file_range` runs on a thread of its own: it
/// builds and submits the I/O of everything dirty in the file (a megabyte
/// or more), and it waits when the device's request queue is full. In the
/// writer's path that is a FUSE ring thread with a caller waiting for its
/// reply (3% of a `cp -r`'s samples there, and any wait for the device
/// holds up every request of that CPU). The thread gets a duplicate
/// descriptor, so the file may close meanwhile.
mod writeback {
    use std::fs::File;
    use std::os::unix::io::AsRawFd;
    use std::path::PathBuf;
    use std::sync::mpsc::{channel, Sender};
    use std::sync::OnceLock;

    type Job = (File, PathBuf);

    static QUEUE: OnceLock<Option<Sender<Job>>> = OnceLock::new();

    fn run((file, path): Job) {
        // SAFETY: sync_file_range on a valid, owned descriptor; whole file.
        let rc =
            unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
        if rc != 0 {
            log::debug!(
                "{}: sync_file_range: {}",
                path.display(),
                std::io::Error::last_os_error()
            );
        }
    }

    /// Queue `file`'s writeback; run it here if no thread could start.
    pub fn start(file: File, path: PathBuf) {
        let queue = QUEUE.get_or_init(|| {
            let (tx, rx) = channel::<Job>();
            let spawned = std::thread::Builder::new()
                .name("lsmfs-writeback".into())
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        run(job);
                    }
                });
            match spawned {
                Ok(_) => Some(tx),
                Err(e) => {
                    log::warn!("no writeback thread ({e}): writeback starts inline");
                    None
                }
            }
        });
        let job = (file, path);
        let job = match queue {
            Some(tx) => match tx.send(job) {
                Ok(()) => return,
                Err(back) => back.0,
            },
            None => job,
        };
        run(job);
    }
}

impl Drop for PosixWritable {
    fn drop(&mut self) {
        if self.failed.is_some() {
            return;
        }
        if let Err(e) = self.write_out() {
            log::warn!("{e} (while closing)");
        }
    }
}

struct PosixRandom {
    path: PathBuf,
    file: File,
    len: u64,
}

impl RandomAccessFile for PosixRandom {
    fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        // A corrupt length must not make us allocate gigabytes first.
        let end = offset.checked_add(len as u64);
        if end.is_none_or(|end| end > self.len) {
            return Err(Error::corruption(
                &self.path,
                offset,
                format!("short read: wanted {len} bytes, file is {} bytes", self.len),
            ));
        }
        let mut buf = vec![0u8; len];
        match self.file.read_exact_at(&mut buf, offset) {
            Ok(()) => Ok(buf),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(Error::corruption(
                &self.path,
                offset,
                format!("short read: wanted {len} bytes, file is {} bytes", self.len),
            )),
            Err(e) => Err(Error::io(ctx("read", &self.path), e)),
        }
    }

    fn len(&self) -> u64 {
        self.len
    }
}

struct PosixLock {
    file: File,
}

impl FileLock for PosixLock {
    fn set_holder(&self, text: &str) {
        let _ = self.file.set_len(0);
        let _ = self.file.write_all_at(text.as_bytes(), 0);
    }
}

/// Who holds the lock in `file`, from what its last exclusive holder wrote
/// there (`pid N` on the first line, a note after it; see `filename`).
fn lock_holder(file: &File) -> Option<String> {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut (&*file), &mut text).ok()?;
    let mut lines = text.lines();
    let pid: u32 = lines.next()?.strip_prefix("pid ")?.trim().parse().ok()?;
    let note = lines.next().map(str::trim).filter(|n| !n.is_empty());
    if !Path::new(&format!("/proc/{pid}")).exists() {
        return Some(format!(
            "another process (its last writer, pid {pid}, has exited: an offline \
             `lsmfs check`, `stats` or `inspect` may be reading it)"
        ));
    }
    Some(match note {
        Some(n) => format!("lsmfs process {pid} ({n})"),
        None => format!("lsmfs process {pid}"),
    })
}

fn flock(file: &File, path: &Path, how: libc::c_int) -> Result<()> {
    // SAFETY: flock on a valid, owned descriptor.
    let rc = unsafe { libc::flock(file.as_raw_fd(), how | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        return Err(Error::Locked {
            dir: path.parent().unwrap_or(path).to_path_buf(),
            holder: lock_holder(file),
        });
    }
    Err(Error::io(ctx("flock", path), err))
}

impl Env for PosixEnv {
    fn create_writable(&self, path: &Path) -> Result<Box<dyn WritableFile>> {
        let file = open_private(
            OpenOptions::new().write(true).create(true).truncate(true),
            path,
        )
        .map_err(|e| Error::io(ctx("create", path), e))?;
        Ok(Box::new(PosixWritable {
            path: path.to_path_buf(),
            file,
            buf: Vec::with_capacity(BUFFER_SIZE),
            len: 0,
            failed: None,
            headroom: 0,
            zeroed_to: 0,
        }))
    }

    fn open_random_access(&self, path: &Path) -> Result<Box<dyn RandomAccessFile>> {
        let file = File::open(path).map_err(|e| Error::io(ctx("open", path), e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io(ctx("stat", path), e))?
            .len();
        Ok(Box::new(PosixRandom {
            path: path.to_path_buf(),
            file,
            len,
        }))
    }

    fn read_all(&self, path: &Path) -> Result<Vec<u8>> {
        std::fs::read(path).map_err(|e| Error::io(ctx("read", path), e))
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        std::fs::rename(from, to)
            .map_err(|e| Error::io(format!("rename {} to {}", from.display(), to.display()), e))
    }

    fn remove_file(&self, path: &Path) -> Result<()> {
        std::fs::remove_file(path).map_err(|e| Error::io(ctx("remove", path), e))
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        let f = File::open(dir).map_err(|e| Error::io(ctx("open directory", dir), e))?;
        f.sync_all()
            .map_err(|e| Error::io(ctx("fsync directory", dir), e))
    }

    fn list_dir(&self, dir: &Path) -> Result<Vec<String>> {
        let rd = std::fs::read_dir(dir).map_err(|e| Error::io(ctx("list", dir), e))?;
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| Error::io(ctx("list", dir), e))?;
            out.push(entry.file_name().to_string_lossy().into_owned());
        }
        Ok(out)
    }

    fn file_size(&self, path: &Path) -> Result<u64> {
        std::fs::metadata(path)
            .map(|m| m.len())
            .map_err(|e| Error::io(ctx("stat", path), e))
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn create_dir_all(&self, dir: &Path) -> Result<()> {
        create_private_dir(dir).map_err(|e| Error::io(ctx("create directory", dir), e))
    }

    fn lock_file(&self, path: &Path) -> Result<Box<dyn FileLock>> {
        let file = open_private(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false),
            path,
        )
        .map_err(|e| Error::io(ctx("open lock file", path), e))?;
        flock(&file, path, libc::LOCK_EX)?;
        Ok(Box::new(PosixLock { file }))
    }

    fn lock_file_shared(&self, path: &Path) -> Result<SharedLock> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) => {
                return Ok(SharedLock::Unavailable(format!(
                    "cannot open {}: {e}",
                    path.display()
                )))
            }
        };
        flock(&file, path, libc::LOCK_SH)?;
        Ok(SharedLock::Held(Box::new(PosixLock { file })))
    }

    fn truncate(&self, path: &Path, len: u64) -> Result<()> {
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| Error::io(ctx("open", path), e))?;
        f.set_len(len)
            .map_err(|e| Error::io(ctx("truncate", path), e))?;
        f.sync_all()
            .map_err(|e| Error::io(ctx("fsync after truncate", path), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, PosixEnv) {
        (tempfile::tempdir().unwrap(), PosixEnv::new())
    }

    #[test]
    fn vectored_appends_keep_order_with_buffered_ones() {
        let (dir, env) = setup();
        let p = dir.path().join("v");
        let mut f = env.create_writable(&p).unwrap();
        let mut want = Vec::new();
        f.append(b"head").unwrap();
        want.extend_from_slice(b"head");
        // Small: buffered. Large, with an empty part and more parts than
        // one writev takes: straight to the file.
        let small: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i; 10]).collect();
        let large: Vec<Vec<u8>> = (0..3000u32)
            .map(|i| vec![i as u8; (i % 97) as usize])
            .collect();
        for set in [&small, &large] {
            let parts: Vec<&[u8]> = set.iter().map(|v| &v[..]).collect();
            f.append_vectored(&parts).unwrap();
            for v in set.iter() {
                want.extend_from_slice(v);
            }
        }
        f.append(b"tail").unwrap();
        want.extend_from_slice(b"tail");
        assert_eq!(f.len(), want.len() as u64);
        f.flush().unwrap();
        assert_eq!(env.read_all(&p).unwrap(), want);
    }

    #[test]
    fn appends_are_buffered_until_flush_and_flushed_on_drop() {
        let (dir, env) = setup();
        let p = dir.path().join("a");
        let mut f = env.create_writable(&p).unwrap();
        assert!(f.is_empty());
        f.append(b"hello ").unwrap();
        assert_eq!(
            env.file_size(&p).unwrap(),
            0,
            "still in the user-space buffer"
        );
        f.flush().unwrap();
        assert_eq!(env.read_all(&p).unwrap(), b"hello ");
        f.append(b"world").unwrap();
        assert_eq!(f.len(), 11);
        drop(f);
        assert_eq!(env.read_all(&p).unwrap(), b"hello world");
        // create_writable truncates.
        let f = env.create_writable(&p).unwrap();
        drop(f);
        assert_eq!(env.file_size(&p).unwrap(), 0);
    }

    /// With sync headroom a log's fsyncs mostly leave its size alone: the
    /// file holds the records, then zeros, and reads back as exactly the
    /// records with no torn tail.
    #[test]
    fn sync_headroom_keeps_zeros_past_the_end_of_a_log() {
        use crate::engine::log::reader::LogReader;
        use crate::engine::log::writer::LogWriter;
        let (dir, env) = setup();
        let p = dir.path().join("000007.log");
        let mut f = env.create_writable(&p).unwrap();
        f.set_sync_headroom(4096);
        let mut w = LogWriter::new(f);
        let mut sizes = Vec::new();
        for i in 0..40u32 {
            w.add_record(format!("record {i}").repeat(5).as_bytes())
                .unwrap();
            w.sync().unwrap();
            sizes.push(env.file_size(&p).unwrap());
        }
        // ~60 bytes a record: the size moved every ~34 syncs, not each time.
        let changes = sizes.windows(2).filter(|s| s[0] != s[1]).count();
        assert!(changes <= 2, "size changed {changes} times: {sizes:?}");
        let data = env.read_all(&p).unwrap();
        assert!(data.len() as u64 > w.len() && data[w.len() as usize..].iter().all(|&b| b == 0));
        let mut r = LogReader::new(p.clone(), data);
        for i in 0..40u32 {
            let rec = r.read_record().unwrap().unwrap();
            assert_eq!(rec, format!("record {i}").repeat(5).into_bytes());
        }
        assert_eq!(r.read_record().unwrap(), None);
        assert!(r.torn_tail().is_none(), "{:?}", r.torn_tail());
        // Without headroom the file is exactly what was written.
        let q = dir.path().join("plain");
        let mut g = env.create_writable(&q).unwrap();
        g.append(b"abc").unwrap();
        g.sync().unwrap();
        assert_eq!(env.read_all(&q).unwrap(), b"abc");
    }

    /// The writeback thread works on a duplicate descriptor: the file may
    /// close at once, and the descriptor number its successor gets is
    /// never touched by the thread.
    #[test]
    fn writeback_outlives_its_file_and_touches_no_other() {
        let (dir, env) = setup();
        for i in 0..50u32 {
            let p = dir.path().join(format!("{i:06}.blob"));
            let mut f = env.create_writable(&p).unwrap();
            f.append(&vec![i as u8; 70 << 10]).unwrap();
            f.flush().unwrap();
            f.start_writeback();
            drop(f);
            let q = dir.path().join(format!("next{i}"));
            let mut g = env.create_writable(&q).unwrap();
            g.append(b"after").unwrap();
            g.sync().unwrap();
            assert_eq!(env.read_all(&p).unwrap(), vec![i as u8; 70 << 10]);
            assert_eq!(env.read_all(&q).unwrap(), b"after");
        }
    }

    #[test]
    fn a_full_buffer_is_written_automatically() {
        let (dir, env) = setup();
        let p = dir.path().join("a");
        let mut f = env.create_writable(&p).unwrap();
        let chunk = vec![1u8; 1000];
        let mut total = 0;
        while total <= BUFFER_SIZE {
            f.append(&chunk).unwrap();
            total += chunk.len();
        }
        let on_disk = env.file_size(&p).unwrap() as usize;
        assert!(on_disk > 0 && on_disk <= total, "{on_disk}");
        let big = vec![2u8; 3 * BUFFER_SIZE + 5];
        f.append(&big).unwrap();
        f.append(b"tail").unwrap();
        f.sync().unwrap();
        let want = total + big.len() + 4;
        assert_eq!(f.len(), want as u64);
        let data = env.read_all(&p).unwrap();
        assert_eq!(data.len(), want);
        assert_eq!(&data[total..total + big.len()], &big[..]);
        assert_eq!(&data[want - 4..], b"tail");
    }

    #[test]
    fn random_access_reads_and_short_reads() {
        let (dir, env) = setup();
        let p = dir.path().join("t.sst");
        let mut f = env.create_writable(&p).unwrap();
        f.append(b"0123456789").unwrap();
        drop(f);
        let r = env.open_random_access(&p).unwrap();
        assert_eq!(r.len(), 10);
        assert_eq!(r.read_at(2, 3).unwrap(), b"234");
        assert_eq!(r.read_at(10, 0).unwrap(), b"");
        for (off, len) in [(8u64, 5usize), (11, 0), (u64::MAX, 2), (0, usize::MAX)] {
            let err = r.read_at(off, len).unwrap_err();
            assert!(err.is_corruption(), "{err}");
            let msg = err.to_string();
            assert!(msg.contains("t.sst") && msg.contains("short read"), "{msg}");
            assert!(msg.contains(&format!("offset {off}")), "{msg}");
        }
    }

    #[test]
    fn directory_operations() {
        let (dir, env) = setup();
        let sub = dir.path().join("x/y");
        env.create_dir_all(&sub).unwrap();
        assert!(env.exists(&sub));
        for name in ["a", "b"] {
            let mut f = env.create_writable(&sub.join(name)).unwrap();
            f.append(name.as_bytes()).unwrap();
            f.sync().unwrap();
        }
        env.sync_dir(&sub).unwrap();
        env.rename(&sub.join("a"), &sub.join("c")).unwrap();
        env.remove_file(&sub.join("b")).unwrap();
        let mut names = env.list_dir(&sub).unwrap();
        names.sort();
        assert_eq!(names, vec!["c"]);
        assert_eq!(env.read_all(&sub.join("c")).unwrap(), b"a");
        env.truncate(&sub.join("c"), 0).unwrap();
        assert_eq!(env.file_size(&sub.join("c")).unwrap(), 0);
        assert!(!env.exists(&sub.join("a")));
    }

    #[test]
    fn errors_name_the_file() {
        let (dir, env) = setup();
        let missing = dir.path().join("missing");
        let errs = [
            env.read_all(&missing).unwrap_err(),
            env.open_random_access(&missing).map(|_| ()).unwrap_err(),
            env.file_size(&missing).unwrap_err(),
            env.remove_file(&missing).unwrap_err(),
            env.rename(&missing, &dir.path().join("b")).unwrap_err(),
            env.truncate(&missing, 0).unwrap_err(),
            env.list_dir(&missing).unwrap_err(),
            env.sync_dir(&missing).unwrap_err(),
        ];
        for e in errs {
            assert!(matches!(e, Error::Io { .. }), "{e}");
            assert!(e.to_string().contains("missing"), "{e}");
            assert_eq!(e.errno(), libc::ENOENT);
        }
        let bad = dir.path().join("no/such/dir/f");
        let e = env.create_writable(&bad).map(|_| ()).unwrap_err();
        assert!(e.to_string().contains("no/such/dir/f"), "{e}");
    }

    /// With the usual umask (022) a plain create would be 0644.
    #[test]
    fn files_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, env) = setup();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o7777;
        let data = dir.path().join("data");
        env.create_dir_all(&data).unwrap();
        assert_eq!(mode(&data), 0o700);
        let f = data.join("000001.log");
        drop(env.create_writable(&f).unwrap());
        assert_eq!(mode(&f), 0o600);
        let _l = env.lock_file(&data.join("LOCK")).unwrap();
        assert_eq!(mode(&data.join("LOCK")), 0o600);
        // A file kept from an older version is tightened when rewritten.
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(env.create_writable(&f).unwrap());
        assert_eq!(mode(&f), 0o600);
    }

    #[test]
    fn locks_are_exclusive_until_dropped() {
        let (dir, env) = setup();
        let lock_path = dir.path().join("LOCK");
        let l = env.lock_file(&lock_path).unwrap();
        assert!(env.exists(&lock_path));
        match env.lock_file(&lock_path) {
            Err(Error::Locked { dir: p, .. }) => assert_eq!(p, dir.path()),
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("second lock succeeded"),
        }
        drop(l);
        let _l = env.lock_file(&lock_path).unwrap();
    }

    /// A refused locker is told the holder's pid and note; readers share a
    /// lock without creating the file.
    #[test]
    fn shared_locks_and_the_holder_named() {
        let (dir, env) = setup();
        let lock_path = dir.path().join("LOCK");
        match env.lock_file_shared(&lock_path).unwrap() {
            SharedLock::Unavailable(why) => assert!(why.contains("LOCK"), "{why}"),
            SharedLock::Held(_) => panic!("locked a file that does not exist"),
        }
        assert!(!env.exists(&lock_path), "a reader created the lock file");
        let l = env.lock_file(&lock_path).unwrap();
        l.set_holder(&format!("pid {}\nmounted on /mnt/x\n", std::process::id()));
        let msg = match env.lock_file_shared(&lock_path) {
            Err(e @ Error::Locked { .. }) => e.to_string(),
            _ => panic!("a shared lock beside an exclusive one"),
        };
        let want = format!("lsmfs process {} (mounted on /mnt/x)", std::process::id());
        assert!(msg.contains(&want), "{msg}");
        drop(l);
        let r1 = env.lock_file_shared(&lock_path).unwrap();
        let r2 = env.lock_file_shared(&lock_path).unwrap();
        assert!(matches!(r1, SharedLock::Held(_)) && matches!(r2, SharedLock::Held(_)));
        assert!(matches!(
            env.lock_file(&lock_path),
            Err(Error::Locked { .. })
        ));
    }
}
