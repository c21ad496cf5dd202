//! GROUND FLOOR: raw records as sources hand them over, before anything is decoded.
//!
//! A [`Chunk`] is a run of records from one source partition (a file, a subscription, a
//! shard), numbered in input order. Records are framed by the source, not by newlines: the
//! chunk says where each record ends, so a record that contains `\n` stays one record.
//! Decoders, workers and sinks import this module, never `source/`.

use std::sync::Arc;

/// Where one record came from, for dead letters and metadata columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOrigin {
    /// A line of a file (or of stdin, `-`).
    Line {
        /// The file as found.
        file: Arc<str>,
        /// 1-based line number.
        line: u64,
        /// Byte offset of the line in the file.
        offset: u64,
    },
    /// A message of a subscription.
    Message {
        /// The broker (its URL).
        broker: Arc<str>,
        /// The topic it was published to.
        topic: Arc<str>,
    },
    /// A record of a stream shard.
    Shard {
        /// The shard.
        shard: Arc<str>,
        /// Its sequence number (up to 129 digits, so kept as text).
        sequence: Arc<str>,
        /// The sub-sequence of a record inside an aggregated record.
        sub_sequence: Option<u64>,
        /// Its partition key (a KPL user record's own).
        partition_key: Arc<str>,
        /// When the stream received it, µs since the epoch.
        arrival_micros: Option<i64>,
    },
    /// A generated record.
    Generated {
        /// The generator's partition.
        partition: Arc<str>,
        /// The record's index in that partition, from 0.
        index: u64,
    },
}

impl RecordOrigin {
    /// The origin as a JSON object, as dead letters carry it.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            RecordOrigin::Line { file, line, offset } => json!({"file": &**file, "line": line, "offset": offset}),
            RecordOrigin::Message { broker, topic } => json!({"broker": &**broker, "topic": &**topic}),
            RecordOrigin::Shard {
                shard,
                sequence,
                sub_sequence,
                partition_key,
                ..
            } => match sub_sequence {
                Some(sub) => json!({"shard": &**shard, "sequence": &**sequence, "sub_sequence": sub,
                    "partition_key": &**partition_key}),
                None => json!({"shard": &**shard, "sequence": &**sequence, "partition_key": &**partition_key}),
            },
            RecordOrigin::Generated { partition, index } => json!({"partition": &**partition, "index": index}),
        }
    }
}

/// A record that could not be decoded (or that the source refused), with where it was and
/// why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRecord {
    /// Where it came from.
    pub origin: RecordOrigin,
    /// Its index within its chunk (dead letters keep chunk order).
    pub index: usize,
    /// The raw bytes.
    pub raw: Vec<u8>,
    /// Why it was refused.
    pub reason: String,
}

/// The input a chunk covers, for messages and for dead letters of whole batches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceSpan {
    /// The source partition: the file (as given or found, `-` for stdin), the broker, the
    /// shard.
    pub file: Arc<str>,
    /// 1-based number of the first record in the partition (a line for files).
    pub first_line: u64,
    /// 1-based number of the last record.
    pub last_line: u64,
    /// Input bytes before the chunk, in the partition.
    pub start_offset: u64,
    /// Input bytes up to the end of the chunk.
    pub end_offset: u64,
}

/// How each record of a chunk names its origin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Origins {
    /// Consecutive lines of `span.file` from `span.first_line`, at `span.start_offset`.
    #[default]
    Lines,
    /// One origin per record.
    Each(Vec<RecordOrigin>),
    /// Generated records of partition `span.file`, numbered from `span.first_line - 1`.
    Generated,
}

/// Something that happened to a source partition, in input order with the chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionEvent {
    /// The source started reading this partition; its records follow in later chunks.
    /// Until it has delivered event time it holds event-time watermarks back.
    Opened(Arc<str>),
    /// The partition delivers nothing more (a file read to its end, a closed shard).
    Ended(Arc<str>),
}

/// Raw records read as one unit, in input order, from one partition.
#[derive(Debug, Clone, Default)]
pub struct Chunk {
    /// Position of this chunk in the whole input, from 0 (output names follow it).
    pub seq: u64,
    /// What it covers (`span.file` names the partition).
    pub span: SourceSpan,
    /// The records, each followed by `\n` (so a stream decoder sees them apart).
    pub data: Vec<u8>,
    /// The end of each record in `data`, just past its `\n`.
    pub ends: Vec<usize>,
    /// How records name their origin.
    pub origins: Origins,
    /// When the chunk was read, microseconds since the epoch (ingest-time partitions).
    pub ingest_micros: i64,
    /// A checkpoint is taken right after this chunk (set by the pipeline, not the source).
    pub barrier: bool,
    /// The plan generation it is processed under (set by the pipeline; see `reload`).
    pub generation: u64,
    /// Records the source refused before decoding (e.g. oversized messages): dead letters.
    pub rejected: Vec<BadRecord>,
    /// The partition's key in checkpoints (e.g. a file's absolute path) and where its
    /// reading stands after this chunk, in the source's own terms (stored in the checkpoint
    /// without being looked into).
    pub position: Option<(Arc<str>, serde_json::Value)>,
    /// Partitions opened or ended by the time this chunk was cut (its own included).
    pub events: Vec<PartitionEvent>,
    /// Partitions whose positions leave the checkpoint with this chunk (a closed shard
    /// once its children have started).
    pub retired: Vec<Arc<str>>,
}

