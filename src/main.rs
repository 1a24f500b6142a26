//! The `lsmfs` command: a thin dispatcher; each subcommand lives in its module.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "lsmfs",
    version,
    about = "A FUSE filesystem stored in its own LSM-tree engine"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Mount DATA_DIR at MOUNTPOINT.
    Mount(lsmfs::fs::mount::MountArgs),
    /// Offline consistency check: exit 0 clean, 1 problems found, 2 could not run.
    Check(lsmfs::tools::check::CheckArgs),
    /// Print what a MANIFEST, SSTable, WAL or path holds.
    #[command(subcommand)]
    Inspect(lsmfs::tools::inspect::InspectCmd),
    /// Statistics of a data directory or a live mount.
    Stats(lsmfs::tools::stats::StatsArgs),
    /// Run a full compaction.
    Compact(lsmfs::tools::compact::CompactArgs),
    /// Rebuild a lost or damaged MANIFEST from the tables and WALs present:
    /// exit 0 no damage, 1 damaged files (see its output), 2 could not run.
    Repair(lsmfs::tools::repair::RepairArgs),
    /// Engine benchmark with db_bench's flags and output format.
    Bench(lsmfs::bench::BenchArgs),
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    if !matches!(cli.cmd, Cmd::Mount(_)) {
        // The tools' output goes to pipes (`lsmfs inspect wal F | head`):
        // a reader that stops early ends them the way it ends cat or grep,
        // by SIGPIPE (the shell reports status 141), not by a panic in
        // println!. The daemon keeps Rust's default (SIGPIPE ignored), so a
        // closed pipe there is an error it handles.
        // SAFETY: resetting a signal disposition before any thread starts.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    let code = match cli.cmd {
        Cmd::Mount(a) => lsmfs::fs::mount::run(a),
        Cmd::Check(a) => lsmfs::tools::check::run(a),
        Cmd::Inspect(a) => lsmfs::tools::inspect::run(a),
        Cmd::Stats(a) => lsmfs::tools::stats::run(a),
        Cmd::Compact(a) => lsmfs::tools::compact::run(a),
        Cmd::Repair(a) => lsmfs::tools::repair::run(a),
        Cmd::Bench(a) => lsmfs::bench::run(a),
    };
    std::process::exit(code);
}
