//! `lsmfs mount DATA_DIR MOUNTPOINT`: run the FUSE daemon.
//!
//! - Nothing is created before `mount_checks` has passed (mount point,
//!   data directory, nesting): a refused mount leaves the disk untouched.
//! - Foreground by default (`-f` says so): a supervisor (systemd's
//!   `Type=notify`, a container, a terminal) wants the process it started to
//!   be the filesystem, with errors on its stderr. mount(8)'s form, `lsmfs
//!   DATA_DIR MOUNTPOINT -o OPTS` (what mount.fuse3 runs for `-t
//!   fuse.lsmfs`, an fstab line, or `lsmfs#DATA_DIR`), daemonizes unless
//!   `-f`, because mount(8) waits for its helper to exit (sshfs's
//!   convention), and prints nothing on success. Under systemd the daemon
//!   sends `READY=1` once the mount answers (`sd_notify`).
//! - `--daemon` re-executes itself in the foreground
//!   in a new session (cwd `/`, stdin/stdout `/dev/null`, stderr appended to
//!   `DATA_DIR/LOG`, or `--log-file`, rotated by `log_file`; a read-only mount never writes in
//!   DATA_DIR, so without `--log-file` it keeps the caller's stderr) and returns once a *new* lsmfs mount at MOUNTPOINT
//!   shows up in `/proc/self/mountinfo` and answers `statfs`; if the daemon
//!   dies first, it prints the daemon's part of the log and exits 1.
//! - SIGINT, SIGTERM and SIGHUP are blocked before any thread starts (so
//!   every thread inherits the mask) and taken by the main thread with
//!   `sigtimedwait`. It unmounts — lazily (`MNT_DETACH`) if the mount is
//!   busy — waits for the FUSE session to end, and closes the store, which
//!   flushes the engine. An external `umount` ends the FUSE session the same
//!   way: the daemon closes the store and exits 0.
//! - `-o ro` opens the store read-only: the WAL is replayed into memory,
//!   nothing is written (no new WAL or MANIFEST), and the LOCK is shared.
//! - The store is opened *before* changing the mount point, so its LOCK
//!   decides who owns DATA_DIR: a second daemon fails there with one line.
//!   Only then is a stale mount at MOUNTPOINT (a killed daemon's: `statfs`
//!   answers ENOTCONN — `stat` can still be answered from the kernel's
//!   attribute cache) detached with `umount -l`; a *live* lsmfs mount there
//!   is refused rather than stacked on.
//! - As root the mount is made with mount(2) directly, with type
//!   `fuse.lsmfs` and source `lsmfs`, so `/proc/mounts` names both. Without
//!   the privilege (`/dev/fuse` cannot be opened, or mount(2) says EPERM) it
//!   goes through `fusermount3` (see `fusermount`), whose rules are checked
//!   before the store is opened: a mount that cannot happen creates nothing.
//! - The data directory is created 0700 and its files 0600 (see
//!   `data_dir`); an existing one that others can read gets a warning
//!   line, or a refusal with `--strict-perms`, before anything is opened.
//! - `--threads` defaults to 4: FUSE requests block on WAL writes and table
//!   reads, so a few more threads than the 2 cores of a small machine keep
//!   the kernel queue busy; each thread gets its own cloned `/dev/fuse` fd.
//!   On the io_uring transport the same number of workers serve the
//!   requests a ring thread hands off (see `uring`).

