//! `repair`: a new MANIFEST from the tables and WALs a data directory
//! holds. Engine-level tests compare against a model (every entry of the
//! intact tables survives, nothing is invented); the last test goes through
//! a real mount, `lsmfs repair` and `lsmfs check`.

mod common;
use common::{lsmfs_output as lsmfs, output_text as text, sh, Mounted};
use lsmfs::engine::dbformat::{make_internal_key, ValueType};
use lsmfs::engine::env::posix::PosixEnv;
use lsmfs::engine::env::Env;
use lsmfs::engine::iterator::InternalIterator;
use lsmfs::engine::repair::{repair, Outcome, RepairReport};
use lsmfs::engine::table::{Table, TableBuilder, TableOptions};
use lsmfs::engine::{Db, Error, Options};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

type Model = BTreeMap<Vec<u8>, Vec<u8>>;
/// Internal key -> value, over every table.
type Entries = BTreeSet<(Vec<u8>, Vec<u8>)>;
/// User key, sequence, value (None: a deletion).
type Versioned<'a> = (&'a [u8], u64, Option<&'a [u8]>);

fn opts() -> Options {
    Options {
        write_buffer_size: 16 << 10,
        block_size: 512,
        target_file_size: 16 << 10,
        max_bytes_for_level_base: 64 << 10,
        ..Default::default()
    }
}

fn contents(db: &Db) -> Model {
    let mut it = db.iter(None).expect("iter");
    it.seek_to_first();
    let mut m = Model::new();
    while it.valid() {
        m.insert(it.key().to_vec(), it.value().to_vec());
        it.next();
    }
    it.status().expect("scan");
    m
}

/// A store with tables on several levels, overwrites, deletions, a range
/// deletion and a WAL tail; returns what it holds.
fn build(dir: &Path) -> Model {
    let db = Db::open(dir, opts()).expect("open");
    let mut model = Model::new();
    for round in 0..4u32 {
        for i in 0..600u32 {
            let k = format!("key{:05}", (i * 7 + round * 13) % 900).into_bytes();
            if i % 11 == 5 {
                db.delete(&k).expect("delete");
                model.remove(&k);
            } else {
                let v = format!("r{round}-{i}-")
                    .repeat(i as usize % 9 + 1)
                    .into_bytes();
                db.put(&k, &v).expect("put");
                model.insert(k, v);
            }
        }
        if round == 2 {
            // A range deletion over keys the deeper tables still hold.
            db.delete_range(b"key00100", b"key00200")
                .expect("delete_range");
            model.retain(|k, _| !(&b"key00100"[..]..&b"key00200"[..]).contains(&&k[..]));
        }
        if round == 1 {
            db.compact_range(None, None).expect("compact");
        } else {
            db.flush().expect("flush");
        }
    }
    for i in 0..40u32 {
        let k = format!("wal{i:03}").into_bytes();
        db.put(&k, b"only in the WAL").expect("put");
        model.insert(k, b"only in the WAL".to_vec());
    }
    db.sync().expect("sync");
    assert!(
        db.current_version()
            .files
            .iter()
            .filter(|l| !l.is_empty())
            .count()
            >= 2
    );
    db.close().expect("close");
    model
}

fn names(dir: &Path, pred: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(&pred))
        .collect();
    v.sort();
    v
}

fn open_table(path: &Path) -> Arc<Table> {
    let env = PosixEnv::new();
    let size = env.file_size(path).expect("size");
    Table::open(
        env.open_random_access(path).expect("open"),
        path.to_path_buf(),
        1,
        size,
        None,
    )
    .expect("table")
}

/// Every (internal key, value) of the tables in `dir`.
fn table_entries(dir: &Path) -> Entries {
    let mut out = Entries::new();
    for p in names(dir, |n| n.ends_with(".sst")) {
        let t = open_table(&p);
        let mut it = t.iter();
        it.seek_to_first();
        while it.valid() {
            out.insert((it.key().to_vec(), it.value().to_vec()));
            it.next();
        }
        it.status().expect("scan");
    }
    out
}

/// Every (internal key, value) of the tables the store's MANIFEST names.
fn live_entries(db: &Db) -> Entries {
    let mut out = Entries::new();
    for files in &db.current_version().files {
        for f in files {
            let t = db
                .table_cache()
                .get_table(f.number, f.file_size)
                .expect("table");
            let mut it = t.iter();
            it.seek_to_first();
            while it.valid() {
                out.insert((it.key().to_vec(), it.value().to_vec()));
                it.next();
            }
            it.status().expect("scan");
        }
    }
    out
}

