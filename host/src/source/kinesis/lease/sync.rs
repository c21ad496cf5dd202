//! A lease for every shard that is to be read (KCL's shard sync), created by whichever
//! worker lists the stream first (a conditional put: the others' puts are refused).
//!
//! Which shards get a lease, and at which checkpoint:
//! - A shard with a parent that has a lease: `TRIM_HORIZON`, whatever the first run's start
//!   was, so nothing put after the parent is missed (KCL's rule for children).
//! - Otherwise the first run's `start`: `TRIM_HORIZON` or `AT_TIMESTAMP` for every shard, and
//!   `LATEST` for open shards only (a shard closed before the start has nothing to read).
//!
//! A shard above one that has a lease (a parent, a grandparent) is never leased again: its
//! lease was deleted once its children started from it (`cleanup`).
//!
//! Parents are created before their children, so a scan never shows a child whose parent is
//! still to come (which would make the child readable too early).

use std::collections::BTreeSet;
use std::sync::atomic::AtomicBool;

use super::LeaseError;
use super::item::Lease;
use super::table::LeaseTable;
use crate::config::{KinesisSourceConfig, KinesisStart};
use crate::source::kinesis::coordinator::list_shards;
use crate::source::kinesis::lineage::ShardInfo;
use crate::source::kinesis::shard::StreamRef;

/// The leases to create, parents first, given the listing and the leases that exist.
pub fn plan(listed: &[ShardInfo], existing: &BTreeSet<String>, start: KinesisStart) -> Vec<Lease> {
    let mut have: BTreeSet<String> = existing.clone();
    let listed_ids: BTreeSet<&str> = listed.iter().map(|s| s.id.as_str()).collect();
    // Shards above a leased shard were read and their leases cleaned up: not leased again.
    let mut above: BTreeSet<&str> = BTreeSet::new();
    let mut walk: Vec<&str> = existing.iter().map(String::as_str).collect();
    while let Some(id) = walk.pop() {
        for s in listed.iter().filter(|s| s.id == id) {
            for p in &s.parents {
                if above.insert(p.as_str()) {
                    walk.push(p.as_str());
                }
            }
        }
    }
    let mut created = Vec::new();
    let mut pending: Vec<&ShardInfo> = listed
        .iter()
        .filter(|s| !have.contains(&s.id) && !above.contains(s.id.as_str()))
        .collect();
    // Repeated passes: a shard waits for its listed parents to be decided first (a shard
    // above a leased one is decided: it gets no lease).
    let mut decided: BTreeSet<String> = have.clone();
    decided.extend(above.iter().map(|s| (*s).to_owned()));
    while !pending.is_empty() {
        let before = pending.len();
        pending.retain(|s| {
            let ready = s
                .parents
                .iter()
                .all(|p| decided.contains(p) || !listed_ids.contains(p.as_str()));
            if !ready {
                return true;
            }
            decided.insert(s.id.clone());
            let leased_parent = s.parents.iter().any(|p| have.contains(p));
            let checkpoint = if leased_parent {
                Some("TRIM_HORIZON")
            } else {
                match start {
                    KinesisStart::TrimHorizon => Some("TRIM_HORIZON"),
                    KinesisStart::AtTimestamp(_) => Some("AT_TIMESTAMP"),
                    KinesisStart::Latest if s.closed => None,
                    KinesisStart::Latest => Some("LATEST"),
                }
            };
            if let Some(cp) = checkpoint {
                have.insert(s.id.clone());
                let mut lease = Lease::new(s.id.clone(), cp, s.parents.clone());
                lease.hash_range = s.hash_range;
                created.push(lease);
            }
            false
        });
        if pending.len() == before {
            // A cycle cannot come from Kinesis; create the rest as they are rather than spin.
            for s in pending.drain(..) {
                let mut lease = Lease::new(s.id.clone(), "TRIM_HORIZON", s.parents.clone());
                lease.hash_range = s.hash_range;
                created.push(lease);
            }
        }
    }
    created
}

/// List the stream and create the leases it lacks; how many were created by this call.
pub async fn run(
    kinesis: &aws_sdk_kinesis::Client,
    table: &LeaseTable,
    settings: &KinesisSourceConfig,
    stop: &AtomicBool,
) -> Result<usize, LeaseError> {
    let listed = list_shards(kinesis, &StreamRef::of(&settings.stream), stop).await?;
    let existing: BTreeSet<String> = table.scan().await?.into_iter().map(|l| l.key).collect();
    let mut created = 0;
    for lease in plan(&listed, &existing, settings.start) {
        if table.create(&lease).await? {
            tracing::info!(shard = %lease.key, checkpoint = %lease.checkpoint, "Created a lease.");
            created += 1;
        }
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::kinesis::lineage::tests::shard;

    fn keys(leases: &[Lease]) -> Vec<(String, String)> {
        leases.iter().map(|l| (l.key.clone(), l.checkpoint.clone())).collect()
    }

    #[test]
    fn a_first_sync_creates_parents_before_children_at_the_start_position() {
        let listed = vec![shard("c", &["p"], false), shard("p", &[], true), shard("q", &[], false)];
        let trim = plan(&listed, &BTreeSet::new(), KinesisStart::TrimHorizon);
        assert_eq!(
            keys(&trim),
            vec![
                ("p".into(), "TRIM_HORIZON".into()),
                ("q".into(), "TRIM_HORIZON".into()),
                ("c".into(), "TRIM_HORIZON".into())
            ]
        );
        assert_eq!(trim[2].parents, vec!["p".to_owned()]);
        let latest = plan(&listed, &BTreeSet::new(), KinesisStart::Latest);
        assert_eq!(
            keys(&latest),
            vec![("q".into(), "LATEST".into()), ("c".into(), "LATEST".into())]
        );
    }

    #[test]
    fn a_child_of_a_leased_shard_starts_at_its_trim_horizon_and_existing_leases_are_kept() {
        let listed = vec![
            shard("p", &[], true),
            shard("c1", &["p"], false),
            shard("c2", &["p"], false),
        ];
        let existing = BTreeSet::from(["p".to_owned()]);
        assert_eq!(
            keys(&plan(&listed, &existing, KinesisStart::Latest)),
            vec![
                ("c1".into(), "TRIM_HORIZON".into()),
                ("c2".into(), "TRIM_HORIZON".into())
            ]
        );
        let all = BTreeSet::from(["p".to_owned(), "c1".to_owned(), "c2".to_owned()]);
        assert!(plan(&listed, &all, KinesisStart::TrimHorizon).is_empty());
        // The parent's lease was cleaned up after its children started: not made again.
        let cleaned = BTreeSet::from(["c1".to_owned(), "c2".to_owned()]);
        assert!(plan(&listed, &cleaned, KinesisStart::TrimHorizon).is_empty());
        // Nor a grandparent above a merge of cleaned-up parents.
        let mut deeper = listed.clone();
        deeper.push(shard("g", &[], true));
        deeper[0] = shard("p", &["g"], true);
        deeper.push(shard("m", &["c1", "c2"], false));
        let only_m = BTreeSet::from(["m".to_owned()]);
        assert!(plan(&deeper, &only_m, KinesisStart::TrimHorizon).is_empty());
        // A parent closed before a LATEST start gets no lease; once one child has one, the
        // other still starts at LATEST, its parent decided (not at TRIM_HORIZON by default).
        let one_child = BTreeSet::from(["c1".to_owned()]);
        assert_eq!(
            keys(&plan(&listed, &one_child, KinesisStart::Latest)),
            vec![("c2".into(), "LATEST".into())]
        );
    }
}
