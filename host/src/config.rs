//! LOW level: pipeline TOML text → typed [`PipelineConfig`] with positions, and the
//! diagnostics that point at `file:line:col` and a key.
//!
//! This module knows the shape of a pipeline file and nothing else: it does not look at
//! data, load plugins or resolve schemas (see `pipeline`). Every problem in the file is
//! reported, not just the first; unknown keys are errors.

mod diagnostic;
mod model;
mod plugin_config;
mod reader;

use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::de::{DeTable, DeValue};

pub use diagnostic::{ConfigErrors, Diagnostic, SourceMap};
pub use model::*;
pub use plugin_config::PluginConfig;
pub use reader::Located;

use diagnostic::Diags;
use reader::{Table, describe};

/// The name dead letters go by in checkpoints; no sink may take it.
pub const RESERVED_SINK_NAME: &str = "dead_letter";

/// Default for `[source] max_open_files`: files a file source reads side by side.
pub const DEFAULT_MAX_OPEN_FILES: usize = 16;

/// Why a pipeline file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read pipeline file {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The file has problems; each names its line and key.
    #[error(transparent)]
    Invalid(#[from] ConfigErrors),
}

/// A parsed pipeline file and the map to report later (plan-time) errors against it.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The typed configuration.
    pub config: PipelineConfig,
    /// Positions for diagnostics raised after parsing.
    pub source: SourceMap,
}

impl LoadedConfig {
    /// Turn diagnostics found later (e.g. by the plan) into an error against this file.
    pub fn errors(&self, diagnostics: Vec<Diagnostic>) -> ConfigErrors {
        ConfigErrors::new(self.source.clone(), diagnostics)
    }
}

/// Read and parse a pipeline file.
pub fn load(path: &Path) -> Result<LoadedConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_owned(),
        error,
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pipeline".into());
    parse(&text, path, &base, &stem)
}

/// Parse pipeline text; `base` resolves relative paths, `default_name` names the pipeline.
pub fn parse(text: &str, path: &Path, base: &Path, default_name: &str) -> Result<LoadedConfig, ConfigError> {
    let source = SourceMap::new(path, text);
    let mut d = Diags::default();
    let (root, syntax) = DeTable::parse_recoverable(text);
    for err in syntax {
        let span = err.span().unwrap_or(0..0);
        d.push(span, "", format!("invalid TOML: {}", err.message().trim()));
    }
    if !d.0.is_empty() {
        return Err(ConfigErrors::new(source, d.0).into());
    }
    let mut top = Table::new(root.get_ref(), root.span(), "");
    let config = read_pipeline(&mut top, &mut d, base, default_name);
    top.finish(&mut d);
    match config {
        Some(config) if d.0.is_empty() => Ok(LoadedConfig { config, source }),
        _ => Err(ConfigErrors::new(source, d.0).into()),
    }
}

/// `p` against `base`, with `.` and `..` folded lexically (for readable messages).
fn resolve(base: &Path, p: &str) -> PathBuf {
    use std::path::Component;
    let p = Path::new(p);
    let joined = if p.is_absolute() { p.to_owned() } else { base.join(p) };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.components().next_back(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        out
    }
}

fn read_pipeline(top: &mut Table<'_, '_>, d: &mut Diags, base: &Path, default_name: &str) -> Option<PipelineConfig> {
    let (name, workers) = match top.opt_table(d, "pipeline") {
        Some(mut t) => {
            let name = t.opt_str(d, "name").map(|n| n.value);
            let workers = t.opt_uint(d, "workers", 1..=256);
            t.finish(d);
            (name, workers)
        }
        None => (None, None),
    };
    let mut source_metadata = MetadataConfig::default();
    let source = top.req_table(d, "source").and_then(|mut t| {
        if let Some(mut m) = t.opt_table(d, "metadata") {
            source_metadata = MetadataConfig {
                file: m.opt_str(d, "file"),
                topic: m.opt_str(d, "topic"),
                partition: m.opt_str(d, "partition"),
                ingest_time: m.opt_str(d, "ingest_time"),
            };
            m.finish(d);
        }
        let s = read_source(&mut t, d, base);
        t.finish(d);
        s
    });
    let mut transforms = Vec::new();
    let mut names = Vec::new();
    for mut t in top.opt_tables(d, "transform") {
        if let Some(tr) = read_transform(&mut t, d, base, &mut names) {
            transforms.push(tr);
        }
        t.finish(d);
    }
    let sinks = read_sinks(top, d, base);
    let sink = sinks.as_ref().and_then(|s| s.first());
    let dead_letter = match top.opt_table(d, "dead_letter") {
        Some(mut t) => {
            let path = t.req_str(d, "path").map(|p| resolve(base, &p.value));
            t.finish(d);
            path
        }
        None => sink.as_ref().map(|s| s.path.join("_dead_letter")),
    };
    let checkpoint = read_checkpoint(top, d, base, sink.as_ref().map(|s| s.path.as_path()));
    Some(PipelineConfig {
        name: name.unwrap_or_else(|| default_name.to_owned()),
        workers,
        source: source?,
        source_metadata,
        transforms,
        sinks: sinks?,
        dead_letter: DeadLetterConfig { path: dead_letter? },
        checkpoint: checkpoint?,
    })
}

