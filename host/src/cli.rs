//! The `sluice` command line: `run` and `validate`. Exit codes: 0 success, 1 runtime
//! failure, 2 a bad pipeline file (or bad usage).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use clap::{Parser, Subcommand};

use crate::cases;
use crate::config;
use crate::engine::{Engine, EngineSettings};
use crate::pipeline::outcome::{RunError, RunOptions, RunSummary};
use crate::pipeline::reload::restarts;
use crate::pipeline::reload::status::{query, socket_path};
use crate::pipeline::reload::watch::{ReloadSettings, Restart, component_sources};
use crate::pipeline::sinks::Format;
use crate::pipeline::trial;
use crate::pipeline::{Plan, PlanError};

/// Exit code for a pipeline file that does not validate.
pub const EXIT_CONFIG: u8 = 2;
/// Exit code for a failure while running.
pub const EXIT_RUNTIME: u8 = 1;
/// Exit code for a run that sent too much to dead letters (`max_dead_letter_ratio`), or
/// wrote nothing while sending records there.
pub const EXIT_DEAD_LETTERS: u8 = 3;

/// Streaming ETL: sources → sandboxed WebAssembly transforms → Parquet.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run pipelines to the end of their input, resuming from their checkpoints. Several files
    /// run side by side in one process, each with its own threads and sandboxes: one failing
    /// does not stop the others. SIGTERM or Ctrl-C stops at a batch boundary with a final
    /// checkpoint (a second Ctrl-C exits at once; the next run recovers from the checkpoint).
    Run {
        /// The pipeline files.
        #[arg(required = true)]
        pipelines: Vec<PathBuf>,
        /// Ignore the pipelines' checkpoints and read their input from the beginning (output
        /// files are rewritten under the same names; the new checkpoints supersede the old).
        #[arg(long)]
        from_scratch: bool,
        /// Benchmarking only: run components without call deadlines or memory caps.
        #[arg(long, hide = true)]
        unenforced_limits: bool,
        /// Do not watch the pipeline files and their components for changes (by default a
        /// changed version is checked and swapped in while running; SIGHUP forces a check).
        #[arg(long)]
        no_reload: bool,
        /// Read, decode and transform everything, and commit nothing: no output file, no
        /// checkpoint, nothing acknowledged (dead letters are printed on stderr). Reads from
        /// the start of the input; the summary says what would have been written.
        #[arg(long)]
        dry_run: bool,
        /// Serve Prometheus metrics on this address (`/metrics`), as `[telemetry] listen` in a
        /// pipeline file does; this wins over the files.
        #[arg(long, value_name = "ADDR:PORT")]
        metrics_addr: Option<std::net::SocketAddr>,
    },
    /// Show what a running pipeline runs: its components and their digests, state sizes,
    /// and the result of the last reload.
    Status {
        /// The pipeline file it was started with.
        pipeline: PathBuf,
    },
    /// Watch a running pipeline: rows per second through each stage, time in its component,
    /// sinks, dead letters, checkpoints, partitions and reloads, redrawn every second.
    Top {
        /// The pipeline file it was started with.
        pipeline: PathBuf,
        /// Seconds between redraws.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
    },
    /// Type-check pipelines (every transform's config and schemas) without reading data.
    Validate {
        /// The pipeline files.
        #[arg(required = true)]
        pipelines: Vec<PathBuf>,
    },
    /// Run the test cases declared with pipelines (`[[test]]` tables in the file, or in
    /// PIPELINE.test.toml beside it) through the same compiled components a run uses, with
    /// no source and no sink. Exit code 1 when a case fails, with what differs.
    Test {
        /// The pipeline files.
        #[arg(required = true)]
        pipelines: Vec<PathBuf>,
    },
    /// Start something of your own: `sluice new transform NAME`.
    New {
        #[command(subcommand)]
        what: NewWhat,
    },
    /// Push recorded records through a pipeline's current components and print what comes
    /// out: a file of records (one per line), or a dead-letter folder of a past run (raw
    /// records go back to the decoder, refused rows to the stage that refused them).
    Replay {
        /// The pipeline file.
        pipeline: PathBuf,
        /// The records: a file, or a dead-letter folder.
        #[arg(long)]
        input: PathBuf,
        /// Feed every record to this transform (records in its input schema).
        #[arg(long)]
        stage: Option<String>,
        /// Replay at most this many records.
        #[arg(long)]
        limit: Option<usize>,
        /// How to print the rows that come out.
        #[arg(long, value_enum, default_value_t = ReplayFormat::Table)]
        format: ReplayFormat,
    },
}

