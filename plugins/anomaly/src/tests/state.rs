//! Snapshot and restore, and the bound on keys: a run interrupted at any row and continued
//! in a fresh instance emits exactly what an uninterrupted run emits.

use super::*;

/// 70 rows over three devices and a null key, with spikes, a dip, nulls, NaN, a flat
/// stretch and a lasting shift.
fn script() -> Vec<Reading> {
    const DEVICES: [Option<&str>; 4] = [Some("a"), Some("b"), Some("c"), None];
    let mut rows = Vec::new();
    for i in 0..70i64 {
        let device = DEVICES[(i * 7 % 11 % 4) as usize];
        let base = 20.0 + (i % 5) as f64 * 0.3 - (i % 3) as f64 * 0.2;
        let temp = match i {
            13 | 31 | 47 => Some(base + 15.0),
            22 => Some(base - 12.0),
            18 | 40 => None,
            27 => Some(f64::NAN),
            50..=54 => Some(21.0),
            55.. => Some(base + 8.0),
            _ => Some(base),
        };
        rows.push((i, device, temp));
    }
    rows
}

/// For every row: process the rows before it, snapshot, restore into a fresh instance and
/// process the rest there; the output must equal one uninterrupted batch's, and the
/// restored state must snapshot to the same bytes.
fn assert_restore_equivalent(config: &str) {
    let rows = script();
    let whole = run(config, &[readings(&rows)]);
    assert!(
        whole.main.iter().chain(&whole.anomalies).any(|r| r.flag),
        "{config}: the script has anomalies"
    );
    for split in 0..=rows.len() {
        let mut out = run(config, &[readings(&rows[..split])]);
        let state = snapshot();
        assert_eq!(state.format_version, 2);
        open(config, &readings_schema());
        restore(state.clone()).unwrap_or_else(|e| panic!("restore at row {split}: {e:?}"));
        assert_eq!(snapshot().data, state.data, "{config}: re-snapshot at row {split}");
        out.absorb(process(&readings(&rows[split..])));
        assert_eq!(out, whole, "{config}: split at row {split}");
    }
}

