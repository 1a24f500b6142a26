//! Flushes: writing a memtable (and its blob log) to an L0 table, and the
//! edit that names them.

use super::{add, lock, Db, ImmBlob, Shared};
use crate::engine::blob::{BlobFileMeta, BlobWriter};
use crate::engine::compaction::{self};
use crate::engine::dbformat::{make_internal_key, parse_internal_key, ValueType};
use crate::engine::env::Env;
use crate::engine::error::{Error, Result};
use crate::engine::filename::table_file_name;
use crate::engine::iterator::InternalIterator;
use crate::engine::memtable::MemTable;
use crate::engine::options::Options;
use crate::engine::snapshot::Stripes;
use crate::engine::table::{TableBuilder, TableOptions};
use crate::engine::version::edit::{FileMetaData, VersionEdit};
use crate::engine::version::Version;
use crate::engine::write_batch::WriteBatch;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Write a memtable to a new L0 table; `None` if it is empty. The table is
/// fsync'd; the caller fsyncs the directory before naming it in an edit.
///
/// An older version of a key is left out when a newer one is in its
/// snapshot stripe (see `snapshot`): a file rewritten chunk by chunk
/// produces many versions of one key, and only the last one matters.
/// So is an entry a range deletion of the memtable hides from every
/// snapshot that sees it. Deletion markers and range deletions are kept —
/// deeper levels may hold what they hide.
///
/// Values of at least `min_blob_size` bytes go to a new blob file (number
/// `numbers.1`, fsync'd too), the table (`numbers.0`) holding references.
pub(crate) fn write_level0_table(
    env: &Arc<dyn Env>,
    dir: &Path,
    opts: &Options,
    numbers: (u64, u64),
    mem: &Arc<MemTable>,
    stripes: &Stripes,
) -> Result<Option<Level0Output>> {
    let (number, blob_number) = numbers;
    let mut it = mem.iter();
    it.seek_to_first();
    let ranges = mem.range_deletions();
    if !it.valid() && ranges.is_none() {
        return Ok(None);
    }
    let path = table_file_name(dir, number);
    let file = env.create_writable(&path)?;
    let mut builder = TableBuilder::new(file, TableOptions::from_options(opts));
    if let Some(r) = &ranges {
        for t in r.tombstones() {
            builder.add_range_deletion(t.clone());
        }
    }
    let mut last_user_key: Vec<u8> = Vec::new();
    let mut last_seq = u64::MAX;
    let mut first = true;
    let mut blob: Option<BlobWriter> = None;
    let mut garbage: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    while it.valid() {
        let key = it.key();
        let (ukey, seq) = match parse_internal_key(key) {
            Some(p) => (p.user_key, p.sequence),
            None => (key, u64::MAX),
        };
        let same = !first && ukey == &last_user_key[..];
        let covered = ranges
            .as_ref()
            .is_some_and(|r| stripes.covered(seq, |read| r.max_covering(ukey, read)));
        let shadowed = (same && stripes.shadowed(last_seq, seq)) || covered;
        if !same {
            last_user_key.clear();
            last_user_key.extend_from_slice(ukey);
        }
        last_seq = seq;
        first = false;
        let is_ref = parse_internal_key(key).is_some_and(|p| p.value_type == ValueType::BlobIndex);
        if shadowed && is_ref {
            // A blob-log record nothing will reference.
            match crate::engine::blob::decode_ref(dir, it.value()) {
                Ok(r) => {
                    let g = garbage.entry(r.file).or_default();
                    g.0 += 1;
                    g.1 += r.size;
                }
                Err(e) => {
                    builder.abandon();
                    return Err(e);
                }
            }
        }
        if !shadowed {
            let value = it.value();
            let added = if !is_ref && opts.min_blob_size > 0 && value.len() >= opts.min_blob_size {
                (|| {
                    if blob.is_none() {
                        blob = Some(BlobWriter::create(env.as_ref(), dir, blob_number)?);
                    }
                    let Some(w) = blob.as_mut() else {
                        return Ok(());
                    };
                    let r = w.add(ukey, value)?;
                    builder.add(
                        &make_internal_key(ukey, seq, ValueType::BlobIndex),
                        &r.encode(),
                    )
                })()
            } else {
                builder.add(key, value)
            };
            if let Err(e) = added {
                builder.abandon();
                return Err(e);
            }
        }
        it.next();
    }
    it.status()?;
    let blob = match blob {
        Some(w) => Some(w.finish()?),
        None => None,
    };
    let table = compaction::finish_output(number, builder)?;
    Ok(Some(Level0Output {
        table,
        blob,
        garbage,
    }))
}

/// Record dropped blob references in `edit`, and delete (in the same edit)
/// every blob file of `current` whose records are then all garbage.
pub(super) fn add_blob_garbage(
    edit: &mut VersionEdit,
    current: &Version,
    garbage: &BTreeMap<u64, (u64, u64)>,
) {
    for (&n, &(records, bytes)) in garbage {
        edit.blob_garbage.push((n, records, bytes));
        if let Some(b) = current.blobs.get(&n) {
            if b.garbage_records + records >= b.records {
                edit.deleted_blobs.insert(n);
            }
        }
    }
}

