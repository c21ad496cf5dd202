//! Where rows end up: Parquet files in Hive-style folders, the raw archive, dead letters.
//!
//! Every sink follows one two-phase protocol ([`Sink`]), over a small [`storage::Storage`]:
//! 1. [`Sink::write`] puts rows (or raw records) into files under temporary names;
//! 2. [`Sink::pre_commit`] makes everything written so far durable and lists the files
//!    that hold it ([`OutputFile`]s, recorded in the checkpoint);
//! 3. [`Sink::commit`], once the checkpoint is durable, publishes the files that were
//!    complete under their final names;
//! 4. on restart, [`recover::recover`] settles the files the latest checkpoint lists
//!    (publishes the complete ones, cuts the open ones back to the checkpoint and finishes
//!    them) and deletes every other temporary file.
//!
//! Sinks are synchronous and owned by one thread (the pipeline's writer). A reader never
//! sees a half-written file. Names are deterministic from the input positions they start at,
//! so a replay rewrites the same names.

mod completed;
pub mod console;
pub mod dead_letter;
pub mod parquet;
pub mod partition;
pub mod raw;
pub mod recover;
pub mod storage;

use std::path::PathBuf;

use arrow::array::RecordBatch;

use crate::checkpoint::OutputFile;

/// Why a sink failed: external (disk, object store) or internal (schema) failures. Object store
/// calls have been retried already when they fail here.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Creating, writing, syncing or renaming a file failed.
    #[error("{action} {path}: {error}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The Parquet writer refused the data.
    #[error("writing Parquet {path}: {error}")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The writer's error.
        error: ::parquet::errors::ParquetError,
    },
    /// An object store call failed (after retrying what may pass).
    #[error("{action} {what}: {message}")]
    Remote {
        /// What was being done.
        action: &'static str,
        /// The object or prefix (`s3://bucket/key`).
        what: String,
        /// What the store answered.
        message: String,
    },
    /// Splitting or converting a batch failed.
    #[error("preparing a batch for the sink: {0}")]
    Arrow(arrow::error::ArrowError),
}

impl SinkError {
    /// Whether trying again may succeed (a full disk, a throttled store) rather than the
    /// data or the settings being at fault.
    pub fn retryable(&self) -> bool {
        matches!(self, SinkError::Io { error, .. } if matches!(error.kind(),
            std::io::ErrorKind::Interrupted | std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock))
    }
}

pub(crate) fn io_err(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> SinkError {
    let path = path.into();
    move |error| SinkError::Io { action, path, error }
}

impl From<arrow::error::ArrowError> for SinkError {
    fn from(e: arrow::error::ArrowError) -> Self {
        SinkError::Arrow(e)
    }
}

/// Sync a folder so a rename inside it is durable.
pub(crate) fn sync_dir(dir: &std::path::Path) -> Result<(), SinkError> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io_err("syncing folder", dir))
}

/// The deterministic name of an output file: the input position (batch sequence number and
/// the output's index within that batch) of its first rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FileStart {
    /// Sequence number of the input batch.
    pub seq: u64,
    /// Index of the emitted batch within that input batch.
    pub part: u32,
}

impl FileStart {
    /// `part-<seq>-<part>` with fixed widths, so names sort in input order.
    pub fn stem(&self) -> String {
        format!("part-{:012}-{:04}", self.seq, self.part)
    }
}

/// What a sink is given to write.
#[derive(Debug, Clone, Copy)]
pub enum SinkInput<'a> {
    /// Rows of the sink's input schema.
    Rows(&'a RecordBatch),
    /// Records exactly as the source framed them, each followed by `\n`.
    Records {
        /// The records.
        data: &'a [u8],
        /// How many.
        count: usize,
    },
}

/// Where in the input a write belongs.
#[derive(Debug, Clone, Copy)]
pub struct WriteAt {
    /// Names a file opened for these rows.
    pub start: FileStart,
    /// When the rows' chunk was read (ingest-time folders).
    pub ingest_micros: i64,
}

/// How recovery finishes a file that was open at the checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sealing {
    /// Cut it back and write a footer from its journal (Parquet).
    Footer,
    /// Cut it back: what remains is a valid file (JSON lines, gzip members).
    CutBack,
}

/// A file a sink has published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    /// Final path.
    pub path: PathBuf,
    /// Partition folder, relative to the sink root.
    pub partition: String,
    /// Rows (or records) in the file.
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
}

/// What a sink wrote in this run.
#[derive(Debug, Clone)]
pub struct SinkReport {
    /// The sink's name.
    pub name: String,
    /// Where its files are.
    pub location: String,
    /// Rows (or records) written.
    pub rows: u64,
    /// Files published.
    pub files: Vec<WrittenFile>,
}

/// The commit protocol's side of a sink (see the module doc): every output, dead letters
/// included, takes part in each checkpoint through this.
pub trait TwoPhase: Send {
    /// Its name in the pipeline (and in checkpoints).
    fn name(&self) -> &str;
    /// How recovery finishes its open files.
    fn sealing(&self) -> Sealing;
    /// Its storage.
    fn storage(&self) -> &dyn Storage;
    /// Make everything written durable; the files that hold it, for the checkpoint.
    fn pre_commit(&mut self) -> Result<Vec<OutputFile>, SinkError>;
    /// The checkpoint is durable: publish the files it listed as complete.
    fn commit(&mut self) -> Result<(), SinkError>;
    /// Complete every open file (published now, or at the next commit).
    fn close_all(&mut self) -> Result<(), SinkError>;
    /// What it wrote.
    fn report(&self) -> SinkReport;
}

/// A sink of the pipeline file: rows (or the source's records) in, files out.
pub trait Sink: TwoPhase {
    /// Write rows or records.
    fn write(&mut self, input: SinkInput<'_>, at: WriteAt) -> Result<(), SinkError>;

    /// Rows of `batch` this sink cannot write whatever it does (a partition value too long
    /// for a folder name), with the reason: the pipeline sends them to dead letters and
    /// writes the rest, so no single record can stop it.
    fn misfits(&self, batch: &RecordBatch) -> Result<Vec<(u32, String)>, SinkError> {
        let _ = batch;
        Ok(Vec::new())
    }
}

pub use storage::Storage;