use super::mount_options::{self, Parsed};
use crate::cli_values::{int_in, size_in};
use crate::fs::mount_checks;
use crate::fs::ops::{Negotiated, Transport};
use crate::fs::{uring, FsConfig, FuseFs};
use crate::store::etcd::{is_etcd, Access, EtcdArgs, EtcdStore, EtcdUrl};
use crate::store::{EngineStore, Store};
use fuser::MountOption;
use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct MountArgs {
    /// Directory holding the store (created if missing), or
    /// etcd://HOST:PORT[,HOST:PORT...]/PREFIX for a store on an etcd cluster.
    pub data_dir: PathBuf,
    /// Empty directory to mount on (-o nonempty allows a non-empty one).
    pub mountpoint: PathBuf,
    /// Return once the mount is live, leaving the daemon in the background
    /// (its log goes to DATA_DIR/LOG, or --log-file).
    #[arg(long, conflicts_with = "foreground")]
    pub daemon: bool,
    /// Stay in the foreground until unmounted (the default of `lsmfs
    /// mount`; mount(8)'s form `lsmfs DATA_DIR MOUNTPOINT` daemonizes
    /// unless given -f).
    #[arg(short = 'f', long)]
    pub foreground: bool,
    /// Append the log to this file (rotated, see --log-size) instead of
    /// stderr; with --daemon the default is DATA_DIR/LOG (a read-only
    /// mount without it logs to the caller's stderr).
    #[arg(long)]
    pub log_file: Option<PathBuf>,
    /// Rotate the log file when it would pass this size, 64K to 1G:
    /// LOG becomes LOG.1, LOG.1 LOG.2, and so on.
    #[arg(long, default_value = crate::log_file::DEFAULT_SIZE,
          value_parser = crate::log_file::LOG_SIZE_RANGE)]
    pub log_size: u64,
    /// Rotated logs kept (LOG.1 .. LOG.N), 0 to 100; 0 truncates in place.
    #[arg(long, default_value = crate::log_file::DEFAULT_KEEP, value_parser = int_in(0, 100))]
    pub log_keep: u64,
    /// Called in mount(8)'s form (`lsmfs DATA_DIR MOUNTPOINT -o OPTS`, as
    /// mount.fuse3 runs it): daemonize unless -f, print nothing on success.
    #[arg(long, hide = true)]
    pub mount_helper: bool,
    /// FUSE worker threads, 1 to 64 (default 4: requests block on WAL
    /// writes and table reads, so a few more than the cores keep the queue busy).
    /// On the io_uring transport: the workers that serve large reads and
    /// writes and fsyncs for the ring threads.
    #[arg(long, default_value = "4", value_parser = int_in(1, MAX_THREADS))]
    pub threads: u64,
    /// `always`: fsync the WAL before every reply; `on-fsync`: only on fsync/fdatasync/syncfs.
    #[arg(long, default_value = "on-fsync", value_parser = ["always", "on-fsync"])]
    pub sync: String,
    /// Memtable size, 64K to 1G (suffixes K, M, G; flushed to a table when
    /// full). Two can be in memory at once; bigger ones mean fewer flushes
    /// and WAL switches (each fsyncs the old WAL) and less compaction.
    #[arg(long, default_value = "32M", value_parser = size_in(64 << 10, 1 << 30))]
    pub memtable_size: u64,
    /// Free space (MiB) kept on the data directory's disk for flushes and
    /// compactions: below it, operations that add data get ENOSPC. Default:
    /// eight memtables (room for the largest compaction); less on a small
    /// disk risks compactions that cannot run until space is freed.
    #[arg(long, value_parser = int_in(0, 1 << 40))]
    pub space_reserve_mb: Option<u64>,
    /// Kernel read-ahead for this mount, in KiB, 0 to 1048576 (the kernel
    /// caps a FUSE mount at 128 KiB; larger windows mean fewer, larger
    /// reads, several in flight). 0 leaves the kernel's setting.
    #[arg(long, default_value = "4096", value_parser = int_in(0, 1 << 20))]
    pub readahead_kb: u64,
    /// Refuse to mount a data directory that group or others can read or
    /// enter (without it, a warning).
    #[arg(long)]
    pub strict_perms: bool,
    /// Ring entries per io_uring queue (each holds a request buffer of the
    /// maximum request size, 1 MiB): how many requests one CPU's queue can
    /// have handed out at once.
    #[arg(long, default_value_t = crate::fs::uring::DEFAULT_DEPTH)]
    pub uring_depth: u32,
    /// Comma-separated mount options (see --help for each).
    #[arg(short = 'o', value_name = "OPTS", long_help = super::mount_options::help())]
    pub options: Vec<String>,
    #[command(flatten)]
    pub etcd: EtcdArgs,
}

/// More threads than this buy nothing (each is a cloned `/dev/fuse`
/// descriptor and a stack); `--threads 100000` used to hang the mount.
pub const MAX_THREADS: u64 = 64;

/// Exit status: 0 unmounted cleanly (foreground) or mounted (--daemon);
/// 1 the mount failed or ended in an error (one line says why); 2 usage.
pub fn run(mut args: MountArgs) -> i32 {
    let logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if let Err(msg) = mount_options::take_settings(&mut args) {
        eprintln!("lsmfs mount: {msg}");
        return 2;
    }
    let daemon = args.daemon || (args.mount_helper && !args.foreground);
    // The caller's stderr, when the log goes elsewhere: the one error line
    // is printed there too.
    let mut terminal = None;
    match &args.log_file {
        Some(path) if !daemon => {
            let rotation = crate::log_file::Rotation {
                path: path.clone(),
                max_size: args.log_size,
                keep: args.log_keep,
            };
            match crate::log_file::init(rotation, logger) {
                Ok(t) => terminal = t,
                Err(msg) => {
                    eprintln!("lsmfs mount: {msg}");
                    return 1;
                }
            }
        }
        _ => {
            let mut logger = logger;
            logger.init();
        }
    }
    let result = if daemon {
        daemonize(&args)
    } else {
        foreground(&args)
    };
    match result {
        Ok(()) => 0,
        Err(msg) => {
            eprintln!("lsmfs mount: {msg}");
            if let Some(mut t) = terminal {
                let _ = writeln!(t, "lsmfs mount: {msg}");
            }
            1
        }
    }
}

