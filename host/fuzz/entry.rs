//! The fuzzing entry points, one per target, shared by the cargo-fuzz targets
//! (`host/fuzz/fuzz_targets/*.rs`, nightly, `scripts/fuzz.sh`) and by the replay of every
//! corpus and regression file in the regular test suite (stable,
//! `host/tests/integration/fuzz_corpus.rs`): one source file, included by both.
//!
//! Each takes arbitrary bytes. Returning is success; a panic (or a broken invariant, asserted
//! here) is a finding. Bad input must come back as an error value, never a crash.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use sluice::config::{Coerce, NewFields};
use sluice::decode::json::{DecodeOptions, JsonDecoder, infer_schema};
use sluice::record::Chunk;
use sluice_sdk::{__private, encode_batch, encode_schema};

/// A fuzz target's entry point.
pub type Target = fn(&[u8]);

/// Every target by name: the folder names under `corpus/` and `regressions/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("decode_json", decode_json),
    ("pipeline_file", pipeline_file),
    ("filter_predicate", filter_predicate),
    ("map_expression", map_expression),
    ("kpl", kpl),
    ("cloudwatch_logs", cloudwatch_logs),
];

/// A schema with a column of every declared type, one of them required.
fn every_type() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("b", DataType::Boolean, true),
        Field::new("i", DataType::Int32, true),
        Field::new("l", DataType::Int64, true),
        Field::new("f", DataType::Float32, true),
        Field::new("d", DataType::Float64, true),
        Field::new("t", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        Field::new("day", DataType::Date32, true),
    ]))
}

/// The bytes as records (one per line), decoded strictly, leniently, refusing new keys, and
/// with a schema inferred from them: every non-blank record is a row or a bad record, and
/// every reason is a short sentence.
pub fn decode_json(data: &[u8]) {
    let mut chunk = Chunk::default();
    for line in data.split(|b| *b == b'\n') {
        chunk.push_record(line);
    }
    let blank = |r: &[u8]| {
        let r = r.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(r);
        r.iter().all(u8::is_ascii_whitespace)
    };
    let records = (0..chunk.records()).filter(|&i| !blank(chunk.record(i))).count();
    let mut schemas = vec![(every_type(), None)];
    if let Ok(inferred) = infer_schema(data, 100) {
        schemas.push((Arc::new(inferred), Some(100)));
    }
    for (schema, inferred_from) in schemas {
        for (coerce, new_fields) in [
            (Coerce::Strict, None),
            (Coerce::Lenient, Some(NewFields::DeadLetter)),
            (Coerce::Strict, Some(NewFields::Ignore)),
        ] {
            let options = DecodeOptions {
                coerce,
                new_fields,
                inferred_from,
                numeric_times: false,
            };
            let decoded = JsonDecoder::new(schema.clone(), options)
                .tracking_records()
                .decode(&chunk)
                .expect("the decoder's own configuration is valid");
            let rows = decoded.batch.as_ref().map_or(0, RecordBatch::num_rows);
            assert_eq!(
                rows + decoded.bad.len(),
                records,
                "every record is a row or a dead letter"
            );
            assert_eq!(decoded.records.len(), rows);
            for bad in &decoded.bad {
                assert!(!bad.reason.is_empty() && bad.reason.len() < 2000, "{}", bad.reason);
            }
        }
    }
}

/// The bytes as a pipeline file: read and checked, never a panic.
pub fn pipeline_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let dir = std::env::temp_dir();
    let _ = sluice::config::parse(text, &dir.join("fuzz.toml"), &dir, "fuzz");
}

/// A batch of the `every_type` schema with nulls, extremes and ordinary values.
fn sample_batch() -> RecordBatch {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec!["a", "", "raspberrypi-1", "é'\""])),
        Arc::new(BooleanArray::from(vec![Some(true), None, Some(false), Some(true)])),
        Arc::new(Int32Array::from(vec![Some(0), Some(i32::MIN), None, Some(i32::MAX)])),
        Arc::new(Int64Array::from(vec![Some(i64::MAX), Some(i64::MIN), Some(-1), None])),
        Arc::new(Float32Array::from(vec![
            Some(f32::MAX),
            None,
            Some(-0.0),
            Some(f32::MIN_POSITIVE),
        ])),
        Arc::new(Float64Array::from(vec![
            Some(f64::MAX),
            Some(f64::MIN),
            None,
            Some(1e-308),
        ])),
        Arc::new(TimestampMicrosecondArray::from(vec![
            Some(0),
            Some(i64::MAX),
            None,
            Some(i64::MIN),
        ])),
        Arc::new(arrow::array::Date32Array::from(vec![
            Some(0),
            None,
            Some(i32::MAX),
            Some(i32::MIN),
        ])),
    ];
    RecordBatch::try_new(every_type(), columns).expect("sample batch")
}

/// Open transform `T` with `config` over the sample schema and, when it opens, run the
/// sample batch through it, through the same calls the host makes into the component.
fn open_and_process<T: sluice_sdk::Transform + 'static>(config: String) {
    let schema = encode_schema(&every_type()).expect("schema");
    if __private::open::<T>(config, schema).is_ok() {
        let batch = encode_batch(&sample_batch()).expect("batch");
        let _ = __private::process::<T>(batch);
    }
}

/// The bytes as the stock filter's predicate.
pub fn filter_predicate(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let config = serde_json::json!({ "predicate": text }).to_string();
    open_and_process::<sluice_plugin_filter::Filter>(config);
}

/// The bytes as an `add = [{ expr }]` expression of the stock map.
pub fn map_expression(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let config = serde_json::json!({
        "mappings": [{ "from": "id" }, { "from": "l" }, { "from": "d" }],
        "add": [{ "name": "x", "expr": text }],
    })
    .to_string();
    open_and_process::<sluice_plugin_map::Map>(config);
}

/// The bytes as a Kinesis record that may be a KPL aggregate.
pub fn kpl(data: &[u8]) {
    if let Ok(unpacked) = sluice::source::kinesis::kpl::deaggregate(data) {
        let _ = format!("{unpacked:?}");
    }
}

/// The bytes as a CloudWatch Logs subscription record (gzip JSON envelope).
pub fn cloudwatch_logs(data: &[u8]) {
    let _ = sluice::source::kinesis::cloudwatch::unpack(data);
    // The same bytes gzipped, so the fuzzer reaches the JSON envelope too.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    if std::io::Write::write_all(&mut gz, data).is_ok()
        && let Ok(bytes) = gz.finish()
    {
        let _ = sluice::source::kinesis::cloudwatch::unpack(&bytes);
    }
}
