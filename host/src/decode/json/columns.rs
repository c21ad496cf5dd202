//! The columns a chunk's rows are appended to: plain vectors and null bitmaps, one per column,
//! turned into Arrow arrays when the chunk ends. The fast path ([`super::fast`]) writes a
//! record's values straight into them and, when it gives up half-way through a record, cuts
//! them back to the rows before it ([`Columns::truncate`]); the serde path appends a row of
//! cells. The nested columns of inferred schemas keep their JSON text, decoded by arrow-json
//! when the chunk ends.

use std::sync::Arc;

use arrow::array::builder::{BooleanBufferBuilder, NullBufferBuilder};
use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float32Array, Float64Array, Int32Array, Int64Array, StringArray,
    TimestampMicrosecondArray, new_null_array,
};
use arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{Field, FieldRef, Schema};
use arrow::error::ArrowError;
use arrow_json::reader::ReaderBuilder;
use serde_json::value::RawValue;

use super::timestamp::LastTime;
use super::value::Cell;
use crate::config::FieldType;

/// Rows (by position in the chunk's batch) whose nested value did not fit, with the reason.
pub(super) type Misfits = Vec<(usize, String)>;

/// One column's values (a null's slot holds a default value, as Arrow's builders do).
enum Values<'a> {
    /// Strings: `offsets` has one more entry than there are rows.
    Utf8 {
        offsets: Vec<i32>,
        bytes: Vec<u8>,
    },
    Bool(BooleanBufferBuilder),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Float32(Vec<f32>),
    Float64(Vec<f64>),
    Timestamp(Vec<i64>),
    Date(Vec<i32>),
    Nested(Vec<Option<&'a RawValue>>),
}

/// A column being built.
struct Column<'a> {
    values: Values<'a>,
    nulls: NullBufferBuilder,
    /// The row this column last got a value for, plus one (0: none yet).
    filled: usize,
}

/// A chunk's columns.
pub(super) struct Columns<'a> {
    fields: Vec<FieldRef>,
    columns: Vec<Column<'a>>,
    rows: usize,
    /// The second and day of the last timestamp read, for the next one (see
    /// `timestamp::micros_on`).
    pub(super) last_time: LastTime,
}

impl<'a> Columns<'a> {
    pub(super) fn new(schema: &Schema, rows: usize) -> Self {
        let columns = schema
            .fields()
            .iter()
            .map(|f| Column {
                values: match FieldType::of(f.data_type()) {
                    Some(FieldType::Utf8) => {
                        let mut offsets = Vec::with_capacity(rows + 1);
                        offsets.push(0);
                        Values::Utf8 {
                            offsets,
                            bytes: Vec::with_capacity(rows * 16),
                        }
                    }
                    Some(FieldType::Bool) => Values::Bool(BooleanBufferBuilder::new(rows)),
                    Some(FieldType::Int32) => Values::Int32(Vec::with_capacity(rows)),
                    Some(FieldType::Int64) => Values::Int64(Vec::with_capacity(rows)),
                    Some(FieldType::Float32) => Values::Float32(Vec::with_capacity(rows)),
                    Some(FieldType::Float64) => Values::Float64(Vec::with_capacity(rows)),
                    Some(FieldType::Timestamp) => Values::Timestamp(Vec::with_capacity(rows)),
                    Some(FieldType::Date) => Values::Date(Vec::with_capacity(rows)),
                    None => Values::Nested(Vec::with_capacity(rows)),
                },
                nulls: NullBufferBuilder::new(rows),
                filled: 0,
            })
            .collect();
        Columns {
            fields: schema.fields().iter().cloned().collect(),
            columns,
            rows: 0,
            last_time: LastTime::default(),
        }
    }

    /// Column `i` already has a value for the row being written.
    #[inline]
    pub(super) fn has_value(&self, i: usize) -> bool {
        self.columns[i].filled > self.rows
    }

    /// The row being written is complete: every column got exactly one value for it.
    pub(super) fn end_row(&mut self) {
        debug_assert!(self.columns.iter().all(|c| c.filled == self.rows + 1));
        self.rows += 1;
    }

    /// Forget the values of the row being written, which is not complete.
    pub(super) fn truncate(&mut self) {
        let rows = self.rows;
        for column in &mut self.columns {
            if column.filled <= rows {
                continue;
            }
            column.filled = rows;
            column.nulls.truncate(rows);
            match &mut column.values {
                Values::Utf8 { offsets, bytes } => {
                    offsets.truncate(rows + 1);
                    bytes.truncate(offsets[rows] as usize);
                }
                Values::Bool(b) => b.truncate(rows),
                Values::Int32(v) | Values::Date(v) => v.truncate(rows),
                Values::Int64(v) | Values::Timestamp(v) => v.truncate(rows),
                Values::Float32(v) => v.truncate(rows),
                Values::Float64(v) => v.truncate(rows),
                Values::Nested(v) => v.truncate(rows),
            }
        }
    }

    /// A string for column `i` (a string column) in the row being written.
    #[inline]
    pub(super) fn push_str(&mut self, i: usize, s: &'a str) {
        let column = &mut self.columns[i];
        if let Values::Utf8 { offsets, bytes } = &mut column.values {
            bytes.extend_from_slice(s.as_bytes());
            offsets.push(offset(bytes.len()));
            column.nulls.append_non_null();
            column.filled = self.rows + 1;
        } else {
            self.push(i, Cell::Str(s.into()));
        }
    }

