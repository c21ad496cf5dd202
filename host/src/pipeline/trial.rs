//! Records pushed through a plan's chain with no source and no sink: what `sluice test` and
//! `sluice replay` run. The chain is a worker's, with the same compiled components, limits
//! and failure policy a run uses; the input ends after the records, so stateful stages are
//! flushed (a window emits what it holds).

use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};

use super::plan::Plan;
use super::worker::{Aside, WorkResult, Worker, WorkerError};
use crate::decode::json::{DecodeOptions, JsonDecoder};
use crate::record::{Chunk, SourceSpan};

/// What the records became.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The rows that reached the end of the chain, in order.
    pub rows: Vec<RecordBatch>,
    /// Dead letters, in order.
    pub dead: Vec<DeadLetter>,
}

/// A dead letter: who sent it, why, and the record or row.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The stage (`decode` for records that could not be decoded).
    pub stage: String,
    /// The reason.
    pub reason: String,
    /// The raw record (decode) or the row as the stage got it (one row).
    pub record: DeadRecord,
}

/// The record a dead letter holds.
#[derive(Debug, Clone, PartialEq)]
pub enum DeadRecord {
    /// The raw bytes of a record that could not be decoded.
    Raw(Vec<u8>),
    /// A row, as a one-row batch.
    Row(RecordBatch),
}

/// Why records could not be pushed through.
#[derive(Debug, thiserror::Error)]
pub enum TrialError {
    /// No transform of that name.
    #[error("the pipeline has no transform named `{0}`")]
    NoStage(String),
    /// A stage could not start, or halted.
    #[error(transparent)]
    Worker(#[from] WorkerError),
    /// Decoding failed as a whole.
    #[error("decoding: {0}")]
    Decode(#[from] arrow::error::ArrowError),
}

/// Push `records` (each one record's bytes) through `plan`'s chain, from the transform named
/// `stage` (decoded into its input schema) or from the start (through the source's decoder
/// and metadata columns).
pub fn push(plan: &Plan, stage: Option<&str>, records: &[Vec<u8>]) -> Result<Outcome, TrialError> {
    let from = match stage {
        None => 0,
        Some(name) => plan
            .stages
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| TrialError::NoStage(name.to_owned()))?,
    };
    let states = vec![None; plan.stages.len()];
    let mut worker = Worker::new(plan, 0, &states, &[])?;
    let mut chunk = Chunk {
        span: SourceSpan {
            file: Arc::from("test"),
            first_line: 1,
            last_line: records.len() as u64,
            start_offset: 0,
            end_offset: 0,
        },
        ingest_micros: chrono::Utc::now().timestamp_micros(),
        ..Chunk::default()
    };
    for r in records {
        chunk.push_record(r);
    }
    chunk.span.end_offset = chunk.data.len() as u64;
    let span = chunk.span.clone();
    let ingest = chunk.ingest_micros;
    let first = if stage.is_none() {
        worker.process(chunk)?
    } else {
        let input = plan.stages[from].input.clone();
        let options = DecodeOptions {
            inferred_from: None,
            ..plan.decoding
        };
        let decoded = JsonDecoder::new(input, options).tracking_records().decode(&chunk)?;
        worker.process_at(from, chunk, decoded)?
    };
    let last = worker.finish(1, span, ingest, true)?;
    let mut outcome = Outcome::default();
    for result in [first, last] {
        collect(result, &mut outcome);
    }
    Ok(outcome)
}

fn collect(result: WorkResult, outcome: &mut Outcome) {
    outcome.rows.extend(result.output.into_iter().map(|t| t.batch));
    for aside in result.dead {
        match aside {
            Aside::Raw(bad) => outcome.dead.push(DeadLetter {
                stage: "decode".into(),
                reason: bad.reason,
                record: DeadRecord::Raw(bad.raw),
            }),
            Aside::Rows {
                stage, rows, reason, ..
            } => {
                let (rows, reasons) = match reason {
                    Some(r) => {
                        let n = rows.num_rows();
                        (rows, vec![Some(r); n])
                    }
                    None => split_reasons(rows),
                };
                for i in 0..rows.num_rows() {
                    outcome.dead.push(DeadLetter {
                        stage: stage.clone(),
                        reason: reasons.get(i).cloned().flatten().unwrap_or_else(|| "rejected".into()),
                        record: DeadRecord::Row(rows.slice(i, 1)),
                    });
                }
            }
            Aside::Tap { .. } => {}
        }
    }
}

/// Rows a stage rejected carry their reason as the last column.
fn split_reasons(mut rows: RecordBatch) -> (RecordBatch, Vec<Option<String>>) {
    let last = rows.num_columns().saturating_sub(1);
    let reasons = rows
        .column(last)
        .as_string_opt::<i32>()
        .map(|r| r.iter().map(|v| v.map(str::to_owned)).collect())
        .unwrap_or_default();
    rows.remove_column(last);
    (rows, reasons)
}
