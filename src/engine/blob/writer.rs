//! Writing a blob file (or a blob log): records appended, the footer at
//! `finish` (the format is in `blob`'s module doc).

use super::{
    record_crc, record_crc_of, BlobFileMeta, BlobRef, BLOB_MAGIC, FOOTER_SIZE, HEADER_SIZE,
};
use crate::engine::coding::put_varint32;
use crate::engine::env::{Env, WritableFile};
use crate::engine::error::Result;
use crate::engine::filename::blob_file_name;
use std::path::Path;

/// Writes one blob file.
pub struct BlobWriter {
    file: Box<dyn WritableFile>,
    number: u64,
    offset: u64,
    records: u64,
    record_bytes: u64,
    buf: Vec<u8>,
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
            buf: Vec::new(),
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

    pub fn add(&mut self, key: &[u8], value: &[u8]) -> Result<BlobRef> {
        // The header is built apart and the CRC runs over the three parts,
        // so the value is copied once, into the file's buffer.
        self.buf.clear();
        self.buf.extend_from_slice(&[0; 4]);
        put_varint32(&mut self.buf, key.len() as u32);
        put_varint32(&mut self.buf, value.len() as u32);
        let crc = record_crc_of(&[&self.buf[4..], key, value]);
        self.buf[..4].copy_from_slice(&crc.to_le_bytes());
        self.file.append(&self.buf)?;
        self.file.append(key)?;
        self.file.append(value)?;
        let size = (self.buf.len() + key.len() + value.len()) as u64;
        let r = BlobRef {
            file: self.number,
            offset: self.offset,
            size,
        };
        self.offset += r.size;
        self.records += 1;
        self.record_bytes += r.size;
        Ok(r)
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
