//! A short run of `scripts/crash-loop.sh`: kill -9 of a real mount in the
//! middle of a mixed workload, `lsmfs check`, remount over the stale mount
//! point, and verification against the workload's journal (on an etcd
//! store with `LSMFS_TEST_STORE=etcd`).

mod common;

use std::process::Command;

#[test]
fn kill9_cycles_with_journal_verification() {
    let work = tempfile::Builder::new()
        .prefix("lsmfs-crash")
        .tempdir()
        .expect("tempdir");
    // With LSMFS_TEST_STORE=etcd the store is a prefix of a cluster of
    // our own, dropped (its members killed) when the test ends.
    let cluster = common::etcd::etcd_run().then(common::etcd::EtcdCluster::start);
    let mut cmd = Command::new("bash");
    if let Some(c) = &cluster {
        cmd.env("LSMFS_DATA", c.url("crash-loop"));
    }
    let out = cmd
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/crash-loop.sh"
        ))
        .arg("4")
        .arg(work.path().join("run"))
        .env("LSMFS_BIN", env!("CARGO_BIN_EXE_lsmfs"))
        .env(
            "LSMFS_TRANSPORT",
            if common::ring_run() {
                "io_uring"
            } else {
                "no_io_uring"
            },
        )
        .output()
        .expect("run crash-loop.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "crash loop failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("4 kill -9 cycles, 0 problems"), "{stdout}");
}
