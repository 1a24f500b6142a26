//! `lsmfs stats DATA_DIR|MOUNTPOINT`.
//!
//! On a live mount the figures come from the running daemon, through the
//! hidden read-only file `.lsmfs-stats` at the mount root (it is not listed
//! by `ls`; `cat MOUNTPOINT/.lsmfs-stats` works too). On a data directory
//! the store is opened read-only (see `offline`) and its levels and WAL are
//! shown, scored with the tuning its last mount recorded, so the figures
//! match what that mount showed; the counters of a process that is not
//! running are not kept. Both end with a line per snapshot: its sequence
//! number, age and an estimate of the bytes only it holds (what deleting
//! it and compacting gives back).

use super::offline;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct StatsArgs {
    /// A data directory, or the mount point of a running lsmfs.
    pub path: PathBuf,
}

pub fn run(args: StatsArgs) -> i32 {
    let live = args.path.join(".lsmfs-stats");
    if let Ok(text) = std::fs::read_to_string(&live) {
        println!(
            "live statistics of the daemon serving {}:",
            args.path.display()
        );
        print!("{text}");
        return 0;
    }
    match offline::open(
        &args.path,
        false,
        "pass its mount point to see live figures",
    ) {
        Ok(db) => {
            println!("offline statistics of {}:", args.path.display());
            let store = crate::store::EngineStore::from_db(db);
            print!("{}", crate::store::Store::stats_text(&store));
            0
        }
        Err(e) => {
            eprintln!("lsmfs stats: {e}");
            2
        }
    }
}
