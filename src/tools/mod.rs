//! Offline and diagnostic commands: check, inspect, stats, compact.

pub mod check;
pub mod compact;
pub mod inspect;
pub mod stats;
