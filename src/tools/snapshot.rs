//! `lsmfs snapshot create|list|delete|diff MOUNTPOINT|DATA_DIR ...`.
//!
//! On a mount point (one whose `.lsmfs-stats` answers) the commands go
//! through the mount: create is `mkdir .snapshots/NAME`, delete is `rmdir
//! .snapshots/NAME` (see `fs::snapshots`: the daemon checks the caller and
//! replies once the MANIFEST edit is fsync'd), list reads `.snapshots` and
//! the daemon's statistics, diff walks the trees under `.snapshots`. On a
//! data directory they open the store offline, taking its LOCK (create,
//! delete) or a shared one (list, diff), like the other offline tools.
//!
//! Exit status: 0 done, 1 refused (a bad or taken name, no such snapshot,
//! not permitted, a store without snapshots), 2 could not run.
//!
//! An etcd store offers no snapshots (a cluster shared by several mounts
//! has no engine of ours to keep old versions: etcd's own revisions are
//! compacted by its operator): every command on an `etcd://` URL, and
//! create on an etcd mount (whose `mkdir .snapshots/NAME` is EOPNOTSUPP;
//! its `.snapshots` is empty), is refused with one line saying so.

use super::offline;
use crate::engine::snapshot::check_name;
use crate::engine::Db;
use crate::store::{EngineStore, SnapshotInfo, Store};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(clap::Subcommand, Debug)]
pub enum SnapshotCmd {
    /// Take a snapshot of the whole tree, durably, in O(1).
    Create { path: PathBuf, name: String },
    /// The snapshots: name, creation time, sequence, bytes only each holds.
    List { path: PathBuf },
    /// Delete a snapshot; the mount's background rewrites (or, offline, the
    /// next full compaction) give back what only it held.
    Delete { path: PathBuf, name: String },
    /// Paths created (+), deleted (-), modified (M) and renamed (R) from
    /// snapshot A to snapshot B, or to the live tree when B is left out.
    Diff {
        path: PathBuf,
        a: String,
        b: Option<String>,
    },
}

/// Whether `path` is a running lsmfs's mount point.
fn is_mount(path: &Path) -> bool {
    std::fs::metadata(path.join(".lsmfs-stats")).is_ok_and(|m| m.is_file())
}

/// A refusal (exit 1) or a failure to run (exit 2), with its line.
pub(super) enum Failed {
    Refused(String),
    CouldNot(String),
}

/// The refusal on a store that offers no snapshots.
fn no_snapshots(path: &Path) -> Failed {
    Failed::Refused(format!(
        "{}: snapshots are not offered on an etcd store (EOPNOTSUPP)",
        path.display()
    ))
}

pub fn run(cmd: SnapshotCmd) -> i32 {
    let path = match &cmd {
        SnapshotCmd::Create { path, .. }
        | SnapshotCmd::List { path }
        | SnapshotCmd::Delete { path, .. }
        | SnapshotCmd::Diff { path, .. } => path.clone(),
    };
    let r = match cmd {
        _ if crate::store::etcd::is_etcd(&path) => Err(no_snapshots(&path)),
        SnapshotCmd::Create { path, name } => create(&path, &name),
        SnapshotCmd::List { path } => list(&path),
        SnapshotCmd::Delete { path, name } => delete(&path, &name),
        SnapshotCmd::Diff { path, a, b } => super::snapshot_diff::run(&path, &a, b.as_deref()),
    };
    match r {
        Ok(()) => 0,
        Err(Failed::Refused(m)) => {
            eprintln!("lsmfs snapshot: {m}");
            1
        }
        Err(Failed::CouldNot(m)) => {
            eprintln!("lsmfs snapshot: {m}");
            2
        }
    }
}

/// What an errno means for a snapshot command on `name`.
fn explain(e: &std::io::Error, name: &str, path: &Path) -> Failed {
    let shown = path.display();
    match e.raw_os_error() {
        Some(libc::EEXIST) => {
            Failed::Refused(format!("snapshot {name:?} already exists in {shown}"))
        }
        Some(libc::ENOENT) => Failed::Refused(format!("no snapshot {name:?} in {shown}")),
        Some(libc::EPERM | libc::EACCES) => Failed::Refused(format!(
            "only the data directory's owner or root may create or delete snapshots of {shown}"
        )),
        Some(libc::EROFS) => Failed::Refused(format!("{shown} is mounted read-only")),
        Some(libc::EINVAL | libc::ENAMETOOLONG) => Failed::Refused(match check_name(name) {
            Err(why) => why,
            Ok(()) => format!("{name:?} cannot name a snapshot"),
        }),
        Some(libc::EOPNOTSUPP) => no_snapshots(path),
        Some(libc::EMLINK) => Failed::Refused(format!(
            "{shown} has used up its snapshot numbers (a million snapshots taken)"
        )),
        _ => Failed::CouldNot(format!("{shown}: {e}")),
    }
}

fn engine_failed(e: crate::engine::Error, name: &str, path: &Path) -> Failed {
    match e {
        crate::engine::Error::InvalidArgument(why) => Failed::Refused(why),
        e => explain(&std::io::Error::from_raw_os_error(e.errno()), name, path),
    }
}

fn open_offline(path: &Path, writable: bool) -> Result<Db, Failed> {
    offline::open(
        path,
        writable,
        "unmount it, or pass its mount point to work on the live mount",
    )
    .map_err(|e| Failed::CouldNot(e.to_string()))
}

