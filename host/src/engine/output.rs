//! What the host will take from a component's output.
//!
//! A component's output arrives as Arrow IPC, whose size is bounded by the component's own
//! memory. What the host later materialises from it is not: a dictionary array whose keys all
//! point at one large value, string views sharing one buffer, or a Null column claiming 2^40
//! rows are a few bytes of IPC and gigabytes once a writer expands them. So every output batch
//! is measured as the bytes it would take fully expanded, and a call whose output exceeds the
//! instance's memory cap is refused before anything else touches it. Schemas are bounded in
//! columns, and types the host cannot measure are refused when they are declared.

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::call::CallError;

use super::limits::MAX_OUTPUT_COLUMNS;

/// Why a declared output schema is refused, or `None`.
pub(crate) fn check_schema(output: &str, schema: &Schema) -> Option<String> {
    let columns: usize = schema.fields().iter().map(|f| count_fields(f)).sum();
    if columns > MAX_OUTPUT_COLUMNS {
        return Some(format!(
            "output `{output}` declares {columns} columns (nested fields included), over the limit of {MAX_OUTPUT_COLUMNS}"
        ));
    }
    schema.fields().iter().find_map(|f| {
        unmeasured(f.data_type()).map(|t| {
            format!(
                "output `{output}` column `{}` has type {t}, which the host does not accept from a transform",
                f.name()
            )
        })
    })
}

fn count_fields(f: &Field) -> usize {
    1 + children(f.data_type()).iter().map(|c| count_fields(c)).sum::<usize>()
}

fn children(t: &DataType) -> Vec<&Field> {
    match t {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) | DataType::Map(f, _) => {
            vec![f.as_ref()]
        }
        DataType::Struct(fs) => fs.iter().map(|f| f.as_ref()).collect(),
        _ => Vec::new(),
    }
}

/// The first type inside `t` that [`expanded_bytes`] cannot bound (list views, run-end
/// encoding and unions, which no sink writes either).
fn unmeasured(t: &DataType) -> Option<&DataType> {
    match t {
        DataType::ListView(_) | DataType::LargeListView(_) | DataType::RunEndEncoded(_, _) | DataType::Union(_, _) => {
            Some(t)
        }
        DataType::Dictionary(k, v) => unmeasured(k).or_else(|| unmeasured(v)),
        _ => children(t).into_iter().find_map(|f| unmeasured(f.data_type())),
    }
}

/// The bytes `array` takes with every dictionary and view expanded, at least one byte per
/// row (what a writer spends on a row of any type, even Null). `u64::MAX` for a type it
/// cannot bound.
pub(crate) fn expanded_bytes(array: &dyn Array) -> u64 {
    let len = array.len() as u64;
    let validity = if array.nulls().is_some() { len.div_ceil(8) } else { 0 };
    let body = match array.data_type() {
        DataType::Null => len,
        DataType::Boolean => len.div_ceil(8),
        DataType::Utf8 => offsets_span(array.as_string::<i32>().value_offsets()) + 4 * len,
        DataType::LargeUtf8 => offsets_span(array.as_string::<i64>().value_offsets()) + 8 * len,
        DataType::Binary => offsets_span(array.as_binary::<i32>().value_offsets()) + 4 * len,
        DataType::LargeBinary => offsets_span(array.as_binary::<i64>().value_offsets()) + 8 * len,
        DataType::Utf8View => views(array.as_string_view().views()),
        DataType::BinaryView => views(array.as_binary_view().views()),
        DataType::FixedSizeBinary(n) => len.saturating_mul(*n as u64),
        DataType::List(_) => {
            let l = array.as_list::<i32>();
            list(l.values(), l.value_offsets()) + 4 * len
        }
        DataType::LargeList(_) => {
            let l = array.as_list::<i64>();
            list(l.values(), l.value_offsets()) + 8 * len
        }
        DataType::Map(_, _) => {
            let m = array.as_map();
            let entries: ArrayRef = std::sync::Arc::new(m.entries().clone());
            list(&entries, m.value_offsets()) + 4 * len
        }
        DataType::FixedSizeList(_, _) => expanded_bytes(array.as_fixed_size_list().values().as_ref()),
        DataType::Struct(_) => array
            .as_struct()
            .columns()
            .iter()
            .fold(0u64, |acc, c| acc.saturating_add(expanded_bytes(c.as_ref()))),
        DataType::Dictionary(_, _) => dictionary(array),
        t => match t.primitive_width() {
            Some(w) => len.saturating_mul(w as u64),
            None => u64::MAX,
        },
    };
    body.saturating_add(validity).max(len)
}

fn offsets_span<O: arrow::array::OffsetSizeTrait>(offsets: &[O]) -> u64 {
    match (offsets.first(), offsets.last()) {
        (Some(a), Some(b)) => (b.as_usize().saturating_sub(a.as_usize())) as u64,
        _ => 0,
    }
}

/// Views are 16 bytes each, plus the bytes of every value longer than 12 (stored out of
/// line, possibly shared by every view, which expansion copies once per view).
fn views(views: &[u128]) -> u64 {
    views.iter().fold(0u64, |acc, v| {
        let n = *v as u32 as u64;
        acc.saturating_add(16 + if n > 12 { n } else { 0 })
    })
}

fn list<O: arrow::array::OffsetSizeTrait>(values: &ArrayRef, offsets: &[O]) -> u64 {
    let (Some(first), Some(last)) = (offsets.first(), offsets.last()) else {
        return 0;
    };
    let (first, last) = (first.as_usize(), last.as_usize());
    if last < first || last > values.len() {
        return u64::MAX;
    }
    expanded_bytes(values.slice(first, last - first).as_ref())
}

