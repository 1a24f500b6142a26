//! The io_uring transport: FUSE requests answered on the CPU that made them.
//!
//! Since Linux 6.14 (`CONFIG_FUSE_IO_URING`, module parameter
//! `fuse.enable_uring=Y`) a FUSE daemon may take requests from per-CPU
//! queues instead of reading `/dev/fuse`: the kernel queues a request on
//! the queue of the CPU its caller runs on, and a daemon thread pinned to
//! that CPU fetches it and commits the reply in one `io_uring_enter`, with
//! no cross-CPU wake-up. fuser still mounts, negotiates INIT (we add
//! `FUSE_OVER_IO_URING` when the ring is wanted) and runs its `/dev/fuse`
//! loop, which keeps receiving what the kernel never sends over the ring
//! (FORGET, INTERRUPT).
//!
//! How a request flows here: one thread per possible CPU (the kernel has
//! one queue per possible CPU and serves nothing until every queue has an
//! entry), pinned to its CPU, owns an `IORING_SETUP_SQE128` ring and
//! `depth` entries, each a 288-byte header buffer and a payload buffer of
//! the negotiated maximum request size. It registers every entry with
//! `FUSE_IO_URING_CMD_REGISTER` (an `IORING_OP_URING_CMD` on the
//! `/dev/fuse` descriptor, pointing at the two buffers). A completion means
//! the kernel wrote a request into that entry. Then, by kind:
//!
//! - a short request (everything but the ones below) is served on the ring
//!   thread itself: `wire` decodes it, `dispatch` calls the same `FsOps`
//!   method the classic transport calls, `wire` encodes the reply into the
//!   same buffers, and a `FUSE_IO_URING_CMD_COMMIT_AND_FETCH` hands the
//!   reply back and re-arms the entry. This is what makes the ring fast:
//!   the caller, the request and its answer never leave one CPU;
//! - a request that may block (`wire::may_block`: fsync, and reads and
//!   writes of 128 KiB or more) is handed to a small pool of unpinned
//!   workers (`--threads`, 4 by default), which decode, serve and encode
//!   it in the entry's own buffers in the same way and hand the entry
//!   back; an eventfd the ring thread keeps a poll armed on wakes it, and
//!   it commits the entry. The ring thread is the only server of its CPU's
//!   queue: serving a cold 1 MiB read or an fsync in place would hold up
//!   every request of that CPU behind the disk, and serve all of one
//!   reader's read-ahead on one CPU while the other idles (a cold 512 MiB
//!   read took 1.5x the classic transport's time that way). Handing off
//!   costs two wake-ups, which is nothing beside a megabyte or an fsync,
//!   and would double a short request's cost, so those stay inline.
//!
//! All completions at hand are served before one `io_uring_enter` submits
//! their commits and waits for more. At unmount (or when the daemon dies)
//! the kernel completes every entry with ENOTCONN (one a worker holds ends
//! when its commit is refused so); a queue ends when every entry has ended,
//! and it frees its buffers only once no worker holds one.
//!
//! Entries per queue (`--uring-depth`, default 4) bound how many requests
//! one CPU's queue has handed out at once, at a worker or inline. Four
//! keep both CPUs of a 2-vCPU machine busy with one reader's 1 MiB
//! read-ahead requests (the kernel keeps at most `max_background`, 12,
//! asynchronous requests in flight for the whole mount); each entry holds
//! a 1 MiB payload buffer, touched only as far as a request uses it.
//!
//! The rings are created (and the threads pinned) before INIT, so the ring
//! is offered to the kernel only when it can really be served: once it is
//! negotiated the kernel holds every request until all queues are
//! registered. A registration that fails makes the kernel fall back to
//! `/dev/fuse` by itself.
//!
//! Ring threads run as `SCHED_IDLE`. Not to yield to other work: to keep
//! the caller on its CPU. The reply to a request wakes the caller while the
//! ring thread still runs on the caller's CPU, inside the `io_uring_enter`
//! that commits it; the scheduler sees that CPU busy and the other one
//! idle, and moves the caller there, so its next request goes to the other
//! queue and every round trip pays for waking an idle vCPU (on this
//! machine, without guest halt polling, that is an exit to the host). A CPU
//! whose only runnable thread is `SCHED_IDLE` counts as idle when a woken
//! task is placed, so the caller stays, preempts the ring thread at once
//! and runs on, and the ring thread finishes its `io_uring_enter` when the
//! caller next blocks — which is usually on its next request, already
//! queued for that ring thread. Measured (docs/performance.md): fs_mark's
//! 10,000 files 0.60 s against 0.85–1.67 s, migrations 120 against
//! 10,000–38,000; with two or four CPU hogs per CPU, even at nice -10, a
//! ring round trip took the same time idle or normal (a ring thread runs a
//! few microseconds at a time and was never seen starved). Workers (large
//! requests) and the engine's background threads keep the normal policy.
//!
//! Background work (flush, compaction) runs on the engine's own unpinned
//! threads; a ring thread that is idle sleeps in `io_uring_enter`.