/// What `sluice new` writes.
#[derive(Debug, Subcommand)]
enum NewWhat {
    /// A transform: a Rust crate (Cargo.toml, the pinned toolchain, a documented lib.rs with
    /// unit tests) or with `--lang js` an npm project, each with a sample pipeline with test
    /// cases, sample data and a README.
    Transform {
        /// Its name (lowercase letters, digits, `-`, `_`); the crate's folder.
        name: String,
        /// Where to create the folder.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The Sluice SDK to depend on (default: the checkout this binary was built from;
        /// its `sdk` folder, or `sdk-js` for JavaScript).
        #[arg(long)]
        sdk: Option<PathBuf>,
        /// The language: a Rust crate, or an npm project in JavaScript.
        #[arg(long, value_enum, default_value_t = crate::scaffold::Lang::Rust)]
        lang: crate::scaffold::Lang,
    },
}

/// How `sluice replay` prints rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ReplayFormat {
    /// A table.
    Table,
    /// JSON lines.
    Json,
}

/// A failure with its exit code.
#[derive(Debug)]
pub struct Failure {
    /// Exit code.
    pub code: u8,
    /// What to print.
    pub error: anyhow::Error,
}

impl From<Failure> for ExitCode {
    fn from(f: Failure) -> Self {
        ExitCode::from(f.code)
    }
}

/// A planned pipeline file.
struct Planned {
    plan: Plan,
    path: PathBuf,
    components: Vec<(String, Option<PathBuf>)>,
    /// Its `[[test]]` tables.
    tests: Vec<config::cases::TestCase>,
}

/// Plan every file with one engine; any file's problems make the whole call a config failure.
fn plan_all(paths: &[PathBuf], settings: EngineSettings) -> Result<(Arc<Engine>, Vec<Planned>), Failure> {
    let engine = Arc::new(Engine::new(settings).map_err(|e| Failure {
        code: EXIT_RUNTIME,
        error: e.into(),
    })?);
    let mut plans = Vec::new();
    let mut problems = Vec::new();
    for path in paths {
        match config::load(path).map_err(anyhow::Error::from).and_then(|loaded| {
            let plan = Plan::build(&loaded, &engine).map_err(|e: PlanError| anyhow::Error::from(e))?;
            Ok(Planned {
                plan,
                path: path.clone(),
                components: component_sources(&loaded),
                tests: loaded.config.tests.clone(),
            })
        }) {
            Ok(planned) => plans.push(planned),
            Err(e) => problems.push(format!("{e:#}")),
        }
    }
    if problems.is_empty() {
        Ok((engine, plans))
    } else {
        Err(Failure {
            code: EXIT_CONFIG,
            error: anyhow::anyhow!(problems.join("\n")),
        })
    }
}

