//! The validated plan: what `sluice validate` proves and `sluice run` executes.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;

use super::sinks::{self, SinkPlan};
use super::watermark::{WatermarkSettings, is_event_time};
use crate::checkpoint::store::CheckpointStore;
use crate::config::{
    CheckpointConfig, Diagnostic, KinesisDecode, LimitsConfig, LoadedConfig, PipelineConfig, PluginRef, SourceConfig,
    TransformConfig,
};
use crate::decode::json::DecodeOptions;
use crate::decode::metadata::Metadata;
use crate::engine::{CallError, Component, Description, Engine, Limits, PluginConfigError};
use crate::source::SourceSpec;
use crate::source::registry;
use crate::stock;

/// Why a pipeline could not be planned. Every variant is the user's to fix.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Problems in the pipeline file, each at its line (including those found by plugins'
    /// `describe`).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigErrors),
}

pub use super::stage_plan::{StagePlan, StageWatermark};

/// A pipeline ready to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Pipeline name.
    pub name: String,
    /// The source.
    pub source: Arc<dyn SourceSpec>,
    /// Lines per chunk.
    pub batch_rows: usize,
    /// Schema records are decoded into.
    pub decoded_schema: SchemaRef,
    /// How records are decoded into it.
    pub decoding: DecodeOptions,
    /// `[pipeline] max_dead_letter_ratio`.
    pub max_dead_letter_ratio: Option<f64>,
    /// Metadata columns appended after decoding.
    pub metadata: Metadata,
    /// Schema of the rows the first stage gets: decoded columns, then metadata columns.
    pub input_schema: SchemaRef,
    /// Transforms, in order.
    pub stages: Vec<Arc<StagePlan>>,
    /// The sinks, in the pipeline file's order.
    pub sinks: Vec<SinkPlan>,
    /// Where dead letters go.
    pub dead_letter: crate::config::Place,
    /// Parallel chain instances.
    pub workers: usize,
    /// What the source reads (`file:<absolute path>`, …); checkpoints are tied to it.
    pub source_id: String,
    /// Checkpoint settings.
    pub checkpoint: CheckpointConfig,
    /// `[telemetry] listen`: where this pipeline asks for Prometheus metrics to be served.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// With leases: the one shard this run of the pipeline is for (see `pipeline::leased`).
    pub lane: Option<Lane>,
}

/// One held shard's run of a leased pipeline: its files are named after the shard, its
/// recovery sees only the shard's files, and its checkpoints go to the shard's lease.
#[derive(Clone)]
pub struct Lane {
    /// The shard.
    pub name: String,
    /// Opens the shard's checkpoint store.
    pub store: Arc<dyn Fn() -> Box<dyn CheckpointStore> + Send + Sync>,
}

impl std::fmt::Debug for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lane").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Plan {
    /// Where this run's checkpoints go: the lane's lease, or `[checkpoint]`'s store.
    pub fn open_store(&self) -> Box<dyn CheckpointStore> {
        match &self.lane {
            Some(lane) => (lane.store)(),
            None => crate::checkpoint::store::open(&self.checkpoint),
        }
    }
}

