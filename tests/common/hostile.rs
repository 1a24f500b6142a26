//! The hostile-bytes harness: seeded mutations of valid encodings, a
//! per-case panic report that reproduces the case, and an allocator that
//! refuses any single allocation above `MAX_ALLOC` (a decoder that trusts
//! a length field of 2^32 aborts the test instead of quietly allocating).
//!
//! `LSMFS_FUZZ_CASES` sets the cases per decoder (default 300, which keeps
//! the whole file to seconds); `LSMFS_FUZZ_SEED` the seed (default fixed, so
//! `cargo test` is deterministic). `scripts/fuzz.sh` runs millions with a
//! fresh seed. A failing case prints its decoder, seed and case number and
//! the input in hex; rerun it with `LSMFS_FUZZ_SEED=S LSMFS_FUZZ_FROM=N`.

#![allow(dead_code)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};

/// The largest single allocation a decoder may make on inputs this small.
pub const MAX_ALLOC: usize = 64 << 20;

/// Which case is running, for the allocator's refusal message.
static CASE: AtomicU64 = AtomicU64::new(u64::MAX);
static SEED: AtomicU64 = AtomicU64::new(0);

pub struct Bounded;

fn refuse(size: usize) {
    // No allocation here: format the numbers on the stack.
    fn put(buf: &mut [u8], at: &mut usize, s: &[u8]) {
        for &b in s {
            if *at < buf.len() {
                buf[*at] = b;
                *at += 1;
            }
        }
    }
    fn num(buf: &mut [u8], at: &mut usize, mut n: u64) {
        let mut d = [0u8; 20];
        let mut i = d.len();
        loop {
            i -= 1;
            d[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        put(buf, at, &d[i..]);
    }
    let mut buf = [0u8; 200];
    let mut at = 0;
    put(
        &mut buf,
        &mut at,
        b"\nhostile bytes: refused an allocation of ",
    );
    num(&mut buf, &mut at, size as u64);
    put(&mut buf, &mut at, b" bytes (LSMFS_FUZZ_SEED=");
    num(&mut buf, &mut at, SEED.load(Ordering::Relaxed));
    put(&mut buf, &mut at, b" LSMFS_FUZZ_FROM=");
    num(&mut buf, &mut at, CASE.load(Ordering::Relaxed));
    put(&mut buf, &mut at, b")\n");
    // SAFETY: writing a stack buffer to stderr.
    unsafe {
        libc::write(2, buf.as_ptr().cast(), at);
    }
}

// SAFETY: forwards to the system allocator, refusing oversized requests
// with a null pointer as the GlobalAlloc contract allows.
unsafe impl GlobalAlloc for Bounded {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOC {
            refuse(layout.size());
            return std::ptr::null_mut();
        }
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOC {
            refuse(layout.size());
            return std::ptr::null_mut();
        }
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > MAX_ALLOC {
            refuse(new_size);
            return std::ptr::null_mut();
        }
        System.realloc(ptr, layout, new_size)
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn cases() -> u64 {
    env_u64("LSMFS_FUZZ_CASES", 300)
}

pub fn seed() -> u64 {
    env_u64("LSMFS_FUZZ_SEED", 0x6c73_6d66)
}

/// One hostile variant of a valid input (or of nothing: pure noise).
pub fn mutate(rng: &mut StdRng, valid: &[u8]) -> Vec<u8> {
    let mut d = valid.to_vec();
    match rng.gen_range(0..10) {
        0 => {
            let n = rng.gen_range(0..=(2 * valid.len()).max(64));
            return (0..n).map(|_| rng.gen()).collect();
        }
        1 if !d.is_empty() => d.truncate(rng.gen_range(0..d.len())),
        2 if !d.is_empty() => {
            // A run of 0xff or 0x00: huge varints, zero lengths.
            let at = rng.gen_range(0..d.len());
            let b = if rng.gen() { 0xff } else { 0x00 };
            let n = rng.gen_range(1..10).min(d.len() - at);
            d[at..at + n].fill(b);
        }
        3 if !d.is_empty() => {
            // A fixed32/64 length or count field set to something huge.
            let at = rng.gen_range(0..d.len());
            let v: u64 = [u32::MAX as u64, 1 << 32, u64::MAX, 1 << 31][rng.gen_range(0..4)];
            for (i, b) in v.to_le_bytes().iter().enumerate() {
                if let Some(x) = d.get_mut(at + i) {
                    *x = *b;
                }
            }
        }
        4 if !d.is_empty() => {
            let at = rng.gen_range(0..=d.len());
            let n = rng.gen_range(1..32);
            let junk: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
            d.splice(at..at, junk);
        }
        _ if !d.is_empty() => {
            for _ in 0..rng.gen_range(1..=8) {
                let i = rng.gen_range(0..d.len());
                d[i] ^= 1 << rng.gen_range(0..8);
            }
        }
        _ => d = (0..rng.gen_range(0..64)).map(|_| rng.gen()).collect(),
    }
    d
}

fn hex(b: &[u8]) -> String {
    let shown: String = b.iter().take(2048).map(|x| format!("{x:02x}")).collect();
    if b.len() > 2048 {
        format!("{shown}... ({} bytes)", b.len())
    } else {
        shown
    }
}

fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// Run `cases()` cases of `decoder`: each feeds `check` one input made by
/// `make` from a per-case RNG. A panic is reported with what reproduces it.
pub fn run<F, M>(decoder: &str, mut make: M, check: F)
where
    M: FnMut(&mut StdRng) -> Vec<u8>,
    F: Fn(&[u8]),
{
    let seed = seed();
    let from = env_u64("LSMFS_FUZZ_FROM", 0);
    SEED.store(seed, Ordering::Relaxed);
    for case in from..from + cases() {
        CASE.store(case, Ordering::Relaxed);
        let mut rng = StdRng::seed_from_u64(
            seed ^ name_hash(decoder) ^ case.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        );
        let input = make(&mut rng);
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| check(&input))) {
            eprintln!(
                "hostile bytes: {decoder} panicked on case {case} \
                 (LSMFS_FUZZ_SEED={seed} LSMFS_FUZZ_FROM={case}); input {}",
                hex(&input)
            );
            std::panic::resume_unwind(p);
        }
    }
    CASE.store(u64::MAX, Ordering::Relaxed);
}

/// `run` over mutations of a corpus of valid encodings.
pub fn run_corpus<F: Fn(&[u8])>(decoder: &str, corpus: &[Vec<u8>], check: F) {
    run(
        decoder,
        |rng| {
            let base = &corpus[rng.gen_range(0..corpus.len())];
            mutate(rng, base)
        },
        check,
    )
}
