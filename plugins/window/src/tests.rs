//! Transform-level tests: config JSON and Arrow batches in, through the same SDK glue the
//! component exports (`sluice_sdk::__private`), outputs decoded and checked row by row.
//! The SDK offers no public way to build an [`sluice_sdk::Emitter`] and read it back.
//!
//! Event times in these tests are milliseconds (the `event_time` column is a millisecond
//! timestamp); watermarks are given to the transform in microseconds, as the host does.

mod aggregates;
mod describe;
mod lateness;
mod state;
mod windows;

use std::sync::Arc;

use sluice_sdk::__private::{self, bindings::exports::sluice::transform::transform as wit};
use sluice_sdk::arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray};
use sluice_sdk::arrow::compute::cast;
use sluice_sdk::arrow::compute::take_record_batch;
use sluice_sdk::arrow::datatypes::{DataType, Field, Int64Type, Schema, TimeUnit};
use sluice_sdk::arrow::util::display::{ArrayFormatter, FormatOptions};
use sluice_sdk::testing::{host_batch, host_schema};
use sluice_sdk::{REASON_COLUMN, decode_batch, decode_schema, encode_batch, encode_schema};

use crate::Window;

/// One trade: event time (ms), ticker, price, quantity.
type Trade = (Option<i64>, Option<&'static str>, Option<f64>, Option<i64>);

fn trades_schema() -> Schema {
    Schema::new(vec![
        Field::new("event_time", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        Field::new("ticker", DataType::Utf8, true),
        Field::new("price", DataType::Float64, true),
        Field::new("qty", DataType::Int64, true),
    ])
}

fn trades(rows: &[Trade]) -> RecordBatch {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(
            rows.iter()
                .map(|r| r.0)
                .collect::<sluice_sdk::arrow::array::TimestampMillisecondArray>(),
        ),
        Arc::new(rows.iter().map(|r| r.1).collect::<StringArray>()),
        Arc::new(rows.iter().map(|r| r.2).collect::<Float64Array>()),
        Arc::new(rows.iter().map(|r| r.3).collect::<Int64Array>()),
    ];
    RecordBatch::try_new(Arc::new(trades_schema()), columns).unwrap()
}

/// Trades at `times` (ms) of ticker `t` with price 1.0 and quantity 1.
fn at(ticker: &'static str, times: &[i64]) -> RecordBatch {
    let rows: Vec<Trade> = times
        .iter()
        .map(|&t| (Some(t), Some(ticker), Some(1.0), Some(1)))
        .collect();
    trades(&rows)
}

/// `{"time_column":"event_time", <rest>}`.
fn config(rest: &str) -> String {
    format!(r#"{{"time_column":"event_time",{rest}}}"#)
}

/// What one call emitted: `main` rows rendered as text, and rejected rows as (event time
/// in the column's unit, reason).
#[derive(Debug, Default, Clone, PartialEq)]
struct Out {
    main: Vec<String>,
    rejected: Vec<(Option<i64>, String)>,
}

impl Out {
    fn absorb(&mut self, other: Out) {
        self.main.extend(other.main);
        self.rejected.extend(other.rejected);
    }
}

/// `main` rows as `start..end col col …`, bounds in milliseconds, other columns as Arrow
/// displays them (null as `null`).
fn render(batch: &RecordBatch) -> Vec<String> {
    let options = FormatOptions::default().with_null("null");
    let micros = |i: usize| cast(batch.column(i), &DataType::Int64).unwrap();
    let (starts, ends) = (micros(0), micros(1));
    let (starts, ends) = (starts.as_primitive::<Int64Type>(), ends.as_primitive::<Int64Type>());
    let rest: Vec<ArrayFormatter> = batch
        .columns()
        .iter()
        .skip(2)
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
        .collect();
    (0..batch.num_rows())
        .map(|row| {
            let mut text = format!("{}..{}", starts.value(row) / 1000, ends.value(row) / 1000);
            for f in &rest {
                text.push(' ');
                text.push_str(&f.value(row).to_string());
            }
            text
        })
        .collect()
}

/// What a call emitted; for `process` (given its `input`), each rejected row is checked to be
/// the input row its lineage names.
fn decode_outputs(outputs: Result<Vec<wit::OutputBatch>, wit::ProcessError>, input: Option<&RecordBatch>) -> Out {
    let outputs = match outputs {
        Ok(outputs) => outputs,
        Err(wit::ProcessError::InvalidInput(m) | wit::ProcessError::Failed(m)) => panic!("call failed: {m}"),
    };
    let mut out = Out::default();
    for output in outputs {
        let (batch, lineage) = host_batch(&output.output, decode_batch(output.batch.clone()).unwrap());
        match output.output.as_str() {
            "main" => out.main.extend(render(&batch)),
            "rejected" => {
                let lineage = lineage.expect("rejected rows name their input rows");
                if let Some(input) = input {
                    let mut rows = batch.clone();
                    rows.remove_column(rows.num_columns() - 1);
                    assert_eq!(
                        take_record_batch(input, &lineage).unwrap(),
                        rows,
                        "lineage names the rejected rows"
                    );
                }
                let times = cast(batch.column_by_name("event_time").unwrap(), &DataType::Int64).unwrap();
                let times = times.as_primitive::<Int64Type>();
                let reasons = batch.column_by_name(REASON_COLUMN).unwrap().as_string::<i32>();
                for row in 0..batch.num_rows() {
                    let time = times.is_valid(row).then(|| times.value(row));
                    out.rejected.push((time, reasons.value(row).to_owned()));
                }
            }
            other => panic!("emitted to undeclared output {other}"),
        }
    }
    out
}

/// `open` the transform with `config` for batches of `schema`.
fn open(config: &str, schema: &Schema) {
    if let Err(e) = __private::open::<Window>(config.to_owned(), encode_schema(schema).unwrap()) {
        panic!("open failed at {:?}: {}", e.path, e.message);
    }
}

fn process(batch: &RecordBatch) -> Out {
    decode_outputs(__private::process::<Window>(encode_batch(batch).unwrap()), Some(batch))
}

/// Advance the watermark to `micros`.
fn watermark(micros: i64) -> Out {
    decode_outputs(__private::advance_watermark::<Window>(micros), None)
}

/// Advance the watermark to `ms` milliseconds.
fn watermark_ms(ms: i64) -> Out {
    watermark(ms * 1000)
}

fn finish() -> Out {
    decode_outputs(__private::finish::<Window>(), None)
}

fn snapshot() -> wit::StateSnapshot {
    __private::snapshot::<Window>()
        .unwrap()
        .expect("the window transform keeps state")
}

fn restore(state: wit::StateSnapshot) -> Result<(), wit::RestoreError> {
    __private::restore::<Window>(state)
}

/// How many windows the open instance holds, read from its snapshot.
fn held_windows() -> usize {
    let state: serde_json::Value = serde_json::from_slice(&snapshot().data).unwrap();
    state["windows"].as_array().unwrap().len()
}

/// One step of a scripted run.
#[derive(Debug, Clone)]
enum Step {
    Batch(RecordBatch),
    /// A watermark in milliseconds.
    Watermark(i64),
    Finish,
}

fn step(s: &Step) -> Out {
    match s {
        Step::Batch(b) => process(b),
        Step::Watermark(ms) => watermark_ms(*ms),
        Step::Finish => finish(),
    }
}

/// Everything `steps` emit, from a fresh instance.
fn run(config: &str, schema: &Schema, steps: &[Step]) -> Out {
    open(config, schema);
    let mut out = Out::default();
    for s in steps {
        out.absorb(step(s));
    }
    out
}

fn strings<const N: usize>(rows: [&str; N]) -> Vec<String> {
    rows.iter().map(|s| s.to_string()).collect()
}

fn path(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}
