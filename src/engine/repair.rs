//! Repair: rebuild the MANIFEST and CURRENT from the files a data
//! directory holds, when the MANIFEST is lost or damaged (LevelDB's
//! `RepairDB`, RocksDB's `ldb repair`).
//!
//! Normal recovery never trusts a directory listing (see `version::set`):
//! repair is the one place that does, because there is nothing better left.
//! It runs offline, holding the LOCK, and:
//!
//! 1. replays every WAL into new tables, every record that reads (reading
//!    goes on at the next valid record after damage, as LevelDB's repair
//!    does, though recovery stops there: a record after the damage may
//!    depend on a lost one, and `check` says whether the tree did);
//! 2. reads every table block by block: a table whose every block reads is
//!    kept as it is; one with damaged data blocks has its readable blocks
//!    (and its range deletions) salvaged into a new table, as is one whose
//!    filter or properties block is damaged; one whose footer, index,
//!    metaindex or range deletions are unreadable is dropped whole. Each
//!    table's key range, sequence range and entry count are computed from
//!    what was read, not from its properties;
//! 3. keeps every blob file whose records all read and that some kept table
//!    references, with its garbage counted from those references (a blob
//!    file nothing references, or one that does not read whole, goes to
//!    `lost/`; a reference into it then reads as an error naming it);
//! 4. names every kept table in L0 of a fresh MANIFEST, with the next file
//!    number and last sequence above everything seen, written and switched
//!    to through `VersionSet` exactly as an open does (snapshot record,
//!    fsync, CURRENT replaced atomically);
//! 5. moves every file it replaced — damaged tables, the WALs it converted,
//!    old MANIFESTs — into `DATA_DIR/lost/`. Repair deletes nothing.
//!
//! L0 is the one level whose files may overlap, so it is the only safe
//! place for tables whose original levels are unknown; lookups there take
//! the highest sequence among the files holding a key (see `version`), and
//! the first compactions after the next open sort the tables into levels.
//!
//! What repair cannot know: which WALs were already obsolete. Their entries
//! come back with their original sequence numbers, so one already in a
//! table is a harmless duplicate — but an entry whose deletion a compaction
//! has since dropped from the bottom level comes back to life. Only a WAL
//! left behind by a crash between a flush and the next open can do that.

use super::blob::{decode_ref, resolve_blob_refs, BlobCache, BlobFile, BlobFileMeta, ResolveError};
use super::dbformat::{compare_internal, parse_internal_key, ValueType, MAX_SEQUENCE};
use super::env::Env;
use super::error::{Error, Result};
use super::filename::{
    blob_file_name, lock_file_name, log_file_name, parse_file_name, table_file_name, FileType,
};
use super::log::reader::LogReader;
use super::memtable::MemTable;
use super::options::Options;
use super::range_del::RangeTombstone;
use super::table::{widen_bounds, Table, TableBuilder, TableOptions};
use super::version::edit::{FileMetaData, VersionEdit};
use super::version::set::VersionSet;
use super::write_batch::WriteBatch;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A table kept as it was.
    Kept { entries: u64 },
    /// A WAL replayed into a new table (or into nothing, if it held no
    /// records); `damage`: how many damaged spans reading skipped (going on
    /// at the next valid record), and the first of them.
    Converted {
        records: u64,
        entries: u64,
        table: Option<u64>,
        damage: Option<(u64, String)>,
    },
    /// A damaged table whose readable blocks went into a new table.
    Salvaged {
        entries: u64,
        blocks_lost: u64,
        table: Option<u64>,
        damage: String,
    },
    /// A file nothing could be read from.
    Dropped { reason: String },
    /// An old MANIFEST, replaced by the one repair wrote.
    Replaced,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReport {
    pub name: String,
    pub outcome: Outcome,
    /// Moved into `lost/` (under this name).
    pub moved_to: Option<String>,
}

#[derive(Debug, Default)]
pub struct RepairReport {
    pub files: Vec<FileReport>,
    pub tables: usize,
    pub blob_files: usize,
    pub entries: u64,
    pub last_sequence: u64,
    pub next_file_number: u64,
    pub manifest_number: u64,
}