fn lost(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir.join("lost"))
        .map(|r| {
            r.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn outcome_of<'a>(r: &'a RepairReport, name: &str) -> &'a Outcome {
    &r.files
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("{name} not in the report: {:?}", r.files))
        .outcome
}

/// Reopen after repair: the same contents, and writes work on top.
fn reopen_and_compare(dir: &Path, model: &Model) {
    let db = Db::open(dir, opts()).expect("open after repair");
    assert_eq!(contents(&db), *model);
    // Point lookups too: they take the newest of the overlapping L0 tables.
    for i in 0..900u32 {
        let k = format!("key{i:05}").into_bytes();
        assert_eq!(
            db.get(&k).expect("get"),
            model.get(&k).cloned(),
            "key{i:05}"
        );
    }
    db.put(b"after", b"repair").expect("put");
    db.compact_range(None, None).expect("compact");
    let mut m = model.clone();
    m.insert(b"after".to_vec(), b"repair".to_vec());
    assert_eq!(contents(&db), m, "after a compaction sorted the L0 files");
    db.close().expect("close");
}

#[test]
fn repair_after_deleting_the_manifest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = build(dir.path());
    let before = table_entries(dir.path());
    let wals = names(dir.path(), |n| n.ends_with(".log"));
    assert!(!wals.is_empty());
    for m in names(dir.path(), |n| n.starts_with("MANIFEST-")) {
        fs::remove_file(m).expect("rm");
    }
    let err = Db::open(dir.path(), opts())
        .err()
        .expect("no MANIFEST: open refuses");
    assert!(err.is_corruption(), "{err}");

    let r = repair(dir.path(), &opts()).expect("repair");
    assert!(r.files.iter().all(|f| matches!(
        f.outcome,
        Outcome::Kept { .. } | Outcome::Converted { damage: None, .. }
    )));
    let wal = wals[0].file_name().and_then(|n| n.to_str()).expect("name");
    assert!(matches!(
        outcome_of(&r, wal),
        Outcome::Converted { table: Some(_), .. }
    ));
    assert!(
        lost(dir.path()).contains(&wal.to_string()),
        "converted WALs are kept in lost/"
    );
    // Made through the same Env as every store file: owner-only.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&dir.path().join("lost")), 0o700);
    for p in names(dir.path(), |n| {
        n.starts_with("MANIFEST-") || n.ends_with(".sst")
    }) {
        assert_eq!(mode(&p), 0o600, "{}", p.display());
    }
    let db = Db::open(
        dir.path(),
        Options {
            background_compaction: false,
            ..opts()
        },
    )
    .expect("open");
    let after = live_entries(&db);
    assert!(
        before.is_subset(&after),
        "every entry of every table survives"
    );
    assert!(
        r.entries as usize >= after.len(),
        "duplicates are counted where they are"
    );
    assert_eq!(contents(&db), model);
    drop(db);
    reopen_and_compare(dir.path(), &model);
}

#[test]
fn repair_after_truncating_the_manifest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = build(dir.path());
    let manifest = names(dir.path(), |n| n.starts_with("MANIFEST-"))
        .pop()
        .expect("manifest");
    let len = fs::metadata(&manifest).expect("stat").len();
    let f = fs::OpenOptions::new()
        .write(true)
        .open(&manifest)
        .expect("open");
    f.set_len(len / 3).expect("truncate");
    drop(f);
    let r = repair(dir.path(), &opts()).expect("repair");
    let name = manifest.file_name().and_then(|n| n.to_str()).expect("name");
    assert_eq!(outcome_of(&r, name), &Outcome::Replaced);
    assert!(lost(dir.path()).contains(&name.to_string()));
    reopen_and_compare(dir.path(), &model);
    // A second repair keeps what the first moved aside.
    let first = lost(dir.path());
    repair(dir.path(), &opts()).expect("repair again");
    let second = lost(dir.path());
    assert!(
        first.iter().all(|n| second.contains(n)),
        "{first:?} {second:?}"
    );
    let mut model = model;
    model.insert(b"after".to_vec(), b"repair".to_vec());
    reopen_and_compare(dir.path(), &model);
}

