//! The open windows: one group of accumulators per window and key, which windows are due
//! at a watermark, and forgetting them once past their lateness.
//!
//! Windows are kept in firing order (by end, then start), so due and expired windows are a
//! prefix. Session windows are also indexed per key (start → end), to find the sessions a
//! new element touches; the sessions of one key never touch each other. Nothing is kept for
//! a window once it expired, nor for a key without windows, so the state is bounded by the
//! keys and windows that can still receive rows. Windows with changed groups are tracked
//! apart, so firing does not rescan the windows kept only for their allowed lateness.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::BuildHasherDefault;

use rustc_hash::FxHasher;

use crate::accumulate::Acc;
use crate::value::Value;
use crate::window::Bounds;

/// A hash map with a fixed, fast hasher (Fx): every run does the same work, and a per-row
/// lookup costs a few nanoseconds. Not flood-resistant, which a sandboxed component with a
/// CPU budget can afford.
pub type FixedMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// An encoded group key (see [`crate::key`]).
pub type Key = Vec<u8>;

/// The accumulators of one window and key.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// One per aggregate.
    pub accs: Vec<Acc>,
    /// Whether it changed since it last fired (or never fired).
    pub dirty: bool,
}

/// One result row: a window, a key and the aggregate values.
#[derive(Debug, Clone, PartialEq)]
pub struct Fired {
    pub bounds: Bounds,
    pub key: Key,
    pub results: Vec<Option<Value>>,
}

/// The open windows of one transform instance.
#[derive(Debug, Default)]
pub struct Store {
    windows: BTreeMap<Bounds, FixedMap<Key, Group>>,
    /// Per key, its session windows as start → end; empty unless windows are sessions.
    sessions: FixedMap<Key, BTreeMap<i64, i64>>,
    /// Windows that may hold changed groups, so that firing skips the windows kept only
    /// for their lateness. May name windows merged away since.
    changed: BTreeSet<Bounds>,
}

impl Store {
    /// The group of `key` in the tumbling or hopping window `bounds`, created with `new`
    /// if absent, marked changed for the caller to update.
    pub fn group(&mut self, bounds: Bounds, key: &[u8], new: impl FnOnce() -> Vec<Acc>) -> &mut Group {
        self.changed.insert(bounds);
        let groups = self.windows.entry(bounds).or_default();
        if !groups.contains_key(key) {
            groups.insert(
                key.to_vec(),
                Group {
                    accs: new(),
                    dirty: false,
                },
            );
        }
        let group = groups.get_mut(key).unwrap_or_else(|| unreachable!("inserted above"));
        group.dirty = true;
        group
    }

    /// The session of `key` covering `bounds` after merging every session of `key` that
    /// touches `bounds` (FL-03), created with `new` if none does, marked changed for the
    /// caller to update. Merged accumulators fold in start order.
    pub fn session(&mut self, key: &[u8], bounds: Bounds, new: impl FnOnce() -> Vec<Acc>) -> &mut Group {
        let index = match self.sessions.get_mut(key) {
            Some(index) => index,
            None => self.sessions.entry(key.to_vec()).or_default(),
        };
        // Ends grow with starts: scan back from the last session starting by `bounds.end`.
        let mut touching: Vec<Bounds> = index
            .range(..=bounds.end)
            .rev()
            .map(|(&start, &end)| Bounds::new(start, end))
            .take_while(|b| b.touches(bounds))
            .collect();
        touching.reverse();
        let merged = touching.iter().fold(bounds, |m, b| m.cover(*b));
        if touching != [merged] {
            let mut group: Option<Group> = None;
            for part in &touching {
                index.remove(&part.start);
                let Some(removed) = remove_group(&mut self.windows, *part, key) else {
                    continue;
                };
                match &mut group {
                    None => group = Some(removed),
                    Some(g) => g.accs.iter_mut().zip(removed.accs).for_each(|(a, b)| a.merge(b)),
                }
            }
            let group = group.unwrap_or_else(|| Group {
                accs: new(),
                dirty: false,
            });
            index.insert(merged.start, merged.end);
            self.windows.entry(merged).or_default().insert(key.to_vec(), group);
        }
        self.changed.insert(merged);
        let groups = self.windows.get_mut(&merged);
        let group = groups.and_then(|g| g.get_mut(key));
        let group = group.unwrap_or_else(|| unreachable!("the merged session is stored above"));
        group.dirty = true;
        group
    }

