//! What `sluice status` tells of each stage while a pipeline runs: counts shared by every
//! worker's instance of the stage (atomics), kept for the life of the process, so a
//! restart-to-apply reload continues them. Always on, unlike the Prometheus export: a few
//! atomic adds per batch.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// One stage's counts.
#[derive(Debug, Default)]
pub struct StageTally {
    records_in: AtomicU64,
    records_out: AtomicU64,
    batches: AtomicU64,
    call_nanos: AtomicU64,
    failed_calls: AtomicU64,
}

/// A stage's counts at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageCounts {
    /// Rows given to the stage.
    pub records_in: u64,
    /// Rows it passed on.
    pub records_out: u64,
    /// Batches given to it.
    pub batches: u64,
    /// Nanoseconds spent inside its component.
    pub call_nanos: u64,
    /// Calls that failed.
    pub failed_calls: u64,
}

impl StageTally {
    /// A batch of `rows` came in.
    pub fn batch_in(&self, rows: u64) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.records_in.fetch_add(rows, Ordering::Relaxed);
    }

    /// `rows` went on to the next stage.
    pub fn passed(&self, rows: u64) {
        self.records_out.fetch_add(rows, Ordering::Relaxed);
    }

    /// A call took `nanos`; `failed` if it failed.
    pub fn call(&self, nanos: u64, failed: bool) {
        self.call_nanos.fetch_add(nanos, Ordering::Relaxed);
        if failed {
            self.failed_calls.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counts now.
    pub fn counts(&self) -> StageCounts {
        StageCounts {
            records_in: self.records_in.load(Ordering::Relaxed),
            records_out: self.records_out.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            call_nanos: self.call_nanos.load(Ordering::Relaxed),
            failed_calls: self.failed_calls.load(Ordering::Relaxed),
        }
    }
}

type Registry = Mutex<BTreeMap<(String, String), Arc<StageTally>>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::default)
}

/// The tally of stage `stage` of pipeline `pipeline` (created on first use).
pub fn stage(pipeline: &str, stage: &str) -> Arc<StageTally> {
    registry()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry((pipeline.to_owned(), stage.to_owned()))
        .or_default()
        .clone()
}

/// The counts of stage `stage` of pipeline `pipeline`, if it has run in this process.
pub fn counts(pipeline: &str, stage: &str) -> Option<StageCounts> {
    registry()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&(pipeline.to_owned(), stage.to_owned()))
        .map(|t| t.counts())
}
