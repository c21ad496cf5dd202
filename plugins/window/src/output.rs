//! Fired results into one `main` batch: window bounds, the decoded group key columns (in
//! their input types) and the aggregate columns, in the order they were fired.

use std::sync::Arc;

use sluice_sdk::arrow::array::{ArrayRef, RecordBatch, TimestampMicrosecondArray};
use sluice_sdk::arrow::error::ArrowError;

use crate::key;
use crate::plan::Plan;
use crate::store::Fired;
use crate::value::{self, Kind, Value};

/// The `main` batch of `fired`.
pub fn batch(plan: &Plan, fired: &[Fired]) -> Result<RecordBatch, ArrowError> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(plan.main.fields().len());
    columns.push(Arc::new(TimestampMicrosecondArray::from_iter_values(
        fired.iter().map(|f| f.bounds.start),
    )));
    columns.push(Arc::new(TimestampMicrosecondArray::from_iter_values(
        fired.iter().map(|f| f.bounds.end),
    )));

    if !plan.keys.is_empty() {
        let kinds: Vec<Kind> = plan.keys.iter().map(|k| k.kind).collect();
        let keys = fired
            .iter()
            .map(|f| {
                key::decode(&f.key, &kinds)
                    .ok_or_else(|| ArrowError::InvalidArgumentError("a stored group key does not decode".into()))
            })
            .collect::<Result<Vec<Vec<Option<Value>>>, _>>()?;
        for (i, column) in plan.keys.iter().enumerate() {
            let values = keys.iter().map(|k| k[i].as_ref());
            columns.push(value::build(column.kind, values, &column.data_type)?);
        }
    }

    for (i, aggregate) in plan.aggregates.iter().enumerate() {
        let values = fired.iter().map(|f| f.results[i].as_ref());
        columns.push(value::build(aggregate.output_kind, values, &aggregate.output_type)?);
    }
    RecordBatch::try_new(plan.main.clone(), columns)
}