/// Run the command line.
pub fn main(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Validate { pipelines } => {
            for planned in plan_all(&pipelines, EngineSettings::default())?.1 {
                println!("{} is valid.", planned.path.display());
                print_plan(&planned.plan);
            }
            Ok(())
        }
        Command::Status { pipeline } => status(&pipeline),
        Command::Top { pipeline, interval } => top(&pipeline, interval),
        Command::Test { pipelines } => test(&pipelines),
        Command::New {
            what: NewWhat::Transform { name, dir, sdk, lang },
        } => {
            use crate::scaffold::Lang;
            let sdk = sdk.unwrap_or_else(|| crate::scaffold::default_sdk(lang));
            let written = match lang {
                Lang::Rust => crate::scaffold::new_transform(&name, &dir, &sdk),
                Lang::Js => crate::scaffold::new_js_transform(&name, &dir, &sdk),
            };
            let root = written.map_err(|e| Failure {
                code: EXIT_CONFIG,
                error: e.into(),
            })?;
            println!("Created the transform {name} in {}. Next:", root.display());
            if lang == Lang::Js {
                println!("  cd {}", root.display());
                println!("  npm install                                     # the SDK, esbuild, componentize-js");
                println!("  npm test                                        # its unit tests, on Node.js");
                println!("  npm run build                                   # the component");
                println!("  sluice run pipeline.toml                        # over sample.ndjson, rows on stdout");
                println!("  sluice test pipeline.toml                       # the pipeline's test cases");
                return Ok(());
            }
            println!("  cd {}", root.display());
            println!("  cargo test                                      # its unit tests, natively");
            println!("  cargo build --release --target wasm32-wasip2    # the component");
            println!("  sluice run pipeline.toml                        # over sample.ndjson, rows on stdout");
            println!("  sluice test pipeline.toml                       # the pipeline's test cases");
            Ok(())
        }
        Command::Replay {
            pipeline,
            input,
            stage,
            limit,
            format,
        } => replay(&pipeline, &input, stage, limit, format),
        Command::Run {
            pipelines,
            from_scratch,
            unenforced_limits,
            no_reload,
            dry_run,
            metrics_addr,
        } => {
            // A dry run never reloads: a restart would run the new version for real.
            let no_reload = no_reload || dry_run;
            if unenforced_limits {
                tracing::warn!(
                    "Running without call deadlines or memory caps (--unenforced-limits): benchmarking only."
                );
            }
            let settings = EngineSettings {
                enforce_limits: !unenforced_limits,
                ..EngineSettings::default()
            };
            // Edits made from here on (while components compile, say) are reloaded once the
            // watcher is up: it compares the files' times with this.
            let read_at = std::time::SystemTime::now();
            let (engine, mut planned) = plan_all(&pipelines, settings)?;
            if dry_run {
                for p in &mut planned {
                    p.plan.checkpoint.enabled = false;
                    p.plan.dead_letter = config::Place::Console;
                    p.plan.sinks.iter_mut().for_each(crate::pipeline::sinks::SinkPlan::dry);
                }
            }
            serve_metrics(metrics_addr, &planned)?;
            let signal_failure = |e: std::io::Error| Failure {
                code: EXIT_RUNTIME,
                error: anyhow::anyhow!("cannot install signal handlers: {e}"),
            };
            let options = RunOptions {
                progress: planned.len() == 1,
                from_scratch,
                stop: Some(stop_on_signals().map_err(signal_failure)?),
                reload: None,
                reload_changes: Default::default(),
                status: None,
                components: Vec::new(),
            };
            let mut runs = Vec::new();
            for p in planned {
                let reload = if no_reload {
                    None
                } else {
                    let hangup = Arc::new(AtomicBool::new(false));
                    signal_hook::flag::register(signal_hook::consts::SIGHUP, hangup.clone()).map_err(signal_failure)?;
                    Some(ReloadSettings {
                        path: p.path.clone(),
                        engine: engine.clone(),
                        debounce: reload_debounce(),
                        hangup,
                        components: p.components.clone(),
                        restart: Restart::default(),
                        read_at,
                    })
                };
                runs.push((
                    p.plan,
                    RunOptions {
                        reload,
                        components: p.components.iter().map(|(c, _)| c.clone()).collect(),
                        ..options.clone()
                    },
                ));
            }
            let results: Vec<_> = std::thread::scope(|scope| {
                let handles: Vec<_> = runs
                    .into_iter()
                    .map(|(plan, options)| scope.spawn(move || restarts::run(plan, options)))
                    .collect();
                handles.into_iter().map(|h| h.join()).collect()
            });
            let mut failures = Vec::new();
            let mut code = EXIT_DEAD_LETTERS;
            for result in results {
                let Ok(segments) = result else {
                    failures.push("a pipeline's runner panicked".to_owned());
                    code = EXIT_RUNTIME;
                    continue;
                };
                for (plan, result) in segments {
                    match result {
                        Ok(summary) => print_summary(&plan, &summary),
                        Err(RunError::DeadLetters { message, summary }) => {
                            if let Some(summary) = summary {
                                print_summary(&plan, &summary);
                            }
                            failures.push(format!("pipeline {} failed: {message}", plan.name));
                        }
                        Err(e) => {
                            code = EXIT_RUNTIME;
                            failures.push(format!("pipeline {} stopped: {e:#}", plan.name));
                        }
                    }
                }
            }
            if failures.is_empty() {
                Ok(())
            } else {
                Err(Failure {
                    code,
                    error: anyhow::anyhow!(failures.join("\n")),
                })
            }
        }
    }
}

