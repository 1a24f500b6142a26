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
//! - `masked crc32`: crc32 (Castagnoli is LevelDB's; lsmfs uses the IEEE
//!   polynomial of `crc32fast`) of the type byte followed by the payload,
//!   stored masked as `((crc >> 15) | (crc << 17)).wrapping_add(0xa282ead8)`
//!   so that a CRC computed over bytes that embed CRCs is not degenerate.
//! - `length`: payload bytes, at most `BLOCK_SIZE - HEADER_SIZE`; a fragment
//!   never crosses a block boundary.
//! - `type`: `FULL` (1) a whole record; `FIRST` (2), `MIDDLE` (3), `LAST` (4)
//!   the pieces of a record split across blocks; `ZERO_TYPE` (0) never
//!   written in a header: an all-zero header is padding or preallocated space.
//!
//! A record that fits in the rest of the block is one FULL fragment;
//! otherwise it is FIRST, MIDDLE..., LAST (a record may start with an empty
//! FIRST when exactly a header's worth of bytes is left). A block tail
//! shorter than a header (0 to 6 bytes) is zero-filled and skipped by
//! readers. A record may be empty (a FULL fragment with length 0).
//!
//! A WAL may end in zeros: its writer keeps up to 64 KiB of them written and
//! synced past the last record, so that an fsync after an append does not
//! change the file's size (which would cost the filesystem an inode write
//! on every fsync). Records overwrite them as the log grows; readers stop at
//! the zeros.
//!
//! Why blocks: every block starts with a fragment header, so a reader can
//! find record boundaries after damage without trusting any length field
//! before it (see `log::reader` for how that separates a torn tail from
//! corruption), and a torn write only ever damages the end of the log.

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
            // The literal formula of the format description, on purpose.
            #[allow(clippy::manual_rotate)]
            let formula = ((c >> 15) | (c << 17)).wrapping_add(0xa282_ead8);
            assert_eq!(mask_crc(c), formula);
        }
    }

    #[test]
    fn crc_covers_type_and_payload() {
        assert_ne!(fragment_crc(FULL, b"x"), fragment_crc(FIRST, b"x"));
        assert_ne!(fragment_crc(FULL, b"x"), fragment_crc(FULL, b"y"));
        let mut h = crc32fast::Hasher::new();
        h.update(&[FULL, b'a', b'b']);
        assert_eq!(fragment_crc(FULL, b"ab"), h.finalize());
    }
}