    /// A float for column `i` (a float64 column) in the row being written.
    #[inline]
    pub(super) fn push_f64(&mut self, i: usize, v: f64) {
        let column = &mut self.columns[i];
        if let Values::Float64(values) = &mut column.values {
            values.push(v);
            column.nulls.append_non_null();
            column.filled = self.rows + 1;
        } else {
            self.push(i, Cell::Float(v));
        }
    }

    /// An int64 value for column `i`, of kind int64, in the row being written.
    #[inline]
    pub(super) fn push_i64(&mut self, i: usize, v: i64) {
        let column = &mut self.columns[i];
        if let Values::Int64(values) = &mut column.values {
            values.push(v);
            column.nulls.append_non_null();
            column.filled = self.rows + 1;
        } else {
            self.push(i, Cell::Int(v));
        }
    }

    /// A cell for column `i` in the row being written; one that was checked against the
    /// column's kind (anything else is a null).
    pub(super) fn push(&mut self, i: usize, cell: Cell<'a>) {
        let column = &mut self.columns[i];
        column.filled = self.rows + 1;
        let valid = match (&mut column.values, cell) {
            (Values::Utf8 { offsets, bytes }, Cell::Str(s)) => {
                bytes.extend_from_slice(s.as_bytes());
                offsets.push(offset(bytes.len()));
                true
            }
            (Values::Bool(b), Cell::Bool(v)) => {
                b.append(v);
                true
            }
            (Values::Int32(b) | Values::Date(b), Cell::Int(v)) => {
                b.push(v as i32);
                true
            }
            (Values::Int64(b), Cell::Int(v)) | (Values::Timestamp(b), Cell::Int(v)) => {
                b.push(v);
                true
            }
            (Values::Float32(b), Cell::Float(v)) => {
                b.push(v as f32);
                true
            }
            (Values::Float64(b), Cell::Float(v)) => {
                b.push(v);
                true
            }
            (Values::Nested(raws), Cell::Raw(r)) => {
                raws.push(Some(r));
                true
            }
            (values, _) => {
                match values {
                    Values::Utf8 { offsets, bytes } => offsets.push(offset(bytes.len())),
                    Values::Bool(b) => b.append(false),
                    Values::Int32(v) | Values::Date(v) => v.push(0),
                    Values::Int64(v) | Values::Timestamp(v) => v.push(0),
                    Values::Float32(v) => v.push(0.0),
                    Values::Float64(v) => v.push(0.0),
                    Values::Nested(v) => v.push(None),
                }
                false
            }
        };
        if valid {
            column.nulls.append_non_null();
        } else {
            column.nulls.append_null();
        }
    }

    /// A null for column `i` in the row being written.
    #[inline]
    pub(super) fn push_null(&mut self, i: usize) {
        self.push(i, Cell::Null);
    }

    /// Append one row of cells, each checked against its column's kind.
    pub(super) fn append(&mut self, row: &mut [Cell<'a>]) {
        for (i, cell) in row.iter_mut().enumerate() {
            self.push(i, std::mem::replace(cell, Cell::Null));
        }
        self.end_row();
    }

    /// The arrays, and the rows whose nested values did not fit their inferred type, with
    /// the reason (those rows hold a null there and are to be dropped).
    pub(super) fn finish(self) -> Result<(Vec<ArrayRef>, Misfits), ArrowError> {
        let mut bad = Vec::new();
        let mut arrays = Vec::with_capacity(self.columns.len());
        for (field, column) in self.fields.iter().zip(self.columns) {
            let Column { values, mut nulls, .. } = column;
            let nulls = nulls.finish();
            let array: ArrayRef = match values {
                Values::Utf8 { offsets, bytes } => {
                    // SAFETY: the offsets start at 0 and grow with every value appended, each
                    // value appended was a `&str` (valid UTF-8), and nulls are as many as rows.
                    Arc::new(unsafe {
                        StringArray::new_unchecked(
                            OffsetBuffer::new_unchecked(ScalarBuffer::from(offsets)),
                            Buffer::from_vec(bytes),
                            nulls,
                        )
                    })
                }
                Values::Bool(mut b) => Arc::new(BooleanArray::new(b.finish(), nulls)),
                Values::Int32(v) => Arc::new(Int32Array::new(v.into(), nulls)),
                Values::Int64(v) => Arc::new(Int64Array::new(v.into(), nulls)),
                Values::Float32(v) => Arc::new(Float32Array::new(v.into(), nulls)),
                Values::Float64(v) => Arc::new(Float64Array::new(v.into(), nulls)),
                Values::Timestamp(v) => Arc::new(TimestampMicrosecondArray::new(v.into(), nulls)),
                Values::Date(v) => Arc::new(Date32Array::new(v.into(), nulls)),
                Values::Nested(raws) => nested(field, &raws, &mut bad)?,
            };
            arrays.push(array);
        }
        Ok((arrays, bad))
    }
}

/// A string column's next offset. A chunk's strings stay far below 2 GiB (chunks are cut
/// by size); past that, as Arrow's own string builder, this panics rather than wraps.
#[inline]
fn offset(len: usize) -> i32 {
    i32::try_from(len).expect("a chunk's strings exceed 2 GiB")
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
