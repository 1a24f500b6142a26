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
//! the kernel wrote a request into that entry: `wire` decodes it,
//! `dispatch` calls the same `FsOps` method the classic transport calls,
//! `wire` encodes the reply into the same buffers, and a
//! `FUSE_IO_URING_CMD_COMMIT_AND_FETCH` hands the reply back and re-arms
//! the entry. All completions at hand are served before one
//! `io_uring_enter` submits their commits and waits for more. At unmount
//! (or when the daemon dies) the kernel completes every entry with
//! ENOTCONN and the threads end.
//!
//! The rings are created (and the threads pinned) before INIT, so the ring
//! is offered to the kernel only when it can really be served: once it is
//! negotiated the kernel holds every request until all queues are
//! registered. A registration that fails makes the kernel fall back to
//! `/dev/fuse` by itself.
//!
//! Background work (flush, compaction) runs on the engine's own unpinned
//! threads; a ring thread that is idle sleeps in `io_uring_enter`, and the
//! scheduler keeps the two apart on a busy CPU like any other threads.

mod dispatch;
pub mod wire;

use crate::fs::ops::FsOps;
use io_uring::{cqueue, opcode, squeue, types, IoUring};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use wire::{EntInOut, InHeader, Out, HEADER_SZ, IN_HEADER_SZ, IN_OUT_SZ, OP_IN_SZ};

/// Where the kernel says whether FUSE over io_uring is enabled.
pub const ENABLE_PARAM: &str = "/sys/module/fuse/parameters/enable_uring";

/// Ring entries per queue unless `--uring-depth` says otherwise.
pub const DEFAULT_DEPTH: u32 = 4;

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

/// What INIT settled, handed to the threads when they may register.
struct Go {
    ops: Arc<FsOps>,
    dev: Arc<OwnedFd>,
    payload: usize,
    setxattr_ext: bool,
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
    ) -> Result<Running, String> {
        let pages = (max_write.max(max_readahead) as usize).div_ceil(4096);
        let payload = (max_write as usize)
            .max(pages * 4096)
            .max(wire::MIN_PAYLOAD);
        let dev = Arc::new(dev);
        for g in &self.go {
            let _ = g.send(Some(Go {
                ops: ops.clone(),
                dev: dev.clone(),
                payload,
                setxattr_ext,
            }));
        }
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
            "io_uring: {} queues of {} entries, {} KiB payload buffers",
            self.threads.len(),
            self.depth,
            payload >> 10
        );
        Ok(Running {
            threads: self.threads,
        })
    }
}

impl Running {
    /// Wait (up to `timeout`) for the queues to end after the unmount.
    /// The kernel ends every entry when the connection goes, so a queue
    /// still running by then is a bug, logged as one.
    pub fn wait(self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut stuck = 0;
        for t in self.threads {
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                stuck += 1;
            }
        }
        if stuck > 0 {
            log::warn!("io_uring: {stuck} queue(s) did not end after the unmount");
        }
    }
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
    let mut live = slots.len();
    let mut first: Result<(), String> = Ok(());
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
    let mut pending: Vec<(u64, i32)> = ring
        .completion()
        .map(|c| (c.user_data(), c.result()))
        .collect();
    if let Some((_, res)) = pending.iter().find(|(_, r)| *r < 0) {
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
    let mut warned = false;
    loop {
        for (i, res) in pending.drain(..) {
            let Some(slot) = slots.get_mut(i as usize) else {
                continue;
            };
            if res < 0 {
                live -= 1;
                if ![libc::ENOTCONN, libc::ECANCELED, libc::ECONNABORTED].contains(&-res) && !warned
                {
                    warned = true;
                    log::warn!(
                        "io_uring queue {qid}: entry ended with {}",
                        std::io::Error::from_raw_os_error(-res)
                    );
                }
                continue;
            }
            let commit_id = answer(&go, slot);
            let sqe = uring_cmd(
                fd,
                wire::CMD_COMMIT_AND_FETCH,
                slot,
                commit_id,
                qid,
                i as usize,
            );
            if let Err(e) = push(ring, &sqe) {
                log::warn!("io_uring queue {qid}: {e}");
                return;
            }
        }
        // Checked before waiting: once the kernel has ended every entry
        // nothing more will complete, and a wait would never return.
        if live == 0 {
            break;
        }
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(e) => {
                log::warn!("io_uring queue {qid}: io_uring_enter: {e}");
                return;
            }
        }
        pending.extend(ring.completion().map(|c| (c.user_data(), c.result())));
    }
    drop(slots);
}

/// Decode the request in `slot`, serve it, encode the reply in place;
/// returns the commit id to hand it back with.
fn answer(go: &Go, slot: &mut Slot) -> u64 {
    let h = InHeader::decode(&slot.header[..IN_HEADER_SZ]).unwrap_or_default();
    let ent = EntInOut::decode(&slot.header).unwrap_or_default();
    let n = (ent.payload_sz as usize).min(slot.payload.len());
    let op_in = &slot.header[IN_OUT_SZ..IN_OUT_SZ + OP_IN_SZ];
    let result = if h.total_extlen != 0 {
        // Extensions (security context, groups) are never negotiated.
        Err(libc::EINVAL)
    } else {
        wire::decode(h.opcode, op_in, &slot.payload[..n], go.setxattr_ext)
            .and_then(|op| dispatch::serve(&go.ops, &h, op))
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
