//! Reads records back from a log (format in `log::format`), telling a torn
//! tail from corruption.
//!
//! A crash can leave the last record half written; that is normal, and
//! recovery must stop there and go on. Damage *followed by valid records*
//! is not a crash artefact: it is corruption, and skipping it would silently
//! lose acknowledged data, so it is an error naming the file and offset.
//!
//! The rule, applied at the first bad fragment (bad checksum, impossible
//! length, unknown type, fragment out of sequence, truncated header, zeros
//! followed by data): if a valid fragment that *starts a record* (FULL or
//! FIRST) follows it, the log is corrupt; otherwise the log ends in a torn
//! tail, reported by [`LogReader::torn_tail`] with the offset of the first
//! record that could not be read whole.
//!
//! Where to look for a following record matters. Fragments only ever start
//! where the writer put them: at the start of every block, and right after
//! the previous fragment. So the search walks the fragment chain from each
//! later block start, and from the end of the bad fragment when its length
//! field is believable. It never probes arbitrary byte offsets: a payload
//! may itself hold log bytes (a user's file that is a copy of a log), and
//! mistaking them for records would turn an ordinary torn tail into a
//! refusal to open. The price: if a length field is damaged in the last
//! block, records after it *in that block* cannot be found, and the damage
//! is reported as a torn tail. Continuation fragments (MIDDLE, LAST) after
//! the damage do not count as valid records: they belong to the damaged
//! record itself, which is lost either way.
//!
//! One kind of damage followed by records is still a crash artefact: writes
//! lost out of order. Writeback reaches the disk a sector at a time in no
//! particular order, so a power loss can keep a later sector of the unsynced
//! tail and lose an earlier one, which then reads as zeros (never-written
//! blocks, or the synced zeros a writer keeps ahead). That leaves a zero
//! *sector* in the damaged span: zeros from the bad fragment's start to the
//! end of its sector, or a whole aligned sector of zeros before the next
//! valid record. Anything after such a hole was never synced (an fsync would
//! have made the hole durable too), so dropping it keeps the contract: the
//! damage is reported as a torn tail at the damaged record. Damage without a
//! zero sector (a flipped bit, garbage) followed by records stays corruption.
//! A log whose every record is synced before the next is written (the
//! MANIFEST) has no unsynced middle to lose: read with
//! [`LogReader::each_record_synced`], a hole followed by records is
//! corruption too.
//!
//! A log whose data ends at a record boundary, inside a block trailer, or in
//! zeros to the end of the file (preallocated or zero-filled by a crash) has
//! no torn tail.

use crate::engine::error::{Error, Result};
use crate::engine::log::format::{
    fragment_crc, unmask_crc, BLOCK_SIZE, FIRST, FULL, HEADER_SIZE, LAST, MIDDLE,
};
use std::path::PathBuf;

/// Where and why a log stopped being readable, when nothing valid follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// Offset of the first record that could not be read whole: truncating
    /// the log here leaves exactly the records that were returned.
    pub offset: u64,
    pub reason: String,
}

/// One physical fragment, as parsed at some offset.
enum Parsed {
    /// A valid fragment: its type, payload start and payload length.
    Fragment { kind: u8, start: usize, len: usize },
    /// An all-zero header (type `ZERO_TYPE`, length 0, crc 0): padding,
    /// preallocated space, or a region a crash left zero-filled.
    Zero,
    /// Fewer than a header's worth of bytes left, all zero.
    End,
    /// Damage; `next` is where the following fragment would start if the
    /// length field is believable.
    Bad { reason: String, next: Option<usize> },
}

fn block_end(pos: usize) -> usize {
    (pos / BLOCK_SIZE + 1) * BLOCK_SIZE
}

