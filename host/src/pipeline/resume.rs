//! Where a run starts: from the latest checkpoint (after settling the output it lists), or
//! from the beginning (`--from-scratch`, no checkpoint yet, or checkpoints off).

use crate::checkpoint::protocol::{StageIdentity, assign_states, check_source, next_epoch};
use crate::checkpoint::recover::{Recovered, Roots, recover};
use crate::checkpoint::store::CheckpointStore;
use crate::checkpoint::store::fs::FsStore;
use crate::checkpoint::{Checkpoint, SourcePosition, StageState, Totals, WatermarkState};
use crate::source::file::Inputs;

use super::plan::Plan;
use super::run::RunError;

/// How a run begins.
pub(crate) struct Start {
    /// Where checkpoints go; `None` when the run does not checkpoint.
    pub store: Option<Box<dyn CheckpointStore>>,
    /// The epoch of the next checkpoint.
    pub epoch: u64,
    /// Where reading begins.
    pub position: SourcePosition,
    /// One entry per stage: the state to restore.
    pub states: Vec<Option<StageState>>,
    /// Watermark bookkeeping to restore.
    pub watermarks: Vec<WatermarkState>,
    /// Totals of earlier runs.
    pub totals: Totals,
    /// The checkpoint resumed from, and what recovery did.
    pub resumed: Option<(u64, Recovered)>,
}

/// The folders a plan's output lives in.
pub(crate) fn roots(plan: &Plan) -> Roots {
    Roots {
        sink: plan.sink.dir.clone(),
        dead_letter: plan.dead_letter_dir.clone(),
        checkpoints: plan.checkpoint.path.clone(),
    }
}

/// Decide where the run starts and settle the output of an interrupted run.
pub(crate) fn prepare(plan: &Plan, from_scratch: bool) -> Result<Start, RunError> {
    let roots = roots(plan);
    let fresh = |store, epoch| Start {
        store,
        epoch,
        position: SourcePosition::default(),
        states: vec![None; plan.stages.len()],
        watermarks: Vec::new(),
        totals: Totals::default(),
        resumed: None,
    };
    if !plan.checkpoint.enabled || plan.inputs == Inputs::Stdin {
        if plan.checkpoint.enabled {
            tracing::info!("Standard input cannot be read again, so this run does not checkpoint.");
        }
        recover(&roots, None)?;
        return Ok(fresh(None, 0));
    }
    let store = FsStore::new(&plan.checkpoint.path);
    let location = store.location();
    let err = |message: String| RunError::Checkpoint {
        location: location.clone(),
        message,
    };
    let latest = store.latest().map_err(|e| err(e.to_string()))?;
    if from_scratch {
        let epoch = latest.as_ref().map_or(1, |(e, _)| e + 1);
        if latest.is_some() {
            tracing::warn!(
                checkpoint = %location,
                output = %plan.sink.dir.display(),
                "Starting from scratch: the checkpoint is ignored and superseded. Earlier output is not deleted: files whose names recur are rewritten, others stay beside the new ones."
            );
        }
        recover(&roots, None)?;
        return Ok(fresh(Some(Box::new(store)), epoch));
    }
    let Some((_, bytes)) = latest else {
        recover(&roots, None)?;
        return Ok(fresh(Some(Box::new(store)), 1));
    };
    let checkpoint =
        Checkpoint::from_bytes(&bytes).map_err(|m| err(format!("{m}; run with --from-scratch to ignore it")))?;
    let refused = |r: crate::checkpoint::Refusal| err(r.to_string());
    check_source(&checkpoint, &plan.source_id).map_err(refused)?;
    let stages: Vec<StageIdentity> = plan
        .stages
        .iter()
        .map(|s| StageIdentity {
            name: s.name.clone(),
            stateful: s.description.state_format.is_some(),
        })
        .collect();
    let states = assign_states(&checkpoint, &stages).map_err(refused)?;
    let recovered = recover(&roots, Some(&checkpoint)).map_err(|e| err(e.to_string()))?;
    tracing::info!(
        epoch = checkpoint.epoch,
        file = checkpoint.position.file.as_deref().unwrap_or("-"),
        offset = checkpoint.position.offset,
        sealed = recovered.sealed,
        renamed = recovered.renamed,
        deleted = recovered.deleted,
        "Resuming from checkpoint."
    );
    Ok(Start {
        store: Some(Box::new(store)),
        epoch: next_epoch(Some(&checkpoint)),
        position: checkpoint.position,
        states,
        watermarks: checkpoint.watermarks,
        totals: checkpoint.totals,
        resumed: Some((checkpoint.epoch, recovered)),
    })
}
