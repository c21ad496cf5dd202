//! One stage of a worker's chain and its failure policy. When a transform fails on a batch,
//! its `on_error` policy decides: `dead_letter` bisects the batch (a bounded number of calls)
//! so only the failing rows become dead letters, `skip_batch` dead-letters the whole batch,
//! `halt` stops the pipeline. A trap replaces the instance before the next call; a deadline
//! trap is not bisected. Every call made for one batch, bisection included, shares the
//! batch's deadline. A transform whose batches
//! fail entirely `quarantine_after` times in a row is quarantined: the pipeline halts rather
//! than spin on a broken component. A stateful stage's instance is rebuilt after any failure
//! from its last snapshot and the batches since, so the failed batch leaves no trace.
//!
//! The stage reaches its transform only through [`Calls`] and [`Open`]: the policy is tested
//! with plain Rust transforms, no wasmtime (`stage/tests.rs`).

use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;

use super::lineage::{Lineage, Traced};
use super::state_log::{Event, StateLog};
use super::watermark::{WatermarkTracker, max_event_micros};
use crate::config::OnError;
use crate::engine::{CallError, Emitted, EngineError};
use crate::record::BadRecord;
use crate::record::PartitionEvent;
use crate::telemetry::meters::{CallFailure, StageMeters};

/// Rows that leave the chain before its end: dead letters, and outputs sinks take.
#[derive(Debug)]
pub(crate) enum Aside {
    /// A record that could not be decoded.
    Raw(BadRecord),
    /// Rows of a stage's output that a sink takes (`input = "stage.output"`).
    Tap {
        stage: usize,
        output: String,
        rows: RecordBatch,
        lineage: Lineage,
    },
    /// Rows a stage rejected (reason column last) or failed on (`reason` given), and the
    /// records they come from when known.
    Rows {
        stage: String,
        rows: RecordBatch,
        reason: Option<String>,
        lineage: Lineage,
    },
}

/// Why a worker had to stop.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("stage `{stage}`: {source}")]
    Engine { stage: String, source: EngineError },
    #[error("stage `{stage}` refused to open: {message}")]
    Open { stage: String, message: String },
    #[error("stage `{stage}` could not save its state for a checkpoint: {error}")]
    Snapshot { stage: String, error: CallError },
    #[error(
        "stage `{stage}` failed and its state could not be rebuilt ({message}); the next run resumes from the last checkpoint"
    )]
    Rebuild { stage: String, message: String },
    #[error("stage `{stage}` refused the state saved in the checkpoint: {message}")]
    Restore { stage: String, message: String },
    #[error("decoding: {0}")]
    Decode(#[from] arrow::error::ArrowError),
    #[error("stage `{stage}` (on_error = \"halt\") {error}")]
    Halted { stage: String, error: CallError },
    #[error(
        "stage `{stage}` quarantined: its last {batches} batches failed entirely (last error: {error}); fix the component or raise `quarantine_after`"
    )]
    Quarantined {
        stage: String,
        batches: u32,
        error: CallError,
    },
}

/// Calls one failing batch may spend on bisection; what is not isolated by then is
/// dead-lettered in whole halves. 128 calls isolate about five bad rows in 8192.
const MAX_BISECT_CALLS: u32 = 128;

/// One stage of a worker's chain: an instance of its transform and the failure policy
/// around it.
pub(super) struct Stage {
    pub(super) policy: Policy,
    opener: Arc<dyn Open>,
    pub(super) routing: Routing,
    pub(super) instance: Box<dyn Calls>,
    label: String,
    /// Consecutive batches of which no row got through.
    failed_batches: u32,
    /// For a stateful stage: how to rebuild its state after a failure.
    pub(super) log: Option<StateLog>,
    /// For a stage with a watermark: event time seen per source partition.
    pub(super) tracker: Option<WatermarkTracker>,
    /// What it records for `/metrics` (nothing until the worker names its pipeline).
    pub(super) meters: StageMeters,
}

impl Stage {
    /// A stage with a fresh instance from `opener`.
    pub(super) fn start(
        policy: Policy,
        opener: Arc<dyn Open>,
        label: String,
        routing: Routing,
    ) -> Result<Self, WorkerError> {
        let instance = opener.open(&label)?;
        let log = policy.stateful.then(StateLog::default);
        let tracker = policy.watermark.map(|w| WatermarkTracker::new(w.settings));
        Ok(Stage {
            policy,
            opener,
            routing,
            instance,
            label,
            failed_batches: 0,
            log,
            tracker,
            meters: StageMeters::detached(),
        })
    }

