//! NDJSON → Arrow with a declared (or inferred) schema.
//!
//! A record that is a flat object of plain scalars is read by a byte scanner straight into
//! the chunk's columns ([`fast`], [`columns`]); any other is read by serde into a row of
//! cells checked against the column types ([`value`]: strict by default, `coerce =
//! "lenient"` also parses numeric strings), then appended to the same columns. Both paths
//! give the same values. A record that does not fit is a [`BadRecord`]
//! with a reason in the user's words and never costs the rest of the chunk. Records are
//! framed by the source ([`Chunk::ends`]), so a record holding a line break stays one record;
//! a UTF-8 byte order mark before a record is skipped.

use std::io::BufReader;

use arrow::array::{BooleanArray, RecordBatch, RecordBatchOptions};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow_json::reader::infer_json_schema_from_iterator;

use crate::config::{Coerce, FieldType, NewFields};
use crate::record::{BadRecord, Chunk};

mod columns;
mod fast;
mod record;
mod timestamp;
mod value;

/// How records are decoded: the source's `coerce` and `on_new_field`, and whether the schema
/// was inferred (then keys outside it are dead letters unless `on_new_field = "ignore"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeOptions {
    /// `coerce`.
    pub coerce: Coerce,
    /// `on_new_field`, when set.
    pub new_fields: Option<NewFields>,
    /// The schema was inferred from the first records, not declared: the number of lines.
    pub inferred_from: Option<usize>,
    /// Integers in timestamp columns are microseconds since the epoch: only for records
    /// sluice builds itself (CloudWatch Logs events), never a user's JSON, where a number
    /// could be seconds or milliseconds.
    pub numeric_times: bool,
}

