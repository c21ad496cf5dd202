//! Taking a checkpoint at a barrier: sinks durable, checkpoint stored, then complete files
//! renamed into place (see the module doc of `checkpoint` for why in this order).

use std::time::Instant;

use crate::checkpoint::store::CheckpointStore;
use crate::checkpoint::{Checkpoint, FORMAT_VERSION, SourcePosition, StageState, Totals, WatermarkState};

use super::outcome::RunError;
use super::plan::Plan;
use super::sinks::Opened;

/// What a checkpoint records besides the output files: a consistent cut of the pipeline.
pub(crate) struct Cut<'a> {
    /// Where the input after everything written begins.
    pub position: &'a SourcePosition,
    /// The input ended and the stages were flushed.
    pub finished: bool,
    /// Stateful stages' snapshots.
    pub states: Vec<StageState>,
    /// Watermark bookkeeping.
    pub watermarks: Vec<WatermarkState>,
    /// Running totals.
    pub totals: Totals,
}

/// Writes a run's checkpoints.
pub(crate) struct Committer {
    store: Option<Box<dyn CheckpointStore>>,
    epoch: u64,
    pipeline: String,
    source: String,
    stateful: Vec<String>,
    /// Complete every file at each checkpoint (a leased shard: see `commit`).
    close_each: bool,
    /// Checkpoints written by this run, and the longest one took.
    pub taken: u64,
    pub slowest: std::time::Duration,
}

impl Committer {
    pub(crate) fn new(plan: &Plan, store: Option<Box<dyn CheckpointStore>>, epoch: u64) -> Self {
        Committer {
            store,
            epoch,
            pipeline: plan.name.clone(),
            source: plan.source_id.clone(),
            stateful: plan
                .stages
                .iter()
                .filter(|s| s.description.state_format.is_some())
                .map(|s| s.name.clone())
                .collect(),
            close_each: plan.lane.is_some(),
            taken: 0,
            slowest: std::time::Duration::ZERO,
        }
    }

    /// The pipeline's name.
    pub(crate) fn pipeline(&self) -> &str {
        &self.pipeline
    }

    /// Checkpoint everything written so far, which is exactly the input before `position`.
    /// Returns how long it took and its size (`None` when the run does not checkpoint).
    pub(crate) fn commit(
        &mut self,
        cut: Cut<'_>,
        out: &mut Opened,
    ) -> Result<Option<(std::time::Duration, usize)>, RunError> {
        let Some(store) = self.store.as_mut() else {
            return Ok(None);
        };
        let started = Instant::now();
        for state in &cut.states {
            tracing::debug!(stage = %state.stage, bytes = state.data.len(), "State saved with the checkpoint.");
        }
        // Phase one for every sink before the checkpoint, phase two for every sink after it:
        // a sink that fails blocks the checkpoint, and none runs ahead of the others.
        let mut outputs = Vec::new();
        for sink in out.all() {
            // A leased shard may move to another worker after any checkpoint; that worker
            // then publishes the files the checkpoint lists. Files still open would have to be
            // cut back and sealed while this worker (if alive and not yet aware) may still
            // append to them, so a leased shard's checkpoint lists complete files only.
            if self.close_each {
                sink.close_all()?;
            }
            outputs.extend(sink.pre_commit()?);
        }
        let checkpoint = Checkpoint {
            format: FORMAT_VERSION,
            sluice_version: env!("CARGO_PKG_VERSION").to_owned(),
            epoch: self.epoch,
            pipeline: self.pipeline.clone(),
            source: self.source.clone(),
            position: cut.position.clone(),
            finished: cut.finished,
            stateful_stages: self.stateful.clone(),
            states: cut.states,
            watermarks: cut.watermarks,
            outputs,
            totals: cut.totals,
        };
        let bytes = checkpoint.to_bytes();
        store.put(self.epoch, &bytes).map_err(|e| RunError::Checkpoint {
            location: store.location(),
            message: e.to_string(),
        })?;
        self.epoch += 1;
        for sink in out.all() {
            sink.commit()?;
        }
        self.taken += 1;
        let took = started.elapsed();
        self.slowest = self.slowest.max(took);
        Ok(Some((took, bytes.len())))
    }
}
