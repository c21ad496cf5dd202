//! Parents before children (KDS-17..19, KDS-21): which shards may be read now, where a shard
//! without a position starts, and when a closed shard may leave the checkpoint. Pure: the
//! coordinator asks, with what it listed and what it knows.

use std::collections::{BTreeMap, BTreeSet};

use super::StartAt;
use crate::config::KinesisStart;

/// A shard as `ListShards` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    /// `shardId-…`.
    pub id: String,
    /// `ParentShardId` and `AdjacentParentShardId` (a merge has two).
    pub parents: Vec<String>,
    /// It has an ending sequence number: closed by a split or merge.
    pub closed: bool,
    /// Its hash key range, first and last (MD5 of a partition key, as a 128-bit number);
    /// `None` when not known (a child named by its parent's last response).
    pub hash_range: Option<(u128, u128)>,
}

/// What the coordinator knows of the shards.
#[derive(Debug, Default, Clone)]
pub struct Known {
    /// Shards with a position (from the checkpoint, or started in this run).
    pub started: BTreeSet<String>,
    /// Shards read to their end (the checkpoint says so, or their reader did).
    pub ended: BTreeSet<String>,
}

impl Known {
    /// Whether `shard` needs no reading: read to its end, or one of its descendants has
    /// started (then it was read to its end before and has left the checkpoint).
    pub fn done(&self, shard: &str, listed: &[ShardInfo]) -> bool {
        if self.ended.contains(shard) {
            return true;
        }
        let mut frontier = vec![shard.to_owned()];
        let mut seen = BTreeSet::new();
        while let Some(s) = frontier.pop() {
            for child in listed.iter().filter(|c| c.parents.contains(&s)) {
                if self.started.contains(&child.id) {
                    return true;
                }
                if seen.insert(child.id.clone()) {
                    frontier.push(child.id.clone());
                }
            }
        }
        false
    }
}

/// The shards of `owned` to start now, each with where it starts (for those without a
/// position). On a first run (`first`), `start` applies to every shard chosen: `latest` takes
/// only the open shards (KDS-21: a snapshot at the start position); `trim_horizon` and
/// `at_timestamp` begin with the oldest shards still listed and walk down the lineage (a
/// shard closed before the timestamp yields nothing and ends at once). Later, a child starts once all its parents
/// are done, from its trim horizon (KCL's rule, so nothing after the parent is missed), or at
/// the timestamp when the run started at one.
pub fn ready(
    listed: &[ShardInfo],
    owned: &BTreeSet<String>,
    known: &Known,
    start: KinesisStart,
    first: bool,
    now_ms: i64,
) -> Vec<(String, StartAt)> {
    let ids: BTreeSet<&str> = listed.iter().map(|s| s.id.as_str()).collect();
    let snapshot_open = first && matches!(start, KinesisStart::Latest);
    listed
        .iter()
        .filter(|s| owned.contains(&s.id) && !known.started.contains(&s.id) && !known.done(&s.id, listed))
        .filter(|s| {
            if snapshot_open {
                !s.closed
            } else {
                // A parent no longer listed has aged out: it does not block (KDS-18).
                s.parents
                    .iter()
                    .all(|p| !ids.contains(p.as_str()) || known.done(p, listed))
            }
        })
        .map(|s| {
            let at = match start {
                KinesisStart::AtTimestamp(t) => StartAt::AtTimestamp(t),
                KinesisStart::Latest if first => StartAt::Latest { opened_ms: now_ms },
                _ => StartAt::TrimHorizon,
            };
            (s.id.clone(), at)
        })
        .collect()
}

/// The parents of `shard` that may leave the checkpoint once it starts: those all of whose
/// children will then have started.
pub fn retired_by(shard: &str, listed: &[ShardInfo], known: &Known) -> Vec<String> {
    let Some(info) = listed.iter().find(|s| s.id == shard) else {
        return Vec::new();
    };
    info.parents
        .iter()
        .filter(|p| known.ended.contains(p.as_str()))
        .filter(|p| {
            listed
                .iter()
                .filter(|c| c.parents.contains(p))
                .all(|c| c.id == shard || known.started.contains(&c.id))
        })
        .cloned()
        .collect()
}

