//! A real FUSE mount for integration tests: spawns the built `lsmfs`
//! binary in the foreground on a temporary data directory and mount point,
//! and always unmounts in `Drop` (`umount`, then `umount -l`), killing only
//! the daemon it started.
#![allow(dead_code)]

pub mod etcd;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Mounted {
    /// Dropped before `tmp` (fields drop in order, after `Drop::drop` has
    /// unmounted lsmfs): the small disk under the data directory, if any.
    disk: Option<SmallDisk>,
    pub tmp: tempfile::TempDir,
    pub data: PathBuf,
    pub mnt: PathBuf,
    child: Option<Child>,
    log: PathBuf,
    extra: Vec<String>,
    /// Leave the transport to the daemon's default (no `-o [no_]io_uring`).
    default_transport: bool,
    /// The etcd cluster this mount's store lives on, when it started one
    /// (`LSMFS_TEST_STORE=etcd`); dropped after the unmount.
    pub etcd: Option<etcd::EtcdCluster>,
}

/// The environment variable that runs the mount suites on the io_uring
/// transport (`LSMFS_TEST_TRANSPORT=io_uring`, see scripts/test.sh).
pub const TRANSPORT_ENV: &str = "LSMFS_TEST_TRANSPORT";
pub const ENABLE_URING: &str = "/sys/module/fuse/parameters/enable_uring";

/// Whether this run's mounts are on the io_uring transport.
pub fn ring_run() -> bool {
    std::env::var(TRANSPORT_ENV).is_ok_and(|v| v == "io_uring")
}

/// Serialises the tests of one process that set `enable_uring`.
static ENABLE_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `enable_uring` set to `value` while this lives, then restored (also on
/// panic). The kernel reads it when a mount's INIT is answered, so it
/// needs to stay set only until the mount is up. None: the kernel has no
/// FUSE over io_uring, or we may not set it (not root).
pub struct EnableUring {
    old: String,
    _lock: std::sync::MutexGuard<'static, ()>,
}

impl EnableUring {
    pub fn set(value: bool) -> Option<EnableUring> {
        let lock = ENABLE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let old = std::fs::read_to_string(ENABLE_URING).ok()?;
        let want = if value { "Y" } else { "N" };
        std::fs::write(ENABLE_URING, want).ok()?;
        Some(EnableUring {
            old: old.trim().to_string(),
            _lock: lock,
        })
    }
}

impl Drop for EnableUring {
    fn drop(&mut self) {
        let _ = std::fs::write(ENABLE_URING, &self.old);
    }
}

fn mounted(mnt: &Path) -> bool {
    let want = mnt.to_string_lossy().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| {
            l.split(' ').nth(4) == Some(want.as_str())
                && l.contains(" - fuse")
                && l.contains(" lsmfs ")
        })
}

/// statfs at `p` was answered by a live FUSE daemon: it succeeded and
/// names a FUSE filesystem. (A plain success is not enough: between a
/// new daemon detaching a stale mount and mounting its own, `p` is the
/// empty directory underneath, whose statfs succeeds too.)
fn fuse_statfs_ok(p: &Path) -> bool {
    const FUSE_SUPER_MAGIC: i64 = 0x6573_5546;
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: statfs writes into a zeroed struct we own.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    unsafe { libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as i64 == FUSE_SUPER_MAGIC }
}

/// statfs's errno at `p` (None: it succeeded).
fn statfs_errno(p: &Path) -> Option<i32> {
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) else {
        return Some(libc::EINVAL);
    };
    // SAFETY: statvfs writes into a zeroed struct we own.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } == 0 {
        None
    } else {
        std::io::Error::last_os_error().raw_os_error()
    }
}

impl Mounted {
    pub fn new() -> Mounted {
        Self::with_args(&[])
    }

    pub fn with_args(extra: &[&str]) -> Mounted {
        Self::build(extra, None, false)
    }

