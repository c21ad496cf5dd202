//! The checkpoint protocol as pure decisions over state: when to place a barrier, how output
//! files are named while they are not yet committed, what a restart must do with each file
//! a checkpoint lists, which leftovers to delete, and whether a checkpoint may be applied to
//! this pipeline at all. No I/O here; `recover.rs` and the sinks carry the decisions out.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::model::{Checkpoint, FileState, OutputFile, StageState};

/// Places barriers at a fixed interval of wall time.
#[derive(Debug, Clone)]
pub struct BarrierClock {
    interval: Duration,
    last: Instant,
}

impl BarrierClock {
    /// A clock whose first barrier is due `interval` after `start`.
    pub fn new(interval: Duration, start: Instant) -> Self {
        BarrierClock { interval, last: start }
    }

    /// Whether the chunk read at `now` carries a barrier; if so the next is due an interval on.
    pub fn due(&mut self, now: Instant) -> bool {
        if now.duration_since(self.last) >= self.interval {
            self.last = now;
            true
        } else {
            false
        }
    }
}

/// Suffix of a file that is being written or waits for its checkpoint.
pub const TEMP_SUFFIX: &str = ".inprogress";
/// Suffix of a Parquet file's row-group journal (see the module doc of `checkpoint`).
pub const JOURNAL_SUFFIX: &str = ".inprogress.meta";

/// The temporary name of an output file: `dir/.name.inprogress`, hidden from readers.
pub fn temp_path(path: &str) -> String {
    match path.rsplit_once('/') {
        Some((dir, name)) => format!("{dir}/.{name}{TEMP_SUFFIX}"),
        None => format!(".{path}{TEMP_SUFFIX}"),
    }
}

/// The row-group journal beside a temporary Parquet file.
pub fn journal_path(path: &str) -> String {
    match path.rsplit_once('/') {
        Some((dir, name)) => format!("{dir}/.{name}{JOURNAL_SUFFIX}"),
        None => format!(".{path}{JOURNAL_SUFFIX}"),
    }
}

/// Whether a file name is one of ours that is not committed.
pub fn is_temporary(name: &str) -> bool {
    name.starts_with('.') && (name.ends_with(TEMP_SUFFIX) || name.ends_with(JOURNAL_SUFFIX))
}

/// What is on disk for one output file a checkpoint lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Probe {
    /// Length of its temporary file, if that exists.
    pub temp_len: Option<u64>,
    /// Length of its journal, if that exists.
    pub journal_len: Option<u64>,
    /// Whether the final file exists.
    pub in_place: bool,
}

/// What recovery does with one listed output file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Complete under its temporary name: rename into place.
    Rename(OutputFile),
    /// Cut the temporary file (and journal) back to the checkpoint's lengths, finish it so it
    /// holds exactly the checkpoint's rows, and rename into place.
    Seal {
        /// The file.
        file: OutputFile,
        /// Data length to keep.
        len: u64,
        /// Journal length to keep.
        journal_len: u64,
    },
    /// An earlier recovery (or the post-checkpoint rename) already put it in place.
    Nothing(OutputFile),
}

impl Action {
    /// The file it is about.
    pub fn file(&self) -> &OutputFile {
        match self {
            Action::Rename(f) | Action::Nothing(f) | Action::Seal { file: f, .. } => f,
        }
    }
}

/// Why a checkpoint cannot be recovered or applied. Each message says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A file the checkpoint needs is gone.
    #[error(
        "output file {path} holds rows of checkpoint {epoch} but neither it nor its temporary file exists; the output was changed behind sluice's back (run with --from-scratch to rebuild it)"
    )]
    Lost {
        /// Relative path.
        path: String,
        /// The checkpoint.
        epoch: u64,
    },
    /// A file is shorter than the checkpoint recorded as durable.
    #[error(
        "temporary file for {path} is {have} bytes but checkpoint {epoch} recorded {need} durable bytes; the output was changed behind sluice's back (run with --from-scratch to rebuild it)"
    )]
    Short {
        /// Relative path.
        path: String,
        /// Bytes found.
        have: u64,
        /// Bytes recorded.
        need: u64,
        /// The checkpoint.
        epoch: u64,
    },
    /// The checkpoint was written for another source.
    #[error(
        "the checkpoint was written by pipeline `{pipeline}` reading `{theirs}`, but this pipeline reads `{ours}`; a checkpoint is never applied to a different source. Run with --from-scratch to start over, or give this pipeline its own [checkpoint] path"
    )]
    OtherSource {
        /// The pipeline that wrote it.
        pipeline: String,
        /// Its source.
        theirs: String,
        /// This pipeline's source.
        ours: String,
    },
    /// A stage's saved state has no stateful stage of that name to go to.
    #[error(
        "the checkpoint holds state of stage `{stage}`, which this pipeline has no stateful stage called; its state would be lost. Restore the stage, or run with --from-scratch"
    )]
    OrphanState {
        /// The stage.
        stage: String,
    },
    /// A stateful stage has no saved state although the checkpoint covers input.
    #[error(
        "stateful stage `{stage}` has no state in the checkpoint (it was added or renamed since), so it would start empty in the middle of the input. Run with --from-scratch"
    )]
    MissingState {
        /// The stage.
        stage: String,
    },
}

