//! The validated plan: what `sluice validate` proves and `sluice run` executes.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::schema::arrow_schema;
use super::watermark::{WatermarkSettings, is_event_time};
use crate::config::{
    CheckpointConfig, Diagnostic, LimitsConfig, LoadedConfig, MqttSourceConfig, OnError, PartitionConfig,
    PipelineConfig, PluginRef, SourceConfig, TransformConfig,
};
use crate::decode::json::infer_schema;
use crate::engine::{Component, Description, Engine, Limits};
use crate::sink::parquet::ParquetSettings;
use crate::sink::partition::{Partitioner, default_template};
use crate::source::file::{Inputs, expand};
use crate::source::mqtt::{
    MqttSettings,
    tls::{self, TlsFiles},
};
use crate::stock;

/// Why a pipeline could not be planned. Every variant is the user's to fix.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Problems in the pipeline file, each at its line (including those found by plugins'
    /// `describe`).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigErrors),
}

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

/// A pipeline ready to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Pipeline name.
    pub name: String,
    /// The input files (or stdin).
    pub inputs: Inputs,
    /// Lines per chunk.
    pub batch_rows: usize,
    /// Schema records are decoded into.
    pub input_schema: SchemaRef,
    /// Transforms, in order.
    pub stages: Vec<Arc<StagePlan>>,
    /// Parquet settings (with the file schema).
    pub sink: ParquetSettings,
    /// How rows are spread over folders.
    pub partitioner: Partitioner,
    /// Dead-letter folder.
    pub dead_letter_dir: PathBuf,
    /// Parallel chain instances.
    pub workers: usize,
    /// What the source reads (`file:<absolute path>`); checkpoints are tied to it.
    pub source_id: String,
    /// Checkpoint settings.
    pub checkpoint: CheckpointConfig,
}

impl Plan {
    /// Check everything that can be checked without data and compile the components.
    pub fn build(loaded: &LoadedConfig, engine: &Engine) -> Result<Plan, PlanError> {
        let cfg = &loaded.config;
        let mut diags: Vec<Diagnostic> = Vec::new();
        let diag = |span: std::ops::Range<usize>, key: &str, message: String| Diagnostic {
            span,
            key: key.to_owned(),
            message,
        };
        let (inputs, input_schema, source_id) = match plan_source(cfg, &mut diags) {
            Some((i, s, id)) => (Some(i), Some(s), id),
            None => (None, None, String::new()),
        };

        let mut stages = Vec::new();
        let mut schema = input_schema.clone();
        for t in &cfg.transforms {
            let Some(component) = load_component(t, engine, &mut diags) else {
                schema = None;
                continue;
            };
            let Some(input) = schema.clone() else {
                continue;
            };
            match describe(t, &component, &input, &cfg.name) {
                Ok(description) => {
                    let watermark = t.watermark.as_ref().and_then(|w| {
                        let found = input.index_of(&w.column.value).ok();
                        let ok = found.is_some_and(|i| is_event_time(input.field(i).data_type()));
                        if !ok {
                            let what = match found {
                                Some(i) => format!("is {}", input.field(i).data_type()),
                                None => "is not in the stage's input".to_owned(),
                            };
                            diags.push(diag(
                                w.column.span.clone(),
                                &w.column.key,
                                format!(
                                    "watermark column `{}` {what}: expected a timestamp or int64 epoch-milliseconds column of the input ({})",
                                    w.column.value,
                                    input.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
                                ),
                            ));
                        }
                        Some(StageWatermark {
                            column: found.filter(|_| ok)?,
                            settings: WatermarkSettings {
                                max_out_of_orderness: w.max_out_of_orderness,
                                idle_timeout: w.idle_timeout,
                            },
                        })
                    });
                    schema = Some(description.outputs[0].1.clone());
                    stages.push(Arc::new(StagePlan {
                        name: t.name.value.clone(),
                        component,
                        config_json: t.config.json().to_owned(),
                        input,
                        description,
                        on_error: t.on_error,
                        limits: limits(&t.limits),
                        quarantine_after: t.quarantine_after,
                        watermark,
                        discard_state: t.discard_state,
                    }));
                }
                Err(d) => {
                    diags.push(d);
                    schema = None;
                }
            }
        }

        let partitioner = schema
            .as_ref()
            .and_then(|s| partitioner(&cfg.sink.partition, s, &mut diags));
        if !diags.is_empty() {
            return Err(loaded.errors(diags).into());
        }
        let (Some(inputs), Some(input_schema), Some(output), Some(partitioner)) =
            (inputs, input_schema, schema, partitioner)
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
            inputs,
            batch_rows: cfg.source.batch_rows(),
            input_schema,
            stages,
            sink: ParquetSettings {
                dir: cfg.sink.path.clone(),
                schema: partitioner.file_schema(&output),
                compression: cfg.sink.compression,
                row_group_rows: cfg.sink.row_group_rows,
                target_file_bytes: cfg.sink.target_file_bytes,
                max_file_age: cfg.sink.max_file_age,
            },
            partitioner,
            dead_letter_dir: cfg.dead_letter.path.clone(),
            workers,
            source_id,
            checkpoint: cfg.checkpoint.clone(),
        })
    }

    /// The schema of the rows that reach the sink (before partition columns are removed).
    pub fn output_schema(&self) -> &SchemaRef {
        self.stages.last().map_or(&self.input_schema, |s| s.output())
    }
}

