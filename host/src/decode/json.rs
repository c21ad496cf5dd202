//! NDJSON → Arrow with a declared (or inferred) schema, using arrow-json's tape decoder.
//!
//! The fast path decodes a whole chunk in one call. Only when that fails (a malformed record,
//! a value of the wrong type, a missing required field), or yields another number of rows
//! than the chunk has records (one record holding two objects), is the chunk decoded record
//! by record to find the culprits, which become [`BadRecord`]s; the good records are then
//! decoded together, so one bad record never costs the batch. Records are framed by the
//! source ([`Chunk::ends`]), so a record holding a line break stays one record.

use std::io::BufReader;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow_json::reader::{Decoder, ReaderBuilder, infer_json_schema_from_iterator};

use crate::record::{BadRecord, Chunk};

/// Decodes chunks of NDJSON into batches of one schema.
pub struct JsonDecoder {
    schema: SchemaRef,
    batch_rows: usize,
    /// Say which record each row came from (for metadata columns).
    track_records: bool,
}

impl std::fmt::Debug for JsonDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonDecoder").field("schema", &self.schema).finish()
    }
}

/// The result of decoding one chunk.
#[derive(Debug)]
pub struct Decoded {
    /// The good records (absent when there were none).
    pub batch: Option<RecordBatch>,
    /// The records that could not be decoded.
    pub bad: Vec<BadRecord>,
    /// With [`JsonDecoder::tracking_records`]: the record each row was decoded from.
    pub records: Vec<usize>,
}

impl JsonDecoder {
    /// A decoder for `schema`; `batch_rows` is the most lines a chunk holds.
    pub fn new(schema: SchemaRef, batch_rows: usize) -> Self {
        JsonDecoder {
            schema,
            batch_rows: batch_rows.max(1),
            track_records: false,
        }
    }

    /// Also say which record each row came from.
    pub fn tracking_records(mut self) -> Self {
        self.track_records = true;
        self
    }

    fn decoder(&self) -> Result<Decoder, ArrowError> {
        ReaderBuilder::new(self.schema.clone())
            .with_batch_size(self.batch_rows)
            .build_decoder()
    }

    fn decode_all(&self, data: &[u8]) -> Result<Option<RecordBatch>, ArrowError> {
        let mut decoder = self.decoder()?;
        let mut rest = data;
        while !rest.is_empty() {
            let used = decoder.decode(rest)?;
            if used == 0 {
                return Err(ArrowError::JsonError("more records than the batch size".into()));
            }
            rest = &rest[used..];
        }
        decoder.flush()
    }

    /// Decode a chunk. Errors only on a broken decoder configuration; bad data never errors.
    pub fn decode(&self, chunk: &Chunk) -> Result<Decoded, ArrowError> {
        match self.decode_all(&chunk.data) {
            Ok(batch) if batch.as_ref().map_or(0, RecordBatch::num_rows) == self.non_blank(chunk).count() => {
                let records = if self.track_records {
                    self.non_blank(chunk).collect()
                } else {
                    Vec::new()
                };
                Ok(Decoded {
                    batch,
                    bad: Vec::new(),
                    records,
                })
            }
            _ => self.decode_one_by_one(chunk),
        }
    }

