//! The bloom filter over a table's user keys: one filter per table (see
//! `table`'s module doc for why), ≈10 bits a key, k = bits·ln2 probes by
//! double hashing, the last byte holding k.

pub(super) fn bloom_hash(key: &[u8]) -> u32 {
    // Murmur-style mixing, as LevelDB's filter hash does.
    const M: u32 = 0xc6a4_a793;
    let mut h: u32 = 0xbc9f_1d34 ^ (key.len() as u32).wrapping_mul(M);
    let mut chunks = key.chunks_exact(4);
    for c in &mut chunks {
        let w = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        h = h.wrapping_add(w).wrapping_mul(M);
        h ^= h >> 16;
    }
    let rest = chunks.remainder();
    for (i, &b) in rest.iter().enumerate().rev() {
        h = h.wrapping_add((b as u32) << (8 * i));
        if i == 0 {
            h = h.wrapping_mul(M);
            h ^= h >> 24;
        }
    }
    h
}

pub(super) fn build_bloom(hashes: &[u32], bits_per_key: usize) -> Vec<u8> {
    let k = ((bits_per_key as f64 * 0.69) as usize).clamp(1, 30);
    let bits = (hashes.len() * bits_per_key).max(64);
    let bytes = bits.div_ceil(8);
    let bits = bytes * 8;
    let mut out = vec![0u8; bytes + 1];
    for &h0 in hashes {
        let mut h = h0;
        let delta = h.rotate_right(17);
        for _ in 0..k {
            let pos = (h as usize) % bits;
            out[pos / 8] |= 1 << (pos % 8);
            h = h.wrapping_add(delta);
        }
    }
    out[bytes] = k as u8;
    out
}

pub(super) fn bloom_may_contain(filter: &[u8], key: &[u8]) -> bool {
    if filter.len() < 2 {
        return true;
    }
    let bytes = filter.len() - 1;
    let bits = bytes * 8;
    let k = filter[bytes] as usize;
    if k > 30 {
        return true;
    }
    let mut h = bloom_hash(key);
    let delta = h.rotate_right(17);
    for _ in 0..k {
        let pos = (h as usize) % bits;
        if filter[pos / 8] & (1 << (pos % 8)) == 0 {
            return false;
        }
        h = h.wrapping_add(delta);
    }
    true
}
