//! The series of every key held, bounded two ways, and forgetting keys so: a forgotten key
//! starts afresh, warm-up included, if it comes back.
//!
//! - At most `max_keys`: when a new key would exceed it, the key seen least recently (the
//!   one whose last non-null value came earliest) is forgotten.
//! - With `expire_after`, by event time: each key keeps its latest event time, the greatest
//!   over its scored rows with a non-null time. [`Store::expire`] at watermark `w` forgets
//!   every key whose latest event time is before `w − expire_after`; one exactly at it is
//!   kept. A key with no event time yet (its rows had null times, or it was restored from
//!   a snapshot without times) counts as seen at the first watermark after, which becomes
//!   its latest event time.
//!
//! Series live in slots threaded on a doubly linked list from least to most recently seen,
//! so a lookup, a touch and an eviction are O(1); keys are found through hash maps with a
//! fixed hasher, so every run does the same work: a key that packs into a u128
//! ([`key::pack`]: strings up to 15 bytes, integers, null) by that number, any other by its
//! bytes. Slots of expired keys are reused. Which keys may be due to expire is kept in
//! [`crate::expiry`].

use std::collections::HashMap;

use crate::detector::{Ewma, Series, Stats};
use crate::expiry::{Deadline, Deadlines};
use crate::key::{self, Key};

/// A hash map with a fixed hasher: foldhash, as fast on short keys as a hash with good
/// distribution gets (SipHash, the standard one, was a fifth of the detector's time). A
/// fixed seed is no weaker against crafted keys than SipHash with its fixed zero keys was,
/// and a batch that degenerates the table still meets the stage's deadline.
type FixedMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// No slot.
const NIL: usize = usize::MAX;

/// The stamp of a free slot, which no deadline has.
const FREE: u64 = u64::MAX;

/// Stale deadlines tolerated beyond one per key before the heap is rebuilt.
const SLACK: usize = 64;

#[derive(Debug)]
struct Slot {
    key: Key,
    series: Series,
    /// The key's latest event time in microseconds; `None` if it has none yet.
    last_seen: Option<i64>,
    /// Different for every key that moves in: tells the key's deadline from stale ones.
    stamp: u64,
    /// The slot seen just before this one (`NIL` for the least recent).
    prev: usize,
    /// The slot seen just after this one (`NIL` for the most recent).
    next: usize,
}

/// The series held, by key, in recency order.
#[derive(Debug)]
pub struct Store {
    index: Index,
    slots: Vec<Slot>,
    /// Slots of expired keys.
    free: Vec<usize>,
    /// Least recently seen.
    head: usize,
    /// Most recently seen.
    tail: usize,
    max_keys: usize,
    /// `expire_after` in microseconds; `None` when keys do not expire.
    expire_after: Option<i64>,
    /// One live deadline per key held when keys expire, none otherwise.
    deadlines: Deadlines,
    /// The next stamp.
    stamps: u64,
}

impl Store {
    /// An empty store holding at most `max_keys` (≥ 1) keys, forgetting keys idle for
    /// `expire_after` microseconds (> 0) of event time if given.
    pub fn new(max_keys: usize, expire_after: Option<i64>) -> Self {
        Store {
            index: Index::default(),
            slots: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            max_keys: max_keys.max(1),
            expire_after,
            deadlines: Deadlines::default(),
            stamps: 0,
        }
    }

    /// How many keys are held.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// The series of `key`, now the most recently seen, created with `new` if absent (which
    /// may forget the least recently seen key). `time` is the row's event time, if any.
    pub fn touch(&mut self, key: &[u8], time: Option<i64>, new: impl FnOnce() -> Series) -> &mut Series {
        if let Some(packed) = key::pack(key) {
            return self.touch_packed(packed, time, new);
        }
        let found = self.index.long.get(key).copied();
        self.touch_found(found, || key.to_vec(), time, new)
    }

