//! What a run is asked to do and what it did: options, errors, summary.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::reload::watch::{NextPlan, ReloadSettings};
use super::stage::WorkerError;
use crate::checkpoint::protocol::ReloadChanges;
use crate::sink::dead_letter::DeadLetterSummary;
use crate::sink::recover::RecoverError;
use crate::sink::{SinkError, SinkReport, WrittenFile};
use crate::source::SourceError;

/// How a run behaves.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Show a progress line on stderr (when it is a terminal).
    pub progress: bool,
    /// Ignore the checkpoint and read the input from the beginning.
    pub from_scratch: bool,
    /// Set (e.g. by a signal handler) to stop at the next chunk boundary with a checkpoint.
    pub stop: Option<Arc<AtomicBool>>,
    /// Watch the pipeline file and its components, and swap in changed versions.
    pub reload: Option<ReloadSettings>,
    /// The stateful stages and sinks the reload that asked for this run added or removed.
    pub reload_changes: ReloadChanges,
    /// What `sluice status` serves, when it outlives this run (the restarts of a
    /// restart-to-apply reload keep the reload history in it); a run of its own otherwise.
    pub status: Option<super::reload::status::SharedStatus>,
    /// Where each stage's component comes from (`stock:map`, a file), for `sluice status`
    /// when the run does not watch its files (a watching run takes them from `reload`).
    pub components: Vec<String>,
}

/// Why a run stopped before the end of its input.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Reading the input failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A worker could not continue (a transform cannot be instantiated, halted, was
    /// quarantined, refused its state).
    #[error(transparent)]
    Worker(#[from] WorkerError),
    /// A thread of the run could not start, or died.
    #[error("{0}")]
    Thread(String),
    /// Writing output failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// A checkpoint could not be read, applied or written.
    #[error("checkpoint {location}: {message}")]
    Checkpoint {
        /// The checkpoint folder.
        location: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// Too many records went to dead letters (`max_dead_letter_ratio`), or, with no budget,
    /// nothing was written while records went to dead letters. Exit code 3.
    #[error("{message}")]
    DeadLetters {
        /// The counts and the most common reasons.
        message: String,
        /// At the end of a run, what it did (printed before the error).
        summary: Option<Box<RunSummary>>,
    },
    /// Settling the output of an interrupted run failed.
    #[error("recovering the output of an interrupted run: {0}")]
    Recover(#[from] RecoverError),
}

/// What a finished run did.
#[derive(Debug)]
pub struct RunSummary {
    /// Input lines that held a record.
    pub rows_read: u64,
    /// Input bytes.
    pub bytes_read: u64,
    /// Rows written by the first sink.
    pub rows_written: u64,
    /// Files the first sink published.
    pub files: Vec<WrittenFile>,
    /// What every sink wrote, in the pipeline file's order.
    pub sinks: Vec<SinkReport>,
    /// Dead letters written.
    pub dead_letters: DeadLetterSummary,
    /// Wall time.
    pub elapsed: Duration,
    /// The checkpoint this run resumed from.
    pub resumed_from: Option<u64>,
    /// Checkpoints this run wrote, and the slowest one's duration.
    pub checkpoints: u64,
    /// Duration of the slowest checkpoint.
    pub slowest_checkpoint: Duration,
    /// The run was asked to stop before the end of its input.
    pub stopped: bool,
    /// It stopped because its dead letters went over `max_dead_letter_ratio`.
    pub over_budget: bool,
    /// Per source partition, milliseconds behind the upstream's tip at the end (Kinesis).
    pub lag: std::collections::BTreeMap<String, i64>,
    /// Size of each stateful stage's final snapshot, in bytes.
    pub state_bytes: Vec<(String, usize)>,
    /// A reload asked to start again from the final checkpoint with this plan.
    pub restart_with: Option<NextPlan>,
    /// It stopped for a reload that starts it again with a new plan (set by the restarts
    /// loop once it took `restart_with`).
    pub restarting: bool,
}

impl RunSummary {
    /// Distinct partition folders written.
    pub fn partitions(&self) -> usize {
        self.files
            .iter()
            .map(|f| f.partition.as_str())
            .collect::<BTreeSet<_>>()
            .len()
    }
}