fn read_checkpoint(
    top: &mut Table<'_, '_>,
    d: &mut Diags,
    base: &Path,
    sink: Option<&Path>,
) -> Option<CheckpointConfig> {
    let default_path = sink.map(|s| s.join("_checkpoints"));
    let default_interval = Duration::from_secs(10);
    let Some(mut t) = top.opt_table(d, "checkpoint") else {
        return Some(CheckpointConfig {
            enabled: true,
            path: default_path?,
            interval: default_interval,
        });
    };
    let enabled = t.opt_bool(d, "enabled").is_none_or(|b| b.value);
    let path = t.opt_str(d, "path").map(|p| resolve(base, &p.value));
    let interval = t.opt_duration(
        d,
        "interval",
        Duration::from_millis(10)..=Duration::from_secs(24 * 3600),
    );
    t.finish(d);
    Some(CheckpointConfig {
        enabled,
        path: path.or(default_path)?,
        interval: interval.map_or(default_interval, |i| i.value),
    })
}

fn read_source(t: &mut Table<'_, '_>, d: &mut Diags, base: &Path) -> Option<SourceConfig> {
    let kind = t.req_choice(d, "type", &["file", "mqtt", "datagen"]);
    match kind.as_ref().map(|k| k.value.as_str()) {
        Some("mqtt") => return read_mqtt_source(t, d, base),
        Some("datagen") => return read_datagen_source(t, d),
        _ => {}
    }
    // An unknown type is checked as a file source, so its other keys get their errors too.
    let path = t.req_str(d, "path");
    let batch_rows = read_batch_rows(t, d);
    let infer_rows = t
        .opt_uint(d, "infer_rows", 1..=1_000_000)
        .map_or(1000, |v| v.value as usize);
    let max_open_files = t
        .opt_uint(d, "max_open_files", 1..=4096)
        .map_or(DEFAULT_MAX_OPEN_FILES, |v| v.value as usize);
    let schema = t.opt_table(d, "schema").map(|s| read_schema(&s, d));
    kind?;
    let path = path?;
    let resolved = (path.value != "-").then(|| resolve(base, &path.value));
    Some(SourceConfig::File(FileSourceConfig {
        path,
        resolved,
        batch_rows,
        schema: schema.flatten(),
        infer_rows,
        max_open_files,
    }))
}

/// `[source] type = "datagen"`.
fn read_datagen_source(t: &mut Table<'_, '_>, d: &mut Diags) -> Option<SourceConfig> {
    let template = t.req_choice(d, "template", &["sensors", "ticks"]);
    let rows = t.opt_uint(d, "rows", 1..=u64::MAX >> 1).map(|v| v.value);
    let partitions = t.opt_uint(d, "partitions", 1..=10_000).map_or(1, |v| v.value);
    let rate = t.opt_uint(d, "rate", 1..=1_000_000_000).map(|v| v.value);
    let disorder = t
        .opt_duration(d, "disorder", Duration::ZERO..=Duration::from_secs(24 * 3600))
        .map_or(Duration::ZERO, |v| v.value);
    let interval = t
        .opt_duration(d, "interval", Duration::from_micros(1)..=Duration::from_secs(24 * 3600))
        .map_or(Duration::from_secs(1), |v| v.value);
    let start = t.opt_str(d, "start");
    let start_micros = match &start {
        None => Some(1_767_225_600_000_000), // 2026-01-01T00:00:00Z
        Some(s) => match chrono::NaiveDateTime::parse_from_str(&s.value, "%Y-%m-%dT%H:%M:%S") {
            Ok(t) => Some(t.and_utc().timestamp_micros()),
            Err(_) => {
                d.push(
                    s.span.clone(),
                    &s.key,
                    format!(
                        "expected a time such as \"2026-01-01T00:00:00\" (UTC), found \"{}\"",
                        s.value
                    ),
                );
                None
            }
        },
    };
    let seed = t.opt_uint(d, "seed", 0..=u64::MAX >> 1).map_or(0, |v| v.value);
    let batch_rows = read_batch_rows(t, d);
    let schema = t.opt_table(d, "schema").map(|s| read_schema(&s, d));
    let template = match template?.value.as_str() {
        "ticks" => DatagenTemplate::Ticks,
        _ => DatagenTemplate::Sensors,
    };
    Some(SourceConfig::Datagen(DatagenSourceConfig {
        template,
        rows,
        partitions,
        rate,
        disorder,
        interval,
        start_micros: start_micros?,
        seed,
        batch_rows,
        schema: schema.flatten(),
    }))
}

