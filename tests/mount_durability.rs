//! Persistence through a real mount: clean remounts, kill -9 of the daemon,
//! sparse multi-GiB files, a second daemon on a locked directory.

mod common;
use common::Mounted;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::process::Command;

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
