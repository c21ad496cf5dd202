//! An in-memory store for tests: the same contract, and a switch to fail the next `put`
//! (fault injection).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::{CheckpointStore, StoreError};

/// Checkpoints in a shared map; clones see the same checkpoints.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    epochs: BTreeMap<u64, Vec<u8>>,
    fail_next_put: bool,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Make the next `put` fail as a storage error would.
    pub fn fail_next_put(&self) {
        self.lock().fail_next_put = true;
    }

    /// Epochs held.
    pub fn epochs(&self) -> Vec<u64> {
        self.lock().epochs.keys().copied().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the map half-updated.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl CheckpointStore for MemoryStore {
    fn latest(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        Ok(self.lock().epochs.last_key_value().map(|(e, b)| (*e, b.clone())))
    }

    fn put(&mut self, epoch: u64, bytes: &[u8]) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if std::mem::take(&mut inner.fail_next_put) {
            return Err(StoreError::Io {
                action: "writing",
                what: format!("memory checkpoint {epoch}"),
                error: std::io::Error::other("injected failure"),
            });
        }
        if let Some(&latest) = inner.epochs.keys().next_back()
            && epoch <= latest
        {
            return Err(StoreError::Stale { epoch, latest });
        }
        inner.epochs.insert(epoch, bytes.to_vec());
        while inner.epochs.len() > super::fs::KEEP {
            inner.epochs.pop_first();
        }
        Ok(())
    }

    fn location(&self) -> String {
        "memory".into()
    }
}