    /// [`Store::touch`] for the key that packs into `packed` (see [`key::pack`]): no bytes
    /// are hashed or compared.
    #[inline]
    pub fn touch_packed(&mut self, packed: u128, time: Option<i64>, new: impl FnOnce() -> Series) -> &mut Series {
        let found = self.index.short.get(&packed).copied();
        self.touch_found(found, || key::unpack(packed), time, new)
    }

    /// Touch the key in slot `found`, or put the key `key` makes in a new one.
    #[inline]
    fn touch_found(
        &mut self,
        found: Option<usize>,
        key: impl FnOnce() -> Key,
        time: Option<i64>,
        new: impl FnOnce() -> Series,
    ) -> &mut Series {
        let slot = match found {
            Some(slot) => {
                self.unlink(slot);
                let last_seen = &mut self.slots[slot].last_seen;
                // `None` orders before any time.
                *last_seen = (*last_seen).max(time);
                slot
            }
            None => self.insert(key(), new(), time),
        };
        self.link_last(slot);
        &mut self.slots[slot].series
    }

    /// Add `series` of a key not held yet, last seen at event time `last_seen`, as the most
    /// recently seen (restoring a snapshot, least recent first). `false` if the key is
    /// already held.
    pub fn push(&mut self, key: Key, series: Series, last_seen: Option<i64>) -> bool {
        if self.index.get(&key).is_some() {
            return false;
        }
        let slot = self.insert(key, series, last_seen);
        self.link_last(slot);
        true
    }

    /// The series of `key` and its latest event time, if held (its recency unchanged).
    pub fn get(&self, key: &[u8]) -> Option<(&Series, Option<i64>)> {
        self.index
            .get(key)
            .map(|slot| (&self.slots[slot].series, self.slots[slot].last_seen))
    }

    /// Forget `key`; `false` if it was not held.
    pub fn forget(&mut self, key: &[u8]) -> bool {
        match self.index.get(key) {
            Some(slot) => {
                self.remove(slot);
                true
            }
            None => false,
        }
    }

    /// Every key, its series and its latest event time, least recently seen first.
    pub fn iter(&self) -> impl Iterator<Item = (&Key, &Series, Option<i64>)> {
        let mut at = self.head;
        std::iter::from_fn(move || {
            let slot = self.slots.get(at)?;
            at = slot.next;
            Some((&slot.key, &slot.series, slot.last_seen))
        })
    }

    /// The watermark reached `watermark` (µs): forget the keys last seen before
    /// `watermark − expire_after`. Touches only the keys that may be due.
    pub fn expire(&mut self, watermark: i64) {
        let Some(after) = self.expire_after else {
            return;
        };
        let cutoff = watermark.saturating_sub(after);
        while let Some(due) = self.deadlines.pop_before(cutoff) {
            let Some(slot) = self.slots.get_mut(due.slot).filter(|s| s.stamp == due.stamp) else {
                continue; // The key was evicted by `max_keys`.
            };
            let seen = match slot.last_seen {
                Some(seen) if seen < cutoff => {
                    self.remove(due.slot);
                    continue;
                }
                Some(seen) => seen,
                // Seen now, for want of a time; `cutoff ≤ watermark`, so it stays.
                None => *slot.last_seen.insert(watermark),
            };
            self.deadlines.push(Deadline {
                seen: Some(seen),
                ..due
            });
        }
    }

    /// Put a new key in a free slot, or in the least recently seen key's slot when full.
    /// The slot is left unlinked.
    fn insert(&mut self, key: Key, series: Series, last_seen: Option<i64>) -> usize {
        let stamp = self.stamps;
        self.stamps += 1;
        let new = Slot {
            key: key.clone(),
            series,
            last_seen,
            stamp,
            prev: NIL,
            next: NIL,
        };
        let slot = if self.index.len() >= self.max_keys {
            // Invariant: the store is full and max_keys ≥ 1, so `head` is a slot.
            let victim = self.head;
            self.unlink(victim);
            let old = std::mem::replace(&mut self.slots[victim], new);
            self.index.remove(&old.key);
            victim
        } else if let Some(free) = self.free.pop() {
            self.slots[free] = new;
            free
        } else {
            self.slots.push(new);
            self.slots.len() - 1
        };
        self.index.insert(key, slot);
        if self.expire_after.is_some() {
            self.deadlines.push(Deadline {
                seen: last_seen,
                slot,
                stamp,
            });
            if self.deadlines.len() > 2 * self.index.len() + SLACK {
                self.rebuild_deadlines();
            }
        }
        slot
    }

