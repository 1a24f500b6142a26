//! The store on an etcd cluster: `lsmfs mount etcd://HOST:PORT[,...]/PREFIX`.
//!
//! Every key of the filesystem is stored as PREFIX `/` key (binary keys
//! are fine for etcd); nothing else under PREFIX is touched, so several
//! filesystems share a cluster under different prefixes.
//!
//! - `write` is one etcd transaction: the batch's net effect (see `txn`),
//!   with the batch's expectations as compares. It returns once etcd has
//!   committed it, which means a quorum of members wrote it to their WAL
//!   and fsync'd it: acknowledged means durable, so `sync` has nothing to
//!   do. A transaction etcd refuses as too big (more operations than
//!   `--max-txn-ops`, more bytes than `--max-request-bytes`) is EFBIG, a
//!   full backend (`--quota-backend-bytes`, the NOSPACE alarm) ENOSPC; each
//!   refusal is one log line, and nothing of the batch is applied.
//! - `get` and `scan` are linearizable reads (they see every committed
//!   write, whichever mount made it). A scan is paged (`PAGE` keys per
//!   request), every page at the first one's revision, so a scan is one
//!   snapshot however long.
//! - A member that is down or a leader election in progress (gRPC
//!   `Unavailable`) is retried on the other endpoints for up to
//!   `RETRY_FOR`; then EIO.
//! - `get_relaxed` is answered from memory when it can: `mirror` holds
//!   the keys this mount used lately, kept current by a watch on the
//!   prefix (why that is as good as a member's serializable read there).
//! - The client is async (tokio, tonic); the store owns one small runtime
//!   and blocks the calling thread on it, so `src/fs` stays synchronous;
//!   the watch runs on that runtime too.

mod mirror;
mod target;
pub mod txn;
mod watch;

pub use target::{is_etcd, Access, EtcdArgs, EtcdUrl, PASSWORD_ENV};

use super::{Batch, Store};
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, Identity,
    KvClient, ResponseHeader, TlsOptions, Txn, TxnOp, TxnOpResponse,
};
use mirror::Mirror;
use std::io;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use txn::NetBatch;

/// Keys per range request of a scan.
const PAGE: usize = 512;
/// Reads per transaction of `get_many`: etcd's default `--max-txn-ops`,
/// so a cluster started without raising it serves them too.
const MAX_TXN_READS: usize = 128;
/// How long one request may take before it is abandoned (and retried).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an unavailable cluster is retried before EIO.
const RETRY_FOR: Duration = Duration::from_secs(30);
/// How long opening waits for the cluster to answer.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Counters {
    gets: AtomicU64,
    serializable_gets: AtomicU64,
    multi_gets: AtomicU64,
    behind: AtomicU64,
    ranges: AtomicU64,
    txns: AtomicU64,
    txn_ops: AtomicU64,
    txn_bytes: AtomicU64,
    conflicts: AtomicU64,
    retries: AtomicU64,
    refused: AtomicU64,
}

pub struct EtcdStore {
    rt: tokio::runtime::Runtime,
    kv: KvClient,
    prefix: Vec<u8>,
    shown: String,
    n: Counters,
    /// The newest revision any response showed (see `get_relaxed`).
    seen: AtomicI64,
    mirror: Arc<Mirror>,
}

/// What an etcd error means for the filesystem, and whether to retry it.
enum Failure {
    Retry(String),
    Errno(i32, String),
}

fn classify(e: &etcd_client::Error) -> Failure {
    use tonic::Code;
    let text = e.to_string();
    match e {
        etcd_client::Error::GRpcStatus(s) => {
            let m = s.message();
            if m.contains("database space exceeded") {
                Failure::Errno(libc::ENOSPC, text)
            } else if m.contains("too many operations in txn request")
                || m.contains("request is too large")
                || s.code() == Code::ResourceExhausted
            {
                Failure::Errno(libc::EFBIG, text)
            } else if m.contains("authentication failed")
                || m.contains("permission denied")
                || m.contains("invalid auth token")
                || m.contains("user name is empty")
                || s.code() == Code::Unauthenticated
                || s.code() == Code::PermissionDenied
            {
                Failure::Errno(libc::EACCES, text)
            } else if matches!(
                s.code(),
                Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled
            ) {
                Failure::Retry(text)
            } else {
                Failure::Errno(libc::EIO, text)
            }
        }
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => {
            Failure::Retry(text)
        }
        _ => Failure::Errno(libc::EIO, text),
    }
}