    /// A mount that picks its own transport (as `lsmfs mount` does without
    /// `-o io_uring`/`-o no_io_uring`); the caller sets `enable_uring`.
    pub fn with_default_transport(extra: &[&str]) -> Mounted {
        Self::build(extra, None, true)
    }

    /// A mount whose data directory is on a tmpfs of `mib` MiB (root only).
    pub fn on_small_disk(mib: u64, extra: &[&str]) -> Mounted {
        Self::build(extra, Some(mib), false)
    }

    /// A mount of the store at `url` (an etcd:// URL another owner's
    /// cluster serves: several mounts may share it).
    pub fn on_url(url: &str, extra: &[&str]) -> Mounted {
        Self::build_on(extra, None, false, Some(PathBuf::from(url)), None)
    }

    fn build(extra: &[&str], disk_mib: Option<u64>, default_transport: bool) -> Mounted {
        // The suites run on etcd with LSMFS_TEST_STORE=etcd (a small disk
        // is about the local engine: those tests stay local).
        if etcd::etcd_run() && disk_mib.is_none() {
            let cluster = etcd::EtcdCluster::start();
            let url = PathBuf::from(cluster.url("lsmfs-test"));
            return Self::build_on(extra, None, default_transport, Some(url), Some(cluster));
        }
        Self::build_on(extra, disk_mib, default_transport, None, None)
    }

