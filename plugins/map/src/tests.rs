//! Transform-level tests: config JSON and Arrow batches in, through the same SDK glue the
//! component exports (`sluice_sdk::__private`), outputs decoded and checked value by value.
//! The SDK offers no public way to build an [`sluice_sdk::Emitter`] and read it back.

use std::sync::Arc;

use sluice_sdk::__private::{self, bindings::exports::sluice::transform::transform as wit};
use sluice_sdk::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray,
};
use sluice_sdk::arrow::compute::take_record_batch;
use sluice_sdk::arrow::datatypes::{
    DataType, Date32Type, Field, Float32Type, Float64Type, Int32Type, Int64Type, Schema, TimeUnit,
    TimestampMicrosecondType,
};
use sluice_sdk::testing::{host_batch, host_schema};
use sluice_sdk::{REASON_COLUMN, decode_batch, decode_schema, encode_batch, encode_schema};

use crate::Map;

// ---- helpers ----

/// An IoT reading batch: every column a string or a double, as a CSV source gives them.
fn readings() -> RecordBatch {
    let schema = Schema::new(vec![
        Field::new("client_id", DataType::Utf8, false),
        Field::new("timestamp", DataType::Utf8, true),
        Field::new("humidity", DataType::Float64, true),
        Field::new("pitch", DataType::Float64, true),
        Field::new("count", DataType::Utf8, true),
        Field::new("yaw", DataType::Float64, true),
        Field::new("temperature", DataType::Float64, true),
    ]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec!["dev-1", "dev-2", "dev-3"])),
        Arc::new(StringArray::from(vec![
            Some("2024-03-01 12:00:00"),
            Some("2024-03-01 12:00:05"),
            None,
        ])),
        Arc::new(Float64Array::from(vec![Some(0.5), None, Some(0.75)])),
        Arc::new(Float64Array::from(vec![1.25, -2.5, 0.0])),
        Arc::new(StringArray::from(vec![Some("10"), Some("11"), None])),
        Arc::new(Float64Array::from(vec![9.0, 8.0, 7.0])),
        Arc::new(Float64Array::from(vec![Some(20.0), Some(-40.0), None])),
    ];
    RecordBatch::try_new(Arc::new(schema), columns).unwrap()
}

/// A one-column batch.
fn single(name: &str, array: ArrayRef) -> RecordBatch {
    let schema = Schema::new(vec![Field::new(name, array.data_type().clone(), true)]);
    RecordBatch::try_new(Arc::new(schema), vec![array]).unwrap()
}

/// Declared outputs: name and schema.
type Declared = Vec<(String, Schema)>;
/// A config error: path and message.
type Refusal = (Vec<String>, String);

/// `describe` through the glue: the declared outputs, or the error's path and message.
fn describe(config: &str, schema: &Schema) -> Result<Declared, Refusal> {
    let input = encode_schema(schema).unwrap();
    match __private::describe::<Map>(config.to_owned(), input) {
        Ok(description) => {
            assert_eq!(description.state_format, None, "map keeps no state");
            Ok(description
                .outputs
                .into_iter()
                .map(|o| {
                    let schema = host_schema(&o.name, &decode_schema(&o.schema).unwrap());
                    (o.name, schema)
                })
                .collect())
        }
        Err(e) => Err((e.path, e.message)),
    }
}

/// The error `describe` gives, as (path, message).
fn describe_err(config: &str, schema: &Schema) -> Refusal {
    match describe(config, schema) {
        Ok(outputs) => panic!("expected a config error, got outputs {outputs:?}"),
        Err(e) => e,
    }
}

/// What one `process` call emitted.
#[derive(Debug, Default)]
struct Emitted {
    main: Option<RecordBatch>,
    rejected: Option<RecordBatch>,
}

/// `open` with the batch's schema, then `process` the batch.
fn run(config: &str, batch: &RecordBatch) -> Emitted {
    let schema = encode_schema(&batch.schema()).unwrap();
    if let Err(e) = __private::open::<Map>(config.to_owned(), schema) {
        panic!("open failed at {:?}: {}", e.path, e.message);
    }
    let outputs = match __private::process::<Map>(encode_batch(batch).unwrap()) {
        Ok(outputs) => outputs,
        Err(wit::ProcessError::InvalidInput(m) | wit::ProcessError::Failed(m)) => {
            panic!("process failed: {m}")
        }
    };
    let batch_in = batch;
    let mut emitted = Emitted::default();
    let mut named = Vec::new();
    for output in outputs {
        let (batch, lineage) = host_batch(&output.output, decode_batch(output.batch.clone()).unwrap());
        let lineage = lineage.expect("every output names its input rows");
        named.extend(lineage.values().iter().copied());
        let slot = match output.output.as_str() {
            "main" => &mut emitted.main,
            "rejected" => {
                // Each rejected row is the input row its lineage names, reason aside.
                let mut rows = batch.clone();
                rows.remove_column(rows.num_columns() - 1);
                assert_eq!(take_record_batch(batch_in, &lineage).unwrap(), rows, "rejected lineage");
                &mut emitted.rejected
            }
            other => panic!("emitted to unexpected output {other}"),
        };
        assert!(slot.is_none(), "two batches emitted to {}", output.output);
        *slot = Some(batch);
    }
    // Every input row is named once, by `main` or `rejected`.
    named.sort_unstable();
    assert_eq!(
        named,
        (0..batch_in.num_rows() as u32).collect::<Vec<_>>(),
        "lineage covers the input"
    );
    emitted
}

fn names(batch: &RecordBatch) -> Vec<String> {
    batch.schema().fields().iter().map(|f| f.name().clone()).collect()
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> &'a ArrayRef {
    batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name} in {:?}", names(batch)))
}

