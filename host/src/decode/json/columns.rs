//! The Arrow builders a chunk's rows are appended to, one per column, and the nested columns
//! of inferred schemas (their JSON text kept, decoded by arrow-json when the chunk ends).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float32Builder, Float64Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder, new_null_array,
};
use arrow::datatypes::{Field, FieldRef, Schema};
use arrow::error::ArrowError;
use arrow_json::reader::ReaderBuilder;
use serde_json::value::RawValue;

use super::value::Cell;
use crate::config::FieldType;

/// Rows (by position in the chunk's batch) whose nested value did not fit, with the reason.
pub(super) type Misfits = Vec<(usize, String)>;

/// One column being built.
enum Builder<'a> {
    Utf8(StringBuilder),
    Bool(BooleanBuilder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Timestamp(TimestampMicrosecondBuilder),
    Date(Date32Builder),
    Nested(Vec<Option<&'a RawValue>>),
}

/// A chunk's columns.
pub(super) struct Columns<'a> {
    fields: Vec<FieldRef>,
    builders: Vec<Builder<'a>>,
}

impl<'a> Columns<'a> {
    pub(super) fn new(schema: &Schema, rows: usize) -> Self {
        let builders = schema
            .fields()
            .iter()
            .map(|f| match FieldType::of(f.data_type()) {
                Some(FieldType::Utf8) => Builder::Utf8(StringBuilder::with_capacity(rows, rows * 16)),
                Some(FieldType::Bool) => Builder::Bool(BooleanBuilder::with_capacity(rows)),
                Some(FieldType::Int32) => Builder::Int32(Int32Builder::with_capacity(rows)),
                Some(FieldType::Int64) => Builder::Int64(Int64Builder::with_capacity(rows)),
                Some(FieldType::Float32) => Builder::Float32(Float32Builder::with_capacity(rows)),
                Some(FieldType::Float64) => Builder::Float64(Float64Builder::with_capacity(rows)),
                Some(FieldType::Timestamp) => Builder::Timestamp(TimestampMicrosecondBuilder::with_capacity(rows)),
                Some(FieldType::Date) => Builder::Date(Date32Builder::with_capacity(rows)),
                None => Builder::Nested(Vec::with_capacity(rows)),
            })
            .collect();
        Columns {
            fields: schema.fields().iter().cloned().collect(),
            builders,
        }
    }

    /// Append one row; each cell was checked against its column's kind.
    pub(super) fn append(&mut self, row: &mut [Cell<'a>]) {
        for (builder, cell) in self.builders.iter_mut().zip(row.iter_mut()) {
            match (builder, std::mem::replace(cell, Cell::Null)) {
                (Builder::Utf8(b), Cell::Str(s)) => b.append_value(&s),
                (Builder::Bool(b), Cell::Bool(v)) => b.append_value(v),
                (Builder::Int32(b), Cell::Int(v)) => b.append_value(v as i32),
                (Builder::Int64(b), Cell::Int(v)) => b.append_value(v),
                (Builder::Float32(b), Cell::Float(v)) => b.append_value(v as f32),
                (Builder::Float64(b), Cell::Float(v)) => b.append_value(v),
                (Builder::Timestamp(b), Cell::Int(v)) => b.append_value(v),
                (Builder::Date(b), Cell::Int(v)) => b.append_value(v as i32),
                (Builder::Nested(raws), Cell::Raw(r)) => raws.push(Some(r)),
                (Builder::Nested(raws), _) => raws.push(None),
                (Builder::Utf8(b), _) => b.append_null(),
                (Builder::Bool(b), _) => b.append_null(),
                (Builder::Int32(b), _) => b.append_null(),
                (Builder::Int64(b), _) => b.append_null(),
                (Builder::Float32(b), _) => b.append_null(),
                (Builder::Float64(b), _) => b.append_null(),
                (Builder::Timestamp(b), _) => b.append_null(),
                (Builder::Date(b), _) => b.append_null(),
            }
        }
    }

    /// The arrays, and the rows whose nested values did not fit their inferred type, with
    /// the reason (those rows hold a null there and are to be dropped).
    pub(super) fn finish(self) -> Result<(Vec<ArrayRef>, Misfits), ArrowError> {
        let mut bad = Vec::new();
        let mut arrays = Vec::with_capacity(self.builders.len());
        for (field, builder) in self.fields.iter().zip(self.builders) {
            let array: ArrayRef = match builder {
                Builder::Utf8(mut b) => Arc::new(b.finish()),
                Builder::Bool(mut b) => Arc::new(b.finish()),
                Builder::Int32(mut b) => Arc::new(b.finish()),
                Builder::Int64(mut b) => Arc::new(b.finish()),
                Builder::Float32(mut b) => Arc::new(b.finish()),
                Builder::Float64(mut b) => Arc::new(b.finish()),
                Builder::Timestamp(mut b) => Arc::new(b.finish()),
                Builder::Date(mut b) => Arc::new(b.finish()),
                Builder::Nested(raws) => nested(field, &raws, &mut bad)?,
            };
            arrays.push(array);
        }
        Ok((arrays, bad))
    }
}

/// Decode a nested column's values with arrow-json; when that fails, value by value, so the
/// rows that do not fit are found (and left null here).
fn nested(field: &Field, raws: &[Option<&RawValue>], bad: &mut Misfits) -> Result<ArrayRef, ArrowError> {
    let schema = Arc::new(Schema::new(vec![Field::new("v", field.data_type().clone(), true)]));
    let decode = |raws: &[Option<&RawValue>]| -> Result<ArrayRef, ArrowError> {
        let mut text = Vec::new();
        for raw in raws {
            match raw {
                Some(r) => {
                    text.extend_from_slice(b"{\"v\":");
                    text.extend_from_slice(r.get().as_bytes());
                    text.extend_from_slice(b"}\n");
                }
                None => text.extend_from_slice(b"{}\n"),
            }
        }
        let mut decoder = ReaderBuilder::new(schema.clone())
            .with_batch_size(raws.len().max(1))
            .build_decoder()?;
        decoder.decode(&text)?;
        Ok(match decoder.flush()? {
            Some(batch) => batch.column(0).clone(),
            None => new_null_array(field.data_type(), 0),
        })
    };
    if let Ok(array) = decode(raws) {
        return Ok(array);
    }
    let mut kept = raws.to_vec();
    for (row, raw) in raws.iter().enumerate() {
        if raw.is_some()
            && let Err(e) = decode(&raws[row..=row])
        {
            kept[row] = None;
            bad.push((row, format!("field {}: {e}", field.name())));
        }
    }
    decode(&kept)
}
