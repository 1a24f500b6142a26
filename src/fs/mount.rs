//! `lsmfs mount DATA_DIR MOUNTPOINT`: run the FUSE daemon.
//!
//! - Foreground by default; `--daemon` re-executes itself in the foreground
//!   in a new session (stderr appended to `DATA_DIR/LOG`) and returns
//!   once the mount shows up in `/proc/self/mountinfo`.
//! - SIGINT and SIGTERM are blocked in every thread and taken by the main
//!   thread with `sigtimedwait`, which then unmounts and closes the store
//!   cleanly; an external `umount` ends the FUSE session, and the daemon
//!   closes the store and exits 0.
//! - The store is opened *before* touching the mount point, so its LOCK
//!   decides who owns DATA_DIR: a second daemon fails there with a clear
//!   message. Only then is a stale mount at MOUNTPOINT (a killed daemon's,
//!   answering ENOTCONN) detached with `umount -l`.
//! - `--threads` defaults to 4: FUSE requests block on WAL writes and table
//!   reads, so a few more threads than the 2 cores keep the kernel queue busy.

use crate::fs::{FsConfig, FuseFs};
use crate::store::{EngineStore, Store};
use fuser::MountOption;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct MountArgs {
    /// Directory holding the store (created if missing).
    pub data_dir: PathBuf,
    /// Empty directory to mount on.
    pub mountpoint: PathBuf,
    /// Return once the mount is live, leaving the daemon in the background.
    #[arg(long)]
    pub daemon: bool,
    /// FUSE worker threads.
    #[arg(long, default_value_t = 4)]
    pub threads: usize,
    /// `always`: fsync the WAL before every reply; `on-fsync`: only on fsync/fdatasync/syncfs.
    #[arg(long, default_value = "on-fsync", value_parser = ["always", "on-fsync"])]
    pub sync: String,
    /// Memtable size in bytes (flushed to a table when full).
    #[arg(long, default_value_t = 4 << 20)]
    pub memtable_size: usize,
    /// Comma-separated options: allow_other, allow_root, ro, writeback_cache, or any FUSE option.
    #[arg(short = 'o')]
    pub options: Vec<String>,
}

pub fn run(args: MountArgs) -> i32 {
    let result = if args.daemon {
        daemonize(&args)
    } else {
        foreground(&args)
    };
    match result {
        Ok(()) => 0,
        Err(msg) => {
            eprintln!("lsmfs mount: {msg}");
            1
        }
    }
}

/// Whether an lsmfs FUSE mount (source `lsmfs`, type `fuse` or
/// `fuse.lsmfs`) is listed at `mountpoint` in mountinfo.
pub fn is_fuse_mounted(mountpoint: &Path, fstype_prefix: &str) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = mountpoint.to_string_lossy().to_string();
    info.lines().any(|l| {
        let fields: Vec<&str> = l.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            return false;
        };
        fields.get(4).map(|m| unescape(m)) == Some(want.clone())
            && fields
                .get(sep + 1)
                .is_some_and(|t| t.starts_with(fstype_prefix))
            && fields.get(sep + 2) == Some(&"lsmfs")
    })
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

fn daemonize(args: &MountArgs) -> Result<(), String> {
    std::fs::create_dir_all(&args.data_dir)
        .map_err(|e| format!("cannot create {}: {e}", args.data_dir.display()))?;
    let mountpoint = absolute(&args.mountpoint)?;
    let log_path = args.data_dir.join("LOG");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
    let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own binary: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.arg("mount")
        .arg(&args.data_dir)
        .arg(&mountpoint)
        .arg("--threads")
        .arg(args.threads.to_string())
        .arg("--sync")
        .arg(&args.sync)
        .arg("--memtable-size")
        .arg(args.memtable_size.to_string());
    for o in &args.options {
        cmd.arg("-o").arg(o);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
    // SAFETY: setsid is async-signal-safe and touches no Rust state.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start daemon: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if is_fuse_mounted(&mountpoint, "fuse") && std::fs::metadata(&mountpoint).is_ok() {
            println!(
                "lsmfs: mounted {} (pid {})",
                mountpoint.display(),
                child.id()
            );
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            let tail = std::fs::read(&log_path)
                .map(|d| {
                    String::from_utf8_lossy(&d[(log_start as usize).min(d.len())..]).into_owned()
                })
                .unwrap_or_default();
            return Err(format!(
                "daemon exited ({status}) before mounting:\n{}",
                tail.trim_end()
            ));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "mount did not appear within 60 s; see {}",
                log_path.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// statfs of a path: unlike stat, never answered from the kernel's
/// attribute cache, so it tells a live FUSE mount from a dead one.
pub fn statfs_errno(path: &Path) -> Option<i32> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs writes into a zeroed struct we own.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } == 0 {
        None
    } else {
        Some(
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
        )
    }
}

