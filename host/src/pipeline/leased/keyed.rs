//! A child shard's stage state, from its parents' states of that stage, through the
//! contract's optional `keyed-state` export.
//!
//! - A merge (two parents): the child restores one parent's state and absorbs the other's,
//!   so it holds both parents' keys.
//! - A split (one parent): the child keeps only the keys that hash into its own range, so
//!   a key's open windows or series go on in exactly the child that receives the key's
//!   records, and no other child emits them too. A key's text is hashed as Kinesis hashes a
//!   partition key (MD5 as a 128-bit number): exact when the state is keyed by one column
//!   holding the records' partition key, the common case the lease design rests on. With a
//!   state keyed by several columns, or a lease without a hash range (a table written by a
//!   KCL older than 2.3), each child keeps every key.

use md5::{Digest, Md5};

use crate::checkpoint::StageState;
use crate::engine::CallError;
use crate::pipeline::stage_plan::StagePlan;

/// The state `stage` starts from in a child shard with hash key range `range`, given its
/// parents' states of that stage (one or two).
pub(super) fn child_state(
    stage: &StagePlan,
    parents: &[&StageState],
    range: Option<(u128, u128)>,
    label: &str,
) -> Result<StageState, String> {
    let (first, rest) = parents.split_first().ok_or("no parent state")?;
    let split_by_hash = range.filter(|_| stage.state_key.len() == 1);
    if rest.is_empty() && split_by_hash.is_none() {
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
    if let Some((start, end)) = split_by_hash {
        let keys = instance.state_keys().map_err(|e| failed("listing its keys", e))?;
        let held = keys.len();
        let keep: Vec<String> = keys
            .into_iter()
            .filter(|k| (start..=end).contains(&hash_key(k)))
            .collect();
        if keep.len() < held {
            tracing::info!(stage = %stage.name, kept = keep.len(), held, "Keeping the keys of the child's hash range.");
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
}
