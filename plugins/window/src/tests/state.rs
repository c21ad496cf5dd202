//! Snapshot and restore: a run interrupted at any step and continued in a fresh instance
//! emits exactly what an uninterrupted run emits.

use super::*;

const AGGREGATES: &str = r#""aggregates":[{"fn":"count","as":"n"},{"fn":"sum","column":"price"},
    {"fn":"avg","column":"qty"},{"fn":"min","column":"price"},{"fn":"first","column":"qty"},{"fn":"last","column":"price"}]"#;

fn script() -> Vec<Step> {
    let rows = |rows: &[(i64, &'static str, f64, i64)]| -> Step {
        let rows: Vec<Trade> = rows
            .iter()
            .map(|&(t, k, p, q)| (Some(t), Some(k), Some(p), Some(q)))
            .collect();
        Step::Batch(trades(&rows))
    };
    vec![
        rows(&[
            (1_000, "B", 0.1, 1),
            (3_000, "A", 0.2, 2),
            (7_000, "A", 0.3, 3),
            (12_500, "C", 1e300, 4),
        ]),
        Step::Watermark(2_000),
        rows(&[
            (2_500, "B", 0.7, 5),
            (4_999, "A", f64::NAN, 6),
            (9_000, "B", -0.0, 7),
            (1_500, "A", 0.4, 8),
        ]),
        Step::Watermark(6_000),
        rows(&[
            (4_000, "A", 0.5, 9),
            (16_000, "C", 2.5, 10),
            (5_500, "B", 0.6, 11),
            (500, "C", 9.0, 12),
        ]),
        Step::Watermark(11_000),
        rows(&[(11_500, "A", 3.0, 13), (21_000, "B", 0.9, 14), (20_000, "A", 1.1, 15)]),
        Step::Watermark(19_999),
        rows(&[(8_000, "C", 7.0, 16), (23_000, "C", 0.8, 17)]),
        Step::Finish,
    ]
}

fn with(window: &str, lateness: &str) -> String {
    config(&format!(
        r#""window":{window},"group_by":["ticker"],{AGGREGATES},"allowed_lateness":"{lateness}""#
    ))
}

/// For every split point: run up to it, snapshot, restore into a fresh instance, finish
/// the script there; the outputs must equal the uninterrupted run's.
fn assert_restore_equivalent(config: &str) {
    let steps = script();
    let whole = run(config, &trades_schema(), &steps);
    assert!(
        !whole.main.is_empty() && !whole.rejected.is_empty(),
        "the script exercises firing and lateness"
    );
    for split in 0..=steps.len() {
        let mut out = run(config, &trades_schema(), &steps[..split]);
        let state = snapshot();
        open(config, &trades_schema());
        restore(state.clone()).unwrap_or_else(|e| panic!("restore at step {split}: {e:?}"));
        assert_eq!(
            snapshot().data,
            state.data,
            "a restored state snapshots to the same bytes"
        );
        for s in &steps[split..] {
            out.absorb(step(s));
        }
        assert_eq!(out, whole, "split at step {split}");
    }
}

#[test]
fn tumbling_windows_restore_to_identical_output() {
    assert_restore_equivalent(&with(r#"{"type":"tumbling","size":"5s"}"#, "0s"));
}

#[test]
fn tumbling_windows_with_lateness_restore_to_identical_output() {
    assert_restore_equivalent(&with(r#"{"type":"tumbling","size":"5s","offset":"1s"}"#, "4s"));
}

#[test]
fn hopping_windows_restore_to_identical_output() {
    assert_restore_equivalent(&with(r#"{"type":"hopping","size":"6s","slide":"2s"}"#, "3s"));
}

#[test]
fn session_windows_restore_to_identical_output() {
    assert_restore_equivalent(&with(r#"{"type":"session","gap":"2s"}"#, "5s"));
    assert_restore_equivalent(&with(r#"{"type":"session","gap":"4s"}"#, "0s"));
}

#[test]
fn equal_runs_snapshot_to_equal_bytes() {
    let config = with(r#"{"type":"hopping","size":"6s","slide":"2s"}"#, "3s");
    let steps = script();
    run(&config, &trades_schema(), &steps[..5]);
    let first = snapshot();
    run(&config, &trades_schema(), &steps[..5]);
    assert_eq!(snapshot().data, first.data);
    assert_eq!(first.format_version, 1);
}

#[test]
fn a_snapshot_taken_under_other_aggregates_or_keys_is_refused() {
    let config = with(r#"{"type":"tumbling","size":"5s"}"#, "0s");
    run(&config, &trades_schema(), &script()[..3]);
    let state = snapshot();

    let other_aggregates = config.replace(r#"{"fn":"sum","column":"price"}"#, r#"{"fn":"sum","column":"qty"}"#);
    open(&other_aggregates, &trades_schema());
    match restore(state.clone()) {
        Err(wit::RestoreError::Corrupt(m)) => assert!(m.contains("do not match the `aggregates`"), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }

    let no_keys = config.replace(r#""group_by":["ticker"],"#, "");
    open(&no_keys, &trades_schema());
    match restore(state.clone()) {
        Err(wit::RestoreError::Corrupt(m)) => assert!(m.contains("`group_by`"), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }

    open(&config, &trades_schema());
    let future = wit::StateSnapshot {
        format_version: 2,
        data: state.data.clone(),
    };
    assert!(matches!(restore(future), Err(wit::RestoreError::UnsupportedVersion(2))));
    let garbage = wit::StateSnapshot {
        format_version: 1,
        data: b"{\"windows\":7}".to_vec(),
    };
    assert!(matches!(restore(garbage), Err(wit::RestoreError::Corrupt(_))));
    restore(state).unwrap();
}

#[test]
fn the_restored_watermark_still_decides_lateness() {
    let config = with(r#"{"type":"tumbling","size":"5s"}"#, "0s");
    open(&config, &trades_schema());
    watermark_ms(10_000);
    let state = snapshot();
    open(&config, &trades_schema());
    restore(state).unwrap();
    assert_eq!(process(&at("A", &[9_000])).rejected, [(Some(9_000), "late".to_owned())]);
}

#[test]
fn the_held_state_is_visible_to_the_host_and_bounded_by_open_windows() {
    let config = with(r#"{"type":"tumbling","size":"5s"}"#, "0s");
    let steps = script();
    run(&config, &trades_schema(), &steps[..3]);
    let state = snapshot();

    let cfg: crate::Config = serde_json::from_str(&config).unwrap();
    let mut window = <Window as sluice_sdk::Transform>::open(cfg, Arc::new(trades_schema())).unwrap();
    assert_eq!((window.open_windows(), window.open_groups()), (0, 0));
    sluice_sdk::Transform::restore(&mut window, 1, &state.data).unwrap();
    // After the watermark of 2 s: [0, 5 s) for A and B, [5 s, 10 s) for A and B, [10 s, 15 s) for C.
    assert_eq!((window.open_windows(), window.open_groups()), (3, 5));
    assert_eq!(held_windows(), 3);
}

/// `batch` with only the rows whose ticker is (`a`) or is not (`!a`) "A".
fn ticker_a(batch: &RecordBatch, a: bool) -> RecordBatch {
    let tickers = batch.column(1).as_string::<i32>();
    let mask: sluice_sdk::arrow::array::BooleanArray = tickers.iter().map(|t| Some((t == Some("A")) == a)).collect();
    sluice_sdk::arrow::compute::filter_record_batch(batch, &mask).unwrap()
}

fn only_a(s: &Step, a: bool) -> Step {
    match s {
        Step::Batch(b) => Step::Batch(ticker_a(b, a)),
        other => other.clone(),
    }
}

fn sorted(mut out: Out) -> Out {
    out.main.sort();
    out.rejected.sort();
    out
}

/// For every cut: rows of ticker A in one instance and the rest in another (two shards),
/// then both states in one instance (`restore` one, `absorb` the other: their merge), which
/// reads every row from there on. Together they emit what one instance emits for all rows.
fn assert_merge_equivalent(config: &str) {
    let steps = script();
    let whole = sorted(run(config, &trades_schema(), &steps));
    for cut in 0..=steps.len() {
        let mut out = Out::default();
        let mut states = Vec::new();
        for a in [true, false] {
            open(config, &trades_schema());
            for s in &steps[..cut] {
                out.absorb(step(&only_a(s, a)));
            }
            states.push(snapshot());
        }
        open(config, &trades_schema());
        restore(states[0].clone()).unwrap();
        __private::absorb::<Window>(states[1].clone()).unwrap();
        for s in &steps[cut..] {
            out.absorb(step(s));
        }
        assert_eq!(sorted(out), whole, "merge at step {cut}");
    }
}

/// For every cut: one instance reads every row, then its state goes to two instances (a
/// split), one keeping ticker A's keys and reading A's rows, the other the rest. Together
/// they emit what one instance emits, no window twice.
fn assert_split_equivalent(config: &str) {
    let steps = script();
    let whole = sorted(run(config, &trades_schema(), &steps));
    for cut in 0..=steps.len() {
        let mut out = run(config, &trades_schema(), &steps[..cut]);
        let state = snapshot();
        let held = {
            let mut keys = __private::keys::<Window>();
            keys.sort();
            keys
        };
        assert!(held.iter().all(|k| ["A", "B", "C"].contains(&k.as_str())), "{held:?}");
        for a in [true, false] {
            open(config, &trades_schema());
            restore(state.clone()).unwrap();
            let keep: Vec<String> = held.iter().filter(|k| (k.as_str() == "A") == a).cloned().collect();
            __private::retain::<Window>(keep.clone()).unwrap();
            let mut kept = __private::keys::<Window>();
            kept.sort();
            assert_eq!(kept, keep, "retained at step {cut}");
            for s in &steps[cut..] {
                out.absorb(step(&only_a(s, a)));
            }
        }
        assert_eq!(sorted(out), whole, "split at step {cut}");
    }
}

#[test]
fn keyed_state_merges_and_splits_to_the_output_of_one_instance() {
    for config in [
        with(r#"{"type":"tumbling","size":"5s"}"#, "0s"),
        with(r#"{"type":"hopping","size":"6s","slide":"2s"}"#, "3s"),
        with(r#"{"type":"session","gap":"2s"}"#, "5s"),
    ] {
        assert_merge_equivalent(&config);
        assert_split_equivalent(&config);
    }
}

#[test]
fn the_state_key_is_the_group_by_columns() {
    let config = with(r#"{"type":"tumbling","size":"5s"}"#, "0s");
    let key = __private::state_key::<Window>(config.clone(), encode_schema(&trades_schema()).unwrap());
    assert_eq!(key.unwrap(), ["ticker"]);
    let global = config.replace(r#""group_by":["ticker"],"#, "");
    let key = __private::state_key::<Window>(global, encode_schema(&trades_schema()).unwrap());
    assert_eq!(key.unwrap(), Vec::<String>::new());
}
