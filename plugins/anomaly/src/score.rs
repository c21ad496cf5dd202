//! One input batch through the detector, in row order: the flag and score columns.
//!
//! A row whose value is null, NaN or infinite is not scored (flag false, score null) and
//! touches no state: it neither updates its key's statistics nor counts as the key being
//! seen.

use sluice_sdk::arrow::array::{Array, AsArray, BooleanArray, Float64Array, RecordBatch};
use sluice_sdk::arrow::compute::cast;
use sluice_sdk::arrow::datatypes::{DataType, Float64Type};
use sluice_sdk::arrow::error::ArrowError;

use crate::key::Keys;
use crate::plan::Plan;
use crate::store::Store;

/// The added columns of one batch.
#[derive(Debug)]
pub struct Scored {
    pub flags: BooleanArray,
    pub scores: Float64Array,
}

/// Score every row of `batch`, updating `store`.
pub fn score(plan: &Plan, store: &mut Store, batch: &RecordBatch) -> Result<Scored, ArrowError> {
    let values = cast(batch.column(plan.value), &DataType::Float64)?;
    let values = values.as_primitive::<Float64Type>();
    let keys = Keys::new(plan.key.map(|(index, _)| batch.column(index)))?;
    let detector = &plan.detector;

    let rows = batch.num_rows();
    let mut flags = Vec::with_capacity(rows);
    let mut scores = Vec::with_capacity(rows);
    let mut key = Vec::new();
    for row in 0..rows {
        let x = if values.is_valid(row) {
            values.value(row)
        } else {
            f64::NAN
        };
        if !x.is_finite() {
            flags.push(false);
            scores.push(None);
            continue;
        }
        keys.encode(row, &mut key);
        let series = store.touch(&key, || detector.new_series());
        let verdict = detector.observe(series, x);
        flags.push(verdict.anomaly);
        scores.push(verdict.score);
    }
    Ok(Scored {
        flags: BooleanArray::from(flags),
        scores: Float64Array::from(scores),
    })
}