/// One line of `/proc/self/mountinfo`, the fields we use.
pub(crate) struct MountEntry {
    pub fstype: String,
    pub source: String,
}

/// The mounts stacked at `mountpoint`, bottom first.
pub(crate) fn mounts_at(mountpoint: &Path) -> Vec<MountEntry> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let want = mountpoint.to_string_lossy();
    info.lines()
        .filter_map(|l| {
            let fields: Vec<&str> = l.split(' ').collect();
            let sep = fields.iter().position(|f| *f == "-")?;
            if unescape(fields.get(4)?) != want {
                return None;
            }
            Some(MountEntry {
                fstype: unescape(fields.get(sep + 1)?),
                source: unescape(fields.get(sep + 2)?),
            })
        })
        .collect()
}

impl MountEntry {
    pub fn is_lsmfs(&self) -> bool {
        self.source == "lsmfs" && (self.fstype == "fuse" || self.fstype == "fuse.lsmfs")
    }
}

/// Whether an lsmfs FUSE mount (source `lsmfs`, a type starting with
/// `fstype_prefix`: `fuse` matches both `fuse` and `fuse.lsmfs`) is listed
/// at `mountpoint` in mountinfo.
pub fn is_fuse_mounted(mountpoint: &Path, fstype_prefix: &str) -> bool {
    mounts_at(mountpoint)
        .iter()
        .any(|m| m.is_lsmfs() && m.fstype.starts_with(fstype_prefix))
}

/// Whether the top mount at `mountpoint` is an lsmfs one whose daemon answers.
pub fn is_live_lsmfs_mount(mountpoint: &Path) -> bool {
    mounts_at(mountpoint).last().is_some_and(|m| m.is_lsmfs()) && statfs_errno(mountpoint).is_none()
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

fn absolute(p: &Path) -> Result<PathBuf, String> {
    std::path::absolute(p).map_err(|e| format!("{}: {e}", p.display()))
}

pub(crate) fn cpath(p: &Path) -> Result<CString, String> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| format!("{}: NUL in path", p.display()))
}

/// Check everything `mount_checks` refuses, then what must hold before
/// the data directory is created or opened: its permissions (a warning
/// through `warn`, or a refusal with `--strict-perms`) and, without
/// privilege, fusermount3's rules. Only then is DATA_DIR created (never
/// for a read-only mount). Returns the resolved paths and the options.
fn prepare(
    args: &MountArgs,
    warn: impl Fn(&str),
) -> Result<(mount_checks::Resolved, Parsed), String> {
    let parsed = mount_options::parse(&args.options)?;
    if is_etcd(&args.data_dir) {
        // Nothing local to check or create: only the mount point.
        EtcdUrl::parse(&args.data_dir.to_string_lossy())?;
        args.etcd.access()?;
        let mountpoint = mount_checks::check_mountpoint(&args.mountpoint, parsed.nonempty)?;
        if unsafe { libc::geteuid() } != 0 {
            super::fusermount::preflight(&mountpoint, parsed.acl != fuser::SessionACL::Owner)?;
        }
        let data_dir = args.data_dir.clone();
        return Ok((
            mount_checks::Resolved {
                data_dir,
                mountpoint,
            },
            parsed,
        ));
    }
    let paths = mount_checks::check(
        &args.data_dir,
        &args.mountpoint,
        parsed.nonempty,
        parsed.read_only,
    )?;
    if let Some(problem) = crate::data_dir::access_problem(&paths.data_dir) {
        if args.strict_perms {
            return Err(format!("refusing (--strict-perms): {problem}"));
        }
        warn(&problem);
    }
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        super::fusermount::preflight(&paths.mountpoint, parsed.acl != fuser::SessionACL::Owner)?;
    }
    if !parsed.read_only {
        crate::data_dir::create(&paths.data_dir)?;
    }
    Ok((paths, parsed))
}