fn strings(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
    column(batch, name)
        .as_string::<i32>()
        .iter()
        .map(|s| s.map(str::to_owned))
        .collect()
}

fn path(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

// ---- describe: outputs ----

#[test]
fn describe_declares_the_mapped_schema_and_a_rejected_output_of_input_rows() {
    let config = r#"{"mappings":[
        {"from":"client_id","to":"device_id"},
        {"from":"timestamp","to":"event_time","type":"timestamp","format":"%Y-%m-%d %H:%M:%S"},
        {"from":"pitch","type":"float32"},
        {"from":"count","type":"int"}],
      "add":[{"name":"source","value":"iot"},{"name":"temp_f","expr":"temperature * 1.8 + 32"}]}"#;
    let input = readings().schema();
    let outputs = describe(config, &input).unwrap();
    assert_eq!(outputs.len(), 2);
    let (main_name, main) = &outputs[0];
    assert_eq!(main_name, "main");
    let expected = Schema::new(vec![
        Field::new("device_id", DataType::Utf8, false),
        Field::new("event_time", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        Field::new("pitch", DataType::Float32, true),
        Field::new("count", DataType::Int32, true),
        Field::new("source", DataType::Utf8, false),
        Field::new("temp_f", DataType::Float64, true),
    ]);
    assert_eq!(main, &expected);
    let (rejected_name, rejected) = &outputs[1];
    assert_eq!(rejected_name, "rejected");
    let mut fields: Vec<_> = input.fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(REASON_COLUMN, DataType::Utf8, false)));
    assert_eq!(rejected, &Schema::new(fields));
}

// ---- process: mapping ----

#[test]
fn a_rename_keeps_the_type_and_values_and_unlisted_columns_are_dropped() {
    let out = run(
        r#"{"mappings":[{"from":"client_id","to":"device_id"},{"from":"humidity"}]}"#,
        &readings(),
    );
    let main = out.main.unwrap();
    assert_eq!(names(&main), ["device_id", "humidity"]);
    assert_eq!(
        strings(&main, "device_id"),
        [Some("dev-1".into()), Some("dev-2".into()), Some("dev-3".into())]
    );
    assert_eq!(
        column(&main, "humidity").as_primitive::<Float64Type>(),
        &Float64Array::from(vec![Some(0.5), None, Some(0.75)])
    );
    assert!(out.rejected.is_none());
}

#[test]
fn mappings_set_the_output_order_and_may_read_a_column_twice() {
    let out = run(
        r#"{"mappings":[{"from":"pitch","to":"p2","type":"float32"},{"from":"pitch"}]}"#,
        &readings(),
    );
    let main = out.main.unwrap();
    assert_eq!(names(&main), ["p2", "pitch"]);
    assert_eq!(
        column(&main, "p2").as_primitive::<Float32Type>(),
        &Float32Array::from(vec![1.25, -2.5, 0.0])
    );
}

#[test]
fn keep_unmapped_passes_other_columns_through_in_input_order_minus_drop() {
    let out = run(
        r#"{"keep_unmapped":true,"drop":["yaw","timestamp"],
            "mappings":[{"from":"count","type":"int64"}],
            "add":[{"name":"one","value":1}]}"#,
        &readings(),
    );
    let main = out.main.unwrap();
    assert_eq!(
        names(&main),
        ["count", "client_id", "humidity", "pitch", "temperature", "one"]
    );
    assert_eq!(
        column(&main, "count").as_primitive::<Int64Type>(),
        &Int64Array::from(vec![Some(10), Some(11), None])
    );
    assert_eq!(
        column(&main, "pitch").as_primitive::<Float64Type>(),
        &Float64Array::from(vec![1.25, -2.5, 0.0])
    );
}

#[test]
fn the_example_config_maps_a_whole_batch() {
    let config = r#"{"keep_unmapped":false,"mappings":[
        {"from":"client_id","to":"device_id"},
        {"from":"timestamp","to":"event_time","type":"timestamp","format":"%Y-%m-%d %H:%M:%S"},
        {"from":"humidity"},
        {"from":"pitch","type":"float32"},
        {"from":"count","type":"int32"}],
      "add":[{"name":"source","value":"iot"},{"name":"temp_f","expr":"temperature * 1.8 + 32"}]}"#;
    let main = run(config, &readings()).main.unwrap();
    assert_eq!(
        names(&main),
        [
            "device_id",
            "event_time",
            "humidity",
            "pitch",
            "count",
            "source",
            "temp_f"
        ]
    );
    let times: Vec<_> = column(&main, "event_time")
        .as_primitive::<TimestampMicrosecondType>()
        .iter()
        .collect();
    assert_eq!(times, [Some(1_709_294_400_000_000), Some(1_709_294_405_000_000), None]);
    assert_eq!(
        column(&main, "count").as_primitive::<Int32Type>(),
        &Int32Array::from(vec![Some(10), Some(11), None])
    );
    assert_eq!(strings(&main, "source"), vec![Some("iot".to_owned()); 3]);
    assert_eq!(
        column(&main, "temp_f").as_primitive::<Float64Type>(),
        &Float64Array::from(vec![Some(68.0), Some(-40.0), None])
    );
}

// ---- process: casts ----