    /// Forget the key in `slot` and free the slot.
    fn remove(&mut self, slot: usize) {
        self.unlink(slot);
        let Slot { key, .. } = std::mem::replace(
            &mut self.slots[slot],
            Slot {
                key: Key::new(),
                series: Series {
                    seen: 0,
                    run: 0,
                    stats: Stats::Ewma(Ewma::default()),
                },
                last_seen: None,
                stamp: FREE,
                prev: NIL,
                next: NIL,
            },
        );
        self.index.remove(&key);
        self.free.push(slot);
    }

    /// Drop the stale deadlines that keys evicted by `max_keys` left behind.
    fn rebuild_deadlines(&mut self) {
        let slots = &self.slots;
        self.deadlines.rebuild(self.index.slots().map(|slot| Deadline {
            seen: slots[slot].last_seen,
            slot,
            stamp: slots[slot].stamp,
        }));
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

/// The slot of every key held.
#[derive(Debug, Default)]
struct Index {
    /// Keys that [`key::pack`] packs, by their number.
    short: FixedMap<u128, usize>,
    /// The other keys.
    long: FixedMap<Key, usize>,
}

impl Index {
    fn len(&self) -> usize {
        self.short.len() + self.long.len()
    }

    fn get(&self, key: &[u8]) -> Option<usize> {
        match key::pack(key) {
            Some(packed) => self.short.get(&packed).copied(),
            None => self.long.get(key).copied(),
        }
    }

    fn insert(&mut self, key: Key, slot: usize) {
        match key::pack(&key) {
            Some(packed) => self.short.insert(packed, slot),
            None => self.long.insert(key, slot),
        };
    }

    fn remove(&mut self, key: &[u8]) {
        match key::pack(key) {
            Some(packed) => self.short.remove(&packed),
            None => self.long.remove(key),
        };
    }

    fn slots(&self) -> impl Iterator<Item = usize> + '_ {
        self.short.values().chain(self.long.values()).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detector::{Ewma, Stats};

    #[test]
    fn a_forgotten_key_is_gone_and_its_slot_reused() {
        let mut store = Store::new(2, Some(10));
        let series = || Series {
            seen: 1,
            run: 0,
            stats: Stats::Ewma(Ewma::default()),
        };
        store.touch(b"a", Some(0), series);
        store.touch(b"b", Some(0), series);
        assert!(store.forget(b"a"));
        assert!(!store.forget(b"a"));
        assert!(store.get(b"a").is_none());
        assert_eq!(store.get(b"b").map(|(s, t)| (s.seen, t)), Some((1, Some(0))));
        store.touch(b"c", Some(5), series);
        assert_eq!(store.len(), 2, "room for c without evicting b");
        store.expire(100);
        assert_eq!(
            store.len(),
            0,
            "the forgotten key's deadline is stale, the others expire"
        );
    }

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
            .map(|(k, s, _)| format!("{}{}", String::from_utf8_lossy(k), s.seen))
            .collect()
    }

    #[test]
    fn touching_moves_a_key_to_the_most_recent_end() {
        let mut store = Store::new(10, None);
        for k in ["a", "b", "c"] {
            store.touch(k.as_bytes(), None, || series(0)).seen += 1;
        }
        assert_eq!(keys(&store), ["a1", "b1", "c1"]);
        store.touch(b"a", None, || series(0)).seen += 1;
        assert_eq!(keys(&store), ["b1", "c1", "a2"]);
        store.touch(b"c", None, || series(0)).seen += 1;
        assert_eq!(keys(&store), ["b1", "a2", "c2"]);
        store.touch(b"c", None, || series(0)).seen += 1;
        assert_eq!(keys(&store), ["b1", "a2", "c3"]);
        assert_eq!(store.len(), 3);
    }

    #[test]
    fn a_new_key_past_the_bound_forgets_the_least_recently_seen() {
        let mut store = Store::new(2, None);
        store.touch(b"a", None, || series(1));
        store.touch(b"b", None, || series(2));
        store.touch(b"a", None, || series(9));
        store.touch(b"c", None, || series(3));
        assert_eq!(keys(&store), ["a1", "c3"], "b was seen least recently");
        store.touch(b"b", None, || series(4));
        assert_eq!(keys(&store), ["c3", "b4"], "b comes back afresh; a goes");
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn a_bound_of_one_keeps_only_the_last_key() {
        let mut store = Store::new(1, None);
        store.touch(b"a", None, || series(1));
        store.touch(b"b", None, || series(2));
        store.touch(b"b", None, || series(7));
        assert_eq!(keys(&store), ["b2"]);
    }

    #[test]
    fn pushing_restores_in_order_and_refuses_duplicates() {
        let mut store = Store::new(3, None);
        assert!(store.push(b"x".to_vec(), series(1), None));
        assert!(store.push(b"y".to_vec(), series(2), None));
        assert!(!store.push(b"x".to_vec(), series(3), None));
        assert_eq!(keys(&store), ["x1", "y2"]);
    }

    #[test]
    fn packed_and_unpacked_keys_share_one_recency_order_and_bound() {
        let str_key = |s: &str| [&[3u8][..], s.as_bytes()].concat();
        let (short, long) = (str_key("dev-1"), str_key("a device name past 15 bytes"));
        let packed = key::pack(&short).unwrap();
        assert_eq!(key::pack(&long), None);
        let mut store = Store::new(2, Some(10));
        store.touch_packed(packed, Some(1), || series(1));
        store.touch(&long, Some(2), || series(2));
        store.touch(&short, Some(3), || series(9)).seen += 1;
        assert_eq!(
            store.get(&short).map(|(s, t)| (s.seen, t)),
            Some((2, Some(3))),
            "one series for both forms"
        );
        store.touch(&str_key("dev-2"), Some(4), || series(5));
        assert_eq!(store.len(), 2);
        assert!(store.get(&long).is_none(), "the long key was seen least recently");
        assert_eq!(
            store.iter().map(|(k, ..)| k.clone()).collect::<Vec<_>>(),
            [short.clone(), str_key("dev-2")]
        );
        assert!(!store.push(short.clone(), series(7), None));
        assert!(store.forget(&short));
        store.touch_packed(packed, None, || series(8));
        assert_eq!(
            store.get(&short).map(|(s, _)| s.seen),
            Some(8),
            "afresh after being forgotten"
        );
        store.expire(15);
        assert_eq!(store.len(), 1, "dev-2 (4) expires before 5; dev-1 has no time yet");
    }

    /// Keys expiring after 10 µs of event time.
    fn expiring(max_keys: usize) -> Store {
        Store::new(max_keys, Some(10))
    }

    fn last_seen(store: &Store) -> Vec<(String, Option<i64>)> {
        store
            .iter()
            .map(|(k, _, t)| (String::from_utf8_lossy(k).into_owned(), t))
            .collect()
    }

    #[test]
    fn the_latest_event_time_is_the_greatest_and_null_times_do_not_count() {
        let mut store = expiring(10);
        store.touch(b"a", Some(50), || series(0));
        store.touch(b"a", Some(40), || series(0));
        store.touch(b"a", None, || series(0));
        store.touch(b"b", None, || series(0));
        store.touch(b"b", Some(7), || series(0));
        store.touch(b"c", None, || series(0));
        assert_eq!(
            last_seen(&store),
            [("a".into(), Some(50)), ("b".into(), Some(7)), ("c".into(), None)]
        );
    }

    #[test]
    fn keys_last_seen_before_the_watermark_minus_expire_after_are_forgotten() {
        let mut store = expiring(10);
        for (k, t) in [("a", 5), ("b", 20), ("c", 10), ("d", 11)] {
            store.touch(k.as_bytes(), Some(t), || series(1));
        }
        store.expire(20);
        assert_eq!(keys(&store), ["b1", "c1", "d1"], "cutoff 10: a (5) goes, c (10) stays");
        store.expire(21);
        assert_eq!(keys(&store), ["b1", "d1"]);
        store.expire(20);
        assert_eq!(keys(&store), ["b1", "d1"], "a watermark going back forgets nothing");
        store.expire(31);
        assert_eq!(store.len(), 0);
    }

    #[test]
    fn a_key_with_no_event_time_counts_as_seen_at_the_next_watermark() {
        let mut store = expiring(10);
        store.touch(b"a", None, || series(1));
        store.expire(100);
        assert_eq!(last_seen(&store), [("a".into(), Some(100))]);
        store.expire(110);
        assert_eq!(store.len(), 1);
        store.expire(111);
        assert_eq!(store.len(), 0);
    }

    #[test]
    fn a_key_seen_again_after_its_deadline_was_set_is_kept_and_rescheduled() {
        let mut store = expiring(10);
        store.touch(b"a", Some(0), || series(1));
        store.expire(5);
        store.touch(b"a", Some(8), || series(0)).seen += 1;
        store.expire(15);
        store.expire(18);
        assert_eq!(keys(&store), ["a2"]);
        store.expire(19);
        assert_eq!(keys(&store), [] as [&str; 0]);
    }

    #[test]
    fn an_expired_key_returns_afresh_and_its_slot_is_reused_in_recency_order() {
        let mut store = expiring(3);
        store.touch(b"a", Some(0), || series(1));
        store.touch(b"b", Some(100), || series(2));
        store.touch(b"c", Some(0), || series(3));
        store.expire(50);
        assert_eq!(keys(&store), ["b2"]);
        store.touch(b"a", Some(100), || series(7));
        store.touch(b"d", Some(100), || series(4));
        assert_eq!(keys(&store), ["b2", "a7", "d4"]);
        store.touch(b"e", Some(100), || series(5));
        assert_eq!(keys(&store), ["a7", "d4", "e5"], "full again: b, least recent, goes");
        assert_eq!(store.slots.len(), 3, "no slot beyond max_keys");
    }

    #[test]
    fn without_expire_after_nothing_expires_and_no_deadlines_are_kept() {
        let mut store = Store::new(10, None);
        store.touch(b"a", Some(0), || series(1));
        store.expire(i64::MAX);
        assert_eq!(keys(&store), ["a1"]);
        assert_eq!(store.deadlines.len(), 0);
    }

    #[test]
    fn deadlines_left_by_evicted_keys_stay_bounded() {
        let mut store = expiring(5);
        for t in 0..10_000i64 {
            store.touch(&t.to_be_bytes(), Some(t), || series(1));
            assert!(store.deadlines.len() <= 2 * 5 + SLACK);
        }
        store.expire(10_005);
        assert_eq!(store.len(), 5, "9995 … 9999 are not before 9995");
        store.expire(10_010);
        assert_eq!(store.len(), 0);
    }

    /// With one key due per watermark, a sweep over all keys on each call would take
    /// 10^10 steps here; the heap takes a few per call.
    #[test]
    fn advancing_the_watermark_does_not_scan_every_key() {
        const KEYS: i64 = 100_000;
        let mut store = Store::new(KEYS as usize, Some(1));
        for t in 0..KEYS {
            store.touch(&t.to_be_bytes(), Some(t), || series(1));
        }
        for w in 1..=KEYS {
            store.expire(w);
            assert_eq!(store.len() as i64, KEYS - (w - 1));
        }
        store.expire(KEYS + 1);
        assert_eq!(store.len(), 0);
    }
}
