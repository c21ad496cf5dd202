//! One sandboxed transform instance, speaking Arrow record batches.
//!
//! Every call gets an epoch deadline (the rest of its batch's budget); every output is decoded
//! and checked against the outputs the transform declared, its rows against the input it
//! came from and its expanded bytes against the memory cap, so a misbehaving component
//! produces a [`CallError`], never bad data (or an unbounded allocation) downstream. After a trap the instance is poisoned and refuses further
//! calls: the caller discards it and instantiates a new one.

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use sluice_contract::{decode_batch, decode_schema, encode_batch, encode_schema};
use wasmtime::Store;

use std::time::{Duration, Instant};

use super::bindings::{self, HostState, wit, wit_keyed, wit_projection, wit_types};
use super::call::{CallError, Description, Emitted, PluginConfigError};
use super::limits::Limits;
use super::lineage;
use super::output::{self, check_rejected};
use super::projection::Projection;
use super::{EngineError, one_line as short};

pub(crate) struct ComponentInner {
    pub(crate) name: String,
    pub(crate) digest: String,
    pub(crate) imports: Vec<String>,
    pub(crate) pre: wasmtime::component::InstancePre<HostState>,
    /// Where `transform`'s functions are.
    pub(crate) transform: wit::GuestIndices,
    /// Where `keyed-state`'s functions are, when the component exports it.
    pub(crate) keyed: Option<wit_keyed::GuestIndices>,
    /// Where `projection`'s function is, when the component exports it.
    pub(crate) projection: Option<wit_projection::GuestIndices>,
    /// Keeps the epoch ticker running while this component can be instantiated.
    pub(crate) _ticker: std::sync::Arc<super::limits::EpochTicker>,
    pub(crate) enforce_limits: bool,
    /// Compiled with fuel metering.
    pub(crate) fuel: bool,
}

/// What `describe` declares: the outputs (each without the lineage column), the names of
/// those with it, and the state format.
type Declaration = (Vec<(String, SchemaRef)>, Vec<String>, Option<u32>);