/// What a flush wrote: a table, and the blob file its references point into.
pub(crate) struct Level0Output {
    pub(crate) table: FileMetaData,
    pub(crate) blob: Option<BlobFileMeta>,
    /// Blob-log records of the memtable that it dropped: file → (records, bytes).
    pub(crate) garbage: BTreeMap<u64, (u64, u64)>,
}

pub(super) fn add_level0_output(edit: &mut VersionEdit, out: Option<Level0Output>) {
    if let Some(o) = out {
        edit.new_files.push((0, o.table));
        edit.new_blobs.extend(o.blob);
    }
}

impl Db {
    /// Switch the memtable and wait until it is an L0 table in the MANIFEST.
    pub fn flush(&self) -> Result<()> {
        let shared = &self.handle.shared;
        shared.write(WriteBatch::new(), false, true)?;
        if !shared.opts.background_compaction {
            let _g = lock(&shared.version_lock);
            return shared.flush_imm();
        }
        let mut st = lock(&shared.state);
        while st.imm.is_some() {
            if shared.shutting_down.load(Ordering::Acquire) {
                return Err(Error::Closed);
            }
            if let Some(e) = st.bg_error.as_ref().or(st.no_space.as_ref()) {
                return Err(e.clone());
            }
            st = shared.bg_cv.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        match &st.bg_error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}

impl Shared {
    /// Write the immutable memtable to L0 and record it. Caller holds `version_lock`.
    pub(super) fn flush_imm(&self) -> Result<()> {
        let (imm, log_number) = {
            let st = lock(&self.state);
            match &st.imm {
                Some(m) => (m.clone(), st.log_number),
                None => return Ok(()),
            }
        };
        let blob_log = self.seal_imm_blob()?;
        let numbers = {
            let mut vs = lock(&self.versions);
            (vs.new_file_number(), vs.new_file_number())
        };
        {
            let mut st = lock(&self.state);
            st.pending_outputs.insert(numbers.0);
            st.pending_outputs.insert(numbers.1);
        }
        let result = (|| {
            let built = write_level0_table(
                &self.env,
                &self.dir,
                &self.opts,
                numbers,
                &imm,
                &self.stripes(),
            )
            .and_then(|out| {
                if out.is_some() {
                    self.env.sync_dir(&self.dir)?;
                }
                Ok(out)
            });
            let mut out = built.inspect_err(|_| self.discard_outputs(&[numbers.0, numbers.1]))?;
            let mut edit = VersionEdit::default();
            if let Some(o) = &mut out {
                add(&self.counters.bytes_flushed, o.table.file_size);
                add(
                    &self.counters.bytes_blob_written,
                    o.blob.as_ref().map_or(0, |b| b.file_size),
                );
                // The blob log joins the Version with what the flush
                // dropped of it already counted as garbage.
                if let Some(mut b) = blob_log.clone() {
                    if let Some((r, n)) = o.garbage.remove(&b.number) {
                        b.garbage_records += r;
                        b.garbage_bytes += n;
                    }
                    if !b.all_garbage() {
                        edit.new_blobs.push(b);
                    }
                }
                add_blob_garbage(&mut edit, &lock(&self.versions).current(), &o.garbage);
            }
            add_level0_output(&mut edit, out);
            edit.log_number = Some(log_number);
            edit.prev_log_number = Some(0);
            edit.last_sequence = Some(self.visible_seq.load(Ordering::Acquire));
            let v = lock(&self.versions).log_and_apply(&mut edit)?;
            Ok(v)
        })();
        let mut st = lock(&self.state);
        st.pending_outputs.remove(&numbers.0);
        st.pending_outputs.remove(&numbers.1);
        let v = result?;
        st.current = v;
        st.imm = None;
        st.imm_blob = None;
        if let Some(b) = &blob_log {
            st.pending_outputs.remove(&b.number);
        }
        drop(st);
        add(&self.counters.num_flushes, 1);
        self.update_compaction_needed();
        self.bg_cv.notify_all();
        self.remove_obsolete_files(false);
        Ok(())
    }

    /// Write the footer of the immutable memtable's blob log and fsync it
    /// (once: a retried flush finds it sealed). A failure is sticky: the
    /// file's end is unknown, and the WALs still hold what it holds.
    pub(super) fn seal_imm_blob(&self) -> Result<Option<BlobFileMeta>> {
        let open = {
            let mut st = lock(&self.state);
            match st.imm_blob.take() {
                None => return Ok(None),
                Some(ImmBlob::Sealed(m)) => {
                    st.imm_blob = Some(ImmBlob::Sealed(m.clone()));
                    return Ok(Some(m));
                }
                Some(ImmBlob::Open(w)) => w,
            }
        };
        let n = open.number();
        let before = open.len();
        let meta = open.finish().map_err(|e| self.set_bg_error(e))?;
        add(&self.counters.bytes_blob_written, meta.file_size - before);
        self.env
            .sync_dir(&self.dir)
            .map_err(|e| self.set_bg_error(e))?;
        self.blobs.seal_log(n);
        lock(&self.state).imm_blob = Some(ImmBlob::Sealed(meta.clone()));
        Ok(Some(meta))
    }
}
