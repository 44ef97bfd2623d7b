//! The webhook's lookup (a key by its digest, a workflow's current version), kept in memory.
//!
//! Every delivery needs it and it rarely changes. This process's own changes to keys and
//! workflows clear the cache once committed; on PostgreSQL, another node's changes clear it
//! when their NOTIFY arrives. A generation taken before each read keeps a read that raced such
//! a change out of the cache, and entries expire after a second anyway, which bounds how long a
//! change goes unseen when no notice comes (another process on the same SQLite file, a
//! PostgreSQL listener reconnecting).

use crate::store::HookLookup;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const TTL: Duration = Duration::from_secs(1);
/// Only lookups with a valid key are kept, so only key holders can fill it; still bounded.
const CAPACITY: usize = 4096;

#[derive(Default)]
pub struct HookCache {
    generation: AtomicU64,
    entries: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    generation: u64,
    read_at: Instant,
    lookup: Arc<HookLookup>,
}

fn entry_key(digest: &str, workflow_id: &str) -> String {
    format!("{digest}/{workflow_id}")
}

impl HookCache {
    /// The generation to pass to [`HookCache::keep`] for a lookup about to be read.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn get(&self, digest: &str, workflow_id: &str) -> Option<Arc<HookLookup>> {
        let generation = self.generation();
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match entries.get(&entry_key(digest, workflow_id)) {
            Some(e) if e.generation == generation && e.read_at.elapsed() < TTL => {
                Some(e.lookup.clone())
            }
            _ => None,
        }
    }

    /// Keeps a lookup read at `generation`, unless a change was committed since.
    pub fn keep(&self, generation: u64, digest: &str, workflow_id: &str, lookup: &Arc<HookLookup>) {
        if lookup.key.is_none() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if self.generation() != generation {
            return;
        }
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(
            entry_key(digest, workflow_id),
            Entry {
                generation,
                read_at: Instant::now(),
                lookup: lookup.clone(),
            },
        );
    }

    /// Runs a change to keys or workflows, then clears the cache: once the change is
    /// committed, or once it failed (a failure may still have committed).
    pub async fn changing<T>(&self, change: impl std::future::Future<Output = T>) -> T {
        let out = change.await;
        self.clear();
        out
    }

    /// After a committed change to keys or workflows (or a key's last use).
    pub fn clear(&self) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::store::KeyRecord;

    fn lookup(key: bool) -> Arc<HookLookup> {
        let key = key.then(|| KeyRecord {
            name: "k".into(),
            digest: "d".into(),
            value_enc: vec![],
            created_at: 0,
            last_used_at: None,
        });
        Arc::new(HookLookup {
            key,
            workflow: None,
        })
    }

    #[test]
    fn keeps_valid_keys_until_a_change() {
        let cache = HookCache::default();
        let g = cache.generation();
        cache.keep(g, "d", "wf", &lookup(true));
        assert!(cache.get("d", "wf").is_some());
        assert!(cache.get("d", "other").is_none());
        cache.clear();
        assert!(cache.get("d", "wf").is_none());
    }

    #[test]
    fn a_read_that_raced_a_change_is_not_kept() {
        let cache = HookCache::default();
        let before = cache.generation();
        cache.clear();
        cache.keep(before, "d", "wf", &lookup(true));
        assert!(cache.get("d", "wf").is_none());
    }

    #[test]
    fn wrong_keys_are_not_kept() {
        let cache = HookCache::default();
        cache.keep(cache.generation(), "d", "wf", &lookup(false));
        assert!(cache.get("d", "wf").is_none());
    }
}