/// `batch_rows` of any source (default 8192).
fn read_batch_rows(t: &mut Table<'_, '_>, d: &mut Diags) -> usize {
    t.opt_uint(d, "batch_rows", 1..=1_048_576)
        .map_or(8192, |v| v.value as usize)
}

/// `[source] type = "mqtt"`.
fn read_mqtt_source(t: &mut Table<'_, '_>, d: &mut Diags, base: &Path) -> Option<SourceConfig> {
    let url = t.req_str(d, "url");
    if let Some(u) = &url
        && !(u.value.starts_with("mqtt://") || u.value.starts_with("mqtts://"))
    {
        d.push(
            u.span.clone(),
            &u.key,
            format!("expected mqtt://host:port or mqtts://host:port, found \"{}\"", u.value),
        );
    }
    let topics = t.req_str_list(d, "topics");
    let client_id = t.opt_str(d, "client_id").map(|c| c.value);
    let qos = t.opt_uint(d, "qos", 0..=1).map_or(1, |q| q.value as u8);
    let clean_session = t.opt_bool(d, "clean_session").is_some_and(|b| b.value);
    let mut file = |t: &mut Table<'_, '_>, name: &'static str| {
        t.opt_str(d, name).map(|p| Located {
            value: resolve(base, &p.value),
            span: p.span,
            key: p.key,
        })
    };
    let ca_file = file(t, "ca_file");
    let cert_file = file(t, "cert_file");
    let key_file = file(t, "key_file");
    if let (Some(c), None) | (None, Some(c)) = (&cert_file, &key_file) {
        d.push(
            c.span.clone(),
            &c.key,
            "a client certificate needs both cert_file and key_file".to_owned(),
        );
    }
    let username = t.opt_str(d, "username").map(|u| u.value);
    let password = t.opt_str(d, "password").map(|p| p.value);
    let topic_column = read_topic_column(t, d);
    let keep_alive = t.opt_duration(d, "keep_alive", Duration::from_secs(1)..=Duration::from_secs(65535));
    let max_latency = t.opt_duration(d, "max_latency", Duration::from_millis(1)..=Duration::from_secs(3600));
    let batch_rows = read_batch_rows(t, d);
    let max_inflight = t
        .opt_uint(d, "max_inflight", 1..=65_535)
        .map_or(20, |v| v.value as usize);
    let max_message_bytes = t
        .opt_uint(d, "max_message_bytes", 1..=268_435_455)
        .map_or(1 << 20, |v| v.value as usize);
    let include_retained = t.opt_bool(d, "include_retained").is_some_and(|b| b.value);
    let schema = match t.opt_table(d, "schema") {
        Some(s) => read_schema(&s, d),
        None => {
            d.push(
                t.span(),
                t.key(),
                "an MQTT source needs a declared schema ([source.schema]): messages arrive after the run starts, so there is nothing to infer it from",
            );
            None
        }
    };
    Some(SourceConfig::Mqtt(Box::new(MqttSourceConfig {
        url: url?,
        topics: topics?,
        client_id,
        qos,
        clean_session,
        ca_file,
        cert_file,
        key_file,
        username,
        password,
        topic_column,
        keep_alive: keep_alive.map_or(Duration::from_secs(30), |k| k.value),
        max_latency: max_latency.map_or(Duration::from_secs(1), |m| m.value),
        batch_rows,
        max_inflight,
        max_message_bytes,
        include_retained,
        schema: schema?,
    })))
}

