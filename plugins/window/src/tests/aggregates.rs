//! Every aggregate function's value, type and null handling, end to end.

use sluice_sdk::arrow::array::{
    Date32Array, Float32Array, StringViewArray, TimestampMillisecondArray, TimestampSecondArray, UInt64Array,
};

use super::*;

fn tumbling(aggregates: &str) -> String {
    config(&format!(
        r#""window":{{"type":"tumbling","size":"5s"}},"group_by":["ticker"],"aggregates":{aggregates}"#
    ))
}

#[test]
fn every_function_skips_nulls_and_gives_null_when_it_saw_no_value() {
    let config = tumbling(
        r#"[{"fn":"count"},{"fn":"count","column":"price"},{"fn":"sum","column":"qty"},{"fn":"sum","column":"price"},
            {"fn":"avg","column":"price"},{"fn":"avg","column":"qty"},{"fn":"min","column":"price"},
            {"fn":"max","column":"price"},{"fn":"first","column":"price"},{"fn":"last","column":"price"},
            {"fn":"first","column":"qty"},{"fn":"last","column":"qty"}]"#,
    );
    let batch = trades(&[
        (Some(1_000), Some("A"), Some(10.0), Some(5)),
        (Some(2_000), Some("A"), None, None),
        (Some(500), Some("A"), Some(30.0), Some(-1)),
        (Some(3_000), Some("A"), Some(20.0), None),
        (Some(100), Some("B"), None, None),
    ]);
    let out = run(&config, &trades_schema(), &[Step::Batch(batch), Step::Finish]);
    assert_eq!(
        out.main,
        strings([
            "0..5000 A 4 3 4 60.0 20.0 2.0 10.0 30.0 30.0 20.0 -1 5",
            "0..5000 B 1 0 null null null null null null null null null null",
        ])
    );
}

#[test]
fn aggregates_accumulate_across_batches() {
    let config = tumbling(r#"[{"fn":"avg","column":"price","as":"avg"},{"fn":"max","column":"qty","as":"max"}]"#);
    let first = trades(&[(Some(1_000), Some("A"), Some(1.0), Some(3))]);
    let second = trades(&[
        (Some(2_000), Some("A"), Some(2.0), Some(9)),
        (Some(3_000), Some("A"), Some(6.0), Some(-4)),
    ]);
    let out = run(
        &config,
        &trades_schema(),
        &[Step::Batch(first), Step::Batch(second), Step::Finish],
    );
    assert_eq!(out.main, strings(["0..5000 A 3.0 9"]));
}

#[test]
fn min_max_first_and_last_keep_the_input_type() {
    let schema = Schema::new(vec![
        Field::new("event_time", DataType::Timestamp(TimeUnit::Millisecond, None), false),
        Field::new("ticker", DataType::Utf8View, false),
        Field::new("at", DataType::Timestamp(TimeUnit::Second, Some("+02:00".into())), true),
        Field::new("day", DataType::Date32, true),
        Field::new("big", DataType::UInt64, true),
        Field::new("ratio", DataType::Float32, true),
    ]);
    let batch = RecordBatch::try_new(
        Arc::new(schema.clone()),
        vec![
            Arc::new(TimestampMillisecondArray::from(vec![3, 1, 2])),
            Arc::new(StringViewArray::from(vec!["zeta", "alpha", "mu"])),
            Arc::new(TimestampSecondArray::from(vec![Some(60), None, Some(-60)]).with_timezone("+02:00")),
            Arc::new(Date32Array::from(vec![Some(1), Some(0), None])),
            Arc::new(UInt64Array::from(vec![Some(u64::MAX), Some(1), None])),
            Arc::new(Float32Array::from(vec![Some(0.5), None, Some(-0.25)])),
        ],
    )
    .unwrap();
    let config = config(
        r#""window":{"type":"tumbling","size":"5s"},"aggregates":[
            {"fn":"min","column":"ticker"},{"fn":"max","column":"ticker"},{"fn":"min","column":"at"},
            {"fn":"max","column":"day"},{"fn":"max","column":"big"},{"fn":"min","column":"ratio"},
            {"fn":"first","column":"ticker"},{"fn":"last","column":"ratio"},{"fn":"sum","column":"big"},
            {"fn":"sum","column":"ratio"}]"#,
    );
    let out = run(&config, &schema, &[Step::Batch(batch.clone()), Step::Finish]);
    assert_eq!(
        out.main,
        strings([
            "0..5000 alpha zeta 1970-01-01T01:59:00+02:00 1970-01-02 18446744073709551615 -0.25 alpha 0.5 null 0.25"
        ])
    );
}

#[test]
fn integer_sums_are_exact_and_null_when_beyond_int64() {
    let config = tumbling(r#"[{"fn":"sum","column":"qty"},{"fn":"avg","column":"qty"}]"#);
    let batch = trades(&[
        (Some(1), Some("A"), None, Some(i64::MAX)),
        (Some(2), Some("A"), None, Some(i64::MAX)),
        (Some(3), Some("A"), None, Some(i64::MIN)),
        (Some(4), Some("B"), None, Some(i64::MAX)),
        (Some(5), Some("B"), None, Some(1)),
    ]);
    let out = run(&config, &trades_schema(), &[Step::Batch(batch), Step::Finish]);
    let avg_b = (i128::from(i64::MAX) + 1) as f64 / 2.0;
    assert_eq!(
        out.main,
        vec![
            format!("0..5000 A {} {:?}", i64::MAX - 1, (i64::MAX - 1) as f64 / 3.0),
            format!("0..5000 B null {avg_b:?}"),
        ]
    );
}

#[test]
fn float_min_and_max_order_nan_above_every_number() {
    let config = tumbling(r#"[{"fn":"min","column":"price"},{"fn":"max","column":"price"}]"#);
    let batch = trades(&[
        (Some(1), Some("A"), Some(f64::NAN), None),
        (Some(2), Some("A"), Some(-1.5), None),
        (Some(3), Some("A"), Some(f64::INFINITY), None),
    ]);
    let out = run(&config, &trades_schema(), &[Step::Batch(batch), Step::Finish]);
    assert_eq!(out.main, strings(["0..5000 A -1.5 NaN"]));
}

#[test]
fn a_window_without_aggregates_lists_its_distinct_keys() {
    let config = config(r#""window":{"type":"tumbling","size":"5s"},"group_by":["ticker"]"#);
    let out = run(
        &config,
        &trades_schema(),
        &[Step::Batch(at("B", &[1, 2])), Step::Batch(at("A", &[3])), Step::Finish],
    );
    assert_eq!(out.main, strings(["0..5000 A", "0..5000 B"]));
}