fn daemonize(args: &MountArgs) -> Result<(), String> {
    let (paths, parsed) = prepare(args, |w| eprintln!("lsmfs mount: warning: {w}"))?;
    let (data_dir, mountpoint) = (paths.data_dir, paths.mountpoint);
    let log_path = match &args.log_file {
        Some(p) => Some(absolute(p)?),
        None if parsed.read_only || is_etcd(&data_dir) => None,
        None => Some(data_dir.join("LOG")),
    };
    let log = match (&log_path, &args.log_file) {
        // The user's own file (maybe a device or a shared log): created
        // 0600 if missing, its mode otherwise left alone.
        (Some(p), Some(_)) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(p)
                .map_err(|e| format!("cannot open {}: {e}", p.display()))?,
        ),
        (Some(p), None) => Some(crate::data_dir::open_append_private(p)?),
        (None, _) => None,
    };
    let log_start = log
        .as_ref()
        .and_then(|l| l.metadata().ok())
        .map_or(0, |m| m.len());
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own binary: {e}"))?;
    // The daemon reports "mounted" through this pipe; EOF without it means
    // it failed (or died). Mount ids and device numbers get reused, so
    // watching mountinfo could mistake a stale mount for the new one.
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!(
            "cannot create a pipe: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: both descriptors are fresh and owned here from now on.
    let (ready_r, ready_w) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let ready_fd = ready_w.as_raw_fd();
    let mut cmd = Command::new(exe);
    cmd.arg("mount")
        .arg(&data_dir)
        .arg(&mountpoint)
        .arg("--threads")
        .arg(args.threads.to_string())
        .arg("--sync")
        .arg(&args.sync)
        .arg("--memtable-size")
        .arg(args.memtable_size.to_string())
        .arg("--readahead-kb")
        .arg(args.readahead_kb.to_string())
        .arg("--uring-depth")
        .arg(args.uring_depth.to_string());
    if let Some(mb) = args.space_reserve_mb {
        cmd.arg("--space-reserve-mb").arg(mb.to_string());
    }
    if args.strict_perms {
        cmd.arg("--strict-perms");
    }
    if let Some(p) = &log_path {
        cmd.arg("--log-file").arg(p);
    }
    cmd.arg("--log-size")
        .arg(args.log_size.to_string())
        .arg("--log-keep")
        .arg(args.log_keep.to_string())
        .arg("--foreground");
    for o in &args.options {
        cmd.arg("-o").arg(o);
    }
    cmd.args(args.etcd.to_args());
    // cwd `/`: the daemon must not keep the caller's directory busy.
    cmd.current_dir("/")
        .env(READY_FD_ENV, ready_fd.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log.map_or_else(Stdio::inherit, Stdio::from));
    // SAFETY: setsid and fcntl are async-signal-safe and touch no Rust state.
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            libc::fcntl(ready_fd, libc::F_SETFD, 0); // inherit the pipe's write end
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start daemon: {e}"))?;
    drop(ready_w);
    let mut pipe = std::fs::File::from(ready_r);
    let mut said = Vec::new();
    let _ = std::io::Read::read_to_end(&mut pipe, &mut said);
    if said == b"mounted\n" {
        if args.mount_helper {
            return Ok(()); // mount(8) prints nothing on success
        }
        println!(
            "lsmfs: mounted {} on {} (pid {}, log {})",
            data_dir.display(),
            mountpoint.display(),
            child.id(),
            log_path
                .as_ref()
                .map_or("to stderr".into(), |p| p.display().to_string())
        );
        return Ok(());
    }
    let status = child
        .wait()
        .map(|s| s.to_string())
        .unwrap_or_else(|e| e.to_string());
    let Some(log_path) = log_path else {
        return Err(format!(
            "daemon exited ({status}) before mounting (its messages are above)"
        ));
    };
    let tail = std::fs::read(&log_path)
        .map(|d| String::from_utf8_lossy(&d[(log_start as usize).min(d.len())..]).into_owned())
        .unwrap_or_default();
    // The daemon's own one-line error, if it printed one, is the message.
    let last = tail
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("lsmfs mount: "))
        .map(str::to_string);
    Err(match last {
        Some(msg) => msg,
        None => format!(
            "daemon exited ({status}) before mounting; its log:\n{}",
            tail.trim_end()
        ),
    })
}

/// Environment variable naming the descriptor on which a daemon started by
/// `--daemon` reports that the mount is live.
const READY_FD_ENV: &str = "LSMFS_READY_FD";