/// `topic_column = "topic"` or `topic_column = { name = "device", level = 1 }`.
fn read_topic_column(t: &mut Table<'_, '_>, d: &mut Diags) -> Option<TopicColumn> {
    let key = t.child_key("topic_column");
    let raw = t.raw("topic_column")?;
    match raw.get_ref() {
        DeValue::String(s) => Some(TopicColumn {
            name: s.to_string(),
            level: None,
        }),
        DeValue::Table(inner) => {
            let mut inner = Table::new(inner, raw.span(), key);
            let name = inner.req_str(d, "name");
            let level = inner.opt_uint(d, "level", 0..=1000).map(|l| l.value as usize);
            inner.finish(d);
            Some(TopicColumn {
                name: name?.value,
                level,
            })
        }
        other => {
            d.push(
                raw.span(),
                &key,
                format!(
                    "expected a column name or a table {{ name = \"…\", level = … }}, found {}",
                    describe(other)
                ),
            );
            None
        }
    }
}

/// `[source.schema]`: `column = "type"` or `column = { type = "…", nullable = false }`.
fn read_schema(t: &Table<'_, '_>, d: &mut Diags) -> Option<Vec<DeclaredField>> {
    let mut fields = Vec::new();
    let mut ok = true;
    for (k, v) in t.entries() {
        let key = t.child_key(k.get_ref());
        let (ty_value, nullable) = match v.get_ref() {
            DeValue::String(s) => (Some((s.to_string(), v.span(), key.clone())), true),
            DeValue::Table(inner) => {
                let mut inner = Table::new(inner, v.span(), key.clone());
                let ty = inner.req_str(d, "type").map(|l| (l.value, l.span, l.key));
                let nullable = inner.opt_bool(d, "nullable").is_none_or(|n| n.value);
                inner.finish(d);
                (ty, nullable)
            }
            other => {
                d.push(
                    v.span(),
                    &key,
                    format!(
                        "expected a type name or a table {{ type = \"…\", nullable = … }}, found {}",
                        describe(other)
                    ),
                );
                (None, true)
            }
        };
        let Some((name, span, ty_key)) = ty_value else {
            ok = false;
            continue;
        };
        match FieldType::parse(&name) {
            Some(ty) => fields.push(DeclaredField {
                name: k.get_ref().to_string(),
                ty: Located {
                    value: ty,
                    span,
                    key: ty_key,
                },
                nullable,
            }),
            None => {
                ok = false;
                d.push(
                    span,
                    &ty_key,
                    format!(
                        "unknown type \"{name}\": expected one of {}",
                        reader::quoted(FieldType::NAMES)
                    ),
                );
            }
        }
    }
    if fields.is_empty() && ok {
        d.push(
            t.span(),
            t.key(),
            "a declared schema needs at least one column (or leave [source.schema] out to infer it)",
        );
        return None;
    }
    ok.then_some(fields)
}

