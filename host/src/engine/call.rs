//! What calls into a transform answer: its declaration, its config errors, and why a call
//! failed.

use arrow::array::{RecordBatch, UInt32Array};
use arrow::datatypes::SchemaRef;

use super::projection::Projection;

/// What a transform declared for a given config and input schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Description {
    /// Outputs, `main` first, with the schemas their rows have in the pipeline (without the
    /// contract's row-lineage column).
    pub outputs: Vec<(String, SchemaRef)>,
    /// The outputs whose batches carry the row-lineage column (`_sluice_row`) from the
    /// component.
    pub traced: Vec<String>,
    /// Snapshot format, `None` when stateless.
    pub state_format: Option<u32>,
    /// The columns `process` is sent, when the transform reads fewer than all (the
    /// contract's optional `projection`).
    pub projection: Option<Projection>,
}

/// Rows a call emitted to one output.
#[derive(Debug, Clone)]
pub struct Emitted {
    /// The declared output.
    pub output: String,
    /// The rows, with the output's declared schema (the row-lineage column taken off).
    pub rows: RecordBatch,
    /// For an output with row lineage, emitted by `process`: for each row, the index of the
    /// input row it comes from in the batch the call was given (null: no single input row).
    pub lineage: Option<UInt32Array>,
}

impl Emitted {
    /// Rows without lineage (as a transform without the lineage column emits them).
    pub fn untraced(output: impl Into<String>, rows: RecordBatch) -> Self {
        Emitted {
            output: output.into(),
            rows,
            lineage: None,
        }
    }
}

/// A config problem a transform reported, with its key path inside the `config` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginConfigError {
    /// Key path.
    pub path: Vec<String>,
    /// Message.
    pub message: String,
}

/// Why a call into a transform failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The component trapped (a bug, a limit hit, or the deadline). The instance is gone.
    #[error("trapped: {0}")]
    Trap(String),
    /// The call ran past its deadline and was interrupted. The instance is gone.
    #[error("ran past its deadline: {0}")]
    Timeout(String),
    /// The transform refused the input batch as unreadable or of the wrong schema.
    #[error("refused its input: {0}")]
    InvalidInput(String),
    /// The transform reported that it failed on this batch.
    #[error("failed: {0}")]
    Failed(String),
    /// The transform returned something that breaks the contract (unreadable IPC, an
    /// undeclared output, a schema other than declared).
    #[error("broke the contract: {0}")]
    BadOutput(String),
}

impl CallError {
    /// Whether the instance must be replaced before the next call.
    pub fn poisons_instance(&self) -> bool {
        matches!(self, CallError::Trap(_) | CallError::Timeout(_))
    }
}