/// Parse the fragment whose header starts at `pos`.
fn parse(data: &[u8], pos: usize) -> Parsed {
    let rest = data.get(pos..).unwrap_or(&[]);
    let Some(header) = rest.get(..HEADER_SIZE) else {
        if rest.iter().all(|&b| b == 0) {
            return Parsed::End;
        }
        return Parsed::Bad {
            reason: format!("truncated fragment header ({} bytes)", rest.len()),
            next: None,
        };
    };
    if header.iter().all(|&b| b == 0) {
        return Parsed::Zero;
    }
    let crc = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let len = u16::from_le_bytes([header[4], header[5]]) as usize;
    let kind = header[6];
    let start = pos + HEADER_SIZE;
    let end = start + len;
    if end > block_end(pos) {
        return Parsed::Bad {
            reason: format!("fragment length {len} crosses the block boundary"),
            next: None,
        };
    }
    let Some(payload) = data.get(start..end) else {
        return Parsed::Bad {
            reason: format!(
                "fragment of {len} bytes extends past the end of the log ({} bytes)",
                data.len()
            ),
            next: None,
        };
    };
    if !(FULL..=LAST).contains(&kind) {
        return Parsed::Bad {
            reason: format!("unknown fragment type {kind}"),
            next: Some(end),
        };
    }
    if unmask_crc(crc) != fragment_crc(kind, payload) {
        return Parsed::Bad {
            reason: "fragment checksum mismatch".into(),
            next: Some(end),
        };
    }
    Parsed::Fragment { kind, start, len }
}

/// Walk the fragment chain from `pos` to the end of its block: where does a
/// valid record-starting fragment (FULL or FIRST) appear, if anywhere?
fn chain_record_start(data: &[u8], mut pos: usize) -> Option<usize> {
    let end = block_end(pos);
    while end - pos >= HEADER_SIZE {
        match parse(data, pos) {
            Parsed::Fragment { kind, .. } if kind == FULL || kind == FIRST => return Some(pos),
            Parsed::Fragment { start, len, .. } => pos = start + len,
            Parsed::Zero | Parsed::End | Parsed::Bad { .. } => return None,
        }
    }
    None
}

/// The unit in which a disk takes writes: a power loss keeps or loses each
/// sector whole.
const SECTOR: usize = 512;

/// Where in `data[at..next]` (damage at `at`, a valid record at `next`) is
/// the zero sector that shows writes were lost out of order, if any: zeros
/// from `at` to the end of its sector, or an aligned all-zero sector.
fn lost_sector(data: &[u8], at: usize, next: usize) -> Option<usize> {
    let zero = |from: usize, to: usize| to <= next && data[from..to].iter().all(|&b| b == 0);
    let first_end = (at / SECTOR + 1) * SECTOR;
    if zero(at, first_end) {
        return Some(at);
    }
    (first_end..next)
        .step_by(SECTOR)
        .find(|&s| zero(s, s + SECTOR))
}

pub struct LogReader {
    path: PathBuf,
    data: Vec<u8>,
    pos: usize,
    last_record_offset: u64,
    torn: Option<TornTail>,
    done: bool,
    /// Whether writes after the last sync may have been lost out of order.
    unsynced_middle: bool,
    /// Where the next valid record after the damage starts, if one does.
    resume_at: Option<usize>,
}

impl LogReader {
    /// A reader over a whole log file held in memory; `path` is only used to
    /// name the file in errors. The log may have been synced in groups of
    /// records (a WAL), so a power loss may have lost sectors out of order.
    pub fn new(path: PathBuf, data: Vec<u8>) -> LogReader {
        LogReader {
            path,
            data,
            pos: 0,
            last_record_offset: 0,
            torn: None,
            done: false,
            unsynced_middle: true,
            resume_at: None,
        }
    }

    /// A reader over a log whose every record was synced before the next
    /// was written (the MANIFEST): only its last record can be torn.
    pub fn each_record_synced(path: PathBuf, data: Vec<u8>) -> LogReader {
        LogReader {
            unsynced_middle: false,
            ..LogReader::new(path, data)
        }
    }

    /// After damage (an error, or a torn tail that valid records follow),
    /// go on reading at the next valid record, returning its offset; `None`
    /// if none follows. Recovery never does this — records after damage
    /// may depend on the lost ones — but `repair` keeps every readable
    /// record, as LevelDB's does.
    pub fn skip_damage(&mut self) -> Option<u64> {
        let next = self.resume_at.take()?;
        self.pos = next;
        self.done = false;
        self.torn = None;
        Some(next as u64)
    }

