//! `lsmfs check DATA_DIR`: the offline consistency check.
//!
//! Opens the store read-only (CURRENT → MANIFEST → WAL replayed into memory,
//! nothing written), then checks the engine — every live table exists with
//! its recorded size, every block's CRC, key order inside each table and
//! across the files of a level, no overlap in L1+, each file's recorded key
//! and sequence ranges, every blob reference (a live blob file, in bounds,
//! its record's CRC and key) and each blob file's garbage count against the
//! references the tables hold — and then the filesystem invariants over the
//! keys (see `fs::fsck`), of the live tree and of every snapshot's. Each
//! problem is one line; the summary comes last.
//!
//! A data directory that others can read gets a `warning:` line first
//! (see `data_dir`); it does not change the exit status.
//!
//! Exit status: 0 clean, 1 problems found, 2 could not run (missing
//! directory, held by a running daemon). Files the MANIFEST does not name
//! are reported as garbage, not as problems: a crash between writing a file
//! and recording it leaves them, and the next open removes them. A blob log
//! the live WAL holds values in (see `engine::blob`) is neither: the replay
//! of the open reads every value it names, CRC and key checked.

use super::offline::OpenError;
use super::progress::mib;
use crate::engine::blob::decode_ref;
use crate::engine::dbformat::{compare_internal, parse_internal_key, ValueType};
use crate::engine::filename::{parse_file_name, FileType};
use crate::engine::iterator::InternalIterator;
use crate::engine::table::widen_bounds;
use crate::engine::{Db, Error};
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// The data directory (not mounted), or an etcd:// URL (the
    /// filesystem's invariants only; mounts may be live, so a tree being
    /// changed can show passing problems).
    pub path: PathBuf,
    #[command(flatten)]
    pub etcd: crate::store::etcd::EtcdArgs,
}

/// What a check found.
#[derive(Debug, Default)]
pub struct CheckReport {
    pub problems: Vec<String>,
    pub garbage: Vec<String>,
    pub summary: Vec<String>,
}

pub fn run(args: CheckArgs) -> i32 {
    if crate::store::etcd::is_etcd(&args.path) {
        return print_report(check_etcd(&args));
    }
    let is_store = args.path.join("CURRENT").exists();
    if let Some(problem) = crate::data_dir::access_problem(&args.path).filter(|_| is_store) {
        println!("warning: {problem}");
    }
    print_report(check_dir(&args.path))
}

/// The filesystem's invariants over the keys under an etcd prefix.
fn check_etcd(args: &CheckArgs) -> Result<CheckReport, String> {
    let url = crate::store::etcd::EtcdUrl::parse(&args.path.to_string_lossy())?;
    let store = crate::store::etcd::EtcdStore::open(&url, &args.etcd.access()?)?;
    let mut report = CheckReport::default();
    crate::fs::fsck::check_store(&store, &mut report.problems, &mut report.summary);
    Ok(report)
}

fn print_report(r: Result<CheckReport, String>) -> i32 {
    match r {
        Ok(report) => {
            for p in &report.problems {
                println!("problem: {p}");
            }
            for g in &report.garbage {
                println!("garbage: {g} (not named by the MANIFEST; removed at next mount)");
            }
            for s in &report.summary {
                println!("{s}");
            }
            if report.problems.is_empty() {
                println!("clean");
                0
            } else {
                println!("{} problem(s) found", report.problems.len());
                1
            }
        }
        Err(msg) => {
            eprintln!("lsmfs check: {msg}");
            2
        }
    }
}

/// Check a data directory. `Err` means the check could not run at all.
pub fn check_dir(dir: &Path) -> Result<CheckReport, String> {
    let mut report = CheckReport::default();
    let db = match super::offline::open(dir, false, "unmount it first (check runs offline)") {
        Ok(db) => db,
        Err(OpenError::Engine(e @ Error::Corruption { .. })) => {
            report.problems.push(e.to_string());
            return Ok(report);
        }
        Err(e) => return Err(e.to_string()),
    };
    check_tables(&db, &mut report);
    find_garbage(&db, dir, &mut report);
    let mut progress = super::progress::Progress::new();
    progress.show(|| "checking the filesystem tree: every key of the store".into());
    crate::fs::fsck::check_tree(&db, &mut report.problems, &mut report.summary);
    for info in db.list_snapshots() {
        let Some(snap) = db.open_snapshot(&info.name) else {
            continue;
        };
        progress.show(|| format!("checking snapshot {:?}'s tree", info.name));
        let (mut problems, mut summary) = (Vec::new(), Vec::new());
        crate::fs::fsck::check_tree_at(&db, Some(&snap), &mut problems, &mut summary);
        let at = format!("snapshot {:?} (seq {})", info.name, info.sequence);
        report
            .problems
            .extend(problems.into_iter().map(|p| format!("{at}: {p}")));
        report
            .summary
            .extend(summary.into_iter().map(|s| format!("{at}: {s}")));
    }
    progress.done();
    Ok(report)
}

