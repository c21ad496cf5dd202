//! Where rows end up: Parquet files in Hive-style folders, and dead letters as JSON lines.
//!
//! Sinks are synchronous and owned by one thread (the pipeline's writer). Every file is
//! written under a hidden temporary name and renamed into place after it is complete and
//! synced, so a reader never sees a half-written file. Names are deterministic from the
//! input positions they start at, so a replay rewrites the same names.

pub mod dead_letter;
pub mod parquet;
pub mod partition;

use std::path::PathBuf;

/// Why a sink failed. All are external (disk) or internal (schema) failures; none is retried.
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
    /// Splitting or converting a batch failed.
    #[error("preparing a batch for the sink: {0}")]
    Arrow(arrow::error::ArrowError),
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
