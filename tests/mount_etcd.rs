//! lsmfs on a real 3-member etcd cluster (started per test on free ports,
//! killed by its drop guard): several mounts of one prefix, conflicting
//! creates, a member killed under load, transactions etcd cannot take.
//! The POSIX suite itself runs on etcd with `LSMFS_TEST_STORE=etcd`
//! (scripts/test.sh).

mod common;
use common::etcd::EtcdCluster;
use common::{errno_of, Mounted};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

/// Wait (up to 5 s: the kernel's entry and attribute timeout is 1 s) for `f`.
fn eventually(what: &str, f: impl Fn() -> bool) {
    until(Instant::now() + Duration::from_secs(5), what, f);
}

/// Wait for `f` until `deadline`, failing the test after it.
fn until(deadline: Instant, what: &str, f: impl Fn() -> bool) {
    while !f() {
        assert!(Instant::now() < deadline, "not seen in time: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `lsmfs check URL` finds nothing wrong with the tree.
fn check_clean(url: &str) {
    let out = common::lsmfs_output(&["check", url]);
    assert!(
        out.status.success(),
        "check:\n{}",
        common::output_text(&out)
    );
}

fn stat_line(m: &Mounted, key: &str) -> u64 {
    let text = fs::read_to_string(m.path(".lsmfs-stats")).expect("stats");
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in:\n{text}"))
}

#[test]
fn two_mounts_see_each_others_creates_renames_and_deletes() {
    let cluster = EtcdCluster::start();
    let url = cluster.url("shared");
    let a = Mounted::on_url(&url, &[]);
    let b = Mounted::on_url(&url, &[]);
    fs::create_dir(a.path("d")).unwrap();
    fs::write(a.path("d/f"), b"written on A").unwrap();
    eventually("A's file on B", || {
        fs::read(b.path("d/f")).is_ok_and(|d| d == b"written on A")
    });
    fs::rename(b.path("d/f"), b.path("g")).unwrap();
    eventually("B's rename on A", || {
        !a.path("d/f").exists() && fs::read(a.path("g")).is_ok_and(|d| d == b"written on A")
    });
    // Close-to-open: rewritten on B, A's next open reads the new data.
    fs::write(b.path("g"), b"rewritten on B, longer").unwrap();
    eventually("B's rewrite on A", || {
        fs::read(a.path("g")).is_ok_and(|d| d == b"rewritten on B, longer")
    });
    fs::remove_file(a.path("g")).unwrap();
    fs::remove_dir(a.path("d")).unwrap();
    eventually("A's deletes on B", || {
        !b.path("g").exists() && !b.path("d").exists()
    });
    // Inode numbers from both mounts never collide.
    for i in 0..40 {
        fs::write(a.path(&format!("a{i}")), b"").unwrap();
        fs::write(b.path(&format!("b{i}")), b"").unwrap();
    }
    let mut inos = std::collections::HashSet::new();
    for e in fs::read_dir(&a.mnt).unwrap() {
        let e = e.unwrap();
        assert!(inos.insert(e.metadata().unwrap().ino()), "{:?}", e.path());
    }
    assert_eq!(inos.len(), 80);
    // A long listing on B (readdirplus: the entries' attributes read in
    // one transaction) shows A's sizes and modes.
    for i in 0..40 {
        fs::write(a.path(&format!("a{i}")), vec![b'x'; i]).unwrap();
    }
    let listing = std::process::Command::new("ls")
        .args(["-ln"])
        .arg(&b.mnt)
        .output()
        .expect("ls");
    let text = String::from_utf8_lossy(&listing.stdout);
    for i in 0..40 {
        let name = format!("a{i}");
        let line = text
            .lines()
            .find(|l| l.split_whitespace().last() == Some(name.as_str()))
            .unwrap_or_else(|| panic!("{name} not in:\n{text}"));
        let size: usize = line
            .split_whitespace()
            .nth(4)
            .and_then(|s| s.parse().ok())
            .unwrap_or(usize::MAX);
        assert_eq!(size, i, "{line}");
    }
    let stats = fs::read_to_string(b.path(".lsmfs-stats")).expect("stats");
    assert!(
        !stats.contains("; 0 multi-key transactions"),
        "readdirplus read its entries together:\n{stats}"
    );
    check_clean(&url);
}

/// The attributes of `path` read by the daemon, not the kernel's cache
/// (`AT_STATX_FORCE_SYNC` makes FUSE ask).
fn mode_asking_the_daemon(path: &Path) -> u32 {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("path");
    // SAFETY: a valid C string and a zeroed statx the call fills in.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    let flags = libc::AT_STATX_FORCE_SYNC;
    let r = unsafe { libc::statx(libc::AT_FDCWD, c.as_ptr(), flags, libc::STATX_MODE, &mut st) };
    assert_eq!(r, 0, "statx {path:?}: {}", std::io::Error::last_os_error());
    u32::from(st.stx_mode) & 0o7777
}

/// Two mounts of one prefix (A, B), and a file `f` A wrote that B sees.
/// The mounts drop before the cluster (reverse order of the bindings).
fn two_mounts_sharing_a_file(prefix: &str) -> (EtcdCluster, Mounted, Mounted) {
    let cluster = EtcdCluster::start();
    let url = cluster.url(prefix);
    let a = Mounted::on_url(&url, &[]);
    let b = Mounted::on_url(&url, &[]);
    fs::write(a.path("f"), b"on A").unwrap();
    eventually("A's file on B", || b.path("f").exists());
    (cluster, a, b)
}

/// B answers its getattrs from its mirror (the keys it read, kept current
/// by a watch); A's changes reach that mirror through the watch. Were
/// they not applied, B would serve the old mode for ever: nothing B does
/// here reads the key from a member again.
#[test]
fn another_mounts_changes_reach_the_mirror_through_the_watch() {
    let (_cluster, a, b) = two_mounts_sharing_a_file("mirror");
    let before = stat_line(&b, "etcd_mirror ");
    for mode in [0o600, 0o640, 0o604, 0o644, 0o611] {
        for _ in 0..3 {
            mode_asking_the_daemon(&b.path("f"));
        }
        fs::set_permissions(a.path("f"), fs::Permissions::from_mode(mode)).unwrap();
        eventually("A's chmod on B's daemon", || {
            mode_asking_the_daemon(&b.path("f")) == mode
        });
    }
    let hits = stat_line(&b, "etcd_mirror ") - before;
    assert!(hits >= 10, "B's getattrs came from its mirror {hits} times");
    let text = fs::read_to_string(b.path(".lsmfs-stats")).expect("stats");
    assert!(text.contains("watch following"), "{text}");
}

/// The watch also drops B's *kernel* caches when A changes something: B
/// sees A's chmod, and A's create of a name B has just found missing,
/// before the 1 s entry and attribute timeout of what B's kernel holds.
/// (Without the invalidation B's kernel answers from its cache until
/// `t0 + 1 s`, after the deadline.)
#[test]
fn another_mounts_changes_drop_this_kernels_cache_at_once() {
    let (_cluster, a, b) = two_mounts_sharing_a_file("inval");
    for (i, mode) in [0o600, 0o640, 0o604, 0o611].into_iter().enumerate() {
        let t0 = Instant::now();
        let cached = fs::metadata(b.path("f")).unwrap().mode() & 0o7777;
        assert_ne!(cached, mode);
        fs::set_permissions(a.path("f"), fs::Permissions::from_mode(mode)).unwrap();
        until(
            t0 + Duration::from_millis(950),
            "A's chmod in B's kernel",
            || fs::metadata(b.path("f")).is_ok_and(|m| m.mode() & 0o7777 == mode),
        );
        let name = format!("new{i}");
        let t0 = Instant::now();
        assert!(!b.path(&name).exists());
        fs::write(a.path(&name), b"").unwrap();
        until(
            t0 + Duration::from_millis(950),
            "A's create in B's kernel",
            || b.path(&name).exists(),
        );
    }
    let text = fs::read_to_string(b.path(".lsmfs-stats")).expect("stats");
    assert!(
        text.contains("keys other clients changed handed on"),
        "{text}"
    );
}

/// Snapshots are not offered on etcd: `.snapshots` is empty, `mkdir` in
/// it is EOPNOTSUPP, and `lsmfs snapshot` on the mount or on the URL is
/// refused (exit 1) with one line saying so.
#[test]
fn snapshots_are_refused_on_etcd_in_one_line() {
    let cluster = EtcdCluster::start();
    let url = cluster.url("snaps");
    let m = Mounted::on_url(&url, &[]);
    assert_eq!(fs::read_dir(m.path(".snapshots")).unwrap().count(), 0);
    assert_eq!(
        errno_of(fs::create_dir(m.path(".snapshots/s"))),
        libc::EOPNOTSUPP
    );
    let mnt = m.mnt.to_str().unwrap();
    for args in [
        vec!["snapshot", "create", mnt, "s"],
        vec!["snapshot", "create", &url, "s"],
        vec!["snapshot", "list", &url],
        vec!["snapshot", "delete", &url, "s"],
        vec!["snapshot", "diff", &url, "s"],
    ] {
        let o = common::lsmfs_output(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.contains("snapshots are not offered on an etcd store (EOPNOTSUPP)"),
            "{args:?}: {err}"
        );
    }
    assert!(!m.path(".snapshots/s").exists());
}

/// Both mounts create the same names at the same moment: each name ends
/// with exactly one winner, whose contents both mounts read.
#[test]
fn conflicting_creates_from_two_mounts_leave_one_winner() {
    let cluster = EtcdCluster::start();
    let url = cluster.url("race");
    let a = Mounted::on_url(&url, &[]);
    let b = Mounted::on_url(&url, &[]);
    const N: usize = 40;
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let racer = |root: std::path::PathBuf, who: &'static str| {
        let barrier = barrier.clone();
        std::thread::spawn(move || {
            let mut won = Vec::new();
            for i in 0..N {
                barrier.wait();
                let p = root.join(format!("f{i}"));
                let r = fs::OpenOptions::new().write(true).create_new(true).open(&p);
                match r {
                    Ok(mut f) => {
                        f.write_all(who.as_bytes()).unwrap();
                        won.push(i);
                    }
                    Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EEXIST), "{p:?}: {e}"),
                }
                let d = root.join(format!("d{i}"));
                match fs::create_dir(&d) {
                    Ok(()) => fs::write(d.join(who), b"").unwrap(),
                    Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EEXIST), "{d:?}: {e}"),
                }
            }
            won
        })
    };
    let ta = racer(a.mnt.clone(), "A");
    let tb = racer(b.mnt.clone(), "B");
    let (wa, wb) = (ta.join().unwrap(), tb.join().unwrap());
    assert_eq!(wa.len() + wb.len(), N, "A won {wa:?}, B won {wb:?}");
    for i in 0..N {
        let want: &[u8] = if wa.contains(&i) { b"A" } else { b"B" };
        for m in [&a, &b] {
            let p = m.path(&format!("f{i}"));
            eventually(&format!("{p:?} holds its winner's data"), || {
                fs::read(&p).is_ok_and(|d| d == want)
            });
            // One mkdir won: the directory holds one marker.
            let d = m.path(&format!("d{i}"));
            eventually(&format!("{d:?} has one winner"), || {
                fs::read_dir(&d).is_ok_and(|it| it.count() == 1)
            });
        }
    }
    let retried = stat_line(&a, "conflicts_retried") + stat_line(&b, "conflicts_retried");
    eprintln!("conflicts retried: {retried}");
    check_clean(&url);
}