    /// Call `process`. A stateless stage's instance is replaced if the call poisoned it; a
    /// stateful stage's is replaced after any failure and its state rebuilt without the batch.
    /// `until` is the batch's budget, shared by every call made for it.
    pub(super) fn call(
        &mut self,
        batch: &RecordBatch,
        until: Option<Instant>,
    ) -> Result<Result<Vec<Emitted>, CallError>, WorkerError> {
        let started = Instant::now();
        let result = self.instance.process_until(batch, until);
        self.meters
            .call(started.elapsed(), result.as_ref().err().map(failure_kind));
        if let Some(fuel) = self.instance.fuel_used() {
            self.meters.fuel(fuel);
        }
        match (&result, &mut self.log) {
            (Ok(_), Some(log)) => {
                if log.record(batch) {
                    self.snapshot()?;
                }
            }
            (Err(_), Some(_)) => self.rebuild()?,
            (Err(e), None) if e.poisons_instance() => self.instance = self.opener.open(&self.label)?,
            _ => {}
        }
        Ok(result)
    }

    /// The stage's snapshot (stateful stages only); the state log starts again from it.
    pub(super) fn snapshot(&mut self) -> Result<Option<(u32, Vec<u8>)>, WorkerError> {
        let snapshot = self.instance.snapshot().map_err(|error| WorkerError::Snapshot {
            stage: self.policy.name.clone(),
            error,
        })?;
        if let Some(log) = &mut self.log {
            log.reset(snapshot.clone());
        }
        Ok(snapshot)
    }

    /// A fresh instance with the last snapshot restored and the batches since replayed.
    pub(super) fn rebuild(&mut self) -> Result<(), WorkerError> {
        let Some(log) = &self.log else { return Ok(()) };
        self.meters.rebuilt();
        let mut instance = self.opener.open(&self.label)?;
        let failed = |message: String| WorkerError::Rebuild {
            stage: self.policy.name.clone(),
            message,
        };
        if let Some((version, data)) = log.snapshot() {
            instance
                .restore(*version, data.clone())
                .map_err(|e| failed(format!("restoring its last snapshot: {e}")))?;
        }
        for event in log.replay() {
            match event {
                Event::Batch(batch) => instance.process(batch).map(drop),
                Event::Watermark(micros) => instance.advance_watermark(*micros).map(drop),
            }
            .map_err(|e| failed(format!("replaying what it had processed before: {e}")))?;
        }
        tracing::warn!(stage = %self.policy.name, replayed = log.replay().len(), "Stateful transform failed; its state was rebuilt from the last snapshot without the failed batch.");
        self.instance = instance;
        Ok(())
    }

    /// Note the event time of a batch this stage was given, from source partition `partition`.
    pub(super) fn observe(&mut self, partition: &str, batch: &RecordBatch) {
        let (Some(tracker), Some(w)) = (&mut self.tracker, self.policy.watermark) else {
            return;
        };
        if let Some(max) = max_event_micros(batch, w.column) {
            tracker.observe(partition, max, std::time::Instant::now());
        }
    }

    /// Partitions the source opened hold the watermark from now on; ended ones stop
    /// holding it (after their last batch was observed).
    pub(super) fn partitions(&mut self, events: &[PartitionEvent], opened: bool) {
        let Some(tracker) = &mut self.tracker else { return };
        for event in events {
            match event {
                PartitionEvent::Opened(p) if opened => tracker.announce(p, std::time::Instant::now()),
                PartitionEvent::Ended(p) if !opened => tracker.close(p),
                _ => {}
            }
        }
    }

    /// Pass a risen watermark to the component; returns what it emits to `main`.
    pub(super) fn advance_watermark(&mut self, dead: &mut Vec<Aside>) -> Result<Vec<Traced>, WorkerError> {
        let Some(micros) = self.tracker.as_mut().and_then(|t| t.advance(std::time::Instant::now())) else {
            return Ok(Vec::new());
        };
        match self.instance.advance_watermark(micros) {
            Ok(outs) => {
                if let Some(log) = &mut self.log {
                    log.record_watermark(micros);
                }
                Ok(self.passed(route(&self.routing, outs, &Lineage::Unknown, dead)))
            }
            Err(error) if self.policy.on_error == OnError::Halt => Err(WorkerError::Halted {
                stage: self.policy.name.clone(),
                error,
            }),
            Err(error) => {
                tracing::error!(stage = %self.policy.name, error = %error, "Transform failed advancing its watermark; its state is rebuilt and the watermark retried with the next batch.");
                self.rebuild()?;
                Ok(Vec::new())
            }
        }
    }

