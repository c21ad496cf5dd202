//! Declared schemas (pipeline-file types) as Arrow schemas.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::config::{DeclaredField, FieldType};

/// The Arrow type of a pipeline-file type.
pub fn arrow_type(ty: FieldType) -> DataType {
    match ty {
        FieldType::Utf8 => DataType::Utf8,
        FieldType::Bool => DataType::Boolean,
        FieldType::Int32 => DataType::Int32,
        FieldType::Int64 => DataType::Int64,
        FieldType::Float32 => DataType::Float32,
        FieldType::Float64 => DataType::Float64,
        FieldType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
        FieldType::Date => DataType::Date32,
    }
}

/// The Arrow schema of a declared schema, in the written order.
pub fn arrow_schema(fields: &[DeclaredField]) -> SchemaRef {
    Arc::new(Schema::new(
        fields
            .iter()
            .map(|f| Field::new(&f.name, arrow_type(f.ty.value), f.nullable))
            .collect::<Vec<_>>(),
    ))
}