impl std::fmt::Display for FileReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let into = |t: &Option<u64>| t.map_or(String::new(), |n| format!(" into {n:06}.sst"));
        match &self.outcome {
            Outcome::Kept { entries } => write!(f, "kept {}: {entries} entries", self.name)?,
            Outcome::Converted {
                records,
                entries,
                table,
                damage,
            } => {
                write!(
                    f,
                    "converted {}: {records} records, {entries} entries{}",
                    self.name,
                    into(table)
                )?;
                if let Some((n, d)) = damage {
                    write!(f, "; skipped {n} damaged span(s), the first: {d}")?;
                }
            }
            Outcome::Salvaged {
                entries,
                blocks_lost,
                table,
                damage,
            } => write!(
                f,
                "salvaged {}: {entries} entries{}; dropped {blocks_lost} unreadable data block(s) \
                 ({damage})",
                self.name,
                into(table)
            )?,
            Outcome::Dropped { reason } => write!(f, "dropped {}: {reason}", self.name)?,
            Outcome::Replaced => write!(f, "replaced {}", self.name)?,
        }
        if let Some(m) = &self.moved_to {
            write!(f, "; moved to {m}")?;
        }
        Ok(())
    }
}

/// The directory damaged and replaced files are moved into.
pub const LOST_DIR: &str = "lost";

/// What scanning one table found.
struct Scanned {
    meta: Option<FileMetaData>,
    entries: Vec<(Vec<u8>, Vec<u8>)>,
    ranges: Vec<RangeTombstone>,
    blocks_lost: u64,
    damage: Option<String>,
    /// Blob references among the entries read: file -> (records, bytes).
    blob_refs: BTreeMap<u64, (u64, u64)>,
}

struct Repairer {
    dir: PathBuf,
    env: Arc<dyn Env>,
    opts: Options,
    next_file: u64,
    edit: VersionEdit,
    report: RepairReport,
    /// Files to move into `lost/` once the new MANIFEST is durable.
    to_move: Vec<(usize, String)>,
    /// Blob references in the kept tables: file -> (records, bytes).
    blob_refs: BTreeMap<u64, (u64, u64)>,
}

/// Repair the data directory `dir` (see the module docs). Fails with
/// `Error::Locked` if a process has it open.
pub fn repair(dir: &Path, opts: &Options) -> Result<RepairReport> {
    repair_with_progress(dir, opts, &mut |_, _, _| {})
}

/// `repair`, calling `progress(done, total, file)` before each table, WAL
/// and blob file it reads (`done` of `total` files done so far).
pub fn repair_with_progress(
    dir: &Path,
    opts: &Options,
    progress: &mut dyn FnMut(usize, usize, &Path),
) -> Result<RepairReport> {
    let env = opts.env.clone();
    // The listing's own error names the directory and the errno (missing,
    // not a directory, no permission).
    let mut names = env.list_dir(dir)?;
    let ours = |n: &String| {
        matches!(
            parse_file_name(n),
            Some(FileType::Log(_) | FileType::Table(_) | FileType::Blob(_) | FileType::Manifest(_))
        )
    };
    if !names.iter().any(ours) {
        return Err(Error::InvalidArgument(format!(
            "{} holds no tables, WALs or MANIFESTs: nothing to repair",
            dir.display()
        )));
    }
    let _lock = env.lock_file(&lock_file_name(dir))?;
    // Listed again under the lock: a process may have been writing.
    names = env.list_dir(dir)?;
    names.sort();
    let mut r = Repairer {
        dir: dir.to_path_buf(),
        env,
        opts: opts.clone(),
        next_file: 1,
        edit: VersionEdit::default(),
        report: RepairReport::default(),
        to_move: Vec::new(),
        blob_refs: BTreeMap::new(),
    };
    let (mut logs, mut tables, mut manifests) = (Vec::new(), Vec::new(), Vec::new());
    let mut blobs = Vec::new();
    for name in &names {
        match parse_file_name(name) {
            Some(FileType::Log(n)) => logs.push(n),
            Some(FileType::Table(n)) => tables.push(n),
            Some(FileType::Blob(n)) => blobs.push(n),
            Some(FileType::Manifest(n)) => manifests.push((n, name.clone())),
            _ => continue,
        }
        if let Some(
            FileType::Log(n) | FileType::Table(n) | FileType::Blob(n) | FileType::Manifest(n),
        ) = parse_file_name(name)
        {
            r.next_file = r.next_file.max(n.saturating_add(1));
        }
    }
    logs.sort_unstable();
    tables.sort_unstable();
    blobs.sort_unstable();
    let total = tables.len() + logs.len() + blobs.len();
    let mut done = 0;
    let mut next = |path: PathBuf| {
        progress(done, total, &path);
        done += 1;
    };
    for n in tables {
        next(table_file_name(dir, n));
        r.table(n)?;
    }
    for n in logs {
        next(log_file_name(dir, n));
        r.wal(n)?;
    }
    for n in blobs {
        next(blob_file_name(dir, n));
        r.blob(n);
    }
    for (_, name) in manifests {
        r.push(name, Outcome::Replaced, true);
    }
    r.install()?;
    r.move_aside()?;
    Ok(r.report)
}

