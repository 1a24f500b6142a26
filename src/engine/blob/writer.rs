//! Writing a blob file (or a blob log): records appended, the footer at
//! `finish` (the format is in `blob`'s module doc).

use super::{
    record_crc, record_crc_of, BlobFileMeta, BlobRef, BLOB_MAGIC, FOOTER_SIZE, HEADER_SIZE,
};
use crate::engine::coding::put_varint32;
use crate::engine::env::{Env, WritableFile};
use crate::engine::error::{Error, Result};
use crate::engine::filename::blob_file_name;
use std::path::Path;

/// Writes one blob file.
pub struct BlobWriter {
    file: Box<dyn WritableFile>,
    number: u64,
    offset: u64,
    records: u64,
    record_bytes: u64,
}

impl BlobWriter {
    pub fn create(env: &dyn Env, dir: &Path, number: u64) -> Result<BlobWriter> {
        let mut file = env.create_writable(&blob_file_name(dir, number))?;
        file.append(&BLOB_MAGIC.to_le_bytes())?;
        Ok(BlobWriter {
            file,
            number,
            offset: HEADER_SIZE,
            records: 0,
            record_bytes: 0,
        })
    }

    pub fn number(&self) -> u64 {
        self.number
    }

    /// Bytes written so far (header and records).
    pub fn len(&self) -> u64 {
        self.offset
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Hand what was added to the OS (it survives a kill -9).
    pub fn flush(&mut self) -> Result<()> {
        self.file.flush()
    }

    /// fsync what was added (it survives power loss).
    pub fn sync(&mut self) -> Result<()> {
        self.file.sync()
    }

    /// Start writing back what was flushed (see `WritableFile::start_writeback`).
    pub fn start_writeback(&mut self) {
        self.file.start_writeback()
    }

    /// Append the records of `(key, value)` pairs with one vectored
    /// write: the values go to the OS from where they are, uncopied.
    pub fn add_all(&mut self, records: &[(&[u8], &[u8])]) -> Result<Vec<BlobRef>> {
        // Each header: CRC (4) and two varint32 lengths (at most 10).
        let mut headers = Vec::with_capacity(records.len() * 14);
        let mut ends = Vec::with_capacity(records.len());
        for (key, value) in records {
            let at = headers.len();
            headers.extend_from_slice(&[0; 4]);
            put_varint32(&mut headers, key.len() as u32);
            put_varint32(&mut headers, value.len() as u32);
            let crc = record_crc_of(&[&headers[at + 4..], key, value]);
            headers[at..at + 4].copy_from_slice(&crc.to_le_bytes());
            ends.push(headers.len());
        }
        let mut parts: Vec<&[u8]> = Vec::with_capacity(records.len() * 3);
        let mut refs = Vec::with_capacity(records.len());
        let (mut at, mut offset) = (0, self.offset);
        for ((key, value), &end) in records.iter().zip(&ends) {
            parts.extend_from_slice(&[&headers[at..end], key, value]);
            let size = (end - at + key.len() + value.len()) as u64;
            refs.push(BlobRef {
                file: self.number,
                offset,
                size,
            });
            offset += size;
            at = end;
        }
        self.file.append_vectored(&parts)?;
        self.records += records.len() as u64;
        self.record_bytes += offset - self.offset;
        self.offset = offset;
        Ok(refs)
    }

    pub fn add(&mut self, key: &[u8], value: &[u8]) -> Result<BlobRef> {
        let r = self.add_all(&[(key, value)])?;
        r.into_iter()
            .next()
            .ok_or_else(|| Error::InvalidArgument("blob writer: no reference".into()))
    }

    /// Write the footer and fsync; the caller fsyncs the directory before
    /// naming the file in an edit.
    pub fn finish(mut self) -> Result<BlobFileMeta> {
        let mut f = Vec::with_capacity(FOOTER_SIZE as usize);
        f.extend_from_slice(&self.records.to_le_bytes());
        f.extend_from_slice(&self.record_bytes.to_le_bytes());
        let crc = record_crc(&f);
        f.extend_from_slice(&crc.to_le_bytes());
        f.extend_from_slice(&BLOB_MAGIC.to_le_bytes());
        self.file.append(&f)?;
        self.file.sync()?;
        Ok(BlobFileMeta {
            number: self.number,
            file_size: self.offset + FOOTER_SIZE,
            records: self.records,
            record_bytes: self.record_bytes,
            garbage_records: 0,
            garbage_bytes: 0,
        })
    }
}
