//! lsmfs as the system sees it: installed by `scripts/install.sh`, mounted
//! by mount(8) (`-t fuse.lsmfs`, an fstab line, `lsmfs#DATA`), ended by
//! umount(8) and `lsmfs umount`, started by its systemd unit, and its
//! rotated log.
//!
//! mount(8) clears PATH and mount.fuse3 runs `lsmfs` through /bin/sh, so
//! only /usr/local/bin or /usr/bin can hold it. The mount(8) tests install
//! into a temporary prefix and run in a private mount namespace
//! (`unshare -m`) where that prefix's bin is bind-mounted over
//! /usr/local/bin: the real /usr/local/bin and /etc/fstab are never
//! touched, and no mount made there is visible outside (the script detaches
//! its mount on any exit).

mod common;
use common::{lsmfs, lsmfs_mounted, UnmountGuard};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

fn root_with(tools: &[&str]) -> bool {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: mount(8) and other users need root");
        return false;
    }
    for t in tools {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {t}"))
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            eprintln!("skipped: {t} is not installed");
            return false;
        }
    }
    true
}

/// The transport of every mount here: the classic one (the io_uring runs
/// of scripts/test.sh cover the transports; these tests cover the system's
/// ways in, which are the same for both).
fn transport() -> &'static str {
    "no_io_uring"
}

/// `bash scripts/install.sh --prefix PREFIX --binary <the built lsmfs>`.
fn install(prefix: &Path) -> String {
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/install.sh"))
        .arg("--prefix")
        .arg(prefix)
        .arg("--binary")
        .arg(env!("CARGO_BIN_EXE_lsmfs"))
        .output()
        .expect("run install.sh");
    let text = common::output_text(&out);
    assert!(out.status.success(), "install.sh failed: {text}");
    text
}

/// Run `script` with `sh -e` in a private mount namespace in which
/// `bin` is /usr/local/bin; its output, which must end in success.
fn in_namespace(bin: &Path, mnt: &Path, script: &str) -> String {
    // The new namespace starts with a copy of every mount, and a copy of
    // another process's FUSE mount keeps its connection alive after that
    // process unmounts it: detach the copies (here only: propagation is
    // private) so that no other mount's daemon waits for this namespace.
    let full = format!(
        "set -e\nawk '{{ for (i = 7; i < NF; i++) if ($i == \"-\") {{ if ($(i+1) ~ /^fuse/) print $5; break }} }}' \
         /proc/self/mountinfo | \
         while read -r m; do umount -l \"$(printf '%b' \"$m\")\" 2>/dev/null || true; done\n\
         mount --bind '{}' /usr/local/bin\n\
         trap 'umount -l \"{}\" 2>/dev/null || true' EXIT\n{script}",
        bin.display(),
        mnt.display()
    );
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &full])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .output()
        .expect("run unshare");
    let text = common::output_text(&out);
    assert!(out.status.success(), "script failed:\n{script}\n{text}");
    text
}

