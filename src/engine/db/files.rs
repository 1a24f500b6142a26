//! Deleting files: garbage at open, what no live Version needs any more,
//! and the outputs of a failed flush or compaction.

use super::{lock, Shared};
use crate::engine::env::Env;
use crate::engine::filename::{blob_file_name, parse_file_name, table_file_name, FileType};
use std::collections::HashSet;
use std::path::Path;

/// Delete tables and blob files no Version names, and temp files (at open,
/// before anything is written). Blob files numbered from `logs_from` on
/// may be blob logs of the WALs about to be replayed: they stay until the
/// replay is done (see `blob`).
pub(super) fn remove_stray_tables(env: &dyn Env, dir: &Path, live: &HashSet<u64>, logs_from: u64) {
    let names = match env.list_dir(dir) {
        Ok(n) => n,
        Err(e) => {
            log::warn!("listing {}: {e}", dir.display());
            return;
        }
    };
    for name in names {
        let stray = match parse_file_name(&name) {
            Some(FileType::Table(n)) => !live.contains(&n),
            Some(FileType::Blob(n)) => !live.contains(&n) && n < logs_from,
            Some(FileType::Temp) => true,
            _ => false,
        };
        if stray {
            log::info!("removing garbage file {name}");
            if let Err(e) = env.remove_file(&dir.join(&name)) {
                log::warn!("removing {name}: {e}");
            }
        }
    }
}

impl Shared {
    /// Delete the tables and blob files a failed flush or compaction was
    /// writing (no edit names them), so that a full disk gets its space
    /// back at once.
    pub(super) fn discard_outputs(&self, numbers: &[u64]) {
        for &n in numbers {
            for path in [table_file_name(&self.dir, n), blob_file_name(&self.dir, n)] {
                if self.env.exists(&path) {
                    if let Err(e) = self.env.remove_file(&path) {
                        log::debug!("discarding {}: {e}", path.display());
                    }
                }
            }
        }
    }

    /// Delete files no durable Version needs: WALs older than the MANIFEST's
    /// log number, tables no live Version names, old MANIFESTs, temp files.
    ///
    /// The listing comes first, then the pending numbers, then the live
    /// ones: a writer registers a blob log's number as pending before it
    /// creates the file, and a flush installs the Version naming it before
    /// it stops being pending, so a file listed is always in one of them.
    pub(super) fn remove_obsolete_files(&self, at_open: bool) {
        let names = match self.env.list_dir(&self.dir) {
            Ok(n) => n,
            Err(e) => {
                log::warn!("listing {}: {e}", self.dir.display());
                return;
            }
        };
        let (pending, mem_log) = {
            let st = lock(&self.state);
            (st.pending_outputs.clone(), st.log_number)
        };
        let (live, log_number, prev_log, manifest_number) = {
            let mut vs = lock(&self.versions);
            (
                vs.live_files(),
                vs.log_number,
                vs.prev_log_number,
                vs.manifest_number,
            )
        };
        for name in names {
            let keep = match parse_file_name(&name) {
                Some(FileType::Log(n)) => n >= log_number || n == prev_log || n == mem_log,
                Some(FileType::Table(n) | FileType::Blob(n)) => {
                    live.contains(&n) || pending.contains(&n)
                }
                Some(FileType::Manifest(n)) => n >= manifest_number,
                Some(FileType::Temp) => !at_open,
                Some(FileType::Current | FileType::Lock) | None => true,
            };
            if keep {
                continue;
            }
            if at_open {
                log::info!("removing garbage file {name}");
            } else {
                log::debug!("removing obsolete file {name}");
            }
            match parse_file_name(&name) {
                Some(FileType::Table(n)) => self.tables.evict(n),
                Some(FileType::Blob(n)) => self.blobs.evict(n),
                _ => {}
            }
            if let Err(e) = self.env.remove_file(&self.dir.join(&name)) {
                log::warn!("removing {name}: {e}");
            }
        }
    }
}
