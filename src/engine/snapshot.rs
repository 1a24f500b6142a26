//! Snapshots: persistent ones (named, in the MANIFEST) and the *stripes*
//! every snapshot cuts the sequence space into.
//!
//! A persistent snapshot is a name for a sequence number: reading at that
//! sequence shows the store as it was when the snapshot was taken. It is
//! recorded as one MANIFEST edit (see `version::edit`, tags 40–42), so it is
//! part of the store's crash-safe state like the set of tables: creating or
//! deleting one is one fsync'd record, whole or absent after a crash, and a
//! MANIFEST's first record carries every live one. Before the edit is
//! written the WAL is fsync'd, so what the snapshot shows survives power loss
//! as soon as it is acknowledged.
//!
//! Compaction and flush must keep, for every snapshot (persistent or held in
//! memory) and for the live view, the newest version of each key at or below
//! its sequence — LevelDB only honours the oldest snapshot, which is not
//! enough once several are kept for days. The sorted snapshot sequences
//! `s1 < s2 < … < sn` (the live view's sequence last) cut the sequence space
//! into stripes `[0, s1]`, `(s1, s2]`, …; an entry belongs to the first
//! stripe whose bound is at or above its sequence, and every snapshot that
//! sees it sees everything newer in the same stripe. So an older version of
//! a key is dropped only when a newer one is in the *same* stripe, and an
//! entry a range deletion hides is dropped only when the tombstone is in
//! its stripe too (RocksDB's rule).
//!
//! ## Giving a deleted snapshot's space back
//!
//! Deleting a snapshot drops its stripe bound, but the versions it alone
//! kept sit in tables that no compaction may be due to touch for a long
//! time (a level under budget, or the bottom, which ordinary compactions
//! never rewrite). RocksDB marks such files for compaction once the oldest
//! snapshot passes their largest sequence; we mark them with a cheaper
//! criterion, kept in memory, that needs no new field in the MANIFEST or
//! the tables: a table can keep a version only snapshot `s` needed only if
//! it also holds the newer version that hid it from later readers (the two
//! met in the merge or flush that wrote it: one file of a level holds all
//! of its versions of a key), so only if its sequence range straddles `s`
//! (`smallest_seq <= s < largest_seq`). After a delete, the background
//! thread (`db::snapshots`'s `reclaim_retired`, after every flush and due compaction,
//! one table per step so a flush never waits behind more than one table's
//! rewrite) rewrites each such table written while `s` could still be
//! seen (numbered below the next file number at its first step once no
//! reader holds `s`; flushes and compactions are serialised, so none was
//! under way) under the stripes of the day: in place at L1 and below,
//! merged into L1 at L0
//! (whose files overlap). A version whose newer one lies in another table
//! is not found this way; the compaction that brings the two together
//! drops it, as it drops any overwritten version (so deletions still in
//! the memtable give their space back once flushed and compacted, as they
//! would with no snapshot at all). Tables also straddle
//! `s` by chance (keys written on both sides of it, nothing hidden): they
//! are rewritten for nothing, once — the price of knowing no more. A
//! deleted snapshot a reader still holds (an open view) waits until it is
//! released. The list is not persistent: after a restart what is left of
//! it is given back by ordinary compactions, or at once by a full one
//! (`lsmfs compact`), which rewrites every table.

use super::dbformat::SequenceNumber;

/// A named, durable snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistentSnapshot {
    /// Never reused within a store (the MANIFEST keeps the next one).
    pub id: u64,
    pub name: String,
    pub sequence: SequenceNumber,
    /// Creation time, nanoseconds since the Unix epoch.
    pub created_ns: u64,
}

/// Longest snapshot name, in bytes (a file name's limit: it is one on the mount).
pub const MAX_NAME_LEN: usize = 255;

/// Whether `name` can name a snapshot: what a directory entry may be called.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(format!("{name:?} cannot name a snapshot"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "snapshot name is {} bytes, at most {MAX_NAME_LEN}",
            name.len()
        ));
    }
    if name.contains('/') || name.contains('\0') {
        return Err(format!("snapshot name {name:?} holds a '/' or a NUL byte"));
    }
    Ok(())
}

/// The stripes the live snapshots cut the sequence space into.
#[derive(Debug, Clone)]
pub struct Stripes {
    /// Sorted, deduplicated snapshot sequences; the last is the live view's.
    bounds: Vec<SequenceNumber>,
}

impl Stripes {
    /// `snapshots` in any order; `live` is the sequence current readers use.
    pub fn new(
        snapshots: impl IntoIterator<Item = SequenceNumber>,
        live: SequenceNumber,
    ) -> Stripes {
        let mut bounds: Vec<SequenceNumber> = snapshots.into_iter().collect();
        bounds.push(live);
        bounds.sort_unstable();
        bounds.dedup();
        Stripes { bounds }
    }

    /// Every sequence is a snapshot: nothing may be dropped.
    pub fn keep_all() -> Stripes {
        Stripes { bounds: Vec::new() }
    }

    /// The oldest snapshot: entries at or below it are seen by every reader.
    pub fn smallest(&self) -> SequenceNumber {
        self.bounds.first().copied().unwrap_or(0)
    }

    /// Index of the stripe holding `seq` (`bounds.len()` past every bound).
    pub fn stripe(&self, seq: SequenceNumber) -> usize {
        self.bounds.partition_point(|&b| b < seq)
    }