impl Plan {
    /// Check everything that can be checked without data and compile the components.
    pub fn build(loaded: &LoadedConfig, engine: &Engine) -> Result<Plan, PlanError> {
        let cfg = &loaded.config;
        let mut diags: Vec<Diagnostic> = Vec::new();
        let (source, decoded_schema, metadata, input_schema) = match registry::plan(cfg, &mut diags) {
            Some(p) => {
                let mut fields: Vec<_> = p.source.schema.fields().iter().cloned().collect();
                fields.extend(p.metadata.fields().into_iter().map(Arc::new));
                let input = Arc::new(arrow::datatypes::Schema::new_with_metadata(
                    fields,
                    p.source.schema.metadata().clone(),
                ));
                (Some(p.source.spec), Some(p.source.schema), p.metadata, Some(input))
            }
            None => (None, None, Metadata::default(), None),
        };
        let mut stages = Vec::new();
        let leased = leased(cfg);
        let mut schema = input_schema.clone();
        // After a stage with errors, the stages after it are still checked, each against
        // what it would get if the broken one passed its input through, so one run of
        // `validate` lists every stage's problems (those found this way say so).
        let mut guess: Option<(String, SchemaRef)> = None;
        for t in &cfg.transforms {
            let (input, guessed) = match (schema.take(), &guess) {
                (Some(s), _) => (Some(s), None),
                (None, Some((broken, s))) => (Some(s.clone()), Some(broken.clone())),
                (None, None) => (None, None),
            };
            let Some(component) = load_component(t, engine, &mut diags) else {
                if let Some(input) = input {
                    guess = Some((guessed.unwrap_or_else(|| t.name.value.clone()), input));
                }
                continue;
            };
            let Some(input) = input else {
                continue;
            };
            let before = diags.len();
            match plan_stage(t, component, input.clone(), (&cfg.name, leased), &mut diags) {
                Some(stage) if guessed.is_none() => {
                    schema = Some(stage.output().clone());
                    stages.push(Arc::new(stage));
                }
                Some(stage) => guess = guessed.map(|b| (b, stage.output().clone())),
                None => {
                    if let Some(broken) = &guessed {
                        for d in &mut diags[before..] {
                            d.message.push_str(&format!(
                                " (checked as if `{broken}`, which has errors, passed its input through)"
                            ));
                        }
                    }
                    guess = Some((guessed.unwrap_or_else(|| t.name.value.clone()), input));
                }
            }
        }
        if stages.len() == cfg.transforms.len() {
            check_leased_state(cfg, &stages, &mut diags);
        }
        let sinks = match (&input_schema, &schema) {
            (Some(input), Some(_)) => sinks::plan(cfg, &stages, input, &mut diags),
            _ => None,
        };
        if !diags.is_empty() {
            return Err(loaded.errors(diags).into());
        }
        let (Some(source), Some(decoded_schema), Some(input_schema), Some(sinks)) =
            (source, decoded_schema, input_schema, sinks)
        else {
            unreachable!("every missing piece above recorded a diagnostic");
        };
        let stateful = stages.iter().any(|s| s.description.state_format.is_some());
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let workers = if stateful {
            1
        } else {
            cfg.workers.as_ref().map_or(cores, |w| w.value as usize)
        };
        Ok(Plan {
            name: cfg.name.clone(),
            source_id: source.id(),
            source,
            batch_rows: cfg.source.batch_rows(),
            decoded_schema,
            decoding: DecodeOptions {
                coerce: cfg.decoding.coerce,
                new_fields: cfg.decoding.new_fields,
                inferred_from: match &cfg.source {
                    SourceConfig::File(f) if f.schema.is_none() => Some(f.infer_rows),
                    _ => None,
                },
                numeric_times: matches!(&cfg.source, SourceConfig::Kinesis(k) if k.decode == KinesisDecode::CloudwatchLogs),
            },
            max_dead_letter_ratio: cfg.max_dead_letter_ratio,
            metadata,
            input_schema,
            stages,
            sinks,
            dead_letter: cfg.dead_letter.place.clone(),
            workers,
            checkpoint: cfg.checkpoint.clone(),
            metrics_listen: cfg.metrics_listen.as_ref().map(|l| l.value),
            lane: None,
        })
    }

    /// The schema of the rows that reach the sink (before partition columns are removed).
    pub fn output_schema(&self) -> &SchemaRef {
        self.stages.last().map_or(&self.input_schema, |s| s.output())
    }
}

/// One transform checked against its input: its `describe`, its watermark column.
fn plan_stage(
    t: &TransformConfig,
    component: Component,
    input: SchemaRef,
    (pipeline, leased): (&str, bool),
    diags: &mut Vec<Diagnostic>,
) -> Option<StagePlan> {
    let (description, state_key) = describe(t, &component, &input, pipeline, leased)
        .map_err(|d| diags.push(d))
        .ok()?;
    let watermark = t.watermark.as_ref().and_then(|w| {
        let found = input.index_of(&w.column.value).ok();
        let ok = found.is_some_and(|i| is_event_time(input.field(i).data_type()));
        if !ok {
            let what = match found {
                Some(i) => format!("is {}", input.field(i).data_type()),
                None => "is not in the stage's input".to_owned(),
            };
            let columns: Vec<&str> = input.fields().iter().map(|f| f.name().as_str()).collect();
            diags.push(Diagnostic {
                span: w.column.span.clone(),
                key: w.column.key.clone(),
                message: format!(
                    "watermark column `{}` {what}: expected a timestamp or int64 epoch-milliseconds column of the input ({})",
                    w.column.value,
                    columns.join(", ")
                ),
            });
        }
        Some(StageWatermark {
            column: found.filter(|_| ok)?,
            settings: WatermarkSettings {
                max_out_of_orderness: w.max_out_of_orderness,
                idle_timeout: w.idle_timeout,
            },
        })
    });
    Some(StagePlan {
        name: t.name.value.clone(),
        component,
        config_json: t.config.json().to_owned(),
        input,
        description,
        state_key,
        on_error: t.on_error,
        limits: limits(&t.limits),
        quarantine_after: t.quarantine_after,
        watermark,
        discard_state: t.discard_state,
    })
}

