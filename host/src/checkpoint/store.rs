//! Where checkpoints are kept.
//!
//! # Consistency contract
//!
//! Every store gives these guarantees, and the protocol relies on nothing more:
//! - `put(epoch, bytes)` is **atomic**: afterwards the checkpoint is either wholly there or
//!   not there at all; a reader never sees part of one.
//! - `put` is **durable** when it returns `Ok`: a crash (or power loss, for stores that can
//!   promise it) after that point does not lose it.
//! - `latest` returns the complete checkpoint with the highest epoch ever `put`, or `None`.
//!   Epochs only increase; `put` with an epoch not above the latest is refused.
//! - Older epochs may be pruned, but never the latest.

pub mod fs;
pub mod memory;
pub mod s3;

use crate::config::{CheckpointConfig, StoreKind};

/// The store a pipeline's `[checkpoint]` names.
pub fn open(config: &CheckpointConfig) -> Box<dyn CheckpointStore> {
    match &config.store {
        StoreKind::File => Box::new(fs::FsStore::new(&config.path)),
        StoreKind::S3(settings) => Box::new(s3::S3Store::new(settings.clone())),
    }
}

/// Why a store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The storage failed.
    #[error("{action} {what}: {error}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or object.
        what: String,
        /// The error.
        error: std::io::Error,
    },
    /// A remote store (S3) failed, after retrying what may pass.
    #[error("{action} {what}: {message}")]
    Remote {
        /// What was being done.
        action: &'static str,
        /// The object or prefix.
        what: String,
        /// What the service or client said.
        message: String,
    },
    /// Another writer stored the same epoch first: two runs share one store.
    #[error(
        "checkpoint epoch {epoch} at {what} was written by another writer first: two runs of this pipeline share the checkpoint store"
    )]
    Conflict {
        /// The epoch both wrote.
        epoch: u64,
        /// The object.
        what: String,
    },
    /// An epoch was not above the latest.
    #[error("checkpoint epoch {epoch} is not above the latest stored epoch {latest}")]
    Stale {
        /// Offered epoch.
        epoch: u64,
        /// Latest stored.
        latest: u64,
    },
    /// The shard's lease is held by another worker now: this one may commit nothing more.
    #[error(
        "the lease of {shard} was taken over by another worker; nothing after its last checkpoint is committed here"
    )]
    LeaseLost {
        /// The shard.
        shard: String,
    },
}

/// A place for checkpoints; see the module doc for the contract.
pub trait CheckpointStore: Send {
    /// The newest checkpoint and its epoch.
    fn latest(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError>;
    /// Store a checkpoint atomically and durably.
    fn put(&mut self, epoch: u64, bytes: &[u8]) -> Result<(), StoreError>;
    /// Where it is, for messages.
    fn location(&self) -> String;
}