/// Take the readiness pipe handed down by `--daemon`, if any (and keep it
/// from leaking into child processes such as `umount`).
fn take_ready_pipe() -> Option<std::fs::File> {
    let fd: i32 = std::env::var(READY_FD_ENV).ok()?.parse().ok()?;
    std::env::remove_var(READY_FD_ENV);
    // SAFETY: fcntl on a descriptor number; fails harmlessly if not open.
    if fd <= 2 || unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
        return None;
    }
    // SAFETY: the parent passed us this descriptor to own.
    Some(std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// statfs of a path: unlike stat, never answered from the kernel's
/// attribute cache, so it tells a live FUSE mount from a dead one.
pub fn statfs_errno(path: &Path) -> Option<i32> {
    let c = cpath(path).ok()?;
    // SAFETY: statvfs writes into a zeroed struct we own.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } == 0 {
        None
    } else {
        Some(errno())
    }
}

/// `statfs_errno`, waiting out a connection still being torn down: for a
/// moment after an io_uring daemon is killed its queues are cancelled
/// before the connection is, and requests fail with ECANCELED (or
/// ECONNABORTED) instead of a dead mount's ENOTCONN.
fn settled_statfs_errno(path: &Path) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let e = statfs_errno(path);
        if !matches!(e, Some(libc::ECANCELED | libc::ECONNABORTED)) || Instant::now() > deadline {
            return e;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(crate) fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn run_quiet(prog: &str, args: &[&str], path: &Path) -> bool {
    Command::new(prog)
        .args(args)
        .arg(path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Make `mountpoint` ready: detach dead daemons' mounts stacked there,
/// refuse a live lsmfs mount, and insist on a directory.
fn prepare_mountpoint(mountpoint: &Path) -> Result<(), String> {
    for _ in 0..8 {
        if settled_statfs_errno(mountpoint) != Some(libc::ENOTCONN) {
            break;
        }
        log::info!(
            "detaching the stale FUSE mount at {} left by a dead daemon",
            mountpoint.display()
        );
        let ok = run_quiet("umount", &["-l"], mountpoint) || super::fusermount::detach(mountpoint);
        if !ok {
            return Err(format!(
                "{} holds a stale FUSE mount that could not be detached (try: umount -l {})",
                mountpoint.display(),
                mountpoint.display()
            ));
        }
    }
    if is_live_lsmfs_mount(mountpoint) {
        return Err(format!(
            "{} is already a live lsmfs mount (umount it first)",
            mountpoint.display()
        ));
    }
    match std::fs::metadata(mountpoint) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(format!(
            "mount point {} is not a directory",
            mountpoint.display()
        )),
        Err(e) => Err(format!("mount point {}: {e}", mountpoint.display())),
    }
}

/// mount(2) a FUSE filesystem of type `fuse.lsmfs` at `mountpoint`; the
/// returned `/dev/fuse` descriptor carries the session. `None`: not
/// privileged to (`/dev/fuse` closed to us, or EPERM), use fusermount3.
fn mount_direct(mountpoint: &Path, p: &Parsed) -> Result<Option<OwnedFd>, String> {
    let dev = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
    {
        Ok(dev) => dev,
        Err(e) if matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM)) => return Ok(None),
        Err(e) => return Err(format!("cannot open /dev/fuse: {e}")),
    };
    let md = std::fs::metadata(mountpoint)
        .map_err(|e| format!("mount point {}: {e}", mountpoint.display()))?;
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let mut data = format!(
        "fd={},rootmode={:o},user_id={uid},group_id={gid}",
        dev.as_raw_fd(),
        md.mode() & libc::S_IFMT
    );
    for o in &p.data {
        data.push(',');
        data.push_str(o);
    }
    let target = cpath(mountpoint)?;
    let cdata = CString::new(data.clone()).map_err(|_| "NUL in -o options".to_string())?;
    // SAFETY: every pointer is a valid NUL-terminated string for the call.
    let r = unsafe {
        libc::mount(
            c"lsmfs".as_ptr(),
            target.as_ptr(),
            c"fuse.lsmfs".as_ptr(),
            p.flags,
            cdata.as_ptr() as *const libc::c_void,
        )
    };
    if r == 0 {
        return Ok(Some(OwnedFd::from(dev)));
    }
    match errno() {
        libc::EPERM => Ok(None),
        libc::EINVAL if p.fuse.iter().any(|o| matches!(o, MountOption::CUSTOM(_))) => Err(format!(
            "cannot mount on {}: the kernel refused the FUSE options {data} \
                 (an -o option it does not know?)",
            mountpoint.display()
        )),
        e => Err(format!(
            "cannot mount on {}: {} (FUSE options {data})",
            mountpoint.display(),
            std::io::Error::from_raw_os_error(e)
        )),
    }
}

