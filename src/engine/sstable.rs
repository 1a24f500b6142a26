//! SSTables (being written)
