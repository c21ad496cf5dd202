//! The positions sources keep per partition, as the checkpoint stores them (a JSON value
//! tagged with its kind, which the checkpoint never looks into).

use serde::{Deserialize, Serialize};

use super::SourceError;

/// Where one partition's reading stands: the first record not yet read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PartitionPosition {
    /// A file: byte offset and lines read before it.
    File {
        /// Byte offset of the first unread line.
        offset: u64,
        /// Lines already read.
        line: u64,
    },
    /// A followed file (`follow = true`), known by its content rather than its path, so a
    /// rename or a copy made by log rotation is recognised.
    Followed {
        /// Where it was last seen.
        path: String,
        /// Hex of the first 8 bytes of SHA-256 over its first line (up to 1 KB of it).
        head: String,
        /// The same over the bytes just before `offset` (up to 256).
        tail: String,
        /// Byte offset of the first unread line.
        offset: u64,
        /// Lines already read.
        line: u64,
    },
    /// A stream shard: the last record read, and within an aggregated record the last
    /// sub-record (resume AT `sequence` and skip sub-records up to `sub_sequence`).
    Shard {
        /// The sequence number, a decimal of up to 129 digits, kept as text.
        sequence: String,
        /// The last sub-record read of an aggregated record.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sub_sequence: Option<u64>,
        /// The shard was read to its end.
        #[serde(default)]
        ended: bool,
        /// With the `AT_TIMESTAMP` sentinel: the time it stands for, ms since the epoch.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at_ms: Option<i64>,
    },
    /// A generator: records produced so far.
    Generated {
        /// Index of the next record.
        next: u64,
    },
}

impl PartitionPosition {
    /// As the checkpoint stores it.
    pub fn to_value(&self) -> serde_json::Value {
        // A tagged enum of strings and numbers always serialises.
        serde_json::to_value(self).unwrap_or_default()
    }

    /// Read back what [`Self::to_value`] stored.
    pub fn from_value(
        partition: &str,
        kind: &'static str,
        value: &serde_json::Value,
    ) -> Result<PartitionPosition, SourceError> {
        serde_json::from_value(value.clone()).map_err(|e| SourceError::Position {
            partition: partition.to_owned(),
            kind,
            message: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{Checkpoint, FORMAT_VERSION, SourcePosition, Totals};

    #[test]
    fn a_shard_position_with_a_129_digit_sequence_round_trips_through_a_checkpoint() {
        // The largest sequence number Kinesis may hand out: 129 decimal digits, far past u128.
        let sequence = "9".repeat(129);
        let shard = PartitionPosition::Shard {
            sequence: sequence.clone(),
            sub_sequence: Some(3),
            ended: false,
            at_ms: None,
        };
        let mut position = SourcePosition {
            next_seq: 42,
            ..SourcePosition::default()
        };
        position
            .partitions
            .insert("shardId-000000000007".into(), shard.to_value());
        let checkpoint = Checkpoint {
            format: FORMAT_VERSION,
            sluice_version: "test".into(),
            epoch: 9,
            pipeline: "p".into(),
            source: "kinesis:stream".into(),
            position,
            finished: false,
            stateful_stages: Vec::new(),
            states: Vec::new(),
            watermarks: Vec::new(),
            outputs: Vec::new(),
            totals: Totals::default(),
        };
        let bytes = checkpoint.to_bytes();
        assert!(
            String::from_utf8_lossy(&bytes).contains(&format!("\"{sequence}\"")),
            "stored as text"
        );
        let back = Checkpoint::from_bytes(&bytes).expect("parse");
        let value = &back.position.partitions["shardId-000000000007"];
        let read = PartitionPosition::from_value("shardId-000000000007", "kinesis", value).expect("position");
        assert_eq!(read, shard);
        let PartitionPosition::Shard { sequence: s, .. } = read else {
            panic!("shard position expected");
        };
        assert_eq!(s, sequence);
    }

    #[test]
    fn a_position_of_another_kind_is_refused_with_the_partition_named() {
        let value = serde_json::json!({"kind": "unknown", "x": 1});
        let err = PartitionPosition::from_value("a.ndjson", "file", &value).expect_err("refused");
        assert!(err.to_string().contains("a.ndjson"), "{err}");
    }

    #[test]
    fn a_format_1_checkpoint_becomes_the_file_sources_position() {
        let old = r#"{"format":1,"sluice_version":"0.1.0","epoch":4,"pipeline":"p","source":"file:/in",
            "position":{"next_seq":7,"file":"/in/b.ndjson","offset":120,"line":6},
            "finished":false,"stateful_stages":[],"states":[],"outputs":[],
            "totals":{"rows_read":6,"rows_written":6,"dead_letters":0}}"#;
        let cp = Checkpoint::from_bytes(old.as_bytes()).expect("format 1 reads");
        assert_eq!(cp.position.next_seq, 7);
        let p = PartitionPosition::from_value("b", "file", &cp.position.partitions["/in/b.ndjson"]).expect("file");
        assert_eq!(p, PartitionPosition::File { offset: 120, line: 6 });
        assert_eq!(
            cp.position.state,
            Some(serde_json::json!({"files_before": "/in/b.ndjson"}))
        );
    }
}
