//! The WebAssembly engine: the ONLY module that imports wasmtime.
//!
//! One [`Engine`] per process: a wasmtime engine configured once, a linker built once, an
//! epoch ticker for per-call deadlines, and an on-disk cache of compiled components. A
//! [`Component`] is a compiled, pre-linked transform (`InstancePre`, reused for every
//! instance); a [`TransformInstance`] is one sandboxed instance with its own store, memory
//! cap and deadline, speaking Arrow record batches.
//!
//! Allocation: on-demand, not pooling. A pipeline holds a handful of long-lived instances
//! (stages × workers), so pooling's fast instantiation buys nothing, while its up-front
//! reservation of address space per slot would cost much for a process that may run
//! several pipelines.

mod bindings;
mod cache;
mod call;
pub mod capabilities;
mod config;
mod instance;
mod limits;
mod lineage;
mod output;
mod precompiled;
mod projection;

use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use wasmtime::component::Linker;

pub use call::{CallError, Description, Emitted, PluginConfigError};
pub use instance::TransformInstance;
pub use limits::Limits;
pub use precompiled::Precompiled;
pub use projection::Projection;

use bindings::{HostState, wit, wit_keyed, wit_projection};

/// Why the engine could not load or instantiate a component.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// wasmtime could not be configured.
    #[error("configuring the WebAssembly engine: {0}")]
    Setup(String),
    /// The bytes are not a valid component, or compiling them failed.
    #[error("compiling component {name}: {message}")]
    Compile {
        /// Which component.
        name: String,
        /// wasmtime's reason.
        message: String,
    },
    /// The component does not implement the `sluice:transform` world, or imports something
    /// the host does not grant.
    #[error("component {name} does not fit the sluice:transform@0.1.0 contract: {message}")]
    Link {
        /// Which component.
        name: String,
        /// wasmtime's reason.
        message: String,
    },
    /// The component imports a capability the pipeline does not grant.
    #[error(
        "component {name} imports `{import}` ({capability}), which this pipeline does not grant: transforms get no network or other outside access"
    )]
    Capability {
        /// Which component.
        name: String,
        /// The import.
        import: String,
        /// What kind of capability it is.
        capability: &'static str,
    },
    /// Creating an instance failed (including a trap in its start-up code).
    #[error("instantiating component {name}: {message}")]
    Instantiate {
        /// Which component.
        name: String,
        /// wasmtime's reason.
        message: String,
    },
}

/// The SHA-256 of a component's bytes, in lower-case hex: its identity in caches, checkpoints
/// and `sha256` pins.
pub fn digest_of(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Engine-wide settings.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Where compiled components are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Enforce call deadlines and memory caps. Only the benchmark turns this off, to
    /// measure what enforcement costs (`sluice run --unenforced-limits`).
    pub enforce_limits: bool,
}

impl EngineSettings {
    /// The default cache folder: `$SLUICE_CACHE_DIR`, else `$XDG_CACHE_HOME/sluice`, else
    /// `~/.cache/sluice`.
    pub fn default_cache_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("SLUICE_CACHE_DIR") {
            return Some(PathBuf::from(dir));
        }
        if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
            return Some(PathBuf::from(dir).join("sluice"));
        }
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("sluice"))
    }
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            cache_dir: Self::default_cache_dir(),
            enforce_limits: true,
        }
    }
}

/// The process's WebAssembly engine: a plain flavour for every component, and a second one
/// with fuel metering, built on first use, for components given a fuel budget.
pub struct Engine {
    plain: Flavour,
    fuel: std::sync::OnceLock<Result<Flavour, String>>,
    settings: EngineSettings,
}

/// One wasmtime configuration with its linker, cache and epoch ticker.
struct Flavour {
    engine: wasmtime::Engine,
    linker: Arc<Linker<HostState>>,
    cache: Option<cache::ComponentCache>,
    /// Shared with every component: deadlines fire as long as any instance can run.
    ticker: Arc<limits::EpochTicker>,
    fuel: bool,
}