    /// Records that hold more than whitespace (blank lines are skipped, not refused).
    fn non_blank<'c>(&self, chunk: &'c Chunk) -> impl Iterator<Item = usize> + 'c {
        (0..chunk.records()).filter(|&i| !chunk.record(i).iter().all(u8::is_ascii_whitespace))
    }

    fn decode_one_by_one(&self, chunk: &Chunk) -> Result<Decoded, ArrowError> {
        let mut good = Vec::with_capacity(chunk.data.len());
        let mut bad = Vec::new();
        let mut records = Vec::new();
        for i in 0..chunk.records() {
            let content = chunk.record(i);
            if content.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match self.check_line(content) {
                Ok(()) => {
                    good.extend_from_slice(content);
                    good.push(b'\n');
                    if self.track_records {
                        records.push(i);
                    }
                }
                Err(reason) => bad.push(BadRecord {
                    origin: chunk.origin(i),
                    index: i,
                    raw: content.to_vec(),
                    reason,
                }),
            }
        }
        let batch = self.decode_all(&good)?;
        Ok(Decoded { batch, bad, records })
    }

    fn check_line(&self, line: &[u8]) -> Result<(), String> {
        let mut decoder = self.decoder().map_err(|e| e.to_string())?;
        let used = decoder.decode(line).map_err(|e| e.to_string())?;
        if used < line.len() && !line[used..].iter().all(u8::is_ascii_whitespace) {
            return Err("more than one JSON value in the record".into());
        }
        match decoder.flush() {
            Ok(Some(b)) if b.num_rows() == 1 => Ok(()),
            Ok(Some(b)) => Err(format!("record holds {} objects, expected one", b.num_rows())),
            Ok(None) => Err("record holds no JSON object".into()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Infer a schema from up to `max_lines` lines of NDJSON, skipping lines that are not JSON.
pub fn infer_schema(reader: impl std::io::Read, max_lines: usize) -> Result<Schema, ArrowError> {
    use std::io::BufRead;
    let mut values = Vec::new();
    for line in BufReader::new(reader).lines().take(max_lines) {
        let line = line.map_err(|e| ArrowError::ExternalError(Box::new(e)))?;
        if let Ok(value @ serde_json::Value::Object(_)) = serde_json::from_str::<serde_json::Value>(&line) {
            values.push(Ok(value));
        }
    }
    if values.is_empty() {
        return Err(ArrowError::JsonError(format!(
            "no JSON object in the first {max_lines} lines to infer a schema from"
        )));
    }
    // Columns in the order keys first appear in the data, not arrow-json's sorted order.
    let mut order: Vec<String> = Vec::new();
    for value in values.iter().flatten() {
        if let serde_json::Value::Object(map) = value {
            for key in map.keys() {
                if !order.contains(key) {
                    order.push(key.clone());
                }
            }
        }
    }
    let inferred = infer_json_schema_from_iterator(values.into_iter())?;
    let fields: Vec<_> = order
        .iter()
        .filter_map(|k| inferred.field_with_name(k).ok().cloned())
        .collect();
    Ok(Schema::new_with_metadata(fields, inferred.metadata().clone()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::AsArray;
    use arrow::datatypes::{DataType, Field, Float64Type};

    use super::*;
    use crate::record::{RecordOrigin, SourceSpan};

    fn chunk(text: &str) -> Chunk {
        let mut chunk = Chunk {
            span: SourceSpan {
                file: Arc::from("f.ndjson"),
                first_line: 10,
                last_line: 0,
                start_offset: 100,
                end_offset: 0,
            },
            ..Chunk::default()
        };
        for line in text.split_inclusive('\n') {
            chunk.push_record(line.strip_suffix('\n').unwrap_or(line).as_bytes());
        }
        chunk
    }

    fn decoder() -> JsonDecoder {
        JsonDecoder::new(
            Arc::new(Schema::new(vec![
                Field::new("client_id", DataType::Utf8, false),
                Field::new("temperature", DataType::Float64, true),
            ])),
            1024,
        )
    }

    #[test]
    fn a_clean_chunk_decodes_in_one_pass() {
        let d = decoder()
            .decode(&chunk(
                "{\"client_id\":\"a\",\"temperature\":1.5}\n{\"client_id\":\"b\"}\n",
            ))
            .expect("decode");
        let batch = d.batch.expect("batch");
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.column(1).as_primitive::<Float64Type>().value(0), 1.5);
        assert!(batch.column(1).is_null(1));
        assert!(d.bad.is_empty());
    }

    #[test]
    fn malformed_lines_become_bad_records_with_positions_and_the_rest_survive() {
        let text = "{\"client_id\":\"a\",\"temperature\":1}\n{not json\n\n{\"client_id\":\"c\",\"temperature\":\"hot\"}\n{\"temperature\":2}\n[1,2]\n{\"client_id\":\"e\",\"temperature\":3}\n";
        let d = decoder().decode(&chunk(text)).expect("decode");
        let batch = d.batch.expect("batch");
        let ids: Vec<&str> = batch.column(0).as_string::<i32>().iter().flatten().collect();
        assert_eq!(ids, ["a", "e"]);
        let lines: Vec<(u64, u64)> = d
            .bad
            .iter()
            .map(|b| match b.origin {
                RecordOrigin::Line { line, offset, .. } => (line, offset),
                ref other => panic!("line origin expected: {other:?}"),
            })
            .collect();
        assert_eq!(lines, [(11, 134), (13, 145), (14, 183), (15, 201)]);
        assert_eq!(d.bad[0].raw, b"{not json");
        assert!(d.bad[1].reason.contains("temperature"), "{}", d.bad[1].reason);
        assert!(d.bad[2].reason.contains("client_id"), "{}", d.bad[2].reason);
    }

    #[test]
    fn a_record_with_line_breaks_is_one_record_and_two_objects_in_one_record_are_refused() {
        let mut c = chunk("");
        c.push_record(b"{\"client_id\":\n \"a\",\n \"temperature\": 1}");
        c.push_record(b"{\"client_id\":\"b\"} {\"client_id\":\"c\"}");
        c.push_record(b"{\"client_id\":\"d\"}");
        let d = decoder().decode(&c).expect("decode");
        let batch = d.batch.expect("batch");
        let ids: Vec<&str> = batch.column(0).as_string::<i32>().iter().flatten().collect();
        assert_eq!(ids, ["a", "d"]);
        assert_eq!(d.bad.len(), 1);
        assert_eq!(d.bad[0].index, 1);
    }

    #[test]
    fn inference_skips_lines_that_are_not_json_objects() {
        let schema = infer_schema(
            "garbage\n{\"z\":true,\"a\":1,\"b\":\"x\"}\n{\"a\":2.5}\n".as_bytes(),
            10,
        )
        .expect("infer");
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["z", "a", "b"], "columns keep the order of the data");
        assert_eq!(schema.field_with_name("a").expect("a").data_type(), &DataType::Float64);
        assert_eq!(schema.field_with_name("b").expect("b").data_type(), &DataType::Utf8);
    }
}