/// Decodes chunks of NDJSON into batches of one schema.
pub struct JsonDecoder {
    schema: SchemaRef,
    layout: record::Layout,
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

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl JsonDecoder {
    /// A decoder for `schema`.
    pub fn new(schema: SchemaRef, options: DecodeOptions) -> Self {
        let refuse_unknown = match options.new_fields {
            Some(choice) => choice == NewFields::DeadLetter,
            None => options.inferred_from.is_some(),
        };
        let layout = record::Layout {
            names: schema.fields().iter().map(|f| f.name().clone()).collect(),
            keys: schema.fields().iter().map(|f| fast::key(f.name())).collect(),
            kinds: schema.fields().iter().map(|f| FieldType::of(f.data_type())).collect(),
            nullable: schema.fields().iter().map(|f| f.is_nullable()).collect(),
            coerce: options.coerce,
            refuse_unknown,
            numeric_times: options.numeric_times,
            inferred_hint: options
                .inferred_from
                .map(|n| format!(" (the schema was inferred from the first {n} lines: declare it in [source.schema])")),
        };
        JsonDecoder {
            schema,
            layout,
            track_records: false,
        }
    }

    /// Also say which record each row came from.
    pub fn tracking_records(mut self) -> Self {
        self.track_records = true;
        self
    }

    /// Decode a chunk. Errors only on a broken decoder configuration; bad data never errors.
    pub fn decode(&self, chunk: &Chunk) -> Result<Decoded, ArrowError> {
        let mut columns = columns::Columns::new(&self.schema, chunk.records());
        let mut row = vec![value::Cell::Null; self.schema.fields().len()];
        let mut bad = Vec::new();
        let mut records = Vec::with_capacity(chunk.records());
        for i in 0..chunk.records() {
            // With its line break, which JSON reads as the whitespace it is: the same cells,
            // or the same refusal, as without it.
            let whole = chunk.record_with_end(i);
            let whole = whole.strip_prefix(BOM).unwrap_or(whole);
            if whole.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if fast::read(&self.layout, whole, &mut columns).is_some() {
                columns.end_row();
                records.push(i);
                continue;
            }
            columns.truncate();
            // A dead letter holds the record without its line break.
            let content = whole.strip_suffix(b"\n").unwrap_or(whole);
            match read_with_serde(&self.layout, content, &mut row) {
                Ok(()) => {
                    columns.append(&mut row);
                    records.push(i);
                }
                Err(reason) => {
                    row.fill(value::Cell::Null);
                    bad.push(BadRecord {
                        origin: chunk.origin(i),
                        index: i,
                        raw: content.to_vec(),
                        reason,
                    });
                }
            }
        }
        let (arrays, nested_bad) = columns.finish()?;
        // The row count is given: a schema may have no columns (`{}` records), found by fuzzing.
        let options = RecordBatchOptions::new().with_row_count(Some(records.len()));
        let mut batch = (!records.is_empty())
            .then(|| RecordBatch::try_new_with_options(self.schema.clone(), arrays, &options))
            .transpose()?;
        if !nested_bad.is_empty() {
            let mut keep = vec![true; records.len()];
            for (row, reason) in nested_bad {
                keep[row] = false;
                let i = records[row];
                bad.push(BadRecord {
                    origin: chunk.origin(i),
                    index: i,
                    raw: chunk.record(i).to_vec(),
                    reason,
                });
            }
            bad.sort_by_key(|b| b.index);
            batch = batch
                .map(|b| filter_record_batch(&b, &BooleanArray::from(keep.clone())))
                .transpose()?
                .filter(|b| b.num_rows() > 0);
            let mut kept = keep.iter();
            records.retain(|_| kept.next().copied().unwrap_or(false));
        }
        if !self.track_records {
            records.clear();
        }
        Ok(Decoded { batch, bad, records })
    }
}

/// Read one record into `row` (all `Null` on entry) by serde; a reason when the record does
/// not fit. (Records the fast path takes never come here.)
fn read_with_serde<'a>(layout: &record::Layout, record: &'a [u8], row: &mut [value::Cell<'a>]) -> Result<(), String> {
    layout.read_with_serde(record, row)?;
    layout.check_required(row)
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
    if values
        .iter()
        .flatten()
        .all(|v| v.as_object().is_some_and(serde_json::Map::is_empty))
    {
        return Err(ArrowError::JsonError(format!(
            "no JSON object with a key in the first {max_lines} lines to infer a schema from"
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
            DecodeOptions::default(),
        )
    }

    fn reasons(d: &Decoded) -> Vec<&str> {
        d.bad.iter().map(|b| b.reason.as_str()).collect()
    }

    #[test]
    fn values_that_do_not_fit_exactly_are_bad_records_in_the_users_words() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("count", DataType::Int32, true),
            Field::new("t", DataType::Float64, true),
            Field::new("f", DataType::Float32, true),
        ]));
        let text = "{\"count\":2.7}\n{\"count\":\"3\"}\n{\"t\":1e400}\n{\"t\":-1e400}\n{\"f\":1e39}\n{\"count\":3000000000}\n{\"count\":4,\"t\":2,\"f\":0.5}\n";
        let d = JsonDecoder::new(schema.clone(), DecodeOptions::default())
            .decode(&chunk(text))
            .expect("decode");
        assert_eq!(
            reasons(&d),
            [
                "field count: 2.7 is not an integer",
                "field count: \"3\" is a string, not int32 (coerce = \"lenient\" on the source parses numeric strings)",
                "field t: number out of range for float64",
                "field t: number out of range for float64",
                "field f: 1000000000000000000000000000000000000000 is out of range for float32",
                "field count: 3000000000 is out of range for int32",
            ]
        );
        let batch = d.batch.expect("batch");
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(batch.column(1).as_primitive::<Float64Type>().value(0), 2.0);
        let lenient = DecodeOptions {
            coerce: Coerce::Lenient,
            ..DecodeOptions::default()
        };
        let d = JsonDecoder::new(schema, lenient).decode(&chunk(text)).expect("decode");
        assert_eq!(d.bad.len(), 5, "only the numeric string parses: {:?}", reasons(&d));
        assert_eq!(d.batch.expect("batch").num_rows(), 2);
    }

    #[test]
    fn a_byte_order_mark_is_skipped_and_a_missing_field_is_named() {
        let d = decoder()
            .decode(&chunk("\u{feff}{\"client_id\":\"a\"}\n{\"temperature\":1}\n"))
            .expect("decode");
        assert_eq!(reasons(&d), ["missing required field client_id"]);
        assert_eq!(d.batch.expect("batch").num_rows(), 1);
        let d = decoder().decode(&chunk("{\"client_id\":null}\n")).expect("decode");
        assert_eq!(reasons(&d), ["missing required field client_id"]);
    }

    #[test]
    fn an_inferred_schema_refuses_new_keys_and_types_unless_told_to_ignore_keys() {
        let schema = Arc::new(infer_schema("{\"a\":1,\"m\":{\"x\":[1,2]}}\n".as_bytes(), 10).expect("infer"));
        let inferred = DecodeOptions {
            inferred_from: Some(10),
            ..DecodeOptions::default()
        };
        let text =
            "{\"a\":2,\"m\":{\"x\":[3]}}\n{\"a\":20.5}\n{\"a\":3,\"b\":1}\n{\"a\":4,\"m\":{\"x\":\"no\"}}\n{\"a\":5}\n";
        let d = JsonDecoder::new(schema.clone(), inferred)
            .decode(&chunk(text))
            .expect("decode");
        let r = reasons(&d);
        assert_eq!(r.len(), 3, "{r:?}");
        assert!(
            r[0].starts_with("field a: 20.5 is not an integer (the schema was inferred from the first 10 lines"),
            "{r:?}"
        );
        assert!(r[1].starts_with("field \"b\" is not in the inferred schema"), "{r:?}");
        assert!(r[2].starts_with("field m: "), "{r:?}");
        let batch = d.batch.expect("batch");
        let a: Vec<i64> = batch
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .values()
            .to_vec();
        assert_eq!(a, [2, 5]);
        let ignoring = DecodeOptions {
            new_fields: Some(NewFields::Ignore),
            ..inferred
        };
        let d = JsonDecoder::new(schema, ignoring).decode(&chunk(text)).expect("decode");
        assert_eq!(d.bad.len(), 2, "{:?}", reasons(&d));
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
        assert_eq!(d.bad[1].reason, "field temperature: \"hot\" is a string, not float64");
        assert_eq!(d.bad[2].reason, "missing required field client_id");
        assert_eq!(d.bad[3].reason, "the record is an array, not a JSON object");
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
        assert_eq!(d.bad[0].reason, "more than one JSON value in the record");
    }

    #[test]
    fn empty_objects_are_rows_of_no_columns_and_infer_no_schema() {
        let empty = Arc::new(Schema::empty());
        let d = JsonDecoder::new(empty, DecodeOptions::default())
            .decode(&chunk("{}\n{}\n"))
            .expect("decode");
        assert_eq!(d.batch.expect("batch").num_rows(), 2);
        assert!(infer_schema("{}\n{}\n".as_bytes(), 10).is_err());
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
