//! POSIX behaviour through a real FUSE mount, driven with std::fs, libc
//! and shell tools.

mod common;
use common::{errno_of, sh, Mounted};
use std::ffi::CString;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

fn c(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("path")
}

#[test]
fn files_dirs_and_errors() {
    let m = Mounted::new();
    let f = m.path("hello.txt");
    fs::write(&f, b"hello world").unwrap();
    assert_eq!(fs::read(&f).unwrap(), b"hello world");
    // append
    let mut h = fs::OpenOptions::new().append(true).open(&f).unwrap();
    h.write_all(b"!!").unwrap();
    drop(h);
    assert_eq!(fs::read_to_string(&f).unwrap(), "hello world!!");
    // overwrite in place and read past EOF
    let mut h = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&f)
        .unwrap();
    h.seek(SeekFrom::Start(6)).unwrap();
    h.write_all(b"WORLD").unwrap();
    h.seek(SeekFrom::Start(100)).unwrap();
    let mut buf = Vec::new();
    assert_eq!(h.read_to_end(&mut buf).unwrap(), 0);
    drop(h);
    assert_eq!(fs::read_to_string(&f).unwrap(), "hello WORLD!!");
    // truncate down and up
    let h = fs::OpenOptions::new().write(true).open(&f).unwrap();
    h.set_len(5).unwrap();
    h.set_len(8).unwrap();
    drop(h);
    assert_eq!(fs::read(&f).unwrap(), b"hello\0\0\0");

    fs::create_dir(m.path("d")).unwrap();
    fs::create_dir(m.path("d/sub")).unwrap();
    assert_eq!(fs::metadata(m.path("d")).unwrap().nlink(), 3);
    assert_eq!(errno_of(fs::create_dir(m.path("d"))), libc::EEXIST);
    assert_eq!(errno_of(fs::remove_dir(m.path("d"))), libc::ENOTEMPTY);
    assert_eq!(errno_of(fs::read(m.path("missing"))), libc::ENOENT);
    assert_eq!(
        errno_of(fs::write(m.path("hello.txt/x"), b"")),
        libc::ENOTDIR
    );
    assert_eq!(errno_of(fs::remove_file(m.path("d"))), libc::EISDIR);
    let long = "n".repeat(256);
    assert_eq!(errno_of(fs::write(m.path(&long), b"")), libc::ENAMETOOLONG);
    fs::write(m.path(&"n".repeat(255)), b"ok").unwrap();
    fs::remove_dir(m.path("d/sub")).unwrap();
    assert_eq!(fs::metadata(m.path("d")).unwrap().nlink(), 2);
    let mut names: Vec<String> = fs::read_dir(m.mnt.clone())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(
        !names.iter().any(|n| n.starts_with(".lsmfs")),
        "control file must be hidden"
    );
}

