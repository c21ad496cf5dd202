//! Where a run starts: from the latest checkpoint (after settling the output it lists), or
//! from the beginning (`--from-scratch`, no checkpoint yet, or checkpoints off).

use crate::checkpoint::protocol::{ReloadChanges, StageIdentity, assign_states, check_source, next_epoch};
use crate::checkpoint::store::CheckpointStore;
use crate::checkpoint::{Checkpoint, SourcePosition, StageState, Totals, WatermarkState};

use super::outcome::RunError;
use super::plan::Plan;
use crate::sink::recover::{Recovered, Target, recover};

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

/// Decide where the run starts and settle the output of an interrupted run.
pub(crate) fn prepare(
    plan: &Plan,
    from_scratch: bool,
    roots: &[Target<'_>],
    changes: &ReloadChanges,
) -> Result<Start, RunError> {
    let fresh = |store, epoch| Start {
        store,
        epoch,
        position: SourcePosition::default(),
        states: vec![None; plan.stages.len()],
        watermarks: Vec::new(),
        totals: Totals::default(),
        resumed: None,
    };
    if !plan.checkpoint.enabled || !plan.source.resumable() {
        if plan.checkpoint.enabled {
            tracing::info!("Standard input cannot be read again, so this run does not checkpoint.");
        }
        recover(roots, None, &[])?;
        return Ok(fresh(None, 0));
    }
    let store = plan.open_store();
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
                output = %plan.sinks.iter().map(|s| s.place.to_string()).collect::<Vec<_>>().join(", "),
                "Starting from scratch: the checkpoint is ignored and superseded. Earlier output is not deleted: files whose names recur are rewritten, others stay beside the new ones."
            );
        }
        recover(roots, None, &[])?;
        return Ok(fresh(Some(store), epoch));
    }
    let Some((_, bytes)) = latest else {
        recover(roots, None, &[])?;
        return Ok(fresh(Some(store), 1));
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
    let states = assign_states(&checkpoint, &stages, changes).map_err(refused)?;
    for stage in &changes.added {
        tracing::info!(stage = %stage, "The reload added this stateful transform: it starts empty.");
    }
    for stage in &changes.removed {
        tracing::info!(stage = %stage, "The reload removed this stateful transform: its saved state is dropped.");
    }
    let recovered = recover(roots, Some(&checkpoint), &changes.removed_sinks).map_err(|e| err(e.to_string()))?;
    tracing::info!(
        epoch = checkpoint.epoch,
        partitions = checkpoint.position.partitions.len(),
        next_chunk = checkpoint.position.next_seq,
        sealed = recovered.sealed,
        renamed = recovered.renamed,
        deleted = recovered.deleted,
        "Resuming from checkpoint."
    );
    Ok(Start {
        store: Some(store),
        epoch: next_epoch(Some(&checkpoint)),
        position: checkpoint.position,
        states,
        watermarks: checkpoint.watermarks,
        totals: checkpoint.totals,
        resumed: Some((checkpoint.epoch, recovered)),
    })
}
