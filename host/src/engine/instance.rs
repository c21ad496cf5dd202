//! One sandboxed transform instance, speaking Arrow record batches.
//!
//! Every call gets a fresh epoch deadline; every output is decoded and checked against the
//! outputs the transform declared, so a misbehaving component produces a [`CallError`],
//! never bad data downstream. After a trap the instance is poisoned and refuses further
//! calls: the caller discards it and instantiates a new one.

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use sluice_contract::{decode_batch, decode_schema, encode_batch, encode_schema};
use wasmtime::Store;

use super::bindings::{HostState, Transformer, TransformerPre, wit, wit_types};
use super::limits::Limits;
use super::{EngineError, one_line as short};

pub(crate) struct ComponentInner {
    pub(crate) name: String,
    pub(crate) digest: String,
    pub(crate) imports: Vec<String>,
    pub(crate) pre: TransformerPre<HostState>,
    /// Keeps the epoch ticker running while this component can be instantiated.
    pub(crate) _ticker: std::sync::Arc<super::limits::EpochTicker>,
    pub(crate) enforce_limits: bool,
    /// Compiled with fuel metering.
    pub(crate) fuel: bool,
}

/// What a transform declared for a given config and input schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Description {
    /// Outputs, `main` first.
    pub outputs: Vec<(String, SchemaRef)>,
    /// Snapshot format, `None` when stateless.
    pub state_format: Option<u32>,
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

/// A live instance of a transform component.
pub struct TransformInstance {
    store: Store<HostState>,
    bindings: Transformer,
    deadline_ticks: u64,
    /// Fuel per call, when the component is metered.
    fuel: Option<u64>,
    max_output_ratio: u32,
    outputs: Vec<(String, SchemaRef)>,
    poisoned: bool,
    name: String,
}

impl std::fmt::Debug for TransformInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransformInstance")
            .field("name", &self.name)
            .field("poisoned", &self.poisoned)
            .finish()
    }
}

pub(crate) fn instantiate(
    inner: &ComponentInner,
    label: &str,
    limits: &Limits,
) -> Result<TransformInstance, EngineError> {
    let mut store = Store::new(inner.pre.engine(), HostState::new(label, limits));
    let deadline_ticks = if inner.enforce_limits {
        limits.deadline_ticks()
    } else {
        0
    };
    // A metered component always has a budget: the plan's, or (none given) practically none.
    let fuel = inner.fuel.then(|| limits.fuel.unwrap_or(u64::MAX / 2));
    if inner.enforce_limits {
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(deadline_ticks);
    }
    if let Some(f) = fuel {
        store.set_fuel(f).map_err(|e| EngineError::Instantiate {
            name: inner.name.clone(),
            message: short(&e),
        })?;
    }
    let bindings = inner
        .pre
        .instantiate(&mut store)
        .map_err(|e| EngineError::Instantiate {
            name: inner.name.clone(),
            message: short(&e),
        })?;
    Ok(TransformInstance {
        store,
        bindings,
        deadline_ticks,
        fuel,
        max_output_ratio: limits.max_output_ratio,
        outputs: Vec::new(),
        poisoned: false,
        name: inner.name.clone(),
    })
}

fn ipc_err(e: arrow::error::ArrowError) -> CallError {
    CallError::BadOutput(format!("unreadable Arrow IPC: {e}"))
}

impl TransformInstance {
    fn begin(&mut self) -> Result<(), CallError> {
        if self.poisoned {
            return Err(CallError::Trap(format!(
                "instance of {} was poisoned by an earlier trap",
                self.name
            )));
        }
        if self.deadline_ticks > 0 {
            self.store.set_epoch_deadline(self.deadline_ticks);
        }
        if let Some(fuel) = self.fuel {
            self.store
                .set_fuel(fuel)
                .map_err(|e| CallError::Trap(format!("cannot set the fuel budget: {e}")))?;
        }
        Ok(())
    }