/// The engine's limits with the transform's overrides.
fn limits(cfg: &LimitsConfig) -> Limits {
    let defaults = Limits::default();
    Limits {
        max_memory_bytes: cfg
            .memory_mb
            .map_or(defaults.max_memory_bytes, |mb| (mb as usize) << 20),
        call_timeout: cfg
            .timeout_ms
            .map_or(defaults.call_timeout, std::time::Duration::from_millis),
        max_output_ratio: cfg.max_output_ratio.map_or(defaults.max_output_ratio, |r| r as u32),
        fuel: cfg.fuel,
    }
}

fn load_component(t: &TransformConfig, engine: &Engine, diags: &mut Vec<Diagnostic>) -> Option<Component> {
    let fuel = t.limits.fuel.is_some();
    let at = |message: String| Diagnostic {
        span: t.plugin.span.clone(),
        key: t.plugin.key.clone(),
        message,
    };
    let loaded = match &t.plugin.value {
        PluginRef::Stock(name) => match stock::lookup(name) {
            Some(stock) => engine.load_prebuilt(
                &format!("stock plugin `{name}`"),
                stock.component,
                stock.digest,
                stock.precompiled,
                fuel,
            ),
            None => {
                let names = stock::names()
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                diags.push(at(format!(
                    "unknown stock plugin \"{name}\": expected one of {names}, or `component = \"path.wasm\"`"
                )));
                return None;
            }
        },
        PluginRef::File(path) => match std::fs::read(path) {
            Ok(bytes) => {
                if let Some(pin) = &t.sha256 {
                    let digest = crate::engine::digest_of(&bytes);
                    if digest != pin.value {
                        diags.push(Diagnostic {
                            span: pin.span.clone(),
                            key: pin.key.clone(),
                            message: format!(
                                "{} has SHA-256 {digest}, not the pinned {}: refusing to load it",
                                path.display(),
                                pin.value
                            ),
                        });
                        return None;
                    }
                }
                engine.load(&path.display().to_string(), &bytes, fuel)
            }
            Err(e) => {
                diags.push(at(format!("cannot read component {}: {e}", path.display())));
                return None;
            }
        },
    };
    loaded.map_err(|e| diags.push(at(e.to_string()))).ok()
}

/// The transform's declaration and, for a stateful one in a pipeline with leases, the
/// columns that key its state.
fn describe(
    t: &TransformConfig,
    component: &Component,
    input: &SchemaRef,
    pipeline: &str,
    leased: bool,
) -> Result<(Description, Vec<String>), Diagnostic> {
    let at_plugin = |message: String| Diagnostic {
        span: t.plugin.span.clone(),
        key: t.plugin.key.clone(),
        message,
    };
    let mut instance = component
        .instantiate(&format!("{pipeline}/{}", t.name.value), &limits(&t.limits))
        .map_err(|e| at_plugin(e.to_string()))?;
    let at_config = |err: PluginConfigError| {
        let (span, key) = t.config.locate(&err.path);
        Diagnostic {
            span,
            key,
            message: err.message,
        }
    };
    let failed = |call: CallError| at_plugin(format!("transform `{}` {call} while checking its config", t.name.value));
    let description = instance
        .describe(t.config.json(), input)
        .map_err(failed)?
        .map_err(at_config)?;
    if description.state_format.is_none() || !leased {
        return Ok((description, Vec::new()));
    }
    let state_key = match instance.state_key(t.config.json(), input).map_err(failed)? {
        Some(key) => key.map_err(at_config)?,
        None => Vec::new(),
    };
    Ok((description, state_key))
}

/// Whether the pipeline's source shares its stream through `[source.leases]`.
fn leased(cfg: &PipelineConfig) -> bool {
    matches!(&cfg.source, SourceConfig::Kinesis(k) if k.leases.is_some())
}

/// With `[source.leases]` each shard's stage state moves with its lease, and follows its
/// keys when shards split and merge: a stateful stage whose state is not kept per key
/// cannot follow them, and is refused.
fn check_leased_state(cfg: &PipelineConfig, stages: &[Arc<StagePlan>], diags: &mut Vec<Diagnostic>) {
    if !leased(cfg) {
        return;
    }
    for (stage, t) in stages.iter().zip(&cfg.transforms) {
        if !stage.stateful() || !stage.state_key.is_empty() {
            continue;
        }
        let why = if stage.component.keyed() {
            "its state is one whole, not kept per key (e.g. a window without `group_by`)".to_owned()
        } else {
            "its component does not export sluice:transform/keyed-state, so its state cannot be divided by key"
                .to_owned()
        };
        diags.push(Diagnostic {
            span: t.plugin.span.clone(),
            key: t.plugin.key.clone(),
            message: format!(
                "stateful transform `{}` cannot run with [source.leases]: {why}. Instances sharing a stream keep each shard's state with its lease and divide it by key when shards split or merge; key the state by the records' partition key, or run one instance without leases",
                stage.name
            ),
        });
    }
}