    /// Take the results of every changed window that is due at `watermark` (FL-04), in
    /// order of end, start and key, and mark them unchanged.
    pub fn fire(&mut self, watermark: i64) -> Vec<Fired> {
        let mut fired = Vec::new();
        while let Some(&bounds) = self.changed.first() {
            if !bounds.is_due(watermark) {
                break;
            }
            self.changed.remove(&bounds);
            let Some(groups) = self.windows.get_mut(&bounds) else {
                continue;
            };
            let mut keys: Vec<Key> = groups.iter().filter(|(_, g)| g.dirty).map(|(k, _)| k.clone()).collect();
            keys.sort_unstable();
            for key in keys {
                let Some(group) = groups.get_mut(&key) else { continue };
                group.dirty = false;
                let results = group.accs.iter().map(Acc::result).collect();
                fired.push(Fired { bounds, key, results });
            }
        }
        fired
    }

    /// Forget every window past its cleanup time at `watermark` (FL-05), fired or not:
    /// call [`Store::fire`] first.
    pub fn expire(&mut self, watermark: i64, lateness: i64) {
        while let Some(entry) = self.windows.first_entry() {
            if !entry.key().is_expired(watermark, lateness) {
                break;
            }
            let (bounds, groups) = entry.remove_entry();
            self.changed.remove(&bounds);
            for key in groups.keys() {
                if let Some(index) = self.sessions.get_mut(key) {
                    index.remove(&bounds.start);
                    if index.is_empty() {
                        self.sessions.remove(key);
                    }
                }
            }
        }
    }

    /// Forget everything.
    pub fn clear(&mut self) {
        self.windows.clear();
        self.sessions.clear();
        self.changed.clear();
    }

    /// How many windows are open (for any key).
    pub fn window_count(&self) -> usize {
        self.windows.len()
    }

    /// How many (window, key) groups are held.
    pub fn group_count(&self) -> usize {
        self.windows.values().map(FixedMap::len).sum()
    }

    /// Every window and its groups, in firing order.
    pub fn windows(&self) -> impl Iterator<Item = (Bounds, &FixedMap<Key, Group>)> {
        self.windows.iter().map(|(b, g)| (*b, g))
    }

    /// Put back a group read from a snapshot; `false` if it is already there, or is a
    /// session that touches another session of its key.
    pub fn restore(&mut self, bounds: Bounds, key: Key, group: Group, session: bool) -> bool {
        if session {
            let index = self.sessions.entry(key.clone()).or_default();
            let before = index.range(..=bounds.start).next_back();
            let after = index.range(bounds.start..).next();
            let clash = [before, after]
                .into_iter()
                .flatten()
                .any(|(&s, &e)| Bounds::new(s, e).touches(bounds));
            if clash {
                return false;
            }
            index.insert(bounds.start, bounds.end);
        }
        let groups = self.windows.entry(bounds).or_default();
        if groups.contains_key(&key) {
            return false;
        }
        if group.dirty {
            self.changed.insert(bounds);
        }
        groups.insert(key, group);
        true
    }
}

impl Store {
    /// Every key held in any window, each once.
    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        let mut keys: Vec<&Key> = self.windows.values().flat_map(|g| g.keys()).collect();
        keys.sort_unstable();
        keys.dedup();
        keys.into_iter()
    }

    /// Forget the groups (and sessions) of every key for which `keep` is false.
    pub fn retain(&mut self, mut keep: impl FnMut(&Key) -> bool) {
        let mut dropped: BTreeSet<Key> = BTreeSet::new();
        for groups in self.windows.values_mut() {
            groups.retain(|k, _| {
                let kept = keep(k);
                if !kept {
                    dropped.insert(k.clone());
                }
                kept
            });
        }
        self.windows.retain(|_, groups| !groups.is_empty());
        for key in &dropped {
            self.sessions.remove(key);
        }
    }

    /// Add a group of another instance's state: a group this store holds too (the same
    /// window and key, or for sessions one touching it) gets the other's accumulators
    /// folded in, as two sessions that touch do.
    pub fn absorb(&mut self, bounds: Bounds, key: &[u8], group: Group, session: bool) {
        let Group { accs, dirty } = group;
        let mut incoming = Some(accs);
        let target = if session {
            self.session(key, bounds, || incoming.take().unwrap_or_default())
        } else {
            self.group(bounds, key, || incoming.take().unwrap_or_default())
        };
        match incoming {
            // Both held it: it changed.
            Some(accs) => {
                target.accs.iter_mut().zip(accs).for_each(|(a, b)| a.merge(b));
                target.dirty = true;
            }
            // New here: as it was there.
            None => target.dirty = dirty,
        }
    }

    /// Add every group of `other` (see [`Store::absorb`]), in window and key order.
    pub fn absorb_store(&mut self, other: &Store, session: bool) {
        for (bounds, groups) in other.windows() {
            let mut keys: Vec<&Key> = groups.keys().collect();
            keys.sort_unstable();
            for key in keys {
                self.absorb(bounds, key, groups[key].clone(), session);
            }
        }
    }
}

