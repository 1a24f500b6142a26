//! File names in a data directory.
//!
//! | name | what |
//! | --- | --- |
//! | `NNNNNN.log` | write-ahead log of one memtable |
//! | `NNNNNN.sst` | SSTable |
//! | `NNNNNN.blob` | blob file: large values the tables reference (see `blob`) |
//! | `MANIFEST-NNNNNN` | log of VersionEdits |
//! | `CURRENT` | the name of the live MANIFEST, newline-terminated |
//! | `CURRENT.tmp`, `NNNNNN.tmp` | temporary files, garbage after a crash |
//! | `LOCK` | flock held by the process that has the database open; its exclusive holder writes `pid N` and a note (the mount point) into it, so a refused opener can name it; readers take a shared lock and write nothing |
//! | `OPTIONS`, `OPTIONS.tmp` | the tuning of the last read-write open (see `options_file`) |
//!
//! All numbers come from one counter (the VersionSet's next file number), so
//! a number is never reused. A file's level is never in its name: it is known
//! only from the MANIFEST.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    Log(u64),
    Table(u64),
    Blob(u64),
    Manifest(u64),
    Current,
    Lock,
    Temp,
}

pub fn log_file_name(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:06}.log"))
}

pub fn table_file_name(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:06}.sst"))
}

pub fn blob_file_name(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:06}.blob"))
}

pub fn manifest_file_name(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("MANIFEST-{number:06}"))
}

pub fn current_file_name(dir: &Path) -> PathBuf {
    dir.join("CURRENT")
}

pub fn lock_file_name(dir: &Path) -> PathBuf {
    dir.join("LOCK")
}

pub fn temp_file_name(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:06}.tmp"))
}

/// Classify a file name found in a data directory; `None` for foreign files.
pub fn parse_file_name(name: &str) -> Option<FileType> {
    match name {
        "CURRENT" => return Some(FileType::Current),
        "LOCK" => return Some(FileType::Lock),
        "CURRENT.tmp" | "OPTIONS.tmp" => return Some(FileType::Temp),
        _ => {}
    }
    if let Some(rest) = name.strip_prefix("MANIFEST-") {
        return parse_number(rest).map(FileType::Manifest);
    }
    let (stem, ext) = name.rsplit_once('.')?;
    let n = parse_number(stem)?;
    match ext {
        "log" => Some(FileType::Log(n)),
        "sst" => Some(FileType::Table(n)),
        "blob" => Some(FileType::Blob(n)),
        "tmp" => Some(FileType::Temp),
        _ => None,
    }
}

fn parse_number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_roundtrip() {
        let d = Path::new("/d");
        assert_eq!(log_file_name(d, 7), Path::new("/d/000007.log"));
        assert_eq!(parse_file_name("000007.log"), Some(FileType::Log(7)));
        assert_eq!(
            parse_file_name("1234567.sst"),
            Some(FileType::Table(1234567))
        );
        assert_eq!(
            parse_file_name("MANIFEST-000003"),
            Some(FileType::Manifest(3))
        );
        assert_eq!(parse_file_name("CURRENT"), Some(FileType::Current));
        assert_eq!(parse_file_name("x.sst"), None);
        assert_eq!(parse_file_name("MANIFEST-"), None);
        assert_eq!(parse_file_name("notes.txt"), None);
    }
}