/// The member that leads is killed in the middle of a stream of writes:
/// every write succeeds, nothing acknowledged is lost, and the member
/// rejoins.
#[test]
fn killing_one_member_of_three_keeps_the_mount_serving() {
    let mut cluster = EtcdCluster::start();
    let m = Mounted::on_url(&cluster.url("failover"), &[]);
    let leader = cluster.leader().expect("a leader");
    for i in 0..120 {
        if i == 40 {
            cluster.kill_member(leader);
        }
        let data = format!("file {i} ").repeat(1 + i * 37);
        fs::write(m.path(&format!("f{i}")), data.as_bytes())
            .unwrap_or_else(|e| panic!("write {i} after the kill: {e}\n{}", m.log_text()));
    }
    for i in 0..120 {
        let data = format!("file {i} ").repeat(1 + i * 37);
        assert_eq!(fs::read(m.path(&format!("f{i}"))).unwrap(), data.as_bytes());
    }
    cluster.restart_member(leader);
    fs::write(m.path("after"), b"rejoined").unwrap();
}

/// A cluster allowing 32 operations per transaction: a 1 MiB write at an
/// unaligned offset (31 chunks, 7 extents, a chunk and the inode: 40
/// operations) is refused whole with EFBIG and one log line; an aligned
/// one (8 extents and the inode) and smaller ones go on. The buffers are
/// page-aligned: write-only opens are direct, and the kernel cuts a direct
/// write's requests at the pages of the caller's buffer.
#[test]
fn a_transaction_etcd_cannot_take_is_efbig_and_nothing_of_it() {
    let cluster = EtcdCluster::start_with(&["--max-txn-ops".into(), "32".into()], "http", &[]);
    let m = Mounted::on_url(&cluster.url("small"), &[]);
    let mut buf = vec![7u8; (1 << 20) + 4096];
    let at = buf.as_ptr().align_offset(4096);
    let mib = &mut buf[at..at + (1 << 20)];
    let p = m.path("big");
    fs::write(&p, b"before").unwrap();
    let f = fs::OpenOptions::new().write(true).open(&p).unwrap();
    assert_eq!(errno_of(f.write_at(mib, 4096)), libc::EFBIG);
    drop(f);
    assert_eq!(fs::read(&p).unwrap(), b"before");
    assert!(
        m.log_text().contains("too many operations in txn request"),
        "{}",
        m.log_text()
    );
    mib.fill(8);
    fs::write(&p, &*mib)
        .unwrap_or_else(|e| panic!("an aligned 1 MiB write: {e}\n{}", m.log_text()));
    assert_eq!(fs::read(&p).unwrap(), vec![8u8; 1 << 20]);
    fs::write(m.path("small"), vec![1u8; 64 << 10]).unwrap();
    assert_eq!(fs::metadata(m.path("small")).unwrap().len(), 64 << 10);
}

