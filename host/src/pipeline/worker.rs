//! One worker: decodes chunks and runs them through its own instances of the transform
//! chain. Workers share nothing but the plan; batches, not records, cross into WASM. The
//! failure policy of each stage is `stage.rs`'s.

use std::sync::Arc;

use arrow::array::RecordBatch;

use super::lineage::{Lineage, Traced};
use super::plan::{Plan, StagePlan};
use super::sinks::Tap;
pub(crate) use super::stage::{Aside, WorkerError};
use super::stage::{Open, Policy, Routing, Stage, route};
use crate::checkpoint::{StageState, WatermarkState};
use crate::config::OnError;
use crate::decode::json::{Decoded, JsonDecoder};
use crate::decode::metadata::Metadata;
use crate::record::{Chunk, PartitionEvent, RecordIndex, SourceSpan};
use crate::telemetry::meters::StageMeters;

/// What a worker made of one chunk (or, with `seq` past the input, of the final flush).
#[derive(Debug)]
pub(crate) struct WorkResult {
    pub seq: u64,
    pub span: SourceSpan,
    /// The source partition's position after the chunk (key, source-owned value).
    pub position: Option<(Arc<str>, serde_json::Value)>,
    /// Partitions whose positions leave the checkpoint after the chunk.
    pub retired: Vec<Arc<str>>,
    /// The records as received, for sinks that take the source (with their count).
    pub raw: Option<(Vec<u8>, usize)>,
    pub ingest_micros: i64,
    pub rows_in: u64,
    /// What reached the end of the chain.
    pub output: Vec<Traced>,
    /// What names the chunk's records, for dead letters of rows whose lineage is known.
    pub records: RecordIndex,
    pub dead: Vec<Aside>,
    /// A checkpoint follows this result; `states` are the stateful stages' snapshots after it.
    pub barrier: bool,
    pub states: Vec<StageState>,
    pub watermarks: Vec<WatermarkState>,
}

/// A chunk's rows partway down the chain: through the stages before `next`, with what
/// left the chain so far. A single chain's decoding threads take its stateless head this far
/// (see `head.rs`); the worker goes on from `next`.
#[derive(Debug)]
pub(crate) struct Partial {
    next: usize,
    /// The plan generation the stages before `next` ran under (when any did).
    generation: u64,
    batches: Vec<Traced>,
    dead: Vec<Aside>,
    rows_in: u64,
    /// How many of `dead` came with the decoding (the rest, from stages).
    decoding_dead: usize,
}

impl Partial {
    /// The decoded rows of `chunk` (whose rejected records it takes) at the start of the chain.
    pub(crate) fn of(chunk: &mut Chunk, decoded: Decoded) -> Partial {
        let mut bad = decoded.bad;
        bad.append(&mut chunk.rejected);
        bad.sort_by_key(|b| b.index);
        let dead: Vec<Aside> = bad.into_iter().map(Aside::Raw).collect();
        Partial {
            next: 0,
            generation: 0,
            rows_in: decoded.batch.as_ref().map_or(0, |b| b.num_rows() as u64),
            batches: traced(decoded.batch, &decoded.records),
            decoding_dead: dead.len(),
            dead,
        }
    }
}

/// A decoded batch with the records its rows come from.
fn traced(batch: Option<RecordBatch>, records: &[usize]) -> Vec<Traced> {
    let lineage = Lineage::of_records(records);
    batch.map(|batch| Traced { batch, lineage }).into_iter().collect()
}

/// Decoding a chunk into the batch the chain starts from, with its metadata columns. A
/// reload swaps stages, never this, so it may run on a thread of its own ahead of the chain.
pub(crate) struct Decoding {
    decoder: JsonDecoder,
    metadata: Metadata,
}

impl Decoding {
    pub(crate) fn new(plan: &Plan) -> Self {
        Decoding {
            // Rows keep their records: metadata columns and dead letters of later stages name them.
            decoder: JsonDecoder::new(plan.decoded_schema.clone(), plan.decoding).tracking_records(),
            metadata: plan.metadata.clone(),
        }
    }