impl EtcdStore {
    /// Connect, authenticate, and read one key to prove both work: a
    /// cluster that cannot be reached or refuses the credentials is one
    /// error line here, within `OPEN_TIMEOUT`, not a hang later.
    pub fn open(url: &EtcdUrl, access: &Access) -> Result<EtcdStore, String> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("lsmfs-etcd")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the etcd client's runtime: {e}"))?;
        let mut opts = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_timeout(REQUEST_TIMEOUT)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            .with_auto_token_refresh(true);
        if let Some((u, p)) = &access.user {
            opts = opts.with_user(u.clone(), p.clone());
        }
        let scheme = if access.ca.is_some() { "https" } else { "http" };
        if let Some(ca) = &access.ca {
            let mut tls = TlsOptions::new().ca_certificate(Certificate::from_pem(ca));
            if let Some((cert, key)) = &access.identity {
                tls = tls.identity(Identity::from_pem(cert, key));
            }
            opts = opts.with_tls(tls);
        }
        let endpoints: Vec<String> = url
            .endpoints
            .iter()
            .map(|e| format!("{scheme}://{e}"))
            .collect();
        let shown = &url.shown;
        let connected = rt.block_on(async {
            tokio::time::timeout(OPEN_TIMEOUT, Client::connect(endpoints, Some(opts))).await
        });
        let client = match connected {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(format!("cannot connect to {shown}: {}", one_line(&e))),
            Err(_) => {
                return Err(format!(
                    "cannot connect to {shown}: no answer in {} s",
                    OPEN_TIMEOUT.as_secs()
                ))
            }
        };
        let store = EtcdStore {
            kv: client
                .kv_client()
                .max_decoding_message_size(256 << 20)
                .max_encoding_message_size(256 << 20),
            rt,
            prefix: url.prefix.clone(),
            shown: shown.clone(),
            n: Counters::default(),
            seen: AtomicI64::new(0),
            mirror: Arc::new(Mirror::default()),
        };
        let mut probe = store.kv.clone();
        let key = store.key(b"Mformat");
        let answered = store
            .rt
            .block_on(async { tokio::time::timeout(OPEN_TIMEOUT, probe.get(key, None)).await });
        match answered {
            Ok(Ok(_)) => {
                let watch = client.watch_client().max_decoding_message_size(256 << 20);
                let follow = watch::follow(watch, store.prefix.clone(), store.mirror.clone());
                store.rt.spawn(follow);
                Ok(store)
            }
            Ok(Err(e)) => Err(format!("{shown}: {}", one_line(&e))),
            Err(_) => Err(format!(
                "{shown}: no etcd member answered in {} s",
                OPEN_TIMEOUT.as_secs()
            )),
        }
    }

    /// The URL as given (no credentials: they are never in it).
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// One key's value (linearizable unless `opts` say otherwise), and the
    /// revision of the member that answered.
    fn get_with(&self, key: &[u8], opts: Option<GetOptions>) -> io::Result<(Option<Vec<u8>>, i64)> {
        self.n.gets.fetch_add(1, Ordering::Relaxed);
        let k = self.key(key);
        let mut r = self.call("get", |mut kv| {
            let (k, opts) = (k.clone(), opts.clone());
            async move { kv.get(k, opts).await }
        })?;
        let rev = self.saw(r.header());
        let v = r
            .take_kvs()
            .into_iter()
            .next()
            .map(|kv| kv.into_key_value().1);
        self.mirror.learn(key, v.as_deref(), rev);
        Ok((v, rev))
    }

    /// Note the revision a response carries (the newest this store has
    /// seen never goes back); that revision.
    fn saw(&self, h: Option<&ResponseHeader>) -> i64 {
        let rev = h.map_or(0, |h| h.revision());
        self.seen.fetch_max(rev, Ordering::Relaxed);
        rev
    }

    fn key(&self, k: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.prefix.len() + k.len());
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(k);
        out
    }

    /// Run one request, retrying while the cluster is unavailable.
    fn call<T, F, Fut>(&self, what: &str, f: F) -> io::Result<T>
    where
        F: Fn(KvClient) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let start = Instant::now();
        let mut pause = Duration::from_millis(20);
        loop {
            let r = self.rt.block_on(async {
                match tokio::time::timeout(REQUEST_TIMEOUT, f(self.kv.clone())).await {
                    Ok(r) => r.map_err(|e| classify(&e)),
                    Err(_) => Err(Failure::Retry("no answer".into())),
                }
            });
            match r {
                Ok(t) => return Ok(t),
                Err(Failure::Retry(why)) if start.elapsed() < RETRY_FOR => {
                    self.n.retries.fetch_add(1, Ordering::Relaxed);
                    log::debug!("etcd {what}: {why}; retrying");
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
                Err(Failure::Retry(why)) => {
                    log::error!(
                        "etcd {what} on {}: {why}; gave up after {} s",
                        self.shown,
                        RETRY_FOR.as_secs()
                    );
                    return Err(io::Error::from_raw_os_error(libc::EIO));
                }
                Err(Failure::Errno(errno, why)) => {
                    log::error!("etcd {what} on {}: {why}", self.shown);
                    return Err(io::Error::from_raw_os_error(errno));
                }
            }
        }
    }
}