fn create(path: &Path, name: &str) -> Result<(), Failed> {
    check_name(name).map_err(Failed::Refused)?;
    let t = std::time::Instant::now();
    if is_mount(path) {
        std::fs::create_dir(path.join(".snapshots").join(name))
            .map_err(|e| explain(&e, name, path))?;
    } else {
        let db = open_offline(path, true)?;
        let s = db
            .create_snapshot(name)
            .map_err(|e| engine_failed(e, name, path))?;
        db.close().map_err(|e| Failed::CouldNot(e.to_string()))?;
        println!("sequence {}", s.sequence);
    }
    println!(
        "snapshot {name:?} created ({:.1} ms)",
        t.elapsed().as_secs_f64() * 1000.0
    );
    Ok(())
}

fn delete(path: &Path, name: &str) -> Result<(), Failed> {
    if is_mount(path) {
        std::fs::remove_dir(path.join(".snapshots").join(name))
            .map_err(|e| explain(&e, name, path))?;
    } else {
        let db = open_offline(path, true)?;
        db.delete_snapshot(name)
            .map_err(|e| engine_failed(e, name, path))?;
        db.close().map_err(|e| Failed::CouldNot(e.to_string()))?;
    }
    println!(
        "snapshot {name:?} deleted; the mount's compactions (or `lsmfs compact`) give back what only it held"
    );
    Ok(())
}

/// A snapshot as `list` shows it.
struct Listed {
    info: SnapshotInfo,
    only_bytes: Option<u64>,
}

fn list(path: &Path) -> Result<(), Failed> {
    let rows = if is_mount(path) {
        list_mounted(path)?
    } else {
        let db = open_offline(path, false)?;
        let sizes = db.snapshot_exclusive_bytes().ok();
        let store = EngineStore::from_db(db);
        store
            .snapshots()
            .map_err(|e| Failed::CouldNot(e.to_string()))?
            .into_iter()
            .map(|info| Listed {
                only_bytes: sizes
                    .as_ref()
                    .and_then(|v| v.iter().find(|(id, _)| *id == info.id).map(|x| x.1)),
                info,
            })
            .collect()
    };
    println!("NAME\tCREATED (UTC)\tSEQUENCE\tONLY IT HOLDS (estimate)");
    for r in rows {
        println!(
            "{}\t{}\t{}\t{}",
            r.info.name,
            utc(r.info.created_ns / 1_000_000_000),
            r.info.sequence,
            r.only_bytes.map_or("?".into(), human)
        );
    }
    Ok(())
}

/// Names from `.snapshots` (exact bytes), the rest from the daemon's
/// statistics lines, joined by id (the inode number's top bits).
fn list_mounted(path: &Path) -> Result<Vec<Listed>, Failed> {
    use std::os::unix::fs::DirEntryExt;
    let stats = std::fs::read_to_string(path.join(".lsmfs-stats"))
        .map_err(|e| Failed::CouldNot(format!("{}: {e}", path.display())))?;
    let dir = path.join(".snapshots");
    let entries =
        std::fs::read_dir(&dir).map_err(|e| Failed::CouldNot(format!("{}: {e}", dir.display())))?;
    let now = crate::fs::core::now_ns() as u64;
    let mut rows = Vec::new();
    for e in entries {
        let e = e.map_err(|e| Failed::CouldNot(format!("{}: {e}", dir.display())))?;
        let Some((id, _)) = crate::fs::snapshots::split_ino(e.ino()) else {
            continue;
        };
        let field = |line: &str, key: &str| -> Option<u64> {
            let mut w = line.split_whitespace();
            w.position(|x| x == key)?;
            w.next()?.parse().ok()
        };
        let line = stats
            .lines()
            .find(|l| l.starts_with("snapshot ") && field(l, "id") == Some(id));
        let info = SnapshotInfo {
            id,
            name: e.file_name().to_string_lossy().into_owned(),
            sequence: line.and_then(|l| field(l, "seq")).unwrap_or(0),
            created_ns: line
                .and_then(|l| {
                    let age = l.split_whitespace().skip_while(|x| *x != "age").nth(1)?;
                    age.trim_end_matches('s').parse::<u64>().ok()
                })
                .map_or(0, |age| now.saturating_sub(age * 1_000_000_000)),
        };
        rows.push(Listed {
            info,
            only_bytes: line.and_then(|l| field(l, "only_it_holds")),
        });
    }
    rows.sort_by_key(|r| r.info.id);
    Ok(rows)
}

/// `YYYY-MM-DD HH:MM:SS` of seconds since the epoch (UTC).
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn human(b: u64) -> String {
    if b >= 1 << 20 {
        format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
    } else if b >= 1 << 10 {
        format!("{:.1} KiB", b as f64 / 1024.0)
    } else {
        format!("{b} B")
    }
}

/// The store of a data directory opened offline, for `snapshot diff`.
pub(super) fn offline_store(path: &Path) -> Result<Arc<dyn Store>, String> {
    let db = offline::open(
        path,
        false,
        "pass its mount point to compare the live mount's snapshots",
    )
    .map_err(|e| e.to_string())?;
    Ok(Arc::new(EngineStore::from_db(db)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_dates() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00");
        assert_eq!(super::utc(1_795_000_000), "2026-11-18 11:06:40");
        assert_eq!(super::utc(951_782_400), "2000-02-29 00:00:00");
    }
}
