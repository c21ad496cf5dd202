//! One worker: decodes chunks and runs them through its own instances of the transform
//! chain. Workers share nothing but the plan; batches, not records, cross into WASM.
//!
//! When a transform fails on a batch, its `on_error` policy decides: `dead_letter` bisects
//! the batch (a bounded number of calls) so only the failing rows become dead letters,
//! `skip_batch` dead-letters the whole batch, `halt` stops the pipeline. A trap replaces the
//! instance before the next call; a deadline trap is not bisected (each try would cost a
//! whole deadline). A transform whose batches fail entirely `quarantine_after` times in a
//! row is quarantined: the pipeline halts rather than spin on a broken component.

use std::sync::Arc;

use arrow::array::RecordBatch;

use super::plan::{Plan, StagePlan};
use super::state_log::{Event, StateLog};
use super::watermark::{WatermarkTracker, max_event_micros};
use crate::checkpoint::{StageState, WatermarkState};
use crate::config::OnError;
use crate::decode::BadRecord;
use crate::decode::json::JsonDecoder;
use crate::engine::{CallError, EngineError, TransformInstance};
use crate::source::{Chunk, SourceSpan};

/// Calls one failing batch may spend on bisection; what is not isolated by then is
/// dead-lettered in whole halves. 128 calls isolate about five bad rows in 8192.
const MAX_BISECT_CALLS: u32 = 128;

/// Something for the dead-letter sink.
#[derive(Debug)]
pub(crate) enum DeadItem {
    /// A line that could not be decoded.
    Raw(BadRecord),
    /// Rows a stage rejected (reason column last) or failed on (`reason` given).
    Rows {
        stage: String,
        rows: RecordBatch,
        reason: Option<String>,
    },
}

/// What a worker made of one chunk (or, with `seq` past the input, of the final flush).
#[derive(Debug)]
pub(crate) struct WorkResult {
    pub seq: u64,
    pub span: SourceSpan,
    pub ingest_micros: i64,
    pub rows_in: u64,
    pub output: Vec<RecordBatch>,
    pub dead: Vec<DeadItem>,
    /// A checkpoint follows this result; `states` are the stateful stages' snapshots after it.
    pub barrier: bool,
    pub states: Vec<StageState>,
    pub watermarks: Vec<WatermarkState>,
}

/// Why a worker had to stop.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WorkerError {
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

struct Stage {
    plan: Arc<StagePlan>,
    instance: TransformInstance,
    label: String,
    /// Consecutive batches of which no row got through.
    failed_batches: u32,
    /// For a stateful stage: how to rebuild its state after a failure.
    log: Option<StateLog>,
    /// For a stage with a watermark: event time seen per source partition.
    tracker: Option<WatermarkTracker>,
}

impl Stage {
    fn start(plan: Arc<StagePlan>, label: String) -> Result<Self, WorkerError> {
        let instance = open(&plan, &label)?;
        let log = plan.description.state_format.map(|_| StateLog::default());
        let tracker = plan.watermark.map(|w| WatermarkTracker::new(w.settings));
        Ok(Stage {
            plan,
            instance,
            label,
            failed_batches: 0,
            log,
            tracker,
        })
    }

    /// Call `process`. A stateless stage's instance is replaced if the call poisoned it; a
    /// stateful stage's is replaced after any failure and its state rebuilt without the batch.
    fn call(&mut self, batch: &RecordBatch) -> Result<Result<Vec<(String, RecordBatch)>, CallError>, WorkerError> {
        let result = self.instance.process(batch);
        match (&result, &mut self.log) {
            (Ok(_), Some(log)) => {
                if log.record(batch) {
                    self.snapshot()?;
                }
            }
            (Err(_), Some(_)) => self.rebuild()?,
            (Err(e), None) if e.poisons_instance() => self.instance = open(&self.plan, &self.label)?,
            _ => {}
        }
        Ok(result)
    }