/// An error on one line (tonic's can span several).
fn one_line(e: &etcd_client::Error) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

impl Store for EtcdStore {
    fn get(&self, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        self.get_with(key, None).map(|(v, _)| v)
    }

    /// Serializable: served by the member the client talks to, without the
    /// round of consensus a linearizable read waits for; if that member
    /// is behind the newest revision this store has seen, read again
    /// linearizable (so this mount never sees its own writes, or anything
    /// it saw, go back in time).
    fn get_relaxed(&self, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        let floor = self.seen.load(Ordering::Relaxed);
        if let Some(v) = self.mirror.lookup(key, floor) {
            return Ok(v);
        }
        let (v, rev) = self.get_with(key, Some(GetOptions::new().with_serializable()))?;
        if rev >= floor {
            self.n.serializable_gets.fetch_add(1, Ordering::Relaxed);
            return Ok(v);
        }
        self.n.behind.fetch_add(1, Ordering::Relaxed);
        self.get(key)
    }

    /// One read-only transaction per `MAX_TXN_READS` keys.
    fn get_many(&self, keys: &[Vec<u8>]) -> io::Result<Vec<Option<Vec<u8>>>> {
        let mut out = Vec::with_capacity(keys.len());
        for part in keys.chunks(MAX_TXN_READS) {
            self.n.gets.fetch_add(part.len() as u64, Ordering::Relaxed);
            self.n.multi_gets.fetch_add(1, Ordering::Relaxed);
            let ops: Vec<TxnOp> = part.iter().map(|k| TxnOp::get(self.key(k), None)).collect();
            let txn = Txn::new().and_then(ops);
            let r = self.call("read of several keys", |mut kv| {
                let txn = txn.clone();
                async move { kv.txn(txn).await }
            })?;
            let rev = self.saw(r.header());
            let answers = r.op_responses();
            if answers.len() != part.len() {
                log::error!(
                    "etcd answered {} of {} reads in one transaction",
                    answers.len(),
                    part.len()
                );
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            for a in answers {
                let TxnOpResponse::Get(mut g) = a else {
                    return Err(io::Error::from_raw_os_error(libc::EIO));
                };
                let v = g.take_kvs().into_iter().next();
                out.push(v.map(|kv| kv.into_key_value().1));
            }
            for (k, v) in part.iter().zip(&out[out.len() - part.len()..]) {
                self.mirror.learn(k, v.as_deref(), rev);
            }
        }
        Ok(out)
    }

    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        self.scan_visit(start, end, limit, &mut |k, v| {
            out.push((k.to_vec(), v.to_vec()))
        })?;
        Ok(out)
    }