    pub(crate) fn decode(&self, chunk: &Chunk) -> Result<Decoded, WorkerError> {
        let mut decoded = self.decoder.decode(chunk)?;
        if !self.metadata.is_empty() {
            decoded.batch = decoded
                .batch
                .map(|b| self.metadata.append(b, chunk, &decoded.records))
                .transpose()?;
        }
        Ok(decoded)
    }
}

/// A decoder and a private instance of every stage.
pub(crate) struct Worker {
    decoding: Decoding,
    stages: Vec<Stage>,
    /// The plan of each stage, in the same order (a reload compares them).
    plans: Vec<Arc<StagePlan>>,
    /// A sink takes the records as received: hand them to the writer.
    keep_raw: bool,
}

impl Worker {
    /// A worker with fresh instances, stateful ones given `states` (one entry per stage).
    pub(crate) fn new(
        plan: &Plan,
        id: usize,
        states: &[Option<StageState>],
        watermarks: &[WatermarkState],
    ) -> Result<Self, WorkerError> {
        let mut stages: Vec<Stage> = plan
            .stages
            .iter()
            .enumerate()
            .map(|(i, s)| start(plan, s, i, id))
            .collect::<Result<_, _>>()?;
        for (stage, state) in stages.iter_mut().zip(states) {
            let Some(state) = state else { continue };
            let restore = |message: String| WorkerError::Restore {
                stage: stage.policy.name.clone(),
                message,
            };
            stage
                .instance
                .restore(state.format_version, state.data.clone())
                .map_err(|e| restore(e.to_string()))?;
            if let Some(log) = &mut stage.log {
                log.reset(Some((state.format_version, state.data.clone())));
            }
            if state.component != stage.policy.digest {
                tracing::info!(stage = %stage.policy.name, "State saved by another version of the component was accepted.");
            }
        }
        for w in watermarks {
            if let Some(tracker) = stages
                .iter_mut()
                .find(|s| s.policy.name == w.stage)
                .and_then(|s| s.tracker.as_mut())
            {
                tracker.restore(&w.partitions, w.watermark, std::time::Instant::now());
            }
        }
        Ok(Worker {
            decoding: Decoding::new(plan),
            stages,
            keep_raw: plan.sinks.iter().any(|s| s.tap == Tap::Source),
            plans: plan.stages.clone(),
        })
    }

    /// Switch to `plan` (a reload) between chunks: stages that did not change keep their
    /// instances; changed ones start afresh, a stateful one with the old instance's state
    /// (unless it refuses it and says `state = "discard"`). On any failure nothing changes
    /// and the reason is returned. Returns the names of the stages that changed.
    pub(crate) fn swap(&mut self, plan: &Plan, id: usize) -> Result<Vec<String>, String> {
        let mut fresh: Vec<Option<Stage>> = Vec::with_capacity(plan.stages.len());
        let mut changed = Vec::new();
        for (index, new) in plan.stages.iter().enumerate() {
            if self.plans.iter().any(|o| o.same_as(new)) {
                fresh.push(None);
                continue;
            }
            let old = self.stages.iter_mut().find(|s| s.policy.name == new.name);
            let mut stage = start(plan, new, index, id).map_err(|e| e.to_string())?;
            if let Some(old) = old {
                if new.stateful()
                    && let Some((version, data)) = old.snapshot().map_err(|e| e.to_string())?
                {
                    match stage.instance.restore(version, data.clone()) {
                        Ok(()) => {
                            if let Some(log) = &mut stage.log {
                                log.reset(Some((version, data)));
                            }
                        }
                        Err(e) if new.discard_state => {
                            tracing::warn!(stage = %new.name, error = %e, "The new version refused the running state; it starts empty (state = \"discard\").");
                            stage = start(plan, new, index, id).map_err(|e| e.to_string())?;
                        }
                        Err(e) => {
                            return Err(format!(
                                "transform `{}`: the new version refused the running state ({e}); set state = \"discard\" on it to start it empty",
                                new.name
                            ));
                        }
                    }
                }
                if let (Some(from), Some(to)) = (&old.tracker, &mut stage.tracker) {
                    let (partitions, watermark) = from.state();
                    to.restore(&partitions, watermark, std::time::Instant::now());
                }
            }
            changed.push(new.name.clone());
            fresh.push(Some(stage));
        }
        let mut old: Vec<Option<Stage>> = std::mem::take(&mut self.stages).into_iter().map(Some).collect();
        for (new, stage) in plan.stages.iter().zip(fresh) {
            let stage = match stage {
                Some(s) => s,
                None => old
                    .iter_mut()
                    .find(|o| o.as_ref().is_some_and(|o| o.policy.name == new.name))
                    .and_then(Option::take)
                    .ok_or_else(|| format!("stage `{}` vanished during the swap", new.name))?,
            };
            self.stages.push(stage);
        }
        for (index, stage) in self.stages.iter_mut().enumerate() {
            stage.routing = Routing::of(plan, index);
        }
        self.plans = plan.stages.clone();
        Ok(changed)
    }