/// `sluice test`: every pipeline's cases, a line each, what differs under a failed one.
fn test(paths: &[PathBuf]) -> Result<(), Failure> {
    let (_engine, planned) = plan_all(paths, EngineSettings::default())?;
    let (mut passed, mut failed) = (0, 0);
    for p in &planned {
        let mut cases = p.tests.clone();
        cases.extend(config::cases::load_tests_beside(&p.path).map_err(|e| Failure {
            code: EXIT_CONFIG,
            error: e.into(),
        })?);
        println!("{}", p.path.display());
        if cases.is_empty() {
            println!(
                "  no test cases: add [[test]] tables to it, or to {}",
                config::cases::tests_file(&p.path).display()
            );
            continue;
        }
        for case in &cases {
            let stage = case.stage.as_ref().map(|s| s.value.as_str());
            let problems = match trial::push(&p.plan, stage, &case.input) {
                Ok(outcome) => cases::check(case, &outcome).unwrap_or_else(|e| vec![e.to_string()]),
                Err(e) => vec![e.to_string()],
            };
            if problems.is_empty() {
                passed += 1;
                println!("  ok      {} ({})", case.name, case.at);
            } else {
                failed += 1;
                println!("  FAILED  {} ({})", case.name, case.at);
                for line in problems.iter().flat_map(|p| p.lines()) {
                    println!("          {line}");
                }
            }
        }
    }
    let total = passed + failed;
    let noun = if total == 1 { "test" } else { "tests" };
    println!("{total} {noun}: {passed} passed, {failed} failed");
    if failed == 0 {
        Ok(())
    } else {
        Err(Failure {
            code: EXIT_RUNTIME,
            error: anyhow::anyhow!("{failed} of {} tests failed", passed + failed),
        })
    }
}

/// `sluice replay`: recorded records through the current components, rows to stdout, a
/// summary and the dead letters to stderr.
fn replay(
    pipeline: &std::path::Path,
    input: &std::path::Path,
    stage: Option<String>,
    limit: Option<usize>,
    format: ReplayFormat,
) -> Result<(), Failure> {
    let (_engine, planned) = plan_all(&[pipeline.to_owned()], EngineSettings::default())?;
    let plan = &planned[0].plan;
    let runtime = |error: anyhow::Error| Failure {
        code: EXIT_RUNTIME,
        error,
    };
    let mut records =
        cases::replay_input(input).map_err(|e| runtime(anyhow::anyhow!("cannot read {}: {e}", input.display())))?;
    if let Some(n) = limit {
        records.truncate(n);
    }
    if let Some(s) = &stage {
        for r in &mut records {
            r.0 = Some(s.clone());
        }
    }
    let (mut rows, mut dead) = (Vec::new(), Vec::new());
    for group in records.chunk_by(|a, b| a.0 == b.0) {
        let bytes: Vec<Vec<u8>> = group.iter().map(|r| r.1.clone()).collect();
        let outcome = trial::push(plan, group[0].0.as_deref(), &bytes).map_err(|e| runtime(e.into()))?;
        rows.extend(outcome.rows);
        dead.extend(outcome.dead);
    }
    match format {
        ReplayFormat::Table => {
            let table = arrow::util::pretty::pretty_format_batches(&rows).map_err(|e| runtime(e.into()))?;
            println!("{table}");
        }
        ReplayFormat::Json => {
            for row in cases::rows_json(&rows).map_err(|e| runtime(e.into()))? {
                println!("{}", serde_json::Value::Object(row));
            }
        }
    }
    let out: usize = rows.iter().map(|b| b.num_rows()).sum();
    eprintln!(
        "{} records in, {out} rows out, {} dead letters",
        records.len(),
        dead.len()
    );
    for d in &dead {
        eprintln!(
            "  dead letter [{}] {} — {}",
            d.stage,
            d.reason,
            cases::dead_record_text(&d.record)
        );
    }
    Ok(())
}

