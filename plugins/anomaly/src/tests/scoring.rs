//! Scores and flags by hand on tiny series, through the whole transform.

use sluice_sdk::arrow::array::{Int32Array, UInt8Array};

use super::*;

/// Scores of one device's `temps` under `config(rest)`.
fn scores(rest: &str, temps: &[f64]) -> Out {
    run(&config(rest), &[series("a", 0, temps)])
}

#[test]
fn ewma_scores_match_the_incremental_form_by_hand() {
    // alpha 0.5, warm-up 2: 10 → (mean 10, var 0); 12 → (11, 1); 14 scores 3 → (12.5, 2.75);
    // 12.5 scores 0 → (12.5, 1.375); 10 scores 2.5/√1.375.
    let out = scores(r#""alpha":0.5,"warmup":2"#, &[10.0, 12.0, 14.0, 12.5, 10.0]);
    assert_scores(
        &out.scores(),
        &[None, None, Some(3.0), Some(0.0), Some(2.5 / 1.375f64.sqrt())],
    );
    assert_eq!(out.flags(), [false; 5]);
    assert_eq!(out.main.iter().map(|r| r.seq).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
}

#[test]
fn ewma_with_the_default_alpha_by_hand() {
    // alpha 0.1: 20 → (20, 0); 21 → diff 1, incr 0.1 → (20.1, 0.9·0.1 = 0.09);
    // 20.4 scores 0.3/0.3 = 1.
    let out = scores(r#""warmup":2"#, &[20.0, 21.0, 20.4]);
    assert_scores(&out.scores(), &[None, None, Some(0.3 / 0.09f64.sqrt())]);
}

#[test]
fn zscore_scores_use_the_population_deviation_of_the_window_before_the_row() {
    // window 3, warm-up 2: [2, 4] → mean 3, sd 1: 9 scores 6 (threshold 10: kept);
    // [2, 4, 9] → mean 5, sd √(26/3): 5 scores 0; [4, 9, 5] → mean 6, sd √(14/3): 8 scores
    // 2/√(14/3); [9, 5, 8] → mean 22/3, squared deviations 25/9 + 49/9 + 4/9 = 26/3.
    let out = scores(
        r#""method":"zscore","window":3,"warmup":2,"threshold":10"#,
        &[2.0, 4.0, 9.0, 5.0, 8.0, 1.0],
    );
    let sd = |m2: f64| (m2 / 3.0).sqrt();
    assert_scores(
        &out.scores(),
        &[
            None,
            None,
            Some(6.0),
            Some(0.0),
            Some(2.0 / sd(14.0)),
            Some((22.0 / 3.0 - 1.0) / sd(26.0 / 3.0)),
        ],
    );
    assert_eq!(out.flags(), [false; 6]);
}

#[test]
fn the_warmup_values_are_never_scored_or_flagged() {
    let out = scores(r#""warmup":4"#, &[1.0, 1.0, 1.0, 500.0, 1.0]);
    assert_scores(&out.scores()[..4], &[None; 4]);
    assert_eq!(out.flags()[..4], [false; 4]);
    assert!(out.main[4].score.is_some(), "the fifth value is scored");

    // warm-up 0: only the first value (no statistics yet) goes unscored.
    let out = scores(r#""warmup":0,"alpha":0.5"#, &[10.0, 10.0, 11.0]);
    assert_scores(&out.scores()[..2], &[None, None]);
    assert_eq!(out.main[2].score, Some(f64::INFINITY));
}

#[test]
fn the_threshold_is_inclusive() {
    // alpha 0.5, warm-up 2: mean 11, sd 1 before the third value.
    let at = scores(r#""alpha":0.5,"warmup":2"#, &[10.0, 12.0, 15.0]);
    assert_eq!(
        at.main[2],
        Row {
            seq: 2,
            flag: true,
            score: Some(4.0)
        }
    );
    let below = scores(r#""alpha":0.5,"warmup":2"#, &[10.0, 12.0, 14.999]);
    assert!(!below.main[2].flag && below.main[2].score.unwrap() < 4.0);
    let low_side = scores(r#""alpha":0.5,"warmup":2,"threshold":2.5"#, &[10.0, 12.0, 8.5]);
    assert_eq!(
        low_side.main[2],
        Row {
            seq: 2,
            flag: true,
            score: Some(2.5)
        }
    );
}

#[test]
fn null_and_non_finite_values_pass_through_without_touching_the_statistics() {
    let rows: Vec<Reading> = vec![
        (0, Some("a"), Some(10.0)),
        (1, Some("a"), None),
        (2, Some("a"), Some(f64::NAN)),
        (3, Some("a"), Some(12.0)),
        (4, Some("a"), Some(f64::INFINITY)),
        (5, Some("a"), Some(15.0)),
        (6, Some("a"), None),
    ];
    // With alpha 0.5 and warm-up 2 the non-null values give mean 11, sd 1 before 15.
    let out = run(&config(r#""alpha":0.5,"warmup":2"#), &[readings(&rows)]);
    assert_scores(&out.scores(), &[None, None, None, None, None, Some(4.0), None]);
    assert_eq!(out.flags(), [false, false, false, false, false, true, false]);
}

#[test]
fn a_zero_deviation_gives_a_null_score_for_the_mean_and_infinity_otherwise() {
    for method in [r#""method":"ewma""#, r#""method":"zscore","window":5"#] {
        let out = scores(&format!(r#"{method},"warmup":2"#), &[5.0, 5.0, 5.0, 5.5, 5.0, 4.0]);
        assert_scores(
            &out.scores(),
            &[None, None, None, Some(f64::INFINITY), None, Some(f64::INFINITY)],
        );
        assert_eq!(out.flags(), [false, false, false, true, false, true], "{method}");
    }
}

#[test]
fn an_anomaly_updates_the_statistics_only_when_asked() {
    // alpha 0.5, warm-up 2: mean 11, sd 1; 20 scores 9.
    let temps = [10.0, 12.0, 20.0, 12.0];
    let kept = scores(r#""alpha":0.5,"warmup":2"#, &temps);
    assert_scores(&kept.scores(), &[None, None, Some(9.0), Some(1.0)]);
    assert_eq!(kept.flags(), [false, false, true, false]);
    // Folded in: diff 9, incr 4.5 → mean 15.5, var 0.5·(1 + 40.5) = 20.75.
    let folded = scores(r#""alpha":0.5,"warmup":2,"update_on_anomaly":true"#, &temps);
    assert_scores(&folded.scores(), &[None, None, Some(9.0), Some(3.5 / 20.75f64.sqrt())]);

    // A z-score window likewise keeps the spike out unless asked.
    let z = r#""method":"zscore","window":4,"warmup":2"#;
    let kept = scores(z, &[1.0, 3.0, 100.0, 3.0]);
    assert_scores(&kept.scores(), &[None, None, Some(98.0), Some(1.0)]);
    let folded = scores(&format!(r#"{z},"update_on_anomaly":true"#), &[1.0, 3.0, 100.0, 3.0]);
    // [1, 3, 100]: mean 104/3, squared deviations (101² + 95² + 196²)/9 = 57642/9.
    let expected = (104.0 / 3.0 - 3.0) / (57642.0f64 / 27.0).sqrt();
    assert_scores(&folded.scores(), &[None, None, Some(98.0), Some(expected)]);
}

#[test]
fn a_lasting_shift_is_flagged_reset_after_times_then_learnt_afresh() {
    // alpha 0.5, warm-up 2: mean 11, sd 1 when the level moves to 30.
    let temps = [10.0, 12.0, 30.0, 30.5, 29.5, 30.0, 30.2, 29.9, 30.1];
    let out = scores(r#""alpha":0.5,"warmup":2,"reset_after":3"#, &temps);
    assert_eq!(
        out.flags(),
        [false, false, true, true, true, false, false, false, false]
    );
    // After the third anomaly the key restarts from it, (29.5, 0), which is its first value:
    // 30 completes the warm-up → (29.75, 0.0625); 30.2 scores 0.45/0.25 → (29.975, 0.081875);
    // 29.9 scores 0.075/√0.081875 → (29.9375, 0.04234375); 30.1 scores 0.1625/√0.04234375.
    assert_scores(
        &out.scores()[5..],
        &[
            None,
            Some(1.8),
            Some(0.075 / 0.081875f64.sqrt()),
            Some(0.1625 / 0.04234375f64.sqrt()),
        ],
    );

    // Never resetting, the frozen statistics flag the new level for good.
    let frozen = scores(r#""alpha":0.5,"warmup":2,"reset_after":0"#, &temps);
    assert_eq!(frozen.flags()[2..], [true; 7]);
    // Anomalies that update the statistics need no reset.
    let folded = scores(r#""alpha":0.5,"warmup":2,"update_on_anomaly":true"#, &temps);
    assert_eq!(folded.flags()[2..4], [true, false]);
}

#[test]
fn keys_are_scored_apart_in_row_order() {
    let a = [10.0, 12.0, 14.0, 12.5, 30.0];
    let b = [-3.0, -3.5, -2.0, -3.0, -3.25];
    let mut rows: Vec<Reading> = Vec::new();
    for i in 0..a.len() {
        rows.push((2 * i as i64, Some("a"), Some(a[i])));
        rows.push((2 * i as i64 + 1, Some("b"), Some(b[i])));
    }
    let cfg = config(r#""alpha":0.5,"warmup":2"#);
    let together = run(&cfg, &[readings(&rows)]);
    let alone_a = run(&cfg, &[series("a", 0, &a)]);
    let alone_b = run(&cfg, &[series("b", 0, &b)]);
    for i in 0..a.len() {
        assert_eq!(together.main[2 * i].score, alone_a.main[i].score, "a #{i}");
        assert_eq!(together.main[2 * i].flag, alone_a.main[i].flag, "a #{i}");
        assert_eq!(together.main[2 * i + 1].score, alone_b.main[i].score, "b #{i}");
        assert_eq!(together.main[2 * i + 1].flag, alone_b.main[i].flag, "b #{i}");
    }
    assert!(together.main[8].flag, "a's spike");
}

#[test]
fn a_null_key_is_a_series_of_its_own_and_no_key_is_one_global_series() {
    let rows: Vec<Reading> = vec![
        (0, None, Some(10.0)),
        (1, Some("a"), Some(100.0)),
        (2, None, Some(12.0)),
        (3, Some("a"), Some(100.0)),
        (4, None, Some(14.0)),
    ];
    let keyed = run(&config(r#""alpha":0.5,"warmup":2"#), &[readings(&rows)]);
    assert_eq!(
        keyed.main[4].score,
        Some(3.0),
        "the null key's own 10, 12 → mean 11, sd 1"
    );

    let global = run(r#"{"value":"temp","alpha":0.5,"warmup":2}"#, &[readings(&rows)]);
    // 10, 100 → mean 55, var 0.5·(90·45) = 2025, sd 45: 12 scores 43/45.
    assert_scores(&global.scores()[..3], &[None, None, Some(43.0 / 45.0)]);
}

#[test]
fn integer_keys_and_integer_values_work_like_strings_and_floats() {
    let schema = Schema::new(vec![
        Field::new("seq", DataType::Int64, false),
        Field::new("unit", DataType::Int32, true),
        Field::new("level", DataType::UInt8, true),
    ]);
    let batch = RecordBatch::try_new(
        Arc::new(schema.clone()),
        vec![
            Arc::new(Int64Array::from(vec![0, 1, 2, 3, 4, 5])),
            Arc::new(Int32Array::from(vec![7, -7, 7, -7, 7, -7])),
            Arc::new(UInt8Array::from(vec![10, 200, 12, 200, 15, 201])),
        ],
    )
    .unwrap();
    let out = run_with(
        r#"{"key":"unit","value":"level","alpha":0.5,"warmup":2}"#,
        &schema,
        &[batch],
    );
    assert_scores(&out.scores(), &[None, None, None, None, Some(4.0), Some(f64::INFINITY)]);
    assert_eq!(out.flags(), [false, false, false, false, true, true]);
}

#[test]
fn every_input_column_passes_through_unchanged() {
    let batch = readings(&[(0, Some("a"), Some(1.5)), (1, None, None), (2, Some("b"), Some(-2.0))]);
    let outputs = process_raw_with(&config(""), &batch);
    let [(name, out)] = outputs.as_slice() else {
        panic!("one batch expected: {outputs:?}");
    };
    assert_eq!(name, "main");
    assert_eq!(out.num_columns(), 5);
    for i in 0..3 {
        assert_eq!(out.column(i).as_ref(), batch.column(i).as_ref(), "column {i}");
    }
}

fn process_raw_with(config: &str, batch: &RecordBatch) -> Vec<(String, RecordBatch)> {
    open(config, &readings_schema());
    process_raw(batch)
}

#[test]
fn a_batch_of_another_schema_is_invalid_input() {
    open(&config(""), &readings_schema());
    let other = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("seq", DataType::Int64, false)])),
        vec![Arc::new(Int64Array::from(vec![1]))],
    )
    .unwrap();
    match __private::process::<Anomaly>(encode_batch(&other).unwrap()) {
        Err(wit::ProcessError::InvalidInput(m)) => assert!(m.contains("does not match"), "{m}"),
        other => panic!("expected invalid input, got {other:?}"),
    }
}

#[test]
fn an_empty_batch_emits_nothing() {
    open(&config(""), &readings_schema());
    assert_eq!(process(&readings(&[])), Out::default());
}
