//! The deliveries accepted lately, by dedupe key, in memory: how the SQLite store finds a
//! duplicate without an index on the key.
//!
//! Why: the key is a hash, so an index on it puts every delivery's entry on a random page, and
//! each commit wrote one page per delivery for it. Dropping the index took ingest from 12,448
//! and 13,060/s to 18,588 and 18,424/s in two alternating pairs. A SQLite database has one
//! writer, this process (several nodes need PostgreSQL, which keeps its index), so memory can
//! hold what the index held, for the writer alone.
//!
//! Each entry keeps a 64-bit hash of (workflow, key) and the event's rowid; a hit is confirmed
//! against that row, so a hash collision or a rolled-back batch never makes a false duplicate.
//! A workflow's entries are loaded from the table the first time it asks (after a restart,
//! say) and again when its window grows; each entry is dropped when the window it was kept for
//! has passed. Memory grows with the deliveries accepted within the window: 54 to 107 bytes
//! each as laid out (a 33-byte map slot and a 16-byte queue entry, at the tables' fill), so 32
//! to 64 MB for ten minutes at 1,000 deliveries/s, the default ingress limit per key.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash, Hasher};

#[derive(Default)]
pub(super) struct RecentDeliveries {
    by_key: HashMap<u64, Seen>,
    /// Entries in about the order they expire, to drop them.
    expiries: VecDeque<(i64, u64)>,
    /// Per workflow: the window its entries are kept for.
    kept_for: HashMap<Box<str>, i64>,
    hasher: std::collections::hash_map::RandomState,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Seen {
    pub received_at: i64,
    pub rowid: i64,
    expires_at: i64,
}

impl RecentDeliveries {
    /// Whether the workflow's entries cover a window of `window_ms` back from now; if not, the
    /// caller calls `keep_for` and then `remember`s each accepted event of that window.
    pub fn covers(&self, workflow: &str, window_ms: i64) -> bool {
        self.kept_for
            .get(workflow)
            .is_some_and(|&kept| kept >= window_ms)
    }

    /// From now on the workflow's entries are kept for `window_ms`.
    pub fn keep_for(&mut self, workflow: &str, window_ms: i64) {
        self.kept_for.insert(workflow.into(), window_ms);
    }

    /// The last accepted delivery with this key inside the window, if memory has one: still
    /// to be confirmed against its row.
    pub fn find(&self, workflow: &str, key: &str, since: i64) -> Option<Seen> {
        self.by_key
            .get(&self.hash(workflow, key))
            .filter(|seen| seen.received_at >= since)
            .copied()
    }

    /// Records an accepted delivery (its event's rowid), kept for the workflow's window.
    pub fn remember(&mut self, workflow: &str, key: &str, received_at: i64, rowid: i64) {
        let kept = self.kept_for.get(workflow).copied().unwrap_or(0);
        let h = self.hash(workflow, key);
        let seen = Seen {
            received_at,
            rowid,
            expires_at: received_at.saturating_add(kept),
        };
        // A reload brings back older events: the newest stays.
        if self
            .by_key
            .get(&h)
            .is_some_and(|newer| newer.received_at > received_at)
        {
            return;
        }
        self.by_key.insert(h, seen);
        self.expiries.push_back((seen.expires_at, h));
    }

    /// Drops the entries whose window has passed.
    pub fn expire(&mut self, now: i64) {
        while let Some(&(expires_at, h)) = self.expiries.front() {
            if expires_at >= now {
                break;
            }
            self.expiries.pop_front();
            // Only if the entry was not replaced by a later one meanwhile.
            if self
                .by_key
                .get(&h)
                .is_some_and(|s| s.expires_at == expires_at)
            {
                self.by_key.remove(&h);
            }
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    fn hash(&self, workflow: &str, key: &str) -> u64 {
        let mut h = self.hasher.build_hasher();
        workflow.hash(&mut h);
        key.hash(&mut h);
        h.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_found_inside_its_window_and_dropped_after_it() {
        let mut r = RecentDeliveries::default();
        assert!(!r.covers("wf", 600));
        r.keep_for("wf", 600);
        assert!(r.covers("wf", 600) && r.covers("wf", 60) && !r.covers("wf", 601));
        r.remember("wf", "k", 1_000, 7);
        assert_eq!(r.find("wf", "k", 1_000 - 600 + 1).map(|s| s.rowid), Some(7));
        assert_eq!(
            r.find("wf", "k", 1_001),
            None,
            "older than the window asked"
        );
        assert_eq!(r.find("other", "k", 0), None, "keys are per workflow");
        assert_eq!(r.find("wf", "k2", 0), None);
        r.expire(1_600);
        assert_eq!(r.len(), 1, "kept until its window has passed");
        r.expire(1_601);
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn a_later_delivery_replaces_an_earlier_and_a_reload_does_not() {
        let mut r = RecentDeliveries::default();
        r.keep_for("wf", 100);
        r.remember("wf", "k", 1_000, 1);
        r.remember("wf", "k", 1_050, 2);
        // The first entry's expiry passes; the later one stays.
        r.expire(1_101);
        assert_eq!(r.find("wf", "k", 0).map(|s| s.rowid), Some(2));
        // A window grown to 1,000 reloads older events; they do not hide the newest.
        r.keep_for("wf", 1_000);
        r.remember("wf", "k", 500, 0);
        assert_eq!(r.find("wf", "k", 0).map(|s| s.rowid), Some(2));
        r.expire(1_151);
        assert_eq!(r.len(), 0);
    }
}
