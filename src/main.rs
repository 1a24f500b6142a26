//! The `lsmfs` command: a thin dispatcher; each subcommand lives in its module.
//!
//! Exit status, every command: 0 success; 1 the command ran and failed, or
//! (check, repair) found damage; 2 it could not run (usage errors included).
//! Each command's help says what its 0 and 1 mean.

use clap::{CommandFactory, Parser, Subcommand};
use std::ffi::OsString;

#[derive(Parser)]
#[command(
    name = "lsmfs",
    version,
    about = "A FUSE filesystem stored in its own LSM-tree engine",
    after_help = "mount(8) form, as mount.fuse3 runs it: lsmfs DATA_DIR MOUNTPOINT [-f] [-o OPTS] \
                  (returns once mounted unless -f)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Mount DATA_DIR at MOUNTPOINT: exit 0 unmounted cleanly (or, with
    /// --daemon, mounted), 1 failed, 2 usage.
    Mount(lsmfs::fs::mount::MountArgs),
    /// Unmount an lsmfs mount (a stale one too) and wait for its daemon:
    /// exit 0 unmounted, 1 failed.
    Umount(lsmfs::fs::umount::UmountArgs),
    /// Offline consistency check: exit 0 clean, 1 problems found, 2 could not run.
    Check(lsmfs::tools::check::CheckArgs),
    /// Print what a MANIFEST, SSTable, WAL or path holds: exit 0 printed, 2 could not read.
    #[command(subcommand)]
    Inspect(lsmfs::tools::inspect::InspectCmd),
    /// Statistics of a data directory or a live mount: exit 0 printed, 2 could not open.
    Stats(lsmfs::tools::stats::StatsArgs),
    /// Run a full compaction: exit 0 done, 1 failed midway (the store is as
    /// before or compacted in part, never damaged), 2 could not open.
    Compact(lsmfs::tools::compact::CompactArgs),
    /// Rebuild a lost or damaged MANIFEST from the tables and WALs present:
    /// exit 0 no damage, 1 damaged files (see its output), 2 could not run.
    Repair(lsmfs::tools::repair::RepairArgs),
    /// Create, list, delete and compare snapshots of a mount or a data directory.
    #[command(subcommand)]
    Snapshot(lsmfs::tools::snapshot::SnapshotCmd),
    /// Engine benchmark with db_bench's flags and output format: exit 0 done, 1 failed.
    Bench(lsmfs::bench::BenchArgs),
}

/// mount.fuse3 runs `lsmfs DATA_DIR MOUNTPOINT -o OPTS` (sshfs's form):
/// a first argument that is neither a subcommand nor a flag means that
/// form, which becomes `lsmfs mount --mount-helper ...`.
fn mount_helper_form(mut argv: Vec<OsString>) -> Vec<OsString> {
    let first = argv.get(1).and_then(|a| a.to_str()).unwrap_or("-");
    let command = Cli::command();
    let is_subcommand = first == "help"
        || command
            .get_subcommands()
            .any(|c| c.get_name() == first || c.get_all_aliases().any(|a| a == first));
    if argv.len() >= 3 && !first.starts_with('-') && !is_subcommand {
        argv.splice(1..1, ["mount".into(), "--mount-helper".into()]);
    }
    argv
}

fn main() {
    let cli = Cli::parse_from(mount_helper_form(std::env::args_os().collect()));
    if !matches!(cli.cmd, Cmd::Mount(_)) {
        // (`mount` sets up its own logging: it may go to a rotated file.)
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
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
        Cmd::Umount(a) => lsmfs::fs::umount::run(a),
        Cmd::Check(a) => lsmfs::tools::check::run(a),
        Cmd::Inspect(a) => lsmfs::tools::inspect::run(a),
        Cmd::Stats(a) => lsmfs::tools::stats::run(a),
        Cmd::Compact(a) => lsmfs::tools::compact::run(a),
        Cmd::Repair(a) => lsmfs::tools::repair::run(a),
        Cmd::Snapshot(a) => lsmfs::tools::snapshot::run(a),
        Cmd::Bench(a) => lsmfs::bench::run(a),
    };
    std::process::exit(code);
}
