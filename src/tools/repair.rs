//! `lsmfs repair DATA_DIR`: rebuild the MANIFEST and CURRENT from the
//! tables and WALs present (see `engine::repair` for what it keeps, drops
//! and moves into `DATA_DIR/lost/`).
//!
//! Exit status: 0 repaired and nothing was damaged; 1 repaired, but some
//! files were damaged (the lines saying `dropped`, `salvaged` or `skipped`
//! tell what was lost); 2 could not run (not a data directory, or mounted:
//! it needs the lock).

use super::progress::{mib, Progress};
use crate::engine::repair::{repair_with_progress, Outcome};
use crate::engine::{Error, Options};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct RepairArgs {
    /// The data directory (not mounted).
    pub path: PathBuf,
}

pub fn run(args: RepairArgs) -> i32 {
    let opts = Options {
        create_if_missing: false,
        ..Default::default()
    };
    let mut progress = Progress::new();
    let mut bytes = 0u64;
    let mut show = |done: usize, total: usize, file: &std::path::Path| {
        progress.show(|| {
            format!(
                "repairing: {done}/{total} files, {} read; reading {}",
                mib(bytes),
                file.file_name().unwrap_or_default().to_string_lossy()
            )
        });
        bytes += std::fs::metadata(file).map_or(0, |m| m.len());
    };
    let repaired = repair_with_progress(&args.path, &opts, &mut show);
    progress.done();
    let report = match repaired {
        Ok(r) => r,
        Err(e @ Error::Locked { .. }) => {
            eprintln!("lsmfs repair: {e}: unmount it first (repair runs offline)");
            return 2;
        }
        Err(e) => {
            // Engine errors name the file (and offset) themselves.
            eprintln!("lsmfs repair: {e}");
            return 2;
        }
    };
    let mut lost = false;
    for f in &report.files {
        println!("{f}");
        lost |= match &f.outcome {
            Outcome::Dropped { .. } | Outcome::Salvaged { .. } => true,
            Outcome::Converted { damage, .. } => damage.is_some(),
            Outcome::Kept { .. } | Outcome::Replaced => false,
        };
    }
    println!(
        "repaired: MANIFEST-{:06} names {} tables, {} entries; last sequence {}, next file {}",
        report.manifest_number,
        report.tables,
        report.entries,
        report.last_sequence,
        report.next_file_number
    );
    if lost {
        println!("some files were damaged: see the dropped, salvaged and skipped lines above");
        1
    } else {
        0
    }
}