    /// Offset of the first fragment of the record last returned.
    pub fn last_record_offset(&self) -> u64 {
        self.last_record_offset
    }

    /// Set once `read_record` has returned `Ok(None)` at a torn tail.
    pub fn torn_tail(&self) -> Option<&TornTail> {
        self.torn.as_ref()
    }

    /// The next whole record; `Ok(None)` at the end (then check `torn_tail`);
    /// `Err(Corruption)` if damage is followed by valid records. After
    /// `Ok(None)` or an error, every later call returns `Ok(None)`.
    pub fn read_record(&mut self) -> Result<Option<Vec<u8>>> {
        if self.done {
            return Ok(None);
        }
        // Start offset and payload so far of a record split into fragments.
        let mut pending: Option<(usize, Vec<u8>)> = None;
        loop {
            let left = BLOCK_SIZE - self.pos % BLOCK_SIZE;
            if left < HEADER_SIZE {
                self.pos += left; // block trailer: zero padding
            }
            let at = self.pos;
            let parsed = if at >= self.data.len() {
                Parsed::End
            } else {
                parse(&self.data, at)
            };
            match parsed {
                Parsed::End => return Ok(self.end(pending.map(|p| p.0))),
                Parsed::Zero => {
                    let Some(nz) = self.data[at..].iter().position(|&b| b != 0) else {
                        return Ok(self.end(pending.map(|p| p.0)));
                    };
                    // If records follow the zeros, the first one starts at
                    // the first non-zero byte or up to a header before it
                    // (its checksum may begin with zero bytes).
                    let nz = at + nz;
                    let candidates: Vec<usize> =
                        (nz.saturating_sub(HEADER_SIZE - 1).max(at)..=nz).collect();
                    let reason = format!("zero-filled region up to offset {nz}");
                    return self.bad(pending.map_or(at, |p| p.0), at, reason, &candidates);
                }
                Parsed::Bad { reason, next } => {
                    let candidates: Vec<usize> = next.into_iter().collect();
                    return self.bad(pending.map_or(at, |p| p.0), at, reason, &candidates);
                }
                Parsed::Fragment { kind, start, len } => {
                    self.pos = start + len;
                    let payload = &self.data[start..start + len];
                    match (kind, pending.as_mut()) {
                        (FULL, None) => {
                            self.last_record_offset = at as u64;
                            return Ok(Some(payload.to_vec()));
                        }
                        (FIRST, None) => pending = Some((at, payload.to_vec())),
                        (MIDDLE, Some((_, buf))) => buf.extend_from_slice(payload),
                        (LAST, Some((_, buf))) => {
                            buf.extend_from_slice(payload);
                            let Some((record_start, buf)) = pending.take() else {
                                continue; // unreachable: matched Some above
                            };
                            self.last_record_offset = record_start as u64;
                            return Ok(Some(buf));
                        }
                        (_, Some((record_start, _))) => {
                            // A new record starts before the pending one
                            // ended: the pending one lost its end, and a
                            // valid record follows the damage.
                            let record_start = *record_start;
                            self.done = true;
                            self.resume_at = Some(at);
                            return Err(Error::corruption(
                                &self.path,
                                record_start as u64,
                                format!(
                                    "record has no last fragment: a new record \
                                     (type {kind}) starts at offset {at}"
                                ),
                            ));
                        }
                        (_, None) => {
                            let reason = format!("fragment of type {kind} without a record start");
                            return self.bad(at, at, reason, &[start + len]);
                        }
                    }
                }
            }
        }
    }

    /// Clean end of data; a pending multi-fragment record makes it torn.
    fn end(&mut self, pending_start: Option<usize>) -> Option<Vec<u8>> {
        self.done = true;
        if let Some(start) = pending_start {
            self.torn = Some(TornTail {
                offset: start as u64,
                reason: format!("record at offset {start} is incomplete at the end of the log"),
            });
        }
        None
    }