#[test]
fn repair_salvages_a_corrupted_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    build(dir.path());
    let before = table_entries(dir.path());
    // Damage one data block in the middle of the largest table.
    let victim = names(dir.path(), |n| n.ends_with(".sst"))
        .into_iter()
        .max_by_key(|p| fs::metadata(p).expect("stat").len())
        .expect("a table");
    let t = open_table(&victim);
    let index = t.index_entries().expect("index");
    assert!(index.len() > 4);
    let h = index[index.len() / 2].1;
    let lost_entries: Entries = t.block_entries(h).expect("block").into_iter().collect();
    drop(t);
    let mut data = fs::read(&victim).expect("read");
    data[h.offset as usize + 10] ^= 0x40;
    fs::write(&victim, &data).expect("write");

    let r = repair(dir.path(), &opts()).expect("repair");
    let name = victim.file_name().and_then(|n| n.to_str()).expect("name");
    match outcome_of(&r, name) {
        Outcome::Salvaged {
            blocks_lost,
            damage,
            table: Some(_),
            ..
        } => {
            assert_eq!(*blocks_lost, 1);
            assert!(damage.contains(&format!("offset {}", h.offset)), "{damage}");
        }
        o => panic!("{name}: {o:?}"),
    }
    assert!(lost(dir.path()).contains(&name.to_string()));
    let db = Db::open(
        dir.path(),
        Options {
            background_compaction: false,
            ..opts()
        },
    )
    .expect("open");
    let after = live_entries(&db);
    let intact: Entries = before.difference(&lost_entries).cloned().collect();
    assert!(
        intact.is_subset(&after),
        "every entry outside the damaged block survives"
    );
    let from_wal: Entries = after.difference(&before).cloned().collect();
    assert!(
        from_wal.iter().all(|(k, _)| k.starts_with(b"wal")),
        "nothing invented"
    );
    drop(db);
}

/// A table whose filter block is damaged: every data block still reads,
/// so all its entries go into a new table (with a new filter).
#[test]
fn repair_rewrites_a_table_with_a_damaged_filter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = build(dir.path());
    let before = table_entries(dir.path());
    let victim = names(dir.path(), |n| n.ends_with(".sst"))
        .into_iter()
        .max_by_key(|p| fs::metadata(p).expect("stat").len())
        .expect("a table");
    let t = open_table(&victim);
    let last = t.index_entries().expect("index").last().expect("a block").1;
    drop(t);
    // The filter block follows the last data block and its trailer.
    let filter_at = (last.offset + last.size + 5) as usize;
    let mut data = fs::read(&victim).expect("read");
    data[filter_at + 1] ^= 0x08;
    fs::write(&victim, &data).expect("write");
    let r = repair(dir.path(), &opts()).expect("repair");
    let name = victim.file_name().and_then(|n| n.to_str()).expect("name");
    match outcome_of(&r, name) {
        Outcome::Salvaged {
            blocks_lost: 0,
            table: Some(_),
            damage,
            ..
        } => assert!(damage.contains("checksum"), "{damage}"),
        o => panic!("{name}: {o:?}"),
    }
    let db = Db::open(
        dir.path(),
        Options {
            background_compaction: false,
            ..opts()
        },
    )
    .expect("open");
    assert!(before.is_subset(&live_entries(&db)), "nothing lost");
    drop(db);
    reopen_and_compare(dir.path(), &model);
}

/// Overlapping L0 tables whose file numbers run against their sequences
/// (a compaction output is numbered after an L0 file holding newer data):
/// the newest entry must still win, for lookups and scans.
#[test]
fn overlapping_tables_recover_by_sequence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = PosixEnv::new();
    let write = |number: u64, entries: &[Versioned]| {
        let path = dir.path().join(format!("{number:06}.sst"));
        let mut b = TableBuilder::new(
            env.create_writable(&path).expect("create"),
            TableOptions::from_options(&opts()),
        );
        for (k, seq, v) in entries {
            let t = if v.is_some() {
                ValueType::Value
            } else {
                ValueType::Deletion
            };
            b.add(&make_internal_key(k, *seq, t), v.unwrap_or(b""))
                .expect("add");
        }
        b.finish().expect("finish");
    };
    // Newer data, lower number.
    write(
        5,
        &[
            (b"a", 50, Some(b"new a")),
            (b"b", 51, None),
            (b"c", 52, Some(b"new c")),
        ],
    );
    // Older data, higher number, the same keys and one more.
    write(
        9,
        &[
            (b"a", 10, Some(b"old a")),
            (b"b", 11, Some(b"old b")),
            (b"c", 12, Some(b"old c")),
            (b"d", 60, Some(b"d")),
        ],
    );
    let r = repair(dir.path(), &opts()).expect("repair");
    assert_eq!(r.last_sequence, 60);
    assert!(r.next_file_number > 9);
    let db = Db::open(
        dir.path(),
        Options {
            background_compaction: false,
            ..opts()
        },
    )
    .expect("open");
    assert_eq!(db.get(b"a").expect("get"), Some(b"new a".to_vec()));
    assert_eq!(db.get(b"b").expect("get"), None);
    assert_eq!(db.get(b"c").expect("get"), Some(b"new c".to_vec()));
    let want: Model = [(b"a", &b"new a"[..]), (b"c", b"new c"), (b"d", b"d")]
        .iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect();
    assert_eq!(contents(&db), want);
    // New writes get sequences above everything repair saw.
    db.put(b"a", b"newest").expect("put");
    assert_eq!(db.get(b"a").expect("get"), Some(b"newest".to_vec()));
    db.compact_range(None, None).expect("compact");
    assert_eq!(db.get(b"a").expect("get"), Some(b"newest".to_vec()));
    assert_eq!(db.get(b"b").expect("get"), None);
    db.close().expect("close");
}

