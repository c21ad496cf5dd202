//! End-to-end tests through the SDK glue (`open` then `process`), checking which rows
//! survive by their `id`.

use std::sync::Arc;

use sluice_sdk::__private;
use sluice_sdk::arrow::array::{
    ArrayRef, AsArray, BooleanArray, Date32Array, Decimal128Array, DictionaryArray, Float32Array, Float64Array,
    Int32Array, Int64Array, LargeStringArray, StringArray, StringViewArray, TimestampMicrosecondArray,
    TimestampSecondArray,
};
use sluice_sdk::arrow::compute::take_record_batch;
use sluice_sdk::arrow::datatypes::{Int32Type, Int64Type};
use sluice_sdk::testing::{host_batch, host_schema};
use sluice_sdk::{ROW_COLUMN, decode_batch, encode_batch, encode_schema};

use super::*;

/// 2020-04-16T00:00:00Z in seconds.
const APRIL_16: i64 = 1_586_995_200;

fn sensors() -> RecordBatch {
    let micros = |secs: i64| secs * 1_000_000;
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("id", Arc::new(Int64Array::from(vec![0, 1, 2, 3, 4, 5]))),
        (
            "temperature",
            Arc::new(Float64Array::from(vec![
                Some(20.0),
                Some(25.0),
                Some(30.5),
                Some(26.0),
                None,
                Some(-3.5),
            ])),
        ),
        (
            "humidity",
            Arc::new(Float64Array::from(vec![
                Some(50.0),
                None,
                Some(40.0),
                None,
                Some(60.0),
                Some(70.0),
            ])),
        ),
        (
            "device_id",
            Arc::new(StringArray::from(vec![
                Some("rasp-1"),
                Some("rasp-2"),
                Some("esp-1"),
                Some("esp-2"),
                None,
                Some("it's"),
            ])),
        ),
        (
            "count",
            Arc::new(Int32Array::from(vec![
                Some(1),
                Some(2),
                None,
                Some(4),
                Some(5),
                Some(-1),
            ])),
        ),
        (
            "ok",
            Arc::new(BooleanArray::from(vec![
                Some(true),
                Some(false),
                None,
                Some(true),
                Some(false),
                Some(true),
            ])),
        ),
        (
            "ts",
            Arc::new(TimestampMicrosecondArray::from(vec![
                Some(micros(APRIL_16 + 10 * 3600)),
                Some(micros(APRIL_16 + 11 * 3600 + 33 * 60 + 23)),
                Some(micros(APRIL_16 + 12 * 3600)),
                Some(micros(APRIL_16 + 24 * 3600)),
                None,
                Some(micros(1_546_300_800)),
            ])),
        ),
        ("odd name", Arc::new(Int64Array::from(vec![1, 1, 0, 0, 1, 0]))),
        (
            "tag",
            Arc::new(DictionaryArray::<Int32Type>::from_iter([
                Some("alpha"),
                Some("beta"),
                Some("alpha"),
                None,
                Some("gamma"),
                Some("beta"),
            ])),
        ),
    ];
    RecordBatch::try_from_iter(columns).unwrap()
}

/// JSON text of `{"predicate": <predicate>}`.
fn config_json(predicate: &str) -> String {
    let mut json = String::from("{\"predicate\":\"");
    for c in predicate.chars() {
        match c {
            '"' => json.push_str("\\\""),
            '\\' => json.push_str("\\\\"),
            c if (c as u32) < 0x20 => json.push_str(&format!("\\u{:04x}", c as u32)),
            c => json.push(c),
        }
    }
    json.push_str("\"}");
    json
}

/// The rows of `batch` the filter emits, concatenated (an empty batch when none).
fn run(predicate: &str, batch: &RecordBatch) -> RecordBatch {
    let schema = encode_schema(&batch.schema()).unwrap();
    __private::open::<Filter>(config_json(predicate), schema).unwrap_or_else(|e| panic!("{predicate}: {e:?}"));
    let out =
        __private::process::<Filter>(encode_batch(batch).unwrap()).unwrap_or_else(|e| panic!("{predicate}: {e:?}"));
    let batches: Vec<RecordBatch> = out
        .into_iter()
        .map(|o| {
            assert_eq!(o.output, "main");
            let (rows, lineage) = host_batch("main", decode_batch(o.batch.clone()).unwrap());
            let lineage = lineage.expect("the filter's rows name their input rows");
            assert_eq!(
                take_record_batch(batch, &lineage).unwrap(),
                rows,
                "{predicate}: lineage"
            );
            rows
        })
        .collect();
    sluice_sdk::arrow::compute::concat_batches(&batch.schema(), &batches).unwrap()
}

