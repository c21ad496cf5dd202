//! The series of every key held, bounded by `max_keys`: when a new key would exceed it, the
//! key seen least recently (the one whose last non-null value came earliest) is forgotten,
//! and starts afresh, warm-up included, if it comes back.
//!
//! Series live in slots threaded on a doubly linked list from least to most recently seen,
//! so a lookup, a touch and an eviction are O(1); keys are found through a hash map with a
//! fixed hasher, so every run does the same work.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, DefaultHasher};

use crate::detector::Series;
use crate::key::Key;

/// A hash map with a fixed hasher.
type FixedMap<K, V> = HashMap<K, V, BuildHasherDefault<DefaultHasher>>;

/// No slot.
const NIL: usize = usize::MAX;

#[derive(Debug)]
struct Slot {
    key: Key,
    series: Series,
    /// The slot seen just before this one (`NIL` for the least recent).
    prev: usize,
    /// The slot seen just after this one (`NIL` for the most recent).
    next: usize,
}

/// The series held, by key, in recency order.
#[derive(Debug)]
pub struct Store {
    index: FixedMap<Key, usize>,
    slots: Vec<Slot>,
    /// Least recently seen.
    head: usize,
    /// Most recently seen.
    tail: usize,
    max_keys: usize,
}

impl Store {
    /// An empty store holding at most `max_keys` (≥ 1) keys.
    pub fn new(max_keys: usize) -> Self {
        Store {
            index: FixedMap::default(),
            slots: Vec::new(),
            head: NIL,
            tail: NIL,
            max_keys: max_keys.max(1),
        }
    }

    /// How many keys are held.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// The series of `key`, now the most recently seen, created with `new` if absent (which
    /// may forget the least recently seen key).
    pub fn touch(&mut self, key: &[u8], new: impl FnOnce() -> Series) -> &mut Series {
        let slot = match self.index.get(key) {
            Some(&slot) => {
                self.unlink(slot);
                slot
            }
            None => self.insert(key.to_vec(), new()),
        };
        self.link_last(slot);
        &mut self.slots[slot].series
    }

    /// Add `series` of a key not held yet as the most recently seen (restoring a snapshot,
    /// least recent first). `false` if the key is already held.
    pub fn push(&mut self, key: Key, series: Series) -> bool {
        if self.index.contains_key(&key) {
            return false;
        }
        let slot = self.insert(key, series);
        self.link_last(slot);
        true
    }

    /// Every key and its series, least recently seen first.
    pub fn iter(&self) -> impl Iterator<Item = (&Key, &Series)> {
        let mut at = self.head;
        std::iter::from_fn(move || {
            let slot = self.slots.get(at)?;
            at = slot.next;
            Some((&slot.key, &slot.series))
        })
    }

    /// Put a new key in a free slot, or in the least recently seen key's slot when full.
    /// The slot is left unlinked.
    fn insert(&mut self, key: Key, series: Series) -> usize {
        let slot = if self.slots.len() < self.max_keys {
            self.slots.push(Slot {
                key: key.clone(),
                series,
                prev: NIL,
                next: NIL,
            });
            self.slots.len() - 1
        } else {
            // Invariant: the store is full and max_keys ≥ 1, so `head` is a slot.
            let victim = self.head;
            self.unlink(victim);
            let old = std::mem::replace(&mut self.slots[victim].key, key.clone());
            self.index.remove(&old);
            self.slots[victim].series = series;
            victim
        };
        self.index.insert(key, slot);
        slot
    }

    fn unlink(&mut self, slot: usize) {
        let (prev, next) = (self.slots[slot].prev, self.slots[slot].next);
        match prev {
            NIL => self.head = next,
            p => self.slots[p].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.slots[n].prev = prev,
        }
        self.slots[slot].prev = NIL;
        self.slots[slot].next = NIL;
    }

    fn link_last(&mut self, slot: usize) {
        self.slots[slot].prev = self.tail;
        self.slots[slot].next = NIL;
        match self.tail {
            NIL => self.head = slot,
            t => self.slots[t].next = slot,
        }
        self.tail = slot;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detector::{Ewma, Stats};

    fn series(seen: u64) -> Series {
        Series {
            seen,
            run: 0,
            stats: Stats::Ewma(Ewma::default()),
        }
    }

    fn keys(store: &Store) -> Vec<String> {
        store
            .iter()
            .map(|(k, s)| format!("{}{}", String::from_utf8_lossy(k), s.seen))
            .collect()
    }

    #[test]
    fn touching_moves_a_key_to_the_most_recent_end() {
        let mut store = Store::new(10);
        for k in ["a", "b", "c"] {
            store.touch(k.as_bytes(), || series(0)).seen += 1;
        }
        assert_eq!(keys(&store), ["a1", "b1", "c1"]);
        store.touch(b"a", || series(0)).seen += 1;
        assert_eq!(keys(&store), ["b1", "c1", "a2"]);
        store.touch(b"c", || series(0)).seen += 1;
        assert_eq!(keys(&store), ["b1", "a2", "c2"]);
        store.touch(b"c", || series(0)).seen += 1;
        assert_eq!(keys(&store), ["b1", "a2", "c3"]);
        assert_eq!(store.len(), 3);
    }

    #[test]
    fn a_new_key_past_the_bound_forgets_the_least_recently_seen() {
        let mut store = Store::new(2);
        store.touch(b"a", || series(1));
        store.touch(b"b", || series(2));
        store.touch(b"a", || series(9));
        store.touch(b"c", || series(3));
        assert_eq!(keys(&store), ["a1", "c3"], "b was seen least recently");
        store.touch(b"b", || series(4));
        assert_eq!(keys(&store), ["c3", "b4"], "b comes back afresh; a goes");
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn a_bound_of_one_keeps_only_the_last_key() {
        let mut store = Store::new(1);
        store.touch(b"a", || series(1));
        store.touch(b"b", || series(2));
        store.touch(b"b", || series(7));
        assert_eq!(keys(&store), ["b2"]);
    }

    #[test]
    fn pushing_restores_in_order_and_refuses_duplicates() {
        let mut store = Store::new(3);
        assert!(store.push(b"x".to_vec(), series(1)));
        assert!(store.push(b"y".to_vec(), series(2)));
        assert!(!store.push(b"x".to_vec(), series(3)));
        assert_eq!(keys(&store), ["x1", "y2"]);
    }
}