#[test]
fn renames_links_and_symlinks() {
    let m = Mounted::new();
    fs::write(m.path("a"), b"A").unwrap();
    fs::write(m.path("b"), b"B").unwrap();
    fs::rename(m.path("a"), m.path("b")).unwrap();
    assert_eq!(fs::read(m.path("b")).unwrap(), b"A");
    assert!(!m.path("a").exists());
    fs::create_dir_all(m.path("x/y/z")).unwrap();
    fs::write(m.path("x/y/z/f"), b"deep").unwrap();
    assert_eq!(
        errno_of(fs::rename(m.path("x"), m.path("x/y/z/in"))),
        libc::EINVAL
    );
    fs::rename(m.path("x"), m.path("moved")).unwrap();
    assert_eq!(fs::read(m.path("moved/y/z/f")).unwrap(), b"deep");
    // rename a directory over an empty one, not over a non-empty one
    fs::create_dir(m.path("empty")).unwrap();
    fs::create_dir(m.path("full")).unwrap();
    fs::write(m.path("full/f"), b"").unwrap();
    assert_eq!(
        errno_of(fs::rename(m.path("moved"), m.path("full"))),
        libc::ENOTEMPTY
    );
    fs::rename(m.path("moved"), m.path("empty")).unwrap();
    assert_eq!(fs::read(m.path("empty/y/z/f")).unwrap(), b"deep");
    // renameat2 flags
    fs::write(m.path("p"), b"P").unwrap();
    fs::write(m.path("q"), b"Q").unwrap();
    let rn = |a: &str, b: &str, flags: u32| unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            c(&m.path(a)).as_ptr(),
            libc::AT_FDCWD,
            c(&m.path(b)).as_ptr(),
            flags,
        )
    };
    assert_eq!(rn("p", "q", libc::RENAME_NOREPLACE), -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::EEXIST)
    );
    assert_eq!(rn("p", "q", libc::RENAME_EXCHANGE), 0);
    assert_eq!(fs::read(m.path("p")).unwrap(), b"Q");
    assert_eq!(fs::read(m.path("q")).unwrap(), b"P");
    // hard links
    fs::hard_link(m.path("p"), m.path("p2")).unwrap();
    assert_eq!(fs::metadata(m.path("p")).unwrap().nlink(), 2);
    assert_eq!(
        fs::metadata(m.path("p")).unwrap().ino(),
        fs::metadata(m.path("p2")).unwrap().ino()
    );
    fs::remove_file(m.path("p")).unwrap();
    assert_eq!(fs::metadata(m.path("p2")).unwrap().nlink(), 1);
    assert_eq!(fs::read(m.path("p2")).unwrap(), b"Q");
    // symlinks
    std::os::unix::fs::symlink("p2", m.path("link")).unwrap();
    assert_eq!(fs::read_link(m.path("link")).unwrap(), Path::new("p2"));
    assert_eq!(fs::read(m.path("link")).unwrap(), b"Q");
    std::os::unix::fs::symlink("loop2", m.path("loop1")).unwrap();
    std::os::unix::fs::symlink("loop1", m.path("loop2")).unwrap();
    assert_eq!(errno_of(fs::read(m.path("loop1"))), libc::ELOOP);
    // shell tools
    sh(
        "mkdir -p t/a && echo hi > t/a/f && cp -r t t2 && mv t2 t3 && ls t3/a",
        &m.mnt,
    );
    assert_eq!(fs::read_to_string(m.path("t3/a/f")).unwrap(), "hi\n");
}

#[test]
fn attributes_xattrs_and_special_files() {
    let m = Mounted::new();
    let f = m.path("f");
    fs::write(&f, b"data").unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o640)).unwrap();
    assert_eq!(fs::metadata(&f).unwrap().mode() & 0o7777, 0o640);
    let cf = c(&f);
    assert_eq!(unsafe { libc::chown(cf.as_ptr(), 1234, 5678) }, 0);
    let md = fs::metadata(&f).unwrap();
    assert_eq!((md.uid(), md.gid()), (1234, 5678));
    // utimensat: set mtime, leave atime alone
    let before = fs::metadata(&f).unwrap();
    let times = [
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        libc::timespec {
            tv_sec: 1_000_000_000,
            tv_nsec: 5,
        },
    ];
    assert_eq!(
        unsafe { libc::utimensat(libc::AT_FDCWD, cf.as_ptr(), times.as_ptr(), 0) },
        0
    );
    let after = fs::metadata(&f).unwrap();
    assert_eq!(after.mtime(), 1_000_000_000);
    assert_eq!(after.mtime_nsec(), 5);
    assert_eq!(after.atime(), before.atime());
    // xattrs
    sh(
        "setfattr -n user.color -v blue f && setfattr -n user.size -v big f",
        &m.mnt,
    );
    let out = sh("getfattr -d f", &m.mnt);
    assert!(
        out.contains("user.color=\"blue\"") && out.contains("user.size=\"big\""),
        "{out}"
    );
    sh("setfattr -x user.color f", &m.mnt);
    assert!(!sh("getfattr -d f", &m.mnt).contains("color"));
    let name = CString::new("user.nothere").unwrap();
    let r = unsafe { libc::getxattr(cf.as_ptr(), name.as_ptr(), std::ptr::null_mut(), 0) };
    assert_eq!(r, -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::ENODATA)
    );
    // fifo
    let fifo = c(&m.path("fifo"));
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    use std::os::unix::fs::FileTypeExt;
    assert!(fs::symlink_metadata(m.path("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    // statfs
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c(&m.mnt).as_ptr(), &mut st) }, 0);
    assert!(st.f_blocks > 0 && st.f_namemax >= 255);
    // fallocate
    let h = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&f)
        .unwrap();
    use std::os::unix::io::AsRawFd;
    assert_eq!(unsafe { libc::fallocate(h.as_raw_fd(), 0, 0, 1 << 20) }, 0);
    assert_eq!(fs::metadata(&f).unwrap().len(), 1 << 20);
    assert_eq!(
        unsafe { libc::fallocate(h.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, 0, 4 << 20) },
        0
    );
    assert_eq!(fs::metadata(&f).unwrap().len(), 1 << 20);
}

