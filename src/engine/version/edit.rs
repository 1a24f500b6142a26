//! VersionEdit: one change to the set of live files — the MANIFEST record.
//!
//! Encoding: a sequence of tagged fields, each `varint32 tag` then its data:
//!
//! | tag | field | data |
//! | --- | --- | --- |
//! | 1 | comparator | length-prefixed name |
//! | 2 | log number | varint64 |
//! | 3 | next file number | varint64 |
//! | 4 | last sequence | varint64 |
//! | 5 | compact pointer | varint32 level, length-prefixed internal key |
//! | 6 | deleted file | varint32 level, varint64 number |
//! | 9 | prev log number | varint64 |
//! | 20 | new file | varint32 level, varint64 number, varint64 size, length-prefixed smallest and largest internal keys, varint64 smallest seq, varint64 largest seq, varint64 entries |
//! | 30 | new blob file | varint64 number, varint64 size, varint64 records, varint64 record bytes, varint64 garbage records, varint64 garbage bytes |
//! | 31 | blob garbage | varint64 number, varint64 records, varint64 bytes (added to the file's garbage) |
//! | 32 | deleted blob file | varint64 number |
//! | 40 | new snapshot | varint64 id, length-prefixed name, varint64 sequence, varint64 creation time (ns since the epoch) |
//! | 41 | deleted snapshot | varint64 id |
//! | 42 | next snapshot id | varint64 |
//!
//! Blob files (tags 30–32) are members of the Version like tables: a flush
//! that writes one adds it (tag 30, no garbage yet; a MANIFEST's snapshot
//! record carries each file's garbage so far); a compaction that drops
//! references to it adds their count and bytes (tag 31), and deletes the
//! file (tag 32) in the same edit once every record is garbage.
//!
//! Persistent snapshots (tags 40–42, see `snapshot`) are part of the
//! crash-safe state like the files: creating one is an edit holding tags 40
//! and 42, deleting one an edit holding tag 41, and a MANIFEST's first record
//! carries every live snapshot and the next id. A build from before snapshots
//! refuses such a MANIFEST (unknown tag), which is right: it would compact
//! away what the snapshots pin.
//!
//! Tags 1–6 and 9 mean what they mean in LevelDB; new files carry their
//! sequence range and entry count too (tag 20), so `inspect` and `check`
//! can show and verify them without opening the table. An unknown tag is an
//! error: guessing at a MANIFEST we do not understand could lose data. So is
//! a number no writer could have produced: a file number at or past
//! `MAX_FILE_NUMBER`, or a sequence past `MAX_SEQUENCE` (the counters are
//! incremented from these, and must not overflow).

use crate::engine::blob::BlobFileMeta;
use crate::engine::coding::{put_length_prefixed, put_varint32, put_varint64, Decoder};
use crate::engine::dbformat::{parse_internal_key, MAX_SEQUENCE};
use crate::engine::options::NUM_LEVELS;
use crate::engine::snapshot::PersistentSnapshot;
use std::collections::BTreeSet;
use std::fmt;

const TAG_COMPARATOR: u32 = 1;
const TAG_LOG_NUMBER: u32 = 2;
const TAG_NEXT_FILE: u32 = 3;
const TAG_LAST_SEQUENCE: u32 = 4;
const TAG_COMPACT_POINTER: u32 = 5;
const TAG_DELETED_FILE: u32 = 6;
const TAG_PREV_LOG_NUMBER: u32 = 9;
const TAG_NEW_FILE: u32 = 20;
const TAG_NEW_BLOB: u32 = 30;
const TAG_BLOB_GARBAGE: u32 = 31;
const TAG_DELETED_BLOB: u32 = 32;

