//! The two-level iterator: an index chooses second-level iterators, whose
//! entries are concatenated (LevelDB's `TwoLevelIterator`).
//!
//! It serves both places where sorted runs are stored in pieces: a table
//! (the index block → data block iterators, see `table::iterator`) and a
//! level of disjoint tables (the file list → table iterators, see
//! `version::level_iter`). What differs between them — how the index is
//! walked, how an entry is opened, reading ahead, naming damage — lives in
//! the [`Index`] they hand it; stepping over exhausted pieces and keeping
//! the first error is done once, here.

use crate::engine::error::{Error, Result};
use crate::engine::iterator::InternalIterator;

/// The first level: a forward cursor over entries, each naming a sorted
/// piece whose keys all sort after the previous entry's and at or before
/// its own.
pub trait Index: Send {
    type Piece: InternalIterator;
    fn seek_to_first(&mut self);
    /// Position at the first entry whose piece may hold keys >= `target`.
    fn seek(&mut self, target: &[u8]);
    /// Step to the next entry (the current piece was exhausted).
    fn next(&mut self);
    /// Whether positioned at an entry; the error that stopped the cursor.
    fn valid(&mut self) -> Result<bool>;
    /// Open the piece of the current entry.
    fn open(&mut self) -> Result<Self::Piece>;
}

pub struct TwoLevelIterator<I: Index> {
    index: I,
    piece: Option<I::Piece>,
    error: Option<Error>,
}

impl<I: Index> TwoLevelIterator<I> {
    pub fn new(index: I) -> TwoLevelIterator<I> {
        TwoLevelIterator {
            index,
            piece: None,
            error: None,
        }
    }

    /// Open the piece of the current index entry; false when there is none
    /// (the index is exhausted, or an error was kept).
    fn load(&mut self) -> bool {
        self.piece = None;
        let opened = match self.index.valid() {
            Ok(false) => return false,
            Ok(true) => self.index.open(),
            Err(e) => Err(e),
        };
        match opened {
            Ok(p) => {
                self.piece = Some(p);
                true
            }
            Err(e) => {
                self.error = Some(e);
                false
            }
        }
    }

    /// Move to following pieces while the current one is exhausted.
    fn skip_empty(&mut self) {
        loop {
            match &self.piece {
                Some(p) if p.valid() => return,
                Some(p) => {
                    if let Err(e) = p.status() {
                        self.error = Some(e);
                        self.piece = None;
                        return;
                    }
                }
                None => return,
            }
            self.index.next();
            if !self.load() {
                return;
            }
            if let Some(p) = self.piece.as_mut() {
                p.seek_to_first();
            }
        }
    }
}

impl<I: Index> InternalIterator for TwoLevelIterator<I> {
    fn valid(&self) -> bool {
        self.error.is_none() && self.piece.as_ref().is_some_and(|p| p.valid())
    }

    fn seek_to_first(&mut self) {
        self.error = None;
        self.index.seek_to_first();
        if self.load() {
            if let Some(p) = self.piece.as_mut() {
                p.seek_to_first();
            }
            self.skip_empty();
        }
    }

    fn seek(&mut self, target: &[u8]) {
        self.error = None;
        self.index.seek(target);
        if self.load() {
            if let Some(p) = self.piece.as_mut() {
                p.seek(target);
            }
            self.skip_empty();
        }
    }

    fn next(&mut self) {
        if let Some(p) = self.piece.as_mut() {
            p.next();
        }
        self.skip_empty();
    }

    fn key(&self) -> &[u8] {
        self.piece.as_ref().map_or(&[], |p| p.key())
    }

    fn value(&self) -> &[u8] {
        self.piece.as_ref().map_or(&[], |p| p.value())
    }

    fn status(&self) -> Result<()> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        match &self.piece {
            Some(p) => p.status(),
            None => Ok(()),
        }
    }
}
