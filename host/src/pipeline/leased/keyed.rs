//! A child shard's stage state, from its parents' states of that stage, through the
//! contract's optional `keyed-state` export.
//!
//! - A merge (two parents): the child restores one parent's state and absorbs the other's,
//!   so it holds both parents' keys.
//! - A split (one parent, two children): each key goes on in exactly one child. With a state
//!   keyed by one column, a key goes to the child whose hash key range holds the key's text
//!   hashed as Kinesis hashes a partition key (MD5 as a 128-bit number): exact when that
//!   column holds the records' partition key, the common case the lease design rests on. A
//!   key whose hash is outside the parent's range (it is not the partition key, or producers
//!   set explicit hash keys) goes to the lower child, as does the whole state of a transform
//!   keyed by several columns: never to both, so no child emits a part another emits too.
//!   Without the ranges (neither the leases nor `ListShards` give them), each child keeps
//!   every key.

use md5::{Digest, Md5};

use crate::checkpoint::StageState;
use crate::engine::CallError;
use crate::pipeline::stage_plan::StagePlan;

/// A split's hash key ranges (first and last key, inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Split {
    /// The child's.
    pub child: (u128, u128),
    /// The parent's.
    pub parent: (u128, u128),
}

impl Split {
    /// Whether the key with text `key` goes on in the child.
    fn keeps(&self, key: &str) -> bool {
        let h = hash_key(key);
        let within = |(first, last): (u128, u128)| (first..=last).contains(&h);
        within(self.child) || (!within(self.parent) && self.lower())
    }

    /// Whether the child is the one at the start of its parent's range.
    fn lower(&self) -> bool {
        self.child.0 == self.parent.0
    }
}

/// The state `stage` starts from in a child shard, given its parents' states of that stage
/// (one or two) and, for a split, the hash key ranges.
pub(super) fn child_state(
    stage: &StagePlan,
    parents: &[&StageState],
    split: Option<Split>,
    label: &str,
) -> Result<StageState, String> {
    let (first, rest) = parents.split_first().ok_or("no parent state")?;
    let split = split.filter(|_| rest.is_empty() && !stage.state_key.is_empty());
    if rest.is_empty() && split.is_none() {
        return Ok((*first).clone());
    }
    if stage.state_key.is_empty() {
        return Err(format!(
            "stage `{}` keeps state that does not divide by key, so the parents' states cannot be combined",
            stage.name
        ));
    }
    let failed = |what: &str, e: CallError| format!("stage `{}`: {what}: {e}", stage.name);
    let mut instance = stage
        .component
        .instantiate(label, &stage.limits)
        .map_err(|e| format!("stage `{}`: {e}", stage.name))?;
    instance
        .open(&stage.config_json, &stage.input, &stage.description)
        .map_err(|e| failed("open", e))?
        .map_err(|e| format!("stage `{}` refused its config: {}", stage.name, e.message))?;
    instance
        .restore(first.format_version, first.data.clone())
        .map_err(|e| failed("restoring a parent's state", e))?;
    for other in rest {
        instance
            .absorb(other.format_version, other.data.clone())
            .map_err(|e| failed("absorbing the other parent's state", e))?;
    }
    if let Some(split) = split {
        let keys = instance.state_keys().map_err(|e| failed("listing its keys", e))?;
        let held = keys.len();
        let keep: Vec<String> = if stage.state_key.len() == 1 {
            keys.into_iter().filter(|k| split.keeps(k)).collect()
        } else if split.lower() {
            keys
        } else {
            Vec::new()
        };
        if keep.len() < held {
            tracing::info!(stage = %stage.name, kept = keep.len(), held, "Keeping the keys that go on in this child.");
            instance.retain_keys(&keep).map_err(|e| failed("keeping its keys", e))?;
        }
    }
    let (format_version, data) = instance
        .snapshot()
        .map_err(|e| failed("snapshot", e))?
        .ok_or_else(|| format!("stage `{}` gave no state", stage.name))?;
    Ok(StageState {
        stage: stage.name.clone(),
        component: stage.component.digest().to_owned(),
        format_version,
        data,
    })
}

/// Where Kinesis puts a record with partition key `key`: its MD5 as a big-endian 128-bit
/// number.
pub(crate) fn hash_key(key: &str) -> u128 {
    u128::from_be_bytes(Md5::digest(key.as_bytes()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_key_hashes_as_kinesis_hashes_it() {
        // MD5("") = d41d8cd98f00b204e9800998ecf8427e.
        assert_eq!(hash_key(""), 0xd41d8cd98f00b204e9800998ecf8427e);
        // Two shards of an even split: keys fall on either side of 2^127.
        let half = 1u128 << 127;
        assert!(hash_key("AAPL") != hash_key("MSFT"));
        let sides: Vec<bool> = ["a", "b", "c", "d", "e", "f", "g", "h"]
            .iter()
            .map(|k| hash_key(k) < half)
            .collect();
        assert!(sides.contains(&true) && sides.contains(&false), "{sides:?}");
    }

    #[test]
    fn a_split_gives_each_key_to_exactly_one_child() {
        let half = 1u128 << 127;
        let parent = (0, u128::MAX >> 1);
        let lower = Split {
            child: (0, (half >> 1) - 1),
            parent,
        };
        let upper = Split {
            child: (half >> 1, u128::MAX >> 1),
            parent,
        };
        let keys: Vec<String> = (0..200).map(|i| format!("key-{i}")).collect();
        let (mut inside, mut outside) = (0, 0);
        for k in &keys {
            assert!(lower.keeps(k) != upper.keeps(k), "{k} goes to exactly one child");
            if hash_key(k) < half {
                inside += 1;
                assert_eq!(lower.keeps(k), hash_key(k) < half >> 1, "{k} by its hash");
            } else {
                outside += 1;
                assert!(
                    lower.keeps(k),
                    "{k}, outside the parent's range, goes to the lower child"
                );
            }
        }
        assert!(inside > 0 && outside > 0);
    }
}