/// The daemon's log says the store was closed cleanly `n` times.
fn wait_closed(log: &Path, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = fs::read_to_string(log).unwrap_or_default();
        if text.matches("store closed cleanly").count() >= n {
            return;
        }
        assert!(Instant::now() < deadline, "daemon did not close:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn install_sh_puts_lsmfs_where_mount8_finds_it_and_mount8_mounts_it() {
    if !root_with(&["unshare", "mount.fuse3"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let prefix = t.join("prefix");
    install(&prefix);
    let bin = prefix.join("bin/lsmfs");
    assert!(bin.is_file(), "{} installed", bin.display());
    let unit = fs::read_to_string(prefix.join("lib/systemd/system/lsmfs@.service")).unwrap();
    assert!(
        unit.contains(&format!("ExecStart={}/bin/lsmfs mount ", prefix.display())),
        "{unit}"
    );
    let (data, mnt) = (t.join("data"), t.join("mnt"));
    fs::create_dir(&mnt).unwrap();
    let fstab = t.join("fstab");
    fs::write(
        &fstab,
        format!(
            "# lsmfs\n{} {} fuse.lsmfs defaults,{} 0 0\n",
            data.display(),
            mnt.display(),
            transport()
        ),
    )
    .unwrap();
    let (d, m, tr) = (data.display(), mnt.display(), transport());
    let info = format!("grep ' {m} ' /proc/self/mountinfo");
    let out = in_namespace(
        &prefix.join("bin"),
        &mnt,
        &format!(
            "mount -t fuse.lsmfs {d} {m} -o defaults,_netdev,noauto,nofail,user,users,auto,rw,{tr}\n\
             echo MOUNT8: $({info})\n\
             echo 'through mount(8)' > {m}/a\n\
             umount {m}\n\
             echo AFTER: $(grep -c ' {m} ' /proc/self/mountinfo || true)\n\
             mount --fstab {fstab} {m}\n\
             echo FSTAB: $({info})\n\
             cat {m}/a\n\
             echo 'through fstab' > {m}/b\n\
             umount {m}\n\
             mount -t fuse 'lsmfs#{d}' {m} -o {tr}\n\
             echo HASH: $({info})\n\
             cat {m}/b\n\
             lsmfs umount {m}\n\
             echo GONE: $(grep -c ' {m} ' /proc/self/mountinfo || true)\n",
            fstab = fstab.display()
        ),
    );
    let line = |tag: &str| {
        out.lines()
            .find(|l| l.starts_with(tag))
            .unwrap_or_else(|| panic!("no {tag} in {out}"))
            .to_string()
    };
    let mount8 = line("MOUNT8:");
    assert!(mount8.contains(" - fuse.lsmfs lsmfs "), "{mount8}");
    for o in ["_netdev", "noauto", "nofail", "users", "defaults"] {
        assert!(!mount8.contains(o), "{o} reached the kernel: {mount8}");
    }
    // `user` means nosuid,nodev,noexec to mount(8), which says so.
    assert!(
        mount8.contains("nosuid") && mount8.contains("noexec"),
        "{mount8}"
    );
    assert_eq!(line("AFTER:"), "AFTER: 0", "umount(8) ended it: {out}");
    assert!(line("FSTAB:").contains(" - fuse.lsmfs lsmfs "), "{out}");
    assert!(
        out.contains("through mount(8)\n") && out.contains("through fstab\n"),
        "{out}"
    );
    assert!(line("HASH:").contains(" - fuse.lsmfs lsmfs "), "{out}");
    assert_eq!(line("GONE:"), "GONE: 0", "{out}");
    // Three daemons, each closed the store cleanly (`lsmfs umount` waits
    // for its daemon; umount(8) does not, so wait here).
    wait_closed(&data.join("LOG"), 3);
    let (code, out, _) = lsmfs(&[os("check"), data.as_os_str()]);
    assert_eq!(code, 0, "{out}");
    assert!(!lsmfs_mounted(&mnt));
}

/// The systemd unit's ExecStart, run as systemd runs it: `start` would
/// return at READY=1, and by then the mount answers; `stop` is SIGTERM.
#[test]
fn the_systemd_unit_is_ready_when_the_mount_is_live_and_stops_on_sigterm() {
    use std::os::unix::net::UnixDatagram;
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let unit = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/lsmfs@.service"
    ))
    .unwrap();
    assert!(unit.contains("\nType=notify\n"), "{unit}");
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart=@BINDIR@/lsmfs "))
        .expect("ExecStart");
    let (data, mnt) = (t.join("data"), t.join("mnt"));
    fs::create_dir(&mnt).unwrap();
    let _guard = UnmountGuard(mnt.clone());
    let options = format!("-o {}", transport());
    let args: Vec<String> = exec
        .replace("${DATA_DIR}", &data.to_string_lossy())
        .replace("${MOUNTPOINT}", &mnt.to_string_lossy())
        .replace("$OPTIONS", &options)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let sock_path = t.join("notify");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lsmfs"))
        .args(&args)
        .env("NOTIFY_SOCKET", &sock_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).expect("READY=1 within 60 s");
    let msg = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(msg.starts_with("READY=1\n"), "{msg}");
    // Live at READY: listed, answering, serving.
    assert!(lsmfs_mounted(&mnt), "{msg}");
    fs::write(mnt.join("f"), b"under systemd").unwrap();
    // SAFETY: kill(2) of the daemon this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let n = sock.recv(&mut buf).expect("STOPPING=1");
    assert_eq!(&buf[..n], b"STOPPING=1");
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{status}: {err}");
    assert!(!lsmfs_mounted(&mnt));
    assert!(err.contains("store closed cleanly"), "{err}");
    // The daemon's children never saw NOTIFY_SOCKET: nothing else came.
    sock.set_nonblocking(true).unwrap();
    assert!(sock.recv(&mut buf).is_err());
}

/// mount.fuse3's form `lsmfs DATA_DIR MOUNTPOINT -o OPTS` as a user: it
/// returns once mounted (printing nothing), and the user's `umount(8)` and
/// `lsmfs umount` end it (through fusermount3).
#[test]
fn a_user_mounts_in_mount8s_form_and_unmounts_with_lsmfs_umount() {
    if !root_with(&["fusermount3"]) {
        return;
    }
    let tmp = tempfile::Builder::new()
        .prefix("lsmfs-sys")
        .tempdir()
        .unwrap();
    let t = tmp.path();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(t, fs::Permissions::from_mode(0o755)).unwrap();
    let exe = t.join("lsmfs");
    common::copy_lsmfs(&exe);
    let home = t.join("home");
    fs::create_dir(&home).unwrap();
    let (uid, gid) = (65534u32, 65534u32); // nobody
    std::os::unix::fs::chown(&home, Some(uid), Some(gid)).unwrap();
    let (data, mnt) = (home.join("d"), home.join("m"));
    let as_user = |args: &[&OsStr]| {
        let out = Command::new(&exe)
            .args(args)
            .uid(uid)
            .gid(gid)
            .current_dir("/")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (out.status.code().unwrap_or(-1), common::output_text(&out))
    };
    let user_sh = |cmd: &str| {
        Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .uid(uid)
            .gid(gid)
            .current_dir("/")
            .output()
            .unwrap()
    };
    assert!(user_sh(&format!("mkdir {}", mnt.display()))
        .status
        .success());
    let _guard = UnmountGuard(mnt.clone());
    let mount = [data.as_os_str(), mnt.as_os_str(), os("-o"), os(transport())];
    let (code, out) = as_user(&mount);
    assert_eq!(code, 0, "{out}");
    assert!(
        !out.contains("lsmfs: mounted"),
        "silent, as mount(8): {out}"
    );
    assert!(lsmfs_mounted(&mnt));
    assert!(user_sh(&format!("echo mine > {}/f", mnt.display()))
        .status
        .success());
    // umount(8) lets a user end their own FUSE mount.
    let out = user_sh(&format!("umount {}", mnt.display()));
    assert!(out.status.success(), "{}", common::output_text(&out));
    wait_closed(&data.join("LOG"), 1);
    let (code, out) = as_user(&mount);
    assert_eq!(code, 0, "{out}");
    let (code, out) = as_user(&[os("umount"), mnt.as_os_str()]);
    assert_eq!(code, 0, "{out}");
    assert!(!lsmfs_mounted(&mnt));
    // lsmfs umount returned after the daemon closed the store.
    let log = fs::read_to_string(data.join("LOG")).unwrap();
    assert_eq!(log.matches("store closed cleanly").count(), 2, "{log}");
    // Not theirs to unmount: refused by name (here: not an lsmfs mount).
    let (code, out) = as_user(&[os("umount"), os("/proc")]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not an lsmfs mount"), "{out}");
}

/// `lsmfs umount`: a live mount (waiting for its daemon), a busy one
/// (refused, then --lazy), a stale one (detached), and what is not lsmfs.
#[test]
fn lsmfs_umount_ends_live_busy_and_stale_mounts() {
    let mut m = common::Mounted::new();
    fs::write(m.path("x"), b"x").unwrap();
    let (code, out, err) = lsmfs(&[os("umount"), m.mnt.as_os_str()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!m.is_mounted());
    assert_eq!(m.wait_exit(Duration::from_secs(1)), Some(0), "daemon gone");
    m.start();
    let held = fs::File::open(m.path("x")).unwrap();
    let (code, _, err) = lsmfs(&[os("umount"), m.mnt.as_os_str()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("busy") && err.contains("--lazy"), "{err}");
    assert!(m.is_mounted());
    let (code, _, err) = lsmfs(&[os("umount"), os("--lazy"), m.mnt.as_os_str()]);
    assert_eq!(code, 0, "{err}");
    assert!(!m.is_mounted());
    drop(held);
    assert_eq!(m.wait_exit(Duration::from_secs(30)), Some(0));
    m.start();
    m.kill9();
    assert!(m.is_mounted(), "kill -9 leaves a stale mount");
    let (code, _, err) = lsmfs(&[os("umount"), m.mnt.as_os_str()]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("stale"), "{err}");
    assert!(!m.is_mounted());
    m.start();
    assert_eq!(fs::read(m.path("x")).unwrap(), b"x");
    for (path, want) in [("/proc", "not an lsmfs mount"), ("/", "not an lsmfs mount")] {
        let (code, _, err) = lsmfs(&[os("umount"), os(path)]);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains(want), "{err}");
    }
    let (code, _, err) = lsmfs(&[os("umount"), m.tmp.path().as_os_str()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("is not mounted"), "{err}");
}

/// `-f` keeps mount(8)'s form in the foreground; `-o KEY=VALUE` sets the
/// flags an fstab line cannot spell; `uid=` is refused with the reason.
#[test]
fn foreground_flag_and_settings_as_mount_options() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, mnt) = (tmp.path().join("d"), tmp.path().join("m"));
    fs::create_dir(&mnt).unwrap();
    let _guard = UnmountGuard(mnt.clone());
    let mut child = Command::new(env!("CARGO_BIN_EXE_lsmfs"))
        .arg(&data)
        .arg(&mnt)
        .arg("-f")
        .arg("-o")
        .arg(format!("{},threads=2,sync=always,defaults", transport()))
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !lsmfs_mounted(&mnt) {
        assert!(Instant::now() < deadline, "not mounted");
        assert!(child.try_wait().unwrap().is_none(), "-f daemon exited");
        std::thread::sleep(Duration::from_millis(20));
    }
    let stats = fs::read_to_string(mnt.join(".lsmfs-stats")).unwrap();
    assert!(stats.contains("2 threads"), "{stats}");
    // SAFETY: kill(2) of the daemon this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    for (o, want) in [
        ("uid=1000", "stores every file's owner and mode"),
        ("umask=022", "stores every file's owner and mode"),
        ("threads=0", "out of range"),
        ("sync=sometimes", "sync=always"),
    ] {
        let (code, _, err) = lsmfs(&[
            os("mount"),
            data.as_os_str(),
            mnt.as_os_str(),
            os("-o"),
            os(o),
        ]);
        assert!(code == 1 || code == 2, "-o {o}: {err}");
        assert!(err.contains(want), "-o {o}: {err}");
        assert!(!lsmfs_mounted(&mnt));
    }
    let (code, out, _) = lsmfs(&[os("mount"), os("--help")]);
    assert_eq!(code, 0);
    for o in [
        "allow_other:",
        "nonempty:",
        "threads=N:",
        "uid=, gid=, umask=:",
        "_netdev",
    ] {
        assert!(out.contains(o), "--help lists {o}: {out}");
    }
}

/// `--log-size`/`--log-keep` bound the daemon's log: LOG rotates to
/// LOG.1.. and the oldest goes.
#[test]
fn the_daemon_log_is_rotated_and_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, mnt) = (tmp.path().join("d"), tmp.path().join("m"));
    fs::create_dir(&mnt).unwrap();
    let _guard = UnmountGuard(mnt.clone());
    // Debug logging writes lines per request.
    let out = Command::new(env!("CARGO_BIN_EXE_lsmfs"))
        .arg("mount")
        .arg(&data)
        .arg(&mnt)
        .args(["--daemon", "--log-size", "64K", "--log-keep", "2", "-o"])
        .arg(transport())
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::output_text(&out));
    let log = data.join("LOG");
    let rotated = |n: u32| data.join(format!("LOG.{n}"));
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut i = 0;
    while !rotated(2).exists() {
        assert!(Instant::now() < deadline, "LOG never rotated twice");
        for _ in 0..50 {
            let _ = fs::metadata(mnt.join(format!("nothing-{i}")));
            i += 1;
        }
    }
    for _ in 0..2000 {
        let _ = fs::metadata(mnt.join(format!("nothing-{i}")));
        i += 1;
    }
    assert!(common::umount_retrying(&mnt));
    wait_closed(&log, 1);
    use std::os::unix::fs::MetadataExt;
    for p in [log.clone(), rotated(1), rotated(2)] {
        let md = fs::metadata(&p).unwrap();
        assert!(
            md.len() <= 64 * 1024 + 4096,
            "{} is {} bytes",
            p.display(),
            md.len()
        );
        assert_eq!(md.mode() & 0o777, 0o600, "{}", p.display());
    }
    assert!(!rotated(3).exists(), "only 2 kept");
    // The store never mistakes them for its own files.
    let (code, out, _) = lsmfs(&[os("check"), data.as_os_str()]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("garbage: "), "{out}");
}
