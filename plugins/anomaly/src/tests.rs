//! Transform-level tests: config JSON and Arrow batches in, through the same SDK glue the
//! component exports (`sluice_sdk::__private`), outputs decoded and checked row by row.
//! The SDK offers no public way to build an [`sluice_sdk::Emitter`] and read it back.

mod describe;
mod expiry;
mod quality;
mod routing;
mod scoring;
mod state;

use std::sync::Arc;

use sluice_sdk::__private::{self, bindings::exports::sluice::transform::transform as wit};
use sluice_sdk::arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray};
use sluice_sdk::arrow::compute::take_record_batch;
use sluice_sdk::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};
use sluice_sdk::testing::{host_batch, host_schema};
use sluice_sdk::{decode_batch, decode_schema, encode_batch, encode_schema};

use crate::Anomaly;

/// One reading: sequence number, device, temperature.
type Reading = (i64, Option<&'static str>, Option<f64>);

fn readings_schema() -> Schema {
    Schema::new(vec![
        Field::new("seq", DataType::Int64, false),
        Field::new("device", DataType::Utf8, true),
        Field::new("temp", DataType::Float64, true),
    ])
}

fn readings(rows: &[Reading]) -> RecordBatch {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(rows.iter().map(|r| r.0).collect::<Int64Array>()),
        Arc::new(rows.iter().map(|r| r.1).collect::<StringArray>()),
        Arc::new(rows.iter().map(|r| r.2).collect::<Float64Array>()),
    ];
    RecordBatch::try_new(Arc::new(readings_schema()), columns).unwrap()
}

/// Readings of one device numbered from `first`.
fn series(device: &'static str, first: i64, temps: &[f64]) -> RecordBatch {
    let rows: Vec<Reading> = temps
        .iter()
        .enumerate()
        .map(|(i, &t)| (first + i as i64, Some(device), Some(t)))
        .collect();
    readings(&rows)
}

/// `{"key":"device","value":"temp", <rest>}`.
fn config(rest: &str) -> String {
    if rest.is_empty() {
        r#"{"key":"device","value":"temp"}"#.to_owned()
    } else {
        format!(r#"{{"key":"device","value":"temp",{rest}}}"#)
    }
}

/// One output row: sequence number, flag, score.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Row {
    seq: i64,
    flag: bool,
    score: Option<f64>,
}

/// What one or more calls emitted, per output.
#[derive(Debug, Default, Clone, PartialEq)]
struct Out {
    main: Vec<Row>,
    anomalies: Vec<Row>,
}

impl Out {
    fn absorb(&mut self, other: Out) {
        self.main.extend(other.main);
        self.anomalies.extend(other.anomalies);
    }

    /// The scores of `main`, in order.
    fn scores(&self) -> Vec<Option<f64>> {
        self.main.iter().map(|r| r.score).collect()
    }

    /// The flags of `main`, in order.
    fn flags(&self) -> Vec<bool> {
        self.main.iter().map(|r| r.flag).collect()
    }
}

fn rows(batch: &RecordBatch) -> Vec<Row> {
    let seq = batch.column_by_name("seq").unwrap().as_primitive::<Int64Type>();
    let flags = batch.column_by_name(crate::IS_ANOMALY).unwrap().as_boolean();
    let scores = batch
        .column_by_name(crate::ANOMALY_SCORE)
        .unwrap()
        .as_primitive::<Float64Type>();
    assert_eq!(flags.null_count(), 0, "is_anomaly is never null");
    (0..batch.num_rows())
        .map(|i| Row {
            seq: seq.value(i),
            flag: flags.value(i),
            score: scores.is_valid(i).then(|| scores.value(i)),
        })
        .collect()
}

