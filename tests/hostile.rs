//! What a new user broke in an hour (issue 16), each on the real binary:
//! nested and swapped directories, mount points that are missing, files or
//! full, the tools on foreign and read-only directories, `-o ro`, closed
//! pipes, out-of-range numbers, leftover tables after a clean unmount,
//! logs that are not logs, offline against live statistics, and the
//! messages themselves.

mod common;
use common::{lsmfs, lsmfs_mounted, sh, Mounted, UnmountGuard};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn os<S: AsRef<OsStr> + ?Sized>(s: &S) -> &OsStr {
    s.as_ref()
}

/// Every name in `dir` with its size and mtime.
fn listing(dir: &Path) -> BTreeMap<String, (u64, i64)> {
    use std::os::unix::fs::MetadataExt;
    fs::read_dir(dir)
        .map(|it| {
            it.flatten()
                .map(|e| {
                    let m = e.metadata().unwrap();
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        (m.len(), m.mtime_nsec() + m.mtime() * 1_000_000_000),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A read-only bind mount of `src` at `at`; unmounted on drop.
struct RoBind(PathBuf);

impl RoBind {
    fn new(src: &Path, at: &Path) -> RoBind {
        fs::create_dir_all(at).unwrap();
        let ok = |args: &[&OsStr]| {
            Command::new("mount")
                .args(args)
                .status()
                .is_ok_and(|s| s.success())
        };
        assert!(ok(&[os("--bind"), src.as_os_str(), at.as_os_str()]));
        let bind = RoBind(at.to_path_buf());
        assert!(ok(&[os("-o"), os("remount,bind,ro"), at.as_os_str()]));
        bind
    }
}

impl Drop for RoBind {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// A data directory holding a small tree, unmounted.
fn made_store() -> Mounted {
    let mut m = Mounted::new();
    sh("mkdir d && echo hello > d/f && echo two > g", &m.mnt);
    m.unmount();
    m
}

/// `lsmfs mount DATA MNT --daemon ARGS` with a guard that unmounts MNT.
fn mount_daemon(data: &Path, mnt: &Path, args: &[&str]) -> ((i32, String, String), UnmountGuard) {
    let guard = UnmountGuard(mnt.to_path_buf());
    let mut all = vec![
        os("mount"),
        data.as_os_str(),
        mnt.as_os_str(),
        os("--daemon"),
    ];
    all.extend(args.iter().map(os));
    (lsmfs(&all), guard)
}

/// Item 1: a data directory inside its mount point (or the reverse, or the
/// same directory, also through a symlink) is refused before anything is
/// created.
#[test]
fn nested_data_dir_and_mount_point_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = tmp.path().join("rec");
    fs::create_dir(&rec).unwrap();
    fs::create_dir(tmp.path().join("store")).unwrap();
    std::os::unix::fs::symlink(&rec, tmp.path().join("alias")).unwrap();
    let cases = [
        (rec.join("data"), rec.clone(), "inside mount point"),
        (
            tmp.path().join("alias/data"),
            rec.clone(),
            "inside mount point",
        ),
        (
            tmp.path().join("store"),
            tmp.path().join("store"),
            "same directory",
        ),
    ];
    for (data, mnt, want) in cases {
        for daemon in [true, false] {
            let mut args = vec![os("mount"), data.as_os_str(), mnt.as_os_str()];
            if daemon {
                args.push(os("--daemon"));
            }
            let _g = UnmountGuard(mnt.clone());
            let (code, _, err) = lsmfs(&args);
            assert_eq!(code, 1, "{err}");
            assert!(err.contains(want), "{err}");
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(!lsmfs_mounted(&mnt));
        }
        assert!(
            !rec.join("data").exists(),
            "the refused data dir was created"
        );
    }
    // The mount point inside the data directory.
    let data = tmp.path().join("store");
    fs::create_dir(data.join("m")).unwrap();
    let (r, _g) = mount_daemon(&data, &data.join("m"), &[]);
    assert_eq!(r.0, 1, "{}", r.2);
    assert!(r.2.contains("inside data directory"), "{}", r.2);
    assert_eq!(listing(&data).len(), 1, "{:?}", listing(&data));
}

/// Items 2 and 3: a mount point that is a data directory (the arguments
/// swapped), not empty, missing or a file is refused, and DATA_DIR is
/// neither created nor changed; `-o nonempty` mounts over contents.
#[test]
fn bad_mount_points_are_refused_before_formatting() {
    let store = made_store();
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let before = listing(&store.data);
    // Swapped: MNT given as DATA_DIR, the real store as MOUNTPOINT.
    let (r, _g) = mount_daemon(&empty, &store.data, &[]);
    assert_eq!(r.0, 1, "{}", r.2);
    assert!(r.2.contains("is an lsmfs data directory"), "{}", r.2);
    assert_eq!(listing(&store.data), before);
    assert!(listing(&empty).is_empty(), "{:?}", listing(&empty));
    // Missing, a file, not empty: the new data dir stays uncreated.
    let fresh = tmp.path().join("fresh");
    let file = tmp.path().join("file");
    fs::write(&file, b"x").unwrap();
    let full = tmp.path().join("full");
    fs::create_dir(&full).unwrap();
    fs::write(full.join("keep"), b"mine").unwrap();
    for (mnt, want) in [
        (tmp.path().join("nope"), "does not exist"),
        (file.clone(), "is not a directory"),
        (full.clone(), "is not empty"),
    ] {
        for daemon in [true, false] {
            let _g = UnmountGuard(mnt.clone());
            let mut args = vec![os("mount"), fresh.as_os_str(), mnt.as_os_str()];
            if daemon {
                args.push(os("--daemon"));
            }
            let (code, _, err) = lsmfs(&args);
            assert_eq!(code, 1, "{err}");
            assert!(err.contains(want), "{err}");
            assert!(
                !fresh.exists(),
                "a refused mount created {}",
                fresh.display()
            );
        }
    }
    // -o nonempty: mounted over the contents, which come back after.
    let log = tmp.path().join("nonempty.log");
    let (r, _g) = mount_daemon(
        &fresh,
        &full,
        &["-o", "nonempty", "--log-file", log.to_str().unwrap()],
    );
    assert_eq!(r.0, 0, "{}", r.2);
    assert!(!full.join("keep").exists(), "the mount does not hide keep");
    fs::write(full.join("new"), b"x").unwrap();
    assert!(common::umount_retrying(&full));
    let deadline = Instant::now() + Duration::from_secs(10);
    while lsmfs_mounted(&full) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(fs::read(full.join("keep")).unwrap(), b"mine");
}

/// Items 4 and 11: the offline readers on a foreign directory create
/// nothing and say what it is; on a read-only bind mount of a real store
/// they work, with a shared lock or, without a lock file, a note.
#[test]
fn offline_readers_never_write() {
    let tmp = tempfile::tempdir().unwrap();
    let foreign = tmp.path().join("foreign");
    fs::create_dir(&foreign).unwrap();
    fs::write(foreign.join("notes.txt"), b"mine").unwrap();
    let f = foreign.as_os_str();
    for args in [
        vec![os("stats"), f],
        vec![os("check"), f],
        vec![os("inspect"), os("path"), f, os("/x")],
        vec![os("inspect"), os("manifest"), f],
        vec![os("compact"), f],
    ] {
        let (code, _, err) = lsmfs(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("is not an lsmfs data directory"), "{err}");
        assert!(!err.contains("invalid argument"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    assert_eq!(listing(&foreign).len(), 1, "{:?}", listing(&foreign));

    let store = made_store();
    let ro = tmp.path().join("ro");
    for with_lock in [true, false] {
        if !with_lock {
            fs::remove_file(store.data.join("LOCK")).unwrap();
        }
        let _bind = RoBind::new(&store.data, &ro);
        let (code, out, err) = lsmfs(&[os("check"), ro.as_os_str()]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("clean"), "{out}");
        let (code, out, err) = lsmfs(&[os("stats"), ro.as_os_str()]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("offline statistics"), "{out}");
        let (code, out, err) = lsmfs(&[os("inspect"), os("path"), ro.as_os_str(), os("/d/f")]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("size 6"), "{out}");
        if with_lock {
            assert!(!err.contains("without a lock"), "{err}");
        } else {
            assert!(err.contains("without a lock"), "{err}");
        }
    }
}

/// Item 5: `-o ro` changes nothing in the data directory (no new WAL or
/// MANIFEST, no LOG), also on read-only media, and still shows the tree
/// with what the WAL holds.
#[test]
fn read_only_mounts_write_nothing() {
    let mut m = Mounted::new();
    sh("echo unflushed > w", &m.mnt);
    m.unmount();
    let before = listing(&m.data);
    m.set_args(&["-o", "ro"]);
    m.start();
    assert_eq!(fs::read(m.path("w")).unwrap(), b"unflushed\n");
    assert_eq!(common::errno_of(fs::write(m.path("x"), b"x")), libc::EROFS);
    m.unmount();
    assert_eq!(
        listing(&m.data),
        before,
        "a read-only mount changed the data dir"
    );

    let ro = m.tmp.path().join("ro");
    let _bind = RoBind::new(&m.data, &ro);
    let mnt2 = m.tmp.path().join("mnt2");
    fs::create_dir(&mnt2).unwrap();
    // No --log-file: the daemon keeps the caller's stderr (a file here).
    let log = m.tmp.path().join("ro.log");
    let _g = UnmountGuard(mnt2.clone());
    let out = Command::new(env!("CARGO_BIN_EXE_lsmfs"))
        .arg("mount")
        .arg(&ro)
        .arg(&mnt2)
        .args(["--daemon", "-o", "ro"])
        .stdin(Stdio::null())
        .stderr(Stdio::from(fs::File::create(&log).unwrap()))
        .output()
        .unwrap();
    let said = fs::read_to_string(&log).unwrap_or_default();
    assert!(out.status.success(), "{said}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("log to stderr"));
    assert_eq!(fs::read(mnt2.join("w")).unwrap(), b"unflushed\n");
    assert!(common::umount_retrying(&mnt2));
    assert_eq!(listing(&m.data), before);
}

/// Item 6: a reader that closes the pipe ends the tools quietly (SIGPIPE,
/// as cat or grep), never a panic.
#[test]
fn closed_pipes_end_the_tools_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let mut m = Mounted::new();
    sh("for i in $(seq 1 50); do echo $i > f$i; done", &m.mnt);
    m.unmount();
    let o = lsmfs(&[os("compact"), m.data.as_os_str()]);
    assert_eq!(o.0, 0, "{}", o.2);
    m.start();
    sh("echo again > g", &m.mnt);
    m.unmount();
    let find = |ext: &str| {
        fs::read_dir(&m.data)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == ext))
            .unwrap()
    };
    let (wal, sst) = (find("log"), find("sst"));
    for args in [
        vec![os("inspect"), os("wal"), wal.as_os_str()],
        vec![os("inspect"), os("sst"), sst.as_os_str(), os("--keys")],
        vec![os("inspect"), os("manifest"), m.data.as_os_str()],
        vec![os("check"), m.data.as_os_str()],
    ] {
        let mut fds = [0; 2];
        // SAFETY: pipe fills the array; we own both ends.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: the read end is ours; closing it makes every write EPIPE.
        unsafe { libc::close(fds[0]) };
        // SAFETY: the write end is a fresh descriptor handed to the child.
        let w = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fds[1]) };
        let out = Command::new(env!("CARGO_BIN_EXE_lsmfs"))
            .args(&args)
            .stdout(Stdio::from(w))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{args:?}: {err}");
    }
}

/// Item 7: numbers out of range are one clap error before anything is
/// created; sizes take suffixes.
#[test]
fn numeric_options_are_validated() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    for (opt, bad, want) in [
        ("--threads", "100000", "1 to 64"),
        ("--threads", "0", "1 to 64"),
        ("--memtable-size", "1K", "64K to 1G"),
        ("--memtable-size", "64Q", "unknown size suffix"),
        ("--readahead-kb", "99999999", "out of range"),
        ("--space-reserve-mb", "5x", "not a whole number"),
    ] {
        let (code, _, err) = lsmfs(&[
            os("mount"),
            data.as_os_str(),
            mnt.as_os_str(),
            os(opt),
            os(bad),
        ]);
        assert_eq!(code, 2, "{opt} {bad}: {err}");
        let first = err.lines().next().unwrap_or_default();
        assert!(first.contains(opt) && first.contains(want), "{err}");
        assert!(!data.exists());
    }
    let mut m = Mounted::with_args(&[
        "--memtable-size",
        "64M",
        "--threads",
        "2",
        "--space-reserve-mb",
        "64",
    ]);
    sh("echo x > f", &m.mnt);
    m.unmount();
    let options = fs::read_to_string(m.data.join("OPTIONS")).unwrap();
    assert!(options.contains("write_buffer_size 67108864"), "{options}");
}

/// The figures of `.lsmfs-stats` once the daemon has gone idle (no
/// flush or compaction running and nothing changing for 300 ms).
fn idle_stats(m: &Mounted) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    let mut since = Instant::now();
    loop {
        let now = fs::read_to_string(m.path(".lsmfs-stats")).unwrap();
        let strip = |t: &str| {
            t.lines()
                .filter(|l| {
                    l.starts_with('L') || l.starts_with("bytes_") || l.starts_with("background")
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        if strip(&now) != strip(&last) {
            last = now;
            since = Instant::now();
        } else if last.contains("background_busy      false")
            && since.elapsed() > Duration::from_millis(300)
        {
            return last;
        }
        assert!(
            Instant::now() < deadline,
            "the daemon never went idle:\n{last}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `(flushes, compactions)` from stats text.
fn counts(stats: &str) -> (u64, u64) {
    let num_before = |line: &str, word: &str| -> u64 {
        let i = line.find(word).unwrap();
        line[..i]
            .rsplit(['(', ' '])
            .find(|s| !s.is_empty())
            .unwrap()
            .parse()
            .unwrap()
    };
    let flushed = stats
        .lines()
        .find(|l| l.starts_with("bytes_flushed"))
        .unwrap();
    let compacted = stats
        .lines()
        .find(|l| l.starts_with("bytes_compacted"))
        .unwrap();
    (
        num_before(flushed, " flushes"),
        num_before(compacted, " compactions"),
    )
}

/// Item 8: the inputs of the last compaction are gone after a clean
/// unmount. The workload stops right after a compaction, so nothing but
/// the close can collect what it retired.
#[test]
fn no_leftover_tables_after_a_clean_unmount() {
    let mut m = Mounted::with_args(&["--memtable-size", "262144"]);
    let mut n = 0;
    loop {
        let before = counts(&idle_stats(&m));
        sh(&format!("head -c 120000 /dev/urandom > f{n}"), &m.mnt);
        n += 1;
        let after = counts(&idle_stats(&m));
        if after.1 > before.1 {
            break;
        }
        assert!(n < 200, "no compaction after {n} files");
    }
    m.unmount();
    let (code, out, err) = lsmfs(&[os("check"), m.data.as_os_str()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("garbage:"), "{out}");
}

/// Item 9: `inspect wal` and `inspect manifest` say a file is not a log.
#[test]
fn inspect_refuses_files_that_are_not_logs() {
    let tmp = tempfile::tempdir().unwrap();
    let readme = tmp.path().join("README.md");
    fs::write(
        &readme,
        "# lsmfs\n\nlsmfs is a FUSE filesystem whose whole tree\n",
    )
    .unwrap();
    for (kind, what) in [("wal", "not a WAL"), ("manifest", "not a MANIFEST")] {
        let (code, out, err) = lsmfs(&[os("inspect"), os(kind), readme.as_os_str()]);
        assert_eq!(code, 2, "{out}{err}");
        assert!(err.contains(what) && err.contains("README.md"), "{err}");
        assert!(out.is_empty(), "{out}");
    }
}

/// Item 10: offline `stats` scores levels with the mount's own tuning.
#[test]
fn offline_and_live_stats_agree() {
    let mut m = Mounted::with_args(&["--memtable-size", "4194304"]);
    let mut i = 0;
    let live = loop {
        sh(&format!("head -c 3000000 /dev/urandom > f{i}"), &m.mnt);
        i += 1;
        let s = idle_stats(&m);
        if counts(&s).1 > 0 {
            break s;
        }
        assert!(i < 40, "no compaction:\n{s}");
    };
    m.unmount();
    let (code, out, err) = lsmfs(&[os("stats"), m.data.as_os_str()]);
    assert_eq!(code, 0, "{err}");
    let levels = |t: &str| {
        t.lines()
            .filter(|l| l.starts_with("L1") || l.starts_with("L2"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert!(!levels(&live).is_empty());
    assert_eq!(
        levels(&out),
        levels(&live),
        "live:\n{live}\noffline:\n{out}"
    );
}

/// Item 11: the messages a user met, each one line naming the thing.
#[test]
fn messages_say_what_is_wrong() {
    let mut m = Mounted::new();
    sh("truncate -s 1G sparse && echo tiny > small", &m.mnt);
    let pid = m.pid().unwrap();
    // Locked: names the pid and the mount point, and the path only once.
    for tool in ["check", "compact", "stats"] {
        let (code, _, err) = lsmfs(&[os(tool), m.data.as_os_str()]);
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains(&format!(
                "lsmfs process {pid} (mounted on {})",
                m.mnt.display()
            )),
            "{err}"
        );
        assert_eq!(err.matches(m.data.to_str().unwrap()).count(), 1, "{err}");
    }
    // A data dir that is a regular file.
    let file = m.tmp.path().join("plain");
    fs::write(&file, b"x").unwrap();
    let other = m.tmp.path().join("other");
    fs::create_dir(&other).unwrap();
    let (code, _, err) = lsmfs(&[os("mount"), file.as_os_str(), other.as_os_str()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("is not a directory") && !err.contains("File exists"),
        "{err}"
    );
    // check counts stored bytes, not the holes.
    m.unmount();
    let (code, out, _) = lsmfs(&[os("check"), m.data.as_os_str()]);
    assert_eq!(code, 0, "{out}");
    let line = out.lines().find(|l| l.starts_with("filesystem:")).unwrap();
    assert!(line.contains(" 5 bytes of file data"), "{line}");
    // stats on a dead mount: say it is stale and how to clear it.
    m.start();
    m.kill9();
    let (code, _, err) = lsmfs(&[os("stats"), m.mnt.as_os_str()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("stale") && err.contains("umount"), "{err}");
    assert!(!err.contains("Transport endpoint"), "{err}");
}
