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
