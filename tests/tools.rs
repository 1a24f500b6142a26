//! The offline tools on a store built by a real workload through a mount:
//! `check`, `inspect manifest|sst|wal|blob|path`, `stats`, `compact` — and what
//! they say about deliberate damage.

mod common;
use common::{lsmfs_output as lsmfs, output_text as text, sh, Mounted};
use std::fs;
use std::path::{Path, PathBuf};

/// A store with a few hundred files, some large, flushed to tables.
fn build(m: &mut Mounted) {
    sh(
        "mkdir -p docs/a docs/b && for i in $(seq 1 200); do echo file $i > docs/a/f$i; done && \
         head -c 3000000 /dev/urandom > docs/b/big && ln docs/a/f1 docs/hard && ln -s a/f2 docs/sym && \
         setfattr -n user.tag -v x docs/a/f3",
        &m.mnt,
    );
    m.unmount();
    let o = lsmfs(&["compact", m.data.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
}

fn files_with(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

#[test]
fn check_inspect_stats_on_a_real_store() {
    let mut m = Mounted::new();
    build(&mut m);
    let data = m.data.to_str().unwrap().to_string();
    // A file the MANIFEST does not name (left by a crash) is garbage, not a problem.
    fs::write(m.data.join("000999.sst"), b"half-written table").unwrap();
    let o = lsmfs(&["check", &data]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("clean") && t.contains("filesystem:"), "{t}");
    assert!(t.contains("garbage: 000999.sst"), "{t}");

    let t = text(&lsmfs(&["inspect", "manifest", &data]));
    assert!(
        t.contains("edit 0") && t.contains("Version:") && t.contains("+L"),
        "{t}"
    );
    let sst = files_with(&m.data, "sst");
    let t = text(&lsmfs(&[
        "inspect",
        "sst",
        sst[0].to_str().unwrap(),
        "--keys",
    ]));
    assert!(
        t.contains("checksums: all blocks OK") && t.contains("chunk ino="),
        "{t}"
    );
    // The big file's chunks live in a blob file, which check verified.
    let o = lsmfs(&["check", &data]);
    assert!(text(&o).contains("blob files: 1 files"), "{}", text(&o));
    let blob = files_with(&m.data, "blob");
    assert_eq!(blob.len(), 1, "{blob:?}");
    let t = text(&lsmfs(&["inspect", "blob", blob[0].to_str().unwrap()]));
    assert!(
        t.contains("checksums OK") && t.contains("4096 byte value") && !t.contains("chunk ino="),
        "keys only with --keys: {t}"
    );
    let t = text(&lsmfs(&[
        "inspect",
        "blob",
        blob[0].to_str().unwrap(),
        "--keys",
    ]));
    assert!(t.contains("chunk ino="), "{t}");
    let t = text(&lsmfs(&["inspect", "manifest", &data]));
    assert!(t.contains("+blob #"), "{t}");
    let t = text(&lsmfs(&["inspect", "path", &data, "/docs/a/f3"]));
    assert!(
        t.contains("dentry parent=") && t.contains("name=\"f3\"") && t.contains("xattr"),
        "{t}"
    );
    let t = text(&lsmfs(&["stats", &data]));
    assert!(t.contains("L0") && t.contains("write_amplification"), "{t}");

    // A live mount: stats come from the daemon through the hidden file.
    m.start();
    fs::write(m.path("live"), b"x").unwrap();
    let t = text(&lsmfs(&["stats", m.mnt.to_str().unwrap()]));
    assert!(t.contains("live statistics") && t.contains("writes"), "{t}");
    // ... with the FUSE requests served, by kind.
    let line = t
        .lines()
        .find(|l| l.starts_with("fuse_requests"))
        .unwrap_or_else(|| panic!("no fuse_requests line in {t}"));
    assert!(
        line.contains("create ") && line.contains("write "),
        "{line}"
    );
    let o = lsmfs(&["check", &data]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "check must refuse while mounted: {}",
        text(&o)
    );
    // A torn WAL tail, shown by inspect wal.
    m.kill9_and_remount();
    sh("echo more > docs/more", &m.mnt);
    m.unmount();
    let wal = files_with(&m.data, "log").pop().expect("a WAL");
    cut_log_records(&wal, 3);
    let t = text(&lsmfs(&["inspect", "wal", wal.to_str().unwrap()]));
    assert!(t.contains("torn tail"), "{t}");
}

#[test]
fn damage_gets_clear_answers() {
    let mut m = Mounted::new();
    build(&mut m);
    let data = m.data.to_str().unwrap().to_string();
    // Flip a byte in the first data block of the first table (file data).
    let sst = files_with(&m.data, "sst");
    let victim = sst[0].clone();
    let mut bytes = fs::read(&victim).unwrap();
    bytes[100] ^= 0xff;
    fs::write(&victim, &bytes).unwrap();
    let o = lsmfs(&["check", &data]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    let name = victim.file_name().unwrap().to_str().unwrap();
    assert!(
        t.contains(name) && t.contains("offset 0"),
        "check must name file and offset: {t}"
    );
    // The mount stays up; reading the damaged block gives EIO.
    m.start();
    let mut eio = 0;
    for e in walk(&m.mnt) {
        if let Err(err) = fs::read(&e) {
            assert_eq!(err.raw_os_error(), Some(libc::EIO), "{e:?}: {err}");
            eio += 1;
        }
    }
    assert!(eio > 0, "some file must sit in the damaged block");
    fs::write(m.path("still-works"), b"yes").unwrap();
    assert_eq!(fs::read(m.path("still-works")).unwrap(), b"yes");
    m.unmount();
    fs::write(&victim, {
        bytes[100] ^= 0xff;
        &bytes
    })
    .unwrap();

    // A missing live table: a clear error naming it.
    let saved = fs::read(&victim).unwrap();
    fs::remove_file(&victim).unwrap();
    let o = lsmfs(&["mount", &data, m.mnt.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(text(&o).contains(name), "{}", text(&o));
    let o = lsmfs(&["check", &data]);
    assert!(text(&o).contains(name), "{}", text(&o));
    fs::write(&victim, saved).unwrap();

    // A damaged blob record: check names the blob file and the record's
    // offset; reading the file gives EIO; the rest is served.
    let blob = files_with(&m.data, "blob").pop().expect("a blob file");
    let saved = fs::read(&blob).unwrap();
    let mut bad = saved.clone();
    bad[5000] ^= 0xff;
    fs::write(&blob, &bad).unwrap();
    let o = lsmfs(&["check", &data]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    let bname = blob.file_name().unwrap().to_str().unwrap();
    assert!(
        t.contains(bname) && t.contains("checksum mismatch"),
        "check must name the blob file: {t}"
    );
    m.start();
    let err = fs::read(m.path("docs/b/big")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert_eq!(fs::read_to_string(m.path("docs/a/f9")).unwrap(), "file 9\n");
    m.unmount();
    fs::write(&blob, saved).unwrap();
    let o = lsmfs(&["check", &data]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // A missing CURRENT: a clear error, not an empty filesystem.
    let cur = m.data.join("CURRENT");
    let saved = fs::read(&cur).unwrap();
    fs::remove_file(&cur).unwrap();
    let o = lsmfs(&["mount", &data, m.mnt.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(text(&o).contains("CURRENT"), "{}", text(&o));
    fs::write(&cur, saved).unwrap();
    m.start();
    assert_eq!(fs::read_to_string(m.path("docs/a/f7")).unwrap(), "file 7\n");
}

#[test]
fn truncated_wal_recovers_to_the_last_whole_record() {
    let mut m = Mounted::new();
    for i in 0..50 {
        fs::write(m.path(&format!("f{i}")), format!("{i}")).unwrap();
    }
    m.kill9_and_remount(); // replays the WAL into a table
    for i in 50..60 {
        fs::write(m.path(&format!("f{i}")), format!("{i}")).unwrap();
    }
    // Stop the daemon without a flush, then cut the newest WAL mid-record.
    let pid = m.pid().unwrap();
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    std::thread::sleep(std::time::Duration::from_millis(200));
    let wal = files_with(&m.data, "log").pop().expect("a WAL");
    cut_log_records(&wal, 5);
    m.kill9_and_remount();
    assert!(m.log_text().contains("torn tail"), "{}", m.log_text());
    for i in 0..59 {
        assert_eq!(
            fs::read_to_string(m.path(&format!("f{i}"))).unwrap(),
            format!("{i}")
        );
    }
    // f59's create and its data are two records; the data record was torn.
    assert!(
        fs::read(m.path("f59")).map_or(true, |d| d.is_empty()),
        "the torn last record is dropped"
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let md = fs::symlink_metadata(&p).unwrap();
        if md.is_dir() {
            out.extend(walk(&p));
        } else if md.is_file() {
            out.push(p);
        }
    }
    out
}

/// Cut the last `n` bytes of a log's records. A WAL keeps zeros written past
/// its records (so that fsyncs need not change its size); those are skipped.
fn cut_log_records(wal: &Path, n: u64) {
    let data = fs::read(wal).unwrap();
    let end = data
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |p| p as u64 + 1);
    assert!(
        end > n + 10,
        "{} holds only {end} bytes of records",
        wal.display()
    );
    fs::OpenOptions::new()
        .write(true)
        .open(wal)
        .unwrap()
        .set_len(end - n)
        .unwrap();
}
