//! The trait a transform author implements.

use std::collections::HashSet;

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

    /// The input columns `process` reads under `config`, or `None` (the default) when it
    /// reads them all. A transform that names fewer is sent only those (the contract's
    /// `projection`), opened with a schema of just them, and the host puts the other
    /// columns back on the rows it emits, so a filter or a detector does not copy columns
    /// it never looks at into the sandbox and out again. Declare it only when every output
    /// either carries input rows (its schema is the input's columns followed by columns the
    /// transform adds, each row emitted by `process` with its input row, as
    /// [`Emitter::emit_aligned`](crate::Emitter::emit_aligned) and
    /// [`Emitter::emit_where`](crate::Emitter::emit_where) do, on an output
    /// [with lineage](crate::Outputs::with_lineage)) or does not depend on the input's other
    /// columns at all (an aggregate). Otherwise the host sends whole batches and logs why.
    fn reads(_config: &Self::Config, _input: &SchemaRef) -> Result<Option<Vec<String>>, ConfigError> {
        Ok(None)
    }

    /// The input columns whose values key the state under `config` (e.g. the group-by
    /// columns), or none (the default) when the state is not kept per key. A stateful stage
    /// with keyed state can run where several instances share a Kinesis stream: its state
    /// then follows the keys as shards split and merge (the contract's `keyed-state`).
    /// Implement [`state_keys`](Self::state_keys), [`retain_keys`](Self::retain_keys) and
    /// [`absorb`](Self::absorb) with it.
    fn state_key(_config: &Self::Config, _input: &SchemaRef) -> Result<Vec<String>, ConfigError> {
        Ok(Vec::new())
    }

    /// The keys the state holds entries for, each once, as [`key_text`](crate::key_text)
    /// renders them.
    fn state_keys(&self) -> Vec<String> {
        Vec::new()
    }

    /// Forget the entries of every key whose text is not in `keep`.
    fn retain_keys(&mut self, _keep: &HashSet<String>) -> Result<(), String> {
        Err("this transform's state is not kept per key".into())
    }

    /// Add the entries of another instance's snapshot (same config) to the state, combining
    /// the entries of a key both hold as well as the state allows.
    fn absorb(&mut self, format_version: u32, _data: &[u8]) -> Result<(), RestoreError> {
        Err(RestoreError::UnsupportedVersion(format_version))
    }
}

/// Separates the parts of a key of several columns in [`key_text`].
pub const KEY_SEPARATOR: char = '\u{1f}';

/// A state key as the `keyed-state` contract writes it: each column's value as a producer
/// would write it as a partition key (a string as it is, an integer in decimal, a boolean
/// `true`/`false`, a null as the empty string), joined by [`KEY_SEPARATOR`].
pub fn key_text<S: AsRef<str>>(parts: &[Option<S>]) -> String {
    let mut text = String::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            text.push(KEY_SEPARATOR);
        }
        if let Some(p) = part {
            text.push_str(p.as_ref());
        }
    }
    text
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