/// Every key costs the expanded size of the value it points at.
fn dictionary(array: &dyn Array) -> u64 {
    let dict = array.as_any_dictionary();
    let values = dict.values();
    let sizes = value_sizes(values.as_ref());
    let keys = dict.keys();
    let mut total = dict.keys().get_array_memory_size() as u64;
    for (i, k) in dict.normalized_keys().into_iter().enumerate() {
        if keys.is_valid(i) {
            total = total.saturating_add(sizes.get(k).copied().unwrap_or(0));
        }
    }
    total
}

/// The expanded size of each value of `values`.
fn value_sizes(values: &dyn Array) -> Vec<u64> {
    fn from_offsets<O: arrow::array::OffsetSizeTrait>(offsets: &[O]) -> Vec<u64> {
        offsets
            .windows(2)
            .map(|w| w[1].as_usize().saturating_sub(w[0].as_usize()) as u64)
            .collect()
    }
    match values.data_type() {
        DataType::Utf8 => from_offsets(values.as_string::<i32>().value_offsets()),
        DataType::LargeUtf8 => from_offsets(values.as_string::<i64>().value_offsets()),
        DataType::Binary => from_offsets(values.as_binary::<i32>().value_offsets()),
        DataType::LargeBinary => from_offsets(values.as_binary::<i64>().value_offsets()),
        DataType::Utf8View => values
            .as_string_view()
            .views()
            .iter()
            .map(|v| *v as u32 as u64)
            .collect(),
        DataType::BinaryView => values
            .as_binary_view()
            .views()
            .iter()
            .map(|v| *v as u32 as u64)
            .collect(),
        t => match t.primitive_width() {
            Some(w) => vec![w as u64; values.len()],
            None => (0..values.len())
                .map(|i| expanded_bytes(values.slice(i, 1).as_ref()))
                .collect(),
        },
    }
}

/// The contract requires `rejected` to end with a non-null utf8 reason column.
pub(crate) fn check_rejected(outputs: &[(String, SchemaRef)]) -> Result<(), CallError> {
    let Some((_, schema)) = outputs.iter().find(|(n, _)| n == sluice_contract::REJECTED) else {
        return Ok(());
    };
    match schema.fields().last() {
        Some(f) if f.name() == sluice_contract::REASON_COLUMN && f.data_type() == &arrow::datatypes::DataType::Utf8 => {
            dead_letter_encodable(schema)
        }
        _ => Err(CallError::BadOutput(format!(
            "the `rejected` output must end with a utf8 column `{}`",
            sluice_contract::REASON_COLUMN
        ))),
    }
}

/// Rejected rows become JSON dead letters; a column the JSON writer cannot encode (a union,
/// say) would stop the pipeline at the first rejected row, so it is refused at `describe`.
/// The probe writes one all-null row of the record columns.
fn dead_letter_encodable(schema: &Schema) -> Result<(), CallError> {
    use arrow::datatypes::Field;
    let fields = &schema.fields()[..schema.fields().len().saturating_sub(1)];
    let probe_fields: Vec<Field> = fields.iter().map(|f| f.as_ref().clone().with_nullable(true)).collect();
    let columns = probe_fields
        .iter()
        .map(|f| arrow::array::new_null_array(f.data_type(), 1))
        .collect();
    let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(1));
    let probe = RecordBatch::try_new_with_options(std::sync::Arc::new(Schema::new(probe_fields)), columns, &options)
        .and_then(|batch| {
            let mut writer = arrow_json::LineDelimitedWriter::new(Vec::new());
            writer.write(&batch)?;
            writer.finish()
        });
    probe.map_err(|e| {
        CallError::BadOutput(format!(
            "the `rejected` output cannot be written as JSON dead letters: {e}"
        ))
    })
}

/// Add `batch`'s expanded bytes (and a byte per row) to `so_far`, refusing the call when the
/// total passes `cap` (the instance's memory cap); the new total.
pub(crate) fn check_expanded(batch: &RecordBatch, so_far: u64, cap: u64) -> Result<u64, CallError> {
    let bytes = batch
        .columns()
        .iter()
        .fold(so_far.saturating_add(batch.num_rows() as u64), |acc, c| {
            acc.saturating_add(expanded_bytes(c.as_ref()))
        });
    if bytes > cap {
        return Err(CallError::BadOutput(format!(
            "output would take {} when expanded (dictionaries, views and Null columns unpacked), over the limit of {} MiB (its memory cap)",
            if bytes == u64::MAX {
                "an unbounded size".to_owned()
            } else {
                format!("{} MiB", bytes >> 20)
            },
            cap >> 20
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{DictionaryArray, Int32Array, NullArray, StringArray, StringViewArray};
    use arrow::datatypes::Int32Type;

    use super::*;

    #[test]
    fn a_dictionary_counts_each_key_at_the_size_of_its_value() {
        let big = "x".repeat(1 << 20);
        let keys = Int32Array::from(vec![0; 1000]);
        let dict =
            DictionaryArray::<Int32Type>::try_new(keys, Arc::new(StringArray::from(vec![big.as_str()]))).expect("dict");
        assert!(expanded_bytes(&dict) >= 1000 << 20);
    }

    #[test]
    fn views_sharing_one_buffer_count_once_per_view() {
        let big = "y".repeat(1 << 16);
        let views = StringViewArray::from(vec![big.as_str(); 100]);
        assert!(expanded_bytes(&views) >= 100 << 16);
    }

    #[test]
    fn null_rows_cost_a_byte_each_and_plain_columns_their_size() {
        assert_eq!(expanded_bytes(&NullArray::new(1 << 30)), 1 << 30);
        assert_eq!(expanded_bytes(&Int32Array::from(vec![1, 2, 3])), 12);
    }
}
