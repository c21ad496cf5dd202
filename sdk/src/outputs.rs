//! The outputs a transform declares in `describe`.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use sluice_contract::{MAIN, REASON_COLUMN, REJECTED};

/// The declared outputs of a transform, `main` first.
#[derive(Debug, Clone)]
pub struct Outputs {
    pub(crate) decls: Vec<(String, SchemaRef)>,
}

impl Outputs {
    /// Declare the `main` output.
    pub fn new(main: SchemaRef) -> Self {
        Outputs {
            decls: vec![(MAIN.to_owned(), main)],
        }
    }

    /// Also declare a `rejected` output carrying rows of `rows` plus a reason column.
    pub fn with_rejected(mut self, rows: &Schema) -> Self {
        self.decls.push((REJECTED.to_owned(), rejected_schema(rows)));
        self
    }

    /// Also declare another named output.
    pub fn with_output(mut self, name: impl Into<String>, schema: SchemaRef) -> Self {
        self.decls.push((name.into(), schema));
        self
    }

    /// The schema declared for `name`.
    pub fn schema(&self, name: &str) -> Option<&SchemaRef> {
        self.decls.iter().find(|(n, _)| n == name).map(|(_, s)| s)
    }
}

/// `rows` plus the non-null utf8 reason column, as the contract requires of `rejected`.
pub fn rejected_schema(rows: &Schema) -> SchemaRef {
    let mut fields: Vec<Arc<Field>> = rows.fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(REASON_COLUMN, DataType::Utf8, false)));
    Arc::new(Schema::new(fields))
}
