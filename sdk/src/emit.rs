//! Where a transform puts its output batches.

use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray};

use crate::outputs::Outputs;
use crate::transform::ProcessError;
use sluice_contract::{MAIN, REJECTED};

/// Collects the batches one call emits, checking each against the declared outputs so a
/// schema bug shows up as an error naming the output rather than as garbage downstream.
#[derive(Debug)]
pub struct Emitter {
    outputs: Outputs,
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

    /// Emit to a declared output. Empty batches are dropped.
    pub fn emit_to(&mut self, output: &str, batch: RecordBatch) -> Result<(), ProcessError> {
        let Some(schema) = self.outputs.schema(output) else {
            return Err(ProcessError::Failed(format!("emitted to undeclared output `{output}`")));
        };
        if batch.schema().fields() != schema.fields() {
            return Err(ProcessError::Failed(format!(
                "batch emitted to `{output}` does not match its declared schema: declared {schema:?}, emitted {:?}",
                batch.schema()
            )));
        }
        if batch.num_rows() > 0 {
            // Normalise metadata so the host sees exactly the declared schema.
            let batch = batch.with_schema(schema.clone())?;
            self.emitted.push((output.to_owned(), batch));
        }
        Ok(())
    }

    /// Send `rows` (with the input schema) to `rejected`, one reason per row.
    pub fn reject(&mut self, rows: &RecordBatch, reasons: StringArray) -> Result<(), ProcessError> {
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
        self.emit_to(REJECTED, batch)
    }
}
