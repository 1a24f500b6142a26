//! A copy of the keys this mount used lately, kept current by an etcd
//! watch, so that a relaxed read (`Store::get_relaxed`) is answered from
//! memory instead of by a member over the network.
//!
//! Why that is allowed: a relaxed read may already come from a member
//! that lags, as long as that member is not behind the newest revision
//! this mount has seen (the *floor*, see `EtcdStore::get_relaxed`); an
//! operation that commits compares every value it read, so a stale one
//! costs a retry, never a wrong result. The mirror is such a member, fed
//! by a watch on the whole prefix instead of by Raft.
//!
//! The rules (revisions are etcd's):
//! - `applied`: every watch event of a revision up to it has been applied
//!   (a watch response's header revision says so). A held entry — a value
//!   or an absence, with `rev`, the revision at which it is known current —
//!   is current at `max(rev, applied)`: events for held keys are applied,
//!   events for other keys dropped.
//! - A hit is a held key current at or past the floor.
//! - What a read answered at revision R, or what this mount's own commit
//!   at R wrote, is learned only if R >= `applied` (an event in
//!   (R, `applied`] for a key not held went by unapplied) and R is newer
//!   than what is held.
//! - While the watch is down nothing is served or learned; a new watch
//!   starts from an empty mirror at its creation revision (no history to
//!   replay, so a compacted revision never matters).
//! - Bounded: a value over `VALUE_MAX` is not held (file data), and past
//!   `MAX_BYTES` the mirror is emptied and refills as keys are read.
//!
//! The watch also tells the filesystem what other clients changed
//! (`Store::follow_changes`, so that it can drop the kernel's cached
//! names and attributes at once): a change is held for `HOLD`, long
//! enough for the answer to our own commit of it to arrive, and handed on
//! unless it was ours.
//!
//! With no other writer on the cluster, the floor is this mount's last
//! commit or read, and the watch reaches it within a millisecond; another
//! prefix's steady writes move the floor where this prefix's events never
//! take `applied`, and then the mirror serves little (reads go to a
//! member as before). A requested progress notification would move
//! `applied` along, but etcd releases from before the fix of etcd issue
//! 15220 (Debian's 3.4.23 among them) can send one ahead of events it
//! covers, so none is asked for.

use crate::store::ChangeSink;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Largest value held (inodes, entries, xattrs, small inline files).
const VALUE_MAX: usize = 1024;
/// Bytes held (keys, values and `ENTRY_COST` each) before the mirror is
/// emptied.
const MAX_BYTES: usize = 64 << 20;
/// What one held key costs beyond its bytes (the map's node, the Vecs).
const ENTRY_COST: usize = 64;
/// How long a change is held before it is handed on as another client's.
pub const HOLD: Duration = Duration::from_millis(5);

struct Held {
    value: Option<Vec<u8>>,
    rev: i64,
}

#[derive(Default)]
struct State {
    live: bool,
    applied: i64,
    keys: BTreeMap<Vec<u8>, Held>,
    bytes: usize,
}

fn cost(key: &[u8], h: &Held) -> usize {
    key.len() + h.value.as_ref().map_or(0, Vec::len) + ENTRY_COST
}

impl State {
    fn set(&mut self, key: &[u8], held: Held) {
        let add = cost(key, &held);
        if self.bytes + add > MAX_BYTES {
            self.clear();
        }
        self.bytes += add;
        if let Some(old) = self.keys.insert(key.to_vec(), held) {
            self.bytes -= cost(key, &old);
        }
    }

    fn remove(&mut self, key: &[u8]) {
        if let Some(old) = self.keys.remove(key) {
            self.bytes -= cost(key, &old);
        }
    }

    fn clear(&mut self) {
        self.keys.clear();
        self.bytes = 0;
    }
}

/// What `follow_changes` asked for: where other clients' changes go.
#[derive(Default)]
struct Foreign {
    sink: Option<ChangeSink>,
    /// Changes not handed on yet: when the watch showed them, their
    /// revision, their keys.
    held: VecDeque<(Instant, i64, Vec<Vec<u8>>)>,
    /// Revisions of our own commits the watch has not shown yet.
    own: BTreeSet<i64>,
    handed: u64,
}

#[derive(Default)]
pub struct Mirror {
    st: Mutex<State>,
    foreign: Mutex<Foreign>,
    hits: AtomicU64,
    watches: AtomicU64,
}

/// One change a watch reported: the key (without the prefix), its new
/// value (None: deleted) and the revision that made it.
pub struct Change<'a> {
    pub key: &'a [u8],
    pub value: Option<&'a [u8]>,
    pub rev: i64,
}

