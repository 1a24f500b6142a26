//! The VersionSet: the current Version, the counters that must survive a
//! crash, and the MANIFEST that makes them survive.
//!
//! A WAL protects data; the MANIFEST protects *which files hold it*. Every
//! structural change — a flush adding an L0 table, a compaction replacing
//! inputs by outputs, the switch to a new WAL — is a [`VersionEdit`]
//! appended to the MANIFEST as one CRC-checked log record and fsync'd before
//! the change takes effect and before any file it retires is deleted.
//! Recovery replays the MANIFEST (named by CURRENT) and so rebuilds exactly
//! the last durable Version; the directory listing is never trusted, and files
//! it does not name are garbage.
//!
//! ## MANIFEST and CURRENT on disk
//!
//! `MANIFEST-NNNNNN` is a record log (see `log::format`) whose records are
//! encoded VersionEdits (see `version::edit`). Its first record is a snapshot
//! of a whole Version (every live file, the log number, next file number, last
//! sequence, compaction pointers); each later record is one edit.
//! `CURRENT` holds the MANIFEST's file name and a newline.
//!
//! A new MANIFEST is started at every open and when the current one exceeds
//! `max_manifest_size`, and after any failed MANIFEST write or sync: nothing
//! is ever appended behind a record that may be damaged (rocksdb#6316). The
//! switch is ordered so that a crash at any point leaves a usable pair:
//! 1. write the snapshot to the new MANIFEST, fsync it, fsync the directory;
//! 2. write `CURRENT.tmp`-style temp file, fsync, rename over CURRENT,
//!    fsync the directory (leveldb#195: the rename must be durable before
//!    the old MANIFEST may be unlinked);
//! 3. only then does the old MANIFEST become garbage.

use crate::engine::blob::BlobFileMeta;
use crate::engine::dbformat::compare_internal;
use crate::engine::env::{Env, WritableFile};
use crate::engine::error::{Error, Result};
use crate::engine::filename::{
    blob_file_name, current_file_name, manifest_file_name, table_file_name, temp_file_name,
};
use crate::engine::log::reader::LogReader;
use crate::engine::log::writer::LogWriter;
use crate::engine::options::{Options, NUM_LEVELS};
use crate::engine::snapshot::PersistentSnapshot;
use crate::engine::version::edit::{FileMetaData, VersionEdit};
use crate::engine::version::Version;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

pub const COMPARATOR_NAME: &str = "lsmfs.BytewiseComparator";

/// What recovery found, for logging and the inspect tool.
#[derive(Debug, Default)]
pub struct RecoveryReport {
    pub manifest: PathBuf,
    pub edits: usize,
    pub torn_tail: Option<String>,
}

pub struct VersionSet {
    dir: PathBuf,
    env: Arc<dyn Env>,
    max_manifest_size: u64,
    current: Arc<Version>,
    /// Older versions still held by readers; their files must not be deleted.
    old_versions: Vec<Weak<Version>>,
    pub next_file_number: u64,
    pub last_sequence: u64,
    /// WALs numbered below this are covered by tables and can be deleted.
    pub log_number: u64,
    pub prev_log_number: u64,
    pub manifest_number: u64,
    manifest: Option<LogWriter>,
    pub compact_pointers: Vec<Vec<u8>>,
    /// Live persistent snapshots by id.
    pub snapshots: BTreeMap<u64, PersistentSnapshot>,
    pub next_snapshot_id: u64,
}

impl VersionSet {
    pub fn new(dir: &Path, opts: &Options) -> VersionSet {
        VersionSet {
            dir: dir.to_path_buf(),
            env: opts.env.clone(),
            max_manifest_size: opts.max_manifest_size,
            current: Arc::new(Version::empty()),
            old_versions: Vec::new(),
            next_file_number: 2,
            last_sequence: 0,
            log_number: 0,
            prev_log_number: 0,
            manifest_number: 0,
            manifest: None,
            compact_pointers: vec![Vec::new(); NUM_LEVELS],
            snapshots: BTreeMap::new(),
            next_snapshot_id: 1,
        }
    }

    pub fn current(&self) -> Arc<Version> {
        self.current.clone()
    }

    pub fn new_file_number(&mut self) -> u64 {
        let n = self.next_file_number;
        self.next_file_number += 1;
        n
    }

    /// Make sure a later allocation never returns `n` or below.
    pub fn mark_file_number_used(&mut self, n: u64) {
        if self.next_file_number <= n {
            self.next_file_number = n.saturating_add(1);
        }
    }

