//! The pipeline's sinks: each `[[sink]]` checked against the output it takes (its input's
//! schema, its partition column), and opened for a run together with the dead letters.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;

use super::stage_plan::StagePlan;
use crate::config::{
    CheckpointConfig, ConsoleFormat, Diagnostic, Located, PartitionConfig, PipelineConfig, Place, SinkConfig,
    SinkFormat, StoreKind,
};
use crate::sink::console::{ConsoleSink, Stream, Terminal};
use crate::sink::dead_letter::DeadLetterSink;
use crate::sink::parquet::{ParquetSettings, ParquetSink};
use crate::sink::partition::{Partitioner, default_template, plan as partitioner};
use crate::sink::raw::{RawSettings, RawSink};
use crate::sink::recover::Target;
use crate::sink::storage::{Lane, LocalDir, S3Dir, Storage};
use crate::sink::{Sink, SinkError, TwoPhase};

/// What a sink takes from the pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tap {
    /// The records exactly as the source framed them, before decoding.
    Source,
    /// The end of the chain: the last stage's `main` output (the decoded rows without
    /// stages).
    Main,
    /// An output of a stage (by index): `main` of a stage that is not the last, or a named
    /// output such as `rejected`.
    Output {
        /// The stage.
        stage: usize,
        /// The output's name.
        output: String,
    },
}

/// How a sink writes.
#[derive(Debug, Clone, PartialEq)]
pub enum Format {
    /// Parquet files (with the file schema).
    Parquet(ParquetSettings),
    /// The raw archive.
    Raw(RawSettings),
    /// Printed to stdout.
    Console(ConsoleFormat),
    /// Counted and dropped (`sluice run --dry-run`).
    Discard,
}

/// One sink, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkPlan {
    /// Its name.
    pub name: String,
    /// What it takes.
    pub tap: Tap,
    /// How it writes.
    pub format: Format,
    /// How rows are spread over folders.
    pub partitioner: Partitioner,
    /// Where its files go.
    pub place: Place,
    /// Bytes per multipart part (S3).
    pub part_bytes: usize,
}

impl SinkPlan {
    /// This sink as a dry run has it: it counts what it is given and keeps nothing.
    pub fn dry(&mut self) {
        self.format = Format::Discard;
        self.place = Place::Console;
    }
}

/// Check every sink against the outputs of `stages` (and the decoded `input`).
pub fn plan(
    cfg: &PipelineConfig,
    stages: &[Arc<StagePlan>],
    input: &SchemaRef,
    diags: &mut Vec<Diagnostic>,
) -> Option<Vec<SinkPlan>> {
    let mut plans = Vec::new();
    for s in &cfg.sinks {
        let tap = tap(s.input.as_ref(), stages, diags);
        let schema = tap.as_ref().and_then(|t| tap_schema(t, stages, input));
        let partitioner = match (&tap, &schema) {
            (Some(Tap::Source), _) => raw_partitioner(s, diags),
            (Some(_), Some(schema)) => partitioner(&s.partition, schema, diags),
            _ => None,
        };
        let format = match (s.format, &tap, &schema, &partitioner) {
            (SinkFormat::Console(style), Some(_), _, _) => Some(Format::Console(style)),
            (SinkFormat::Raw, Some(Tap::Source), _, _) => Some(Format::Raw(RawSettings {
                target_file_bytes: s.target_file_bytes,
                max_file_age: s.max_file_age,
            })),
            (SinkFormat::Raw, Some(_), _, _) => {
                let (span, key) = at_input(s);
                diags.push(Diagnostic {
                    span,
                    key,
                    message: "a `raw` sink archives the records as received: set `input = \"source\"`".into(),
                });
                None
            }
            (SinkFormat::Parquet, Some(Tap::Source), _, _) => {
                let (span, key) = at_input(s);
                diags.push(Diagnostic {
                    span,
                    key,
                    message: "the records as received are not rows: a sink with `input = \"source\"` needs `format = \"raw\"`".into(),
                });
                None
            }
            (SinkFormat::Parquet, Some(_), Some(schema), Some(p)) => Some(Format::Parquet(ParquetSettings {
                schema: p.file_schema(schema),
                compression: s.compression,
                row_group_rows: s.row_group_rows,
                target_file_bytes: s.target_file_bytes,
                max_file_age: s.max_file_age,
            })),
            _ => None,
        };
        if let (Some(tap), Some(format), Some(partitioner)) = (tap, format, partitioner) {
            plans.push(SinkPlan {
                name: s.name.value.clone(),
                tap,
                format,
                partitioner,
                place: s.place.clone(),
                part_bytes: s.part_bytes,
            });
        }
    }
    unrouted(cfg, stages, &plans, diags);
    (plans.len() == cfg.sinks.len()).then_some(plans)
}