/// The source's inputs, the schema records are decoded into, and the source's identity.
fn plan_source(cfg: &PipelineConfig, diags: &mut Vec<Diagnostic>) -> Option<(Inputs, SchemaRef, String)> {
    let diag = |span: std::ops::Range<usize>, key: &str, message: String| Diagnostic {
        span,
        key: key.to_owned(),
        message,
    };
    let src = match &cfg.source {
        SourceConfig::File(src) => src,
        SourceConfig::Mqtt(m) => return plan_mqtt(cfg, m, diags),
    };

    let inputs = match expand(src.resolved.as_deref()) {
        Ok(i) => Some(i),
        Err(e) => {
            diags.push(diag(src.path.span.clone(), &src.path.key, e.to_string()));
            None
        }
    };
    let input_schema = match (&src.schema, &inputs) {
        (Some(fields), _) => Some(arrow_schema(fields)),
        (None, Some(Inputs::Files(files))) => {
            match std::fs::File::open(&files[0])
                .map_err(|e| e.to_string())
                .and_then(|f| infer_schema(f, src.infer_rows).map_err(|e| e.to_string()))
            {
                Ok(s) => Some(Arc::new(s)),
                Err(e) => {
                    diags.push(diag(
                        src.path.span.clone(),
                        &src.path.key,
                        format!(
                            "cannot infer a schema from {}: {e}; declare one in [source.schema]",
                            files[0].display()
                        ),
                    ));
                    None
                }
            }
        }
        (None, Some(Inputs::Stdin)) => {
            diags.push(diag(
                src.path.span.clone(),
                &src.path.key,
                "stdin input needs a declared schema ([source.schema])".into(),
            ));
            None
        }
        (None, Some(Inputs::Mqtt(_))) | (None, None) => None,
    };

    Some((inputs?, input_schema?, source_id(src.resolved.as_deref())))
}

/// An MQTT source: its settings, and the declared schema plus the topic column.
fn plan_mqtt(
    cfg: &PipelineConfig,
    m: &MqttSourceConfig,
    diags: &mut Vec<Diagnostic>,
) -> Option<(Inputs, SchemaRef, String)> {
    let (tls, host, port) = match MqttSettings::parse_url(&m.url.value) {
        Ok(parts) => parts,
        Err(e) => {
            diags.push(Diagnostic {
                span: m.url.span.clone(),
                key: m.url.key.clone(),
                message: e,
            });
            return None;
        }
    };
    if !tls && let Some(f) = m.ca_file.as_ref().or(m.cert_file.as_ref()) {
        diags.push(Diagnostic {
            span: f.span.clone(),
            key: f.key.clone(),
            message: format!("TLS files are set but {} is plain TCP: use mqtts://", m.url.value),
        });
    }
    let tls = tls.then(|| TlsFiles {
        ca_file: m.ca_file.as_ref().map(|f| f.value.clone()),
        client: m
            .cert_file
            .as_ref()
            .zip(m.key_file.as_ref())
            .map(|(c, k)| (c.value.clone(), k.value.clone())),
    });
    // Bad TLS material is found now, by `sluice validate` too, naming the file.
    if let Some(files) = &tls
        && let Err(e) = tls::client_config(files)
    {
        let (span, key) = [&m.ca_file, &m.cert_file, &m.key_file]
            .into_iter()
            .flatten()
            .find(|f| f.value.display().to_string() == e.path)
            .map_or((m.url.span.clone(), m.url.key.clone()), |f| {
                (f.span.clone(), f.key.clone())
            });
        diags.push(Diagnostic {
            span,
            key,
            message: e.to_string(),
        });
    }
    let mut fields: Vec<Field> = arrow_schema(&m.schema)
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    if let Some(c) = &m.topic_column {
        if fields.iter().any(|f| f.name() == &c.name) {
            diags.push(Diagnostic {
                span: m.url.span.clone(),
                key: "source.topic_column".into(),
                message: format!(
                    "topic_column `{}` is also a column of [source.schema]: pick another name",
                    c.name
                ),
            });
        }
        fields.insert(0, Field::new(&c.name, DataType::Utf8, c.level.is_some()));
    }
    if !cfg.checkpoint.enabled && m.qos == 1 {
        diags.push(Diagnostic {
            span: m.url.span.clone(),
            key: "checkpoint.enabled".into(),
            message: "an MQTT source at QoS 1 acknowledges messages when a checkpoint commits: checkpoints cannot be disabled".into(),
        });
    }
    let settings = MqttSettings {
        url: m.url.value.clone(),
        host,
        port,
        tls,
        topics: m.topics.value.clone(),
        client_id: m.client_id.clone().unwrap_or_else(|| format!("sluice-{}", cfg.name)),
        qos: m.qos,
        clean_session: m.clean_session,
        credentials: m.username.clone().map(|u| (u, m.password.clone().unwrap_or_default())),
        keep_alive: m.keep_alive,
        max_latency: m.max_latency,
        batch_rows: m.batch_rows,
        max_inflight: m.max_inflight,
        max_message_bytes: m.max_message_bytes,
        include_retained: m.include_retained,
        topic_column: m.topic_column.as_ref().map(|c| (c.name.clone(), c.level)),
    };
    let id = settings.source_id();
    Some((Inputs::Mqtt(Arc::new(settings)), Arc::new(Schema::new(fields)), id))
}

