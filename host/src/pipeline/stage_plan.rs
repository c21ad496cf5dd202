//! One transform as the plan holds it: type-checked against its input and compiled.

use arrow::datatypes::SchemaRef;

use super::watermark::WatermarkSettings;
use crate::config::OnError;
use crate::engine::{Component, Description, Limits};

/// One transform, type-checked and compiled.
#[derive(Debug, Clone)]
pub struct StagePlan {
    /// The transform's name.
    pub name: String,
    /// Its compiled component.
    pub component: Component,
    /// Its config, as the component takes it.
    pub config_json: String,
    /// The schema of the batches it receives.
    pub input: SchemaRef,
    /// What it declared.
    pub description: Description,
    /// The input columns that key its state (the contract's optional `keyed-state`); empty
    /// when it is stateless or its state does not divide by key.
    pub state_key: Vec<String>,
    /// What happens to a batch it fails on.
    pub on_error: OnError,
    /// Its instances' limits.
    pub limits: Limits,
    /// Halt after this many consecutive batches that failed entirely.
    pub quarantine_after: u32,
    /// The event-time column the host derives this stage's watermark from.
    pub watermark: Option<StageWatermark>,
    /// On a reload: start empty when the new version refuses the running state.
    pub discard_state: bool,
}

/// A stage's watermark settings, checked against its input schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageWatermark {
    /// Index of the event-time column in the stage's input.
    pub column: usize,
    /// Bound and idleness.
    pub settings: WatermarkSettings,
}

impl StagePlan {
    /// Whether `other` runs exactly like this stage (same component, config, input and
    /// settings): a reload keeps such a stage's instances and state untouched.
    pub fn same_as(&self, other: &StagePlan) -> bool {
        self.name == other.name
            && self.component.digest() == other.component.digest()
            && self.config_json == other.config_json
            && self.input == other.input
            && self.on_error == other.on_error
            && self.limits == other.limits
            && self.quarantine_after == other.quarantine_after
            && self.watermark == other.watermark
    }

    /// Whether it keeps state (and so is snapshotted with checkpoints).
    pub fn stateful(&self) -> bool {
        self.description.state_format.is_some()
    }

    /// The schema of its `main` output.
    pub fn output(&self) -> &SchemaRef {
        &self.description.outputs[0].1
    }
}
