//! A short run of `scripts/crash-loop.sh`: kill -9 of a real mount in the
//! middle of a mixed workload, `lsmfs check`, remount over the stale mount
//! point, and verification against the workload's journal.

mod common;

use std::process::Command;

#[test]
fn kill9_cycles_with_journal_verification() {
    let work = tempfile::Builder::new()
        .prefix("lsmfs-crash")
        .tempdir()
        .expect("tempdir");
    let out = Command::new("bash")
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