/// Detach a dead daemon's mount at `mountpoint`, if there is one.
fn detach_stale(mountpoint: &Path) -> Result<(), String> {
    let stale = statfs_errno(mountpoint) == Some(libc::ENOTCONN);
    if !stale {
        return Ok(());
    }
    log::info!(
        "detaching the stale FUSE mount at {} left by a dead daemon",
        mountpoint.display()
    );
    for (prog, args) in [("umount", vec!["-l"]), ("fusermount3", vec!["-uz"])] {
        let ok = Command::new(prog)
            .args(&args)
            .arg(mountpoint)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Ok(());
        }
    }
    Err(format!(
        "{} holds a stale FUSE mount that could not be detached (try: umount -l {})",
        mountpoint.display(),
        mountpoint.display()
    ))
}

struct Parsed {
    fuse: Vec<MountOption>,
    acl: fuser::SessionACL,
    read_only: bool,
    writeback_cache: bool,
}

fn parse_options(opts: &[String]) -> Parsed {
    let mut p = Parsed {
        fuse: vec![
            MountOption::FSName("lsmfs".into()),
            MountOption::Subtype("lsmfs".into()),
            MountOption::DefaultPermissions,
        ],
        acl: fuser::SessionACL::Owner,
        read_only: false,
        writeback_cache: false,
    };
    for o in opts.iter().flat_map(|s| s.split(',')).map(str::trim) {
        match o {
            "" | "default_permissions" | "rw" => {}
            "allow_other" => p.acl = fuser::SessionACL::All,
            "allow_root" => p.acl = fuser::SessionACL::RootAndOwner,
            "ro" => {
                p.read_only = true;
                p.fuse.push(MountOption::RO);
            }
            "writeback_cache" => p.writeback_cache = true,
            "noatime" => p.fuse.push(MountOption::NoAtime),
            "nodev" => p.fuse.push(MountOption::NoDev),
            "nosuid" => p.fuse.push(MountOption::NoSuid),
            "noexec" => p.fuse.push(MountOption::NoExec),
            other => p.fuse.push(MountOption::CUSTOM(other.to_string())),
        }
    }
    p
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

fn foreground(args: &MountArgs) -> Result<(), String> {
    if !Path::new("/dev/fuse").exists() {
        return Err("/dev/fuse is missing: FUSE is not available on this machine".into());
    }
    let mountpoint = absolute(&args.mountpoint)?;
    std::fs::create_dir_all(&args.data_dir)
        .map_err(|e| format!("cannot create {}: {e}", args.data_dir.display()))?;
    let signals = block_signals();
    let store = Arc::new(EngineStore::open_tuned(
        &args.data_dir,
        args.sync == "always",
        args.memtable_size.max(64 << 10),
    )?);
    detach_stale(&mountpoint)?;
    match std::fs::metadata(&mountpoint) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(format!(
                "mount point {} is not a directory",
                mountpoint.display()
            ))
        }
        Err(e) => return Err(format!("mount point {}: {e}", mountpoint.display())),
    }
    let parsed = parse_options(&args.options);
    let config = FsConfig {
        sync_always: args.sync == "always",
        writeback_cache: parsed.writeback_cache,
        read_only: parsed.read_only,
        statfs_path: Some(args.data_dir.clone()),
    };
    let dyn_store: Arc<dyn Store> = store.clone();
    let fs = FuseFs::new(dyn_store, config).map_err(|e| {
        format!(
            "cannot start the filesystem on {}: {e}",
            args.data_dir.display()
        )
    })?;
    let mut fuse_config = fuser::Config::default();
    fuse_config.mount_options = parsed.fuse;
    fuse_config.acl = parsed.acl;
    fuse_config.n_threads = Some(args.threads.max(1));
    fuse_config.clone_fd = true;
    let session = fuser::spawn_mount(fs, &mountpoint, &fuse_config)
        .map_err(|e| format!("cannot mount on {}: {e}", mountpoint.display()))?;
    log::info!(
        "mounted {} on {} ({} threads, sync {})",
        args.data_dir.display(),
        mountpoint.display(),
        args.threads,
        args.sync
    );
    loop {
        if let Some(sig) = wait_signal(&signals, 200) {
            log::info!("signal {sig}: unmounting {}", mountpoint.display());
            if let Err(e) = session.umount_and_join() {
                log::warn!("unmount: {e}");
            }
            break;
        }
        if session.guard.is_finished() {
            log::info!("{} was unmounted", mountpoint.display());
            if let Err(e) = session.join() {
                log::warn!("session ended with: {e}");
            }
            break;
        }
    }
    store
        .close()
        .map_err(|e| format!("closing the store: {e}"))?;
    log::info!("store closed cleanly");
    Ok(())
}
