//! The trait a transform author implements.

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::error::ArrowError;
use serde::de::DeserializeOwned;

use crate::{ConfigError, Emitter, Outputs};

/// One transform: a type-check (`describe`), a constructor (`open`) and a batch function
/// (`process`), plus optional hooks for event time and state.
pub trait Transform: Sized + 'static {
    /// The transform's `config` table, deserialized from the pipeline file. Use
    /// `#[serde(deny_unknown_fields)]` so a misspelt key is reported at its line.
    type Config: DeserializeOwned;

    /// The snapshot format this build writes; `None` for a transform that keeps no state
    /// between batches (it may then run as several instances in parallel).
    const STATE_FORMAT: Option<u32> = None;

    /// Type-check `config` against the input schema and declare the outputs. Runs with no
    /// data (`sluice validate`); everything that can be known before data flows (unknown
    /// columns, impossible casts, bad expressions) belongs here, with a key path.
    fn describe(config: &Self::Config, input: &SchemaRef) -> Result<Outputs, ConfigError>;

    /// Build the running transform. `describe` has accepted the same arguments.
    fn open(config: Self::Config, input: SchemaRef) -> Result<Self, ConfigError>;

    /// Transform one batch, emitting zero or more batches to the declared outputs.
    fn process(&mut self, batch: RecordBatch, out: &mut Emitter) -> Result<(), ProcessError>;

    /// Event time reached `watermark_micros`: emit what it completes.
    fn advance_watermark(&mut self, _watermark_micros: i64, _out: &mut Emitter) -> Result<(), ProcessError> {
        Ok(())
    }

    /// End of a bounded input: emit everything still held.
    fn finish(&mut self, _out: &mut Emitter) -> Result<(), ProcessError> {
        Ok(())
    }

    /// The state to checkpoint, in format [`Self::STATE_FORMAT`].
    fn snapshot(&self) -> Result<Vec<u8>, String> {
        Ok(Vec::new())
    }

    /// Load a snapshot written by this or an older build.
    fn restore(&mut self, format_version: u32, _data: &[u8]) -> Result<(), RestoreError> {
        Err(RestoreError::UnsupportedVersion(format_version))
    }
}

/// Why a batch failed, as the host will see it. Arrow errors convert into `Failed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessError {
    /// The batch did not match the schema given at `open` (raised by the SDK itself).
    InvalidInput(String),
    /// The transform could not process the batch.
    Failed(String),
}

impl From<ArrowError> for ProcessError {
    fn from(err: ArrowError) -> Self {
        ProcessError::Failed(err.to_string())
    }
}

impl std::fmt::Display for ProcessError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProcessError::InvalidInput(m) => write!(f, "invalid input: {m}"),
            ProcessError::Failed(m) => f.write_str(m),
        }
    }
}

/// Check that `batch` has the columns and types announced at `open` (`expected`, the input
/// schema `open` was given); field names and nullability are not compared. Call it first in
/// `process`: the host sends batches of the described schema, so a mismatch is a bug that
/// should fail the batch as [`ProcessError::InvalidInput`] rather than index out of bounds.
pub fn check_input(batch: &RecordBatch, expected: &Schema) -> Result<(), ProcessError> {
    let got = batch.schema();
    let same = got.fields().len() == expected.fields().len()
        && got
            .fields()
            .iter()
            .zip(expected.fields().iter())
            .all(|(g, e)| g.data_type() == e.data_type());
    if same {
        Ok(())
    } else {
        Err(ProcessError::InvalidInput(format!(
            "batch schema {got:?} does not match the schema given at open {expected:?}"
        )))
    }
}

/// Why a snapshot was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreError {
    /// A format version this build cannot read.
    UnsupportedVersion(u32),
    /// The bytes could not be decoded.
    Corrupt(String),
}