/// The ids of the sensor rows that survive `predicate`.
fn kept(predicate: &str) -> Vec<i64> {
    let out = run(predicate, &sensors());
    out.column_by_name("id")
        .unwrap()
        .as_primitive::<Int64Type>()
        .values()
        .to_vec()
}

fn describe_error(predicate: &str) -> ConfigError {
    let config = Config {
        predicate: predicate.to_owned(),
    };
    Filter::describe(&config, &sensors().schema()).unwrap_err()
}

#[test]
fn every_comparison_operator_keeps_the_matching_rows() {
    assert_eq!(kept("temperature > 25"), [2, 3]);
    assert_eq!(kept("temperature >= 25"), [1, 2, 3]);
    assert_eq!(kept("temperature < 25"), [0, 5]);
    assert_eq!(kept("temperature <= 25"), [0, 1, 5]);
    assert_eq!(kept("temperature = 25"), [1]);
    assert_eq!(kept("temperature == 25"), [1]);
    assert_eq!(kept("temperature != 25"), [0, 2, 3, 5]);
    assert_eq!(kept("temperature <> 25"), [0, 2, 3, 5]);
}

#[test]
fn a_literal_may_stand_on_the_left() {
    assert_eq!(kept("25 < temperature"), [2, 3]);
    assert_eq!(kept("-1 = count"), [5]);
}

#[test]
fn negative_and_exponent_literals_compare_as_numbers() {
    assert_eq!(kept("temperature < -3.4"), [5]);
    assert_eq!(kept("temperature > 2.6e1"), [2]);
}

#[test]
fn a_float_literal_against_an_integer_column_compares_as_float() {
    assert_eq!(kept("count > 1.5"), [1, 3, 4]);
    assert_eq!(kept("count = 2.0"), [1]);
    assert_eq!(kept("count < 1.5"), [0, 5]);
}

#[test]
fn an_integer_literal_beyond_the_column_range_still_compares_correctly() {
    assert_eq!(kept("count < 10000000000"), [0, 1, 3, 4, 5]);
    assert_eq!(kept("count > -10000000000 and count < 0"), [5]);
}

#[test]
fn two_columns_of_different_numeric_types_are_compared() {
    assert_eq!(kept("count < temperature"), [0, 1, 3]);
    assert_eq!(kept("count > id"), [0, 1, 3, 4]);
    assert_eq!(kept("id >= count"), [5]);
}

#[test]
fn strings_compare_by_value_and_order() {
    assert_eq!(kept("device_id = 'esp-1'"), [2]);
    assert_eq!(kept("device_id > 'esp-2'"), [0, 1, 5]);
    assert_eq!(kept("device_id = \"rasp-2\""), [1]);
}

#[test]
fn a_doubled_quote_matches_a_quote_in_the_data() {
    assert_eq!(kept("device_id = 'it''s'"), [5]);
    assert_eq!(kept("device_id = \"it's\""), [5]);
}

#[test]
fn contains_starts_with_and_ends_with_match_substrings() {
    assert_eq!(kept("device_id contains '-'"), [0, 1, 2, 3]);
    assert_eq!(kept("device_id starts_with 'rasp'"), [0, 1]);
    assert_eq!(kept("device_id ends_with '2'"), [1, 3]);
    assert_eq!(kept("device_id CONTAINS 'sp-1'"), [0, 2]);
}

#[test]
fn a_negated_string_test_still_drops_null_strings() {
    assert_eq!(kept("device_id not contains 'esp'"), [0, 1, 5]);
    assert_eq!(kept("not device_id starts_with 'rasp'"), [2, 3, 5]);
}

#[test]
fn booleans_compare_with_true_and_false() {
    assert_eq!(kept("ok = true"), [0, 3, 5]);
    assert_eq!(kept("ok != true"), [1, 4]);
    assert_eq!(kept("ok = FALSE"), [1, 4]);
}

#[test]
fn is_null_and_is_not_null_test_for_missing_values() {
    assert_eq!(kept("humidity is null"), [1, 3]);
    assert_eq!(kept("humidity is not null"), [0, 2, 4, 5]);
    assert_eq!(kept("ok IS NULL"), [2]);
}

#[test]
fn a_comparison_with_a_null_value_drops_the_row_even_under_not() {
    assert_eq!(kept("not (temperature > 25)"), [0, 1, 5]);
    assert_eq!(kept("not temperature <= 25"), [2, 3]);
}