/// A live instance of a transform component.
pub struct TransformInstance {
    store: Store<HostState>,
    bindings: wit::Guest,
    /// The optional `keyed-state` export.
    keyed: Option<wit_keyed::Guest>,
    /// The optional `projection` export.
    reads: Option<wit_projection::Guest>,
    /// The columns `process` is sent, when the transform reads fewer than all.
    projection: Option<Projection>,
    /// The budget of one batch, in epoch ticks; 0 when limits are not enforced.
    deadline_ticks: u64,
    call_timeout: Duration,
    /// Most bytes, fully expanded, the host takes from one call.
    max_output_bytes: u64,
    /// The snapshot format `describe` declared.
    state_format: Option<u32>,
    /// Rows given to `process`, and credit for restored state (its bytes): what bounds the
    /// rows `finish` and `advance-watermark` may emit.
    rows_in: u64,
    /// Rows emitted by every call so far.
    rows_out: u64,
    digest: String,
    label: String,
    /// Fuel per call, when the component is metered.
    fuel: Option<u64>,
    max_output_ratio: u32,
    outputs: Vec<(String, SchemaRef)>,
    /// Outputs whose batches carry the row-lineage column.
    traced: Vec<String>,
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

/// A store for one instance of the component with `digest`: its WASI context seeded for
/// it, and (when enforced) the instance's memory cap and a whole deadline.
pub(crate) fn new_store(
    engine: &wasmtime::Engine,
    digest: &str,
    label: &str,
    limits: &Limits,
    enforce_limits: bool,
) -> Store<HostState> {
    let seed = bindings::seed(digest, label, &[]);
    let mut store = Store::new(engine, HostState::new(label, limits, seed));
    if enforce_limits {
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(limits.deadline_ticks());
    }
    store
}

pub(crate) fn instantiate(
    inner: &ComponentInner,
    label: &str,
    limits: &Limits,
) -> Result<TransformInstance, EngineError> {
    let mut store = new_store(inner.pre.engine(), &inner.digest, label, limits, inner.enforce_limits);
    let deadline_ticks = if inner.enforce_limits {
        limits.deadline_ticks()
    } else {
        0
    };
    // A metered component always has a budget: the plan's, or (none given) practically none.
    let fuel = inner.fuel.then(|| limits.fuel.unwrap_or(u64::MAX / 2));
    if let Some(f) = fuel {
        store.set_fuel(f).map_err(|e| EngineError::Instantiate {
            name: inner.name.clone(),
            message: short(&e),
        })?;
    }
    let instantiate_err = |e: wasmtime::Error| EngineError::Instantiate {
        name: inner.name.clone(),
        message: short(&e),
    };
    let instance = inner.pre.instantiate(&mut store).map_err(instantiate_err)?;
    let bindings = inner.transform.load(&mut store, &instance).map_err(instantiate_err)?;
    let keyed = match &inner.keyed {
        Some(k) => Some(k.load(&mut store, &instance).map_err(instantiate_err)?),
        None => None,
    };
    let reads = match &inner.projection {
        Some(p) => Some(p.load(&mut store, &instance).map_err(instantiate_err)?),
        None => None,
    };
    Ok(TransformInstance {
        store,
        bindings,
        keyed,
        reads,
        projection: None,
        deadline_ticks,
        call_timeout: limits.call_timeout,
        max_output_bytes: limits.max_memory_bytes as u64,
        state_format: None,
        rows_in: 0,
        rows_out: 0,
        digest: inner.digest.clone(),
        label: label.to_owned(),
        fuel,
        max_output_ratio: limits.max_output_ratio,
        outputs: Vec::new(),
        traced: Vec::new(),
        poisoned: false,
        name: inner.name.clone(),
    })
}

/// Why a transform refused a snapshot (`restore`, `absorb`), as a failed call.
fn refused_state(e: wit_types::RestoreError) -> CallError {
    match e {
        wit_types::RestoreError::UnsupportedVersion(v) => {
            CallError::Failed(format!("refused state format version {v}"))
        }
        wit_types::RestoreError::Corrupt(m) => CallError::Failed(format!("refused corrupt state: {m}")),
    }
}

fn ipc_err(e: arrow::error::ArrowError) -> CallError {
    CallError::BadOutput(format!("unreadable Arrow IPC: {e}"))
}

impl TransformInstance {
    /// Prepare a call that must end by `until` (a whole budget from now when `None`).
    fn begin(&mut self, until: Option<Instant>) -> Result<(), CallError> {
        if self.poisoned {
            return Err(CallError::Trap(format!(
                "instance of {} was poisoned by an earlier trap",
                self.name
            )));
        }
        if self.deadline_ticks > 0 {
            let mut ticks = self.deadline_ticks;
            if let Some(until) = until {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(CallError::Timeout(format!(
                        "the batch's budget of {} ms was spent before this call",
                        self.call_timeout.as_millis()
                    )));
                }
                let tick = super::limits::TICK.as_nanos();
                ticks = ticks.min(left.as_nanos().div_ceil(tick) as u64);
            }
            self.store.set_epoch_deadline(ticks);
        }
        if let Some(fuel) = self.fuel {
            self.store
                .set_fuel(fuel)
                .map_err(|e| CallError::Trap(format!("cannot set the fuel budget: {e}")))?;
        }
        Ok(())
    }

    /// Fuel the last call used, for a component run with a fuel budget (each call starts
    /// with the whole budget).
    pub fn fuel_used(&self) -> Option<u64> {
        let budget = self.fuel?;
        let left = self.store.get_fuel().ok()?;
        Some(budget.saturating_sub(left))
    }

