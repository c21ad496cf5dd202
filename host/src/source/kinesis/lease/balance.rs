//! Which leases to take, as pure decisions over what a scan of the table showed (KCL 2.x's
//! `LeaseTaker`, without clocks shared between workers):
//!
//! - A lease is **expired** when nobody owns it, or when its counter did not move for the
//!   failover time as *this* worker watched it (each scan notes when a counter last changed;
//!   a lease seen for the first time counts as renewed at that scan). No two clocks are
//!   compared.
//! - Only **live** leases count: not at `SHARD_END`, and every parent at `SHARD_END` (or gone
//!   from the table), so a child is never read before its parents are done.
//! - The **target** per worker is ceil(live leases / workers), the workers being the owners
//!   of unexpired leases and this one; `max_leases` caps it.
//! - Below target, a worker takes expired or unowned leases first. With none, it steals one
//!   lease at a time from the most loaded worker, when that one holds more than the target
//!   (or exactly the target while this one needs more than one).
//! - Leases are tried in an order of their own per worker (a hash of worker and key), so
//!   workers starting together mostly try different leases.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::item::Lease;

/// When each lease's counter was last seen to move.
#[derive(Debug, Default, Clone)]
pub struct Watch {
    seen: HashMap<String, (u64, u64)>,
}

impl Watch {
    /// Note a scan taken at `now_ms` (a monotonic clock of this worker).
    pub fn observe(&mut self, leases: &[Lease], now_ms: u64) {
        let mut seen = HashMap::with_capacity(leases.len());
        for l in leases {
            let since = match self.seen.get(&l.key) {
                Some(&(counter, since)) if counter == l.counter => since,
                _ => now_ms,
            };
            seen.insert(l.key.clone(), (l.counter, since));
        }
        self.seen = seen;
    }

    /// Whether `lease` is expired at `now_ms`.
    pub fn expired(&self, lease: &Lease, now_ms: u64, failover_ms: u64) -> bool {
        if lease.owner.is_none() {
            return true;
        }
        match self.seen.get(&lease.key) {
            Some(&(counter, since)) if counter == lease.counter => now_ms.saturating_sub(since) >= failover_ms,
            _ => false,
        }
    }
}

/// What this worker should do after a scan.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Choice {
    /// Expired or unowned leases to take, in order.
    pub take: Vec<String>,
    /// A lease to steal from a worker holding more than its share.
    pub steal: Option<String>,
    /// The target number of leases per worker.
    pub target: usize,
    /// The workers counted (this one included).
    pub workers: usize,
}

/// The settings a choice depends on.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    /// This worker's id.
    pub me: &'a str,
    /// The failover time, ms.
    pub failover_ms: u64,
    /// The most leases this worker holds (0: no cap).
    pub max_leases: usize,
}

/// Whether a lease may be read now: not ended, and every parent ended or gone.
pub fn live(lease: &Lease, by_key: &BTreeMap<&str, &Lease>) -> bool {
    !lease.ended()
        && lease
            .parents
            .iter()
            .all(|p| by_key.get(p.as_str()).is_none_or(|parent| parent.ended()))
}