fn read_transform(
    t: &mut Table<'_, '_>,
    d: &mut Diags,
    base: &Path,
    names: &mut Vec<String>,
) -> Option<TransformConfig> {
    let name = t.req_str(d, "name");
    if let Some(n) = &name {
        if names.contains(&n.value) {
            d.push(
                n.span.clone(),
                &n.key,
                format!("duplicate transform name \"{}\": names must be unique", n.value),
            );
        }
        names.push(n.value.clone());
    }
    let stock = t.opt_str(d, "plugin");
    let file = t.opt_str(d, "component");
    let plugin = match (stock, file) {
        (Some(s), None) => Some(Located {
            value: PluginRef::Stock(s.value),
            span: s.span,
            key: s.key,
        }),
        (None, Some(f)) => Some(Located {
            value: PluginRef::File(resolve(base, &f.value)),
            span: f.span,
            key: f.key,
        }),
        (Some(_), Some(f)) => {
            d.push(
                f.span,
                &f.key,
                "give either `plugin` (a stock plugin) or `component` (a .wasm file), not both",
            );
            None
        }
        (None, None) => {
            if t.raw("plugin").is_none() && t.raw("component").is_none() {
                d.push(
                    t.span(),
                    &t.child_key("plugin"),
                    "missing key `plugin` (a stock plugin name) or `component` (a path to a .wasm component)",
                );
            }
            None
        }
    };
    let config_key = t.child_key("config");
    let config = match t.raw("config") {
        Some(v) => PluginConfig::from_toml(v, config_key, d),
        None => Some(PluginConfig::empty(t.span(), config_key)),
    };
    let on_error = t
        .opt_choice(d, "on_error", &["dead_letter", "skip_batch", "halt"])
        .map_or(OnError::DeadLetter, |c| match c.value.as_str() {
            "skip_batch" => OnError::SkipBatch,
            "halt" => OnError::Halt,
            _ => OnError::DeadLetter,
        });
    let quarantine_after = t
        .opt_uint(d, "quarantine_after", 1..=1_000_000)
        .map_or(5, |v| v.value as u32);
    let watermark = t.opt_table(d, "watermark").and_then(|mut w| {
        let column = w.req_str(d, "column");
        let day = Duration::from_secs(24 * 3600);
        let ooo = w.opt_duration(d, "max_out_of_orderness", Duration::ZERO..=day);
        let idle = w.opt_duration(d, "idle_timeout", Duration::from_millis(10)..=day);
        w.finish(d);
        Some(WatermarkConfig {
            column: column?,
            max_out_of_orderness: ooo.map_or(Duration::ZERO, |v| v.value),
            idle_timeout: idle.map(|v| v.value),
        })
    });
    let limits = match t.opt_table(d, "limits") {
        Some(mut l) => {
            let limits = LimitsConfig {
                memory_mb: l.opt_uint(d, "memory_mb", 1..=65_536).map(|v| v.value),
                timeout_ms: l.opt_uint(d, "timeout_ms", 10..=86_400_000).map(|v| v.value),
                max_output_ratio: l.opt_uint(d, "max_output_ratio", 1..=1_000_000).map(|v| v.value),
                fuel: l.opt_uint(d, "fuel", 1_000..=u64::MAX / 2).map(|v| v.value),
            };
            l.finish(d);
            limits
        }
        None => LimitsConfig::default(),
    };
    let sha256 = t.opt_str(d, "sha256");
    if let Some(h) = &sha256 {
        let ok = h.value.len() == 64 && h.value.bytes().all(|b| b.is_ascii_hexdigit());
        if !ok {
            d.push(
                h.span.clone(),
                &h.key,
                format!("expected 64 hexadecimal digits (a SHA-256), found \"{}\"", h.value),
            );
        }
        if matches!(plugin.as_ref().map(|p| &p.value), Some(PluginRef::Stock(_))) {
            d.push(
                h.span.clone(),
                &h.key,
                "sha256 pins a `component` file; stock plugins are part of the binary",
            );
        }
    }
    let discard_state = t
        .opt_choice(d, "state", &["keep", "discard"])
        .is_some_and(|c| c.value == "discard");
    Some(TransformConfig {
        name: name?,
        plugin: plugin?,
        config: config?,
        on_error,
        limits,
        quarantine_after,
        watermark,
        sha256: sha256.map(|h| Located {
            value: h.value.to_ascii_lowercase(),
            ..h
        }),
        discard_state,
    })
}

/// `[sink]` or `[[sink]]` tables: at least one, names unique.
fn read_sinks(top: &mut Table<'_, '_>, d: &mut Diags, base: &Path) -> Option<Vec<SinkConfig>> {
    let Some(tables) = top.table_or_tables(d, "sink") else {
        top.req_table(d, "sink");
        return None;
    };
    let several = tables.len() > 1;
    let mut sinks = Vec::new();
    let mut ok = !tables.is_empty();
    if tables.is_empty() {
        d.push(top.span(), "sink", "expected at least one [[sink]] table".to_owned());
    }
    for (i, mut t) in tables.into_iter().enumerate() {
        let default = if several {
            format!("sink-{i}")
        } else {
            "sink".to_owned()
        };
        match read_sink(&mut t, d, base, default) {
            Some(s) => {
                if sinks.iter().any(|o: &SinkConfig| o.name.value == s.name.value) {
                    d.push(
                        s.name.span.clone(),
                        &s.name.key,
                        format!(
                            "another sink is already called `{}`: sink names must be unique",
                            s.name.value
                        ),
                    );
                    ok = false;
                }
                sinks.push(s);
            }
            None => ok = false,
        }
        t.finish(d);
    }
    ok.then_some(sinks)
}