#[test]
fn ewma_state_restores_to_identical_output_at_every_row() {
    assert_restore_equivalent(&config(r#""warmup":3"#));
    assert_restore_equivalent(&config(
        r#""alpha":0.3,"warmup":2,"update_on_anomaly":true,"threshold":3"#,
    ));
    assert_restore_equivalent(&config(r#""warmup":1,"reset_after":2"#));
}

#[test]
fn zscore_state_restores_to_identical_output_at_every_row() {
    // A window of 3 is replaced entirely, and recomputed exactly, several times per key.
    assert_restore_equivalent(&config(r#""method":"zscore","window":3,"warmup":2"#));
    assert_restore_equivalent(&config(
        r#""method":"zscore","window":8,"warmup":4,"update_on_anomaly":true,"threshold":2"#,
    ));
}

#[test]
fn split_routing_and_eviction_restore_to_identical_output_at_every_row() {
    assert_restore_equivalent(&config(r#""warmup":2,"route":"split""#));
    assert_restore_equivalent(&config(r#""warmup":2,"max_keys":2"#));
    assert_restore_equivalent(&config(r#""method":"zscore","window":4,"warmup":1,"max_keys":1"#));
    assert_restore_equivalent(r#"{"value":"temp","warmup":2}"#);
}

#[test]
fn batch_boundaries_do_not_change_the_output() {
    let rows = script();
    let cfg = config(r#""method":"zscore","window":5,"warmup":2"#);
    let whole = run(&cfg, &[readings(&rows)]);
    let one_by_one: Vec<RecordBatch> = rows.chunks(1).map(readings).collect();
    assert_eq!(run(&cfg, &one_by_one), whole);
    let sevens: Vec<RecordBatch> = rows.chunks(7).map(readings).collect();
    assert_eq!(run(&cfg, &sevens), whole);
}

#[test]
fn floats_are_stored_bit_for_bit_and_equal_runs_give_equal_bytes() {
    run(&config(r#""alpha":0.5"#), &[series("a", 0, &[10.0, 12.0, 14.0, 0.1])]);
    let first = snapshot();
    let state: serde_json::Value = serde_json::from_slice(&first.data).unwrap();
    let held = &state["series"][0];
    assert_eq!(held["key"], serde_json::json!({"str": "a"}));
    assert_eq!(held["seen"], 4);
    assert_eq!(held["run"], 0);
    assert_eq!(
        held["last_seen"],
        serde_json::Value::Null,
        "no expire_after, no event time"
    );
    // 14 → (12.5, 2.75); 0.1 → diff −12.4, incr −6.2.
    let diff = 0.1f64 - 12.5;
    let (mean, var) = (12.5 + 0.5 * diff, 0.5 * (2.75 + diff * (0.5 * diff)));
    assert_eq!(held["stats"]["ewma"]["mean"], mean.to_bits());
    assert_eq!(held["stats"]["ewma"]["var"], var.to_bits());
    assert_eq!(state["config"]["method"], "ewma");
    assert_eq!(state["config"]["key"], "device");

    run(&config(r#""alpha":0.5"#), &[series("a", 0, &[10.0, 12.0, 14.0, 0.1])]);
    assert_eq!(snapshot().data, first.data);
}

fn refusal(state: wit::StateSnapshot) -> String {
    match restore(state) {
        Err(wit::RestoreError::Corrupt(m)) => m,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_snapshot_taken_under_another_method_key_value_or_window_is_refused() {
    let schema = Schema::new(vec![
        Field::new("seq", DataType::Int64, false),
        Field::new("device", DataType::Utf8, true),
        Field::new("temp", DataType::Float64, true),
        Field::new("humidity", DataType::Float64, true),
        Field::new("site", DataType::Utf8, true),
    ]);
    let base = r#"{"key":"device","value":"temp","method":"zscore","window":5"#;
    open(&format!("{base}}}"), &schema);
    let state = snapshot();
    let others = [
        (r#"{"key":"device","value":"temp"}"#, "method \"ewma\""),
        (
            r#"{"key":"device","value":"temp","method":"zscore","window":6}"#,
            "(window 6)",
        ),
        (
            r#"{"key":"site","value":"temp","method":"zscore","window":5}"#,
            "key \"site\"",
        ),
        (r#"{"value":"temp","method":"zscore","window":5}"#, "no key"),
        (
            r#"{"key":"device","value":"humidity","method":"zscore","window":5}"#,
            "value \"humidity\"",
        ),
    ];
    for (config, needle) in others {
        open(config, &schema);
        let m = refusal(state.clone());
        assert!(
            m.contains("the snapshot was taken with method \"zscore\" (window 5)"),
            "{m}"
        );
        assert!(m.contains(needle) && m.contains("do not apply"), "{config}: {m}");
    }
    // Tuning options may change.
    open(
        &format!(r#"{base},"threshold":2,"warmup":0,"route":"split","update_on_anomaly":true,"max_keys":3}}"#),
        &schema,
    );
    restore(state).unwrap();
}

#[test]
fn a_snapshot_keyed_by_another_column_type_is_refused() {
    open(&config(""), &readings_schema());
    process(&series("a", 0, &[1.0]));
    let state = snapshot();
    let schema = Schema::new(vec![
        Field::new("seq", DataType::Int64, false),
        Field::new("device", DataType::Int64, true),
        Field::new("temp", DataType::Float64, true),
    ]);
    open(&config(""), &schema);
    let m = refusal(state);
    assert!(
        m.contains("key \"device\" (str)") && m.contains("key \"device\" (int)"),
        "{m}"
    );
}

#[test]
fn malformed_snapshots_are_refused_and_other_versions_unsupported() {
    open(&config(r#""method":"zscore","window":3"#), &readings_schema());
    process(&series("a", 0, &[1.0, 2.0]));
    let good = snapshot();
    let text = String::from_utf8(good.data.clone()).unwrap();
    let corrupt = |data: String| wit::StateSnapshot {
        format_version: 2,
        data: data.into_bytes(),
    };

    let m = refusal(corrupt(text.replace(r#"{"str":"a"}"#, r#"{"int":3}"#)));
    assert!(m.contains("cannot come from the key column"), "{m}");
    let m = refusal(corrupt(text.replace(r#""since_exact":0"#, r#""since_exact":3"#)));
    assert!(m.contains("do not fit a window of 3"), "{m}");
    let m = refusal(corrupt(text.replace(r#""rolling":"#, r#""ewma":"#)));
    assert!(m.contains("unreadable") || m.contains("another method"), "{m}");
    let mut twice: serde_json::Value = serde_json::from_str(&text).unwrap();
    let series = twice["series"][0].clone();
    twice["series"].as_array_mut().unwrap().push(series);
    let m = refusal(corrupt(twice.to_string()));
    assert!(m.contains("appears twice"), "{m}");
    let m = refusal(corrupt("{\"series\":7}".into()));
    assert!(m.contains("unreadable anomaly state"), "{m}");

    for unknown in [0, 3] {
        let other = wit::StateSnapshot {
            format_version: unknown,
            data: good.data.clone(),
        };
        assert!(
            matches!(restore(other), Err(wit::RestoreError::UnsupportedVersion(v)) if v == unknown),
            "format {unknown}"
        );
    }
    restore(good).unwrap();
}

#[test]
fn past_max_keys_the_least_recently_seen_key_is_forgotten_and_starts_afresh() {
    let cfg = config(r#""max_keys":2,"alpha":0.5,"warmup":2"#);
    open(&cfg, &readings_schema());
    let rows: Vec<Reading> = vec![
        (0, Some("a"), Some(10.0)),
        (1, Some("b"), Some(10.0)),
        (2, Some("a"), Some(12.0)),
        (3, Some("b"), Some(12.0)),
        (4, Some("a"), Some(15.0)),
        (5, Some("b"), None),
    ];
    let out = process(&readings(&rows));
    assert_eq!(out.main[4].score, Some(4.0));
    // A null value does not count as b being seen: b is now the least recent.
    assert_eq!(
        held_keys(),
        [serde_json::json!({"str": "b"}), serde_json::json!({"str": "a"})]
    );

    let out = process(&series("c", 6, &[1.0]));
    assert_eq!(out.main[0].score, None);
    assert_eq!(
        held_keys(),
        [serde_json::json!({"str": "a"}), serde_json::json!({"str": "c"})]
    );

    // b returns with no memory of 10, 12: its warm-up starts again.
    let out = process(&series("b", 7, &[15.0, 15.0, 15.0]));
    assert_eq!(out.scores(), [None, None, None]);
    assert_eq!(
        held_keys(),
        [serde_json::json!({"str": "c"}), serde_json::json!({"str": "b"})]
    );

    // a was forgotten too; without a bound it would have scored 15 against mean 11.
    let bounded = process(&series("a", 10, &[15.0]));
    assert_eq!(bounded.main[0].score, None);
    let unbounded = run(
        &config(r#""alpha":0.5,"warmup":2"#),
        &[readings(&rows), series("a", 10, &[15.0])],
    );
    assert!(unbounded.main.last().unwrap().score.is_some());
}

#[test]
fn a_snapshot_with_more_keys_than_max_keys_keeps_the_most_recent() {
    open(&config(""), &readings_schema());
    process(&readings(&[
        (0, Some("a"), Some(1.0)),
        (1, Some("b"), Some(1.0)),
        (2, Some("c"), Some(1.0)),
        (3, Some("a"), Some(1.0)),
    ]));
    let state = snapshot();

    let cfg: crate::Config = serde_json::from_str(&config(r#""max_keys":2"#)).unwrap();
    let mut anomaly = <Anomaly as sluice_sdk::Transform>::open(cfg, Arc::new(readings_schema())).unwrap();
    assert_eq!(anomaly.tracked_keys(), 0);
    sluice_sdk::Transform::restore(&mut anomaly, 2, &state.data).unwrap();
    assert_eq!(anomaly.tracked_keys(), 2);

    open(&config(r#""max_keys":2"#), &readings_schema());
    restore(state).unwrap();
    assert_eq!(
        held_keys(),
        [serde_json::json!({"str": "c"}), serde_json::json!({"str": "a"})]
    );
}

#[test]
fn the_number_of_keys_held_never_exceeds_max_keys() {
    let names: Vec<String> = (0..500).map(|i| format!("k{i}")).collect();
    let rows: Vec<Reading> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (i as i64, Some(&*n.clone().leak()), Some(1.0)))
        .collect();
    open(&config(r#""max_keys":50"#), &readings_schema());
    assert_eq!(process(&readings(&rows)).main.len(), 500);
    let held = held_keys();
    assert_eq!(held.len(), 50);
    assert_eq!(held[0], serde_json::json!({"str": "k450"}));
    assert_eq!(held[49], serde_json::json!({"str": "k499"}));
}

/// Rows of device "a" (`a`) or of every other device, the null key included (`!a`).
fn device_a(rows: &[Reading], a: bool) -> Vec<Reading> {
    rows.iter().filter(|r| (r.1 == Some("a")) == a).copied().collect()
}

fn by_seq(mut out: Out) -> Out {
    out.main.sort_by_key(|r| r.seq);
    out.anomalies.sort_by_key(|r| r.seq);
    out
}

/// For every row: device "a" in one instance and the others in another (two shards), then
/// both states in one (`restore` one, `absorb` the other: their merge) for the rest; and
/// one instance for the first rows, its state split by key between two instances for the
/// rest. Each emits, row for row, what one uninterrupted instance does.
fn assert_merge_and_split_equivalent(config: &str) {
    let rows = script();
    let whole = by_seq(run(config, &[readings(&rows)]));
    for cut in 0..=rows.len() {
        let (before, after) = rows.split_at(cut);
        let mut merged = Out::default();
        let mut states = Vec::new();
        for a in [true, false] {
            merged.absorb(run(config, &[readings(&device_a(before, a))]));
            states.push(snapshot());
        }
        open(config, &readings_schema());
        restore(states[0].clone()).unwrap();
        __private::absorb::<Anomaly>(states[1].clone()).unwrap();
        merged.absorb(process(&readings(after)));
        assert_eq!(by_seq(merged), whole, "{config}: merge at row {cut}");

        let mut split = run(config, &[readings(before)]);
        let state = snapshot();
        let mut held = __private::keys::<Anomaly>();
        held.sort();
        for a in [true, false] {
            open(config, &readings_schema());
            restore(state.clone()).unwrap();
            let keep: Vec<String> = held.iter().filter(|k| (k.as_str() == "a") == a).cloned().collect();
            __private::retain::<Anomaly>(keep.clone()).unwrap();
            let mut kept = __private::keys::<Anomaly>();
            kept.sort();
            assert_eq!(kept, keep);
            split.absorb(process(&readings(&device_a(after, a))));
        }
        assert_eq!(by_seq(split), whole, "{config}: split at row {cut}");
    }
}

#[test]
fn keyed_state_merges_and_splits_to_the_output_of_one_instance() {
    assert_merge_and_split_equivalent(&config("\"warmup\":3"));
    assert_merge_and_split_equivalent(&config("\"method\":\"zscore\",\"window\":5,\"warmup\":2"));
}

#[test]
fn the_state_key_is_the_key_column_and_keys_read_as_text() {
    let schema = encode_schema(&readings_schema()).unwrap();
    assert_eq!(
        __private::state_key::<Anomaly>(config(""), schema.clone()).unwrap(),
        ["device"]
    );
    let global = r#"{"value":"temp"}"#.to_owned();
    assert!(__private::state_key::<Anomaly>(global, schema).unwrap().is_empty());
    run(&config(""), &[readings(&script()[..12])]);
    let mut keys = __private::keys::<Anomaly>();
    keys.sort();
    assert_eq!(keys, ["", "a", "b", "c"], "the null key reads as the empty text");
}