    /// The stage's snapshot (stateful stages only); the state log starts again from it.
    fn snapshot(&mut self) -> Result<Option<(u32, Vec<u8>)>, WorkerError> {
        let snapshot = self.instance.snapshot().map_err(|error| WorkerError::Snapshot {
            stage: self.plan.name.clone(),
            error,
        })?;
        if let Some(log) = &mut self.log {
            log.reset(snapshot.clone());
        }
        Ok(snapshot)
    }

    /// A fresh instance with the last snapshot restored and the batches since replayed.
    fn rebuild(&mut self) -> Result<(), WorkerError> {
        let Some(log) = &self.log else { return Ok(()) };
        let mut instance = open(&self.plan, &self.label)?;
        let failed = |message: String| WorkerError::Rebuild {
            stage: self.plan.name.clone(),
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
        tracing::warn!(stage = %self.plan.name, replayed = log.replay().len(), "Stateful transform failed; its state was rebuilt from the last snapshot without the failed batch.");
        self.instance = instance;
        Ok(())
    }

    /// Note the event time of a batch this stage was given, from source partition `partition`.
    fn observe(&mut self, partition: &str, batch: &RecordBatch) {
        let (Some(tracker), Some(w)) = (&mut self.tracker, self.plan.watermark) else {
            return;
        };
        // A file source reads one file after another: the others are done.
        tracker.close_all_but(partition);
        if let Some(max) = max_event_micros(batch, w.column) {
            tracker.observe(partition, max, std::time::Instant::now());
        }
    }

    /// Pass a risen watermark to the component; returns what it emits to `main`.
    fn advance_watermark(&mut self, dead: &mut Vec<DeadItem>) -> Result<Vec<RecordBatch>, WorkerError> {
        let Some(micros) = self.tracker.as_mut().and_then(|t| t.advance(std::time::Instant::now())) else {
            return Ok(Vec::new());
        };
        match self.instance.advance_watermark(micros) {
            Ok(outs) => {
                if let Some(log) = &mut self.log {
                    log.record_watermark(micros);
                }
                Ok(route(&self.plan.name, outs, dead))
            }
            Err(error) if self.plan.on_error == OnError::Halt => Err(WorkerError::Halted {
                stage: self.plan.name.clone(),
                error,
            }),
            Err(error) => {
                tracing::error!(stage = %self.plan.name, error = %error, "Transform failed advancing its watermark; its state is rebuilt and the watermark retried with the next batch.");
                self.rebuild()?;
                Ok(Vec::new())
            }
        }
    }

    /// One batch through this stage under its `on_error` policy; returns its `main` output.
    fn run(&mut self, batch: RecordBatch, dead: &mut Vec<DeadItem>) -> Result<Vec<RecordBatch>, WorkerError> {
        let err = match self.call(&batch)? {
            Ok(outs) => {
                self.failed_batches = 0;
                return Ok(route(&self.plan.name, outs, dead));
            }
            Err(err) => err,
        };
        let rows = batch.num_rows();
        let stateful = self.plan.description.state_format.is_some();
        let mut main = Vec::new();
        let failed = match self.plan.on_error {
            OnError::Halt => {
                return Err(WorkerError::Halted {
                    stage: self.plan.name.clone(),
                    error: err,
                });
            }
            // Re-feeding parts of a batch to a stateful transform would count rows twice.
            OnError::SkipBatch => self.dead_letter(&err, batch, dead),
            OnError::DeadLetter if stateful || matches!(err, CallError::Timeout(_)) => {
                self.dead_letter(&err, batch, dead)
            }
            OnError::DeadLetter => {
                let mut budget = MAX_BISECT_CALLS;
                self.bisect(batch, err.clone(), &mut main, dead, &mut budget)?
            }
        };
        if failed == rows {
            self.failed_batches += 1;
            if self.failed_batches >= self.plan.quarantine_after {
                return Err(WorkerError::Quarantined {
                    stage: self.plan.name.clone(),
                    batches: self.failed_batches,
                    error: err,
                });
            }
        } else {
            self.failed_batches = 0;
        }
        Ok(main)
    }

    /// Halve a failed batch until the failing rows are alone (or the budget is spent);
    /// returns how many rows became dead letters. Output keeps the batch's row order.
    fn bisect(
        &mut self,
        batch: RecordBatch,
        err: CallError,
        main: &mut Vec<RecordBatch>,
        dead: &mut Vec<DeadItem>,
        budget: &mut u32,
    ) -> Result<usize, WorkerError> {
        let rows = batch.num_rows();
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
            match self.call(&part)? {
                Ok(outs) => main.extend(route(&self.plan.name, outs, dead)),
                Err(e) => failed += self.bisect(part, e, main, dead, budget)?,
            }
        }
        Ok(failed)
    }

