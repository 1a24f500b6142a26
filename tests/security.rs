//! Who can see what: the data directory against other local users, the
//! unprivileged (fusermount3) path, and the mount's trust boundary, each
//! tried as a real second user created for the test (root only: skipped
//! otherwise).

mod common;
use common::{lsmfs, lsmfs_mounted, UnmountGuard};
use std::ffi::OsStr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipped: creating users and mounting for them needs root");
    }
    root
}

/// How many tests of this binary use each test user: the first creates it,
/// the last deletes it.
static USERS: Mutex<Vec<(String, usize, bool)>> = Mutex::new(Vec::new());

/// A local user for the test, created if missing (and then deleted when
/// the last test using it is done).
struct User {
    name: String,
    uid: u32,
    gid: u32,
}

fn id_of(name: &str, flag: &str) -> Option<u32> {
    let out = Command::new("id").arg(flag).arg(name).output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

impl User {
    fn get(name: &str) -> User {
        let mut users = USERS.lock().unwrap_or_else(|p| p.into_inner());
        match users.iter_mut().find(|u| u.0 == name) {
            Some(u) => u.1 += 1,
            None => {
                let created = id_of(name, "-u").is_none();
                if created {
                    let ok = Command::new("useradd")
                        .args(["-M", "-r", "-U", "-s", "/usr/sbin/nologin", name])
                        .status()
                        .is_ok_and(|s| s.success());
                    assert!(ok, "useradd {name} failed");
                }
                users.push((name.to_string(), 1, created));
            }
        }
        User {
            name: name.to_string(),
            uid: id_of(name, "-u").expect("uid"),
            gid: id_of(name, "-g").expect("gid"),
        }
    }

    /// `sh -c cmd` as this user (no supplementary groups), in `/`:
    /// (exit code, stdout, stderr).
    fn sh(&self, cmd: &str) -> (i32, String, String) {
        let out = Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .uid(self.uid)
            .gid(self.gid)
            .current_dir("/")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .output()
            .expect("run as user");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `sh -c cmd` as this user, which must succeed; its stdout.
    fn ok(&self, cmd: &str) -> String {
        let (code, out, err) = self.sh(cmd);
        assert_eq!(code, 0, "as {}: `{cmd}` failed: {err}", self.name);
        out
    }
}

impl Drop for User {
    fn drop(&mut self) {
        let mut users = USERS.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = users.iter().position(|u| u.0 == self.name) {
            users[i].1 -= 1;
            if users[i].1 == 0 {
                let (_, _, created) = users.remove(i);
                // userdel refuses while a process of the user is still
                // exiting (a daemon that has just closed its store).
                let deadline = Instant::now() + Duration::from_secs(5);
                while created && Instant::now() < deadline {
                    let gone = Command::new("userdel")
                        .arg(&self.name)
                        .stderr(Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success());
                    if gone {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
}

/// A scratch directory every user can enter (so that only the modes
/// lsmfs sets stand between another user and the data directory), with a
/// copy of the lsmfs binary any user can run.
struct Scratch {
    tmp: tempfile::TempDir,
    exe: PathBuf,
}

impl Scratch {
    fn new() -> Scratch {
        let tmp = tempfile::Builder::new()
            .prefix("lsmfs-sec")
            .tempdir()
            .expect("tempdir");
        chmod(tmp.path(), 0o755);
        let exe = tmp.path().join("lsmfs");
        common::copy_lsmfs(&exe);
        Scratch { tmp, exe }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// A directory owned by `user`.
    fn home(&self, rel: &str, user: &User) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(&p).unwrap();
        std::os::unix::fs::chown(&p, Some(user.uid), Some(user.gid)).unwrap();
        p
    }
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

fn q(p: &Path) -> String {
    format!("'{}'", p.display())
}

/// Every path under `dir` (not `dir` itself).
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

/// Wait for the daemon of `data` mounted at `mnt` to be gone: its mount,
/// then its lock (it closes the store after the unmount).
fn wait_unmounted(mnt: &Path, data: &Path) {
    use std::os::unix::io::AsRawFd;
    let deadline = Instant::now() + Duration::from_secs(20);
    let free = || {
        let Ok(f) = std::fs::File::open(data.join("LOCK")) else {
            return true;
        };
        // SAFETY: flock on a descriptor we own; released when it closes.
        unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
    };
    while lsmfs_mounted(mnt) || !free() {
        assert!(Instant::now() < deadline, "{} still mounted", mnt.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Root mounts a data directory with a umask that would leave every file
/// world-readable, writes a secret into a 0600 file; another user can
/// neither enter, list nor read anything in the data directory — not even
/// with the directory opened up, since each file is 0600 — nor read the
/// file through the allow_other mount.
#[test]
fn the_data_directory_is_closed_to_other_users() {
    if !is_root() {
        return;
    }
    let other = User::get("lsmfs-sec-b");
    let s = Scratch::new();
    let (data, mnt) = (s.path("data"), s.path("mnt"));
    std::fs::create_dir(&mnt).unwrap();
    let _guard = UnmountGuard(mnt.clone());
    let mount = format!(
        "umask 000; {} mount {} {} --daemon -o allow_other --space-reserve-mb 16",
        q(&s.exe),
        q(&data),
        q(&mnt)
    );
    common::sh(&mount, s.tmp.path());
    const SECRET: &str = "the-secret-3f9a1c";
    let f = mnt.join("f");
    std::fs::write(&f, format!("{SECRET}\n")).unwrap();
    chmod(&f, 0o600);
    std::fs::write(mnt.join(format!("name-{SECRET}")), b"x").unwrap();
    common::sh(
        &format!("setfattr -n user.k -v {SECRET} {}", q(&f)),
        s.tmp.path(),
    );

    let check = |when: &str| {
        assert_eq!(mode(&data), 0o700, "{when}");
        let files = walk(&data);
        assert!(files.len() >= 4, "{when}: {files:?}");
        for p in &files {
            let want = if p.is_dir() { 0o700 } else { 0o600 };
            assert_eq!(mode(p), want, "{when}: {}", p.display());
        }
        for cmd in [
            format!("ls {}", q(&data)),
            format!("cat {}/LOG", q(&data)),
            format!("cat {}/CURRENT", q(&data)),
        ] {
            let (code, _, err) = other.sh(&cmd);
            assert_ne!(code, 0, "{when}: `{cmd}` worked as another user");
            assert!(err.contains("ermission denied"), "{when}: {cmd}: {err}");
        }
        let (code, _, _) = other.sh(&format!("cd {}", q(&data)));
        assert_ne!(code, 0, "{when}: another user entered the data directory");
        // Even with the directory opened up, no file opens.
        chmod(&data, 0o755);
        for p in &files {
            let (code, _, err) = other.sh(&format!("cat {} >/dev/null", q(p)));
            if p.is_dir() {
                continue;
            }
            assert_ne!(code, 0, "{when}: {} readable by another user", p.display());
            assert!(err.contains("ermission denied"), "{err}");
        }
        let (_, found, _) = other.sh(&format!("grep -rl {SECRET} {}", q(&data)));
        chmod(&data, 0o700);
        assert_eq!(found, "", "{when}: another user found the secret");
        // Root finds it: the test looks where the secret is.
        let (_, found, _) = root_grep(SECRET, &data);
        assert!(!found.is_empty(), "{when}: the secret is not in the store?");
    };
    check("mounted");
    // Through the allow_other mount the kernel checks the 0600 mode.
    let (code, _, err) = other.sh(&format!("cat {}", q(&f)));
    assert_ne!(code, 0);
    assert!(err.contains("ermission denied"), "{err}");
    other.ok(&format!("ls {}", q(&mnt)));
    assert!(common::umount_retrying(&mnt));
    wait_unmounted(&mnt, &data);
    check("unmounted (tables written)");
}

fn root_grep(what: &str, dir: &Path) -> (i32, String, String) {
    let out = Command::new("grep")
        .arg("-rl")
        .arg(what)
        .arg(dir)
        .output()
        .expect("grep");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A data directory others can read is named in one warning line at mount
/// (on the terminal with --daemon, and in the log) and by check;
/// --strict-perms refuses it before anything is opened.
#[test]
fn an_open_data_directory_is_warned_about_or_refused() {
    if !is_root() {
        return;
    }
    let s = Scratch::new();
    let (data, mnt) = (s.path("data"), s.path("mnt"));
    std::fs::create_dir(&mnt).unwrap();
    std::fs::create_dir(&data).unwrap();
    chmod(&data, 0o755);
    let _guard = UnmountGuard(mnt.clone());
    let (code, _, err) = lsmfs(&[
        os("mount"),
        data.as_os_str(),
        mnt.as_os_str(),
        os("--daemon"),
        os("--strict-perms"),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("--strict-perms") && err.contains("mode 0755"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!lsmfs_mounted(&mnt));
    assert_eq!(
        walk(&data).len(),
        0,
        "a refused mount wrote into the data dir"
    );
    let (code, out, err) = lsmfs(&[
        os("mount"),
        data.as_os_str(),
        mnt.as_os_str(),
        os("--daemon"),
        os("--space-reserve-mb"),
        os("16"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("mounted"), "{out}");
    let warning = format!(
        "data directory {} is mode 0755: other users can read",
        data.display()
    );
    let fix = format!("(fix: chmod 700 {})", data.display());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&warning) && err.contains(&fix), "{err}");
    let log = std::fs::read_to_string(data.join("LOG")).unwrap();
    assert_eq!(log.matches(&warning).count(), 1, "{log}");
    assert!(common::umount_retrying(&mnt));
    wait_unmounted(&mnt, &data);
    let (code, out, _) = lsmfs(&[os("check"), data.as_os_str()]);
    assert_eq!(code, 0, "{out}");
    let first = out.lines().next().unwrap_or("");
    assert!(
        first.starts_with("warning: ") && first.contains(&warning),
        "{out}"
    );
    chmod(&data, 0o700);
    let (code, out, _) = lsmfs(&[os("check"), data.as_os_str()]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("warning"), "{out}");
}

/// A user without privilege mounts through fusermount3 (on this machine
/// /dev/fuse is often 0600), writes, unmounts with `fusermount3 -u`, and
/// finds the data again; the store is theirs and private.
#[test]
fn an_unprivileged_user_mounts_and_unmounts_through_fusermount3() {
    if !is_root() {
        return;
    }
    assert_eq!(
        mode(Path::new("/dev/fuse")) & 0o006,
        0o006,
        "/dev/fuse is closed to users (udev's rule makes it 0666; scripts/setup.sh does)"
    );
    let user = User::get("lsmfs-sec-a");
    let s = Scratch::new();
    let home = s.home("home", &user);
    let (data, mnt) = (home.join("d"), home.join("m"));
    user.ok(&format!("mkdir {}", q(&mnt)));
    let _guard = UnmountGuard(mnt.clone());
    // suid,dev asked for, and refused by fusermount3 for a user.
    let mount = format!(
        "{} mount {} {} --daemon --space-reserve-mb 16 -o suid,dev",
        q(&s.exe),
        q(&data),
        q(&mnt)
    );
    let out = user.ok(&mount);
    assert!(out.contains("mounted"), "{out}");
    let line = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(mnt.to_str().unwrap()))
        .map(str::to_string)
        .expect("listed in mountinfo");
    assert!(line.contains(" - fuse.lsmfs lsmfs "), "{line}");
    assert!(line.contains("nosuid") && line.contains("nodev"), "{line}");
    assert!(line.contains(&format!("user_id={}", user.uid)), "{line}");
    user.ok(&format!(
        "echo hello > {}/f && mkdir {}/dir",
        q(&mnt),
        q(&mnt)
    ));
    assert_eq!(user.ok(&format!("cat {}/f", q(&mnt))), "hello\n");
    user.ok(&format!("fusermount3 -u {}", q(&mnt)));
    wait_unmounted(&mnt, &data);
    for p in walk(&data) {
        let md = std::fs::metadata(&p).unwrap();
        assert_eq!(md.uid(), user.uid, "{}", p.display());
    }
    assert_eq!(mode(&data), 0o700);
    let pid = daemon_pid(&user.ok(&mount));
    assert_eq!(user.ok(&format!("cat {}/f", q(&mnt))), "hello\n");
    let (code, _, _) = user.sh(&format!("test -d {}/dir", q(&mnt)));
    assert_eq!(code, 0);
    // kill -9 of the user's daemon leaves a stale mount, which the user's
    // next mount detaches (fusermount3 -u -z: umount(8) is root's).
    user.ok(&format!("echo acked > {}/g", q(&mnt)));
    // SAFETY: kill(2) of the daemon this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let pid = daemon_pid(&user.ok(&mount));
    assert_eq!(user.ok(&format!("cat {}/g", q(&mnt))), "acked\n");
    // SIGTERM: the daemon unmounts itself, through fusermount3.
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    wait_unmounted(&mnt, &data);
    let (code, out, _) = lsmfs(&[os("check"), data.as_os_str()]);
    assert_eq!(code, 0, "{out}");
    // allow_other needs user_allow_other in /etc/fuse.conf (not set here):
    // refused before anything is created.
    let conf = std::fs::read_to_string("/etc/fuse.conf").unwrap_or_default();
    if !conf.lines().any(|l| l.trim() == "user_allow_other") {
        let fresh = home.join("d2");
        let (code, _, err) = user.sh(&format!(
            "{} mount {} {} --daemon -o allow_other",
            q(&s.exe),
            q(&fresh),
            q(&mnt)
        ));
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("user_allow_other"), "{err}");
        assert!(!fresh.exists() && !lsmfs_mounted(&mnt));
    }
}

/// The daemon's pid from `mount --daemon`'s line.
fn daemon_pid(out: &str) -> i32 {
    out.split("(pid ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pid in {out:?}"))
}

/// fusermount3 never lets a user mount over a directory they may not
/// write, nor over a sticky one they do not own (as /tmp itself); lsmfs
/// says so before it creates anything.
#[test]
fn an_unprivileged_user_cannot_mount_over_a_directory_not_their_own() {
    if !is_root() {
        return;
    }
    let user = User::get("lsmfs-sec-a");
    let s = Scratch::new();
    let home = s.home("home", &user);
    let roots = s.path("roots"); // root's, 0755
    std::fs::create_dir(&roots).unwrap();
    let sticky = s.path("sticky"); // root's, 1777
    std::fs::create_dir(&sticky).unwrap();
    chmod(&sticky, 0o1777);
    let _g1 = UnmountGuard(roots.clone());
    let _g2 = UnmountGuard(sticky.clone());
    for (target, says) in [(&roots, "no write access"), (&sticky, "sticky directory")] {
        let data = home.join("d");
        let (code, _, err) = user.sh(&format!(
            "{} mount {} {} --daemon",
            q(&s.exe),
            q(&data),
            q(target)
        ));
        assert_eq!(code, 1, "{err}");
        assert!(err.contains(says), "{err}");
        assert!(!lsmfs_mounted(target));
        assert!(!data.exists(), "a refused mount created the data directory");
        // fusermount3 itself refuses, whatever lsmfs checked first.
        let (code, _, err) = user.sh(&format!(
            "python3 -c 'import socket,os,subprocess,sys
a,b=socket.socketpair()
r=subprocess.run([\"fusermount3\",\"-o\",\"fsname=x\",\"--\",sys.argv[1]],
  env={{\"_FUSE_COMMFD\":str(b.fileno())}},pass_fds=[b.fileno()],capture_output=True)
sys.stderr.write(r.stderr.decode()); sys.exit(r.returncode)' {}",
            q(target)
        ));
        assert_ne!(code, 0, "fusermount3 mounted over {}", target.display());
        assert!(
            err.contains("no write access") || err.contains("not owned by user"),
            "{err}"
        );
        assert!(!lsmfs_mounted(target));
    }
}

/// A root mount (`Mounted`, in a scratch directory others can enter).
fn root_mount(args: &[&str]) -> common::Mounted {
    let mut all = vec!["--space-reserve-mb", "16"];
    all.extend_from_slice(args);
    let m = common::Mounted::with_args(&all);
    chmod(m.tmp.path(), 0o755);
    m
}

fn mount_options(m: &common::Mounted) -> String {
    m.mountinfo_line().expect("listed in mountinfo")
}

/// Without allow_other the kernel turns every other user away from the
/// mount; with it, the modes decide (default_permissions is always on,
/// whatever -o says).
#[test]
fn allow_other_is_off_by_default_and_default_permissions_always_on() {
    if !is_root() {
        return;
    }
    let other = User::get("lsmfs-sec-b");
    let m = root_mount(&[]);
    std::fs::write(m.path("open"), b"for all\n").unwrap();
    chmod(&m.path("open"), 0o644);
    let (code, _, err) = other.sh(&format!("cat {}", q(&m.path("open"))));
    assert_ne!(
        code, 0,
        "another user read a mount made without allow_other"
    );
    assert!(err.contains("ermission denied"), "{err}");
    let (code, _, _) = other.sh(&format!("ls {}", q(&m.mnt)));
    assert_ne!(code, 0);
    assert!(mount_options(&m).contains("default_permissions"));
    drop(m);
    let m = root_mount(&["-o", "allow_other,default_permissions"]);
    let line = mount_options(&m);
    assert!(
        line.contains("default_permissions") && line.contains("allow_other"),
        "{line}"
    );
    std::fs::write(m.path("open"), b"for all\n").unwrap();
    chmod(&m.path("open"), 0o644);
    std::fs::write(m.path("private"), b"mine\n").unwrap();
    chmod(&m.path("private"), 0o600);
    assert_eq!(
        other.ok(&format!("cat {}", q(&m.path("open")))),
        "for all\n"
    );
    for cmd in [
        format!("cat {}", q(&m.path("private"))),
        format!("echo x >> {}", q(&m.path("open"))),
        format!("touch {}", q(&m.path("new"))),
        format!("rm {}", q(&m.path("open"))),
    ] {
        let (code, _, err) = other.sh(&cmd);
        assert_ne!(code, 0, "`{cmd}` worked as another user");
        assert!(err.contains("ermission denied"), "{cmd}: {err}");
    }
}

/// nosuid and nodev unless asked for: a setuid-root program on the mount
/// runs with the caller's rights, a device node does not open; with
/// `-o suid,dev` (root only) both work as on any filesystem.
#[test]
fn nosuid_and_nodev_unless_asked_for() {
    if !is_root() {
        return;
    }
    let other = User::get("lsmfs-sec-b");
    for asked in [false, true] {
        let m = if asked {
            root_mount(&["-o", "allow_other,suid,dev"])
        } else {
            root_mount(&["-o", "allow_other"])
        };
        let line = mount_options(&m);
        assert_eq!(line.contains("nosuid"), !asked, "{line}");
        assert_eq!(line.contains("nodev"), !asked, "{line}");
        let id = m.path("id");
        std::fs::copy("/usr/bin/id", &id).unwrap();
        chmod(&id, 0o4755);
        let out = other.ok(&q(&id));
        assert_eq!(out.contains("euid=0"), asked, "{out}");
        common::sh("mknod zero c 1 5 && chmod 666 zero", &m.mnt);
        let (code, out, err) = other.sh(&format!("head -c 3 {} | od -An -tx1", q(&m.path("zero"))));
        if asked {
            assert_eq!((code, out.trim()), (0, "00 00 00"), "{err}");
        } else {
            assert!(err.contains("ermission denied"), "{code} {out} {err}");
        }
        let (_, _, err) = root_sh(&format!("head -c 3 {}", q(&m.path("zero"))));
        assert_eq!(err.contains("ermission denied"), !asked, "{err}");
    }
}

fn root_sh(cmd: &str) -> (i32, String, String) {
    let out = Command::new("sh").arg("-c").arg(cmd).output().expect("sh");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// trusted.* and security.* are for the privileged: another user can set
/// neither on their own file, and does not see root's trusted names.
#[test]
fn privileged_xattr_namespaces_are_roots() {
    if !is_root() {
        return;
    }
    let user = User::get("lsmfs-sec-a");
    let m = root_mount(&["-o", "allow_other"]);
    std::fs::create_dir(m.path("shared")).unwrap();
    chmod(&m.path("shared"), 0o777);
    let f = m.path("shared/f");
    user.ok(&format!("echo x > {}", q(&f)));
    user.ok(&format!("setfattr -n user.mine -v 1 {}", q(&f)));
    for name in ["trusted.x", "security.x"] {
        let (code, _, err) = user.sh(&format!("setfattr -n {name} -v 1 {}", q(&f)));
        assert_ne!(code, 0, "a user set {name}");
        assert!(err.contains("not permitted"), "{name}: {err}");
    }
    common::sh(
        &format!("setfattr -n trusted.root -v secret {}", q(&f)),
        &m.mnt,
    );
    // The raw list (getfattr would skip names it cannot read anyway).
    let list = "python3 -c 'import os,sys; print(sorted(os.listxattr(sys.argv[1])))'";
    let as_user = user.ok(&format!("{list} {}", q(&f)));
    assert_eq!(as_user.trim(), "['user.mine']");
    let as_root = common::sh(&format!("{list} {}", q(&f)), &m.mnt);
    assert_eq!(as_root.trim(), "['trusted.root', 'user.mine']");
    let (code, _, _) = user.sh(&format!("getfattr -n trusted.root {}", q(&f)));
    assert_ne!(code, 0);
    let as_root = common::sh(&format!("getfattr -d -m - {}", q(&f)), &m.mnt);
    assert!(as_root.contains("trusted.root=\"secret\""), "{as_root}");
    let (code, _, err) = user.sh(&format!("setfattr -x trusted.root {}", q(&f)));
    assert_ne!(code, 0, "{err}");
}

/// `.lsmfs-stats` (readable by anyone who may enter the mount) holds
/// counters: no name, content or xattr value of the tree.
#[test]
fn the_stats_file_holds_only_counters() {
    if !is_root() {
        return;
    }
    let other = User::get("lsmfs-sec-b");
    let m = root_mount(&["-o", "allow_other"]);
    const MARK: &str = "zq7marker";
    std::fs::create_dir(m.path(&format!("dir-{MARK}"))).unwrap();
    let f = m.path(&format!("dir-{MARK}/file-{MARK}"));
    std::fs::write(&f, format!("contents-{MARK}\n").repeat(1000)).unwrap();
    common::sh(
        &format!("setfattr -n user.{MARK} -v value-{MARK} {}", q(&f)),
        &m.mnt,
    );
    std::fs::read_dir(m.path(&format!("dir-{MARK}")))
        .unwrap()
        .count();
    let stats = other.ok(&format!("cat {}/.lsmfs-stats", q(&m.mnt)));
    assert!(stats.contains("fuse_requests"), "{stats}");
    assert!(!stats.contains(MARK), "{stats}");
    // Every line is a label and figures.
    for line in stats.lines() {
        let words: Vec<&str> = line
            .split(|c: char| !c.is_ascii_alphabetic() && c != '_')
            .filter(|w| !w.is_empty())
            .collect();
        assert!(words.len() < 40, "{line}");
        assert!(words.iter().all(|w| w.len() < 24), "{line}");
    }
}

/// `setfacl -m u:USER:r` shares one file with one user, and no one else;
/// chmod moves the mask, and the ACL survives a remount.
#[test]
fn an_acl_grants_one_user_read_access_and_no_one_else() {
    if !is_root() {
        return;
    }
    let (a, b) = (User::get("lsmfs-sec-a"), User::get("lsmfs-sec-b"));
    let mut m = root_mount(&["-o", "allow_other"]);
    let f = m.path("f");
    std::fs::write(&f, b"shared secret\n").unwrap();
    chmod(&f, 0o600);
    common::sh(&format!("setfacl -m u:{}:r {}", a.name, q(&f)), &m.mnt);
    let acl = common::sh(&format!("getfacl -c {}", q(&f)), &m.mnt);
    assert!(acl.contains(&format!("user:{}:r--", a.name)), "{acl}");
    assert!(
        acl.contains("mask::r--") && acl.contains("other::---"),
        "{acl}"
    );
    assert_eq!(mode(&f), 0o640, "the group bits show the mask");
    let reads = |u: &User| u.sh(&format!("cat {}", q(&f))).0 == 0;
    assert!(reads(&a), "the ACL did not grant read");
    assert!(!reads(&b), "the ACL granted read to everyone");
    let ls = common::sh(&format!("ls -l {}", q(&f)), &m.mnt);
    assert!(ls.starts_with("-rw-r-----+"), "{ls}");
    // chmod 600 takes the mask to ---: the entry stays, but grants nothing.
    chmod(&f, 0o600);
    assert!(!reads(&a));
    let acl = common::sh(&format!("getfacl -c {}", q(&f)), &m.mnt);
    assert!(acl.contains("mask::---"), "{acl}");
    chmod(&f, 0o640);
    assert!(reads(&a));
    m.remount();
    chmod(m.tmp.path(), 0o755);
    assert!(reads(&a) && !reads(&b), "the ACL did not survive a remount");
    common::sh(&format!("setfacl -b {}", q(&f)), &m.mnt);
    assert!(!reads(&a));
    assert_eq!(mode(&f), 0o600);
    // -o noacl: no ACL is stored that nobody would enforce.
    m.set_args(&["--space-reserve-mb", "16", "-o", "allow_other,noacl"]);
    m.remount();
    let (code, _, err) = root_sh(&format!("setfacl -m u:{}:r {}", a.name, q(&f)));
    assert_ne!(code, 0);
    assert!(err.contains("Operation not supported"), "{err}");
}

/// A directory's default ACL is inherited by new files (masked by the
/// mode asked for, the umask not applied) and by new directories.
#[test]
fn a_default_acl_is_inherited_by_new_files() {
    if !is_root() {
        return;
    }
    let (a, b) = (User::get("lsmfs-sec-a"), User::get("lsmfs-sec-b"));
    let m = root_mount(&["-o", "allow_other"]);
    let d = m.path("d");
    std::fs::create_dir(&d).unwrap();
    common::sh(
        &format!("setfacl -d -m u:{}:rwx,o::- {}", a.name, q(&d)),
        &m.mnt,
    );
    common::sh("umask 077; echo new > d/new; mkdir d/sub", &m.mnt);
    let acl = common::sh("getfacl -c d/new", &m.mnt);
    assert!(acl.contains(&format!("user:{}:rwx", a.name)), "{acl}");
    assert!(acl.contains("mask::rw-"), "{acl}");
    assert_eq!(
        mode(&d.join("new")),
        0o660,
        "masked by 0666, not by the umask"
    );
    assert_eq!(a.ok(&format!("cat {}", q(&d.join("new")))), "new\n");
    let (code, _, _) = b.sh(&format!("cat {}", q(&d.join("new"))));
    assert_ne!(code, 0);
    let sub = common::sh("getfacl -c -d d/sub", &m.mnt);
    assert!(sub.contains(&format!("user:{}:rwx", a.name)), "{sub}");
    a.ok(&format!("echo more > {}", q(&d.join("sub/by-a"))));
    let acl = common::sh("getfacl -c d/sub/by-a", &m.mnt);
    assert!(acl.contains(&format!("user:{}:rwx", a.name)), "{acl}");
}

/// The offline tools print the tree's names and contents only when asked
/// (`--keys`, `--raw`); `compact` writes into a data directory only for
/// its owner or root, and as root leaves the owner's files the owner's.
#[test]
fn offline_tools_show_contents_only_when_asked_and_write_only_for_the_owner() {
    if !is_root() {
        return;
    }
    let user = User::get("lsmfs-sec-a");
    let mut m = root_mount(&["--memtable-size", "65536"]);
    const MARK: &str = "qx9secretname";
    // Enough to fill a few memtables (tables), then more for the WAL.
    std::fs::write(m.path(MARK), format!("{MARK}\n").repeat(20000)).unwrap();
    std::os::unix::fs::symlink(format!("target-{MARK}"), m.path("l")).unwrap();
    m.unmount();
    let data = m.data.clone();
    // A file of that kind holding the mark (so that hiding it means something).
    let ext = |e: &str| {
        walk(&data)
            .into_iter()
            .find(|p| {
                p.extension().is_some_and(|x| x == e)
                    && std::fs::read(p)
                        .is_ok_and(|d| d.windows(MARK.len()).any(|w| w == MARK.as_bytes()))
            })
            .unwrap_or_else(|| panic!("no .{e} holding the mark in {}", data.display()))
    };
    let (sst, wal) = (ext("sst"), ext("log"));
    let run = |args: &[&OsStr]| {
        let (code, out, err) = lsmfs(args);
        assert_eq!(code, 0, "{err}");
        out
    };
    let marked = |t: &str| t.contains(MARK) || t.contains(&hex(MARK));
    // The MANIFEST's key ranges (names at their ends) only with --keys.
    let plain = run(&[os("inspect"), os("manifest"), data.as_os_str()]);
    let keys = run(&[
        os("inspect"),
        os("manifest"),
        data.as_os_str(),
        os("--keys"),
    ]);
    assert!(plain.contains("+L0") && !plain.contains(" .. "), "{plain}");
    assert!(keys.contains("[chunk ino="), "{keys}");
    for (plain, keys) in [
        (
            run(&[os("inspect"), os("sst"), sst.as_os_str()]),
            run(&[os("inspect"), os("sst"), sst.as_os_str(), os("--keys")]),
        ),
        (
            run(&[os("inspect"), os("wal"), wal.as_os_str()]),
            run(&[os("inspect"), os("wal"), wal.as_os_str(), os("--raw")]),
        ),
    ] {
        assert!(!marked(&plain), "contents shown unasked:\n{plain}");
        assert!(marked(&keys), "contents not shown when asked:\n{keys}");
    }
    for args in [
        vec![os("check"), data.as_os_str()],
        vec![os("stats"), data.as_os_str()],
    ] {
        let out = run(&args);
        assert!(!marked(&out), "{out}");
    }
    // Someone the directory is opened to may not compact it.
    chmod(&data, 0o777);
    let before = walk(&data);
    let (code, _, err) = user.sh(&format!("{} compact {}", q(&s_exe(&m)), q(&data)));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("only its owner or root"), "{err}");
    assert_eq!(
        walk(&data),
        before,
        "a refused compact changed the directory"
    );
    chmod(&data, 0o700);
    // Root compacting a user's store leaves every file the user's.
    common::sh(
        &format!("chown -R {}:{} {}", user.uid, user.gid, q(&data)),
        &m.mnt,
    );
    run(&[os("compact"), data.as_os_str()]);
    for p in walk(&data) {
        let md = std::fs::metadata(&p).unwrap();
        assert_eq!((md.uid(), mode(&p)), (user.uid, 0o600), "{}", p.display());
    }
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// A copy of the binary any user can run, next to a mount's scratch dir.
fn s_exe(m: &common::Mounted) -> PathBuf {
    let exe = m.tmp.path().join("lsmfs");
    if !exe.exists() {
        std::fs::copy(env!("CARGO_BIN_EXE_lsmfs"), &exe).expect("copy lsmfs");
        chmod(&exe, 0o755);
    }
    exe
}