impl Flavour {
    fn new(settings: &EngineSettings, fuel: bool) -> Result<Self, EngineError> {
        let config = config::wasmtime_config(settings.enforce_limits, fuel && settings.enforce_limits);
        let engine = wasmtime::Engine::new(&config).map_err(|e| EngineError::Setup(e.to_string()))?;
        let linker = bindings::linker(&engine).map_err(|e| EngineError::Setup(e.to_string()))?;
        let cache = settings
            .cache_dir
            .clone()
            .map(|dir| cache::ComponentCache::new(dir, &engine));
        let ticker = Arc::new(limits::EpochTicker::start(engine.clone()));
        Ok(Flavour {
            engine,
            linker: Arc::new(linker),
            cache,
            ticker,
            fuel: fuel && settings.enforce_limits,
        })
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    /// Configure wasmtime, build the linker and start the epoch ticker.
    pub fn new(settings: EngineSettings) -> Result<Self, EngineError> {
        Ok(Engine {
            plain: Flavour::new(&settings, false)?,
            fuel: std::sync::OnceLock::new(),
            settings,
        })
    }

    /// Compile (or fetch from the cache) and pre-link a component, with fuel metering if
    /// it will be given a fuel budget. `name` is for messages.
    pub fn load(&self, name: &str, bytes: &[u8], fuel: bool) -> Result<Component, EngineError> {
        self.load_prebuilt(name, bytes, &digest_of(bytes), None, fuel)
    }

    /// [`Engine::load`] for a component that comes with `precompiled` code built with this
    /// binary (the stock components, precompiled by `build.rs`). The code is used when
    /// wasmtime finds it compatible with this engine flavour (same wasmtime, settings and
    /// CPU features); otherwise the component is compiled as any other. `digest` is
    /// [`digest_of`] `bytes`, known in advance.
    pub fn load_prebuilt(
        &self,
        name: &str,
        bytes: &[u8],
        digest: &str,
        precompiled: Option<Precompiled>,
        fuel: bool,
    ) -> Result<Component, EngineError> {
        let flavour = if fuel {
            self.fuel
                .get_or_init(|| Flavour::new(&self.settings, true).map_err(|e| e.to_string()))
                .as_ref()
                .map_err(|e| EngineError::Setup(e.clone()))?
        } else {
            &self.plain
        };
        flavour.load(name, bytes, digest, precompiled, self.settings.enforce_limits)
    }
}

impl Flavour {
    fn load(
        &self,
        name: &str,
        bytes: &[u8],
        digest: &str,
        precompiled: Option<Precompiled>,
        enforce_limits: bool,
    ) -> Result<Component, EngineError> {
        let digest = digest.to_owned();
        let compile_err = |e: wasmtime::Error| EngineError::Compile {
            name: name.to_owned(),
            message: one_line(&e),
        };
        let cache_dir = self.cache.as_ref().map(cache::ComponentCache::dir);
        let component = match precompiled::load(&self.engine, name, precompiled, cache_dir) {
            Some(component) => component,
            None => match &self.cache {
                Some(cache) => cache.get_or_compile(&digest, bytes).map_err(compile_err)?,
                None => wasmtime::component::Component::new(&self.engine, bytes).map_err(compile_err)?,
            },
        };
        let imports: Vec<String> = component
            .component_type()
            .imports(&self.engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        for import in &imports {
            let capability = capabilities::classify(import);
            if !capability.allowed() {
                let capability = if capability == capabilities::Capability::Network {
                    "network"
                } else {
                    "unknown capability"
                };
                return Err(EngineError::Capability {
                    name: name.to_owned(),
                    import: import.clone(),
                    capability,
                });
            }
        }
        let pre = self.linker.instantiate_pre(&component).map_err(|e| EngineError::Link {
            name: name.to_owned(),
            message: one_line(&e),
        })?;
        let transform = wit::GuestIndices::new(&pre).map_err(|e| EngineError::Link {
            name: name.to_owned(),
            message: one_line(&e),
        })?;
        // Optional: a component without it keeps state that does not divide by key.
        let keyed = wit_keyed::GuestIndices::new(&pre).ok();
        // Optional: a component without it gets whole batches.
        let projection = wit_projection::GuestIndices::new(&pre).ok();
        Ok(Component {
            inner: Arc::new(instance::ComponentInner {
                name: name.to_owned(),
                digest,
                imports,
                pre,
                transform,
                keyed,
                projection,
                _ticker: self.ticker.clone(),
                enforce_limits,
                fuel: self.fuel,
            }),
        })
    }
}

/// A compiled, pre-linked transform component; cheap to clone, instantiated per worker.
#[derive(Clone)]
pub struct Component {
    inner: Arc<instance::ComponentInner>,
}

impl std::fmt::Debug for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Component")
            .field("name", &self.inner.name)
            .field("digest", &self.inner.digest)
            .finish()
    }
}

