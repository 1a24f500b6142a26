//! `lsmfs compact DATA_DIR`: a full compaction, offline.
//!
//! Merges every level down so each key is stored once and deleted data is
//! dropped. It needs the data directory's lock, so it runs while the
//! filesystem is not mounted (a mounted store compacts itself in the
//! background).
//!
//! It writes into the data directory, so only its owner or root may run
//! it: anyone else (a member of a group the directory was opened to, say)
//! would leave tables owned by them, which the owner's daemon cannot read.
//! As root, new files go to the directory's owner (see `engine::env::posix`).

use super::progress::{mib, Progress};
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct CompactArgs {
    /// The data directory (not mounted).
    pub path: PathBuf,
}

/// `compact_range` over everything, with a progress line on a terminal
/// drawn from the engine's counters by a second thread: how much the
/// compactions have read and written, against the tables' size at start
/// (a full compaction reads each byte once per level it moves down).
fn compact_showing_progress(
    db: &crate::engine::Db,
    before: &crate::engine::DbStats,
) -> crate::engine::Result<()> {
    let mut progress = Progress::new();
    if !progress.on() {
        return db.compact_range(None, None);
    }
    let total: u64 = before.levels.iter().map(|l| l.bytes).sum();
    let finished = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !finished.load(std::sync::atomic::Ordering::Relaxed) {
                let now = db.stats();
                let read = now.bytes_compacted_read - before.bytes_compacted_read;
                let written = now.bytes_compacted_written - before.bytes_compacted_written;
                progress.show(|| {
                    format!(
                        "compacting: {} compactions, {} read, {} written (tables were {})",
                        now.num_compactions - before.num_compactions,
                        mib(read),
                        mib(written),
                        mib(total)
                    )
                });
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            progress.done();
        });
        let r = db.compact_range(None, None);
        finished.store(true, std::sync::atomic::Ordering::Relaxed);
        r
    })
}

/// Whether the caller may write into data directory `dir`.
pub fn owner_or_root(dir: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid == 0 || md.uid() == euid {
        return Ok(());
    }
    Err(format!(
        "{} belongs to uid {}: only its owner or root may write into it",
        dir.display(),
        md.uid()
    ))
}

pub fn run(args: CompactArgs) -> i32 {
    if let Err(msg) = owner_or_root(&args.path) {
        eprintln!("lsmfs compact: {msg}");
        return 2;
    }
    let db = match super::offline::open(&args.path, true, "unmount it first (compact runs offline)")
    {
        Ok(db) => db,
        Err(e) => {
            eprintln!("lsmfs compact: {e}");
            return 2;
        }
    };
    let before = db.stats();
    let start = Instant::now();
    let r = compact_showing_progress(&db, &before);
    let after = db.stats();
    let closed = db.close();
    if let Err(e) = r.and(closed) {
        eprintln!("lsmfs compact: {e}");
        return 1;
    }
    let files = |s: &crate::engine::DbStats| s.levels.iter().map(|l| l.files).sum::<usize>();
    let bytes = |s: &crate::engine::DbStats| s.levels.iter().map(|l| l.bytes).sum::<u64>();
    println!(
        "compacted in {:.1}s: {} files, {} bytes -> {} files, {} bytes",
        start.elapsed().as_secs_f64(),
        files(&before),
        bytes(&before),
        files(&after),
        bytes(&after)
    );
    0
}
