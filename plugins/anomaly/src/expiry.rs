//! Which keys may be due to expire: a lazy min-heap of last-seen times, so advancing the
//! watermark costs nothing while no key can be due, however many keys are held.
//!
//! Every key held has exactly one live [`Deadline`], whose `seen` is at most the key's
//! latest event time (`None`, ordered first, while the key has none). Seeing a key again
//! does not touch the heap: its deadline merely becomes a lower bound. When the watermark
//! passes a deadline the store pops it and either forgets the key or pushes it back at the
//! key's actual time, so each row costs at most one push, amortised.
//!
//! A deadline names the key by slot and by the stamp the slot got when the key moved in;
//! a key forgotten to make room (`max_keys`) leaves its deadline behind, stale, to be
//! skipped when popped or dropped when the heap is rebuilt.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A key's place in the heap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline {
    /// At most the key's latest event time; `None` if it had none when pushed.
    pub seen: Option<i64>,
    /// The key's slot in the store.
    pub slot: usize,
    /// The slot's stamp when the key moved in.
    pub stamp: u64,
}

/// The deadlines, earliest first.
#[derive(Debug, Default)]
pub struct Deadlines {
    heap: BinaryHeap<Reverse<Deadline>>,
}

impl Deadlines {
    /// How many deadlines are held, stale ones included.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn push(&mut self, deadline: Deadline) {
        self.heap.push(Reverse(deadline));
    }

    /// The earliest deadline if it is unknown or before `cutoff`, removed.
    pub fn pop_before(&mut self, cutoff: i64) -> Option<Deadline> {
        let Reverse(earliest) = self.heap.peek()?;
        if earliest.seen.is_some_and(|seen| seen >= cutoff) {
            return None;
        }
        self.heap.pop().map(|Reverse(d)| d)
    }

    /// Replace every deadline with `live` (one per key held).
    pub fn rebuild(&mut self, live: impl Iterator<Item = Deadline>) {
        self.heap = live.map(Reverse).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seen: Option<i64>, slot: usize) -> Deadline {
        Deadline { seen, slot, stamp: 0 }
    }

    #[test]
    fn unknown_times_come_first_then_the_earliest_before_the_cutoff() {
        let mut d = Deadlines::default();
        for (seen, slot) in [(Some(30), 0), (None, 1), (Some(10), 2), (Some(20), 3)] {
            d.push(at(seen, slot));
        }
        assert_eq!(d.pop_before(i64::MIN), Some(at(None, 1)), "unknown whatever the cutoff");
        assert_eq!(d.pop_before(10), None, "10 is not before 10");
        assert_eq!(d.pop_before(21), Some(at(Some(10), 2)));
        assert_eq!(d.pop_before(21), Some(at(Some(20), 3)));
        assert_eq!(d.pop_before(21), None);
        assert_eq!(d.len(), 1);
        d.rebuild([at(Some(5), 7)].into_iter());
        assert_eq!(d.pop_before(i64::MAX), Some(at(Some(5), 7)));
        assert_eq!(d.pop_before(i64::MAX), None);
    }
}