#[test]
fn open_unlinked_file_and_mmap() {
    let m = Mounted::new();
    let p = m.path("tmpfile");
    let mut h = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&p)
        .unwrap();
    h.write_all(b"still here").unwrap();
    fs::remove_file(&p).unwrap();
    assert!(!p.exists());
    h.write_all(b" and more").unwrap();
    h.seek(SeekFrom::Start(0)).unwrap();
    let mut s = String::new();
    h.read_to_string(&mut s).unwrap();
    assert_eq!(s, "still here and more");
    drop(h);

    // shared mmap write then read through the file
    let p = m.path("mapped");
    let h = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&p)
        .unwrap();
    h.set_len(8192).unwrap();
    use std::os::unix::io::AsRawFd;
    unsafe {
        let ptr = libc::mmap(
            std::ptr::null_mut(),
            8192,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            h.as_raw_fd(),
            0,
        );
        assert_ne!(ptr, libc::MAP_FAILED);
        let s = std::slice::from_raw_parts_mut(ptr as *mut u8, 8192);
        s[..5].copy_from_slice(b"mmap!");
        s[8000] = 7;
        assert_eq!(libc::msync(ptr, 8192, libc::MS_SYNC), 0);
        libc::munmap(ptr, 8192);
    }
    drop(h);
    let data = fs::read(&p).unwrap();
    assert_eq!(&data[..5], b"mmap!");
    assert_eq!(data[8000], 7);
}

#[test]
fn concurrent_writers() {
    let m = Mounted::new();
    let shared = m.path("shared");
    fs::write(&shared, vec![0u8; 4 << 20]).unwrap();
    let mut hs = Vec::new();
    for t in 0..2u8 {
        let own = m.path(&format!("own{t}"));
        let shared = shared.clone();
        hs.push(std::thread::spawn(move || {
            let mut f = fs::File::create(&own).unwrap();
            for i in 0..200u32 {
                f.write_all(&[t.wrapping_add(i as u8); 4096]).unwrap();
            }
            let s = fs::OpenOptions::new().write(true).open(&shared).unwrap();
            use std::os::unix::fs::FileExt;
            for i in 0..256u64 {
                s.write_all_at(&[t + 1; 8192], (i * 2 + t as u64) * 8192)
                    .unwrap();
            }
        }));
    }
    for h in hs {
        h.join().unwrap();
    }
    for t in 0..2u8 {
        let d = fs::read(m.path(&format!("own{t}"))).unwrap();
        assert_eq!(d.len(), 200 * 4096);
        for i in 0..200usize {
            assert!(d[i * 4096..(i + 1) * 4096]
                .iter()
                .all(|&b| b == t.wrapping_add(i as u8)));
        }
    }
    let d = fs::read(&shared).unwrap();
    for (i, chunk) in d.chunks(8192).enumerate() {
        let want = (i % 2) as u8 + 1;
        assert!(chunk.iter().all(|&b| b == want), "chunk {i}");
    }
}

fn errno_now() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

