//! Where records come from. A source cuts its input into [`Chunk`]s of raw records, each
//! numbered in input order and carrying the position it covers (for dead letters now and
//! checkpoints later). Sources do not decode: that is `decode`'s job, on the workers.

pub mod file;
pub mod mqtt;

use std::sync::Arc;

/// What a pipeline reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inputs {
    /// Standard input.
    Stdin,
    /// These files, in reading order.
    Files(Vec<std::path::PathBuf>),
    /// An MQTT subscription.
    Mqtt(Arc<mqtt::MqttSettings>),
}

/// Why a source failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// No input matched the configured path.
    #[error("no input files match {0}")]
    NoFiles(String),
    /// The path is not a valid glob pattern.
    #[error("invalid glob pattern {pattern}: {message}")]
    BadPattern {
        /// The pattern.
        pattern: String,
        /// What is wrong with it.
        message: String,
    },
    /// The input no longer matches the position a checkpoint recorded.
    #[error(
        "cannot resume {path} at byte {offset}: the file is now {len} bytes, so it was replaced or truncated since the checkpoint. Run with --from-scratch to read everything again"
    )]
    Shrunk {
        /// The file.
        path: String,
        /// The checkpoint's offset.
        offset: u64,
        /// Its length now.
        len: u64,
    },
    /// The MQTT connection cannot go on (refused, bad TLS material, refused subscription).
    #[error("MQTT: {0}")]
    Mqtt(String),
    /// Reading failed.
    #[error("reading {path}: {error}")]
    Io {
        /// The file (or `-` for stdin).
        path: String,
        /// The I/O error.
        error: std::io::Error,
    },
}

/// The input positions a chunk covers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceSpan {
    /// The file (as given or found), `-` for stdin.
    pub file: Arc<str>,
    /// 1-based line number of the first record.
    pub first_line: u64,
    /// 1-based line number of the last record.
    pub last_line: u64,
    /// Byte offset of the first record in the file.
    pub start_offset: u64,
    /// Byte offset just past the last record.
    pub end_offset: u64,
}

/// Raw newline-delimited records read as one unit, in input order.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// Position of this chunk in the whole input, from 0.
    pub seq: u64,
    /// What it covers.
    pub span: SourceSpan,
    /// The records, each ending with `\n`.
    pub data: Vec<u8>,
    /// When the chunk was read, microseconds since the epoch (ingest-time partitions).
    pub ingest_micros: i64,
    /// A checkpoint is taken right after this chunk (set by the pipeline, not the source).
    pub barrier: bool,
    /// The plan generation it is processed under (set by the pipeline; see `reload`).
    pub generation: u64,
    /// The topic of each record (line), for message sources; empty for files.
    pub topics: Vec<Arc<str>>,
    /// Records the source refused before decoding (e.g. oversized messages): dead letters.
    pub rejected: Vec<crate::decode::BadRecord>,
}

/// The source a pipeline reads, whichever kind it is.
#[derive(Debug)]
pub enum AnySource {
    /// Files or stdin.
    File(file::FileSource),
    /// An MQTT subscription.
    Mqtt(Box<mqtt::MqttSource>),
}

impl AnySource {
    /// The source for `inputs`; `stop` (set on SIGTERM) ends an unbounded source's reads.
    pub fn open(
        inputs: &Inputs,
        batch_rows: usize,
        stop: &Arc<std::sync::atomic::AtomicBool>,
    ) -> Result<Self, SourceError> {
        Ok(match inputs {
            Inputs::Mqtt(settings) => AnySource::Mqtt(Box::new(mqtt::MqttSource::new(settings.clone(), stop.clone())?)),
            other => AnySource::File(file::FileSource::new(other.clone(), batch_rows)),
        })
    }

    /// Continue from a checkpoint's position.
    pub fn resume(&mut self, position: &crate::checkpoint::SourcePosition) -> Result<(), SourceError> {
        match self {
            AnySource::File(f) => f.resume(position),
            AnySource::Mqtt(m) => m.resume(position),
        }
    }

    /// The next chunk; `None` at the end of a bounded input, or once asked to stop.
    pub fn next_chunk(&mut self) -> Result<Option<Chunk>, SourceError> {
        match self {
            AnySource::File(f) => f.next_chunk(),
            AnySource::Mqtt(m) => m.next_chunk(),
        }
    }

    /// Whether the input has an end (files) rather than running until stopped (MQTT).
    pub fn bounded(&self) -> bool {
        matches!(self, AnySource::File(_))
    }

    /// For sources whose messages are acknowledged once committed: the handle to do it.
    pub fn acknowledger(&self) -> Option<mqtt::Acknowledger> {
        match self {
            AnySource::File(_) => None,
            AnySource::Mqtt(m) => (m.settings().qos == 1).then(|| m.acknowledger()),
        }
    }
}