/// Children named by a shard's last response, merged into the listing (so they can start
/// before the next `ListShards`).
pub fn add_children(listed: &mut Vec<ShardInfo>, parent: &str, children: &BTreeMap<String, Vec<String>>) {
    for (id, parents) in children {
        if !listed.iter().any(|s| &s.id == id) {
            listed.push(ShardInfo {
                id: id.clone(),
                parents: if parents.is_empty() {
                    vec![parent.to_owned()]
                } else {
                    parents.clone()
                },
                closed: false,
                hash_range: None,
            });
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A listed shard.
    pub(crate) fn shard(id: &str, parents: &[&str], closed: bool) -> ShardInfo {
        ShardInfo {
            id: id.into(),
            parents: parents.iter().map(|p| (*p).to_owned()).collect(),
            closed,
            hash_range: None,
        }
    }

    /// 0 split into 1 and 2; 1 and 2 merged into 3; 4 an unrelated open shard.
    fn stream() -> Vec<ShardInfo> {
        vec![
            shard("0", &[], true),
            shard("1", &["0"], true),
            shard("2", &["0"], true),
            shard("3", &["1", "2"], false),
            shard("4", &[], false),
        ]
    }

    fn all(listed: &[ShardInfo]) -> BTreeSet<String> {
        listed.iter().map(|s| s.id.clone()).collect()
    }

    fn ids(r: &[(String, StartAt)]) -> Vec<&str> {
        r.iter().map(|(s, _)| s.as_str()).collect()
    }

    #[test]
    fn kds_18_a_first_run_from_the_trim_horizon_starts_with_the_oldest_shards_only() {
        let listed = stream();
        let r = ready(
            &listed,
            &all(&listed),
            &Known::default(),
            KinesisStart::TrimHorizon,
            true,
            9,
        );
        assert_eq!(ids(&r), ["0", "4"]);
        assert!(r.iter().all(|(_, at)| *at == StartAt::TrimHorizon));
    }

    #[test]
    fn kds_21_a_first_run_at_latest_takes_the_open_shards() {
        let listed = stream();
        let r = ready(&listed, &all(&listed), &Known::default(), KinesisStart::Latest, true, 9);
        assert_eq!(ids(&r), ["3", "4"]);
        assert!(r.iter().all(|(_, at)| *at == StartAt::Latest { opened_ms: 9 }));
    }

    #[test]
    fn kds_18_children_wait_for_every_parent_then_start_from_their_trim_horizon() {
        let listed = stream();
        let mut known = Known::default();
        known.started.extend(["0".to_owned(), "4".to_owned()]);
        assert!(ready(&listed, &all(&listed), &known, KinesisStart::TrimHorizon, false, 9).is_empty());
        known.ended.insert("0".into());
        let r = ready(&listed, &all(&listed), &known, KinesisStart::Latest, false, 9);
        assert_eq!(ids(&r), ["1", "2"]);
        assert!(
            r.iter().all(|(_, at)| *at == StartAt::TrimHorizon),
            "children from the trim horizon"
        );
        known.started.extend(["1".to_owned(), "2".to_owned()]);
        known.ended.insert("1".into());
        assert!(
            ready(&listed, &all(&listed), &known, KinesisStart::TrimHorizon, false, 9).is_empty(),
            "a merge waits for both parents"
        );
        known.ended.insert("2".into());
        assert_eq!(
            ids(&ready(
                &listed,
                &all(&listed),
                &known,
                KinesisStart::TrimHorizon,
                false,
                9,
            )),
            ["3"]
        );
    }

    #[test]
    fn kds_18_a_parent_that_aged_out_does_not_block_its_child() {
        let listed = vec![shard("5", &["gone"], false)];
        let r = ready(
            &listed,
            &all(&listed),
            &Known::default(),
            KinesisStart::TrimHorizon,
            false,
            9,
        );
        assert_eq!(ids(&r), ["5"]);
    }

    #[test]
    fn a_closed_shard_that_left_the_checkpoint_is_known_done_by_its_started_child() {
        // The checkpoint holds 3 only: 0, 1 and 2 were read to their ends and retired.
        let listed = stream();
        let mut known = Known::default();
        known.started.extend(["3".to_owned(), "4".to_owned()]);
        assert!(known.done("0", &listed) && known.done("1", &listed) && known.done("2", &listed));
        assert!(ready(&listed, &all(&listed), &known, KinesisStart::TrimHorizon, false, 9).is_empty());
    }

    #[test]
    fn a_parent_retires_when_its_last_child_starts() {
        let listed = stream();
        let mut known = Known::default();
        known.started.insert("0".into());
        known.ended.insert("0".into());
        assert_eq!(
            retired_by("1", &listed, &known),
            Vec::<String>::new(),
            "2 has not started"
        );
        known.started.insert("1".into());
        assert_eq!(retired_by("2", &listed, &known), ["0"]);
        known.ended.extend(["1".to_owned(), "2".to_owned()]);
        known.started.insert("2".into());
        assert_eq!(retired_by("3", &listed, &known), ["1", "2"]);
    }

    #[test]
    fn only_owned_shards_are_started() {
        let listed = stream();
        let owned: BTreeSet<String> = ["4".to_owned()].into();
        let r = ready(&listed, &owned, &Known::default(), KinesisStart::TrimHorizon, true, 9);
        assert_eq!(ids(&r), ["4"]);
    }
}
