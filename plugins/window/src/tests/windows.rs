//! Window assignment and firing, end to end: FL-01…FL-04 and the FL-06 oracle.

use sluice_sdk::arrow::array::{BooleanArray, Int32Array, TimestampNanosecondArray, UInt8Array};

use super::*;

const COUNT: &str = r#""aggregates":[{"fn":"count","as":"n"}]"#;

fn tumbling_5s(rest: &str) -> String {
    config(&format!(r#""window":{{"type":"tumbling","size":"5s"}},{rest}"#))
}

#[test]
fn fl01_an_event_exactly_at_end_goes_to_the_next_window() {
    let out = run(
        &tumbling_5s(COUNT),
        &trades_schema(),
        &[Step::Batch(at("A", &[10_000, 13_000, 14_999, 15_000])), Step::Finish],
    );
    assert_eq!(out.main, strings(["10000..15000 3", "15000..20000 1"]));
}

#[test]
fn fl01_events_before_the_epoch_fall_in_windows_that_end_by_it() {
    let out = run(
        &tumbling_5s(COUNT),
        &trades_schema(),
        &[Step::Batch(at("A", &[-1, -5_000, 0])), Step::Finish],
    );
    assert_eq!(out.main, strings(["-5000..0 2", "0..5000 1"]));
}

#[test]
fn fl01_an_offset_shifts_every_window() {
    let config = config(&format!(
        r#""window":{{"type":"tumbling","size":"1h","offset":"15m"}},{COUNT}"#
    ));
    let hour = 3_600_000;
    let out = run(
        &config,
        &trades_schema(),
        &[Step::Batch(at("A", &[hour + hour / 6, hour + hour / 3])), Step::Finish],
    );
    assert_eq!(out.main, strings(["900000..4500000 1", "4500000..8100000 1"]));
}

#[test]
fn fl02_a_hopping_event_is_counted_in_every_window_containing_it() {
    let config = config(&format!(
        r#""window":{{"type":"hopping","size":"10s","slide":"5s"}},{COUNT}"#
    ));
    let out = run(
        &config,
        &trades_schema(),
        &[Step::Batch(at("A", &[7_000])), Step::Finish],
    );
    assert_eq!(out.main, strings(["0..10000 1", "5000..15000 1"]));

    let wide = super::config(&format!(
        r#""window":{{"type":"hopping","size":"10m","slide":"1m"}},{COUNT}"#
    ));
    let out = run(
        &wide,
        &trades_schema(),
        &[Step::Batch(at("A", &[123_456, 200_000])), Step::Finish],
    );
    assert_eq!(
        out.main.len(),
        11,
        "two events 10 windows each, 9 shared: {:?}",
        out.main
    );
    let twos = out.main.iter().filter(|r| r.ends_with(" 2")).count();
    assert_eq!(twos, 9);
}

#[test]
fn fl03_sessions_merge_when_touching_and_stay_apart_otherwise() {
    let config = config(&format!(
        r#""window":{{"type":"session","gap":"10s"}},"group_by":["ticker"],{COUNT}"#
    ));
    let out = run(
        &config,
        &trades_schema(),
        &[Step::Batch(at("A", &[0, 10_000])), Step::Finish],
    );
    assert_eq!(out.main, strings(["0..20000 A 2"]));
    let out = run(
        &config,
        &trades_schema(),
        &[Step::Batch(at("A", &[0, 10_001])), Step::Finish],
    );
    assert_eq!(out.main, strings(["0..10000 A 1", "10001..20001 A 1"]));
}

#[test]
fn fl03_sessions_are_per_key_and_a_late_arrival_can_bridge_two_sessions() {
    let config = config(&format!(
        r#""window":{{"type":"session","gap":"10s"}},"group_by":["ticker"],{COUNT}"#
    ));
    let out = run(
        &config,
        &trades_schema(),
        &[
            Step::Batch(at("A", &[0, 20_000])),
            Step::Batch(at("B", &[5_000])),
            // [10 s, 20 s) touches A's [0, 10 s) and [20 s, 30 s): one session for A only.
            Step::Batch(at("A", &[10_000])),
            Step::Watermark(20_000),
            Step::Finish,
        ],
    );
    assert_eq!(out.main, strings(["5000..15000 B 1", "0..30000 A 3"]));
}

#[test]
fn fl04_a_window_fires_when_the_watermark_reaches_end_minus_one_microsecond() {
    open(&tumbling_5s(COUNT), &trades_schema());
    assert_eq!(process(&at("A", &[1_000, 4_999])), Out::default());
    assert_eq!(watermark(4_999_998), Out::default());
    assert_eq!(watermark(4_999_999).main, strings(["0..5000 2"]));
    assert_eq!(watermark(5_000_000), Out::default(), "a window fires once");
    assert_eq!(watermark(9_999_999), Out::default(), "an empty window never fires");
    assert_eq!(held_windows(), 0);
}

#[test]
fn fl04_one_watermark_fires_every_due_window_in_order_of_end_then_key() {
    let config = tumbling_5s(&format!(r#""group_by":["ticker"],{COUNT}"#));
    open(&config, &trades_schema());
    process(&at("B", &[1_000, 6_000, 12_000]));
    process(&at("A", &[7_000, 2_000]));
    assert_eq!(
        watermark(9_999_999).main,
        strings(["0..5000 A 1", "0..5000 B 1", "5000..10000 A 1", "5000..10000 B 1"])
    );
    assert_eq!(finish().main, strings(["10000..15000 B 1"]));
}

#[test]
fn fl06_oracle_with_a_two_second_bound_the_first_window_fires_at_7000() {
    // The host's watermark is max event time − 2 s − 1 µs after each batch.
    let config = tumbling_5s(COUNT);
    open(&config, &trades_schema());
    let mut max = i64::MIN;
    let mut fired = Vec::new();
    for t in [1_000, 4_999, 6_999, 7_000] {
        let out = process(&at("A", &[t]));
        assert!(out.main.is_empty() && out.rejected.is_empty());
        max = max.max(t * 1000);
        fired.push(watermark(max - 2_000_000 - 1).main);
    }
    assert_eq!(fired, [vec![], vec![], vec![], strings(["0..5000 2"])]);
}

#[test]
fn out_of_order_rows_within_the_bound_are_aggregated_correctly() {
    let config = tumbling_5s(
        r#""aggregates":[{"fn":"count","as":"n"},{"fn":"first","column":"qty"},{"fn":"last","column":"qty"},{"fn":"sum","column":"qty"}]"#,
    );
    let batch = trades(&[
        (Some(4_000), Some("A"), None, Some(4)),
        (Some(6_000), Some("A"), None, Some(6)),
        (Some(1_000), Some("A"), None, Some(1)),
        (Some(3_000), Some("A"), None, Some(3)),
    ]);
    let behind_but_on_time = trades(&[
        (Some(500), Some("A"), None, Some(0)),
        (Some(4_999), Some("A"), None, Some(5)),
    ]);
    let out = run(
        &config,
        &trades_schema(),
        &[
            Step::Batch(batch),
            Step::Watermark(400),
            Step::Batch(behind_but_on_time),
            Step::Watermark(4_999),
            Step::Finish,
        ],
    );
    assert_eq!(out.main, strings(["0..5000 5 0 5 13", "5000..10000 1 6 6 6"]));
    assert!(out.rejected.is_empty());
}

#[test]
fn finish_emits_every_open_window_and_forgets_them() {
    let config = config(&format!(
        r#""window":{{"type":"hopping","size":"10s","slide":"5s"}},{COUNT}"#
    ));
    open(&config, &trades_schema());
    process(&at("A", &[1_000, 8_000]));
    assert_eq!(watermark(9_999_999).main, strings(["-5000..5000 1", "0..10000 2"]));
    assert_eq!(finish().main, strings(["5000..15000 1"]));
    assert_eq!(held_windows(), 0);
    assert_eq!(finish(), Out::default());
}

#[test]
fn the_watermark_never_goes_back() {
    open(&tumbling_5s(COUNT), &trades_schema());
    process(&at("A", &[1_000]));
    assert_eq!(watermark_ms(6_000).main.len(), 1);
    assert_eq!(watermark_ms(0), Out::default());
    let out = process(&at("A", &[5_500]));
    assert_eq!(out.rejected, [(Some(5_500), "late".to_owned())]);
}

#[test]
fn null_keys_form_their_own_group_and_sort_first() {
    let config = tumbling_5s(&format!(r#""group_by":["ticker"],{COUNT}"#));
    let batch = trades(&[
        (Some(1), Some("b"), None, None),
        (Some(2), None, None, None),
        (Some(3), Some("a"), None, None),
        (Some(4), None, None, None),
    ]);
    let out = run(&config, &trades_schema(), &[Step::Batch(batch), Step::Finish]);
    assert_eq!(out.main, strings(["0..5000 null 2", "0..5000 a 1", "0..5000 b 1"]));
}

#[test]
fn several_key_columns_of_every_key_type_come_back_with_their_types() {
    let schema = Schema::new(vec![
        Field::new("event_time", DataType::Int64, false),
        Field::new("site", DataType::Int32, true),
        Field::new("shard", DataType::UInt8, false),
        Field::new("ok", DataType::Boolean, true),
    ]);
    let batch = RecordBatch::try_new(
        Arc::new(schema.clone()),
        vec![
            Arc::new(Int64Array::from(vec![0, 1, 2, 3, 4])),
            Arc::new(Int32Array::from(vec![Some(-7), Some(3), Some(-7), None, Some(3)])),
            Arc::new(UInt8Array::from(vec![1, 255, 1, 0, 255])),
            Arc::new(BooleanArray::from(vec![
                Some(true),
                Some(false),
                Some(true),
                None,
                Some(true),
            ])),
        ],
    )
    .unwrap();
    let config = tumbling_5s(&format!(r#""group_by":["site","shard","ok"],{COUNT}"#));
    let out = run(&config, &schema, &[Step::Batch(batch), Step::Finish]);
    assert_eq!(
        out.main,
        strings([
            "0..5000 null 0 null 1",
            "0..5000 -7 1 true 2",
            "0..5000 3 255 false 1",
            "0..5000 3 255 true 1"
        ])
    );
}

#[test]
fn int64_epoch_millis_and_nanosecond_timestamps_with_a_zone_are_event_times() {
    let millis = Schema::new(vec![Field::new("event_time", DataType::Int64, false)]);
    let batch = RecordBatch::try_new(
        Arc::new(millis.clone()),
        vec![Arc::new(Int64Array::from(vec![4_999, 5_000]))],
    )
    .unwrap();
    let out = run(&tumbling_5s(COUNT), &millis, &[Step::Batch(batch), Step::Finish]);
    assert_eq!(out.main, strings(["0..5000 1", "5000..10000 1"]));

    let nanos_type = DataType::Timestamp(TimeUnit::Nanosecond, Some("+02:00".into()));
    let nanos = Schema::new(vec![Field::new("event_time", nanos_type, true)]);
    let values = TimestampNanosecondArray::from(vec![4_999_999_999, -1, 5_000_000_000]).with_timezone("+02:00");
    let batch = RecordBatch::try_new(Arc::new(nanos.clone()), vec![Arc::new(values)]).unwrap();
    let out = run(&tumbling_5s(COUNT), &nanos, &[Step::Batch(batch), Step::Finish]);
    assert_eq!(out.main, strings(["-5000..0 1", "0..5000 1", "5000..10000 1"]));
}

#[test]
fn a_batch_of_another_schema_is_refused() {
    open(&tumbling_5s(COUNT), &trades_schema());
    let other = Schema::new(vec![Field::new("event_time", DataType::Int64, false)]);
    let batch = RecordBatch::try_new(Arc::new(other), vec![Arc::new(Int64Array::from(vec![1]))]).unwrap();
    match __private::process::<Window>(encode_batch(&batch).unwrap()) {
        Err(wit::ProcessError::InvalidInput(m)) => assert!(m.contains("does not match"), "{m}"),
        other => panic!("expected invalid input, got {other:?}"),
    }
}

#[test]
fn rows_whose_time_does_not_fit_in_microseconds_are_rejected() {
    let schema = Schema::new(vec![Field::new(
        "event_time",
        DataType::Timestamp(TimeUnit::Second, None),
        true,
    )]);
    let seconds = sluice_sdk::arrow::array::TimestampSecondArray::from(vec![1, i64::MAX / 10, 2]);
    let batch = RecordBatch::try_new(Arc::new(schema.clone()), vec![Arc::new(seconds)]).unwrap();
    open(&tumbling_5s(COUNT), &schema);
    let out = process(&batch);
    assert_eq!(
        out.rejected,
        [(Some(i64::MAX / 10), "event time out of range".to_owned())]
    );
    assert_eq!(finish().main, strings(["0..5000 2"]));
}
