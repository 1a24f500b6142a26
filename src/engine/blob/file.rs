//! Reading a blob file: one record by its reference (bounds, CRC and key
//! checked), or every record with the footer's counts checked.

use super::{record_crc, BlobRef, BLOB_MAGIC, FOOTER_SIZE, HEADER_SIZE, MAX_RECORD};
use crate::engine::coding::Decoder;
use crate::engine::env::{Env, RandomAccessFile};
use crate::engine::error::{Error, Result};
use std::path::{Path, PathBuf};

/// One decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRecord {
    pub offset: u64,
    pub size: u64,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// Parse and verify the record in `raw` (exactly its bytes), read at `offset` of `path`.
pub(super) fn parse_record(path: &Path, offset: u64, raw: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    let bad = |m: &str| Error::corruption(path, offset, format!("blob record: {m}"));
    if raw.len() < 6 {
        return Err(bad("shorter than its header"));
    }
    let stored = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
    if stored != record_crc(&raw[4..]) {
        return Err(bad("checksum mismatch"));
    }
    let mut d = Decoder::new(&raw[4..]);
    let (Some(kl), Some(vl)) = (d.varint32(), d.varint32()) else {
        return Err(bad("bad lengths"));
    };
    let rest = d.remaining();
    if rest.len() != kl as usize + vl as usize {
        return Err(bad("lengths disagree with the record size"));
    }
    Ok((rest[..kl as usize].to_vec(), rest[kl as usize..].to_vec()))
}

/// An open blob file.
pub struct BlobFile {
    pub(super) file: Box<dyn RandomAccessFile>,
    pub(super) path: PathBuf,
    /// Whether it ends in a footer (false: a blob log still being written).
    pub(super) sealed: bool,
}

impl BlobFile {
    pub fn open(env: &dyn Env, path: PathBuf) -> Result<BlobFile> {
        let file = env.open_random_access(&path)?;
        Ok(BlobFile {
            file,
            path,
            sealed: true,
        })
    }

    /// Where records may end: before the footer, or the end of a growing file.
    pub(super) fn records_end(&self) -> u64 {
        if self.sealed {
            self.file.len().saturating_sub(FOOTER_SIZE)
        } else {
            self.file.len()
        }
    }

    /// Whether `r` lies past what this handle saw of a growing file.
    pub(super) fn behind(&self, r: &BlobRef) -> bool {
        !self.sealed && r.offset.saturating_add(r.size) > self.file.len()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn check_bounds(&self, offset: u64, size: u64) -> Result<()> {
        let end = offset.checked_add(size);
        if offset < HEADER_SIZE || size > MAX_RECORD || end.is_none_or(|e| e > self.records_end()) {
            return Err(Error::corruption(
                &self.path,
                offset,
                format!(
                    "blob reference of {size} bytes lies outside the file ({} bytes)",
                    self.file.len()
                ),
            ));
        }
        Ok(())
    }

    /// The value `r` names, checked against `key` (the key it was found under).
    pub fn read(&self, r: &BlobRef, key: &[u8]) -> Result<Vec<u8>> {
        self.check_bounds(r.offset, r.size)?;
        let raw = self.file.read_at(r.offset, r.size as usize)?;
        Self::value_of(&self.path, r, &raw, key)
    }

    pub(super) fn value_of(path: &Path, r: &BlobRef, raw: &[u8], key: &[u8]) -> Result<Vec<u8>> {
        let (k, v) = parse_record(path, r.offset, raw)?;
        if k != key {
            return Err(Error::corruption(
                path,
                r.offset,
                "blob record belongs to another key",
            ));
        }
        Ok(v)
    }

    /// Every record, in file order, and the footer's counts checked.
    pub fn records(&self) -> Result<Vec<BlobRecord>> {
        let len = self.file.len();
        if len < HEADER_SIZE + FOOTER_SIZE {
            return Err(Error::corruption(
                &self.path,
                0,
                format!("{len} bytes is too short for a blob file"),
            ));
        }
        let data = self.file.read_at(0, len as usize)?;
        let magic = |at: usize| u64::from_le_bytes(data[at..at + 8].try_into().unwrap_or([0; 8]));
        if magic(0) != BLOB_MAGIC {
            return Err(Error::corruption(&self.path, 0, "bad blob file magic"));
        }
        let foot = (len - FOOTER_SIZE) as usize;
        if magic(foot + 20) != BLOB_MAGIC {
            return Err(Error::corruption(
                &self.path,
                foot as u64,
                "bad blob file footer (truncated?)",
            ));
        }
        let stored = u32::from_le_bytes(data[foot + 16..foot + 20].try_into().unwrap_or([0; 4]));
        if stored != record_crc(&data[foot..foot + 16]) {
            return Err(Error::corruption(
                &self.path,
                foot as u64,
                "blob file footer checksum mismatch",
            ));
        }
        let count = magic(foot);
        let bytes = magic(foot + 8);
        let mut out = Vec::new();
        let mut at = HEADER_SIZE as usize;
        while at < foot {
            if at + 4 > foot {
                return Err(Error::corruption(
                    &self.path,
                    at as u64,
                    "blob record: truncated header",
                ));
            }
            let mut d = Decoder::new(&data[at + 4..foot]);
            let (Some(kl), Some(vl)) = (d.varint32(), d.varint32()) else {
                return Err(Error::corruption(
                    &self.path,
                    at as u64,
                    "blob record: bad lengths",
                ));
            };
            let size = 4 + (foot - at - 4 - d.remaining().len()) + kl as usize + vl as usize;
            if at + size > foot {
                return Err(Error::corruption(
                    &self.path,
                    at as u64,
                    "blob record runs past the footer",
                ));
            }
            let (key, value) = parse_record(&self.path, at as u64, &data[at..at + size])?;
            out.push(BlobRecord {
                offset: at as u64,
                size: size as u64,
                key,
                value,
            });
            at += size;
        }
        let got: u64 = out.iter().map(|r| r.size).sum();
        if out.len() as u64 != count || got != bytes {
            return Err(Error::corruption(
                &self.path,
                foot as u64,
                format!(
                    "footer says {count} records of {bytes} bytes, the file holds {} of {got}",
                    out.len()
                ),
            ));
        }
        Ok(out)
    }
}
