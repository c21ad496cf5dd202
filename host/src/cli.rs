//! The `sluice` command line: `run` and `validate`. Exit codes: 0 success, 1 runtime
//! failure, 2 a bad pipeline file (or bad usage).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use clap::{Parser, Subcommand};

use crate::config;
use crate::engine::{Engine, EngineSettings};
use crate::pipeline::run::{RunOptions, RunSummary, run};
use crate::pipeline::{Plan, PlanError};

/// Exit code for a pipeline file that does not validate.
pub const EXIT_CONFIG: u8 = 2;
/// Exit code for a failure while running.
pub const EXIT_RUNTIME: u8 = 1;

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
    },
    /// Type-check pipelines (every transform's config and schemas) without reading data.
    Validate {
        /// The pipeline files.
        #[arg(required = true)]
        pipelines: Vec<PathBuf>,
    },
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

/// Plan every file with one engine; any file's problems make the whole call a config failure.
fn plan_all(paths: &[PathBuf], settings: EngineSettings) -> Result<Vec<Plan>, Failure> {
    let engine = Engine::new(settings).map_err(|e| Failure {
        code: EXIT_RUNTIME,
        error: e.into(),
    })?;
    let mut plans = Vec::new();
    let mut problems = Vec::new();
    for path in paths {
        match config::load(path)
            .map_err(anyhow::Error::from)
            .and_then(|loaded| Plan::build(&loaded, &engine).map_err(|e: PlanError| anyhow::Error::from(e)))
        {
            Ok(plan) => plans.push(plan),
            Err(e) => problems.push(format!("{e:#}")),
        }
    }
    if problems.is_empty() {
        Ok(plans)
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
            for (path, plan) in pipelines.iter().zip(plan_all(&pipelines, EngineSettings::default())?) {
                println!("{} is valid.", path.display());
                print_plan(&plan);
            }
            Ok(())
        }
        Command::Run {
            pipelines,
            from_scratch,
            unenforced_limits,
        } => {
            if unenforced_limits {
                tracing::warn!(
                    "Running without call deadlines or memory caps (--unenforced-limits): benchmarking only."
                );
            }
            let settings = EngineSettings {
                enforce_limits: !unenforced_limits,
                ..EngineSettings::default()
            };
            let plans = plan_all(&pipelines, settings)?;
            let options = RunOptions {
                progress: plans.len() == 1,
                from_scratch,
                stop: Some(stop_on_signals().map_err(|e| Failure {
                    code: EXIT_RUNTIME,
                    error: anyhow::anyhow!("cannot install signal handlers: {e}"),
                })?),
            };
            let results: Vec<_> = std::thread::scope(|scope| {
                let handles: Vec<_> = plans.iter().map(|plan| scope.spawn(|| run(plan, &options))).collect();
                handles.into_iter().map(|h| h.join()).collect()
            });
            let mut failures = Vec::new();
            for (plan, result) in plans.iter().zip(results) {
                match result {
                    Ok(Ok(summary)) => print_summary(plan, &summary),
                    Ok(Err(e)) => failures.push(format!("pipeline {} stopped: {e:#}", plan.name)),
                    Err(_) => failures.push(format!("pipeline {} stopped: its runner panicked", plan.name)),
                }
            }
            if failures.is_empty() {
                Ok(())
            } else {
                Err(Failure {
                    code: EXIT_RUNTIME,
                    error: anyhow::anyhow!(failures.join("\n")),
                })
            }
        }
    }
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
    println!("  output  {} → {}", columns(&plan.sink.schema), plan.sink.dir.display());
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
    let secs = s.elapsed.as_secs_f64().max(1e-6);
    println!(
        "Pipeline {} {} in {:.2} s ({:.0} rows/s).",
        plan.name,
        if s.stopped { "stopped" } else { "finished" },
        secs,
        s.rows_read as f64 / secs
    );
    if let Some(epoch) = s.resumed_from {
        println!("  resumed       from checkpoint {epoch}");
    }
    println!(
        "  read          {} rows ({:.1} MB)",
        s.rows_read,
        s.bytes_read as f64 / 1e6
    );
    println!(
        "  written       {} rows in {} files, {} partitions, under {}",
        s.rows_written,
        s.files.len(),
        s.partitions(),
        plan.sink.dir.display()
    );
    let by_stage = s
        .dead_letters
        .by_stage
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    if s.checkpoints > 0 {
        println!(
            "  checkpoints   {} (slowest {:.0} ms) in {}",
            s.checkpoints,
            s.slowest_checkpoint.as_secs_f64() * 1e3,
            plan.checkpoint.path.display()
        );
    }
    for (stage, bytes) in &s.state_bytes {
        println!("  state         {stage}: {bytes} bytes saved with the last checkpoint");
    }
    if s.stopped {
        println!("  stopped       on request; the next run continues from the last checkpoint");
    }
    if s.dead_letters.count == 0 {
        println!("  dead letters  0");
    } else {
        println!(
            "  dead letters  {} ({by_stage}) under {}",
            s.dead_letters.count,
            plan.dead_letter_dir.display()
        );
    }
}
