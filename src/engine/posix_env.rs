//! The real `Env`: files through `std::fs`, `fdatasync`, `flock`.
//!
//! Writable files buffer appends in user space (64 KiB) because SSTables
//! are written in many small pieces; `flush()` hands the buffer to the
//! kernel with `write(2)`, which is what makes a WAL record survive a kill -9
//! of the process, and `sync()` adds `fdatasync`.

use super::env::{Env, FileLock, RandomAccessFile, WritableFile};
use super::error::{Error, Result};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
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

struct PosixWritable {
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
    len: u64,
}

impl PosixWritable {
    fn write_out(&mut self) -> Result<()> {
        if !self.buf.is_empty() {
            self.file
                .write_all(&self.buf)
                .map_err(|e| Error::io(ctx("write", &self.path), e))?;
            self.buf.clear();
        }
        Ok(())
    }
}

impl WritableFile for PosixWritable {
    fn append(&mut self, data: &[u8]) -> Result<()> {
        self.len += data.len() as u64;
        if self.buf.len() + data.len() > BUFFER_SIZE {
            self.write_out()?;
            if data.len() >= BUFFER_SIZE {
                return self
                    .file
                    .write_all(data)
                    .map_err(|e| Error::io(ctx("write", &self.path), e));
            }
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.write_out()
    }

    fn sync(&mut self) -> Result<()> {
        self.write_out()?;
        self.file
            .sync_data()
            .map_err(|e| Error::io(ctx("fdatasync", &self.path), e))
    }

    fn len(&self) -> u64 {
        self.len
    }
}

impl Drop for PosixWritable {
    fn drop(&mut self) {
        if let Err(e) = self.write_out() {
            log::warn!("{e}");
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
    _file: File,
}

impl FileLock for PosixLock {}

impl Env for PosixEnv {
    fn create_writable(&self, path: &Path) -> Result<Box<dyn WritableFile>> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| Error::io(ctx("create", path), e))?;
        Ok(Box::new(PosixWritable {
            path: path.to_path_buf(),
            file,
            buf: Vec::with_capacity(BUFFER_SIZE),
            len: 0,
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
        std::fs::create_dir_all(dir).map_err(|e| Error::io(ctx("create directory", dir), e))
    }

    fn lock_file(&self, path: &Path) -> Result<Box<dyn FileLock>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| Error::io(ctx("open lock file", path), e))?;
        // SAFETY: flock on a valid, owned descriptor.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let dir = path.parent().unwrap_or(path);
                return Err(Error::Locked(dir.to_path_buf()));
            }
            return Err(Error::io(ctx("flock", path), err));
        }
        Ok(Box::new(PosixLock { _file: file }))
    }

    fn truncate(&self, path: &Path, len: u64) -> Result<()> {
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| Error::io(ctx("open", path), e))?;
        f.set_len(len)
            .map_err(|e| Error::io(ctx("truncate", path), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_read_rename_lock() {
        let dir = tempfile::tempdir().unwrap();
        let env = PosixEnv::new();
        let p = dir.path().join("a");
        let mut f = env.create_writable(&p).unwrap();
        f.append(b"hello ").unwrap();
        f.append(&vec![7u8; BUFFER_SIZE + 5]).unwrap();
        f.append(b"tail").unwrap();
        assert_eq!(f.len(), 6 + BUFFER_SIZE as u64 + 5 + 4);
        f.sync().unwrap();
        drop(f);
        let data = env.read_all(&p).unwrap();
        assert_eq!(&data[..6], b"hello ");
        assert_eq!(&data[data.len() - 4..], b"tail");
        let r = env.open_random_access(&p).unwrap();
        assert_eq!(r.read_at(0, 5).unwrap(), b"hello");
        assert!(r.read_at(r.len() - 2, 10).unwrap_err().is_corruption());
        let q = dir.path().join("b");
        env.rename(&p, &q).unwrap();
        env.sync_dir(dir.path()).unwrap();
        assert!(!env.exists(&p) && env.exists(&q));
        let l = env.lock_file(&dir.path().join("LOCK")).unwrap();
        assert!(matches!(
            env.lock_file(&dir.path().join("LOCK")),
            Err(Error::Locked(_))
        ));
        drop(l);
        env.lock_file(&dir.path().join("LOCK")).unwrap();
    }
}