impl Repairer {
    fn push(&mut self, name: String, outcome: Outcome, move_aside: bool) {
        if move_aside {
            self.to_move.push((self.report.files.len(), name.clone()));
        }
        self.report.files.push(FileReport {
            name,
            outcome,
            moved_to: None,
        });
    }

    fn new_file_number(&mut self) -> u64 {
        let n = self.next_file;
        self.next_file += 1;
        n
    }

    /// Keep blob file `number` if it reads whole and kept tables reference
    /// it, its garbage being the records they do not.
    fn blob(&mut self, number: u64) {
        let name = format!("{number:06}.blob");
        let records = BlobFile::open(self.env.as_ref(), blob_file_name(&self.dir, number))
            .and_then(|f| f.records());
        let records = match records {
            Ok(r) => r,
            Err(e) => {
                let reason = e.to_string();
                self.push(name, Outcome::Dropped { reason }, true);
                return;
            }
        };
        let (refs, ref_bytes) = self.blob_refs.get(&number).copied().unwrap_or((0, 0));
        if refs == 0 {
            let reason = "no table references it".to_string();
            self.push(name, Outcome::Dropped { reason }, true);
            return;
        }
        let count = records.len() as u64;
        let bytes: u64 = records.iter().map(|r| r.size).sum();
        let file_size = self
            .env
            .file_size(&blob_file_name(&self.dir, number))
            .unwrap_or(0);
        self.edit.new_blobs.push(BlobFileMeta {
            number,
            file_size,
            records: count,
            record_bytes: bytes,
            garbage_records: count.saturating_sub(refs),
            garbage_bytes: bytes.saturating_sub(ref_bytes),
        });
        self.report.blob_files += 1;
        self.push(name, Outcome::Kept { entries: count }, false);
    }

    fn count_refs(&mut self, refs: &BTreeMap<u64, (u64, u64)>) {
        for (n, (r, b)) in refs {
            let e = self.blob_refs.entry(*n).or_default();
            e.0 += r;
            e.1 += b;
        }
    }

    fn keep(&mut self, meta: FileMetaData) {
        self.report.last_sequence = self.report.last_sequence.max(meta.largest_seq);
        self.report.entries += meta.num_entries;
        self.report.tables += 1;
        self.edit.add_file(0, meta);
    }

    /// Write `entries` (sorted, distinct internal keys) and `ranges` as a
    /// new table.
    fn write_table(
        &mut self,
        entries: &[(Vec<u8>, Vec<u8>)],
        ranges: &[RangeTombstone],
    ) -> Result<Option<u64>> {
        if entries.is_empty() && ranges.is_empty() {
            return Ok(None);
        }
        let number = self.new_file_number();
        let file = self
            .env
            .create_writable(&table_file_name(&self.dir, number))?;
        let mut b = TableBuilder::new(file, TableOptions::from_options(&self.opts));
        for (k, v) in entries {
            b.add(k, v)?;
        }
        for t in ranges {
            b.add_range_deletion(t.clone());
        }
        let meta = super::compaction::finish_output(number, b)?;
        self.keep(meta);
        Ok(Some(number))
    }

    fn table(&mut self, number: u64) -> Result<()> {
        let path = table_file_name(&self.dir, number);
        let name = format!("{number:06}.sst");
        let s = match self.scan_table(&path, number) {
            Ok(s) => s,
            Err(e) => {
                let reason = e.to_string();
                self.push(name, Outcome::Dropped { reason }, true);
                return Ok(());
            }
        };
        match (s.meta, s.damage) {
            (Some(meta), None) => {
                let entries = meta.num_entries;
                self.count_refs(&s.blob_refs);
                self.keep(meta);
                self.push(name, Outcome::Kept { entries }, false);
            }
            (None, None) => {
                let reason = "holds no entries".to_string();
                self.push(name, Outcome::Dropped { reason }, true);
            }
            (_, Some(damage)) => {
                let table = self.write_table(&s.entries, &s.ranges)?;
                self.count_refs(&s.blob_refs);
                let outcome = Outcome::Salvaged {
                    entries: s.entries.len() as u64,
                    blocks_lost: s.blocks_lost,
                    table,
                    damage,
                };
                self.push(name, outcome, true);
            }
        }
        Ok(())
    }

