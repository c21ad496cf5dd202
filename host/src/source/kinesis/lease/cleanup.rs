//! Which ended leases can go (KCL's lease cleanup): a lease at `SHARD_END` is kept until
//! every child of its shard has a lease that has started from it, since a child's first
//! checkpoint is where it takes its parents' final state and settles their last files.
//! After that nothing reads the parent's lease: a child whose parents are gone from the
//! table is readable ([`super::balance`]), and the shard sync does not lease a closed shard
//! again once a descendant of it holds a lease ([`super::sync`]).

use super::item::Lease;

/// The ended leases in `leases` (a scan of the whole table) that can be deleted.
pub fn done(leases: &[Lease]) -> Vec<&Lease> {
    leases
        .iter()
        .filter(|parent| parent.ended())
        .filter(|parent| {
            let children: Vec<&Lease> = leases.iter().filter(|l| l.parents.contains(&parent.key)).collect();
            // A merge's child has two parents, and each of them that one child; a split's
            // parent has two children, each with that one parent.
            let expected = if children.iter().any(|c| c.parents.len() > 1) {
                1
            } else {
                2
            };
            children.len() == expected && children.iter().all(|c| started(c))
        })
        .collect()
}

/// Whether a child's lease has checkpointed: sluice's checkpoint (which starts from the
/// parents' state) or, for a lease KCL wrote, a sequence number or its own end.
fn started(child: &Lease) -> bool {
    child.sluice.is_some() || !matches!(child.checkpoint.as_str(), "TRIM_HORIZON" | "LATEST" | "AT_TIMESTAMP")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(key: &str, checkpoint: &str, parents: &[&str], sluice: bool) -> Lease {
        let mut l = Lease::new(key, checkpoint, parents.iter().map(|p| (*p).to_owned()).collect());
        l.sluice = sluice.then(|| b"{}".to_vec());
        l
    }

    fn keys(leases: &[Lease]) -> Vec<&str> {
        done(leases).iter().map(|l| l.key.as_str()).collect()
    }

    #[test]
    fn a_split_parent_goes_once_both_children_started_from_it() {
        let mut t = vec![
            lease("p", "SHARD_END", &[], true),
            lease("c1", "TRIM_HORIZON", &["p"], false),
        ];
        assert!(keys(&t).is_empty(), "one child not listed yet");
        t.push(lease("c2", "TRIM_HORIZON", &["p"], false));
        assert!(keys(&t).is_empty(), "neither child has started");
        t[1] = lease("c1", "4961", &["p"], true);
        assert!(keys(&t).is_empty(), "c2 has not started");
        t[2] = lease("c2", "SHARD_END", &["p"], true);
        assert_eq!(keys(&t), ["p"]);
    }

    #[test]
    fn merged_parents_go_once_their_child_started_and_open_shards_never() {
        let t = vec![
            lease("a", "SHARD_END", &[], true),
            lease("b", "SHARD_END", &[], true),
            lease("m", "TRIM_HORIZON", &["a", "b"], false),
            lease("open", "4961", &[], true),
        ];
        assert!(keys(&t).is_empty());
        let mut t = t;
        // A child KCL checkpointed counts as started.
        t[2] = lease("m", "4962", &["a", "b"], false);
        assert_eq!(keys(&t), ["a", "b"]);
    }
}
