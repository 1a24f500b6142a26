//! `lsmfs umount MOUNTPOINT`: end a mount, and wait for its daemon to
//! close the store.
//!
//! - Only an lsmfs mount is touched (the top mount at MOUNTPOINT must be
//!   source `lsmfs`, type `fuse.lsmfs`): anything else is refused.
//! - A **stale** mount (its daemon killed: `statfs` answers ENOTCONN, or
//!   ECONNABORTED / ECANCELED while it is still being torn down) is
//!   detached lazily: nothing can be flushed through it, and a plain
//!   unmount of it can hang or fail.
//! - A **live** one is unmounted with umount(2); a busy one (files open on
//!   it) is refused unless `--lazy`, which detaches it now and lets the
//!   daemon finish when the last file closes. Without the privilege
//!   (EPERM) it goes through `fusermount3 -u` (`-z` for lazy), which lets
//!   a user unmount their own mounts only.
//! - Then it waits (60 s at most) for the daemon serving the mount to exit:
//!   `umount(8)` returns before the daemon has flushed its memtable and
//!   released DATA_DIR's lock, so `lsmfs umount M && lsmfs check D` could
//!   find the store still locked. The daemon is found before unmounting, as
//!   the `lsmfs` process whose command line names MOUNTPOINT (resolved
//!   against its working directory); it is only watched, never signalled.
//!
//! Exit status: 0 unmounted (and the daemon gone, or `--lazy`); 1 not an
//! lsmfs mount, busy, or the unmount failed (one line says why); 2 usage.

use super::mount::{cpath, errno, lazy_detach, mounts_at, statfs_errno};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct UmountArgs {
    /// The mount point of an lsmfs mount.
    pub mountpoint: PathBuf,
    /// Detach a busy mount now; it ends when its last open file closes.
    #[arg(short = 'l', long)]
    pub lazy: bool,
}

/// How long to wait for the daemon to close the store after unmounting.
const DAEMON_WAIT: Duration = Duration::from_secs(60);

pub fn run(args: UmountArgs) -> i32 {
    match umount(&args) {
        Ok(msg) => {
            if let Some(m) = msg {
                eprintln!("lsmfs umount: {m}");
            }
            0
        }
        Err(msg) => {
            eprintln!("lsmfs umount: {msg}");
            1
        }
    }
}

/// Unmount; `Ok(Some(note))` when it worked with something to say.
fn umount(args: &UmountArgs) -> Result<Option<String>, String> {
    let mnt = super::mount_checks::resolve(&args.mountpoint)?;
    let shown = mnt.display();
    let Some(top) = mounts_at(&mnt).pop() else {
        return Err(format!("{shown} is not mounted"));
    };
    if !top.is_lsmfs() {
        return Err(format!(
            "{shown} is not an lsmfs mount (it is {} from {}): use umount(8)",
            top.fstype, top.source
        ));
    }
    if super::mount_checks::is_dead(statfs_errno(&mnt)) {
        detach(&mnt)?;
        return Ok(Some(format!(
            "{shown} was a stale mount (its daemon is gone): detached; \
             the next mount recovers every acknowledged write"
        )));
    }
    let daemons = daemons_serving(&mnt);
    if args.lazy {
        detach(&mnt)?;
        return Ok(Some(format!(
            "{shown} detached; its daemon closes the store when the last open file is closed"
        )));
    }
    let c = cpath(&mnt)?;
    // SAFETY: c is a valid path string.
    if unsafe { libc::umount2(c.as_ptr(), 0) } != 0 {
        match errno() {
            libc::EBUSY => {
                return Err(format!(
                    "{shown} is busy: files are open on it or a process works in it \
                     (see fuser -vm {shown}); --lazy detaches it now"
                ))
            }
            libc::EPERM => fusermount_u(&mnt, false)?,
            e => return Err(format!("{shown}: {}", std::io::Error::from_raw_os_error(e))),
        }
    }
    wait_exit(&daemons)
}

/// Detach lazily: umount2(MNT_DETACH), or `fusermount3 -u -z` without the
/// privilege.
fn detach(mnt: &Path) -> Result<(), String> {
    match lazy_detach(mnt) {
        Ok(()) => Ok(()),
        Err(_) if errno() == libc::EPERM => fusermount_u(mnt, true),
        Err(e) => Err(format!("detaching {}: {e}", mnt.display())),
    }
}

fn fusermount_u(mnt: &Path, lazy: bool) -> Result<(), String> {
    let bin = super::fusermount::binary()
        .ok_or("not privileged to unmount, and fusermount3 is not installed")?;
    let mut cmd = std::process::Command::new(&bin);
    cmd.arg("-u");
    if lazy {
        cmd.arg("-z");
    }
    let out = cmd
        .arg("--")
        .arg(mnt)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    Err(format!(
        "{}: {}",
        bin.display(),
        err.trim().lines().last().unwrap_or("failed")
    ))
}

/// The lsmfs processes whose command line names `mnt` (the daemon: the
/// foreground `lsmfs mount`, or the one `--daemon` started).
fn daemons_serving(mnt: &Path) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    // SAFETY: getpid cannot fail.
    let me = unsafe { libc::getpid() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me && names_mount(pid, mnt))
        .collect()
}

fn names_mount(pid: i32, mnt: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    let is_lsmfs = args.first().is_some_and(|a0| {
        Path::new(std::ffi::OsStr::from_bytes(a0))
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("lsmfs"))
    });
    if !is_lsmfs || !args.iter().any(|a| *a == b"mount") {
        return false;
    }
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap_or_else(|_| "/".into());
    args.iter().skip(1).any(|a| {
        let p = Path::new(std::ffi::OsStr::from_bytes(a));
        let p = if p.is_absolute() {
            p.to_path_buf()
        } else {
            cwd.join(p)
        };
        super::mount_checks::resolve(&p).is_ok_and(|r| r == mnt)
    })
}

/// Wait for `pids` to exit (a zombie counts as gone).
fn wait_exit(pids: &[i32]) -> Result<Option<String>, String> {
    let deadline = Instant::now() + DAEMON_WAIT;
    for &pid in pids {
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat.rsplit(") ").next().and_then(|r| r.chars().next());
            if stat.is_empty() || state == Some('Z') || state == Some('X') {
                break;
            }
            if Instant::now() > deadline {
                return Ok(Some(format!(
                    "unmounted, but the daemon (pid {pid}) is still closing the store after {}s",
                    DAEMON_WAIT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(None)
}
