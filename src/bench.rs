//! `lsmfs bench`: the engine benchmark, speaking RocksDB `db_bench`'s flags
//! and output lines so the two can be run side by side (see
//! `scripts/engine-bench.sh`).
//!
//! What each benchmark does mirrors db_bench: keys are `key_size` bytes, an
//! 8-byte big-endian number padded with '0'; fill benchmarks start from an
//! empty database (unless `--use_existing_db=1`); `fillseq` writes keys in
//! order, `fillrandom` and `overwrite` at uniformly random numbers below
//! `--num`; `readrandom` reads `--reads` random numbers (reporting how many
//! were found); `readseq` iterates the whole database. One thread, one
//! entry per batch, no fsync unless `--sync=1`. Defaults follow db_bench
//! (64 MiB write buffer, 8 MiB block cache).

use crate::engine::{Db, Options, SyncMode, WriteBatch};
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[arg(
        long,
        default_value = "fillseq,fillrandom,readrandom,readseq,overwrite"
    )]
    pub benchmarks: String,
    #[arg(long, default_value_t = 1_000_000)]
    pub num: u64,
    /// Reads for read benchmarks; -1 means --num.
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pub reads: i64,
    #[arg(long = "value_size", default_value_t = 100)]
    pub value_size: usize,
    #[arg(long = "key_size", default_value_t = 16)]
    pub key_size: usize,
    #[arg(long, default_value = "/tmp/lsmfs-bench")]
    pub db: PathBuf,
    #[arg(long = "use_existing_db", default_value_t = 0)]
    pub use_existing_db: u8,
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    #[arg(long = "cache_size", default_value_t = 8 << 20)]
    pub cache_size: usize,
    #[arg(long = "write_buffer_size", default_value_t = 64 << 20)]
    pub write_buffer_size: usize,
    /// Values of at least this many bytes go to blob files (RocksDB's
    /// `--min_blob_size` with `--enable_blob_files=true`); 0: never.
    #[arg(long = "min_blob_size", default_value_t = 4096)]
    pub min_blob_size: usize,
    #[arg(long, default_value_t = 0)]
    pub sync: u8,
    #[arg(long, default_value_t = 301)]
    pub seed: u64,
    /// Accepted for db_bench compatibility; lsmfs does not compress.
    #[arg(long = "compression_type", default_value = "none")]
    pub compression_type: String,
    /// Accepted for db_bench compatibility; ignored.
    #[arg(long, default_value_t = 0)]
    pub histogram: u8,
}

/// splitmix64: a small, fast, well-mixed generator (no runtime dependency).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

/// db_bench's key: the number as 8 big-endian bytes, padded with '0'.
pub fn make_key(n: u64, key_size: usize, out: &mut Vec<u8>) {
    out.clear();
    let be = n.to_be_bytes();
    if key_size >= 8 {
        out.extend_from_slice(&be);
        out.resize(key_size, b'0');
    } else {
        out.extend_from_slice(&be[8 - key_size..]);
    }
}

/// Values cut from a block of random bytes (compression is off, so content does not matter).
struct ValueSource {
    data: Vec<u8>,
    pos: usize,
}

impl ValueSource {
    fn new(rng: &mut Rng) -> ValueSource {
        ValueSource {
            data: (0..(1 << 20)).map(|_| rng.next() as u8).collect(),
            pos: 0,
        }
    }
    fn get(&mut self, len: usize) -> &[u8] {
        if self.pos + len > self.data.len() {
            self.pos = 0;
        }
        let s = &self.data[self.pos..self.pos + len.min(self.data.len())];
        self.pos += len;
        s
    }
}

/// One result line in db_bench's format.
pub fn format_line(name: &str, ops: u64, secs: f64, bytes: u64, extra: &str) -> String {
    let micros = if ops == 0 {
        0.0
    } else {
        secs * 1e6 / ops as f64
    };
    let ops_sec = if secs > 0.0 { ops as f64 / secs } else { 0.0 };
    let rate = if bytes > 0 && secs > 0.0 {
        format!(" {:6.1} MB/s", bytes as f64 / 1048576.0 / secs)
    } else {
        String::new()
    };
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!(" {extra}")
    };
    format!(
        "{name:<12} : {micros:11.3} micros/op {} ops/sec {secs:.3} seconds {ops} operations;{rate}{extra}",
        ops_sec as u64
    )
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

pub fn run(args: BenchArgs) -> i32 {
    match run_inner(&args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("lsmfs bench: {e}");
            1
        }
    }
}

