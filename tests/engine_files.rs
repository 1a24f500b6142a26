//! Which files a data directory holds: after a clean close only what the
//! MANIFEST names (the last compaction's inputs included, even when a
//! reader held them past it), and a read-only open creates nothing.

use lsmfs::engine::filename::{parse_file_name, FileType};
use lsmfs::engine::{Db, Options};
use std::collections::HashSet;
use std::path::Path;

fn tables_on_disk(dir: &Path) -> HashSet<u64> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(
            |e| match parse_file_name(&e.file_name().to_string_lossy()) {
                Some(FileType::Table(n)) => Some(n),
                _ => None,
            },
        )
        .collect()
}

fn live_tables(dir: &Path) -> HashSet<u64> {
    let ro = Options {
        read_only: true,
        background_compaction: false,
        ..Default::default()
    };
    table_numbers(&Db::open(dir, ro).unwrap())
}

/// The tables `db`'s current Version names.
fn table_numbers(db: &Db) -> HashSet<u64> {
    let v = db.current_version();
    v.files.iter().flatten().map(|f| f.number).collect()
}

/// A reader holds the Version a compaction read from, so the compaction
/// cannot delete its inputs; once the reader lets go, closing the database
/// does.
#[test]
fn close_removes_what_the_last_compaction_retired() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let opts = Options {
        write_buffer_size: 256 << 10,
        background_compaction: false,
        ..Default::default()
    };
    let db = Db::open(&dir, opts).unwrap();
    for round in 0..3u8 {
        let value = vec![round; 1000];
        for i in 0..100u32 {
            db.put(format!("k{i:04}").as_bytes(), &value).unwrap();
        }
        db.flush().unwrap();
    }
    let reader = db.iter(None).unwrap();
    db.compact_range(None, None).unwrap();
    drop(reader);
    let live = table_numbers(&db);
    assert!(
        tables_on_disk(&dir).len() > live.len(),
        "the reader's tables were deleted under it"
    );
    db.close().unwrap();
    drop(db);
    assert_eq!(tables_on_disk(&dir), live);
    assert_eq!(live_tables(&dir), live);
}

/// A read-only open of a directory that is not a database creates
/// nothing, not even LOCK, and says what it is.
#[test]
fn read_only_open_of_a_foreign_directory_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let ro = Options {
        read_only: true,
        ..Default::default()
    };
    let err = Db::open(tmp.path(), ro)
        .err()
        .expect("opened a foreign directory");
    assert!(
        err.to_string().contains("not an lsmfs data directory"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}