    fn build_on(
        extra: &[&str],
        disk_mib: Option<u64>,
        default_transport: bool,
        url: Option<PathBuf>,
        etcd: Option<etcd::EtcdCluster>,
    ) -> Mounted {
        let tmp = tempfile::Builder::new()
            .prefix("lsmfs-test")
            .tempdir()
            .expect("tempdir");
        let disk = disk_mib.map(|mib| SmallDisk::mount(&tmp.path().join("disk"), mib));
        let data = match (&disk, url) {
            (_, Some(url)) => url,
            (Some(d), None) => d.0.join("data"),
            (None, None) => tmp.path().join("data"),
        };
        let mnt = tmp.path().join("mnt");
        std::fs::create_dir_all(&mnt).expect("mkdir mnt");
        let log = tmp.path().join("daemon.log");
        let mut m = Mounted {
            disk,
            tmp,
            data,
            mnt,
            child: None,
            log,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            default_transport,
            etcd,
        };
        m.start();
        m
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log");
        // A test needs far less than the default reserve (eight 32 MiB
        // memtables); a smaller one keeps the suite running on a machine
        // whose disk is nearly full.
        let reserve: &[&str] = if self.extra.iter().any(|a| a == "--space-reserve-mb")
            || self.extra.iter().any(|a| a == "--memtable-size")
        {
            &[]
        } else {
            &["--space-reserve-mb", "64"]
        };
        // Every mount names its transport unless the test chose one or
        // asked for the default; a ring mount sets enable_uring (as root)
        // until it is up.
        let chosen = self.default_transport || self.extra.iter().any(|a| a.contains("io_uring"));
        let transport: &[&str] = match (chosen, ring_run()) {
            (true, _) => &[],
            (false, true) => &["-o", "io_uring"],
            (false, false) => &["-o", "no_io_uring"],
        };
        let ring = self
            .extra
            .iter()
            .map(String::as_str)
            .chain(transport.iter().copied())
            .any(|a| a.split(',').any(|o| o == "io_uring"));
        let _enable = ring.then(|| EnableUring::set(true)).flatten();
        let child = Command::new(env!("CARGO_BIN_EXE_lsmfs"))
            .arg("mount")
            .arg(&self.data)
            .arg(&self.mnt)
            .args(&self.extra)
            .args(transport)
            .args(reserve)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn lsmfs");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        // statfs, not stat: a dead daemon's stale mount answers stat from the
        // kernel's attribute cache, but statfs always reaches the daemon. It
        // must name FUSE, and come first: the stale mount the mountinfo read
        // saw may be detached a moment later, leaving the plain directory
        // under it (reads there got ENOENT, once in ~80 kill -9 remounts).
        while !(fuse_statfs_ok(&self.mnt) && mounted(&self.mnt)) {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    self.child = None;
                    panic!("lsmfs exited ({st}) before mounting:\n{}", self.log_text());
                }
            }
            if Instant::now() > deadline {
                self.stop();
                panic!("mount did not appear in 20 s:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Clean unmount; waits for the daemon to exit and asserts it exited 0.
    pub fn unmount(&mut self) {
        assert!(
            umount_retrying(&self.mnt),
            "umount failed:\n{}",
            self.log_text()
        );
        if let Some(mut c) = self.child.take() {
            let st = wait_timeout(&mut c, Duration::from_secs(30));
            assert!(
                st == Some(true),
                "daemon did not exit cleanly after umount:\n{}",
                self.log_text()
            );
        }
    }

    pub fn remount(&mut self) {
        self.unmount();
        self.start();
    }

    /// kill -9 the daemon (ours only), leaving its stale mount behind.
    /// Returns once the kernel has torn the connection down: for a moment
    /// after an io_uring daemon dies, requests get ECANCELED (its queues
    /// are cancelled before the connection) rather than ENOTCONN.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while statfs_errno(&self.mnt) == Some(libc::ECANCELED) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// kill -9 the daemon (ours only) and mount again over the stale mount point.
    pub fn kill9_and_remount(&mut self) {
        self.kill9();
        self.start();
    }

    /// Daemon arguments for the next `start`.
    pub fn set_args(&mut self, extra: &[&str]) {
        self.extra = extra.iter().map(|s| s.to_string()).collect();
    }

    /// Wait up to `wait` for our daemon to exit on its own; its exit code.
    pub fn wait_exit(&mut self, wait: Duration) -> Option<i32> {
        self.signal(0, wait)
    }

    /// Send `sig` (0: none) to our daemon and wait (up to `wait`) for it to exit;
    /// returns its exit code, None if it did not exit in time (it is then
    /// still ours to clean up).
    pub fn signal(&mut self, sig: i32, wait: Duration) -> Option<i32> {
        let c = self.child.as_mut()?;
        if sig != 0 {
            // SAFETY: kill(2) of our own child's pid.
            unsafe { libc::kill(c.id() as i32, sig) };
        }
        let deadline = Instant::now() + wait;
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                self.child = None;
                return Some(st.code().unwrap_or(-1));
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether our mount is listed in mountinfo.
    pub fn is_mounted(&self) -> bool {
        mounted(&self.mnt)
    }

    /// The mountinfo line of our mount.
    pub fn mountinfo_line(&self) -> Option<String> {
        let want = self.mnt.to_string_lossy().to_string();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .find(|l| l.split(' ').nth(4) == Some(want.as_str()))
            .map(str::to_string)
    }

    fn stop(&mut self) {
        if mounted(&self.mnt) {
            umount_or_detach(&self.mnt);
        }
        if let Some(mut c) = self.child.take() {
            if wait_timeout(&mut c, Duration::from_secs(10)).is_none() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if mounted(&self.mnt) {
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        }
    }
}

/// A tmpfs of a few MiB, to fill up; unmounted (lazily if busy) on drop.
pub struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path, mib: u64) -> SmallDisk {
        std::fs::create_dir_all(at).expect("mkdir disk");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "mounting a {mib} MiB tmpfs at {} failed", at.display());
        SmallDisk(at.to_path_buf())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        umount_or_detach(&self.0);
    }
}

/// `umount`, tried again for up to 2 s while it fails: another test
/// thread's child holds a copy of every descriptor and mapping of this
/// process between its fork and its exec, so a file this thread has just
/// closed (or unmapped) can keep the mount busy for that moment.
pub fn umount_retrying(p: &Path) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let out = Command::new("umount").arg(p).output();
        match out {
            Ok(o) if o.status.success() => return true,
            Ok(o)
                if Instant::now() < deadline
                    && String::from_utf8_lossy(&o.stderr).contains("busy") =>
            {
                std::thread::sleep(Duration::from_millis(50))
            }
            Ok(o) => {
                eprint!("{}", String::from_utf8_lossy(&o.stderr));
                return false;
            }
            Err(_) => return false,
        }
    }
}