    /// The oldest snapshot that sees `seq`; None if none does.
    pub fn bound(&self, seq: SequenceNumber) -> Option<SequenceNumber> {
        self.bounds.get(self.stripe(seq)).copied()
    }

    /// Whether an entry at `older` is invisible to every snapshot given a
    /// newer version of the same key at `newer`.
    pub fn shadowed(&self, newer: SequenceNumber, older: SequenceNumber) -> bool {
        newer != u64::MAX && self.stripe(newer) == self.stripe(older) && self.bound(older).is_some()
    }

    /// Whether an entry at `seq`, covered by range deletions whose newest
    /// sequence at or below a read sequence is `cover(read)`, is hidden from
    /// every snapshot that could see it.
    pub fn covered(&self, seq: SequenceNumber, cover: impl Fn(SequenceNumber) -> u64) -> bool {
        self.bound(seq).is_some_and(|b| cover(b) > seq)
    }
}

/// Bytes only each snapshot holds, estimated in one pass over `input`
/// (every internal entry of the store, in internal-key order) with the
/// store's range deletions `ranges`: an entry counts for a snapshot when
/// that snapshot is the only reader — among the persistent snapshots
/// `bounds` (id, sequence) and the live view at `live` — that sees it.
/// Its size is its key and value, or for a blob reference the record it
/// points at. Readers held only in memory are not counted, nor the
/// versions every reader shares; so this is what deleting the snapshot
/// and compacting gives back, give or take table overheads.
pub fn exclusive_bytes(
    input: &mut dyn super::iterator::InternalIterator,
    ranges: &[std::sync::Arc<super::range_del::Fragments>],
    bounds: &[(u64, SequenceNumber)],
    live: SequenceNumber,
    dir: &std::path::Path,
) -> super::error::Result<Vec<(u64, u64)>> {
    use super::dbformat::{parse_internal_key, ValueType};
    let mut readers: Vec<(Option<usize>, SequenceNumber)> = bounds
        .iter()
        .enumerate()
        .map(|(i, &(_, s))| (Some(i), s))
        .collect();
    readers.push((None, live));
    readers.sort_by_key(|r| r.1);
    let mut out = vec![0u64; bounds.len()];
    // The versions of the current user key, newest first: (seq, kind, size).
    let mut key: Vec<u8> = Vec::new();
    let mut versions: Vec<(SequenceNumber, ValueType, u64)> = Vec::new();
    let settle = |key: &[u8], versions: &[(SequenceNumber, ValueType, u64)], out: &mut [u64]| {
        for (vi, &(seq, kind, size)) in versions.iter().enumerate() {
            if !matches!(kind, ValueType::Value | ValueType::BlobIndex) {
                continue;
            }
            // Readers that see this version: at or above it, below the next.
            let newer = vi.checked_sub(1).map(|i| versions[i].0);
            let mut seen = readers.iter().filter(|&&(_, read)| {
                read >= seq
                    && newer.is_none_or(|n| n > read)
                    && !ranges.iter().any(|f| f.max_covering(key, read) > seq)
            });
            if let (Some(&(Some(i), _)), None) = (seen.next(), seen.next()) {
                out[i] += key.len() as u64 + size;
            }
        }
    };
    input.seek_to_first();
    while input.valid() {
        let Some(p) = parse_internal_key(input.key()) else {
            return Err(super::error::Error::InvalidArgument(format!(
                "malformed internal key of {} bytes",
                input.key().len()
            )));
        };
        if p.user_key != key.as_slice() {
            settle(&key, &versions, &mut out);
            key.clear();
            key.extend_from_slice(p.user_key);
            versions.clear();
        }
        let size = if p.value_type == ValueType::BlobIndex {
            super::blob::decode_ref(dir, input.value())?.size
        } else {
            input.value().len() as u64
        };
        versions.push((p.sequence, p.value_type, size));
        input.next();
    }
    input.status()?;
    settle(&key, &versions, &mut out);
    Ok(bounds.iter().map(|b| b.0).zip(out).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripes_keep_the_newest_version_below_each_snapshot() {
        let s = Stripes::new([10, 20], 30);
        assert_eq!(s.smallest(), 10);
        assert_eq!(s.stripe(5), 0);
        assert_eq!(s.stripe(10), 0);
        assert_eq!(s.stripe(11), 1);
        assert_eq!(s.stripe(31), 3);
        assert_eq!(s.bound(15), Some(20));
        assert_eq!(s.bound(31), None);
        // Versions 8 and 5 are both seen only together by snapshot 10 and up.
        assert!(s.shadowed(8, 5));
        // Version 12 is newer than snapshot 10: snapshot 10 still needs 5.
        assert!(!s.shadowed(12, 5));
        assert!(!s.shadowed(35, 32));
        assert!(s.covered(5, |read| if read >= 7 { 7 } else { 0 }));
        assert!(!s.covered(5, |read| if read >= 12 { 12 } else { 0 }));
        assert!(s.covered(11, |read| if read >= 12 { 12 } else { 0 }));
        let all = Stripes::keep_all();
        assert!(!all.shadowed(8, 5));
        assert!(!all.covered(5, |_| 7));
    }

    #[test]
    fn names() {
        assert!(check_name("daily-2026-12-01").is_ok());
        for bad in ["", ".", "..", "a/b", "a\0b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name(&"x".repeat(255)).is_ok());
        assert!(check_name(&"x".repeat(256)).is_err());
    }
}
