//! Opening a database: the LOCK, the MANIFEST's recovery, the replay of
//! the WALs it does not cover into L0 tables, a fresh WAL and MANIFEST, and
//! the background thread.

use super::files::remove_stray_tables;
use super::flush::{add_level0_output, write_level0_table};
use super::write::create_wal;
use super::{Counters, Db, Handle, Shared, State, WriteQueue};
use crate::engine::blob::{resolve_blob_refs, BlobCache, ResolveError};
use crate::engine::dbformat::SequenceNumber;
use crate::engine::env::{Env, SharedLock};
use crate::engine::error::{Error, Result};
use crate::engine::filename::{
    current_file_name, lock_file_name, log_file_name, parse_file_name, FileType,
};
use crate::engine::log::reader::LogReader;
use crate::engine::log::writer::LogWriter;
use crate::engine::memtable::MemTable;
use crate::engine::options::Options;
use crate::engine::options_file;
use crate::engine::snapshot::Stripes;
use crate::engine::table::block_cache::BlockCache;
use crate::engine::table::TableCache;
use crate::engine::version::edit::VersionEdit;
use crate::engine::version::set::VersionSet;
use crate::engine::write_batch::WriteBatch;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Condvar, Mutex};

impl Db {
    pub fn open(dir: &Path, opts: Options) -> Result<Db> {
        let env = opts.env.clone();
        let mut unlocked = None;
        let file_lock = if opts.read_only {
            // A reader creates nothing, not even a LOCK in a foreign directory.
            if !env.exists(&current_file_name(dir)) {
                return Err(Error::InvalidArgument(format!(
                    "{} is not an lsmfs data directory (no CURRENT file)",
                    dir.display()
                )));
            }
            match env.lock_file_shared(&lock_file_name(dir))? {
                SharedLock::Held(l) => Some(l),
                SharedLock::Unavailable(why) => {
                    unlocked = Some(why);
                    None
                }
            }
        } else {
            if opts.create_if_missing {
                env.create_dir_all(dir)?;
            }
            let l = env.lock_file(&lock_file_name(dir))?;
            l.set_holder(&format!("pid {}\n{}\n", std::process::id(), opts.lock_note));
            Some(l)
        };
        let opts = if opts.tuning_from_dir {
            options_file::adopt(env.as_ref(), dir, &opts)
        } else {
            opts
        };
        let block_cache = Arc::new(BlockCache::new(opts.block_cache_bytes));
        let tables = Arc::new(TableCache::new(
            env.clone(),
            dir.to_path_buf(),
            opts.max_open_files,
            block_cache.clone(),
        ));
        let mut versions = VersionSet::new(dir, &opts);
        if versions.exists() {
            let report = versions.recover()?;
            versions.verify_live_files_present()?;
            if !opts.read_only {
                // A disk that filled up mid-flush may hold half-written
                // tables: free them before the replay below needs room.
                let logs_from = match versions.prev_log_number {
                    0 => versions.log_number,
                    p => p.min(versions.log_number),
                };
                remove_stray_tables(env.as_ref(), dir, &versions.live_files(), logs_from);
            }
            log::debug!(
                "recovered {} edits from {}",
                report.edits,
                report.manifest.display()
            );
        } else if opts.read_only {
            return Err(Error::InvalidArgument(format!(
                "{} holds no lsmfs database (no CURRENT file)",
                dir.display()
            )));
        } else {
            let leftovers: Vec<String> = env
                .list_dir(dir)?
                .into_iter()
                .filter(|n| {
                    matches!(
                        parse_file_name(n),
                        Some(
                            FileType::Log(_)
                                | FileType::Table(_)
                                | FileType::Blob(_)
                                | FileType::Manifest(_)
                        )
                    )
                })
                .collect();
            if !leftovers.is_empty() {
                return Err(Error::corruption(
                    &dir.join("CURRENT"),
                    0,
                    format!(
                        "CURRENT is missing but the directory holds database files ({}); refusing to start empty",
                        leftovers.join(", ")
                    ),
                ));
            }
        }
        let mut edit = VersionEdit::default();
        let mut max_seq = versions.last_sequence;
        let (recovered_mem, wal_blob_logs) =
            Self::replay_logs(dir, &opts, &env, &mut versions, &mut edit, &mut max_seq)?;
        versions.last_sequence = max_seq;
        let (mem, log_writer, log_number, current) = if opts.read_only {
            let n = versions.log_number;
            (recovered_mem, None, n, versions.current())
        } else {
            let log_number = versions.new_file_number();
            let log_file = create_wal(env.as_ref(), &log_file_name(dir, log_number))?;
            edit.log_number = Some(log_number);
            edit.prev_log_number = Some(0);
            edit.last_sequence = Some(max_seq);
            // Always a fresh MANIFEST at open: never append behind an old tail.
            let current = versions.log_and_apply(&mut edit)?;
            (
                Arc::new(MemTable::new()),
                Some(LogWriter::new(log_file)),
                log_number,
                current,
            )
        };
        let state = State {
            mem,
            imm: None,
            current,
            log_number,
            bg_error: None,
            no_space: None,
            retry_at: None,
            no_space_in_flush: false,
            compaction_paused: false,
            compaction_needed: false,
            pending_outputs: HashSet::new(),
            imm_blob: None,
            reclaim_checked_seq: u64::MAX,
            reclaiming: false,
            gc_pass: None,
            gc_last: Vec::new(),
            retired: Vec::new(),
            retired_due: false,
            retired_wakes: 0,
        };
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            opts: opts.clone(),
            env: env.clone(),
            state: Mutex::new(state),
            bg_cv: Condvar::new(),
            writers: Mutex::new(WriteQueue::default()),
            writers_cv: Condvar::new(),
            log: Mutex::new(log_writer),
            blob_log: Mutex::new(None),
            versions: Mutex::new(versions),
            version_lock: Mutex::new(()),
            tables,
            blobs: Arc::new(BlobCache::new(env.clone(), dir.to_path_buf())),
            block_cache,
            visible_seq: AtomicU64::new(max_seq),
            snapshots: Mutex::new(BTreeMap::new()),
            wal_blob_logs,
            shutting_down: AtomicBool::new(false),
            counters: Counters::default(),
        });
        if !opts.read_only {
            if !opts.tuning_from_dir {
                options_file::save(env.as_ref(), dir, &opts);
            }
            shared.remove_obsolete_files(true);
            shared.update_compaction_needed();
        }
        let bg = if opts.background_compaction && !opts.read_only {
            let s = shared.clone();
            Some(
                std::thread::Builder::new()
                    .name("lsmfs-compact".into())
                    .spawn(move || s.background_loop())
                    .map_err(|e| Error::io("spawn background thread", e))?,
            )
        } else {
            None
        };
        Ok(Db {
            handle: Arc::new(Handle {
                shared,
                bg: Mutex::new(bg),
                lock: Mutex::new(file_lock),
                unlocked,
                closed: AtomicBool::new(false),
            }),
        })
    }

    /// Replay the WALs the MANIFEST does not cover into L0 tables.
    fn replay_logs(
        dir: &Path,
        opts: &Options,
        env: &Arc<dyn Env>,
        versions: &mut VersionSet,
        edit: &mut VersionEdit,
        max_seq: &mut SequenceNumber,
    ) -> Result<(Arc<MemTable>, HashSet<u64>)> {
        let names = env.list_dir(dir)?;
        // A blob log is numbered after its WAL, and no edit may have
        // recorded its number yet: never hand that number out again.
        for n in &names {
            if let Some(FileType::Blob(b)) = parse_file_name(n) {
                versions.mark_file_number_used(b);
            }
        }
        let mut logs: Vec<u64> = names
            .iter()
            .filter_map(|n| match parse_file_name(n) {
                Some(FileType::Log(n))
                    if n >= versions.log_number || n == versions.prev_log_number =>
                {
                    Some(n)
                }
                _ => None,
            })
            .collect();
        logs.sort_unstable();
        // The persistent snapshots are known by now: the replay keeps what they see.
        let stripes = Stripes::new(versions.snapshots.values().map(|s| s.sequence), u64::MAX);
        let mut mem = Arc::new(MemTable::new());
        // Values the WALs hold as references into blob logs are read back.
        let blob_logs = BlobCache::for_replay(env.clone(), dir.to_path_buf());
        // A record naming blob bytes that are not there: where, and why.
        let mut torn_blob: Option<Error> = None;
        for number in logs {
            versions.mark_file_number_used(number);
            let path = log_file_name(dir, number);
            let data = env.read_all(&path)?;
            let mut reader = LogReader::new(path.clone(), data);
            let mut batches = 0u64;
            while let Some(rec) = reader.read_record()? {
                let offset = reader.last_record_offset();
                if let Some(e) = torn_blob.take() {
                    // Records after it: the switch to this WAL synced the
                    // blob log, so those bytes were durable once.
                    return Err(e);
                }
                let batch =
                    WriteBatch::from_data(rec).map_err(|m| Error::corruption(&path, offset, m))?;
                let batch = match resolve_blob_refs(batch, &blob_logs) {
                    Ok(b) => b,
                    Err(ResolveError::Batch(m)) => return Err(Error::corruption(&path, offset, m)),
                    // Only an unsynced write loses its blob bytes (a sync
                    // covers the blob log first, a switch of WAL syncs the
                    // old blob log and WAL before the new WAL takes a
                    // record): a torn tail, if no WAL record follows.
                    Err(ResolveError::Blob(e)) => {
                        log::warn!(
                            "{}: the record at offset {offset} names blob bytes that were never synced ({e}); recovered the {batches} records before it",
                            path.display()
                        );
                        torn_blob = Some(e);
                        break;
                    }
                };
                batch
                    .insert_into(&mem)
                    .map_err(|m| Error::corruption(&path, offset, m))?;
                let last = batch.sequence() + (batch.count() as u64).saturating_sub(1);
                *max_seq = (*max_seq).max(last);
                batches += 1;
                if !opts.read_only && mem.approximate_memory_usage() > opts.write_buffer_size {
                    let numbers = (versions.new_file_number(), versions.new_file_number());
                    let out = write_level0_table(env, dir, opts, numbers, &mem, &stripes)?;
                    add_level0_output(edit, out);
                    mem = Arc::new(MemTable::new());
                }
            }
            if let Some(t) = reader.torn_tail() {
                log::warn!(
                    "{}: torn tail at offset {} ({}); recovered the {batches} whole records before it",
                    path.display(),
                    t.offset,
                    t.reason
                );
            } else {
                log::debug!("{}: replayed {batches} records", path.display());
            }
        }
        let read = blob_logs.opened();
        if opts.read_only {
            return Ok((mem, read));
        }
        if !mem.is_empty() {
            let numbers = (versions.new_file_number(), versions.new_file_number());
            let out = write_level0_table(env, dir, opts, numbers, &mem, &stripes)?;
            add_level0_output(edit, out);
        }
        if !edit.new_files.is_empty() {
            env.sync_dir(dir)?;
        }
        Ok((Arc::new(MemTable::new()), read))
    }
}
