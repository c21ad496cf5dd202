//! Declared schemas (pipeline-file types) as Arrow schemas.

use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};

use crate::config::DeclaredField;

/// The Arrow schema of a declared schema, in the written order.
pub fn arrow_schema(fields: &[DeclaredField]) -> SchemaRef {
    Arc::new(Schema::new(
        fields
            .iter()
            .map(|f| Field::new(&f.name, f.ty.value.data_type(), f.nullable))
            .collect::<Vec<_>>(),
    ))
}