#[test]
fn repair_refuses_a_locked_store_and_an_empty_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path(), opts()).expect("open");
    db.put(b"k", b"v").expect("put");
    db.flush().expect("flush");
    match repair(dir.path(), &opts()) {
        Err(Error::Locked { .. }) => {}
        other => panic!("repair of an open store: {other:?}"),
    }
    db.close().expect("close");
    drop(db);
    let empty = tempfile::tempdir().expect("tempdir");
    assert!(repair(empty.path(), &opts()).is_err());
    assert!(
        fs::read_dir(empty.path()).expect("ls").next().is_none(),
        "left untouched"
    );
}

#[test]
fn repair_keeps_every_readable_record_of_a_damaged_wal() {
    let live = tempfile::tempdir().expect("tempdir");
    let big = Options {
        write_buffer_size: 1 << 20,
        ..opts()
    };
    let db = Db::open(live.path(), big.clone()).expect("open");
    for i in 0..50u32 {
        db.put(format!("k{i:03}").as_bytes(), &[b'x'; 600])
            .expect("put");
    }
    db.sync().expect("sync");
    // What a crash leaves: the files as they are now, without the MANIFEST.
    let dir = tempfile::tempdir().expect("tempdir");
    for p in names(live.path(), |n| n.ends_with(".log")) {
        fs::copy(&p, dir.path().join(p.file_name().expect("name"))).expect("copy");
    }
    db.close().expect("close");
    let wal = names(dir.path(), |n| n.ends_with(".log"))
        .pop()
        .expect("wal");
    let mut data = fs::read(&wal).expect("read");
    // Damage record 30 of 50 (each ~620 bytes), then restore the WAL.
    let at = 30 * 620 + 3;
    data[at] ^= 0xff;
    fs::write(&wal, &data).expect("write");
    let r = repair(dir.path(), &big).expect("repair");
    let name = wal.file_name().and_then(|n| n.to_str()).expect("name");
    let kept = match outcome_of(&r, name) {
        Outcome::Converted {
            records,
            damage: Some((1, d)),
            ..
        } => {
            assert!(d.contains(name) && d.contains("offset"), "{d}");
            *records
        }
        o => panic!("{o:?}"),
    };
    // Only the damaged record is lost: reading goes on after it.
    assert_eq!(kept, 49);
    let db = Db::open(dir.path(), opts()).expect("open");
    let m = contents(&db);
    assert_eq!(m.len() as u64, kept);
    let missing: Vec<u32> = (0..50u32)
        .filter(|i| !m.contains_key(format!("k{i:03}").as_bytes()))
        .collect();
    assert_eq!(missing.len(), 1);
    assert!((28..32).contains(&missing[0]), "{missing:?}");
    db.close().expect("close");
}

// ------------------------------------------------------------ through a mount

/// Every name under the mount, with its type, size and mode.
fn listing(m: &Mounted) -> String {
    sh(
        "find . -path ./.lsmfs-stats -prune -o -printf '%y %p %s %m\\n' | sort",
        &m.mnt,
    )
}

/// The listing, every file's checksum, an xattr and a symlink.
fn tree(m: &Mounted) -> String {
    listing(m)
        + &sh(
            "find . -type f ! -name .lsmfs-stats -print0 | sort -z | xargs -0 md5sum && \
             getfattr -d docs/a/f3 && readlink docs/sym",
            &m.mnt,
        )
}

/// `repair` of `m`'s unmounted data directory keeps every file and writes
/// a new MANIFEST; `check` is then clean, and the mount shows `want`.
fn repaired_whole(m: &mut Mounted, want: &str) {
    let data = m.data.to_str().expect("utf-8").to_string();
    let o = lsmfs(&["repair", &data]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains("kept ") && t.contains("repaired: MANIFEST-"),
        "{t}"
    );
    let o = lsmfs(&["check", &data]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("clean"), "{}", text(&o));
    m.start();
    assert_eq!(tree(m), want, "the mount shows the tree as it was");
    m.unmount();
}

