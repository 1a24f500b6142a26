//! Long offline commands draw one progress line on a terminal (stderr a
//! tty: run under `script`, which gives the command a pseudo-terminal) and
//! nothing when stderr is a pipe; the report is the same either way.

mod common;
use std::process::Command;

/// `cmd` with stdin, stdout and stderr on a pseudo-terminal; all it wrote.
fn on_a_terminal(cmd: &str) -> String {
    let out = Command::new("script")
        .args(["-qec", cmd, "/dev/null"])
        .output()
        .expect("run script");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn check_compact_and_repair_show_progress_only_on_a_terminal() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: script(1) is not installed");
        return;
    }
    let mut m = common::Mounted::with_args(&["--memtable-size", "64K"]);
    for i in 0..40 {
        std::fs::write(m.path(&format!("f{i}")), vec![i as u8; 20_000]).unwrap();
    }
    m.unmount();
    let exe = env!("CARGO_BIN_EXE_lsmfs");
    let data = m.data.display().to_string();
    for (cmd, line) in [
        ("check", "checking tables: "),
        ("compact", "compacting: "),
        ("repair", "repairing: "),
        ("check", "checking the filesystem tree"),
    ] {
        let tty = on_a_terminal(&format!("{exe} {cmd} {data}"));
        assert!(tty.contains(line), "{cmd} on a terminal: {tty:?}");
        assert!(
            tty.contains("\r\x1b[K"),
            "{cmd}: the line is erased: {tty:?}"
        );
        let piped = common::lsmfs_output(&[cmd, &data]);
        let text = common::output_text(&piped);
        assert!(
            !text.contains(line) && !text.contains('\r'),
            "{cmd} piped: {text}"
        );
    }
    let o = common::lsmfs_output(&["check", &data]);
    assert!(o.status.success(), "{}", common::output_text(&o));
}
