//! Forgetting idle keys by event time (`time_column`, `expire_after`) as the watermark
//! advances: what is forgotten and when, that a forgotten key warms up again, and that
//! neither batch boundaries nor a snapshot and restore change it.

use sluice_sdk::arrow::array::{
    TimestampMicrosecondArray, TimestampMillisecondArray, TimestampNanosecondArray, TimestampSecondArray,
};
use sluice_sdk::arrow::datatypes::TimeUnit;

use super::*;

/// Microseconds, the watermark's unit.
const SECOND: i64 = 1_000_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;

/// One reading: sequence number, device, temperature, event time in whole seconds.
type Timed = (i64, &'static str, f64, Option<i64>);

/// A time column `at` of `unit`, in zone `tz`.
fn schema_in(unit: TimeUnit, tz: Option<&str>) -> Schema {
    Schema::new(vec![
        Field::new("seq", DataType::Int64, false),
        Field::new("device", DataType::Utf8, true),
        Field::new("temp", DataType::Float64, true),
        Field::new("at", DataType::Timestamp(unit, tz.map(Into::into)), true),
    ])
}

fn timed_schema() -> Schema {
    schema_in(TimeUnit::Millisecond, None)
}

fn timed_in(rows: &[Timed], unit: TimeUnit, tz: Option<&str>) -> RecordBatch {
    let seconds: Vec<Option<i64>> = rows.iter().map(|r| r.3).collect();
    let scaled = |per_second: i64| -> Vec<Option<i64>> { seconds.iter().map(|s| s.map(|s| s * per_second)).collect() };
    let zone: Option<Arc<str>> = tz.map(Into::into);
    let at: ArrayRef = match unit {
        TimeUnit::Second => Arc::new(TimestampSecondArray::from(scaled(1)).with_timezone_opt(zone)),
        TimeUnit::Millisecond => Arc::new(TimestampMillisecondArray::from(scaled(1_000)).with_timezone_opt(zone)),
        TimeUnit::Microsecond => Arc::new(TimestampMicrosecondArray::from(scaled(1_000_000)).with_timezone_opt(zone)),
        TimeUnit::Nanosecond => Arc::new(TimestampNanosecondArray::from(scaled(1_000_000_000)).with_timezone_opt(zone)),
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(rows.iter().map(|r| r.0).collect::<Int64Array>()),
        Arc::new(rows.iter().map(|r| Some(r.1)).collect::<StringArray>()),
        Arc::new(rows.iter().map(|r| Some(r.2)).collect::<Float64Array>()),
        at,
    ];
    RecordBatch::try_new(Arc::new(schema_in(unit, tz)), columns).unwrap()
}

fn timed(rows: &[Timed]) -> RecordBatch {
    timed_in(rows, TimeUnit::Millisecond, None)
}

/// Keyed by device, scoring temp, forgetting keys idle for an hour of event time.
fn expiring(rest: &str) -> String {
    let base = r#"{"key":"device","value":"temp","time_column":"at","expire_after":"1h""#;
    if rest.is_empty() {
        format!("{base}}}")
    } else {
        format!("{base},{rest}}}")
    }
}

/// Advance the open instance's watermark, checking it emits nothing.
fn advance(watermark: i64) {
    let out = decode_outputs(__private::advance_watermark::<Anomaly>(watermark), None);
    assert_eq!(out, Out::default(), "advance_watermark emits nothing");
}

/// The devices held, least recently seen first.
fn held() -> Vec<String> {
    held_keys()
        .iter()
        .map(|k| k["str"].as_str().unwrap().to_owned())
        .collect()
}

/// Each device held and its latest event time in microseconds (`None` if it has none).
fn last_seen() -> Vec<(String, Option<i64>)> {
    let state: serde_json::Value = serde_json::from_slice(&snapshot().data).unwrap();
    state["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["key"]["str"].as_str().unwrap().to_owned(), s["last_seen"].as_i64()))
        .collect()
}

fn names(devices: &[&str]) -> Vec<String> {
    devices.iter().map(|d| d.to_string()).collect()
}

#[test]
fn an_idle_key_is_forgotten_at_the_watermark_and_warms_up_again_when_it_returns() {
    // alpha 0.5, warm-up 2: 10, 12 → mean 11, sd 1, so 30 after them scores 19.
    let before = timed(&[(0, "a", 10.0, Some(0)), (1, "a", 12.0, Some(60))]);
    let spike = timed(&[(2, "a", 30.0, Some(2 * 3600))]);
    let rest = r#""alpha":0.5,"warmup":2"#;
    let idle_for = |config: &str, watermark: i64| -> Row {
        open(config, &timed_schema());
        process(&before);
        advance(watermark);
        process(&spike).main[0]
    };
    let forgotten = 60 * SECOND + HOUR + 1;

    let expired = idle_for(&expiring(rest), forgotten);
    assert_eq!(
        expired,
        Row {
            seq: 2,
            flag: false,
            score: None
        },
        "a fresh series: the spike is its first value"
    );
    // Still warming up: its second value is not scored either, its third is.
    let out = process(&timed(&[
        (3, "a", 10.0, Some(2 * 3600 + 1)),
        (4, "a", 30.0, Some(2 * 3600 + 2)),
    ]));
    // 30 → (30, 0); 10 → diff −20, incr −10 → (20, 0.5·200 = 100): 30 scores 1.
    assert_scores(&out.scores(), &[None, Some(1.0)]);

    let flagged = Row {
        seq: 2,
        flag: true,
        score: Some(19.0),
    };
    assert_eq!(
        idle_for(&expiring(rest), forgotten - 1),
        flagged,
        "last seen exactly an hour before the watermark: kept"
    );
    assert_eq!(
        idle_for(&config(rest), forgotten),
        flagged,
        "without expire_after nothing is forgotten"
    );
}

#[test]
fn a_key_is_kept_while_its_latest_event_time_is_within_expire_after_of_the_watermark() {
    open(&expiring(r#""alpha":0.5,"warmup":0"#), &timed_schema());
    let out = process(&timed(&[
        (0, "a", 20.0, Some(1000)),
        (1, "a", 20.0, Some(400)), // late: the latest event time stays 1000 s
        (2, "b", 20.0, Some(0)),
        (3, "b", 21.0, None), // scored, but does not make b recent
        (4, "c", 20.0, None), // a new key with no event time
    ]));
    assert_eq!(
        out.main[3].score,
        Some(f64::INFINITY),
        "a null event time is still scored"
    );
    assert_eq!(
        last_seen(),
        [
            ("a".into(), Some(1000 * SECOND)),
            ("b".into(), Some(0)),
            ("c".into(), None)
        ]
    );

    let w = 1000 * SECOND + HOUR;
    advance(w);
    assert_eq!(
        held(),
        names(&["a", "c"]),
        "b (0 s) is before the cutoff 1000 s; a is at it"
    );
    assert_eq!(
        last_seen(),
        [("a".into(), Some(1000 * SECOND)), ("c".into(), Some(w))],
        "c counts as seen at the first watermark"
    );
    advance(w + 1);
    assert_eq!(held(), names(&["c"]));
    advance(w + HOUR);
    assert_eq!(held(), names(&["c"]));
    advance(w + HOUR + 1);
    assert_eq!(held(), Vec::<String>::new());
}

#[test]
fn tracked_keys_drops_after_expiry() {
    open(&expiring(""), &timed_schema());
    process(&timed(&[
        (0, "a", 1.0, Some(0)),
        (1, "b", 1.0, Some(100)),
        (2, "c", 1.0, Some(200)),
    ]));
    let state = snapshot();
    advance(100 * SECOND + HOUR);
    assert_eq!(held(), names(&["b", "c"]));

    let cfg: crate::Config = serde_json::from_str(&expiring("")).unwrap();
    let mut anomaly = <Anomaly as sluice_sdk::Transform>::open(cfg, Arc::new(timed_schema())).unwrap();
    sluice_sdk::Transform::restore(&mut anomaly, 2, &state.data).unwrap();
    assert_eq!(anomaly.tracked_keys(), 3);
    anomaly.expire(100 * SECOND + HOUR);
    assert_eq!(anomaly.tracked_keys(), 2);
    anomaly.expire(200 * SECOND + HOUR + 1);
    assert_eq!(anomaly.tracked_keys(), 0);
}

/// A call on the transform.
#[derive(Debug, Clone)]
enum Step {
    Row(Timed),
    Watermark(i64),
}

/// 80 readings a minute apart and a watermark two minutes behind every fifth: b throughout;
/// a for 20 minutes, idle for 40 (forgotten), then back with a spike; c in between, with
/// some null event times.
fn script() -> Vec<Step> {
    let mut steps = Vec::new();
    for i in 0..80i64 {
        let t = i * 60;
        let base = 20.0 + (i % 5) as f64 * 0.3 - (i % 3) as f64 * 0.2;
        let row = if i % 2 == 0 {
            (i, "b", base + if i == 40 { 15.0 } else { 0.0 }, Some(t))
        } else if !(20..60).contains(&i) {
            (i, "a", base + if i == 61 { 15.0 } else { 0.0 }, Some(t))
        } else {
            (i, "c", base, if i % 4 == 1 { None } else { Some(t) })
        };
        steps.push(Step::Row(row));
        if i % 5 == 4 {
            steps.push(Step::Watermark((t - 120) * SECOND));
        }
    }
    steps.push(Step::Watermark(100 * MINUTE));
    steps
}

/// Run `steps` on the open instance, each run of rows between watermarks cut into batches
/// of `chunk` rows.
fn play(steps: &[Step], chunk: usize, unit: TimeUnit, tz: Option<&str>) -> Out {
    let mut out = Out::default();
    let mut rows = Vec::new();
    let flush = |rows: &mut Vec<Timed>, out: &mut Out| {
        for batch in rows.chunks(chunk) {
            out.absorb(process(&timed_in(batch, unit, tz)));
        }
        rows.clear();
    };
    for step in steps {
        match step {
            Step::Row(row) => rows.push(*row),
            Step::Watermark(w) => {
                flush(&mut rows, &mut out);
                advance(*w);
            }
        }
    }
    flush(&mut rows, &mut out);
    out
}

/// The output and final state of `steps` from a fresh instance.
fn whole(config: &str, steps: &[Step], chunk: usize, unit: TimeUnit, tz: Option<&str>) -> (Out, Vec<u8>) {
    open(config, &schema_in(unit, tz));
    let out = play(steps, chunk, unit, tz);
    (out, snapshot().data)
}

/// `expiring` with a 30 minute `expire_after` and `rest`.
fn half_hour(rest: &str) -> String {
    expiring(rest).replace(r#""expire_after":"1h""#, r#""expire_after":"30m""#)
}

#[test]
fn the_script_forgets_a_while_it_is_idle() {
    open(&half_hour(r#""alpha":0.3,"warmup":3"#), &timed_schema());
    let out = play(&script(), usize::MAX, TimeUnit::Millisecond, None);
    assert_eq!(out.main[61].seq, 61);
    assert!(out.main[40].flag, "b's spike is flagged");
    assert_eq!(
        out.main[61].score, None,
        "a came back afresh: its spike is its first value"
    );
    assert_eq!(held(), names(&["b", "a"]), "c was forgotten at the last watermark");

    open(&config(r#""alpha":0.3,"warmup":3"#), &timed_schema());
    let out = play(&script(), usize::MAX, TimeUnit::Millisecond, None);
    assert!(out.main[61].flag, "without expiry a remembers and flags its spike");
    assert_eq!(held(), names(&["c", "b", "a"]));
}

#[test]
fn batch_boundaries_and_the_time_unit_do_not_change_what_is_forgotten() {
    for config in [
        half_hour(r#""alpha":0.3,"warmup":3"#),
        half_hour(r#""method":"zscore","window":4,"warmup":2,"max_keys":2"#),
    ] {
        let expected = whole(&config, &script(), usize::MAX, TimeUnit::Millisecond, None);
        for chunk in [1, 2, 3, 7] {
            assert_eq!(
                whole(&config, &script(), chunk, TimeUnit::Millisecond, None),
                expected,
                "{config}: batches of {chunk}"
            );
        }
        for (unit, tz) in [
            (TimeUnit::Second, Some("+02:00")),
            (TimeUnit::Microsecond, None),
            (TimeUnit::Nanosecond, Some("UTC")),
        ] {
            assert_eq!(
                whole(&config, &script(), 4, unit, tz),
                expected,
                "{config}: {unit:?} in {tz:?}"
            );
        }
    }
}

#[test]
fn restore_keeps_last_seen_times_so_expiry_matches_an_uninterrupted_run_at_every_step() {
    let steps = script();
    for config in [
        half_hour(r#""alpha":0.3,"warmup":3"#),
        half_hour(r#""method":"zscore","window":4,"warmup":2,"update_on_anomaly":true"#),
    ] {
        let expected = whole(&config, &steps, usize::MAX, TimeUnit::Millisecond, None);
        for split in 0..=steps.len() {
            open(&config, &timed_schema());
            let mut out = play(&steps[..split], usize::MAX, TimeUnit::Millisecond, None);
            let state = snapshot();
            assert_eq!(state.format_version, 2);
            open(&config, &timed_schema());
            restore(state.clone()).unwrap_or_else(|e| panic!("restore at step {split}: {e:?}"));
            assert_eq!(snapshot().data, state.data, "{config}: re-snapshot at step {split}");
            out.absorb(play(&steps[split..], usize::MAX, TimeUnit::Millisecond, None));
            assert_eq!((out, snapshot().data), expected, "{config}: restart at step {split}");
        }
    }
}

/// A snapshot as format 1 wrote it: a (10, 12 under alpha 0.5) and b, no event times.
fn format_1() -> wit::StateSnapshot {
    let data = format!(
        r#"{{"config":{{"method":"ewma","window":null,"key":"device","key_kind":"str","value":"temp"}},"series":[{{"key":{{"str":"a"}},"seen":2,"run":0,"stats":{{"ewma":{{"mean":{},"var":{}}}}}}},{{"key":{{"str":"b"}},"seen":1,"run":0,"stats":{{"ewma":{{"mean":{},"var":{}}}}}}}]}}"#,
        11f64.to_bits(),
        1f64.to_bits(),
        20f64.to_bits(),
        0f64.to_bits()
    );
    wit::StateSnapshot {
        format_version: 1,
        data: data.into_bytes(),
    }
}

#[test]
fn a_format_1_snapshot_restores_and_its_keys_count_as_seen_at_the_first_watermark() {
    let cfg = expiring(r#""alpha":0.5,"warmup":2"#);
    open(&cfg, &timed_schema());
    restore(format_1()).unwrap();
    assert_eq!(last_seen(), [("a".into(), None), ("b".into(), None)]);
    // The statistics came along: 15 against mean 11, sd 1.
    let out = process(&timed(&[(0, "a", 15.0, Some(0))]));
    assert_eq!(out.main[0].score, Some(4.0));

    open(&cfg, &timed_schema());
    restore(format_1()).unwrap();
    process(&timed(&[(0, "b", 20.0, Some(5000))]));
    let w = 1000 * SECOND;
    advance(w);
    assert_eq!(last_seen(), [("a".into(), Some(w)), ("b".into(), Some(5000 * SECOND))]);
    advance(w + HOUR);
    assert_eq!(held(), names(&["a", "b"]));
    advance(w + HOUR + 1);
    assert_eq!(held(), names(&["b"]));

    // Without expiry it restores too, and is written back as format 2.
    open(&config(""), &timed_schema());
    restore(format_1()).unwrap();
    assert_eq!(held(), names(&["a", "b"]));
    assert_eq!(snapshot().format_version, 2);

    // Format 1 never had event times.
    let mut v1: serde_json::Value = serde_json::from_slice(&format_1().data).unwrap();
    v1["series"][0]["last_seen"] = serde_json::json!(7);
    let refused = restore(wit::StateSnapshot {
        format_version: 1,
        data: v1.to_string().into_bytes(),
    });
    match refused {
        Err(wit::RestoreError::Corrupt(m)) => assert!(m.contains("format 1 has no `last_seen`"), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}
