//! Metadata columns: where each decoded row came from (its file, topic, source partition,
//! ingest time), appended after the decoded columns when the pipeline file asks for them.
//! Work is per batch: constant columns are built once per chunk, per-record ones from the
//! chunk's origins.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;

use crate::record::{Chunk, RecordOrigin};

/// Which metadata a pipeline wants, and in which columns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// The file a record was read from (null for records that have none).
    pub file: Option<String>,
    /// The topic of a message (null for records that have none).
    pub topic: Option<String>,
    /// The source partition: the file, the broker, the shard.
    pub partition: Option<String>,
    /// When the record's chunk was read.
    pub ingest_time: Option<String>,
    /// A stream record's shard.
    pub shard: Option<String>,
    /// A stream record's sequence number.
    pub sequence: Option<String>,
    /// A stream record's partition key.
    pub partition_key: Option<String>,
    /// When the stream received the record.
    pub arrival: Option<String>,
}

impl Metadata {
    /// Whether any column is asked for.
    pub fn is_empty(&self) -> bool {
        self.columns().next().is_none()
    }

    fn columns(&self) -> impl Iterator<Item = (&str, Kind)> {
        [
            (&self.file, Kind::File),
            (&self.topic, Kind::Topic),
            (&self.partition, Kind::Partition),
            (&self.ingest_time, Kind::IngestTime),
            (&self.shard, Kind::Shard),
            (&self.sequence, Kind::Sequence),
            (&self.partition_key, Kind::PartitionKey),
            (&self.arrival, Kind::Arrival),
        ]
        .into_iter()
        .filter_map(|(name, kind)| Some((name.as_deref()?, kind)))
    }

    /// The fields appended to the decoded schema.
    pub fn fields(&self) -> Vec<Field> {
        self.columns()
            .map(|(name, kind)| match kind {
                Kind::IngestTime => Field::new(name, DataType::Timestamp(TimeUnit::Microsecond, None), false),
                Kind::Partition => Field::new(name, DataType::Utf8, false),
                Kind::File | Kind::Topic | Kind::Shard | Kind::Sequence | Kind::PartitionKey => {
                    Field::new(name, DataType::Utf8, true)
                }
                Kind::Arrival => Field::new(name, DataType::Timestamp(TimeUnit::Microsecond, None), true),
            })
            .collect()
    }

    /// `decoded` with the metadata columns appended; `records[i]` is the chunk record row `i`
    /// was decoded from.
    pub fn append(&self, decoded: RecordBatch, chunk: &Chunk, records: &[usize]) -> Result<RecordBatch, ArrowError> {
        let n = decoded.num_rows();
        let mut fields: Vec<Arc<Field>> = decoded.schema().fields().iter().cloned().collect();
        let mut columns = decoded.columns().to_vec();
        for (field, (_, kind)) in self.fields().into_iter().zip(self.columns()) {
            let column: ArrayRef = match kind {
                Kind::IngestTime => Arc::new(TimestampMicrosecondArray::from_value(chunk.ingest_micros, n)),
                Kind::Partition => Arc::new(StringArray::from_iter_values(std::iter::repeat_n(&*chunk.span.file, n))),
                Kind::File => Arc::new(
                    records
                        .iter()
                        .map(|&i| match chunk.origin(i) {
                            RecordOrigin::Line { file, .. } => Some(file),
                            _ => None,
                        })
                        .map(|f| f.map(|f| f.to_string()))
                        .collect::<StringArray>(),
                ),
                Kind::Topic => Arc::new(
                    records
                        .iter()
                        .map(|&i| match chunk.origin(i) {
                            RecordOrigin::Message { topic, .. } => Some(topic.to_string()),
                            _ => None,
                        })
                        .collect::<StringArray>(),
                ),
                Kind::Shard | Kind::Sequence | Kind::PartitionKey => Arc::new(
                    records
                        .iter()
                        .map(|&i| match chunk.origin(i) {
                            RecordOrigin::Shard {
                                shard,
                                sequence,
                                partition_key,
                                ..
                            } => Some(match kind {
                                Kind::Shard => shard,
                                Kind::Sequence => sequence,
                                _ => partition_key,
                            }),
                            _ => None,
                        })
                        .map(|v| v.map(|v| v.to_string()))
                        .collect::<StringArray>(),
                ),
                Kind::Arrival => Arc::new(
                    records
                        .iter()
                        .map(|&i| match chunk.origin(i) {
                            RecordOrigin::Shard { arrival_micros, .. } => arrival_micros,
                            _ => None,
                        })
                        .collect::<TimestampMicrosecondArray>(),
                ),
            };
            fields.push(Arc::new(field));
            columns.push(column);
        }
        let schema: SchemaRef = Arc::new(Schema::new_with_metadata(fields, decoded.schema().metadata().clone()));
        RecordBatch::try_new(schema, columns)
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    File,
    Topic,
    Partition,
    IngestTime,
    Shard,
    Sequence,
    PartitionKey,
    Arrival,
}

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::TimestampMicrosecondType;

    use super::*;
    use crate::record::{Origins, SourceSpan};

    #[test]
    fn columns_follow_each_rows_record() {
        let mut chunk = Chunk {
            span: SourceSpan {
                file: Arc::from("mqtt://broker"),
                ..SourceSpan::default()
            },
            ingest_micros: 42,
            ..Chunk::default()
        };
        let topics = ["a/1", "a/2", "a/3"];
        chunk.origins = Origins::Each(
            topics
                .iter()
                .map(|t| RecordOrigin::Message {
                    broker: Arc::from("mqtt://broker"),
                    topic: Arc::from(*t),
                })
                .collect(),
        );
        let decoded =
            RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from(vec![1, 3])) as ArrayRef)]).expect("batch");
        let m = Metadata {
            topic: Some("_topic".into()),
            partition: Some("_partition".into()),
            ingest_time: Some("_at".into()),
            file: Some("_file".into()),
            ..Metadata::default()
        };
        // Rows came from records 0 and 2 (record 1 was a dead letter).
        let out = m.append(decoded, &chunk, &[0, 2]).expect("append");
        let schema = out.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["v", "_file", "_topic", "_partition", "_at"]);
        let topic: Vec<Option<&str>> = out.column(2).as_string::<i32>().iter().collect();
        assert_eq!(topic, [Some("a/1"), Some("a/3")]);
        assert_eq!(out.column(1).null_count(), 2, "messages have no file");
        assert_eq!(out.column(4).as_primitive::<TimestampMicrosecondType>().value(1), 42);
    }
}
