//! The seam between the failure policy and a transform: the calls the policy makes
//! ([`Calls`]), how it gets fresh instances ([`Open`]), and what it needs to know of a stage
//! ([`Policy`]). wasmtime instances implement them here; the policy's tests use plain Rust.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;

use super::WorkerError;
use crate::config::OnError;
use crate::engine::{CallError, Emitted, TransformInstance};
use crate::pipeline::stage_plan::{StagePlan, StageWatermark};

/// The calls the policy makes on a transform instance.
pub(crate) trait Calls: Send {
    /// When a batch given now must be done: every call made for it (bisection included)
    /// shares this one budget (`None`: no deadline).
    fn batch_deadline(&self) -> Option<Instant>;
    /// Transform a batch (or part of one) within what is left of its budget `until`.
    fn process_until(&mut self, batch: &RecordBatch, until: Option<Instant>) -> Result<Vec<Emitted>, CallError>;
    /// Transform a batch with a budget of its own.
    fn process(&mut self, batch: &RecordBatch) -> Result<Vec<Emitted>, CallError> {
        let until = self.batch_deadline();
        self.process_until(batch, until)
    }
    /// Event time has reached `micros`.
    fn advance_watermark(&mut self, micros: i64) -> Result<Vec<Emitted>, CallError>;
    /// The input has ended: emit what is held.
    fn finish(&mut self) -> Result<Vec<Emitted>, CallError>;
    /// The state (stateful transforms), with its format version.
    fn snapshot(&mut self) -> Result<Option<(u32, Vec<u8>)>, CallError>;
    /// Take over a state.
    fn restore(&mut self, format_version: u32, data: Vec<u8>) -> Result<(), CallError>;
    /// Fuel the last call used, when the transform runs with a fuel budget.
    fn fuel_used(&self) -> Option<u64> {
        None
    }
}

impl Calls for TransformInstance {
    fn batch_deadline(&self) -> Option<Instant> {
        TransformInstance::batch_deadline(self)
    }

    fn process_until(&mut self, batch: &RecordBatch, until: Option<Instant>) -> Result<Vec<Emitted>, CallError> {
        TransformInstance::process_until(self, batch, until)
    }

    fn advance_watermark(&mut self, micros: i64) -> Result<Vec<Emitted>, CallError> {
        TransformInstance::advance_watermark(self, micros)
    }

    fn finish(&mut self) -> Result<Vec<Emitted>, CallError> {
        TransformInstance::finish(self)
    }

    fn snapshot(&mut self) -> Result<Option<(u32, Vec<u8>)>, CallError> {
        TransformInstance::snapshot(self)
    }

    fn restore(&mut self, format_version: u32, data: Vec<u8>) -> Result<(), CallError> {
        TransformInstance::restore(self, format_version, data)
    }

    fn fuel_used(&self) -> Option<u64> {
        TransformInstance::fuel_used(self)
    }
}

/// Makes fresh, opened instances of a stage's transform.
pub(crate) trait Open: Send + Sync {
    /// A new instance, opened with the stage's config (`label` names it in logs).
    fn open(&self, label: &str) -> Result<Box<dyn Calls>, WorkerError>;
}

/// What the policy needs to know of a stage.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    /// The stage's name.
    pub name: String,
    /// Its component's SHA-256 (named in dead letters).
    pub digest: String,
    /// Whether it keeps state.
    pub stateful: bool,
    /// What happens to a batch it fails on.
    pub on_error: OnError,
    /// Halt after this many consecutive batches that failed entirely.
    pub quarantine_after: u32,
    /// Its event-time column and bounds.
    pub watermark: Option<StageWatermark>,
}

impl Policy {
    /// The policy of a planned stage.
    pub(crate) fn of(plan: &StagePlan) -> Policy {
        Policy {
            name: plan.name.clone(),
            digest: plan.component.digest().to_owned(),
            stateful: plan.stateful(),
            on_error: plan.on_error,
            quarantine_after: plan.quarantine_after,
            watermark: plan.watermark,
        }
    }
}

impl Open for Arc<StagePlan> {
    fn open(&self, label: &str) -> Result<Box<dyn Calls>, WorkerError> {
        let plan = self;
        let stage = plan.name.clone();
        let mut instance = plan
            .component
            .instantiate(label, &plan.limits)
            .map_err(|source| WorkerError::Engine {
                stage: stage.clone(),
                source,
            })?;
        match instance.open(&plan.config_json, &plan.input, &plan.description) {
            Ok(Ok(())) => Ok(Box::new(instance)),
            Ok(Err(e)) => Err(WorkerError::Open {
                stage,
                message: e.message,
            }),
            Err(e) => Err(WorkerError::Open {
                stage,
                message: e.to_string(),
            }),
        }
    }
}
