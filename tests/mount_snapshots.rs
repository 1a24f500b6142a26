//! Snapshots on a real mount of the built binary: untar a real source
//! tree (a part of /usr/include, with its symlinks), snapshot it, modify,
//! rename, delete and overwrite half of it, and `.snapshots/NAME` still
//! matches the original by SHA-256 and by listing (modes, sizes, times,
//! symlinks) — after an offline compaction, an unmount and a kill -9 +
//! remount. Writes into it get EROFS; `find`, `cp -a`, `tar`, `diff -r`
//! and `rsync` work on it; `snapshot diff` names the changes; deleting the snapshot
//! and compacting brings the data directory back to the live tree's size.

mod common;
use common::{errno_of, lsmfs_output, output_text, sh, Mounted};
use std::path::Path;

/// Files and symlinks: type, mode, size (not of directories), target,
/// mtime (ns), then every file's SHA-256.
const LISTING: &str = "find . -printf '%p %y %m %s %l %T@\\n' | \
    awk '$2 == \"d\" {$4 = \"-\"} {print}' | LC_ALL=C sort && \
    find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum";

fn listing(dir: &Path) -> String {
    sh(LISTING, dir)
}

/// Panic with the lines that differ unless `dir`'s listing is `want`.
fn assert_listing(dir: &Path, want: &str, what: &str) {
    let got = listing(dir);
    if got != want {
        let (g, w): (Vec<&str>, Vec<&str>) = (got.lines().collect(), want.lines().collect());
        let extra: Vec<&&str> = g.iter().filter(|l| !w.contains(l)).take(20).collect();
        let missing: Vec<&&str> = w.iter().filter(|l| !g.contains(l)).take(20).collect();
        panic!(
            "{what}: the listing differs\nonly in {dir:?}: {extra:#?}\nonly wanted: {missing:#?}"
        );
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("read data dir")
        .filter_map(|e| e.ok()?.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

fn run_ok(args: &[&str]) -> String {
    let o = lsmfs_output(args);
    let text = output_text(&o);
    assert!(o.status.success(), "lsmfs {args:?} failed: {text}");
    text
}

/// Unmount, `lsmfs compact`, check that the snapshot still pins (at least
/// half of) the tree of `orig_bytes`, remount; the data directory's bytes.
fn compact_offline_pinned(m: &mut Mounted, orig_bytes: u64) -> u64 {
    m.unmount();
    run_ok(&["compact", m.data.to_str().expect("path")]);
    let pinned = dir_bytes(&m.data);
    assert!(
        pinned > orig_bytes / 2,
        "the snapshot pins its tree: {pinned} bytes for {orig_bytes}"
    );
    m.start();
    pinned
}

#[test]
fn a_snapshot_keeps_the_tree_through_changes_compaction_and_kill_9() {
    let mut m = Mounted::new();
    let mnt = m.mnt.to_str().expect("path").to_string();
    let data = m.data.to_str().expect("path").to_string();
    sh(
        "mkdir tree && tar -C /usr/include -cf - linux asm-generic pngconf.h pnglibconf.h \
         2>/dev/null | tar -C tree -xf - && touch -d @1000000000.5 tree",
        &m.mnt,
    );
    let tree = m.path("tree");
    let want = listing(&tree);
    let files = want.lines().filter(|l| l.contains(" f ")).count();
    assert!(files > 500, "a real tree: {files} files");
    let orig_bytes: u64 = sh("du -sb --apparent-size tree | cut -f1", &m.mnt)
        .trim()
        .parse()
        .expect("du");

    let out = run_ok(&["snapshot", "create", &mnt, "before"]);
    assert!(out.contains("created"), "{out}");
    let snap = m.path(".snapshots/before");
    let snap_tree = snap.join("tree");

    // Change half of it: overwrite, append, rename, delete, chmod.
    sh(
        "cd tree && i=0; for f in $(find linux -type f | LC_ALL=C sort); do \
           i=$((i+1)); case $((i % 8)) in \
             0) echo overwritten > $f ;; 1) echo more >> $f ;; 2) mv $f $f.moved ;; \
             3) rm $f ;; esac; done && \
         mv asm-generic asm-renamed && (chmod 600 linux/kernel.h 2>/dev/null || true) && \
         rm -rf linux/netfilter && mkdir fresh && echo new > fresh/file",
        &m.mnt,
    );
    assert_ne!(listing(&tree), want, "the live tree changed");
    assert_listing(&snap_tree, &want, "the snapshot shows the original");

    // Read-only, every way of changing it.
    let erofs = libc::EROFS;
    let victim = snap_tree.join("linux/fs.h");
    assert_eq!(errno_of(std::fs::write(snap_tree.join("new"), b"x")), erofs);
    assert_eq!(
        errno_of(std::fs::OpenOptions::new().append(true).open(&victim)),
        erofs
    );
    assert_eq!(errno_of(std::fs::remove_file(&victim)), erofs);
    assert_eq!(errno_of(std::fs::create_dir(snap_tree.join("d"))), erofs);
    assert_eq!(
        errno_of(std::fs::rename(&victim, snap_tree.join("renamed"))),
        erofs
    );
    assert_eq!(errno_of(std::fs::write(snap.join("../f"), b"x")), erofs);
    let chmod = std::process::Command::new("chmod")
        .arg("777")
        .arg(&victim)
        .output()
        .expect("chmod");
    assert!(!chmod.status.success(), "chmod inside a snapshot succeeded");
    // `.snapshots` is not listed at the root.
    assert!(!sh("ls -a", &m.mnt).contains(".snapshots"));

    // The tools work on it.
    sh(
        "cp -a .snapshots/before/tree copy && diff -r --no-dereference copy .snapshots/before/tree \
         && tar -C .snapshots/before -cf - tree | tar -tf - | wc -l > /dev/null \
         && find .snapshots/before -type f | wc -l > /dev/null",
        &m.mnt,
    );
    assert_listing(&m.path("copy"), &want, "cp -a of the snapshot");
    // rsync leaves a directory's time alone when it matches to the second
    // (so the tree's own time was set in the past: the copy never runs in
    // the second of it, as on any filesystem).
    sh(
        "rsync -a .snapshots/before/tree/ rcopy/ && diff -r --no-dereference rcopy copy",
        &m.mnt,
    );
    assert_listing(&m.path("rcopy"), &want, "rsync -a of the snapshot");
    sh("rm -rf copy rcopy", &m.mnt);
    // Inode numbers inside never collide with live ones.
    let inos = sh(
        "stat -c %i tree/pngconf.h .snapshots/before/tree/pngconf.h",
        &m.mnt,
    );
    let inos: Vec<u64> = inos.lines().map(|l| l.parse().expect("ino")).collect();
    assert_ne!(inos[0], inos[1]);
    assert_eq!(inos[0], inos[1] & ((1 << 44) - 1));

    // The diff names what changed.
    let diff = run_ok(&["snapshot", "diff", &mnt, "before"]);
    assert!(
        diff.contains("R /tree/asm-generic -> /tree/asm-renamed"),
        "{diff}"
    );
    assert!(diff.contains("+ /tree/fresh\n"), "{diff}");
    assert!(diff.contains("- /tree/linux/netfilter\n"), "{diff}");
    assert!(
        diff.lines().any(|l| l.starts_with("M /tree/linux/")),
        "{diff}"
    );
    assert!(diff.lines().any(|l| l.ends_with(".moved")), "{diff}");
    let list = run_ok(&["snapshot", "list", &mnt]);
    assert!(list.lines().any(|l| l.starts_with("before\t")), "{list}");

    // Unmount, compact offline, remount: the same.
    m.unmount();
    run_ok(&["compact", &data]);
    let check = run_ok(&["check", &data]);
    assert!(check.contains("snapshot \"before\""), "{check}");
    m.start();
    assert_listing(&snap_tree, &want, "after compaction and remount");
    // kill -9 and remount: the same.
    m.kill9_and_remount();
    assert_listing(&snap_tree, &want, "after kill -9 and remount");

    // Delete the live tree: the snapshot pins it.
    sh("rm -rf tree", &m.mnt);
    let pinned = compact_offline_pinned(&mut m, orig_bytes);
    assert_listing(&snap_tree, &want, "pinned after the live tree went");
    // Delete it on the mount and compact: back to the live tree's size.
    run_ok(&["snapshot", "delete", &mnt, "before"]);
    assert_eq!(errno_of(std::fs::metadata(&snap)), libc::ENOENT, "deleted");
    m.unmount();
    run_ok(&["compact", &data]);
    let after = dir_bytes(&m.data);
    assert!(
        after < orig_bytes / 10 + (256 << 10),
        "deleting the snapshot gives its space back: {after} bytes left of {pinned} \
         (the tree was {orig_bytes})"
    );
    m.start();
}

/// Deleting a snapshot on a live mount gives its space back with no
/// `lsmfs compact` after it: the background thread rewrites the tables
/// that kept versions only it saw (`engine::snapshot`) — here all at the
/// bottom level, which no ordinary compaction rewrites — and the data
/// directory comes back near the live tree's size within a minute.
#[test]
fn deleting_a_snapshot_on_a_live_mount_gives_its_space_back() {
    let mut m = Mounted::with_args(&["--memtable-size", "256K"]);
    let mnt = m.mnt.to_str().expect("path").to_string();
    sh(
        "mkdir tree && tar -C /usr/include -cf - linux asm-generic 2>/dev/null | tar -C tree -xf -",
        &m.mnt,
    );
    let orig_bytes: u64 = sh("du -sb --apparent-size tree | cut -f1", &m.mnt)
        .trim()
        .parse()
        .expect("du");
    assert!(orig_bytes > 2 << 20, "a real tree: {orig_bytes} bytes");
    run_ok(&["snapshot", "create", &mnt, "before"]);
    // Overwrite a part, delete the rest; compact while the snapshot pins
    // it all, so that every old version sits in the bottom level beside
    // what hides it from the live tree.
    sh(
        "find tree/asm-generic -type f -exec sh -c 'echo new > \"$1\"' _ {} \\; && \
         rm -rf tree/linux",
        &m.mnt,
    );
    let live = listing(&m.path("tree"));
    let pinned = compact_offline_pinned(&mut m, orig_bytes);
    run_ok(&["snapshot", "delete", &mnt, "before"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let limit = orig_bytes / 10 + (1 << 20);
    let mut after = dir_bytes(&m.data);
    while after >= limit && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
        after = dir_bytes(&m.data);
    }
    let stats = std::fs::read_to_string(m.path(".lsmfs-stats")).unwrap_or_default();
    assert!(
        after < limit,
        "deleting the snapshot gives its space back: {after} bytes left of {pinned} \
         (the tree was {orig_bytes})\n{stats}\ndaemon log:\n{}",
        m.log_text()
    );
    assert!(
        stats.lines().any(
            |l| l.starts_with("snapshot_rewrites") && !l.starts_with("snapshot_rewrites    0 ")
        ),
        "{stats}"
    );
    assert_listing(&m.path("tree"), &live, "the live tree is intact");
}

/// The command line's refusals, on a mount and on a data directory.
#[test]
fn snapshot_names_and_offline_use() {
    let mut m = Mounted::new();
    let mnt = m.mnt.to_str().expect("path").to_string();
    let data = m.data.to_str().expect("path").to_string();
    std::fs::write(m.path("f"), b"one").expect("write");
    run_ok(&["snapshot", "create", &mnt, "a"]);
    for (bad, why) in [
        ("a", "already exists"),
        ("..", "cannot name"),
        ("x/y", "'/'"),
        (&"n".repeat(256)[..], "at most 255"),
    ] {
        let o = lsmfs_output(&["snapshot", "create", &mnt, bad]);
        assert_eq!(o.status.code(), Some(1), "{bad}: {}", output_text(&o));
        assert!(output_text(&o).contains(why), "{bad}: {}", output_text(&o));
    }
    let o = lsmfs_output(&["snapshot", "delete", &mnt, "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        output_text(&o).contains("no snapshot"),
        "{}",
        output_text(&o)
    );
    // Offline while mounted: the LOCK is the daemon's.
    let o = lsmfs_output(&["snapshot", "create", &data, "b"]);
    assert_eq!(o.status.code(), Some(2), "{}", output_text(&o));
    std::fs::write(m.path("f"), b"two").expect("write");
    m.unmount();
    run_ok(&["snapshot", "create", &data, "b"]);
    let o = lsmfs_output(&["snapshot", "create", &data, "b"]);
    assert_eq!(o.status.code(), Some(1), "{}", output_text(&o));
    let list = run_ok(&["snapshot", "list", &data]);
    assert!(list.contains("\na\t") && list.contains("\nb\t"), "{list}");
    let diff = run_ok(&["snapshot", "diff", &data, "a", "b"]);
    assert_eq!(diff.trim(), "M /f", "{diff}");
    let stats = run_ok(&["stats", &data]);
    assert!(stats.contains("only_it_holds"), "{stats}");
    m.start();
    assert_eq!(std::fs::read(m.path(".snapshots/a/f")).expect("a"), b"one");
    assert_eq!(std::fs::read(m.path(".snapshots/b/f")).expect("b"), b"two");
    let stats = std::fs::read_to_string(m.path(".lsmfs-stats")).expect("stats");
    assert!(stats.contains("name \"b\""), "{stats}");
    run_ok(&["snapshot", "delete", &mnt, "a"]);
    assert!(!m.path(".snapshots/a").exists());
}
