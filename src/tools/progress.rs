//! Progress of a long offline command (`check`, `compact`, `repair`) on a
//! terminal: one line, redrawn in place at most ten times a second, on
//! stderr, and erased when the command ends, so the report on stdout reads
//! the same with or without it. Nothing is drawn when stderr is not a
//! terminal (a pipe, a log, a test).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

pub struct Progress {
    tty: bool,
    last: Option<Instant>,
    shown: bool,
}

/// Bytes as MiB with one decimal.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

impl Progress {
    pub fn new() -> Progress {
        Progress {
            tty: std::io::stderr().is_terminal(),
            last: None,
            shown: false,
        }
    }

    /// Whether anything will be drawn.
    pub fn on(&self) -> bool {
        self.tty
    }

    /// Redraw the line with `text()` unless it was drawn under 100 ms ago.
    pub fn show(&mut self, text: impl FnOnce() -> String) {
        if !self.tty
            || self
                .last
                .is_some_and(|t| t.elapsed() < Duration::from_millis(100))
        {
            return;
        }
        self.last = Some(Instant::now());
        self.shown = true;
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K{}", text());
        let _ = err.flush();
    }

    /// Erase the line.
    pub fn done(&mut self) {
        if self.shown {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
            self.shown = false;
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.done();
    }
}