/// Start the Prometheus endpoint the command line or the pipeline files ask for. One process
/// serves one endpoint (every pipeline's metrics carry its name): files that ask for two
/// different addresses are refused unless `--metrics-addr` decides.
fn serve_metrics(flag: Option<std::net::SocketAddr>, planned: &[Planned]) -> Result<(), Failure> {
    let asked: Vec<(&Planned, std::net::SocketAddr)> = planned
        .iter()
        .filter_map(|p| p.plan.metrics_listen.map(|a| (p, a)))
        .collect();
    let addr = match (flag, asked.as_slice()) {
        (Some(addr), _) => addr,
        (None, []) => return Ok(()),
        (None, [(_, first), rest @ ..]) => {
            if let Some((other, addr)) = rest.iter().find(|(_, a)| a != first) {
                return Err(Failure {
                    code: EXIT_CONFIG,
                    error: anyhow::anyhow!(
                        "{} asks for metrics on {addr} but {} on {first}: one process serves one endpoint, so give the same `[telemetry] listen` or pass --metrics-addr",
                        other.path.display(),
                        asked[0].0.path.display()
                    ),
                });
            }
            *first
        }
    };
    crate::telemetry::endpoint::serve(addr).map_err(|e| Failure {
        code: EXIT_RUNTIME,
        error: e.into(),
    })
}

/// Quiet time after a file change before it is read: `SLUICE_RELOAD_DEBOUNCE_MS`, else
/// 300 ms (long enough for an editor's save or a copy to finish).
fn reload_debounce() -> std::time::Duration {
    let ms = std::env::var("SLUICE_RELOAD_DEBOUNCE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    std::time::Duration::from_millis(ms)
}

/// The socket a pipeline started from `pipeline` serves its status on, and its name.
fn status_socket(pipeline: &std::path::Path) -> Result<(std::path::PathBuf, String), Failure> {
    let loaded = config::load(pipeline).map_err(|e| Failure {
        code: EXIT_CONFIG,
        error: e.into(),
    })?;
    let store = crate::checkpoint::store::open(&loaded.config.checkpoint).location();
    Ok((socket_path(&loaded.config.name, &store), loaded.config.name))
}

fn not_running(name: &str, socket: &std::path::Path, e: std::io::Error) -> Failure {
    Failure {
        code: EXIT_RUNTIME,
        error: anyhow::anyhow!("{name} is not running (no answer on {}: {e})", socket.display()),
    }
}

/// `sluice top`: redraw the status until Ctrl-C, or until the pipeline stops.
fn top(pipeline: &std::path::Path, interval: f64) -> Result<(), Failure> {
    let (socket, name) = status_socket(pipeline)?;
    query(&socket).map_err(|e| not_running(&name, &socket, e))?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone()).map_err(|e| Failure {
            code: EXIT_RUNTIME,
            error: anyhow::anyhow!("cannot install signal handlers: {e}"),
        })?;
    }
    let read = || {
        query(&socket).map(|status| crate::top::Reading {
            status,
            at_ms: chrono::Utc::now().timestamp_millis(),
        })
    };
    let interval = std::time::Duration::from_secs_f64(interval.clamp(0.1, 3600.0));
    match crate::top::run(read, interval, &stop) {
        Ok(()) => Ok(()),
        Err(e) => {
            eprintln!("{name} stopped answering ({e}).");
            Ok(())
        }
    }
}