impl Mirror {
    fn state(&self) -> MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn foreign(&self) -> MutexGuard<'_, Foreign> {
        self.foreign.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hand other clients' changes to `sink` from now on.
    pub fn set_sink(&self, sink: ChangeSink) {
        self.foreign().sink = Some(sink);
    }

    /// Our own commit made revision `rev`: its changes are not foreign.
    pub fn committed(&self, rev: i64) {
        let mut f = self.foreign();
        if f.sink.is_some() {
            f.own.insert(rev);
        }
    }

    /// Whether changes are held, waiting to be handed on.
    pub fn holding(&self) -> bool {
        !self.foreign().held.is_empty()
    }

    /// Hand on the changes held for `HOLD` (all of them with `all`) that
    /// were not our own commits'.
    pub fn hand_on(&self, all: bool) {
        let mut f = self.foreign();
        let mut keys = Vec::new();
        while let Some((at, rev, _)) = f.held.front() {
            if !all && at.elapsed() < HOLD {
                break;
            }
            let rev = *rev;
            let Some((_, _, k)) = f.held.pop_front() else {
                break;
            };
            if !f.own.remove(&rev) {
                keys.extend(k);
            }
            // Older own revisions the watch never showed (a new watch
            // began after them) never will.
            while f.own.first().is_some_and(|&r| r < rev) {
                f.own.pop_first();
            }
        }
        if keys.is_empty() {
            return;
        }
        f.handed += keys.len() as u64;
        if let Some(sink) = &f.sink {
            sink(keys);
        }
    }

    /// The value of `key` if the mirror holds it current at `floor` or later.
    pub fn lookup(&self, key: &[u8], floor: i64) -> Option<Option<Vec<u8>>> {
        let st = self.state();
        if !st.live {
            return None;
        }
        let h = st.keys.get(key)?;
        if h.rev.max(st.applied) < floor {
            return None;
        }
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(h.value.clone())
    }

    /// `key` was `value` at revision `rev` (a read's answer, or our commit).
    pub fn learn(&self, key: &[u8], value: Option<&[u8]>, rev: i64) {
        let mut st = self.state();
        if !st.live || rev < st.applied {
            return;
        }
        if st.keys.get(key).is_some_and(|h| h.rev >= rev) {
            return;
        }
        match value {
            Some(v) if v.len() > VALUE_MAX => st.remove(key),
            _ => {
                let value = value.map(<[u8]>::to_vec);
                st.set(key, Held { value, rev });
            }
        }
    }

