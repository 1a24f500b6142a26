//! The `lsmfs mount` command itself: what /proc/mounts shows, signals,
//! `--daemon`, `-o ro`, `--sync always`, stale and live mounts at the
//! mount point, and its one-line errors.

mod common;
use common::{errno_of, lsmfs, lsmfs_mounted, Mounted, UnmountGuard};
use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::time::{Duration, Instant};

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

#[test]
fn proc_mounts_names_lsmfs_as_source_and_subtype() {
    let m = Mounted::new();
    let line = m.mountinfo_line().expect("listed in mountinfo");
    assert!(line.contains(" - fuse.lsmfs lsmfs "), "{line}");
    assert!(line.contains("default_permissions"), "{line}");
    assert!(line.contains("nosuid") && line.contains("nodev"), "{line}");
    let mounts = fs::read_to_string("/proc/mounts").unwrap();
    let want = format!("lsmfs {} fuse.lsmfs ", m.mnt.display());
    assert!(mounts.contains(&want), "{want} not in /proc/mounts");
}

/// isatty() on a file (every Python open does it) gets ENOTTY, quietly.
#[test]
fn ioctl_is_enotty_without_log_noise() {
    use std::os::unix::io::AsRawFd;
    let m = Mounted::new();
    fs::write(m.path("f"), b"x").unwrap();
    for _ in 0..3 {
        let f = fs::File::open(m.path("f")).unwrap();
        let mut t = std::mem::MaybeUninit::<libc::termios>::uninit();
        // SAFETY: TCGETS writes at most one termios into `t`.
        let r = unsafe { libc::ioctl(f.as_raw_fd(), libc::TCGETS, t.as_mut_ptr()) };
        assert_eq!(r, -1);
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::ENOTTY)
        );
    }
    assert!(
        !m.log_text().contains("Not Implemented"),
        "{}",
        m.log_text()
    );
}

