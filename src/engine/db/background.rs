//! The background thread: flushes first, then the compactions the scores
//! call for, idle reclaim when writes pause, and waiting out a full disk.

use super::{lock, Shared};
use crate::engine::compaction::{self};
use crate::engine::error::{Error, Result};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long writes must pause before the background thread reclaims
/// space on its own (see `Shared::reclaim_step`).
const RECLAIM_IDLE: Duration = Duration::from_millis(500);
/// The pause between two steps of a GC pass (writes go first).
const RECLAIM_STEP_PAUSE: Duration = Duration::from_millis(20);
/// How long the background thread waits before retrying a flush or
/// compaction that found the disk full.
const NO_SPACE_RETRY: Duration = Duration::from_millis(500);

impl Shared {
    /// A flush or compaction found the disk full: retry later, and let
    /// writers that would wait for it fail with the error meanwhile.
    pub(super) fn out_of_space(&self, e: Error, in_flush: bool) {
        let mut st = lock(&self.state);
        st.no_space_in_flush = in_flush;
        if st.no_space.is_none() {
            log::warn!(
                "out of space: flushes and compactions wait for room (retrying every {} ms); \
                 writes that need them fail meanwhile: {e}",
                NO_SPACE_RETRY.as_millis()
            );
        }
        st.no_space = Some(e);
        st.retry_at = Some(Instant::now() + NO_SPACE_RETRY);
    }

    /// A flush or compaction went through: any out-of-space condition is over.
    pub(super) fn room_again(&self) {
        let mut st = lock(&self.state);
        st.retry_at = None;
        st.no_space_in_flush = false;
        if st.no_space.take().is_some() {
            log::warn!("space available again: flushes and compactions resumed");
        }
    }

    pub(super) fn background_loop(self: Arc<Self>) {
        loop {
            let mut reclaim = false;
            {
                let mut st = lock(&self.state);
                loop {
                    if self.shutting_down.load(Ordering::Acquire) {
                        return;
                    }
                    let compact = (st.compaction_needed || st.retired_due) && !st.compaction_paused;
                    let work = st.bg_error.is_none() && (st.imm.is_some() || compact);
                    let wait = st
                        .retry_at
                        .filter(|_| st.imm.is_none() || st.no_space_in_flush)
                        .map(|at| at.saturating_duration_since(Instant::now()));
                    let seq = self.visible_seq.load(Ordering::Acquire);
                    let idle_check = st.bg_error.is_none()
                        && !st.compaction_paused
                        && st.retry_at.is_none()
                        && self.opts.min_blob_size > 0
                        && (st.reclaiming || st.reclaim_checked_seq != seq);
                    st = match wait {
                        _ if !work && idle_check => {
                            // Reclaim once writes have paused for RECLAIM_IDLE.
                            let pause = if st.reclaiming {
                                RECLAIM_STEP_PAUSE
                            } else {
                                RECLAIM_IDLE
                            };
                            let (g, t) = self
                                .bg_cv
                                .wait_timeout(st, pause)
                                .unwrap_or_else(|p| p.into_inner());
                            if t.timed_out() && self.visible_seq.load(Ordering::Acquire) == seq {
                                reclaim = true;
                                st = g;
                                break;
                            }
                            g
                        }
                        _ if !work => self.bg_cv.wait(st).unwrap_or_else(|p| p.into_inner()),
                        Some(d) if !d.is_zero() => self
                            .bg_cv
                            .wait_timeout(st, d)
                            .map(|(g, _)| g)
                            .unwrap_or_else(|p| p.into_inner().0),
                        _ => break,
                    };
                }
            }
            self.counters.background_busy.store(true, Ordering::Relaxed);
            let (flushed, r) = if reclaim {
                let seq = self.visible_seq.load(Ordering::Acquire);
                let r = {
                    let _g = lock(&self.version_lock);
                    self.reclaim_step()
                };
                let mut st = lock(&self.state);
                st.reclaiming = matches!(r, Ok(true));
                if matches!(r, Ok(false)) {
                    st.reclaim_checked_seq = seq;
                }
                (false, r.map(|_| ()))
            } else {
                self.background_work()
            };
            self.counters
                .background_busy
                .store(false, Ordering::Relaxed);
            match r {
                Ok(()) => self.room_again(),
                Err(_) if self.shutting_down.load(Ordering::Acquire) => return,
                Err(e) if e.is_corruption() => {
                    log::error!("compaction stopped: {e}");
                    lock(&self.state).compaction_paused = true;
                }
                Err(e) if e.is_no_space() => self.out_of_space(e, flushed),
                Err(e) => {
                    self.set_bg_error(e);
                }
            }
            self.bg_cv.notify_all();
        }
    }

    /// One flush or compaction; whether it was a flush, and how it went.
    pub(super) fn background_work(&self) -> (bool, Result<()>) {
        let _g = lock(&self.version_lock);
        let has_imm = lock(&self.state).imm.is_some();
        if has_imm {
            log::debug!("flush started");
            let r = self.flush_imm();
            if r.is_ok() {
                log::debug!("flush finished");
            }
            return (true, r);
        }
        if !lock(&self.state).compaction_needed {
            return (false, self.reclaim_retired().map(|_| ()));
        }
        (false, self.compact_once())
    }

    /// The compaction the level scores call for, if any.
    pub(super) fn compact_once(&self) -> Result<()> {
        let (version, c) = {
            let vs = lock(&self.versions);
            let v = vs.current();
            let scores = vs.level_scores(&self.opts);
            let c = compaction::pick(&v, &scores, &vs.compact_pointers);
            (v, c)
        };
        match c {
            Some(c) => {
                log::debug!(
                    "compaction started: L{} ({} files) into L{} ({} files){}",
                    c.level,
                    c.inputs.len(),
                    c.level + 1,
                    c.next_inputs.len(),
                    if c.is_trivial_move() {
                        ", trivial move"
                    } else {
                        ""
                    }
                );
                let r = self.run_compaction(&c, version, false);
                if r.is_ok() {
                    log::debug!("compaction finished");
                }
                r
            }
            None => {
                lock(&self.state).compaction_needed = false;
                Ok(())
            }
        }
    }
}
