//! LOW level: pipeline TOML text → typed [`PipelineConfig`] with positions, and the
//! diagnostics that point at `file:line:col` and a key.
//!
//! This module knows the shape of a pipeline file and nothing else: it does not look at
//! data, load plugins or resolve schemas (see `pipeline`). Every problem in the file is
//! reported, not just the first; unknown keys are errors.

pub mod cases;
mod diagnostic;
mod env;
mod model;
mod plugin_config;
mod reader;
mod s3;
mod sinks;
mod sources;
mod template;
mod transforms;

use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::de::{DeTable, DeValue};

pub use diagnostic::{ConfigErrors, Diagnostic, SourceMap};
pub use model::*;
pub use plugin_config::PluginConfig;
pub use reader::Located;

use diagnostic::Diags;
use reader::{Table, describe};
use sinks::read_sinks;
use sources::read_source;
use transforms::read_transform;

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
    /// The file holds a pipeline's test cases, not a pipeline.
    #[error("{path} holds the test cases of {pipeline}, not a pipeline: run `sluice test {pipeline}`")]
    TestCases {
        /// The file.
        path: PathBuf,
        /// The pipeline they test.
        pipeline: PathBuf,
    },
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
    if let Some(pipeline) = path
        .to_str()
        .and_then(|p| p.strip_suffix(".test.toml"))
        .filter(|_| path.is_file())
    {
        return Err(ConfigError::TestCases {
            path: path.to_owned(),
            pipeline: PathBuf::from(format!("{pipeline}.toml")),
        });
    }
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
    let config = read_pipeline(&mut top, &mut d, base, default_name, &source);
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

fn read_pipeline(
    top: &mut Table<'_, '_>,
    d: &mut Diags,
    base: &Path,
    default_name: &str,
    map: &SourceMap,
) -> Option<PipelineConfig> {
    let (name, workers, max_dead_letter_ratio) = match top.opt_table(d, "pipeline") {
        Some(mut t) => {
            let name = t.opt_str(d, "name").map(|n| n.value);
            let workers = t.opt_uint(d, "workers", 1..=256);
            let ratio = t.opt_fraction(d, "max_dead_letter_ratio").map(|r| r.value);
            t.finish(d);
            (name, workers, ratio)
        }
        None => (None, None, None),
    };
    let mut source_metadata = MetadataConfig::default();
    let mut decoding = Decoding::default();
    let source = top.req_table(d, "source").and_then(|mut t| {
        if let Some(mut m) = t.opt_table(d, "metadata") {
            source_metadata = MetadataConfig {
                file: m.opt_str(d, "file"),
                topic: m.opt_str(d, "topic"),
                partition: m.opt_str(d, "partition"),
                ingest_time: m.opt_str(d, "ingest_time"),
                shard: m.opt_str(d, "shard"),
                sequence: m.opt_str(d, "sequence"),
                partition_key: m.opt_str(d, "partition_key"),
                arrival: m.opt_str(d, "arrival"),
            };
            m.finish(d);
        }
        decoding = Decoding {
            coerce: match t.opt_choice(d, "coerce", &["strict", "lenient"]) {
                Some(c) if c.value == "lenient" => Coerce::Lenient,
                _ => Coerce::Strict,
            },
            new_fields: t.opt_choice(d, "on_new_field", &["dead_letter", "ignore"]).map(|c| {
                if c.value == "ignore" {
                    NewFields::Ignore
                } else {
                    NewFields::DeadLetter
                }
            }),
        };
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
            let path = t.req_str(d, "path").map(|p| Place::Local(resolve(base, &p.value)));
            t.finish(d);
            path
        }
        None => sinks.as_ref().and_then(|all| default_dead_letter(all)),
    };
    let checkpoint = read_checkpoint(top, d, base, sink.map(|s| &s.place));
    let metrics_listen = read_telemetry(top, d);
    let tests = cases::read_tests(top, d, base, map);
    Some(PipelineConfig {
        name: name.unwrap_or_else(|| default_name.to_owned()),
        workers,
        max_dead_letter_ratio,
        source: source?,
        source_metadata,
        decoding,
        transforms,
        sinks: sinks?,
        dead_letter: DeadLetterConfig { place: dead_letter? },
        checkpoint: checkpoint?,
        metrics_listen,
        tests,
    })
}

/// `[telemetry] listen = "127.0.0.1:9464"`: the Prometheus endpoint's address.
fn read_telemetry(top: &mut Table<'_, '_>, d: &mut Diags) -> Option<Located<std::net::SocketAddr>> {
    let mut t = top.opt_table(d, "telemetry")?;
    let listen = t.opt_str(d, "listen");
    t.finish(d);
    let listen = listen?;
    match listen.value.parse::<std::net::SocketAddr>() {
        Ok(addr) => Some(Located {
            value: addr,
            span: listen.span,
            key: listen.key,
        }),
        Err(_) => {
            d.push(
                listen.span.clone(),
                &listen.key,
                format!(
                    "expected an IP address and port such as \"127.0.0.1:9464\", found \"{}\"",
                    listen.value
                ),
            );
            None
        }
    }
}