/// File numbers (and the next-file counter) stay below this.
pub const MAX_FILE_NUMBER: u64 = 1 << 62;
const TAG_NEW_SNAPSHOT: u32 = 40;
const TAG_DELETED_SNAPSHOT: u32 = 41;
const TAG_NEXT_SNAPSHOT_ID: u32 = 42;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileMetaData {
    pub number: u64,
    pub file_size: u64,
    /// Smallest and largest internal keys.
    pub smallest: Vec<u8>,
    pub largest: Vec<u8>,
    pub smallest_seq: u64,
    pub largest_seq: u64,
    pub num_entries: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionEdit {
    pub comparator: Option<String>,
    pub log_number: Option<u64>,
    pub prev_log_number: Option<u64>,
    pub next_file_number: Option<u64>,
    pub last_sequence: Option<u64>,
    pub compact_pointers: Vec<(usize, Vec<u8>)>,
    pub deleted_files: BTreeSet<(usize, u64)>,
    pub new_files: Vec<(usize, FileMetaData)>,
    pub new_blobs: Vec<BlobFileMeta>,
    /// (blob file, records, bytes) that became garbage.
    pub blob_garbage: Vec<(u64, u64, u64)>,
    pub deleted_blobs: BTreeSet<u64>,
    pub new_snapshots: Vec<PersistentSnapshot>,
    pub deleted_snapshots: BTreeSet<u64>,
    pub next_snapshot_id: Option<u64>,
}

impl VersionEdit {
    pub fn add_file(&mut self, level: usize, f: FileMetaData) {
        self.new_files.push((level, f));
    }

    pub fn delete_file(&mut self, level: usize, number: u64) {
        self.deleted_files.insert((level, number));
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut d = Vec::new();
        if let Some(c) = &self.comparator {
            put_varint32(&mut d, TAG_COMPARATOR);
            put_length_prefixed(&mut d, c.as_bytes());
        }
        for (tag, v) in [
            (TAG_LOG_NUMBER, self.log_number),
            (TAG_PREV_LOG_NUMBER, self.prev_log_number),
            (TAG_NEXT_FILE, self.next_file_number),
            (TAG_LAST_SEQUENCE, self.last_sequence),
        ] {
            if let Some(v) = v {
                put_varint32(&mut d, tag);
                put_varint64(&mut d, v);
            }
        }
        for (level, key) in &self.compact_pointers {
            put_varint32(&mut d, TAG_COMPACT_POINTER);
            put_varint32(&mut d, *level as u32);
            put_length_prefixed(&mut d, key);
        }
        for (level, number) in &self.deleted_files {
            put_varint32(&mut d, TAG_DELETED_FILE);
            put_varint32(&mut d, *level as u32);
            put_varint64(&mut d, *number);
        }
        for (level, f) in &self.new_files {
            put_varint32(&mut d, TAG_NEW_FILE);
            put_varint32(&mut d, *level as u32);
            put_varint64(&mut d, f.number);
            put_varint64(&mut d, f.file_size);
            put_length_prefixed(&mut d, &f.smallest);
            put_length_prefixed(&mut d, &f.largest);
            put_varint64(&mut d, f.smallest_seq);
            put_varint64(&mut d, f.largest_seq);
            put_varint64(&mut d, f.num_entries);
        }
        for b in &self.new_blobs {
            put_varint32(&mut d, TAG_NEW_BLOB);
            for v in [
                b.number,
                b.file_size,
                b.records,
                b.record_bytes,
                b.garbage_records,
                b.garbage_bytes,
            ] {
                put_varint64(&mut d, v);
            }
        }
        for (n, records, bytes) in &self.blob_garbage {
            put_varint32(&mut d, TAG_BLOB_GARBAGE);
            for v in [*n, *records, *bytes] {
                put_varint64(&mut d, v);
            }
        }
        for n in &self.deleted_blobs {
            put_varint32(&mut d, TAG_DELETED_BLOB);
            put_varint64(&mut d, *n);
        }
        for snap in &self.new_snapshots {
            put_varint32(&mut d, TAG_NEW_SNAPSHOT);
            put_varint64(&mut d, snap.id);
            put_length_prefixed(&mut d, snap.name.as_bytes());
            put_varint64(&mut d, snap.sequence);
            put_varint64(&mut d, snap.created_ns);
        }
        for id in &self.deleted_snapshots {
            put_varint32(&mut d, TAG_DELETED_SNAPSHOT);
            put_varint64(&mut d, *id);
        }
        if let Some(n) = self.next_snapshot_id {
            put_varint32(&mut d, TAG_NEXT_SNAPSHOT_ID);
            put_varint64(&mut d, n);
        }
        d
    }

    pub fn decode(data: &[u8]) -> Result<VersionEdit, String> {
        let mut e = VersionEdit::default();
        let mut d = Decoder::new(data);
        while !d.is_empty() {
            let at = d.pos;
            let tag = d
                .varint32()
                .ok_or_else(|| format!("bad tag at byte {at} of edit"))?;
            let bad = || format!("truncated field (tag {tag}) at byte {at} of edit");
            let number = |n: u64| {
                if n < MAX_FILE_NUMBER {
                    Ok(n)
                } else {
                    Err(format!(
                        "file number {n} out of range (tag {tag}) at byte {at} of edit"
                    ))
                }
            };
            let seq = |n: u64| {
                if n <= MAX_SEQUENCE {
                    Ok(n)
                } else {
                    Err(format!(
                        "sequence {n} out of range (tag {tag}) at byte {at} of edit"
                    ))
                }
            };
            match tag {
                TAG_COMPARATOR => {
                    let s = d.length_prefixed().ok_or_else(bad)?;
                    e.comparator = Some(String::from_utf8_lossy(s).into_owned());
                }
                TAG_LOG_NUMBER => e.log_number = Some(number(d.varint64().ok_or_else(bad)?)?),
                TAG_PREV_LOG_NUMBER => {
                    e.prev_log_number = Some(number(d.varint64().ok_or_else(bad)?)?)
                }
                TAG_NEXT_FILE => e.next_file_number = Some(number(d.varint64().ok_or_else(bad)?)?),
                TAG_LAST_SEQUENCE => e.last_sequence = Some(seq(d.varint64().ok_or_else(bad)?)?),
                TAG_COMPACT_POINTER => {
                    let level = level(d.varint32().ok_or_else(bad)?)?;
                    let key = d.length_prefixed().ok_or_else(bad)?;
                    e.compact_pointers.push((level, key.to_vec()));
                }
                TAG_DELETED_FILE => {
                    let level = level(d.varint32().ok_or_else(bad)?)?;
                    let n = number(d.varint64().ok_or_else(bad)?)?;
                    e.deleted_files.insert((level, n));
                }
                TAG_NEW_FILE => {
                    let level = level(d.varint32().ok_or_else(bad)?)?;
                    let f = (|| {
                        Some(FileMetaData {
                            number: d.varint64()?,
                            file_size: d.varint64()?,
                            smallest: d.length_prefixed()?.to_vec(),
                            largest: d.length_prefixed()?.to_vec(),
                            smallest_seq: d.varint64()?,
                            largest_seq: d.varint64()?,
                            num_entries: d.varint64()?,
                        })
                    })()
                    .ok_or_else(bad)?;
                    number(f.number)?;
                    seq(f.smallest_seq)?;
                    seq(f.largest_seq)?;
                    e.new_files.push((level, f));
                }
                TAG_NEW_BLOB => {
                    let b = (|| {
                        Some(BlobFileMeta {
                            number: d.varint64()?,
                            file_size: d.varint64()?,
                            records: d.varint64()?,
                            record_bytes: d.varint64()?,
                            garbage_records: d.varint64()?,
                            garbage_bytes: d.varint64()?,
                        })
                    })()
                    .ok_or_else(bad)?;
                    e.new_blobs.push(b);
                }
                TAG_BLOB_GARBAGE => {
                    let g = (|| Some((d.varint64()?, d.varint64()?, d.varint64()?)))()
                        .ok_or_else(bad)?;
                    e.blob_garbage.push(g);
                }
                TAG_DELETED_BLOB => {
                    e.deleted_blobs.insert(d.varint64().ok_or_else(bad)?);
                }
                TAG_NEW_SNAPSHOT => {
                    let id = d.varint64().ok_or_else(bad)?;
                    let name = d.length_prefixed().ok_or_else(bad)?;
                    let name = String::from_utf8(name.to_vec())
                        .map_err(|_| format!("snapshot name is not UTF-8 at byte {at} of edit"))?;
                    let sequence = d.varint64().ok_or_else(bad)?;
                    let created_ns = d.varint64().ok_or_else(bad)?;
                    e.new_snapshots.push(PersistentSnapshot {
                        id,
                        name,
                        sequence,
                        created_ns,
                    });
                }
                TAG_DELETED_SNAPSHOT => {
                    e.deleted_snapshots.insert(d.varint64().ok_or_else(bad)?);
                }
                TAG_NEXT_SNAPSHOT_ID => e.next_snapshot_id = Some(d.varint64().ok_or_else(bad)?),
                t => return Err(format!("unknown tag {t} at byte {at} of edit")),
            }
        }
        Ok(e)
    }
}

fn level(l: u32) -> Result<usize, String> {
    if (l as usize) < NUM_LEVELS {
        Ok(l as usize)
    } else {
        Err(format!("level {l} out of range"))
    }
}

/// Printable ASCII as is, other bytes as `\xNN`.
pub fn escape_key(k: &[u8]) -> String {
    let mut s = String::with_capacity(k.len());
    for &b in k {
        if (0x20..0x7f).contains(&b) && b != b'\\' {
            s.push(b as char);
        } else {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s
}

/// `user_key@seq` (or `del:user_key@seq`) for an internal key.
pub fn display_internal_key(ik: &[u8]) -> String {
    match parse_internal_key(ik) {
        Some(p) => {
            let del = if p.value_type == crate::engine::dbformat::ValueType::Deletion {
                "del:"
            } else {
                ""
            };
            format!("{del}{}@{}", escape_key(p.user_key), p.sequence)
        }
        None => format!("<bad key {}>", escape_key(ik)),
    }
}

fn human_bytes(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{:.1}MiB", n as f64 / (1u64 << 20) as f64)
    } else if n >= 1 << 10 {
        format!("{:.1}KiB", n as f64 / 1024.0)
    } else {
        format!("{n}B")
    }
}

impl fmt::Display for FileMetaData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "#{} {} {} entries [{} .. {}] seq {}..{}",
            self.number,
            human_bytes(self.file_size),
            self.num_entries,
            display_internal_key(&self.smallest),
            display_internal_key(&self.largest),
            self.smallest_seq,
            self.largest_seq
        )
    }
}