    /// Whether a database exists here (CURRENT is present).
    pub fn exists(&self) -> bool {
        self.env.exists(&current_file_name(&self.dir))
    }

    /// Rebuild the last durable Version from CURRENT and the MANIFEST.
    pub fn recover(&mut self) -> Result<RecoveryReport> {
        let current_path = current_file_name(&self.dir);
        let raw = self.env.read_all(&current_path)?;
        let text = String::from_utf8_lossy(&raw);
        let name = text.trim_end_matches('\n');
        if !raw.ends_with(b"\n") || name.is_empty() || name.contains('/') {
            return Err(Error::corruption(
                &current_path,
                0,
                "CURRENT does not name a MANIFEST",
            ));
        }
        let manifest_path = self.dir.join(name);
        let data = self.env.read_all(&manifest_path).map_err(|e| match e {
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Error::corruption(
                    &current_path,
                    0,
                    format!("CURRENT names {name}, which does not exist"),
                )
            }
            other => other,
        })?;
        let mut reader = LogReader::each_record_synced(manifest_path.clone(), data);
        let mut builder = Builder::new(&Version::empty());
        let mut report = RecoveryReport {
            manifest: manifest_path.clone(),
            ..Default::default()
        };
        let mut have_next = false;
        let mut have_log = false;
        let mut have_seq = false;
        while let Some(rec) = reader.read_record()? {
            let offset = reader.last_record_offset();
            let edit = VersionEdit::decode(&rec)
                .map_err(|m| Error::corruption(&manifest_path, offset, m))?;
            if let Some(c) = &edit.comparator {
                if c != COMPARATOR_NAME {
                    return Err(Error::corruption(
                        &manifest_path,
                        offset,
                        format!("comparator {c} does not match {COMPARATOR_NAME}"),
                    ));
                }
            }
            builder.apply(&edit);
            if let Some(n) = edit.log_number {
                self.log_number = n;
                have_log = true;
            }
            if let Some(n) = edit.prev_log_number {
                self.prev_log_number = n;
            }
            if let Some(n) = edit.next_file_number {
                self.next_file_number = n;
                have_next = true;
            }
            if let Some(n) = edit.last_sequence {
                self.last_sequence = n;
                have_seq = true;
            }
            for (level, key) in &edit.compact_pointers {
                if let Some(p) = self.compact_pointers.get_mut(*level) {
                    *p = key.clone();
                }
            }
            self.apply_snapshots(&edit);
            report.edits += 1;
        }
        if let Some(t) = reader.torn_tail() {
            let msg = format!("torn tail at offset {}: {}", t.offset, t.reason);
            log::warn!(
                "{}: {msg}; using the edits before it",
                manifest_path.display()
            );
            report.torn_tail = Some(msg);
        }
        if !(have_next && have_log && have_seq) {
            return Err(Error::corruption(
                &manifest_path,
                0,
                "MANIFEST lacks the next-file, log-number or last-sequence record",
            ));
        }
        let version = builder.build();
        version
            .check_invariants()
            .map_err(|m| Error::corruption(&manifest_path, 0, m))?;
        if let Some(n) = crate::engine::filename::parse_file_name(name).and_then(|t| match t {
            crate::engine::filename::FileType::Manifest(n) => Some(n),
            _ => None,
        }) {
            self.manifest_number = n;
            self.mark_file_number_used(n);
        }
        self.mark_file_number_used(self.log_number);
        for files in &version.files {
            for f in files {
                self.mark_file_number_used(f.number);
            }
        }
        for n in version.blobs.keys() {
            self.mark_file_number_used(*n);
        }
        self.current = Arc::new(version);
        Ok(report)
    }

    /// Check that every live table and blob file exists with its recorded size.
    pub fn verify_live_files_present(&self) -> Result<()> {
        for b in self.current.blobs.values() {
            let path = blob_file_name(&self.dir, b.number);
            match self.env.file_size(&path) {
                Ok(sz) if sz == b.file_size => {}
                Ok(sz) => {
                    return Err(Error::corruption(
                        &path,
                        sz,
                        format!(
                            "live blob file is {sz} bytes, the MANIFEST recorded {}",
                            b.file_size
                        ),
                    ))
                }
                Err(_) => {
                    return Err(Error::corruption(
                        &path,
                        0,
                        "live blob file named by the MANIFEST is missing",
                    ))
                }
            }
        }
        for (level, files) in self.current.files.iter().enumerate() {
            for f in files {
                let path = table_file_name(&self.dir, f.number);
                match self.env.file_size(&path) {
                    Ok(sz) if sz == f.file_size => {}
                    Ok(sz) => {
                        return Err(Error::corruption(
                            &path,
                            sz,
                            format!(
                                "live L{level} table is {sz} bytes, the MANIFEST recorded {}",
                                f.file_size
                            ),
                        ))
                    }
                    Err(_) => {
                        return Err(Error::corruption(
                            &path,
                            0,
                            format!("live L{level} table named by the MANIFEST is missing"),
                        ))
                    }
                }
            }
        }
        Ok(())
    }

    /// Record `edit` durably and make the resulting Version current.
    ///
    /// Fills in the counters (next file number, last sequence, log number) so
    /// every record is self-sufficient. On any write or sync error the
    /// MANIFEST writer is dropped, so the next edit starts a fresh MANIFEST.
    pub fn log_and_apply(&mut self, edit: &mut VersionEdit) -> Result<Arc<Version>> {
        if let Some(n) = edit.log_number {
            self.log_number = n;
        }
        if let Some(n) = edit.prev_log_number {
            self.prev_log_number = n;
        }
        edit.log_number = Some(self.log_number);
        edit.prev_log_number = Some(self.prev_log_number);
        if let Some(s) = edit.last_sequence {
            self.last_sequence = self.last_sequence.max(s);
        }
        edit.last_sequence = Some(self.last_sequence);
        for (level, key) in &edit.compact_pointers {
            if let Some(p) = self.compact_pointers.get_mut(*level) {
                *p = key.clone();
            }
        }
        let mut builder = Builder::new(&self.current);
        builder.apply(edit);
        let version = builder.build();
        // Snapshot changes take effect only if the record is written.
        let undo = (self.snapshots.clone(), self.next_snapshot_id);
        self.apply_snapshots(edit);

        let too_big = self
            .manifest
            .as_ref()
            .is_some_and(|m| m.len() >= self.max_manifest_size);
        let result = if self.manifest.is_none() || too_big {
            self.start_manifest(&version)
        } else {
            edit.next_file_number = Some(self.next_file_number);
            let rec = edit.encode();
            match self.manifest.as_mut() {
                Some(m) => m.add_record(&rec).and_then(|_| m.sync()),
                None => Ok(()),
            }
        };
        if let Err(e) = result {
            self.manifest = None;
            (self.snapshots, self.next_snapshot_id) = undo;
            return Err(e);
        }
        self.install(version);
        Ok(self.current.clone())
    }

    fn apply_snapshots(&mut self, edit: &VersionEdit) {
        for id in &edit.deleted_snapshots {
            self.snapshots.remove(id);
        }
        for snap in &edit.new_snapshots {
            self.snapshots.insert(snap.id, snap.clone());
            self.next_snapshot_id = self.next_snapshot_id.max(snap.id + 1);
        }
        if let Some(n) = edit.next_snapshot_id {
            self.next_snapshot_id = self.next_snapshot_id.max(n);
        }
    }

    /// The live persistent snapshot called `name`.
    pub fn snapshot_named(&self, name: &str) -> Option<&PersistentSnapshot> {
        self.snapshots.values().find(|s| s.name == name)
    }

    fn install(&mut self, version: Version) {
        let old = std::mem::replace(&mut self.current, Arc::new(version));
        self.old_versions.retain(|w| w.strong_count() > 0);
        if Arc::strong_count(&old) > 1 {
            self.old_versions.push(Arc::downgrade(&old));
        }
    }

    /// Write a new MANIFEST holding a snapshot of `version` and point CURRENT at it.
    fn start_manifest(&mut self, version: &Version) -> Result<()> {
        let number = self.new_file_number();
        let path = manifest_file_name(&self.dir, number);
        let file = self.env.create_writable(&path)?;
        let mut writer = LogWriter::new(file);
        let snapshot = self.snapshot_edit(version);
        writer.add_record(&snapshot.encode())?;
        writer.sync()?;
        self.env.sync_dir(&self.dir)?;
        self.set_current(number)?;
        self.manifest = Some(writer);
        self.manifest_number = number;
        log::debug!("started {}", path.display());
        Ok(())
    }

    fn set_current(&self, manifest_number: u64) -> Result<()> {
        let tmp = temp_file_name(&self.dir, manifest_number);
        let contents = format!("MANIFEST-{manifest_number:06}\n");
        let mut f: Box<dyn WritableFile> = self.env.create_writable(&tmp)?;
        f.append(contents.as_bytes())?;
        f.sync()?;
        drop(f);
        self.env.rename(&tmp, &current_file_name(&self.dir))?;
        self.env.sync_dir(&self.dir)
    }

    /// One edit that recreates `version` and all counters from nothing.
    fn snapshot_edit(&self, version: &Version) -> VersionEdit {
        let mut e = VersionEdit {
            comparator: Some(COMPARATOR_NAME.to_string()),
            log_number: Some(self.log_number),
            prev_log_number: Some(self.prev_log_number),
            next_file_number: Some(self.next_file_number),
            last_sequence: Some(self.last_sequence),
            new_snapshots: self.snapshots.values().cloned().collect(),
            next_snapshot_id: Some(self.next_snapshot_id),
            ..Default::default()
        };
        for (level, p) in self.compact_pointers.iter().enumerate() {
            if !p.is_empty() {
                e.compact_pointers.push((level, p.clone()));
            }
        }
        for (level, files) in version.files.iter().enumerate() {
            for f in files {
                e.new_files.push((level, (**f).clone()));
            }
        }
        e.new_blobs = version.blobs.values().map(|b| (**b).clone()).collect();
        e
    }

    /// Numbers of every table and blob file named by the current Version or
    /// by an older one a reader still holds.
    pub fn live_files(&mut self) -> HashSet<u64> {
        self.old_versions.retain(|w| w.strong_count() > 0);
        let mut live = HashSet::new();
        let mut add = |v: &Version| {
            for files in &v.files {
                for f in files {
                    live.insert(f.number);
                }
            }
            live.extend(v.blobs.keys().copied());
        };
        add(&self.current);
        for w in &self.old_versions {
            if let Some(v) = w.upgrade() {
                add(&v);
            }
        }
        live
    }

    /// Per-level compaction score: L0 by file count, deeper levels by bytes
    /// against a budget that grows 10x per level. >= 1 means "compact".
    pub fn level_scores(&self, opts: &Options) -> Vec<f64> {
        let v = &self.current;
        let mut scores = vec![0.0; NUM_LEVELS];
        scores[0] = v.num_files(0) as f64 / opts.l0_compaction_trigger.max(1) as f64;
        let mut budget = opts.max_bytes_for_level_base as f64;
        for (level, score) in scores.iter_mut().enumerate().take(NUM_LEVELS - 1).skip(1) {
            *score = v.level_bytes(level) as f64 / budget;
            budget *= 10.0;
        }
        scores
    }
}

