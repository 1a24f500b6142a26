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
        std::fs::copy(env!("CARGO_BIN_EXE_lsmfs"), &exe).expect("copy lsmfs");
        chmod(&exe, 0o755);
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
    assert_eq!(common::sh("umount mnt", s.tmp.path()), "");
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
    common::sh("umount mnt", s.tmp.path());
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
    let mount = format!(
        "{} mount {} {} --daemon --space-reserve-mb 16",
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
    user.ok(&mount);
    assert_eq!(user.ok(&format!("cat {}/f", q(&mnt))), "hello\n");
    let (code, _, _) = user.sh(&format!("test -d {}/dir", q(&mnt)));
    assert_eq!(code, 0);
    user.ok(&format!("fusermount3 -u {}", q(&mnt)));
    wait_unmounted(&mnt, &data);
    let (code, out, _) = lsmfs(&[os("check"), data.as_os_str()]);
    assert_eq!(code, 0, "{out}");
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
