//! A shard's checkpoints, kept in its lease: the commit point of a leased shard is one
//! conditional `UpdateItem` that writes KCL's `checkpoint` / `checkpointSubSequenceNumber`
//! and sluice's checkpoint of the shard's pipeline together, and only while this worker still
//! holds the lease at the counter it last saw. A worker that lost the lease cannot commit;
//! the next owner resumes exactly where the last commit left the shard, with its stage state
//! and the list of output files to settle.
//!
//! It keeps the store contract (`checkpoint::store`): a put is atomic (one item write) and
//! durable (DynamoDB acknowledges durable writes); `latest` is the last put that committed.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::LeaseError;
use super::item::SHARD_END;
use super::table::LeaseTable;
use crate::checkpoint::Checkpoint;
use crate::checkpoint::store::{CheckpointStore, StoreError};
use crate::source::position::PartitionPosition;

/// DynamoDB's limit for an item, less room for KCL's attributes.
const MAX_CHECKPOINT_BYTES: usize = 380 * 1024;

/// What this worker knows of a lease it holds; shared by the renewer and the shard's store.
#[derive(Debug)]
pub struct Held {
    /// The counter as this worker last wrote it.
    pub counter: u64,
    /// The lease was found taken, or could not be renewed for the failover time: nothing more
    /// may be committed under it.
    pub lost: bool,
    /// When a write last proved the lease ours.
    pub proven: Instant,
}

/// A held lease, shared.
pub type HeldLease = Arc<Mutex<Held>>;

/// The checkpoint store of one leased shard.
pub struct LeaseStore {
    table: LeaseTable,
    runtime: tokio::runtime::Handle,
    shard: String,
    me: String,
    held: HeldLease,
    /// What a child shard starts from before its own first checkpoint: its parents' state.
    inherited: Option<Vec<u8>>,
    /// The last checkpoint written, its epoch and chunk number set to 0: a quiet shard's
    /// checkpoints that change nothing (same position, state and totals, no file to publish)
    /// are not written again, so a shard at rest costs renewals only.
    last: Option<Vec<u8>>,
}

impl LeaseStore {
    /// The store of `shard`, held by `me`.
    pub fn new(
        table: LeaseTable,
        runtime: tokio::runtime::Handle,
        shard: impl Into<String>,
        me: impl Into<String>,
        held: HeldLease,
    ) -> Self {
        LeaseStore {
            table,
            runtime,
            shard: shard.into(),
            me: me.into(),
            held,
            inherited: None,
            last: None,
        }
    }

    /// A child shard's store: until the shard's own first checkpoint, `latest` is `checkpoint`
    /// (its parents' state, see `pipeline::leased`).
    pub fn inheriting(mut self, checkpoint: Option<Vec<u8>>) -> Self {
        self.inherited = checkpoint;
        self
    }

    fn remote(&self, action: &'static str, e: LeaseError) -> StoreError {
        StoreError::Remote {
            action,
            what: self.location(),
            message: e.to_string(),
        }
    }
}

/// KCL's `checkpoint` and `checkpointSubSequenceNumber` for a shard's position.
pub fn kcl_checkpoint(position: &PartitionPosition) -> Option<(String, u64)> {
    match position {
        PartitionPosition::Shard { ended: true, .. } => Some((SHARD_END.to_owned(), 0)),
        PartitionPosition::Shard {
            sequence, sub_sequence, ..
        } => Some((sequence.clone(), sub_sequence.unwrap_or(0))),
        _ => None,
    }
}

/// A shard's position for KCL's `checkpoint` and `checkpointSubSequenceNumber` (a lease
/// KCL wrote, or one sluice created, before sluice's checkpoint is in it).
pub fn position_of(checkpoint: &str, sub_sequence: u64) -> PartitionPosition {
    let sentinel = |s: &str| PartitionPosition::Shard {
        sequence: s.to_owned(),
        sub_sequence: None,
        ended: s == SHARD_END,
        at_ms: None,
    };
    match checkpoint {
        "TRIM_HORIZON" | "LATEST" | "AT_TIMESTAMP" | SHARD_END => sentinel(checkpoint),
        // KCL writes 0 for a whole record; above 0, the user records of an aggregate up to it
        // were processed.
        seq => PartitionPosition::Shard {
            sequence: seq.to_owned(),
            sub_sequence: (sub_sequence > 0).then_some(sub_sequence),
            ended: false,
            at_ms: None,
        },
    }
}

