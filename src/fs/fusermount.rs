//! Mounting without privilege, through the setuid `fusermount3` helper.
//!
//! A user who may not call mount(2) — and who often may not even open
//! `/dev/fuse`, which some systems keep 0600 — asks `fusermount3` to mount:
//! it opens `/dev/fuse` and mounts as root, then hands the descriptor back
//! over the socket named by `_FUSE_COMMFD` (SCM_RIGHTS). fuser's own
//! fallback opens `/dev/fuse` before trying it, so lsmfs speaks to the
//! helper itself.
//!
//! fusermount3 is the trust boundary for users, and enforces: write access
//! to the mount point, and ownership of it when it is sticky (`/tmp`
//! itself); `nosuid,nodev` always; `allow_other` only when
//! `/etc/fuse.conf` says `user_allow_other`; unmounting only one's own
//! mounts. It opens `/dev/fuse` with the user's rights, so that must be
//! 0666, as udev's rule makes it. [`preflight`] checks all but the second
//! before the store is opened, so that a mount that cannot happen formats
//! nothing; the helper still decides.

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The helper: `fusermount3` (or the older `fusermount`) on PATH or in
/// the usual places.
pub fn binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path)
        .chain(["/usr/bin", "/bin", "/usr/sbin", "/sbin"].map(PathBuf::from));
    let dirs: Vec<PathBuf> = dirs.collect();
    ["fusermount3", "fusermount"]
        .iter()
        .flat_map(|name| dirs.iter().map(move |d| d.join(name)))
        .find(|p| p.is_file())
}

/// Whether `/etc/fuse.conf` lets users mount with `allow_other`.
fn user_allow_other() -> bool {
    std::fs::read_to_string("/etc/fuse.conf").is_ok_and(|t| {
        t.lines()
            .any(|l| l.split('#').next().unwrap_or("").trim() == "user_allow_other")
    })
}

/// The checks fusermount3 will make, made first so that a refused mount
/// has touched nothing.
pub fn preflight(mountpoint: &Path, allow_other: bool) -> Result<(), String> {
    if binary().is_none() {
        return Err("not privileged to mount, and fusermount3 is not installed \
                    (Debian: apt-get install fuse3)"
            .into());
    }
    // SAFETY: access on a constant path.
    if unsafe { libc::access(c"/dev/fuse".as_ptr(), libc::R_OK | libc::W_OK) } != 0 {
        return Err(
            "/dev/fuse is closed to users, so fusermount3 cannot mount for you \
                    (udev's rule makes it 0666; as root: chmod 666 /dev/fuse)"
                .into(),
        );
    }
    if allow_other && !user_allow_other() {
        return Err("-o allow_other (or allow_root) without privilege needs \
                    `user_allow_other` in /etc/fuse.conf"
            .into());
    }
    let md = match std::fs::metadata(mountpoint) {
        // A dead (or dying: ECONNABORTED) daemon's stale mount: detached
        // later, checked by the helper.
        Err(e) if super::mount_checks::is_dead(e.raw_os_error()) => return Ok(()),
        Err(e) => return Err(format!("mount point {}: {e}", mountpoint.display())),
        Ok(md) => md,
    };
    if !md.is_dir() {
        return Err(format!(
            "mount point {} is not a directory",
            mountpoint.display()
        ));
    }
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    if md.mode() & libc::S_ISVTX != 0 && md.uid() != uid {
        return Err(format!(
            "mount point {} is a sticky directory you do not own: fusermount3 \
             will not mount there (mount on a directory of your own)",
            mountpoint.display()
        ));
    }
    let c = std::ffi::CString::new(mountpoint.as_os_str().as_bytes())
        .map_err(|_| format!("{}: NUL in path", mountpoint.display()))?;
    // SAFETY: c is a valid path string.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK) } != 0 {
        return Err(format!(
            "you have no write access to mount point {}: fusermount3 will not \
             mount there (mount on a directory of your own)",
            mountpoint.display()
        ));
    }
    Ok(())
}

/// Mount with `options` (comma-separated, as `-o` takes them) at
/// `mountpoint` through the helper; the `/dev/fuse` descriptor it sends.
pub fn mount(mountpoint: &Path, options: &str) -> Result<OwnedFd, String> {
    let bin = binary().ok_or("fusermount3 is not installed (Debian: apt-get install fuse3)")?;
    let (ours, theirs) =
        UnixStream::pair().map_err(|e| format!("cannot create a socket pair: {e}"))?;
    let their_fd = theirs.as_raw_fd();
    let mut cmd = Command::new(&bin);
    cmd.arg("-o")
        .arg(options)
        .arg("--")
        .arg(mountpoint)
        .env("_FUSE_COMMFD", their_fd.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: fcntl is async-signal-safe and touches no Rust state.
    unsafe {
        cmd.pre_exec(move || {
            libc::fcntl(their_fd, libc::F_SETFD, 0); // the helper inherits its end
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    drop(theirs);
    let received = receive_fd(&ours);
    let mut stderr = String::new();
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut stderr);
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for fusermount3: {e}"))?;
    match received {
        Ok(Some(fd)) => Ok(fd),
        Ok(None) if !stderr.trim().is_empty() => Err(stderr.trim().to_string()),
        Ok(None) => Err(format!("fusermount3 mounted nothing ({status})")),
        Err(e) => Err(format!(
            "receiving the FUSE descriptor from fusermount3: {e}"
        )),
    }
}

/// One descriptor sent with SCM_RIGHTS; `None` at EOF (the helper failed).
fn receive_fd(sock: &UnixStream) -> std::io::Result<Option<OwnedFd>> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: CMSG_SPACE is arithmetic.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) } as usize;
    let mut control = vec![0u64; space.div_ceil(8)]; // aligned for cmsghdr
                                                     // SAFETY: a zeroed msghdr is valid; the pointers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    let n = loop {
        // SAFETY: msg describes buffers we own.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            break n;
        }
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the CMSG_* walk stays inside `control`, which recvmsg filled.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let fd = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::c_int);
                return Ok(Some(OwnedFd::from_raw_fd(fd)));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok(None)
}

/// `fusermount3 -u -z MOUNTPOINT` (lazy: a busy mount goes when its last
/// file closes); whether it worked.
pub fn detach(mountpoint: &Path) -> bool {
    let Some(bin) = binary() else {
        return false;
    };
    Command::new(bin)
        .args(["-u", "-z"])
        .arg(mountpoint)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