impl Chunk {
    /// Number of records (refused ones included).
    pub fn records(&self) -> usize {
        self.ends.len()
    }

    /// Record `i` without its trailing `\n`.
    #[inline]
    pub fn record(&self, i: usize) -> &[u8] {
        let body = self.record_with_end(i);
        body.strip_suffix(b"\n").unwrap_or(body)
    }

    /// Record `i` with its trailing `\n` if it has one, for a reader to whom a line break
    /// is whitespace: unlike [`Chunk::record`], it does not look at the record's last byte,
    /// which is the first of its bytes to be touched otherwise, out of order and a cache miss.
    #[inline]
    pub fn record_with_end(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.data[start..self.ends[i]]
    }

    /// Where record `i` came from.
    pub fn origin(&self, i: usize) -> RecordOrigin {
        origin_of(&self.span, &self.ends, &self.origins, i)
    }

    /// What names the chunk's records once their bytes are gone (taken from the chunk).
    pub fn take_index(&mut self) -> RecordIndex {
        RecordIndex {
            span: self.span.clone(),
            ends: std::mem::take(&mut self.ends),
            origins: std::mem::take(&mut self.origins),
        }
    }

    /// Append a record (its bytes, then the `\n` that frames it).
    pub fn push_record(&mut self, bytes: &[u8]) {
        self.data.extend_from_slice(bytes);
        self.data.push(b'\n');
        self.ends.push(self.data.len());
    }
}

/// Where a chunk's records came from, without their bytes: what names a row's record in a
/// dead letter after the chunk was processed.
#[derive(Debug, Clone, Default)]
pub struct RecordIndex {
    span: SourceSpan,
    ends: Vec<usize>,
    origins: Origins,
}

impl RecordIndex {
    /// Number of records.
    pub fn records(&self) -> usize {
        self.ends.len()
    }

    /// Where record `i` came from.
    pub fn origin(&self, i: usize) -> RecordOrigin {
        origin_of(&self.span, &self.ends, &self.origins, i)
    }
}

fn origin_of(span: &SourceSpan, ends: &[usize], origins: &Origins, i: usize) -> RecordOrigin {
    let line = || {
        let before = if i == 0 { 0 } else { ends[i - 1] };
        RecordOrigin::Line {
            file: span.file.clone(),
            line: span.first_line + i as u64,
            offset: span.start_offset + before as u64,
        }
    };
    match origins {
        Origins::Each(each) => each.get(i).cloned().unwrap_or_else(line),
        Origins::Lines => line(),
        Origins::Generated => RecordOrigin::Generated {
            partition: span.file.clone(),
            index: span.first_line.saturating_sub(1) + i as u64,
        },
    }
}

/// At most 40 characters of a string, quoted, for messages: a 10 KB value is never echoed.
pub fn quoted(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((cut, _)) => format!("{:?}…", &s[..cut]),
        None => format!("{s:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_framed_by_the_source_not_by_newlines() {
        let mut chunk = Chunk::default();
        chunk.push_record(b"{\"a\":\n1}");
        chunk.push_record(b"{\"a\":2}");
        assert_eq!(chunk.records(), 2);
        assert_eq!(chunk.record(0), b"{\"a\":\n1}");
        assert_eq!(chunk.record(1), b"{\"a\":2}");
    }

    #[test]
    fn line_origins_count_from_the_span() {
        let mut chunk = Chunk {
            span: SourceSpan {
                file: Arc::from("a.ndjson"),
                first_line: 10,
                last_line: 11,
                start_offset: 100,
                end_offset: 110,
            },
            ..Chunk::default()
        };
        chunk.push_record(b"{}");
        chunk.push_record(b"[1]");
        assert_eq!(
            chunk.origin(1),
            RecordOrigin::Line {
                file: Arc::from("a.ndjson"),
                line: 11,
                offset: 103
            }
        );
        assert_eq!(
            chunk.origin(1).to_json().to_string(),
            r#"{"file":"a.ndjson","line":11,"offset":103}"#
        );
    }
}
