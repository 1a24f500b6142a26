//! A real workload: untar the local Python standard library into the mount,
//! remount, and compare every file's SHA-256 with the source.

mod common;
use common::{sh, Mounted};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

#[test]
fn untar_python_stdlib_and_compare_checksums() {
    let stdlib = String::from_utf8(
        Command::new("python3")
            .args([
                "-c",
                "import sysconfig;print(sysconfig.get_paths()['stdlib'])",
            ])
            .output()
            .expect("python3")
            .stdout,
    )
    .unwrap();
    let stdlib = stdlib.trim();
    let mut m = Mounted::new();
    let tar = m.tmp.path().join("src.tar");
    let src_sums = sh(
        &format!(
            "tar -C {stdlib} --exclude=site-packages --exclude=test --exclude=tests --exclude=__pycache__ -cf {} . && \
             cd {stdlib} && find . \\( -name site-packages -o -name test -o -name tests -o -name __pycache__ \\) -prune -o -type f -print0 | sort -z | xargs -0 sha256sum",
            tar.display()
        ),
        m.tmp.path(),
    );
    let files = src_sums.lines().count();
    assert!(files > 500, "expected a real tree, got {files} files");
    sh(
        &format!("mkdir tree && tar -C tree -xf {}", tar.display()),
        &m.mnt,
    );
    m.remount();
    let got = sh(
        "cd tree && find . -type f -print0 | sort -z | xargs -0 sha256sum",
        &m.mnt,
    );
    assert!(got == src_sums, "checksums differ after remount");
    sh("rm -rf tree", &m.mnt);
    assert_eq!(std::fs::read_dir(m.mnt.clone()).unwrap().count(), 0);
}

/// A listing of a tree that `cp -a` must reproduce exactly: type, mode,
/// size (not of directories: that is the filesystem's business), symlink
/// target, mtime (ns).
const LISTING: &str = "find . -printf '%p %y %m %s %l %T@\\n' | \
    awk '$2 == \"d\" {$4 = \"-\"} {print}' | LC_ALL=C sort";

#[test]
fn cp_a_keeps_modes_times_and_symlinks_and_git_works_in_the_mount() {
    let mut m = Mounted::new();
    // cp -a sets modes through the system.posix_acl_access xattr (libacl);
    // a filesystem must apply it to the mode, or refuse it (EOPNOTSUPP) so
    // that cp falls back to chmod; storing it as an opaque xattr loses modes.
    sh(
        "umask 077 && touch f && chmod 0754 f && cp -a f g",
        m.tmp.path(),
    );
    sh(&format!("cp -a {}/g g", m.tmp.path().display()), &m.mnt);
    let mode = fs::metadata(m.path("g")).unwrap().permissions().mode() & 0o7777;
    assert!(
        mode == 0o754,
        "cp -a gave mode {mode:o}, not 754: system.posix_acl_access stored, not applied"
    );
    // /usr/share/zoneinfo: a few MB with hundreds of symlinks and hard links
    let src = "/usr/share/zoneinfo";
    let want = sh(LISTING, std::path::Path::new(src));
    assert!(want.lines().count() > 100, "{src} looks empty");
    sh(
        &format!("cp -a {src} zi && diff -r --no-dereference {src} zi"),
        &m.mnt,
    );
    let got = sh(&format!("cd zi && {LISTING}"), &m.mnt);
    assert!(got == want, "cp -a copy differs from {src}");
    m.remount();
    let got = sh(&format!("cd zi && {LISTING}"), &m.mnt);
    assert!(got == want, "cp -a copy differs from {src} after remount");
    sh(&format!("diff -r --no-dereference {src} zi"), &m.mnt);

    // git: lock files, renames over existing files, fsync, many small objects
    sh(
        "mkdir repo && cd repo && git init -q && cp -r ../zi/Europe . && \
         git add -A && git -c user.name=t -c user.email=t@t commit -qm one && \
         echo change >> Europe/Paris && git -c user.name=t -c user.email=t@t commit -qam two && \
         git mv Europe/Berlin Europe/Berlin2 && git -c user.name=t -c user.email=t@t commit -qm three && \
         git gc -q && git fsck --no-progress --strict",
        &m.mnt,
    );
    m.remount();
    let status = sh(
        "cd repo && git status --porcelain && git log --oneline | wc -l",
        &m.mnt,
    );
    assert_eq!(
        status.trim(),
        "3",
        "clean tree with three commits: {status}"
    );
    sh("cd repo && git fsck --no-progress --strict", &m.mnt);
}