impl Component {
    /// SHA-256 of the component's bytes, hex.
    pub fn digest(&self) -> &str {
        &self.inner.digest
    }

    /// Whether it exports the optional `keyed-state` interface.
    pub fn keyed(&self) -> bool {
        self.inner.keyed.is_some()
    }

    /// The names of everything the component imports.
    pub fn imports(&self) -> &[String] {
        &self.inner.imports
    }

    /// A fresh sandboxed instance under `limits`; `label` tags its log lines (e.g.
    /// `pipeline/stage`).
    pub fn instantiate(&self, label: &str, limits: &Limits) -> Result<TransformInstance, EngineError> {
        instance::instantiate(&self.inner, label, limits)
    }
}

/// A wasmtime error as one line: its causes joined with `: `, without the wasm backtrace,
/// capped. wasmtime attaches the backtrace as context *around* the cause (`error while
/// executing at wasm backtrace: <frames>` then `: wasm trap: call stack exhausted` on the
/// last frame's line), so the causes are taken from the error chain one by one, not by
/// filtering the formatted text, which lost the cause with the frames.
pub(crate) fn one_line(e: &wasmtime::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.starts_with("error while executing at wasm backtrace") {
            continue;
        }
        let text = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !is_backtrace_frame(l))
            .collect::<Vec<_>>()
            .join(" ");
        if !text.is_empty() && !parts.last().is_some_and(|p| p.ends_with(&text)) {
            parts.push(text);
        }
    }
    let mut out = parts.join(": ");
    if out.is_empty() {
        out = "unknown error".to_owned();
    }
    if out.len() > 2000 {
        let mut end = 2000;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
    out
}

