//! The table's framing: block handles, the trailer every block carries, and
//! the footer that locates the metaindex and index (the layout is drawn in
//! `table`'s module doc).
//!
//! - **Handle**: `varint64 offset, varint64 size` of a block's contents.
//! - **Trailer** (5 bytes) after every block: a type byte (0 = raw) and the
//!   masked CRC32 of contents + type.
//! - **Footer** (48 bytes): metaindex handle, index handle, zero padding to
//!   40 bytes, then the 8-byte magic little-endian (`MAGIC`, or `MAGIC_V2`
//!   for a table holding range deletions).

use crate::engine::coding::{put_varint64, Decoder};
use crate::engine::log::format::mask_crc;
pub const MAGIC: u64 = 0x6c73_6d66_7373_7431;
/// Tables holding range deletions.
pub const MAGIC_V2: u64 = 0x6c73_6d66_7373_7432;
pub const FOOTER_SIZE: usize = 48;
pub(super) const TRAILER_SIZE: usize = 5;
pub(super) const MAX_BLOCK_SIZE: u64 = 256 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockHandle {
    pub offset: u64,
    pub size: u64,
}

impl BlockHandle {
    pub(super) fn encode_to(&self, dst: &mut Vec<u8>) {
        put_varint64(dst, self.offset);
        put_varint64(dst, self.size);
    }

    pub(super) fn decode(d: &mut Decoder<'_>) -> Option<BlockHandle> {
        Some(BlockHandle {
            offset: d.varint64()?,
            size: d.varint64()?,
        })
    }
}

pub(super) fn block_crc(contents: &[u8], kind: u8) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(contents);
    h.update(&[kind]);
    mask_crc(h.finalize())
}

/// A table's footer: where its metaindex and index blocks are, and its
/// version (`MAGIC` or `MAGIC_V2`).
pub(super) struct Footer {
    pub(super) metaindex: BlockHandle,
    pub(super) index: BlockHandle,
    pub(super) magic: u64,
}

impl Footer {
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut footer = Vec::with_capacity(FOOTER_SIZE);
        self.metaindex.encode_to(&mut footer);
        self.index.encode_to(&mut footer);
        footer.resize(FOOTER_SIZE - 8, 0);
        footer.extend_from_slice(&self.magic.to_le_bytes());
        footer
    }

    /// The footer in `raw` (the file's last `FOOTER_SIZE` bytes), or what is
    /// wrong with it (the caller names the file and offset).
    pub(super) fn decode(raw: &[u8]) -> std::result::Result<Footer, &'static str> {
        let bad_magic = "bad table magic number (not an lsmfs table, or truncated)";
        let (handles, magic) = match raw.len() {
            FOOTER_SIZE => raw.split_at(FOOTER_SIZE - 8),
            _ => return Err(bad_magic),
        };
        let mut m = [0u8; 8];
        m.copy_from_slice(magic);
        let magic = u64::from_le_bytes(m);
        if magic != MAGIC && magic != MAGIC_V2 {
            return Err(bad_magic);
        }
        let mut d = Decoder::new(handles);
        match (BlockHandle::decode(&mut d), BlockHandle::decode(&mut d)) {
            (Some(metaindex), Some(index)) => Ok(Footer {
                metaindex,
                index,
                magic,
            }),
            _ => Err("bad footer handles"),
        }
    }
}
