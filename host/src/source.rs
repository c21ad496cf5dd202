//! Where records come from. A source cuts its input into [`Chunk`]s of framed records, each
//! numbered in input order and naming its source partition, and says where each
//! partition's reading stands after it. Sources do not decode: that is `decode`'s job, on
//! the workers.
//!
//! # Kinds
//! Each kind (`file`, `mqtt`, `datagen`, `kinesis`) lives in one module of this folder with its plan
//! (a [`SourceSpec`]: what `sluice validate` checked) and its reader (a [`Source`]). The
//! [`registry`] maps the pipeline file's `[source]` to a kind.
//!
//! # Positions
//! A position is the kind's own (a tagged JSON value per partition: a file's offset and
//! line, a shard's sequence number and sub-sequence). A chunk carries its partition's
//! position after it; the pipeline keeps the latest per partition and stores them in the
//! checkpoint without looking inside; [`Source::resume`] reads them back.

pub mod datagen;
pub mod file;
pub mod kinesis;
pub mod mqtt;
pub mod position;
pub mod registry;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use arrow::datatypes::{Field, Schema, SchemaRef};

use crate::checkpoint::SourcePosition;
use crate::config::DeclaredField;
use crate::record::Chunk;

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
    /// A checkpoint's position is not one this kind of source wrote.
    #[error("the checkpoint's position for {partition} is not a {kind} position: {message}")]
    Position {
        /// The partition.
        partition: String,
        /// The source kind.
        kind: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The MQTT connection cannot go on.
    #[error("MQTT: {0}")]
    Mqtt(#[from] mqtt::MqttError),
    /// The stream cannot be read.
    #[error("{0}")]
    Kinesis(#[from] kinesis::KinesisError),
    /// Reading failed.
    #[error("reading {path}: {error}")]
    Io {
        /// The file (or `-` for stdin).
        path: String,
        /// The I/O error.
        error: std::io::Error,
    },
}

impl SourceError {
    /// Whether trying again later may succeed (a connection, a throttled API), as opposed to
    /// a problem the user must fix.
    pub fn retryable(&self) -> bool {
        match self {
            SourceError::Io { error, .. } => matches!(
                error.kind(),
                std::io::ErrorKind::Interrupted | std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ),
            SourceError::Mqtt(e) => e.retryable(),
            SourceError::Kinesis(e) => e.retryable(),
            _ => false,
        }
    }
}

/// A source as planned: its settings checked, ready to open as often as a run needs.
pub trait SourceSpec: std::fmt::Debug + Send + Sync {
    /// The kind (`file`, `mqtt`, …).
    fn kind(&self) -> &'static str;
    /// What it reads, e.g. `file:/data/in/*.ndjson`; a checkpoint is only applied to the
    /// source that wrote it.
    fn id(&self) -> String;
    /// Whether its input can be read again from a checkpoint (stdin cannot).
    fn resumable(&self) -> bool {
        true
    }
    /// Start reading; `stop` (set on SIGTERM) ends an unbounded source's reads.
    fn open(&self, stop: &Arc<AtomicBool>) -> Result<Box<dyn Source>, SourceError>;
    /// The spec itself, for the one place that needs its kind's own settings (a leased
    /// Kinesis pipeline runs a pipeline per shard).
    fn as_any(&self) -> &dyn std::any::Any;
    /// Whether `other` reads exactly the same way (a reload keeps the running source).
    fn same_as(&self, other: &dyn SourceSpec) -> bool {
        self.kind() == other.kind() && format!("{self:?}") == format!("{other:?}")
    }
}

/// A source being read.
pub trait Source: Send {
    /// Continue from a checkpoint's position (before the first [`Source::next_chunk`]).
    fn resume(&mut self, position: &SourcePosition) -> Result<(), SourceError>;
    /// The next chunk; `None` at the end of a bounded input, or once asked to stop.
    fn next_chunk(&mut self) -> Result<Option<Chunk>, SourceError>;
    /// Whether the input has an end (files) rather than running until stopped (MQTT).
    fn bounded(&self) -> bool;
    /// For sources whose records are acknowledged once committed: the handle to do it.
    fn acknowledger(&self) -> Option<Box<dyn Acknowledge>> {
        None
    }
    /// How far behind its upstream each partition is, in milliseconds (a Kinesis shard's
    /// `MillisBehindLatest`); empty for sources that cannot tell.
    fn lag(&self) -> std::collections::BTreeMap<String, i64> {
        std::collections::BTreeMap::new()
    }
    /// Bytes of input left to read, when the source can tell (files); `None` otherwise.
    fn backlog(&self) -> Option<u64> {
        None
    }
    /// Messages read and not yet acknowledged upstream (MQTT QoS 1); `None` for sources
    /// that acknowledge nothing.
    fn in_flight(&self) -> Option<u64> {
        None
    }
}

/// Acknowledges to the upstream what checkpoints have committed.
pub trait Acknowledge: Send {
    /// What the source must keep with the checkpoint that covers chunks up to `last_seq`
    /// (stored as [`SourcePosition::state`]).
    fn persist(&self, last_seq: u64) -> Option<serde_json::Value>;
    /// The checkpoint covering chunks up to `last_seq` is durable: acknowledge them.
    fn committed(&self, last_seq: u64);
}

/// A source as `sluice validate` checked it: how to open it, and the schema its records are
/// decoded into.
#[derive(Debug, Clone)]
pub struct PlannedSource {
    /// How to open it.
    pub spec: Arc<dyn SourceSpec>,
    /// The schema records are decoded into.
    pub schema: SchemaRef,
}

/// The Arrow schema of a declared schema, in the written order.
pub fn arrow_schema(fields: &[DeclaredField]) -> SchemaRef {
    Arc::new(Schema::new(
        fields
            .iter()
            .map(|f| Field::new(&f.name, f.ty.value.data_type(), f.nullable))
            .collect::<Vec<_>>(),
    ))
}