fn remove_group(windows: &mut BTreeMap<Bounds, FixedMap<Key, Group>>, bounds: Bounds, key: &[u8]) -> Option<Group> {
    let groups = windows.get_mut(&bounds)?;
    let group = groups.remove(key);
    if groups.is_empty() {
        windows.remove(&bounds);
    }
    group
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AggFn;
    use crate::value::ValueRef;

    fn count() -> Vec<Acc> {
        vec![Acc::new(AggFn::Count, None)]
    }

    /// Add one element at `t` to a session of `key` with gap 10.
    fn add(store: &mut Store, key: &[u8], t: i64) {
        let group = store.session(key, Bounds::new(t, t + 10), count);
        group.accs[0].update_row();
        group.dirty = true;
    }

    fn sessions(store: &Store) -> Vec<(i64, i64, Key, Option<Value>)> {
        store
            .windows()
            .flat_map(|(b, groups)| {
                let mut rows: Vec<_> = groups
                    .iter()
                    .map(|(k, g)| (b.start, b.end, k.clone(), g.accs[0].result()))
                    .collect();
                rows.sort_by(|a, b| a.2.cmp(&b.2));
                rows
            })
            .collect()
    }

    #[test]
    fn fl03_touching_sessions_merge_and_separate_ones_do_not() {
        let mut store = Store::default();
        add(&mut store, b"a", 0);
        add(&mut store, b"a", 10); // touches [0, 10)
        add(&mut store, b"b", 21);
        add(&mut store, b"a", 30); // [30, 40) is apart from [0, 20)
        let n = |v| Some(Value::Int(v));
        assert_eq!(
            sessions(&store),
            [
                (0, 20, b"a".to_vec(), n(2)),
                (21, 31, b"b".to_vec(), n(1)),
                (30, 40, b"a".to_vec(), n(1))
            ]
        );
        // An element between two sessions of `a` bridges them.
        add(&mut store, b"a", 20);
        assert_eq!(
            sessions(&store),
            [(21, 31, b"b".to_vec(), n(1)), (0, 40, b"a".to_vec(), n(4))]
        );
        assert_eq!(store.sessions[b"a".as_slice()].len(), 1);
        // An element inside a session changes nothing but its count.
        add(&mut store, b"a", 5);
        assert_eq!(sessions(&store)[1], (0, 40, b"a".to_vec(), n(5)));
        // An element before a session, touching it, extends it backwards.
        add(&mut store, b"b", 11);
        assert_eq!(sessions(&store)[0], (11, 31, b"b".to_vec(), n(2)));
    }

    #[test]
    fn merged_sessions_keep_every_accumulator() {
        let mut store = Store::default();
        let accs = || {
            vec![
                Acc::new(AggFn::Min, Some(crate::value::Kind::Int)),
                Acc::new(AggFn::Last, Some(crate::value::Kind::Int)),
            ]
        };
        for (t, v) in [(0, 5), (30, 1), (15, 9)] {
            let group = store.session(b"", Bounds::new(t, t + 15), accs);
            group.accs.iter_mut().for_each(|a| a.update(Some(ValueRef::Int(v)), t));
            group.dirty = true;
        }
        let fired = store.fire(i64::MAX);
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].bounds, Bounds::new(0, 45));
        assert_eq!(fired[0].results, [Some(Value::Int(1)), Some(Value::Int(1))]);
    }

    #[test]
    fn due_windows_fire_once_in_order_and_expire_after_lateness() {
        let mut store = Store::default();
        for (start, key) in [(10, b"b"), (0, b"z"), (0, b"a"), (20, b"a")] {
            let group = store.group(Bounds::new(start, start + 10), key, count);
            group.accs[0].update_row();
            group.dirty = true;
        }
        assert!(store.fire(8).is_empty());
        let fired = store.fire(19);
        let order: Vec<_> = fired.iter().map(|f| (f.bounds.start, f.key.clone())).collect();
        assert_eq!(order, [(0, b"a".to_vec()), (0, b"z".to_vec()), (10, b"b".to_vec())]);
        assert!(store.fire(19).is_empty(), "unchanged windows do not fire again");
        store.expire(13, 5);
        assert_eq!(store.window_count(), 3);
        store.expire(14, 5);
        assert_eq!(store.window_count(), 2);
        store.expire(24, 5);
        assert_eq!((store.window_count(), store.group_count()), (1, 1));
        store.expire(i64::MAX, 0);
        assert_eq!(store.window_count(), 0);
    }

    #[test]
    fn expired_sessions_leave_no_index_behind() {
        let mut store = Store::default();
        add(&mut store, b"a", 0);
        add(&mut store, b"b", 100);
        store.expire(9, 0);
        assert!(!store.sessions.contains_key(b"a".as_slice()));
        assert_eq!(store.sessions.len(), 1);
        store.clear();
        assert!(store.sessions.is_empty());
    }

    #[test]
    fn absorbed_groups_fold_into_held_ones_and_retain_forgets_keys() {
        let mut a = Store::default();
        let mut b = Store::default();
        for (in_a, key, start) in [(true, b"x", 0), (true, b"y", 0), (false, b"x", 0), (false, b"z", 10)] {
            let store = if in_a { &mut a } else { &mut b };
            let group = store.group(Bounds::new(start, start + 10), key, count);
            group.accs[0].update_row();
        }
        // `z` fired in `b` and is kept only for its lateness: it stays quiet in `a`.
        assert_eq!(b.fire(19).len(), 2);
        a.absorb_store(&b, false);
        let fired: Vec<(Key, Option<Value>)> = a
            .fire(i64::MAX)
            .into_iter()
            .map(|f| (f.key, f.results[0].clone()))
            .collect();
        assert_eq!(
            fired,
            [
                (b"x".to_vec(), Some(Value::Int(2))),
                (b"y".to_vec(), Some(Value::Int(1)))
            ]
        );
        assert_eq!(
            a.keys().cloned().collect::<Vec<_>>(),
            [b"x".to_vec(), b"y".to_vec(), b"z".to_vec()]
        );
        a.retain(|k| k.as_slice() != b"x");
        assert_eq!(a.keys().cloned().collect::<Vec<_>>(), [b"y".to_vec(), b"z".to_vec()]);
        a.retain(|_| false);
        assert_eq!(a.window_count(), 0);
    }

    #[test]
    fn absorbed_sessions_that_touch_merge() {
        let mut a = Store::default();
        add(&mut a, b"k", 0);
        let mut b = Store::default();
        add(&mut b, b"k", 5);
        add(&mut b, b"j", 50);
        a.absorb_store(&b, true);
        let n = |v| Some(Value::Int(v));
        assert_eq!(
            sessions(&a),
            [(0, 15, b"k".to_vec(), n(2)), (50, 60, b"j".to_vec(), n(1))]
        );
    }

    #[test]
    fn restoring_a_session_that_touches_another_is_refused() {
        let mut store = Store::default();
        let group = Group {
            accs: count(),
            dirty: true,
        };
        assert!(store.restore(Bounds::new(0, 10), b"k".to_vec(), group.clone(), true));
        assert!(!store.restore(Bounds::new(10, 20), b"k".to_vec(), group.clone(), true));
        assert!(store.restore(Bounds::new(10, 20), b"j".to_vec(), group.clone(), true));
        assert!(
            !store.restore(Bounds::new(0, 10), b"k".to_vec(), group, false),
            "already there"
        );
        assert_eq!(store.group_count(), 2);
    }
}
