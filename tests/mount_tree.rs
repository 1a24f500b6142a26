//! A real workload: untar the local Python standard library into the mount,
//! remount, and compare every file's SHA-256 with the source.

mod common;
use common::{sh, Mounted};
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