#[test]
fn repair_through_the_cli_and_a_mount() {
    let mut m = Mounted::new();
    sh(
        "mkdir -p docs/a docs/b && for i in $(seq 1 300); do echo file $i > docs/a/f$i; done && \
         head -c 2000000 /dev/urandom > docs/b/big && ln docs/a/f1 docs/hard && \
         ln -s a/f2 docs/sym && setfattr -n user.tag -v x docs/a/f3",
        &m.mnt,
    );
    let want = tree(&m);
    m.unmount();
    let data = m.data.to_str().expect("utf-8").to_string();

    // Mounted: refused, nothing touched.
    m.start();
    let o = lsmfs(&["repair", &data]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("unmount it first"), "{}", text(&o));
    m.unmount();

    for p in names(&m.data, |n| n.starts_with("MANIFEST-")) {
        fs::remove_file(p).expect("rm");
    }
    let o = lsmfs(&["check", &data]);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    repaired_whole(&mut m, &want);

    // A MANIFEST cut to half its length: the same.
    let manifest = names(&m.data, |n| n.starts_with("MANIFEST-"))
        .pop()
        .expect("a MANIFEST");
    let len = fs::metadata(&manifest).expect("stat").len();
    fs::OpenOptions::new()
        .write(true)
        .open(&manifest)
        .expect("open")
        .set_len(len / 2)
        .expect("truncate");
    repaired_whole(&mut m, &want);

    // A damaged table: repair says what it dropped, check is clean, and
    // the mount shows every name (the file data of the lost block reads
    // as a hole).
    let o = lsmfs(&["compact", &data]);
    assert!(o.status.success(), "{}", text(&o));
    let victim = names(&m.data, |n| n.ends_with(".sst"))
        .into_iter()
        .max_by_key(|p| fs::metadata(p).expect("stat").len())
        .expect("a table");
    let t = open_table(&victim);
    let index = t.index_entries().expect("index");
    // Chunk keys ('C') sort first: the first block holds references to
    // part of the big file's data (the data itself is in a blob file).
    assert_eq!(index[0].0.first(), Some(&b'C'), "chunk keys first");
    let h = index[0].1;
    drop(t);
    let mut bytes = fs::read(&victim).expect("read");
    bytes[h.offset as usize + 20] ^= 0x10;
    fs::write(&victim, &bytes).expect("write");
    let o = lsmfs(&["repair", &data]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("salvaged ") && t.contains("unreadable data block"),
        "{t}"
    );
    let o = lsmfs(&["check", &data]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    m.start();
    assert_eq!(
        listing(&m),
        want.lines()
            .take_while(|l| !l.contains("  ./"))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    );
    m.unmount();
}

/// Blob files survive a repair: the kept tables' references name them, so
/// they join the new MANIFEST with their garbage counted from those
/// references; one nothing references goes to lost/.
#[test]
fn repair_keeps_referenced_blob_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path(), opts()).expect("open");
    let mut model = Model::new();
    for i in 0..300u32 {
        let k = format!("big{i:04}").into_bytes();
        let v = vec![(i % 249) as u8; 4096 + i as usize];
        db.put(&k, &v).expect("put");
        model.insert(k, v);
    }
    for i in (0..300u32).step_by(3) {
        let k = format!("big{i:04}").into_bytes();
        db.delete(&k).expect("delete");
        model.remove(&k);
    }
    db.flush().expect("flush");
    drop(db);
    let blobs = names(dir.path(), |n| n.ends_with(".blob"));
    assert!(!blobs.is_empty());
    // A blob file no table references (a crash's leftover).
    fs::write(dir.path().join("009999.blob"), b"stray").expect("write");
    for m in names(dir.path(), |n| n.starts_with("MANIFEST-")) {
        fs::remove_file(m).expect("rm");
    }
    let r = repair(dir.path(), &opts()).expect("repair");
    assert!(r.blob_files >= blobs.len(), "{r:?}");
    assert!(matches!(
        outcome_of(&r, "009999.blob"),
        Outcome::Dropped { .. }
    ));
    let db = Db::open(dir.path(), opts()).expect("open");
    assert_eq!(contents(&db), model);
    // The garbage counts add up: a full compaction drops every dead record
    // and leaves no blob file unreferenced.
    db.compact_range(None, None).expect("compact");
    assert_eq!(contents(&db), model);
    drop(db);
    reopen_and_compare(dir.path(), &model);
}