    fn trapped(&mut self, e: wasmtime::Error) -> CallError {
        self.poisoned = true;
        if e.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) {
            CallError::Timeout(format!(
                "interrupted after {} ms",
                self.deadline_ticks * super::limits::TICK.as_millis() as u64
            ))
        } else if e.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::OutOfFuel) {
            CallError::Trap(format!("used up its fuel budget of {} units", self.fuel.unwrap_or(0)))
        } else {
            CallError::Trap(short(&e))
        }
    }

    /// Run the transform's type check.
    pub fn describe(
        &mut self,
        config: &str,
        input: &Schema,
    ) -> Result<Result<Description, PluginConfigError>, CallError> {
        self.begin()?;
        let schema = encode_schema(input).map_err(|e| CallError::InvalidInput(e.to_string()))?;
        let result = self
            .bindings
            .sluice_transform_transform()
            .call_describe(&mut self.store, config, &schema);
        let result = result.map_err(|e| self.trapped(e))?;
        match result {
            Ok(desc) => {
                let mut outputs = Vec::with_capacity(desc.outputs.len());
                for decl in desc.outputs {
                    let schema = decode_schema(&decl.schema).map_err(ipc_err)?;
                    outputs.push((decl.name, schema));
                }
                if outputs.first().is_none_or(|(n, _)| n != sluice_contract::MAIN) {
                    return Err(CallError::BadOutput("the first declared output must be `main`".into()));
                }
                check_rejected(&outputs)?;
                Ok(Ok(Description {
                    outputs,
                    state_format: desc.state_format,
                }))
            }
            Err(wit_types::ConfigError { path, message }) => Ok(Err(PluginConfigError { path, message })),
        }
    }

    /// Prepare the instance; `declared` are the outputs `describe` returned.
    pub fn open(
        &mut self,
        config: &str,
        input: &Schema,
        declared: &Description,
    ) -> Result<Result<(), PluginConfigError>, CallError> {
        self.begin()?;
        let schema = encode_schema(input).map_err(|e| CallError::InvalidInput(e.to_string()))?;
        let result = self
            .bindings
            .sluice_transform_transform()
            .call_open(&mut self.store, config, &schema);
        match result.map_err(|e| self.trapped(e))? {
            Ok(()) => {
                self.outputs = declared.outputs.clone();
                Ok(Ok(()))
            }
            Err(wit_types::ConfigError { path, message }) => Ok(Err(PluginConfigError { path, message })),
        }
    }

    /// Transform one batch.
    pub fn process(&mut self, batch: &RecordBatch) -> Result<Vec<(String, RecordBatch)>, CallError> {
        self.begin()?;
        let bytes = encode_batch(batch).map_err(|e| CallError::InvalidInput(e.to_string()))?;
        let result = self
            .bindings
            .sluice_transform_transform()
            .call_process(&mut self.store, &bytes);
        let result = result.map_err(|e| self.trapped(e))?;
        let outputs = self.outputs_of(result)?;
        let rows: usize = outputs.iter().map(|(_, b)| b.num_rows()).sum();
        let limit = Limits::max_output_rows(self.max_output_ratio, batch.num_rows());
        if rows > limit {
            return Err(CallError::BadOutput(format!(
                "emitted {rows} rows for {} input rows, over the limit of {limit} ({}x)",
                batch.num_rows(),
                self.max_output_ratio
            )));
        }
        Ok(outputs)
    }

    /// Tell the transform event time reached `watermark_micros`.
    pub fn advance_watermark(&mut self, watermark_micros: i64) -> Result<Vec<(String, RecordBatch)>, CallError> {
        self.begin()?;
        let result = self
            .bindings
            .sluice_transform_transform()
            .call_advance_watermark(&mut self.store, watermark_micros);
        let result = result.map_err(|e| self.trapped(e))?;
        self.outputs_of(result)
    }

    /// End of input: collect what the transform still holds.
    pub fn finish(&mut self) -> Result<Vec<(String, RecordBatch)>, CallError> {
        self.begin()?;
        let result = self.bindings.sluice_transform_transform().call_finish(&mut self.store);
        let result = result.map_err(|e| self.trapped(e))?;
        self.outputs_of(result)
    }

    /// The transform's state, `(format, bytes)`, or `None` when stateless.
    pub fn snapshot(&mut self) -> Result<Option<(u32, Vec<u8>)>, CallError> {
        self.begin()?;
        let result = self
            .bindings
            .sluice_transform_transform()
            .call_snapshot(&mut self.store);
        match result.map_err(|e| self.trapped(e))? {
            Ok(state) => Ok(state.map(|s| (s.format_version, s.data))),
            Err(message) => Err(CallError::Failed(message)),
        }
    }

    /// Load a snapshot.
    pub fn restore(&mut self, format_version: u32, data: Vec<u8>) -> Result<(), CallError> {
        self.begin()?;
        let state = wit_types::StateSnapshot { format_version, data };
        let result = self
            .bindings
            .sluice_transform_transform()
            .call_restore(&mut self.store, &state);
        match result.map_err(|e| self.trapped(e))? {
            Ok(()) => Ok(()),
            Err(wit_types::RestoreError::UnsupportedVersion(v)) => {
                Err(CallError::Failed(format!("refused state format version {v}")))
            }
            Err(wit_types::RestoreError::Corrupt(m)) => Err(CallError::Failed(format!("refused corrupt state: {m}"))),
        }
    }

    fn outputs_of(
        &self,
        result: Result<Vec<wit::OutputBatch>, wit_types::ProcessError>,
    ) -> Result<Vec<(String, RecordBatch)>, CallError> {
        let batches = match result {
            Ok(b) => b,
            Err(wit_types::ProcessError::InvalidInput(m)) => {
                return Err(CallError::InvalidInput(m));
            }
            Err(wit_types::ProcessError::Failed(m)) => return Err(CallError::Failed(m)),
        };
        let mut out = Vec::with_capacity(batches.len());
        for b in batches {
            let Some((_, schema)) = self.outputs.iter().find(|(n, _)| *n == b.output) else {
                return Err(CallError::BadOutput(format!(
                    "emitted to undeclared output `{}`",
                    b.output
                )));
            };
            let batch = decode_batch(b.batch).map_err(ipc_err)?;
            if batch.schema().fields() != schema.fields() {
                return Err(CallError::BadOutput(format!(
                    "batch for `{}` has schema {:?}, declared {:?}",
                    b.output,
                    batch.schema().fields(),
                    schema.fields()
                )));
            }
            out.push((b.output, batch));
        }
        Ok(out)
    }
}

/// The contract requires `rejected` to end with a non-null utf8 reason column.
fn check_rejected(outputs: &[(String, SchemaRef)]) -> Result<(), CallError> {
    let Some((_, schema)) = outputs.iter().find(|(n, _)| n == sluice_contract::REJECTED) else {
        return Ok(());
    };
    match schema.fields().last() {
        Some(f) if f.name() == sluice_contract::REASON_COLUMN && f.data_type() == &arrow::datatypes::DataType::Utf8 => {
            Ok(())
        }
        _ => Err(CallError::BadOutput(format!(
            "the `rejected` output must end with a utf8 column `{}`",
            sluice_contract::REASON_COLUMN
        ))),
    }
}