fn at_input(s: &SinkConfig) -> (std::ops::Range<usize>, String) {
    match &s.input {
        Some(i) => (i.span.clone(), i.key.clone()),
        None => (s.name.span.clone(), s.name.key.clone()),
    }
}

/// Resolve `input`.
fn tap(input: Option<&Located<String>>, stages: &[Arc<StagePlan>], diags: &mut Vec<Diagnostic>) -> Option<Tap> {
    let Some(input) = input else {
        return Some(Tap::Main);
    };
    if input.value == "source" {
        return Some(Tap::Source);
    }
    let (stage, output) = input
        .value
        .split_once('.')
        .unwrap_or((input.value.as_str(), sluice_contract::MAIN));
    let fail = |diags: &mut Vec<Diagnostic>, message: String| {
        diags.push(Diagnostic {
            span: input.span.clone(),
            key: input.key.clone(),
            message,
        });
        None
    };
    let Some(index) = stages.iter().position(|s| s.name == stage) else {
        let names: Vec<&str> = stages.iter().map(|s| s.name.as_str()).collect();
        return fail(
            diags,
            format!(
                "no transform called `{stage}`: expected \"source\", a transform's name ({}), or `transform.output`",
                names.join(", ")
            ),
        );
    };
    let outputs: Vec<&str> = stages[index]
        .description
        .outputs
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    if !outputs.contains(&output) {
        return fail(
            diags,
            format!(
                "transform `{stage}` has no output `{output}`; it declares {}",
                outputs.join(", ")
            ),
        );
    }
    if output == sluice_contract::MAIN && index + 1 == stages.len() {
        return Some(Tap::Main);
    }
    Some(Tap::Output {
        stage: index,
        output: output.to_owned(),
    })
}

/// The schema of the rows a tap gives (`None` for the source's records).
fn tap_schema(tap: &Tap, stages: &[Arc<StagePlan>], input: &SchemaRef) -> Option<SchemaRef> {
    match tap {
        Tap::Source => None,
        Tap::Main => Some(stages.last().map_or(input, |s| s.output()).clone()),
        Tap::Output { stage, output } => stages[*stage]
            .description
            .outputs
            .iter()
            .find(|(n, _)| n == output)
            .map(|(_, s)| s.clone()),
    }
}

/// Outputs besides `main` and `rejected` go nowhere unless a sink takes them: refuse that.
fn unrouted(cfg: &PipelineConfig, stages: &[Arc<StagePlan>], sinks: &[SinkPlan], diags: &mut Vec<Diagnostic>) {
    for (index, stage) in stages.iter().enumerate() {
        for (name, _) in &stage.description.outputs {
            let taken = sinks.iter().any(|s| {
                s.tap
                    == (Tap::Output {
                        stage: index,
                        output: name.clone(),
                    })
            });
            if name != sluice_contract::MAIN && name != sluice_contract::REJECTED && !taken {
                let t = cfg.transforms.iter().find(|t| t.name.value == stage.name);
                if let Some(t) = t {
                    diags.push(Diagnostic {
                        span: t.plugin.span.clone(),
                        key: t.plugin.key.clone(),
                        message: format!(
                            "transform `{}` declares an output `{name}` that no sink takes: add a [[sink]] with input = \"{}.{name}\"",
                            stage.name, stage.name
                        ),
                    });
                }
            }
        }
    }
}

/// The raw archive's folders: ingest time only (it has no columns to look at).
fn raw_partitioner(s: &SinkConfig, diags: &mut Vec<Diagnostic>) -> Option<Partitioner> {
    match &s.partition {
        PartitionConfig::None => Some(Partitioner::None),
        PartitionConfig::IngestTime { granularity, template } => Some(Partitioner::IngestTime {
            template: template
                .as_ref()
                .map_or_else(|| default_template("ingest_", *granularity), |t| t.value.clone()),
        }),
        _ => {
            diags.push(Diagnostic {
                span: s.name.span.clone(),
                key: format!("{}.partition", s.name.key),
                message: "the raw archive is partitioned by ingest time only (`by = \"ingest_time\"` or a template)"
                    .into(),
            });
            None
        }
    }
}

/// Every place the pipeline writes or keeps things in but `own`, so that no sink scans
/// another's files (or the checkpoints) as its own: local folders, and S3 prefixes as
/// `bucket/prefix`.
fn others(sinks: &[SinkPlan], dead_letter: &Place, checkpoint: &CheckpointConfig, own: &Place) -> Vec<Place> {
    let store = match &checkpoint.store {
        StoreKind::File => Place::Local(checkpoint.path.clone()),
        StoreKind::S3(loc) => Place::S3(loc.clone()),
    };
    sinks
        .iter()
        .map(|s| s.place.clone())
        .chain([dead_letter.clone(), store])
        .filter(|p| p != own)
        .collect()
}

