//! Reads records back from a log (format in `log_format`), telling a torn
//! tail from corruption.
//!
//! A crash can leave the last record half written; that is normal and
//! recovery must stop there and go on. Damage *followed by valid records*
//! is not a crash artefact: it is corruption, and silently skipping it would
//! lose acknowledged data, so it is an error naming the file and offset.
//! The rule: at the first bad fragment, look for any valid fragment after it
//! (the one its length points to, and the start of every later block, where
//! a fragment always begins). None found: a torn tail. One found: corruption.

use super::error::{Error, Result};
use super::log_format::{
    fragment_crc, unmask_crc, BLOCK_SIZE, FIRST, FULL, HEADER_SIZE, LAST, MIDDLE, ZERO_TYPE,
};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    pub offset: u64,
    pub reason: String,
}

enum Physical {
    Fragment {
        kind: u8,
        start: usize,
        len: usize,
    },
    Eof,
    Bad {
        offset: usize,
        reason: String,
        next: Option<usize>,
    },
}

pub struct LogReader {
    path: PathBuf,
    data: Vec<u8>,
    pos: usize,
    last_record_offset: u64,
    torn: Option<TornTail>,
    done: bool,
}

impl LogReader {
    pub fn new(path: PathBuf, data: Vec<u8>) -> LogReader {
        LogReader {
            path,
            data,
            pos: 0,
            last_record_offset: 0,
            torn: None,
            done: false,
        }
    }

    /// Offset of the first fragment of the record last returned.
    pub fn last_record_offset(&self) -> u64 {
        self.last_record_offset
    }

    pub fn torn_tail(&self) -> Option<&TornTail> {
        self.torn.as_ref()
    }

    /// The next whole record; `Ok(None)` at the end (check `torn_tail`).
    pub fn read_record(&mut self) -> Result<Option<Vec<u8>>> {
        if self.done {
            return Ok(None);
        }
        let mut record: Option<(usize, Vec<u8>)> = None;
        loop {
            let at = self.pos;
            match self.read_physical() {
                Physical::Eof => {
                    self.done = true;
                    if let Some((start, _)) = record {
                        self.torn = Some(TornTail {
                            offset: start as u64,
                            reason: "record incomplete at end of log".into(),
                        });
                    }
                    return Ok(None);
                }
                Physical::Bad {
                    offset,
                    reason,
                    next,
                } => return self.bad(record.map_or(offset, |r| r.0), offset, reason, next),
                Physical::Fragment { kind, start, len } => {
                    let payload = &self.data[start..start + len];
                    match (kind, record.as_mut()) {
                        (FULL, None) => {
                            self.last_record_offset = at as u64;
                            return Ok(Some(payload.to_vec()));
                        }
                        (FIRST, None) => record = Some((at, payload.to_vec())),
                        (MIDDLE, Some((_, buf))) => buf.extend_from_slice(payload),
                        (LAST, Some((_, buf))) => {
                            buf.extend_from_slice(payload);
                            let (s, buf) = record.take().unwrap_or_default();
                            self.last_record_offset = s as u64;
                            return Ok(Some(buf));
                        }
                        _ => {
                            let reason = format!("fragment of type {kind} out of sequence");
                            let next = Some(start + len);
                            return self.bad(record.map_or(at, |r| r.0), at, reason, next);
                        }
                    }
                }
            }
        }
    }

    fn bad(
        &mut self,
        record_start: usize,
        offset: usize,
        reason: String,
        next: Option<usize>,
    ) -> Result<Option<Vec<u8>>> {
        self.done = true;
        let mut candidates: Vec<usize> = next.into_iter().collect();
        let mut b = (offset / BLOCK_SIZE + 1) * BLOCK_SIZE;
        while b < self.data.len() {
            candidates.push(b);
            b += BLOCK_SIZE;
        }
        if candidates.into_iter().any(|c| self.valid_fragment_at(c)) {
            return Err(Error::corruption(
                &self.path,
                offset as u64,
                format!("{reason}, and valid records follow"),
            ));
        }
        self.torn = Some(TornTail {
            offset: record_start as u64,
            reason,
        });
        Ok(None)
    }

    fn valid_fragment_at(&self, pos: usize) -> bool {
        matches!(parse_fragment(&self.data, pos), Ok(Some((k, _, _))) if k != ZERO_TYPE)
    }

    fn read_physical(&mut self) -> Physical {
        loop {
            let left = BLOCK_SIZE - self.pos % BLOCK_SIZE;
            if left < HEADER_SIZE {
                self.pos += left;
            }
            if self.pos >= self.data.len() {
                return Physical::Eof;
            }
            let at = self.pos;
            match parse_fragment(&self.data, at) {
                Ok(None) => return Physical::Eof,
                Ok(Some((ZERO_TYPE, _, _))) => {
                    // Zero padding: the rest of the block is unused.
                    self.pos = (at / BLOCK_SIZE + 1) * BLOCK_SIZE;
                }
                Ok(Some((kind, start, len))) => {
                    self.pos = start + len;
                    return Physical::Fragment { kind, start, len };
                }
                Err((reason, next)) => {
                    return Physical::Bad {
                        offset: at,
                        reason,
                        next,
                    }
                }
            }
        }
    }
}

