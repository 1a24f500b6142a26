//! `OPTIONS`: the tuning a data directory was last opened read-write with.
//!
//! Level scores (what `stats` shows, what picks compactions) depend on the
//! tuning: L1's budget grows with the memtable size the mount chose. An
//! offline reader (`lsmfs stats`, `check`, `compact`) does not know what
//! `--memtable-size` the mount used, so the engine writes the fields that
//! shape the tree here at every read-write open, and an open with
//! `Options::tuning_from_dir` adopts them: offline and live figures are one
//! computation over the same numbers. A directory without the file (made
//! before it existed) is read with the caller's options.
//!
//! Format (text, one `name value` per line, unknown names ignored so later
//! versions can add fields):
//!
//! ```text
//! lsmfs-options 1
//! write_buffer_size 33554432
//! max_bytes_for_level_base 134217728
//! target_file_size 8388608
//! l0_compaction_trigger 4
//! ```
//!
//! Written as `OPTIONS.tmp`, fsync'd, renamed over `OPTIONS`, directory
//! fsync'd; only when the content changes. Losing it is harmless (the next
//! read-write open writes it again), so a failure to write is a warning.

use super::env::Env;
use super::error::{Error, Result};
use super::options::Options;
use std::path::{Path, PathBuf};

const HEADER: &str = "lsmfs-options 1";

pub fn options_file_name(dir: &Path) -> PathBuf {
    dir.join("OPTIONS")
}

fn encode(o: &Options) -> String {
    format!(
        "{HEADER}\nwrite_buffer_size {}\nmax_bytes_for_level_base {}\ntarget_file_size {}\n\
         l0_compaction_trigger {}\n",
        o.write_buffer_size,
        o.max_bytes_for_level_base,
        o.target_file_size,
        o.l0_compaction_trigger
    )
}

/// `opts` with the fields the file records replaced by its values.
fn decode(path: &Path, text: &str, opts: &Options) -> Result<Options> {
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        return Err(Error::corruption(path, 0, format!("not a {HEADER:?} file")));
    }
    let mut o = opts.clone();
    for line in lines {
        let Some((name, value)) = line.split_once(' ') else {
            continue;
        };
        let Ok(v) = value.trim().parse::<u64>() else {
            return Err(Error::corruption(path, 0, format!("bad value in {line:?}")));
        };
        match name {
            "write_buffer_size" => o.write_buffer_size = v as usize,
            "max_bytes_for_level_base" => o.max_bytes_for_level_base = v,
            "target_file_size" => o.target_file_size = v,
            "l0_compaction_trigger" => o.l0_compaction_trigger = (v as usize).max(1),
            _ => {}
        }
    }
    Ok(o)
}

/// The options to open `dir` with: `opts`, tuned as the directory was
/// last opened read-write if the file says so.
pub fn adopt(env: &dyn Env, dir: &Path, opts: &Options) -> Options {
    let path = options_file_name(dir);
    if !env.exists(&path) {
        return opts.clone();
    }
    let parsed = env.read_all(&path).and_then(|data| {
        let text = String::from_utf8_lossy(&data);
        decode(&path, &text, opts)
    });
    match parsed {
        Ok(o) => o,
        Err(e) => {
            log::warn!("ignoring {}: {e}", path.display());
            opts.clone()
        }
    }
}

/// Record `opts` in `dir` (a read-write open does this).
pub fn save(env: &dyn Env, dir: &Path, opts: &Options) {
    let path = options_file_name(dir);
    let text = encode(opts);
    if env.read_all(&path).is_ok_and(|d| d == text.as_bytes()) {
        return;
    }
    let tmp = dir.join("OPTIONS.tmp");
    let r = (|| {
        let mut f = env.create_writable(&tmp)?;
        f.append(text.as_bytes())?;
        f.sync()?;
        drop(f);
        env.rename(&tmp, &path)?;
        env.sync_dir(dir)
    })();
    if let Err(e) = r {
        log::warn!("could not record the tuning in {}: {e}", path.display());
        let _ = env.remove_file(&tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::env::fault::FaultEnv;

    #[test]
    fn saved_tuning_is_adopted_and_bad_files_ignored() {
        let env = FaultEnv::new();
        let dir = Path::new("/d");
        env.create_dir_all(dir).unwrap();
        let mount = Options {
            write_buffer_size: 32 << 20,
            max_bytes_for_level_base: 128 << 20,
            target_file_size: 8 << 20,
            ..Default::default()
        };
        save(&env, dir, &mount);
        let got = adopt(&env, dir, &Options::default());
        assert_eq!(got.write_buffer_size, 32 << 20);
        assert_eq!(got.max_bytes_for_level_base, 128 << 20);
        assert_eq!(got.target_file_size, 8 << 20);
        assert!(!env.exists(&dir.join("OPTIONS.tmp")));
        let mut f = env.create_writable(&options_file_name(dir)).unwrap();
        f.append(b"lsmfs-options 1\nwrite_buffer_size many\n")
            .unwrap();
        f.sync().unwrap();
        drop(f);
        let got = adopt(&env, dir, &Options::default());
        assert_eq!(got.write_buffer_size, Options::default().write_buffer_size);
        let other = Options::default();
        assert_eq!(
            adopt(&env, Path::new("/none"), &other).max_bytes_for_level_base,
            other.max_bytes_for_level_base
        );
    }
}
