//! The record log shared by the WAL and the MANIFEST (LevelDB's log format).
//!
//! A log is a sequence of 32 KiB blocks. A record is stored as one or more
//! *fragments*, each with a 7-byte header:
//!
//! ```text
//! +-----------------+--------------+---------+-----------------+
//! | masked crc32 LE | length u16LE | type u8 | payload (length) |
//! +-----------------+--------------+---------+-----------------+
//! ```
//!
//! The CRC covers the type byte and the payload. A record that fits in the
//! rest of the block is one FULL fragment; otherwise it is FIRST, MIDDLE...,
//! LAST. A block tail shorter than a header is zero-filled. Blocks let a
//! reader resynchronise after damage and keep a torn write confined to the
//! end of the log.

pub const BLOCK_SIZE: usize = 32 * 1024;
pub const HEADER_SIZE: usize = 7;

pub const ZERO_TYPE: u8 = 0;
pub const FULL: u8 = 1;
pub const FIRST: u8 = 2;
pub const MIDDLE: u8 = 3;
pub const LAST: u8 = 4;

const MASK_DELTA: u32 = 0xa282_ead8;

/// Mask a CRC so that a CRC of data that itself holds CRCs is not trivially related.
pub fn mask_crc(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(MASK_DELTA)
}

pub fn unmask_crc(masked: u32) -> u32 {
    masked.wrapping_sub(MASK_DELTA).rotate_left(15)
}

/// CRC of a fragment: over the type byte then the payload.
pub fn fragment_crc(kind: u8, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&[kind]);
    h.update(payload);
    h.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_roundtrip() {
        for c in [0u32, 1, 0xdead_beef, u32::MAX] {
            assert_eq!(unmask_crc(mask_crc(c)), c);
            assert_ne!(mask_crc(c), c);
        }
    }
}