/// Cast a one-column batch with `type` and return the main column.
fn cast_one(array: ArrayRef, type_name: &str) -> ArrayRef {
    let config = format!(r#"{{"mappings":[{{"from":"v","type":"{type_name}"}}]}}"#);
    let out = run(&config, &single("v", array));
    assert!(out.rejected.is_none(), "{:?}", out.rejected);
    out.main.unwrap().column(0).clone()
}

#[test]
fn strings_cast_to_every_numeric_type_and_to_bool() {
    let s = || -> ArrayRef { Arc::new(StringArray::from(vec![Some("42"), None, Some("-7")])) };
    assert_eq!(
        cast_one(s(), "int").as_primitive::<Int32Type>(),
        &Int32Array::from(vec![Some(42), None, Some(-7)])
    );
    assert_eq!(
        cast_one(s(), "bigint").as_primitive::<Int64Type>(),
        &Int64Array::from(vec![Some(42), None, Some(-7)])
    );
    assert_eq!(
        cast_one(s(), "float").as_primitive::<Float32Type>(),
        &Float32Array::from(vec![Some(42.0), None, Some(-7.0)])
    );
    assert_eq!(
        cast_one(s(), "double").as_primitive::<Float64Type>(),
        &Float64Array::from(vec![Some(42.0), None, Some(-7.0)])
    );
    let bools = Arc::new(StringArray::from(vec!["true", "false"]));
    assert_eq!(
        cast_one(bools, "boolean").as_boolean(),
        &BooleanArray::from(vec![true, false])
    );
}

#[test]
fn numbers_cast_to_strings_and_between_widths() {
    let ints: ArrayRef = Arc::new(Int32Array::from(vec![Some(5), None]));
    let as_text = cast_one(ints.clone(), "string");
    let as_text: Vec<_> = as_text.as_string::<i32>().iter().collect();
    assert_eq!(as_text, [Some("5"), None]);
    assert_eq!(
        cast_one(ints, "long").as_primitive::<Int64Type>(),
        &Int64Array::from(vec![Some(5), None])
    );
    let doubles: ArrayRef = Arc::new(Float64Array::from(vec![2.75, -1.5]));
    assert_eq!(
        cast_one(doubles, "int32").as_primitive::<Int32Type>(),
        &Int32Array::from(vec![2, -1]),
        "float to integer truncates toward zero"
    );
}

#[test]
fn strings_cast_to_timestamps_and_dates_without_a_format_use_iso_8601() {
    let texts: ArrayRef = Arc::new(StringArray::from(vec![
        "2024-03-01 12:00:00",
        "2024-03-01T12:00:00+01:00",
    ]));
    let times: Vec<_> = cast_one(texts, "timestamp")
        .as_primitive::<TimestampMicrosecondType>()
        .values()
        .to_vec();
    assert_eq!(times, [1_709_294_400_000_000, 1_709_290_800_000_000]);
    let days: ArrayRef = Arc::new(StringArray::from(vec!["2024-03-01"]));
    assert_eq!(cast_one(days, "date").as_primitive::<Date32Type>().value(0), 19783);
}

#[test]
fn a_format_parses_timestamps_and_dates_with_chrono() {
    let texts: ArrayRef = Arc::new(StringArray::from(vec!["01/03/2024 12h00", "02/03/2024 00h30"]));
    let out = run(
        r#"{"mappings":[{"from":"v","to":"t","type":"timestamp","format":"%d/%m/%Y %Hh%M"},
                        {"from":"v","to":"d","type":"date","format":"%d/%m/%Y %Hh%M"}]}"#,
        &single("v", texts),
    );
    let main = out.main.unwrap();
    let times: Vec<_> = column(&main, "t")
        .as_primitive::<TimestampMicrosecondType>()
        .values()
        .to_vec();
    assert_eq!(
        times,
        [
            1_709_294_400_000_000,
            1_709_294_400_000_000 + 12 * 3_600_000_000 + 30 * 60_000_000
        ]
    );
    let days: Vec<_> = column(&main, "d").as_primitive::<Date32Type>().values().to_vec();
    assert_eq!(days, [19783, 19784]);
}

// ---- process: rejections ----

#[test]
fn rows_that_fail_a_cast_go_to_rejected_with_the_reason_and_the_others_pass() {
    let input = single(
        "count",
        Arc::new(StringArray::from(vec![
            Some("1"),
            Some("abc"),
            None,
            Some("99999999999"),
        ])),
    );
    let out = run(r#"{"mappings":[{"from":"count","type":"int32"}]}"#, &input);
    let main = out.main.unwrap();
    assert_eq!(
        main.column(0).as_primitive::<Int32Type>(),
        &Int32Array::from(vec![Some(1), None]),
        "the good row and the null row pass, in order"
    );
    let rejected = out.rejected.unwrap();
    assert_eq!(names(&rejected), ["count", REASON_COLUMN]);
    assert_eq!(
        strings(&rejected, "count"),
        [Some("abc".to_owned()), Some("99999999999".to_owned())],
        "the input rows, not the cast ones"
    );
    assert_eq!(
        strings(&rejected, REASON_COLUMN),
        [
            Some(r#"cannot cast column "count" value "abc" to int32"#.to_owned()),
            Some(r#"cannot cast column "count" value "99999999999" to int32"#.to_owned()),
        ]
    );
}

#[test]
fn a_row_failing_several_casts_gets_one_reason_naming_each() {
    let schema = Schema::new(vec![
        Field::new("a", DataType::Utf8, false),
        Field::new("b", DataType::Utf8, false),
        Field::new("c", DataType::Int64, false),
    ]);
    let input = RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(StringArray::from(vec!["x", "2"])),
            Arc::new(StringArray::from(vec!["03/2024", "2024-03-01"])),
            Arc::new(Int64Array::from(vec![1, 2])),
        ],
    )
    .unwrap();
    let out = run(
        r#"{"keep_unmapped":true,"mappings":[{"from":"a","type":"int64"},
            {"from":"b","type":"date","format":"%Y-%m-%d"}]}"#,
        &input,
    );
    let main = out.main.unwrap();
    assert_eq!(
        column(&main, "c").as_primitive::<Int64Type>(),
        &Int64Array::from(vec![2]),
        "non-null declared columns stay valid after filtering"
    );
    let rejected = out.rejected.unwrap();
    assert_eq!(
        strings(&rejected, REASON_COLUMN),
        [Some(
            r#"cannot cast column "a" value "x" to int64; cannot cast column "b" value "03/2024" to date with format "%Y-%m-%d""#
                .to_owned()
        )]
    );
}