/// The ring queues to offer at INIT, or None (with the reason logged)
/// for the classic `/dev/fuse` path.
fn ring_queues(p: &Parsed, depth: u32) -> Result<Option<uring::Queues>, String> {
    let available = uring::available();
    match (p.io_uring, available) {
        (Some(false), _) => return Ok(None),
        (Some(true), Err(why)) => return Err(format!("-o io_uring: {why}")),
        (None, Err(why)) => {
            log::info!("serving through /dev/fuse: {why} (FUSE over io_uring is off)");
            return Ok(None);
        }
        (_, Ok(())) => {}
    }
    match uring::Queues::prepare(depth) {
        Ok(q) => Ok(Some(q)),
        Err(e) if p.io_uring == Some(true) => Err(format!("-o io_uring: {e}")),
        Err(e) => {
            log::info!("serving through /dev/fuse: cannot set up io_uring queues: {e}");
            Ok(None)
        }
    }
}

/// A mount being served: fuser's session and, when the ring serves it,
/// the ring queues.
struct Served {
    session: fuser::BackgroundSession,
    ring: Option<uring::Running>,
}

/// Mount and start serving `fs` on `threads` threads, or on the io_uring
/// queues (`ring`, made before INIT) when the kernel grants them.
fn start_session(
    fs: FuseFs,
    mountpoint: &Path,
    p: &Parsed,
    threads: usize,
    ring: Option<uring::Queues>,
) -> Result<Served, String> {
    let mut config = fuser::Config::default();
    config.mount_options = p.fuse.clone();
    config.acl = p.acl;
    config.n_threads = Some(threads.max(1));
    config.clone_fd = true;
    let ops = fs.ops().clone();
    ops.set_transport(Transport::DevFuse {
        threads: threads.max(1),
    });
    let detach = |e: String| {
        if lazy_detach(mountpoint).is_err() {
            super::fusermount::detach(mountpoint);
        }
        e
    };
    let fd = match mount_direct(mountpoint, p)? {
        Some(fd) => fd,
        None => {
            log::info!("not privileged to mount(2): mounting through fusermount3");
            super::fusermount::mount(mountpoint, &p.fusermount_options())
                .map_err(|e| format!("cannot mount on {}: {e}", mountpoint.display()))?
        }
    };
    let session = fuser::Session::from_fd(fs, fd, p.acl, config)
        .map_err(|e| detach(format!("FUSE session on {}: {e}", mountpoint.display())))?;
    // INIT has been answered: the ring may register now.
    let dev = session
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| detach(format!("duplicating the /dev/fuse descriptor: {e}")))?;
    let session = session
        .spawn()
        .map_err(|e| detach(format!("FUSE session on {}: {e}", mountpoint.display())))?;
    let Some(queues) = ring else {
        return Ok(Served {
            session,
            ring: None,
        });
    };
    let n = ops.negotiated().unwrap_or(Negotiated {
        io_uring: false,
        max_write: 0,
        max_readahead: 0,
        setxattr_ext: false,
    });
    if !n.io_uring {
        queues.abandon();
        if p.io_uring == Some(true) {
            return Err(detach(
                "-o io_uring: the kernel did not accept FUSE_OVER_IO_URING at INIT".into(),
            ));
        }
        log::info!("serving through /dev/fuse: the kernel did not accept FUSE_OVER_IO_URING");
        return Ok(Served {
            session,
            ring: None,
        });
    }
    // Named before the queues register: the kernel serves the first
    // request as soon as the last queue is registered.
    ops.set_transport(Transport::IoUring {
        queues: queues.len(),
    });
    match queues.start(
        ops.clone(),
        dev,
        n.max_write,
        n.max_readahead,
        n.setxattr_ext,
        threads.max(1),
    ) {
        Ok(running) => Ok(Served {
            session,
            ring: Some(running),
        }),
        // A refused registration turns the ring off in the kernel, which
        // then serves through /dev/fuse.
        Err(e) if p.io_uring != Some(true) => {
            ops.set_transport(Transport::DevFuse {
                threads: threads.max(1),
            });
            log::warn!("serving through /dev/fuse: io_uring registration failed: {e}");
            Ok(Served {
                session,
                ring: None,
            })
        }
        Err(e) => Err(detach(format!("-o io_uring: {e}"))),
    }
}

pub(crate) fn lazy_detach(mountpoint: &Path) -> Result<(), String> {
    let c = cpath(mountpoint)?;
    // SAFETY: c is a valid path string.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().to_string())
    }
}