mod dispatch;
pub mod wire;

use crate::fs::ops::FsOps;
use io_uring::{cqueue, opcode, squeue, types, IoUring};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use wire::{EntInOut, InHeader, Out, HEADER_SZ, IN_HEADER_SZ, IN_OUT_SZ, OP_IN_SZ};

/// Where the kernel says whether FUSE over io_uring is enabled.
pub const ENABLE_PARAM: &str = "/sys/module/fuse/parameters/enable_uring";

/// Ring entries per queue unless `--uring-depth` says otherwise.
pub const DEFAULT_DEPTH: u32 = 4;

/// Reads and writes of at least this many bytes go to the worker pool.
const BIG: u32 = 128 << 10;

/// Whether the kernel would offer FUSE over io_uring now: `Err` says why
/// not.
pub fn available() -> Result<(), String> {
    match std::fs::read_to_string(ENABLE_PARAM) {
        Ok(v) if v.trim() == "Y" || v.trim() == "1" => Ok(()),
        Ok(v) => Err(format!("{ENABLE_PARAM} is {}", v.trim())),
        Err(e) => Err(format!(
            "{ENABLE_PARAM}: {e} (a kernel without FUSE over io_uring)"
        )),
    }
}

/// The possible CPUs (`/sys/devices/system/cpu/possible`, e.g. `0-3`): the
/// kernel makes one queue for each.
fn possible_cpus() -> Result<usize, String> {
    let path = "/sys/devices/system/cpu/possible";
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let mut n = 0usize;
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let parse = |s: &str| s.parse::<usize>().map_err(|_| format!("{path}: {text:?}"));
        n = n.max(parse(b)? + 1);
        parse(a)?;
    }
    if n == 0 {
        return Err(format!("{path}: no CPUs in {text:?}"));
    }
    Ok(n)
}

/// What serving a request needs (ring threads and workers alike).
#[derive(Clone)]
struct Server {
    ops: Arc<FsOps>,
    setxattr_ext: bool,
}

/// What INIT settled, handed to the threads when they may register.
#[derive(Clone)]
struct Go {
    server: Server,
    dev: Arc<OwnedFd>,
    payload: usize,
    /// Where a ring thread hands the requests that may block. Only the
    /// ring threads hold it, so the workers end when the queues have.
    pool: Sender<Job>,
}

/// One entry handed to a worker: it serves the request in the entry's
/// buffers and hands the entry back through `back`.
struct Job {
    slot: SlotPtr,
    i: usize,
    back: Arc<Returns>,
}

/// A slot's address. The ring thread does not touch a slot from the moment
/// it sends it to a worker until the worker returns it, and the kernel does
/// not touch an entry between its completion and its next commit, so the
/// worker is its only user meanwhile.
struct SlotPtr(*mut Slot);
// SAFETY: see SlotPtr: one thread at a time uses the slot.
unsafe impl Send for SlotPtr {}

