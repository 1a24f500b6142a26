//! Engine errors.
//!
//! Every error that comes from data on disk names the file and, where it
//! makes sense, the byte offset, so a person can find the damage. The engine
//! never panics on bad input: it returns one of these.

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub enum Error {
    /// An operating-system I/O error, with what we were doing and on which file.
    Io {
        context: String,
        source: std::io::Error,
    },
    /// Bytes on disk that fail a checksum or do not parse.
    Corruption {
        file: PathBuf,
        offset: u64,
        msg: String,
    },
    /// A caller passed something the engine cannot accept.
    InvalidArgument(String),
    /// The data directory is locked by another process; `holder` says who
    /// (read back from the LOCK file, see `filename`), when known.
    Locked {
        dir: PathBuf,
        holder: Option<String>,
    },
    /// A previous write or sync failed; the database refuses further writes
    /// rather than append behind a record that may be damaged.
    Background(String),
    /// The database has been closed.
    Closed,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub fn corruption(file: &Path, offset: u64, msg: impl Into<String>) -> Error {
        Error::Corruption {
            file: file.to_path_buf(),
            offset,
            msg: msg.into(),
        }
    }

    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corruption { .. })
    }

    /// The device (or a quota) is full: the write may succeed once there is
    /// room, so it is no reason to stop the database.
    pub fn is_no_space(&self) -> bool {
        matches!(self, Error::Io { source, .. }
            if matches!(source.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)))
    }

    /// The errno a filesystem should report for this error.
    pub fn errno(&self) -> i32 {
        match self {
            Error::Io { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
            Error::InvalidArgument(_) => libc::EINVAL,
            Error::Locked { .. } => libc::EBUSY,
            Error::Corruption { .. } | Error::Background(_) | Error::Closed => libc::EIO,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { context, source } => write!(f, "{context}: {source}"),
            Error::Corruption { file, offset, msg } => {
                write!(
                    f,
                    "corruption in {} at offset {offset}: {msg}",
                    file.display()
                )
            }
            // The message says what is wrong; EINVAL is in `errno`.
            Error::InvalidArgument(m) => write!(f, "{m}"),
            Error::Locked { dir, holder } => match holder {
                Some(h) => write!(f, "{} is locked by {h}", dir.display()),
                None => write!(f, "{} is locked by another lsmfs process", dir.display()),
            },
            Error::Background(m) => write!(f, "database stopped after an earlier error: {m}"),
            Error::Closed => write!(f, "database is closed"),
        }
    }
}

/// `io::Error` is not `Clone`; a sticky error is reported again and again,
/// so rebuild an equivalent one (same kind and message).
impl Clone for Error {
    fn clone(&self) -> Error {
        match self {
            Error::Io { context, source } => Error::Io {
                context: context.clone(),
                source: match source.raw_os_error() {
                    Some(code) => std::io::Error::from_raw_os_error(code),
                    None => std::io::Error::new(source.kind(), source.to_string()),
                },
            },
            Error::Corruption { file, offset, msg } => Error::Corruption {
                file: file.clone(),
                offset: *offset,
                msg: msg.clone(),
            },
            Error::InvalidArgument(m) => Error::InvalidArgument(m.clone()),
            Error::Locked { dir, holder } => Error::Locked {
                dir: dir.clone(),
                holder: holder.clone(),
            },
            Error::Background(m) => Error::Background(m.clone()),
            Error::Closed => Error::Closed,
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