    /// Decide between torn tail and corruption for damage at `bad_at`.
    fn bad(
        &mut self,
        record_start: usize,
        bad_at: usize,
        reason: String,
        candidates: &[usize],
    ) -> Result<Option<Vec<u8>>> {
        self.done = true;
        if let Some(next) = self.next_record_start(bad_at, candidates) {
            self.resume_at = Some(next);
            let hole = lost_sector(&self.data, bad_at, next).filter(|_| self.unsynced_middle);
            if let Some(hole) = hole {
                self.torn = Some(TornTail {
                    offset: record_start as u64,
                    reason: format!(
                        "{reason} at offset {bad_at}, where unsynced writes were lost out of \
                         order (zero sector at offset {hole}); the records from offset {next} \
                         on were never synced"
                    ),
                });
                return Ok(None);
            }
            let mut msg = format!("{reason}; valid records follow, so this is not a torn tail");
            if record_start != bad_at {
                msg.push_str(&format!(
                    " (damaged record starts at offset {record_start})"
                ));
            }
            return Err(Error::corruption(&self.path, bad_at as u64, msg));
        }
        self.torn = Some(TornTail {
            offset: record_start as u64,
            reason: format!("{reason} at offset {bad_at}"),
        });
        Ok(None)
    }

    /// Where does a valid record start at one of `candidates` (or later in
    /// their blocks), or in a block after the one holding `bad_at`?
    fn next_record_start(&self, bad_at: usize, candidates: &[usize]) -> Option<usize> {
        if let Some(at) = candidates
            .iter()
            .find_map(|&c| chain_record_start(&self.data, c))
        {
            return Some(at);
        }
        (block_end(bad_at)..self.data.len())
            .step_by(BLOCK_SIZE)
            .find_map(|b| chain_record_start(&self.data, b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::env::WritableFile;
    use crate::engine::log::format::mask_crc;
    use crate::engine::log::writer::LogWriter;
    use std::sync::{Arc, Mutex};

    struct VecFile(Arc<Mutex<Vec<u8>>>);
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

    /// The log bytes and the offset at which each record starts.
    fn write_log(records: &[Vec<u8>]) -> (Vec<u8>, Vec<usize>) {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let mut w = LogWriter::new(Box::new(VecFile(buf.clone())));
        let mut starts = Vec::new();
        for r in records {
            let len = w.len() as usize;
            let left = BLOCK_SIZE - len % BLOCK_SIZE;
            starts.push(if left < HEADER_SIZE { len + left } else { len });
            w.add_record(r).unwrap();
        }
        let v = buf.lock().unwrap().clone();
        (v, starts)
    }

    struct Outcome {
        records: Vec<Vec<u8>>,
        offsets: Vec<u64>,
        torn: Option<TornTail>,
        err: Option<Error>,
    }

    fn read_all(data: Vec<u8>) -> Outcome {
        let mut r = LogReader::new(PathBuf::from("test.log"), data);
        let mut o = Outcome {
            records: Vec::new(),
            offsets: Vec::new(),
            torn: None,
            err: None,
        };
        loop {
            match r.read_record() {
                Ok(Some(rec)) => {
                    o.records.push(rec);
                    o.offsets.push(r.last_record_offset());
                }
                Ok(None) => {
                    o.torn = r.torn_tail().cloned();
                    break;
                }
                Err(e) => {
                    o.err = Some(e);
                    break;
                }
            }
        }
        assert!(matches!(r.read_record(), Ok(None)), "stays finished");
        o
    }

    fn sample() -> Vec<Vec<u8>> {
        vec![
            vec![],
            b"a".to_vec(),
            vec![1u8; BLOCK_SIZE - 3 * HEADER_SIZE - 1], // fills block 0 exactly
            vec![2u8; 3 * BLOCK_SIZE + 100],             // spans 4 blocks
            b"small".to_vec(),
            vec![3u8; 1000],
        ]
    }

    fn small_records(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| format!("record {i} ").repeat(i % 13 + 1).into_bytes())
            .collect()
    }

    fn fragment(kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = mask_crc(fragment_crc(kind, payload)).to_le_bytes().to_vec();
        v.extend_from_slice(&(payload.len() as u16).to_le_bytes());
        v.push(kind);
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn skip_damage_goes_on_at_the_next_record() {
        let recs: Vec<Vec<u8>> = (0..6u8).map(|i| vec![i; 300]).collect();
        let (mut data, starts) = write_log(&recs);
        data[starts[2] + 10] ^= 1; // record 2's payload: checksum mismatch
        let mut r = LogReader::new(PathBuf::from("s.log"), data);
        let mut got = Vec::new();
        loop {
            match r.read_record() {
                Ok(Some(rec)) => got.push(rec[0]),
                Ok(None) => break,
                Err(e) => {
                    assert!(e.is_corruption());
                    assert_eq!(r.skip_damage(), Some(starts[3] as u64));
                }
            }
        }
        assert_eq!(got, vec![0, 1, 3, 4, 5]);
        assert_eq!(r.skip_damage(), None, "nothing left to skip");
    }

    #[test]
    fn roundtrip_with_offsets() {
        let recs = sample();
        let (data, starts) = write_log(&recs);
        assert_eq!(starts[3], BLOCK_SIZE, "record 2 filled block 0 exactly");
        let o = read_all(data);
        assert!(o.err.is_none() && o.torn.is_none());
        assert_eq!(o.records, recs);
        let starts: Vec<u64> = starts.iter().map(|&s| s as u64).collect();
        assert_eq!(o.offsets, starts);

        let many = small_records(5000);
        let (data, _) = write_log(&many);
        assert!(data.len() > 5 * BLOCK_SIZE);
        let o = read_all(data);
        assert!(o.err.is_none() && o.torn.is_none());
        assert_eq!(o.records, many);
    }

    #[test]
    fn empty_and_zero_filled_logs_are_clean() {
        let o = read_all(Vec::new());
        assert!(o.records.is_empty() && o.torn.is_none() && o.err.is_none());
        let o = read_all(vec![0u8; 3]);
        assert!(o.records.is_empty() && o.torn.is_none() && o.err.is_none());
        let (mut data, _) = write_log(&sample());
        data.extend_from_slice(&vec![0u8; 2 * BLOCK_SIZE + 17]);
        let o = read_all(data);
        assert!(o.torn.is_none() && o.err.is_none());
        assert_eq!(o.records, sample());
    }

    #[test]
    fn zeros_then_garbage_is_torn_and_zeros_then_records_is_corrupt() {
        let recs = small_records(10);
        let (mut data, starts) = write_log(&recs);
        data.extend_from_slice(&[0u8; 100]);
        data.extend_from_slice(b"garbage");
        let o = read_all(data.clone());
        assert_eq!(o.records, recs);
        assert!(o.err.is_none());
        assert_eq!(o.torn.unwrap().offset, data.len() as u64 - 107);

        // Zero out record 3, which is followed by valid records (in its
        // sector: no sector was lost whole, so this is no power loss).
        let (mut data, _) = write_log(&recs);
        assert!(starts[4] < (starts[3] / SECTOR + 1) * SECTOR);
        data[starts[3]..starts[4]].fill(0);
        let o = read_all(data);
        assert_eq!(o.records.len(), 3);
        let err = o.err.expect("corruption");
        assert!(err.is_corruption(), "{err}");
    }

    #[test]
    fn writes_lost_out_of_order_are_a_torn_tail() {
        // Several blocks: records after the damage are found at the next
        // block start (within a block, a broken chain hides them anyway).
        let recs = small_records(2000);
        let (data, starts) = write_log(&recs);
        assert!(data.len() > 2 * BLOCK_SIZE);
        let expect_torn_at = |data: Vec<u8>, k: usize| {
            let o = read_all(data);
            assert!(o.err.is_none(), "{:?}", o.err);
            assert_eq!(o.records, recs[..k]);
            let torn = o.torn.expect("torn tail");
            assert_eq!(torn.offset, starts[k] as u64);
            assert!(torn.reason.contains("lost out of order"), "{}", torn.reason);
        };
        // The sector holding the last synced byte kept its old content:
        // zeros from the next record's start to the sector's end.
        let k = (10..recs.len())
            .find(|&k| starts[k] % SECTOR > SECTOR / 2)
            .expect("an unaligned record start");
        let mut lost = data.clone();
        lost[starts[k]..(starts[k] / SECTOR + 1) * SECTOR].fill(0);
        expect_torn_at(lost, k);
        // A whole sector lost in the middle: the record across it is damaged.
        let sector = 4 * SECTOR;
        let k = starts.iter().rposition(|&s| s < sector).expect("a record");
        let mut lost = data.clone();
        lost[sector..sector + SECTOR].fill(0);
        expect_torn_at(lost.clone(), k);
        // A log whose every record was synced cannot lose a middle sector.
        let mut r = LogReader::each_record_synced(PathBuf::from("manifest"), lost);
        let err = loop {
            match r.read_record() {
                Ok(Some(_)) => {}
                Ok(None) => panic!("a hole before synced records must be corruption"),
                Err(e) => break e,
            }
        };
        assert!(err.is_corruption(), "{err}");
        // The same damage without a zero sector is corruption.
        let mut flipped = data.clone();
        flipped[sector + 3] ^= 0x40;
        let o = read_all(flipped);
        assert_eq!(o.records, recs[..k]);
        assert!(o.err.expect("corruption").is_corruption());
    }

    #[test]
    fn block_trailers_of_six_and_seven_bytes() {
        // Leave exactly 6 bytes in block 0: they are a zero trailer.
        let first = vec![9u8; BLOCK_SIZE - HEADER_SIZE - 6];
        let (data, starts) = write_log(&[first.clone(), b"next".to_vec()]);
        assert_eq!(starts[1], BLOCK_SIZE);
        assert_eq!(&data[BLOCK_SIZE - 6..BLOCK_SIZE], &[0u8; 6]);
        assert_eq!(read_all(data).records, vec![first, b"next".to_vec()]);
        // Leave exactly 7: the next record begins with an empty FIRST fragment.
        let first = vec![9u8; BLOCK_SIZE - HEADER_SIZE - 7];
        let (data, starts) = write_log(&[first.clone(), b"next".to_vec()]);
        assert_eq!(starts[1], BLOCK_SIZE - 7);
        assert_eq!(data[BLOCK_SIZE - 1], FIRST);
        let o = read_all(data);
        assert_eq!(o.records, vec![first, b"next".to_vec()]);
        assert_eq!(o.offsets[1], BLOCK_SIZE as u64 - 7);
        // A log that ends inside a trailer is clean.
        let first = vec![9u8; BLOCK_SIZE - HEADER_SIZE - 3];
        let (data, _) = write_log(std::slice::from_ref(&first));
        let o = read_all(data);
        assert!(o.torn.is_none());
        assert_eq!(o.records, vec![first]);
    }

    #[test]
    fn every_truncation_is_a_prefix_with_a_torn_tail() {
        let recs: Vec<Vec<u8>> = (0..40).map(|i| vec![i as u8; i * 97 % 3000]).collect();
        let mut recs = recs;
        recs.push(vec![7u8; 2 * BLOCK_SIZE + 5]);
        recs.push(b"end".to_vec());
        let (data, starts) = write_log(&recs);
        for cut in 0..=data.len() {
            let o = read_all(data[..cut].to_vec());
            if let Some(e) = o.err {
                panic!("cut {cut}: {e}");
            }
            let n = o.records.len();
            assert_eq!(o.records[..], recs[..n], "cut {cut}");
            let whole = starts.get(n).map_or(data.len(), |&s| s);
            match o.torn {
                // A partial header that happens to be zero reads as padding.
                None => assert!(
                    cut <= whole || data[whole..cut].iter().all(|&b| b == 0),
                    "cut {cut}: records lost silently"
                ),
                Some(t) => {
                    assert_eq!(t.offset, starts[n] as u64, "cut {cut}");
                    assert!(cut > starts[n], "cut {cut}");
                }
            }
            if cut == data.len() || starts.contains(&cut) {
                assert_eq!(n, starts.iter().filter(|&&s| s < cut).count(), "cut {cut}");
            }
        }
    }

    #[test]
    fn any_damage_in_the_last_record_is_a_torn_tail() {
        let mut recs = small_records(50);
        recs.push(vec![5u8; 2 * BLOCK_SIZE + 300]); // multi-block last record
        let (data, starts) = write_log(&recs);
        let last = starts[recs.len() - 1];
        for pos in last..data.len() {
            let mut d = data.clone();
            d[pos] ^= 0x5a;
            let o = read_all(d);
            if let Some(e) = o.err {
                panic!("flip at {pos}: {e}");
            }
            assert_eq!(o.records[..], recs[..recs.len() - 1], "flip at {pos}");
            assert_eq!(o.torn.expect("torn").offset, last as u64);
        }
        // Single-fragment last record.
        let recs = small_records(20);
        let (data, starts) = write_log(&recs);
        for pos in starts[19]..data.len() {
            let mut d = data.clone();
            d[pos] ^= 0x01;
            let o = read_all(d);
            assert!(o.err.is_none(), "flip at {pos}");
            assert_eq!(o.records.len(), 19);
            assert!(o.torn.is_some());
        }
    }

    #[test]
    fn damage_followed_by_records_is_corruption_naming_the_offset() {
        let recs = small_records(3000); // many blocks, records cross boundaries
        let (data, starts) = write_log(&recs);
        assert!(data.len() > 4 * BLOCK_SIZE);
        for victim in [0usize, 1, 700, 1500] {
            for pos in starts[victim]..starts[victim + 1] {
                // Zero trailer bytes before a block end are never read.
                let be = block_end(pos);
                if be - pos < HEADER_SIZE && data[pos..be].iter().all(|&b| b == 0) {
                    continue;
                }
                let mut d = data.clone();
                d[pos] ^= 0x10;
                let o = read_all(d);
                let err = o.err.unwrap_or_else(|| panic!("flip at {pos}: no error"));
                assert!(err.is_corruption());
                let msg = err.to_string();
                assert!(msg.contains("test.log"), "{msg}");
                assert!(
                    msg.contains(&format!("offset {}", starts[victim])),
                    "flip at {pos}: {msg}"
                );
                assert_eq!(o.records[..], recs[..victim]);
            }
        }
    }

    #[test]
    fn sequence_errors() {
        // LAST without FIRST, then a good record: corruption.
        let mut d = fragment(LAST, b"orphan");
        d.extend(fragment(FULL, b"good"));
        let o = read_all(d);
        assert!(o.err.expect("error").is_corruption());
        // LAST without FIRST at the end: torn.
        let mut d = fragment(FULL, b"good");
        d.extend(fragment(LAST, b"orphan"));
        let o = read_all(d);
        assert_eq!(o.records, vec![b"good".to_vec()]);
        assert_eq!(o.torn.expect("torn").offset, 11);
        // FIRST, then FULL: the first record lost its end.
        let mut d = fragment(FIRST, b"half");
        d.extend(fragment(FULL, b"good"));
        let o = read_all(d);
        let err = o.err.expect("error");
        assert!(err.to_string().contains("offset 0"), "{err}");
        // FIRST, MIDDLE, end of data: torn at the FIRST.
        let mut d = fragment(FULL, b"x");
        d.extend(fragment(FIRST, b"a"));
        d.extend(fragment(MIDDLE, b"b"));
        let o = read_all(d);
        assert_eq!(o.records.len(), 1);
        assert_eq!(o.torn.expect("torn").offset, 8);
        // An embedded log inside a torn record's payload is not a record.
        let mut payload = Vec::new();
        for _ in 0..50 {
            payload.extend(fragment(FULL, b"embedded record"));
        }
        let (mut d, _) = write_log(&[b"real".to_vec(), payload]);
        d.truncate(d.len() - 3);
        let o = read_all(d);
        assert!(o.err.is_none());
        assert_eq!(o.records, vec![b"real".to_vec()]);
        assert!(o.torn.is_some());
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 12345u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as u8
        };
        for len in [0usize, 1, 6, 7, 8, 100, 40000, 70000] {
            let data: Vec<u8> = (0..len).map(|_| next()).collect();
            let _ = read_all(data);
        }
        // Valid logs with random bytes overwritten.
        let (data, _) = write_log(&small_records(500));
        for _ in 0..300 {
            let mut d = data.clone();
            for _ in 0..(next() % 8 + 1) {
                let pos = ((next() as usize) << 8 | next() as usize) % d.len();
                d[pos] = next();
            }
            let _ = read_all(d);
        }
    }
}
