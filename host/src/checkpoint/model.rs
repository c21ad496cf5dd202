//! What a checkpoint holds. Serialised as JSON (plugin state as base64), so an operator can
//! read one with `jq` when something looks wrong.

use serde::{Deserialize, Serialize};

/// Bumped when the layout below changes incompatibly; a sluice refuses other formats, except
/// format 1 (one file and an offset), which it reads as the file source's position.
pub const FORMAT_VERSION: u32 = 2;

/// One consistent cut through a pipeline: where the source stands, what every stateful
/// stage holds after the rows before that position, and which output files hold those rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// [`FORMAT_VERSION`] of the writer.
    pub format: u32,
    /// The sluice version that wrote it (for messages only).
    pub sluice_version: String,
    /// Increases by one per checkpoint; never reused.
    pub epoch: u64,
    /// The pipeline's name.
    pub pipeline: String,
    /// What the source reads, e.g. `file:/data/in/*.ndjson`; a checkpoint is only applied to
    /// the same source.
    pub source: String,
    /// Where reading resumes.
    pub position: SourcePosition,
    /// The input had ended and every stage was flushed (`finish`) when this was taken.
    pub finished: bool,
    /// Names of the stages that were stateful (whether or not they had state to save).
    pub stateful_stages: Vec<String>,
    /// Stateful stages' snapshots.
    pub states: Vec<StageState>,
    /// Event time seen by stages with a watermark.
    #[serde(default)]
    pub watermarks: Vec<WatermarkState>,
    /// Output files that are not yet in place: their rows are part of this checkpoint.
    pub outputs: Vec<OutputFile>,
    /// Running totals over all runs, for summaries.
    pub totals: Totals,
}

/// Where the next read starts. The positions are the source's own (a tagged value per
/// partition: a file's offset, a shard's sequence number, …); the checkpoint stores them
/// without looking inside.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourcePosition {
    /// Sequence number of the next chunk (output names continue from it).
    pub next_seq: u64,
    /// Each source partition's position after the last record read from it.
    #[serde(default)]
    pub partitions: std::collections::BTreeMap<String, serde_json::Value>,
    /// What the source keeps besides per-partition positions (e.g. MQTT's redelivery
    /// ledger, `source::mqtt::ledger`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<serde_json::Value>,
}

/// A stateful stage's snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageState {
    /// The stage's name in the pipeline.
    pub stage: String,
    /// SHA-256 of the component that took it.
    pub component: String,
    /// The component's state format version.
    pub format_version: u32,
    /// The snapshot.
    #[serde(with = "base64_bytes")]
    pub data: Vec<u8>,
}

/// A stage's watermark bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatermarkState {
    /// The stage.
    pub stage: String,
    /// Greatest event time (µs) per source partition.
    pub partitions: std::collections::BTreeMap<String, i64>,
    /// The last watermark passed to the stage (µs).
    pub watermark: Option<i64>,
}

/// An output file whose rows belong to the checkpoint but which is not in place yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputFile {
    /// The sink it belongs to (its name in the pipeline; `dead_letter` for dead letters).
    pub root: String,
    /// Final path relative to the sink's folder (`ingest_year=…/part-….parquet`).
    pub path: String,
    /// Its state at the checkpoint.
    pub state: FileState,
    /// On an object store: the multipart upload that holds its durable bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<Upload>,
}

/// The multipart upload behind an output file on an object store, as far as a checkpoint
/// covers it: recovery completes it with exactly these parts (plus, for an open file, the
/// durable tail after them), or aborts it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upload {
    /// The upload id; `None` while every durable byte is still in tail objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The parts uploaded, in order.
    #[serde(default)]
    pub parts: Vec<Part>,
}

impl Upload {
    /// Bytes in the parts.
    pub fn bytes(&self) -> u64 {
        self.parts.iter().map(|p| p.size).sum()
    }
}

/// One uploaded part of a multipart upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// Its part number (1..=10000).
    pub number: i32,
    /// The ETag S3 answered with.
    pub etag: String,
    /// Its size in bytes.
    pub size: u64,
}

/// How far an output file had got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum FileState {
    /// Still being written: its first `len` bytes (and, for Parquet, the first `journal_len`
    /// bytes of its row-group journal) are durable and hold exactly the checkpoint's rows.
    Open {
        /// Durable data length.
        len: u64,
        /// Durable journal length (0 for dead letters).
        journal_len: u64,
    },
    /// Complete and synced under its temporary name; renamed into place after the checkpoint.
    Sealed,
}

/// Counters carried from run to run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Input records read.
    pub rows_read: u64,
    /// Rows written to Parquet.
    pub rows_written: u64,
    /// Dead letters written.
    pub dead_letters: u64,
}

impl Checkpoint {
    /// Serialise.
    pub fn to_bytes(&self) -> Vec<u8> {
        // A struct of strings, numbers and byte strings always serialises.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Parse, refusing other formats with a message that says which.
    pub fn from_bytes(bytes: &[u8]) -> Result<Checkpoint, String> {
        #[derive(Deserialize)]
        struct Header {
            format: u32,
            #[serde(default)]
            sluice_version: String,
        }
        let header: Header = serde_json::from_slice(bytes).map_err(|e| format!("not a sluice checkpoint: {e}"))?;
        if header.format == 1 {
            return from_format_1(bytes);
        }
        if header.format != FORMAT_VERSION {
            return Err(format!(
                "checkpoint format {} (written by sluice {}) is not format {FORMAT_VERSION}, which this sluice {} reads",
                header.format,
                if header.sluice_version.is_empty() {
                    "?"
                } else {
                    &header.sluice_version
                },
                env!("CARGO_PKG_VERSION")
            ));
        }
        serde_json::from_slice(bytes).map_err(|e| format!("damaged checkpoint: {e}"))
    }
}

/// Format 1 kept one position (`file`, `offset`, `line`) where the reading of files, one
/// after another, stood, and MQTT's ledger as `redelivery`. They become the file source's
/// partition position (with the files sorting before it done) or the MQTT source's state.
fn from_format_1(bytes: &[u8]) -> Result<Checkpoint, String> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| format!("damaged checkpoint: {e}"))?;
    let damaged = || "damaged checkpoint: format 1 without a position".to_owned();
    let old = value.get_mut("position").ok_or_else(damaged)?.take();
    let next_seq = old
        .get("next_seq")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(damaged)?;
    let mut position = SourcePosition {
        next_seq,
        ..SourcePosition::default()
    };
    if let Some(file) = old.get("file").and_then(serde_json::Value::as_str) {
        let at = |k: &str| old.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
        position.partitions.insert(
            file.to_owned(),
            serde_json::json!({"kind": "file", "offset": at("offset"), "line": at("line")}),
        );
        position.state = Some(serde_json::json!({"files_before": file}));
    }
    if let Some(ledger) = old.get("redelivery").filter(|r| !r.is_null()) {
        position.state = Some(ledger.clone());
    }
    value["position"] = serde_json::to_value(position).map_err(|e| e.to_string())?;
    value["format"] = FORMAT_VERSION.into();
    serde_json::from_value(value).map_err(|e| format!("damaged checkpoint: {e}"))
}

mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}