/// A queue's entries coming back from the workers: (slot index, commit
/// id), and an eventfd the ring thread keeps a poll armed on, so that a
/// return wakes it from `io_uring_enter`. A poll, not a read: a read would
/// need a buffer the kernel may still write while it tears the ring down.
struct Returns {
    done: Mutex<Vec<(usize, u64)>>,
    cv: Condvar,
    efd: OwnedFd,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Returns {
    fn new() -> Result<Returns, String> {
        // SAFETY: plain syscall; a valid descriptor is owned at once.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(format!("eventfd: {}", std::io::Error::last_os_error()));
        }
        Ok(Returns {
            done: Mutex::new(Vec::new()),
            cv: Condvar::new(),
            // SAFETY: fd is a fresh descriptor nobody else owns.
            efd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    fn give_back(&self, i: usize, commit_id: u64) {
        lock(&self.done).push((i, commit_id));
        self.cv.notify_all();
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a buffer we own to our eventfd. It
        // cannot fail short of an overflowing counter, and the ring thread
        // also finds the entry in `done` without it.
        unsafe { libc::write(self.efd.as_raw_fd(), one.as_ptr().cast(), 8) };
    }

    /// Reset the eventfd (it is non-blocking) after its poll fired, so
    /// that the next poll waits for the next return.
    fn reset(&self) {
        let mut n = [0u8; 8];
        // SAFETY: reads at most 8 bytes into a buffer we own.
        unsafe { libc::read(self.efd.as_raw_fd(), n.as_mut_ptr().cast(), 8) };
    }

    /// What came back.
    fn take(&self) -> Vec<(usize, u64)> {
        std::mem::take(&mut *lock(&self.done))
    }

    /// Wait until `out` entries are back (at the end: the workers must be
    /// done with a queue's slots before they are freed).
    fn wait_for(&self, out: usize) {
        let mut done = lock(&self.done);
        while done.len() < out {
            done = self.cv.wait(done).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// The worker pool: unpinned threads that serve what may block, so that a
/// ring thread (the only server of its CPU's queue) keeps answering the
/// short requests meanwhile.
fn start_pool(n: usize, rx: Receiver<Job>, server: &Server) -> Result<Vec<JoinHandle<()>>, String> {
    let rx = Arc::new(Mutex::new(rx));
    (0..n)
        .map(|k| {
            let rx = rx.clone();
            let server = server.clone();
            std::thread::Builder::new()
                .name(format!("lsmfs-ringw{k}"))
                .spawn(move || loop {
                    let job = lock(&rx).recv();
                    let Ok(job) = job else { return };
                    // SAFETY: see SlotPtr.
                    let slot = unsafe { &mut *job.slot.0 };
                    let commit_id = answer(&server, slot, true);
                    job.back.give_back(job.i, commit_id);
                })
                .map_err(|e| format!("starting a ring worker: {e}"))
        })
        .collect()
}

/// The ring threads, created and pinned, waiting for INIT.
pub struct Queues {
    threads: Vec<JoinHandle<()>>,
    go: Vec<Sender<Option<Go>>>,
    registered: Receiver<Result<(), String>>,
    depth: u32,
}

/// Running queues: `wait` joins them after the unmount.
pub struct Running {
    threads: Vec<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
}

fn pin(cpu: usize) -> Result<(), String> {
    // SAFETY: a zeroed cpu_set_t is empty; CPU_SET and sched_setaffinity
    // only touch the set we own.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(format!(
                "pinning to CPU {cpu}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// Make the calling ring thread `SCHED_IDLE`, so that a caller its reply
/// wakes stays on this CPU (see the module doc).
fn yield_to_callers() -> Result<(), String> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler reads the one parameter we pass.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } != 0 {
        return Err(format!(
            "SCHED_IDLE: {} (callers may move between CPUs)",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

type Ring = IoUring<squeue::Entry128, cqueue::Entry>;

fn new_ring(depth: u32) -> std::io::Result<Ring> {
    IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_coop_taskrun()
        .build(depth)
}

impl Queues {
    /// Start one thread per possible CPU, each pinned and holding its ring.
    pub fn prepare(depth: u32) -> Result<Queues, String> {
        let n = possible_cpus()?;
        let depth = depth.clamp(1, 64);
        let (ready_tx, ready_rx) = channel();
        let (reg_tx, registered) = channel();
        let mut q = Queues {
            threads: Vec::new(),
            go: Vec::new(),
            registered,
            depth,
        };
        for qid in 0..n {
            let (go_tx, go_rx) = channel::<Option<Go>>();
            let ready = ready_tx.clone();
            let reg = reg_tx.clone();
            let t = std::thread::Builder::new()
                .name(format!("lsmfs-ring{qid}"))
                .spawn(move || {
                    if let Err(e) = pin(qid) {
                        log::warn!("io_uring queue {qid}: {e}; serving it unpinned");
                    }
                    if let Err(e) = yield_to_callers() {
                        log::warn!("io_uring queue {qid}: {e}");
                    }
                    let mut ring = match new_ring(depth) {
                        Ok(r) => r,
                        Err(e) => {
                            let _ = ready.send(Err(format!("io_uring_setup: {e}")));
                            return;
                        }
                    };
                    let _ = ready.send(Ok(()));
                    if let Ok(Some(go)) = go_rx.recv() {
                        serve_queue(&mut ring, qid as u16, depth, go, &reg);
                    }
                })
                .map_err(|e| format!("starting a ring thread: {e}"))?;
            q.threads.push(t);
            q.go.push(go_tx);
        }
        for _ in 0..n {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    q.abandon();
                    return Err(e);
                }
                Err(_) => {
                    q.abandon();
                    return Err("a ring thread ended before its ring was made".into());
                }
            }
        }
        Ok(q)
    }

    pub fn len(&self) -> usize {
        self.threads.len()
    }

    pub fn is_empty(&self) -> bool {
        self.threads.is_empty()
    }

    /// INIT did not grant the ring: end the threads.
    pub fn abandon(self) {
        for g in &self.go {
            let _ = g.send(None);
        }
        for t in self.threads {
            let _ = t.join();
        }
    }

    /// INIT granted the ring: register every queue's entries on `dev` (the
    /// session's `/dev/fuse` descriptor) and serve. `max_write` and
    /// `max_readahead` size the payload buffers as the kernel does.
    pub fn start(
        self,
        ops: Arc<FsOps>,
        dev: OwnedFd,
        max_write: u32,
        max_readahead: u32,
        setxattr_ext: bool,
        workers: usize,
    ) -> Result<Running, String> {
        let pages = (max_write.max(max_readahead) as usize).div_ceil(4096);
        let payload = (max_write as usize)
            .max(pages * 4096)
            .max(wire::MIN_PAYLOAD);
        let (pool, jobs) = channel();
        let server = Server { ops, setxattr_ext };
        let workers = match start_pool(workers.max(1), jobs, &server) {
            Ok(w) => w,
            Err(e) => {
                self.abandon();
                return Err(e);
            }
        };
        let go = Go {
            server,
            dev: Arc::new(dev),
            payload,
            pool,
        };
        for g in &self.go {
            let _ = g.send(Some(go.clone()));
        }
        // The workers end when the last queue drops its sender.
        drop(go);
        let mut failure = None;
        for _ in 0..self.threads.len() {
            match self.registered.recv_timeout(Duration::from_secs(10)) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failure = failure.or(Some(e)),
                Err(_) => failure = failure.or(Some("a queue did not register".into())),
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        log::info!(
            "io_uring: {} queues of {} entries, {} KiB payload buffers, {} workers",
            self.threads.len(),
            self.depth,
            payload >> 10,
            workers.len()
        );
        Ok(Running {
            threads: self.threads,
            workers,
        })
    }
}

impl Running {
    /// Wait (up to `timeout`) for the queues to end after the unmount.
    /// The kernel ends every entry when the connection goes, so a queue
    /// still running by then is a bug, logged as one.
    pub fn wait(self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let stuck = join_by(self.threads, deadline);
        if stuck > 0 {
            log::warn!("io_uring: {stuck} queue(s) did not end after the unmount");
            return;
        }
        // Every queue has ended, so every sender is gone and every worker
        // is ending or has ended.
        let stuck = join_by(self.workers, deadline);
        if stuck > 0 {
            log::warn!("io_uring: {stuck} worker(s) did not end after the unmount");
        }
    }
}

/// Join `threads` that end before `deadline`; how many did not.
fn join_by(threads: Vec<JoinHandle<()>>, deadline: Instant) -> usize {
    let mut stuck = 0;
    for t in threads {
        while !t.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        if t.is_finished() {
            let _ = t.join();
        } else {
            stuck += 1;
        }
    }
    stuck
}

/// One ring entry's buffers, registered with the kernel: they must stay
/// where they are while the entry lives (heap allocations that never grow).
struct Slot {
    header: Vec<u8>,
    payload: Vec<u8>,
    iov: Box<[libc::iovec; 2]>,
}

/// `IORING_OP_URING_CMD` with `sqe->addr` at the slot's iovecs and, for
/// REGISTER, `sqe->len` = 2 (the io-uring crate builds every field but
/// `len`, which this command reads).
fn uring_cmd(
    fd: i32,
    cmd: u32,
    slot: &Slot,
    commit_id: u64,
    qid: u16,
    i: usize,
) -> squeue::Entry128 {
    let sqe = opcode::UringCmd80::new(types::Fd(fd), cmd)
        .addr(Some(slot.iov.as_ptr() as u64))
        .cmd(wire::cmd_req(commit_id, qid))
        .build()
        .user_data(i as u64);
    const _: () = assert!(std::mem::size_of::<squeue::Entry128>() == 128);
    // SAFETY: Entry128 is #[repr(C)], 128 bytes of plain integers (the
    // kernel's struct io_uring_sqe and its 64-byte extension); any bytes
    // are a valid value. `len` is the u32 at offset 24.
    let mut raw: [u8; 128] = unsafe { std::mem::transmute(sqe) };
    raw[24..28].copy_from_slice(&2u32.to_le_bytes());
    unsafe { std::mem::transmute::<[u8; 128], squeue::Entry128>(raw) }
}

fn push(ring: &mut Ring, sqe: &squeue::Entry128) -> Result<(), String> {
    // SAFETY: the SQE points at a Slot's buffers, which outlive the ring
    // (they are dropped after it in serve_queue).
    if unsafe { ring.submission().push(sqe) }.is_err() {
        ring.submit().map_err(|e| format!("io_uring_enter: {e}"))?;
        // SAFETY: as above.
        unsafe { ring.submission().push(sqe) }.map_err(|_| "submission queue full".to_string())?;
    }
    Ok(())
}

/// `user_data` of the eventfd poll (slot indices are below 64).
const WAKE: u64 = u64::MAX;

fn arm_wake(ring: &mut Ring, back: &Returns) -> Result<(), String> {
    let sqe = opcode::PollAdd::new(types::Fd(back.efd.as_raw_fd()), libc::POLLIN as u32)
        .build()
        .user_data(WAKE);
    // SAFETY: a poll references no memory of ours.
    if unsafe { ring.submission().push(&squeue::Entry128::from(sqe.clone())) }.is_err() {
        ring.submit().map_err(|e| format!("io_uring_enter: {e}"))?;
        // SAFETY: as above.
        unsafe { ring.submission().push(&squeue::Entry128::from(sqe)) }
            .map_err(|_| "submission queue full".to_string())?;
    }
    Ok(())
}

/// Serve one queue until the kernel ends its entries.
fn serve_queue(
    ring: &mut Ring,
    qid: u16,
    depth: u32,
    go: Go,
    registered: &Sender<Result<(), String>>,
) {
    let fd = go.dev.as_raw_fd();
    let mut slots: Vec<Slot> = (0..depth)
        .map(|_| {
            let mut header = vec![0u8; HEADER_SZ];
            let mut payload = vec![0u8; go.payload];
            let iov = Box::new([
                libc::iovec {
                    iov_base: header.as_mut_ptr().cast(),
                    iov_len: header.len(),
                },
                libc::iovec {
                    iov_base: payload.as_mut_ptr().cast(),
                    iov_len: payload.len(),
                },
            ]);
            Slot {
                header,
                payload,
                iov,
            }
        })
        .collect();
    let back = match Returns::new() {
        Ok(b) => Arc::new(b),
        Err(e) => {
            let _ = registered.send(Err(e));
            return;
        }
    };
    let mut first = arm_wake(ring, &back);
    for (i, s) in slots.iter().enumerate() {
        if let Err(e) = push(ring, &uring_cmd(fd, wire::CMD_REGISTER, s, 0, qid, i)) {
            first = Err(e);
        }
    }
    if first.is_ok() {
        first = ring
            .submit()
            .map(|_| ())
            .map_err(|e| format!("io_uring_enter: {e}"));
    }
    // A refused REGISTER completes at once; accepted ones complete only
    // when a request arrives.
    let pending: Vec<(u64, i32)> = ring
        .completion()
        .map(|c| (c.user_data(), c.result()))
        .collect();
    if let Some((_, res)) = pending.iter().find(|(u, r)| *u != WAKE && *r < 0) {
        first = first.and(Err(format!(
            "FUSE_IO_URING_CMD_REGISTER on queue {qid}: {}",
            std::io::Error::from_raw_os_error(-res)
        )));
    }
    let failed = first.is_err();
    let _ = registered.send(first);
    if failed {
        return;
    }
    let mut q = Queue {
        ring,
        qid,
        fd,
        live: slots.len(),
        out: 0,
        warned: false,
        back: &back,
    };
    if let Err(e) = q.serve(&go, &mut slots, pending) {
        log::warn!("io_uring queue {qid}: {e}");
    }
    // The workers may still hold slots (after an error): wait for them
    // before the slots are freed.
    back.wait_for(q.out);
    drop(slots);
}

/// One ring thread's state while it serves.
struct Queue<'a> {
    ring: &'a mut Ring,
    qid: u16,
    fd: i32,
    /// Entries the kernel has not ended (those at a worker included).
    live: usize,
    /// Entries at a worker.
    out: usize,
    warned: bool,
    back: &'a Arc<Returns>,
}

impl Queue<'_> {
    fn serve(
        &mut self,
        go: &Go,
        slots: &mut [Slot],
        mut pending: Vec<(u64, i32)>,
    ) -> Result<(), String> {
        loop {
            for (ud, res) in pending.drain(..) {
                if ud == WAKE {
                    if res < 0 {
                        return Err(format!(
                            "polling the workers' eventfd: {}",
                            std::io::Error::from_raw_os_error(-res)
                        ));
                    }
                    self.back.reset();
                    if self.live > 0 {
                        arm_wake(self.ring, self.back)?;
                    }
                    continue;
                }
                self.complete(go, slots, ud as usize, res)?;
            }
            // Whatever the workers handed back, the eventfd's wake-up or
            // not: the eventfd is reset and its poll re-armed before this,
            // so a return after it still wakes us. Skipped while nothing is
            // out: a short request's path takes no lock and makes no
            // system call but io_uring_enter.
            if self.out > 0 {
                for (i, commit_id) in self.back.take() {
                    self.out -= 1;
                    self.commit(slots, i, commit_id)?;
                }
            }
            // Checked before waiting: once the kernel has ended every entry
            // nothing more will complete, and a wait would never return.
            if self.live == 0 {
                return Ok(());
            }
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) => return Err(format!("io_uring_enter: {e}")),
            }
            pending.extend(self.ring.completion().map(|c| (c.user_data(), c.result())));
        }
    }

    /// Entry `i` completed with `res`: a request to serve, or its end.
    fn complete(&mut self, go: &Go, slots: &mut [Slot], i: usize, res: i32) -> Result<(), String> {
        let Some(slot) = slots.get_mut(i) else {
            return Ok(());
        };
        if res < 0 {
            self.live -= 1;
            if ![libc::ENOTCONN, libc::ECANCELED, libc::ECONNABORTED].contains(&-res)
                && !self.warned
            {
                self.warned = true;
                log::warn!(
                    "io_uring queue {}: entry ended with {}",
                    self.qid,
                    std::io::Error::from_raw_os_error(-res)
                );
            }
            return Ok(());
        }
        if let Some(h) = InHeader::decode(&slot.header[..IN_HEADER_SZ]) {
            let op_in = &slot.header[IN_OUT_SZ..IN_OUT_SZ + OP_IN_SZ];
            if wire::may_block(h.opcode, op_in, BIG) {
                let job = Job {
                    slot: SlotPtr(slot as *mut Slot),
                    i,
                    back: self.back.clone(),
                };
                // The pool lives as long as any queue, so this fails only
                // if every worker died; then the request is served here.
                match go.pool.send(job) {
                    Ok(()) => {
                        self.out += 1;
                        return Ok(());
                    }
                    Err(_) => log::warn!("io_uring: the worker pool is gone"),
                }
            }
        }
        let commit_id = answer(&go.server, slot, false);
        self.commit(slots, i, commit_id)
    }

    fn commit(&mut self, slots: &[Slot], i: usize, commit_id: u64) -> Result<(), String> {
        let Some(slot) = slots.get(i) else {
            return Ok(());
        };
        let sqe = uring_cmd(
            self.fd,
            wire::CMD_COMMIT_AND_FETCH,
            slot,
            commit_id,
            self.qid,
            i,
        );
        push(self.ring, &sqe)
    }
}

/// Decode the request in `slot`, serve it, encode the reply in place;
/// returns the commit id to hand it back with.
fn answer(go: &Server, slot: &mut Slot, on_worker: bool) -> u64 {
    let h = InHeader::decode(&slot.header[..IN_HEADER_SZ]).unwrap_or_default();
    let ent = EntInOut::decode(&slot.header).unwrap_or_default();
    let n = (ent.payload_sz as usize).min(slot.payload.len());
    let op_in = &slot.header[IN_OUT_SZ..IN_OUT_SZ + OP_IN_SZ];
    let result = if h.total_extlen != 0 {
        // Extensions (security context, groups) are never negotiated.
        Err(libc::EINVAL)
    } else {
        wire::decode(h.opcode, op_in, &slot.payload[..n], go.setxattr_ext)
            .and_then(|op| dispatch::serve(&go.ops, &h, op, on_worker))
    };
    let (errno, len) = match result {
        Ok(reply) => {
            let mut out = Out::new(&mut slot.payload);
            match reply.encode(&mut out) {
                Ok(()) => (0, out.len()),
                Err(e) => (e, 0),
            }
        }
        Err(e) => (e, 0),
    };
    wire::finish_reply(&mut slot.header, h.unique, errno, len);
    ent.commit_id
}
