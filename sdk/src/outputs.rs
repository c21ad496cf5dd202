//! The outputs a transform declares in `describe`.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use sluice_contract::{MAIN, REASON_COLUMN, REJECTED, ROW_COLUMN, row_column_index};

/// The declared outputs of a transform, `main` first.
#[derive(Debug, Clone)]
pub struct Outputs {
    pub(crate) decls: Vec<(String, SchemaRef)>,
    /// Outputs whose rows name the input rows they come from (the contract's row lineage).
    pub(crate) traced: Vec<String>,
}

impl Outputs {
    /// Declare the `main` output.
    pub fn new(main: SchemaRef) -> Self {
        Outputs {
            decls: vec![(MAIN.to_owned(), main)],
            traced: Vec::new(),
        }
    }

    /// Also declare a `rejected` output carrying rows of `rows` plus a reason column. Its
    /// rows name the input rows they are (row lineage), so each dead letter names its own
    /// input record: reject with [`Emitter::reject_rows`](crate::Emitter::reject_rows) or
    /// [`Emitter::reject_where`](crate::Emitter::reject_where).
    pub fn with_rejected(mut self, rows: &Schema) -> Self {
        self.decls.push((REJECTED.to_owned(), rejected_schema(rows)));
        self.traced.push(REJECTED.to_owned());
        self
    }

    /// Also declare another named output.
    pub fn with_output(mut self, name: impl Into<String>, schema: SchemaRef) -> Self {
        self.decls.push((name.into(), schema));
        self
    }

    /// Rows emitted to `output` (declared before) name the input rows they come from, so a
    /// later stage's dead letter still names its own input record: emit them with
    /// [`Emitter::emit_rows`](crate::Emitter::emit_rows) or
    /// [`Emitter::emit_where`](crate::Emitter::emit_where). Rows emitted with plain
    /// [`Emitter::emit`](crate::Emitter::emit) name none (as aggregates).
    pub fn with_lineage(mut self, output: &str) -> Self {
        if !self.traced.iter().any(|t| t == output) {
            self.traced.push(output.to_owned());
        }
        self
    }

    /// The schema declared for `name`.
    pub fn schema(&self, name: &str) -> Option<&SchemaRef> {
        self.decls.iter().find(|(n, _)| n == name).map(|(_, s)| s)
    }

    /// Whether rows of `name` carry row lineage.
    pub(crate) fn traced(&self, name: &str) -> bool {
        self.traced.iter().any(|t| t == name)
    }

    /// The schema of `name` as the host receives it: with the lineage column when traced.
    pub(crate) fn wire_schema(&self, name: &str) -> Option<SchemaRef> {
        let schema = self.schema(name)?;
        if !self.traced(name) {
            return Some(schema.clone());
        }
        let mut fields: Vec<Arc<Field>> = schema.fields().iter().cloned().collect();
        fields.insert(
            row_column_index(name, fields.len()),
            Arc::new(Field::new(ROW_COLUMN, DataType::UInt32, true)),
        );
        Some(Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone())))
    }
}

/// `rows` plus the non-null utf8 reason column, as the contract requires of `rejected`.
pub fn rejected_schema(rows: &Schema) -> SchemaRef {
    let mut fields: Vec<Arc<Field>> = rows.fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(REASON_COLUMN, DataType::Utf8, false)));
    Arc::new(Schema::new(fields))
}