fn check_tables(db: &Db, report: &mut CheckReport) {
    let version = db.current_version();
    let tables = db.table_cache();
    let mut progress = super::progress::Progress::new();
    let total = version.total_files();
    let all_bytes: u64 = version.files.iter().flatten().map(|f| f.file_size).sum();
    let (mut done, mut done_bytes) = (0, 0u64);
    let mut total_entries = 0u64;
    let mut total_bytes = 0u64;
    // Blob file -> references found in the tables.
    let mut blob_refs: BTreeMap<u64, u64> = BTreeMap::new();
    for (level, files) in version.files.iter().enumerate() {
        let bytes: u64 = files.iter().map(|f| f.file_size).sum();
        total_bytes += bytes;
        if !files.is_empty() {
            report
                .summary
                .push(format!("L{level}: {} files, {bytes} bytes", files.len()));
        }
        for f in files {
            done += 1;
            progress.show(|| {
                format!(
                    "checking tables: {done}/{total} files, {} of {}",
                    mib(done_bytes),
                    mib(all_bytes)
                )
            });
            done_bytes += f.file_size;
            let table = match tables.get_table(f.number, f.file_size) {
                Ok(t) => t,
                Err(e) => {
                    report.problems.push(format!("L{level} #{}: {e}", f.number));
                    continue;
                }
            };
            if let Err(e) = table.verify() {
                report.problems.push(e.to_string());
                continue;
            }
            let path = table.path().display().to_string();
            let mut it = table.iter();
            it.seek_to_first();
            let mut first: Option<Vec<u8>> = None;
            let mut last: Vec<u8> = Vec::new();
            let mut n = 0u64;
            while it.valid() {
                let k = it.key();
                match parse_internal_key(k) {
                    Some(p) if p.sequence < f.smallest_seq || p.sequence > f.largest_seq => {
                        report.problems.push(format!(
                            "{path}: entry with sequence {} outside the recorded range {}..{}",
                            p.sequence, f.smallest_seq, f.largest_seq
                        ));
                    }
                    Some(p) if p.value_type == ValueType::BlobIndex => {
                        let at = |m: String| {
                            format!(
                                "{path}: blob reference of {}: {m}",
                                crate::engine::version::edit::escape_key(p.user_key)
                            )
                        };
                        match decode_ref(table.path(), it.value()) {
                            Err(e) => report.problems.push(at(e.to_string())),
                            Ok(r) if !version.blobs.contains_key(&r.file) => report
                                .problems
                                .push(at(format!("blob file #{} is not live", r.file))),
                            Ok(r) => {
                                *blob_refs.entry(r.file).or_default() += 1;
                                if let Err(e) = db.blob_cache().get(p.user_key, it.value()) {
                                    report.problems.push(at(e.to_string()));
                                }
                            }
                        }
                    }
                    Some(_) => {}
                    None => report.problems.push(format!(
                        "{path}: malformed internal key of {} bytes",
                        k.len()
                    )),
                }
                if first.is_none() {
                    first = Some(k.to_vec());
                }
                last.clear();
                last.extend_from_slice(k);
                n += 1;
                if n.is_multiple_of(4096) {
                    progress.show(|| {
                        format!(
                            "checking tables: {done}/{total} files, {} of {} ({n} entries of #{})",
                            mib(done_bytes),
                            mib(all_bytes),
                            f.number
                        )
                    });
                }
                it.next();
            }
            if let Err(e) = it.status() {
                report.problems.push(e.to_string());
                continue;
            }
            total_entries += n;
            let mut first = first.unwrap_or_default();
            for t in table.range_deletions().tombstones() {
                if t.seq < f.smallest_seq || t.seq > f.largest_seq {
                    report.problems.push(format!(
                        "{path}: range deletion with sequence {} outside the recorded range {}..{}",
                        t.seq, f.smallest_seq, f.largest_seq
                    ));
                }
                widen_bounds(&mut first, &mut last, t);
            }
            if first != f.smallest || last != f.largest {
                report.problems.push(format!(
                    "{path}: key range differs from the one the MANIFEST recorded"
                ));
            }
            if f.num_entries != 0 && f.num_entries != n {
                report.problems.push(format!(
                    "{path}: {n} entries, the MANIFEST recorded {}",
                    f.num_entries
                ));
            }
        }
        if level > 0 {
            for w in files.windows(2) {
                if compare_internal(&w[0].largest, &w[1].smallest) != Ordering::Less {
                    report.problems.push(format!(
                        "L{level}: files #{} and #{} overlap",
                        w[0].number, w[1].number
                    ));
                }
            }
        }
    }
    progress.done();
    let (mut blob_bytes, mut garbage_bytes) = (0, 0);
    for b in version.blobs.values() {
        blob_bytes += b.file_size;
        garbage_bytes += b.garbage_bytes;
        let refs = blob_refs.get(&b.number).copied().unwrap_or(0);
        let live = b.records.saturating_sub(b.garbage_records);
        if refs != live || b.garbage_records > b.records {
            report.problems.push(format!(
                "blob file #{}: {} records, {} garbage by the MANIFEST, but the tables hold {refs} references",
                b.number, b.records, b.garbage_records
            ));
        }
    }
    report.summary.push(format!(
        "blob files: {} files, {blob_bytes} bytes, {garbage_bytes} bytes garbage",
        version.blobs.len()
    ));
    report.summary.push(format!(
        "tables: {} files, {total_entries} entries, {total_bytes} bytes",
        version.total_files()
    ));
}

fn find_garbage(db: &Db, dir: &Path, report: &mut CheckReport) {
    let version = db.current_version();
    let live: HashSet<u64> = version
        .files
        .iter()
        .flat_map(|fs| fs.iter().map(|f| f.number))
        .chain(version.blobs.keys().copied())
        // A live WAL's blob log holds values the next open replays.
        .chain(db.wal_blob_logs().iter().copied())
        .collect();
    let current = std::fs::read_to_string(dir.join("CURRENT")).unwrap_or_default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let garbage = match parse_file_name(&name) {
            Some(FileType::Table(n) | FileType::Blob(n)) => !live.contains(&n),
            Some(FileType::Manifest(_)) => current.trim_end() != name,
            Some(FileType::Temp) => true,
            _ => false,
        };
        if garbage {
            report.garbage.push(name);
        }
    }
    report.garbage.sort();
}
