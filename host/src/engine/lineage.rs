//! The contract's row-lineage column (`_sluice_row`, see `wit/types.wit`): where it may
//! stand in a declared output, and taking it off emitted batches. Above the engine nobody
//! sees the column: a declared schema comes without it, and an emitted batch carries its
//! values beside the rows ([`super::Emitted::lineage`]).

use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch, UInt32Array};
use arrow::datatypes::{DataType, Schema, SchemaRef, UInt32Type};
use sluice_contract::{REJECTED, ROW_COLUMN, find_row_column};

use super::call::CallError;

/// A declared output's schema without the lineage column, and whether it had one. The column
/// anywhere else, or of another type, is refused.
pub(crate) fn declared(output: &str, schema: SchemaRef) -> Result<(SchemaRef, bool), CallError> {
    let Some(at) = find_row_column(output, &schema) else {
        if schema.fields().iter().any(|f| f.name() == ROW_COLUMN) {
            let place = if output == REJECTED {
                "just before the reason column"
            } else {
                "the last column"
            };
            return Err(CallError::BadOutput(format!(
                "output `{output}` declares `{ROW_COLUMN}` where the contract does not place it: it must be {place}"
            )));
        }
        return Ok((schema, false));
    };
    if schema.field(at).data_type() != &DataType::UInt32 {
        return Err(CallError::BadOutput(format!(
            "output `{output}` declares `{ROW_COLUMN}` as {}; the contract's row-lineage column is uint32",
            schema.field(at).data_type()
        )));
    }
    let mut fields: Vec<_> = schema.fields().iter().cloned().collect();
    fields.remove(at);
    Ok((
        Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone())),
        true,
    ))
}

/// Take the lineage column off an emitted batch of a traced output; the rest is then
/// checked against the declared schema by the caller.
pub(crate) fn take_off(output: &str, mut batch: RecordBatch) -> Result<(RecordBatch, UInt32Array), CallError> {
    let at = find_row_column(output, &batch.schema())
        .filter(|&at| batch.schema().field(at).data_type() == &DataType::UInt32)
        .ok_or_else(|| {
            CallError::BadOutput(format!(
                "batch for `{output}` lacks the uint32 `{ROW_COLUMN}` column it declared"
            ))
        })?;
    let column = batch.remove_column(at);
    Ok((batch, column.as_primitive::<UInt32Type>().clone()))
}

/// Every index names a row of the `rows` the call was given.
pub(crate) fn check_within(output: &str, lineage: &UInt32Array, rows: usize) -> Result<(), CallError> {
    match lineage.iter().flatten().find(|&i| i as usize >= rows) {
        Some(i) => Err(CallError::BadOutput(format!(
            "output `{output}`: `{ROW_COLUMN}` {i} is past the {rows} rows the call was given"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::Field;

    fn schema(names: &[(&str, DataType)]) -> SchemaRef {
        Arc::new(Schema::new(
            names
                .iter()
                .map(|(n, t)| Field::new(*n, t.clone(), true))
                .collect::<Vec<_>>(),
        ))
    }

    #[test]
    fn the_column_is_taken_off_declared_schemas_where_the_contract_places_it() {
        let main = schema(&[("a", DataType::Int64), (ROW_COLUMN, DataType::UInt32)]);
        let (bare, traced) = declared("main", main).unwrap();
        assert!(traced);
        assert_eq!(bare.fields().len(), 1);

        let rejected = schema(&[
            ("a", DataType::Int64),
            (ROW_COLUMN, DataType::UInt32),
            ("_sluice_reason", DataType::Utf8),
        ]);
        let (bare, traced) = declared(REJECTED, rejected).unwrap();
        assert!(traced);
        assert_eq!(bare.field(1).name(), "_sluice_reason");

        let plain = schema(&[("a", DataType::Int64)]);
        assert!(!declared("main", plain).unwrap().1);
    }

    #[test]
    fn the_column_elsewhere_or_of_another_type_is_refused() {
        let first = schema(&[(ROW_COLUMN, DataType::UInt32), ("a", DataType::Int64)]);
        let e = declared("main", first).unwrap_err().to_string();
        assert!(e.contains("must be the last column"), "{e}");
        let wide = schema(&[("a", DataType::Int64), (ROW_COLUMN, DataType::Int64)]);
        let e = declared("main", wide).unwrap_err().to_string();
        assert!(e.contains("uint32"), "{e}");
    }

    #[test]
    fn the_column_comes_off_emitted_batches() {
        let rejected = schema(&[
            ("a", DataType::Int64),
            (ROW_COLUMN, DataType::UInt32),
            ("_sluice_reason", DataType::Utf8),
        ]);
        let batch = RecordBatch::try_new(
            rejected,
            vec![
                Arc::new(arrow::array::Int64Array::from(vec![7])),
                Arc::new(UInt32Array::from(vec![3])),
                Arc::new(arrow::array::StringArray::from(vec!["why"])),
            ],
        )
        .unwrap();
        let (rows, lineage) = take_off(REJECTED, batch.clone()).unwrap();
        assert_eq!(rows.schema().field(1).name(), "_sluice_reason");
        assert_eq!(lineage.value(0), 3);
        let mut bare = batch;
        bare.remove_column(1);
        assert!(take_off(REJECTED, bare).is_err());
    }

    #[test]
    fn indices_past_the_input_are_refused() {
        let lineage = UInt32Array::from(vec![Some(0), None, Some(4)]);
        assert!(check_within("main", &lineage, 5).is_ok());
        let e = check_within("main", &lineage, 4).unwrap_err().to_string();
        assert!(e.contains("4 is past the 4 rows"), "{e}");
    }
}