/// Unmount our mount at `mountpoint`: a plain unmount, a lazy one if the
/// mount is busy (it ends when its last open file closes), fusermount3
/// without privilege.
fn unmount(mountpoint: &Path) -> Result<(), String> {
    if !mounts_at(mountpoint).last().is_some_and(|m| m.is_lsmfs()) {
        return Ok(()); // already gone: never unmount someone else's
    }
    let c = cpath(mountpoint)?;
    // SAFETY: c is a valid path string.
    if unsafe { libc::umount2(c.as_ptr(), 0) } == 0 {
        return Ok(());
    }
    match errno() {
        libc::EINVAL | libc::ENOENT => Ok(()),
        libc::EBUSY => {
            log::warn!(
                "{} is busy: detaching it lazily; the session ends when its last file is closed",
                mountpoint.display()
            );
            lazy_detach(mountpoint)
        }
        libc::EPERM => {
            if super::fusermount::detach(mountpoint) {
                Ok(())
            } else {
                Err("fusermount3 -u failed".into())
            }
        }
        e => Err(std::io::Error::from_raw_os_error(e).to_string()),
    }
}

/// Set the read-ahead window of the mount's backing device info
/// (`/sys/class/bdi/MAJOR:MINOR/read_ahead_kb`). FUSE starts every mount at
/// the 128 KiB default whatever `max_readahead` says, and only root may
/// raise it; without the right this is logged and skipped.
fn set_readahead(mountpoint: &Path, kb: u64) {
    use std::os::unix::fs::MetadataExt;
    let dev = match std::fs::metadata(mountpoint) {
        Ok(m) => m.dev(),
        Err(e) => {
            log::warn!("read-ahead not set: stat {}: {e}", mountpoint.display());
            return;
        }
    };
    let path = format!(
        "/sys/class/bdi/{}:{}/read_ahead_kb",
        libc::major(dev),
        libc::minor(dev)
    );
    match std::fs::write(&path, format!("{kb}\n")) {
        Ok(()) => log::info!("read-ahead {kb} KiB ({path})"),
        Err(e) => log::info!("read-ahead left at the kernel's default: {path}: {e}"),
    }
}

fn block_signals() -> libc::sigset_t {
    // SAFETY: plain libc signal-mask calls on a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Wait up to `ms` for one of the blocked signals; returns it if one came.
fn wait_signal(set: &libc::sigset_t, ms: i64) -> Option<i32> {
    let ts = libc::timespec {
        tv_sec: ms / 1000,
        tv_nsec: (ms % 1000) * 1_000_000,
    };
    // SAFETY: set and ts are valid for the call.
    let sig = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &ts) };
    (sig > 0).then_some(sig)
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "signal",
    }
}

/// How long a signalled daemon waits for a lazily detached, still busy
/// mount to be let go before it closes the store anyway.
const BUSY_GRACE: Duration = Duration::from_secs(10);

fn foreground(args: &MountArgs) -> Result<(), String> {
    let ready = take_ready_pipe();
    let systemd = super::sd_notify::Notifier::take();
    if !Path::new("/dev/fuse").exists() {
        return Err("/dev/fuse is missing: FUSE is not available on this machine".into());
    }
    let (paths, parsed) = prepare(args, |w| log::warn!("{w}"))?;
    // Before any thread exists, so that every thread inherits the mask.
    let signals = block_signals();
    if is_etcd(&paths.data_dir) {
        let url = EtcdUrl::parse(&paths.data_dir.to_string_lossy())?;
        let store: Arc<dyn Store> = Arc::new(open_etcd(&url, &args.etcd.access()?)?);
        return serve(args, &paths, &parsed, store, &signals, (ready, &systemd));
    }
    let store = Arc::new(open_store(args, &paths, parsed.read_only)?);
    let served = serve(
        args,
        &paths,
        &parsed,
        store.clone(),
        &signals,
        (ready, &systemd),
    );
    let closed = store.close();
    served?;
    closed.map_err(|e| format!("closing the store: {e}"))?;
    log::info!("store closed cleanly");
    Ok(())
}

/// Free space kept on the data directory's disk: room for the engine's
/// largest compaction (all of L0 into L1: four memtables of L0 and the L1
/// they overlap), so that it can always flush, compact and so give space
/// back after deletions.
fn space_reserve(memtable_size: u64) -> u64 {
    8 * memtable_size
}

/// How long to wait for DATA_DIR's lock: a daemon that was just unmounted
/// may still be flushing its store (`umount` returns before it exits).
const LOCK_WAIT: Duration = Duration::from_secs(3);

fn open_store(
    args: &MountArgs,
    paths: &mount_checks::Resolved,
    read_only: bool,
) -> Result<EngineStore, String> {
    let mut opts = EngineStore::tuned_options(args.sync == "always", args.memtable_size as usize);
    opts.read_only = read_only;
    opts.lock_note = format!("mounted on {}", paths.mountpoint.display());
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match EngineStore::open_with(&paths.data_dir, opts.clone()) {
            Err(e) if e.contains("locked") && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50))
            }
            r => return r,
        }
    }
}

