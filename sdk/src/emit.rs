//! Where a transform puts its output batches.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray, UInt32Array, new_null_array};
use arrow::compute::{filter_record_batch, take_record_batch};
use arrow::datatypes::DataType;

use crate::outputs::Outputs;
use crate::transform::ProcessError;
use sluice_contract::{MAIN, REJECTED, row_column_index};

/// Collects the batches one call emits, checking each against the declared outputs so a
/// schema bug shows up as an error naming the output rather than as garbage downstream.
#[derive(Debug)]
pub struct Emitter {
    outputs: Outputs,
    /// What the host receives: declared schemas, with the lineage column when traced.
    pub(crate) emitted: Vec<(String, RecordBatch)>,
}

impl Emitter {
    pub(crate) fn new(outputs: Outputs) -> Self {
        Emitter {
            outputs,
            emitted: Vec::new(),
        }
    }

    /// Emit to `main`.
    pub fn emit(&mut self, batch: RecordBatch) -> Result<(), ProcessError> {
        self.emit_to(MAIN, batch)
    }

    /// Emit to a declared output. Empty batches are dropped. On an output with row lineage,
    /// these rows name no input row (as aggregates do).
    pub fn emit_to(&mut self, output: &str, batch: RecordBatch) -> Result<(), ProcessError> {
        let rows = new_null_array(&DataType::UInt32, batch.num_rows());
        self.push(output, batch, rows)
    }

    /// Emit `batch` to `output`, row `i` coming from input row `rows[i]` of the batch
    /// `process` was given (see [`Outputs::with_lineage`]).
    pub fn emit_rows(&mut self, output: &str, batch: RecordBatch, rows: &UInt32Array) -> Result<(), ProcessError> {
        if rows.len() != batch.num_rows() {
            return Err(ProcessError::Failed(format!(
                "emitted {} rows to `{output}` with lineage for {}",
                batch.num_rows(),
                rows.len()
            )));
        }
        self.push(output, batch, Arc::new(rows.clone()))
    }

    /// Emit `aligned` to `output`, row `i` coming from input row `i`: `aligned` has one row
    /// per row of the batch `process` was given, in its order (the input itself, or columns
    /// computed from it).
    pub fn emit_aligned(&mut self, output: &str, aligned: RecordBatch) -> Result<(), ProcessError> {
        let rows = UInt32Array::from_iter_values(0..aligned.num_rows() as u32);
        self.emit_rows(output, aligned, &rows)
    }

    /// Emit the rows of `aligned` (as for [`emit_aligned`](Self::emit_aligned)) where `keep`
    /// is true, to `output`; they name their input rows.
    pub fn emit_where(&mut self, output: &str, aligned: &RecordBatch, keep: &BooleanArray) -> Result<(), ProcessError> {
        let rows = rows_where(keep);
        // A filter copies runs of rows where a take gathers row by row.
        self.emit_rows(output, filter_record_batch(aligned, keep)?, &rows)
    }

    /// Send `rows` (with the input schema) to `rejected`, one reason per row. They name no
    /// input row: prefer [`reject_rows`](Self::reject_rows), whose dead letters name their
    /// own input records.
    pub fn reject(&mut self, rows: &RecordBatch, reasons: StringArray) -> Result<(), ProcessError> {
        let lineage = new_null_array(&DataType::UInt32, rows.num_rows());
        self.push_rejected(rows, reasons, lineage)
    }

    /// Send rows `rows` of `input` (the batch `process` was given) to `rejected`, one reason
    /// per row.
    pub fn reject_rows(
        &mut self,
        input: &RecordBatch,
        rows: &UInt32Array,
        reasons: StringArray,
    ) -> Result<(), ProcessError> {
        let picked = take_record_batch(input, rows)?;
        self.push_rejected(&picked, reasons, Arc::new(rows.clone()))
    }

    /// Send the rows of `input` where `reject` is true to `rejected`, one reason per
    /// rejected row.
    pub fn reject_where(
        &mut self,
        input: &RecordBatch,
        reject: &BooleanArray,
        reasons: StringArray,
    ) -> Result<(), ProcessError> {
        self.reject_rows(input, &rows_where(reject), reasons)
    }

    fn push_rejected(
        &mut self,
        rows: &RecordBatch,
        reasons: StringArray,
        lineage: ArrayRef,
    ) -> Result<(), ProcessError> {
        if rows.num_rows() == 0 {
            return Ok(());
        }
        let Some(schema) = self.outputs.schema(REJECTED).cloned() else {
            return Err(ProcessError::Failed(
                "rejected rows but declared no `rejected` output".into(),
            ));
        };
        let mut columns = rows.columns().to_vec();
        columns.push(Arc::new(reasons));
        let batch = RecordBatch::try_new(schema, columns)?;
        self.push(REJECTED, batch, lineage)
    }

    /// Check `batch` against `output`'s declared schema and keep it, with `lineage` when the
    /// output is traced.
    fn push(&mut self, output: &str, batch: RecordBatch, lineage: ArrayRef) -> Result<(), ProcessError> {
        let (Some(schema), Some(wire)) = (self.outputs.schema(output), self.outputs.wire_schema(output)) else {
            return Err(ProcessError::Failed(format!("emitted to undeclared output `{output}`")));
        };
        if batch.schema().fields() != schema.fields() {
            return Err(ProcessError::Failed(format!(
                "batch emitted to `{output}` does not match its declared schema: declared {schema:?}, emitted {:?}",
                batch.schema()
            )));
        }
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let mut columns = batch.columns().to_vec();
        if self.outputs.traced(output) {
            columns.insert(row_column_index(output, columns.len()), lineage);
        }
        // The declared schema, so the host sees exactly it (metadata normalised).
        let batch = RecordBatch::try_new(wire, columns)?;
        self.emitted.push((output.to_owned(), batch));
        Ok(())
    }
}

/// The indices where `mask` is true (null counts as false): the lineage of rows picked by a
/// mask, for [`Emitter::emit_rows`].
pub fn rows_where(mask: &BooleanArray) -> UInt32Array {
    let set = match mask.nulls() {
        Some(nulls) => mask.values() & nulls.inner(),
        None => mask.values().clone(),
    };
    UInt32Array::from_iter_values(set.set_indices().map(|i| i as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_where_counts_null_as_false() {
        let mask = BooleanArray::from(vec![Some(true), None, Some(false), Some(true)]);
        assert_eq!(rows_where(&mask).values().to_vec(), [0, 3]);
        let plain = BooleanArray::from(vec![false, true, true]);
        assert_eq!(rows_where(&plain).values().to_vec(), [1, 2]);
    }
}
