//! For a transform's unit tests: what the host makes of the batches and schemas the
//! transform hands over (see `wit/types.wit`). The host takes the row-lineage column
//! ([`ROW_COLUMN`](crate::ROW_COLUMN)) off every output that declares it; these do the same,
//! so tests compare rows with the schemas the pipeline sees and check lineage apart.

use arrow::array::{AsArray, RecordBatch, UInt32Array};
use arrow::datatypes::{Schema, UInt32Type};
use sluice_contract::find_row_column;

/// A declared output's schema as the pipeline sees it (without the lineage column).
pub fn host_schema(output: &str, schema: &Schema) -> Schema {
    let mut fields: Vec<_> = schema.fields().iter().cloned().collect();
    if let Some(at) = find_row_column(output, schema) {
        fields.remove(at);
    }
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

/// An emitted batch as the pipeline sees it, and its lineage (for each row, the input row
/// it comes from; null: none) when the output declares it.
pub fn host_batch(output: &str, mut batch: RecordBatch) -> (RecordBatch, Option<UInt32Array>) {
    match find_row_column(output, &batch.schema()) {
        Some(at) => {
            let column = batch.remove_column(at);
            (batch, Some(column.as_primitive::<UInt32Type>().clone()))
        }
        None => (batch, None),
    }
}