    pub(crate) fn process(&mut self, mut chunk: Chunk) -> Result<WorkResult, WorkerError> {
        let decoded = self.decoding.decode(&chunk)?;
        let partial = Partial::of(&mut chunk, decoded);
        self.complete(chunk, partial)
    }

    /// A chunk decoded into the input of stage `from`, run from that stage on (`sluice test`
    /// and `sluice replay` feed a transform in the middle of the chain; a run feeds stage 0).
    pub(crate) fn process_at(
        &mut self,
        from: usize,
        mut chunk: Chunk,
        decoded: Decoded,
    ) -> Result<WorkResult, WorkerError> {
        let mut partial = Partial::of(&mut chunk, decoded);
        partial.next = from;
        self.complete(chunk, partial)
    }

    /// [`Self::complete`] of a chunk whose head ran on a decoding thread. When this worker's
    /// stages are of another plan generation than the head's (`applied`: its swap to the
    /// head's failed), the chunk is decoded again and runs here from the start instead.
    pub(crate) fn complete_ahead(
        &mut self,
        chunk: Chunk,
        mut partial: Partial,
        applied: u64,
    ) -> Result<WorkResult, WorkerError> {
        if partial.next > 0 && partial.generation != applied {
            let decoded = self.decoding.decode(&chunk)?;
            partial.next = 0;
            partial.batches = traced(decoded.batch, &decoded.records);
            // The decoding's dead letters are the same again: keep them, drop the stages'.
            partial.dead.truncate(partial.decoding_dead);
        }
        self.complete(chunk, partial)
    }

    /// Run `partial` through its next stages up to (not including) stage `to`, under plan
    /// generation `generation` (the one this worker's stages are of).
    pub(crate) fn advance(
        &mut self,
        chunk: &Chunk,
        partial: &mut Partial,
        to: usize,
        generation: u64,
    ) -> Result<(), WorkerError> {
        if to <= partial.next {
            return Ok(());
        }
        let feed = Feed {
            partition: &chunk.span.file,
            events: &chunk.events,
        };
        let batches = std::mem::take(&mut partial.batches);
        partial.batches = self.run_range(partial.next..to, batches, &mut partial.dead, Some(feed))?;
        partial.next = to;
        partial.generation = generation;
        Ok(())
    }

    /// Run `partial` through the rest of the chain: the chunk's result.
    pub(crate) fn complete(&mut self, mut chunk: Chunk, partial: Partial) -> Result<WorkResult, WorkerError> {
        let Partial {
            next,
            batches,
            mut dead,
            rows_in,
            ..
        } = partial;
        // Even a chunk with no rows moves the watermark: it may open or end partitions.
        let feed = Feed {
            partition: &chunk.span.file,
            events: &chunk.events,
        };
        let output = self.run_range(next..self.stages.len(), batches, &mut dead, Some(feed))?;
        let raw = self.keep_raw.then(|| {
            let count = chunk.records();
            (std::mem::take(&mut chunk.data), count)
        });
        let records = chunk.take_index();
        let (states, watermarks) = if chunk.barrier {
            (self.snapshot()?, self.watermarks())
        } else {
            Default::default()
        };
        Ok(WorkResult {
            seq: chunk.seq,
            span: chunk.span,
            position: chunk.position,
            retired: chunk.retired,
            raw,
            ingest_micros: chunk.ingest_micros,
            rows_in,
            output,
            records,
            dead,
            barrier: chunk.barrier,
            states,
            watermarks,
        })
    }

