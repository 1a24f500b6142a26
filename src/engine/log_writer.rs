//! Appends records to a log (format in `log_format`).
//!
//! `add_record` only appends; the caller decides when to `flush` (hand to the
//! OS: survives kill -9) and when to `sync` (survives power loss), so one
//! group commit costs one write and at most one fsync.

use super::env::WritableFile;
use super::error::Result;
use super::log_format::{
    fragment_crc, mask_crc, BLOCK_SIZE, FIRST, FULL, HEADER_SIZE, LAST, MIDDLE,
};

pub struct LogWriter {
    file: Box<dyn WritableFile>,
    block_offset: usize,
    scratch: Vec<u8>,
}

impl LogWriter {
    pub fn new(file: Box<dyn WritableFile>) -> LogWriter {
        let block_offset = (file.len() % BLOCK_SIZE as u64) as usize;
        LogWriter {
            file,
            block_offset,
            scratch: Vec::new(),
        }
    }

    pub fn add_record(&mut self, data: &[u8]) -> Result<()> {
        let mut rest = data;
        let mut begin = true;
        self.scratch.clear();
        loop {
            let left = BLOCK_SIZE - self.block_offset;
            if left < HEADER_SIZE {
                self.scratch.extend_from_slice(&[0u8; HEADER_SIZE][..left]);
                self.block_offset = 0;
            }
            let avail = BLOCK_SIZE - self.block_offset - HEADER_SIZE;
            let n = rest.len().min(avail);
            let end = n == rest.len();
            let kind = match (begin, end) {
                (true, true) => FULL,
                (true, false) => FIRST,
                (false, true) => LAST,
                (false, false) => MIDDLE,
            };
            let payload = &rest[..n];
            let crc = mask_crc(fragment_crc(kind, payload));
            self.scratch.extend_from_slice(&crc.to_le_bytes());
            self.scratch.extend_from_slice(&(n as u16).to_le_bytes());
            self.scratch.push(kind);
            self.scratch.extend_from_slice(payload);
            self.block_offset += HEADER_SIZE + n;
            rest = &rest[n..];
            begin = false;
            if end {
                break;
            }
        }
        self.file.append(&self.scratch)
    }

    pub fn flush(&mut self) -> Result<()> {
        self.file.flush()
    }

    pub fn sync(&mut self) -> Result<()> {
        self.file.sync()
    }

    /// Bytes written to the log so far.
    pub fn len(&self) -> u64 {
        self.file.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