fn read_sink(t: &mut Table<'_, '_>, d: &mut Diags, base: &Path, default_name: String) -> Option<SinkConfig> {
    let kind = t.req_choice(d, "type", &["parquet", "local"]);
    let name = t.opt_str(d, "name").unwrap_or_else(|| Located {
        value: default_name,
        span: t.span(),
        key: t.key().to_owned(),
    });
    if name.value == crate::config::RESERVED_SINK_NAME
        || name.value.is_empty()
        || !name
            .value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
    {
        d.push(
            name.span.clone(),
            &name.key,
            format!(
                "expected a name of letters, digits, `-` and `_` other than `{}`, found \"{}\"",
                crate::config::RESERVED_SINK_NAME,
                name.value
            ),
        );
    }
    let input = t.opt_str(d, "input");
    let format = t.opt_choice(d, "format", &["parquet", "raw"]);
    if let (Some(k), Some(f)) = (&kind, &format)
        && k.value == "parquet"
        && f.value != "parquet"
    {
        d.push(
            f.span.clone(),
            &f.key,
            format!(
                "a `type = \"parquet\"` sink writes Parquet: use `type = \"local\"` with `format = \"{}\"`",
                f.value
            ),
        );
    }
    let format = match format.as_ref().map(|f| f.value.as_str()) {
        Some("raw") => SinkFormat::Raw,
        _ => SinkFormat::Parquet,
    };
    let path = t.req_str(d, "path");
    let compression = t
        .opt_choice(d, "compression", &["snappy", "zstd", "none"])
        .map(|c| match c.value.as_str() {
            "zstd" => Compression::Zstd,
            "none" => Compression::None,
            _ => Compression::Snappy,
        });
    let row_group_rows = t
        .opt_uint(d, "row_group_rows", 1024..=16_777_216)
        .map_or(131_072, |v| v.value as usize);
    let target_file_mb = t.opt_uint(d, "target_file_mb", 1..=16_384).map_or(128, |v| v.value);
    let max_file_age = t
        .opt_duration(
            d,
            "max_file_age",
            Duration::from_millis(10)..=Duration::from_secs(7 * 24 * 3600),
        )
        .map_or(Duration::from_secs(15 * 60), |v| v.value);
    let partition = match t.opt_table(d, "partition") {
        Some(mut p) => {
            let part = read_partition(&mut p, d);
            p.finish(d);
            part
        }
        // The raw archive's default is Firehose's layout.
        None if format == SinkFormat::Raw => Some(PartitionConfig::IngestTime {
            granularity: Granularity::Hour,
            template: Some(Located {
                value: "%Y/%m/%d/%H".to_owned(),
                span: t.span(),
                key: t.child_key("partition"),
            }),
        }),
        None => Some(PartitionConfig::None),
    };
    kind?;
    Some(SinkConfig {
        name,
        input,
        format,
        path: resolve(base, &path?.value),
        compression: compression.unwrap_or(Compression::Snappy),
        row_group_rows,
        target_file_bytes: target_file_mb * 1024 * 1024,
        max_file_age,
        partition: partition?,
    })
}

fn read_partition(t: &mut Table<'_, '_>, d: &mut Diags) -> Option<PartitionConfig> {
    let by = t.req_choice(d, "by", &["none", "ingest_time", "event_time", "field"]);
    let by = by?;
    let granularity = |t: &mut Table<'_, '_>, d: &mut Diags| {
        t.opt_choice(d, "granularity", &["year", "month", "day", "hour"])
            .map_or(Granularity::Hour, |g| match g.value.as_str() {
                "year" => Granularity::Year,
                "month" => Granularity::Month,
                "day" => Granularity::Day,
                _ => Granularity::Hour,
            })
    };
    let template = |t: &mut Table<'_, '_>, d: &mut Diags| {
        let tpl = t.opt_str(d, "template")?;
        match crate::sink::partition::check_template(&tpl.value) {
            Ok(()) => Some(tpl),
            Err(msg) => {
                d.push(tpl.span.clone(), &tpl.key, msg);
                None
            }
        }
    };
    let column = |t: &mut Table<'_, '_>, d: &mut Diags| t.req_str(d, "column");
    Some(match by.value.as_str() {
        "none" => PartitionConfig::None,
        "ingest_time" => PartitionConfig::IngestTime {
            granularity: granularity(t, d),
            template: template(t, d),
        },
        "event_time" => {
            let column = column(t, d);
            let granularity = granularity(t, d);
            let template = template(t, d);
            PartitionConfig::EventTime {
                column: column?,
                granularity,
                template,
            }
        }
        _ => {
            let column = column(t, d);
            let keep_column = t.opt_bool(d, "keep_column").is_some_and(|k| k.value);
            PartitionConfig::Field {
                column: column?,
                keep_column,
            }
        }
    })
}

#[cfg(test)]
mod tests;