/// Connect to the etcd cluster (one clear line if it cannot be reached or
/// refuses the credentials).
fn open_etcd(url: &EtcdUrl, access: &Access) -> Result<EtcdStore, String> {
    let store = EtcdStore::open(url, access)?;
    log::info!(
        "store on etcd: {} (every operation one transaction)",
        url.shown
    );
    Ok(store)
}

/// Mount, serve until unmounted or signalled, unmount.
fn serve(
    args: &MountArgs,
    paths: &mount_checks::Resolved,
    parsed: &Parsed,
    store: Arc<dyn Store>,
    signals: &libc::sigset_t,
    (ready, systemd): (Option<std::fs::File>, &super::sd_notify::Notifier),
) -> Result<(), String> {
    let mountpoint = paths.mountpoint.as_path();
    let data_dir = paths.data_dir.as_path();
    // A local store keeps room on its disk; etcd has its own quota.
    let local = !is_etcd(data_dir);
    prepare_mountpoint(mountpoint)?;
    let config = FsConfig {
        sync_always: args.sync == "always",
        writeback_cache: parsed.writeback_cache,
        read_only: parsed.read_only,
        no_acl: parsed.no_acl,
        statfs_path: local.then(|| data_dir.to_path_buf()),
        space_reserve: match (local, args.space_reserve_mb) {
            (false, _) => 0,
            (true, Some(mb)) => mb << 20,
            (true, None) => space_reserve(args.memtable_size),
        },
        io_uring: false,
        snapshot_owner: {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(data_dir).ok().map(|m| m.uid())
        },
    };
    let ring = ring_queues(parsed, args.uring_depth)?;
    let config = FsConfig {
        io_uring: ring.is_some(),
        ..config
    };
    let fs = FuseFs::new(store, config)
        .map_err(|e| format!("cannot start the filesystem on {}: {e}", data_dir.display()))?;
    let ops = fs.ops().clone();
    let Served { session, ring } =
        start_session(fs, mountpoint, parsed, args.threads as usize, ring)?;
    let store = ops.core().store();
    if store.shared() {
        match super::invalidate::kernel_sink(session.notifier()) {
            Ok(sink) => {
                if store.follow_changes(sink) {
                    log::info!("other hosts' changes drop the kernel's cached names and attributes at once");
                }
            }
            Err(e) => log::warn!(
                "cannot start the invalidation thread ({e}): other hosts' changes are seen after the 1 s cache timeout"
            ),
        }
    }
    if args.readahead_kb > 0 {
        set_readahead(mountpoint, args.readahead_kb);
    }
    let transport = match ops.transport() {
        Transport::IoUring { queues } => format!("io_uring, {queues} queues"),
        Transport::DevFuse { threads } => format!("/dev/fuse, {threads} threads"),
    };
    log::info!(
        "mounted {} on {} ({transport}, sync {}{})",
        data_dir.display(),
        mountpoint.display(),
        args.sync,
        if parsed.read_only { ", read-only" } else { "" }
    );
    if let Some(mut pipe) = ready {
        let _ = pipe.write_all(b"mounted\n");
    }
    systemd.send(&format!(
        "READY=1\nSTATUS=mounted on {}",
        mountpoint.display()
    ));
    loop {
        if let Some(sig) = wait_signal(signals, 200) {
            systemd.send("STOPPING=1");
            log::info!("{}: unmounting {}", signal_name(sig), mountpoint.display());
            if let Err(e) = unmount(mountpoint) {
                log::warn!("unmounting {}: {e}", mountpoint.display());
            }
            break;
        }
        if session.guard.is_finished() {
            log::info!("{} was unmounted", mountpoint.display());
            break;
        }
    }
    let deadline = Instant::now() + BUSY_GRACE;
    while !session.guard.is_finished() {
        if Instant::now() > deadline || wait_signal(signals, 50).is_some() {
            log::warn!(
                "{} is still in use; closing the store with the session open \
                 (later requests fail)",
                mountpoint.display()
            );
            // Dropping the handle detaches the session thread; the process
            // exits right after the store is closed.
            drop(session);
            return Ok(());
        }
    }
    if let Err(e) = session.join() {
        log::warn!("the FUSE session ended with: {e}");
    }
    if let Some(r) = ring {
        r.wait(BUSY_GRACE);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(unescape("/tmp/a\\040b\\134c"), "/tmp/a b\\c");
    }
}