/// The storage of a place; `others` are the other places of the pipeline. Those inside it
/// are not scanned as its own; those around it (dead letters under the sink's prefix, seen
/// from the dead letters) hide nothing.
fn storage(
    place: &Place,
    part_bytes: usize,
    others: Vec<Place>,
    lane: Option<&str>,
) -> Result<Box<dyn Storage>, SinkError> {
    let skip: Vec<Place> = others.into_iter().filter(|p| place.holds(p)).collect();
    let shared: Box<dyn Storage> = match place {
        Place::Console => Box::new(Terminal(Stream::Stderr)),
        Place::Local(dir) => Box::new(LocalDir::new(
            dir.clone(),
            skip.iter().filter_map(|p| p.local().map(PathBuf::from)).collect(),
        )),
        Place::S3(loc) => {
            let skip = skip
                .iter()
                .filter_map(|p| match p {
                    Place::S3(other) => Some(other.prefix.clone()),
                    Place::Local(_) | Place::Console => None,
                })
                .collect();
            Box::new(S3Dir::new(loc.clone(), part_bytes, skip)?)
        }
    };
    Ok(match lane {
        Some(name) if !matches!(place, Place::Console) => Box::new(Lane::new(shared, name)),
        _ => shared,
    })
}

/// The pipeline's sinks, opened for a run, and its dead letters.
pub struct Opened {
    /// Each sink with what it takes, in the pipeline file's order.
    pub sinks: Vec<(Tap, Box<dyn Sink>)>,
    /// The dead letters.
    pub dead: DeadLetterSink,
}

/// Open the sinks; `immediate` publishes complete files at once (runs without checkpoints);
/// a `lane` (a leased shard) writes and recovers only files named after it.
pub fn open(
    sinks: &[SinkPlan],
    dead_letter: &Place,
    checkpoint: &CheckpointConfig,
    immediate: bool,
    lane: Option<&str>,
) -> Result<Opened, SinkError> {
    let mut opened: Vec<(Tap, Box<dyn Sink>)> = Vec::new();
    for s in sinks {
        match s.format {
            Format::Console(style) => {
                opened.push((s.tap.clone(), Box::new(ConsoleSink::new(s.name.clone(), style))));
                continue;
            }
            Format::Discard => {
                opened.push((s.tap.clone(), Box::new(ConsoleSink::discarding(s.name.clone()))));
                continue;
            }
            Format::Parquet(_) | Format::Raw(_) => {}
        }
        let storage = storage(
            &s.place,
            s.part_bytes,
            others(sinks, dead_letter, checkpoint, &s.place),
            lane,
        )?;
        let sink: Box<dyn Sink> = match &s.format {
            Format::Parquet(settings) => Box::new(ParquetSink::new(
                s.name.clone(),
                storage,
                settings.clone(),
                s.partitioner.clone(),
                immediate,
            )?),
            Format::Raw(settings) => Box::new(RawSink::new(
                s.name.clone(),
                storage,
                settings.clone(),
                s.partitioner.clone(),
                immediate,
            )),
            Format::Console(_) | Format::Discard => unreachable!("console sinks were opened above"),
        };
        opened.push((s.tap.clone(), sink));
    }
    // Dead letters are few: the smallest parts will do.
    let dead_storage = storage(
        dead_letter,
        crate::sink::storage::s3::MIN_PART_BYTES,
        others(sinks, dead_letter, checkpoint, dead_letter),
        lane,
    )?;
    Ok(Opened {
        sinks: opened,
        dead: DeadLetterSink::new(dead_storage, immediate),
    })
}

impl Opened {
    /// Every output in the commit protocol: the sinks, then the dead letters.
    pub fn all(&mut self) -> impl Iterator<Item = &mut dyn TwoPhase> {
        self.sinks
            .iter_mut()
            .map(|(_, s)| -> &mut dyn TwoPhase { s.as_mut() })
            .chain(std::iter::once(&mut self.dead as &mut dyn TwoPhase))
    }

    /// What recovery settles: every sink and the dead letters.
    pub fn targets(&self) -> Vec<Target<'_>> {
        self.sinks
            .iter()
            .map(|(_, s)| -> &dyn TwoPhase { s.as_ref() })
            .chain([&self.dead as &dyn TwoPhase])
            .map(|s| Target {
                name: s.name(),
                storage: s.storage(),
                sealing: s.sealing(),
            })
            .collect()
    }
}