/// A URL nobody serves: one error line, in bounded time, nothing mounted.
#[test]
fn an_unreachable_cluster_is_one_error_line() {
    let mnt = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("etcd://127.0.0.1:{port}/nobody");
    let started = Instant::now();
    let out = common::lsmfs_output(&["mount", &url, mnt.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", common::output_text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("lsmfs mount:"))
        .collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains(&url), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(!common::lsmfs_mounted(mnt.path()));
    assert!(fs::read_dir(mnt.path()).unwrap().next().is_none());
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate,
/// made with openssl in `dir`.
fn make_certs(dir: &Path) {
    let script = r#"set -e
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=lsmfs-test-ca
for who in server client; do
  openssl req -newkey rsa:2048 -nodes -keyout $who.key -out $who.csr -subj /CN=lsmfs-$who
  printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >$who.ext
  openssl x509 -req -in $who.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out $who.crt -days 2 -extfile $who.ext
done"#;
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(out.status.success(), "{}", common::output_text(&out));
}

/// A cluster that takes only TLS clients with a certificate of its CA,
/// and (auth enabled) only a user with the right password. Each wrong
/// or missing credential is one error line, never a hang; the password
/// shows nowhere: not in /proc/mounts, the daemon's command line or its log.
#[test]
fn auth_and_client_certificates_are_required_and_never_shown() {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let p = |f: &str| certs.path().join(f).to_string_lossy().into_owned();
    let ctl = [
        "--cacert".to_string(),
        p("ca.crt"),
        "--cert".into(),
        p("client.crt"),
        "--key".into(),
        p("client.key"),
    ];
    let server = [
        "--cert-file".to_string(),
        p("server.crt"),
        "--key-file".into(),
        p("server.key"),
        "--trusted-ca-file".into(),
        p("ca.crt"),
        "--client-cert-auth".into(),
    ];
    let cluster = EtcdCluster::start_with(&server, "https", &ctl);
    let secret = "s3cret-Pw-13";
    for args in [
        vec!["user", "add", &format!("root:{secret}")],
        vec!["role", "add", "root"],
        vec!["user", "grant-role", "root", "root"],
        vec!["auth", "enable"],
    ] {
        let (ok, out) = cluster.etcdctl(&args);
        assert!(ok, "etcdctl {args:?}: {out}");
    }
    let good = certs.path().join("pw");
    fs::write(&good, format!("{secret}\n")).unwrap();
    let bad = certs.path().join("bad");
    fs::write(&bad, "wrong\n").unwrap();
    let url = cluster.url("secure");
    let tls = [
        "--etcd-ca".to_string(),
        p("ca.crt"),
        "--etcd-cert".into(),
        p("client.crt"),
        "--etcd-key".into(),
        p("client.key"),
    ];
    let mnt = tempfile::tempdir().unwrap();
    let try_mount = |extra: &[String]| {
        let mut args = vec!["mount".to_string(), url.clone()];
        args.push(mnt.path().to_string_lossy().into_owned());
        args.extend(extra.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let started = Instant::now();
        let out = common::lsmfs_output(&args);
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(out.status.code(), Some(1), "{}", common::output_text(&out));
        assert!(!common::lsmfs_mounted(mnt.path()));
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        let lines: Vec<&str> = err
            .lines()
            .filter(|l| l.starts_with("lsmfs mount:"))
            .collect();
        assert_eq!(lines.len(), 1, "{err}");
        assert!(!err.contains(secret), "{err}");
        lines[0].to_string()
    };
    let with = |user: Option<&Path>, use_tls: bool| {
        let mut v: Vec<String> = Vec::new();
        if let Some(f) = user {
            v.extend([
                "--etcd-user".into(),
                "root".into(),
                "--etcd-password-file".into(),
            ]);
            v.push(f.to_string_lossy().into_owned());
        }
        if use_tls {
            v.extend(tls.iter().cloned());
        }
        v
    };
    let wrong = try_mount(&with(Some(&bad), true));
    assert!(wrong.contains("authentication failed"), "{wrong}");
    let nobody = try_mount(&with(None, true));
    assert!(
        nobody.contains("user name") || nobody.contains("permission denied"),
        "{nobody}"
    );
    let plain = try_mount(&with(Some(&good), false));
    assert!(plain.contains(&url), "{plain}");
    let no_cert = try_mount(&[
        "--etcd-ca".to_string(),
        p("ca.crt"),
        "--etcd-user".into(),
        "root".into(),
        "--etcd-password-file".into(),
        good.to_string_lossy().into_owned(),
    ]);
    assert!(no_cert.contains(&url), "{no_cert}");

    let mut extra: Vec<String> = tls.to_vec();
    extra.extend([
        "--etcd-user".to_string(),
        "root".into(),
        "--etcd-password-file".into(),
        good.to_string_lossy().into_owned(),
    ]);
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let m = Mounted::on_url(&url, &extra);
    fs::write(m.path("f"), b"over TLS").unwrap();
    assert_eq!(fs::read(m.path("f")).unwrap(), b"over TLS");
    let line = m.mountinfo_line().expect("mountinfo");
    assert!(!line.contains(secret) && !line.contains("etcd"), "{line}");
    let cmdline = fs::read(format!("/proc/{}/cmdline", m.pid().unwrap())).unwrap();
    assert!(!String::from_utf8_lossy(&cmdline).contains(secret));
    assert!(!m.log_text().contains(secret));
    let (ok, keys) = cluster.etcdctl(&[
        "--user",
        &format!("root:{secret}"),
        "get",
        "--prefix",
        "--keys-only",
        "secure/",
    ]);
    assert!(ok && keys.contains("secure/"), "{keys}");
}

/// lookup and getattr read serializable, yet a mount always sees its own
/// changes at once: a member behind what the mount has seen is read again
/// linearizable (`EtcdStore::get_relaxed`).
#[test]
fn a_mount_always_sees_its_own_changes_at_once() {
    let cluster = EtcdCluster::start();
    let m = Mounted::on_url(&cluster.url("own"), &[]);
    for i in 0..200usize {
        let p = m.path(&format!("f{}", i % 7));
        fs::write(&p, vec![b'y'; i]).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().len(),
            i as u64,
            "size after write {i}"
        );
        let q = m.path(&format!("g{i}"));
        fs::rename(&p, &q).unwrap();
        assert!(!p.exists(), "old name after rename {i}");
        assert_eq!(
            fs::metadata(&q).unwrap().len(),
            i as u64,
            "new name after rename {i}"
        );
        fs::remove_file(&q).unwrap();
        assert!(!q.exists(), "after unlink {i}");
    }
    let stats = fs::read_to_string(m.path(".lsmfs-stats")).expect("stats");
    assert!(stats.contains("serializable"), "{stats}");
}

/// An unlinked file open twice survives the first close: a close drops
/// one handle whatever the store answers (an operation's relaxed first
/// run is re-run, the handle count is not counted down twice).
#[test]
fn an_unlinked_file_open_twice_survives_its_first_close() {
    use std::io::{Read, Seek};
    let cluster = EtcdCluster::start();
    let m = Mounted::on_url(&cluster.url("twice"), &[]);
    let p = m.path("f");
    fs::write(&p, b"still here").unwrap();
    let first = fs::File::open(&p).unwrap();
    let mut second = fs::File::open(&p).unwrap();
    fs::remove_file(&p).unwrap();
    drop(first);
    // RELEASE is sent in the background: give it time to arrive.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut got = Vec::new();
    second.rewind().unwrap();
    second.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"still here");
}