/// What a call emitted; for `process` (given its `input`), each row's input columns are
/// checked to be those of the input row its lineage names.
fn decode_outputs(outputs: Result<Vec<wit::OutputBatch>, wit::ProcessError>, input: Option<&RecordBatch>) -> Out {
    let outputs = match outputs {
        Ok(outputs) => outputs,
        Err(wit::ProcessError::InvalidInput(m) | wit::ProcessError::Failed(m)) => panic!("call failed: {m}"),
    };
    let mut out = Out::default();
    for output in outputs {
        let batch = checked(&output.output, decode_batch(output.batch.clone()).unwrap(), input);
        match output.output.as_str() {
            "main" => out.main.extend(rows(&batch)),
            "anomalies" => out.anomalies.extend(rows(&batch)),
            other => panic!("emitted to undeclared output {other}"),
        }
    }
    out
}

/// An emitted batch as the pipeline sees it; with the `input` of `process`, its rows' input
/// columns are checked to be those of the input rows their lineage names.
fn checked(output: &str, wire: RecordBatch, input: Option<&RecordBatch>) -> RecordBatch {
    let (batch, lineage) = host_batch(output, wire);
    let lineage = lineage.expect("every output names its input rows");
    if let Some(input) = input {
        let width = input.num_columns();
        let own = batch.project(&(0..width).collect::<Vec<_>>()).unwrap();
        assert_eq!(
            take_record_batch(input, &lineage).unwrap(),
            own,
            "lineage of `{output}`"
        );
    }
    batch
}

/// `open` the transform with `config` for batches of `schema`.
fn open(config: &str, schema: &Schema) {
    if let Err(e) = __private::open::<Anomaly>(config.to_owned(), encode_schema(schema).unwrap()) {
        panic!("open failed at {:?}: {}", e.path, e.message);
    }
}

fn process(batch: &RecordBatch) -> Out {
    decode_outputs(__private::process::<Anomaly>(encode_batch(batch).unwrap()), Some(batch))
}

/// The raw output batches of one call, by output name.
fn process_raw(batch: &RecordBatch) -> Vec<(String, RecordBatch)> {
    match __private::process::<Anomaly>(encode_batch(batch).unwrap()) {
        Ok(outputs) => outputs
            .into_iter()
            .map(|o| {
                let rows = checked(&o.output, decode_batch(o.batch).unwrap(), Some(batch));
                (o.output, rows)
            })
            .collect(),
        Err(e) => panic!("process failed: {e:?}"),
    }
}

fn snapshot() -> wit::StateSnapshot {
    __private::snapshot::<Anomaly>()
        .unwrap()
        .expect("the anomaly transform keeps state")
}

fn restore(state: wit::StateSnapshot) -> Result<(), wit::RestoreError> {
    __private::restore::<Anomaly>(state)
}

/// Everything `batches` emit, from a fresh instance.
fn run(config: &str, batches: &[RecordBatch]) -> Out {
    run_with(config, &readings_schema(), batches)
}

fn run_with(config: &str, schema: &Schema, batches: &[RecordBatch]) -> Out {
    open(config, schema);
    let mut out = Out::default();
    for b in batches {
        out.absorb(process(b));
    }
    out
}

/// The keys held by the open instance, least recently seen first, read from its snapshot.
fn held_keys() -> Vec<serde_json::Value> {
    let state: serde_json::Value = serde_json::from_slice(&snapshot().data).unwrap();
    state["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].clone())
        .collect()
}

fn path(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// `a` and `b` agree to 1e-12 relative.
fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-12 * b.abs().max(1.0)
}

/// Assert the scores equal `expected`, nulls exactly, numbers to 1e-12.
#[track_caller]
fn assert_scores(got: &[Option<f64>], expected: &[Option<f64>]) {
    assert_eq!(got.len(), expected.len(), "{got:?} vs {expected:?}");
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        match (g, e) {
            (None, None) => {}
            (Some(g), Some(e)) if close(*g, *e) => {}
            _ => panic!("row {i}: got {g:?}, expected {e:?} (all: {got:?})"),
        }
    }
}
