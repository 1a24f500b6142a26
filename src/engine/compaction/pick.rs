//! Choosing a compaction: the level whose score is highest (one file of it,
//! round-robin by the level's compaction pointer; every overlapping file
//! for L0) with what it overlaps in the next level, or, for a manual
//! compaction, everything of a level overlapping a key range.

use super::Compaction;
use crate::engine::dbformat::user_key;
use crate::engine::options::NUM_LEVELS;
use crate::engine::version::edit::FileMetaData;
use crate::engine::version::Version;
use std::sync::Arc;

/// Pick the most urgent compaction, if any level's score reaches 1.
pub fn pick(version: &Version, scores: &[f64], compact_pointers: &[Vec<u8>]) -> Option<Compaction> {
    let (level, score) = scores
        .iter()
        .enumerate()
        .take(NUM_LEVELS - 1)
        .max_by(|a, b| a.1.partial_cmp(b.1).unwrap_or(std::cmp::Ordering::Equal))?;
    if *score < 1.0 || version.files[level].is_empty() {
        return None;
    }
    let files = &version.files[level];
    let first = if level == 0 {
        files[0].clone()
    } else {
        let ptr = compact_pointers.get(level).map_or(&[][..], |p| &p[..]);
        files
            .iter()
            .find(|f| {
                ptr.is_empty()
                    || crate::engine::dbformat::compare_internal(&f.largest, ptr)
                        == std::cmp::Ordering::Greater
            })
            .unwrap_or(&files[0])
            .clone()
    };
    let mut inputs = vec![first];
    if level == 0 {
        let (lo, hi) = key_range(&inputs);
        inputs = version.overlapping_inputs(0, Some(&lo), Some(&hi));
    }
    Some(with_next_level(version, level, inputs))
}

/// A compaction of everything at `level` overlapping `[begin, end]`, if any.
pub fn pick_range(
    version: &Version,
    level: usize,
    begin: Option<&[u8]>,
    end: Option<&[u8]>,
) -> Option<Compaction> {
    let inputs = version.overlapping_inputs(level, begin, end);
    if inputs.is_empty() {
        return None;
    }
    Some(with_next_level(version, level, inputs))
}

fn with_next_level(version: &Version, level: usize, inputs: Vec<Arc<FileMetaData>>) -> Compaction {
    let (lo, hi) = key_range(&inputs);
    let next_inputs = if level + 1 < NUM_LEVELS {
        version.overlapping_inputs(level + 1, Some(&lo), Some(&hi))
    } else {
        Vec::new()
    };
    Compaction {
        level,
        inputs,
        next_inputs,
        in_place: false,
    }
}

/// Smallest and largest user key over `files`.
fn key_range(files: &[Arc<FileMetaData>]) -> (Vec<u8>, Vec<u8>) {
    let mut lo: Option<&[u8]> = None;
    let mut hi: Option<&[u8]> = None;
    for f in files {
        let s = user_key(&f.smallest);
        let l = user_key(&f.largest);
        if lo.is_none_or(|x| s < x) {
            lo = Some(s);
        }
        if hi.is_none_or(|x| l > x) {
            hi = Some(l);
        }
    }
    (
        lo.unwrap_or_default().to_vec(),
        hi.unwrap_or_default().to_vec(),
    )
}