    fn trapped(&mut self, e: wasmtime::Error) -> CallError {
        self.poisoned = true;
        if e.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) {
            CallError::Timeout(format!(
                "interrupted: its batch's budget of {} ms is spent",
                self.call_timeout.as_millis()
            ))
        } else if let Some(exit) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
            CallError::Trap(format!("the component called exit({})", exit.0))
        } else if e.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::OutOfFuel) {
            CallError::Trap(format!("used up its fuel budget of {} units", self.fuel.unwrap_or(0)))
        } else {
            CallError::Trap(short(&e))
        }
    }

    /// Run the transform's type check, and see whether it may be sent only the columns it
    /// reads (see `projection`).
    pub fn describe(
        &mut self,
        config: &str,
        input: &SchemaRef,
    ) -> Result<Result<Description, PluginConfigError>, CallError> {
        let (outputs, traced, state_format) = match self.declare(config, input)? {
            Ok(declared) => declared,
            Err(e) => return Ok(Err(e)),
        };
        let projection = match self.projection(config, input, &outputs, &traced)? {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        Ok(Ok(Description {
            outputs,
            traced,
            state_format,
            projection,
        }))
    }

    /// The outputs `describe` declares for `input`, checked: each without the lineage
    /// column, the names of those with it, and the state format.
    fn declare(&mut self, config: &str, input: &Schema) -> Result<Result<Declaration, PluginConfigError>, CallError> {
        self.begin(None)?;
        let schema = encode_schema(input).map_err(|e| CallError::InvalidInput(e.to_string()))?;
        let result = self.bindings.call_describe(&mut self.store, config, &schema);
        let desc = match result.map_err(|e| self.trapped(e))? {
            Ok(desc) => desc,
            Err(wit_types::ConfigError { path, message }) => return Ok(Err(PluginConfigError { path, message })),
        };
        let mut outputs = Vec::with_capacity(desc.outputs.len());
        let mut traced = Vec::new();
        for decl in desc.outputs {
            let schema = decode_schema(&decl.schema).map_err(ipc_err)?;
            let (schema, has_lineage) = lineage::declared(&decl.name, schema)?;
            if has_lineage {
                traced.push(decl.name.clone());
            }
            outputs.push((decl.name, schema));
        }
        if outputs.first().is_none_or(|(n, _)| n != sluice_contract::MAIN) {
            return Err(CallError::BadOutput("the first declared output must be `main`".into()));
        }
        check_rejected(&outputs)?;
        if let Some(why) = outputs.iter().find_map(|(n, s)| output::check_schema(n, s)) {
            return Err(CallError::BadOutput(why));
        }
        Ok(Ok((outputs, traced, desc.state_format)))
    }

    /// The projection the transform's `reads` and its declarations allow, if any. One the
    /// declarations do not allow is logged and not taken: the transform then gets whole
    /// batches, as one without `projection` does.
    fn projection(
        &mut self,
        config: &str,
        input: &SchemaRef,
        outputs: &[(String, SchemaRef)],
        traced: &[String],
    ) -> Result<Result<Option<Projection>, PluginConfigError>, CallError> {
        let Some(reads) = self.reads.clone() else {
            return Ok(Ok(None));
        };
        self.begin(None)?;
        let schema = encode_schema(input).map_err(|e| CallError::InvalidInput(e.to_string()))?;
        let result = reads.call_reads(&mut self.store, config, &schema);
        let columns = match result.map_err(|e| self.trapped(e))? {
            Ok(Some(columns)) => columns,
            Ok(None) => return Ok(Ok(None)),
            Err(wit_types::ConfigError { path, message }) => return Ok(Err(PluginConfigError { path, message })),
        };
        let whole: Vec<_> = outputs
            .iter()
            .map(|(name, schema)| (name.as_str(), schema, traced.contains(name)))
            .collect();
        let mut failed = None;
        let planned = Projection::plan(input, &columns, &whole, |narrow| match self.declare(config, narrow) {
            Ok(Ok((outputs, traced, _))) => Ok(outputs
                .into_iter()
                .map(|(name, schema)| {
                    let t = traced.contains(&name);
                    (name, schema, t)
                })
                .collect()),
            Ok(Err(e)) => Err(format!("it refuses the columns it reads: {}", e.message)),
            Err(e) => {
                let why = e.to_string();
                failed = Some(e);
                Err(why)
            }
        });
        if let Some(e) = failed.filter(CallError::poisons_instance) {
            return Err(e);
        }
        Ok(Ok(planned.unwrap_or_else(|why| {
            tracing::warn!(component = %self.name, "Transform declares the columns it reads, but {why}; it gets whole batches.");
            None
        })))
    }

    /// Prepare the instance; `declared` are the outputs `describe` returned.
    pub fn open(
        &mut self,
        config: &str,
        input: &Schema,
        declared: &Description,
    ) -> Result<Result<(), PluginConfigError>, CallError> {
        self.begin(None)?;
        let input = declared.projection.as_ref().map_or(input, |p| p.schema().as_ref());
        let schema = encode_schema(input).map_err(|e| CallError::InvalidInput(e.to_string()))?;
        let result = self.bindings.call_open(&mut self.store, config, &schema);
        match result.map_err(|e| self.trapped(e))? {
            Ok(()) => {
                self.outputs = declared.outputs.clone();
                self.traced = declared.traced.clone();
                self.state_format = declared.state_format;
                self.projection = declared.projection.clone();
                Ok(Ok(()))
            }
            Err(wit_types::ConfigError { path, message }) => Ok(Err(PluginConfigError { path, message })),
        }
    }

    /// Transform one batch, with a whole budget.
    pub fn process(&mut self, batch: &RecordBatch) -> Result<Vec<Emitted>, CallError> {
        self.process_until(batch, None)
    }

    /// When a batch given now must be done under its limits: every call made for it
    /// (bisection included) shares this one budget.
    pub fn batch_deadline(&self) -> Option<Instant> {
        (self.deadline_ticks > 0).then(|| Instant::now() + self.call_timeout)
    }

    /// Transform one batch (or part of one) within what is left of its budget, `until`
    /// (from [`batch_deadline`](Self::batch_deadline)).
    pub fn process_until(&mut self, batch: &RecordBatch, until: Option<Instant>) -> Result<Vec<Emitted>, CallError> {
        self.begin(until)?;
        let bytes = match &self.projection {
            Some(p) => p.narrow(batch).and_then(|b| encode_batch(&b)),
            None => encode_batch(batch),
        }
        .map_err(|e| CallError::InvalidInput(e.to_string()))?;
        let result = self.bindings.call_process(&mut self.store, &bytes);
        let result = result.map_err(|e| self.trapped(e))?;
        let mut outputs = self.outputs_of(result)?;
        for out in &outputs {
            if let Some(rows) = &out.lineage {
                lineage::check_within(&out.output, rows, batch.num_rows())?;
            }
        }
        if let Some(p) = &self.projection {
            for out in &mut outputs {
                out.rows = p
                    .widen(&out.output, batch, &out.rows, out.lineage.as_ref())
                    .map_err(CallError::BadOutput)?;
            }
        }
        let rows: usize = outputs.iter().map(|o| o.rows.num_rows()).sum();
        let limit = Limits::max_output_rows(self.max_output_ratio, batch.num_rows());
        if rows > limit {
            return Err(CallError::BadOutput(format!(
                "emitted {rows} rows for {} input rows, over the limit of {limit} ({}x)",
                batch.num_rows(),
                self.max_output_ratio
            )));
        }
        self.rows_in = self.rows_in.saturating_add(batch.num_rows() as u64);
        self.rows_out = self.rows_out.saturating_add(rows as u64);
        Ok(outputs)
    }

    /// `finish` and `advance-watermark` emit what earlier input left behind: all the rows an
    /// instance emits, whatever the call, stay within the output ratio of all the rows it
    /// was given (restored state counting one row per byte).
    fn check_flush(&mut self, call: &str, outputs: &mut [Emitted]) -> Result<(), CallError> {
        // No input row is the source of what these calls emit.
        for out in outputs.iter_mut() {
            out.lineage = None;
        }
        if let Some(p) = &self.projection {
            let carried = outputs.iter().find(|o| o.rows.num_rows() > 0 && p.carries(&o.output));
            if let Some(o) = carried {
                return Err(CallError::BadOutput(format!(
                    "emitted rows of `{}` from `{call}`: that output carries input rows, which only `process` can name (it declared the columns it reads)",
                    o.output
                )));
            }
        }
        let rows: u64 = outputs.iter().map(|o| o.rows.num_rows() as u64).sum();
        let allowed = self.rows_in.max(1).saturating_mul(u64::from(self.max_output_ratio));
        let total = self.rows_out.saturating_add(rows);
        if total > allowed {
            return Err(CallError::BadOutput(format!(
                "emitted {rows} rows from `{call}`, bringing its output to {total} rows for {} rows in, over the limit of {allowed} ({}x)",
                self.rows_in, self.max_output_ratio
            )));
        }
        self.rows_out = total;
        Ok(())
    }

    /// Tell the transform event time reached `watermark_micros`.
    pub fn advance_watermark(&mut self, watermark_micros: i64) -> Result<Vec<Emitted>, CallError> {
        self.begin(None)?;
        let result = self.bindings.call_advance_watermark(&mut self.store, watermark_micros);
        let result = result.map_err(|e| self.trapped(e))?;
        let mut outputs = self.outputs_of(result)?;
        self.check_flush("advance-watermark", &mut outputs)?;
        Ok(outputs)
    }

    /// End of input: collect what the transform still holds.
    pub fn finish(&mut self) -> Result<Vec<Emitted>, CallError> {
        self.begin(None)?;
        let result = self.bindings.call_finish(&mut self.store);
        let result = result.map_err(|e| self.trapped(e))?;
        let mut outputs = self.outputs_of(result)?;
        self.check_flush("finish", &mut outputs)?;
        Ok(outputs)
    }

    /// The transform's state, `(format, bytes)`, or `None` when stateless.
    /// The snapshot must carry the format `describe` declared: a snapshot no version of the
    /// component could restore is refused now, not at the next start. The instance's WASI
    /// random restarts from the state (see `bindings::seed`), as a restored one does.
    pub fn snapshot(&mut self) -> Result<Option<(u32, Vec<u8>)>, CallError> {
        self.begin(None)?;
        let result = self.bindings.call_snapshot(&mut self.store);
        let state = match result.map_err(|e| self.trapped(e))? {
            Ok(state) => state.map(|s| (s.format_version, s.data)),
            Err(message) => return Err(CallError::Failed(message)),
        };
        if let Some((version, data)) = &state {
            match self.state_format {
                Some(declared) if declared == *version => {}
                Some(declared) => {
                    return Err(CallError::BadOutput(format!(
                        "saved state tagged format version {version}, but it declared state-format {declared}"
                    )));
                }
                None => {
                    return Err(CallError::BadOutput(format!(
                        "saved state (format version {version}) but declared itself stateless"
                    )));
                }
            }
            let seed = bindings::seed(&self.digest, &self.label, data);
            self.store.data_mut().reseed(seed);
        }
        Ok(state)
    }

    /// Load a snapshot.
    pub fn restore(&mut self, format_version: u32, data: Vec<u8>) -> Result<(), CallError> {
        self.begin(None)?;
        let seed = bindings::seed(&self.digest, &self.label, &data);
        let credit = data.len() as u64;
        let state = wit_types::StateSnapshot { format_version, data };
        let result = self.bindings.call_restore(&mut self.store, &state);
        match result.map_err(|e| self.trapped(e))? {
            Ok(()) => {
                self.rows_in = self.rows_in.saturating_add(credit);
                self.store.data_mut().reseed(seed);
                Ok(())
            }
            Err(refused) => Err(refused_state(refused)),
        }
    }

    /// The `keyed-state` export, or why there is none.
    fn keyed_state(&self) -> Result<wit_keyed::Guest, CallError> {
        self.keyed.clone().ok_or_else(|| {
            CallError::Failed(format!(
                "{} does not export sluice:transform/keyed-state: its state does not divide by key",
                self.name
            ))
        })
    }

    /// The input columns that key the state under `config` (empty: not kept per key), or
    /// `None` when the component does not export `keyed-state`. Pure, like `describe`.
    pub fn state_key(
        &mut self,
        config: &str,
        input: &Schema,
    ) -> Result<Option<Result<Vec<String>, PluginConfigError>>, CallError> {
        let Some(keyed) = self.keyed.clone() else {
            return Ok(None);
        };
        self.begin(None)?;
        let schema = encode_schema(input).map_err(|e| CallError::InvalidInput(e.to_string()))?;
        let result = keyed.call_state_key(&mut self.store, config, &schema);
        Ok(Some(match result.map_err(|e| self.trapped(e))? {
            Ok(columns) => Ok(columns),
            Err(wit_types::ConfigError { path, message }) => Err(PluginConfigError { path, message }),
        }))
    }

    /// The keys the running state holds, as the contract's text.
    pub fn state_keys(&mut self) -> Result<Vec<String>, CallError> {
        let keyed = self.keyed_state()?;
        self.begin(None)?;
        let result = keyed.call_keys(&mut self.store);
        result.map_err(|e| self.trapped(e))
    }

    /// Forget the entries of every key not in `keep`.
    pub fn retain_keys(&mut self, keep: &[String]) -> Result<(), CallError> {
        let keyed = self.keyed_state()?;
        self.begin(None)?;
        let result = keyed.call_retain(&mut self.store, keep);
        result.map_err(|e| self.trapped(e))?.map_err(CallError::Failed)
    }

    /// Add another instance's snapshot to the running state (a merge).
    pub fn absorb(&mut self, format_version: u32, data: Vec<u8>) -> Result<(), CallError> {
        let keyed = self.keyed_state()?;
        self.begin(None)?;
        let credit = data.len() as u64;
        let state = wit_types::StateSnapshot { format_version, data };
        let result = keyed.call_absorb(&mut self.store, &state);
        match result.map_err(|e| self.trapped(e))? {
            Ok(()) => {
                self.rows_in = self.rows_in.saturating_add(credit);
                Ok(())
            }
            Err(refused) => Err(refused_state(refused)),
        }
    }

    fn outputs_of(
        &self,
        result: Result<Vec<wit::OutputBatch>, wit_types::ProcessError>,
    ) -> Result<Vec<Emitted>, CallError> {
        let batches = match result {
            Ok(b) => b,
            Err(wit_types::ProcessError::InvalidInput(m)) => {
                return Err(CallError::InvalidInput(m));
            }
            Err(wit_types::ProcessError::Failed(m)) => return Err(CallError::Failed(m)),
        };
        let mut out = Vec::with_capacity(batches.len());
        let mut bytes = 0u64;
        for b in batches {
            let Some((_, declared)) = self.outputs.iter().find(|(n, _)| *n == b.output) else {
                return Err(CallError::BadOutput(format!(
                    "emitted to undeclared output `{}`",
                    b.output
                )));
            };
            let schema = self
                .projection
                .as_ref()
                .and_then(|p| p.emitted(&b.output))
                .unwrap_or(declared);
            let batch = decode_batch(b.batch).map_err(ipc_err)?;
            // Measured before anything else reads it: see `output`.
            bytes = output::check_expanded(&batch, bytes, self.max_output_bytes)?;
            let (batch, lineage) = if self.traced.contains(&b.output) {
                let (batch, rows) = lineage::take_off(&b.output, batch)?;
                (batch, Some(rows))
            } else {
                (batch, None)
            };
            if batch.schema().fields() != schema.fields() {
                return Err(CallError::BadOutput(format!(
                    "batch for `{}` has schema {:?}, declared {:?}",
                    b.output,
                    batch.schema().fields(),
                    schema.fields()
                )));
            }
            out.push(Emitted {
                output: b.output,
                rows: batch,
                lineage,
            });
        }
        Ok(out)
    }
}
