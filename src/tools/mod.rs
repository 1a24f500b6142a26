//! Offline and diagnostic commands: check, inspect, stats, compact, repair,
//! snapshot.

pub mod check;
pub mod compact;
pub mod inspect;
pub mod offline;
pub mod progress;
pub mod repair;
pub mod snapshot;
pub mod snapshot_diff;
pub mod stats;
