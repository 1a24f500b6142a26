//! The user-facing iterator: a merged view of memtables and tables as of
//! one sequence number, yielding each live user key once with its newest
//! visible value, deletions hidden — point deletions met in the stream,
//! range deletions by asking each source's fragments (see `range_del`).
//!
//! It owns `Arc`s of the memtables and the Version it reads, so flushes and
//! compactions that happen while it is open do not disturb it.

use crate::engine::blob::BlobPrefetcher;
use crate::engine::dbformat::{lookup_key, parse_internal_key, SequenceNumber, ValueType};
use crate::engine::error::{Error, Result};
use crate::engine::iterator::InternalIterator;
use crate::engine::range_del::Fragments;
use crate::engine::table::merger::MergingIterator;
use crate::engine::version::Version;
use std::sync::Arc;

pub struct DbIterator {
    inner: MergingIterator,
    sequence: SequenceNumber,
    key: Vec<u8>,
    value: Vec<u8>,
    valid: bool,
    error: Option<Error>,
    /// The range deletions of every source that may cover the keys read.
    ranges: Vec<Arc<Fragments>>,
    /// Reads the values tables hold as blob references.
    blobs: BlobPrefetcher,
    /// Keeps the files of the Version alive while we read them.
    _version: Arc<Version>,
    /// Keeps snapshot registration (if any) alive.
    _guard: Option<Box<dyn Send + Sync>>,
}

impl DbIterator {
    pub(crate) fn new(
        inner: MergingIterator,
        sequence: SequenceNumber,
        version: Arc<Version>,
        guard: Option<Box<dyn Send + Sync>>,
        ranges: Vec<Arc<Fragments>>,
        blobs: BlobPrefetcher,
    ) -> DbIterator {
        DbIterator {
            inner,
            sequence,
            key: Vec::new(),
            value: Vec::new(),
            valid: false,
            error: None,
            ranges: ranges.into_iter().filter(|f| !f.is_empty()).collect(),
            blobs,
            _version: version,
            _guard: guard,
        }
    }

    pub fn seek_to_first(&mut self) {
        self.inner.seek_to_first();
        self.find_next_user_entry(None);
    }

    /// Position at the first live key >= `user_key`.
    pub fn seek(&mut self, user_key: &[u8]) {
        self.inner.seek(&lookup_key(user_key, self.sequence));
        self.find_next_user_entry(None);
    }

    pub fn valid(&self) -> bool {
        self.valid
    }

    pub fn next(&mut self) {
        if !self.valid {
            return;
        }
        let skip = std::mem::take(&mut self.key);
        self.find_next_user_entry(Some(&skip));
        if !self.valid {
            self.key.clear();
        }
    }

    pub fn key(&self) -> &[u8] {
        &self.key
    }

    pub fn value(&self) -> &[u8] {
        &self.value
    }

    pub fn status(&self) -> Result<()> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        self.inner.status()
    }

    /// Advance the merged input to the newest visible version of the next
    /// user key (after `skip`, if given) that is not deleted.
    fn find_next_user_entry(&mut self, skip: Option<&[u8]>) {
        let mut skipping: Option<Vec<u8>> = skip.map(|s| s.to_vec());
        self.valid = false;
        while self.inner.valid() {
            let ikey = self.inner.key();
            let Some(p) = parse_internal_key(ikey) else {
                self.error = Some(Error::InvalidArgument(format!(
                    "malformed internal key of {} bytes",
                    ikey.len()
                )));
                return;
            };
            if p.sequence <= self.sequence {
                let hidden = skipping.as_deref().is_some_and(|s| s >= p.user_key);
                if !hidden {
                    let covered = self
                        .ranges
                        .iter()
                        .any(|f| f.max_covering(p.user_key, self.sequence) > p.sequence);
                    match p.value_type {
                        ValueType::Deletion | ValueType::RangeDeletion => {
                            skipping = Some(p.user_key.to_vec());
                        }
                        ValueType::Value | ValueType::BlobIndex if covered => {
                            skipping = Some(p.user_key.to_vec());
                        }
                        ValueType::BlobIndex => {
                            match self.blobs.get(p.user_key, self.inner.value()) {
                                Ok(v) => self.value = v,
                                Err(e) => {
                                    self.error = Some(e);
                                    return;
                                }
                            }
                            self.key.clear();
                            self.key.extend_from_slice(p.user_key);
                            self.valid = true;
                            return;
                        }
                        ValueType::Value => {
                            self.key.clear();
                            self.key.extend_from_slice(p.user_key);
                            self.value.clear();
                            self.value.extend_from_slice(self.inner.value());
                            self.valid = true;
                            return;
                        }
                    }
                }
            }
            self.inner.next();
        }
    }
}
