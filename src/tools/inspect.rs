//! `lsmfs inspect`: show what the MANIFEST, a WAL, an SSTable or a blob file holds.
//!
//! Read-only: the MANIFEST is replayed by the same code recovery uses, but
//! nothing is written.
//!
//! The store holds the tree's names, symlink targets, xattrs and data in
//! the clear, so by default only its structure is printed (files, sizes,
//! sequence numbers, counts); keys — decoded in filesystem terms, see
//! `fs::schema::describe_key` — only with `--keys`, and keys and values in
//! hex only with `--raw`. `inspect path` prints the entries along the path
//! it is given.

use crate::engine::dbformat::parse_internal_key;
use crate::engine::env::posix::PosixEnv;
use crate::engine::env::Env;
use crate::engine::filename::current_file_name;
use crate::engine::iterator::InternalIterator;
use crate::engine::log::format::{BLOCK_SIZE, FIRST, FULL, HEADER_SIZE};
use crate::engine::log::reader::LogReader;
use crate::engine::table::Table;
use crate::engine::version::edit::{FileMetaData, VersionEdit};
use crate::engine::version::set::VersionSet;
use crate::engine::write_batch::{BatchEntry, WriteBatch};
use crate::engine::Options;
use crate::fs::schema::{describe, hex};
use std::path::{Path, PathBuf};

#[derive(clap::Subcommand, Debug)]
pub enum InspectCmd {
    /// Every VersionEdit in the live MANIFEST, then the Version they build.
    Manifest {
        /// Data directory (or a MANIFEST file).
        path: PathBuf,
        /// Also show each table's key range (names in the tree).
        #[arg(long)]
        keys: bool,
        /// Key ranges in hex.
        #[arg(long)]
        raw: bool,
    },
    /// Blocks, index, filter and properties of one SSTable.
    Sst {
        file: PathBuf,
        /// Also list every entry, and each block's last key.
        #[arg(long)]
        keys: bool,
        /// Keys and values in hex (implies --keys).
        #[arg(long)]
        raw: bool,
    },
    /// Every record of a blob file (offset, size, value length), checksums verified.
    Blob {
        file: PathBuf,
        /// Also show each record's key.
        #[arg(long)]
        keys: bool,
        /// Keys in hex.
        #[arg(long)]
        raw: bool,
    },
    /// Every record (write batch) of a WAL with its sequence numbers.
    Wal {
        file: PathBuf,
        /// Also list each record's entries.
        #[arg(long)]
        keys: bool,
        /// Keys and values in hex (implies --keys).
        #[arg(long)]
        raw: bool,
    },
    /// Resolve a path inside the filesystem offline and print every key it touches.
    Path {
        /// Data directory, or an etcd:// URL.
        dir: PathBuf,
        path: String,
        #[arg(long)]
        raw: bool,
        #[command(flatten)]
        etcd: crate::store::etcd::EtcdArgs,
    },
}

pub fn run(cmd: InspectCmd) -> i32 {
    let r = match cmd {
        InspectCmd::Manifest { path, keys, raw } => manifest(&path, shown(keys, raw)),
        InspectCmd::Sst { file, keys, raw } => sst(&file, shown(keys, raw)),
        InspectCmd::Wal { file, keys, raw } => wal(&file, shown(keys, raw)),
        InspectCmd::Blob { file, keys, raw } => blob(&file, shown(keys, raw)),
        InspectCmd::Path {
            dir,
            path,
            raw,
            etcd,
        } if crate::store::etcd::is_etcd(&dir) => {
            crate::store::etcd::EtcdUrl::parse(&dir.to_string_lossy())
                .and_then(|url| crate::store::etcd::EtcdStore::open(&url, &etcd.access()?))
                .and_then(|store| crate::fs::fsck::inspect_store_path(&store, &path, raw))
        }
        InspectCmd::Path { dir, path, raw, .. } => {
            super::offline::open(&dir, false, "unmount it first (inspect runs offline)")
                .map_err(|e| e.to_string())
                .and_then(|db| crate::fs::fsck::inspect_path(&db, &path, raw))
        }
    };
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("lsmfs inspect: {e}");
            2
        }
    }
}