/// Accumulates edits on top of a base Version.
struct Builder {
    levels: Vec<BTreeMap<u64, Arc<FileMetaData>>>,
    blobs: BTreeMap<u64, Arc<BlobFileMeta>>,
}

impl Builder {
    fn new(base: &Version) -> Builder {
        let mut levels = vec![BTreeMap::new(); NUM_LEVELS];
        for (level, files) in base.files.iter().enumerate() {
            for f in files {
                levels[level].insert(f.number, f.clone());
            }
        }
        Builder {
            levels,
            blobs: base.blobs.clone(),
        }
    }

    fn apply(&mut self, edit: &VersionEdit) {
        for (level, number) in &edit.deleted_files {
            if let Some(l) = self.levels.get_mut(*level) {
                l.remove(number);
            }
        }
        for (level, f) in &edit.new_files {
            if let Some(l) = self.levels.get_mut(*level) {
                l.insert(f.number, Arc::new(f.clone()));
            }
        }
        for b in &edit.new_blobs {
            self.blobs.insert(b.number, Arc::new(b.clone()));
        }
        for (n, records, bytes) in &edit.blob_garbage {
            if let Some(b) = self.blobs.get_mut(n) {
                let m = Arc::make_mut(b);
                m.garbage_records += records;
                m.garbage_bytes += bytes;
            }
        }
        for n in &edit.deleted_blobs {
            self.blobs.remove(n);
        }
    }

    fn build(self) -> Version {
        let mut files: Vec<Vec<Arc<FileMetaData>>> = Vec::with_capacity(NUM_LEVELS);
        for (level, map) in self.levels.into_iter().enumerate() {
            let mut v: Vec<Arc<FileMetaData>> = map.into_values().collect();
            if level > 0 {
                v.sort_by(|a, b| match compare_internal(&a.smallest, &b.smallest) {
                    Ordering::Equal => a.number.cmp(&b.number),
                    o => o,
                });
            }
            files.push(v);
        }
        Version {
            files,
            blobs: self.blobs,
        }
    }
}
