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

/// A transform run natively, the way the host runs it, for its unit tests (`cargo test`, no
/// wasm): its config as the pipeline file's JSON, batches in, each call's output as the
/// pipeline sees it.
///
/// ```no_run
/// # use sluice_sdk::{arrow::{array::RecordBatch, datatypes::SchemaRef}, *};
/// # fn check<T: Transform>(input: SchemaRef, batch: RecordBatch) {
/// let Ok(mut t) = sluice_sdk::testing::Harness::<T>::open(r#"{"threshold": 25.0}"#, input) else {
///     panic!("the config is refused")
/// };
/// let Ok(out) = t.process(batch) else { panic!("the batch failed") };
/// assert_eq!(out.main().map_or(0, |b| b.num_rows()), 2);
/// assert_eq!(out.rejected_reasons(), ["too cold"]);
/// # }
/// ```
pub struct Harness<T: crate::Transform> {
    transform: T,
    outputs: crate::Outputs,
}

impl<T: crate::Transform> std::fmt::Debug for Harness<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness").field("outputs", &self.outputs).finish()
    }
}

impl<T: crate::Transform> Harness<T> {
    /// `describe` and `open` the transform with `config` (JSON, as the pipeline file's
    /// `config` table becomes) over batches of schema `input`.
    pub fn open(config: &str, input: arrow::datatypes::SchemaRef) -> Result<Self, crate::ConfigError> {
        let cfg: T::Config = crate::config::parse(config)?;
        let outputs = T::describe(&cfg, &input)?;
        let transform = T::open(cfg, input)?;
        Ok(Harness { transform, outputs })
    }

    /// The schema the transform declared for `output`, as the pipeline sees it.
    pub fn schema(&self, output: &str) -> Option<Schema> {
        self.outputs.schema(output).map(|s| host_schema(output, s))
    }

    /// Give it one batch.
    pub fn process(&mut self, batch: RecordBatch) -> Result<Emitted, crate::ProcessError> {
        let mut out = crate::Emitter::new(self.outputs.clone());
        self.transform.process(batch, &mut out)?;
        Ok(Emitted(out.emitted))
    }

    /// Event time reached `micros`.
    pub fn advance_watermark(&mut self, micros: i64) -> Result<Emitted, crate::ProcessError> {
        let mut out = crate::Emitter::new(self.outputs.clone());
        self.transform.advance_watermark(micros, &mut out)?;
        Ok(Emitted(out.emitted))
    }

    /// The input ended.
    pub fn finish(&mut self) -> Result<Emitted, crate::ProcessError> {
        let mut out = crate::Emitter::new(self.outputs.clone());
        self.transform.finish(&mut out)?;
        Ok(Emitted(out.emitted))
    }
}

/// What one call emitted.
#[derive(Debug, Default)]
pub struct Emitted(Vec<(String, RecordBatch)>);

impl Emitted {
    /// Every row emitted to `output` in this call, in one batch as the pipeline sees it
    /// (without the lineage column); `None` when nothing was.
    pub fn rows(&self, output: &str) -> Option<RecordBatch> {
        let batches: Vec<RecordBatch> = self
            .0
            .iter()
            .filter(|(o, _)| o == output)
            .map(|(o, b)| host_batch(o, b.clone()).0)
            .collect();
        let first = batches.first()?;
        arrow::compute::concat_batches(&first.schema(), &batches).ok()
    }

    /// The rows emitted to `main`.
    pub fn main(&self) -> Option<RecordBatch> {
        self.rows(crate::MAIN)
    }

    /// The reasons of the rows sent to `rejected`, in order.
    pub fn rejected_reasons(&self) -> Vec<String> {
        let Some(rows) = self.rows(crate::REJECTED) else {
            return Vec::new();
        };
        rows.column_by_name(crate::REASON_COLUMN)
            .and_then(|c| c.as_string_opt::<i32>())
            .map(|r| r.iter().map(|v| v.unwrap_or_default().to_owned()).collect())
            .unwrap_or_default()
    }
}
