//! Persistence through a real mount: clean remounts, kill -9 of the daemon,
//! sparse multi-GiB files, a second daemon on a locked directory.

mod common;
use common::{errno_of, Mounted};
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[test]
fn tree_survives_remount() {
    let mut m = Mounted::new();
    fs::create_dir_all(m.path("a/b")).unwrap();
    fs::write(m.path("a/b/small"), b"tiny").unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(m.path("a/big"), &big).unwrap();
    std::os::unix::fs::symlink("b/small", m.path("a/link")).unwrap();
    fs::hard_link(m.path("a/b/small"), m.path("a/hard")).unwrap();
    let ino = fs::metadata(m.path("a/big")).unwrap().ino();
    m.remount();
    assert_eq!(fs::read(m.path("a/b/small")).unwrap(), b"tiny");
    assert_eq!(fs::read(m.path("a/big")).unwrap(), big);
    assert_eq!(fs::read(m.path("a/link")).unwrap(), b"tiny");
    assert_eq!(fs::metadata(m.path("a/hard")).unwrap().nlink(), 2);
    assert_eq!(
        fs::metadata(m.path("a/big")).unwrap().ino(),
        ino,
        "inode numbers are stable"
    );
    // new inodes never reuse old numbers
    fs::write(m.path("new"), b"n").unwrap();
    assert!(fs::metadata(m.path("new")).unwrap().ino() > ino);
}

#[test]
fn sparse_file_of_many_gib() {
    let mut m = Mounted::new();
    let p = m.path("sparse");
    let mut f = fs::File::create(&p).unwrap();
    f.seek(SeekFrom::Start(5 << 30)).unwrap();
    f.write_all(b"x").unwrap();
    drop(f);
    assert_eq!(fs::metadata(&p).unwrap().len(), (5 << 30) + 1);
    m.remount();
    // The holes take no blocks: du, cp --sparse, tar -S see a sparse file.
    assert_eq!(fs::metadata(&p).unwrap().blocks(), 8);
    let mut f = fs::File::open(&p).unwrap();
    let mut buf = vec![1u8; 1 << 20];
    f.seek(SeekFrom::Start(3 << 30)).unwrap();
    f.read_exact(&mut buf).unwrap();
    assert!(buf.iter().all(|&b| b == 0), "holes read as zeros");
    f.seek(SeekFrom::Start(5 << 30)).unwrap();
    let mut last = Vec::new();
    f.read_to_end(&mut last).unwrap();
    assert_eq!(last, b"x");
    use std::os::unix::io::AsRawFd;
    let data = unsafe { libc::lseek(f.as_raw_fd(), 0, libc::SEEK_DATA) };
    assert!(data >= (4 << 30), "SEEK_DATA skips the hole: {data}");
    // truncate down frees the tail
    let f = fs::OpenOptions::new().write(true).open(&p).unwrap();
    f.set_len(10).unwrap();
    assert_eq!(fs::metadata(&p).unwrap().len(), 10);
}

#[test]
fn kill9_keeps_every_acknowledged_write() {
    let mut m = Mounted::new();
    let mut expected: Vec<(String, Vec<u8>)> = Vec::new();
    for cycle in 0..3 {
        for i in 0..50 {
            let name = format!("c{cycle}-f{i}");
            let data = format!("{cycle}:{i}:").repeat(i * 37 + 1).into_bytes();
            fs::write(m.path(&name), &data).unwrap();
            expected.push((name, data));
        }
        fs::create_dir(m.path(&format!("dir{cycle}"))).unwrap();
        fs::rename(
            m.path(&format!("c{cycle}-f0")),
            m.path(&format!("dir{cycle}/moved")),
        )
        .unwrap();
        let moved = expected
            .iter()
            .position(|(n, _)| *n == format!("c{cycle}-f0"))
            .unwrap();
        expected[moved].0 = format!("dir{cycle}/moved");
        m.kill9_and_remount();
        for (name, data) in &expected {
            assert_eq!(
                &fs::read(m.path(name)).unwrap(),
                data,
                "{name} after kill -9 #{cycle}"
            );
        }
    }
    assert!(
        m.log_text().contains("stale"),
        "the stale mount should have been detached"
    );
}