#[test]
fn or_and_and_follow_three_valued_logic() {
    // null or true = true; null or false = null (dropped).
    assert_eq!(kept("humidity > 45 or temperature > 25"), [0, 2, 3, 4, 5]);
    // null and false = false; null and true = null (dropped).
    assert_eq!(kept("humidity > 45 and temperature < 100"), [0, 5]);
    assert_eq!(kept("temperature > 25 or humidity is null"), [1, 2, 3]);
}

#[test]
fn and_binds_tighter_than_or() {
    assert_eq!(kept("ok = false or id = 0 and id = 1"), [1, 4]);
    assert_eq!(kept("(ok = false or id = 0) and id = 1"), [1]);
}

#[test]
fn not_binds_tighter_than_and() {
    assert_eq!(kept("not temperature > 25 and ok = true or id = 4"), [0, 4, 5]);
    assert_eq!(kept("not (temperature > 25 and ok = true or id = 4)"), [0, 1, 5]);
    assert_eq!(kept("not not id = 2"), [2]);
}

#[test]
fn the_example_predicate_from_the_docs_works() {
    assert_eq!(
        kept("temperature > 25 and (device_id starts_with 'rasp' or humidity is null)"),
        [3]
    );
}

#[test]
fn in_keeps_rows_equal_to_any_listed_value() {
    assert_eq!(kept("id in (1, 3, 5)"), [1, 3, 5]);
    assert_eq!(kept("device_id in ('esp-1', 'rasp-2')"), [1, 2]);
    assert_eq!(kept("temperature in (25, 30.5)"), [1, 2]);
    assert_eq!(kept("count in (1, 2.5, 4)"), [0, 3]);
    assert_eq!(kept("count in (1, 100000)"), [0]);
}

#[test]
fn not_in_keeps_other_rows_but_drops_nulls() {
    assert_eq!(kept("count not in (1, 2)"), [3, 4, 5]);
    assert_eq!(kept("device_id NOT IN ('esp-1')"), [0, 1, 3, 5]);
}

#[test]
fn timestamps_compare_with_string_literals() {
    assert_eq!(kept("ts > '2020-04-16 11:33:23'"), [2, 3]);
    assert_eq!(kept("ts >= '2020-04-16T11:33:23Z'"), [1, 2, 3]);
    assert_eq!(kept("ts < '2020-01-01'"), [5]);
    assert_eq!(kept("'2020-04-16 12:00:00' = ts"), [2]);
    assert_eq!(kept("ts < '2020-04-16T12:00:00+02:00'"), [5]);
    assert_eq!(kept("ts <= '2020-04-16T12:00:00+02:00'"), [0, 5]);
}

#[test]
fn timestamps_with_a_zone_read_naive_literals_in_that_zone() {
    let secs = vec![APRIL_16 + 10 * 3600, APRIL_16 + 12 * 3600];
    for (zone, literal) in [
        ("+02:00", "2020-04-16 13:00:00"),
        ("UTC", "2020-04-16 11:00:00"),
        ("Europe/Paris", "2020-04-16 11:00:00"),
    ] {
        let ts = TimestampSecondArray::from(secs.clone()).with_timezone(zone);
        let batch = RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(vec![0, 1])) as ArrayRef),
            ("ts", Arc::new(ts) as ArrayRef),
        ])
        .unwrap();
        let out = run(&format!("ts > '{literal}'"), &batch);
        assert_eq!(out.num_rows(), 1, "{zone}");
        let id = out.column(0).as_primitive::<Int64Type>().value(0);
        assert_eq!(id, 1, "{zone}");
    }
}

#[test]
fn a_backquoted_column_name_may_contain_a_space() {
    assert_eq!(kept("`odd name` = 1"), [0, 1, 4]);
}

#[test]
fn dictionary_encoded_strings_are_compared_by_value() {
    assert_eq!(kept("tag = 'beta'"), [1, 5]);
    assert_eq!(kept("tag starts_with 'a' or tag in ('gamma')"), [0, 2, 4]);
    assert_eq!(kept("tag = device_id or tag = 'alpha'"), [0, 2]);
}

#[test]
fn the_output_has_the_input_schema_and_every_column_filtered() {
    let input = sensors();
    let out = run("id = 3", &input);
    assert_eq!(out.schema(), input.schema());
    assert_eq!(out.num_rows(), 1);
    let device = out.column_by_name("device_id").unwrap().as_string::<i32>();
    assert_eq!(device.value(0), "esp-2");
}

#[test]
fn a_batch_where_every_row_passes_is_emitted_whole() {
    let input = sensors();
    assert_eq!(run("id >= 0", &input), input);
}