/// How much of the store's contents to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shown {
    /// Structure only.
    Nothing,
    /// Keys decoded (names, symlink targets; values by size).
    Keys,
    /// Keys and values in hex.
    Raw,
}

fn shown(keys: bool, raw: bool) -> Shown {
    match (keys, raw) {
        (_, true) => Shown::Raw,
        (true, false) => Shown::Keys,
        _ => Shown::Nothing,
    }
}

fn describe_internal(ikey: &[u8], value: &[u8], raw: bool) -> String {
    match parse_internal_key(ikey) {
        Some(p) => {
            let v = match p.value_type {
                crate::engine::dbformat::ValueType::Value
                | crate::engine::dbformat::ValueType::BlobIndex => Some(value),
                crate::engine::dbformat::ValueType::Deletion
                | crate::engine::dbformat::ValueType::RangeDeletion => None,
            };
            let kind = if v.is_none() { "DEL " } else { "" };
            format!(
                "seq {:<8} {kind}{}",
                p.sequence,
                describe(p.user_key, v, raw)
            )
        }
        None => format!("<malformed internal key {}>", hex(ikey)),
    }
}

/// Refuse a file that does not start like a log: the first fragment
/// header must be all zeros (an empty or preallocated log) or name a
/// record start (FULL or FIRST) whose length fits in a block. A torn first
/// record still passes and is reported as a torn tail at offset 0.
fn check_is_log(file: &Path, data: &[u8], what: &str) -> Result<(), String> {
    let head = &data[..data.len().min(HEADER_SIZE)];
    if head.iter().all(|&b| b == 0) {
        return Ok(());
    }
    let plausible = head.len() == HEADER_SIZE
        && matches!(head[6], FULL | FIRST)
        && usize::from(u16::from_le_bytes([head[4], head[5]])) <= BLOCK_SIZE - HEADER_SIZE;
    if plausible {
        return Ok(());
    }
    Err(format!(
        "{} is not {what}: no log record starts at offset 0",
        file.display()
    ))
}

fn manifest(path: &Path, shown: Shown) -> Result<(), String> {
    let env = PosixEnv::new();
    let (dir, file) = if path.is_dir() {
        super::offline::preflight(path)?;
        let cur = current_file_name(path);
        let name = std::fs::read_to_string(&cur).map_err(|e| format!("{}: {e}", cur.display()))?;
        (path.to_path_buf(), path.join(name.trim_end()))
    } else {
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        (dir, path.to_path_buf())
    };
    let data = env.read_all(&file).map_err(|e| e.to_string())?;
    check_is_log(&file, &data, "a MANIFEST")?;
    let mut reader = LogReader::new(file.clone(), data.clone());
    if let Ok(Some(rec)) = reader.read_record() {
        if let Err(m) = VersionEdit::decode(&rec) {
            return Err(format!(
                "{} is not a MANIFEST: its first record is not a version edit ({m})",
                file.display()
            ));
        }
    }
    println!("MANIFEST {} ({} bytes)", file.display(), data.len());
    let mut reader = LogReader::new(file.clone(), data);
    let mut n = 0;
    loop {
        match reader.read_record() {
            Ok(Some(rec)) => {
                let off = reader.last_record_offset();
                match VersionEdit::decode(&rec) {
                    Ok(e) => println!("edit {n:<4} @{off:<8} {}", format_edit(&e, shown)),
                    Err(m) => println!("edit {n:<4} @{off:<8} <undecodable: {m}>"),
                }
                n += 1;
            }
            Ok(None) => break,
            Err(e) => {
                println!("error: {e}");
                break;
            }
        }
    }
    if let Some(t) = reader.torn_tail() {
        println!("torn tail at offset {}: {}", t.offset, t.reason);
    }
    if !path.is_dir() {
        return Ok(());
    }
    let mut vs = VersionSet::new(&dir, &Options::default());
    vs.recover().map_err(|e| e.to_string())?;
    let v = vs.current();
    println!();
    println!(
        "Version: log_number={} next_file={} last_sequence={}",
        vs.log_number, vs.next_file_number, vs.last_sequence
    );
    for (level, files) in v.files.iter().enumerate() {
        if files.is_empty() {
            continue;
        }
        println!(
            "L{level}: {} files, {} bytes",
            files.len(),
            v.level_bytes(level)
        );
        for f in files {
            println!("  {}", table_brief(f, shown, true));
        }
    }
    if v.total_files() == 0 {
        println!("(no tables)");
    }
    for b in v.blobs.values() {
        println!(
            "blob #{:<6} {:>10} bytes {:>8} records, garbage {} records {} bytes",
            b.number, b.file_size, b.records, b.garbage_records, b.garbage_bytes
        );
    }
    Ok(())
}

