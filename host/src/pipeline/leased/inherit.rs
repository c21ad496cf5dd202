//! A child shard's start: its parents' state, and their last files published.

use std::collections::BTreeMap;
use std::time::Duration;

use super::keyed;
use super::{RunError, Worker, lease_err, retry};
use crate::checkpoint::{Checkpoint, SourcePosition, StageState, Totals, WatermarkState};
use crate::pipeline::sinks;
use crate::sink::recover::recover;
use crate::source::kinesis::coordinator::list_shards;
use crate::source::kinesis::lease::LeaseError;
use crate::source::kinesis::lease::item::Lease;
use crate::source::kinesis::lease::store::position_of;
use crate::source::kinesis::shard::StreamRef;

impl Worker<'_> {
    /// A child shard's start, before its own first checkpoint: the state its parents ended
    /// with (their leases at `SHARD_END` hold their final checkpoints). On a split each of the
    /// parent's keys goes on in one child; on a merge the child holds both parents' states
    /// (`keyed`).
    ///
    /// The parents' last files are published here too, in case their owner stopped between
    /// the final checkpoint and publishing them.
    pub(super) fn inherit(&self, lease: &Lease) -> Result<Option<Vec<u8>>, RunError> {
        if lease.sluice.is_some() || lease.parents.is_empty() {
            return Ok(None);
        }
        let location = format!("dynamodb://{}/{}", self.table.name(), lease.key);
        let refuse = |message: String| RunError::Checkpoint {
            location: location.clone(),
            message,
        };
        let mut parents = Vec::new();
        let mut parent_range = None;
        for parent in &lease.parents {
            let found = retry(&self.runtime, &self.stop, || self.table.get(parent)).map_err(lease_err)?;
            let Some(found) = found else { continue };
            parent_range = found.hash_range;
            let Some(bytes) = found.sluice else {
                continue;
            };
            let checkpoint = Checkpoint::from_bytes(&bytes).map_err(|m| refuse(format!("parent {parent}: {m}")))?;
            self.settle(parent, &checkpoint)?;
            parents.push((parent.clone(), checkpoint));
        }
        let Some((_, first)) = parents.first() else {
            return Ok(None);
        };
        let mut child = Checkpoint {
            epoch: 0,
            position: SourcePosition {
                next_seq: 0,
                partitions: BTreeMap::from([(
                    lease.key.clone(),
                    position_of(&lease.checkpoint, lease.sub_sequence).to_value(),
                )]),
                state: None,
            },
            finished: false,
            stateful_stages: Vec::new(),
            states: Vec::new(),
            watermarks: Vec::new(),
            outputs: Vec::new(),
            totals: Totals::default(),
            ..first.clone()
        };
        for (_, cp) in &parents {
            for name in &cp.stateful_stages {
                if !child.stateful_stages.contains(name) {
                    child.stateful_stages.push(name.clone());
                }
            }
        }
        // Each stage's state: the parents' states combined (a merge), the child's keys kept
        // (a split); see `keyed`.
        let mut stage_names: Vec<&str> = Vec::new();
        for (_, cp) in &parents {
            for state in &cp.states {
                if !stage_names.contains(&state.stage.as_str()) {
                    stage_names.push(&state.stage);
                }
            }
        }
        let split = match lease.parents.as_slice() {
            [parent] if !stage_names.is_empty() => self.split_of(lease, parent, parent_range)?,
            _ => None,
        };
        for name in stage_names {
            let states: Vec<&StageState> = parents
                .iter()
                .flat_map(|(_, cp)| cp.states.iter().filter(|s| s.stage == name))
                .collect();
            let state = match self.plan.stages.iter().find(|s| s.name == name) {
                Some(stage) => {
                    let label = format!("{}/{name}/{}", self.plan.name, lease.key);
                    keyed::child_state(stage, &states, split, &label).map_err(|m| {
                        refuse(format!(
                            "{} cannot start from the state of {}: {m}",
                            lease.key,
                            lease.parents.join(" and ")
                        ))
                    })?
                }
                // A stage no longer in the pipeline: its state is dropped at the restore.
                None => states[0].clone(),
            };
            tracing::info!(shard = %lease.key, parents = %lease.parents.join(" "), stage = %name, bytes = state.data.len(), "Starting from the parents' state.");
            child.states.push(state);
        }
        for (_, cp) in &parents {
            // Event time goes on in the child from where the parents reached.
            for w in &cp.watermarks {
                let latest = w.partitions.values().copied().max();
                match child.watermarks.iter_mut().find(|c| c.stage == w.stage) {
                    Some(c) => {
                        c.watermark = c.watermark.max(w.watermark);
                        if let Some(t) = latest {
                            let e = c.partitions.entry(lease.key.clone()).or_insert(t);
                            *e = (*e).max(t);
                        }
                    }
                    None => child.watermarks.push(WatermarkState {
                        stage: w.stage.clone(),
                        partitions: latest
                            .map(|t| BTreeMap::from([(lease.key.clone(), t)]))
                            .unwrap_or_default(),
                        watermark: w.watermark,
                    }),
                }
            }
        }
        Ok(Some(child.to_bytes()))
    }

    /// The hash key ranges of a split child and its parent: from their leases, or (a lease
    /// written without them) from `ListShards`; `None` when neither says.
    fn split_of(
        &self,
        child: &Lease,
        parent: &str,
        parent_range: Option<(u128, u128)>,
    ) -> Result<Option<keyed::Split>, RunError> {
        if let (Some(child), Some(parent)) = (child.hash_range, parent_range) {
            return Ok(Some(keyed::Split { child, parent }));
        }
        let stream = StreamRef::of(&self.spec.settings.stream);
        let listed = retry(&self.runtime, &self.stop, || async {
            list_shards(&self.kinesis, &stream, &self.stop)
                .await
                .map_err(LeaseError::Stream)
        })
        .map_err(lease_err)?;
        let range = |id: &str| listed.iter().find(|s| s.id == id).and_then(|s| s.hash_range);
        Ok(
            match (
                child.hash_range.or_else(|| range(&child.key)),
                parent_range.or_else(|| range(parent)),
            ) {
                (Some(child), Some(parent)) => Some(keyed::Split { child, parent }),
                _ => {
                    tracing::warn!(shard = %child.key, parent, "No hash key ranges for the split: the child keeps every key of its parent's state.");
                    None
                }
            },
        )
    }

    /// Publish the files a parent's final checkpoint lists (they may be in place already:
    /// then nothing happens), as recovery of that shard would.
    fn settle(&self, parent: &str, checkpoint: &Checkpoint) -> Result<(), RunError> {
        if checkpoint.outputs.is_empty() {
            return Ok(());
        }
        let p = self.plan;
        let mut attempt = 0;
        loop {
            let opened = sinks::open(&p.sinks, &p.dead_letter, &p.checkpoint, false, Some(parent))?;
            match recover(&opened.targets(), Some(checkpoint), &[]) {
                Ok(done) => {
                    if done.renamed > 0 {
                        tracing::info!(shard = %parent, files = done.renamed, "Published the ended parent's last files.");
                    }
                    return Ok(());
                }
                // Its owner may be publishing the same files right now: look again.
                Err(_) if attempt < 3 => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => {
                    return Err(RunError::Checkpoint {
                        location: format!("dynamodb://{}/{parent}", self.table.name()),
                        message: e.to_string(),
                    });
                }
            }
        }
    }
}