/// `12: 0x1a2b - module!function`: a frame of wasmtime's wasm backtrace.
fn is_backtrace_frame(line: &str) -> bool {
    let digits = line.chars().take_while(char::is_ascii_digit).count();
    digits > 0 && line[digits..].starts_with(':')
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A component whose one core module has four linear memories of 40 MiB each (160 MiB in
    /// all), hand-encoded: no compiler emits several memories, an attacker's assembler does.
    const FOUR_MEMORIES: &[u8] = &[
        0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00, // component, layer 1
        0x01, 23, // core module section, 23 bytes:
        0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, //   core module
        0x05, 13, 4, //   memory section: 4 memories, each at least 640 pages (40 MiB)
        0x00, 0x80, 0x05, 0x00, 0x80, 0x05, 0x00, 0x80, 0x05, 0x00, 0x80, 0x05, //
        0x02, 4, 1, 0x00, 0x00, 0x00, // core instance section: instantiate module 0
    ];

    #[test]
    fn the_memory_cap_counts_every_memory_of_an_instance() {
        let engine = Engine::new(EngineSettings {
            cache_dir: None,
            enforce_limits: true,
        })
        .expect("engine");
        let wasm = &engine.plain.engine;
        let component = wasmtime::component::Component::new(wasm, FOUR_MEMORIES).expect("a valid component");
        let instantiate = |mb: usize| {
            let limits = Limits {
                max_memory_bytes: mb << 20,
                ..Limits::default()
            };
            let mut store = instance::new_store(wasm, "test", "test/four-memories", &limits, true);
            Linker::<HostState>::new(wasm)
                .instantiate(&mut store, &component)
                .map(drop)
        };
        instantiate(200).expect("160 MiB fits a 200 MiB cap");
        let err = instantiate(64).expect_err("four 40 MiB memories exceed a 64 MiB cap");
        let message = one_line(&err);
        assert!(message.contains("instance memory cap of 64 MiB reached"), "{message}");
    }

    /// The stock filter and detector are sent only the columns they read (the contract's
    /// `projection`), and what the host passes on has every input column of the right rows,
    /// checked by value against rows picked here.
    #[test]
    fn stock_transforms_get_only_the_columns_they_read_and_every_column_comes_back() {
        use arrow::array::{Array, AsArray, Float64Array, Int64Array, RecordBatch, StringArray};
        use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};

        let engine = Engine::new(EngineSettings {
            cache_dir: None,
            enforce_limits: true,
        })
        .expect("engine");
        let schema = Arc::new(Schema::new(vec![
            Field::new("device", DataType::Utf8, true),
            Field::new("note", DataType::Utf8, true),
            Field::new("temp", DataType::Float64, true),
            Field::new("n", DataType::Int64, false),
        ]));
        let temps = [Some(20.0), Some(30.0), None, Some(26.0), Some(25.0), Some(40.0)];
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec!["a", "b", "a", "b", "a", "b"])),
                Arc::new(StringArray::from(vec![
                    Some("n0"),
                    None,
                    Some("n2"),
                    Some("n3"),
                    Some("n4"),
                    Some("n5"),
                ])),
                Arc::new(Float64Array::from(temps.to_vec())),
                Arc::new(Int64Array::from(vec![0, 1, 2, 3, 4, 5])),
            ],
        )
        .expect("batch");
        let run = |name: &str, config: &str| {
            let stock = crate::stock::lookup(name).expect("stock");
            let component = engine
                .load_prebuilt(name, stock.component, stock.digest, stock.precompiled, false)
                .expect("load");
            let mut instance = component.instantiate("test", &Limits::default()).expect("instance");
            let description = instance.describe(config, &schema).expect("call").expect("config");
            let sent = description.projection.as_ref().map(|p| p.schema().fields().len());
            instance
                .open(config, &schema, &description)
                .expect("call")
                .expect("open");
            let out = instance.process(&batch).expect("process");
            assert_eq!(out.len(), 1, "{name}");
            (sent, out[0].rows.clone())
        };
        let n = |b: &RecordBatch| {
            b.column_by_name("n")
                .unwrap()
                .as_primitive::<Int64Type>()
                .values()
                .to_vec()
        };
        let notes = |b: &RecordBatch| {
            let notes = b.column_by_name("note").unwrap().as_string::<i32>();
            (0..b.num_rows())
                .map(|i| notes.is_valid(i).then(|| notes.value(i).to_owned()))
                .collect::<Vec<_>>()
        };

        let (sent, kept) = run("filter", r#"{"predicate":"temp > 25"}"#);
        assert_eq!(sent, Some(1), "the filter is sent the one column it tests");
        assert_eq!(kept.schema(), schema);
        assert_eq!(n(&kept), [1, 3, 5]);
        assert_eq!(notes(&kept), [None, Some("n3".into()), Some("n5".into())]);
        let devices = kept.column(0).as_string::<i32>();
        assert_eq!((0..3).map(|i| devices.value(i)).collect::<Vec<_>>(), ["b", "b", "b"]);
        let kept_temps = kept.column(2).as_primitive::<Float64Type>().values().to_vec();
        assert_eq!(kept_temps, [30.0, 26.0, 40.0]);

        let (sent, scored) = run("anomaly", r#"{"key":"device","value":"temp","warmup":0}"#);
        assert_eq!(sent, Some(2), "the detector is sent its key and value");
        assert_eq!(scored.num_columns(), 6);
        assert_eq!(scored.schema().fields()[..4], schema.fields()[..]);
        for c in 0..4 {
            assert_eq!(scored.column(c).as_ref(), batch.column(c).as_ref(), "column {c}");
        }
        assert_eq!(scored.schema().field(4).name(), "is_anomaly");
        assert_eq!(scored.schema().field(5).name(), "anomaly_score");
    }

    #[test]
    fn guest_log_lines_cannot_forge_host_lines() {
        let clean = bindings::sanitize_log("ok\nFORGED ERROR\r\u{1b}[31m\u{2028}x");
        assert_eq!(clean, "ok\\nFORGED ERROR\\r\\u{1b}[31m\\u{2028}x");
        let long = bindings::sanitize_log(&"z".repeat(10_000));
        assert!(long.len() < 1100 && long.ends_with("bytes, 8976 not shown)"), "{long}");
    }
}
