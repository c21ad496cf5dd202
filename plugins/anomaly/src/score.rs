//! One input batch through the detector, in row order: the flag and score columns.
//!
//! A row whose value is null, NaN or infinite is not scored (flag false, score null) and
//! touches no state: it neither updates its key's statistics nor counts as the key being
//! seen. With `expire_after`, a scored row's event time (in microseconds) is passed to the
//! store; a null event time passes none.

use sluice_sdk::arrow::array::{
    Array, AsArray, BooleanArray, BooleanBufferBuilder, Float64Array, Int64Array, RecordBatch,
};
use sluice_sdk::arrow::buffer::NullBuffer;
use sluice_sdk::arrow::compute::cast;
use sluice_sdk::arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit};
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
    let times = event_times(plan, batch)?;
    let detector = &plan.detector;

    let rows = batch.num_rows();
    // Built as buffers, not from options row by row.
    let mut flags = BooleanBufferBuilder::new(rows);
    let mut scores = Vec::with_capacity(rows);
    let mut scored = BooleanBufferBuilder::new(rows);
    let mut key = Vec::new();
    for row in 0..rows {
        let x = if values.is_valid(row) {
            values.value(row)
        } else {
            f64::NAN
        };
        if !x.is_finite() {
            flags.append(false);
            scores.push(0.0);
            scored.append(false);
            continue;
        }
        let time = times.as_ref().and_then(|t| t.is_valid(row).then(|| t.value(row)));
        let series = match keys.packed(row) {
            Some(packed) => store.touch_packed(packed, time, || detector.new_series()),
            None => {
                keys.encode(row, &mut key);
                store.touch(&key, time, || detector.new_series())
            }
        };
        let verdict = detector.observe(series, x);
        flags.append(verdict.anomaly);
        scores.push(verdict.score.unwrap_or_default());
        scored.append(verdict.score.is_some());
    }
    Ok(Scored {
        flags: BooleanArray::new(flags.finish(), None),
        scores: Float64Array::new(
            scores.into(),
            NullBuffer::from_unsliced_buffer(scored.finish().into_inner(), rows),
        ),
    })
}

/// Each row's event time in microseconds, when keys expire.
fn event_times(plan: &Plan, batch: &RecordBatch) -> Result<Option<Int64Array>, ArrowError> {
    let Some(expiry) = plan.expiry else {
        return Ok(None);
    };
    // A timestamp casts to its raw int64 value, in its own unit whatever its time zone.
    let raw = cast(batch.column(expiry.time), &DataType::Int64)?;
    Ok(Some(
        raw.as_primitive::<Int64Type>().unary(|v| to_micros(v, expiry.unit)),
    ))
}

/// `value` in `unit` as microseconds: nanoseconds round toward the past, and times beyond
/// ±292,000 years saturate.
fn to_micros(value: i64, unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => value.saturating_mul(1_000_000),
        TimeUnit::Millisecond => value.saturating_mul(1_000),
        TimeUnit::Microsecond => value,
        TimeUnit::Nanosecond => value.div_euclid(1_000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_becomes_microseconds_rounding_toward_the_past() {
        assert_eq!(to_micros(2, TimeUnit::Second), 2_000_000);
        assert_eq!(to_micros(-2, TimeUnit::Millisecond), -2_000);
        assert_eq!(to_micros(7, TimeUnit::Microsecond), 7);
        assert_eq!(to_micros(1_999, TimeUnit::Nanosecond), 1);
        assert_eq!(to_micros(-1, TimeUnit::Nanosecond), -1);
        assert_eq!(to_micros(i64::MAX / 1_000, TimeUnit::Second), i64::MAX);
        assert_eq!(to_micros(i64::MIN, TimeUnit::Millisecond), i64::MIN);
    }
}
