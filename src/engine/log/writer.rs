//! Appends records to a log (format in `log::format`).
//!
//! `add_record` only appends (one `append` call per record, so a record is
//! never half-handed to the file by this layer); the caller decides when to
//! `flush` (hand to the OS: survives kill -9) and when to `sync` (survives
//! power loss), so one group commit costs one write and at most one fsync.
//!
//! A log is always written from its start: the engine never appends to a
//! log left by an earlier process (a new WAL or MANIFEST is created instead).

use crate::engine::env::WritableFile;
use crate::engine::error::Result;
use crate::engine::log::format::{
    fragment_crc, mask_crc, BLOCK_SIZE, FIRST, FULL, HEADER_SIZE, LAST, MIDDLE,
};

pub struct LogWriter {
    file: Box<dyn WritableFile>,
    /// Offset in the current block where the next fragment goes.
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

    /// Append one record, split into fragments at block boundaries. On
    /// error the writer's position is unchanged; the caller should treat
    /// the log as unusable (the file may hold part of the record).
    pub fn add_record(&mut self, data: &[u8]) -> Result<()> {
        let mut rest = data;
        let mut begin = true;
        let mut block_offset = self.block_offset;
        self.scratch.clear();
        loop {
            let left = BLOCK_SIZE - block_offset;
            if left < HEADER_SIZE {
                // Too small for a header: zero-fill the trailer.
                self.scratch.extend_from_slice(&[0u8; HEADER_SIZE][..left]);
                block_offset = 0;
            }
            let avail = BLOCK_SIZE - block_offset - HEADER_SIZE;
            let n = rest.len().min(avail);
            let end = n == rest.len();
            let kind = match (begin, end) {
                (true, true) => FULL,
                (true, false) => FIRST,
                (false, true) => LAST,
                (false, false) => MIDDLE,
            };
            let (payload, tail) = rest.split_at(n);
            let crc = mask_crc(fragment_crc(kind, payload));
            self.scratch.extend_from_slice(&crc.to_le_bytes());
            // n <= BLOCK_SIZE - HEADER_SIZE < 65536
            self.scratch.extend_from_slice(&(n as u16).to_le_bytes());
            self.scratch.push(kind);
            self.scratch.extend_from_slice(payload);
            block_offset += HEADER_SIZE + n;
            rest = tail;
            begin = false;
            if end {
                break;
            }
        }
        self.file.append(&self.scratch)?;
        self.block_offset = block_offset;
        // Do not keep a huge buffer alive after one large record.
        if self.scratch.capacity() > 4 * BLOCK_SIZE {
            self.scratch = Vec::new();
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::env::fault::{FaultEnv, FaultKinds};
    use crate::engine::env::Env;
    use crate::engine::log::format::unmask_crc;
    use crate::engine::log::reader::LogReader;
    use std::path::Path;

    fn writer(env: &FaultEnv, path: &str) -> LogWriter {
        LogWriter::new(env.create_writable(Path::new(path)).unwrap())
    }

    #[test]
    fn fragments_and_headers() {
        let env = FaultEnv::new();
        let mut w = writer(&env, "/log");
        assert!(w.is_empty());
        w.add_record(b"").unwrap();
        w.add_record(b"abc").unwrap();
        let big = vec![7u8; 2 * BLOCK_SIZE];
        w.add_record(&big).unwrap();
        w.flush().unwrap();
        w.sync().unwrap();
        let data = env.file_contents(Path::new("/log")).unwrap();
        assert_eq!(w.len(), data.len() as u64);
        // Empty FULL record: header only.
        assert_eq!(&data[4..7], &[0, 0, FULL]);
        let crc = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
        assert_eq!(unmask_crc(crc), fragment_crc(FULL, b""));
        // "abc" FULL at 7.
        assert_eq!(&data[11..14], &[3, 0, FULL]);
        assert_eq!(&data[14..17], b"abc");
        // Big record: FIRST at 17 filling block 0, MIDDLE filling block 1, LAST.
        assert_eq!(data[17 + 6], FIRST);
        assert_eq!(data[BLOCK_SIZE + 6], MIDDLE);
        assert_eq!(data[2 * BLOCK_SIZE + 6], LAST);
        let first = BLOCK_SIZE - 17 - HEADER_SIZE;
        let middle = BLOCK_SIZE - HEADER_SIZE;
        let last = 2 * BLOCK_SIZE - first - middle;
        assert_eq!(data.len(), 2 * BLOCK_SIZE + HEADER_SIZE + last);

        let mut r = LogReader::new("/log".into(), data);
        assert_eq!(r.read_record().unwrap().unwrap(), b"");
        assert_eq!(r.read_record().unwrap().unwrap(), b"abc");
        assert_eq!(r.read_record().unwrap().unwrap(), big);
        assert!(r.read_record().unwrap().is_none());
        assert!(r.torn_tail().is_none());
    }

    #[test]
    fn failed_append_leaves_the_position_unchanged() {
        let env = FaultEnv::new();
        let mut w = writer(&env, "/log");
        w.add_record(&[1u8; BLOCK_SIZE - 20]).unwrap();
        env.set_fail_after(0, FaultKinds::WRITE);
        assert!(w.add_record(&[2u8; 100]).is_err());
        assert_eq!(w.block_offset, BLOCK_SIZE - 20 + HEADER_SIZE);
        w.add_record(b"after").unwrap();
        let data = env.file_contents(Path::new("/log")).unwrap();
        let mut r = LogReader::new("/log".into(), data);
        assert_eq!(r.read_record().unwrap().unwrap().len(), BLOCK_SIZE - 20);
        assert_eq!(r.read_record().unwrap().unwrap(), b"after");
        assert!(r.read_record().unwrap().is_none());
    }
}
