//! A lease as KCL 2.x stores it in DynamoDB (spec LEASE-01..10), and sluice's one addition.
//!
//! | attribute | type | meaning |
//! |---|---|---|
//! | `leaseKey` | S | the shard id (the table's hash key) |
//! | `leaseOwner` | S | the worker holding it; absent when nobody does |
//! | `leaseCounter` | N | bumped by every renew, take and checkpoint: a lease whose counter does not move is expired |
//! | `checkpoint` | S | the last record processed, or `TRIM_HORIZON` / `LATEST` / `AT_TIMESTAMP` / `SHARD_END` |
//! | `checkpointSubSequenceNumber` | N | within a KPL aggregate, the last user record processed (0 otherwise) |
//! | `ownerSwitchesSinceCheckpoint` | N | takes since the last checkpoint |
//! | `parentShardId` | SS | the shard's parents (absent for a shard without) |
//! | `startingHashKey`, `endingHashKey` | S | the shard's hash key range, in decimal (KCL 2.3+; absent in older tables) |
//! | `sluiceCheckpoint` | B | sluice's checkpoint of the shard's pipeline (stage state, output files), written with `checkpoint` in one conditional update; KCL ignores it |

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

/// The hash key.
pub const KEY: &str = "leaseKey";
/// The owner.
pub const OWNER: &str = "leaseOwner";
/// The counter.
pub const COUNTER: &str = "leaseCounter";
/// The checkpoint.
pub const CHECKPOINT: &str = "checkpoint";
/// The checkpoint's sub-sequence number.
pub const SUB_SEQUENCE: &str = "checkpointSubSequenceNumber";
/// Owner switches since the last checkpoint.
pub const OWNER_SWITCHES: &str = "ownerSwitchesSinceCheckpoint";
/// The parents.
pub const PARENTS: &str = "parentShardId";
/// The first hash key of the shard's range.
pub const STARTING_HASH_KEY: &str = "startingHashKey";
/// The last hash key of the shard's range.
pub const ENDING_HASH_KEY: &str = "endingHashKey";
/// Sluice's checkpoint of the shard's pipeline.
pub const SLUICE: &str = "sluiceCheckpoint";

/// The checkpoint of a shard read to its end.
pub const SHARD_END: &str = "SHARD_END";

/// One lease item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// `leaseKey`: the shard id.
    pub key: String,
    /// `leaseOwner`.
    pub owner: Option<String>,
    /// `leaseCounter`.
    pub counter: u64,
    /// `checkpoint`.
    pub checkpoint: String,
    /// `checkpointSubSequenceNumber`.
    pub sub_sequence: u64,
    /// `ownerSwitchesSinceCheckpoint`.
    pub owner_switches: u64,
    /// `parentShardId`.
    pub parents: Vec<String>,
    /// `startingHashKey` and `endingHashKey`, when the table has them.
    pub hash_range: Option<(u128, u128)>,
    /// `sluiceCheckpoint`.
    pub sluice: Option<Vec<u8>>,
}

impl Lease {
    /// A new, unowned lease for a shard, at `checkpoint` (a sentinel).
    pub fn new(key: impl Into<String>, checkpoint: impl Into<String>, parents: Vec<String>) -> Self {
        Lease {
            key: key.into(),
            owner: None,
            counter: 0,
            checkpoint: checkpoint.into(),
            sub_sequence: 0,
            owner_switches: 0,
            parents,
            hash_range: None,
            sluice: None,
        }
    }

    /// Whether the shard was read to its end.
    pub fn ended(&self) -> bool {
        self.checkpoint == SHARD_END
    }

    /// The item to put for a new lease (KCL writes no owner until a worker takes it).
    pub fn to_item(&self) -> HashMap<String, AttributeValue> {
        let mut item = HashMap::from([
            (KEY.to_owned(), AttributeValue::S(self.key.clone())),
            (COUNTER.to_owned(), AttributeValue::N(self.counter.to_string())),
            (CHECKPOINT.to_owned(), AttributeValue::S(self.checkpoint.clone())),
            (
                SUB_SEQUENCE.to_owned(),
                AttributeValue::N(self.sub_sequence.to_string()),
            ),
            (
                OWNER_SWITCHES.to_owned(),
                AttributeValue::N(self.owner_switches.to_string()),
            ),
        ]);
        if let Some(owner) = &self.owner {
            item.insert(OWNER.to_owned(), AttributeValue::S(owner.clone()));
        }
        if !self.parents.is_empty() {
            item.insert(PARENTS.to_owned(), AttributeValue::Ss(self.parents.clone()));
        }
        if let Some((start, end)) = self.hash_range {
            item.insert(STARTING_HASH_KEY.to_owned(), AttributeValue::S(start.to_string()));
            item.insert(ENDING_HASH_KEY.to_owned(), AttributeValue::S(end.to_string()));
        }
        if let Some(bytes) = &self.sluice {
            item.insert(SLUICE.to_owned(), AttributeValue::B(bytes.clone().into()));
        }
        item
    }

