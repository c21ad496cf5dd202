//! `route`: flagged rows stay in `main` (flag) or move to `anomalies` (split).

use super::*;

/// Two devices; device a spikes at seq 6 and dips at seq 10, device b at seq 9.
fn batch() -> RecordBatch {
    readings(&[
        (0, Some("a"), Some(10.0)),
        (1, Some("b"), Some(50.0)),
        (2, Some("a"), Some(12.0)),
        (3, Some("b"), Some(52.0)),
        (4, Some("a"), Some(11.0)),
        (5, Some("b"), Some(51.0)),
        (6, Some("a"), Some(40.0)),
        (7, Some("a"), None),
        (8, Some("a"), Some(11.5)),
        (9, Some("b"), Some(90.0)),
        (10, Some("a"), Some(-20.0)),
        (11, Some("b"), Some(51.5)),
    ])
}

const FLAGGED: [i64; 3] = [6, 9, 10];

#[test]
fn flag_keeps_every_row_in_main_with_its_flag() {
    let out = run(&config(r#""alpha":0.5,"warmup":2"#), &[batch()]);
    assert!(out.anomalies.is_empty());
    assert_eq!(
        out.main.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (0..12).collect::<Vec<_>>()
    );
    let flagged: Vec<i64> = out.main.iter().filter(|r| r.flag).map(|r| r.seq).collect();
    assert_eq!(flagged, FLAGGED);
}

#[test]
fn split_moves_flagged_rows_to_anomalies_in_order_and_keeps_the_rest_in_main() {
    let flag = run(&config(r#""alpha":0.5,"warmup":2"#), &[batch()]);
    let split = run(&config(r#""alpha":0.5,"warmup":2,"route":"split""#), &[batch()]);
    let (expected_anomalies, expected_main): (Vec<Row>, Vec<Row>) = flag.main.iter().partition(|r| r.flag);
    assert_eq!(split.anomalies, expected_anomalies);
    assert_eq!(split.main, expected_main);
    assert_eq!(split.anomalies.iter().map(|r| r.seq).collect::<Vec<_>>(), FLAGGED);
    assert!(split.anomalies.iter().all(|r| r.score.is_some_and(|s| s >= 4.0)));
}

#[test]
fn split_emits_nothing_to_an_output_without_rows() {
    open(&config(r#""route":"split""#), &readings_schema());
    let outputs = process_raw(&series("a", 0, &[1.0, 2.0, 3.0]));
    let names: Vec<&str> = outputs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["main"], "warm-up rows are never anomalies");

    open(&config(r#""route":"split","warmup":0"#), &readings_schema());
    process(&series("a", 0, &[1.0]));
    let outputs = process_raw(&series("a", 1, &[2.0]));
    let names: Vec<&str> = outputs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["anomalies"], "2 differs from a mean of 1 with no spread");
    assert_eq!(outputs[0].1.schema().field(4).name(), "anomaly_score");
}