fn blob(file: &Path, shown: Shown) -> Result<(), String> {
    let env = PosixEnv::new();
    let f =
        crate::engine::blob::BlobFile::open(&env, file.to_path_buf()).map_err(|e| e.to_string())?;
    let records = f.records().map_err(|e| e.to_string())?;
    let bytes: u64 = records.iter().map(|r| r.size).sum();
    println!(
        "blob file {}: {} records, {bytes} record bytes, checksums OK",
        file.display(),
        records.len()
    );
    for r in &records {
        let key = match shown {
            Shown::Nothing => String::new(),
            Shown::Keys => format!("  {}", describe(&r.key, None, false)),
            Shown::Raw => format!("  {}", describe(&r.key, None, true)),
        };
        println!(
            "  @{:<10} {:>7} bytes  {} byte value{key}",
            r.offset,
            r.size,
            r.value.len()
        );
    }
    Ok(())
}

/// An edit on one line.
fn format_edit(e: &VersionEdit, shown: Shown) -> String {
    let mut parts = Vec::new();
    for (name, v) in [
        ("log", e.log_number),
        ("next_file", e.next_file_number),
        ("last_seq", e.last_sequence),
    ] {
        if let Some(v) = v {
            parts.push(format!("{name}={v}"));
        }
    }
    for (level, n) in &e.deleted_files {
        parts.push(format!("-L{level} #{n}"));
    }
    for (level, f) in &e.new_files {
        parts.push(format!("+L{level} {}", table_brief(f, shown, false)));
    }
    for b in &e.new_blobs {
        parts.push(format!(
            "+blob #{} {} bytes {} records (garbage {} records {} bytes)",
            b.number, b.file_size, b.records, b.garbage_records, b.garbage_bytes
        ));
    }
    for (n, r, b) in &e.blob_garbage {
        parts.push(format!("garbage blob #{n} +{r} records +{b} bytes"));
    }
    for n in &e.deleted_blobs {
        parts.push(format!("-blob #{n}"));
    }
    if parts.is_empty() {
        parts.push("(compaction pointers only)".into());
    }
    parts.join("  ")
}

/// A key without its value, as `shown` allows ("" for nothing).
fn key_brief(ikey: &[u8], shown: Shown) -> String {
    match (parse_internal_key(ikey), shown) {
        (_, Shown::Nothing) => String::new(),
        (Some(p), Shown::Keys) => crate::fs::schema::describe_key(p.user_key, None),
        (Some(p), Shown::Raw) => hex(p.user_key),
        (None, _) => hex(ikey),
    }
}

/// A table's number, size, entries and sequences (in columns if `wide`),
/// and its key range when keys are shown.
fn table_brief(f: &FileMetaData, shown: Shown, wide: bool) -> String {
    let (wn, wb, we, gap) = if wide {
        (6, 10, 8, "  ")
    } else {
        (0, 0, 0, " ")
    };
    let range = match shown {
        Shown::Nothing => String::new(),
        _ => format!(
            "{gap}[{} .. {}]",
            key_brief(&f.smallest, shown),
            key_brief(&f.largest, shown)
        ),
    };
    format!(
        "#{:<wn$} {:>wb$} bytes {:>we$} entries{gap}seq {}..{}{range}",
        f.number, f.file_size, f.num_entries, f.smallest_seq, f.largest_seq
    )
}