    /// Read an item, as KCL or sluice wrote it; what is wrong with it otherwise.
    pub fn from_item(item: &HashMap<String, AttributeValue>) -> Result<Lease, String> {
        let s = |name: &str| match item.get(name) {
            Some(AttributeValue::S(v)) => Ok(Some(v.clone())),
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(other) => Err(format!("`{name}` is {other:?}, not a string")),
        };
        let n = |name: &str| match item.get(name) {
            Some(AttributeValue::N(v)) => v
                .parse::<u64>()
                .map(Some)
                .map_err(|_| format!("`{name}` is {v}, not a whole number")),
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(other) => Err(format!("`{name}` is {other:?}, not a number")),
        };
        let key = s(KEY)?.ok_or("no `leaseKey`")?;
        let parents = match item.get(PARENTS) {
            Some(AttributeValue::Ss(v)) => v.clone(),
            Some(AttributeValue::L(v)) => v.iter().filter_map(|p| p.as_s().ok().cloned()).collect(),
            None | Some(AttributeValue::Null(_)) => Vec::new(),
            Some(other) => return Err(format!("`{PARENTS}` is {other:?}, not a string set")),
        };
        let sluice = match item.get(SLUICE) {
            Some(AttributeValue::B(b)) => Some(b.clone().into_inner()),
            _ => None,
        };
        let hash_key = |name: &str| {
            s(name)?
                .map(|v| {
                    v.parse::<u128>()
                        .map_err(|_| format!("`{name}` is {v}, not a hash key"))
                })
                .transpose()
        };
        let hash_range = match (hash_key(STARTING_HASH_KEY)?, hash_key(ENDING_HASH_KEY)?) {
            (Some(start), Some(end)) => Some((start, end)),
            _ => None,
        };
        Ok(Lease {
            owner: s(OWNER)?.filter(|o| !o.is_empty()),
            counter: n(COUNTER)?.unwrap_or(0),
            checkpoint: s(CHECKPOINT)?.unwrap_or_else(|| "TRIM_HORIZON".to_owned()),
            sub_sequence: n(SUB_SEQUENCE)?.unwrap_or(0),
            owner_switches: n(OWNER_SWITCHES)?.unwrap_or(0),
            parents,
            hash_range,
            sluice,
            key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_round_trips_through_its_item_with_kcl_attribute_names_and_types() {
        let mut lease = Lease::new(
            "shardId-000000000004",
            "TRIM_HORIZON",
            vec!["shardId-000000000001".into()],
        );
        lease.owner = Some("host-a".into());
        lease.counter = 7;
        lease.hash_range = Some((0, u128::MAX));
        lease.sluice = Some(b"{}".to_vec());
        let item = lease.to_item();
        assert!(matches!(item[KEY], AttributeValue::S(_)));
        assert!(matches!(item[COUNTER], AttributeValue::N(_)));
        assert!(matches!(item[SUB_SEQUENCE], AttributeValue::N(_)));
        assert!(matches!(item[OWNER_SWITCHES], AttributeValue::N(_)));
        assert!(matches!(item[PARENTS], AttributeValue::Ss(_)));
        assert_eq!(
            item[ENDING_HASH_KEY],
            AttributeValue::S("340282366920938463463374607431768211455".into())
        );
        assert_eq!(Lease::from_item(&item).expect("read"), lease);
    }

    #[test]
    fn a_kcl_item_without_sluice_state_is_read() {
        let item = HashMap::from([
            (KEY.to_owned(), AttributeValue::S("shardId-000000000000".into())),
            (OWNER.to_owned(), AttributeValue::S("kcl-worker".into())),
            (COUNTER.to_owned(), AttributeValue::N("42".into())),
            (
                CHECKPOINT.to_owned(),
                AttributeValue::S("49590338271490256608559692538361571095921575989136588898".into()),
            ),
            (SUB_SEQUENCE.to_owned(), AttributeValue::N("0".into())),
            (OWNER_SWITCHES.to_owned(), AttributeValue::N("1".into())),
        ]);
        let lease = Lease::from_item(&item).expect("read");
        assert_eq!(lease.owner.as_deref(), Some("kcl-worker"));
        assert_eq!(lease.counter, 42);
        assert!(lease.parents.is_empty() && lease.sluice.is_none() && !lease.ended());
        let bad = HashMap::from([
            (KEY.to_owned(), AttributeValue::S("s".into())),
            (COUNTER.to_owned(), AttributeValue::S("x".into())),
        ]);
        assert!(Lease::from_item(&bad).unwrap_err().contains("leaseCounter"));
    }
}