fn open(args: &BenchArgs, fresh: bool) -> Result<Db, String> {
    if fresh && args.db.exists() {
        std::fs::remove_dir_all(&args.db)
            .map_err(|e| format!("removing {}: {e}", args.db.display()))?;
    }
    let opts = Options {
        write_buffer_size: args.write_buffer_size,
        block_cache_bytes: args.cache_size,
        min_blob_size: args.min_blob_size,
        sync_mode: if args.sync != 0 {
            SyncMode::Always
        } else {
            SyncMode::OnRequest
        },
        ..Default::default()
    };
    Db::open(&args.db, opts).map_err(|e| format!("open {}: {e}", args.db.display()))
}

fn run_inner(args: &BenchArgs) -> Result<(), String> {
    if args.threads != 1 {
        return Err("only --threads=1 is supported".into());
    }
    let reads = if args.reads < 0 {
        args.num
    } else {
        args.reads as u64
    };
    println!(
        "Keys:       {} bytes each (+ 0 bytes user-defined timestamp)",
        args.key_size
    );
    println!(
        "Values:     {} bytes each ({} bytes after compression)",
        args.value_size, args.value_size
    );
    println!("Entries:    {}", args.num);
    println!(
        "FileSize:   {:.1} MB (estimated)",
        (args.num * (args.key_size + args.value_size) as u64) as f64 / 1048576.0
    );
    println!("Compression: NoCompression");
    println!("------------------------------------------------");
    let mut rng = Rng(args.seed);
    let mut values = ValueSource::new(&mut rng);
    let mut db: Option<Db> = None;
    let mut key = Vec::with_capacity(args.key_size);
    for name in args
        .benchmarks
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let fresh = matches!(name, "fillseq" | "fillrandom") && args.use_existing_db == 0;
        if fresh || db.is_none() {
            if let Some(d) = db.take() {
                d.close().map_err(|e| e.to_string())?;
            }
            db = Some(open(args, fresh)?);
        }
        let Some(d) = db.as_ref() else {
            return Err("no database".into());
        };
        let start = Instant::now();
        let (ops, bytes, extra) = match name {
            "fillseq" | "fillrandom" | "overwrite" => {
                let sync = args.sync != 0;
                for i in 0..args.num {
                    let n = if name == "fillseq" {
                        i
                    } else {
                        rng.below(args.num)
                    };
                    make_key(n, args.key_size, &mut key);
                    let mut b = WriteBatch::new();
                    b.put(&key, values.get(args.value_size));
                    d.write(b, sync).map_err(|e| format!("{name}: {e}"))?;
                }
                (
                    args.num,
                    args.num * (args.key_size + args.value_size) as u64,
                    String::new(),
                )
            }
            "readrandom" => {
                let mut found = 0u64;
                for _ in 0..reads {
                    make_key(rng.below(args.num), args.key_size, &mut key);
                    if d.get(&key).map_err(|e| format!("{name}: {e}"))?.is_some() {
                        found += 1;
                    }
                }
                (reads, 0, format!("({found} of {reads} found)"))
            }
            "readseq" => {
                let mut it = d.iter(None).map_err(|e| e.to_string())?;
                it.seek_to_first();
                let mut n = 0u64;
                let mut bytes = 0u64;
                while it.valid() && n < reads {
                    bytes += (it.key().len() + it.value().len()) as u64;
                    n += 1;
                    it.next();
                }
                it.status().map_err(|e| format!("{name}: {e}"))?;
                (n, bytes, String::new())
            }
            "flush" => {
                d.flush().map_err(|e| e.to_string())?;
                (1, 0, String::new())
            }
            "compact" => {
                d.compact_range(None, None).map_err(|e| e.to_string())?;
                (1, 0, String::new())
            }
            "stats" => {
                println!("{}", d.stats());
                continue;
            }
            other => {
                eprintln!("unknown benchmark '{other}'");
                continue;
            }
        };
        let secs = start.elapsed().as_secs_f64();
        println!("{}", format_line(name, ops, secs, bytes, &extra));
    }
    if let Some(d) = db {
        let stats = d.stats();
        d.close().map_err(|e| e.to_string())?;
        println!("------------------------------------------------");
        print!("{stats}");
    }
    println!("peak RSS: {} KiB", peak_rss_kib());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_db_bench_layout() {
        let mut k = Vec::new();
        make_key(1, 16, &mut k);
        assert_eq!(k, b"\0\0\0\0\0\0\0\x0100000000");
        assert_eq!(k.len(), 16);
        make_key(0x0102, 4, &mut k);
        assert_eq!(k, [0, 0, 1, 2]);
    }

    #[test]
    fn line_format() {
        let l = format_line("fillseq", 1000000, 2.0, 116 << 20, "");
        assert!(l.starts_with("fillseq      :       2.000 micros/op 500000 ops/sec 2.000 seconds 1000000 operations;"), "{l}");
        assert!(l.ends_with("MB/s"));
        let l = format_line("readrandom", 10, 1.0, 0, "(5 of 10 found)");
        assert!(l.ends_with("operations; (5 of 10 found)"), "{l}");
    }
}