/// The mount's kernel read-ahead window is raised past FUSE's 128 KiB (as
/// root; the log says when it could not be), and `--readahead-kb` sets it.
#[test]
fn readahead_window_is_set_on_the_mounts_bdi() {
    use std::os::unix::fs::MetadataExt;
    for (args, want) in [(&[][..], "4096"), (&["--readahead-kb", "512"][..], "512")] {
        let m = Mounted::with_args(args);
        let dev = fs::metadata(&m.mnt).unwrap().dev();
        let bdi = format!(
            "/sys/class/bdi/{}:{}/read_ahead_kb",
            libc::major(dev),
            libc::minor(dev)
        );
        // The daemon sets it right after the mount goes live: poll briefly.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if m.log_text()
                .contains("read-ahead left at the kernel's default")
            {
                eprintln!("skipped: not allowed to set {bdi}");
                return;
            }
            let got = fs::read_to_string(&bdi).unwrap();
            if got.trim() == want || Instant::now() > deadline {
                assert_eq!(got.trim(), want, "{bdi}");
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn sigterm_and_sigint_unmount_cleanly_and_keep_the_data() {
    let mut m = Mounted::new();
    for (round, sig) in [libc::SIGTERM, libc::SIGINT].into_iter().enumerate() {
        let big: Vec<u8> = (0..700_000u32)
            .map(|i| (i * 7 + round as u32) as u8)
            .collect();
        fs::write(m.path(&format!("f{round}")), &big).unwrap();
        let code = m.signal(sig, Duration::from_secs(30));
        assert_eq!(
            code,
            Some(0),
            "daemon exit after signal {sig}:\n{}",
            m.log_text()
        );
        assert!(!m.is_mounted(), "signal {sig} must unmount");
        assert!(m.log_text().contains("store closed cleanly"));
        m.start();
        assert_eq!(fs::read(m.path(&format!("f{round}"))).unwrap(), big);
    }
    // a clean shutdown leaves nothing to replay or detach
    assert!(!m.log_text().contains("stale"), "{}", m.log_text());
}

#[test]
fn sigterm_on_a_busy_mount_detaches_it_and_exits_once_released() {
    let mut m = Mounted::new();
    let mut f = fs::File::create(m.path("held")).unwrap();
    f.write_all(b"written before the signal").unwrap();
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(m.pid().unwrap() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while m.is_mounted() {
        assert!(Instant::now() < deadline, "busy mount was not detached");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The open file still reaches the daemon through the detached mount.
    f.write_all(b", and after").unwrap();
    drop(f);
    let code = m.wait_exit(Duration::from_secs(20));
    assert_eq!(code, Some(0), "{}", m.log_text());
    assert!(m.log_text().contains("busy"), "{}", m.log_text());
    m.start();
    assert_eq!(
        fs::read(m.path("held")).unwrap(),
        b"written before the signal, and after"
    );
}

#[test]
fn daemon_mode_returns_once_live_and_umount_ends_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let _guard = UnmountGuard(mnt.clone());
    let (code, out, err) = lsmfs(&[
        os("mount"),
        data.as_os_str(),
        mnt.as_os_str(),
        os("--daemon"),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(lsmfs_mounted(&mnt), "mounted when --daemon returns");
    let pid: i32 = out
        .split("(pid ")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {out:?}"));
    fs::write(mnt.join("a"), b"from a daemon").unwrap();
    assert_eq!(fs::read(mnt.join("a")).unwrap(), b"from a daemon");
    // a second daemon on the same data directory fails with one line
    let other = tmp.path().join("mnt2");
    fs::create_dir(&other).unwrap();
    let (code, _, err) = lsmfs(&[
        os("mount"),
        data.as_os_str(),
        other.as_os_str(),
        os("--daemon"),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("locked"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // umount ends the daemon, which closes the store cleanly
    assert!(common::umount_retrying(&mnt));
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
    {
        assert!(Instant::now() < deadline, "daemon {pid} did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = fs::read_to_string(data.join("LOG")).unwrap();
    assert!(log.contains("store closed cleanly"), "{log}");
    // and the data is there for the next daemon
    let (code, _, err) = lsmfs(&[
        os("mount"),
        data.as_os_str(),
        mnt.as_os_str(),
        os("--daemon"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(fs::read(mnt.join("a")).unwrap(), b"from a daemon");
}

#[test]
fn read_only_mount_serves_reads_and_refuses_writes() {
    let mut m = Mounted::new();
    fs::create_dir(m.path("d")).unwrap();
    fs::write(m.path("d/f"), b"frozen").unwrap();
    m.unmount();
    m.set_args(&["-o", "ro"]);
    m.start();
    let ro = &mut m;
    let line = ro.mountinfo_line().unwrap();
    assert!(line.split(' ').nth(5).unwrap().starts_with("ro"), "{line}");
    assert_eq!(fs::read(ro.path("d/f")).unwrap(), b"frozen");
    assert_eq!(errno_of(fs::write(ro.path("g"), b"")), libc::EROFS);
    assert_eq!(errno_of(fs::remove_file(ro.path("d/f"))), libc::EROFS);
    assert_eq!(errno_of(fs::create_dir(ro.path("e"))), libc::EROFS);
    ro.unmount();
}

#[test]
fn sync_always_mount_keeps_writes_through_kill9() {
    let mut m = Mounted::with_args(&["--sync", "always", "--threads", "2"]);
    for i in 0..20 {
        fs::write(m.path(&format!("s{i}")), format!("sync {i}")).unwrap();
    }
    m.kill9_and_remount();
    for i in 0..20 {
        assert_eq!(
            fs::read_to_string(m.path(&format!("s{i}"))).unwrap(),
            format!("sync {i}")
        );
    }
}

#[test]
fn stale_mount_is_detached_and_a_live_one_is_not_stacked_on() {
    let mut m = Mounted::new();
    fs::write(m.path("x"), b"x").unwrap();
    m.kill9();
    assert!(m.is_mounted(), "a killed daemon leaves its mount behind");
    assert_eq!(
        errno_of(fs::read_dir(&m.mnt)),
        libc::ENOTCONN,
        "the stale mount answers ENOTCONN"
    );
    m.start();
    assert!(m.log_text().contains("detaching the stale FUSE mount"));
    assert_eq!(fs::read(m.path("x")).unwrap(), b"x");
    let stacked = m
        .mountinfo_line()
        .map(|_| {
            fs::read_to_string("/proc/self/mountinfo")
                .unwrap()
                .lines()
                .filter(|l| l.split(' ').nth(4) == Some(&*m.mnt.to_string_lossy()))
                .count()
        })
        .unwrap();
    assert_eq!(stacked, 1, "the stale mount is gone, not buried");
    // another data directory onto the live mount is refused
    let other = m.tmp.path().join("other-data");
    let (code, _, err) = lsmfs(&[os("mount"), other.as_os_str(), m.mnt.as_os_str()]);
    assert_eq!(code, 1);
    assert!(err.contains("already a live lsmfs mount"), "{err}");
}

#[test]
fn bad_options_get_one_line_errors_and_no_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let _guard = UnmountGuard(mnt.clone());
    for (opts, want) in [
        ("no_such_fuse_option", "does not know"),
        ("auto_unmount", "not supported"),
        ("fsname=other", "always lsmfs"),
    ] {
        let (code, _, err) = lsmfs(&[
            os("mount"),
            tmp.path().join("data").as_os_str(),
            mnt.as_os_str(),
            os("-o"),
            os(opts),
        ]);
        assert_eq!(code, 1, "-o {opts}: {err}");
        assert!(err.contains(want), "-o {opts}: {err}");
        // (info lines from the log may precede it: RUST_LOG defaults to info)
        assert_eq!(
            err.lines()
                .filter(|l| l.starts_with("lsmfs mount: "))
                .count(),
            1,
            "-o {opts}: {err}"
        );
        assert!(!err.contains("panicked"), "-o {opts}: {err}");
        assert!(!lsmfs_mounted(&mnt));
    }
    let (code, _, err) = lsmfs(&[
        os("mount"),
        tmp.path().join("data").as_os_str(),
        mnt.as_os_str(),
        os("--sync"),
        os("sometimes"),
    ]);
    assert_eq!(code, 2, "usage errors exit 2: {err}");
}

/// A store of another format (16 KiB chunks were format 1) is refused with
/// one line naming the formats, in the foreground and with `--daemon`.
#[test]
fn a_store_of_another_format_is_refused_by_name() {
    use lsmfs::fs::schema::meta_key;
    use lsmfs::store::{Batch, EngineStore, Store};
    let mut m = Mounted::new();
    fs::write(m.path("f"), b"x").unwrap();
    m.unmount();
    let store = EngineStore::open(&m.data, false).unwrap();
    let mut b = Batch::new();
    b.put(meta_key("format"), 1u32.to_be_bytes().to_vec());
    store.write(b, true).unwrap();
    store.close().unwrap();
    drop(store);
    for daemon in [false, true] {
        let mut args = vec![os("mount"), m.data.as_os_str(), m.mnt.as_os_str()];
        if daemon {
            args.push(os("--daemon"));
        }
        let (code, _, err) = lsmfs(&args);
        assert_eq!(code, 1, "{err}");
        let line = err
            .lines()
            .find(|l| l.starts_with("lsmfs mount: "))
            .unwrap_or_else(|| panic!("no error line in {err}"));
        assert!(
            line.contains("format 1") && line.contains("formats 2, 3 and 4"),
            "{line}"
        );
        assert!(!err.contains("panicked"), "{err}");
        assert!(!lsmfs_mounted(&m.mnt));
    }
}