/// Decide what recovery does with each output file the checkpoint lists.
pub fn recover_outputs(checkpoint: &Checkpoint, probe: impl Fn(&OutputFile) -> Probe) -> Result<Vec<Action>, Refusal> {
    let epoch = checkpoint.epoch;
    checkpoint
        .outputs
        .iter()
        .map(|file| {
            let found = probe(file);
            let lost = || Refusal::Lost {
                path: file.path.clone(),
                epoch,
            };
            match (file.state, found.temp_len) {
                (FileState::Sealed, Some(_)) => Ok(Action::Rename(file.clone())),
                (FileState::Open { len, journal_len }, Some(have)) => {
                    let journal_have = found.journal_len.unwrap_or(0);
                    if have < len || journal_have < journal_len {
                        let (have, need) = if have < len {
                            (have, len)
                        } else {
                            (journal_have, journal_len)
                        };
                        return Err(Refusal::Short {
                            path: file.path.clone(),
                            have,
                            need,
                            epoch,
                        });
                    }
                    Ok(Action::Seal {
                        file: file.clone(),
                        len,
                        journal_len,
                    })
                }
                (_, None) if found.in_place => Ok(Action::Nothing(file.clone())),
                (_, None) => Err(lost()),
            }
        })
        .collect()
}

/// Temporary files found on disk that no checkpoint file accounts for: the rows in them come
/// after the checkpoint and will be written again, so they are deleted.
pub fn leftovers(
    checkpoint: Option<&Checkpoint>,
    found: impl IntoIterator<Item = (String, String)>,
) -> Vec<(String, String)> {
    let keep: BTreeSet<(String, String)> = checkpoint
        .map(|c| {
            c.outputs
                .iter()
                .flat_map(|f| {
                    [
                        (f.root.clone(), temp_path(&f.path)),
                        (f.root.clone(), journal_path(&f.path)),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    found.into_iter().filter(|f| !keep.contains(f)).collect()
}

/// A stage as the running pipeline has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageIdentity {
    /// Its name.
    pub name: String,
    /// Whether it keeps state.
    pub stateful: bool,
}

/// Refuse a checkpoint taken for another source.
pub fn check_source(checkpoint: &Checkpoint, source: &str) -> Result<(), Refusal> {
    if checkpoint.source == source {
        Ok(())
    } else {
        Err(Refusal::OtherSource {
            pipeline: checkpoint.pipeline.clone(),
            theirs: checkpoint.source.clone(),
            ours: source.to_owned(),
        })
    }
}

/// What a reload changed on purpose: a restart it asks for starts added stateful stages
/// empty, drops removed ones' state, and leaves the files of removed sinks as the stopped
/// run published them. A plain restart has none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadChanges {
    /// Stateful stages the new version adds: they start empty.
    pub added: Vec<String>,
    /// Stateful stages the new version removes: their saved state is dropped.
    pub removed: Vec<String>,
    /// Sinks the new version no longer has. The run that stopped for the reload closed and
    /// published their files before its final checkpoint, so nothing of theirs is left to
    /// settle.
    pub removed_sinks: Vec<String>,
}

/// Match the checkpoint's states to the pipeline's stages: one entry per stage, `Some` for a
/// stateful stage whose state was saved. Every saved state must have a stateful stage to go
/// to, and every stateful stage must have been in the checkpoint (with or without state),
/// except for the stages `changes` names.
pub fn assign_states(
    checkpoint: &Checkpoint,
    stages: &[StageIdentity],
    changes: &ReloadChanges,
) -> Result<Vec<Option<StageState>>, Refusal> {
    let stateful_now = |name: &str| stages.iter().any(|s| s.stateful && s.name == name);
    let stateful_at_checkpoint = &checkpoint.stateful_stages;
    for name in stateful_at_checkpoint
        .iter()
        .chain(checkpoint.states.iter().map(|s| &s.stage))
    {
        if !stateful_now(name) && !changes.removed.contains(name) {
            return Err(Refusal::OrphanState { stage: name.clone() });
        }
    }
    stages
        .iter()
        .map(|stage| {
            if !stage.stateful {
                return Ok(None);
            }
            if !stateful_at_checkpoint.contains(&stage.name) {
                if changes.added.contains(&stage.name) {
                    return Ok(None);
                }
                return Err(Refusal::MissingState {
                    stage: stage.name.clone(),
                });
            }
            Ok(checkpoint.states.iter().find(|s| s.stage == stage.name).cloned())
        })
        .collect()
}

/// The epoch after the latest checkpoint (1 for the first).
pub fn next_epoch(latest: Option<&Checkpoint>) -> u64 {
    latest.map_or(1, |c| c.epoch + 1)
}