    /// One batch through this stage under its `on_error` policy; returns its `main` output.
    pub(super) fn run(&mut self, batch: Traced, dead: &mut Vec<Aside>) -> Result<Vec<Traced>, WorkerError> {
        self.meters.batch_in(
            batch.batch.num_rows() as u64,
            batch.batch.get_array_memory_size() as u64,
        );
        let until = self.instance.batch_deadline();
        let err = match self.call(&batch.batch, until)? {
            Ok(outs) => {
                self.failed_batches = 0;
                return Ok(self.passed(route(&self.routing, outs, &batch.lineage, dead)));
            }
            Err(err) => err,
        };
        let rows = batch.batch.num_rows();
        let stateful = self.policy.stateful;
        let mut main = Vec::new();
        let failed = match self.policy.on_error {
            OnError::Halt => {
                return Err(WorkerError::Halted {
                    stage: self.policy.name.clone(),
                    error: err,
                });
            }
            // Re-feeding parts of a batch to a stateful transform would count rows twice.
            OnError::SkipBatch => self.dead_letter(&err, batch, dead),
            OnError::DeadLetter if stateful || matches!(err, CallError::Timeout(_)) => {
                self.dead_letter(&err, batch, dead)
            }
            OnError::DeadLetter => {
                self.meters.bisected();
                let mut budget = MAX_BISECT_CALLS;
                self.bisect(batch, err.clone(), &mut main, dead, &mut budget, until)?
            }
        };
        if failed == rows {
            self.failed_batches += 1;
            if self.failed_batches >= self.policy.quarantine_after {
                self.meters.quarantined();
                return Err(WorkerError::Quarantined {
                    stage: self.policy.name.clone(),
                    batches: self.failed_batches,
                    error: err,
                });
            }
        } else {
            self.failed_batches = 0;
        }
        Ok(self.passed(main))
    }

    /// Count what the stage passes on to the next stage.
    pub(super) fn passed(&self, out: Vec<Traced>) -> Vec<Traced> {
        for t in &out {
            self.meters
                .passed(t.batch.num_rows() as u64, t.batch.get_array_memory_size() as u64);
        }
        out
    }

    /// Halve a failed batch until the failing rows are alone (or the budget is spent);
    /// returns how many rows became dead letters. Output keeps the batch's row order.
    pub(super) fn bisect(
        &mut self,
        batch: Traced,
        err: CallError,
        main: &mut Vec<Traced>,
        dead: &mut Vec<Aside>,
        budget: &mut u32,
        until: Option<Instant>,
    ) -> Result<usize, WorkerError> {
        let rows = batch.batch.num_rows();
        if rows <= 1 || *budget < 2 || matches!(err, CallError::Timeout(_)) {
            return Ok(self.dead_letter(&err, batch, dead));
        }
        let half = rows / 2;
        let mut failed = 0;
        for part in [batch.slice(0, half), batch.slice(half, rows - half)] {
            if *budget == 0 {
                failed += self.dead_letter(&err, part, dead);
                continue;
            }
            *budget -= 1;
            match self.call(&part.batch, until)? {
                Ok(outs) => main.extend(route(&self.routing, outs, &part.lineage, dead)),
                Err(e) => failed += self.bisect(part, e, main, dead, budget, until)?,
            }
        }
        Ok(failed)
    }

    /// The rows of a failed call become dead letters with the reason; returns their count.
    pub(super) fn dead_letter(&self, err: &CallError, batch: Traced, dead: &mut Vec<Aside>) -> usize {
        let digest = &self.policy.digest[..12.min(self.policy.digest.len())];
        let rows = batch.batch.num_rows();
        tracing::warn!(stage = %self.policy.name, component = digest, rows, error = %err, "Transform failed; rows go to dead letters.");
        dead.push(Aside::Rows {
            stage: self.policy.name.clone(),
            rows: batch.batch,
            reason: Some(format!("transform {err} (component sha256 {digest}…)")),
            lineage: batch.lineage,
        });
        rows
    }
}

/// A failed call's `kind` label.
fn failure_kind(e: &CallError) -> CallFailure {
    match e {
        CallError::Trap(_) => CallFailure::Trap,
        CallError::Timeout(_) => CallFailure::Timeout,
        CallError::InvalidInput(_) => CallFailure::InvalidInput,
        CallError::Failed(_) => CallFailure::Failed,
        CallError::BadOutput(_) => CallFailure::BadOutput,
    }
}

mod routing;
mod seam;

pub(super) use routing::{Routing, route};
pub(crate) use seam::{Calls, Open, Policy};

#[cfg(test)]
mod tests;