/// A worker's own order of trying leases.
fn order(me: &str, key: &str) -> u64 {
    // FNV-1a: stable across runs and platforms.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in me.bytes().chain([0]).chain(key.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Choose what to take, given a scan, the watch, and the leases this worker holds.
pub fn choose(leases: &[Lease], watch: &Watch, held: &BTreeSet<String>, rules: Rules<'_>, now_ms: u64) -> Choice {
    let by_key: BTreeMap<&str, &Lease> = leases.iter().map(|l| (l.key.as_str(), l)).collect();
    let live: Vec<&Lease> = leases.iter().filter(|l| live(l, &by_key)).collect();
    // Held by this worker (as the table says, and as we know).
    let mine = live
        .iter()
        .filter(|l| held.contains(&l.key) && l.owner.as_deref() == Some(rules.me))
        .count();
    let mut available: Vec<&Lease> = live
        .iter()
        .copied()
        .filter(|l| !held.contains(&l.key))
        .filter(|l| watch.expired(l, now_ms, rules.failover_ms) || l.owner.as_deref() == Some(rules.me))
        .collect();
    available.sort_by_key(|l| order(rules.me, &l.key));
    let mut counts: BTreeMap<&str, Vec<&Lease>> = BTreeMap::new();
    for l in &live {
        if let Some(owner) = l.owner.as_deref()
            && owner != rules.me
            && !available.iter().any(|a| a.key == l.key)
        {
            counts.entry(owner).or_default().push(l);
        }
    }
    let workers = counts.len() + 1;
    let n = live.len();
    let mut target = if n == 0 { 0 } else { n.div_ceil(workers) };
    if rules.max_leases > 0 {
        target = target.min(rules.max_leases);
    }
    let mut choice = Choice {
        target,
        workers,
        ..Choice::default()
    };
    let needed = target.saturating_sub(mine);
    if needed == 0 {
        return choice;
    }
    if !available.is_empty() {
        choice.take = available.iter().take(needed).map(|l| l.key.clone()).collect();
        return choice;
    }
    // The most loaded other worker (ties: the smallest id, so every worker agrees).
    let Some((_, theirs)) = counts
        .iter()
        .max_by(|a, b| a.1.len().cmp(&b.1.len()).then(b.0.cmp(a.0)))
    else {
        return choice;
    };
    let over = theirs.len() > target || (theirs.len() == target && needed > 1);
    if over {
        choice.steal = theirs
            .iter()
            .min_by_key(|l| order(rules.me, &l.key))
            .map(|l| l.key.clone());
    }
    choice
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(key: &str, owner: Option<&str>, counter: u64) -> Lease {
        let mut l = Lease::new(key, "TRIM_HORIZON", Vec::new());
        l.owner = owner.map(str::to_owned);
        l.counter = counter;
        l
    }

    fn rules(me: &str) -> Rules<'_> {
        Rules {
            me,
            failover_ms: 10_000,
            max_leases: 0,
        }
    }

    fn shards(n: usize, owner: Option<&str>) -> Vec<Lease> {
        (0..n).map(|i| lease(&format!("shardId-{i:012}"), owner, 1)).collect()
    }

    #[test]
    fn two_fresh_workers_split_eight_unowned_leases_four_and_four() {
        let mut leases = shards(8, None);
        let watch = Watch::default();
        let a = choose(&leases, &watch, &BTreeSet::new(), rules("a"), 0);
        assert_eq!((a.target, a.take.len()), (8, 8), "alone, a takes every lease");
        // a took four before b's scan (say a's takes raced b's); b then sees a as a worker.
        for l in leases.iter_mut().take(4) {
            l.owner = Some("a".into());
            l.counter = 2;
        }
        let mut watch = Watch::default();
        watch.observe(&leases, 0);
        let b = choose(&leases, &watch, &BTreeSet::new(), rules("b"), 0);
        assert_eq!((b.workers, b.target, b.take.len()), (2, 4, 4));
        assert!(
            b.take
                .iter()
                .all(|k| leases.iter().any(|l| &l.key == k && l.owner.is_none()))
        );
    }

    #[test]
    fn a_lease_whose_counter_stood_still_for_the_failover_time_expires_by_our_clock() {
        let leases = vec![lease("s-1", Some("dead"), 5), lease("s-2", Some("me"), 3)];
        let held = BTreeSet::from(["s-2".to_owned()]);
        let mut watch = Watch::default();
        watch.observe(&leases, 1_000);
        assert!(choose(&leases, &watch, &held, rules("me"), 1_000).take.is_empty());
        watch.observe(&leases, 10_999);
        assert!(!watch.expired(&leases[0], 10_999, 10_000));
        watch.observe(&leases, 11_000);
        assert_eq!(choose(&leases, &watch, &held, rules("me"), 11_000).take, vec!["s-1"]);
        // A counter that moved starts the wait again.
        let mut moved = leases.clone();
        moved[0].counter = 6;
        watch.observe(&moved, 11_500);
        assert!(!watch.expired(&moved[0], 21_000, 10_000));
        assert!(watch.expired(&moved[0], 21_500, 10_000));
    }

    #[test]
    fn a_third_worker_steals_one_lease_at_a_time_toward_three_three_two() {
        let mut leases = shards(8, Some("a"));
        for l in leases.iter_mut().skip(4) {
            l.owner = Some("b".into());
        }
        let mut watch = Watch::default();
        watch.observe(&leases, 0);
        let c = choose(&leases, &watch, &BTreeSet::new(), rules("c"), 0);
        assert_eq!((c.workers, c.target), (3, 3));
        assert!(c.take.is_empty());
        let stolen = c.steal.expect("c steals");
        let victim = leases.iter_mut().find(|l| l.key == stolen).expect("lease");
        assert_eq!(victim.owner.as_deref(), Some("a"), "ties go to the smallest worker id");
        victim.owner = Some("c".into());
        let held = BTreeSet::from([stolen]);
        let c = choose(&leases, &watch, &held, rules("c"), 0);
        let stolen = c.steal.expect("c steals again");
        assert_eq!(
            leases.iter().find(|l| l.key == stolen).and_then(|l| l.owner.as_deref()),
            Some("b")
        );
        // At 3/3/2 nobody steals: c (2) needs one, and the others hold exactly the target.
        let victim = leases.iter_mut().find(|l| l.key == stolen).expect("lease");
        victim.owner = Some("c".into());
        let held_c: BTreeSet<String> = leases
            .iter()
            .filter(|l| l.owner.as_deref() == Some("c"))
            .map(|l| l.key.clone())
            .collect();
        assert_eq!(held_c.len(), 2);
        assert_eq!(choose(&leases, &watch, &held_c, rules("c"), 0).steal, None);
        let held_a: BTreeSet<String> = leases
            .iter()
            .filter(|l| l.owner.as_deref() == Some("a"))
            .map(|l| l.key.clone())
            .collect();
        assert_eq!(
            choose(&leases, &watch, &held_a, rules("a"), 0),
            Choice {
                target: 3,
                workers: 3,
                ..Choice::default()
            }
        );
    }

    #[test]
    fn a_child_is_live_only_once_every_parent_is_at_shard_end() {
        let mut parent = lease("p", Some("a"), 1);
        let mut other = lease("q", Some("a"), 1);
        let child = Lease::new("c", "TRIM_HORIZON", vec!["p".into(), "q".into()]);
        let orphan = Lease::new("o", "TRIM_HORIZON", vec!["gone".into()]);
        let by_key =
            |ls: &[&Lease]| -> BTreeMap<String, Lease> { ls.iter().map(|l| (l.key.clone(), (*l).clone())).collect() };
        let check = |all: &BTreeMap<String, Lease>, key: &str| {
            let refs: BTreeMap<&str, &Lease> = all.iter().map(|(k, l)| (k.as_str(), l)).collect();
            live(&all[key], &refs)
        };
        let all = by_key(&[&parent, &other, &child, &orphan]);
        assert!(
            !check(&all, "c") && check(&all, "o"),
            "a parent gone from the table holds nothing back"
        );
        parent.checkpoint = "SHARD_END".into();
        let all = by_key(&[&parent, &other, &child]);
        assert!(!check(&all, "c") && !check(&all, "p"));
        other.checkpoint = "SHARD_END".into();
        let all = by_key(&[&parent, &other, &child]);
        assert!(check(&all, "c"));
    }

    #[test]
    fn max_leases_caps_the_target_and_our_own_leases_from_an_earlier_run_come_first() {
        let leases = shards(6, None);
        let capped = Rules {
            max_leases: 2,
            ..rules("a")
        };
        assert_eq!(
            choose(&leases, &Watch::default(), &BTreeSet::new(), capped, 0)
                .take
                .len(),
            2
        );
        // A lease the table says is ours but this process does not hold (a restart with the
        // same worker id) is taken back at once, without waiting for it to expire.
        let mut leases = shards(2, Some("b"));
        leases[0].owner = Some("a".into());
        let mut watch = Watch::default();
        watch.observe(&leases, 0);
        let a = choose(&leases, &watch, &BTreeSet::new(), rules("a"), 0);
        assert_eq!(a.take, vec![leases[0].key.clone()]);
    }
}
