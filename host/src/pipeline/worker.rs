//! One worker: decodes chunks and runs them through its own instances of the transform
//! chain. Workers share nothing but the plan; batches, not records, cross into WASM.

use std::sync::Arc;

use arrow::array::RecordBatch;

use super::plan::{Plan, StagePlan};
use crate::decode::BadRecord;
use crate::decode::json::JsonDecoder;
use crate::engine::{CallError, EngineError, TransformInstance};
use crate::source::{Chunk, SourceSpan};

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
}

/// Why a worker had to stop.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WorkerError {
    #[error("stage `{stage}`: {source}")]
    Engine { stage: String, source: EngineError },
    #[error("stage `{stage}` refused to open: {message}")]
    Open { stage: String, message: String },
    #[error("decoding: {0}")]
    Decode(#[from] arrow::error::ArrowError),
}

struct Stage {
    plan: Arc<StagePlan>,
    instance: TransformInstance,
    label: String,
}

impl Stage {
    fn start(plan: Arc<StagePlan>, label: String) -> Result<Self, WorkerError> {
        let instance = open(&plan, &label)?;
        Ok(Stage { plan, instance, label })
    }

    /// Replace a poisoned instance with a fresh one.
    fn recover(&mut self) -> Result<(), WorkerError> {
        self.instance = open(&self.plan, &self.label)?;
        Ok(())
    }
}

fn open(plan: &StagePlan, label: &str) -> Result<TransformInstance, WorkerError> {
    let stage = plan.name.clone();
    let mut instance = plan
        .component
        .instantiate(label)
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
    pub(crate) fn new(plan: &Plan, id: usize) -> Result<Self, WorkerError> {
        let stages = plan
            .stages
            .iter()
            .map(|s| Stage::start(s.clone(), format!("{}/{}#{id}", plan.name, s.name)))
            .collect::<Result<_, _>>()?;
        Ok(Worker {
            decoder: JsonDecoder::new(plan.input_schema.clone(), plan.batch_rows),
            stages,
        })
    }

    pub(crate) fn process(&mut self, chunk: Chunk) -> Result<WorkResult, WorkerError> {
        let decoded = self.decoder.decode(&chunk)?;
        let mut dead: Vec<DeadItem> = decoded.bad.into_iter().map(DeadItem::Raw).collect();
        let rows_in = decoded.batch.as_ref().map_or(0, |b| b.num_rows() as u64);
        let output = match decoded.batch {
            Some(batch) => self.run_from(0, vec![batch], &mut dead)?,
            None => Vec::new(),
        };
        Ok(WorkResult {
            seq: chunk.seq,
            span: chunk.span,
            ingest_micros: chunk.ingest_micros,
            rows_in,
            output,
            dead,
        })
    }

    /// End of input: flush every stage in order, each flush flowing through the stages after it.
    pub(crate) fn finish(&mut self, seq: u64, span: SourceSpan, ingest_micros: i64) -> Result<WorkResult, WorkerError> {
        let mut dead = Vec::new();
        let mut output = Vec::new();
        for k in 0..self.stages.len() {
            let flushed = {
                let stage = &mut self.stages[k];
                match stage.instance.finish() {
                    Ok(outs) => route(&stage.plan.name, outs, &mut dead),
                    Err(e) => {
                        tracing::warn!(stage = %stage.plan.name, error = %e, "Transform failed while flushing at end of input.");
                        if e.poisons_instance() {
                            stage.recover()?;
                        }
                        Vec::new()
                    }
                }
            };
            output.extend(self.run_from(k + 1, flushed, &mut dead)?);
        }
        Ok(WorkResult {
            seq,
            span,
            ingest_micros,
            rows_in: 0,
            output,
            dead,
        })
    }

    /// Run batches through stages `from..`, collecting what reaches the end.
    fn run_from(
        &mut self,
        from: usize,
        mut batches: Vec<RecordBatch>,
        dead: &mut Vec<DeadItem>,
    ) -> Result<Vec<RecordBatch>, WorkerError> {
        for stage in &mut self.stages[from..] {
            let mut next = Vec::with_capacity(batches.len());
            for batch in batches {
                match stage.instance.process(&batch) {
                    Ok(outs) => next.extend(route(&stage.plan.name, outs, dead)),
                    Err(e) => {
                        fail_batch(stage, &e, batch, dead);
                        if e.poisons_instance() {
                            stage.recover()?;
                        }
                    }
                }
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
        if name == sluice_sdk::MAIN {
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

/// The whole input batch of a failed call goes to dead letters with the reason.
fn fail_batch(stage: &Stage, err: &CallError, batch: RecordBatch, dead: &mut Vec<DeadItem>) {
    let digest = &stage.plan.component.digest()[..12];
    tracing::warn!(stage = %stage.plan.name, component = digest, rows = batch.num_rows(), error = %err, "Transform failed on a batch; its rows go to dead letters.");
    dead.push(DeadItem::Rows {
        stage: stage.plan.name.clone(),
        rows: batch,
        reason: Some(format!("transform {err} (component sha256 {digest}…)")),
    });
}