#[test]
fn a_batch_where_no_row_passes_emits_nothing() {
    let input = sensors();
    let schema = encode_schema(&input.schema()).unwrap();
    __private::open::<Filter>(config_json("id > 100"), schema).unwrap();
    let out = __private::process::<Filter>(encode_batch(&input).unwrap()).unwrap();
    assert!(out.is_empty());
}

#[test]
fn a_batch_with_another_schema_is_invalid_input() {
    let input = sensors();
    __private::open::<Filter>(config_json("id > 1"), encode_schema(&input.schema()).unwrap()).unwrap();
    let other = RecordBatch::try_from_iter([("id", Arc::new(Int32Array::from(vec![1, 2])) as ArrayRef)]).unwrap();
    let err = __private::process::<Filter>(encode_batch(&other).unwrap()).unwrap_err();
    assert!(
        matches!(
            err,
            __private::bindings::exports::sluice::transform::transform::ProcessError::InvalidInput(_)
        ),
        "{err:?}"
    );
}

#[test]
fn describe_declares_main_with_the_input_schema() {
    let schema = sensors().schema();
    let description = __private::describe::<Filter>(config_json("id > 1"), encode_schema(&schema).unwrap()).unwrap();
    assert_eq!(description.outputs.len(), 1);
    assert_eq!(description.outputs[0].name, "main");
    let declared = sluice_sdk::decode_schema(&description.outputs[0].schema).unwrap();
    assert_eq!(host_schema("main", &declared), *schema);
    // Its rows name their input rows: the contract's lineage column comes last.
    assert_eq!(declared.fields().last().unwrap().name(), ROW_COLUMN);
    assert_eq!(description.state_format, None);
}

#[test]
fn describe_names_an_unknown_column_and_lists_the_available_ones() {
    let err = describe_error("temprature > 25");
    assert_eq!(err.path, ["predicate"]);
    assert_eq!(
        err.message,
        "unknown column \"temprature\" at position 0; available columns: \"id\", \"temperature\", \"humidity\", \"device_id\", \"count\", \"ok\", \"ts\", \"odd name\", \"tag\""
    );
}

#[test]
fn describe_refuses_a_string_column_against_a_number() {
    let err = describe_error("id > 1 and device_id = 25");
    assert_eq!(err.path, ["predicate"]);
    assert_eq!(
        err.message,
        "type mismatch: column \"device_id\" (at position 11) is Utf8 but 25 (at position 23) is an integer literal"
    );
}

#[test]
fn describe_refuses_contains_on_a_numeric_column() {
    let err = describe_error("temperature contains '2'");
    assert_eq!(err.path, ["predicate"]);
    assert_eq!(
        err.message,
        "\"contains\" needs a string column, but column \"temperature\" (at position 0) is Float64"
    );
}

#[test]
fn describe_refuses_mismatched_in_list_values_and_columns() {
    let err = describe_error("count in (1, 'two')");
    assert!(err.message.contains("is Int32 but 'two'"), "{}", err.message);
    let err = describe_error("ok = device_id");
    assert!(
        err.message.contains("(Boolean) with column \"device_id\" (Utf8)"),
        "{}",
        err.message
    );
    let err = describe_error("ts > 'noon'");
    assert!(
        err.message.starts_with("'noon' (at position 5) is not a valid"),
        "{}",
        err.message
    );
}

#[test]
fn describe_reports_a_parse_error_with_its_position() {
    let err = describe_error("temperature 25");
    assert_eq!(err.path, ["predicate"]);
    assert_eq!(
        err.message,
        "expected a comparison operator after column \"temperature\" at position 12, found \"25\""
    );
}