fn sst(file: &Path, shown: Shown) -> Result<(), String> {
    let env = PosixEnv::new();
    let size = env.file_size(file).map_err(|e| e.to_string())?;
    let f = env.open_random_access(file).map_err(|e| e.to_string())?;
    let table = Table::open(f, file.to_path_buf(), 0, size, None).map_err(|e| e.to_string())?;
    let p = table.properties();
    println!("SSTable {} ({size} bytes)", file.display());
    println!("  entries:       {}", p.num_entries);
    println!("  data blocks:   {}", p.num_data_blocks);
    println!("  raw keys:      {} bytes", p.raw_key_bytes);
    println!("  raw values:    {} bytes", p.raw_value_bytes);
    println!("  sequences:     {}..{}", p.smallest_seq, p.largest_seq);
    println!("  bloom filter:  {} bytes", p.filter_bytes);
    println!("  index:         {} bytes", p.index_bytes);
    println!("  range dels:    {}", p.num_range_deletions);
    let raw = shown == Shown::Raw;
    for t in table.range_deletions().tombstones() {
        if shown == Shown::Nothing {
            break;
        }
        println!(
            "    seq {:<8} [{}, {})",
            t.seq,
            describe(&t.start, None, raw),
            describe(&t.end, None, raw)
        );
    }
    println!("index:");
    for (k, h) in table.index_entries().map_err(|e| e.to_string())? {
        let last = match shown {
            Shown::Nothing => String::new(),
            _ => format!("  last key {}", key_brief(&k, shown)),
        };
        println!("  block @{:<8} {:>6} bytes{last}", h.offset, h.size);
    }
    match table.verify() {
        Ok(()) => println!("checksums: all blocks OK"),
        Err(e) => println!("checksums: {e}"),
    }
    if shown != Shown::Nothing {
        println!("entries:");
        let mut it = table.iter();
        it.seek_to_first();
        while it.valid() {
            println!("  {}", describe_internal(it.key(), it.value(), raw));
            it.next();
        }
        if let Err(e) = it.status() {
            println!("error: {e}");
        }
    }
    Ok(())
}

fn wal(file: &Path, shown: Shown) -> Result<(), String> {
    let raw = shown == Shown::Raw;
    let data = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    check_is_log(file, &data, "a WAL")?;
    if let Ok(Some(rec)) = LogReader::new(file.to_path_buf(), data.clone()).read_record() {
        if let Err(m) = WriteBatch::from_data(rec) {
            return Err(format!(
                "{} is not a WAL: its first record is not a write batch ({m})",
                file.display()
            ));
        }
    }
    println!("WAL {} ({} bytes)", file.display(), data.len());
    let mut reader = LogReader::new(file.to_path_buf(), data);
    loop {
        match reader.read_record() {
            Ok(Some(rec)) => {
                let off = reader.last_record_offset();
                let batch = match WriteBatch::from_data(rec) {
                    Ok(b) => b,
                    Err(m) => {
                        println!("record @{off}: <bad batch: {m}>");
                        continue;
                    }
                };
                let seq = batch.sequence();
                let n = batch.count() as u64;
                println!(
                    "record @{off:<8} seq {}..{} ({n} entries, {} bytes)",
                    seq,
                    (seq + n).saturating_sub(1),
                    batch.approximate_size()
                );
                for e in batch.iter().filter(|_| shown != Shown::Nothing) {
                    match e {
                        Ok(BatchEntry::Put(k, v)) => {
                            println!("  put {}", describe(k, Some(v), raw))
                        }
                        Ok(BatchEntry::Delete(k)) => println!("  del {}", describe(k, None, raw)),
                        Ok(BatchEntry::DeleteRange(s, e)) => println!(
                            "  del range [{}, {})",
                            describe(s, None, raw),
                            describe(e, None, raw)
                        ),
                        Ok(BatchEntry::BlobRef(k, r)) => {
                            let at = crate::engine::blob::BlobRef::decode(r).map_or_else(
                                || format!("<malformed reference of {} bytes>", r.len()),
                                |r| format!("{:06}.blob @{} ({} bytes)", r.file, r.offset, r.size),
                            );
                            println!("  put {} -> blob log {at}", describe(k, None, raw))
                        }
                        Err(m) => println!("  <{m}>"),
                    }
                }
            }
            Ok(None) => break,
            Err(e) => {
                println!("error: {e}");
                break;
            }
        }
    }
    match reader.torn_tail() {
        Some(t) => println!(
            "torn tail at offset {}: {} (recovery stops here)",
            t.offset, t.reason
        ),
        None => println!("end of log (clean)"),
    }
    Ok(())
}
