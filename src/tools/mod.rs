//! Offline and diagnostic commands: check, inspect, stats, compact, repair.

pub mod check;
pub mod compact;
pub mod inspect;
pub mod offline;
pub mod progress;
pub mod repair;
pub mod stats;