    /// Read a table block by block. `Err`: nothing could be read (footer,
    /// index or meta blocks). The entries are returned only if some block
    /// was damaged (they are to be salvaged).
    fn scan_table(&self, path: &Path, number: u64) -> Result<Scanned> {
        let size = self.env.file_size(path)?;
        let file = self.env.open_random_access(path)?;
        let (table, damage) = match Table::open(file, path.to_path_buf(), number, size, None) {
            Ok(t) => (t, None),
            Err(e) => {
                // A damaged filter or properties block: the data may
                // still read, into a new table with its own.
                let file = self.env.open_random_access(path)?;
                let t = Table::open_for_salvage(file, path.to_path_buf(), number, size)
                    .map_err(|_| e.clone())?;
                (t, Some(e.to_string()))
            }
        };
        let index = table.index_entries()?;
        let mut s = Scanned {
            meta: None,
            entries: Vec::new(),
            ranges: table.range_deletions().tombstones().to_vec(),
            blocks_lost: 0,
            damage,
            blob_refs: BTreeMap::new(),
        };
        let mut meta = FileMetaData {
            number,
            file_size: size,
            smallest_seq: u64::MAX,
            ..Default::default()
        };
        let mut last: Option<Vec<u8>> = None;
        for (_, h) in index {
            let entries = match table.block_entries(h) {
                Ok(e) => e,
                Err(e) => {
                    s.blocks_lost += 1;
                    s.damage.get_or_insert_with(|| e.to_string());
                    continue;
                }
            };
            for (k, v) in entries {
                let seq = match parse_internal_key(&k) {
                    Some(p) if p.sequence <= MAX_SEQUENCE => p.sequence,
                    _ => {
                        let at = h.offset;
                        s.damage.get_or_insert_with(|| {
                            format!("malformed key in the block at offset {at}")
                        });
                        continue;
                    }
                };
                if last
                    .as_deref()
                    .is_some_and(|l| compare_internal(l, &k) != Ordering::Less)
                {
                    let at = h.offset;
                    s.damage.get_or_insert_with(|| {
                        format!("keys out of order in the block at offset {at}")
                    });
                    continue;
                }
                if meta.num_entries == 0 {
                    meta.smallest = k.clone();
                }
                meta.num_entries += 1;
                meta.smallest_seq = meta.smallest_seq.min(seq);
                meta.largest_seq = meta.largest_seq.max(seq);
                if parse_internal_key(&k).is_some_and(|p| p.value_type == ValueType::BlobIndex) {
                    if let Ok(r) = decode_ref(path, &v) {
                        let e = s.blob_refs.entry(r.file).or_default();
                        e.0 += 1;
                        e.1 += r.size;
                    }
                }
                last = Some(k.clone());
                s.entries.push((k, v));
            }
        }
        if let Some(l) = last {
            meta.largest = l;
        }
        // Range deletions are kept whole (their block is read at open).
        for t in &s.ranges {
            widen_bounds(&mut meta.smallest, &mut meta.largest, t);
            meta.smallest_seq = meta.smallest_seq.min(t.seq);
            meta.largest_seq = meta.largest_seq.max(t.seq);
        }
        if meta.num_entries > 0 || !s.ranges.is_empty() {
            s.meta = Some(meta);
        }
        if s.damage.is_none() {
            s.entries = Vec::new();
            s.ranges = Vec::new();
        }
        Ok(s)
    }