/// `sluice status`: ask the running pipeline over its socket.
fn status(pipeline: &std::path::Path) -> Result<(), Failure> {
    let (socket, name) = status_socket(pipeline)?;
    let s = query(&socket).map_err(|e| not_running(&name, &socket, e))?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let f = &s.flow;
    println!(
        "Pipeline {} (pid {}), generation {}, running for {:.1} s",
        s.pipeline,
        s.pid,
        s.generation,
        (now_ms - f.since_ms).max(0) as f64 / 1e3
    );
    println!(
        "  read          {} rows ({:.1} MB), {:.0} rows/s over the last seconds",
        f.rows_read,
        f.bytes_read as f64 / 1e6,
        f.rows_per_second
    );
    for sink in &f.sinks {
        println!(
            "  sink {}  {} rows, {} files published ({:.1} MB)",
            sink.name,
            sink.rows,
            sink.files,
            sink.bytes as f64 / 1e6
        );
    }
    if !f.dead_letters.is_empty() {
        let by: Vec<String> = f.dead_letters.iter().map(|(st, n)| format!("{st} {n}")).collect();
        println!("  dead letters  {}", by.join(", "));
    }
    match &f.checkpoint {
        Some(c) => println!(
            "  checkpoint    {} taken, the last {:.1} s ago in {} ms ({} bytes)",
            c.taken,
            (now_ms - c.at_ms).max(0) as f64 / 1e3,
            c.took_ms,
            c.bytes
        ),
        None => println!("  checkpoint    none yet"),
    }
    for st in &s.stages {
        let state = match (st.stateful, st.state_bytes) {
            (true, Some(b)) => format!(", state {b} bytes at the last checkpoint"),
            (true, None) => ", stateful".to_owned(),
            _ => String::new(),
        };
        println!("  stage {} = {} (sha256 {}){state}", st.name, st.component, st.sha256);
        let failed = if st.failed_calls > 0 {
            format!(", {} failed calls", st.failed_calls)
        } else {
            String::new()
        };
        println!(
            "        {} rows in, {} out, {} batches, {:.2} s in the component{failed}",
            st.rows_in,
            st.rows_out,
            st.batches,
            st.busy_ms as f64 / 1e3
        );
    }
    for (partition, position) in &f.positions {
        println!("  position      {partition} {position}");
    }
    println!("  reloads applied {}, refused {}", s.reloads_applied, s.reloads_refused);
    if let Some(r) = &s.last_reload {
        let took = r.took_ms.map(|t| format!(" in {t} ms")).unwrap_or_default();
        println!("  last reload: {}{took}: {}", r.outcome, r.detail);
    }
    if !s.lag.is_empty() {
        println!("  lag           {}", show_lag(&s.lag));
    }
    if let Some(l) = &s.leases {
        let owned: Vec<String> = l
            .owned
            .iter()
            .map(|(shard, reading)| {
                let lag = s
                    .lag
                    .get(shard)
                    .map(|ms| format!(" {ms} ms behind"))
                    .unwrap_or_default();
                let waiting = if *reading {
                    ""
                } else {
                    " (taken from a live worker: waits a failover time)"
                };
                format!("{shard}{lag}{waiting}")
            })
            .collect();
        println!("  leases        table {}, this worker {}", l.table, l.worker);
        println!(
            "  owned         {}",
            if owned.is_empty() {
                "none".to_owned()
            } else {
                owned.join(", ")
            }
        );
        let workers: Vec<String> = l.workers.iter().map(|(w, n)| format!("{w} {n}")).collect();
        println!("  workers       {}", workers.join(", "));
    }
    Ok(())
}

/// Each partition's lag behind its upstream's tip, e.g. `shardId-000000000001 1.2 s`.
fn show_lag(lag: &std::collections::BTreeMap<String, i64>) -> String {
    lag.iter()
        .map(|(p, ms)| format!("{p} {:.1} s", *ms as f64 / 1e3))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A flag SIGTERM and SIGINT set; a second SIGINT while it is set exits at once.
fn stop_on_signals() -> std::io::Result<Arc<AtomicBool>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register_conditional_shutdown(SIGINT, EXIT_RUNTIME as i32, stop.clone())?;
    signal_hook::flag::register(SIGINT, stop.clone())?;
    signal_hook::flag::register(SIGTERM, stop.clone())?;
    Ok(stop)
}

fn print_plan(plan: &Plan) {
    println!(
        "  input   {} columns: {}",
        plan.input_schema.fields().len(),
        columns(&plan.input_schema)
    );
    for s in &plan.stages {
        let state = s
            .description
            .state_format
            .map_or("stateless".to_owned(), |v| format!("stateful, state format {v}"));
        println!(
            "  stage   {} ({}, sha256 {}…) → {}",
            s.name,
            state,
            &s.component.digest()[..12],
            columns(s.output())
        );
        println!("          imports {}", s.component.imports().join(", "));
    }
    for sink in &plan.sinks {
        let what = match &sink.format {
            Format::Parquet(p) => columns(&p.schema),
            Format::Raw(_) => "the records as received, gzip".to_owned(),
            Format::Console(crate::config::ConsoleFormat::Json) => "rows as JSON lines".to_owned(),
            Format::Console(crate::config::ConsoleFormat::Table) => "rows as tables".to_owned(),
            Format::Discard => "nothing (a dry run)".to_owned(),
        };
        println!("  output  {}: {what} → {}", sink.name, sink.place);
    }
}

