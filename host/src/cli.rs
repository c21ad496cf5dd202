//! The `sluice` command line: `run` and `validate`. Exit codes: 0 success, 1 runtime
//! failure, 2 a bad pipeline file (or bad usage).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
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
    /// Run a pipeline to the end of its input.
    Run {
        /// The pipeline file.
        pipeline: PathBuf,
    },
    /// Type-check a pipeline (every transform's config and schemas) without reading data.
    Validate {
        /// The pipeline file.
        pipeline: PathBuf,
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

fn config_failure(e: impl Into<anyhow::Error>) -> Failure {
    Failure {
        code: EXIT_CONFIG,
        error: e.into(),
    }
}

fn plan(path: &Path) -> Result<Plan, Failure> {
    let loaded = config::load(path).map_err(config_failure)?;
    let engine = Engine::new(EngineSettings::default()).map_err(|e| Failure {
        code: EXIT_RUNTIME,
        error: e.into(),
    })?;
    Plan::build(&loaded, &engine).map_err(|e: PlanError| config_failure(e))
}

/// Run the command line.
pub fn main(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Validate { pipeline } => {
            let plan = plan(&pipeline)?;
            println!("{} is valid.", pipeline.display());
            print_plan(&plan);
            Ok(())
        }
        Command::Run { pipeline } => {
            let plan = plan(&pipeline)?;
            let summary = run(&plan, &RunOptions { progress: true })
                .with_context(|| format!("pipeline {} stopped", plan.name))
                .map_err(|error| Failure {
                    code: EXIT_RUNTIME,
                    error,
                })?;
            print_summary(&plan, &summary);
            Ok(())
        }
    }
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
        "Pipeline {} finished in {:.2} s ({:.0} rows/s).",
        plan.name,
        secs,
        s.rows_read as f64 / secs
    );
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