impl CheckpointStore for LeaseStore {
    fn latest(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let lease = self
            .runtime
            .block_on(self.table.get(&self.shard))
            .map_err(|e| self.remote("reading", e))?;
        let Some(bytes) = lease.and_then(|l| l.sluice).or_else(|| self.inherited.clone()) else {
            return Ok(None);
        };
        let checkpoint = Checkpoint::from_bytes(&bytes).map_err(|message| StoreError::Remote {
            action: "reading",
            what: self.location(),
            message,
        })?;
        Ok(Some((checkpoint.epoch, bytes)))
    }

    fn put(&mut self, _epoch: u64, bytes: &[u8]) -> Result<(), StoreError> {
        let checkpoint = Checkpoint::from_bytes(bytes).map_err(|message| StoreError::Remote {
            action: "writing",
            what: self.location(),
            message,
        })?;
        let position = checkpoint
            .position
            .partitions
            .get(&self.shard)
            .and_then(|v| PartitionPosition::from_value(&self.shard, "kinesis", v).ok())
            .and_then(|p| kcl_checkpoint(&p))
            .ok_or_else(|| StoreError::Remote {
                action: "writing",
                what: self.location(),
                message: format!("the checkpoint holds no position for {}", self.shard),
            })?;
        if bytes.len() > MAX_CHECKPOINT_BYTES {
            return Err(StoreError::Remote {
                action: "writing",
                what: self.location(),
                message: format!(
                    "the shard's checkpoint is {} bytes, more than the {MAX_CHECKPOINT_BYTES} a lease item can hold beside KCL's attributes (DynamoDB items hold 400 KB): the stage state is too large for leases",
                    bytes.len()
                ),
            });
        }
        // A quiet stream's empty chunks move `next_seq` on without writing anything: a
        // checkpoint that differs only in it (and its epoch) is not worth a write. After a
        // restart the chunk numbers of those empty chunks are used again, which names no file.
        let unchanged = checkpoint.outputs.is_empty().then(|| {
            let mut same = checkpoint.clone();
            same.epoch = 0;
            same.position.next_seq = 0;
            same.to_bytes()
        });
        let mut held = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !held.lost && unchanged.is_some() && unchanged == self.last {
            return Ok(());
        }
        if held.lost {
            return Err(StoreError::LeaseLost {
                shard: self.shard.clone(),
            });
        }
        let written = self
            .runtime
            .block_on(
                self.table
                    .checkpoint(&self.shard, &self.me, held.counter, (&position.0, position.1), bytes),
            )
            .map_err(|e| self.remote("writing", e))?;
        match written {
            Some(counter) => {
                held.counter = counter;
                held.proven = Instant::now();
                self.last = unchanged;
                Ok(())
            }
            None => {
                held.lost = true;
                Err(StoreError::LeaseLost {
                    shard: self.shard.clone(),
                })
            }
        }
    }

    fn location(&self) -> String {
        format!("dynamodb://{}/{}", self.table.name(), self.shard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_kcl_checkpoints_map_both_ways() {
        for (cp, sub) in [
            ("TRIM_HORIZON", 0),
            ("LATEST", 0),
            ("AT_TIMESTAMP", 0),
            ("SHARD_END", 0),
            ("49590338271490256608559692538361571095921575989136588898", 0),
            ("49590338271490256608559692538361571095921575989136588898", 3),
        ] {
            let p = position_of(cp, sub);
            assert_eq!(kcl_checkpoint(&p), Some((cp.to_owned(), sub)), "{cp} {sub}");
        }
        assert!(matches!(
            position_of("SHARD_END", 0),
            PartitionPosition::Shard { ended: true, .. }
        ));
    }
}