/// `file:` and the absolute path (or `-`) a file source was configured with.
fn source_id(path: Option<&std::path::Path>) -> String {
    match path {
        Some(p) => format!(
            "file:{}",
            std::path::absolute(p).unwrap_or_else(|_| p.to_owned()).display()
        ),
        None => "file:-".to_owned(),
    }
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
            Some(bytes) => engine.load(&format!("stock plugin `{name}`"), bytes, fuel),
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

fn describe(
    t: &TransformConfig,
    component: &Component,
    input: &SchemaRef,
    pipeline: &str,
) -> Result<Description, Diagnostic> {
    let at_plugin = |message: String| Diagnostic {
        span: t.plugin.span.clone(),
        key: t.plugin.key.clone(),
        message,
    };
    let mut instance = component
        .instantiate(&format!("{pipeline}/{}", t.name.value), &limits(&t.limits))
        .map_err(|e| at_plugin(e.to_string()))?;
    match instance.describe(t.config.json(), input) {
        Ok(Ok(desc)) => {
            if let Some((name, _)) = desc
                .outputs
                .iter()
                .find(|(n, _)| n != sluice_contract::MAIN && n != sluice_contract::REJECTED)
            {
                return Err(at_plugin(format!(
                    "transform `{}` declares an output `{name}`; only `main` and `rejected` can be routed in this version",
                    t.name.value
                )));
            }
            Ok(desc)
        }
        Ok(Err(err)) => {
            let (span, key) = t.config.locate(&err.path);
            Err(Diagnostic {
                span,
                key,
                message: err.message,
            })
        }
        Err(call) => Err(at_plugin(format!(
            "transform `{}` {call} while checking its config",
            t.name.value
        ))),
    }
}

fn partitioner(cfg: &PartitionConfig, schema: &SchemaRef, diags: &mut Vec<Diagnostic>) -> Option<Partitioner> {
    let column = |name: &crate::config::Located<String>,
                  diags: &mut Vec<Diagnostic>,
                  ok: &dyn Fn(&DataType) -> bool,
                  expected: &str| {
        let at = |message: String| Diagnostic {
            span: name.span.clone(),
            key: name.key.clone(),
            message,
        };
        match schema.index_of(&name.value) {
            Ok(i) if ok(schema.field(i).data_type()) => Some(i),
            Ok(i) => {
                diags.push(at(format!(
                    "column \"{}\" is {}, expected {expected}",
                    name.value,
                    schema.field(i).data_type()
                )));
                None
            }
            Err(_) => {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                diags.push(at(format!(
                    "no column \"{}\" in the pipeline's output; it has {}",
                    name.value,
                    names.join(", ")
                )));
                None
            }
        }
    };
    Some(match cfg {
        PartitionConfig::None => Partitioner::None,
        PartitionConfig::IngestTime { granularity, template } => Partitioner::IngestTime {
            template: template
                .as_ref()
                .map_or_else(|| default_template("ingest_", *granularity), |t| t.value.clone()),
        },
        PartitionConfig::EventTime {
            column: name,
            granularity,
            template,
        } => {
            let is_time = |t: &DataType| matches!(t, DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64);
            Partitioner::EventTime {
                column: column(name, diags, &is_time, "a timestamp or date column")?,
                template: template
                    .as_ref()
                    .map_or_else(|| default_template("", *granularity), |t| t.value.clone()),
            }
        }
        PartitionConfig::Field {
            column: name,
            keep_column,
        } => {
            let is_key = |t: &DataType| {
                matches!(
                    t,
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Boolean | DataType::Date32
                ) || t.is_integer()
            };
            Partitioner::Field {
                column: column(name, diags, &is_key, "a string, integer, boolean or date column")?,
                name: name.value.clone(),
                keep_column: *keep_column,
            }
        }
    })
}