#[test]
fn second_daemon_on_the_same_data_dir_fails_clearly() {
    let m = Mounted::new();
    let other = m.tmp.path().join("mnt2");
    fs::create_dir(&other).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lsmfs"))
        .arg("mount")
        .arg(&m.data)
        .arg(&other)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("locked"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one clear line: {err}");
}

#[test]
fn bad_mount_points_get_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("file");
    fs::write(&file, b"").unwrap();
    for mp in [tmp.path().join("missing"), file] {
        let out = Command::new(env!("CARGO_BIN_EXE_lsmfs"))
            .arg("mount")
            .arg(tmp.path().join("data"))
            .arg(&mp)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("mount point"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// What a writer thread knows was acknowledged: file contents (None: an
/// operation on it was cut off by the kill, so its state is unknown) and
/// the acknowledged content of an append-only journal.
#[derive(Default)]
struct Acked {
    files: std::collections::BTreeMap<String, Option<Vec<u8>>>,
    journal: Vec<u8>,
    /// The journal line being appended when the writer stopped.
    journal_in_flight: Vec<u8>,
}

fn journal_line(i: usize) -> Vec<u8> {
    format!("journal record {i:06} {}\n", "j".repeat(i % 50)).into_bytes()
}

fn file_data(cycle: usize, i: usize) -> Vec<u8> {
    (0..(i * 7919) % 200_000 + 1)
        .map(|b| (b * 31 + i + cycle) as u8)
        .collect()
}

/// Write files, overwrite some in place, append to a journal, recording
/// each acknowledgement, until an operation fails (the daemon was killed).
fn writer(mnt: PathBuf, ack: Arc<Mutex<Acked>>, cycle: usize, first_line: usize) {
    let Ok(mut journal) = fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(mnt.join("journal"))
    else {
        return;
    };
    for (i, line) in (first_line..).enumerate() {
        let name = format!("c{cycle}-{i}");
        let data = file_data(cycle, i);
        ack.lock().unwrap().files.insert(name.clone(), None);
        if fs::write(mnt.join(&name), &data).is_err() {
            return;
        }
        ack.lock().unwrap().files.insert(name, Some(data));
        if i % 4 == 3 {
            // overwrite the head of an earlier file in place
            let old = format!("c{cycle}-{}", i - 2);
            let head = format!("rewritten {old} at {i}").into_bytes();
            let Some(Some(mut merged)) = ack.lock().unwrap().files.insert(old.clone(), None) else {
                return;
            };
            let r = fs::OpenOptions::new()
                .write(true)
                .open(mnt.join(&old))
                .and_then(|mut f| f.write_all(&head));
            if r.is_err() {
                return;
            }
            if merged.len() < head.len() {
                merged.resize(head.len(), 0);
            }
            merged[..head.len()].copy_from_slice(&head);
            ack.lock().unwrap().files.insert(old, Some(merged));
        }
        let rec = journal_line(line);
        ack.lock().unwrap().journal_in_flight = rec.clone();
        if journal.write_all(&rec).is_err() {
            return;
        }
        let mut a = ack.lock().unwrap();
        a.journal.extend_from_slice(&rec);
        a.journal_in_flight.clear();
    }
}

#[test]
fn kill9_mid_stream_with_flushes_loses_nothing_acknowledged() {
    // A 64 KiB memtable: the stream crosses many flushes and compactions.
    let mut m = Mounted::with_args(&["--memtable-size", "65536"]);
    let acked = Arc::new(Mutex::new(Acked::default()));
    for cycle in 0..4 {
        let first_line = acked
            .lock()
            .unwrap()
            .journal
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        let (mnt, ack) = (m.mnt.clone(), acked.clone());
        let w = std::thread::spawn(move || writer(mnt, ack, cycle, first_line));
        std::thread::sleep(Duration::from_millis(300 + 200 * cycle as u64));
        m.kill9();
        w.join().unwrap();
        m.start();
        let mut a = acked.lock().unwrap();
        let mut checked = 0;
        for (name, want) in &a.files {
            if let Some(want) = want {
                let got = fs::read(m.path(name))
                    .unwrap_or_else(|e| panic!("{name} lost after kill -9 #{cycle}: {e}"));
                assert!(&got == want, "{name} differs after kill -9 #{cycle}");
                checked += 1;
            }
        }
        assert!(checked > 3, "the writer got going ({checked} files)");
        let journal = fs::read(m.path("journal")).unwrap();
        let rest = journal
            .strip_prefix(a.journal.as_slice())
            .unwrap_or_else(|| panic!("journal lost acknowledged appends after kill -9 #{cycle}"));
        assert!(
            rest.is_empty() || rest == a.journal_in_flight.as_slice(),
            "journal tail after kill -9 #{cycle} is neither nothing nor the record in flight"
        );
        a.journal = journal;
        a.journal_in_flight.clear();
    }
    assert!(m.log_text().contains("stale"));
}

#[test]
fn kill9_with_an_open_unlinked_file_reclaims_it() {
    let mut m = Mounted::new();
    let mut f = fs::File::create(m.path("ghost")).unwrap();
    f.write_all(&vec![7u8; 3 << 20]).unwrap();
    fs::remove_file(m.path("ghost")).unwrap();
    f.write_all(b"still writable").unwrap();
    fs::write(m.path("kept"), b"kept").unwrap();
    m.kill9();
    drop(f);
    m.start();
    assert!(!m.path("ghost").exists());
    assert_eq!(fs::read(m.path("kept")).unwrap(), b"kept");
    // (a count, not a Vec<DirEntry>: entries keep the directory open, busy)
    assert_eq!(fs::read_dir(m.mnt.clone()).unwrap().count(), 1);
    m.remount();
    assert_eq!(fs::read(m.path("kept")).unwrap(), b"kept");
}

/// A full disk: writes get ENOSPC while a reserve is still free (room for
/// flushes and compactions), the mount keeps serving, deleting gives the
/// space back without a remount, and the store stays whole.
#[test]
fn a_full_disk_is_enospc_and_deleting_gives_the_room_back() {
    let mut m = Mounted::on_small_disk(64, &["--memtable-size", "1048576"]);
    let chunk: Vec<u8> = (0..1u32 << 20).map(|i| (i % 253) as u8).collect();
    let mut f = fs::File::create(m.path("big")).unwrap();
    let mut written = 0;
    let err = loop {
        match f.write_all(&chunk) {
            Ok(()) => written += 1,
            Err(e) => break e,
        }
        assert!(written < 200, "a 64 MiB disk took {written} MiB");
    };
    drop(f);
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    assert!(written >= 16, "only {written} MiB fit on a 64 MiB disk");
    // df on the mount counts the reserve (8 memtables: 8 MiB) as used.
    let avail = |p: &std::path::Path| {
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
        st.f_bavail * st.f_frsize
    };
    // Flushes and compactions retried in the background free and take
    // space: compare the two only when the disk read the same before and
    // after the mount did (a retry runs at most every 500 ms).
    let (disk, mount) = (0..200)
        .find_map(|_| {
            let (before, mount, after) = (avail(&m.data), avail(&m.mnt), avail(&m.data));
            if before == after {
                return Some((before, mount));
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
            None
        })
        .expect("the disk's free space kept changing for 2 s");
    assert!(
        mount <= disk.saturating_sub(7 << 20) && mount < 16 << 20,
        "statfs: {mount} bytes available on the mount, {disk} on its disk"
    );
    // Still serving: reads, listings; more data is refused cleanly.
    let mut head = vec![0u8; 1 << 20];
    fs::File::open(m.path("big"))
        .unwrap()
        .read_exact(&mut head)
        .unwrap();
    assert_eq!(head, chunk);
    assert_eq!(fs::read_dir(&m.mnt).unwrap().count(), 1);
    // (Flushes and compactions still running may give a few MiB back.)
    let more = (0..20)
        .map(|i| errno_of(fs::write(m.path(&format!("more{i}")), &chunk)))
        .find(|&e| e != 0);
    assert_eq!(more, Some(libc::ENOSPC));
    // Deleting gives the room back at once: the next write waits for the
    // compaction that drops the deleted data.
    fs::remove_file(m.path("big")).unwrap();
    for i in 0..20 {
        let _ = fs::remove_file(m.path(&format!("more{i}")));
    }
    fs::write(m.path("after"), &chunk).expect("room after the delete");
    // A file closed just before its unlink may still be open in the
    // daemon (FUSE sends RELEASE in the background): the next write waits
    // for that release. Here the handle is closed only after the unlink.
    let mut f = fs::File::create(m.path("big2")).unwrap();
    let mut n = 0;
    while f.write_all(&chunk).is_ok() {
        n += 1;
        assert!(n < 200, "a 64 MiB disk took {n} MiB");
    }
    drop(f);
    let held = fs::File::open(m.path("big2")).unwrap();
    fs::remove_file(m.path("big2")).unwrap();
    let closer = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(held);
    });
    fs::write(m.path("after2"), &chunk).expect("room after the release of a removed file");
    closer.join().unwrap();
    m.remount();
    assert_eq!(fs::read(m.path("after")).unwrap(), chunk);
    assert_eq!(fs::read(m.path("after2")).unwrap(), chunk);
    assert!(!m.path("big").exists() && !m.path("big2").exists());
    m.unmount();
    let (code, out, err) = common::lsmfs(&["check".as_ref(), m.data.as_os_str()]);
    assert_eq!(code, 0, "check after a full disk:\n{out}{err}");
}

/// `--space-reserve-mb` beyond the disk's free space: nothing that adds data
/// fits, df shows nothing available, removing still works.
#[test]
fn a_reserve_larger_than_the_disk_refuses_new_data() {
    let mut m = Mounted::new();
    fs::write(m.path("old"), b"kept").unwrap();
    m.set_args(&["--space-reserve-mb", "1000000000"]);
    m.remount();
    assert_eq!(errno_of(fs::write(m.path("new"), b"x")), libc::ENOSPC);
    assert_eq!(errno_of(fs::create_dir(m.path("dir"))), libc::ENOSPC);
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let c = std::ffi::CString::new(m.mnt.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
    assert_eq!(st.f_bavail, 0);
    let stats = fs::read_to_string(m.path(".lsmfs-stats")).unwrap();
    assert!(
        stats.contains("operations refused with ENOSPC") && !stats.contains("(0 operations"),
        "{stats}"
    );
    assert_eq!(fs::read(m.path("old")).unwrap(), b"kept");
    fs::remove_file(m.path("old")).unwrap();
}