    /// Our commit at `rev` deleted `[start, end)`: held keys there are gone.
    pub fn learn_deleted_range(&self, start: &[u8], end: &[u8], rev: i64) {
        let mut st = self.state();
        if !st.live || rev < st.applied || start >= end {
            return;
        }
        let range = (Bound::Included(start), Bound::Excluded(end));
        let gone: Vec<Vec<u8>> = (st.keys.range::<[u8], _>(range))
            .filter(|(_, h)| h.rev < rev)
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            st.set(&k, Held { value: None, rev });
        }
    }

    /// A watch was created at revision `rev`: serve from an empty mirror.
    pub fn started(&self, rev: i64) {
        self.watches.fetch_add(1, Ordering::Relaxed);
        let mut st = self.state();
        st.clear();
        st.applied = rev;
        st.live = true;
    }

    /// The watch broke: nothing is served until a new one starts.
    pub fn stopped(&self) {
        let mut st = self.state();
        st.clear();
        st.live = false;
        drop(st);
        self.hand_on(true);
    }

    /// A watch response: its changes, and the revision through which the
    /// watch has now reported everything.
    pub fn apply<'a>(&self, changes: impl IntoIterator<Item = Change<'a>>, through: i64) {
        let mut st = self.state();
        if !st.live {
            return;
        }
        let mut f = self.foreign();
        let follow = f.sink.is_some();
        for c in changes {
            if follow {
                match f.held.back_mut() {
                    Some((_, rev, keys)) if *rev == c.rev => keys.push(c.key.to_vec()),
                    _ => f
                        .held
                        .push_back((Instant::now(), c.rev, vec![c.key.to_vec()])),
                }
            }
            if st.keys.get(c.key).is_none_or(|h| h.rev >= c.rev) {
                continue;
            }
            match c.value {
                Some(v) if v.len() > VALUE_MAX => st.remove(c.key),
                v => {
                    let value = v.map(<[u8]>::to_vec);
                    st.set(c.key, Held { value, rev: c.rev });
                }
            }
        }
        st.applied = st.applied.max(through);
    }

    /// For `.lsmfs-stats`.
    pub fn stats_line(&self) -> String {
        let st = self.state();
        let handed = self.foreign().handed;
        format!(
            "etcd_mirror {} hits, {} keys held, watch {} at revision {} ({} created), \
             {handed} keys other clients changed handed on\n",
            self.hits.load(Ordering::Relaxed),
            st.keys.len(),
            if st.live { "following" } else { "down" },
            st.applied,
            self.watches.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live_at(rev: i64) -> Mirror {
        let m = Mirror::default();
        m.started(rev);
        m
    }

    fn change(key: &[u8], value: Option<&'static [u8]>, rev: i64) -> Change<'static> {
        let key: &'static [u8] = Box::leak(key.to_vec().into_boxed_slice());
        Change { key, value, rev }
    }

    #[test]
    fn serves_nothing_until_a_watch_starts_and_after_it_stops() {
        let m = Mirror::default();
        m.learn(b"k", Some(b"v"), 5);
        assert_eq!(m.lookup(b"k", 0), None);
        m.started(5);
        m.learn(b"k", Some(b"v"), 5);
        assert_eq!(m.lookup(b"k", 5), Some(Some(b"v".to_vec())));
        m.stopped();
        assert_eq!(m.lookup(b"k", 0), None);
        m.started(9);
        assert_eq!(m.lookup(b"k", 0), None, "a new watch starts empty");
    }

    #[test]
    fn an_entry_is_current_at_the_newer_of_its_revision_and_the_watch() {
        let m = live_at(10);
        m.learn(b"k", Some(b"a"), 12);
        assert_eq!(m.lookup(b"k", 12), Some(Some(b"a".to_vec())));
        assert_eq!(m.lookup(b"k", 13), None, "nothing says it held at 13");
        m.apply([], 20);
        assert_eq!(m.lookup(b"k", 20), Some(Some(b"a".to_vec())));
    }

    #[test]
    fn a_read_older_than_the_watch_is_not_learned() {
        let m = live_at(10);
        m.apply([change(b"k", Some(b"new"), 15)], 15);
        // k was not held when it changed at 15; a read answered at 12 is stale.
        m.learn(b"k", Some(b"old"), 12);
        assert_eq!(m.lookup(b"k", 0), None);
        m.learn(b"k", Some(b"new"), 15);
        assert_eq!(m.lookup(b"k", 15), Some(Some(b"new".to_vec())));
    }

    #[test]
    fn events_replace_held_keys_only_when_newer() {
        let m = live_at(10);
        m.learn(b"k", Some(b"mine"), 14);
        m.apply([change(b"k", Some(b"theirs"), 12)], 12);
        assert_eq!(m.lookup(b"k", 14), Some(Some(b"mine".to_vec())));
        m.apply(
            [change(b"k", None, 16), change(b"other", Some(b"x"), 16)],
            16,
        );
        assert_eq!(m.lookup(b"k", 16), Some(None));
        assert_eq!(m.lookup(b"other", 0), None, "unheld keys are not picked up");
    }

    #[test]
    fn a_deleted_range_and_large_values_drop_what_is_held() {
        let m = live_at(1);
        for k in [&b"a1"[..], b"a2", b"b1"] {
            m.learn(k, Some(b"v"), 2);
        }
        m.learn_deleted_range(b"a", b"b", 3);
        assert_eq!(m.lookup(b"a1", 3), Some(None));
        assert_eq!(m.lookup(b"a2", 3), Some(None));
        assert_eq!(m.lookup(b"b1", 2), Some(Some(b"v".to_vec())));
        let big: &'static [u8] = Box::leak(vec![0u8; VALUE_MAX + 1].into_boxed_slice());
        m.apply([change(b"b1", Some(big), 4)], 4);
        assert_eq!(m.lookup(b"b1", 0), None);
        m.learn(b"c", Some(big), 5);
        assert_eq!(m.lookup(b"c", 0), None);
    }

    #[test]
    fn full_means_emptied_not_grown() {
        let m = live_at(1);
        let v = vec![7u8; VALUE_MAX];
        for i in 0..MAX_BYTES / VALUE_MAX + 10 {
            m.learn(format!("k{i}").as_bytes(), Some(&v), 2);
            assert!(m.state().bytes <= MAX_BYTES);
        }
        let st = m.state();
        let counted: usize = st.keys.iter().map(|(k, h)| cost(k, h)).sum();
        assert_eq!(counted, st.bytes);
        drop(st);
        assert!(m.state().keys.len() < MAX_BYTES / VALUE_MAX);
        m.learn(b"k1", Some(b"short"), 3);
        m.learn_deleted_range(b"k", b"l", 4);
        let st = m.state();
        let counted: usize = st.keys.iter().map(|(k, h)| cost(k, h)).sum();
        assert_eq!(counted, st.bytes);
    }
}