    fn scan_visit(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
        f: &mut dyn FnMut(&[u8], &[u8]),
    ) -> io::Result<()> {
        if start >= end {
            return Ok(());
        }
        let (mut from, to) = (self.key(start), self.key(end));
        let (mut left, mut revision) = (limit, 0i64);
        while left > 0 {
            self.n.ranges.fetch_add(1, Ordering::Relaxed);
            let page = left.min(PAGE) as i64;
            let opts = GetOptions::new()
                .with_range(to.clone())
                .with_limit(page)
                .with_revision(revision);
            let mut r = self.call("range", |mut kv| {
                let (from, opts) = (from.clone(), opts.clone());
                async move { kv.get(from, Some(opts)).await }
            })?;
            if revision == 0 {
                revision = self.saw(r.header());
            }
            let more = r.more();
            let kvs = r.take_kvs();
            let Some(last) = kvs.last().map(|kv| kv.key().to_vec()) else {
                break;
            };
            left = left.saturating_sub(kvs.len());
            for kv in &kvs {
                let k = kv.key();
                match k.strip_prefix(&self.prefix[..]) {
                    Some(k) => {
                        self.mirror.learn(k, Some(kv.value()), revision);
                        f(k, kv.value())
                    }
                    None => return Err(io::Error::from_raw_os_error(libc::EIO)),
                }
            }
            if !more {
                break;
            }
            from = last;
            from.push(0);
        }
        Ok(())
    }

    fn write(&self, batch: Batch, _sync: bool) -> io::Result<()> {
        let expect = batch.expect.clone();
        let net = NetBatch::of(batch);
        if net.is_empty() && expect.is_empty() {
            return Ok(());
        }
        let mut ops = Vec::with_capacity(net.len());
        for (s, e) in &net.ranges {
            ops.push(TxnOp::delete(
                self.key(s),
                Some(DeleteOptions::new().with_range(self.key(e))),
            ));
        }
        for (k, v) in &net.points {
            ops.push(match v {
                Some(v) => TxnOp::put(self.key(k), v.clone(), None),
                None => TxnOp::delete(self.key(k), None),
            });
        }
        let compares: Vec<Compare> = expect
            .iter()
            .map(|(k, v)| match v {
                Some(v) => Compare::value(self.key(k), CompareOp::Equal, v.clone()),
                None => Compare::version(self.key(k), CompareOp::Equal, 0),
            })
            .collect();
        let txn = Txn::new().when(compares).and_then(ops);
        self.n.txns.fetch_add(1, Ordering::Relaxed);
        self.n
            .txn_ops
            .fetch_add(net.len() as u64, Ordering::Relaxed);
        self.n
            .txn_bytes
            .fetch_add(net.bytes() as u64, Ordering::Relaxed);
        let what = format!(
            "transaction of {} operations, {} bytes",
            net.len(),
            net.bytes()
        );
        let r = self.call(&what, |mut kv| {
            let txn = txn.clone();
            async move { kv.txn(txn).await }
        });
        let rev = r.as_ref().map_or(0, |r| self.saw(r.header()));
        match r {
            Ok(r) if r.succeeded() => {
                if !net.is_empty() {
                    self.mirror.committed(rev);
                }
                for (s, e) in &net.ranges {
                    self.mirror.learn_deleted_range(s, e, rev);
                }
                for (k, v) in &net.points {
                    self.mirror.learn(k, v.as_deref(), rev);
                }
                Ok(())
            }
            Ok(_) => {
                self.n.conflicts.fetch_add(1, Ordering::Relaxed);
                Err(super::conflict())
            }
            Err(e) => {
                if matches!(e.raw_os_error(), Some(libc::EFBIG | libc::ENOSPC)) {
                    self.n.refused.fetch_add(1, Ordering::Relaxed);
                }
                Err(e)
            }
        }
    }

    fn shared(&self) -> bool {
        true
    }

    fn follow_changes(&self, sink: super::ChangeSink) -> bool {
        self.mirror.set_sink(sink);
        true
    }

    fn sync(&self) -> io::Result<()> {
        // Every acknowledged transaction is already on a quorum's disks.
        Ok(())
    }

    fn stats_text(&self) -> String {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "store etcd {}\netcd_gets {} ({} serializable, {} re-read on a member behind; {} multi-key transactions)\netcd_ranges {}\netcd_txns {}\netcd_txn_ops {}\n\
             etcd_txn_bytes {}\netcd_conflicts {}\netcd_retries {}\netcd_refused {}\n",
            self.shown,
            n(&self.n.gets),
            n(&self.n.serializable_gets),
            n(&self.n.behind),
            n(&self.n.multi_gets),
            n(&self.n.ranges),
            n(&self.n.txns),
            n(&self.n.txn_ops),
            n(&self.n.txn_bytes),
            n(&self.n.conflicts),
            n(&self.n.retries),
            n(&self.n.refused),
        ) + &self.mirror.stats_line()
    }
}
