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
//! As root, new files go to the directory's owner (see `posix_env`).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct CompactArgs {
    /// The data directory (not mounted).
    pub path: PathBuf,
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
    let tty = std::io::stderr().is_terminal();
    let before = db.stats();
    if tty {
        eprintln!("compacting {} ...", args.path.display());
    }
    let start = Instant::now();
    let r = db.compact_range(None, None);
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
