//! Names both sides agree on (see `wit/types.wit`).

/// Name of the output that continues down the pipeline; every transform declares it first.
pub const MAIN: &str = "main";
/// Name of the output for rows a transform refuses; they reach the dead-letter sink.
pub const REJECTED: &str = "rejected";
/// The last column of every `rejected` batch: why the row was refused (non-null utf8).
pub const REASON_COLUMN: &str = "_sluice_reason";
/// An optional column of any output, last (in `rejected`, just before the reason): for each
/// row `process` emits, the index of the input row it comes from in the batch that call was
/// given (nullable uint32; null when no single input row is its source). The host takes it
/// off before the rows go on and uses it to name each dead letter's own input record.
pub const ROW_COLUMN: &str = "_sluice_row";

/// Where [`ROW_COLUMN`] goes in output `output` of `width` other columns: last, or in
/// [`REJECTED`] just before the reason.
pub fn row_column_index(output: &str, width: usize) -> usize {
    if output == REJECTED {
        width.saturating_sub(1)
    } else {
        width
    }
}

/// Where [`ROW_COLUMN`] stands in `schema` of output `output`, when it is where the contract
/// places it.
pub fn find_row_column(output: &str, schema: &arrow::datatypes::Schema) -> Option<usize> {
    let at = row_column_index(output, schema.fields().len().checked_sub(1)?);
    (schema.field(at).name() == ROW_COLUMN).then_some(at)
}