#[test]
fn when_every_row_fails_only_a_rejected_batch_is_emitted() {
    let input = single("v", Arc::new(StringArray::from(vec!["maybe", "later"])));
    let out = run(r#"{"mappings":[{"from":"v","type":"bool"}]}"#, &input);
    assert!(out.main.is_none());
    assert_eq!(out.rejected.unwrap().num_rows(), 2);
}

#[test]
fn a_timestamp_not_matching_its_format_is_rejected_and_nulls_are_not() {
    let out = run(
        r#"{"mappings":[{"from":"timestamp","type":"timestamp","format":"%Y-%m-%d %H:%M:%S"}]}"#,
        &single("timestamp", Arc::new(StringArray::from(vec![Some("2024-03-01"), None]))),
    );
    assert_eq!(out.main.unwrap().column(0).null_count(), 1);
    assert_eq!(
        strings(&out.rejected.unwrap(), REASON_COLUMN),
        [Some(
            r#"cannot cast column "timestamp" value "2024-03-01" to timestamp with format "%Y-%m-%d %H:%M:%S""#
                .to_owned()
        )]
    );
}

#[test]
fn a_derived_int64_overflow_rejects_the_row() {
    let input = single("n", Arc::new(Int64Array::from(vec![1, i64::MAX])));
    let out = run(
        r#"{"mappings":[{"from":"n"}],"add":[{"name":"m","expr":"n * 2"}]}"#,
        &input,
    );
    let main = out.main.unwrap();
    assert_eq!(
        column(&main, "m").as_primitive::<Int64Type>(),
        &Int64Array::from(vec![2])
    );
    assert_eq!(
        strings(&out.rejected.unwrap(), REASON_COLUMN),
        [Some(
            r#"cannot compute column "m" = "n * 2": the result does not fit in int64"#.to_owned()
        )]
    );
}

// ---- process: added columns ----

#[test]
fn constant_columns_have_the_type_of_their_literal() {
    let out = run(
        r#"{"add":[{"name":"s","value":"iot"},{"name":"i","value":-3},
                   {"name":"f","value":0.5},{"name":"b","value":true}]}"#,
        &readings(),
    );
    let main = out.main.unwrap();
    assert_eq!(names(&main), ["s", "i", "f", "b"]);
    assert_eq!(strings(&main, "s"), vec![Some("iot".to_owned()); 3]);
    assert_eq!(
        column(&main, "i").as_primitive::<Int64Type>(),
        &Int64Array::from(vec![-3; 3])
    );
    assert_eq!(
        column(&main, "f").as_primitive::<Float64Type>(),
        &Float64Array::from(vec![0.5; 3])
    );
    assert_eq!(column(&main, "b").as_boolean(), &BooleanArray::from(vec![true; 3]));
}

#[test]
fn derived_columns_read_input_columns_even_unmapped_ones() {
    let out = run(
        r#"{"mappings":[{"from":"client_id"}],
            "add":[{"name":"tilt","expr":"-(pitch + yaw) / 2"},{"name":"yaw2","expr":"yaw * 2"}]}"#,
        &readings(),
    );
    let main = out.main.unwrap();
    assert_eq!(
        column(&main, "tilt").as_primitive::<Float64Type>(),
        &Float64Array::from(vec![-5.125, -2.75, -3.5])
    );
    assert_eq!(
        column(&main, "yaw2").as_primitive::<Float64Type>(),
        &Float64Array::from(vec![18.0, 16.0, 14.0])
    );
}

