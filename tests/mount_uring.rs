//! The io_uring transport on real mounts: it really serves the requests
//! (the stats counters say so, so a silent fallback to /dev/fuse fails),
//! the default follows `enable_uring`, and `-o io_uring` without it is a
//! clear error. Skipped (with a note) on a kernel without FUSE over
//! io_uring or when not root; the whole mount suites also run on the ring
//! in scripts/test.sh (`LSMFS_TEST_TRANSPORT=io_uring`).

mod common;

use common::{lsmfs, EnableUring, Mounted};
use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{symlink, PermissionsExt};

/// Whether this kernel can serve FUSE over io_uring here.
fn ring_possible() -> bool {
    let ok = EnableUring::set(true).is_some();
    if !ok {
        eprintln!("skipped: no {} or not root", common::ENABLE_URING);
    }
    ok
}

/// The `LABEL  N (kind n, ...)` line of `.lsmfs-stats` as (total, kinds).
fn counts(stats: &str, label: &str) -> (u64, Vec<(String, u64)>) {
    let line = stats
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no {label} line in {stats}"));
    let rest = line[label.len()..].trim();
    let (total, kinds) = rest.split_once(' ').unwrap_or((rest, "()"));
    let kinds = kinds
        .trim_matches(|c| c == '(' || c == ')')
        .split(", ")
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.rsplit_once(' ').expect("kind count");
            (k.to_string(), v.parse().expect("count"))
        })
        .collect();
    (total.parse().expect("total"), kinds)
}

fn possible_cpus() -> usize {
    let t = fs::read_to_string("/sys/devices/system/cpu/possible").unwrap();
    let last = t.trim().rsplit([',', '-']).next().unwrap();
    last.parse::<usize>().unwrap() + 1
}

#[test]
fn the_ring_serves_every_kind_of_request() {
    if !ring_possible() {
        return;
    }
    let m = Mounted::with_args(&["-o", "io_uring"]);
    let d = m.path("d");
    fs::create_dir(&d).unwrap();
    let f = d.join("f");
    let big: Vec<u8> = (0..3 << 20).map(|i| (i % 251) as u8).collect();
    {
        let mut w = fs::File::create(&f).unwrap();
        w.write_all(&big).unwrap();
        w.sync_all().unwrap();
    }
    let mut back = Vec::new();
    fs::File::open(&f).unwrap().read_to_end(&mut back).unwrap();
    assert!(back == big, "3 MiB read back differ");
    fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(
        fs::metadata(&f).unwrap().permissions().mode() & 0o777,
        0o600
    );
    fs::hard_link(&f, d.join("g")).unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::nlink(&fs::metadata(&f).unwrap()),
        2
    );
    symlink("f", d.join("s")).unwrap();
    assert_eq!(
        fs::read_link(d.join("s")).unwrap(),
        std::path::Path::new("f")
    );
    fs::rename(d.join("g"), d.join("h")).unwrap();
    let mut names: Vec<_> = fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["f", "h", "s"]);
    let c = std::ffi::CString::new(f.to_str().unwrap()).unwrap();
    // SAFETY: valid path and buffers for the xattr calls.
    unsafe {
        assert_eq!(
            libc::setxattr(c.as_ptr(), c"user.k".as_ptr(), b"v".as_ptr().cast(), 1, 0),
            0
        );
        let mut buf = [0u8; 8];
        assert_eq!(
            libc::getxattr(c.as_ptr(), c"user.k".as_ptr(), buf.as_mut_ptr().cast(), 8),
            1
        );
        assert_eq!(buf[0], b'v');
        assert!(libc::listxattr(c.as_ptr(), std::ptr::null_mut(), 0) > 0);
        assert_eq!(libc::removexattr(c.as_ptr(), c"user.k".as_ptr()), 0);
    }
    {
        let mut h = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&f)
            .unwrap();
        h.set_len(1 << 20).unwrap();
        h.seek(SeekFrom::Start(10)).unwrap();
        h.write_all(b"xyz").unwrap();
        h.sync_data().unwrap();
    }
    assert_eq!(
        &fs::read(&f).unwrap()[8..15],
        &[8, 9, b'x', b'y', b'z', 13, 14]
    );
    fs::remove_file(d.join("h")).unwrap();
    fs::remove_file(d.join("s")).unwrap();
    fs::remove_file(&f).unwrap();
    fs::remove_dir(&d).unwrap();
    assert_eq!(common::errno_of(fs::metadata(&d)), libc::ENOENT);
    statfs_works(&m.mnt);

    let stats = fs::read_to_string(m.path(".lsmfs-stats")).unwrap();
    assert!(
        stats.contains(&format!(
            "transport            io_uring, {} queues",
            possible_cpus()
        )),
        "{stats}"
    );
    let (ring, kinds) = counts(&stats, "io_uring_requests");
    let (dev, _) = counts(&stats, "dev_fuse_requests");
    assert_eq!(
        dev, 0,
        "/dev/fuse served requests the ring should have:\n{stats}"
    );
    for want in [
        "lookup",
        "getattr",
        "setattr",
        "mkdir",
        "create",
        "write",
        "read",
        "open",
        "release",
        "link",
        "symlink",
        "readlink",
        "rename",
        "unlink",
        "rmdir",
        "setxattr",
        "getxattr",
        "listxattr",
        "removexattr",
        "fsync",
        "statfs",
    ] {
        assert!(
            kinds.iter().any(|(k, n)| k == want && *n > 0),
            "no {want} served by the ring:\n{stats}"
        );
    }
    assert!(ring > 40, "{stats}");
    // The 3 MiB read came as 1 MiB read-ahead requests, which a ring
    // thread hands to its workers; the small requests stay on the ring
    // threads.
    let (_, worked) = counts(&stats, "io_uring_workers");
    assert!(
        worked.iter().any(|(k, n)| k == "read" && *n > 0),
        "no read served by a ring worker:\n{stats}"
    );
    assert!(
        worked
            .iter()
            .all(|(k, _)| ["read", "write", "fsync"].contains(&k.as_str())),
        "a short request went to a ring worker:\n{stats}"
    );
}

