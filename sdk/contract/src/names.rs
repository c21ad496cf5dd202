//! Names both sides agree on (see `wit/types.wit`).

/// Name of the output that continues down the pipeline; every transform declares it first.
pub const MAIN: &str = "main";
/// Name of the output for rows a transform refuses; they reach the dead-letter sink.
pub const REJECTED: &str = "rejected";
/// The last column of every `rejected` batch: why the row was refused (non-null utf8).
pub const REASON_COLUMN: &str = "_sluice_reason";