#[test]
fn a_batch_of_another_schema_is_invalid_input() {
    let schema = encode_schema(&readings().schema()).unwrap();
    __private::open::<Map>(r#"{"mappings":[{"from":"pitch"}]}"#.to_owned(), schema).unwrap();
    let other = single("pitch", Arc::new(Float64Array::from(vec![1.0])));
    let err = __private::process::<Map>(encode_batch(&other).unwrap()).unwrap_err();
    assert!(matches!(err, wit::ProcessError::InvalidInput(m) if m.contains("does not match")));
}

// ---- describe: errors ----

#[test]
fn an_unknown_from_column_is_named_with_the_available_columns() {
    let (at, message) = describe_err(
        r#"{"mappings":[{"from":"pitch"},{"from":"humdity"}]}"#,
        &readings().schema(),
    );
    assert_eq!(at, path(&["mappings", "1", "from"]));
    assert!(
        message.starts_with(r#"unknown column "humdity"; available columns: "client_id", "timestamp", "humidity""#),
        "{message}"
    );
}

#[test]
fn an_unknown_type_name_lists_the_valid_names() {
    let (at, message) = describe_err(
        r#"{"mappings":[{"from":"pitch","type":"decimal"}]}"#,
        &readings().schema(),
    );
    assert_eq!(at, path(&["mappings", "0", "type"]));
    assert!(message.contains(r#"unknown type "decimal""#), "{message}");
    assert!(message.contains("string, utf8, bool, boolean, int32, int, int64, long, bigint, float32, float, float64, double, timestamp, date"), "{message}");
}

#[test]
fn casts_that_make_no_sense_are_refused_at_the_type() {
    let schema = Schema::new(vec![
        Field::new("flag", DataType::Boolean, true),
        Field::new(
            "tags",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        ),
    ]);
    let (at, message) = describe_err(r#"{"mappings":[{"from":"flag","type":"timestamp"}]}"#, &schema);
    assert_eq!(at, path(&["mappings", "0", "type"]));
    assert!(
        message.contains(r#"column "flag": cannot cast Boolean to timestamp"#),
        "{message}"
    );
    let (at, message) = describe_err(
        r#"{"mappings":[{"from":"flag"},{"from":"tags","type":"int32"}]}"#,
        &schema,
    );
    assert_eq!(at, path(&["mappings", "1", "type"]));
    assert!(message.contains(r#"column "tags": cannot cast List("#), "{message}");
}

#[test]
fn a_format_needs_a_string_column_and_a_timestamp_or_date_type() {
    let schema = readings().schema();
    let (at, message) = describe_err(
        r#"{"mappings":[{"from":"pitch","type":"timestamp","format":"%s"}]}"#,
        &schema,
    );
    assert_eq!(at, path(&["mappings", "0", "format"]));
    assert!(
        message.contains("parses strings, but the column is of type Float64"),
        "{message}"
    );
    let (at, message) = describe_err(
        r#"{"mappings":[{"from":"count","type":"int32","format":"%d"}]}"#,
        &schema,
    );
    assert_eq!(at, path(&["mappings", "0", "format"]));
    assert!(message.contains("target type is int32"), "{message}");
    let (at, message) = describe_err(r#"{"mappings":[{"from":"count","format":"%d"}]}"#, &schema);
    assert_eq!(at, path(&["mappings", "0", "format"]));
    assert!(message.contains(r#"needs `type = "timestamp"`"#), "{message}");
}

#[test]
fn a_duplicate_output_name_is_reported_at_the_later_entry() {
    let schema = readings().schema();
    let (at, message) = describe_err(
        r#"{"mappings":[{"from":"pitch","to":"angle"},{"from":"yaw","to":"angle"}]}"#,
        &schema,
    );
    assert_eq!(at, path(&["mappings", "1", "to"]));
    assert_eq!(
        message,
        r#"duplicate output column "angle": mappings[0] already produces it"#
    );
    let (at, message) = describe_err(
        r#"{"mappings":[{"from":"pitch"}],"add":[{"name":"pitch","value":1}]}"#,
        &schema,
    );
    assert_eq!(at, path(&["add", "0", "name"]));
    assert!(message.contains("mappings[0] already produces it"), "{message}");
}

#[test]
fn a_rename_onto_a_passed_through_column_is_a_clash() {
    let (at, message) = describe_err(
        r#"{"keep_unmapped":true,"mappings":[{"from":"pitch","to":"yaw"}]}"#,
        &readings().schema(),
    );
    assert_eq!(at, path(&["mappings", "0", "to"]));
    assert!(
        message.contains(r#"output column "yaw" clashes with the unmapped input column"#),
        "{message}"
    );
    describe(
        r#"{"keep_unmapped":true,"drop":["yaw"],"mappings":[{"from":"pitch","to":"yaw"}]}"#,
        &readings().schema(),
    )
    .expect("dropping the input column resolves the clash");
}

#[test]
fn a_bad_expression_is_reported_with_its_position() {
    let schema = readings().schema();
    let cases = [
        ("temprature * 1.8", 1, r#"unknown column "temprature""#),
        (
            "temperature * + 32",
            15,
            "expected a number, a column or `(`, found `+`",
        ),
        (
            "temperature + client_id",
            15,
            r#"column "client_id" is of type Utf8, not a number"#,
        ),
    ];
    for (expr, position, problem) in cases {
        let config = format!(r#"{{"add":[{{"name":"ok","value":1}},{{"name":"x","expr":"{expr}"}}]}}"#);
        let (at, message) = describe_err(&config, &schema);
        assert_eq!(at, path(&["add", "1", "expr"]), "{expr}");
        assert!(
            message.starts_with(&format!("in expression {expr:?} at position {position}: {problem}")),
            "{message}"
        );
    }
}

#[test]
fn an_add_entry_needs_exactly_one_of_value_and_expr() {
    let schema = readings().schema();
    let (at, message) = describe_err(r#"{"add":[{"name":"x","value":1,"expr":"1"}]}"#, &schema);
    assert_eq!(at, path(&["add", "0"]));
    assert!(message.contains("not both"), "{message}");
    let (at, message) = describe_err(r#"{"add":[{"name":"x"}]}"#, &schema);
    assert_eq!(at, path(&["add", "0"]));
    assert!(message.contains("give `value` (a constant) or `expr`"), "{message}");
}

#[test]
fn drop_must_name_an_unmapped_input_column_and_needs_keep_unmapped() {
    let schema = readings().schema();
    let (at, message) = describe_err(r#"{"keep_unmapped":true,"drop":["yaw","roll"]}"#, &schema);
    assert_eq!(at, path(&["drop", "1"]));
    assert!(
        message.starts_with(r#"unknown column "roll"; available columns:"#),
        "{message}"
    );
    let (at, message) = describe_err(
        r#"{"keep_unmapped":true,"drop":["pitch"],"mappings":[{"from":"pitch"}]}"#,
        &schema,
    );
    assert_eq!(at, path(&["drop", "0"]));
    assert!(message.contains(r#"column "pitch" is mapped"#), "{message}");
    let (at, message) = describe_err(r#"{"drop":["yaw"],"mappings":[{"from":"pitch"}]}"#, &schema);
    assert_eq!(at, path(&["drop"]));
    assert!(message.contains("only applies with keep_unmapped = true"), "{message}");
}

#[test]
fn a_config_producing_no_columns_is_refused() {
    let (at, message) = describe_err("{}", &readings().schema());
    assert!(at.is_empty());
    assert!(message.contains("the output has no columns"), "{message}");
}

#[test]
fn a_misspelt_key_is_reported_at_the_key() {
    let (at, message) = describe_err(r#"{"mappings":[{"from":"pitch","typ":"int32"}]}"#, &readings().schema());
    // The SDK's config parser (sdk/src/config.rs) currently appends the key a second time
    // (`mappings.0.typ.typ`); its own test fails the same way. Only the prefix is ours.
    assert!(at.starts_with(&path(&["mappings", "0", "typ"])), "{at:?}");
    assert!(message.starts_with("unknown field `typ`"), "{message}");
}

#[test]
fn an_added_column_named_like_a_passed_through_column_is_a_clash() {
    let (at, message) = describe_err(
        r#"{"keep_unmapped":true,"add":[{"name":"yaw","value":1}]}"#,
        &readings().schema(),
    );
    assert_eq!(at, path(&["add", "0", "name"]));
    assert!(
        message.contains(r#"output column "yaw" clashes with the unmapped input column"#),
        "{message}"
    );
}

// ---- json ----

/// A CloudWatch Logs-like batch: a log stream name and a `message` string per row.
fn messages(messages: Vec<Option<&str>>) -> RecordBatch {
    let rows = messages.len();
    let schema = Schema::new(vec![
        Field::new("stream", DataType::Utf8, false),
        Field::new("message", DataType::Utf8, true),
    ]);
    let streams: Vec<String> = (0..rows).map(|i| format!("s-{i}")).collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(streams)),
        Arc::new(StringArray::from(messages)),
    ];
    RecordBatch::try_new(Arc::new(schema), columns).unwrap()
}

/// A config parsing `message` for `fields` (a JSON list), keeping `stream`.
fn json_config(fields: &str) -> String {
    format!(r#"{{"keep_unmapped":true,"drop":["message"],"json":[{{"from":"message","fields":{fields}}}]}}"#)
}

fn reasons(out: &Emitted) -> Vec<Option<String>> {
    strings(out.rejected.as_ref().expect("a rejected batch"), REASON_COLUMN)
}

#[test]
fn json_fields_come_after_the_passed_through_columns_and_before_add() {
    let config = r#"{"keep_unmapped":true,"drop":["message"],"mappings":[{"from":"stream","to":"log_stream"}],
        "json":[{"from":"message","fields":[
            {"name":"device","type":"string"},{"name":"value","type":"double"},
            {"name":"at","path":"meta.time","type":"timestamp","format":"%Y-%m-%dT%H:%M:%S%.fZ"},
            {"name":"n","type":"bigint"},{"name":"ok","type":"bool"},{"name":"day","type":"date"}]},
          {"from":"message","fields":[{"name":"small","path":"n","type":"int"},{"name":"f","type":"float"}]}],
        "add":[{"name":"source","value":"cloudwatch"}]}"#;
    let outputs = describe(config, &messages(vec![]).schema()).unwrap();
    let expected = Schema::new(vec![
        Field::new("log_stream", DataType::Utf8, false),
        Field::new("device", DataType::Utf8, true),
        Field::new("value", DataType::Float64, true),
        Field::new("at", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        Field::new("n", DataType::Int64, true),
        Field::new("ok", DataType::Boolean, true),
        Field::new("day", DataType::Date32, true),
        Field::new("small", DataType::Int32, true),
        Field::new("f", DataType::Float32, true),
        Field::new("source", DataType::Utf8, false),
    ]);
    assert_eq!(outputs[0].1, expected);
}

#[test]
fn json_fields_are_read_by_value_with_their_types() {
    let input = messages(vec![
        Some(
            r#"{"is_save_kinesis": true, "device": "d-3", "value": 21.5, "n": 9007199254740993,
                "small": -7, "f": 0.5, "meta": {"time": "2024-03-01T12:00:00.250Z"}}"#,
        ),
        Some(r#"{"device": 17, "value": -3, "n": 2.0, "small": 1e3, "f": 2, "is_save_kinesis": false}"#),
    ]);
    let out = run(
        &json_config(
            r#"[{"name":"device","type":"string"},{"name":"value","type":"double"},
                {"name":"n","type":"int64"},{"name":"small","type":"int32"},{"name":"f","type":"float32"},
                {"name":"at","path":"meta.time","type":"timestamp","format":"%Y-%m-%dT%H:%M:%S%.fZ"},
                {"name":"is_save_kinesis","type":"bool"}]"#,
        ),
        &input,
    );
    assert!(out.rejected.is_none(), "{:?}", out.rejected);
    let main = out.main.unwrap();
    assert_eq!(
        names(&main),
        ["stream", "device", "value", "n", "small", "f", "at", "is_save_kinesis"]
    );
    assert_eq!(
        strings(&main, "device"),
        [Some("d-3".to_owned()), Some("17".to_owned())],
        "a number is its JSON text in a string field"
    );
    assert_eq!(
        column(&main, "value").as_primitive::<Float64Type>(),
        &Float64Array::from(vec![21.5, -3.0])
    );
    assert_eq!(
        column(&main, "n").as_primitive::<Int64Type>(),
        &Int64Array::from(vec![9_007_199_254_740_993, 2]),
        "integers are exact beyond 2^53, and 2.0 is the integer 2"
    );
    assert_eq!(
        column(&main, "small").as_primitive::<Int32Type>(),
        &Int32Array::from(vec![-7, 1000])
    );
    assert_eq!(
        column(&main, "f").as_primitive::<Float32Type>(),
        &Float32Array::from(vec![0.5, 2.0])
    );
    let at: Vec<_> = column(&main, "at")
        .as_primitive::<TimestampMicrosecondType>()
        .iter()
        .collect();
    // 2024-03-01T12:00:00.250Z
    assert_eq!(at, [Some(1_709_294_400_250_000), None]);
    assert_eq!(
        column(&main, "is_save_kinesis").as_boolean(),
        &BooleanArray::from(vec![true, false])
    );
}

#[test]
fn a_null_message_an_absent_field_and_json_null_give_nulls() {
    let input = messages(vec![
        None,
        Some(r#"{"device": "d-1"}"#),
        Some(r#"{"device": null, "value": null, "meta": null}"#),
        Some(r#"{"meta": {}}"#),
    ]);
    let out = run(
        &json_config(
            r#"[{"name":"device","type":"string"},{"name":"value","type":"double"},
                {"name":"at","path":"meta.time","type":"timestamp"}]"#,
        ),
        &input,
    );
    assert!(out.rejected.is_none(), "{:?}", out.rejected);
    let main = out.main.unwrap();
    assert_eq!(main.num_rows(), 4);
    assert_eq!(strings(&main, "device"), [None, Some("d-1".to_owned()), None, None]);
    assert_eq!(column(&main, "value").null_count(), 4);
    assert_eq!(column(&main, "at").null_count(), 4);
}

#[test]
fn json_strings_convert_as_a_string_column_casts_them() {
    let input = messages(vec![
        Some(r#"{"value": "21.5", "n": "42", "ok": "true", "at": "2024-03-01 12:00:00", "day": "2024-03-01"}"#),
        Some(r#"{"value": 1.5, "n": 7, "ok": false, "at": null, "day": null}"#),
    ]);
    let out = run(
        &json_config(
            r#"[{"name":"value","type":"double"},{"name":"n","type":"long"},{"name":"ok","type":"boolean"},
                {"name":"at","type":"timestamp"},{"name":"day","type":"date"}]"#,
        ),
        &input,
    );
    assert!(out.rejected.is_none(), "{:?}", out.rejected);
    let main = out.main.unwrap();
    assert_eq!(
        column(&main, "value").as_primitive::<Float64Type>(),
        &Float64Array::from(vec![21.5, 1.5])
    );
    assert_eq!(
        column(&main, "n").as_primitive::<Int64Type>(),
        &Int64Array::from(vec![42, 7])
    );
    assert_eq!(column(&main, "ok").as_boolean(), &BooleanArray::from(vec![true, false]));
    let at: Vec<_> = column(&main, "at")
        .as_primitive::<TimestampMicrosecondType>()
        .iter()
        .collect();
    assert_eq!(at, [Some(1_709_294_400_000_000), None]);
    let days: Vec<_> = column(&main, "day").as_primitive::<Date32Type>().iter().collect();
    assert_eq!(days, [Some(19783), None]);
}

#[test]
fn a_message_that_is_not_a_json_object_rejects_its_row() {
    let input = messages(vec![
        Some(r#"{"value": 1}"#),
        Some("not json"),
        Some(r#"{"value": 2"#),
        Some("[1, 2]"),
        Some(r#""just text""#),
    ]);
    let out = run(&json_config(r#"[{"name":"value","type":"int64"}]"#), &input);
    let main = out.main.as_ref().unwrap();
    assert_eq!(
        column(main, "value").as_primitive::<Int64Type>(),
        &Int64Array::from(vec![1])
    );
    let rejected = out.rejected.as_ref().unwrap();
    assert_eq!(names(rejected), ["stream", "message", REASON_COLUMN], "the input rows");
    assert_eq!(
        strings(rejected, "stream"),
        [
            Some("s-1".to_owned()),
            Some("s-2".to_owned()),
            Some("s-3".to_owned()),
            Some("s-4".to_owned())
        ]
    );
    assert_eq!(
        reasons(&out),
        [
            Some(r#"column "message" is not a JSON object: expected ident at line 1 column 2"#.to_owned()),
            Some(
                r#"column "message" is not a JSON object: EOF while parsing an object at line 1 column 11"#.to_owned()
            ),
            Some(r#"column "message" is not a JSON object: found [1,2]"#.to_owned()),
            Some(r#"column "message" is not a JSON object: found "just text""#.to_owned()),
        ]
    );
}

#[test]
fn a_field_of_the_wrong_type_or_unconvertible_rejects_its_row_with_the_value() {
    let input = messages(vec![
        Some(r#"{"value": "abc", "n": 1}"#),
        Some(r#"{"value": true, "n": 2.7}"#),
        Some(r#"{"value": 1, "n": 9223372036854775808, "small": 2147483648}"#),
        Some(r#"{"device": {"id": 3}, "small": "x"}"#),
        Some(r#"{"meta": "2024", "f": 1e39}"#),
        Some(r#"{"value": 2, "n": 3, "small": 4}"#),
    ]);
    let out = run(
        &json_config(
            r#"[{"name":"device","type":"string"},{"name":"value","type":"double"},{"name":"n","type":"int64"},
                {"name":"small","type":"int"},{"name":"f","type":"float"},
                {"name":"at","path":"meta.time","type":"timestamp","format":"%Y-%m-%d"}]"#,
        ),
        &input,
    );
    let main = out.main.as_ref().unwrap();
    assert_eq!(strings(main, "stream"), [Some("s-5".to_owned())]);
    assert_eq!(
        column(main, "n").as_primitive::<Int64Type>(),
        &Int64Array::from(vec![3])
    );
    assert_eq!(
        reasons(&out),
        [
            Some(r#"column "message" field "value": expected a double, found "abc""#.to_owned()),
            Some(
                r#"column "message" field "value": expected a double, found true; column "message" field "n": expected an int64, found 2.7"#
                    .to_owned()
            ),
            Some(
                r#"column "message" field "n": expected an int64, found 9223372036854775808; column "message" field "small": expected an int, found 2147483648"#
                    .to_owned()
            ),
            Some(
                r#"column "message" field "device": expected a string, found {"id":3}; column "message" field "small": expected an int, found "x""#
                    .to_owned()
            ),
            Some(
                r#"column "message" field "f": expected a float, found 1e+39; column "message" field "meta.time": expected an object at "meta", found "2024""#
                    .to_owned()
            ),
        ]
    );
}

#[test]
fn a_timestamp_not_matching_its_format_is_rejected_quoting_a_long_value_cut_short() {
    let long = "x".repeat(300);
    let good = r#"{"meta": {"time": "2024-03-01T12:00:00Z"}}"#;
    let bad = format!(r#"{{"meta": {{"time": "{long}"}}}}"#);
    let out = run(
        &json_config(r#"[{"name":"at","path":"meta.time","type":"timestamp","format":"%Y-%m-%dT%H:%M:%S%.fZ"}]"#),
        &messages(vec![Some(good), Some(&bad)]),
    );
    let at: Vec<_> = column(out.main.as_ref().unwrap(), "at")
        .as_primitive::<TimestampMicrosecondType>()
        .iter()
        .collect();
    assert_eq!(at, [Some(1_709_294_400_000_000)]);
    assert_eq!(
        reasons(&out),
        [Some(format!(
            r#"column "message" field "meta.time": expected a timestamp with format "%Y-%m-%dT%H:%M:%S%.fZ", found "{}"…"#,
            "x".repeat(100)
        ))]
    );
}

#[test]
fn json_failures_join_the_cast_failures_of_the_same_row() {
    let out = run(
        r#"{"mappings":[{"from":"stream","type":"int"}],
            "json":[{"from":"message","fields":[{"name":"v","type":"int64"}]}]}"#,
        &messages(vec![Some(r#"{"v": 0.5}"#)]),
    );
    assert!(out.main.is_none());
    assert_eq!(
        reasons(&out),
        [Some(
            r#"cannot cast column "stream" value "s-0" to int32; column "message" field "v": expected an int64, found 0.5"#
                .to_owned()
        )]
    );
}

#[test]
fn json_errors_are_reported_at_the_key() {
    let schema = messages(vec![]).schema();
    let with_stream_int = Schema::new(vec![Field::new("count", DataType::Int64, true)]);
    let cases: Vec<(String, &Schema, Vec<&str>, &str)> = vec![
        (
            r#"{"json":[{"from":"msg","fields":[{"name":"a","type":"int"}]}]}"#.into(),
            &schema,
            vec!["json", "0", "from"],
            r#"unknown column "msg"; available columns: "stream", "message""#,
        ),
        (
            r#"{"json":[{"from":"count","fields":[{"name":"a","type":"int"}]}]}"#.into(),
            &with_stream_int,
            vec!["json", "0", "from"],
            r#"`json` parses strings, but column "count" is of type Int64"#,
        ),
        (
            r#"{"json":[{"from":"message","fields":[]}]}"#.into(),
            &schema,
            vec!["json", "0", "fields"],
            r#"list at least one field to read, like { name = "device", type = "string" }"#,
        ),
        (
            json_config(r#"[{"name":"a","type":"int"},{"name":"b","type":"decimal"}]"#),
            &schema,
            vec!["json", "0", "fields", "1", "type"],
            r#"unknown type "decimal"; expected one of: string, utf8, bool, boolean, int32, int, int64, long, bigint, float32, float, float64, double, timestamp, date"#,
        ),
        (
            json_config(r#"[{"name":"a","type":"int","format":"%Y"}]"#),
            &schema,
            vec!["json", "0", "fields", "0", "format"],
            r#"field "a": `format` parses strings into timestamps or dates, but the target type is int32"#,
        ),
        (
            json_config(r#"[{"name":"a","type":"timestamp","format":"%Y-%Q"}]"#),
            &schema,
            vec!["json", "0", "fields", "0", "format"],
            r#"field "a": invalid format "%Y-%Q": "#,
        ),
        (
            json_config(r#"[{"name":"a","path":"meta..time","type":"timestamp"}]"#),
            &schema,
            vec!["json", "0", "fields", "0", "path"],
            r#"path "meta..time" has an empty key; give object keys separated by single dots, like "meta.time""#,
        ),
        (
            json_config(r#"[{"name":"a.","type":"timestamp"}]"#),
            &schema,
            vec!["json", "0", "fields", "0", "name"],
            r#"path "a." has an empty key"#,
        ),
        (
            json_config(r#"[{"name":"a","type":"int"},{"name":"a","path":"b","type":"int"}]"#),
            &schema,
            vec!["json", "0", "fields", "1", "name"],
            r#"duplicate output column "a": json[0].fields[0] already produces it"#,
        ),
        (
            json_config(r#"[{"name":"stream","type":"string"}]"#),
            &schema,
            vec!["json", "0", "fields", "0", "name"],
            r#"output column "stream" clashes with the unmapped input column of that name"#,
        ),
        (
            r#"{"json":[{"from":"message","fields":[{"name":"a","type":"int"}]}],"add":[{"name":"a","value":1}]}"#
                .into(),
            &schema,
            vec!["add", "0", "name"],
            r#"duplicate output column "a": json[0].fields[0] already produces it"#,
        ),
    ];
    for (config, schema, at, start) in cases {
        let (got_at, message) = describe_err(&config, schema);
        assert_eq!(got_at, path(&at), "{config}");
        assert!(message.starts_with(start), "{config}: {message}");
    }
    let (at, message) = describe_err(r#"{"json":[{"from":"message","fields":[{"name":"a"}]}]}"#, &schema);
    assert!(at.starts_with(&path(&["json", "0", "fields", "0"])), "{at:?}");
    assert!(message.starts_with("missing field `type`"), "{message}");
}