/// Parse the fragment at `pos`: `Ok(None)` if only zeros remain,
/// `Ok(Some((kind, payload_start, len)))`, or the reason it is bad and where
/// the next fragment would start if its length field is believable.
#[allow(clippy::type_complexity)]
fn parse_fragment(
    data: &[u8],
    pos: usize,
) -> std::result::Result<Option<(u8, usize, usize)>, (String, Option<usize>)> {
    let rest = data.get(pos..).unwrap_or(&[]);
    if rest.len() < HEADER_SIZE {
        if rest.iter().all(|&b| b == 0) {
            return Ok(None);
        }
        return Err(("truncated fragment header".into(), None));
    }
    let crc = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
    let len = u16::from_le_bytes([rest[4], rest[5]]) as usize;
    let kind = rest[6];
    if kind == ZERO_TYPE && len == 0 && crc == 0 {
        if rest
            .iter()
            .take(BLOCK_SIZE - pos % BLOCK_SIZE)
            .all(|&b| b == 0)
        {
            if rest.iter().all(|&b| b == 0) {
                return Ok(None);
            }
            return Ok(Some((ZERO_TYPE, pos + HEADER_SIZE, 0)));
        }
        return Err(("garbage after zero padding".into(), None));
    }
    let start = pos + HEADER_SIZE;
    let block_end = (pos / BLOCK_SIZE + 1) * BLOCK_SIZE;
    if start + len > block_end {
        return Err((
            format!("fragment length {len} crosses a block boundary"),
            None,
        ));
    }
    if start + len > data.len() {
        return Err((
            format!("fragment of {len} bytes extends past the end of the log"),
            None,
        ));
    }
    if !(FULL..=LAST).contains(&kind) {
        return Err((format!("unknown fragment type {kind}"), Some(start + len)));
    }
    if unmask_crc(crc) != fragment_crc(kind, &data[start..start + len]) {
        return Err(("fragment checksum mismatch".into(), Some(start + len)));
    }
    Ok(Some((kind, start, len)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::env::WritableFile;
    use crate::engine::log_writer::LogWriter;

    struct VecFile(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl WritableFile for VecFile {
        fn append(&mut self, d: &[u8]) -> Result<()> {
            self.0.lock().unwrap().extend_from_slice(d);
            Ok(())
        }
        fn flush(&mut self) -> Result<()> {
            Ok(())
        }
        fn sync(&mut self) -> Result<()> {
            Ok(())
        }
        fn len(&self) -> u64 {
            self.0.lock().unwrap().len() as u64
        }
    }

    fn write_log(records: &[Vec<u8>]) -> Vec<u8> {
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut w = LogWriter::new(Box::new(VecFile(buf.clone())));
        for r in records {
            w.add_record(r).unwrap();
        }
        let v = buf.lock().unwrap().clone();
        v
    }

    fn read_all(data: Vec<u8>) -> (Result<Vec<Vec<u8>>>, Option<TornTail>) {
        let mut r = LogReader::new(PathBuf::from("test.log"), data);
        let mut out = Vec::new();
        loop {
            match r.read_record() {
                Ok(Some(rec)) => out.push(rec),
                Ok(None) => return (Ok(out), r.torn_tail().cloned()),
                Err(e) => return (Err(e), None),
            }
        }
    }

    fn sample() -> Vec<Vec<u8>> {
        vec![
            vec![],
            b"a".to_vec(),
            vec![1u8; BLOCK_SIZE - 2 * HEADER_SIZE - 1],
            vec![2u8; 3 * BLOCK_SIZE + 100],
            b"small".to_vec(),
            vec![3u8; 1000],
        ]
    }

    #[test]
    fn roundtrip() {
        let recs = sample();
        let (got, torn) = read_all(write_log(&recs));
        assert_eq!(got.unwrap(), recs);
        assert!(torn.is_none());
        let (got, torn) = read_all(Vec::new());
        assert!(got.unwrap().is_empty() && torn.is_none());
    }

    #[test]
    fn every_truncation_is_a_prefix_with_torn_tail() {
        let recs: Vec<Vec<u8>> = (0..40).map(|i| vec![i as u8; i * 97 % 3000]).collect();
        let data = write_log(&recs);
        for cut in 0..data.len() {
            let (got, _) = read_all(data[..cut].to_vec());
            let got = got.unwrap_or_else(|e| panic!("cut {cut}: {e}"));
            assert_eq!(got[..], recs[..got.len()], "cut {cut}");
        }
    }

    #[test]
    fn flip_in_last_record_is_torn_in_earlier_is_corruption() {
        let recs = sample();
        let data = write_log(&recs);
        let mut d = data.clone();
        let n = d.len();
        d[n - 10] ^= 0xff;
        let (got, torn) = read_all(d);
        assert_eq!(got.unwrap().len(), recs.len() - 1);
        assert!(torn.is_some());
        let mut d = data;
        d[HEADER_SIZE + 3] ^= 0x01; // inside record 1's region
        let (got, _) = read_all(d);
        let err = got.unwrap_err();
        assert!(err.is_corruption());
        assert!(err.to_string().contains("test.log"), "{err}");
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 12345u64;
        for len in [0usize, 1, 6, 7, 8, 100, 40000, 70000] {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (seed >> 33) as u8
                })
                .collect();
            let _ = read_all(data);
        }
    }
}