#[test]
fn a_missing_predicate_or_an_unknown_key_is_a_config_error() {
    let schema = encode_schema(&sensors().schema()).unwrap();
    let err = __private::describe::<Filter>("{}".into(), schema.clone()).unwrap_err();
    assert!(err.message.contains("missing field `predicate`"), "{}", err.message);
    let err = __private::describe::<Filter>(r#"{"predicate":"id > 1","where":"x"}"#.into(), schema).unwrap_err();
    assert_eq!(err.path.last().map(String::as_str), Some("where"));
    assert!(err.message.starts_with("unknown field `where`"), "{}", err.message);
}

#[test]
fn a_predicate_whose_columns_are_all_null_keeps_nothing() {
    let batch = RecordBatch::try_from_iter([("x", Arc::new(Int64Array::from(vec![None, None])) as ArrayRef)]).unwrap();
    assert_eq!(run("x = 1 or x != 1", &batch).num_rows(), 0);
    assert_eq!(run("x is null", &batch).num_rows(), 2);
}

#[test]
fn other_string_encodings_support_every_string_operator() {
    let values = vec![Some("apple"), None, Some("banana"), Some("cherry")];
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("id", Arc::new(Int64Array::from(vec![0, 1, 2, 3]))),
        ("large", Arc::new(LargeStringArray::from(values.clone()))),
        ("view", Arc::new(StringViewArray::from(values))),
    ];
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let ids = |predicate: &str| -> Vec<i64> {
        let out = run(predicate, &batch);
        out.column(0).as_primitive::<Int64Type>().values().to_vec()
    };
    for col in ["large", "view"] {
        assert_eq!(ids(&format!("{col} = 'banana'")), [2], "{col}");
        assert_eq!(ids(&format!("{col} >= 'banana'")), [2, 3], "{col}");
        assert_eq!(ids(&format!("{col} contains 'an'")), [2], "{col}");
        assert_eq!(ids(&format!("{col} starts_with 'ch'")), [3], "{col}");
        assert_eq!(ids(&format!("{col} ends_with 'e'")), [0], "{col}");
        assert_eq!(ids(&format!("{col} in ('apple', 'cherry')")), [0, 3], "{col}");
    }
    assert_eq!(ids("large = view"), [0, 2, 3]);
}

#[test]
fn float32_decimal_and_date_columns_compare_with_literals() {
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("id", Arc::new(Int64Array::from(vec![0, 1, 2]))),
        ("f32", Arc::new(Float32Array::from(vec![0.1, 0.2, 0.3]))),
        (
            "price",
            Arc::new(
                Decimal128Array::from(vec![1999, 500, 2000])
                    .with_precision_and_scale(10, 2)
                    .unwrap(),
            ),
        ),
        // 2020-04-15, 2020-04-16, 2020-04-17 as days since the epoch.
        ("day", Arc::new(Date32Array::from(vec![18367, 18368, 18369]))),
    ];
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let ids = |predicate: &str| -> Vec<i64> {
        let out = run(predicate, &batch);
        out.column(0).as_primitive::<Int64Type>().values().to_vec()
    };
    assert_eq!(ids("f32 = 0.1"), [0]);
    assert_eq!(ids("f32 > 0.1"), [1, 2]);
    assert_eq!(ids("price = 19.99"), [0]);
    assert_eq!(ids("price >= 19.99"), [0, 2]);
    assert_eq!(ids("price < 10"), [1]);
    assert_eq!(ids("day = '2020-04-16'"), [1]);
    assert_eq!(ids("day > '2020-04-15'"), [1, 2]);
}

/// The columns the filter says it reads for `predicate` over the sensor rows, as the host
/// sends them: in input order.
fn read_columns(predicate: &str) -> Vec<usize> {
    let schema = sensors().schema();
    let reads = __private::reads::<Filter>(config_json(predicate), encode_schema(&schema).unwrap())
        .unwrap()
        .expect("the filter names the columns it reads");
    let mut columns: Vec<usize> = reads.iter().map(|c| schema.index_of(c).unwrap()).collect();
    columns.sort_unstable();
    columns
}

#[test]
fn the_filter_reads_only_the_columns_its_predicate_names() {
    assert_eq!(read_columns("temperature > 25"), [1]);
    assert_eq!(
        read_columns("id = count or (humidity is null and not id in (1, 2))"),
        [0, 2, 4]
    );
    assert_eq!(read_columns("device_id starts_with 'esp' and `odd name` = 7"), [3, 7]);
}

#[test]
fn sent_only_the_columns_it_reads_the_filter_keeps_the_same_rows() {
    let input = sensors();
    for predicate in [
        "temperature > 25",
        "id = count or (humidity is null and not id in (1, 2))",
        "device_id starts_with 'esp' or ts > '2020-04-16 00:00:30'",
        "ok = true",
    ] {
        let columns = read_columns(predicate);
        let narrow = input.project(&columns).unwrap();
        // Declared under the narrower input: those columns, carried with lineage.
        let description =
            __private::describe::<Filter>(config_json(predicate), encode_schema(&narrow.schema()).unwrap()).unwrap();
        let declared = sluice_sdk::decode_schema(&description.outputs[0].schema).unwrap();
        assert_eq!(host_schema("main", &declared), *narrow.schema(), "{predicate}");
        let whole = run(predicate, &input);
        assert!(whole.num_rows() > 0, "{predicate} keeps some rows");
        assert_eq!(run(predicate, &narrow), whole.project(&columns).unwrap(), "{predicate}");
    }
}