/// Dead letters go to the first sink's `error_prefix` that is set, else to `_dead_letter`
/// inside the first sink's folder or prefix.
fn default_dead_letter(sinks: &[SinkConfig]) -> Option<Place> {
    let with_prefix = sinks.iter().find_map(|s| match (&s.place, &s.error_prefix) {
        (Place::S3(loc), Some(p)) => Some(Place::S3(S3Location {
            prefix: p.value.clone(),
            ..loc.clone()
        })),
        _ => None,
    });
    with_prefix.or_else(|| sinks.first().map(|s| s.place.join("_dead_letter")))
}

/// `[checkpoint]`. By default checkpoints live beside the first sink's output: a file store
/// in `<path>/_checkpoints` for a local sink, an S3 store under `<prefix>_checkpoints/` for an
/// S3 sink (so it restarts elsewhere with no local state).
fn read_checkpoint(
    top: &mut Table<'_, '_>,
    d: &mut Diags,
    base: &Path,
    sink: Option<&Place>,
) -> Option<CheckpointConfig> {
    let default_interval = Duration::from_secs(10);
    let (default_path, default_store) = match sink.map(|p| p.join("_checkpoints")) {
        Some(Place::Local(path)) => (Some(path), StoreKind::File),
        Some(Place::S3(loc)) => (None, StoreKind::S3(loc)),
        Some(Place::Console) | None => (None, StoreKind::File),
    };
    // The console keeps nothing: a pipeline that prints keeps checkpoints only where told.
    let console = sink == Some(&Place::Console);
    let Some(mut t) = top.opt_table(d, "checkpoint") else {
        return sink.is_some().then(|| CheckpointConfig {
            enabled: !console,
            path: default_path.unwrap_or_default(),
            interval: default_interval,
            store: default_store,
        });
    };
    let enabled = t.opt_bool(d, "enabled").is_none_or(|b| b.value);
    let store = read_store(&mut t, d);
    let path = t.opt_str(d, "path").map(|p| resolve(base, &p.value));
    let interval = t.opt_duration(
        d,
        "interval",
        Duration::from_millis(10)..=Duration::from_secs(24 * 3600),
    );
    let span = t.span();
    let key = t.key().to_owned();
    t.finish(d);
    let store = store.unwrap_or(default_store);
    let path = path.or(default_path);
    if store == StoreKind::File && path.is_none() && sink.is_some() && enabled {
        let first = if console { "the console" } else { "on S3" };
        d.push(
            span,
            &key,
            format!("the first sink is {first}, so there is no local folder for checkpoint files: give `path`, or store = {{ s3 = \"s3://bucket/prefix/\" }}"),
        );
        return None;
    }
    Some(CheckpointConfig {
        enabled,
        path: path.unwrap_or_default(),
        interval: interval.map_or(default_interval, |i| i.value),
        store,
    })
}

/// `store = "file" | { s3 = "s3://bucket/prefix/" }`, and the S3 keys beside it (`region`,
/// `endpoint_url`, `force_path_style`), which only an S3 store takes. `None` when `store` is
/// not given (the default applies).
fn read_store(t: &mut Table<'_, '_>, d: &mut Diags) -> Option<StoreKind> {
    let key = t.child_key("store");
    let endpoint = s3::read_endpoint(t, d);
    let given = t.raw("store").is_some();
    let expected = "expected \"file\" or { s3 = \"s3://bucket/prefix/\" }";
    // Ok(None): the file store; Err: a mistake already reported.
    let url: Result<Option<(String, String)>, ()> = match t.raw("store") {
        None => Ok(None),
        Some(raw) => match raw.get_ref() {
            DeValue::String(s) if s.eq_ignore_ascii_case("file") => Ok(None),
            DeValue::Table(inner) => {
                let mut inner = Table::new(inner, raw.span(), key.clone());
                let url = inner.req_str(d, "s3");
                inner.finish(d);
                let Some(url) = url else {
                    return Some(StoreKind::File);
                };
                match s3::parse_s3_url(&url.value) {
                    Some(parts) => Ok(Some(parts)),
                    None => {
                        d.push(
                            url.span.clone(),
                            &url.key,
                            format!(
                                "expected an S3 URL such as \"s3://bucket/prefix/\", found \"{}\"",
                                url.value
                            ),
                        );
                        Err(())
                    }
                }
            }
            other => {
                d.push(raw.span(), &key, format!("{expected}, found {}", describe(other)));
                Err(())
            }
        },
    };
    match url {
        Ok(Some((bucket, prefix))) => Some(StoreKind::S3(endpoint.at(bucket, prefix))),
        Ok(None) => {
            let s3_only = [
                endpoint.region.map(|r| (r.span, r.key)),
                endpoint.endpoint_url.map(|e| (e.span, e.key)),
                endpoint.force_path_style.map(|f| (f.span, f.key)),
            ];
            for (span, key) in s3_only.into_iter().flatten() {
                d.push(
                    span,
                    &key,
                    "only an S3 checkpoint store (store = { s3 = \"s3://bucket/prefix/\" }) takes this key".to_owned(),
                );
            }
            given.then_some(StoreKind::File)
        }
        Err(()) => Some(StoreKind::File),
    }
}

#[cfg(test)]
mod tests;