fn columns(schema: &arrow::datatypes::Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), f.data_type()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_summary(plan: &Plan, s: &RunSummary) {
    use std::io::Write as _;
    // A pipeline that prints its rows on stdout gets its summary on stderr.
    let console = plan.sinks.iter().any(|k| matches!(k.format, Format::Console(_)));
    let mut out: Box<dyn std::io::Write> = if console {
        Box::new(std::io::stderr())
    } else {
        Box::new(std::io::stdout())
    };
    let secs = s.elapsed.as_secs_f64().max(1e-6);
    let _ = writeln!(
        out,
        "Pipeline {} {} in {:.2} s ({:.0} rows/s).",
        plan.name,
        match (s.restarting, s.stopped) {
            (true, _) => "paused for a reload",
            (false, true) => "stopped",
            (false, false) => "finished",
        },
        secs,
        s.rows_read as f64 / secs
    );
    if let Some(epoch) = s.resumed_from {
        let _ = writeln!(out, "  resumed       from checkpoint {epoch}");
    }
    if !s.lag.is_empty() {
        let _ = writeln!(out, "  lag           {}", show_lag(&s.lag));
    }
    let _ = writeln!(
        out,
        "  read          {} rows ({:.1} MB)",
        s.rows_read,
        s.bytes_read as f64 / 1e6
    );
    for (i, (report, sink)) in s.sinks.iter().zip(&plan.sinks).enumerate() {
        let partitions = report
            .files
            .iter()
            .map(|f| f.partition.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        let what = if matches!(sink.format, Format::Raw(_)) {
            "records"
        } else {
            "rows"
        };
        let label = if i == 0 { "written      " } else { "             " };
        let name = if plan.sinks.len() > 1 {
            format!(" ({})", sink.name)
        } else {
            String::new()
        };
        match sink.format {
            Format::Discard => {
                let label = if i == 0 { "would write  " } else { "             " };
                let _ = writeln!(
                    out,
                    "  {label} {} {what}{name} (a dry run: nothing was written)",
                    report.rows
                );
                continue;
            }
            Format::Console(_) => {
                let _ = writeln!(out, "  {label} {} {what} to stdout{name}", report.rows);
                continue;
            }
            Format::Parquet(_) | Format::Raw(_) => {}
        }
        let _ = writeln!(
            out,
            "  {label} {} {what} in {} files, {partitions} partitions, under {}{name}",
            report.rows,
            report.files.len(),
            sink.place
        );
    }
    let by_stage = s
        .dead_letters
        .by_stage
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    if s.checkpoints > 0 {
        let _ = writeln!(
            out,
            "  checkpoints   {} (slowest {:.0} ms) in {}",
            s.checkpoints,
            s.slowest_checkpoint.as_secs_f64() * 1e3,
            crate::checkpoint::store::open(&plan.checkpoint).location()
        );
    }
    for (stage, bytes) in s.state_bytes.iter().filter(|_| s.checkpoints > 0) {
        let _ = writeln!(
            out,
            "  state         {stage}: {bytes} bytes saved with the last checkpoint"
        );
    }
    if s.over_budget {
        let _ = writeln!(
            out,
            "  stopped       over the dead-letter budget; the next run continues from the last checkpoint"
        );
    } else if s.restarting {
        let _ = writeln!(
            out,
            "  reload        starting again from this checkpoint with the new version of the pipeline"
        );
    } else if s.stopped {
        let _ = writeln!(
            out,
            "  stopped       on request; the next run continues from the last checkpoint"
        );
    }
    if s.dead_letters.count == 0 {
        let _ = writeln!(out, "  dead letters  0");
    } else {
        let _ = writeln!(
            out,
            "  dead letters  {} ({by_stage}) {}",
            s.dead_letters.count,
            match &plan.dead_letter {
                crate::config::Place::Console => "on stderr".to_owned(),
                other => format!("under {other}"),
            }
        );
        for reason in s.dead_letters.top.iter().take(3) {
            let _ = writeln!(out, "                {}", crate::pipeline::budget::show(reason));
        }
    }
}