#[test]
fn more_errno_cases() {
    let m = Mounted::new();
    fs::write(m.path("file"), b"f").unwrap();
    fs::create_dir(m.path("dir")).unwrap();
    fs::create_dir(m.path("full")).unwrap();
    fs::write(m.path("full/x"), b"").unwrap();
    // rename between kinds
    assert_eq!(
        errno_of(fs::rename(m.path("file"), m.path("dir"))),
        libc::EISDIR
    );
    assert_eq!(
        errno_of(fs::rename(m.path("dir"), m.path("file"))),
        libc::ENOTDIR
    );
    assert_eq!(
        errno_of(fs::rename(m.path("nope"), m.path("x"))),
        libc::ENOENT
    );
    assert_eq!(
        errno_of(fs::rename(m.path("full"), m.path("full/x/y"))),
        libc::ENOTDIR
    );
    assert_eq!(
        errno_of(fs::rename(m.path("full"), m.path("full/sub"))),
        libc::EINVAL
    );
    // rename onto itself and onto a hard link of itself: no-ops
    fs::rename(m.path("file"), m.path("file")).unwrap();
    fs::hard_link(m.path("file"), m.path("alias")).unwrap();
    fs::rename(m.path("file"), m.path("alias")).unwrap();
    assert_eq!(fs::read(m.path("file")).unwrap(), b"f");
    assert_eq!(fs::metadata(m.path("file")).unwrap().nlink(), 2);
    fs::remove_file(m.path("alias")).unwrap();
    // directories
    assert_eq!(errno_of(fs::remove_dir(m.path("file"))), libc::ENOTDIR);
    assert_eq!(errno_of(fs::remove_dir(m.path("nope"))), libc::ENOENT);
    assert_eq!(errno_of(fs::remove_dir(m.path("full"))), libc::ENOTEMPTY);
    assert_eq!(errno_of(fs::create_dir(m.path("file/sub"))), libc::ENOTDIR);
    assert_eq!(errno_of(fs::create_dir(m.path("nope/sub"))), libc::ENOENT);
    assert_eq!(errno_of(fs::remove_file(m.path("nope"))), libc::ENOENT);
    assert_eq!(
        errno_of(fs::OpenOptions::new().write(true).open(m.path("dir"))),
        libc::EISDIR
    );
    assert_eq!(
        errno_of(fs::hard_link(m.path("dir"), m.path("dirlink"))),
        libc::EPERM
    );
    // names that exist already
    assert_eq!(
        errno_of(
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(m.path("file"))
        ),
        libc::EEXIST
    );
    assert_eq!(
        errno_of(std::os::unix::fs::symlink("t", m.path("file"))),
        libc::EEXIST
    );
    assert_eq!(
        errno_of(fs::hard_link(m.path("file"), m.path("dir"))),
        libc::EEXIST
    );
    assert_eq!(errno_of(fs::read_link(m.path("file"))), libc::EINVAL);
    // name length: 255 bytes is fine everywhere, 256 is ENAMETOOLONG everywhere
    let ok = "k".repeat(255);
    let long = "l".repeat(256);
    fs::create_dir(m.path(&ok)).unwrap();
    assert_eq!(errno_of(fs::create_dir(m.path(&long))), libc::ENAMETOOLONG);
    assert_eq!(
        errno_of(fs::rename(m.path("file"), m.path(&long))),
        libc::ENAMETOOLONG
    );
    assert_eq!(
        errno_of(std::os::unix::fs::symlink("t", m.path(&long))),
        libc::ENAMETOOLONG
    );
    assert_eq!(errno_of(fs::metadata(m.path(&long))), libc::ENAMETOOLONG);
    // xattr create/replace flags
    let cf = c(&m.path("file"));
    let name = CString::new("user.k").unwrap();
    let set = |v: &[u8], flags: i32| unsafe {
        libc::setxattr(
            cf.as_ptr(),
            name.as_ptr(),
            v.as_ptr().cast(),
            v.len(),
            flags,
        )
    };
    assert_eq!(set(b"1", libc::XATTR_REPLACE), -1);
    assert_eq!(errno_now(), libc::ENODATA);
    assert_eq!(set(b"1", libc::XATTR_CREATE), 0);
    assert_eq!(set(b"2", libc::XATTR_CREATE), -1);
    assert_eq!(errno_now(), libc::EEXIST);
    assert_eq!(set(b"3", libc::XATTR_REPLACE), 0);
    let mut buf = [0u8; 8];
    let n = unsafe {
        libc::getxattr(
            cf.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    assert_eq!(&buf[..n as usize], b"3");
    // a too-small buffer is ERANGE; a zero-size one asks for the size
    let n0 = unsafe { libc::getxattr(cf.as_ptr(), name.as_ptr(), std::ptr::null_mut(), 0) };
    assert_eq!(n0, 1);
}

#[test]
fn large_directory_lists_every_entry_once_and_rm_rf_empties_it() {
    let m = Mounted::new();
    fs::create_dir(m.path("big")).unwrap();
    let n = 3000;
    for i in 0..n {
        fs::write(
            m.path(&format!("big/entry-with-a-longish-name-{i:05}")),
            b"",
        )
        .unwrap();
    }
    let mut names: Vec<String> = fs::read_dir(m.path("big"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), n);
    names.sort();
    names.dedup();
    assert_eq!(names.len(), n, "no entry twice");
    assert_eq!(sh("ls -f big | wc -l", &m.mnt).trim(), (n + 2).to_string());
    assert_eq!(sh("find big -type f | wc -l", &m.mnt).trim(), n.to_string());
    // remove entries while reading the directory: none may be missed
    let mut removed = 0;
    for e in fs::read_dir(m.path("big")).unwrap() {
        fs::remove_file(e.unwrap().path()).unwrap();
        removed += 1;
    }
    assert_eq!(removed, n);
    fs::remove_dir(m.path("big")).unwrap();
    sh(
        "mkdir -p t/a/b/c && touch t/a/1 t/a/b/2 t/a/b/c/3 && rm -rf t && test ! -e t",
        &m.mnt,
    );
    assert_eq!(fs::read_dir(m.mnt.clone()).unwrap().count(), 0);
}

#[test]
fn seek_data_and_hole() {
    let m = Mounted::new();
    let p = m.path("holey");
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&p)
        .unwrap();
    use std::os::unix::fs::FileExt;
    use std::os::unix::io::AsRawFd;
    let mib = 1i64 << 20;
    f.write_all_at(b"head", 0).unwrap();
    f.write_all_at(b"tail", 4 * mib as u64).unwrap();
    let size = 4 * mib + 4;
    let fd = f.as_raw_fd();
    let seek = |off: i64, whence: i32| unsafe { libc::lseek(fd, off, whence) };
    assert_eq!(seek(0, libc::SEEK_DATA), 0);
    let hole = seek(0, libc::SEEK_HOLE);
    assert!((4..=4 * mib).contains(&hole), "first hole at {hole}");
    assert!(
        hole < 4 * mib,
        "the 4 MiB gap is reported as a hole ({hole})"
    );
    let data = seek(2 * mib, libc::SEEK_DATA);
    assert!(
        (2 * mib..=4 * mib).contains(&data),
        "data after the gap at {data}"
    );
    assert_eq!(seek(4 * mib, libc::SEEK_HOLE), size);
    assert_eq!(seek(size, libc::SEEK_DATA), -1);
    assert_eq!(errno_now(), libc::ENXIO);
    assert_eq!(seek(0, libc::SEEK_END), size);
    // the hole reads as zeros
    let mut buf = vec![1u8; 4096];
    f.read_exact_at(&mut buf, 2 * mib as u64).unwrap();
    assert!(buf.iter().all(|&b| b == 0));
    // punching a hole (fallocate PUNCH_HOLE|KEEP_SIZE) if supported zeroes the range
    let r = unsafe {
        libc::fallocate(
            fd,
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            4 * mib,
            2,
        )
    };
    if r == 0 {
        let mut b = [9u8; 4];
        f.read_exact_at(&mut b, 4 * mib as u64).unwrap();
        assert_eq!(&b, b"\0\0il");
        assert_eq!(fs::metadata(&p).unwrap().len(), size as u64);
    } else {
        assert_eq!(errno_now(), libc::EOPNOTSUPP);
    }
}

#[test]
fn metadata_of_every_kind_survives_remount() {
    let mut m = Mounted::new();
    fs::create_dir(m.path("d")).unwrap();
    fs::write(m.path("d/f"), b"content").unwrap();
    fs::set_permissions(m.path("d/f"), fs::Permissions::from_mode(0o4751)).unwrap();
    fs::set_permissions(m.path("d"), fs::Permissions::from_mode(0o1777)).unwrap();
    let cf = c(&m.path("d/f"));
    assert_eq!(unsafe { libc::lchown(cf.as_ptr(), 42, 43) }, 0);
    let mode = fs::metadata(m.path("d/f")).unwrap().mode();
    assert_eq!(mode & 0o7777, 0o751, "chown clears set-user-ID");
    fs::set_permissions(m.path("d/f"), fs::Permissions::from_mode(0o4751)).unwrap();
    let times = [
        libc::timespec {
            tv_sec: 1_234_567_890,
            tv_nsec: 123_456_789,
        },
        libc::timespec {
            tv_sec: 1_500_000_000,
            tv_nsec: 987_654_321,
        },
    ];
    assert_eq!(
        unsafe { libc::utimensat(libc::AT_FDCWD, cf.as_ptr(), times.as_ptr(), 0) },
        0
    );
    std::os::unix::fs::symlink("../d/f", m.path("d/sym")).unwrap();
    let fifo = c(&m.path("d/fifo"));
    assert_eq!(
        unsafe { libc::mknod(fifo.as_ptr(), libc::S_IFIFO | 0o600, 0) },
        0
    );
    fs::hard_link(m.path("d/f"), m.path("hard")).unwrap();
    sh(
        "setfattr -n user.note -v 'kept' d/f && setfattr -n user.dir -v yes d",
        &m.mnt,
    );
    let snapshot = |m: &Mounted| {
        sh(
            "find . -printf '%p %y %m %U %G %s %n %l %T@ %A@\\n' | sort && getfattr -R -d . 2>/dev/null",
            &m.mnt,
        )
    };
    let before = snapshot(&m);
    assert!(
        before.contains("./d/f f 4751 42 43 7 2  1500000000.9876543210 1234567890.1234567890"),
        "{before}"
    );
    m.remount();
    let after = snapshot(&m);
    assert_eq!(before, after);
    assert!(after.contains("user.note=\"kept\"") && after.contains("user.dir=\"yes\""));
    use std::os::unix::fs::FileTypeExt;
    assert!(fs::symlink_metadata(m.path("d/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert_eq!(fs::read(m.path("d/sym")).unwrap(), b"content");
}

#[test]
fn times_follow_writes_and_truncate_by_path() {
    let m = Mounted::new();
    let p = m.path("t");
    fs::write(&p, b"12345678").unwrap();
    let old = c(&p);
    let times = [
        libc::timespec {
            tv_sec: 1000,
            tv_nsec: 0,
        },
        libc::timespec {
            tv_sec: 1000,
            tv_nsec: 0,
        },
    ];
    assert_eq!(
        unsafe { libc::utimensat(libc::AT_FDCWD, old.as_ptr(), times.as_ptr(), 0) },
        0
    );
    let ctime0 = fs::metadata(&p).unwrap().ctime();
    let mut f = fs::OpenOptions::new().append(true).open(&p).unwrap();
    f.write_all(b"9").unwrap();
    drop(f);
    let md = fs::metadata(&p).unwrap();
    assert!(md.mtime() > 1000, "write updates mtime");
    assert!(md.ctime() >= ctime0);
    // truncate(2) by path, no open handle
    assert_eq!(unsafe { libc::truncate(old.as_ptr(), 3) }, 0);
    assert_eq!(fs::read(&p).unwrap(), b"123");
    sh("truncate -s 6 t", &m.mnt);
    assert_eq!(fs::read(&p).unwrap(), b"123\0\0\0");
    // directory mtime changes when an entry is added
    fs::create_dir(m.path("d")).unwrap();
    let dc = c(&m.path("d"));
    assert_eq!(
        unsafe { libc::utimensat(libc::AT_FDCWD, dc.as_ptr(), times.as_ptr(), 0) },
        0
    );
    fs::write(m.path("d/new"), b"").unwrap();
    assert!(fs::metadata(m.path("d")).unwrap().mtime() > 1000);
}

/// Write-only descriptors bypass the page cache (one request per write);
/// readers holding cached pages, through read(2) or a shared mapping, must
/// still see every such write at once.
#[test]
fn direct_writes_are_seen_by_cached_readers_and_mappings() {
    use std::os::unix::fs::FileExt;
    use std::os::unix::io::AsRawFd;
    let mut m = Mounted::new();
    let p = m.path("coherent");
    fs::write(&p, vec![b'a'; 20000]).unwrap();
    let r = fs::File::open(&p).unwrap();
    let mut before = vec![0u8; 20000];
    r.read_exact_at(&mut before, 0).unwrap(); // now in the page cache
    assert!(before.iter().all(|&b| b == b'a'));
    let len = 20000usize;
    // SAFETY: a read-only shared mapping of a 20000-byte file, unmapped below.
    let map = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            r.as_raw_fd(),
            0,
        )
    };
    assert_ne!(map, libc::MAP_FAILED);
    // The mapped bytes change under us, so they are read volatile through
    // the raw pointer (a `&[u8]` over them would let the compiler reuse an
    // old read).
    let peek = |i: usize| {
        assert!(i < len);
        // SAFETY: `i` is inside the mapping, which stays mapped while used.
        unsafe { std::ptr::read_volatile(map.cast::<u8>().add(i)) }
    };
    assert_eq!(peek(6000), b'a');

    let w = fs::OpenOptions::new().write(true).open(&p).unwrap();
    w.write_all_at(&[b'b'; 10240], 5000).unwrap(); // unaligned, two pages partial
    let mut a = fs::OpenOptions::new().append(true).open(&p).unwrap();
    a.write_all(b"tail").unwrap();
    drop((w, a));
    // tar's pattern on a new file: 10 KiB records. Direct, each is one
    // request; through the cache the second is cut at the partial page it
    // starts in.
    let writes = fuse_requests(&m, "write");
    let mut t = fs::File::create(m.path("records")).unwrap();
    t.write_all(&[1u8; 10240]).unwrap();
    t.write_all(&[2u8; 10240]).unwrap();
    drop(t);
    if m.log_text().contains("write-only opens direct: true") {
        assert_eq!(fuse_requests(&m, "write") - writes, 2);
    }

    let mut want = vec![b'a'; 20000];
    want[5000..15240].fill(b'b');
    want.extend_from_slice(b"tail");
    let mut after = vec![0u8; want.len()];
    r.read_exact_at(&mut after, 0).unwrap();
    assert!(after == want, "a cached reader saw stale data");
    assert_eq!(peek(6000), b'b', "the mapping saw stale data");
    assert_eq!(peek(4999), b'a');
    // SAFETY: unmapping what was mapped above; `peek` is not used after.
    assert_eq!(unsafe { libc::munmap(map, len) }, 0);
    drop(r);
    assert!(fs::read(&p).unwrap() == want);
    m.remount();
    assert!(fs::read(&p).unwrap() == want);
}

/// How many FUSE requests of `kind` the daemon has served (`.lsmfs-stats`).
fn fuse_requests(m: &Mounted, kind: &str) -> u64 {
    let text = fs::read_to_string(m.path(".lsmfs-stats")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("fuse_requests"))
        .unwrap_or_else(|| panic!("no fuse_requests in {text}"));
    line.split(['(', ')', ','])
        .filter_map(|part| part.trim().split_once(' '))
        .find(|(k, _)| *k == kind)
        .map_or(0, |(_, n)| n.parse().unwrap())
}