/// Ring threads run `SCHED_IDLE` (why: the `fs::uring` module doc); every
/// other daemon thread keeps the normal policy.
#[test]
fn ring_threads_run_sched_idle_and_nothing_else_does() {
    if !ring_possible() {
        return;
    }
    let m = Mounted::with_args(&["-o", "io_uring"]);
    fs::write(m.path("x"), b"1").unwrap();
    let pid = m.pid().expect("daemon pid");
    let mut rings = 0;
    for t in fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let t = t.unwrap().path();
        let comm = fs::read_to_string(t.join("comm")).unwrap();
        let stat = fs::read_to_string(t.join("stat")).unwrap();
        // Fields after the parenthesised name; policy is field 41.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let policy: i32 = after.split(' ').nth(41 - 3).unwrap().parse().unwrap();
        let is_ring = comm.trim().starts_with("lsmfs-ring") && !comm.contains("ringw");
        if is_ring {
            rings += 1;
        }
        let want = if is_ring {
            libc::SCHED_IDLE
        } else {
            libc::SCHED_OTHER
        };
        assert_eq!(policy, want, "thread {} ({})", comm.trim(), t.display());
    }
    assert_eq!(rings, possible_cpus());
}

fn statfs_works(p: &std::path::Path) {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    // SAFETY: statvfs writes into a zeroed struct we own.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    assert_eq!(r, 0);
    assert!(st.f_blocks > 0);
}

#[test]
fn a_clean_unmount_ends_every_ring_queue() {
    let Some(mut m) = ring_possible().then(|| Mounted::with_args(&["-o", "io_uring"])) else {
        return;
    };
    m.unmount();
    let log = m.log_text();
    assert!(log.contains("store closed cleanly"), "{log}");
    assert!(!log.contains("did not end"), "{log}");
}

#[test]
fn data_written_on_the_ring_survives_kill9_on_either_transport() {
    if !ring_possible() {
        return;
    }
    let mut m = Mounted::with_args(&["-o", "io_uring"]);
    fs::write(m.path("kept"), b"acknowledged").unwrap();
    m.kill9_and_remount();
    assert_eq!(fs::read(m.path("kept")).unwrap(), b"acknowledged");
    m.set_args(&["-o", "no_io_uring"]);
    m.remount();
    assert_eq!(fs::read(m.path("kept")).unwrap(), b"acknowledged");
    let stats = fs::read_to_string(m.path(".lsmfs-stats")).unwrap();
    assert!(stats.contains("transport            /dev/fuse"), "{stats}");
}

#[test]
fn the_default_follows_enable_uring() {
    if !ring_possible() {
        return;
    }
    let off = {
        let _n = EnableUring::set(false).unwrap();
        Mounted::with_default_transport(&[])
    };
    let stats = fs::read_to_string(off.path(".lsmfs-stats")).unwrap();
    assert!(
        stats.contains("transport            /dev/fuse, 4 threads"),
        "{stats}"
    );
    assert!(
        off.log_text()
            .contains("serving through /dev/fuse: /sys/module/fuse/parameters/enable_uring is N"),
        "{}",
        off.log_text()
    );
    let on = {
        let _y = EnableUring::set(true).unwrap();
        Mounted::with_default_transport(&[])
    };
    fs::write(on.path("x"), b"1").unwrap();
    let stats = fs::read_to_string(on.path(".lsmfs-stats")).unwrap();
    assert!(stats.contains("transport            io_uring"), "{stats}");
    assert!(counts(&stats, "io_uring_requests").0 > 0, "{stats}");
}

#[test]
fn forcing_the_ring_without_it_is_an_error() {
    if !ring_possible() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (data, mnt) = (tmp.path().join("data"), tmp.path().join("mnt"));
    fs::create_dir_all(&mnt).unwrap();
    let (code, _, err) = {
        let _n = EnableUring::set(false).unwrap();
        lsmfs(&[
            OsStr::new("mount"),
            data.as_os_str(),
            mnt.as_os_str(),
            OsStr::new("-o"),
            OsStr::new("io_uring"),
        ])
    };
    assert_ne!(code, 0);
    assert!(
        err.contains("-o io_uring: /sys/module/fuse/parameters/enable_uring is N"),
        "{err}"
    );
    assert!(!common::lsmfs_mounted(&mnt));
}