/// `umount`, then `umount -l` if the mount is busy.
fn umount_or_detach(p: &Path) {
    let ok = Command::new("umount")
        .arg(p)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let _ = Command::new("umount").arg("-l").arg(p).status();
    }
}

/// Some(success) if the child exited within `d`.
fn wait_timeout(c: &mut Child, d: Duration) -> Option<bool> {
    let deadline = Instant::now() + d;
    loop {
        if let Ok(Some(st)) = c.try_wait() {
            return Some(st.success());
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn errno_of(r: std::io::Result<impl Sized>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(e) => e.raw_os_error().unwrap_or(-1),
    }
}

/// Unmounts a mount point made by a `--daemon` run (which is not our
/// child) when dropped, even on panic: `umount`, then `umount -l`.
pub struct UnmountGuard(pub PathBuf);

impl Drop for UnmountGuard {
    fn drop(&mut self) {
        if mounted(&self.0) {
            umount_or_detach(&self.0);
        }
    }
}

pub fn lsmfs_mounted(mnt: &Path) -> bool {
    mounted(mnt)
}

/// Run the lsmfs binary with `args`; (exit code, stdout, stderr).
pub fn lsmfs(args: &[&std::ffi::OsStr]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lsmfs"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run lsmfs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn sh(cmd: &str, dir: &Path) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .current_dir(dir)
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run the built `lsmfs` with `args`, capturing its output.
pub fn lsmfs_output(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lsmfs"))
        .args(args)
        .output()
        .expect("run lsmfs")
}

/// A command's stdout then stderr, as text.
pub fn output_text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Engine options for in-process tests on the fault env: tiny memtables,
/// tables and MANIFESTs, so flushes, compactions and MANIFEST switches
/// happen every few operations.
pub fn small_engine(env: &Arc<lsmfs::engine::env::fault::FaultEnv>) -> lsmfs::engine::Options {
    lsmfs::engine::Options {
        env: env.clone(),
        write_buffer_size: 32 << 10,
        block_size: 1024,
        target_file_size: 16 << 10,
        max_bytes_for_level_base: 64 << 10,
        l0_compaction_trigger: 2,
        max_manifest_size: 4 << 10,
        ..Default::default()
    }
}

/// Smaller still (8 KiB memtables, 4 KiB tables, 2 KiB MANIFESTs): the
/// engine tests' options, a flush every few batches.
pub fn tiny_engine(env: &Arc<lsmfs::engine::env::fault::FaultEnv>) -> lsmfs::engine::Options {
    lsmfs::engine::Options {
        write_buffer_size: 8 << 10,
        block_size: 512,
        target_file_size: 4 << 10,
        max_bytes_for_level_base: 16 << 10,
        max_manifest_size: 2 << 10,
        ..small_engine(env)
    }
}

/// A copy of the built `lsmfs` at `to` (mode 0755), for other users to run.
/// Another test thread's child holds a copy of the copy's write descriptor
/// between its fork and its exec, and exec fails with ETXTBSY until it lets
/// go: this returns once one exec of the copy went through.
pub fn copy_lsmfs(to: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::copy(env!("CARGO_BIN_EXE_lsmfs"), to).expect("copy lsmfs");
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755)).expect("chmod lsmfs");
    let deadline = Instant::now() + Duration::from_secs(2);
    while Command::new(to)
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_err_and(|e| e.raw_os_error() == Some(libc::ETXTBSY))
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
}