    /// Every watermarked stage's bookkeeping, in stage order.
    pub(crate) fn watermarks(&self) -> Vec<WatermarkState> {
        self.stages
            .iter()
            .filter_map(|s| {
                let (partitions, watermark) = s.tracker.as_ref()?.state();
                Some(WatermarkState {
                    stage: s.policy.name.clone(),
                    partitions,
                    watermark,
                })
            })
            .collect()
    }

    /// Every stateful stage's snapshot, in stage order.
    pub(crate) fn snapshot(&mut self) -> Result<Vec<StageState>, WorkerError> {
        let mut states = Vec::new();
        for stage in &mut self.stages {
            if !stage.policy.stateful {
                continue;
            }
            if let Some((format_version, data)) = stage.snapshot()? {
                states.push(StageState {
                    stage: stage.policy.name.clone(),
                    component: stage.policy.digest.clone(),
                    format_version,
                    data,
                });
            }
        }
        Ok(states)
    }

    /// The last result of a run, carrying the final snapshots. At the end of the input
    /// (`flush`) every stage is flushed first, in order, each flush flowing through the stages
    /// after it; a stopped run keeps what the stages hold for the next run instead.
    pub(crate) fn finish(
        &mut self,
        seq: u64,
        span: SourceSpan,
        ingest_micros: i64,
        flush: bool,
    ) -> Result<WorkResult, WorkerError> {
        let mut dead = Vec::new();
        let mut output = Vec::new();
        let flushed_stages = if flush { self.stages.len() } else { 0 };
        for k in 0..flushed_stages {
            let stage = &mut self.stages[k];
            let flushed = match stage.instance.finish() {
                Ok(outs) => stage.passed(route(&stage.routing, outs, &Lineage::Unknown, &mut dead)),
                Err(error) if stage.policy.on_error == OnError::Halt => {
                    return Err(WorkerError::Halted {
                        stage: stage.policy.name.clone(),
                        error,
                    });
                }
                Err(e) => {
                    tracing::error!(stage = %stage.policy.name, error = %e, "Transform failed while flushing at end of input; what it held is lost.");
                    Vec::new()
                }
            };
            output.extend(self.run_range(k + 1..self.stages.len(), flushed, &mut dead, None)?);
        }
        let states = self.snapshot()?;
        let watermarks = self.watermarks();
        Ok(WorkResult {
            seq,
            span,
            position: None,
            retired: Vec::new(),
            raw: None,
            ingest_micros,
            rows_in: 0,
            output,
            records: RecordIndex::default(),
            dead,
            barrier: true,
            states,
            watermarks,
        })
    }

    /// Run batches through `stages`, collecting what comes out of the last. Batches fed
    /// from the source move the watermark of stages that have one (with the partitions the
    /// chunk opened or ended); each such stage gets its risen watermark after the batches.
    fn run_range(
        &mut self,
        stages: std::ops::Range<usize>,
        mut batches: Vec<Traced>,
        dead: &mut Vec<Aside>,
        feed: Option<Feed<'_>>,
    ) -> Result<Vec<Traced>, WorkerError> {
        for stage in &mut self.stages[stages] {
            let mut next = Vec::with_capacity(batches.len());
            if let Some(f) = &feed {
                stage.partitions(f.events, true);
            }
            for batch in batches {
                if let Some(f) = &feed {
                    stage.observe(f.partition, &batch.batch);
                }
                next.extend(stage.run(batch, dead)?);
            }
            if let Some(f) = &feed {
                stage.partitions(f.events, false);
                next.extend(stage.advance_watermark(dead)?);
            }
            batches = next;
        }
        Ok(batches)
    }
}

/// What a chunk tells the watermarks: its partition, and the partitions opened or ended.
#[derive(Clone, Copy)]
struct Feed<'a> {
    partition: &'a str,
    events: &'a [PartitionEvent],
}

/// A stage of `plan` (at `index`) with a fresh instance for worker `id`.
fn start(plan: &Plan, stage: &Arc<StagePlan>, index: usize, id: usize) -> Result<Stage, WorkerError> {
    let opener: Arc<dyn Open> = Arc::new(stage.clone());
    let mut started = Stage::start(
        Policy::of(stage),
        opener,
        format!("{}/{}#{id}", plan.name, stage.name),
        Routing::of(plan, index),
    )?;
    started.meters = StageMeters::new(&plan.name, &stage.name);
    Ok(started)
}