impl fmt::Display for VersionEdit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if let Some(c) = &self.comparator {
            parts.push(format!("comparator={c}"));
        }
        if let Some(n) = self.log_number {
            parts.push(format!("log={n}"));
        }
        if let Some(n) = self.prev_log_number.filter(|&n| n != 0) {
            parts.push(format!("prev_log={n}"));
        }
        if let Some(n) = self.next_file_number {
            parts.push(format!("next_file={n}"));
        }
        if let Some(n) = self.last_sequence {
            parts.push(format!("last_seq={n}"));
        }
        for (l, k) in &self.compact_pointers {
            parts.push(format!("pointer L{l}={}", display_internal_key(k)));
        }
        for (l, n) in &self.deleted_files {
            parts.push(format!("-L{l} #{n}"));
        }
        for (l, m) in &self.new_files {
            parts.push(format!("+L{l} {m}"));
        }
        for b in &self.new_blobs {
            parts.push(format!(
                "+blob #{} {} {} records, garbage {} records {}",
                b.number,
                human_bytes(b.file_size),
                b.records,
                b.garbage_records,
                human_bytes(b.garbage_bytes)
            ));
        }
        for (n, r, b) in &self.blob_garbage {
            parts.push(format!(
                "garbage blob #{n} +{r} records +{}",
                human_bytes(*b)
            ));
        }
        for n in &self.deleted_blobs {
            parts.push(format!("-blob #{n}"));
        }
        for snap in &self.new_snapshots {
            parts.push(format!(
                "+snapshot #{} {:?} seq {}",
                snap.id, snap.name, snap.sequence
            ));
        }
        for id in &self.deleted_snapshots {
            parts.push(format!("-snapshot #{id}"));
        }
        if let Some(n) = self.next_snapshot_id {
            parts.push(format!("next_snapshot={n}"));
        }
        write!(f, "{}", parts.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::dbformat::{make_internal_key, ValueType};

    fn sample() -> VersionEdit {
        let mut e = VersionEdit {
            comparator: Some("cmp".into()),
            log_number: Some(5),
            prev_log_number: Some(0),
            next_file_number: Some(13),
            last_sequence: Some(9000),
            ..Default::default()
        };
        e.compact_pointers
            .push((2, make_internal_key(b"m", 5, ValueType::Value)));
        e.delete_file(1, 7);
        e.delete_file(1, 9);
        e.add_file(
            2,
            FileMetaData {
                number: 12,
                file_size: 4096,
                smallest: make_internal_key(b"a", 100, ValueType::Value),
                largest: make_internal_key(b"m", 900, ValueType::Deletion),
                smallest_seq: 100,
                largest_seq: 900,
                num_entries: 42,
            },
        );
        e.new_blobs.push(BlobFileMeta {
            number: 14,
            file_size: 99999,
            records: 20,
            record_bytes: 90000,
            garbage_records: 2,
            garbage_bytes: 9000,
        });
        e.blob_garbage.push((11, 3, 12000));
        e.deleted_blobs.insert(10);
        e.new_snapshots.push(PersistentSnapshot {
            id: 3,
            name: "before-upgrade".into(),
            sequence: 8000,
            created_ns: 1_700_000_000_000_000_000,
        });
        e.deleted_snapshots.insert(2);
        e.next_snapshot_id = Some(4);
        e
    }

    #[test]
    fn roundtrip() {
        let e = sample();
        assert_eq!(VersionEdit::decode(&e.encode()).unwrap(), e);
        assert_eq!(VersionEdit::decode(&[]).unwrap(), VersionEdit::default());
        let s = e.to_string();
        assert!(s.contains("+L2 #12") && s.contains("-L1 #7"), "{s}");
        assert!(
            s.contains("+snapshot #3 \"before-upgrade\" seq 8000"),
            "{s}"
        );
        assert!(s.contains("-snapshot #2"), "{s}");
    }

    #[test]
    fn truncated_or_garbage_is_an_error() {
        let data = sample().encode();
        for cut in 1..data.len() {
            let _ = VersionEdit::decode(&data[..cut]);
        }
        assert!(VersionEdit::decode(&[99]).is_err());
        assert!(VersionEdit::decode(&[6, 200, 1]).is_err());
        assert!(VersionEdit::decode(&data[..data.len() - 1]).is_err());
    }
}