    fn wal(&mut self, number: u64) -> Result<()> {
        let path = log_file_name(&self.dir, number);
        let name = format!("{number:06}.log");
        let data = self.env.read_all(&path)?;
        let mut reader = LogReader::new(path.clone(), data);
        let blob_logs = BlobCache::for_replay(self.env.clone(), self.dir.clone());
        let mem = Arc::new(MemTable::new());
        let (mut records, mut entries) = (0u64, 0u64);
        let mut damage: Option<String> = None;
        let mut skipped = 0u64;
        loop {
            let rec = match reader.read_record() {
                Ok(Some(rec)) => rec,
                Ok(None) if reader.torn_tail().is_some() => {
                    // A torn tail (what a crash leaves) unless records
                    // follow it: then keep those too.
                    let Some(t) = reader.torn_tail().cloned() else {
                        break;
                    };
                    if reader.skip_damage().is_none() {
                        log::info!(
                            "{}: torn tail at offset {} ({})",
                            path.display(),
                            t.offset,
                            t.reason
                        );
                        break;
                    }
                    skipped += 1;
                    let e = Error::corruption(&path, t.offset, t.reason);
                    damage.get_or_insert_with(|| e.to_string());
                    continue;
                }
                Ok(None) => break,
                Err(e) => {
                    skipped += 1;
                    damage.get_or_insert_with(|| e.to_string());
                    if reader.skip_damage().is_none() {
                        break;
                    }
                    continue;
                }
            };
            let offset = reader.last_record_offset();
            // Values in blob logs are read back (a blob log is no Version
            // member: what its WAL names of it moves into the new table's
            // blob file).
            let applied = WriteBatch::from_data(rec).and_then(|b| {
                let b = resolve_blob_refs(b, &blob_logs).map_err(|e| match e {
                    ResolveError::Batch(m) => m,
                    ResolveError::Blob(e) => e.to_string(),
                })?;
                b.insert_into(&mem)?;
                Ok(b)
            });
            match applied {
                Ok(b) => {
                    records += 1;
                    entries += b.count() as u64;
                    let last = b.sequence() + (b.count() as u64).saturating_sub(1);
                    self.report.last_sequence = self.report.last_sequence.max(last);
                }
                Err(m) => {
                    // A whole record that is not a batch: skip it alone.
                    skipped += 1;
                    damage.get_or_insert_with(|| Error::corruption(&path, offset, m).to_string());
                }
            }
        }
        let numbers = (self.new_file_number(), self.new_file_number());
        let out = super::db::write_level0_table(
            &self.env,
            &self.dir,
            &self.opts,
            numbers,
            &mem,
            // A lost MANIFEST takes its snapshots with it: nothing to keep.
            &super::snapshot::Stripes::new(std::iter::empty(), u64::MAX),
        )?;
        let table = out.map(|o| {
            if let Some(b) = o.blob {
                self.report.blob_files += 1;
                self.edit.new_blobs.push(b);
            }
            self.keep(o.table);
            numbers.0
        });
        let outcome = Outcome::Converted {
            records,
            entries,
            table,
            damage: damage.map(|d| (skipped, d)),
        };
        self.push(name, outcome, true);
        Ok(())
    }

    /// Write the new MANIFEST and point CURRENT at it.
    fn install(&mut self) -> Result<()> {
        self.env.sync_dir(&self.dir)?;
        let mut vs = VersionSet::new(&self.dir, &self.opts);
        vs.next_file_number = self.next_file;
        vs.last_sequence = self.report.last_sequence;
        // Every WAL was converted: none is to be replayed again.
        let log_number = vs.new_file_number();
        self.edit.log_number = Some(log_number);
        self.edit.prev_log_number = Some(0);
        self.edit.last_sequence = Some(self.report.last_sequence);
        vs.log_and_apply(&mut self.edit)?;
        self.report.next_file_number = vs.next_file_number;
        self.report.manifest_number = vs.manifest_number;
        Ok(())
    }

    /// Move the replaced and damaged files into `lost/`.
    fn move_aside(&mut self) -> Result<()> {
        if self.to_move.is_empty() {
            return Ok(());
        }
        let lost = self.dir.join(LOST_DIR);
        self.env.create_dir_all(&lost)?;
        let taken = self.env.list_dir(&lost)?;
        for (i, name) in std::mem::take(&mut self.to_move) {
            // A second repair must not overwrite what the first kept.
            let mut target = name.clone();
            let mut k = 1;
            while taken.contains(&target) {
                target = format!("{name}.{k}");
                k += 1;
            }
            self.env
                .rename(&self.dir.join(&name), &lost.join(&target))?;
            self.report.files[i].moved_to = Some(format!("{LOST_DIR}/{target}"));
        }
        self.env.sync_dir(&lost)?;
        self.env.sync_dir(&self.dir)
    }
}