    /// The rows of a failed call become dead letters with the reason; returns their count.
    fn dead_letter(&self, err: &CallError, batch: RecordBatch, dead: &mut Vec<DeadItem>) -> usize {
        let digest = &self.plan.component.digest()[..12];
        let rows = batch.num_rows();
        tracing::warn!(stage = %self.plan.name, component = digest, rows, error = %err, "Transform failed; rows go to dead letters.");
        dead.push(DeadItem::Rows {
            stage: self.plan.name.clone(),
            rows: batch,
            reason: Some(format!("transform {err} (component sha256 {digest}…)")),
        });
        rows
    }
}

fn open(plan: &StagePlan, label: &str) -> Result<TransformInstance, WorkerError> {
    let stage = plan.name.clone();
    let mut instance = plan
        .component
        .instantiate(label, &plan.limits)
        .map_err(|source| WorkerError::Engine {
            stage: stage.clone(),
            source,
        })?;
    match instance.open(&plan.config_json, &plan.input, &plan.description) {
        Ok(Ok(())) => Ok(instance),
        Ok(Err(e)) => Err(WorkerError::Open {
            stage,
            message: e.message,
        }),
        Err(e) => Err(WorkerError::Open {
            stage,
            message: e.to_string(),
        }),
    }
}

/// A decoder and a private instance of every stage.
pub(crate) struct Worker {
    decoder: JsonDecoder,
    stages: Vec<Stage>,
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
            .map(|s| Stage::start(s.clone(), format!("{}/{}#{id}", plan.name, s.name)))
            .collect::<Result<_, _>>()?;
        for (stage, state) in stages.iter_mut().zip(states) {
            let Some(state) = state else { continue };
            let restore = |message: String| WorkerError::Restore {
                stage: stage.plan.name.clone(),
                message,
            };
            stage
                .instance
                .restore(state.format_version, state.data.clone())
                .map_err(|e| restore(e.to_string()))?;
            if let Some(log) = &mut stage.log {
                log.reset(Some((state.format_version, state.data.clone())));
            }
            if state.component != stage.plan.component.digest() {
                tracing::info!(stage = %stage.plan.name, "State saved by another version of the component was accepted.");
            }
        }
        for w in watermarks {
            if let Some(tracker) = stages
                .iter_mut()
                .find(|s| s.plan.name == w.stage)
                .and_then(|s| s.tracker.as_mut())
            {
                tracker.restore(&w.partitions, w.watermark, std::time::Instant::now());
            }
        }
        Ok(Worker {
            decoder: JsonDecoder::new(plan.input_schema.clone(), plan.batch_rows),
            stages,
        })
    }

    /// Switch to `plan` (a reload) between chunks: stages that did not change keep their
    /// instances; changed ones start afresh, a stateful one with the old instance's state
    /// (unless it refuses it and says `state = "discard"`). On any failure nothing changes
    /// and the reason is returned. Returns the names of the stages that changed.
    pub(crate) fn swap(&mut self, plan: &Plan, id: usize) -> Result<Vec<String>, String> {
        let mut fresh: Vec<Option<Stage>> = Vec::with_capacity(plan.stages.len());
        let mut changed = Vec::new();
        for new in &plan.stages {
            let old = self.stages.iter_mut().find(|s| s.plan.name == new.name);
            if old.as_ref().is_some_and(|o| o.plan.same_as(new)) {
                fresh.push(None);
                continue;
            }
            let label = format!("{}/{}#{id}", plan.name, new.name);
            let mut stage = Stage::start(new.clone(), label).map_err(|e| e.to_string())?;
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
                            stage = Stage::start(new.clone(), format!("{}/{}#{id}", plan.name, new.name))
                                .map_err(|e| e.to_string())?;
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
                    .find(|o| o.as_ref().is_some_and(|o| o.plan.name == new.name))
                    .and_then(Option::take)
                    .ok_or_else(|| format!("stage `{}` vanished during the swap", new.name))?,
            };
            self.stages.push(stage);
        }
        Ok(changed)
    }

    pub(crate) fn process(&mut self, mut chunk: Chunk) -> Result<WorkResult, WorkerError> {
        let decoded = self.decoder.decode(&chunk)?;
        let mut bad = decoded.bad;
        if !chunk.topics.is_empty() {
            for b in &mut bad {
                let index = b.line.saturating_sub(chunk.span.first_line) as usize;
                b.topic = chunk.topics.get(index).cloned();
            }
        }
        bad.append(&mut chunk.rejected);
        bad.sort_by_key(|b| b.line);
        let mut dead: Vec<DeadItem> = bad.into_iter().map(DeadItem::Raw).collect();
        let rows_in = decoded.batch.as_ref().map_or(0, |b| b.num_rows() as u64);
        let output = match decoded.batch {
            Some(batch) => self.run_from(0, vec![batch], &mut dead, Some(&chunk.span.file))?,
            None => Vec::new(),
        };
        let (states, watermarks) = if chunk.barrier {
            (self.snapshot()?, self.watermarks())
        } else {
            Default::default()
        };
        Ok(WorkResult {
            seq: chunk.seq,
            span: chunk.span,
            ingest_micros: chunk.ingest_micros,
            rows_in,
            output,
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
                    stage: s.plan.name.clone(),
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
            if stage.plan.description.state_format.is_none() {
                continue;
            }
            if let Some((format_version, data)) = stage.snapshot()? {
                states.push(StageState {
                    stage: stage.plan.name.clone(),
                    component: stage.plan.component.digest().to_owned(),
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
                Ok(outs) => route(&stage.plan.name, outs, &mut dead),
                Err(error) if stage.plan.on_error == OnError::Halt => {
                    return Err(WorkerError::Halted {
                        stage: stage.plan.name.clone(),
                        error,
                    });
                }
                Err(e) => {
                    tracing::error!(stage = %stage.plan.name, error = %e, "Transform failed while flushing at end of input; what it held is lost.");
                    Vec::new()
                }
            };
            output.extend(self.run_from(k + 1, flushed, &mut dead, None)?);
        }
        let states = self.snapshot()?;
        let watermarks = self.watermarks();
        Ok(WorkResult {
            seq,
            span,
            ingest_micros,
            rows_in: 0,
            output,
            dead,
            barrier: true,
            states,
            watermarks,
        })
    }

    /// Run batches through stages `from..`, collecting what reaches the end. Batches that
    /// came from source partition `partition` move the watermark of stages that have one;
    /// each such stage gets its risen watermark after the batches.
    fn run_from(
        &mut self,
        from: usize,
        mut batches: Vec<RecordBatch>,
        dead: &mut Vec<DeadItem>,
        partition: Option<&str>,
    ) -> Result<Vec<RecordBatch>, WorkerError> {
        for stage in &mut self.stages[from..] {
            let mut next = Vec::with_capacity(batches.len());
            for batch in batches {
                if let Some(p) = partition {
                    stage.observe(p, &batch);
                }
                next.extend(stage.run(batch, dead)?);
            }
            if partition.is_some() {
                next.extend(stage.advance_watermark(dead)?);
            }
            batches = next;
        }
        Ok(batches)
    }
}

/// `main` continues; `rejected` goes to dead letters (the plan refuses other outputs).
fn route(stage: &str, outs: Vec<(String, RecordBatch)>, dead: &mut Vec<DeadItem>) -> Vec<RecordBatch> {
    let mut main = Vec::new();
    for (name, batch) in outs {
        if name == sluice_contract::MAIN {
            main.push(batch);
        } else {
            dead.push(DeadItem::Rows {
                stage: stage.to_owned(),
                rows: batch,
                reason: None,
            });
        }
    }
    main
}
